"""``autoice export``: ice charts -> Cloud-Optimized GeoTIFF, CF NetCDF or SIGRID-3 polygons on a map projection."""

from __future__ import annotations

from pathlib import Path

import click

from autoice.cli.cluster import scheduler_option


@click.command("export")
@click.argument("sources", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path),
              help="Folder for the exported files (one per scene); for sigrid3 the chart file OUT.shp or OUT.gpkg "
              "(all scenes).")
@click.option("--data", type=click.Path(path_type=Path), default=None,
              help="Folder of the scenes' _prep.nc (their tie points), for predictions (upload_package.nc).")
@click.option("--format", "fmt", type=click.Choice(["geotiff", "netcdf", "sigrid3"]), default="geotiff",
              show_default=True, help="geotiff: Cloud-Optimized GeoTIFFs <scene>_{SIC,SOD,FLOE}.tif; "
              "netcdf: CF-1.8 <scene>.nc; "
              "sigrid3: SIGRID-3 ice chart polygons with egg codes (shapefile or GeoPackage, -o OUT.shp|OUT.gpkg).")
@click.option("--crs", default="EPSG:3413", show_default=True,
              help="Target CRS (EPSG code, PROJ string or WKT), or 'native' to keep the swath grid with the tie "
              "points as ground control points.")
@click.option("--resolution", default=80.0, show_default=True, type=float,
              help="Pixel size in metres (on a geographic CRS: degrees of latitude of that length).")
@click.option("--uncertainty", type=click.Path(path_type=Path), default=None,
              help="Folder of <scene>_uncertainty.nc (autoice predict --uncertainty): exported as float32 "
              "(<scene>_uncertainty.tif, or <chart>_uncertainty variables in the NetCDF; sigrid3: each polygon's "
              "mean as UNC_SIC, UNC_SOD, UNC_FLOE).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@scheduler_option
def command(sources: tuple[Path, ...], output: Path, data: Path | None, fmt: str, crs: str, resolution: float,
            uncertainty: Path | None, quiet: bool, scheduler: str | None) -> None:  # fmt: skip
    """Export ice charts (predictions or reference charts) of each scene to GIS files on a map CRS.

    SOURCES are an upload_package.nc (with --data) or RTT files/folders with charts (train _prep.nc,
    or _prep_reference.nc beside their _prep.nc). Classes are reprojected by nearest neighbour;
    255 is no data. sigrid3 polygonises the (SIC, SOD, FLOE) classes: regions under 1 km² are
    merged into a neighbour, boundaries are simplified by one pixel without gaps or overlaps.
    """
    from autoice.export import export

    result = export(list(sources), output, fmt=fmt, crs=crs, resolution=resolution, data=data,
                    uncertainty=uncertainty, progress=not quiet, scheduler=scheduler)  # fmt: skip
    click.echo(f"wrote {len(result.files)} files for {len(result.scenes)} scenes to {output}")
