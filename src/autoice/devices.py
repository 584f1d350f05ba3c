"""Where a process runs: its device and its place in a ``torchrun`` process group.

Training and prediction pick their device here; the collectives the training loop needs beyond
DDP's own gradient sync (gathering RNG states, checking replicas) live here too, so that a
single process never touches ``torch.distributed``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from autoice.errors import ConfigError


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
    if not re.fullmatch(r"cpu|cuda(:\d+)?", spec):
        raise ConfigError(f"device {spec!r}: must be auto, cpu, cuda or cuda:N")
    if spec.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {spec}: asked for but CUDA is not available")
    return torch.device(spec)


def cpu_has_native_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX), so that autocast pays off.

    On such CPUs bf16 convolutions run about twice as fast as fp32; elsewhere oneDNN emulates
    bf16 and it is slower, so training stays in fp32. Read from the kernel's CPU flags (Linux);
    unknown elsewhere, and then False.
    """
    try:
        flags = cpuinfo.read_text().split()
    except OSError:
        return False
    return ("amx_bf16" in flags or "avx512_bf16" in flags) and torch.backends.mkldnn.is_available()


def amp_dtype(device: torch.device) -> torch.dtype | None:
    """The autocast dtype for mixed precision on ``device``, or None where it would not help.

    CUDA: bf16 where the GPU supports it, else fp16 (with a GradScaler, see ``train``). CPU: bf16
    where the CPU has it natively (:func:`cpu_has_native_bf16`), else None (fp32).
    """
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and cpu_has_native_bf16():
        return torch.bfloat16
    return None


def available_bytes(device: torch.device) -> int | None:
    """Memory a training step can still use on ``device`` (free GPU memory, or available RAM)."""
    try:
        if device.type == "cuda":
            return int(torch.cuda.mem_get_info(device)[0])
        import psutil

        return int(psutil.virtual_memory().available)
    except Exception:  # unknown: no check
        return None


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


def gather(obj: Any, d: Dist) -> list[Any]:
    """Every rank's ``obj``, in rank order (a collective: all ranks must call it).

    Used for the RNG states, which differ per rank and must all be in rank 0's checkpoint.
    """
    if not d.enabled:
        return [obj]
    out: list[Any] = [None] * d.world_size
    dist.all_gather_object(out, obj)
    return out


def replica_max_diff(model: torch.nn.Module, d: Dist) -> float | None:
    """Max |difference| between this rank's parameters and rank 0's (0.0 when DDP keeps them equal).

    None without a process group. A collective: all ranks must call it.
    """
    if not d.enabled:
        return None
    flat = torch.cat([p.detach().float().reshape(-1) for p in model.parameters()])
    ref = flat.clone()
    dist.broadcast(ref, src=0)
    diff = (flat - ref).abs().max()
    dist.all_reduce(diff, op=dist.ReduceOp.MAX)
    return float(diff)


def broadcast_flag(flag: bool, d: Dist, device: torch.device) -> bool:
    """Rank 0's ``flag`` on every rank, so that all ranks take the same branch (e.g. stop together)."""
    return bool(broadcast_values([float(flag)], d, device)[0])


def broadcast_values(values: list[float], d: Dist, device: torch.device) -> list[float]:
    """Rank 0's ``values`` on every rank (e.g. task weights computed from rank 0's losses)."""
    if not d.enabled:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.broadcast(t, src=0)
    return [float(v) for v in t.tolist()]


def barrier(d: Dist) -> None:
    """Wait for every rank (no-op in a single process)."""
    if d.enabled:
        dist.barrier()


def shutdown(d: Dist) -> None:
    """Leave the process group, if this run joined one."""
    if d.enabled and dist.is_initialized():
        dist.destroy_process_group()
