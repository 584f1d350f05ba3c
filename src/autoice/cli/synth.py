"""``autoice synth``: write a seeded synthetic dataset in the exact AI4Arctic format."""

from __future__ import annotations

from pathlib import Path

import click

from autoice.cli.cluster import scheduler_option


@click.command("synth")
@click.argument("out_dir", metavar="OUT", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--train",
    "n_train",
    default=4,
    show_default=True,
    type=click.IntRange(0),
    help="Training scenes (OUT/train/*_prep.nc with charts).",
)
@click.option(
    "--test",
    "n_test",
    default=2,
    show_default=True,
    type=click.IntRange(0),
    help="Test scenes (OUT/test/*_prep.nc without charts + *_prep_reference.nc).",
)
@click.option(
    "--height",
    default=600,
    show_default=True,
    type=click.IntRange(2),
    help="Lines per scene at 80 m (raw files have twice as many; real scenes ~5000).",
)
@click.option(
    "--width",
    default=640,
    show_default=True,
    type=click.IntRange(2),
    help="Samples per scene at 80 m (real scenes ~5200).",
)
@click.option("--seed", default=0, show_default=True, type=click.IntRange(0),
              help="Dataset seed: same seed, same files.")  # fmt: skip
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1), help="Scenes made in parallel.")
@click.option("--overwrite", is_flag=True, help="Regenerate scenes whose files exist (default: keep them).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@scheduler_option
def command(out_dir: Path, n_train: int, n_test: int, height: int, width: int, seed: int, workers: int,
            overwrite: bool, quiet: bool, scheduler: str | None) -> None:  # fmt: skip
    """Write synthetic scenes: OUT/raw (40 m), then OUT/train and OUT/test via the real prepare path.

    Each scene copies the composition of one real AI4Arctic training scene (service, region, month,
    open water, class mix, masked share); its SIGRID-3 chart is an analyst's summary of a true ice field
    that Sentinel-1, AMSR2 and ERA5 see through physics (docs/synthetic.md). Scene i depends only on
    (seed, i), so --workers never changes the results. Existing scenes are kept unless damaged; a scene
    that fails does not stop the others: each is reported and the command fails at the end.
    """
    from autoice.errors import ScenesFailed
    from autoice.synth import synthesize

    failed = None
    try:
        result = synthesize(out_dir, n_train=n_train, n_test=n_test, height=height, width=width, seed=seed,
                            workers=workers, overwrite=overwrite, progress=not quiet, scheduler=scheduler)  # fmt: skip
    except ScenesFailed as exc:  # say what was made of the good scenes, then fail naming the bad ones
        result, failed = exc.partial, exc
    n_dmi = sum("_icechart_dmi_" in p.name for p in result.raw)
    made = len(result.raw) - result.skipped
    click.echo(
        f"synthesized {made} scene(s) ({len(result.train)} train, {len(result.test)} test; "
        f"dmi {n_dmi}, cis {len(result.raw) - n_dmi}; {height} x {width} at 80 m) into {out_dir}"
        + (f", kept {result.skipped} existing" if result.skipped else "")
        + (f", replaced {result.replaced} damaged" if result.replaced else "")
    )
    if failed is not None:
        raise failed
