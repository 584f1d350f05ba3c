"""Issue 13: multi-scene commands on a Dask cluster (``--scheduler``) give what a local run gives.

A real cluster on 127.0.0.1 (a scheduler and two worker processes, one thread each) runs prepare,
predict, score and validate; the outputs must equal a local run's. A worker killed mid-write, a
scheduler that refuses connections and a cluster that loses every worker are handled in one line
or not at all, with no temporary file left behind.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import threading
import time
from pathlib import Path

import distributed.diagnostics.plugin
import netCDF4  # imported before any capsys: its log handlers must not bind to a captured stream
import numpy as np
import pytest
import xarray as xr

from autoice import batch, schema
from autoice.atomic import _TMP
from autoice.cli.main import main
from autoice.prepare import prepare_files
from autoice.submission import scene_shapes, write_submission


def _cluster(n_workers: int) -> distributed.LocalCluster:
    return distributed.LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                                    dashboard_address=":0", silence_logs=logging.CRITICAL)  # fmt: skip


class _Finished(distributed.diagnostics.plugin.SchedulerPlugin):
    """The keys of the tasks the scheduler saw finish or fail."""

    def __init__(self) -> None:
        self.keys: set[str] = set()

    def transition(self, key, start, finish, *args, **kwargs) -> None:
        if finish in ("memory", "erred"):
            self.keys.add(str(key))


@pytest.fixture(scope="module")
def cluster():
    with _cluster(2) as c:
        c.finished = _Finished()
        c.scheduler.add_plugin(c.finished, name="finished")
        yield c


def _cli(args, capsys):
    """Run ``autoice ARGS``: (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as exit_:
        main([str(a) for a in args])
    out = capsys.readouterr()
    return exit_.value.code, out.out, out.err


def _tasks_run(cluster: distributed.LocalCluster, prefix: str) -> int:
    """Tasks whose key starts with ``autoice-<prefix>`` that the scheduler has seen finish (or fail)."""
    return sum(key.startswith(f"autoice-{prefix}-") for key in cluster.finished.keys)


def _assert_same_files(a: Path, b: Path, pattern: str = "*.nc", rtol: float = 0.0) -> list[str]:
    """Same files in both folders; ``rtol`` > 0 allows float noise (torch sums in another thread order)."""
    names = sorted(p.name for p in a.glob(pattern))
    assert names and names == sorted(p.name for p in b.glob(pattern))
    for name in names:
        with xr.open_dataset(a / name, decode_cf=False) as x, xr.open_dataset(b / name, decode_cf=False) as y:
            x.attrs.pop("date_created", None), y.attrs.pop("date_created", None)  # provenance: when made
            if rtol:
                assert x.attrs == y.attrs
                xr.testing.assert_allclose(x.load(), y.load(), rtol=rtol)
            else:
                xr.testing.assert_identical(x.load(), y.load())
    return names


def _leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob(".*") if p.name.endswith((".tmp", ".parts"))]


# ----------------------------------------------------------------------------- same results as a local run
def test_prepare_on_a_cluster_equals_a_local_run(cluster, synth_data, tmp_path, capsys):
    raw = synth_data / "raw"
    prepare_files(raw, tmp_path / "local", progress=False)
    before = _tasks_run(cluster, "prepare")
    code, out, err = _cli(["prepare", raw, "-o", tmp_path / "dask", "--quiet", "--scheduler",
                           cluster.scheduler_address], capsys)  # fmt: skip
    assert code == 0, err
    names = _assert_same_files(tmp_path / "local", tmp_path / "dask")
    assert f"prepared {len(names)} scene(s)" in out
    assert _tasks_run(cluster, "prepare") - before == len(names)  # every scene was a task on the cluster
    assert not _leftovers(tmp_path)


def test_the_scheduler_comes_from_dask_scheduler_address(cluster, synth_data, tmp_path, capsys, monkeypatch):
    raw = sorted((synth_data / "raw").glob("*.nc"))[:2]
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", cluster.scheduler_address)
    before = _tasks_run(cluster, "prepare")
    code, _, err = _cli(["prepare", *raw, "-o", tmp_path, "--quiet"], capsys)
    assert code == 0, err
    assert _tasks_run(cluster, "prepare") - before == 2


@pytest.fixture(scope="module")
def submission(synth_data, tmp_path_factory):
    """A random upload package for the synthetic test scenes, with one SOD value out of its classes."""
    rng = np.random.default_rng(3)
    shapes = scene_shapes(synth_data / "test")
    preds = {k: {c: rng.integers(0, schema.N_CLASSES[c], s).astype(np.uint8) for c in schema.CHARTS}
             for k, s in shapes.items()}  # fmt: skip
    good = write_submission(preds, tmp_path_factory.mktemp("sub") / "upload_package.nc")
    bad = Path(shutil.copy(good, good.parent / "bad.nc"))
    with netCDF4.Dataset(bad, "a") as nc:
        nc.variables[schema.submission_variable(sorted(preds)[-1], "SOD")][0, 0] = 9
    return good, bad


def test_score_on_a_cluster_equals_a_local_run(cluster, synth_data, submission, capsys):
    good, _ = submission
    args = ["score", good, "--reference", synth_data / "test", "--json", "--per-scene", "--by", "service"]
    code, local, err = _cli(args, capsys)
    assert code == 0, err
    before = _tasks_run(cluster, "scoring")
    code, remote, err = _cli([*args, "--scheduler", cluster.scheduler_address], capsys)
    assert code == 0, err
    assert remote == local and '"combined"' in local
    assert _tasks_run(cluster, "scoring") - before == len(scene_shapes(synth_data / "test"))


def test_validate_on_a_cluster_equals_a_local_run(cluster, synth_data, submission, capsys):
    _, bad = submission
    args = ["validate", bad, "--data", synth_data / "test"]
    code, local, _ = _cli(args, capsys)
    assert code == 1 and "pixels outside the SOD classes" in local
    code, remote, err = _cli([*args, "--scheduler", cluster.scheduler_address], capsys)
    assert code == 1 and remote == local
    assert err.strip().splitlines()[-1].startswith(f"autoice: error: {bad}: 1 problem found")


@pytest.fixture(scope="module")
def local_prediction(synth_data, trained_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("local")
    code = _run_predict(trained_run, synth_data / "test", out)
    assert code == 0
    return out


def _run_predict(run: Path, data: Path, out: Path, *extra: str) -> int:
    try:
        main(["predict", "--quiet", "--model", str(run), "--data", str(data), "-o", str(out / "upload_package.nc"),
              "--uncertainty", str(out / "unc"), "--device", "cpu", *extra])  # fmt: skip
    except SystemExit as exc:
        return exc.code
    return 0


def test_predict_on_a_cluster_equals_a_local_run(cluster, synth_data, trained_run, local_prediction, tmp_path):
    before = _tasks_run(cluster, "predict")
    assert _run_predict(trained_run, synth_data / "test", tmp_path, "--scheduler", cluster.scheduler_address) == 0
    _assert_same_files(local_prediction, tmp_path, "upload_package.nc")
    assert _assert_same_files(local_prediction / "unc", tmp_path / "unc", rtol=1e-4)  # float32 entropy maps
    assert _tasks_run(cluster, "predict") - before == len(list((synth_data / "test").glob("*_prep.nc")))
    assert not _leftovers(tmp_path)


def test_predict_with_local_worker_processes_equals_a_serial_run(synth_data, trained_run, local_prediction, tmp_path):
    assert _run_predict(trained_run, synth_data / "test", tmp_path, "--workers", "2") == 0
    _assert_same_files(local_prediction, tmp_path, "upload_package.nc")
    assert not _leftovers(tmp_path)


def test_a_bad_scene_on_a_cluster_is_named_and_the_others_finish(cluster, synth_data, tmp_path, capsys):
    raw = tmp_path / "raw"
    shutil.copytree(synth_data / "raw", raw)
    files = sorted(raw.glob("*.nc"))
    os.truncate(files[1], files[1].stat().st_size // 2)
    code, _, err = _cli(["prepare", raw, "-o", tmp_path / "out", "--quiet", "--scheduler",
                         cluster.scheduler_address], capsys)  # fmt: skip
    assert code == 1 and "Traceback" not in err
    lines = err.strip().splitlines()
    assert [x for x in lines if x.startswith("autoice: failed:")] == [x for x in lines if str(files[1]) in x]
    assert len([x for x in lines if x.startswith("autoice: failed:")]) == 1
    assert lines[-1] == f"autoice: error: 1 of {len(files)} scenes failed: {files[1].name}"
    assert len(list((tmp_path / "out").glob("*_prep.nc"))) == len(files) - 1


def test_synth_and_the_training_cache_on_a_cluster_equal_a_local_run(cluster, tmp_path, capsys):
    from autoice.config import DataConfig
    from autoice.data.cache import build_cache
    from autoice.synth import synthesize

    synthesize(tmp_path / "local", n_train=2, n_test=1, height=48, width=64, seed=4, progress=False)
    before = _tasks_run(cluster, "synth")
    code, _, err = _cli(["synth", tmp_path / "dask", "--train", "2", "--test", "1", "--height", "48", "--width", "64",
                         "--seed", "4", "--quiet", "--scheduler", cluster.scheduler_address], capsys)  # fmt: skip
    assert code == 0, err
    assert _tasks_run(cluster, "synth") - before == 3
    for folder in ("raw", "train", "test"):
        _assert_same_files(tmp_path / "local" / folder, tmp_path / "dask" / folder)
    scenes = sorted((tmp_path / "local" / "train").glob("*_prep.nc"))
    cfg = DataConfig(inputs=["nersc_sar_primary", "nersc_sar_secondary", "month"], downscale=2)
    local = build_cache(scenes, cfg, tmp_path / "cache_local", progress=False)
    before = _tasks_run(cluster, "caching-scenes")
    remote = build_cache(scenes, cfg, tmp_path / "cache_dask", progress=False, scheduler=cluster.scheduler_address)
    assert _tasks_run(cluster, "caching-scenes") - before == 2
    for a, b in zip(local, remote, strict=True):
        assert a.key == b.key and a.valid == b.valid
        np.testing.assert_array_equal(a.inputs, b.inputs)
        np.testing.assert_array_equal(a.labels, b.labels)
    assert not _leftovers(tmp_path)


def _assert_same_rasters(a: Path, b: Path) -> list[str]:
    """Same GeoTIFFs in both folders: profile, tags, colour table and pixels."""
    import rasterio

    names = sorted(p.name for p in a.glob("*.tif"))
    assert names and names == sorted(p.name for p in b.glob("*.tif"))
    for name in names:
        with rasterio.open(a / name) as x, rasterio.open(b / name) as y:
            assert x.profile == y.profile and x.tags() == y.tags() and x.tags(1) == y.tags(1)
            assert x.colormap(1) == y.colormap(1)
            np.testing.assert_array_equal(x.read(), y.read())
    return names


def test_export_and_mosaic_on_a_cluster_equal_a_local_run(cluster, synth_data, submission, tmp_path, capsys):
    good, _ = submission
    n = len(scene_shapes(synth_data / "test"))
    src = [good, "--data", synth_data / "test", "--resolution", "3000", "--quiet"]
    code, _, err = _cli(["export", *src, "-o", tmp_path / "local"], capsys)
    assert code == 0, err
    before = _tasks_run(cluster, "export")
    code, out, err = _cli(["export", *src, "-o", tmp_path / "dask", "--scheduler", cluster.scheduler_address], capsys)
    assert code == 0, err
    assert len(_assert_same_rasters(tmp_path / "local", tmp_path / "dask")) == 3 * n
    assert f"for {n} scenes" in out and _tasks_run(cluster, "export") - before == n
    # mosaic: workers send back the scenes' tiles at the mosaic's resolution, the client pastes them
    code, _, err = _cli(["mosaic", *src, "-o", tmp_path / "mosaic_local" / "m.tif"], capsys)
    assert code == 0, err
    before = {p: _tasks_run(cluster, p) for p in ("footprints", "mosaic")}
    code, out, err = _cli(["mosaic", *src, "-o", tmp_path / "mosaic_dask" / "m.tif", "--scheduler",
                           cluster.scheduler_address], capsys)  # fmt: skip
    assert code == 0, err
    assert _assert_same_rasters(tmp_path / "mosaic_local", tmp_path / "mosaic_dask") == [
        "m_FLOE.tif", "m_SIC.tif", "m_SOD.tif"]
    assert (tmp_path / "mosaic_dask" / "m.png").stat().st_size > 0 and f"mosaic of {n} scenes" in out
    assert {p: _tasks_run(cluster, p) - before[p] for p in before} == {"footprints": n, "mosaic": n}
    assert not _leftovers(tmp_path)


# ----------------------------------------------------------------------------- workers that die
class _Watch(threading.Thread):
    """Call ``act(pid)`` once, as soon as a worker's temporary output file appears in ``folder``."""

    def __init__(self, folder: Path, act) -> None:
        super().__init__(daemon=True)
        self.folder, self.act, self.pid = folder, act, None
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                names = os.listdir(self.folder)
            except OSError:
                names = []
            for name in names:
                m = _TMP.match(name)
                if m and int(m["pid"]) != os.getpid():
                    self.pid = int(m["pid"])
                    self.act(self.pid)
                    return
            time.sleep(0.0005)


def test_a_worker_killed_mid_write_loses_nothing_and_leaves_nothing(synth_data, tmp_path):
    raw = synth_data / "raw"
    # row-by-row writing keeps each scene's temporary file open long enough to kill its writer in the middle
    prepare_files(raw, tmp_path / "local", progress=False, block_lines=2)
    out = tmp_path / "dask"
    out.mkdir()
    with _cluster(2) as c:
        pids = {ws.pid for ws in c.scheduler.workers.values()}
        watch = _Watch(out, lambda pid: os.kill(pid, signal.SIGKILL))
        watch.start()
        try:
            results = prepare_files(raw, out, progress=False, block_lines=2, scheduler=c.scheduler_address)
        finally:
            watch.stop.set()
            watch.join()
    assert watch.pid in pids  # a worker process died in the middle of writing a scene
    assert len(results) == len(list(raw.glob("*.nc")))
    _assert_same_files(tmp_path / "local", out)
    assert not _leftovers(out)


def test_a_cluster_that_loses_all_workers_is_one_line(synth_data, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(batch, "NO_WORKERS_TIMEOUT_S", 3.0)
    out = tmp_path / "out"
    out.mkdir()
    with _cluster(1) as c:
        watch = _Watch(out, lambda pid: c.scale(0))
        watch.start()
        start = time.monotonic()
        try:
            with pytest.raises(SystemExit) as exit_:
                main(["prepare", str(synth_data / "raw"), "-o", str(out), "--quiet", "--scheduler",
                      c.scheduler_address])  # fmt: skip
        finally:
            watch.stop.set()
            watch.join()
        took = time.monotonic() - start
    err = capsys.readouterr().err
    assert watch.pid is not None and exit_.value.code == 1
    assert err.strip().splitlines() == [f"autoice: error: {c.scheduler_address}: the Dask cluster lost all its "
                                        "workers; nothing ran for 3 s, scenes not done were dropped"]  # fmt: skip
    assert took < 30
    assert not _leftovers(out)


@pytest.mark.parametrize("how", ["option", "environment"])
def test_a_scheduler_that_refuses_connections_is_one_line(synth_data, tmp_path, capsys, monkeypatch, how):
    monkeypatch.setattr(batch, "CONNECT_TIMEOUT_S", 2.0)
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{s.getsockname()[1]}"
    args = ["prepare", synth_data / "raw", "-o", tmp_path / "out", "--quiet"]
    if how == "option":
        args += ["--scheduler", address]
    else:
        monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", address)
    start = time.monotonic()
    code, _, err = _cli(args, capsys)
    assert time.monotonic() - start < 10
    assert code == 1
    assert err.strip().splitlines() == [f"autoice: error: {address}: cannot reach the Dask scheduler within 2 s "
                                        "([Errno 111] Connection refused); is `dask scheduler` running there?"]


@pytest.mark.parametrize("address", ["nonsense", "tcp://127.0.0.1:port", "foo://host:1", "inproc://x",
                                     "tcp://127.0.0.1:99999"])
def test_a_malformed_scheduler_address_is_one_line(synth_data, tmp_path, capsys, address):
    code, _, err = _cli(["prepare", synth_data / "raw", "-o", tmp_path, "--scheduler", address], capsys)
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"autoice: error: {address}: not a Dask scheduler address")


def _dies_on_one(i: int) -> int:
    if i == 1:
        os._exit(1)  # as a crash in a library or the out-of-memory killer would
    return i * 10


def test_a_scene_that_kills_every_worker_it_meets_is_a_bad_scene(monkeypatch):
    import sys

    import cloudpickle
    import dask

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import this test module
    try:
        with dask.config.set({"distributed.scheduler.allowed-failures": 1}), _cluster(2) as c:
            done = batch.run_each(_dies_on_one, [(0,), (1,), (2,)], ["a.nc", "b.nc", "c.nc"], progress=False,
                                  scheduler=c.scheduler_address)  # fmt: skip
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    assert done.results == {0: 0, 2: 20}
    assert list(done.failures) == [1] and str(done.failures[1]) == f"b.nc: {batch.WORKER_DIED}"
