"""MLflow Models and Registry: pyfunc logging, the champion alias, loading, and a real model server."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch

from autoice import schema, serving
from autoice.errors import AutoiceError
from autoice.tracking import use_store
from oracle import network_classes
from processes import stop_group

NAME = "autoice-test"


def _network_classes(state, x):
    """The checkpoint's network (from its state) through the shared oracle: what the pyfunc model must give."""
    from autoice.config import config_from_dict
    from autoice.models.unet import build_model

    cfg = config_from_dict(state["config"])
    net = build_model(cfg)
    net.load_state_dict(state["model"])
    return network_classes(net, cfg, x)


def _patch(inputs, b=2, h=20, w=24, seed=0):
    rng = np.random.default_rng(seed)
    return {name: rng.normal(size=(b, h, w)).astype(np.float32) for name in inputs}


@pytest.fixture(scope="module")
def registry(trained_run, synth_data, tmp_path_factory):
    """A fresh store with two finished runs, each holding the trained checkpoint as a pyfunc model.

    Registered in the order: run A with score 10, run B with score 5 (worse, after the better one),
    run B again with score 20 (better, after the others).
    """
    from mlflow import MlflowClient

    from autoice.checkpoints import load_checkpoint

    root = tmp_path_factory.mktemp("registry")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    exp = client.create_experiment("serving-test", artifact_location=(root / "artifacts").as_uri())
    ckpt = trained_run / "checkpoints" / "best.pt"
    runs, uris, seconds = [], [], []
    for _ in range(2):
        run = client.create_run(exp)
        client.set_terminated(run.info.run_id, status="FINISHED")
        runs.append(client.get_run(run.info.run_id).info)
        t0 = time.perf_counter()
        uris.append(serving.log_model(ckpt, tracking_uri=uri, run_id=run.info.run_id,
                                      example_scene=sorted((synth_data / "train").glob("*_prep.nc"))[0]))
        seconds.append(time.perf_counter() - t0)
    aliases = []
    versions = []
    for model_uri, score in ((uris[0], 10.0), (uris[1], 5.0), (uris[1], 20.0)):
        versions.append(serving.register(model_uri, NAME, tracking_uri=uri, score=score))
        aliases.append(int(client.get_model_version_by_alias(NAME, "champion").version))
    return {
        "uri": uri, "client": client, "runs": runs, "model_uris": uris, "seconds": seconds,
        "versions": versions, "aliases": aliases, "state": load_checkpoint(ckpt),
    }  # fmt: skip


def test_log_model_is_fast_and_keeps_the_run_as_it_was(registry):
    print(f"log_model: {', '.join(f'{s:.1f} s' for s in registry['seconds'])}")
    assert max(registry["seconds"]) < 30
    client = registry["client"]
    for before, model_uri in zip(registry["runs"], registry["model_uris"], strict=True):
        after = client.get_run(before.run_id).info
        assert (after.status, after.end_time) == ("FINISHED", before.end_time)
        assert model_uri.startswith("models:/")
    # the model is found under the run too, with the explicit signature, example and pinned requirements
    import mlflow
    from mlflow.models import get_model_info

    with use_store(registry["uri"]):
        info = get_model_info(f"runs:/{registry['runs'][0].run_id}/model")
        reqs = Path(mlflow.pyfunc.get_model_dependencies(registry["model_uris"][0]))
    inputs = registry["state"]["inputs"]
    sig = info.signature
    assert sig.inputs.input_names() == inputs
    assert {s.type.to_dict()["type"] for s in sig.inputs.inputs} == {"any"}  # a (height, width) patch per row
    assert sig.outputs.input_names() == list(schema.CHARTS)
    assert {json.dumps(s.type.to_dict()) for s in sig.outputs.inputs} == {
        json.dumps({"type": "array", "items": {"type": "array", "items": {"type": "integer"}}})}
    assert info.saved_input_example_info is not None
    lines = reqs.read_text().splitlines()
    cpu = f'torch=={torch.__version__.split("+")[0]}+cpu; sys_platform == "linux"'  # never a CUDA build by accident
    assert cpu in lines and lines[0] == "--extra-index-url https://download.pytorch.org/whl/cpu"
    pins = [line for line in lines[1:] if not line.startswith("torch")]
    assert any(p.startswith("numpy==") for p in pins) and all("==" in p and "+" not in p for p in pins)
    assert not any(p.startswith("autoice") for p in pins)  # shipped as code, not a requirement


def test_champion_alias_follows_the_best_score(registry):
    assert registry["versions"] == [1, 2, 3]
    # v1 (10) is champion; v2 (5, registered after the better one) does not take it; v3 (20) does
    assert registry["aliases"] == [1, 1, 3]
    mv = registry["client"].get_model_version(NAME, "2")
    assert mv.tags[serving.SCORE_TAG] == "5.0"
    assert mv.run_id == registry["runs"][1].run_id


def test_pyfunc_predict_equals_the_network(registry):
    import mlflow

    state = registry["state"]
    model = serving.load_model(f"models:/{NAME}@champion", tracking_uri=registry["uri"])
    assert mlflow.get_tracking_uri() != registry["uri"]  # the store was only borrowed
    patch = _patch(state["inputs"])
    got = model.predict(patch)
    want = _network_classes(state, np.stack([patch[c] for c in state["inputs"]], axis=1))
    assert set(got) == set(schema.CHARTS)
    for chart in schema.CHARTS:
        assert got[chart].dtype == np.uint8 and got[chart].shape == (2, 20, 24)
        np.testing.assert_array_equal(got[chart], want[chart])
    net, cfg = serving.load_network(f"runs:/{registry['runs'][0].run_id}/model", tracking_uri=registry["uri"])
    assert cfg.data.inputs == state["inputs"]
    for k, v in net.state_dict().items():
        torch.testing.assert_close(v, state["model"][k])


def test_malformed_inputs_are_clear_errors(registry):
    from mlflow.exceptions import MlflowException

    inputs = registry["state"]["inputs"]
    model = serving.load_model(f"models:/{NAME}/1", tracking_uri=registry["uri"])
    patch = _patch(inputs, b=1, h=8, w=8)
    with pytest.raises(MlflowException, match=f"missing inputs.*{inputs[1]}"):
        model.predict({k: v for k, v in patch.items() if k != inputs[1]})
    with pytest.raises(MlflowException, match=f"channel {inputs[2]} has shape \\(1, 4, 8\\)"):
        model.predict({**patch, inputs[2]: patch[inputs[2]][:, :4]})
    with pytest.raises(MlflowException, match="shape"):
        model.predict({k: v[0] for k, v in patch.items()})
    # straight to the wrapper (no MLflow schema in between): the project's own one-line errors
    wrapper = model.unwrap_python_model()
    with pytest.raises(AutoiceError, match="unknown channel\\(s\\) bogus"):
        wrapper.predict(None, {**patch, "bogus": patch[inputs[0]]})
    with pytest.raises(AutoiceError, match="non-finite"):
        wrapper.predict(None, {**patch, inputs[0]: np.full((1, 8, 8), np.nan, np.float32)})
    with pytest.raises(AutoiceError, match="mapping"):
        wrapper.predict(None, np.zeros((1, len(inputs), 8, 8), np.float32))


def test_unknown_model_is_one_line_error(registry):
    with pytest.raises(AutoiceError, match="models:/nobody@champion: cannot load the model"):
        serving.load_network("models:/nobody@champion", tracking_uri=registry["uri"])


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(url, body, timeout=30):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_model_server_answers_patches_and_rejects_malformed_ones(registry, tmp_path):
    state = registry["state"]
    inputs = state["inputs"]
    port = _free_port()
    bindir = str(Path(sys.executable).parent)
    env = {**os.environ, "MLFLOW_TRACKING_URI": registry["uri"], "PATH": bindir + os.pathsep + os.environ["PATH"]}
    cmd = [os.path.join(bindir, "mlflow"), "models", "serve", "-m", f"models:/{NAME}@champion",
           "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
    log = (tmp_path / "server.log").open("w")
    proc = subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, (tmp_path / "server.log").read_text()[-2000:]
            try:
                with urllib.request.urlopen(f"{base}/ping", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "server did not answer /ping in 90 s"
            time.sleep(0.5)

        # the documented request: {"inputs": {channel: (batch, height, width) nested lists}}
        patch = _patch(inputs, b=1, h=12, w=10, seed=3)
        status, text = _post(f"{base}/invocations", {"inputs": {k: v.tolist() for k, v in patch.items()}})
        assert status == 200, text
        answer = json.loads(text)["predictions"]
        want = _network_classes(state, np.stack([patch[c] for c in inputs], axis=1))
        assert set(answer) == set(schema.CHARTS)
        for chart in schema.CHARTS:
            np.testing.assert_array_equal(np.asarray(answer[chart]), want[chart])

        missing = {k: v.tolist() for k, v in patch.items() if k != inputs[0]}
        status, text = _post(f"{base}/invocations", {"inputs": missing})
        assert 400 <= status < 500 and inputs[0] in text
        wrong_type = {**{k: v.tolist() for k, v in patch.items()}, inputs[1]: "not numbers"}
        status, text = _post(f"{base}/invocations", {"inputs": wrong_type})
        assert 400 <= status < 500, text
        uneven = {**{k: v.tolist() for k, v in patch.items()}, inputs[1]: patch[inputs[1]][:, :5].tolist()}
        status, text = _post(f"{base}/invocations", {"inputs": uneven})
        assert 400 <= status < 500 and "has shape (1, 5, 10)" in text
        status, _ = _post(f"{base}/invocations", b"{not json")
        assert 400 <= status < 500
    finally:
        stop_group(proc)
        log.close()
