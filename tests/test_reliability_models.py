"""Reliability of loading and serving models.

Checkpoints whose parts disagree (config vs weights, a config that is not a mapping, non-finite weights,
ensemble members of different kinds), MLflow stores that do not exist (resolving a model must never
create one), and malformed requests to the model server (each a 4xx with a message, never a 500).
"""

from __future__ import annotations

import copy
import types

import pytest

from autoice import serving
from autoice.checkpoints import load_checkpoint, save_checkpoint
from autoice.cli.main import main
from autoice.errors import AutoiceError
from autoice.predict import load_models

NAME = "autoice-rel"


@pytest.fixture(scope="module")
def state(trained_run):
    return load_checkpoint(trained_run / "checkpoints" / "best.pt")


@pytest.fixture(scope="module")
def registry(trained_run, tmp_path_factory):
    """A store holding the trained checkpoint as registered model NAME (alias champion)."""
    from mlflow import MlflowClient

    root = tmp_path_factory.mktemp("rel-registry")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    exp = client.create_experiment("rel", artifact_location=(root / "artifacts").as_uri())
    run = client.create_run(exp)
    client.set_terminated(run.info.run_id, status="FINISHED")
    model_uri = serving.log_model(trained_run / "checkpoints" / "best.pt", tracking_uri=uri, run_id=run.info.run_id)
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
        serving.log_model(path, tracking_uri=store, run_id="0" * 32)
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
