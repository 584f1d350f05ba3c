"""The project's exceptions: each message reads ``<file>: <what is wrong>``.

The CLI catches :class:`AutoiceError`, prints its one line to stderr and exits 1,
so anything a user can get wrong must surface as one of these, never as a traceback.
"""

from __future__ import annotations

from os import PathLike


class AutoiceError(Exception):
    """Base of every error that the CLI reports as one line."""


class SceneError(AutoiceError):
    """A scene file (raw, RTT or reference) is unreadable or does not follow the format."""

    def __init__(self, path: str | PathLike[str], fault: str) -> None:
        self.path = str(path)
        self.fault = fault
        super().__init__(f"{self.path}: {fault}")


class ChartError(AutoiceError):
    """An ice chart's polygon table cannot be decoded."""


class SubmissionError(AutoiceError):
    """A submission file is unreadable or does not follow the format."""

    def __init__(self, path: str | PathLike[str], fault: str) -> None:
        self.path = str(path)
        self.fault = fault
        super().__init__(f"{self.path}: {fault}")


class ConfigError(AutoiceError):
    """A configuration value, preset or override is invalid."""
