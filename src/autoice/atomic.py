"""Atomic file output: write to a temporary file beside the target, then rename.

A crash, an exception or Ctrl-C inside the block leaves no partial file behind.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

from autoice.errors import OutputError


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
    if exc.errno == errno.ENOSPC:
        return "no space left on the device"
    return exc.strerror or type(exc).__name__


def ensure_folder(folder: str | os.PathLike[str]) -> Path:
    """Create ``folder`` (and its parents) or raise :class:`OutputError` saying why not."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(folder, f"cannot create this output folder: {_why(exc)}") from exc
    return folder


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path in ``path``'s folder; on success rename it to ``path``.

    The temporary name starts with ``.`` and ends with ``.tmp`` so that globbing for
    ``*.nc`` never picks it up.
    """
    target = Path(path)
    ensure_folder(target.parent)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise OutputError(target, f"cannot write here: {_why(exc)}") from exc
    os.close(fd)
    tmp = Path(tmp_name)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; outputs get the usual permissions
    try:
        yield tmp
        try:
            os.replace(tmp, target)
        except OSError as exc:
            raise OutputError(target, f"cannot write here: {_why(exc)}") from exc
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


_W = TypeVar("_W", bound="AtomicNetCDF")


class AtomicNetCDF:
    """A netCDF-4 file open for writing under a temporary name, renamed into place on success.

    Use as a context manager: leaving the block normally closes and renames the file; an
    exception (or Ctrl-C) closes and deletes it. Subclasses add what they write.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        import netCDF4

        self.path = Path(path)
        self._atomic = atomic_output(self.path)
        tmp = self._atomic.__enter__()
        try:
            self._nc = netCDF4.Dataset(tmp, "w", format="NETCDF4")
        except BaseException as exc:
            self._atomic.__exit__(type(exc), exc, exc.__traceback__)
            raise

    def close(self) -> Path:
        """Finish the file and move it into place."""
        self._nc.close()
        self._atomic.__exit__(None, None, None)
        return self.path

    def abort(self, exc: BaseException) -> None:
        """Drop the partial file."""
        try:
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
