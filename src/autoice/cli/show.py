"""``autoice show``: a picture of one scene (inputs and charts), optionally a prediction against its reference.

With ``--map`` the picture is a map instead: a product of ``autoice export``/``mosaic`` (GeoTIFF or
CF NetCDF) or a scene warped onto a map CRS by its tie points.
"""

from __future__ import annotations

from pathlib import Path

import click


@click.command("show")
@click.argument("scene", type=click.Path(path_type=Path))
@click.option("--prediction", type=click.Path(path_type=Path),
              help="upload_package.nc holding this scene: drawn beside the reference with an error map "
              "(with --map: the prediction is mapped instead of the reference).")  # fmt: skip
@click.option("-o", "--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="PNG file to write.")  # fmt: skip
@click.option("--channel", default="btemp_36_5h", show_default=True, help="AMSR2 channel to show (btemp_*).")
@click.option("--max-size", type=click.IntRange(min=50), default=1000, show_default=True,
              help="Longest side of the drawn scene in pixels (large scenes are reduced by block means).")  # fmt: skip
@click.option("--dpi", type=click.IntRange(min=30, max=600), default=100, show_default=True, help="PNG resolution.")
@click.option("--map", "as_map", is_flag=True,
              help="Draw a map: SCENE may then also be an exported <name>_SIC.tif (its _SOD/_FLOE siblings "
              "are drawn too) or a CF NetCDF export or mosaic; axes in km, graticule, legends.")  # fmt: skip
@click.option("--crs", default="EPSG:3413", show_default=True, help="With --map on a scene: the map CRS.")
@click.option("--resolution", type=float, default=None,
              help="With --map on a scene: pixel size in metres (default: a round size for about --max-size "
              "pixels).")  # fmt: skip
def command(scene: Path, prediction: Path | None, out: Path, channel: str, max_size: int, dpi: int, as_map: bool,
            crs: str, resolution: float | None) -> None:  # fmt: skip
    """Draw SCENE to a PNG: HH/HV false colour, one AMSR2 channel and the SIC/SOD/FLOE charts.

    SCENE is an RTT train file, a test *_prep.nc (its charts are taken from a *_prep_reference.nc
    beside it) or a *_prep_reference.nc (its inputs from a *_prep.nc beside it). With --prediction
    each chart is drawn as reference | prediction | error map. With --map, a map of the charts (see
    --map). Prints the PNG path.
    """
    if as_map:
        from autoice.geolocation import check_resolution
        from autoice.maps import show_map

        if resolution is not None:
            check_resolution(resolution)
        click.echo(str(show_map(scene, out, prediction=prediction, crs=crs, resolution=resolution,
                                max_size=max_size, dpi=dpi)))  # fmt: skip
        return
    from autoice.plots import show_scene

    click.echo(str(show_scene(scene, out, prediction=prediction, max_size=max_size, amsr2_channel=channel, dpi=dpi)))
