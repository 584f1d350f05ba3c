"""The training loop, in plain PyTorch: one process, or DDP under ``torchrun``.

    autoice train --preset demo --data DIR --workdir runs/demo
    torchrun --nproc_per_node 2 -m autoice train --preset mmseaice --data DIR --workdir runs/mm

Everything of a run lives in its workdir: ``config.yaml`` (resolved config), ``checkpoints/last.pt``
(every epoch, atomic) and ``checkpoints/best.pt`` (best validation combined score), ``cache/`` (patch
cache, unless ``cache_dir`` is given) and the MLflow store (``mlflow.db`` + ``mlartifacts/``).
Under DDP every rank samples different patches; rank 0 alone validates, logs and saves.
``resume=True`` restores model, optimizer, scheduler, grad scaler, RNG states and the epoch from
``last.pt`` and continues the same MLflow run, so a killed run ends with the same weights as an
uninterrupted one. What a checkpoint holds is in :mod:`autoice.checkpoints`; devices and the
process group are in :mod:`autoice.devices`.

:func:`train` reads top to bottom as the run goes: prepare the data, build the model and optimizer
(or restore them), start tracking, then per epoch train, validate, log and save, and finish.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from autoice import schema
from autoice.atomic import ensure_folder, require_space
from autoice.batch import run_each
from autoice.checkpoints import load_checkpoint, make_checkpoint, rng_state, save_checkpoint, set_rng_state
from autoice.config import Config, DataConfig, config_from_dict, save_config
from autoice.devices import (
    Dist,
    amp_dtype,
    barrier,
    broadcast_flag,
    broadcast_values,
    gather,
    init_distributed,
    replica_max_diff,
    select_device,
    shutdown,
)
from autoice.errors import AutoiceError, ConfigError, SceneError, where
from autoice.scenes import SceneKind, find_scenes, open_scene, read_variable
from autoice.tracking import NullTracker, Tracker


@dataclass
class TrainResult:
    """Where a finished run left its things, and how well it did."""

    workdir: Path
    last_checkpoint: Path
    best_checkpoint: Path | None
    best_score: float
    run_id: str | None
    history: list[dict[str, float]] = field(default_factory=list)
    replica_max_diff: float | None = None
    tracking_uri: str | None = None  # the store the run is in (rank 0)
    run_url: str | None = None  # the run's page, when the store is a tracking server


@dataclass
class _Scenes:
    """The run's training and validation scenes, checked and cached (the same on every rank)."""

    train_files: list[Path]
    val_files: list[Path]
    train: list[Any]  # CachedScene, in train_files order
    val: list[Any]  # CachedScene, in val_files order
    rule: str  # how the validation scenes were chosen: printed, and the run's validation_rule tag
    fingerprint: str  # dataset_fingerprint of all of them


@dataclass
class _Run:
    """One run's state, handed from step to step (nanoGPT keeps the same things as module globals)."""

    cfg: Config
    dist: Dist
    device: torch.device
    work: Path
    scenes: _Scenes
    model: torch.nn.Module  # the bare model: validated and saved
    net: torch.nn.Module  # what trains: the model, or its DDP wrapper
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LRScheduler | None
    scaler: torch.amp.GradScaler
    use_amp: bool
    amp_dtype: torch.dtype
    start_epoch: int = 0
    step: int = 0  # optimizer steps so far
    best: float = -float("inf")  # best validation combined score (rank 0)
    history: list[dict[str, float]] = field(default_factory=list)  # one record per epoch
    run_id: str | None = None  # the MLflow run to continue on resume
    tracker: NullTracker = field(default_factory=NullTracker)
    first_pred: dict[str, np.ndarray] | None = None  # best validation's first scene, for the picture
    t_start: float = 0.0  # perf_counter when the epochs start
    trained_s: float = 0.0  # training time before a resume, so elapsed_s keeps counting
    ema: torch.optim.swa_utils.AveragedModel | None = None  # weight averages (train.ema_decay > 0)
    class_weights: dict[str, torch.Tensor] | None = None  # cross-entropy class weights (train.class_weights)
    task_weights: dict[str, float] = field(default_factory=dict)  # this epoch's (train.task_weighting)
    progress: bool = True  # progress bars (ours and MLflow's)

    @property
    def evaluated(self) -> torch.nn.Module:
        """The model that is validated and saved as ``model``: the weight average when there is one."""
        return self.ema.module if self.ema is not None else self.model

    @property
    def last_path(self) -> Path:
        """Written after every epoch; what a resume reads."""
        return self.work / "checkpoints" / "last.pt"

    @property
    def best_path(self) -> Path:
        """Written when validation improves."""
        return self.work / "checkpoints" / "best.pt"


def dataset_fingerprint(files: list[Path]) -> str:
    """Hash of the scene names and sizes (a cheap identity of the data a run saw)."""
    h = hashlib.sha256()
    for f in sorted(files):
        h.update(f"{f.name}:{f.stat().st_size};".encode())
    return h.hexdigest()[:16]


def train(
    cfg: Config,
    data: Any,
    workdir: str | os.PathLike[str],
    *,
    val_data: Any = None,
    cache_dir: str | os.PathLike[str] | None = None,
    resume: bool = False,
    progress: bool = True,
    register: str | None = None,
    scheduler: str | None = None,
) -> TrainResult:
    """Train a model as configured; see the module docstring for what lands in ``workdir``.

    With ``register``, the best checkpoint is logged as an MLflow pyfunc model in the run and
    registered under that name; the alias ``champion`` points at the best version by validation score.
    With ``scheduler`` (a Dask scheduler's address) the patch cache is built on that cluster.
    """
    from autoice.locks import hold

    work = Path(workdir)
    rank0 = int(os.environ.get("RANK", "0")) == 0  # before the process group exists: torchrun's env
    with hold(work, "autoice train") if rank0 else contextlib.nullcontext():
        return _train(cfg, data, work, val_data=val_data, cache_dir=cache_dir, resume=resume, progress=progress,
                      register=register, scheduler=scheduler)  # fmt: skip


def _train(cfg: Config, data: Any, work: Path, *, val_data: Any, cache_dir: Any, resume: bool, progress: bool,
           register: str | None, scheduler: str | None = None) -> TrainResult:  # fmt: skip
    """:func:`train`, with the workdir held."""
    from autoice.data.loader import make_loader

    state = load_checkpoint(work / "checkpoints" / "last.pt") if resume else None
    if state is not None and cfg is None:
        cfg = config_from_dict(state["config"])
    if state is not None:
        _check_resumable(cfg, state, work / "checkpoints" / "last.pt")
    d = init_distributed(cfg.train.device)
    device = select_device(cfg.train.device, d.local_rank)
    _check_step_memory(cfg, device)
    _seed(cfg.train.seed + d.rank)
    scenes = _prepare_data(cfg, d, work, data, val_data, cache_dir, progress=progress, scheduler=scheduler)
    run = _build_training(cfg, d, device, work, scenes, state)
    run.progress = progress
    if d.main:  # checkpoints hold model, EMA and Adam's two moments; the store needs a few MiB
        n_params = sum(p.numel() for p in run.model.parameters())
        require_space(work, (8 << 20) + 2 * 4 * 4 * n_params, "the run's checkpoints and MLflow store")
    status = "FAILED"  # any error once the run exists ends it FAILED; Ctrl-C or a signal (SIGTERM) KILLED
    try:
        _start_tracking(run)
        run.t_start = time.perf_counter()
        loader = make_loader(scenes.train, cfg.data, batch_size=cfg.train.batch_size, seed=cfg.train.seed,
                             rank=d.rank, world_size=d.world_size, batches=cfg.train.batches_per_epoch)  # fmt: skip
        for epoch in range(run.start_epoch, cfg.train.epochs):
            record = _train_epoch(run, loader, epoch, progress=progress)
            over_budget = _over_budget(run, record)
            improved = _maybe_validate(run, record, epoch, last=epoch + 1 == cfg.train.epochs or over_budget)
            run.history.append(record)
            _log_epoch(run, record, epoch)
            _save(run, epoch, improved)
            if over_budget:
                _say(d, f"time budget of {cfg.train.time_budget_min:g} min reached after epoch {epoch + 1}")
                break
        replica_diff = _finish(run, register)
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        if d.main:
            run.tracker.end(status)
        if status == "FINISHED":  # leave together: a rank that tore its gloo group down while rank 0 was
            barrier(d)  # still logging the model sometimes aborted at exit ("terminate called without ...")
        shutdown(d)
    best = run.best_path if run.best_path.exists() else None
    url = run.tracker.run_url() if isinstance(run.tracker, Tracker) else None
    return TrainResult(work, run.last_path, best, run.best, run.tracker.run_id, run.history, replica_diff,
                       tracking_uri=getattr(run.tracker, "uri", None), run_url=url)  # fmt: skip


# --- the steps of train(), in the order it calls them ---------------------------------------------


def _check_resumable(cfg: Config, state: dict[str, Any], path: Path) -> None:
    """Refuse a resume whose config cannot take the checkpoint's weights, before anything is written.

    (Otherwise config.yaml would be rewritten first, and every later plain ``--resume`` would fail too.)
    Runs before the seeding, so the model it builds draws nothing that the run will see.
    """
    from autoice.models.unet import build_model

    try:
        build_model(cfg).load_state_dict(state.get("train_model", state["model"]))
    except (RuntimeError, KeyError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise AutoiceError(f"{path}: its weights do not fit this config (model.* or data.inputs changed? "
                           f"resume with the run's own config.yaml): {first}") from exc  # fmt: skip


def _seed(seed: int) -> None:
    """Seed Python, numpy and torch before anything draws (``cfg.train.seed + rank``: ranks differ)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _prepare_data(cfg: Config, d: Dist, work: Path, data: Any, val_data: Any, cache_dir: Any, *,
                  progress: bool, scheduler: str | None = None) -> _Scenes:  # fmt: skip
    """Check the scenes, choose the validation ones and build the patch cache.

    Rank 0 saves ``config.yaml`` and builds the cache (with progress) while the others wait at the
    barrier; then every rank opens the finished cache.
    """
    from autoice.data.cache import build_cache

    train_files, val_files, rule = _choose_scenes(cfg, data, val_data)
    _say(d, rule)
    files = train_files + val_files
    cache = Path(cache_dir) if cache_dir is not None else work / "cache"
    if d.main:
        ensure_folder(work)
        save_config(cfg, work / "config.yaml")

    def cached(paths: list[Path], data_cfg: DataConfig) -> list[Any]:
        """Rank 0 builds the cache entries (with progress) while the others wait; then every rank opens them."""
        if d.main:
            build_cache(paths, data_cfg, cache, progress=progress, scheduler=scheduler)
        barrier(d)
        return build_cache(paths, data_cfg, cache, progress=False)

    by_path = {c.path.resolve(): c for c in cached(files, cfg.data)}
    train_scenes: list[Any] = []
    for factor in training_factors(cfg.data):  # mixed downscaling: the training scenes at every factor
        if factor == cfg.data.downscale:
            train_scenes += [by_path[f.resolve()] for f in train_files]
        else:
            train_scenes += cached(train_files, dataclasses.replace(cfg.data, downscale=factor))
    return _Scenes(train_files, val_files, train_scenes, [by_path[f.resolve()] for f in val_files], rule,
                   dataset_fingerprint(files))  # fmt: skip


def training_factors(data_cfg: DataConfig) -> list[int]:
    """The downscaling factors training patches come from: ``data.train_downscales`` or ``data.downscale``."""
    return sorted(set(data_cfg.train_downscales)) or [data_cfg.downscale]


def _choose_scenes(cfg: Config, data: Any, val_data: Any) -> tuple[list[Path], list[Path], str]:
    """Training files, validation files and a sentence saying how the latter were chosen.

    Given ``val_data`` validates on it; otherwise ``cfg.data.val_rule`` holds scenes out of ``data``.
    """
    files = _scene_files(data, SceneKind.TRAIN)
    if val_data is not None:
        val_files = _scene_files(val_data, SceneKind.TRAIN)
        return files, val_files, f"validation: the {len(val_files)} scenes of the given validation data"
    from autoice.splits import validation_split

    return validation_split(files, cfg.data.val_rule, val_fraction=cfg.data.val_fraction, seed=cfg.train.seed)


def _scene_files(data: Any, kind: SceneKind) -> list[Path]:
    """The ready-to-train scenes under ``data``, structure-checked now so that a bad file fails early."""
    files = find_scenes(data, [kind])
    files = [f for f in files if schema.parse_rtt_name(f.name) and not f.name.endswith(schema.REFERENCE_SUFFIX)]
    if not files:
        raise SceneError(where(data), "no ready-to-train scenes (*_prep.nc) found")
    # structure only (seconds), every file, so that one run names every bad one; the cache build
    # checks chart values and data when it reads a scene
    checked = run_each(_check_structure, [(f,) for f in files], [str(f) for f in files], progress=False)
    checked.check(outcome="fix or remove them; nothing was trained")
    return files


def _check_structure(path: Path) -> None:
    with open_scene(path, SceneKind.TRAIN, check_values=False):
        pass


def _build_training(cfg: Config, d: Dist, device: torch.device, work: Path, scenes: _Scenes,
                    state: dict[str, Any] | None) -> _Run:  # fmt: skip
    """Model, optimizer, scheduler and grad scaler; restored from ``state`` on resume; DDP-wrapped last.

    The model is built (drawing its initial weights) before a resume puts the RNG states back, as
    in the uninterrupted run, so the following draws are the same.
    """
    from autoice.models.unet import build_model

    # channels-last: oneDNN (CPU) and cuDNN (tensor cores) run convolutions faster in NHWC
    model = build_model(cfg).to(device, memory_format=torch.channels_last)
    opt = _optimizer(cfg, model.parameters())
    sched = _scheduler(cfg, opt)
    dtype = amp_dtype(device) if cfg.train.amp else None  # None: fp32
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    run = _Run(cfg, d, device, work, scenes, model, model, opt, sched, scaler, dtype is not None,
               dtype or torch.float32)
    if cfg.train.ema_decay > 0:
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

        run.ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.train.ema_decay), use_buffers=True)
    if cfg.train.class_weights != "none":
        run.class_weights = _class_weights(scenes.train, device)
        _say(d, "class weights: " + "; ".join(f"{c} " + " ".join(f"{v:.2f}" for v in w.tolist())
                                              for c, w in run.class_weights.items()))  # fmt: skip
    if state is not None:
        _restore(run, state)
    if d.enabled:
        run.net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[d.local_rank]
                                                            if device.type == "cuda" else None)  # fmt: skip
    return run


def _class_weights(train: list[Any], device: torch.device) -> dict[str, torch.Tensor]:
    """``inverse_sqrt`` weights from the label histograms of the cached training scenes (model resolution).

    Every rank caches the same scenes, so every rank computes the same weights.
    """
    from autoice.models.losses import class_weights

    counts = {c: np.zeros(schema.N_CLASSES[c], np.int64) for c in schema.CHARTS}
    for scene in train:
        for i, chart in enumerate(schema.CHARTS):
            b = np.bincount(np.asarray(scene.labels[i]).ravel(), minlength=256)
            counts[chart] += b[: schema.N_CLASSES[chart]]
    return {c: w.to(device) for c, w in class_weights(counts).items()}


def step_memory_bytes(cfg: Config) -> int:
    """A low estimate of one training step's memory: the batch plus the U-Net's stored activations.

    Measured peaks on CPU are about 11x ``batch x patch^2 x 4 B x (channels + sum_l filters_l / 4^l)``
    (mmseaice preset: 2.6 GiB at batch 16, patch 256); 8x keeps the estimate below every measurement.
    """
    per_pixel = len(cfg.data.inputs) + sum(f / 4**level for level, f in enumerate(cfg.model.filters))
    return int(8 * cfg.train.batch_size * cfg.data.patch_size**2 * 4 * per_pixel)


def _check_step_memory(cfg: Config, device: torch.device) -> None:
    """Refuse a batch that cannot fit (``data.patch_size=4096`` once ate 21 GB before the OS killed it)."""
    from autoice.devices import available_bytes

    need, have = step_memory_bytes(cfg), available_bytes(device)
    if have is not None and need > have:
        raise ConfigError(f"data.patch_size {cfg.data.patch_size} with train.batch_size {cfg.train.batch_size} needs "
                          f"about {need / 2**30:.1f} GiB per training step, {device} has {have / 2**30:.1f} GiB "
                          "available; lower data.patch_size or train.batch_size")  # fmt: skip


def _optimizer(cfg: Config, params: Any) -> torch.optim.Optimizer:
    """Adam or SGD with the configured learning rate and weight decay."""
    t = cfg.train
    if t.optimizer == "sgd":
        return torch.optim.SGD(params, lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay)
    return torch.optim.Adam(params, lr=t.lr, weight_decay=t.weight_decay)


def _scheduler(cfg: Config, opt: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler | None:
    """Cosine annealing with warm restarts (stepped per batch, as MMSeaIce), or none."""
    if cfg.train.scheduler == "cosine_warm_restarts":
        period = max(1, cfg.train.restart_epochs * cfg.train.batches_per_epoch)  # stepped per batch
        return torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=period)
    return None


def _restore(run: _Run, state: dict[str, Any]) -> None:
    """Put a ``last.pt`` back: weights, optimizer, scheduler, scaler, counters, history, run id, RNG."""
    run.model.load_state_dict(state.get("train_model", state["model"]))
    if run.ema is not None:
        if "ema" not in state:
            raise AutoiceError(f"{run.last_path}: written without train.ema_decay; cannot resume with it")
        run.ema.load_state_dict(state["ema"])
    run.opt.load_state_dict(state["optimizer"])
    if run.sched is not None and state.get("scheduler"):
        run.sched.load_state_dict(state["scheduler"])
    run.scaler.load_state_dict(state["scaler"])
    run.start_epoch, run.step, run.best = state["epoch"] + 1, state["step"], state["best_score"]
    run.history, run.run_id = state["history"], state.get("run_id")
    run.trained_s = run.history[-1].get("elapsed_s", 0.0) if run.history else 0.0
    set_rng_state(state["rng"][min(run.dist.rank, len(state["rng"]) - 1)])


def _start_tracking(run: _Run) -> None:
    """Rank 0 opens the MLflow run (or reopens the resumed one) and logs the config and the data.

    The tags say which code, data and validation rule the run used; the training and validation
    scenes are the run's inputs (``mlflow.log_input``, contexts ``training`` and ``validation``).
    """
    from autoice.tracking import Tracker, git_commit, tracking_uri

    if not run.dist.main:
        return
    cfg, s = run.cfg, run.scenes
    tables = [(scene_dataset(files, name), name) for files, name in ((s.train_files, "training"),
                                                                    (s.val_files, "validation")) if files]  # fmt: skip
    run.tracker = Tracker(tracking_uri(run.work), run_id=run.run_id,
                          run_name=f"{cfg.preset}-{time.strftime('%Y%m%d-%H%M%S')}", input_tables=tables,
                          tags={"mlflow.source.git.commit": git_commit(), "dataset_fingerprint": s.fingerprint,
                                "preset": cfg.preset, "n_train_scenes": str(len(s.train_files)),
                                "n_val_scenes": str(len(s.val_files)), "world_size": str(run.dist.world_size),
                                "validation_rule": s.rule})  # fmt: skip
    run.tracker.log_params(cfg.flat())
    run.tracker.log_artifact(run.work / "config.yaml")


def scene_dataset(files: list[Path], name: str) -> Any:
    """An ``mlflow.data`` dataset of scenes: one row per file (name, size, ice service, start date).

    Its source is the folder holding the scenes (their common folder); MLflow's digest of the table
    identifies the scene list, so two runs on the same scenes show the same dataset.
    """
    import warnings

    import mlflow.data
    import pandas as pd
    from mlflow.data.sources import LocalArtifactDatasetSource

    rows = []
    for f in files:
        parts = schema.parse_rtt_name(f.name)
        rows.append({"file": f.name, "size": f.stat().st_size, "service": parts.service if parts else "",
                     "date": parts.start if parts else ""})  # fmt: skip
    folder = os.path.commonpath([str(f.resolve().parent) for f in files])
    with warnings.catch_warnings():  # MLflow's hint that integer columns cannot hold missing values
        warnings.simplefilter("ignore", UserWarning)
        return mlflow.data.from_pandas(pd.DataFrame(rows), source=LocalArtifactDatasetSource(folder),
                                       name=f"{name}-scenes")  # fmt: skip


def _train_epoch(run: _Run, loader: Any, epoch: int, *, progress: bool) -> dict[str, float]:
    """One epoch of batches; returns its record (mean losses, learning rate, speed, elapsed time).

    The augmentation generator is seeded by (seed, epoch, rank), so an epoch draws the same
    augmentations whether or not the run was resumed before it.
    """
    from tqdm import tqdm

    from autoice.data.transforms import augment_batch

    cfg, d = run.cfg, run.dist
    run.task_weights = _task_weights(run)
    loader.dataset.set_epoch(epoch)
    gen = torch.Generator(device=run.device).manual_seed(cfg.train.seed * 1_000_003 + epoch * 1009 + d.rank)
    run.net.train()
    sums = {k: 0.0 for k in ("loss", *schema.CHARTS)}
    n_batches, n_patches, t0 = 0, 0, time.perf_counter()
    bar = tqdm(total=cfg.train.batches_per_epoch, desc=f"epoch {epoch + 1}/{cfg.train.epochs}",
               disable=not (progress and d.main), file=sys.stderr, leave=False)  # fmt: skip
    for x, y in loader:
        x = x.to(run.device, non_blocking=True)
        y = y.to(run.device, non_blocking=True)
        x, y = augment_batch(x, y, cfg.augment, gen)
        loss, losses = _train_step(run, x, y)
        n_batches += 1
        n_patches += x.shape[0]
        sums["loss"] += float(loss.detach())
        for c in schema.CHARTS:
            sums[c] += float(losses[c].detach())
        rate = n_patches * d.world_size / max(time.perf_counter() - t0, 1e-9)
        bar.set_postfix(loss=f"{sums['loss'] / n_batches:.4f}", patches_s=f"{rate:.0f}")
        bar.update()
    bar.close()
    elapsed = time.perf_counter() - t0
    return {
        "epoch": epoch + 1,
        "elapsed_s": run.trained_s + time.perf_counter() - run.t_start,
        "train_loss": sums["loss"] / max(n_batches, 1),
        **{f"train_loss_{c}": sums[c] / max(n_batches, 1) for c in schema.CHARTS},
        "lr": run.opt.param_groups[0]["lr"],
        "patches_per_s": n_patches * d.world_size / max(elapsed, 1e-9),
        **({f"task_weight_{c}": w for c, w in run.task_weights.items()} if cfg.train.task_weighting != "fixed" else {}),
    }


def _task_weights(run: _Run) -> dict[str, float]:
    """This epoch's task weights: ``train.task_weights``, or those times DWA's factors from rank 0's history."""
    from autoice.models.losses import dwa_weights

    t = run.cfg.train
    if t.task_weighting == "fixed":
        return dict(t.task_weights)
    w = dwa_weights(run.history, t.task_weights, temperature=t.dwa_temperature)
    charts = list(w)
    return dict(zip(charts, broadcast_values([w[c] for c in charts], run.dist, run.device), strict=True))


def _train_step(run: _Run, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Forward (autocast), weighted multi-task loss, backward through the grad scaler, optimizer step.

    Returns the weighted loss and the per-chart losses. The scheduler steps per batch.
    """
    from autoice.models.losses import chart_losses, water_consistency, weighted_loss

    cfg = run.cfg
    with torch.autocast(run.device.type, dtype=run.amp_dtype, enabled=run.use_amp):
        out = run.net(x.contiguous(memory_format=torch.channels_last))
    out = {k: v.float() for k, v in out.items()}
    losses = chart_losses(out, y, sic_mode=cfg.model.sic_mode, weights=run.class_weights)
    loss = weighted_loss(losses, run.task_weights)
    if cfg.train.water_consistency > 0:
        loss = loss + cfg.train.water_consistency * water_consistency(out, y, sic_mode=cfg.model.sic_mode)
    if not torch.isfinite(loss):  # stop before a NaN step poisons the weights (and best.pt)
        parts = ", ".join(f"{c} {float(v.detach()):.4g}" for c, v in losses.items())
        raise AutoiceError(
            f"train: non-finite loss at step {run.step + 1} ({parts}): non-finite inputs (e.g. NaN "
            "geolocation in a scene) or a learning rate too large; nothing of this step is saved"
        )
    run.opt.zero_grad(set_to_none=True)
    run.scaler.scale(loss).backward()
    if cfg.train.grad_clip > 0:
        run.scaler.unscale_(run.opt)
        torch.nn.utils.clip_grad_norm_(run.net.parameters(), cfg.train.grad_clip)
    run.scaler.step(run.opt)
    run.scaler.update()
    if run.sched is not None:
        run.sched.step()
    if run.ema is not None:
        run.ema.update_parameters(run.model)
    run.step += 1
    return loss, losses


def _over_budget(run: _Run, record: dict[str, float]) -> bool:
    """Whether ``train.time_budget_min`` is spent; rank 0 decides for all, so every rank stops together."""
    budget = run.cfg.train.time_budget_min * 60
    return broadcast_flag(budget > 0 and record["elapsed_s"] >= budget, run.dist, run.device)


def _maybe_validate(run: _Run, record: dict[str, float], epoch: int, *, last: bool) -> bool:
    """Rank 0 scores the validation scenes every ``val_every`` epochs and after the last one.

    Adds the ``val_*`` scores to ``record``; returns whether the model is the best so far (always,
    without validation scenes: the latest model is the best we know).
    """
    cfg, val = run.cfg, run.scenes.val
    if not run.dist.main:
        return False
    if not val:
        return True
    if (epoch + 1) % cfg.train.val_every != 0 and not last:
        return False
    scores, pred = validate_model(run.evaluated, cfg, val, run.device, amp=run.use_amp)
    record.update({f"val_{k}": v for k, v in scores.items()})
    if scores["combined"] <= run.best:
        return False
    run.best, run.first_pred = scores["combined"], pred
    return True


def _log_epoch(run: _Run, record: dict[str, float], epoch: int) -> None:
    """Rank 0 logs the epoch's record to MLflow (step = epoch number) and prints it as one line."""
    if not run.dist.main:
        return
    run.tracker.log_metrics({k: v for k, v in record.items() if k != "epoch"}, step=epoch + 1)
    summary = "  ".join(f"{k}={v:.4g}" for k, v in record.items() if k != "epoch")
    _say(run.dist, f"epoch {epoch + 1}/{run.cfg.train.epochs}  {summary}")


def _save(run: _Run, epoch: int, improved: bool) -> None:
    """Rank 0 writes ``last.pt`` (and ``best.pt`` when ``improved``), with every rank's RNG state.

    Gathering the RNG states is a collective, so every rank calls this; the barrier keeps the
    ranks from running ahead of the write.
    """
    rng = gather(rng_state(), run.dist)
    if run.dist.main:
        ckpt = make_checkpoint(run.cfg, model=run.model, optimizer=run.opt, scheduler=run.sched, scaler=run.scaler,
                               epoch=epoch, step=run.step, best_score=run.best, history=run.history, rng=rng,
                               run_id=run.tracker.run_id, dataset_fingerprint=run.scenes.fingerprint,
                               ema=run.ema)  # fmt: skip
        save_checkpoint(run.last_path, ckpt)
        if improved:
            save_checkpoint(run.best_path, ckpt)
    barrier(run.dist)


def _finish(run: _Run, register: str | None) -> float | None:
    """Check the DDP replicas agree (all ranks); rank 0 logs the best checkpoint, a picture, the model.

    Returns the replicas' max weight difference (None in a single process).
    """
    replica_diff = replica_max_diff(run.model, run.dist)
    if not run.dist.main:
        return replica_diff
    if replica_diff is not None:
        run.tracker.log_metrics({"ddp_replica_max_diff": replica_diff}, step=run.cfg.train.epochs)
    if run.best_path.exists():
        run.tracker.log_artifact(run.best_path, "checkpoints")
    if run.first_pred is not None and run.scenes.val:
        _log_prediction_png(run.tracker, run.work, run.scenes.val[0].path, run.first_pred)
    if register and run.best_path.exists():
        _register(run, register)
    return replica_diff


def _register(run: _Run, name: str) -> None:
    """Log ``best.pt`` as the run's pyfunc model and register it as ``name`` (alias by score)."""
    from autoice import serving

    tracker = run.tracker
    scenes = run.scenes.val_files or run.scenes.train_files  # the input example is a patch of the first
    uri = serving.log_model(run.best_path, tracking_uri=tracker.uri, run_id=tracker.run_id, example_scene=scenes[0],
                            progress=run.progress)  # fmt: skip
    version = serving.register(uri, name, tracking_uri=tracker.uri, score=run.best)
    _say(run.dist, f"registered {name} version {version} ({uri})")


def _say(d: Dist, message: str) -> None:
    """Rank 0 prints one line to stderr (through tqdm, so progress bars stay intact)."""
    from tqdm import tqdm

    if d.main:
        tqdm.write(message, file=sys.stderr)


# --- validation and its picture ------------------------------------------------------------------


def validate_model(model: torch.nn.Module, cfg: Config, scenes: list[Any], device: torch.device,
                   *, amp: bool = False) -> tuple[dict[str, float], dict[str, np.ndarray] | None]:  # fmt: skip
    """Official metric over full validation scenes.

    ``cfg.data.val_resolution``: ``full`` scores predictions upsampled to 80 m against the 80 m
    charts; ``model`` scores at the model's resolution against the cached (nearest-downscaled)
    labels, as MMSeaIce does. ``cfg.train.whole_scene`` runs each scene in one forward pass.

    Returns the scores (``SIC``, ``SOD``, ``FLOE``, ``combined``, percent) and the first scene's
    80 m prediction (for pictures).
    """
    from autoice.data.inputs import upsample_to
    from autoice.inference import model_options, predict_scene
    from autoice.metrics import ScoreAccumulator

    acc = ScoreAccumulator()
    first = None
    for cs in scenes:
        classes = predict_scene(model, np.asarray(cs.inputs), **model_options(cfg), device=device, amp=amp,
                                tile=None if cfg.train.whole_scene else 1024).classes  # fmt: skip
        if cfg.data.val_resolution == "model" and cs.labels is not None:
            for i, chart in enumerate(schema.CHARTS):
                acc.update(chart, np.asarray(cs.labels[i]), classes[chart])
        with open_scene(cs.path, SceneKind.TRAIN, check_values=False) as ds:
            shape = (ds.sizes[schema.FULL_DIMS[0]], ds.sizes[schema.FULL_DIMS[1]])
            pred = {}
            for chart in schema.CHARTS:
                pred[chart] = upsample_to(shape, classes[chart], cfg.data.downscale)
                if cfg.data.val_resolution != "model" or cs.labels is None:
                    acc.update(chart, read_variable(ds, chart), pred[chart])
        if first is None:
            first = pred
    return acc.result().as_dict(), first


def _log_prediction_png(tracker: Any, work: Path, scene: Path, pred: dict[str, np.ndarray]) -> None:
    """A picture of reference vs prediction for one validation scene, as a run artifact."""
    from autoice.plots import comparison_figure

    with open_scene(scene, SceneKind.TRAIN, check_values=False) as ds:
        ref = {c: read_variable(ds, c) for c in schema.CHARTS}
    png = work / "figures" / "validation" / f"{scene.name[: schema.SCENE_KEY_LENGTH]}.png"
    comparison_figure(ref, pred, png, title=scene.name)
    tracker.log_artifact(png, "figures")
