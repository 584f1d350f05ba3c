"""The ``autoice`` command: a thin shell over the library, one module per subcommand.

Subcommands are imported only when used, so ``autoice --help`` stays fast and a command's
heavy dependencies (torch, mlflow, matplotlib) load only for that command.
Handled failures (:class:`autoice.errors.AutoiceError`) print one line to stderr and exit 1; when
several scenes failed (:class:`autoice.errors.ScenesFailed`), one line per scene comes first.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import traceback

import click

from autoice import __version__, interrupts
from autoice.errors import AutoiceError, ScenesFailed

#: subcommand -> module under autoice.cli exposing a click command named ``command``.
COMMANDS: dict[str, str] = {
    "download": "download",
    "synth": "synth",
    "prepare": "prepare",
    "inspect": "inspect",
    "validate": "validate",
    "score": "score",
    "train": "train",
    "predict": "predict",
    "evaluate": "evaluate",
    "serve": "serve",
    "show": "show",
    "report": "report",
    "demo": "demo",
    "export": "export",
    "label": "label",
    "mosaic": "mosaic",
}


class LazyGroup(click.Group):
    """A click group that imports a subcommand's module on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:  # noqa: D102
        return sorted(name for name in COMMANDS if importlib.util.find_spec(f"autoice.cli.{COMMANDS[name]}"))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:  # noqa: D102
        if cmd_name not in COMMANDS:
            return None
        module = importlib.import_module(f"autoice.cli.{COMMANDS[cmd_name]}")
        return module.command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="autoice")
@click.option("--debug", is_flag=True, help="Show full tracebacks instead of one-line errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Automated sea ice charts from Sentinel-1 SAR, AMSR2 and ERA5 (AI4Arctic / AutoICE)."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


def _close_progress_bars() -> None:
    """End any progress bar an error interrupted, so that the error starts its own line."""
    tqdm = sys.modules.get("tqdm")
    for bar in list(getattr(getattr(tqdm, "tqdm", None), "_instances", ()) or ()):
        bar.close()


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run the CLI, turning handled errors into one line and exit 1.

    Ctrl-C and SIGTERM stop the command cleanly (no partial outputs) with exit 130 and 143.
    """
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    interrupts.install()
    try:
        cli.main(args=args, prog_name="autoice", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except (click.Abort, KeyboardInterrupt) as exc:  # click wraps Ctrl-C (and our SIGTERM) in Abort
        cause = exc if isinstance(exc, KeyboardInterrupt) else exc.__cause__
        code = interrupts.exit_code(cause) if isinstance(cause, KeyboardInterrupt) else 130
        what = "terminated (SIGTERM)" if code == 143 else "interrupted"
        click.echo(f"autoice: {what}; no partial output was left", err=True)
        sys.exit(code)
    except AutoiceError as exc:
        if debug:
            traceback.print_exc()
        _close_progress_bars()
        if isinstance(exc, ScenesFailed) and exc.total == len(exc.failures) == 1:
            exc = exc.failures[0]  # one scene given, and it failed: its own error says it all
        elif isinstance(exc, ScenesFailed):
            for failure in exc.failures:  # one line per bad scene, then the one error line: the summary
                click.echo(f"autoice: failed: {failure}", err=True)
        click.echo(f"autoice: error: {exc}", err=True)
        sys.exit(1)
    sys.exit(0)
