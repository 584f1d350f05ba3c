"""The project's exceptions: each message reads ``<file>: <what is wrong>``.

The CLI catches :class:`AutoiceError`, prints its one line to stderr and exits 1,
so anything a user can get wrong must surface as one of these, never as a traceback.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from os import PathLike, fspath
from pathlib import Path
from typing import Any


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


class StorageError(OutputError):
    """The disk refuses every write (full, over quota, read-only): multi-scene commands stop at once."""


class DownloadError(_FileError):
    """A file could not be fetched (refused, not found, failed its checksum twice) or its archive is unusable."""


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


class ScenesFailed(AutoiceError):
    """Some scenes of a multi-scene command failed after the others were done.

    ``failures`` holds one error per bad scene (the CLI prints each as its own line before this
    summary, which names the files); ``partial`` holds what the command made of the good ones.
    """

    def __init__(self, failures: Sequence[AutoiceError], total: int, *, what: str = "scenes", outcome: str = "",
                 partial: Any = None) -> None:  # fmt: skip
        self.failures = list(failures)
        self.total = total
        self.what = what
        self.outcome = outcome
        self.partial = partial
        names = [Path(f.path).name if isinstance(f, _FileError) else str(f).split(": ")[0] for f in self.failures]
        listed = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        tail = f"; {outcome}" if outcome else ""
        super().__init__(f"{len(self.failures)} of {total} {what} failed: {listed}{tail}")

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (_scenes_failed, (self.failures, self.total, self.what, self.outcome, self.partial))


def _scenes_failed(failures: list[AutoiceError], total: int, what: str, outcome: str, partial: Any) -> ScenesFailed:
    return ScenesFailed(failures, total, what=what, outcome=outcome, partial=partial)
