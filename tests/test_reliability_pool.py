"""Many scenes, one bad: the good ones are finished, each bad one is reported, the command fails at the end.

Covers prepare, synth, the training cache and predict (serial and with worker processes), a worker
process that dies, and damaged existing outputs that synth and prepare used to keep as "existing".
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from autoice import prepare, schema, synth
from autoice.cli.main import main
from autoice.config import DataConfig
from autoice.data.cache import build_cache, fingerprint
from autoice.errors import AutoiceError
from autoice.scenes import SceneKind, open_scene

H, W = 96, 128


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """Five synthetic training scenes: OUT/raw (40 m) and OUT/train (RTT)."""
    out = tmp_path_factory.mktemp("pool")
    synth.synthesize(out, n_train=5, n_test=0, height=H, width=W, seed=11, progress=False)
    return out


def _copy(folder: Path, dest: Path) -> list[Path]:
    dest.mkdir(parents=True, exist_ok=True)
    return [Path(shutil.copy(f, dest)) for f in sorted(folder.glob("*.nc"))]


def _truncate(path: Path) -> None:
    os.truncate(path, path.stat().st_size // 2)


def _drop_variable(path: Path, name: str) -> None:
    with xr.open_dataset(path) as ds:
        ds = ds.load()
    path.unlink()
    ds.drop_vars(name).to_netcdf(path)


def _corrupt_data(path: Path) -> None:
    """Overwrite bytes inside the SAR data: the file still opens and validates, reading HH fails.

    Where the data lies depends on the file's layout, so try spots through the file until one hits it.
    """
    original = path.read_bytes()
    for k in range(40):
        spot = len(original) * k // 40
        path.write_bytes(original[:spot] + b"\xff" * 64 + original[spot + 64 :])
        try:
            with open_scene(path, check_values=False) as ds:
                np.asarray(ds["nersc_sar_primary"].values)
        except RuntimeError:
            return  # opens, but its SAR data cannot be read
        except AutoiceError:
            pass  # hit the file's structure: try further on
    raise AssertionError(f"{path}: found no spot that breaks only the data")


def _errors(err: str) -> list[str]:
    """The per-scene ``autoice: failed:`` lines, then the one ``autoice: error:`` summary (checked last)."""
    lines = [line for line in err.splitlines() if line.startswith(("autoice: error:", "autoice: failed:"))]
    assert [line.startswith("autoice: error:") for line in lines][-1:] == [True], err
    assert sum(line.startswith("autoice: error:") for line in lines) == 1, err
    return lines


# --------------------------------------------------------------------------- prepare


@pytest.mark.parametrize("workers", [1, 2])
def test_prepare_finishes_good_scenes_and_lists_bad_ones(dataset, tmp_path, capsys, workers):
    raws = _copy(dataset / "raw", tmp_path / "raw")
    _truncate(raws[1])
    _drop_variable(raws[3], "nersc_sar_secondary")
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_:
        main(["prepare", str(tmp_path / "raw"), "-o", str(out), "--workers", str(workers), "--quiet"])
    assert exit_.value.code == 1
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    errors = _errors(captured.err)
    assert len(errors) == 3, captured.err
    assert f"{raws[1]}: not a readable netCDF-4 file" in errors[0]
    assert f"{raws[3]}: missing variable nersc_sar_secondary" in errors[1]
    assert errors[2].startswith("autoice: error: 2 of 5 scenes failed: ")
    assert raws[1].name in errors[2] and raws[3].name in errors[2]
    assert "prepared 3 scene(s)" in captured.out
    good = [r for i, r in enumerate(raws) if i not in (1, 3)]
    assert sorted(p.name for p in out.glob("*.nc")) == sorted(schema.raw_to_rtt_name(r.name) for r in good)
    for r in good:
        with open_scene(out / schema.raw_to_rtt_name(r.name), SceneKind.TRAIN):
            pass


def test_prepare_worker_that_dies_loses_no_other_scene(dataset, tmp_path, monkeypatch):
    if multiprocessing.get_start_method() != "fork":
        pytest.skip("the dying patch reaches workers only through fork")
    raws = _copy(dataset / "raw", tmp_path / "raw")
    victim = raws[0]
    parent, real = os.getpid(), prepare.prepare_file

    def dying(raw, out_dir, **kwargs):
        if os.getpid() != parent and Path(raw).name == victim.name:
            os._exit(3)  # a crash in a library or the OOM killer: no exception, the process is gone
        return real(raw, out_dir, **kwargs)

    monkeypatch.setattr(prepare, "prepare_file", dying)  # forked workers inherit the patch
    with pytest.raises(AutoiceError) as exc:
        prepare.prepare_files(tmp_path / "raw", tmp_path / "out", workers=2, progress=False)
    assert str(exc.value).startswith("1 of 5 scenes failed: ")
    (failure,) = exc.value.failures
    assert str(failure).startswith(f"{victim}: ") and "worker process died" in str(failure)
    assert len(exc.value.partial) == 4
    assert sorted(p.name for p in (tmp_path / "out").glob("*.nc")) == sorted(
        schema.raw_to_rtt_name(r.name) for r in raws[1:]
    )


def test_prepare_replaces_a_damaged_existing_output(dataset, tmp_path, capsys):
    raws = _copy(dataset / "raw", tmp_path / "raw")[:2]
    out = tmp_path / "out"
    prepare.prepare_files(raws, out, progress=False)
    capsys.readouterr()
    damaged = out / schema.raw_to_rtt_name(raws[0].name)
    with xr.open_dataset(damaged) as ds:
        before = ds.load()
    _truncate(damaged)
    with pytest.raises(SystemExit) as exit_:
        main(["prepare", *map(str, raws), "-o", str(out), "--quiet"])
    assert exit_.value.code == 0
    out_text = capsys.readouterr().out
    assert "prepared 1 scene(s)" in out_text and "skipped 1 existing, replaced 1 damaged" in out_text
    with open_scene(damaged, SceneKind.TRAIN) as ds:
        for name in schema.CHARTS + schema.INPUT_VARIABLES:
            np.testing.assert_array_equal(ds[name].values, before[name].values, err_msg=name)


# --------------------------------------------------------------------------- synth


@pytest.mark.parametrize("workers", [1, 2])
def test_synth_finishes_good_scenes_when_one_cannot_be_written(tmp_path, capsys, workers):
    specs = synth.scene_specs(4, height=H, width=W, seed=5)
    blocked = tmp_path / "train" / specs[1].rtt_name
    blocked.mkdir(parents=True)  # a folder where the scene's output file must go
    with pytest.raises(SystemExit) as exit_:
        main(["synth", str(tmp_path), "--train", "3", "--test", "1", "--height", str(H), "--width", str(W),
              "--seed", "5", "--workers", str(workers), "--quiet"])  # fmt: skip
    assert exit_.value.code == 1
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    errors = _errors(captured.err)
    assert len(errors) == 2, captured.err
    assert errors[0] == f"autoice: failed: {blocked}: cannot write here: a folder is in the way of this file"
    assert errors[1].startswith("autoice: error: 1 of 4 scenes failed: ")
    assert "synthesized 3 scene(s) (2 train, 1 test" in captured.out
    for s in (specs[0], specs[2]):
        with open_scene(tmp_path / "train" / s.rtt_name, SceneKind.TRAIN):
            pass
    key = schema.parse_raw_name(specs[3].raw_name)
    with open_scene(tmp_path / "test" / specs[3].rtt_name, SceneKind.TEST):
        pass
    with open_scene(tmp_path / "test" / key.reference_name, SceneKind.REFERENCE):
        pass


def test_synth_replaces_damaged_existing_outputs(tmp_path, capsys):
    args = ["synth", str(tmp_path), "--train", "2", "--test", "1", "--height", str(H), "--width", str(W),
            "--seed", "5", "--quiet"]  # fmt: skip
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 0
    capsys.readouterr()
    specs = synth.scene_specs(3, height=H, width=W, seed=5)
    train_file = tmp_path / "train" / specs[0].rtt_name
    reference = tmp_path / "test" / schema.parse_raw_name(specs[2].raw_name).reference_name
    with xr.open_dataset(train_file) as ds:
        before = ds.load()
    _truncate(train_file)
    _truncate(reference)
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "synthesized 2 scene(s)" in out and "kept 1 existing, replaced 2 damaged" in out
    with open_scene(train_file, SceneKind.TRAIN) as ds:
        for name in schema.CHARTS + schema.INPUT_VARIABLES:
            np.testing.assert_array_equal(ds[name].values, before[name].values, err_msg=name)
    with open_scene(reference, SceneKind.REFERENCE):
        pass


# --------------------------------------------------------------------------- training cache


@pytest.mark.parametrize("workers", [1, 2])
def test_cache_keeps_good_entries_and_names_every_bad_scene(dataset, tmp_path, workers):
    files = _copy(dataset / "train", tmp_path / "train")
    _corrupt_data(files[0])
    _truncate(files[2])
    cfg = DataConfig(inputs=["nersc_sar_primary", "nersc_sar_secondary", "month"], downscale=2)
    cache = tmp_path / "cache"
    with pytest.raises(AutoiceError) as exc:
        build_cache(files, cfg, cache, workers=workers, progress=False)
    message = str(exc.value)
    assert message.startswith("2 of 5 scenes failed: ") and files[0].name in message and files[2].name in message
    faults = [str(f) for f in exc.value.failures]
    assert faults[0].startswith(f"{files[0]}: cannot read variable")
    assert faults[1].startswith(f"{files[2]}: not a readable")
    folder = cache / fingerprint(cfg)
    good = [f for i, f in enumerate(files) if i not in (0, 2)]
    entries = {f"{f.name[: schema.SCENE_KEY_LENGTH]}.json" for f in good}
    assert {p.name for p in folder.glob("*T*.json")} == entries
    stamps = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    again = build_cache(good, cfg, cache, workers=workers, progress=False)  # the work was kept
    assert [s.path for s in again] == good
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == stamps


def test_train_lists_every_bad_scene_before_training(dataset, tmp_path):
    from autoice.config import load_config
    from autoice.train import train

    files = _copy(dataset / "train", tmp_path / "train")
    _truncate(files[1])
    _drop_variable(files[4], "SOD")
    cfg = load_config("demo", overrides=["train.epochs=1", "train.batches_per_epoch=1"])
    with pytest.raises(AutoiceError) as exc:
        train(cfg, tmp_path / "train", tmp_path / "work", progress=False)
    assert str(exc.value).startswith("2 of 5 scenes failed: ")
    faults = [str(f) for f in exc.value.failures]
    assert faults[0].startswith(f"{files[1]}: not a readable") and faults[1].startswith(f"{files[4]}: missing")


# --------------------------------------------------------------------------- predict


def test_predict_finishes_good_scenes_then_refuses_an_incomplete_submission(trained_run, synth_data, tmp_path,
                                                                            capsys):  # fmt: skip
    test = tmp_path / "test"
    good = [f for f in _copy(synth_data / "test", test) if not f.name.endswith(schema.REFERENCE_SUFFIX)]
    first = test / "20000101T000000_dmi_prep.nc"  # sorts before the good scenes
    shutil.copy(good[0], first)
    _corrupt_data(first)
    last = test / "20990101T000000_cis_prep.nc"  # sorts after them
    shutil.copy(good[0], last)
    _truncate(last)
    output, unc = tmp_path / "upload_package.nc", tmp_path / "unc"
    with pytest.raises(SystemExit) as exit_:
        main(["predict", "--model", str(trained_run), "--data", str(test), "-o", str(output),
              "--uncertainty", str(unc), "--device", "cpu", "--quiet"])  # fmt: skip
    assert exit_.value.code == 1
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    assert f"uncertainty maps: {unc} (2 files)" in out
    errors = _errors(err)
    assert len(errors) == 3, err
    assert errors[0].startswith(f"autoice: failed: {first}: cannot read variable")
    assert errors[1].startswith(f"autoice: failed: {last}: not a readable netCDF-4 file")
    assert errors[2].startswith("autoice: error: 2 of 4 test scenes failed: ")
    assert first.name in errors[2] and last.name in errors[2] and "no submission written" in errors[2]
    assert not output.exists()
    assert sorted(p.name for p in unc.iterdir()) == sorted(
        f"{f.name[: schema.SCENE_KEY_LENGTH]}_uncertainty.nc" for f in good
    )


def _blocked_signals(_):
    import signal

    return sorted(int(s) for s in signal.pthread_sigmask(signal.SIG_BLOCK, []))


@pytest.mark.skipif(not hasattr(__import__("signal"), "pthread_sigmask"), reason="POSIX signal masks")
@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_pool_workers_fork_with_signals_held_and_run_jobs_with_them_free(method):
    """A SIGTERM or Ctrl-C in the moment a worker is forked must not unwind the parent's stack in the
    child (it used to, rarely: the pool terminating its workers after one died crashed a pytest-xdist
    worker). The signals are held while forking and free again in the worker's jobs and in the parent."""
    import signal

    from autoice.batch import _forking, run_each

    held = {int(signal.SIGINT), int(signal.SIGTERM)}
    with _forking():
        assert held <= set(_blocked_signals(None))
    assert not held & set(_blocked_signals(None))
    batch = run_each(_blocked_signals, [(i,) for i in range(3)], ["a", "b", "c"], workers=2, progress=False,
                     mp_context=multiprocessing.get_context(method))  # fmt: skip
    assert len(batch.results) == 3 and all(not held & set(r) for r in batch.results.values())
    assert not held & set(_blocked_signals(None))
