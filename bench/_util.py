"""Shared helpers for the benchmarks: run a function in a fresh process and measure it."""

from __future__ import annotations

import multiprocessing as mp
import resource
import time


def _child(conn, fn, args, kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    wall = time.perf_counter() - t0
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    conn.send((wall, peak_kb * 1024, out))
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
