"""``autoice validate``: check an upload package against the test scenes before submitting it."""

from __future__ import annotations

from pathlib import Path

import click

from autoice.cli.cluster import scheduler_option


@click.command("validate")
@click.argument("submission", type=click.Path(path_type=Path))
@click.option(
    "--data",
    "data",
    required=True,
    multiple=True,
    type=click.Path(path_type=Path),
    help="Folder (or files) of the test scenes: *_prep.nc and/or *_prep_reference.nc; only names and shapes "
    "are used. Repeatable.",
)
@scheduler_option
def command(submission: Path, data: tuple[Path, ...], scheduler: str | None) -> None:
    """Check SUBMISSION (upload_package.nc) against the test scenes: every problem on its own line.

    Checks every scene x chart is present with its own dims, the scene's 80 m shape, dtype uint8
    and values within the classes (SIC 0-10, SOD 0-5, FLOE 0-6), and that nothing else is there.
    Exit status 0 when valid, 1 otherwise.
    """
    from autoice.errors import SubmissionError
    from autoice.submission import scene_shapes, validate_submission

    shapes = scene_shapes(list(data))
    problems = validate_submission(submission, shapes, scheduler=scheduler)
    for line in problems:
        click.echo(line)
    if problems:
        raise SubmissionError(submission, f"{len(problems)} problem{'s' if len(problems) > 1 else ''} found")
    click.echo(f"{submission}: valid ({len(shapes)} scenes x 3 charts)")
