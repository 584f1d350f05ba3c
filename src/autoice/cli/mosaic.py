"""``autoice mosaic``: many scenes' ice charts on one map grid, overlaps resolved, with a PNG quicklook."""

from __future__ import annotations

from pathlib import Path

import click

from autoice.cli.cluster import scheduler_option


@click.command("mosaic")
@click.argument("sources", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="NAME.tif: COGs NAME_SIC.tif, NAME_SOD.tif, NAME_FLOE.tif (+ NAME_uncertainty.tif); "
              "NAME.nc: one CF-1.8 NetCDF. A quicklook NAME.png is written beside either.")
@click.option("--data", type=click.Path(path_type=Path), default=None,
              help="Folder of the scenes' _prep.nc (their tie points), for predictions (upload_package.nc).")
@click.option("--resolution", default=1000.0, show_default=True, type=float,
              help="Pixel size in metres (on a geographic CRS: degrees of latitude of that length).")
@click.option("--crs", default="EPSG:3413", show_default=True,
              help="Map CRS of the mosaic (EPSG code, PROJ string or WKT).")
@click.option("--rule", type=click.Choice(["newest", "confident"]), default="newest", show_default=True,
              help="Where scenes overlap: newest = the latest acquisition (from the scene key) on top; "
              "confident = the least uncertain pixel (needs --uncertainty).")
@click.option("--uncertainty", type=click.Path(path_type=Path), default=None,
              help="Folder of <scene>_uncertainty.nc (autoice predict --uncertainty): for --rule confident, "
              "and written with the mosaic as float32.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1),
              help="Scenes warped in parallel (local processes).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@scheduler_option
def command(sources: tuple[Path, ...], output: Path, data: Path | None, resolution: float, crs: str, rule: str,
            uncertainty: Path | None, workers: int, quiet: bool, scheduler: str | None) -> None:  # fmt: skip
    """Put the ice charts of many scenes on one map grid covering them all.

    SOURCES are as for `autoice export`: an upload_package.nc (with --data) or RTT files/folders with
    charts. Classes are warped by nearest neighbour straight to the mosaic's resolution; 255 is no
    data. If any scene fails, each is named and no mosaic is written. Prints the files written.
    """
    from autoice.mosaic import mosaic

    result = mosaic(list(sources), output, data=data, crs=crs, resolution=resolution, rule=rule,
                    uncertainty=uncertainty, scheduler=scheduler, workers=workers, progress=not quiet)  # fmt: skip
    m = result.mosaic
    crs_name = m.grid.crs.to_string()
    click.echo(f"mosaic of {len(m.scenes)} scenes, {m.grid.width} x {m.grid.height} pixels of {m.resolution:g} m "
               f"on {crs_name} ({m.rule} on top):")  # fmt: skip
    for f in result.files:
        click.echo(f"  {f}")
