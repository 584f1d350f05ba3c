"""``autoice label``: rasterise a real SIGRID-3 ice chart onto scenes and decode it into SIC/SOD/FLOE."""

from __future__ import annotations

from pathlib import Path

import click

from autoice.cli.cluster import scheduler_option


@click.command("label")
@click.argument("scenes", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--chart", "chart", required=True, type=click.Path(path_type=Path),
              help="The SIGRID-3 chart: a shapefile (.shp, with its .dbf/.shx/.prj) or a GeoPackage (.gpkg).")
@click.option("-o", "--output", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the labelled scenes, written under their own names (created if missing; may be "
              "the scenes' folder: each file is then replaced atomically).")
@click.option("--mode", type=click.Choice(["official", "corrected"]), default="official", show_default=True,
              help="Egg-code decoding: 'official' = the organisers' converter bit for bit (range codes -> 255); "
              "'corrected' decodes range codes and sums all partials of one class.")
@click.option("--thresholds", type=click.Choice(["current", "legacy"]), default="current", show_default=True,
              help="Dominance thresholds: current 65 %/65 % (SOD/FLOE) or legacy 70 %/50 %.")
@click.option("--chart-crs", default=None, metavar="CRS",
              help="The chart's CRS (EPSG code, PROJ string or WKT) when its file declares none (a shapefile "
              "without .prj) or a wrong one; default: the CRS the file declares.")
@click.option("--layer", default=None, help="Layer of the chart file to read (default: its first polygon layer).")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1), help="Scenes labelled in parallel.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@scheduler_option
def command(scenes: tuple[Path, ...], chart: Path, out_dir: Path, mode: str, thresholds: str,
            chart_crs: str | None, layer: str | None, workers: int, quiet: bool,
            scheduler: str | None) -> None:  # fmt: skip
    """Label scenes (files or folders) from a real SIGRID-3 ice chart in any CRS.

    Each scene's pixels take the polygon that holds their centre (through the scene's tie points);
    the egg codes are decoded as in `autoice prepare`. Ready-to-train scenes (*_prep.nc) get their
    SIC/SOD/FLOE replaced; raw scenes their polygon_icechart and polygon_codes (run `autoice prepare`
    next). Pixels outside the chart are 255 (raw: NaN). One line per scene reports the polygons
    used, the pixels labelled and the codes that could not be decoded.
    """
    from autoice import schema
    from autoice.errors import ScenesFailed
    from autoice.labelling import label_scenes, summarize

    t = schema.THRESHOLDS[thresholds]
    failed = None
    try:
        results = label_scenes(list(scenes), chart, out_dir, mode=mode, chart_crs=chart_crs, layer=layer,
                               sod_threshold=t["SOD"], floe_threshold=t["FLOE"], workers=workers,
                               progress=not quiet, scheduler=scheduler)  # fmt: skip
    except ScenesFailed as exc:  # report the good scenes, then fail naming the bad ones
        results, failed = exc.partial, exc
    for line in summarize(results):
        click.echo(line)
    click.echo(f"labelled {len(results)} scene(s) from {chart.name} into {out_dir}")
    if failed is not None:
        raise failed
