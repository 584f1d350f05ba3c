"""The training loop, in plain PyTorch: one process, or DDP under ``torchrun``.

    autoice train --preset demo --data DIR --workdir runs/demo
    torchrun --nproc_per_node 2 -m autoice train --preset mmseaice --data DIR --workdir runs/mm

Everything of a run lives in its workdir: ``config.yaml`` (resolved config), ``checkpoints/last.pt``
(every epoch, atomic) and ``checkpoints/best.pt`` (best validation combined score), ``cache/`` (patch
cache, unless ``cache_dir`` is given) and the MLflow store (``mlflow.db`` + ``mlartifacts/``).
Under DDP every rank samples different patches; rank 0 alone validates, logs and saves.
``resume=True`` restores model, optimizer, scheduler, grad scaler, RNG states and the epoch from
``last.pt`` and continues the same MLflow run, so a killed run ends with the same weights as an
uninterrupted one.
"""

from __future__ import annotations

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
import torch.distributed as dist

from autoice import schema
from autoice.atomic import atomic_output
from autoice.config import Config, config_from_dict, save_config
from autoice.errors import AutoiceError, ConfigError, SceneError
from autoice.scenes import SceneKind, find_scenes, open_scene

CHECKPOINT_VERSION = 1


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


@dataclass(frozen=True)
class Dist:
    """This process's place in a (possibly single-process) run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        """Whether a process group is in use."""
        return self.world_size > 1

    @property
    def main(self) -> bool:
        """Rank 0 logs, validates and saves."""
        return self.rank == 0


def select_device(spec: str, local_rank: int = 0) -> torch.device:
    """``auto`` -> CUDA (this rank's GPU) when available, else CPU; or the named device."""
    if spec == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    if spec.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"train.device: {spec} asked for but CUDA is not available")
    return torch.device(spec)


def init_distributed(device: str) -> Dist:
    """Join the process group that ``torchrun`` set up (env vars RANK, WORLD_SIZE, LOCAL_RANK)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device != "cpu" and torch.cuda.is_available()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    if use_cuda:
        torch.cuda.set_device(local)
    return Dist(rank, world, local)


def split_scenes(files: list[Path], val_fraction: float, seed: int) -> tuple[list[Path], list[Path]]:
    """Seeded hold-out: the same files and seed always give the same split."""
    from autoice.splits import fraction_split

    return fraction_split(files, val_fraction, seed)


def dataset_fingerprint(files: list[Path]) -> str:
    """Hash of the scene names and sizes (a cheap identity of the data a run saw)."""
    h = hashlib.sha256()
    for f in sorted(files):
        h.update(f"{f.name}:{f.stat().st_size};".encode())
    return h.hexdigest()[:16]


def _rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """torch.save through a temporary file, so a crash never leaves a broken checkpoint."""
    with atomic_output(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`; one-line error if it is not one."""
    p = Path(path)
    if not p.is_file():
        raise AutoiceError(f"{p}: no such checkpoint")
    try:
        state = torch.load(p, map_location=map_location, weights_only=False)
    except Exception as exc:
        raise AutoiceError(f"{p}: not a readable autoice checkpoint ({type(exc).__name__})") from exc
    if not isinstance(state, dict) or "model" not in state or "config" not in state:
        raise AutoiceError(f"{p}: not an autoice checkpoint (no model/config)")
    return state


def _optimizer(cfg: Config, params: Any) -> torch.optim.Optimizer:
    t = cfg.train
    if t.optimizer == "sgd":
        return torch.optim.SGD(params, lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay)
    return torch.optim.Adam(params, lr=t.lr, weight_decay=t.weight_decay)


def _scheduler(cfg: Config, opt: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler | None:
    if cfg.train.scheduler == "cosine_warm_restarts":
        period = max(1, cfg.train.restart_epochs * cfg.train.batches_per_epoch)  # stepped per batch
        return torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=period)
    return None


def _scene_files(data: Any, kind: SceneKind) -> list[Path]:
    files = find_scenes(data, [kind])
    files = [f for f in files if schema.parse_rtt_name(f.name) and not f.name.endswith(schema.REFERENCE_SUFFIX)]
    if not files:
        raise SceneError(str(data), "no ready-to-train scenes (*_prep.nc) found")
    for f in files:  # structure only: the cache build checks chart values when it reads a scene
        with open_scene(f, SceneKind.TRAIN, check_values=False):
            pass
    return files


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
                    acc.update(chart, np.asarray(ds[chart].values), pred[chart])
        if first is None:
            first = pred
    return acc.result().as_dict(), first


def _sync_check(model: torch.nn.Module, d: Dist) -> float | None:
    """Max |difference| between this rank's parameters and rank 0's (0.0 when DDP keeps them equal)."""
    if not d.enabled:
        return None
    flat = torch.cat([p.detach().float().reshape(-1) for p in model.parameters()])
    ref = flat.clone()
    dist.broadcast(ref, src=0)
    diff = (flat - ref).abs().max()
    dist.all_reduce(diff, op=dist.ReduceOp.MAX)
    return float(diff)


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
) -> TrainResult:
    """Train a model as configured; see the module docstring for what lands in ``workdir``.

    With ``register``, the best checkpoint is logged as an MLflow pyfunc model in the run and
    registered under that name; the alias ``champion`` points at the best version by validation score.
    """
    from tqdm import tqdm

    from autoice.data.cache import build_cache
    from autoice.data.loader import make_loader
    from autoice.data.transforms import augment_batch
    from autoice.models.losses import chart_losses, weighted_loss
    from autoice.models.unet import build_model
    from autoice.tracking import NullTracker, Tracker, git_commit

    work = Path(workdir)
    ckpt_dir = work / "checkpoints"
    last_path, best_path = ckpt_dir / "last.pt", ckpt_dir / "best.pt"
    state: dict[str, Any] | None = None
    if resume:
        state = load_checkpoint(last_path)
        cfg = config_from_dict(state["config"]) if cfg is None else cfg
    d = init_distributed(cfg.train.device)
    device = select_device(cfg.train.device, d.local_rank)
    seed = cfg.train.seed
    random.seed(seed + d.rank)
    np.random.seed(seed + d.rank)
    torch.manual_seed(seed + d.rank)

    files = _scene_files(data, SceneKind.TRAIN)
    if val_data is not None:
        train_files, val_files = files, _scene_files(val_data, SceneKind.TRAIN)
        val_rule = f"validation: the {len(val_files)} scenes of the given validation data"
    else:
        from autoice.splits import validation_split

        train_files, val_files, val_rule = validation_split(files, cfg.data.val_rule,
                                                            val_fraction=cfg.data.val_fraction, seed=seed)  # fmt: skip
    if d.main:
        tqdm.write(val_rule, file=sys.stderr)
    cache = Path(cache_dir) if cache_dir is not None else work / "cache"
    if d.main:
        work.mkdir(parents=True, exist_ok=True)
        save_config(cfg, work / "config.yaml")
        build_cache(train_files + val_files, cfg.data, cache, progress=progress)
    if d.enabled:
        dist.barrier()
    cached = build_cache(train_files + val_files, cfg.data, cache, progress=False)
    by_path = {c.path.resolve(): c for c in cached}
    train_cached = [by_path[f.resolve()] for f in train_files]
    val_cached = [by_path[f.resolve()] for f in val_files]

    model = build_model(cfg).to(device)
    opt = _optimizer(cfg, model.parameters())
    sched = _scheduler(cfg, opt)
    use_amp = cfg.train.amp and device.type == "cuda"
    amp_dtype = torch.bfloat16 if use_amp and torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)
    start_epoch, step, best, history, run_id = 0, 0, -float("inf"), [], None
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        if sched is not None and state.get("scheduler"):
            sched.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        start_epoch, step, best = state["epoch"] + 1, state["step"], state["best_score"]
        history, run_id = state["history"], state.get("run_id")
        _set_rng_state(state["rng"][min(d.rank, len(state["rng"]) - 1)])
    net: torch.nn.Module = model
    if d.enabled:
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[d.local_rank] if device.type == "cuda"
                                                        else None)  # fmt: skip

    fingerprint = dataset_fingerprint(train_files + val_files)
    tracker: NullTracker = NullTracker()
    if d.main:
        tracker = Tracker(work, run_id=run_id, run_name=f"{cfg.preset}-{time.strftime('%Y%m%d-%H%M%S')}",
                          tags={"mlflow.source.git.commit": git_commit(), "dataset_fingerprint": fingerprint,
                                "preset": cfg.preset, "n_train_scenes": str(len(train_files)),
                                "n_val_scenes": str(len(val_files)), "world_size": str(d.world_size),
                                "validation_rule": val_rule})  # fmt: skip
        tracker.log_params(cfg.flat())
        tracker.log_artifact(work / "config.yaml")
    loader = make_loader(train_cached, cfg.data, batch_size=cfg.train.batch_size, seed=seed, rank=d.rank,
                         world_size=d.world_size, batches=cfg.train.batches_per_epoch)  # fmt: skip
    weights = cfg.train.task_weights
    status = "FAILED"
    first_pred = None
    t_run = time.perf_counter()
    trained_s = history[-1].get("elapsed_s", 0.0) if history else 0.0  # resumed runs keep counting
    try:
        for epoch in range(start_epoch, cfg.train.epochs):
            loader.dataset.set_epoch(epoch)
            gen = torch.Generator(device=device).manual_seed(seed * 1_000_003 + epoch * 1009 + d.rank)
            net.train()
            sums = {k: 0.0 for k in ("loss", *schema.CHARTS)}
            n_batches, n_patches, t0 = 0, 0, time.perf_counter()
            bar = tqdm(total=cfg.train.batches_per_epoch, desc=f"epoch {epoch + 1}/{cfg.train.epochs}",
                       disable=not (progress and d.main), file=sys.stderr, leave=False)  # fmt: skip
            for x, y in loader:
                x = x.to(device, non_blocking=True)
                y = y.to(device, non_blocking=True)
                x, y = augment_batch(x, y, cfg.augment, gen)
                with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
                    out = net(x)
                losses = chart_losses({k: v.float() for k, v in out.items()}, y, sic_mode=cfg.model.sic_mode)
                loss = weighted_loss(losses, weights)
                opt.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                if cfg.train.grad_clip > 0:
                    scaler.unscale_(opt)
                    torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.train.grad_clip)
                scaler.step(opt)
                scaler.update()
                if sched is not None:
                    sched.step()
                step += 1
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
            run_s = trained_s + time.perf_counter() - t_run
            record: dict[str, float] = {
                "epoch": epoch + 1,
                "elapsed_s": run_s,
                "train_loss": sums["loss"] / max(n_batches, 1),
                **{f"train_loss_{c}": sums[c] / max(n_batches, 1) for c in schema.CHARTS},
                "lr": opt.param_groups[0]["lr"],
                "patches_per_s": n_patches * d.world_size / max(elapsed, 1e-9),
            }
            budget = cfg.train.time_budget_min * 60
            over_budget = budget > 0 and run_s >= budget
            if d.enabled:  # every rank stops at the same epoch
                flag = torch.tensor([float(over_budget)], device=device)
                dist.broadcast(flag, src=0)
                over_budget = bool(flag.item())
            last_epoch = epoch + 1 == cfg.train.epochs or over_budget
            improved = False
            if d.main and val_cached and ((epoch + 1) % cfg.train.val_every == 0 or last_epoch):
                scores, pred = validate_model(model, cfg, val_cached, device, amp=use_amp)
                record.update({f"val_{k}": v for k, v in scores.items()})
                if scores["combined"] > best:
                    best, improved, first_pred = scores["combined"], True, pred
            elif d.main and not val_cached:
                improved = True  # no validation scenes: the latest model is the best we know
            history.append(record)
            if d.main:
                tracker.log_metrics({k: v for k, v in record.items() if k != "epoch"}, step=epoch + 1)
                summary = "  ".join(f"{k}={v:.4g}" for k, v in record.items() if k != "epoch")
                tqdm.write(f"epoch {epoch + 1}/{cfg.train.epochs}  {summary}", file=sys.stderr)
                ckpt = {
                    "version": CHECKPOINT_VERSION,
                    "model": model.state_dict(),
                    "optimizer": opt.state_dict(),
                    "scheduler": sched.state_dict() if sched is not None else None,
                    "scaler": scaler.state_dict(),
                    "epoch": epoch,
                    "step": step,
                    "best_score": best,
                    "history": history,
                    "config": cfg.to_dict(),
                    "inputs": list(cfg.data.inputs),
                    "rng": _gather_rng(d),
                    "run_id": tracker.run_id,
                    "dataset_fingerprint": fingerprint,
                }
                save_checkpoint(last_path, ckpt)
                if improved:
                    save_checkpoint(best_path, ckpt)
            elif d.enabled:
                _gather_rng(d)
            if d.enabled:
                dist.barrier()
            if over_budget:
                if d.main:
                    tqdm.write(f"time budget of {cfg.train.time_budget_min:g} min reached after epoch {epoch + 1}",
                               file=sys.stderr)  # fmt: skip
                break
        replica_diff = _sync_check(model, d)
        if d.main:
            if replica_diff is not None:
                tracker.log_metrics({"ddp_replica_max_diff": replica_diff}, step=cfg.train.epochs)
            if best_path.exists():
                tracker.log_artifact(best_path, "checkpoints")
            if first_pred is not None and val_cached:
                _log_prediction_png(tracker, work, val_cached[0].path, first_pred)
            if register and best_path.exists():
                from autoice import serving

                uri = serving.log_model(best_path, tracking_uri=tracker.uri, run_id=tracker.run_id)
                version = serving.register(uri, register, tracking_uri=tracker.uri, score=best)
                tqdm.write(f"registered {register} version {version} ({uri})", file=sys.stderr)
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        if d.main:
            tracker.end(status)
        if d.enabled and dist.is_initialized():
            dist.destroy_process_group()
    return TrainResult(work, last_path, best_path if best_path.exists() else None, best, tracker.run_id, history,
                       replica_diff)  # fmt: skip


def _gather_rng(d: Dist) -> list[dict[str, Any]]:
    """Every rank's RNG state (rank 0 receives the list; the others return theirs)."""
    mine = _rng_state()
    if not d.enabled:
        return [mine]
    out: list[Any] = [None] * d.world_size
    dist.all_gather_object(out, mine)
    return out


def _log_prediction_png(tracker: Any, work: Path, scene: Path, pred: dict[str, np.ndarray]) -> None:
    """A picture of reference vs prediction for one validation scene, as a run artifact."""
    from autoice.plots import comparison_figure

    with open_scene(scene, SceneKind.TRAIN, check_values=False) as ds:
        ref = {c: np.asarray(ds[c].values) for c in schema.CHARTS}
    png = work / "figures" / "validation" / f"{scene.name[: schema.SCENE_KEY_LENGTH]}.png"
    comparison_figure(ref, pred, png, title=scene.name)
    tracker.log_artifact(png, "figures")
