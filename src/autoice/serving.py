"""The trained network as an MLflow pyfunc model: logging, registry alias, loading, serving.

A run's best checkpoint is logged as a pyfunc model (artifact name ``model``) whose only artifact is a
slim copy of the checkpoint (weights + resolved config), so serving needs neither the training
workdir nor its optimizer state. The model is self-contained: the autoice source travels with it
(``code_paths``) and its requirements pin autoice's dependencies, PyTorch as a CPU build
(:mod:`autoice.model_env`). It is logged at the step of its best epoch, so MLflow attaches that
epoch's metrics (losses, ``val_*``) to the logged model; its input example is a real patch of a
validation scene.

Input: one column per channel, each row one patch, a (height, width) array of standard-scaled
values exactly as in the RTT files (0 = no data) at the model's resolution. The same model takes
three forms of it:

- numpy / REST: a mapping of channel name -> (batch, height, width) array. Served, a request is
  ``{"inputs": {"nersc_sar_primary": [[[0.1, 0.2], [0.3, 0.4]]], ...}}`` posted to ``/invocations``
  with ``Content-Type: application/json`` (curl example in the README) and the answer is
  ``{"predictions": {"SIC": [[[..]]], "SOD": [[[..]]], "FLOE": [[[..]]]}}``; in Python,
  ``predict`` returns ``{"SIC", "SOD", "FLOE"}`` -> uint8 (batch, height, width).
- pandas: a DataFrame with a (height, width) array per cell (``mlflow.models.evaluate``); rows of
  different sizes are predicted one by one. Loaded with ``model_config={"per_row": True}``, each
  chart is a list of (height, width) arrays, one per row (what ``evaluate`` needs).
- Spark: ``mlflow.pyfunc.spark_udf(spark, uri)`` over columns of ``array<array<float>>`` (a patch per
  row) gives a struct ``<SIC, SOD, FLOE>`` of ``array<array<int>>``.

The signature says so: each input column is MLflow's ``any`` (a dict of 3-D arrays must reach the
model as one row per patch, which only an untyped column lets MLflow do), each output an array of
arrays of integers. A request missing a channel, or with mismatched shapes, non-numbers or
non-finite values is answered with HTTP 400; columns the model does not take are ignored (MLflow
drops them before the model sees the request, so the answer is 200, as the README says). Serve with
``autoice serve`` (:mod:`autoice.server`: MLflow's server with the requests it mishandles answered
in front of it).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
import numpy as np
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

from autoice import schema
from autoice.errors import AutoiceError
from autoice.tracking import unreachable, use_store

if TYPE_CHECKING:
    import pandas as pd
    import torch

    from autoice.config import Config

#: Artifact name of the logged model inside its run (``runs:/<run_id>/model``).
MODEL_NAME = "model"
#: Key of the checkpoint among the pyfunc model's artifacts.
CHECKPOINT_ARTIFACT = "checkpoint"
#: Model-version tag holding the validation combined score that picks the alias.
SCORE_TAG = "val_combined"
#: Checkpoint entries the served model needs (optimizer, scheduler and RNG states stay behind).
_KEPT = ("version", "model", "config", "inputs", "epoch", "step", "best_score", "history", "run_id",
         "dataset_fingerprint")  # fmt: skip
#: Model config key (``mlflow.pyfunc.load_model(uri, model_config={PER_ROW: True})``): outputs are lists of
#: one (height, width) array per input row instead of stacked (batch, height, width) arrays.
PER_ROW = "per_row"
#: Side of the input example cut from a scene (model resolution; smaller scenes give smaller).
EXAMPLE_SIZE = 24


class ServingInputError(AutoiceError, MlflowException):
    """A request does not match the model's channels: one line for the CLI, HTTP 400 when served."""

    def __init__(self, message: str) -> None:
        MlflowException.__init__(self, message, error_code=INVALID_PARAMETER_VALUE)


#: Dimensions of one channel's value: (batch, height, width); one row of a DataFrame holds (height, width).
CHANNEL_DIMS = 3
ROW_DIMS = 2
_DIMS_NAMES = {CHANNEL_DIMS: "(batch, height, width)", ROW_DIMS: "(height, width)"}
_PLAIN_NUMBERS = frozenset({int, float})


def _shown(value: Any) -> str:
    """A value as JSON would write it (``true``, ``"0.5"``, ``null``), cut short."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def non_number(value: Any, *, max_depth: int) -> str | None:
    """What keeps ``value`` from being an array of numbers nested at most ``max_depth`` deep, or None.

    Booleans and numeric strings are refused: numpy would quietly read ``true`` as 1.0 and ``"0.5"``
    as 0.5. Walks without recursion, so any nesting is answered; lists of plain numbers are checked
    in one pass each (a request of millions of values costs a fraction of its JSON parsing).
    """
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, np.ndarray):
            if depth + node.ndim > max_depth:
                return f"is nested deeper than {_DIMS_NAMES.get(max_depth, f'{max_depth} levels')}"
            if node.dtype.kind not in "iuf":
                return f"holds {node.dtype} values, not numbers"
        elif isinstance(node, (list, tuple)):
            if depth >= max_depth:
                return f"is nested deeper than {_DIMS_NAMES.get(max_depth, f'{max_depth} levels')}"
            if not set(map(type, node)) <= _PLAIN_NUMBERS:
                stack.extend((item, depth + 1) for item in node)
        elif isinstance(node, (bool, np.bool_)) or not isinstance(node, (int, float, np.integer, np.floating)):
            return f"holds {_shown(node)}, not a number"
    return None


class AutoiceModel(mlflow.pyfunc.PythonModel):
    """Pyfunc wrapper: the multi-task U-Net and its config, rebuilt from the checkpoint artifact."""

    #: predict() takes a dict of channels or a DataFrame, which MLflow's type-hint validation cannot
    #: describe: the explicit signature logged with the model is the contract (and this silences
    #: MLflow's "add type hints" warning at import).
    _skip_type_hint_validation = True

    def __init__(self) -> None:
        self.network: torch.nn.Module | None = None
        self.config: Config | None = None
        self.inputs: list[str] = []
        self.per_row = False

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        """Rebuild the network from the logged checkpoint (CPU; eval mode)."""
        from autoice.checkpoints import load_checkpoint, network_from_checkpoint

        path = context.artifacts[CHECKPOINT_ARTIFACT]
        self.network, self.config = network_from_checkpoint(load_checkpoint(path), path)
        self.inputs = list(self.config.data.inputs)
        self.per_row = bool((getattr(context, "model_config", None) or {}).get(PER_ROW, False))

    def check_input(self, model_input: Any) -> np.ndarray:
        """The request as one (B, C, H, W) float32 array in channel order, or a :class:`ServingInputError`."""
        if not isinstance(model_input, Mapping):
            raise ServingInputError(
                f"model input: expected a mapping of channel name -> (batch, height, width) array, "
                f"got {type(model_input).__name__}"
            )
        missing = [c for c in self.inputs if c not in model_input]
        extra = sorted(str(k) for k in model_input if k not in self.inputs)
        if missing or extra:
            parts = ([f"missing channel(s) {', '.join(missing)}"] if missing else []) + (
                [f"unknown channel(s) {', '.join(extra)}"] if extra else []
            )
            raise ServingInputError(f"model input: {'; '.join(parts)} (expected {', '.join(self.inputs)})")
        arrays = []
        for name in self.inputs:
            problem = non_number(model_input[name], max_depth=CHANNEL_DIMS)
            if problem is not None:
                raise ServingInputError(f"model input: channel {name} {problem}")
            try:
                a = np.asarray(model_input[name], dtype=np.float32)
            except (TypeError, ValueError) as exc:
                raise ServingInputError(f"model input: channel {name} is not a numeric array ({exc})") from exc
            if a.ndim != 3 or min(a.shape) < 1:
                raise ServingInputError(
                    f"model input: channel {name} must be a non-empty (batch, height, width) array, got shape {a.shape}"
                )
            if arrays and a.shape != arrays[0].shape:
                raise ServingInputError(
                    f"model input: channel {name} has shape {a.shape}, {self.inputs[0]} has {arrays[0].shape}"
                )
            if not np.isfinite(a).all():
                raise ServingInputError(f"model input: channel {name} has non-finite values (use 0 for no data)")
            arrays.append(a)
        return np.stack(arrays, axis=1)

    def check_rows(self, frame: pd.DataFrame) -> list[np.ndarray]:
        """A DataFrame (one patch per row, a (height, width) array per channel cell) as checked batches.

        Returns (B, C, H, W) float32 batches in row order: one when every row has the same size, else
        one per row. Columns the model does not take are ignored, as MLflow's signature does.
        """
        missing = [c for c in self.inputs if c not in frame.columns]
        if missing:
            raise ServingInputError(f"model input: missing channel(s) {', '.join(missing)} "
                                    f"(expected {', '.join(self.inputs)})")  # fmt: skip
        if not len(frame):
            raise ServingInputError("model input: no rows")
        columns = {name: [_row_cell(name, value) for value in frame[name]] for name in self.inputs}
        if all(len({a.shape for a in column}) == 1 for column in columns.values()):
            return [self.check_input({n: np.stack(c) for n, c in columns.items()})]
        return [self.check_input({n: c[i][None] for n, c in columns.items()}) for i in range(len(frame))]

    def predict(
        self,
        context: mlflow.pyfunc.PythonModelContext | None,
        model_input,  # noqa: ANN001
        params: dict[str, Any] | None = None,
    ) -> dict[str, np.ndarray]:
        """Class maps for patches: ``{"SIC", "SOD", "FLOE"}`` -> uint8 (B, H, W), or per row (H, W) arrays.

        Args:
            context: MLflow's model context (unused once loaded).
            model_input: channel name -> float32 (B, H, W) standard-scaled inputs, every channel of the
                model; or a DataFrame with one patch per row (a (H, W) array per channel column).
            params: unused. Loaded with ``model_config={"per_row": True}``, each chart is a 1-D object array
                of (H, W) arrays, one per row (also what rows of different sizes give).
        """
        import pandas as pd

        if self.network is None or self.config is None:
            raise AutoiceError("AutoiceModel: no network loaded (load it with mlflow.pyfunc.load_model)")
        if isinstance(model_input, pd.DataFrame):
            batches = self.check_rows(model_input)
        else:
            batches = [self.check_input(model_input)]
        per_row = self.per_row or len(batches) > 1
        outputs = [self._classes(x) for x in batches]
        if not per_row:
            return outputs[0]
        return {chart: _rows([row for out in outputs for row in out[chart]]) for chart in schema.CHARTS}

    def _classes(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """uint8 (B, H, W) class maps of a checked (B, C, H, W) batch.

        Each patch is predicted as `autoice predict` runs a scene: one pass with the model's inference
        options (mirrored edge context, water rule), so the served model draws the same maps.
        """
        from autoice.inference import model_options, predict_scene

        opts = model_options(self.config)
        outs = [predict_scene(self.network, patch, **opts, tile=None).classes for patch in x]
        return {chart: np.stack([o[chart] for o in outs]) for chart in schema.CHARTS}


def _rows(arrays: list[np.ndarray]) -> np.ndarray:
    """A 1-D object array of per-row arrays: pandas would stack a list of equal shapes into one 3-D array."""
    out = np.empty(len(arrays), dtype=object)
    for i, a in enumerate(arrays):  # one by one: a slice assignment would try to broadcast them
        out[i] = a
    return out


def _row_cell(name: str, value: Any) -> np.ndarray:
    """One DataFrame cell as a (H, W) float32 array, or a :class:`ServingInputError`.

    Cells come as nested lists (MLflow's conversion of a dict of arrays, JSON), 2-D arrays (pandas)
    or object arrays of row arrays (Spark's ``array<array<float>>`` through Arrow).
    """
    if isinstance(value, np.ndarray) and value.dtype == object:
        value = list(value)
    problem = non_number(value, max_depth=ROW_DIMS)
    if problem is not None:
        raise ServingInputError(f"model input: channel {name} {problem}")
    try:
        a = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise ServingInputError(f"model input: channel {name} is not a (height, width) array ({exc})") from exc
    if a.ndim != ROW_DIMS or min(a.shape) < 1:
        raise ServingInputError(f"model input: channel {name} must hold a non-empty (height, width) array per row, "
                                f"got shape {a.shape}")  # fmt: skip
    return a


def model_signature(inputs: list[str]) -> mlflow.models.ModelSignature:
    """One column per named channel in (a (height, width) patch per row); SIC, SOD, FLOE class maps out.

    Input columns are MLflow's ``any``: with a typed array column MLflow would turn a dict of
    (batch, height, width) arrays into one row holding the whole batch, with ``any`` into one row
    per patch, the same rows a DataFrame or Spark gives. Outputs are arrays of arrays of integers
    (Spark: ``array<array<int>>``; uint8 in numpy).
    """
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, DataType, Schema
    from mlflow.types.schema import AnyType, Array

    return ModelSignature(
        inputs=Schema([ColSpec(AnyType(), name) for name in inputs]),
        outputs=Schema([ColSpec(Array(Array(DataType.integer)), chart) for chart in schema.CHARTS]),
    )


def input_example(scene: Path, inputs: list[str], downscale: int, size: int = EXAMPLE_SIZE, mode: str = "nearest"
                  ) -> dict[str, np.ndarray]:  # fmt: skip
    """A real 1 x size x size patch of ``scene`` (model inputs at the model's resolution) per channel.

    The window is the one with the most data (non-zero first channel) among a coarse grid of
    candidates, so the example is not a corner of no-data. Values are rounded to 3 decimals (the
    inputs are standard-scaled: about 0.1 % of their spread) and written as such, which keeps the
    files small: MLflow stores the example twice (as itself and as an indented serving request).
    """
    from autoice.data.inputs import scene_inputs
    from autoice.scenes import open_scene

    with open_scene(scene, check_values=False) as ds:
        x = scene_inputs(ds, inputs, downscale, mode=mode)
    h, w = x.shape[1:]
    sh, sw = min(size, h), min(size, w)
    valid = (x[0] != schema.INPUT_FILL).astype(np.int64)
    best, at = -1, (0, 0)
    for r in np.linspace(0, h - sh, num=min(8, h - sh + 1), dtype=int):
        for c in np.linspace(0, w - sw, num=min(8, w - sw + 1), dtype=int):
            n = int(valid[r : r + sh, c : c + sw].sum())
            if n > best:
                best, at = n, (int(r), int(c))
    r, c = at
    # float64 after rounding: JSON then shows 0.837, not float32's 0.8370000123977661
    return {name: np.round(x[i : i + 1, r : r + sh, c : c + sw].astype(np.float64), 3) for i, name in enumerate(inputs)}


@contextlib.contextmanager
def _in_run(run_id: str) -> Iterator[None]:
    """Make ``run_id`` the active run for a block, then put its status and end time back as they were.

    An active run is what puts a logged model in the run's experiment; a finished training run stays
    finished, with its original end time.
    """
    active = mlflow.active_run()
    if active is not None and active.info.run_id == run_id:
        yield
        return
    client = mlflow.MlflowClient()
    before = client.get_run(run_id).info
    with mlflow.start_run(run_id=run_id, nested=active is not None):
        yield
    if before.status == "RUNNING":
        client.update_run(run_id, status="RUNNING")
    else:
        client.set_terminated(run_id, status=before.status, end_time=before.end_time)


def log_model(checkpoint: Path, *, tracking_uri: str, run_id: str, example_scene: Path, progress: bool = True
              ) -> str:  # fmt: skip
    """Log a checkpoint as the pyfunc model ``model`` of an existing run; returns the model URI.

    The checkpoint goes in slimmed to weights + config + history, the autoice source beside it
    (``code_paths``), requirements pinned explicitly (:mod:`autoice.model_env`), so logging takes
    seconds (the input example, a patch of ``example_scene``, is checked by one prediction). The
    model is logged at the run's step of the checkpoint's epoch (1-based, as the run's metrics), so
    MLflow attaches the metrics of that epoch to the logged model.
    """
    from autoice import model_env
    from autoice.checkpoints import load_checkpoint, network_from_checkpoint, save_checkpoint

    state = load_checkpoint(checkpoint)
    _, cfg = network_from_checkpoint(state, checkpoint)  # a model that could not be served is not logged
    inputs = list(cfg.data.inputs)
    example = input_example(Path(example_scene), inputs, cfg.data.downscale, mode=cfg.data.downscale_mode)
    score = state.get("best_score")
    epoch = int(state["epoch"]) + 1 if state.get("epoch") is not None else None  # checkpoints count from 0
    with tempfile.TemporaryDirectory(prefix="autoice-model-") as tmp, use_store(tracking_uri), _artifact_bars(progress):
        slim = Path(tmp) / "best.pt"
        save_checkpoint(slim, {k: state[k] for k in _KEPT if k in state})
        code = model_env.copy_package(Path(tmp) / "code")
        try:
            with _in_run(run_id):
                info = mlflow.pyfunc.log_model(
                    name=MODEL_NAME,
                    python_model=AutoiceModel(),
                    artifacts={CHECKPOINT_ARTIFACT: str(slim)},
                    code_paths=[str(code)],
                    signature=model_signature(inputs),
                    input_example=example,
                    pip_requirements=model_env.pip_requirements(),
                    step=epoch or 0,
                    model_config={PER_ROW: False},  # declared, so a load may set it
                    metadata={
                        "inputs": inputs,
                        "input_layout": "one (height, width) float32 patch per row and channel, standard-scaled "
                                        "as in the RTT files (0 = no data); or channel -> (batch, height, width)",
                        "sic_mode": cfg.model.sic_mode,
                        "downscale": cfg.data.downscale,
                        "downscale_mode": cfg.data.downscale_mode,
                        "best_score": None if score is None or not math.isfinite(score) else float(score),
                        "epoch": epoch,
                        "autoice_version": _autoice_version(),
                    },
                )
        except MlflowException as exc:
            raise AutoiceError(f"{checkpoint}: could not log the model into run {run_id} ({exc.message})") from exc
    return info.model_uri


def _autoice_version() -> str:
    from autoice import __version__

    return __version__


def _score_of(version: Any) -> float:
    try:
        value = float(version.tags.get(SCORE_TAG, "nan"))
    except ValueError:
        return -math.inf
    return value if not math.isnan(value) else -math.inf


def register(model_uri: str, name: str, *, tracking_uri: str, score: float, alias: str = "champion") -> int:
    """Register a new version of ``name`` tagged ``val_combined=score`` and move ``alias`` to the best version.

    The best version is the one with the highest ``val_combined`` among all versions of ``name``
    (the newest on a tie), so registering a worse model never steals the alias. Returns the new
    version number.
    """
    from mlflow import MlflowClient

    with use_store(tracking_uri):
        client = MlflowClient(tracking_uri=tracking_uri, registry_uri=mlflow.get_registry_uri())
        try:
            mv = mlflow.register_model(model_uri, name, tags={SCORE_TAG: repr(float(score))})
            versions = client.search_model_versions(f"name = '{name}'")
            best = max(versions, key=lambda v: (_score_of(v), int(v.version)))
            client.set_registered_model_alias(name, alias, best.version)
        except MlflowException as exc:
            raise AutoiceError(f"{model_uri}: could not register as {name!r} ({exc.message})") from exc
    return int(mv.version)


def load_model(uri: str, *, tracking_uri: str | None = None, progress: bool = True,
               model_config: dict[str, Any] | None = None) -> mlflow.pyfunc.PyFuncModel:  # fmt: skip
    """Load a logged autoice model (``models:/NAME@ALIAS``, ``models:/NAME/VERSION``, ``runs:/ID/model``).

    The store is only read: one that does not exist is an error naming it, never a new empty store.
    A model from a remote store is downloaded into a temporary folder that is removed once the model
    is in memory (MLflow's own download would leave a copy in /tmp per load). ``progress=False``
    silences MLflow's download bars (``--quiet``); ``model_config`` goes to the model (:data:`PER_ROW`).
    """
    with use_store(tracking_uri), _artifact_bars(progress), tempfile.TemporaryDirectory(prefix="autoice-load-"
                                                                                          ) as tmp:  # fmt: skip
        if uri.startswith(("models:/", "runs:/")):
            _require_stores(uri, explicit=tracking_uri is not None)
        try:
            return mlflow.pyfunc.load_model(uri, dst_path=tmp, model_config=model_config)
        except MlflowException as exc:
            down = unreachable(exc.message)
            if down is not None:
                raise AutoiceError(f"{uri}: cannot reach the MLflow tracking server {mlflow.get_tracking_uri()} "
                                   f"({down})") from exc  # fmt: skip
            raise AutoiceError(f"{uri}: cannot load the model ({exc.message.splitlines()[0]})") from exc
        except OSError as exc:
            raise AutoiceError(f"{uri}: cannot load the model ({exc})") from exc
        except AutoiceError as exc:  # from load_context: the logged checkpoint itself is at fault
            raise AutoiceError(f"{uri}: cannot load the model ({exc})") from exc
        except Exception as exc:  # a damaged MLmodel file: yaml, type and key errors from MLflow's parsing
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise AutoiceError(f"{uri}: not a loadable MLflow model (its MLmodel file is damaged? "
                               f"{type(exc).__name__}: {first})") from exc  # fmt: skip


@contextlib.contextmanager
def _artifact_bars(shown: bool) -> Iterator[None]:
    """MLflow's artifact download progress bars on or off for a block (its documented variable)."""
    name = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    saved = os.environ.get(name)
    if not shown:
        os.environ[name] = "false"
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = saved


def model_version(uri: str, *, tracking_uri: str | None = None) -> str:
    """The registry version a ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION`` URI names, else ''."""
    if not uri.startswith("models:/"):
        return ""
    ref = uri[len("models:/") :].strip("/")
    if "@" in ref:
        name, alias = ref.split("@", 1)
        with use_store(tracking_uri):
            try:
                return str(mlflow.MlflowClient().get_model_version_by_alias(name, alias).version)
            except MlflowException:
                return ""
    parts = ref.split("/")
    return parts[1] if len(parts) == 2 and parts[1].isdigit() else ""


def _require_stores(uri: str, *, explicit: bool) -> None:
    """Refuse to resolve ``uri`` in a local store that does not exist: MLflow would create an empty one.

    ``runs:/`` needs the tracking store; ``models:/`` the registry too (usually the same store).
    The message says which store was looked in, and why there (argument, variable or MLflow's default).
    """
    from autoice.tracking import local_store_fault

    checks = [("MLFLOW_TRACKING_URI", mlflow.get_tracking_uri())]
    if uri.startswith("models:/"):
        checks.append(("MLFLOW_REGISTRY_URI", mlflow.get_registry_uri()))
    for variable, store in checks:
        fault = local_store_fault(store)
        if fault is None:
            continue
        if explicit:
            where = f"looked in the MLflow store {store}"
        elif os.environ.get(variable):  # also what mlflow.set_tracking_uri/set_registry_uri set
            where = f"looked in {variable}={os.environ[variable]}"
        elif variable == "MLFLOW_TRACKING_URI":
            where = f"MLFLOW_TRACKING_URI is not set, so looked in MLflow's default store {store}"
        else:
            where = f"looked in the MLflow registry store {store}"
        raise AutoiceError(f"{uri}: {where}: {fault} (nothing was created); point {variable} at the store the "
                           "model was registered in, e.g. sqlite:///WORKDIR/mlflow.db of its training workdir")


def autoice_wrapper(model: mlflow.pyfunc.PyFuncModel, uri: str) -> AutoiceModel:
    """The loaded :class:`AutoiceModel` inside a pyfunc model, or a one-line error for any other model."""
    try:
        wrapper = model.unwrap_python_model()
    except MlflowException:  # another flavour (sklearn, ...)
        wrapper = None
    if not isinstance(wrapper, AutoiceModel) or wrapper.network is None or wrapper.config is None:
        raise AutoiceError(f"{uri}: not an autoice model")
    return wrapper


def load_network(uri: str, *, tracking_uri: str | None = None) -> tuple[torch.nn.Module, Config]:
    """The network (eval mode, CPU) and config inside a logged model, e.g. for tiled whole-scene prediction."""
    wrapper = autoice_wrapper(load_model(uri, tracking_uri=tracking_uri), uri)
    return wrapper.network, wrapper.config
