"""``autoice inspect``: what a user wants to know about a scene file."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("inspect")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per file instead of text.")
@click.option("--no-stats", is_flag=True, help="Skip input statistics (faster on full-size scenes).")
def command(files: tuple[Path, ...], as_json: bool, no_stats: bool) -> None:
    """Describe scene files (or every scene in a folder): kind, grids, variables, chart histograms, statistics."""
    from autoice.cli import jsonout
    from autoice.errors import AutoiceError
    from autoice.inspection import describe, format_description
    from autoice.scenes import find_scenes

    found = find_scenes(list(files))
    if not found:
        raise AutoiceError(f"inspect: no scene files (*.nc) in {', '.join(str(f) for f in files)}")
    for path in found:
        info = describe(path, stats=not no_stats)
        click.echo(jsonout.dumps(info) if as_json else format_description(info))
