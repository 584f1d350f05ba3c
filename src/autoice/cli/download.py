"""``autoice download``: fetch the ready-to-train AI4Arctic dataset into OUT/train and OUT/test."""

from __future__ import annotations

from pathlib import Path

import click

from autoice.download import ENDPOINT_ENV, MANIFEST_ENV


@click.command("download")
@click.argument("out_dir", metavar="OUT", type=click.Path(file_okay=False, path_type=Path))
@click.option("--split", "split", type=click.Choice(["train", "test", "all"]), default="all", show_default=True,
              help="What to fetch: train (~55 GB of archives, 512 scenes), test (~2.4 GB, 20 scenes with "
              "their references) or both.")
@click.option("--source", type=click.Choice(["hf", "dtu"]), default="hf", show_default=True,
              help="hf: the Hugging Face Hub re-host that torchgeo uses (fast). dtu: the original DTU data "
              "repository (slow); not implemented, see the README.")
@click.option("--keep-archives", is_flag=True,
              help="Keep the verified archives in OUT/downloads after extraction (default: delete them).")
@click.option("--endpoint", envvar=ENDPOINT_ENV, default=None, metavar="URL",
              help=f"Another host for the source's files, e.g. a mirror (env {ENDPOINT_ENV}); the published "
              "checksums still apply.")
@click.option("--manifest", envvar=MANIFEST_ENV, default=None, type=click.Path(dir_okay=False, path_type=Path),
              help=f"A JSON source definition replacing the packaged one: url, md5, splits, scenes "
              f"(env {MANIFEST_ENV}).")
@click.option("--retries", default=5, show_default=True, type=click.IntRange(0, 100),
              help="Retries of a failed request (waits 1, 2, 4 ... 60 s); a download that progressed starts "
              "counting again.")
@click.option("--timeout", "timeout_s", default=60.0, show_default=True, type=click.FloatRange(0.1, 3600),
              help="Seconds without an answer before a request counts as failed.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def command(out_dir: Path, split: str, source: str, keep_archives: bool, endpoint: str | None,
            manifest: Path | None, retries: int, timeout_s: float, quiet: bool) -> None:  # fmt: skip
    """Download, verify and extract the ready-to-train dataset into OUT (e.g. `autoice download ai4arctic`).

    Result: OUT/train/*_prep.nc (512 scenes), OUT/test/*_prep.nc and *_prep_reference.nc (20 scenes),
    OUT/metadata.csv, checked against the official scene lists shipped with autoice. Downloads resume
    from OUT/downloads/*.part, failed requests are retried with back-off, and every file must match its
    published md5 (a mismatch is deleted and fetched once more). Free space for the archives plus the
    extracted scenes is checked first; the two training parts are read back to back into the extraction,
    never joined on disk, and each scene appears only when whole. A rerun over a complete OUT does
    nothing; over a partial one it resumes.
    """
    import math

    from autoice.download import SPLITS, Fetcher, describe, download, load_source

    if not math.isfinite(timeout_s):
        raise click.BadParameter(f"{timeout_s} is not a number of seconds", param_hint="'--timeout'")
    src = load_source(source, manifest=manifest, endpoint=endpoint)
    splits = SPLITS if split == "all" else (split,)
    fetcher = Fetcher(retries=retries, timeout_s=timeout_s, progress=not quiet)
    report = download(out_dir, splits=splits, source=src, keep_archives=keep_archives, fetcher=fetcher)
    for rep in report.splits:
        if rep.extra:
            click.echo(f"warning: {rep.folder}: {len(rep.extra)} scene file(s) not in the list: "
                       f"{', '.join(rep.extra[:3])}{' ...' if len(rep.extra) > 3 else ''}", err=True)  # fmt: skip
    for line in describe(report):
        click.echo(line)
    if report.nothing_done:
        click.echo(f"{out_dir} is complete: nothing downloaded")
