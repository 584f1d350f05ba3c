"""Damaged and non-finite scene data: one line naming the file and the variable, never a traceback or NaN training.

Covers three faults of real files: a compressed chunk whose bytes are damaged (the file opens, reading
the variable fails inside HDF5), non-finite geolocation tie points, and +-Inf in an input variable.
"""

from __future__ import annotations

import json
import shutil
import zlib
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import handmade
from autoice import prepare, schema
from autoice.cli.main import main
from autoice.config import DataConfig
from autoice.data.cache import build_cache
from autoice.data.inputs import scene_inputs
from autoice.errors import SceneError, ScenesFailed
from autoice.scenes import SceneKind, open_scene
from autoice.submission import SubmissionWriter, scene_shapes, score_submission

DAMAGED = "data are damaged (NetCDF: HDF error)"


# ----------------------------------------------------------------------------- helpers
def _load(path: Path) -> xr.Dataset:
    with xr.open_dataset(path) as ds:
        return ds.load()


def _compressed_stream(raw: bytes, stored: bytes) -> tuple[int, int]:
    """(offset, length) of the one zlib stream in ``raw`` that inflates to exactly ``stored``."""
    found = []
    for off in range(len(raw) - 1):
        if raw[off] != 0x78 or (raw[off] * 256 + raw[off + 1]) % 31:  # not a zlib header
            continue
        inflate = zlib.decompressobj()
        try:
            out = inflate.decompress(raw[off:], len(stored) + 1)
        except zlib.error:
            continue
        if out == stored and inflate.eof:
            found.append((off, len(raw) - off - len(inflate.unused_data)))
    assert len(found) == 1, f"expected one compressed chunk holding the variable, found {len(found)}"
    return found[0]


def write_damaged(ds: xr.Dataset, path: Path, name: str, *, readable: str = "distance_map") -> Path:
    """Write ``ds`` to ``path`` with ``name`` in one zlib chunk, then flip 8 bytes in the middle of that chunk.

    The chunk is found by inflating candidate zlib streams (no shuffle filter, so the stream inflates
    to the variable's bytes). Asserts the precondition: the file opens, ``readable`` reads, ``name`` does not.
    """
    var = ds[name]
    enc = {name: {"zlib": True, "complevel": 1, "shuffle": False, "chunksizes": var.shape}}
    ds.to_netcdf(path, engine="netcdf4", format="NETCDF4", encoding=enc)
    stored = np.ascontiguousarray(var.values).astype(var.dtype.newbyteorder("<")).tobytes()
    raw = bytearray(path.read_bytes())
    off, length = _compressed_stream(bytes(raw), stored)
    mid = off + length // 2
    raw[mid : mid + 8] = bytes(b ^ 0xFF for b in raw[mid : mid + 8])
    path.write_bytes(bytes(raw))
    with xr.open_dataset(path, cache=False) as check:
        assert check[readable].values.size > 0
        with pytest.raises((RuntimeError, OSError)):
            _ = check[name].values
    return path


def _cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Run ``autoice ARGS``; (exit code, stderr)."""
    with pytest.raises(SystemExit) as exit_:
        main(args)
    return exit_.value.code, capsys.readouterr().err


def _assert_one_line(err: str, path: Path, fault: str) -> None:
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert lines[-1].startswith("autoice: error: ") and sum(x.startswith("autoice: error:") for x in lines) == 1, err
    # one scene given: its error is the line; among several: its own `autoice: failed:` line, then the summary
    named = [x for x in lines if x.startswith((f"autoice: error: {path}: ", f"autoice: failed: {path}: "))]
    assert len(named) == 1 and fault in named[0], err


@pytest.fixture(scope="module")
def train_ds(synth_data):
    return _load(sorted((synth_data / "train").glob("*_prep.nc"))[0])


@pytest.fixture(scope="module")
def test_ds(synth_data):
    return _load(sorted((synth_data / "test").glob("*_prep.nc"))[0])


def _train_copy(synth_data: Path, folder: Path) -> list[Path]:
    folder.mkdir()
    files = []
    for f in sorted((synth_data / "train").glob("*_prep.nc")):
        files.append(Path(shutil.copy(f, folder / f.name)))
    return files


# ----------------------------------------------------------------------------- 1. damaged compressed chunk
def test_inspect_reports_a_damaged_input_chunk(train_ds, tmp_path, capsys):
    path = write_damaged(train_ds, tmp_path / "20211122T210615_dmi_prep.nc", "nersc_sar_primary")
    code, err = _cli(["inspect", str(path)], capsys)
    assert code == 1
    _assert_one_line(err, path, f"cannot read variable nersc_sar_primary: {DAMAGED}")


def test_the_error_names_the_file_as_the_user_gave_it(train_ds, tmp_path, capsys, monkeypatch):
    write_damaged(train_ds, tmp_path / "20211122T210615_dmi_prep.nc", "nersc_sar_primary")
    monkeypatch.chdir(tmp_path)
    code, err = _cli(["inspect", "20211122T210615_dmi_prep.nc"], capsys)
    assert code == 1
    name = "20211122T210615_dmi_prep.nc"
    assert err.strip() == f"autoice: error: {name}: cannot read variable nersc_sar_primary: {DAMAGED}"


def test_a_damaged_chart_chunk_fails_validation_with_one_line(train_ds, tmp_path, capsys):
    path = write_damaged(train_ds, tmp_path / "20211122T210615_dmi_prep.nc", "SOD")
    with pytest.raises(SceneError) as err:
        open_scene(path)
    assert str(err.value) == f"{path}: cannot read variable SOD: {DAMAGED}"
    code, err_text = _cli(["inspect", "--no-stats", str(path)], capsys)
    assert code == 1
    _assert_one_line(err_text, path, f"cannot read variable SOD: {DAMAGED}")


def test_show_reports_a_damaged_chunk(train_ds, tmp_path, capsys):
    path = write_damaged(train_ds, tmp_path / "20211122T210615_dmi_prep.nc", "nersc_sar_secondary")
    png = tmp_path / "scene.png"
    code, err = _cli(["show", str(path), "-o", str(png)], capsys)
    assert code == 1
    _assert_one_line(err, path, f"cannot read variable nersc_sar_secondary: {DAMAGED}")
    assert not png.exists()


def test_show_reports_a_damaged_amsr2_chunk(train_ds, tmp_path, capsys):
    path = write_damaged(train_ds, tmp_path / "20211122T210615_dmi_prep.nc", "btemp_36_5h")
    code, err = _cli(["show", str(path), "-o", str(tmp_path / "scene.png")], capsys)
    assert code == 1
    _assert_one_line(err, path, f"cannot read variable btemp_36_5h: {DAMAGED}")


def test_predict_reports_a_damaged_chunk(trained_run, test_ds, tmp_path, capsys):
    data = tmp_path / "test"
    data.mkdir()
    path = write_damaged(test_ds, data / "20190908T032625_cis_prep.nc", "nersc_sar_primary")
    out = tmp_path / "upload_package.nc"
    code, err = _cli(["predict", "--quiet", "--model", str(trained_run), "--data", str(data), "-o", str(out)], capsys)
    assert code == 1
    _assert_one_line(err, path, f"cannot read variable nersc_sar_primary: {DAMAGED}")
    assert not out.exists()


def test_train_cache_build_reports_a_damaged_chunk(synth_data, train_ds, tmp_path, capsys):
    files = _train_copy(synth_data, tmp_path / "train")
    path = files[0]
    path.unlink()
    write_damaged(_load(synth_data / "train" / path.name), path, "nersc_sar_primary")
    code, err = _cli(["train", "--quiet", "--preset", "demo", "--data", str(path.parent), "--workdir",
                      str(tmp_path / "run"), "--set", "train.epochs=1", "--set", "train.batches_per_epoch=1"],
                     capsys)  # fmt: skip
    assert code == 1
    _assert_one_line(err, path, f"cannot read variable nersc_sar_primary: {DAMAGED}")
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_cache_build_reports_a_damaged_chunk(train_ds, tmp_path):
    path = write_damaged(train_ds, tmp_path / "20211122T210615_dmi_prep.nc", "t2m")
    cfg = DataConfig(inputs=["nersc_sar_primary", "t2m"], downscale=2)
    with pytest.raises(ScenesFailed) as err:
        build_cache([path], cfg, tmp_path / "cache", progress=False)
    assert [str(e) for e in err.value.failures] == [f"{path}: cannot read variable t2m: {DAMAGED}"]


def test_prepare_reports_a_damaged_chunk_in_the_same_words(tmp_path):
    raw = handmade.write(tmp_path)
    ds = _load(raw)
    raw.unlink()
    write_damaged(ds, raw, "nersc_sar_secondary")
    with pytest.raises(SceneError) as err:
        prepare.prepare_file(raw, tmp_path / "out")
    assert str(err.value) == f"{raw}: cannot read variable nersc_sar_secondary: {DAMAGED}"
    assert not (tmp_path / "out" / handmade.RTT_NAME).exists()


def test_score_reports_a_damaged_reference_chunk_in_the_same_words(synth_data, tmp_path):
    test = tmp_path / "test"
    shutil.copytree(synth_data / "test", test)
    ref = next(test.glob("*_prep_reference.nc"))
    ds = _load(ref)
    ref.unlink()
    write_damaged(ds, ref, "SIC", readable="SOD")
    shapes = scene_shapes(test)
    upload = tmp_path / "upload_package.nc"
    with SubmissionWriter(upload) as writer:
        for key, shape in shapes.items():
            for chart in schema.CHARTS:
                writer.add(key, chart, np.zeros(shape, dtype=np.uint8))
    with pytest.raises(SceneError) as err:
        score_submission(upload, test)
    assert str(err.value) == f"{ref}: cannot read variable SIC: {DAMAGED}"


# ----------------------------------------------------------------------------- 2. non-finite geolocation
@pytest.mark.parametrize("kind", [SceneKind.TRAIN, SceneKind.TEST])
@pytest.mark.parametrize(("name", "value"), [(schema.TIEPOINT_LATITUDE, np.nan),
                                             (schema.TIEPOINT_LONGITUDE, np.inf),
                                             (schema.TIEPOINT_LONGITUDE, -np.inf)])  # fmt: skip
def test_rtt_non_finite_geolocation_is_a_scene_error(train_ds, tmp_path, kind, name, value):
    ds = train_ds.copy(deep=True)
    if kind == SceneKind.TEST:
        ds = ds.drop_vars(list(schema.CHARTS))
    ds[name].values[3, 4] = value
    path = tmp_path / "20211122T210615_dmi_prep.nc"
    ds.to_netcdf(path, engine="netcdf4")
    with pytest.raises(SceneError) as err:
        open_scene(path, kind)
    msg = str(err.value)
    assert msg.startswith(f"{path}: variable {name} has 1 non-finite value"), msg
    assert "\n" not in msg


def test_predict_refuses_nan_geolocation(trained_run, test_ds, tmp_path, capsys):
    ds = test_ds.copy(deep=True)
    ds[schema.TIEPOINT_LATITUDE].values[:] = np.nan
    data = tmp_path / "test"
    data.mkdir()
    path = data / "20190908T032625_cis_prep.nc"
    ds.to_netcdf(path, engine="netcdf4")
    out = tmp_path / "upload_package.nc"
    code, err = _cli(["predict", "--quiet", "--model", str(trained_run), "--data", str(data), "-o", str(out)], capsys)
    assert code == 1
    _assert_one_line(err, path, f"variable {schema.TIEPOINT_LATITUDE} has 441 non-finite values")
    assert not out.exists()


def test_train_refuses_non_finite_geolocation(synth_data, tmp_path, capsys):
    files = _train_copy(synth_data, tmp_path / "train")
    path = files[-1]
    ds = _load(path)
    ds[schema.TIEPOINT_LONGITUDE].values[0, 0] = np.inf
    path.unlink()
    ds.to_netcdf(path, engine="netcdf4")
    code, err = _cli(["train", "--quiet", "--preset", "demo", "--data", str(path.parent), "--workdir",
                      str(tmp_path / "run"), "--set", "train.epochs=1"], capsys)  # fmt: skip
    assert code == 1
    _assert_one_line(err, path, f"variable {schema.TIEPOINT_LONGITUDE} has 1 non-finite value")


@pytest.mark.parametrize("name", ["sar_grid_latitude", "sar_grid_longitude"])
def test_raw_non_finite_geolocation_is_a_scene_error(tmp_path, name):
    raw = handmade.write(tmp_path)
    ds = _load(raw)
    ds[name].values[[5, 17]] = np.nan
    raw.unlink()
    ds.to_netcdf(raw, engine="netcdf4")
    with pytest.raises(SceneError) as err:
        open_scene(raw, SceneKind.RAW)
    assert str(err.value).startswith(f"{raw}: variable {name} has 2 non-finite values")
    with pytest.raises(SceneError, match=f"variable {name} has 2 non-finite values"):
        prepare.prepare_file(raw, tmp_path / "out")
    assert not (tmp_path / "out" / handmade.RTT_NAME).exists()


# ----------------------------------------------------------------------------- 3. +-Inf in inputs is no data
def _with_inf(ds: xr.Dataset) -> xr.Dataset:
    ds = ds.copy(deep=True)
    ds["nersc_sar_primary"].values[10, 20] = np.inf
    ds["nersc_sar_primary"].values[11, 21] = -np.inf
    ds["t2m"].values[1, 2] = np.inf  # 2 km cell (1, 2): 80 m pixels [25, 50) x [50, 75)
    return ds


def test_inf_inputs_are_no_data_in_the_training_cache(train_ds, tmp_path):
    path = tmp_path / "20211122T210615_dmi_prep.nc"
    _with_inf(train_ds).to_netcdf(path, engine="netcdf4")
    cfg = DataConfig(inputs=["nersc_sar_primary", "t2m"], downscale=1, cache_dtype="float16")
    (cached,) = build_cache([path], cfg, tmp_path / "cache", progress=False)
    x = np.asarray(cached.inputs, dtype=np.float32)
    assert x[0, 10, 20] == schema.INPUT_FILL and x[0, 11, 21] == schema.INPUT_FILL
    np.testing.assert_array_equal(x[1, 25:50, 50:75], schema.INPUT_FILL)
    expected = train_ds["nersc_sar_primary"].values.astype(np.float16).astype(np.float32)
    np.testing.assert_array_equal(x[0, 12:, :], expected[12:, :])  # the rest untouched
    assert np.all(np.isfinite(x)) and np.abs(x).max() < 100


def test_inf_inputs_are_no_data_for_prediction(test_ds, tmp_path):
    path = tmp_path / "20190908T032625_cis_prep.nc"
    _with_inf(test_ds).to_netcdf(path, engine="netcdf4")
    with open_scene(path, check_values=False) as ds:
        x = scene_inputs(ds, ["nersc_sar_primary", "t2m"], 1)
    assert x[0, 10, 20] == schema.INPUT_FILL and x[0, 11, 21] == schema.INPUT_FILL
    np.testing.assert_array_equal(x[1, 25:50, 50:75], schema.INPUT_FILL)
    assert np.all(np.isfinite(x))


def test_inspect_statistics_skip_inf_like_no_data(test_ds, tmp_path, capsys):
    path = tmp_path / "20190908T032625_cis_prep.nc"
    _with_inf(test_ds).to_netcdf(path, engine="netcdf4")
    try:
        main(["inspect", "--json", str(path)])
    except SystemExit as exc:
        assert exc.code in (0, None)
    stats = json.loads(capsys.readouterr().out)["inputs"]
    for name in ("nersc_sar_primary", "t2m"):
        assert stats[name]["mean"] is not None and np.isfinite(stats[name]["max"]), (name, stats[name])
        assert stats[name]["valid_share"] < 1.0


def test_prepare_turns_inf_in_a_raw_2km_variable_into_no_data(tmp_path):
    raw = handmade.write(tmp_path)
    ds = _load(raw)
    ds["btemp_18_7h"].values[1, 1] = np.inf
    ds["tcwv"].values[0, 2] = -np.inf
    raw.unlink()
    ds.to_netcdf(raw, engine="netcdf4")
    out = prepare.prepare_file(raw, tmp_path / "out").output
    rtt = _load(out)
    assert rtt["btemp_18_7h"].values[1, 1] == schema.INPUT_FILL
    assert rtt["tcwv"].values[0, 2] == schema.INPUT_FILL
    assert np.abs(rtt["btemp_18_7h"].values).max() < 100
