"""Per-scene work over many scenes: a bad scene is collected, the others still finish.

Multi-scene commands (prepare, synth, the training cache, predict) run each scene through
:func:`run_each` and end with :meth:`Batch.check`, which raises one
:class:`~autoice.errors.ScenesFailed` naming every bad scene. Only :class:`AutoiceError` counts as
a bad scene; a :class:`StorageError` (full or read-only disk) stops the run at once, as it would
fail every other scene too, and any other exception is a bug and stops the run. With worker processes, a worker that
dies (a crash inside a library, the out-of-memory killer) breaks the whole pool; the scenes it took
down with it are then run again each in its own process, so only the scene that kills its process
is reported and no other result is lost.

With ``scheduler`` (a Dask scheduler's address: ``autoice <command> --scheduler tcp://host:8786``,
or ``DASK_SCHEDULER_ADDRESS``) the same jobs run as tasks on that cluster through
``dask.distributed``: Dask's scheduler places them, reruns a task whose worker died on another
worker (so every job must be idempotent: outputs are written atomically and a rerun overwrites
them) and gives up on a task that killed ``distributed.scheduler.allowed-failures`` workers; that
scene is then reported as :data:`WORKER_DIED`. Bad scenes, storage errors and progress behave as
in the local path, so a command has one way to split its work, whichever runs it.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, as_completed, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing.context import BaseContext
from os import PathLike
from typing import Any, Generic, TypeVar

from autoice.errors import AutoiceError, SceneError, ScenesFailed, StorageError

R = TypeVar("R")

#: The fault reported for a scene whose worker process died even when it ran alone.
WORKER_DIED = "its worker process died on this scene (out of memory, or a crash in a library reading it?)"
#: Seconds to reach a Dask scheduler before giving up (Dask retries refused connections until then).
CONNECT_TIMEOUT_S = 10.0
#: Seconds a cluster may have no worker while tasks are waiting before the run is given up.
NO_WORKERS_TIMEOUT_S = 60.0
#: Seconds between checks that the cluster still has workers.
_POLL_S = 1.0
#: ``shared`` default: no value shared with every worker.
_NOTHING: Any = object()


@dataclass
class Batch(Generic[R]):
    """Results and failures of :func:`run_each`, keyed by job index."""

    total: int
    results: dict[int, R] = field(default_factory=dict)
    failures: dict[int, AutoiceError] = field(default_factory=dict)
    #: called with (job index, result) here, as each result arrives; its AutoiceError fails that job
    on_result: Callable[[int, R], None] | None = None

    def record(self, i: int, result: R) -> None:
        """Keep a job's result, after handing it to :attr:`on_result`."""
        if self.on_result is not None:
            self.on_result(i, result)
        self.results[i] = result

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
             desc: str = "", progress: bool = True, mp_context: BaseContext | None = None,
             scheduler: str | None = None, shared: Any = _NOTHING,
             outputs: Sequence[str | PathLike[str]] = (),
             on_result: Callable[[int, R], None] | None = None) -> Batch[R]:  # fmt: skip
    """Call ``fn(*job)`` for every job, in ``workers`` processes when above 1, collecting AutoiceErrors.

    ``labels`` name the jobs (the scene's file) for the one failure that has no error of its own: a
    worker process that died. ``fn`` and the jobs must pickle when ``workers`` > 1 or with a
    ``scheduler`` (then ``workers`` is the cluster's business and ignored). ``shared`` (a model's
    weights, say) is sent once per worker process instead of once per job and passed to ``fn`` as
    its first argument: ``fn(shared, *job)``. ``outputs`` are the folders the jobs write into: at
    the end, temporaries that a killed attempt left there are removed (on every worker's machine).
    ``on_result(i, result)`` runs here as each job's result arrives (to assemble while others still
    run); an AutoiceError it raises counts as that job's failure.
    """
    from tqdm import tqdm

    batch: Batch[R] = Batch(len(jobs), on_result=on_result)
    if shared is not _NOTHING:
        fn, jobs = _SharedCall(fn), [(_SHARED_HERE, *job) for job in jobs]
    if scheduler:  # before the bar: an unreachable scheduler is one line, not a bar cut short
        client = connect(scheduler)
        try:
            with tqdm(total=len(jobs), desc=desc, unit="scene", disable=not progress, file=sys.stderr) as bar:
                _on_cluster(client, fn, jobs, labels, batch, bar.update, scheduler, shared, desc, outputs)
        finally:
            with contextlib.suppress(Exception):
                client.close(timeout=5)
            _sweep(outputs)  # what a worker on this machine left (each worker's machine was swept, when it could)
        return batch
    with tqdm(total=len(jobs), desc=desc, unit="scene", disable=not progress, file=sys.stderr) as bar:
        if workers <= 1 or len(jobs) <= 1:
            _set_shared(shared)
            for i, job in enumerate(jobs):
                try:
                    batch.record(i, fn(*job))
                except StorageError:
                    raise
                except AutoiceError as exc:
                    batch.failures[i] = exc
                bar.update()
        else:
            lost = _in_pool(fn, jobs, batch, bar.update, min(workers, len(jobs)), mp_context, shared)
            if lost:
                _one_process_each(fn, jobs, lost, labels, batch, bar.update, workers, mp_context, shared)
    _sweep(outputs)
    return batch


def _sweep(folders: Sequence[str | PathLike[str]]) -> int:
    """Remove what killed writers left in ``folders`` (see :func:`autoice.atomic.sweep_stale`)."""
    from autoice.atomic import sweep_stale

    return sum(len(sweep_stale(f)) for f in folders)


# ----------------------------------------------------------------------------- shared values
#: Placeholder job argument: the value :func:`_set_shared` stored in this process (local paths).
_SHARED_HERE = "<autoice shared value>"
_shared_value: Any = _NOTHING


def _set_shared(value: Any) -> None:
    """Keep ``value`` for this process's jobs (a pool's initializer: sent once per process)."""
    global _shared_value
    _shared_value = value


@dataclass(frozen=True)
class _SharedCall:
    """``fn(shared, *job)``, where the placeholder becomes the value kept in this process.

    On a cluster the first argument is a future of the scattered value instead, which Dask
    resolves on the worker from its own copy.
    """

    fn: Callable[..., Any]

    def __call__(self, shared: Any, *job: Any) -> Any:
        if isinstance(shared, str) and shared == _SHARED_HERE:
            shared = _shared_value
        return self.fn(shared, *job)


# ----------------------------------------------------------------------------- a Dask cluster
def connect(address: str) -> Any:
    """A ``distributed.Client`` of the scheduler at ``address``, or one AutoiceError line saying why not.

    The address is parsed and its port probed first: a ``Client`` that fails to start
    leaves a half-made object behind whose clean-up stalls the exit and prints tracebacks.
    """
    try:
        from distributed import Client
        from distributed.comm.addressing import parse_address, parse_host_port
        from distributed.comm.registry import backends
    except ImportError as exc:  # pragma: no cover - a dependency
        raise AutoiceError(f"--scheduler {address}: dask.distributed is not installed ({exc})") from exc
    try:
        scheme, loc = parse_address(address)
        networked = sorted(set(backends) - {"inproc"})  # inproc reaches only this very process
        if scheme not in networked:
            raise ValueError(f"unknown scheme {scheme!r}, expected one of {', '.join(networked)}")
        host, port = parse_host_port(loc)
        if not 0 < int(port) < 65536:
            raise ValueError(f"port {port} is not 1..65535")
    except (ValueError, TypeError) as exc:
        raise AutoiceError(f"{address}: not a Dask scheduler address, e.g. tcp://host:8786 ({exc})") from exc
    _probe(address, host, int(port))
    try:
        return Client(address, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
    except (OSError, TimeoutError, ValueError, TypeError) as exc:
        raise AutoiceError(f"{address}: cannot connect to the Dask scheduler ({_first_line(exc)})") from exc


def _probe(address: str, host: str, port: int) -> None:
    """Wait until ``host:port`` accepts a TCP connection, up to :data:`CONNECT_TIMEOUT_S`."""
    import socket

    deadline = time.monotonic() + CONNECT_TIMEOUT_S
    while True:
        try:
            with socket.create_connection((host, port), timeout=max(0.1, deadline - time.monotonic())):
                return
        except OSError as exc:
            if time.monotonic() >= deadline:
                raise AutoiceError(f"{address}: cannot reach the Dask scheduler within {CONNECT_TIMEOUT_S:g} s "
                                   f"({_first_line(exc)}); is `dask scheduler` running there?") from exc  # fmt: skip
            time.sleep(0.2)


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _on_cluster(client: Any, fn: Callable[..., Any], jobs: Sequence[tuple], labels: Sequence[str], batch: Batch[Any],
                tick: Callable[[], Any], address: str, shared: Any, desc: str,
                outputs: Sequence[str | PathLike[str]]) -> None:  # fmt: skip
    """Run every job as a task on ``client``'s cluster; collect results as they come back."""
    from distributed import wait
    from distributed.client import FutureCancelledError
    from distributed.scheduler import KilledWorker

    futures: dict[Any, int] = {}
    try:
        _await_workers(client, address, time.monotonic())
        if shared is not _NOTHING:
            ref = client.scatter(shared, broadcast=True, hash=False)  # once per worker, not per task
            jobs = [(ref, *job[1:]) for job in jobs]
        name = "-".join(desc.split()) or "job"  # keys the dashboard groups by: autoice-<command>-<run>-<job>
        run = uuid.uuid4().hex[:8]
        for i, job in enumerate(jobs):
            key = f"autoice-{name}-{run}-{i}"
            futures[client.submit(fn, *job, key=key, pure=False)] = i
        pending = set(futures)
        idle_since: float | None = None
        while pending:
            with client.as_current():
                done, pending = _wait(wait, pending)
            for fut in done:
                i = futures[fut]
                try:
                    batch.record(i, fut.result())
                except StorageError:
                    raise
                except AutoiceError as exc:
                    batch.failures[i] = exc
                except KilledWorker:  # Dask gave up after it killed several workers
                    batch.failures[i] = SceneError(labels[i], WORKER_DIED)
                except FutureCancelledError as exc:  # the scheduler dropped it: lost its client, or `shared`
                    raise AutoiceError(f"{address}: the Dask cluster dropped the scene {labels[i]} "
                                       f"({_first_line(exc)}); were all workers lost?") from exc  # fmt: skip
                tick()
            if pending and not done:
                idle_since = _check_workers(client, address, idle_since)
        if outputs:  # a worker killed mid-write left its temporary file; only its machine can tell it is stale
            client.run(_sweep, [str(f) for f in outputs])
    except AutoiceError:
        raise
    except (OSError, TimeoutError) as exc:
        raise AutoiceError(f"{address}: lost the Dask scheduler ({_first_line(exc)})") from exc
    finally:
        with contextlib.suppress(Exception):
            client.cancel(list(futures), force=True)


def _wait(wait: Callable[..., Any], pending: set[Any]) -> tuple[set[Any], set[Any]]:
    """The futures done within a poll interval (none when it passes), and those still pending."""
    try:
        return wait(pending, timeout=_POLL_S, return_when="FIRST_COMPLETED")
    except TimeoutError:
        return set(), pending


def _workers(client: Any) -> int:
    return len(client.nthreads())


def _await_workers(client: Any, address: str, since: float) -> None:
    """Wait (bounded) for a first worker, so that a cluster without any fails in one line."""
    while _workers(client) == 0:
        if time.monotonic() - since > NO_WORKERS_TIMEOUT_S:
            raise AutoiceError(f"{address}: the Dask cluster has no workers (waited {NO_WORKERS_TIMEOUT_S:g} s)")
        time.sleep(_POLL_S)


def _check_workers(client: Any, address: str, idle_since: float | None) -> float | None:
    """When the cluster has had no worker for too long, give up in one line; else when it last had none."""
    try:
        n = _workers(client)
    except (OSError, TimeoutError) as exc:
        raise AutoiceError(f"{address}: lost the Dask scheduler ({exc})") from exc
    if n:
        return None
    now = time.monotonic()
    if idle_since is not None and now - idle_since > NO_WORKERS_TIMEOUT_S:
        raise AutoiceError(f"{address}: the Dask cluster lost all its workers; nothing ran for "
                           f"{NO_WORKERS_TIMEOUT_S:g} s, scenes not done were dropped")  # fmt: skip
    return now if idle_since is None else idle_since


def _settle(batch: Batch[Any], i: int, fut: Future) -> bool:
    """Record a finished future; False if its pool broke before it could finish."""
    try:
        batch.record(i, fut.result())
    except StorageError:
        raise
    except AutoiceError as exc:
        batch.failures[i] = exc
    except BrokenProcessPool:
        return False
    return True


def _in_pool(fn: Callable[..., Any], jobs: Sequence[tuple], batch: Batch[Any], tick: Callable[[], Any],
             workers: int, ctx: BaseContext | None, shared: Any) -> list[int]:  # fmt: skip
    """Run every job in one pool; return the jobs lost when a worker died (the pool is then broken)."""
    lost: list[int] = []
    with _pool(workers, ctx, shared) as pool:
        futures = {_submit(pool, fn, job): i for i, job in enumerate(jobs)}
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
                      ctx: BaseContext | None, shared: Any) -> None:  # fmt: skip
    """Run each job in a fresh single-worker pool (``workers`` at a time): a death names its scene."""
    pending = list(todo)
    running: dict[Future, tuple[int, ProcessPoolExecutor]] = {}
    try:
        while pending or running:
            while pending and len(running) < workers:
                i = pending.pop(0)
                pool = _pool(1, ctx, shared)
                running[_submit(pool, fn, jobs[i])] = (i, pool)
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


def _pool(workers: int, ctx: BaseContext | None, shared: Any) -> ProcessPoolExecutor:
    """A process pool whose processes receive ``shared`` once, when they start.

    Submit through :func:`_submit`: its processes start at the first submit, with SIGINT and
    SIGTERM held (:func:`_forking`).
    """
    return ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_start_worker, initargs=(shared,))


#: Signals held while a pool forks its processes.
_FORK_SIGNALS = {signal.SIGINT, signal.SIGTERM}


@contextlib.contextmanager
def _forking() -> Any:
    """Hold SIGINT and SIGTERM in this thread while pool processes are forked from it.

    A forked child runs the parent's stack until multiprocessing takes over; a signal in that
    moment (the pool terminating its workers when one died, or Ctrl-C) would raise our
    ``Interrupted`` there and unwind into the caller's code in the child (under pytest-xdist: into
    the test runner, which then reports a crash). Children inherit the mask and unblock in
    :func:`_start_worker`, where a held signal is handled as in any job. The parent gets its held
    signals when the block ends.
    """
    if not hasattr(signal, "pthread_sigmask"):  # no fork there either
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, _FORK_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _submit(pool: ProcessPoolExecutor, fn: Callable[..., Any], job: tuple) -> Future:
    """``pool.submit(fn, *job)`` with the signals held, as the submit may fork the pool's processes."""
    with _forking():
        return pool.submit(fn, *job)


def _start_worker(shared: Any) -> None:
    """Pool initializer: unblock the signals :func:`_forking` held, keep ``shared`` for the jobs."""
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _FORK_SIGNALS)
    if shared is not _NOTHING:
        _set_shared(shared)
