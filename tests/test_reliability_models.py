"""Reliability of loading and serving models.

Checkpoints whose parts disagree (config vs weights, a config that is not a mapping, non-finite weights,
ensemble members of different kinds), MLflow stores that do not exist (resolving a model must never
create one), and malformed requests to the model server (each a 4xx with a message, never a 500).
"""

from __future__ import annotations

import copy
import http.client
import json
import os
import socket
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from autoice import schema, serving
from autoice.checkpoints import load_checkpoint, save_checkpoint
from autoice.cli.main import main
from autoice.errors import AutoiceError
from autoice.predict import load_models
from processes import stop_group

NAME = "autoice-rel"


@pytest.fixture(scope="module")
def state(trained_run):
    return load_checkpoint(trained_run / "checkpoints" / "best.pt")


@pytest.fixture(scope="module")
def registry(trained_run, synth_data, tmp_path_factory):
    """A store holding the trained checkpoint as registered model NAME (alias champion)."""
    from mlflow import MlflowClient

    root = tmp_path_factory.mktemp("rel-registry")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    exp = client.create_experiment("rel", artifact_location=(root / "artifacts").as_uri())
    run = client.create_run(exp)
    client.set_terminated(run.info.run_id, status="FINISHED")
    model_uri = serving.log_model(trained_run / "checkpoints" / "best.pt", tracking_uri=uri, run_id=run.info.run_id,
                                  example_scene=sorted((synth_data / "train").glob("*_prep.nc"))[0])
    serving.register(model_uri, NAME, tracking_uri=uri, score=1.0)
    return {"uri": uri, "root": root, "run_id": run.info.run_id}


def _save(path, state):
    save_checkpoint(path, state)
    return path


def _cli_error(capsys, argv):
    """Run the CLI, expect exit 1 and return its one line on stderr."""
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("autoice: error: "), err
    return lines[0]


def _predict_argv(model, tmp_path):
    """``predict`` arguments whose data folder has no scenes: models load first, so their errors come first."""
    return ["predict", *sum((["--model", str(m)] for m in model), []), "--data", str(tmp_path),
            "-o", str(tmp_path / "out.nc"), "--quiet"]  # fmt: skip


# --- checkpoints whose parts disagree ------------------------------------------------------------


def test_config_that_does_not_fit_the_weights_is_one_line(state, tmp_path, capsys):
    bad = copy.deepcopy(state)
    assert bad["config"]["model"]["filters"] == [8, 8, 16]
    bad["config"]["model"]["filters"] = [16, 16, 32]
    path = _save(tmp_path / "mismatch.pt", bad)
    with pytest.raises(AutoiceError) as e:
        load_models([str(path)])
    msg = str(e.value)
    assert msg.startswith(f"{path}: its weights do not match its stored config") and "\n" not in msg
    assert "model.filters [16, 16, 32]" in msg and "size mismatch" in msg
    line = _cli_error(capsys, _predict_argv([path], tmp_path))
    assert line == f"autoice: error: {msg}"
    # the pyfunc wrapper (serving) rebuilds it the same way, and logging refuses it before anything is logged
    with pytest.raises(AutoiceError, match="its weights do not match its stored config"):
        serving.AutoiceModel().load_context(types.SimpleNamespace(artifacts={"checkpoint": str(path)}))
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with pytest.raises(AutoiceError, match="its weights do not match its stored config"):
        serving.log_model(path, tracking_uri=store, run_id="0" * 32, example_scene=tmp_path / "never_read_prep.nc")
    assert not (tmp_path / "mlflow.db").exists()


def test_inputs_entry_that_disagrees_with_the_config_is_one_line(state, tmp_path):
    bad = copy.deepcopy(state)
    bad["inputs"] = list(reversed(bad["inputs"]))
    path = _save(tmp_path / "inputs.pt", bad)
    with pytest.raises(AutoiceError, match=f"^{path}: its inputs entry .* data.inputs"):
        load_models([str(path)])


@pytest.mark.parametrize("entry", ["config", "model"])
def test_entry_stored_as_a_string_is_one_line(state, tmp_path, capsys, entry):
    bad = copy.deepcopy(state)
    bad[entry] = str(bad[entry])
    path = _save(tmp_path / f"{entry}-string.pt", bad)
    with pytest.raises(AutoiceError) as e:
        load_checkpoint(path)
    assert str(e.value) == f"{path}: its {entry} entry is a str, not a mapping (not an autoice checkpoint, or damaged)"
    line = _cli_error(capsys, _predict_argv([path], tmp_path))
    assert line == f"autoice: error: {e.value}"


def test_ensemble_of_regression_and_classification_names_the_difference(state, tmp_path, capsys):
    from autoice.config import config_from_dict
    from autoice.models.unet import build_model

    cfg = config_from_dict(state["config"])
    assert cfg.model.sic_mode == "regression"
    cfg.model.sic_mode = "classification"
    other = {**state, "config": cfg.to_dict(), "model": build_model(cfg).state_dict()}
    a = _save(tmp_path / "regression.pt", state)
    b = _save(tmp_path / "classification.pt", other)
    with pytest.raises(AutoiceError) as e:
        load_models([str(a), str(b)])
    assert str(e.value) == (f"{b}: cannot ensemble with {a}: the models disagree on model.sic_mode "
                            f"(regression in {a}, classification in {b})")  # fmt: skip
    assert _cli_error(capsys, _predict_argv([a, b], tmp_path)) == f"autoice: error: {e.value}"
    # several differences are all named
    cfg.data.downscale = 4
    cfg.data.inputs = cfg.data.inputs[:-1]
    third = _save(tmp_path / "third.pt", {**state, "config": cfg.to_dict(), "inputs": cfg.data.inputs,
                                          "model": build_model(cfg).state_dict()})  # fmt: skip
    with pytest.raises(AutoiceError) as e:
        load_models([str(a), str(third)])
    msg = str(e.value)
    assert msg.startswith(f"{third}: cannot ensemble with {a}: the models disagree on data.inputs")
    assert f"{state['inputs'][-1]} only in {a}" in msg and "data.downscale (2 in" in msg and "model.sic_mode" in msg


@pytest.mark.parametrize("bad_value", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_weights_are_refused_at_load(state, tmp_path, capsys, bad_value):
    bad = copy.deepcopy(state)
    key = next(k for k, v in bad["model"].items() if v.is_floating_point() and v.ndim == 4)
    bad["model"][key] = bad["model"][key].clone()
    bad["model"][key].view(-1)[3] = bad_value
    path = _save(tmp_path / "nonfinite.pt", bad)
    with pytest.raises(AutoiceError) as e:
        load_models([str(path)])
    assert str(e.value) == f"{path}: weights contain non-finite values (first in {key})"
    assert _cli_error(capsys, _predict_argv([path], tmp_path)) == f"autoice: error: {e.value}"
    with pytest.raises(AutoiceError, match="weights contain non-finite values"):
        serving.AutoiceModel().load_context(types.SimpleNamespace(artifacts={"checkpoint": str(path)}))


# --- stores that do not exist --------------------------------------------------------------------


@pytest.fixture()
def clean_mlflow_env(monkeypatch):
    """No tracking or registry URI set in this process or the environment (as in a fresh shell)."""
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    monkeypatch.setattr(tracking_utils, "_tracking_uri", None)
    monkeypatch.setattr(registry_utils, "_registry_uri", None)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    return monkeypatch


def _listing(root):
    return sorted(str(p.relative_to(root)) for p in Path(root).rglob("*"))


@pytest.mark.parametrize("case", ["missing-dir", "missing-file", "empty-file", "not-sqlite", "file-store", "unset"])
@pytest.mark.parametrize("uri", [f"models:/{NAME}@champion", "runs:/0123456789abcdef0123456789abcdef/model"])
def test_resolving_a_model_never_creates_a_store(clean_mlflow_env, tmp_path, capsys, case, uri):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    clean_mlflow_env.chdir(cwd)
    db = tmp_path / "stores" / "mlflow.db"
    store, fault = {
        "missing-dir": (f"sqlite:///{tmp_path / 'nonexistent' / 'dir' / 'mlflow.db'}",
                        f"no such file {tmp_path / 'nonexistent' / 'dir' / 'mlflow.db'}"),
        "missing-file": (f"sqlite:///{db}", f"no such file {db}"),
        "empty-file": (f"sqlite:///{db}", f"{db} is not an MLflow store (no MLflow tables)"),
        "not-sqlite": (f"sqlite:///{db}", f"{db} is not an MLflow store (not an SQLite database)"),
        "file-store": ((tmp_path / "mlruns").as_uri(), f"no such folder {tmp_path / 'mlruns'}"),
        "unset": (None, f"no such file {cwd / 'mlflow.db'}"),
    }[case]  # fmt: skip
    db.parent.mkdir()
    if case == "empty-file":
        db.touch()
    elif case == "not-sqlite":
        db.write_text("not a database\n")
    if store is not None:
        clean_mlflow_env.setenv("MLFLOW_TRACKING_URI", store)
    before = _listing(tmp_path)
    sizes = {p: p.stat().st_size for p in (tmp_path / "stores").iterdir()}
    with pytest.raises(AutoiceError) as e:
        load_models([uri])
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"{uri}: ")
    assert fault in msg and "MLFLOW_TRACKING_URI" in msg and "sqlite:///WORKDIR/mlflow.db" in msg
    if store is None:
        assert "MLFLOW_TRACKING_URI is not set" in msg and f"sqlite:///{cwd / 'mlflow.db'}" in msg
    else:
        assert f"MLFLOW_TRACKING_URI={store}" in msg
    assert _listing(tmp_path) == before  # nothing created, not even an empty database or folder
    assert {p: p.stat().st_size for p in (tmp_path / "stores").iterdir()} == sizes
    line = _cli_error(capsys, _predict_argv([uri], tmp_path / "stores"))
    if store is None:  # issue 15: the CLI asks for the store instead of trying MLflow's default
        assert line.startswith(f"autoice: error: {uri}: which MLflow store") and "--tracking-uri" in line
    else:
        assert line == f"autoice: error: {msg}"
    assert _listing(tmp_path) == before


def test_missing_registry_store_is_named(clean_mlflow_env, registry, tmp_path):
    clean_mlflow_env.setenv("MLFLOW_TRACKING_URI", registry["uri"])
    clean_mlflow_env.setenv("MLFLOW_REGISTRY_URI", f"sqlite:///{tmp_path / 'registry.db'}")
    with pytest.raises(AutoiceError, match=f"MLFLOW_REGISTRY_URI=sqlite:///{tmp_path / 'registry.db'}"):
        load_models([f"models:/{NAME}@champion"])
    assert list(tmp_path.iterdir()) == []


def test_existing_stores_still_resolve(clean_mlflow_env, registry, state):
    clean_mlflow_env.setenv("MLFLOW_TRACKING_URI", registry["uri"])
    loaded = load_models([f"models:/{NAME}@champion"])
    assert loaded.config.data.inputs == state["inputs"]
    # a relative sqlite path is relative to the current folder, as MLflow reads it
    clean_mlflow_env.chdir(registry["root"])
    clean_mlflow_env.setenv("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db")
    assert load_models([f"runs:/{registry['run_id']}/model"]).config.data.inputs == state["inputs"]


# --- the model server ----------------------------------------------------------------------------


def _patch(inputs, b=1, h=12, w=10, seed=3):
    rng = np.random.default_rng(seed)
    return {name: rng.normal(size=(b, h, w)).astype(np.float32) for name in inputs}


def _wrapper(state, tmp_path):
    path = _save(tmp_path / "m.pt", state)
    model = serving.AutoiceModel()
    model.load_context(types.SimpleNamespace(artifacts={serving.CHECKPOINT_ARTIFACT: str(path)}))
    return model


def test_wrapper_takes_only_numbers(state, tmp_path):
    model = _wrapper(state, tmp_path)
    inputs = state["inputs"]
    patch = _patch(inputs, h=4, w=4)
    ok = model.predict(None, {**patch, inputs[0]: patch[inputs[0]].astype(np.float64).tolist()})
    assert set(ok) == set(schema.CHARTS)
    row = [0.0, 0.5, 1.0, 2.0]
    for bad, shown in (
        ([[[True, 0.5, 1.0, 2.0], row, row, row]], "true"),  # numpy would read it as 1.0
        ([[row, row, row, [0.0, False, 1.0, 2.0]]], "false"),
        ([[row, row, ["0.5", 0.5, 1.0, 2.0], row]], '"0.5"'),  # numpy would parse the string
        ([[row, [None, 0.5, 1.0, 2.0], row, row]], "null"),
    ):
        with pytest.raises(AutoiceError, match=f"^model input: channel {inputs[1]} holds {shown}, not a number"):
            model.predict(None, {**patch, inputs[1]: bad})
    with pytest.raises(AutoiceError, match=f"channel {inputs[2]} holds bool values, not numbers"):
        model.predict(None, {**patch, inputs[2]: np.ones((1, 4, 4), bool)})
    with pytest.raises(AutoiceError, match=f"channel {inputs[2]} holds true, not a number"):
        model.predict(None, {**patch, inputs[2]: True})
    with pytest.raises(AutoiceError, match=f"channel {inputs[0]} is nested deeper than \\(batch, height, width\\)"):
        model.predict(None, {**patch, inputs[0]: [[[[0.0]]]]})


@pytest.mark.parametrize(("body", "content_type", "status", "message"), [
    (b"{}", None, 415, "request has no Content-Type header"),
    (b"{}", "  ", 415, "request has no Content-Type header"),
    (b"[" * 5000, "application/json", 400, "request body: JSON nested too deeply"),
    (b"[" * 5000 + b"]" * 5000, "application/json", 400, "request body: JSON nested too deeply"),
    (b'{"inputs": {"a": [[[true]]]}}', "application/json", 400, "model input: channel a holds true, not a number"),
    (b'{"inputs": {"a": [[[0.5]]], "b": [[[1, "2"]]]}}', "application/json; charset=utf-8", 400,
     'model input: channel b holds "2", not a number'),
    (b'{"inputs": {"a": [[[[[0.5]]]]]}}', "application/json", 400,
     "model input: channel a is nested deeper than (batch, height, width)"),
    (b'{"instances": [{"a": [[false]]}]}', "application/json", 400, "instances holds false, not a number"),
    (b"{not json", "application/json", 400, "request body is not valid JSON"),
    (b"\xff\xfe", "application/json", 400, "request body is not valid JSON"),
    (b'{"inputs": {"a": [[[0.5, 1, -2e3]]]}}', "application/json", None, None),
    (b"a,b\n1,true\n", "text/csv", None, None),  # other content types are MLflow's to answer
])  # fmt: skip
def test_request_check(body, content_type, status, message):
    from autoice.server import check_request

    problem = check_request(body, content_type)
    if status is None:
        assert problem is None
    else:
        assert problem is not None and problem[0] == status and problem[1].startswith(message), problem


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _request(port, body, headers, method="POST", path="/invocations"):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request(method, path, body=body, headers=headers)  # http.client adds no Content-Type of its own
        r = conn.getresponse()
        return r.status, r.read().decode()
    finally:
        conn.close()


JSON = {"Content-Type": "application/json"}


def test_autoice_serve_answers_malformed_requests_with_4xx_and_a_message(registry, state, tmp_path):
    inputs = state["inputs"]
    port = _free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": registry["uri"], "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "autoice", "serve", "--model", f"models:/{NAME}@champion", "--host", "127.0.0.1",
           "--port", str(port)]  # fmt: skip
    log_path = tmp_path / "server.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, log_path.read_text()[-3000:]
            try:
                if _request(port, None, {}, method="GET", path="/ping")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "server did not answer /ping in 90 s"
            time.sleep(0.5)

        patch = _patch(inputs)
        good = {"inputs": {k: v.tolist() for k, v in patch.items()}}
        status, text = _request(port, json.dumps(good), JSON)
        assert status == 200, text
        answer = json.loads(text)["predictions"]
        wrapper = _wrapper(state, tmp_path)
        want = wrapper.predict(None, patch)
        for chart in schema.CHARTS:
            np.testing.assert_array_equal(np.asarray(answer[chart]), want[chart])

        # MLflow's own server answers these three with 500 (no Content-Type), 500 (RecursionError in its
        # json.loads) and 200 (true read as 1.0 before the model sees it)
        status, text = _request(port, json.dumps(good), {})
        assert status == 415 and "no Content-Type header" in json.loads(text)["message"], text
        status, text = _request(port, b"[" * 5000, JSON)
        assert status == 400 and "nested too deeply" in json.loads(text)["message"], text
        flagged = copy.deepcopy(good)
        flagged["inputs"][inputs[1]][0][2][3] = True
        status, text = _request(port, json.dumps(flagged), JSON)
        assert status == 400, text
        assert json.loads(text)["message"] == f"model input: channel {inputs[1]} holds true, not a number " \
                                              "(values are numbers; 0 = no data)"
        # what MLflow already answered with 4xx still is
        status, _ = _request(port, b"{not json", JSON)
        assert status == 400
        status, text = _request(port, json.dumps({"inputs": {k: v for k, v in good["inputs"].items()
                                                              if k != inputs[0]}}), JSON)  # fmt: skip
        assert 400 <= status < 500 and inputs[0] in text
        status, _ = _request(port, b"1,2\n", {"Content-Type": "text/plain"})
        assert status == 415
        assert "Traceback" not in log_path.read_text()
    finally:
        stop_group(proc)


def test_serve_of_a_missing_model_or_a_taken_port_is_one_line(clean_mlflow_env, registry, capsys):
    clean_mlflow_env.setenv("MLFLOW_TRACKING_URI", registry["uri"])
    line = _cli_error(capsys, ["serve", "--model", "models:/nobody@champion", "--port", str(_free_port())])
    assert line.startswith("autoice: error: models:/nobody@champion: cannot load the model")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = _cli_error(capsys, ["serve", "--model", f"models:/{NAME}@champion", "--port", str(port)])
    assert line.startswith(f"autoice: error: 127.0.0.1:{port}: cannot listen there (")


def test_non_finite_weights_logged_before_the_check_are_refused_when_served(state, tmp_path, clean_mlflow_env):
    """A model logged by an older autoice (no check at log time) is refused when loaded, naming the URI."""
    import mlflow

    bad = copy.deepcopy(state)
    key = next(k for k, v in bad["model"].items() if v.is_floating_point())
    bad["model"][key] = torch.full_like(bad["model"][key], float("nan"))
    path = _save(tmp_path / "nan.pt", bad)
    target = tmp_path / "model"
    mlflow.pyfunc.save_model(str(target), python_model=serving.AutoiceModel(), pip_requirements=[],
                             artifacts={serving.CHECKPOINT_ARTIFACT: str(path)})  # fmt: skip
    with pytest.raises(AutoiceError) as e:
        serving.load_network(str(target))
    msg = str(e.value)
    assert msg.startswith(f"{target}: cannot load the model (") and "weights contain non-finite values" in msg
