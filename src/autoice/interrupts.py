"""Ctrl-C and SIGTERM: stop cleanly, never mid-way through writing a file.

The CLI turns SIGTERM (what batch schedulers and ``docker stop`` send) into the same exception
as Ctrl-C, so every ``finally`` and every atomic output cleans up on both; the process then exits
with 128 + the signal number (130 for SIGINT, 143 for SIGTERM), as shells expect.

A signal that arrives inside :func:`deferred` (a netCDF or checkpoint write) is held until the
block ends: raising it inside the netCDF/HDF5 library can deadlock on the library's own lock or be
swallowed by it. Writes are short, so the wait is too.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

#: the signals handled like Ctrl-C
SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """Raised in the main thread when SIGINT or SIGTERM arrives.

    A KeyboardInterrupt, so every handler of Ctrl-C also handles SIGTERM.
    """

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(signal.Signals(signum).name)

    @property
    def exit_code(self) -> int:
        """128 + signal number, the shell convention."""
        return 128 + self.signum


_depth = 0
_pending: int | None = None


def _handler(signum: int, frame: FrameType | None) -> None:
    global _pending
    if _depth > 0:
        _pending = _pending or signum
        return
    raise Interrupted(signum)


def install() -> None:
    """Handle SIGINT and SIGTERM with :class:`Interrupted` (main thread only; a no-op elsewhere)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for s in SIGNALS:
        signal.signal(s, _handler)


def exit_code(exc: BaseException) -> int:
    """The exit status for an interrupt: 143 for SIGTERM, 130 for Ctrl-C."""
    return exc.exit_code if isinstance(exc, Interrupted) else 128 + signal.SIGINT


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Hold SIGINT/SIGTERM until the block ends, then raise :class:`Interrupted` (nests)."""
    global _depth, _pending
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if _depth == 0 and _pending is not None:
            signum, _pending = _pending, None
            raise Interrupted(signum)
