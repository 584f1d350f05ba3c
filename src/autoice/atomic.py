"""Atomic file output: write to a temporary file beside the target, then rename.

A crash, an exception or Ctrl-C inside the block leaves no partial file behind.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

from autoice.errors import AutoiceError, OutputError, StorageError
from autoice.interrupts import deferred

#: errors that can only come from writing (so they are the output's fault, never the input's)
_WRITE_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EFBIG}
#: below this many free bytes a failed write is taken to be a full disk (HDF5 says only "HDF error")
_NEARLY_FULL = 4 << 20
#: a temporary file of another machine (shared disk) untouched this long is stale
_STALE_FOREIGN_S = 24 * 3600


def _error(path: Path, fault: str, exc: OSError) -> OutputError:
    """An OutputError, or a StorageError when the whole disk refuses writes."""
    cls = StorageError if exc.errno in _WRITE_ERRNOS else OutputError
    return cls(path, fault)


def _why(exc: OSError) -> str:
    """The user's words for a filesystem failure."""
    if isinstance(exc, (FileExistsError, NotADirectoryError)):
        return "a file is in the way of this folder"
    if isinstance(exc, IsADirectoryError):
        return "a folder is in the way of this file"
    if isinstance(exc, PermissionError):
        return "permission denied"
    if exc.errno == errno.EROFS:
        return "read-only file system"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "no space left on the device"
    if exc.errno == errno.EFBIG:
        return "file too large for this file system"
    return exc.strerror or type(exc).__name__


def write_error(path: str | os.PathLike[str], exc: OSError) -> OutputError:
    """The one-line error for a failed write to ``path`` (a StorageError when the disk refuses every write)."""
    return _error(Path(path), f"cannot write here: {_why(exc)}", exc)


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname().split(".")[0]) or "host"


#: ``.<name>.<host>.<pid>.<random>.tmp``: who wrote a temporary file, so a later run can tell a
#: stale one (its process is gone) from one being written now
_TMP = re.compile(r"^\..+\.(?P<host>[A-Za-z0-9-]+)\.(?P<pid>\d+)\.[A-Za-z0-9_]+\.tmp$")
_swept: set[Path] = set()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists but is not ours
        return True
    return True


def sweep_stale(folder: str | os.PathLike[str]) -> list[Path]:
    """Delete temporaries of our naming that a killed run (``kill -9``, power loss) left in ``folder``.

    A file is stale when its writer's process is gone (same machine), or when it comes from
    another machine and has not been touched for a day. Returns what was removed.
    """
    folder = Path(folder)
    removed = []
    host = _host()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        m = _TMP.match(entry.name)
        if m is None or not entry.is_file(follow_symlinks=False):
            continue
        if m["host"] == host:
            stale = not _alive(int(m["pid"]))
        else:
            with contextlib.suppress(OSError):
                stale = time.time() - entry.stat().st_mtime > _STALE_FOREIGN_S
        if stale:
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    return removed


def _sweep_once(folder: Path) -> None:
    key = folder.resolve()
    if key not in _swept:
        _swept.add(key)
        sweep_stale(folder)


def free_bytes(folder: str | os.PathLike[str]) -> int | None:
    """Free space for an unprivileged writer in ``folder`` (None if unknown)."""
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def require_space(folder: str | os.PathLike[str], needed: int, what: str) -> None:
    """Refuse a large write up front when ``folder``'s disk cannot hold ``needed`` bytes."""
    free = free_bytes(folder)
    if free is not None and free < needed:
        raise StorageError(folder, f"not enough free space for {what}: needs {needed / 2**20:,.0f} MiB, "
                                  f"{free / 2**20:,.0f} MiB free")


def ensure_folder(folder: str | os.PathLike[str]) -> Path:
    """Create ``folder`` (and its parents) or raise :class:`OutputError` saying why not."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _error(folder, f"cannot create this output folder: {_why(exc)}", exc) from exc
    return folder


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path in ``path``'s folder; on success rename it to ``path``.

    The temporary name starts with ``.`` and ends with ``.tmp`` so that globbing for
    ``*.nc`` never picks it up.
    """
    target = Path(path)
    ensure_folder(target.parent)
    _sweep_once(target.parent)
    tmp: Path | None = None
    try:
        with deferred():  # SIGTERM while the temporary is made: raised once it has a name, so it is removed
            tmp = _temporary(target)
        yield tmp
        try:
            os.replace(tmp, target)
        except OSError as exc:
            raise _error(target, f"cannot write here: {_why(exc)}", exc) from exc
    except BaseException as exc:
        fault = _output_fault(exc, target.parent)
        if tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        if fault is not None:
            raise StorageError(target, f"cannot write this file: {fault}") from exc
        raise


def _temporary(target: Path) -> Path:
    """An empty temporary file next to ``target``, with the usual permissions (mkstemp makes 0600)."""
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.{_host()}.{os.getpid()}.", suffix=".tmp",
                                        dir=target.parent)
    except OSError as exc:
        raise _error(target, f"cannot write here: {_why(exc)}", exc) from exc
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_name, 0o666 & ~umask)
    return Path(tmp_name)


def _output_fault(exc: BaseException, folder: Path) -> str | None:
    """Why a write failed, when it is the output's fault (full or read-only disk); else None."""
    if isinstance(exc, (AutoiceError, KeyboardInterrupt)) or not isinstance(exc, Exception):
        return None
    if isinstance(exc, OSError) and exc.errno in _WRITE_ERRNOS:
        return _why(exc)
    free = free_bytes(folder)  # HDF5 and others hide ENOSPC behind their own errors
    if isinstance(exc, (OSError, RuntimeError)) and free is not None and free < _NEARLY_FULL:
        return f"no space left on the device ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
    return None


@contextlib.contextmanager
def work_folder(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a new hidden folder beside ``path`` for the pieces of it; removed when the block ends.

    It lies on the same storage as the output, so workers of a cluster that see the output's
    folder see it too.
    """
    target = Path(path)
    ensure_folder(target.parent)
    try:
        folder = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".parts", dir=target.parent))
    except OSError as exc:
        raise _error(target, f"cannot write here: {_why(exc)}", exc) from exc
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


_W = TypeVar("_W", bound="AtomicNetCDF")


class AtomicNetCDF:
    """A netCDF-4 file open for writing under a temporary name, renamed into place on success.

    Use as a context manager: leaving the block normally closes and renames the file; an
    exception (or Ctrl-C) closes and deletes it. Subclasses add what they write, each netCDF call
    inside :func:`autoice.interrupts.deferred` so that a signal never lands inside the library.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        import netCDF4

        self.path = Path(path)
        self._atomic = atomic_output(self.path)
        tmp = self._atomic.__enter__()
        try:
            with deferred():
                self._nc = netCDF4.Dataset(tmp, "w", format="NETCDF4")
        except BaseException as exc:
            self._atomic.__exit__(type(exc), exc, exc.__traceback__)
            raise

    def close(self) -> Path:
        """Finish the file and move it into place."""
        try:
            with deferred():
                self._nc.close()
        except BaseException as exc:
            self._atomic.__exit__(type(exc), exc, exc.__traceback__)  # removes it; a full disk -> OutputError
            raise
        self._atomic.__exit__(None, None, None)
        return self.path

    def abort(self, exc: BaseException) -> None:
        """Drop the partial file."""
        try:
            with contextlib.suppress(Exception):  # already failing; the file is dropped anyway
                self._nc.close()
        finally:
            self._atomic.__exit__(type(exc), exc, exc.__traceback__)

    def __enter__(self: _W) -> _W:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if exc is None:
            self.close()
        else:
            self.abort(exc)
