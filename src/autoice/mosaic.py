"""Many scenes on one map (``autoice mosaic``): each scene's charts on a shared grid, overlaps resolved.

Two rounds of per-scene tasks through :func:`autoice.batch.run_each` (here, in local processes, or
on a Dask cluster with ``scheduler``), the command itself staying the client:

1. footprints: each scene's outline on the target CRS, from its tie points; the mosaic's grid
   covers their union, edges on multiples of the pixel size (:func:`autoice.geolocation.grid_for`);
2. tiles: each scene's charts (and uncertainty maps) are warped by GDAL straight from the scene's
   grid onto its window of the mosaic grid at the mosaic's resolution (nearest neighbour: one
   source pixel per target pixel; nothing is upsampled to 80 m), and only that small tile travels
   back.

The client pastes the tiles chart by chart; no data (255) never covers a class, and predictions are no
data where their scene has no SAR data or is land (:func:`autoice.export.read_chart_stack`), so no
scene's swath edge covers another scene:

- ``newest``: the latest acquisition (the start time in the scene key, :func:`schema.parse_scene_key`)
  is on top; equal times go by key;
- ``confident``: per pixel the class whose model uncertainty (``<scene>_uncertainty.nc`` from
  ``autoice predict --uncertainty``) is least; ties go to the newer scene.

Outputs, each written atomically, all of them renamed into place together after the last is
complete (a failure leaves none):

- ``-o mosaic.tif``: Cloud-Optimized GeoTIFFs ``mosaic_SIC.tif``, ``mosaic_SOD.tif``,
  ``mosaic_FLOE.tif`` (a TIFF colour table needs a one-band file, as in :mod:`autoice.export`)
  and, with uncertainty maps, ``mosaic_uncertainty.tif`` (the chosen pixels' uncertainty);
- ``-o mosaic.nc``: one CF-1.8 NetCDF with the three charts (and ``<chart>_uncertainty``);
- ``mosaic.png`` beside it: the quicklook, three maps with legends (:mod:`autoice.maps`).

If any scene fails, every bad scene is named and no mosaic is written (it would silently lack
them); remove or fix those scenes and run again.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from autoice import __version__, schema
from autoice.atomic import atomic_output, ensure_folder
from autoice.errors import AutoiceError, ConfigError, SceneError, ScenesFailed
from autoice.export import (
    SceneSource,
    _class_tags,
    _colormap,
    _package_attrs,
    find_sources,
    read_chart_stack,
    read_geolocation,
    read_uncertainty,
    scene_time,
    write_cf_netcdf,
    write_cog,
)
from autoice.geolocation import (
    DEFAULT_CRS,
    LONLAT,
    Grid,
    check_resolution,
    crs_units_per_metre,
    footprint_bounds,
    grid_for,
    parse_crs,
    reproject_scene,
    window,
)

if TYPE_CHECKING:
    from pyproj import CRS

PathLike = str | os.PathLike[str]

RULES = ("newest", "confident")
DEFAULT_RESOLUTION = 1000.0  #: metres
#: a mosaic grid above this is refused (3 bytes a pixel, 15 with uncertainty: ~1.5 GB): the whole
#: Arctic Ocean at 1 km is ~40 M pixels
MAX_PIXELS = 100_000_000
#: longest side (pixels) of the grid :func:`auto_resolution` picks (reports, ``show --map``)
AUTO_SIDE = 1000
_NICE = (1.0, 2.0, 2.5, 5.0)
GEOTIFF_SUFFIXES = (".tif", ".tiff")
NETCDF_SUFFIXES = (".nc",)


@dataclass(frozen=True)
class Footprint:
    """A scene's outline on the mosaic's CRS (first round's result)."""

    key: str
    bounds: tuple[float, float, float, float]  #: (left, bottom, right, top)
    outline: np.ndarray  #: (2, n) x, y of the closed outline


@dataclass(frozen=True)
class Tile:
    """A scene's charts on its window of the mosaic grid (second round's result)."""

    key: str
    row: int  #: first row of the window in the mosaic grid
    col: int  #: first column
    charts: np.ndarray  #: (3, h, w) uint8, 255 = no data
    uncertainty: np.ndarray | None  #: (3, h, w) float32, NaN = no data


@dataclass
class Mosaic:
    """The scenes' charts on one grid: what :func:`write_mosaic` writes and :mod:`autoice.maps` draws."""

    grid: Grid
    charts: np.ndarray  #: (3, height, width) uint8, 255 = no data
    uncertainty: np.ndarray | None  #: (3, height, width) float32 of the chosen pixels, NaN = no data
    rule: str
    resolution: float  #: metres
    scenes: list[SceneSource] = field(default_factory=list)  #: placed, oldest first
    outlines: dict[str, np.ndarray] = field(default_factory=dict)  #: scene key -> (2, n) outline on the CRS

    @property
    def keys(self) -> list[str]:
        """Scene keys, oldest first."""
        return [s.key for s in self.scenes]


# ----------------------------------------------------------------------------- options
def check_rule(rule: str, uncertainty: PathLike | None) -> str:
    """The overlap rule, refused when unknown or when ``confident`` has no uncertainty maps."""
    if rule not in RULES:
        raise ConfigError(f"--rule: unknown overlap rule {rule!r}; valid: {', '.join(RULES)}")
    if rule == "confident" and uncertainty is None:
        raise ConfigError("--rule confident needs --uncertainty DIR (the <scene>_uncertainty.nc maps of "
                          "autoice predict --uncertainty)")  # fmt: skip
    return rule


def output_format(out: PathLike) -> str:
    """``geotiff`` or ``netcdf``, from the name asked for with ``-o``."""
    suffix = Path(out).suffix.lower()
    if suffix in GEOTIFF_SUFFIXES:
        return "geotiff"
    if suffix in NETCDF_SUFFIXES:
        return "netcdf"
    raise ConfigError(f"-o {out}: a mosaic is written as NAME.tif (COGs NAME_SIC.tif, NAME_SOD.tif, "
                      "NAME_FLOE.tif) or NAME.nc (CF NetCDF)")  # fmt: skip


def output_files(out: PathLike, *, uncertainty: bool, quicklook: bool = True) -> list[Path]:
    """Every file a mosaic written as ``out`` consists of (see the module docstring)."""
    out = Path(out)
    files = [out.with_name(f"{out.stem}_{c}{out.suffix}") for c in schema.CHARTS]
    if uncertainty:
        files.append(out.with_name(f"{out.stem}_uncertainty{out.suffix}"))
    if output_format(out) == "netcdf":
        files = [out]
    if quicklook:
        files.append(out.with_suffix(".png"))
    return files


def scene_order(key: str) -> tuple[str, str]:
    """Sort key of a scene by acquisition start (then service): the newest sorts last."""
    name = schema.parse_scene_key(key)
    if name is None:  # pragma: no cover - keys come from files matched against the same pattern
        raise SceneError(key, "not a scene key (YYYYMMDDTHHMMSS_cis|dmi)")
    return name.start, name.service


def _nice(value: float) -> float:
    """The smallest 1, 2, 2.5 or 5 times a power of ten that is at least ``value``."""
    exp = math.floor(math.log10(value))
    for m in (*_NICE, 10.0):
        if m * 10**exp >= value * (1 - 1e-9):
            return m * 10**exp
    return 10.0 ** (exp + 1)  # pragma: no cover


def auto_resolution(bounds: tuple[float, float, float, float], crs: CRS, side: int = AUTO_SIDE) -> float:
    """A round pixel size (m) that makes the longer side of ``bounds`` at most ``side`` pixels."""
    left, bottom, right, top = bounds
    metres = max(right - left, top - bottom) / crs_units_per_metre(crs)
    return _nice(max(metres / side, 1.0))


# ----------------------------------------------------------------------------- per-scene tasks
def _footprint_job(source: SceneSource, crs: CRS) -> Footprint:
    """Round 1: the scene's checked tie points -> its outline on ``crs``."""
    from pyproj import Transformer

    geo, _ = read_geolocation(source)
    bounds = footprint_bounds(geo, crs)
    lon, lat = geo.outline()
    x, y = Transformer.from_crs(LONLAT, crs, always_xy=True).transform(lon, lat)
    return Footprint(source.key, bounds, np.stack([np.asarray(x), np.asarray(y)]))


def _tile_job(source: SceneSource, row: int, col: int, grid: Grid, uncertainty: str | None) -> Tile:
    """Round 2: the scene's charts warped onto its window of the mosaic grid (a small array to send back)."""
    geo, _, stack = read_chart_stack(source)
    tile = reproject_scene(stack, geo, grid.crs, grid=grid).data
    del stack
    unc = None
    if uncertainty is not None:
        maps, d = read_uncertainty(uncertainty, source.key, geo.shape)
        unc = fill_gaps(reproject_scene(maps, geo, grid.crs, grid=grid, downscale=d, nodata=np.nan).data, tile)
    return Tile(source.key, row, col, tile, unc)


def fill_gaps(uncertainty: np.ndarray, charts: np.ndarray) -> np.ndarray:
    """Give every pixel with a class an uncertainty: the nearest warped value where the coarser map fell short.

    The maps (at the model's resolution) and the 80 m charts cover the swath up to half a coarse
    pixel differently at its edges; a class without an uncertainty would lose every comparison.
    """
    from scipy.ndimage import distance_transform_edt

    for unc, classes in zip(uncertainty, charts, strict=True):
        known = np.isfinite(unc)
        need = (classes != schema.CHART_FILL) & ~known
        if need.any() and known.any():
            rows, cols = distance_transform_edt(~known, return_distances=False, return_indices=True)
            unc[need] = unc[rows[need], cols[need]]
    return uncertainty


# ----------------------------------------------------------------------------- composing
def compose(tiles: Sequence[Tile], grid: Grid, rule: str, *,
            uncertainty: bool) -> tuple[np.ndarray, np.ndarray | None]:  # fmt: skip
    """Paste ``tiles`` (oldest first) onto ``grid`` by ``rule``, chart by chart; 255 never covers a class."""
    charts = np.full((len(schema.CHARTS), grid.height, grid.width), schema.CHART_FILL, np.uint8)
    unc = np.full(charts.shape, np.inf if rule == "confident" else np.nan, np.float32) if uncertainty else None
    for t in tiles:
        h, w = t.charts.shape[1:]
        rows, cols = slice(t.row, t.row + h), slice(t.col, t.col + w)
        here = charts[:, rows, cols]
        take = t.charts != schema.CHART_FILL
        if rule == "confident":
            assert unc is not None and t.uncertainty is not None
            u = np.where(np.isnan(t.uncertainty), np.float32(np.inf), t.uncertainty)
            take &= u <= unc[:, rows, cols]  # <=: a tie goes to the newer scene
            unc[:, rows, cols][take] = u[take]
        elif unc is not None and t.uncertainty is not None:
            unc[:, rows, cols][take] = t.uncertainty[take]
        here[take] = t.charts[take]
    if unc is not None:
        unc[~np.isfinite(unc) | (charts == schema.CHART_FILL)] = np.nan
    return charts, unc


def build_mosaic(scenes: Sequence[SceneSource], *, crs: CRS | str = DEFAULT_CRS,
                 resolution: float | None = DEFAULT_RESOLUTION, rule: str = "newest",
                 uncertainty: PathLike | None = None, scheduler: str | None = None, workers: int = 1,
                 progress: bool = True, max_pixels: int = MAX_PIXELS) -> Mosaic:  # fmt: skip
    """The scenes' charts on one grid covering them all (see the module docstring).

    Args:
        scenes: from :func:`autoice.export.find_sources`.
        crs: a map CRS (pyproj, or text such as ``EPSG:3413``); ``native`` is refused.
        resolution: pixel size in metres; None picks a round one for about :data:`AUTO_SIDE` pixels.
        rule: ``newest`` or ``confident`` (needs ``uncertainty``).
        uncertainty: folder of ``<scene>_uncertainty.nc``; their values travel with the charts.
        scheduler: Dask scheduler address for the per-scene tasks; else ``workers`` local processes.
        workers: local processes when there is no scheduler.
        progress: progress bars on stderr.
        max_pixels: largest grid allowed.

    Returns:
        The :class:`Mosaic`. Raises :class:`ScenesFailed` naming every bad scene (and builds nothing).
    """
    from autoice.batch import run_each

    if isinstance(crs, str):
        crs = parse_crs(crs)
    if crs is None:
        raise ConfigError("--crs native: a mosaic or map needs a map CRS (e.g. EPSG:3413); the swath grid with "
                          "tie points is for autoice export only")  # fmt: skip
    if resolution is not None:
        check_resolution(resolution)
    check_rule(rule, uncertainty)
    if uncertainty is not None and not Path(uncertainty).is_dir():
        raise SceneError(uncertainty, "no such folder (uncertainty maps from autoice predict --uncertainty)")
    if not scenes:
        raise ConfigError("no scenes to mosaic")
    order = sorted(scenes, key=lambda s: scene_order(s.key))
    labels = [str(s.charts) for s in order]
    run: dict[str, Any] = {"scheduler": scheduler, "workers": workers, "progress": progress}
    found = run_each(_footprint_job, [(s, crs) for s in order], labels, desc="footprints", **run)
    failures: dict[int, AutoiceError] = dict(found.failures)
    outlines = {i: f for i, f in found.results.items()}
    grid, tiles = None, []
    if outlines:
        boxes = np.array([f.bounds for f in outlines.values()])
        union = (float(boxes[:, 0].min()), float(boxes[:, 1].min()), float(boxes[:, 2].max()),
                 float(boxes[:, 3].max()))  # fmt: skip
        if resolution is None:
            resolution = auto_resolution(union, crs)
        grid = grid_for(union, crs, resolution, max_pixels=max_pixels, what=f"for a mosaic of {len(outlines)} "
                        "scenes")  # fmt: skip
        good = sorted(outlines)
        jobs = []
        for i in good:
            r0, c0, sub = window(grid, outlines[i].bounds)
            jobs.append((order[i], r0, c0, sub, None if uncertainty is None else str(uncertainty)))
        made = run_each(_tile_job, jobs, [labels[i] for i in good], desc="mosaic", **run)
        failures.update({good[j]: exc for j, exc in made.failures.items()})
        tiles = [made.results[j] for j in sorted(made.results)]
    if failures:
        raise ScenesFailed([failures[i] for i in sorted(failures)], len(order), what="scenes",
                           outcome="no mosaic was written (remove or fix them and run again)")  # fmt: skip
    assert grid is not None and resolution is not None
    charts, unc = compose(tiles, grid, rule, uncertainty=uncertainty is not None)
    return Mosaic(grid=grid, charts=charts, uncertainty=unc, rule=rule, resolution=float(resolution),
                  scenes=list(order), outlines={f.key: f.outline for f in outlines.values()})  # fmt: skip


# ----------------------------------------------------------------------------- writing
def metadata(m: Mosaic) -> dict[str, str]:
    """Provenance of a mosaic: its scenes and their times, the rule, where the charts came from, software."""
    keys = m.keys
    kinds = {s.predicted for s in m.scenes}
    charts = ("model prediction" if kinds == {True} else "ice analyst chart (reference)" if kinds == {False}
              else "model predictions and ice analyst charts")  # fmt: skip
    out = {
        "product": f"mosaic of {len(keys)} scene{'s' if len(keys) != 1 else ''}",
        "scenes": " ".join(keys),
        "time_coverage_start": scene_time(keys[0]),
        "time_coverage_end": scene_time(keys[-1]),
        "overlap_rule": {"newest": "newest scene on top (acquisition start from the scene key)",
                         "confident": "least uncertain pixel (model uncertainty maps)"}[m.rule],  # fmt: skip
        "charts": charts,
        "source_files": " ".join(sorted({s.charts.name for s in m.scenes})),
        "resolution_m": f"{m.resolution:g}",
        "software": f"autoice {__version__}",
    }
    predicted = next((s for s in m.scenes if s.predicted), None)
    if predicted is not None:
        for name, value in _package_attrs(predicted).items():
            if name in ("model_uri", "model_version", "model") and value:
                out[name] = str(value)
    return out


def write_mosaic(m: Mosaic, out: PathLike, *, quicklook: bool = True, dpi: int = 110) -> list[Path]:
    """Write the mosaic as ``out`` (``.tif`` or ``.nc``) and its PNG quicklook; returns the files.

    Every file is first complete under a temporary name; they are renamed into place together,
    so a failure (or Ctrl-C) leaves none of them.
    """
    out = Path(out)
    fmt = output_format(out)
    files = output_files(out, uncertainty=m.uncertainty is not None, quicklook=quicklook)
    meta = metadata(m)
    writers: list[Callable[[Path], Any]] = []
    if fmt == "geotiff":
        tags = {k.upper(): v for k, v in meta.items()}
        tags["CRS"] = m.grid.crs.to_string()
        for i, chart in enumerate(schema.CHARTS):
            writers.append(lambda tmp, i=i, chart=chart: write_cog(
                tmp, m.charts[i : i + 1], crs=m.grid.crs, transform=m.grid.transform, names=[chart],
                tags={**tags, "CHART": chart}, band_tags=[_class_tags(chart)], nodata=schema.CHART_FILL,
                colormap=_colormap(chart)))  # fmt: skip
        if m.uncertainty is not None:
            writers.append(lambda tmp: write_cog(
                tmp, m.uncertainty, crs=m.grid.crs, transform=m.grid.transform,
                names=[f"{c}_uncertainty" for c in schema.CHARTS], tags=tags, nodata=np.nan,
                overview_resampling="AVERAGE"))  # fmt: skip
    else:
        title = (f"Sea ice chart mosaic (SIC, SOD, FLOE) of {meta['product'].split(' of ')[1]}, "
                 f"{meta['time_coverage_start']} to {meta['time_coverage_end']}")  # fmt: skip
        writers.append(lambda tmp: write_cf_netcdf(tmp, m.charts, grid=m.grid, geo=None, attrs=meta,
                                                   uncertainty=m.uncertainty, title=title,
                                                   history="autoice mosaic"))  # fmt: skip
    if quicklook:
        from autoice.maps import map_figure, mosaic_view
        from autoice.plots import save_figure

        writers.append(lambda tmp: save_figure(map_figure(mosaic_view(m, title=out.name)), tmp, dpi=dpi))
    ensure_folder(out.parent)
    with contextlib.ExitStack() as stack:  # every temporary renamed into place only after the last is written
        for path, write in zip(files, writers, strict=True):
            write(stack.enter_context(atomic_output(path)))
    return files


@dataclass
class MosaicResult:
    """What :func:`mosaic` made."""

    files: list[Path]
    mosaic: Mosaic


def mosaic(sources: Sequence[PathLike] | PathLike, out: PathLike, *, data: PathLike | None = None,
           crs: CRS | str = DEFAULT_CRS, resolution: float = DEFAULT_RESOLUTION, rule: str = "newest",
           uncertainty: PathLike | None = None, scheduler: str | None = None, workers: int = 1,
           progress: bool = True, quicklook: bool = True) -> MosaicResult:  # fmt: skip
    """``autoice mosaic``: the scenes of ``sources`` (as for :func:`autoice.export.export`) on one grid, written."""
    output_format(out)  # a bad name is refused before any work
    check_resolution(resolution)
    check_rule(rule, uncertainty)
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    scenes = find_sources(list(sources), data)
    m = build_mosaic(scenes, crs=crs, resolution=resolution, rule=rule, uncertainty=uncertainty,
                     scheduler=scheduler, workers=workers, progress=progress)  # fmt: skip
    return MosaicResult(write_mosaic(m, out, quicklook=quicklook), m)
