"""``autoice report``: one self-contained HTML page about a submission (scores, per-class figures, maps)."""

from __future__ import annotations

from pathlib import Path

import click

from autoice import schema


@click.command("report")
@click.option("--prediction", required=True, type=click.Path(path_type=Path), help="The upload_package.nc.")
@click.option("--reference", "reference", required=True, multiple=True, type=click.Path(path_type=Path),
              help="*_prep_reference.nc files or RTT files with charts, or folders of them. Repeatable.")  # fmt: skip
@click.option("-o", "--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="HTML file to write.")  # fmt: skip
@click.option("--max-scenes", type=click.IntRange(min=0), default=None,
              help="Draw maps of the first N scenes only (all are scored). Default: all.")  # fmt: skip
@click.option("--by", "by", multiple=True, type=click.Choice(schema.GROUPINGS),
              help="Add a table of scores per service, month, season or region (as `autoice score --by`). "
                   "Repeatable.")  # fmt: skip
def command(
    prediction: Path, reference: tuple[Path, ...], out: Path, max_scenes: int | None, by: tuple[str, ...]
) -> None:
    """Write one HTML page: score table, per-scene scores and maps, per-class F1, confusion matrices.

    Scores are those of `autoice score` (all scenes pooled; with --by also per group). Images
    are embedded, so the page is a single file. Prints the HTML path.
    """
    from autoice.report import write_report

    path = write_report(prediction, list(reference), out, max_scenes=max_scenes, by=by, progress=True)
    click.echo(str(path))
