"""Issue 15: MLflow the way its users expect it (store rule, fluent tracking, env vars, status, inputs, provenance).

The last tests run the commands against a real ``mlflow server`` on 127.0.0.1, started here and stopped
by its pid.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from autoice.cli.main import main
from autoice.config import load_config
from autoice.errors import AutoiceError
from autoice.train import train
from processes import stop_group

SRC = Path(__file__).resolve().parents[1] / "src"
TINY = ["train.epochs=1", "train.batches_per_epoch=2", "train.batch_size=4", "data.patch_size=32",
        "model.filters=[8, 8, 16]", "data.downscale=2"]  # fmt: skip
TINY_SET = [a for s in TINY for a in ("--set", s)]


def _cfg(*extra: str):
    return load_config("demo", overrides=[*TINY, *extra])


@pytest.fixture
def clean_env(monkeypatch):
    """No MLflow variable of the developer's shell leaks into a test."""
    for k in list(os.environ):
        if k.startswith("MLFLOW_"):
            monkeypatch.delenv(k)
    return monkeypatch


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(SRC), **extra)
    return env


def _autoice(*args: str, env: dict[str, str], cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "autoice", *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)  # fmt: skip


# --- 1. commands that read models find the store --------------------------------------------------


def test_model_store_rule(clean_env, tmp_path, trained_run):
    from autoice.tracking import model_store_uri

    assert model_store_uri("http://h:5000", ["models:/a@b"]) == "http://h:5000"
    clean_env.setenv("MLFLOW_TRACKING_URI", "sqlite:///x.db")
    assert model_store_uri(None, ["models:/a@b"]) is None  # MLflow reads the variable itself
    clean_env.delenv("MLFLOW_TRACKING_URI")
    assert model_store_uri(None, [str(trained_run), "models:/a@b"]) == f"sqlite:///{trained_run.resolve()}/mlflow.db"
    assert model_store_uri(None, [str(trained_run / "checkpoints" / "best.pt")]) is None
    with pytest.raises(AutoiceError, match="pass --tracking-uri"):
        model_store_uri(None, ["models:/autoice@champion"])


@pytest.fixture(scope="module")
def registered(synth_data, tmp_path_factory):
    """A workdir whose run registered its model as 'autoice' (store: WORKDIR/mlflow.db)."""
    work = tmp_path_factory.mktemp("registered")
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("MLFLOW_")}
    try:
        result = train(_cfg(), synth_data / "train", work, progress=False, register="autoice")
    finally:
        os.environ.update(saved)
    return work, result


def test_predict_by_registered_name_with_tracking_uri(clean_env, registered, synth_data, tmp_path, capsys):
    work, result = registered
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    clean_env.chdir(cwd)
    out = tmp_path / "upload_package.nc"
    with pytest.raises(SystemExit) as e:
        main(["predict", "--model", "models:/autoice@champion", "--tracking-uri", f"sqlite:///{work}/mlflow.db",
              "--data", str(synth_data / "test"), "-o", str(out), "--quiet"])  # fmt: skip
    assert e.value.code == 0, capsys.readouterr().err
    assert out.is_file() and list(cwd.iterdir()) == []  # nothing created in the current folder
    # provenance: the registered version and the run that logged it; still a valid submission
    from autoice.submission import read_provenance, validate_submission

    attrs = read_provenance(out)
    assert attrs["autoice_model"] == "models:/autoice@champion"
    assert attrs["autoice_model_version"] == "1" and attrs["autoice_run_id"] == result.run_id
    assert attrs["source"].startswith("autoice ") and attrs["date_created"].endswith("Z")
    assert len(attrs["autoice_scenes"].split(", ")) == 2
    from autoice.scenes import find_scenes

    shapes = {}
    import netCDF4

    for f in find_scenes(synth_data / "test"):
        if f.name.endswith("_prep.nc"):
            with netCDF4.Dataset(f) as nc:
                shapes[f.name[:19]] = (nc.dimensions["sar_lines"].size, nc.dimensions["sar_samples"].size)
    assert validate_submission(out, shapes) == []
    # the report says which model, version and run made the predictions
    page = tmp_path / "report.html"
    with pytest.raises(SystemExit) as e:
        main(["report", "--prediction", str(out), "--reference", str(synth_data / "test"), "-o", str(page)])
    assert e.value.code == 0, capsys.readouterr().err
    html = page.read_text()
    assert "<h2>Provenance</h2>" in html and result.run_id in html and "models:/autoice@champion" in html


def test_predict_without_a_store_is_one_line_and_creates_nothing(clean_env, synth_data, tmp_path, capsys):
    clean_env.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        main(["predict", "--model", "models:/autoice@champion", "--data", str(synth_data / "test"), "-o", "x.nc"])
    err = capsys.readouterr().err
    assert e.value.code == 1 and err.count("\n") == 1 and "pass --tracking-uri" in err
    assert list(tmp_path.iterdir()) == []


def test_serve_takes_tracking_uri_and_the_same_rule(clean_env, tmp_path, capsys):
    clean_env.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        main(["serve", "-m", "models:/autoice@champion", "--port", "1"])
    err = capsys.readouterr().err
    assert e.value.code == 1 and err.count("\n") == 1 and "pass --tracking-uri" in err
    missing = tmp_path / "w" / "mlflow.db"
    with pytest.raises(SystemExit) as e:
        main(["serve", "-m", "models:/autoice@champion", "--tracking-uri", f"sqlite:///{missing}",
              "--port", str(_free_port())])  # fmt: skip
    err = capsys.readouterr().err
    assert e.value.code == 1 and err.count("\n") == 1 and f"no such file {missing}" in err
    assert list(tmp_path.iterdir()) == []


# --- 2. the fluent API and its variables ----------------------------------------------------------


def test_run_follows_mlflow_conventions(clean_env, synth_data, tmp_path):
    import mlflow
    from mlflow import MlflowClient

    clean_env.chdir(tmp_path)  # not a git checkout: the commit must still be autoice's own
    clean_env.setenv("MLFLOW_EXPERIMENT_NAME", "sea-ice-exp")
    result = train(_cfg(), synth_data / "train", tmp_path / "run", progress=False)
    client = MlflowClient(f"sqlite:///{tmp_path / 'run' / 'mlflow.db'}")
    run = client.get_run(result.run_id)
    assert client.get_experiment(run.info.experiment_id).name == "sea-ice-exp"
    expected = subprocess.run(["git", "-C", str(SRC / "autoice"), "rev-parse", "HEAD"], capture_output=True,
                              text=True).stdout.strip()  # fmt: skip
    assert run.data.tags["mlflow.source.git.commit"] == expected and len(expected) == 40
    assert {"mlflow.user", "mlflow.source.name", "mlflow.source.type", "mlflow.runName"} <= set(run.data.tags)
    # the scenes are the run's inputs, by context, with the data folder as source
    inputs = {i.tags[0].value: i.dataset for i in run.inputs.dataset_inputs}
    assert set(inputs) == {"training", "validation"}
    assert str((synth_data / "train").resolve()) in inputs["training"].source
    assert inputs["training"].digest != inputs["validation"].digest
    # MLflow's global state is as it was
    assert mlflow.active_run() is None and "MLFLOW_TRACKING_URI" not in os.environ
    assert "MLFLOW_REGISTRY_URI" not in os.environ


def test_git_commit_of_a_folder_outside_a_checkout_is_unknown(tmp_path):
    from autoice.tracking import git_commit

    assert git_commit(tmp_path) == "unknown"


def test_mlflow_run_id_is_the_run_logged_into(clean_env, synth_data, tmp_path):
    from mlflow import MlflowClient

    store = f"sqlite:///{tmp_path / 'run' / 'mlflow.db'}"
    clean_env.setenv("MLFLOW_TRACKING_URI", store)
    (tmp_path / "run").mkdir()
    client = MlflowClient(store)
    outer = client.create_run(client.create_experiment("outer")).info.run_id
    clean_env.setenv("MLFLOW_RUN_ID", outer)
    result = train(_cfg(), synth_data / "train", tmp_path / "run", progress=False)
    assert result.run_id == outer
    run = client.get_run(outer)
    assert run.info.status == "FINISHED" and run.data.params["train.batch_size"] == "4"
    assert run.data.tags["dataset_fingerprint"] and len(run.inputs.dataset_inputs) == 2  # the run is new to autoice


def test_a_failing_run_ends_failed(clean_env, synth_data, tmp_path):
    from mlflow import MlflowClient

    with pytest.raises(AutoiceError, match="non-finite loss"):
        train(_cfg("train.lr=1e30"), synth_data / "train", tmp_path / "run", progress=False)
    runs = MlflowClient(f"sqlite:///{tmp_path / 'run' / 'mlflow.db'}").search_runs(["1"])
    assert [r.info.status for r in runs] == ["FAILED"]


# --- 3. SIGTERM ends the run KILLED ---------------------------------------------------------------


def test_sigterm_after_the_first_checkpoint_ends_the_run_killed(synth_data, tmp_path):
    from mlflow import MlflowClient

    work = tmp_path / "run"
    args = ["train", "--preset", "demo", "--data", str(synth_data / "train"), "--workdir", str(work), "--quiet",
            *[a for s in TINY if not s.startswith("train.epochs") for a in ("--set", s)],
            "--set", "train.epochs=200"]  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-m", "autoice", *args], env=_env(), cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 240
    while not (work / "checkpoints" / "last.pt").exists():
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "no checkpoint in 240 s"
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-3000:]
    runs = MlflowClient(f"sqlite:///{work / 'mlflow.db'}").search_runs(["1"])
    assert [r.info.status for r in runs] == ["KILLED"]
    assert "Traceback" not in err


# --- against a real MLflow server -----------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """``mlflow server`` on 127.0.0.1 with its own sqlite store and proxied artifacts; stopped by pid."""
    root = tmp_path_factory.mktemp("server")
    port = _free_port()
    cmd = [str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
           "--backend-store-uri", f"sqlite:///{root / 's.db'}", "--artifacts-destination", str(root / "art"),
           "--workers", "1"]  # fmt: skip
    log = (root / "server.log").open("w")
    proc = subprocess.Popen(cmd, env=_env(), cwd=root, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, (root / "server.log").read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "mlflow server did not answer /health in 120 s"
            time.sleep(0.5)
        yield url
    finally:
        stop_group(proc, timeout=30)  # its own session: the server and its workers, by its pid
        log.close()


def test_train_register_predict_through_a_server(server, synth_data, tmp_path):
    from mlflow import MlflowClient

    env = _env(MLFLOW_TRACKING_URI=server, MLFLOW_EXPERIMENT_NAME="served-exp",
               MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING="true", MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL="0.2",
               MLFLOW_SYSTEM_METRICS_SAMPLES_BEFORE_LOGGING="1")  # fmt: skip
    work = tmp_path / "run"
    p = _autoice("train", "--preset", "demo", "--data", str(synth_data / "train"), "--workdir", str(work),
                 "--register", "autoice", "--quiet", *TINY_SET, env=env, cwd=tmp_path)  # fmt: skip
    assert p.returncode == 0, p.stderr[-3000:]
    assert "View run" not in p.stdout and "mlflow ui" not in p.stdout  # stdout: the command's own lines
    assert "Downloading artifacts" not in p.stderr  # --quiet
    client = MlflowClient(tracking_uri=server)
    exp = client.get_experiment_by_name("served-exp")
    (run,) = client.search_runs([exp.experiment_id])
    assert f"{server}/#/experiments/{exp.experiment_id}/runs/{run.info.run_id}" in p.stdout
    assert run.info.status == "FINISHED"
    assert any(k.startswith("system/") for k in run.data.metrics), sorted(run.data.metrics)
    assert not (work / "mlflow.db").exists()  # the server's store, not the workdir's
    # predict by the registered name; MLflow's download goes into a folder that is removed
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    out = tmp_path / "upload_package.nc"
    p = _autoice("predict", "--model", "models:/autoice@champion", "--tracking-uri", server, "--data",
                 str(synth_data / "test"), "-o", str(out), "--quiet", env={**_env(), "TMPDIR": str(tmp)},
                 cwd=tmp_path)  # fmt: skip
    assert p.returncode == 0, p.stderr[-3000:]
    assert out.is_file() and list(tmp.iterdir()) == []
    assert "Downloading artifacts" not in p.stderr  # --quiet: no progress bars, MLflow's neither
    # evaluate the champion through the server: a run there with the challenge score and the matrices
    p = _autoice("evaluate", "models:/autoice@champion", "--tracking-uri", server, "--data", str(synth_data / "test"),
                 "--json", "--quiet", env={**_env(), "TMPDIR": str(tmp)}, cwd=tmp_path)  # fmt: skip
    assert p.returncode == 0, p.stderr[-3000:]
    got = json.loads(p.stdout)
    evaluation = client.get_run(got["run_id"])
    assert evaluation.info.status == "FINISHED" and evaluation.info.experiment_id != exp.experiment_id  # default exp
    assert evaluation.data.metrics["combined"] == pytest.approx(got["combined"])
    assert "confusion_SIC.png" in {a.path for a in client.list_artifacts(got["run_id"])}
    assert list(tmp.iterdir()) == []


def test_an_unreachable_server_is_one_line(synth_data, tmp_path):
    dead = f"http://127.0.0.1:{_free_port()}"
    env = _env(MLFLOW_TRACKING_URI=dead, MLFLOW_HTTP_REQUEST_MAX_RETRIES="0", MLFLOW_HTTP_REQUEST_TIMEOUT="5")
    p = _autoice("train", "--preset", "demo", "--data", str(synth_data / "train"), "--workdir",
                 str(tmp_path / "run"), "--quiet", *TINY_SET, env=env, cwd=tmp_path)  # fmt: skip
    assert p.returncode == 1, p.stderr[-3000:]
    lines = [x for x in p.stderr.splitlines() if x.startswith("autoice:")]
    assert lines == [f"autoice: error: {dead}: cannot reach the MLflow tracking server (Connection refused)"]
    assert "Traceback" not in p.stderr
    p = _autoice("predict", "--model", "models:/autoice@champion", "--tracking-uri", dead, "--data",
                 str(synth_data / "test"), "-o", str(tmp_path / "x.nc"), env=env, cwd=tmp_path)  # fmt: skip
    assert p.returncode == 1 and "Traceback" not in p.stderr, p.stderr[-3000:]
    assert p.stderr == (f"autoice: error: models:/autoice@champion: cannot reach the MLflow tracking server {dead} "
                        "(Connection refused)\n")


# --- 6. smaller items -----------------------------------------------------------------------------


def test_a_400_answer_gives_the_reason_not_the_request():
    import asyncio
    import json

    from autoice.server import RequestGuard

    reason = "model input: missing channel(s) nersc_sar_secondary (expected a, b)"
    echoed = json.dumps({"error_code": "BAD_REQUEST",
                         "message": f"Failed to predict data '{'0.1, ' * 20000}'. \nError: {reason}"}).encode()

    async def mlflow_like(scope, receive, send):
        await receive()
        await send({"type": "http.response.start", "status": 400,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(echoed)).encode())]})  # fmt: skip
        await send({"type": "http.response.body", "body": echoed[:1000], "more_body": True})
        await send({"type": "http.response.body", "body": echoed[1000:]})

    sent = []

    async def receive():
        return {"type": "http.request", "body": b'{"inputs": {"a": [[[1.0]]]}}', "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/invocations",
             "headers": [(b"content-type", b"application/json")]}  # fmt: skip
    asyncio.run(RequestGuard(mlflow_like)(scope, receive, send))
    assert sent[0]["status"] == 400
    body = b"".join(m.get("body", b"") for m in sent[1:])
    assert json.loads(body) == {"error_code": "BAD_REQUEST", "message": reason}
    assert dict(sent[0]["headers"])[b"content-length"] == str(len(body)).encode()


def test_ui_hint_only_for_local_stores():
    from autoice.tracking import is_local_store

    assert is_local_store("sqlite:////w/mlflow.db") and is_local_store("/w/mlruns")
    assert not is_local_store("http://127.0.0.1:5000") and not is_local_store("https://mlflow.example.org")


# --- 7. mlflow run ---------------------------------------------------------------------------------


def test_mlflow_run_train_logs_into_the_project_run(synth_data, tmp_path):
    """``mlflow run`` sets MLFLOW_RUN_ID: the training run is the project run, not a second one."""
    from mlflow import MlflowClient

    bindir = Path(sys.executable).parent
    store = f"sqlite:///{tmp_path / 'p.db'}"
    env = _env(MLFLOW_TRACKING_URI=store, PATH=f"{bindir}{os.pathsep}{os.environ['PATH']}")
    cmd = [str(bindir / "mlflow"), "run", str(SRC.parent), "-e", "train", "--env-manager", "local",
           "-P", f"data={synth_data / 'train'}", "-P", f"workdir={tmp_path / 'w'}", "-P", "epochs=1"]  # fmt: skip
    proc = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    client = MlflowClient(tracking_uri=store)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert len(runs) == 1, [r.info.run_name for r in runs]
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert run.data.params["epochs"] == "1" and run.data.params["train.epochs"] == "1"  # project's and ours
    assert run.data.tags["dataset_fingerprint"]
    assert client.get_model_version("autoice", "1").run_id == run.info.run_id


def test_use_store_points_mlflow_at_a_store_and_puts_everything_back(clean_env, tmp_path):
    import mlflow

    from autoice.tracking import use_store

    a, reg = f"sqlite:///{tmp_path / 'a.db'}", f"sqlite:///{tmp_path / 'reg.db'}"
    with use_store(a):
        assert mlflow.get_tracking_uri() == a and mlflow.get_registry_uri() == a
    assert "MLFLOW_TRACKING_URI" not in os.environ and "MLFLOW_REGISTRY_URI" not in os.environ
    clean_env.setenv("MLFLOW_REGISTRY_URI", reg)  # the user's registry stays theirs (MLflow's rule)
    with use_store(a):
        assert mlflow.get_tracking_uri() == a and mlflow.get_registry_uri() == reg
    assert os.environ["MLFLOW_REGISTRY_URI"] == reg and "MLFLOW_TRACKING_URI" not in os.environ
    clean_env.delenv("MLFLOW_REGISTRY_URI")  # the registry was the variable's, not copied into MLflow's state
    assert mlflow.get_registry_uri() == mlflow.get_tracking_uri() != reg
    assert list(tmp_path.iterdir()) == []  # pointing creates nothing
