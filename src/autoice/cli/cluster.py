"""The ``--scheduler`` option that every multi-scene command shares (not a command itself).

A command that runs per-scene work through :func:`autoice.batch.run_each` takes the option with
``@scheduler_option`` and passes the value on as ``scheduler=``; that is all a new command needs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import click

F = TypeVar("F", bound=Callable[..., object])

#: Dask's own variable for the scheduler a client should use.
SCHEDULER_ENV = "DASK_SCHEDULER_ADDRESS"


def scheduler_option(fn: F) -> F:
    """Add ``--scheduler ADDRESS`` (default: ``$DASK_SCHEDULER_ADDRESS``; none = local processes)."""
    return click.option(
        "--scheduler",
        "scheduler",
        envvar=SCHEDULER_ENV,
        default=None,
        metavar="ADDRESS",
        help="Run the per-scene work on this Dask cluster (tcp://host:8786; default $DASK_SCHEDULER_ADDRESS), "
        "else in local processes. Data and output folders must be on storage every worker sees.",
    )(fn)
