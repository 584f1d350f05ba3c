"""Raw -> RTT conversion on a raw file written by hand (spec sections 3 and 5)."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner

import handmade
from autoice import prepare, schema
from autoice.cli.main import cli
from autoice.errors import AutoiceError, SceneError
from autoice.scenes import SceneKind, open_scene


@pytest.fixture(scope="module")
def raw_file(tmp_path_factory):
    return handmade.write(tmp_path_factory.mktemp("raw"))


@pytest.fixture(scope="module")
def rtt(raw_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("rtt")
    result = prepare.prepare_file(raw_file, out)
    with xr.open_dataset(result.output) as ds:
        return result, ds.load()


def test_name_dims_and_dtypes(rtt):
    result, ds = rtt
    assert result.output.name == handmade.RTT_NAME
    assert dict(ds.sizes)[schema.FULL_DIMS[0]] == handmade.LINES // 2
    assert dict(ds.sizes)[schema.FULL_DIMS[1]] == handmade.SAMPLES // 2
    assert dict(ds.sizes)[schema.COARSE_DIMS[0]] == 3
    for n in schema.INPUT_VARIABLES:
        assert ds[n].dtype == np.float32, n
    for c in schema.CHARTS:
        assert ds[c].dtype == np.uint8
        assert ds[c].attrs["chart_fill_value"] == 255
    assert ds[schema.TIEPOINT_LATITUDE].shape == (21, 21)
    assert ds.attrs["original_id"] == handmade.RAW_NAME
    assert ds.attrs["scene_id"] == "20210317T083516_dmi"
    assert ds.attrs["ice_service"] == "dmi"
    assert ds.attrs["pixel_spacing"] == 80
    assert ds.attrs["flip"] == 1


def test_output_passes_validation(rtt):
    result, _ = rtt
    with open_scene(result.output, SceneKind.TRAIN):
        pass


def test_charts_decoded_and_block_max(rtt):
    _, ds = rtt
    pid = handmade.polygon_image()
    h, w = handmade.LINES // 2, handmade.SAMPLES // 2
    raw_hh = xr.open_dataset(rtt[0].source)["nersc_sar_primary"].values
    for k, chart in enumerate(schema.CHARTS):
        lut = {pid_: classes[k] for pid_, classes in handmade.EXPECTED.items()}
        full = np.full(pid.shape, 255, dtype=np.uint8)
        for pid_, cls in lut.items():
            full[pid == pid_] = cls
        expected = full[: 2 * h, : 2 * w].reshape(h, 2, w, 2).max(axis=(1, 3))
        nodata = ~np.isfinite(raw_hh[: 2 * h, : 2 * w].reshape(h, 2, w, 2)).all(axis=(1, 3))
        expected[nodata] = 255
        expected[25, 25] = 255  # the lone HV no-data pixel (50, 51)
        np.testing.assert_array_equal(ds[chart].values, expected, err_msg=chart)
    assert rtt[0].undecodable["SIC"] == 1  # the range-coded polygon


def test_sar_block_mean_and_scaling(raw_file, rtt):
    _, ds = rtt
    with xr.open_dataset(raw_file) as raw:
        hh = raw["nersc_sar_primary"].values.astype(np.float64)
    h, w = handmade.LINES // 2, handmade.SAMPLES // 2
    mean, std = schema.global_meanstd()["nersc_sar_primary"]
    expected = (hh[: 2 * h, : 2 * w].reshape(h, 2, w, 2).mean(axis=(1, 3)) - mean) / std
    got = ds["nersc_sar_primary"].values
    ok = np.isfinite(expected)
    ok[25, 25] = False
    np.testing.assert_allclose(got[ok], expected[ok], rtol=1e-5, atol=1e-5)
    assert np.all(got[~np.isfinite(expected)] == 0)


def test_masks_aligned(rtt):
    _, ds = rtt
    # HV is NaN at raw (50, 51) only: the 80 m pixel (25, 25) is no-data in every full-grid input and chart.
    for n in schema.FULL_GRID_INPUTS:
        assert ds[n].values[25, 25] == 0, n
        assert ds[n].values[25, 26] != 0, n
    for c in schema.CHARTS:
        assert ds[c].values[25, 25] == 255
    # outside the swath (raw samples 0-1 -> 80 m sample 0)
    assert np.all(ds["sar_incidenceangle"].values[:, 0] == 0)


def test_incidence_from_tiepoints(rtt):
    _, ds = rtt
    h, w = handmade.LINES // 2, handmade.SAMPLES // 2
    r = np.arange(2 * h).reshape(h, 2).mean(axis=1)
    s = np.arange(2 * w).reshape(w, 2).mean(axis=1)
    inc = 19.0 + 28.0 * s[None, :] / (handmade.SAMPLES - 1) + 0.01 * r[:, None]
    mean, std = schema.global_meanstd()["sar_incidenceangle"]
    got = ds["sar_incidenceangle"].values * std + mean
    valid = ds["sar_incidenceangle"].values != 0
    np.testing.assert_allclose(got[valid], inc[valid], atol=1e-3)


def test_coarse_scaled_and_latlon(raw_file, rtt):
    _, ds = rtt
    with xr.open_dataset(raw_file) as raw:
        for n in ("btemp_6_9h", "t2m", "tclw"):
            mean, std = schema.global_meanstd()[n]
            np.testing.assert_allclose(ds[n].values, (raw[n].values - mean) / std, rtol=1e-5)
            assert ds[n].attrs["min"] == pytest.approx(float(raw[n].values.min()))
        np.testing.assert_allclose(ds[schema.TIEPOINT_LATITUDE].values.ravel(), raw["sar_grid_latitude"].values)


def test_streaming_blocks_give_same_result(raw_file, rtt, tmp_path):
    small = prepare.prepare_file(raw_file, tmp_path, block_lines=6)
    with xr.open_dataset(small.output) as ds:
        for n in (*schema.FULL_GRID_INPUTS, *schema.CHARTS):
            np.testing.assert_array_equal(ds[n].values, rtt[1][n].values, err_msg=n)


def test_skip_existing_and_overwrite(raw_file, tmp_path):
    first = prepare.prepare_file(raw_file, tmp_path)
    assert not first.skipped
    again = prepare.prepare_file(raw_file, tmp_path)
    assert again.skipped
    forced = prepare.prepare_file(raw_file, tmp_path, overwrite=True)
    assert not forced.skipped


def test_no_partial_file_after_interrupt(raw_file, tmp_path, monkeypatch):
    calls = {"n": 0}
    real = prepare.charts.rasterize

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(prepare.charts, "rasterize", interrupted)
    with pytest.raises(KeyboardInterrupt):
        prepare.prepare_file(raw_file, tmp_path, block_lines=20)
    assert list(tmp_path.iterdir()) == []


def test_parallel_workers(raw_file, tmp_path):
    second = handmade.write(raw_file.parent, name=handmade.RAW_NAME.replace("083516_2021", "093516_2021"), seed=1)
    results = prepare.prepare_files([raw_file, second], tmp_path / "out", workers=2, progress=False)
    assert sorted(r.output.name for r in results) == ["20210317T083516_dmi_prep.nc", "20210317T093516_dmi_prep.nc"]
    second.unlink()


def test_bad_raw_inputs_name_the_file(tmp_path):
    bad = tmp_path / "not_a_raw_name.nc"
    bad.write_bytes(b"hello")
    with pytest.raises(SceneError, match="not_a_raw_name.nc: file name does not follow the raw scene pattern"):
        prepare.prepare_file(bad, tmp_path / "out")
    garbage = tmp_path / handmade.RAW_NAME
    garbage.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    with pytest.raises(SceneError, match="not a readable netCDF-4 file"):
        prepare.prepare_file(garbage, tmp_path / "out")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(AutoiceError, match="empty: no raw scene files"):
        prepare.prepare_files(empty, tmp_path / "o2")


def test_bad_polygon_table(tmp_path):
    path = handmade.write(tmp_path)
    with xr.open_dataset(path) as ds:
        ds = ds.load()
    ds["polygon_codes"] = (("codes",), np.array(["nonsense header", "1;2;3"], dtype=object))
    path.unlink()
    ds.to_netcdf(path)
    with pytest.raises(SceneError, match=f"{handmade.RAW_NAME}: polygon_codes"):
        prepare.prepare_file(path, tmp_path / "out")


def test_cli_prepare(raw_file, tmp_path):
    runner = CliRunner()
    res = runner.invoke(cli, ["prepare", str(raw_file.parent), "-o", str(tmp_path), "--quiet"])
    assert res.exit_code == 0, res.output
    assert "prepared 1 scene" in res.output
    assert (tmp_path / handmade.RTT_NAME).exists()
    res = runner.invoke(cli, ["prepare", "--help"])
    assert res.exit_code == 0 and "--workers" in res.output
