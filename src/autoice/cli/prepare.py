"""``autoice prepare``: raw 40 m scenes -> ready-to-train 80 m scenes."""

from __future__ import annotations

from pathlib import Path

import click

from autoice.cli.cluster import scheduler_option


@click.command("prepare")
@click.argument("raw", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--output", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the *_prep.nc files (created if missing).")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1), help="Files converted in parallel.")
@click.option("--overwrite", is_flag=True, help="Rebuild outputs that already exist (default: skip them).")
@click.option("--mode", type=click.Choice(["official", "corrected"]), default="official", show_default=True,
              help="Egg-code decoding: 'official' = the organisers' converter bit for bit; 'corrected' decodes "
              "range codes and sums all partials of one class.")
@click.option("--thresholds", type=click.Choice(["current", "legacy"]), default="current", show_default=True,
              help="Dominance thresholds: current 65 %/65 % (SOD/FLOE) or legacy 70 %/50 %.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@scheduler_option
def command(raw: tuple[Path, ...], out_dir: Path, workers: int, overwrite: bool, mode: str, thresholds: str,
            quiet: bool, scheduler: str | None) -> None:  # fmt: skip
    """Convert raw scenes (files or folders) to ready-to-train files, as the organisers did.

    Charts are decoded from the SIGRID-3 egg codes on the 40 m grid, then SAR, incidence angle and
    distance map are 2 x 2 block-averaged (charts: 2 x 2 max), masks aligned and every input scaled
    with the organisers' global statistics. Outputs appear only when complete; existing ones are kept
    unless damaged. A bad file does not stop the others: each is reported and the command fails at the end.
    """
    from autoice import schema
    from autoice.errors import ScenesFailed
    from autoice.prepare import prepare_files, summarize

    t = schema.THRESHOLDS[thresholds]
    failed = None
    try:
        results = prepare_files(list(raw), out_dir, workers=workers, mode=mode, overwrite=overwrite,
                                progress=not quiet, scheduler=scheduler, sod_threshold=t["SOD"],
                                floe_threshold=t["FLOE"])  # fmt: skip
    except ScenesFailed as exc:  # say what was done for the good files, then fail naming the bad ones
        results, failed = exc.partial, exc
    for line in summarize(results):
        click.echo(line, err=True)
    done = sum(not r.skipped for r in results)
    skipped = len(results) - done
    replaced = sum(r.replaced for r in results)
    click.echo(f"prepared {done} scene(s) into {out_dir}" + (f", skipped {skipped} existing" if skipped else "")
               + (f", replaced {replaced} damaged" if replaced else ""))  # fmt: skip
    if failed is not None:
        raise failed
