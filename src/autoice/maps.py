"""Ice charts drawn as maps: projected axes in km, a latitude/longitude graticule, scene outlines, legends.

One picture for every georeferenced product: the quicklook beside a mosaic, the mosaic in
``report.html``, and ``autoice show --map`` of an exported GeoTIFF (``<name>_SIC.tif`` and its
``_SOD``/``_FLOE`` siblings), a CF NetCDF export or mosaic, or a scene warped on the fly. Class
colours and legends are those of :mod:`autoice.plots` (the colour tables ``show`` and the GeoTIFFs
use). Large grids are reduced for display by the block-centre pixel, as scenes are in ``show``.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from autoice import schema
from autoice.errors import AutoiceError, SceneError
from autoice.geolocation import LONLAT, Grid

if TYPE_CHECKING:
    from autoice.mosaic import Mosaic

PathLike = str | os.PathLike[str]

MAX_SIZE = 1000  #: longest side (pixels) of a drawn map
OUTSIDE_COLOUR = (1.0, 1.0, 1.0)  #: outside every scene's outline (inside, 255 is the no-data grey)
OUTSIDE_LABEL = "no scene"
_GRATICULE_SIDE = 240  #: points per side of the lat/lon field contoured for the graticule
_LAT_STEPS = (1, 2, 5, 10)
_LON_STEPS = (1, 2, 5, 10, 15, 20, 30, 45)
_MAX_LABELLED_OUTLINES = 12
_PRODUCT_TIF = re.compile(r"^(?P<stem>.+)_(?P<chart>SIC|SOD|FLOE|uncertainty)\.tiff?$")


@dataclass
class MapView:
    """Charts on a map grid, ready to draw: what :func:`map_figure` takes."""

    charts: dict[str, np.ndarray | None]  #: chart -> (h, w) uint8 on ``grid`` (None: not in the product)
    grid: Grid  #: the grid of the arrays as held (possibly reduced)
    title: str
    notes: list[str] = field(default_factory=list)  #: lines under the title
    outlines: dict[str, np.ndarray] = field(default_factory=dict)  #: scene key -> (2, n) x, y on the CRS
    pixel: float | None = None  #: the product's pixel size (CRS units) when ``grid`` is a reduced read of it


# ----------------------------------------------------------------------------- reduction
def reduce_view(view: MapView, max_size: int = MAX_SIZE) -> MapView:
    """The view with its arrays reduced to at most ``max_size`` pixels a side (block-centre pixel)."""
    from affine import Affine

    from autoice.plots import block_sample, display_step

    step = display_step((view.grid.height, view.grid.width), max_size)
    if step == 1:
        return view
    charts = {c: None if a is None else block_sample(a, step) for c, a in view.charts.items()}
    t = view.grid.transform
    grid = Grid(crs=view.grid.crs, transform=Affine(t.a * step, 0.0, t.c, 0.0, t.e * step, t.f),
                width=-(-view.grid.width // step), height=-(-view.grid.height // step))  # fmt: skip
    return MapView(charts, grid, view.title, [*view.notes, f"shown 1:{step} (block centres)"], view.outlines,
                   view.pixel or abs(view.grid.transform.a))


def mosaic_view(m: Mosaic, *, title: str = "mosaic") -> MapView:
    """A :class:`~autoice.mosaic.Mosaic` as a view, with its scenes' outlines."""
    from autoice.export import scene_time

    keys = m.keys
    span = scene_time(keys[0])[:10] + ("" if keys[0][:8] == keys[-1][:8] else f" to {scene_time(keys[-1])[:10]}")
    rule = {"newest": "newest scene on top", "confident": "least uncertain pixel on top"}[m.rule]
    notes = [f"{len(keys)} scene{'s' if len(keys) != 1 else ''}, {span}; {rule}"]
    charts: dict[str, np.ndarray | None] = {c: m.charts[i] for i, c in enumerate(schema.CHARTS)}
    return MapView(charts, m.grid, title, notes, dict(m.outlines))


# ----------------------------------------------------------------------------- drawing
def _units(grid: Grid) -> tuple[float, str]:
    """Divisor from CRS units to axis units, and the axis unit's name."""
    if grid.crs.is_geographic:
        return 1.0, "degrees"
    factor = float(grid.crs.axis_info[0].unit_conversion_factor or 1.0)
    return 1000.0 / factor, "km"


def _pick(span: float, steps: tuple[int, ...], most: int) -> int:
    return next((s for s in steps if span / s <= most), steps[-1])


def _graticule(ax: Any, grid: Grid, scale: float) -> None:
    """Parallels and meridians, labelled, from a coarse lat/lon field over the map (contoured)."""
    from pyproj import Transformer

    left, bottom, right, top = grid.bounds
    xs = np.linspace(left, right, _GRATICULE_SIDE)
    ys = np.linspace(top, bottom, _GRATICULE_SIDE)
    xx, yy = np.meshgrid(xs, ys)
    lon, lat = Transformer.from_crs(grid.crs, LONLAT, always_xy=True).transform(xx, yy)
    lon, lat = np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)
    ok = np.isfinite(lon) & np.isfinite(lat) & (np.abs(lat) <= 90)
    if ok.sum() < 4:
        return
    gx, gy = xx / scale, yy / scale
    style = {"colors": "0.3", "linewidths": 0.5, "alpha": 0.8}
    lo, hi = float(lat[ok].min()), float(lat[ok].max())
    step = _pick(hi - lo, _LAT_STEPS, 6)
    levels = [v for v in np.arange(math.ceil(lo / step) * step, hi + 1e-9, step) if abs(v) < 90]
    if levels:
        cs = ax.contour(gx, gy, np.ma.masked_invalid(np.where(ok, lat, np.nan)), levels=levels, **style)
        ax.clabel(cs, fmt=lambda v: f"{abs(v):g}°{'N' if v >= 0 else 'S'}", fontsize=6, inline_spacing=2)
    centre = float(np.degrees(np.arctan2(np.sin(np.radians(lon[ok])).mean(), np.cos(np.radians(lon[ok])).mean())))
    rel = (lon - centre + 180.0) % 360.0 - 180.0
    pole = hi > 89.0 or lo < -89.0
    span = 360.0 if pole else float(rel[ok].max() - rel[ok].min())
    lstep = _pick(span, _LON_STEPS, 8)
    first = math.ceil((centre - span / 2) / lstep) * lstep
    for meridian in np.arange(first, centre + span / 2 + 1e-9, lstep):
        d = np.radians(lon - meridian)
        # the meridian is where sin(d) = 0 on its own side (cos(d) > 0): no false line along the seam at 180 deg
        field_ = np.ma.masked_where(~ok | (np.cos(d) <= 0.2), np.sin(d))
        if field_.count() == 0 or field_.min() >= 0 or field_.max() <= 0:
            continue
        cs = ax.contour(gx, gy, field_, levels=[0.0], **style)
        m = (meridian + 180.0) % 360.0 - 180.0
        text = "180°" if abs(abs(m) - 180) < 1e-9 else f"{abs(m):g}°{'E' if m > 0 else 'W' if m < 0 else ''}"
        ax.clabel(cs, fmt=lambda _v, t=text: t, fontsize=6, inline_spacing=2)


def covered(view: MapView) -> np.ndarray | None:
    """Pixels of ``view``'s grid inside any scene outline (None when the view has no outlines)."""
    if not view.outlines:
        return None
    from rasterio.features import rasterize
    from shapely import Polygon

    shapes = [(Polygon(xy.T), 1) for xy in view.outlines.values()]
    return rasterize(shapes, out_shape=(view.grid.height, view.grid.width), transform=view.grid.transform,
                     fill=0, dtype="uint8", all_touched=True).astype(bool)  # fmt: skip


def _legend(ax: Any, chart: str, outside: bool) -> None:
    from matplotlib.patches import Patch

    from autoice.plots import legend_handles

    handles = legend_handles(chart)
    if outside:
        handles.append(Patch(facecolor=OUTSIDE_COLOUR, edgecolor="0.4", label=OUTSIDE_LABEL))
    from matplotlib.transforms import offset_copy

    below = offset_copy(ax.transAxes, fig=ax.figure, y=-0.5, units="inches")  # under the tick labels and x label
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), bbox_transform=below,
              ncol=4 if chart == "SIC" else 3, fontsize=8, frameon=False, handlelength=1.4,
              columnspacing=1.0)  # fmt: skip


def map_figure(view: MapView, *, max_size: int = MAX_SIZE) -> Any:
    """Three maps (SIC, SOD, FLOE) of ``view`` side by side, each with axes, graticule, outlines and legend."""
    from autoice.plots import _blank, _pyplot, chart_rgb

    plt = _pyplot()
    v = reduce_view(view, max_size)
    scale, unit = _units(v.grid)
    left, bottom, right, top = v.grid.bounds
    extent = (left / scale, right / scale, bottom / scale, top / scale)
    aspect = (top - bottom) / max(right - left, 1e-12)
    panel_h = float(np.clip(5.4 * aspect, 2.5, 8.0))
    panel_w = float(np.clip(panel_h / aspect, 3.8, 5.6))  # a tall map gets narrower panels (the legend still fits)
    fig, axes = plt.subplots(1, 3, figsize=(3 * panel_w + 1.5, panel_h + 2.4), layout="constrained")
    label = len(v.outlines) <= _MAX_LABELLED_OUTLINES
    inside = covered(v)
    for ax, chart in zip(axes, schema.CHARTS, strict=True):
        classes = v.charts.get(chart)
        if classes is None:
            _blank(ax, f"no {chart} in this product")
        else:
            rgb = chart_rgb(classes, chart)
            if inside is not None:
                rgb[~inside & (classes == schema.CHART_FILL)] = OUTSIDE_COLOUR
            ax.imshow(rgb, extent=extent, origin="upper", interpolation="nearest")
            for key, xy in v.outlines.items():
                ax.plot(xy[0] / scale, xy[1] / scale, color="0.15", linewidth=0.7)
                if label:
                    ax.text(float(np.mean(xy[0])) / scale, float(np.mean(xy[1])) / scale, key[:8], fontsize=6,
                            ha="center", va="center", color="0.1",
                            bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.6})  # fmt: skip
            _graticule(ax, v.grid, scale)
            ax.set_xlim(extent[0], extent[1])
            ax.set_ylim(extent[2], extent[3])
            ax.set_aspect("equal")
            ax.tick_params(labelsize=7)
            ax.set_xlabel(f"x ({unit})" if unit == "km" else "longitude (degrees)", fontsize=8)
            ax.set_ylabel(f"y ({unit})" if unit == "km" else "latitude (degrees)", fontsize=8)
            _legend(ax, chart, inside is not None)
        ax.set_title(f"{chart}: {schema.CHART_DESCRIPTIONS[chart]}", fontsize=10)
    crs = v.grid.crs
    where = f"EPSG:{crs.to_epsg()} {crs.name}" if crs.to_epsg() else crs.name
    pixel = (view.pixel or abs(view.grid.transform.a)) / (scale / 1000.0 if unit == "km" else 1.0)
    size = f"{pixel:g} m pixels" if unit == "km" else f"{pixel:g} degree pixels"
    fig.suptitle("\n".join([view.title, f"{where}, {size}", *v.notes]), fontsize=11)
    return fig


# ----------------------------------------------------------------------------- products
def _read_geotiffs(path: Path, max_size: int) -> MapView:
    """A product GeoTIFF and its chart siblings (``<stem>_SIC.tif``, ``_SOD``, ``_FLOE``), reduced on read."""
    import rasterio
    from affine import Affine
    from pyproj import CRS
    from rasterio.enums import Resampling
    from rasterio.errors import RasterioError

    from autoice.plots import display_step

    m = _PRODUCT_TIF.match(path.name)
    if m is None or m["chart"] == "uncertainty":
        raise SceneError(path, "not an autoice chart GeoTIFF (expected <name>_SIC.tif, _SOD.tif or _FLOE.tif "
                         "from autoice export or mosaic)")  # fmt: skip
    files = {c: path.with_name(f"{m['stem']}_{c}{path.suffix}") for c in schema.CHARTS}
    charts: dict[str, np.ndarray | None] = dict.fromkeys(schema.CHARTS)
    grid: Grid | None = None
    tags: dict[str, str] = {}
    for chart, f in files.items():
        if not f.is_file():
            continue
        try:
            with rasterio.open(f) as tif:
                if tif.crs is None:
                    raise SceneError(f, "has no map CRS (exported with --crs native): export it onto a map CRS, "
                                     "or draw the scene itself with show --map")  # fmt: skip
                if tif.count != 1 or tif.dtypes[0] != "uint8":
                    raise SceneError(f, f"expected one uint8 band of {chart} classes, got {tif.count} band(s) "
                                     f"of {tif.dtypes[0]}")  # fmt: skip
                step = display_step(tif.shape, max_size)
                h, w = -(-tif.height // step), -(-tif.width // step)
                data = tif.read(1, out_shape=(h, w), resampling=Resampling.nearest)
                t = tif.transform @ Affine.scale(tif.width / w, tif.height / h)
                pixel = tif.transform.a
                here = Grid(crs=CRS.from_wkt(tif.crs.to_wkt()), transform=t, width=w, height=h)
                tags = tags or dict(tif.tags())
        except RasterioError as exc:
            raise SceneError(f, f"cannot be read as a GeoTIFF: {str(exc).splitlines()[0]}") from exc
        if grid is not None and (here.width, here.height, here.transform) != (grid.width, grid.height,
                                                                              grid.transform):  # fmt: skip
            raise SceneError(f, f"its grid differs from that of {files[schema.CHARTS[0]].name}")
        grid = grid or here
        charts[chart] = data
    assert grid is not None  # path itself matched and exists
    notes = [tags[k] for k in ("PRODUCT", "SCENE_TIME", "CHARTS") if k in tags]
    if step > 1:
        notes.append(f"shown 1:{step} (nearest)")
    return MapView(charts, grid, f"{m['stem']}_{{SIC,SOD,FLOE}}{path.suffix}", notes, pixel=abs(pixel))


def _read_netcdf(path: Path, max_size: int) -> MapView:
    """A CF NetCDF export or mosaic (projected x/y with a ``crs`` grid mapping), reduced on read."""
    import xarray as xr
    from affine import Affine
    from pyproj import CRS
    from pyproj.exceptions import CRSError

    from autoice.plots import display_step

    try:
        ds = xr.open_dataset(path, engine="netcdf4", mask_and_scale=False, decode_times=False, cache=False)
    except (OSError, ValueError, RuntimeError) as exc:
        raise SceneError(path, f"cannot be read as NetCDF: {str(exc).splitlines()[0] if str(exc) else exc}") from exc
    with ds:
        if "x" not in ds.dims or "y" not in ds.dims:
            raise SceneError(path, "has no projected x/y grid (a --crs native export or not an autoice map "
                             "product): draw the scene itself with show --map")  # fmt: skip
        found = [c for c in schema.CHARTS if c in ds.variables]
        if not found:
            raise SceneError(path, "holds none of the charts SIC, SOD, FLOE")
        try:
            crs = CRS.from_wkt(ds["crs"].attrs["spatial_ref"]) if "crs" in ds.variables and "spatial_ref" in \
                ds["crs"].attrs else CRS.from_cf(ds["crs"].attrs)  # fmt: skip
        except (KeyError, CRSError) as exc:
            raise SceneError(path, f"its crs grid mapping is missing or not understood ({exc})") from exc
        x, y = np.asarray(ds["x"].values, np.float64), np.asarray(ds["y"].values, np.float64)
        if len(x) < 2 or len(y) < 2:
            raise SceneError(path, "its x/y grid has fewer than 2 points")
        step = display_step((len(y), len(x)), max_size)
        o = step // 2
        charts: dict[str, np.ndarray | None] = dict.fromkeys(schema.CHARTS)
        for c in found:
            a = ds[c]
            if a.dims != ("y", "x"):
                raise SceneError(path, f"{c} has dims {a.dims}, expected ('y', 'x')")
            values = np.asarray(a[o::step, o::step].values)
            if values.dtype.kind not in "iu":
                raise SceneError(path, f"{c} is {values.dtype}, expected uint8 classes")
            charts[c] = values.astype(np.uint8)
        dx, dy = x[1] - x[0], y[1] - y[0]
        t = Affine(dx * step, 0.0, x[0] - dx / 2, 0.0, dy * step, y[0] - dy / 2)
        grid = Grid(crs=crs, transform=t, width=-(-len(x) // step), height=-(-len(y) // step))
        notes = [str(ds.attrs[k]) for k in ("product", "scene_time", "charts") if k in ds.attrs]
    view = MapView(charts, grid, path.name, notes, pixel=abs(dx))
    if step > 1:
        view.notes.append(f"shown 1:{step} (block centres)")
    return view


def _scene_source(path: Path, prediction: PathLike | None) -> Any:
    """The chart source of a scene file: its own charts, the reference beside it, or a prediction."""
    from autoice.export import SceneSource, find_sources

    key = schema.scene_key(path.name)
    scene = path.with_name(key + schema.RTT_SUFFIX)
    if prediction is not None:
        return SceneSource(key, Path(prediction), scene, predicted=True)
    reference = path.with_name(key + schema.REFERENCE_SUFFIX)
    if path.name.endswith(schema.RTT_SUFFIX) and reference.is_file():
        return SceneSource(key, reference, scene, predicted=False)
    return find_sources([path])[0]


def load_map(path: PathLike, *, prediction: PathLike | None = None, crs: str = "EPSG:3413",
             resolution: float | None = None, max_size: int = MAX_SIZE) -> MapView:  # fmt: skip
    """A map view of a product (GeoTIFF, CF NetCDF) or of a scene warped onto ``crs``.

    A scene (train ``_prep.nc``, test ``_prep.nc`` with its ``_prep_reference.nc`` beside it, or
    the reference itself) is drawn with its reference charts, or with its ``prediction`` from an
    upload package; ``resolution`` (m) defaults to a round size giving about ``max_size`` pixels.
    """
    from autoice.mosaic import build_mosaic

    p = Path(path)
    if not p.is_file():
        raise SceneError(p, "no such file")
    if p.suffix.lower() in (".tif", ".tiff"):
        if prediction is not None:
            raise AutoiceError(f"{prediction}: --prediction goes with a scene, not with an exported GeoTIFF")
        return _read_geotiffs(p, max_size)
    if schema.RTT_NAME.match(p.name) is None:
        if prediction is not None:
            raise AutoiceError(f"{prediction}: --prediction goes with a scene, not with an exported NetCDF")
        return _read_netcdf(p, max_size)
    source = _scene_source(p, prediction)
    m = build_mosaic([source], crs=crs, resolution=resolution, progress=False)
    what = "prediction" if source.predicted else "reference charts"
    view = mosaic_view(m, title=f"{source.key}: {what} ({source.charts.name})")
    view.notes = [f"scene warped by its tie points; {what}"]
    return view


def show_map(path: PathLike, out: PathLike, *, prediction: PathLike | None = None, crs: str = "EPSG:3413",
             resolution: float | None = None, max_size: int = MAX_SIZE, dpi: int = 100) -> Path:  # fmt: skip
    """Draw :func:`load_map`'s view to a PNG, atomically; returns ``out``."""
    from autoice.plots import save_figure

    view = load_map(path, prediction=prediction, crs=crs, resolution=resolution, max_size=max_size)
    return save_figure(map_figure(view, max_size=max_size), out, dpi=dpi)
