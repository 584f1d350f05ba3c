"""The project's exceptions: each message reads ``<file>: <what is wrong>``.

The CLI catches :class:`AutoiceError`, prints its one line to stderr and exits 1,
so anything a user can get wrong must surface as one of these, never as a traceback.
"""

from __future__ import annotations

from collections.abc import Iterable
from os import PathLike, fspath


class AutoiceError(Exception):
    """Base of every error that the CLI reports as one line."""


class _FileError(AutoiceError):
    """An error about one file or folder: ``<path>: <fault>``; survives pickling (process pools)."""

    def __init__(self, path: str | PathLike[str], fault: str) -> None:
        self.path = str(path)
        self.fault = fault
        super().__init__(f"{self.path}: {fault}")

    def __reduce__(self) -> tuple[type, tuple[str, str]]:
        # Exception pickles as cls(*self.args) = cls(message), which this __init__ refuses
        return (type(self), (self.path, self.fault))


class SceneError(_FileError):
    """A scene file (raw, RTT or reference) is unreadable or does not follow the format."""


class OutputError(_FileError):
    """An output cannot be written where it was asked for (a file in the way, read-only, no space)."""


class ChartError(AutoiceError):
    """An ice chart's polygon table cannot be decoded."""


class SubmissionError(_FileError):
    """A submission file is unreadable or does not follow the format."""


class ConfigError(AutoiceError):
    """A configuration value, preset or override is invalid."""


def where(paths: str | PathLike[str] | Iterable[str | PathLike[str]]) -> str:
    """One path, or several joined by commas, as a user typed them (never ``[PosixPath('...')]``)."""
    if isinstance(paths, (str, PathLike)):
        return fspath(paths)
    return ", ".join(fspath(p) for p in paths)
