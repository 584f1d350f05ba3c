"""Shared helpers for the benchmarks: run a function in a fresh process and measure it."""

from __future__ import annotations

import multiprocessing as mp
import time


def peak_rss() -> int:
    """Peak resident memory (bytes) of this process's own address space.

    ``/proc/self/status`` VmHWM, not ``getrusage``: Linux carries the parent's high-water mark
    into ``ru_maxrss`` across fork + exec, which would charge a spawned child with whatever the
    parent held (e.g. a scene the benchmark just generated).
    """
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def _child(conn, fn, args, kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    wall = time.perf_counter() - t0
    conn.send((wall, peak_rss(), out))
    conn.close()


def measure(fn, *args, **kwargs):
    """Run ``fn`` in a fresh process: (wall seconds, peak RSS bytes of that process, result)."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(child, fn, args, kwargs))
    proc.start()
    wall, peak, out = parent.recv()
    proc.join()
    return wall, peak, out
