"""Per-scene work over many scenes: a bad scene is collected, the others still finish.

Multi-scene commands (prepare, synth, the training cache, predict) run each scene through
:func:`run_each` and end with :meth:`Batch.check`, which raises one
:class:`~autoice.errors.ScenesFailed` naming every bad scene. Only :class:`AutoiceError` counts as
a bad scene; a :class:`StorageError` (full or read-only disk) stops the run at once, as it would
fail every other scene too, and any other exception is a bug and stops the run. With worker processes, a worker that
dies (a crash inside a library, the out-of-memory killer) breaks the whole pool; the scenes it took
down with it are then run again each in its own process, so only the scene that kills its process
is reported and no other result is lost.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, as_completed, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing.context import BaseContext
from typing import Any, Generic, TypeVar

from autoice.errors import AutoiceError, SceneError, ScenesFailed, StorageError

R = TypeVar("R")

#: The fault reported for a scene whose worker process died even when it ran alone.
WORKER_DIED = "its worker process died on this scene (out of memory, or a crash in a library reading it?)"


@dataclass
class Batch(Generic[R]):
    """Results and failures of :func:`run_each`, keyed by job index."""

    total: int
    results: dict[int, R] = field(default_factory=dict)
    failures: dict[int, AutoiceError] = field(default_factory=dict)

    def done(self) -> list[R]:
        """The good results, in job order."""
        return [self.results[i] for i in sorted(self.results)]

    def check(self, *, what: str = "scenes", outcome: str = "", partial: Any = None, total: int | None = None
              ) -> None:  # fmt: skip
        """Raise :class:`ScenesFailed` listing the failures in job order, if there are any.

        ``total`` is the number of scenes the command was given, when only some of them were jobs.
        """
        if self.failures:
            errors = [self.failures[i] for i in sorted(self.failures)]
            raise ScenesFailed(errors, self.total if total is None else total, what=what, outcome=outcome,
                               partial=partial)  # fmt: skip


def run_each(fn: Callable[..., R], jobs: Sequence[tuple], labels: Sequence[str], *, workers: int = 1,
             desc: str = "", progress: bool = True, mp_context: BaseContext | None = None) -> Batch[R]:  # fmt: skip
    """Call ``fn(*job)`` for every job, in ``workers`` processes when above 1, collecting AutoiceErrors.

    ``labels`` name the jobs (the scene's file) for the one failure that has no error of its own: a
    worker process that died. ``fn`` and the jobs must pickle when ``workers`` > 1.
    """
    from tqdm import tqdm

    batch: Batch[R] = Batch(len(jobs))
    with tqdm(total=len(jobs), desc=desc, unit="scene", disable=not progress, file=sys.stderr) as bar:
        if workers <= 1 or len(jobs) <= 1:
            for i, job in enumerate(jobs):
                try:
                    batch.results[i] = fn(*job)
                except StorageError:
                    raise
                except AutoiceError as exc:
                    batch.failures[i] = exc
                bar.update()
        else:
            lost = _in_pool(fn, jobs, batch, bar.update, min(workers, len(jobs)), mp_context)
            if lost:
                _one_process_each(fn, jobs, lost, labels, batch, bar.update, workers, mp_context)
    return batch


def _settle(batch: Batch[Any], i: int, fut: Future) -> bool:
    """Record a finished future; False if its pool broke before it could finish."""
    try:
        batch.results[i] = fut.result()
    except StorageError:
        raise
    except AutoiceError as exc:
        batch.failures[i] = exc
    except BrokenProcessPool:
        return False
    return True


def _in_pool(fn: Callable[..., Any], jobs: Sequence[tuple], batch: Batch[Any], tick: Callable[[], Any],
             workers: int, ctx: BaseContext | None) -> list[int]:  # fmt: skip
    """Run every job in one pool; return the jobs lost when a worker died (the pool is then broken)."""
    lost: list[int] = []
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        futures = {pool.submit(fn, *job): i for i, job in enumerate(jobs)}
        try:
            for fut in as_completed(futures):
                if _settle(batch, futures[fut], fut):
                    tick()
                else:
                    lost.append(futures[fut])
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    return sorted(lost)


def _one_process_each(fn: Callable[..., Any], jobs: Sequence[tuple], todo: list[int], labels: Sequence[str],
                      batch: Batch[Any], tick: Callable[[], Any], workers: int,
                      ctx: BaseContext | None) -> None:  # fmt: skip
    """Run each job in a fresh single-worker pool (``workers`` at a time): a death names its scene."""
    pending = list(todo)
    running: dict[Future, tuple[int, ProcessPoolExecutor]] = {}
    try:
        while pending or running:
            while pending and len(running) < workers:
                i = pending.pop(0)
                pool = ProcessPoolExecutor(max_workers=1, mp_context=ctx)
                running[pool.submit(fn, *jobs[i])] = (i, pool)
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in finished:
                i, pool = running.pop(fut)
                pool.shutdown(wait=True)
                if not _settle(batch, i, fut):
                    batch.failures[i] = SceneError(labels[i], WORKER_DIED)
                tick()
    finally:
        for _, pool in running.values():
            pool.shutdown(wait=False, cancel_futures=True)
