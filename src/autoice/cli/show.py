"""``autoice show``: a picture of one scene (inputs and charts), optionally a prediction against its reference."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("show")
@click.argument("scene", type=click.Path(path_type=Path))
@click.option("--prediction", type=click.Path(path_type=Path),
              help="upload_package.nc holding this scene: drawn beside the reference with an error map.")  # fmt: skip
@click.option("-o", "--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="PNG file to write.")  # fmt: skip
@click.option("--channel", default="btemp_36_5h", show_default=True, help="AMSR2 channel to show (btemp_*).")
@click.option("--max-size", type=click.IntRange(min=50), default=1000, show_default=True,
              help="Longest side of the drawn scene in pixels (large scenes are reduced by block means).")  # fmt: skip
@click.option("--dpi", type=click.IntRange(min=30, max=600), default=100, show_default=True, help="PNG resolution.")
def command(scene: Path, prediction: Path | None, out: Path, channel: str, max_size: int, dpi: int) -> None:
    """Draw SCENE to a PNG: HH/HV false colour, one AMSR2 channel and the SIC/SOD/FLOE charts.

    SCENE is an RTT train file, a test *_prep.nc (its charts are taken from a *_prep_reference.nc
    beside it) or a *_prep_reference.nc (its inputs from a *_prep.nc beside it). With --prediction
    each chart is drawn as reference | prediction | error map. Prints the PNG path.
    """
    from autoice.plots import show_scene

    click.echo(str(show_scene(scene, out, prediction=prediction, max_size=max_size, amsr2_channel=channel, dpi=dpi)))
