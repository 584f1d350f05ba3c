"""Predict whole test scenes into ``upload_package.nc``.

Each ``*_prep.nc`` is read once at the model's resolution (``downscale`` x 80 m, every d-th pixel),
run through the network(s) in tiles sized to a memory budget (overlap-blended, optional flip TTA
and checkpoint ensembles), turned into classes at that resolution and only then brought back to
the scene's exact 80 m shape by nearest-neighbour repetition — the cheap order of operations
(the winner's code upsampled class scores to 80 m before deciding, which is most of its run time).
The submission is written through :class:`autoice.submission.SubmissionWriter` and checked by
:func:`autoice.submission.validate_submission` before :func:`predict` returns.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from autoice import schema
from autoice.atomic import ensure_folder, work_folder
from autoice.config import Config
from autoice.errors import AutoiceError, SceneError, SubmissionError, where
from autoice.scenes import SceneKind, find_scenes, open_scene

PathLike = str | os.PathLike[str]


@dataclass
class LoadedModels:
    """Networks of one configuration (an ensemble when several) and where they came from."""

    networks: list[torch.nn.Module]
    config: Config
    sources: list[str]
    versions: list[str] = field(default_factory=list)  # registry version per source ('' when not registered)
    run_ids: list[str] = field(default_factory=list)  # MLflow run that logged or trained it ('' when unknown)


@dataclass
class PredictResult:
    """What ``predict`` wrote."""

    output: Path
    scenes: list[str] = field(default_factory=list)
    uncertainty: list[Path] = field(default_factory=list)


def resolve_checkpoint(spec: PathLike) -> Path:
    """A training workdir (its best, else last checkpoint) or a checkpoint file."""
    p = Path(spec)
    if p.is_dir():
        for name in ("best.pt", "last.pt"):
            if (p / "checkpoints" / name).is_file():
                return p / "checkpoints" / name
        raise AutoiceError(f"{p}: a folder without checkpoints/best.pt or checkpoints/last.pt (not a training workdir)")
    if not p.is_file():
        raise AutoiceError(f"{p}: no such model (give a training workdir, a .pt checkpoint or an MLflow models:/ URI)")
    return p


def load_models(specs: Sequence[str], device: torch.device | str = "cpu", *, tracking_uri: str | None = None,
                progress: bool = True) -> LoadedModels:  # fmt: skip
    """Load one model or an ensemble; every member must share inputs, resolution and SIC mode.

    MLflow URIs (``models:/NAME@alias``, ``runs:/<id>/model``) resolve against ``tracking_uri``
    (default: ``MLFLOW_TRACKING_URI``). A checkpoint whose config does not fit its weights, or whose
    weights are not finite, is refused here, before any scene is read.
    """
    from autoice.checkpoints import load_checkpoint, network_from_checkpoint

    nets, configs, sources, versions, run_ids = [], [], [], [], []
    for spec in specs:
        version = ""
        if str(spec).startswith(("models:/", "runs:/")):
            from autoice.serving import autoice_wrapper, load_model, model_version

            pyfunc = load_model(str(spec), tracking_uri=tracking_uri, progress=progress)
            wrapper = autoice_wrapper(pyfunc, str(spec))
            net, cfg, run_id = wrapper.network, wrapper.config, pyfunc.metadata.run_id or ""
            version = model_version(str(spec), tracking_uri=tracking_uri)
        else:
            path = resolve_checkpoint(spec)
            state = load_checkpoint(path, map_location="cpu")
            net, cfg = network_from_checkpoint(state, path)
            run_id, spec = str(state.get("run_id") or ""), str(path)
        nets.append(net.to(device).eval())
        configs.append(cfg)
        sources.append(str(spec))
        versions.append(version)
        run_ids.append(run_id)
    for cfg, src in zip(configs[1:], sources[1:], strict=True):
        differences = _ensemble_differences(configs[0], sources[0], cfg, src)
        if differences:
            raise AutoiceError(f"{src}: cannot ensemble with {sources[0]}: the models disagree on "
                               + "; ".join(differences))  # fmt: skip
    return LoadedModels(nets, configs[0], sources, versions, run_ids)


def _ensemble_differences(a: Config, a_src: str, b: Config, b_src: str) -> list[str]:
    """What two ensemble members disagree on among the settings their outputs are blended by."""
    out = []
    if a.data.inputs != b.data.inputs:
        only_a = [c for c in a.data.inputs if c not in b.data.inputs]
        only_b = [c for c in b.data.inputs if c not in a.data.inputs]
        parts = ([f"{', '.join(only_a)} only in {a_src}"] if only_a else []) + (
            [f"{', '.join(only_b)} only in {b_src}"] if only_b else [])  # fmt: skip
        out.append(f"data.inputs ({' and '.join(parts) or 'the same channels in another order'})")
    for key, va, vb in (("data.downscale", a.data.downscale, b.data.downscale),
                        ("model.sic_mode", a.model.sic_mode, b.model.sic_mode)):  # fmt: skip
        if va != vb:
            out.append(f"{key} ({va} in {a_src}, {vb} in {b_src})")
    return out


#: Memory of the process before any scene (Python, torch, netCDF): not available to tiles.
BASE_MEMORY = 0.5e9
#: Largest tile on a CPU: cache-sized tiles run faster there (full-size baseline scene: 256 px 43 s, 1024 px 72 s).
CPU_MAX_TILE = 512


def choose_tile(cfg: Config, shape: tuple[int, int], budget_bytes: float, *, max_tile: int = 8192) -> int:
    """Tile side for a scene of ``shape`` (model resolution) within a memory budget.

    The whole scene in one pass when it fits the budget and is at most twice ``max_tile`` (no
    overlap work); otherwise the largest tile up to ``max_tile`` that fits. A rough model of
    eval-mode memory: per tile pixel, the input channels, ~6 feature maps of the first level
    (deeper levels are 4x smaller each), the heads and their softmax; per strip row, the blended
    scores of every chart over the full width.
    """
    from autoice.inference import channels_per_chart

    f0 = cfg.model.filters[0]
    k = sum(channels_per_chart(cfg.model.sic_mode).values())
    per_px = 4 * (len(cfg.data.inputs) + 6 * f0 + 2 * k) * 1.5
    multiple = 2 ** (len(cfg.model.filters) - 1)
    height, width = shape

    def fits(th: int, tw: int) -> bool:
        return per_px * th * tw + 4 * (k + 2) * (th + 64) * width <= budget_bytes

    if max(height, width) <= 2 * max_tile and fits(height, width):
        return max(height, width)
    tile = max_tile
    while tile > 256 and not fits(tile, tile):
        tile //= 2
    return max(multiple, tile - tile % multiple)


def _scene_files(data: PathLike | Sequence[PathLike]) -> list[Path]:
    files = [f for f in find_scenes(data, [SceneKind.TEST]) if not f.name.endswith(schema.REFERENCE_SUFFIX)]
    if not files:
        raise SceneError(where(data), "no test scenes (*_prep.nc) found")
    return files


def predict(
    model: str | Sequence[str],
    data: PathLike | Sequence[PathLike],
    output: PathLike,
    *,
    tta: bool = False,
    max_memory_gb: float = 3.0,
    uncertainty_dir: PathLike | None = None,
    device: str = "auto",
    progress: bool = True,
    tracking_uri: str | None = None,
    workers: int = 1,
    scheduler: str | None = None,
) -> PredictResult:
    """Predict every ``*_prep.nc`` in ``data`` into the submission file ``output``.

    Each scene is one task (:func:`_predict_one`, in ``workers`` local processes or on the Dask
    cluster at ``scheduler``): it writes the scene's classes at the model's resolution into a hidden
    folder beside ``output``; this process then assembles and validates the submission. The
    networks travel once per worker process, and each worker runs them on its own ``device``
    (``cuda`` on GPU workers, one model per worker).

    A bad scene does not stop the others: every good one is predicted (its uncertainty map
    written), then :class:`~autoice.errors.ScenesFailed` names each bad one and ``output`` is not
    written, since a submission without every test scene is invalid.
    """
    import multiprocessing
    import re

    from autoice.batch import run_each
    from autoice.data.inputs import upsample_to
    from autoice.devices import select_device
    from autoice.submission import SubmissionWriter, validate_submission

    specs = [model] if isinstance(model, str) else list(model)
    # checked here once; on a cluster the workers' devices count, not this machine's
    dev = select_device(re.sub(r"^cuda(:\d+)?$", "cpu", device) if scheduler else device)
    loaded = load_models(specs, "cpu" if scheduler or workers > 1 else dev, tracking_uri=tracking_uri,
                         progress=progress)
    d = loaded.config.data.downscale
    files = _scene_files(data)
    if uncertainty_dir is not None:
        ensure_folder(uncertainty_dir)  # a folder problem is one error, not one per scene
    result = PredictResult(Path(output))
    shapes: dict[str, tuple[int, int]] = {}
    opts = {"tta": tta, "budget": max_memory_gb * 1e9, "device": device,
            "uncertainty_dir": None if uncertainty_dir is None else str(uncertainty_dir)}  # fmt: skip
    with work_folder(output) as parts, SubmissionWriter(output) as writer:  # atomic: a failure leaves no file
        arrived: dict[int, ScenePrediction] = {}

        def assemble(i: int, scene: ScenePrediction) -> None:
            """Add scenes to the submission in job order, while the workers predict the next ones."""
            arrived[i] = scene
            while len(result.scenes) in arrived:
                done = arrived.pop(len(result.scenes))
                classes = _read_part(done.part)
                for chart in schema.CHARTS:
                    writer.add(done.key, chart, upsample_to(done.shape, classes[chart], d))
                shapes[done.key] = done.shape
                result.scenes.append(done.key)

        writer.set_provenance(_provenance(loaded, files))
        jobs = [(f, str(parts), opts) for f in files]
        batch = run_each(_predict_one, jobs, [str(f) for f in files], desc="predict", progress=progress,
                         workers=workers, scheduler=scheduler, shared=loaded, on_result=assemble,
                         mp_context=multiprocessing.get_context("spawn"),
                         outputs=[parts] + ([uncertainty_dir] if uncertainty_dir is not None else []))  # fmt: skip
        result.uncertainty = [s.uncertainty for s in batch.done() if s.uncertainty is not None]
        # raising here drops the partial file
        batch.check(what="test scenes", outcome=f"no submission written ({Path(output).name} needs every scene)",
                    partial=result)  # fmt: skip
    problems = validate_submission(output, shapes)
    if problems:
        raise SubmissionError(output, "written submission fails validation: " + "; ".join(problems[:5]))
    return result


def _provenance(loaded: LoadedModels, files: list[Path]) -> dict[str, str]:
    """What made the submission, for its global attributes (one entry per ensemble member, '; '-joined)."""
    import datetime as dt

    from autoice import __version__

    return {
        "autoice_model": "; ".join(loaded.sources),
        "autoice_model_version": "; ".join(v or "-" for v in loaded.versions),
        "autoice_run_id": "; ".join(r or "-" for r in loaded.run_ids),
        "source": f"autoice {__version__}",
        "date_created": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "autoice_scenes": ", ".join(f.name[: schema.SCENE_KEY_LENGTH] for f in files),
    }


@dataclass(frozen=True)
class ScenePrediction:
    """What one scene's task left on shared storage for the client."""

    key: str
    shape: tuple[int, int]  #: the scene's 80 m grid
    part: Path  #: classes per chart at the model's resolution (``.npz``)
    uncertainty: Path | None = None


def _predict_one(loaded: LoadedModels, path: Path, parts: str, opts: dict[str, Any]) -> ScenePrediction:
    """Predict one scene into ``parts`` (a task: run again after a worker died, it writes the same files)."""
    import socket

    from autoice.atomic import atomic_output
    from autoice.data.inputs import scene_inputs
    from autoice.devices import select_device
    from autoice.errors import ConfigError
    from autoice.inference import model_options, predict_scene

    try:
        dev = select_device(opts["device"])
    except ConfigError as exc:  # a worker without the GPU asked for
        raise SceneError(path, f"{exc} on {socket.gethostname()}") from exc
    networks = [net.to(dev) for net in loaded.networks]  # in place: moved by this worker's first scene only
    cfg = loaded.config
    d = cfg.data.downscale
    with open_scene(path, check_values=False) as ds:
        shape = (ds.sizes[schema.FULL_DIMS[0]], ds.sizes[schema.FULL_DIMS[1]])
        inputs = scene_inputs(ds, cfg.data.inputs, d, dtype=cfg.data.cache_dtype,
                              mode=cfg.data.downscale_mode)  # as in training
    key = path.name[: schema.SCENE_KEY_LENGTH]
    tile = choose_tile(cfg, inputs.shape[1:], opts["budget"] - BASE_MEMORY - inputs.nbytes,
                       max_tile=CPU_MAX_TILE if dev.type == "cpu" else 8192)  # fmt: skip
    want_uncertainty = opts["uncertainty_dir"] is not None
    out = predict_scene(networks, inputs, **model_options(cfg), device=dev, tile=tile, tta=opts["tta"],
                        amp=cfg.train.amp, uncertainty=want_uncertainty)  # fmt: skip
    del inputs
    part = Path(parts) / f"{key}.npz"
    with atomic_output(part) as tmp, tmp.open("wb") as fh:
        np.savez(fh, **{c: out.classes[c] for c in schema.CHARTS})
    uncertainty = None
    if want_uncertainty and out.uncertainty is not None:
        uncertainty = _write_uncertainty(Path(opts["uncertainty_dir"]), key, out.uncertainty, cfg)
    return ScenePrediction(key, (int(shape[0]), int(shape[1])), part, uncertainty)


def _read_part(path: Path) -> dict[str, np.ndarray]:
    """A scene's classes as its task wrote them."""
    try:
        with np.load(path) as z:
            return {c: z[c] for c in schema.CHARTS}
    except (OSError, KeyError, ValueError) as exc:
        raise SubmissionError(path, f"a worker's result cannot be read (shared storage?): {exc}") from exc


def _write_uncertainty(folder: Path, key: str, maps: dict[str, np.ndarray], cfg: Config) -> Path:
    """Per-pixel uncertainty at the model's resolution (``pixel_spacing`` attribute = 80 m x downscale)."""
    import xarray as xr

    from autoice.scenes import write_netcdf

    dims = ("lines", "samples")
    desc = {c: "entropy of the blended class probabilities (nats)" for c in schema.CHARTS}
    if cfg.model.sic_mode == "regression":
        desc["SIC"] = "standard deviation of the SIC value across ensemble members and flips (classes)"
    ds = xr.Dataset(
        {c: (dims, maps[c].astype(np.float32), {"description": desc[c]}) for c in schema.CHARTS},
        attrs={"scene_id": key, "downscale": cfg.data.downscale,
               "pixel_spacing": schema.RTT_PIXEL_SPACING * cfg.data.downscale},  # fmt: skip
    )
    path = folder / f"{key}_uncertainty.nc"
    write_netcdf(ds, path)
    return path
