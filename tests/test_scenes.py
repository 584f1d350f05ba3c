"""Scene validation: every fault gives one line naming the file and the fault."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import handmade
from autoice import prepare, schema
from autoice.cli.main import main
from autoice.errors import SceneError
from autoice.scenes import SceneKind, find_scenes, open_scene, split_reference, write_netcdf


@pytest.fixture(scope="module")
def rtt_ds(tmp_path_factory):
    raw = handmade.write(tmp_path_factory.mktemp("raw"))
    out = prepare.prepare_file(raw, tmp_path_factory.mktemp("rtt")).output
    with xr.open_dataset(out) as ds:
        return ds.load()


def _write(ds, folder, name=handmade.RTT_NAME):
    path = folder / name
    ds.to_netcdf(path, engine="netcdf4")
    return path


def _expect(path, kind, pattern):
    with pytest.raises(SceneError) as err:
        open_scene(path, kind)
    msg = str(err.value)
    assert msg.startswith(str(path) + ": "), msg
    assert pattern in msg, msg
    assert "\n" not in msg


def test_valid_files_open(rtt_ds, tmp_path):
    path = _write(rtt_ds, tmp_path)
    with open_scene(path) as ds:
        assert ds.sizes["sar_lines"] == handmade.LINES // 2


def test_missing_variable(rtt_ds, tmp_path):
    _expect(_write(rtt_ds.drop_vars("btemp_36_5h"), tmp_path), None, "missing variable btemp_36_5h")


def test_train_requires_charts_but_test_does_not(rtt_ds, tmp_path):
    path = _write(rtt_ds.drop_vars(list(schema.CHARTS)), tmp_path)
    _expect(path, SceneKind.TRAIN, "missing variables SIC, SOD, FLOE")
    with open_scene(path) as ds:  # inferred: a test scene
        assert "SIC" not in ds


def test_wrong_dims(rtt_ds, tmp_path):
    bad = rtt_ds.copy()
    bad["distance_map"] = (("a", "b"), bad["distance_map"].values)
    _expect(_write(bad, tmp_path), None, "variable distance_map has dims ('a', 'b')")


def test_wrong_dtype(rtt_ds, tmp_path):
    bad = rtt_ds.copy()
    bad["SOD"] = bad["SOD"].astype(np.int16)
    _expect(_write(bad, tmp_path), None, "variable SOD has dtype int16, expected uint8")
    bad = rtt_ds.copy()
    bad["t2m"] = bad["t2m"].astype(np.int32)
    _expect(_write(bad, tmp_path), None, "variable t2m has dtype int32, expected float32")


def test_out_of_range_chart_class(rtt_ds, tmp_path):
    bad = rtt_ds.copy(deep=True)
    bad["FLOE"].values[3, 3] = 7
    _expect(_write(bad, tmp_path), None, "chart FLOE has out-of-range class 7 in 1 pixels")


def test_coarse_grid_mismatch(rtt_ds, tmp_path):
    bad = rtt_ds.isel({schema.COARSE_DIMS[0]: slice(0, 1)})
    bad = bad.pad({schema.COARSE_DIMS[1]: (0, 5)}, constant_values=0.0)
    _expect(_write(bad, tmp_path), None, "2 km grid 1 x 8 does not match")


def test_truncated_and_foreign_files(rtt_ds, tmp_path):
    good = _write(rtt_ds, tmp_path)
    data = good.read_bytes()
    truncated = tmp_path / "20210317T083517_dmi_prep.nc"
    truncated.write_bytes(data[: len(data) // 2])
    _expect(truncated, None, "not a readable netCDF-4 file")
    text = tmp_path / "20210317T083518_dmi_prep.nc"
    text.write_text("this is not netCDF\n")
    _expect(text, None, "not a readable netCDF-4 file")
    _expect(tmp_path / "20210317T083519_dmi_prep.nc", None, "no such file")


def test_bad_names(rtt_ds, tmp_path):
    path = _write(rtt_ds, tmp_path, "scene_prep.nc")
    _expect(path, None, "file name follows none of the scene patterns")
    path = _write(rtt_ds, tmp_path, "20210317T083516_xyz_prep.nc")
    _expect(path, SceneKind.TRAIN, "file name does not follow the train scene pattern")
    _expect(_write(rtt_ds, tmp_path), SceneKind.RAW, "does not follow the raw scene pattern")


def test_raw_faults(tmp_path):
    path = handmade.write(tmp_path)
    with open_scene(path, SceneKind.RAW):
        pass
    with xr.open_dataset(path) as ds:
        ds = ds.load()
    path.unlink()
    bad = ds.drop_vars("sar_grid_incidenceangle")
    bad.to_netcdf(path)
    _expect(path, SceneKind.RAW, "missing variable sar_grid_incidenceangle")
    path.unlink()
    bad = ds.isel(tie=slice(0, 400))
    bad.to_netcdf(path)
    _expect(path, SceneKind.RAW, "tie-point variable sar_grid_line has shape (400,), expected (441,)")
    path.unlink()
    bad = ds.copy()
    bad["polygon_icechart"] = (("x", "y"), bad["polygon_icechart"].values)
    bad.to_netcdf(path)
    _expect(path, SceneKind.RAW, "variable polygon_icechart has dims ('x', 'y')")


def test_reference_split_and_find(rtt_ds, tmp_path):
    path = _write(rtt_ds, tmp_path)
    test_path, ref_path = split_reference(path)
    assert ref_path.name == "20210317T083516_dmi_prep_reference.nc"
    with open_scene(test_path) as ds:
        assert not any(c in ds for c in schema.CHARTS)
    with open_scene(ref_path) as ds:
        assert set(ds.data_vars) == set(schema.CHARTS)
        np.testing.assert_array_equal(ds["SIC"].values, rtt_ds["SIC"].values)
    assert find_scenes(tmp_path, [SceneKind.REFERENCE]) == [ref_path]
    assert find_scenes(tmp_path, [SceneKind.TEST]) == [test_path]
    with pytest.raises(SceneError, match="no such file or folder"):
        find_scenes(tmp_path / "missing")


def test_write_netcdf_is_compressed_and_atomic(rtt_ds, tmp_path):
    import netCDF4

    path = tmp_path / "x.nc"
    write_netcdf(rtt_ds, path)
    with netCDF4.Dataset(path) as nc:
        assert nc.data_model == "NETCDF4"
        assert nc["SIC"].filters()["zlib"]
    assert [p.name for p in tmp_path.iterdir()] == ["x.nc"]


def test_cli_reports_one_line(rtt_ds, tmp_path, capsys):
    bad = rtt_ds.drop_vars("t2m")
    path = _write(bad, tmp_path)
    with pytest.raises(SystemExit) as exit_:
        main(["inspect", str(path)])
    assert exit_.value.code == 1
    err = capsys.readouterr().err.strip()
    assert err == f"autoice: error: {path}: missing variable t2m (ready-to-train inputs)"


def test_inspect_an_empty_folder_is_an_error(tmp_path, capsys):
    """Issue 10 item 14: it printed nothing and exited 0."""
    with pytest.raises(SystemExit) as exit_:
        main(["inspect", str(tmp_path)])
    assert exit_.value.code == 1
    assert capsys.readouterr().err.strip() == f"autoice: error: inspect: no scene files (*.nc) in {tmp_path}"


def test_inspect_json_is_standard_json_with_nan_statistics(rtt_ds, tmp_path, capsys):
    """Issue 10 item 14: an all-NaN input printed NaN, which JSON parsers refuse."""
    import json

    ds = rtt_ds.copy()
    ds["nersc_sar_primary"] = ds["nersc_sar_primary"] * np.nan
    path = _write(ds, tmp_path)
    try:
        main(["inspect", "--json", str(path)])
    except SystemExit as exc:
        assert exc.code in (0, None)
    out = capsys.readouterr().out

    def refuse(const: str) -> None:
        raise AssertionError(f"non-standard JSON constant {const}")

    info = json.loads(out, parse_constant=refuse)
    assert "NaN" not in out and info


def test_chartless_is_land_and_no_sar_data_which_the_chart_masks_too(synth_data):
    """Pixels a prediction must not show: beyond the swath or on land; the real-format chart masks them all."""
    from autoice.scenes import chartless

    mean, std = schema.global_meanstd()[schema.DISTANCE_VARIABLE]
    seen_land = seen_nodata = 0
    for path in sorted((synth_data / "train").glob("*_prep.nc")):
        with open_scene(path) as ds:
            out = chartless(ds)
            assert out is not None and out.shape == ds["SIC"].shape and out.dtype == bool
            np.testing.assert_array_equal(chartless(ds, strip_pixels=500), out)  # strips of 3 lines
            hh = ds[schema.SAR_VARIABLES[0]].values
            zone = ds[schema.DISTANCE_VARIABLE].values * std + mean
            nodata = hh == schema.INPUT_FILL
            land = ~nodata & (zone < 0.5)
            np.testing.assert_array_equal(out, nodata | land)
            assert (ds["SIC"].values[out] == schema.CHART_FILL).all()  # the chart has no class there either
            np.testing.assert_array_equal(chartless(ds.drop_vars(schema.DISTANCE_VARIABLE)), nodata)  # HH alone
        seen_land += int(land.sum())
        seen_nodata += int(nodata.sum())
    assert seen_land > 100 and seen_nodata > 100
    assert chartless(xr.Dataset({"SIC": (("a", "b"), np.zeros((2, 2), np.uint8))})) is None
