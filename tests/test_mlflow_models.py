"""Issue 15: the logged model as MLflow users use it: self-contained, evaluated, on Spark.

One tiny model is trained and registered for the module; the tests load it where autoice cannot be
imported, score it with ``autoice evaluate`` (``mlflow.models.evaluate``) and run it through
``mlflow.pyfunc.spark_udf`` on a local Spark session.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from autoice import schema
from autoice.cli.main import main
from oracle import network_classes

TINY = ["train.epochs=1", "train.batches_per_epoch=2", "train.batch_size=4", "data.patch_size=32",
        "model.filters=[8, 8, 16]", "data.downscale=2"]  # fmt: skip


@pytest.fixture(scope="module")
def registered(synth_data, tmp_path_factory):
    """A workdir whose run registered its model as 'autoice' (store WORKDIR/mlflow.db) and the model's files."""
    import mlflow

    from autoice.config import load_config
    from autoice.tracking import use_store
    from autoice.train import train

    work = tmp_path_factory.mktemp("models")
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("MLFLOW_")}
    try:
        result = train(load_config("demo", overrides=TINY), synth_data / "train", work / "run", progress=False,
                       register="autoice")  # fmt: skip
        store = f"sqlite:///{work / 'run' / 'mlflow.db'}"
        with use_store(store):
            folder = Path(mlflow.artifacts.download_artifacts("models:/autoice/1", dst_path=str(work / "model")))
    finally:
        os.environ.update(saved)
    return {"work": work, "result": result, "store": store, "folder": folder}


def _classes(checkpoint: Path, x: np.ndarray) -> dict[str, np.ndarray]:
    """The checkpoint's network through the shared oracle: what every form of the logged model must give."""
    from autoice.checkpoints import load_checkpoint, network_from_checkpoint

    net, cfg = network_from_checkpoint(load_checkpoint(checkpoint), checkpoint)
    return network_classes(net, cfg, x)


def _example(folder: Path) -> dict[str, np.ndarray]:
    from mlflow.models import Model

    return {k: np.asarray(v) for k, v in Model.load(folder).load_input_example(folder).items()}


# --- the logged model itself ----------------------------------------------------------------------


def test_logged_model_carries_its_best_epoch_its_code_and_a_real_patch(registered, synth_data):
    from mlflow import MlflowClient
    from mlflow.models import Model

    from autoice.data.inputs import scene_inputs
    from autoice.scenes import open_scene

    result, folder = registered["result"], registered["folder"]
    client = MlflowClient(registered["store"])
    # logged at the run's (1-based) step of the best epoch, whose metrics MLflow attached to the model
    history = {m.step: m.value for m in client.get_metric_history(result.run_id, "val_combined")}
    best_step = max(history, key=history.get)
    meta = Model.load(folder).metadata
    assert meta["epoch"] == best_step == 1
    (output,) = client.get_run(result.run_id).outputs.model_outputs
    assert output.step == best_step
    attached = {m.key: m for m in client.get_logged_model(output.model_id).metrics}
    assert {"val_SIC", "val_SOD", "val_FLOE", "val_combined", "train_loss"} <= set(attached)
    assert attached["val_combined"].value == pytest.approx(history[best_step]) and attached["val_combined"].step == 1
    assert len(history) == 1  # attaching re-logged nothing into the run's own history
    # the package travels with the model (no caches), autoice is not a requirement, torch is a CPU build
    code = folder / "code" / "autoice"
    assert (code / "serving.py").is_file() and (code / "resources" / "presets" / "demo.yaml").is_file()
    assert not list(code.rglob("__pycache__")) and not list(code.rglob("*.pyc"))
    lines = (folder / "requirements.txt").read_text().splitlines()
    assert not any(line.startswith("autoice") for line in lines) and any(line.startswith("torch==") for line in lines)
    size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    code_size = sum(f.stat().st_size for f in code.rglob("*") if f.is_file())
    print(f"logged model: {size / 1e6:.2f} MB, of which the autoice source {code_size / 1e6:.2f} MB")
    assert size < 5e6
    # the input example is a real patch of a training-set scene (mostly data), not zeros
    example = _example(folder)
    inputs = meta["inputs"]
    assert list(example) == inputs and {v.shape for v in example.values()} == {(1, 24, 24)}
    assert (example[inputs[0]] != 0).mean() > 0.5
    found = []
    for scene in sorted((synth_data / "train").glob("*_prep.nc")):
        with open_scene(scene, check_values=False) as ds:
            x = scene_inputs(ds, inputs, meta["downscale"])
        for r in range(x.shape[1] - 23):
            for c in range(x.shape[2] - 23):
                window = x[:, r : r + 24, c : c + 24]
                if all(np.allclose(window[i], example[n][0], atol=6e-4) for i, n in enumerate(inputs)):
                    found.append((scene.name, r, c))
    assert len(found) >= 1, "the input example is no window of any scene"


_ISOLATED = r"""
import importlib.util, json, os, sys
# autoice must not be importable: drop every path entry holding it (the editable install's .pth
# points at the main checkout) and any editable-install finder, then check
sys.path[:] = [p for p in sys.path if not os.path.isdir(os.path.join(p or os.getcwd(), "autoice"))]
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
assert importlib.util.find_spec("autoice") is None, "autoice is still importable"
import mlflow

model = mlflow.pyfunc.load_model(sys.argv[1])
import autoice

example = model.input_example
out = model.predict(example)
print(json.dumps({"autoice": autoice.__file__, "out": {k: v.tolist() for k, v in out.items()},
                  "dtype": str(out["SIC"].dtype)}))
"""


def test_logged_model_loads_and_predicts_where_autoice_is_not_installed(registered, tmp_path):
    folder = registered["folder"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PYTHON"))}
    env["OMP_NUM_THREADS"] = "1"
    # -I: no PYTHONPATH, no user site, no current folder on the path
    proc = subprocess.run([sys.executable, "-I", "-c", _ISOLATED, str(folder)], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert Path(got["autoice"]).resolve().is_relative_to(folder.resolve() / "code")  # the shipped copy
    example = _example(folder)
    inputs = list(example)
    want = _classes(registered["result"].best_checkpoint, np.concatenate([example[c] for c in inputs], axis=0)[None])
    assert got["dtype"] == "uint8"
    for chart in schema.CHARTS:
        np.testing.assert_array_equal(np.asarray(got["out"][chart]), want[chart])


def test_pyfunc_takes_a_dataframe_one_patch_per_row(registered):
    import mlflow
    import pandas as pd

    model = mlflow.pyfunc.load_model(str(registered["folder"]))
    inputs = model.metadata.metadata["inputs"]
    rng = np.random.default_rng(1)
    same = {c: list(rng.normal(size=(3, 12, 10)).astype(np.float32)) for c in inputs}
    out = model.predict(pd.DataFrame(same))
    want = _classes(registered["result"].best_checkpoint, np.stack([np.stack(same[c]) for c in inputs], axis=1))
    for chart in schema.CHARTS:
        assert out[chart].shape == (3, 12, 10) and out[chart].dtype == np.uint8
        np.testing.assert_array_equal(out[chart], want[chart])
    # rows of different sizes: one (height, width) array per row
    ragged = pd.DataFrame({c: [same[c][0], same[c][1][:8, :6]] for c in inputs})
    out = model.predict(ragged)
    assert [a.shape for a in out["SOD"]] == [(12, 10), (8, 6)]
    np.testing.assert_array_equal(out["SOD"][1], _classes(registered["result"].best_checkpoint, np.stack(
        [same[c][1][:8, :6] for c in inputs])[None])["SOD"][0])  # fmt: skip
    from mlflow.exceptions import MlflowException

    with pytest.raises(MlflowException, match=f"channel {inputs[1]} holds null"):
        model.predict(pd.DataFrame({**{c: [same[c][0]] for c in inputs}, inputs[1]: [None]}))


# --- autoice evaluate --------------------------------------------------------------------------------


def test_evaluate_logs_the_challenge_score_and_confusion_matrices_to_a_run(registered, synth_data, tmp_path,
                                                                          capsys, monkeypatch):  # fmt: skip
    from mlflow import MlflowClient

    from autoice.data.inputs import scene_inputs, upsample_to
    from autoice.scenes import open_scene
    from autoice.submission import score_submission, write_submission

    for k in [k for k in os.environ if k.startswith("MLFLOW_")]:
        monkeypatch.delenv(k)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    store = registered["store"]
    t0 = time.perf_counter()
    with pytest.raises(SystemExit) as e:
        main(["evaluate", "models:/autoice@champion", "--data", str(synth_data / "test"), "--tracking-uri", store,
              "--json"])  # fmt: skip
    out, err = capsys.readouterr()
    assert e.value.code == 0, err
    print(f"evaluate: {time.perf_counter() - t0:.1f} s")
    got = json.loads(out)
    assert list(cwd.iterdir()) == []
    # the oracle: the same one-pass predictions scored by `autoice score`'s own path
    meta_inputs = list(_example(registered["folder"]))  # the model's channels, in order
    preds = {}
    for scene in sorted((synth_data / "test").glob("*_prep.nc")):
        with open_scene(scene, check_values=False) as ds:
            x = scene_inputs(ds, meta_inputs, 2)
            shape = (ds.sizes[schema.FULL_DIMS[0]], ds.sizes[schema.FULL_DIMS[1]])
        classes = _classes(registered["result"].best_checkpoint, x[None])
        preds[schema.scene_key(scene.name)] = {c: upsample_to(shape, classes[c][0], 2) for c in schema.CHARTS}
    report = score_submission(write_submission(preds, tmp_path / "upload_package.nc"), [synth_data / "test"],
                              progress=False)  # fmt: skip
    want = report.pooled.result().as_dict()
    assert {k: got[k] for k in want} == pytest.approx(want)
    assert got["scenes"] == sorted(preds)
    # logged: a finished run in the store with the metrics, the matrices and the evaluation table as input
    client = MlflowClient(store)
    run = client.get_run(got["run_id"])
    assert run.info.status == "FINISHED" and run.info.run_id != registered["result"].run_id
    assert {k: run.data.metrics[k] for k in want} == pytest.approx(want)
    assert run.data.tags["autoice.evaluated_model"] == "models:/autoice@champion"
    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {f"confusion_{c}.png" for c in schema.CHARTS} | {f"confusion_{c}_counts.csv" for c in schema.CHARTS} <= names
    local = Path(client.download_artifacts(run.info.run_id, "confusion_SOD_counts.csv", str(tmp_path)))
    rows = [line.split(",")[1:] for line in local.read_text().splitlines()[1:]]
    np.testing.assert_array_equal(np.asarray(rows, dtype=int), report.pooled.charts["SOD"].confusion_matrix())
    (table,) = run.inputs.dataset_inputs
    assert table.dataset.name == "evaluation-scenes" and str((synth_data / "test").resolve()) in table.dataset.source
    # and attached to the logged model it evaluated
    (model_input,) = run.inputs.model_inputs
    on_model = [m for m in client.get_logged_model(model_input.model_id).metrics if m.run_id == run.info.run_id]
    assert {m.key for m in on_model} >= {"SIC", "SOD", "FLOE", "combined"}


def test_evaluate_needs_a_store_and_scenes_with_charts(registered, synth_data, tmp_path, capsys, monkeypatch):
    for k in [k for k in os.environ if k.startswith("MLFLOW_")]:
        monkeypatch.delenv(k)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:  # a model folder: where would the run go?
        main(["evaluate", str(registered["folder"]), "--data", str(synth_data / "test")])
    err = capsys.readouterr().err
    assert e.value.code == 1 and err.count("\n") == 1 and "pass --tracking-uri" in err
    only_inputs = tmp_path / "inputs"
    only_inputs.mkdir()
    for f in (synth_data / "test").glob("*_prep.nc"):
        (only_inputs / f.name).symlink_to(f)
    with pytest.raises(SystemExit) as e:
        main(["evaluate", str(registered["folder"]), "--data", str(only_inputs), "--tracking-uri",
              f"sqlite:///{tmp_path / 'e.db'}"])  # fmt: skip
    err = capsys.readouterr().err
    assert e.value.code == 1 and err.count("\n") == 1 and "no reference scenes found" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inputs"]  # no store made for nothing


# --- Spark --------------------------------------------------------------------------------------------


def test_spark_udf_predicts_patches_on_a_local_session(registered, tmp_path, monkeypatch):
    pytest.importorskip("pyspark", reason="pyspark is not installed (pip install -e '.[spark]'; CI installs it)")
    import mlflow
    from pyspark.sql import SparkSession
    from pyspark.sql.types import ArrayType, FloatType, StringType, StructField, StructType

    monkeypatch.setenv("PYSPARK_PYTHON", sys.executable)  # Spark's Python workers: this environment
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    t0 = time.perf_counter()
    spark = (SparkSession.builder.master("local[1]").appName("autoice-test")
             .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "1")
             .config("spark.local.dir", str(tmp_path / "spark"))
             .config("spark.driver.extraJavaOptions", "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC")
             .getOrCreate())  # fmt: skip
    try:
        folder = registered["folder"]
        inputs = mlflow.models.Model.load(folder).metadata["inputs"]
        rng = np.random.default_rng(2)
        patches = rng.normal(size=(3, len(inputs), 12, 10)).astype(np.float32)
        fields = [StructField("id", StringType())] + [StructField(c, ArrayType(ArrayType(FloatType()))) for c in inputs]
        rows = [(f"p{i}", *(patches[i, j].tolist() for j in range(len(inputs)))) for i in range(3)]
        frame = spark.createDataFrame(rows, StructType(fields))
        udf = mlflow.pyfunc.spark_udf(spark, str(folder), env_manager="local")
        # called without columns: the signature's input names pick them
        got = {r["id"]: r["charts"] for r in frame.withColumn("charts", udf()).select("id", "charts").collect()}
    finally:
        spark.stop()
    print(f"spark_udf: {time.perf_counter() - t0:.1f} s")
    want = _classes(registered["result"].best_checkpoint, patches)
    assert sorted(got) == ["p0", "p1", "p2"]
    for i in range(3):
        for chart in schema.CHARTS:
            np.testing.assert_array_equal(np.asarray(got[f"p{i}"][chart]), want[chart][i])
