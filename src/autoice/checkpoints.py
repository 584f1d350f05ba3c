"""Checkpoint files: what one holds, writing it atomically, reading it back with a clean error.

A checkpoint is one dict (nanoGPT style), saved with ``torch.save``: ``version``, ``model``,
``optimizer``, ``scheduler``, ``scaler``, ``epoch`` (0-based, last finished), ``step``,
``best_score``, ``history`` (one record per epoch), ``config`` (resolved, as a dict), ``inputs``
(channel order), ``rng`` (one RNG state per rank), ``run_id`` (MLflow) and ``dataset_fingerprint``.
Training resumes from it exactly; prediction and serving read only ``model``, ``config`` and ``inputs``.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from autoice.atomic import atomic_output
from autoice.errors import AutoiceError

if TYPE_CHECKING:
    from autoice.config import Config

CHECKPOINT_VERSION = 1


def rng_state() -> dict[str, Any]:
    """This process's Python, numpy, torch (and CUDA) RNG states, so a resumed run draws what it would have."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Put back RNG states captured by :func:`rng_state` (CUDA only where both sides have it)."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def make_checkpoint(
    cfg: Config,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None,
    scaler: torch.amp.GradScaler,
    epoch: int,
    step: int,
    best_score: float,
    history: list[dict[str, float]],
    rng: list[dict[str, Any]],
    run_id: str | None,
    dataset_fingerprint: str,
    ema: torch.optim.swa_utils.AveragedModel | None = None,
) -> dict[str, Any]:
    """The checkpoint dict from its parts: everything a resume restores, in one place.

    ``model`` is the bare module (not the DDP wrapper), so its keys carry no ``module.`` prefix.
    With an ``ema`` (weight averaging), ``"model"`` holds the averaged weights (what predict and
    serving load), ``"train_model"`` the trained ones and ``"ema"`` the averager (what a resume needs).
    """
    extra = {}
    if ema is not None:
        extra = {"train_model": model.state_dict(), "ema": ema.state_dict()}
    return {
        "version": CHECKPOINT_VERSION,
        "model": (ema.module if ema is not None else model).state_dict(),
        **extra,
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "scaler": scaler.state_dict(),
        "epoch": epoch,
        "step": step,
        "best_score": best_score,
        "history": history,
        "config": cfg.to_dict(),
        "inputs": list(cfg.data.inputs),
        "rng": rng,
        "run_id": run_id,
        "dataset_fingerprint": dataset_fingerprint,
    }


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
