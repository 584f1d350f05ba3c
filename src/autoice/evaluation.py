"""``autoice evaluate``: a logged model scored on scenes with charts by ``mlflow.models.evaluate``, into a run.

Each scene is one row of the evaluation table: the model's input channels at its resolution (one
(h, w) array per channel column, read per scene through :func:`autoice.batch.run_each`, so a bad
scene is named and the others are still read) and the file holding its charts (column
``reference``, the evaluation's targets). The model is the logged pyfunc as MLflow serves it: one
pass over each whole scene at the model's resolution, no tiling and no flips (``autoice predict``
then ``autoice score`` is the tiled path). The challenge score is MLflow's custom metrics, computed
by :mod:`autoice.metrics` against the 80 m charts (predictions brought to 80 m by nearest
repetition, as ``predict`` does): ``SIC`` (R²), ``SOD`` and ``FLOE`` (weighted F1) and
``combined``, in percent as ``autoice score`` prints them. The confusion matrices are custom
artifacts (PNG and CSV per chart). MLflow logs all of it into a new run (experiment
``MLFLOW_EXPERIMENT_NAME``, default ``autoice``) whose input is the evaluation table (an
``mlflow.data`` dataset ``evaluation-scenes``, source the scenes' folder), and attaches the metrics
to the logged model.
"""

from __future__ import annotations

import contextlib
import os
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from autoice import schema
from autoice.errors import AutoiceError, ConfigError, SceneError

if TYPE_CHECKING:
    import pandas as pd

    from autoice.metrics import ScoreAccumulator

PathLike = str | os.PathLike[str]

#: Column of the evaluation table holding each scene's chart file (the targets).
REFERENCE = "reference"
#: Column of the evaluation table holding each scene's key (not a model input).
SCENE = "scene"
#: Metric names, as ``autoice score`` reports them.
METRICS = (*schema.CHARTS, "combined")


@dataclass
class EvaluateResult:
    """What ``evaluate`` logged."""

    run_id: str
    tracking_uri: str
    metrics: dict[str, float]
    scenes: list[str] = field(default_factory=list)
    artifacts: list[str] = field(default_factory=list)
    run_url: str | None = None


def scene_pairs(data: PathLike | Sequence[PathLike]) -> list[tuple[str, Path, Path]]:
    """(scene key, inputs ``*_prep.nc``, charts file) of every scene that has both, in key order.

    Charts come from a ``*_prep_reference.nc`` or from the ``*_prep.nc`` itself (training scenes).
    """
    from autoice.scenes import SceneKind, find_scenes
    from autoice.submission import find_references

    paths = [data] if isinstance(data, (str, os.PathLike)) else list(data)
    inputs = {schema.scene_key(f.name): f for f in find_scenes(paths, kinds=[SceneKind.TRAIN])}
    references = find_references(paths)
    pairs = [(key, inputs[key], ref) for key, (ref, _) in references.items() if key in inputs]
    if not pairs:
        raise SceneError(paths[0] if paths else ".", "no scene with both its inputs (*_prep.nc) and its charts "
                         "(in the same file or a *_prep_reference.nc beside it)")  # fmt: skip
    return pairs


def _read_scene(path: str, reference: str, inputs: Sequence[str], downscale: int, mode: str = "nearest"
                ) -> list[np.ndarray]:  # fmt: skip
    """One scene's model inputs, (h, w) float32 per channel; its chart file is checked too (a task)."""
    from autoice.data.inputs import scene_inputs
    from autoice.scenes import open_scene

    with open_scene(reference, check_values=True):  # class ranges checked now, not inside MLflow's metrics
        pass
    with open_scene(path, check_values=False) as ds:
        x = scene_inputs(ds, inputs, downscale, mode=mode)
    return list(x)


class ChallengeScore:
    """The challenge score of one evaluation, as MLflow custom metrics and artifacts.

    MLflow calls each metric with the SIC predictions, the targets (chart files) and the other
    outputs (SOD, FLOE) as columns, first on the first row alone (its check), then on all rows. The
    accumulator of :mod:`autoice.metrics` is filled once per set of scenes by streaming each scene's
    charts; the metrics and the artifacts read it.
    """

    def __init__(self, downscale: int) -> None:
        self.downscale = downscale
        self.accumulators: dict[tuple[str, ...], ScoreAccumulator] = {}

    def accumulate(self, predictions: dict[str, Sequence[Any]], references: Sequence[str]) -> ScoreAccumulator:
        """Every scene's 80 m charts against its predictions brought to 80 m (once per set of scenes)."""
        key = tuple(references)
        if key in self.accumulators:
            return self.accumulators[key]
        from autoice.data.inputs import upsample_to
        from autoice.metrics import ScoreAccumulator
        from autoice.scenes import open_scene, read_variable

        acc = ScoreAccumulator()
        for i, reference in enumerate(references):
            with open_scene(reference, check_values=False) as ds:
                shape = (ds.sizes[schema.FULL_DIMS[0]], ds.sizes[schema.FULL_DIMS[1]])
                for chart in schema.CHARTS:
                    predicted = upsample_to(shape, np.asarray(predictions[chart][i]), self.downscale)
                    acc.update(chart, read_variable(ds, chart, path=reference), predicted)
        self.accumulators[key] = acc
        return acc

    def metric(self, name: str) -> Any:
        """MLflow's custom metric ``name`` (a chart, or ``combined``), in percent, higher is better."""
        from mlflow.metrics import MetricValue, make_metric

        # MLflow passes columns by parameter name: predictions (SIC), targets, other outputs SOD and FLOE
        def eval_fn(predictions: pd.Series, targets: pd.Series, SOD: pd.Series, FLOE: pd.Series  # noqa: N803
                    ) -> MetricValue:  # fmt: skip
            outputs = {"SIC": list(predictions), "SOD": list(SOD), "FLOE": list(FLOE)}
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # ScoreWarning: undefined scores are 0, as scored
                scores = self.accumulate(outputs, list(targets)).result().as_dict()
            return MetricValue(aggregate_results={name: float(scores[name])})

        eval_fn.__name__ = f"autoice_{name}"
        return make_metric(eval_fn=eval_fn, greater_is_better=True, name=name)

    def confusion_matrices(self, eval_df: pd.DataFrame, builtin_metrics: dict[str, float],
                           artifacts_dir: str) -> dict[str, str]:  # fmt: skip
        """MLflow custom artifacts: per chart the confusion matrix as a PNG and a CSV (rows reference)."""
        from autoice.plots import confusion_figure, save_figure

        acc = self.accumulators.get(tuple(eval_df["target"]))
        if acc is None:
            raise AutoiceError("confusion matrices asked for before the metrics were computed")
        out = {}
        for chart in schema.CHARTS:
            cm = acc.charts[chart].confusion_matrix()
            png = save_figure(confusion_figure(cm, chart), Path(artifacts_dir) / f"confusion_{chart}.png")
            csv = Path(artifacts_dir) / f"confusion_{chart}.csv"
            names = schema.CLASS_NAMES[chart]
            header = "reference \\ predicted," + ",".join(f'"{n}"' for n in names)
            rows = [f'"{names[i]}",' + ",".join(str(int(v)) for v in row) for i, row in enumerate(cm)]
            csv.write_text("\n".join([header, *rows]) + "\n")
            out[f"confusion_{chart}"] = str(png)
            out[f"confusion_{chart}_counts"] = str(csv)
        return out


def run_store(tracking_uri: str | None, model_uri: str) -> str:
    """The store the evaluation run goes into, by the rule of every command that reads models.

    That is :func:`autoice.tracking.model_store_uri` (``--tracking-uri``, ``MLFLOW_TRACKING_URI``, a
    training workdir's ``mlflow.db``), else an error: a model folder has no store of its own.
    """
    from autoice.tracking import model_store_uri

    store = model_store_uri(tracking_uri, [model_uri]) or os.environ.get("MLFLOW_TRACKING_URI")
    if not store:
        raise ConfigError("evaluate: which MLflow store should the evaluation run go into? pass "
                          "--tracking-uri (sqlite:///WORKDIR/mlflow.db, http://HOST:5000) or set MLFLOW_TRACKING_URI")
    return store


def evaluate(model_uri: str, data: PathLike | Sequence[PathLike], *, tracking_uri: str | None = None,
             progress: bool = True, scheduler: str | None = None) -> EvaluateResult:  # fmt: skip
    """Score the logged model ``model_uri`` on the scenes with charts in ``data`` with ``mlflow.models.evaluate``.

    ``tracking_uri`` is where a ``models:/``/``runs:/`` URI is looked up and where the evaluation run
    is logged (default ``MLFLOW_TRACKING_URI``). Scenes are checked and read before the run starts;
    a scene that cannot be read is named (the others are read) and nothing is logged.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    from autoice.batch import run_each
    from autoice.serving import PER_ROW, autoice_wrapper, load_model
    from autoice.tracking import Tracker, unreachable

    store = run_store(tracking_uri, model_uri)
    pairs = scene_pairs(data)
    model = load_model(model_uri, tracking_uri=tracking_uri, progress=progress, model_config={PER_ROW: True})
    wrapper = autoice_wrapper(model, model_uri)
    inputs, downscale = list(wrapper.inputs), wrapper.config.data.downscale
    mode = wrapper.config.data.downscale_mode
    jobs = [(str(path), str(ref), inputs, downscale, mode) for _, path, ref in pairs]
    batch = run_each(_read_scene, jobs, [str(path) for _, path, _ in pairs], desc="evaluate", progress=progress,
                     scheduler=scheduler)  # fmt: skip
    batch.check(what="scenes", outcome="nothing was evaluated")
    frame = _table([key for key, _, _ in pairs], inputs, batch.done(), [str(ref) for _, _, ref in pairs])
    score = ChallengeScore(downscale)
    # a logged model this store holds gets the metrics attached; one from elsewhere (a folder, another
    # store) is evaluated through its predict function: MLflow would fail looking for its logged model
    evaluated = model if _in_store(model, store) else model.predict
    tracker = Tracker(store, run_name=f"evaluate-{time.strftime('%Y%m%d-%H%M%S')}",
                      tags={"autoice.evaluated_model": model_uri, "n_scenes": str(len(pairs))})  # fmt: skip
    status = "FAILED"
    try:
        with warnings.catch_warnings(), _quiet_mlflow():
            warnings.simplefilter("ignore")  # MLflow's notes on the table (array columns, no model type)
            table = _dataset(frame, [path for _, path, _ in pairs])
            result = mlflow.models.evaluate(
                evaluated, data=table, predictions="SIC", feature_names=inputs, model_type=None,
                evaluators="default", extra_metrics=[score.metric(m) for m in METRICS],
                custom_artifacts=[score.confusion_matrices], env_manager="local",
            )  # fmt: skip
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    except MlflowException as exc:
        down = unreachable(exc.message)
        if down is not None:
            raise AutoiceError(f"{store}: cannot reach the MLflow tracking server ({down})") from exc
        raise AutoiceError(f"{model_uri}: evaluation failed ({exc.message.strip().splitlines()[0]})") from exc
    finally:
        tracker.end(status)
    metrics = {m: float(result.metrics[m]) for m in METRICS}
    return EvaluateResult(tracker.run_id, store, metrics, [key for key, _, _ in pairs],
                          sorted(result.artifacts), tracker.run_url())  # fmt: skip


def _in_store(model: Any, store: str) -> bool:
    """Whether ``store`` holds the logged model the loaded pyfunc ``model`` came from."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from autoice.tracking import store_errors

    if not model.model_id:
        return False
    with store_errors(store):
        try:
            MlflowClient(tracking_uri=store).get_logged_model(model.model_id)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            return False
    return True


def _dataset(frame: pd.DataFrame, files: list[Path]) -> Any:
    """The table as an ``mlflow.data`` dataset (the run's input): source the scenes' folder, targets the charts."""
    import mlflow.data
    from mlflow.data.sources import LocalArtifactDatasetSource

    folder = os.path.commonpath([str(f.resolve().parent) for f in files])
    return mlflow.data.from_pandas(frame, source=LocalArtifactDatasetSource(folder), targets=REFERENCE,
                                   name="evaluation-scenes")  # fmt: skip


@contextlib.contextmanager
def _quiet_mlflow() -> Iterator[None]:
    """MLflow's INFO lines (active model, "computing predictions") off for a block; its warnings stay."""
    import logging

    log = logging.getLogger("mlflow")
    level = log.level
    log.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        log.setLevel(level)


def _table(keys: list[str], inputs: list[str], rows: list[list[np.ndarray]], references: list[str]) -> pd.DataFrame:
    """The evaluation table: one row per scene, a (h, w) array per channel column, key and chart file."""
    import pandas as pd

    columns: dict[str, list[Any]] = {SCENE: keys}
    columns.update({name: [row[i] for row in rows] for i, name in enumerate(inputs)})
    columns[REFERENCE] = references
    return pd.DataFrame(columns)
