"""One run per folder: an advisory lock that says who holds it.

Two trainings writing into one workdir would mix their checkpoints, configs and MLflow store, so
a command that owns a folder takes ``<folder>/.autoice.lock`` (``flock``; released by the kernel
when the process dies, even by ``kill -9``, so a crash never leaves a stale lock). The file holds
the holder's command, pid, machine and start time for the error message of the one refused.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from autoice.atomic import ensure_folder
from autoice.errors import AutoiceError, OutputError

LOCK_NAME = ".autoice.lock"
_held: set[Path] = set()  # lock files this process holds


class FolderBusy(AutoiceError):
    """Another autoice process holds the folder."""


def _holder(fd: int) -> str:
    with contextlib.suppress(OSError, ValueError):
        info = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
        return (f"`{info['command']}` (pid {info['pid']} on {info['host']}, since "
                f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(info['since']))})")  # fmt: skip
    return "another autoice process"


@contextlib.contextmanager
def hold(folder: str | os.PathLike[str], command: str, *, wait: bool = False, name: str = LOCK_NAME
         ) -> Iterator[Path]:  # fmt: skip
    """Hold ``folder``'s lock for the block; raise :class:`FolderBusy` naming the holder if taken.

    ``wait=True`` blocks until the holder finishes instead (for short critical sections); ``name``
    picks another lock file in the folder (locks of one process on one file would block each other).
    """
    folder = ensure_folder(folder)
    path = folder / name
    key = path.resolve()
    if key in _held:  # re-entrant: demo holds its workdir, then trains in it
        yield path
        return
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        raise OutputError(path, f"cannot create the folder's lock file: {exc.strerror}") from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            raise FolderBusy(f"{folder}: in use by {_holder(fd)}; wait for it to finish or use another "
                             "folder") from None  # fmt: skip
        except OSError:  # file systems without flock (some network mounts): run unlocked
            pass
        info = {"command": command, "pid": os.getpid(), "host": socket.gethostname(), "since": time.time(),
                "argv": sys.argv[1:]}  # fmt: skip
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(info).encode(), 0)
        _held.add(key)
        try:
            yield path
        finally:
            _held.discard(key)
    finally:
        os.close(fd)  # releases the flock
