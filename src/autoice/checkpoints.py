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
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from autoice.atomic import atomic_output
from autoice.errors import AutoiceError, ConfigError

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
        extra = {"train_model": _plain(model.state_dict()), "ema": _plain(ema.state_dict())}
    return {
        "version": CHECKPOINT_VERSION,
        "model": _plain((ema.module if ema is not None else model).state_dict()),
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


def _plain(state: dict[str, Any]) -> dict[str, Any]:
    """Weights in the standard (contiguous) layout: training runs channels-last, files do not."""
    return {k: v.contiguous() if isinstance(v, torch.Tensor) else v for k, v in state.items()}


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
    for entry in ("config", "model"):
        if not isinstance(state[entry], Mapping):
            raise AutoiceError(f"{p}: its {entry} entry is a {type(state[entry]).__name__}, not a mapping "
                               "(not an autoice checkpoint, or damaged)")  # fmt: skip
    return state


def network_from_checkpoint(state: Mapping[str, Any], path: str | os.PathLike[str]) -> tuple[torch.nn.Module, Config]:
    """The network (CPU, eval mode) and config a checkpoint holds, checked to fit together.

    Predict and serving rebuild the network from the stored config and load the weights into it; a
    config that does not describe the weights, an ``inputs`` entry that disagrees with it, or
    non-finite weights (which would predict class 0 everywhere) is one line naming ``path``.
    """
    from autoice.config import config_from_dict
    from autoice.models.unet import build_model

    try:
        cfg = config_from_dict(dict(state["config"]))
    except ConfigError as exc:
        raise ConfigError(f"{path}: its stored config is not valid ({exc})") from exc
    inputs = state.get("inputs")
    if inputs is not None and list(inputs) != list(cfg.data.inputs):
        raise AutoiceError(f"{path}: its inputs entry {list(inputs)} disagrees with its stored config's "
                           f"data.inputs {cfg.data.inputs} (a damaged checkpoint)")  # fmt: skip
    net = build_model(cfg)
    try:
        net.load_state_dict(state["model"])
    except (RuntimeError, KeyError, TypeError, ValueError) as exc:
        raise AutoiceError(
            f"{path}: its weights do not match its stored config (model.filters {cfg.model.filters}, "
            f"{len(cfg.data.inputs)} inputs, model.sic_mode {cfg.model.sic_mode}): {_first_fault(exc)}"
        ) from exc
    floats = ((k, v) for k, v in state["model"].items() if torch.is_tensor(v) and v.is_floating_point())
    bad = next((k for k, v in floats if not bool(torch.isfinite(v).all())), None)
    if bad is not None:
        raise AutoiceError(f"{path}: weights contain non-finite values (first in {bad})")
    return net.eval(), cfg


def _first_fault(exc: BaseException) -> str:
    """The first specific line of a ``load_state_dict`` error (torch lists every mismatch, one per line)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    details = [ln for ln in lines if not ln.startswith("Error(s) in loading state_dict")] or lines
    if not details:
        return type(exc).__name__
    first = re.sub(r"torch\.Size\(\[([^\]]*)\]\)", r"(\1)", details[0]).rstrip(".")
    return first + (f" (and {len(details) - 1} more)" if len(details) > 1 else "")
