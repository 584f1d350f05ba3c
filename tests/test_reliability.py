"""Issue 10: signals, full and read-only disks, concurrent runs, paths and settings, each a one-line error.

Signals and concurrency run the real ``autoice`` command in a subprocess with a bounded timeout;
full and read-only disks are real tmpfs mounts (root only) plus ENOSPC injections that run anywhere.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from autoice.cli.main import main

TINY_TRAIN = ["--preset", "demo", "--set", "train.epochs=1", "--set", "train.batches_per_epoch=2",
              "--set", "data.patch_size=32", "--set", "model.filters=[8, 8, 16]", "--set", "data.downscale=2",
              "--set", "train.batch_size=4"]  # fmt: skip
ENV = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Run the CLI in-process; (exit code, stderr)."""
    with pytest.raises(SystemExit) as exit_:
        main([str(a) for a in args])
    return int(exit_.value.code or 0), capsys.readouterr().err


def _one_error(err: str) -> str:
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if line.startswith("autoice: error:")]
    assert len(errors) == 1, err
    return errors[0]


def _temporaries(root: Path) -> list[str]:
    return glob.glob(str(root / "**" / ".*.tmp"), recursive=True)


def _spawn(args: list[str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "autoice", *map(str, args)], cwd=cwd, env=ENV, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip


# ----------------------------------------------------------------------------- signals (items 1, 2)
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_during_a_netcdf_write_stops_cleanly(tmp_path, signum):
    """Ctrl-C inside xarray's write deadlocked; SIGTERM killed synth with no message and left its .tmp."""
    out = tmp_path / "data"
    proc = _spawn(["synth", out, "--train", "3", "--test", "0", "--height", "400", "--width", "400"], tmp_path)
    deadline = time.monotonic() + 120
    while not _temporaries(out) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _temporaries(out), "synth never started writing"
    time.sleep(0.05)
    proc.send_signal(signum)
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("the command hung after the signal")
    assert proc.returncode == 128 + signum, err
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("autoice: "), err
    assert _temporaries(out) == []


def test_sigterm_during_training_removes_the_cache_temporary(synth_data, tmp_path):
    """The 73 MB cache .npy temporary of a SIGTERMed train was never cleaned."""
    work = tmp_path / "run"
    # 1000 tiny epochs (~50 s) so the signal lands in training: with 50 (2.4 s) a run under a loaded
    # `pytest -n 2` once trained to the end and exited 0 (the signal came too late to count)
    proc = _spawn(["train", *TINY_TRAIN, "--set", "train.epochs=1000", "--data", synth_data / "train",
                   "--workdir", work], tmp_path)  # fmt: skip
    deadline = time.monotonic() + 120
    while not (work / "checkpoints" / "last.pt").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()[1]
    proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("train hung after SIGTERM")
    assert proc.returncode == 143, err
    assert "terminated (SIGTERM)" in err.strip().splitlines()[-1] and "Traceback" not in err, err
    assert _temporaries(work) == []


def test_sigterm_while_the_temporary_is_made_leaves_no_temporary(tmp_path, monkeypatch):
    """A SIGTERM between creating an output's temporary and writing it (seen once, rarely, in a SIGTERMed
    train's checkpoint) is raised where the temporary is removed, and nothing is written."""
    from autoice import atomic, interrupts

    real_chmod = os.chmod

    def signalled(path, mode):  # the handler runs as it would for a signal arriving here
        real_chmod(path, mode)
        interrupts._handler(signal.SIGTERM, None)

    monkeypatch.setattr(atomic.os, "chmod", signalled)
    with pytest.raises(interrupts.Interrupted):
        with atomic.atomic_output(tmp_path / "last.pt") as tmp:
            tmp.write_text("never")
    assert list(tmp_path.iterdir()) == []


def test_a_signal_never_lands_inside_a_local_store_write(tmp_path):
    """A SIGTERM during a metric write to a sqlite store (seen once in a SIGTERMed train) used to leave the
    write's lock held, so ending the run KILLED failed with "database is locked": the write now completes
    and the interrupt is raised after it."""
    from autoice import interrupts
    from autoice.tracking import store_errors

    done = []
    with pytest.raises(interrupts.Interrupted):
        with store_errors(f"sqlite:///{tmp_path / 'mlflow.db'}"):
            interrupts._handler(signal.SIGTERM, None)  # as if the signal arrived mid-write
            done.append("the rest of the write")
    assert done == ["the rest of the write"]
    with pytest.raises(interrupts.Interrupted):  # a server's requests are not held
        with store_errors("http://127.0.0.1:9"):
            interrupts._handler(signal.SIGTERM, None)
            done.append("never")
    assert done == ["the rest of the write"]


def test_stale_temporaries_of_dead_runs_are_swept(tmp_path, synth_data):
    """`kill -9` leaves temporaries that nothing removed; the next write into the folder does."""
    from autoice import atomic

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    host = atomic._host()
    stale = tmp_path / f".x_inputs.npy.{host}.{int(dead.stdout)}.abcd1234.tmp"
    live = tmp_path / f".y.nc.{host}.{os.getpid()}.abcd1234.tmp"
    foreign = tmp_path / ".z.nc.otherhost.1.abcd1234.tmp"
    foreign_old = tmp_path / ".w.nc.otherhost.2.abcd1234.tmp"
    unrelated = tmp_path / ".notes.tmp"
    for f in (stale, live, foreign, foreign_old, unrelated):
        f.write_bytes(b"x")
    os.utime(foreign_old, (time.time() - 3 * 86400,) * 2)
    with atomic.atomic_output(tmp_path / "out.txt") as tmp:
        tmp.write_text("done")
    left = {p.name for p in tmp_path.iterdir()}
    assert left == {live.name, foreign.name, unrelated.name, "out.txt"}


# ----------------------------------------------------------------------------- full / read-only disks (item 3)
@contextlib.contextmanager
def _tmpfs(path: Path, options: str):
    path.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


@pytest.fixture
def full_disk(tmp_path):
    """A mounted file system with no free byte left."""
    with _tmpfs(tmp_path / "full", "size=2m") as mnt:
        with contextlib.suppress(OSError), open(mnt / "filler", "wb") as fh:
            while True:
                fh.write(b"\0" * 65536)
                fh.flush()
        yield mnt


@pytest.fixture
def read_only(tmp_path):
    with _tmpfs(tmp_path / "ro", "size=1m,ro") as mnt:
        yield mnt


def _output_commands(synth_data: Path, trained: Path, package: Path, out: Path) -> dict[str, list]:
    test = synth_data / "test"
    scene = sorted(test.glob("*_prep.nc"))[0]
    raw = sorted((synth_data / "raw").glob("*.nc"))[0]
    return {
        "synth": ["synth", out / "data", "--train", "1", "--test", "0", "--height", "64", "--width", "64"],
        "prepare": ["prepare", raw, "-o", out / "prep"],
        "train": ["train", *TINY_TRAIN, "--data", synth_data / "train", "--workdir", out / "run"],
        "predict": ["predict", "--model", trained / "checkpoints" / "best.pt", "--data", test, "-o",
                    out / "upload_package.nc", "--quiet"],
        "score": ["score", package, "--reference", test, "--out", out / "scores"],
        "show": ["show", scene, "-o", out / "scene.png"],
        "report": ["report", "--prediction", package, "--reference", test, "-o", out / "report.html"],
        "predict-uncertainty": ["predict", "--model", trained / "checkpoints" / "best.pt", "--data", test, "-o",
                                package.parent / "u2.nc", "--uncertainty", out / "unc", "--quiet"],
    }  # fmt: skip


@pytest.fixture(scope="module")
def package(synth_data, trained_run, tmp_path_factory):
    from autoice.predict import predict

    out = tmp_path_factory.mktemp("pkg") / "upload_package.nc"
    predict(str(trained_run / "checkpoints" / "best.pt"), synth_data / "test", out, progress=False)
    return out


@pytest.mark.parametrize("command", ["synth", "prepare", "train", "predict", "score", "show", "report",
                                     "predict-uncertainty"])  # fmt: skip
def test_full_disk_is_one_output_error(full_disk, synth_data, trained_run, package, command, capsys):
    """HDF errors, Errno 28 tracebacks, SIGBUS in train; now `<output>: ... no space left` / not enough space."""
    code, err = _cli(_output_commands(synth_data, trained_run, package, full_disk)[command], capsys)
    line = _one_error(err)
    assert code == 1 and ("no space left" in line or "not enough free space" in line), line
    assert str(full_disk) in line
    assert _temporaries(full_disk) == []


@pytest.mark.parametrize("command", ["synth", "prepare", "train", "predict", "score", "show", "report",
                                     "predict-uncertainty"])  # fmt: skip
def test_read_only_output_is_one_output_error(read_only, synth_data, trained_run, package, command, capsys):
    """`OSError [Errno 30]` tracebacks in 8 of 8 commands."""
    code, err = _cli(_output_commands(synth_data, trained_run, package, read_only)[command], capsys)
    line = _one_error(err)
    assert code == 1 and "read-only file system" in line and str(read_only) in line, line


def test_injected_enospc_and_hdf_errors_on_a_full_disk_are_output_errors(tmp_path, monkeypatch):
    """Without a mount: ENOSPC raised while writing, or an HDF error when the disk is nearly full."""
    from autoice import atomic
    from autoice.errors import OutputError

    with pytest.raises(OutputError, match="no space left on the device"):
        with atomic.atomic_output(tmp_path / "a.nc"):
            raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(atomic, "free_bytes", lambda folder: 1024)
    with pytest.raises(OutputError, match="no space left on the device"):
        with atomic.atomic_output(tmp_path / "b.nc"):
            raise RuntimeError("NetCDF: HDF error")
    monkeypatch.setattr(atomic, "free_bytes", lambda folder: 10 << 30)
    with pytest.raises(RuntimeError, match="HDF error"):  # plenty of room: not blamed on the disk
        with atomic.atomic_output(tmp_path / "c.nc"):
            raise RuntimeError("NetCDF: HDF error")
    assert _temporaries(tmp_path) == [] and list(tmp_path.iterdir()) == []


def test_training_refuses_a_disk_too_small_for_its_cache(synth_data, tmp_path, monkeypatch, capsys):
    """The cache knows its size: refuse up front instead of dying of SIGBUS in the memory map."""
    from autoice import atomic

    real = shutil.disk_usage
    monkeypatch.setattr(atomic.shutil, "disk_usage",
                        lambda p: real(p)._replace(free=10_000) if "cache" in str(p) else real(p))  # fmt: skip
    code, err = _cli(["train", *TINY_TRAIN, "--data", synth_data / "train", "--workdir", tmp_path / "run"], capsys)
    line = _one_error(err)
    assert code == 1 and "not enough free space for the cache entry of" in line and "cache" in line, line


# ----------------------------------------------------------------------------- concurrency (item 6)
def test_two_trainings_in_one_workdir(synth_data, tmp_path):
    """Both died with alembic tracebacks (fresh workdir), or mixed their files; now the second is refused."""
    work = tmp_path / "run"
    first = _spawn(["train", *TINY_TRAIN, "--set", "train.epochs=6", "--data", synth_data / "train",
                    "--workdir", work], tmp_path)  # fmt: skip
    lock = work / ".autoice.lock"
    deadline = time.monotonic() + 60
    while not (lock.exists() and lock.stat().st_size) and time.monotonic() < deadline:
        time.sleep(0.02)
    second = _spawn(["train", *TINY_TRAIN, "--data", synth_data / "train", "--workdir", work], tmp_path)
    _, err2 = second.communicate(timeout=120)
    _, err1 = first.communicate(timeout=300)
    assert first.returncode == 0, err1
    assert second.returncode == 1, err2
    line = _one_error(err2)
    assert f"{work}: in use by `autoice train` (pid {first.pid}" in line, line
    # the store is whole: a later resume continues the first run
    third = _spawn(["train", "--resume", "--set", "train.epochs=7", "--data", synth_data / "train",
                    "--workdir", work], tmp_path)  # fmt: skip
    _, err3 = third.communicate(timeout=300)
    assert third.returncode == 0, err3


def test_a_lock_dies_with_its_holder(tmp_path):
    """`kill -9` of the holder frees the workdir at once (flock), no stale lock to delete by hand."""
    from autoice.locks import FolderBusy, hold

    code = f"from autoice.locks import hold\nwith hold({str(tmp_path)!r}, 'holder'):\n print('held', flush=True)\n" \
           " import time; time.sleep(60)"
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=ENV)
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(FolderBusy, match=rf"in use by `holder` \(pid {holder.pid} on "):
        with hold(tmp_path, "me"):
            pass
    holder.kill()
    holder.wait(timeout=10)
    with hold(tmp_path, "me"):
        info = json.loads((tmp_path / ".autoice.lock").read_text())
    assert info["command"] == "me" and info["pid"] == os.getpid()


def test_concurrent_runs_sharing_one_new_store(synth_data, tmp_path):
    """Two runs creating one sqlite store at once left it broken for every later run."""
    env = {**ENV, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'shared' / 'mlflow.db'}"}
    (tmp_path / "shared").mkdir()
    procs = [subprocess.Popen([sys.executable, "-m", "autoice", "train", *TINY_TRAIN, "--data",
                               str(synth_data / "train"), "--workdir", str(tmp_path / f"run{i}")], env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for i in range(2)]  # fmt: skip
    errs = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errs
    from mlflow.tracking import MlflowClient

    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    exp = client.get_experiment_by_name("autoice")
    assert len(client.search_runs([exp.experiment_id])) == 2


# ----------------------------------------------------------------------------- paths and settings (items 8, 11, 14)
def test_path_and_setting_mistakes_are_one_line(synth_data, trained_run, tmp_path, capsys):
    best = trained_run / "checkpoints" / "best.pt"
    raw = sorted((synth_data / "raw").glob("*.nc"))[0]
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_bytes(b"\xff\xfe\x00 not text")
    cases = {
        "a file is in the way": ["predict", "--model", best, "--data", synth_data / "test", "-o", blocker / "u.nc"],
        "is a raw scene, expected test, train; make its 80 m scene with `autoice prepare` first":
            ["predict", "--model", best, "--data", raw, "-o", tmp_path / "u.nc"],
        "device 'bogus': must be auto, cpu, cuda or cuda:N":
            ["predict", "--model", best, "--data", synth_data / "test", "-o", tmp_path / "u.nc", "--device", "bogus"],
        "not a YAML text file (not UTF-8 at byte 0)":
            ["train", "--config", bad_yaml, "--data", synth_data / "train", "--workdir", tmp_path / "w1"],
        "GiB per training step": ["train", *TINY_TRAIN, "--set", "data.patch_size=8192", "--set",
                                  "train.batch_size=64", "--data", synth_data / "train", "--workdir", tmp_path / "w2"],
    }  # fmt: skip
    for expected, args in cases.items():
        code, err = _cli(args, capsys)
        line = _one_error(err)
        assert code == 1 and expected in line, (args, line)
        assert "PosixPath" not in line
    assert not (tmp_path / "w2" / "cache").exists()  # refused before the cache was built


def test_error_naming_several_paths_lists_them_plainly(tmp_path, capsys):
    empty1, empty2 = tmp_path / "a", tmp_path / "b"
    empty1.mkdir()
    empty2.mkdir()
    code, err = _cli(["train", "--preset", "demo", "--data", empty1, "--data", empty2, "--workdir", tmp_path / "w"],
                     capsys)  # fmt: skip
    line = _one_error(err)
    assert code == 1 and f"{empty1}, {empty2}: no ready-to-train scenes" in line, line


def test_bad_polygon_codes_are_named_once(synth_data, tmp_path, capsys):
    import xarray as xr

    from autoice.scenes import write_netcdf

    raw = sorted((synth_data / "raw").glob("*.nc"))[0]
    with xr.open_dataset(raw) as ds:
        ds = ds.load()
    codes = ds["polygon_codes"].values.copy()
    codes[1] = "not;enough"
    ds["polygon_codes"] = (ds["polygon_codes"].dims, codes)
    bad = tmp_path / "in" / raw.name
    write_netcdf(ds, bad)
    code, err = _cli(["prepare", bad, "-o", tmp_path / "out"], capsys)
    assert code == 1 and err.count("polygon_codes:") == 1, err


def test_interrupted_score_out_never_looks_complete(synth_data, package, tmp_path, monkeypatch, capsys):
    """scores.json was written first, so a Ctrl-C left it without its PNGs; now it is written last."""
    from autoice import plots

    out = tmp_path / "scores"
    assert _cli(["score", package, "--reference", synth_data / "test", "--out", out], capsys)[0] == 0
    calls = []

    def interrupted(fig, path, **kw):
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(fig, path, **kw)

    real = plots.save_figure
    monkeypatch.setattr(plots, "save_figure", interrupted)
    code, err = _cli(["score", package, "--reference", synth_data / "test", "--out", out], capsys)
    assert code == 130 and "interrupted" in err
    assert not (out / "scores.json").exists() and _temporaries(out) == []
