"""Ice charts as GIS files: each scene's SIC/SOD/FLOE reprojected to a map CRS (``autoice export``).

Sources are an upload package (predictions; the scenes' ``_prep.nc`` in ``data`` give the tie
points) or RTT files/folders with their own charts (train ``_prep.nc``, or ``_prep_reference.nc``
whose tie points come from the ``_prep.nc`` beside it). Per scene:

- GeoTIFF: Cloud-Optimized GeoTIFFs ``<scene>_SIC.tif``, ``<scene>_SOD.tif``, ``<scene>_FLOE.tif``:
  one uint8 band each (band description = chart; class names and colours in the band metadata
  ``CLASS_<k>``), the colour table of ``autoice show``, 255 = no data (transparent), deflate,
  512 x 512 tiles, overviews by nearest (mode was 4x slower on a full scene). One file per chart
  because a TIFF colour table needs a palette image of one band (GDAL writes a grey ramp for a
  multi-band palette TIFF). A GeoTIFF holds one dtype, so uncertainty goes to its own float32
  COG ``<scene>_uncertainty.tif`` (bands SIC, SOD, FLOE uncertainty; NaN = no data).
- NetCDF: CF-1.8 ``<scene>.nc``: projected ``x``/``y``, a ``crs`` grid mapping, ``lat``/``lon``
  auxiliary coordinates, ``flag_values``/``flag_meanings`` per chart, ``_FillValue`` 255,
  ``<chart>_uncertainty`` float32 when given, and provenance attributes.

Predictions (an upload package) are no data where their scene has no SAR data or is land, as the
reference is: a map product shows no ice on land, and a mosaic lets no swath edge cover another
scene (:func:`autoice.scenes.chartless`); the package keeps every pixel, as the format asks.

``crs=None`` (``--crs native``) keeps the swath grid and attaches the tie points as GCPs.
``sigrid3`` writes every scene's charts as SIGRID-3 polygons into one file: see :mod:`autoice.sigrid`.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from autoice import __version__, schema
from autoice.atomic import atomic_output, ensure_folder
from autoice.errors import ConfigError, SceneError
from autoice.geolocation import (
    DEFAULT_RESOLUTION,
    LONLAT,
    Geolocation,
    Grid,
    check_resolution,
    grid_lonlat,
    reproject_scene,
    scene_geolocation,
)
from autoice.scenes import SceneKind, chartless, find_scenes, kind_from_name, open_scene, read_variable

if TYPE_CHECKING:
    from pyproj import CRS

PathLike = str | os.PathLike[str]

FORMATS = ("geotiff", "netcdf", "sigrid3")
BLOCK = 512  #: COG tile size
WARP_THREADS = 2  #: GDAL warper threads
OVERVIEW_RESAMPLING = "NEAREST"  #: classes (MODE is 4x slower on a full scene)
_LATLON_ROWS = 512  #: rows per block when computing lat/lon of a projected grid


@dataclass(frozen=True)
class SceneSource:
    """One scene to export: where its charts come from, and the scene holding its tie points."""

    key: str
    charts: Path  #: file with the charts (upload package, train _prep.nc or _prep_reference.nc)
    scene: Path  #: the _prep.nc with the tie points
    predicted: bool  #: charts are predictions (from an upload package)


@dataclass
class ExportResult:
    """What :func:`export` wrote."""

    files: list[Path] = field(default_factory=list)
    scenes: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------- finding sources
def _is_package(p: Path) -> bool:
    return p.is_file() and p.suffix == ".nc" and kind_from_name(p.name) is None


def find_sources(sources: Sequence[PathLike], data: PathLike | None = None) -> list[SceneSource]:
    """Every scene to export from ``sources`` (upload packages, RTT files or folders), one per scene key."""
    from autoice.submission import _VARIABLE, _open_nc

    found: dict[str, SceneSource] = {}
    rtt: list[Path] = []
    for raw in sources:
        p = Path(raw)
        if not _is_package(p):
            rtt.append(p)
            continue
        if data is None:
            raise ConfigError(f"{p}: predictions need --data, the folder of their scenes' _prep.nc (tie points)")
        scenes = {schema.scene_key(f.name): f for f in find_scenes(data, [SceneKind.TEST])
                  if f.name.endswith(schema.RTT_SUFFIX)}  # fmt: skip
        with _open_nc(p) as nc:
            keys = sorted({m["key"] for n in nc.variables if (m := _VARIABLE.match(n))})
        if not keys:
            raise SceneError(p, "holds no predictions (<scene>_<SIC|SOD|FLOE> variables)")
        for key in keys:
            if key not in scenes:
                raise SceneError(p, f"prediction for scene {key} has no {key}{schema.RTT_SUFFIX} in {data}")
            found[key] = SceneSource(key, p, scenes[key], predicted=True)
    if rtt:
        files = find_scenes(rtt, [SceneKind.TRAIN, SceneKind.REFERENCE])
        by_key: dict[str, list[Path]] = {}
        for f in files:
            by_key.setdefault(schema.scene_key(f.name), []).append(f)
        for key, group in sorted(by_key.items()):
            ref = next((f for f in group if f.name.endswith(schema.REFERENCE_SUFFIX)), None)
            charts = ref if ref is not None else group[0]
            scene = charts.with_name(key + schema.RTT_SUFFIX)
            if ref is not None and not scene.exists():
                raise SceneError(ref, f"has no tie points: {scene.name} (the scene itself) must lie beside it")
            found.setdefault(key, SceneSource(key, charts, scene, predicted=False))
    if not found:
        raise SceneError(sources[0] if sources else ".", "no scenes with charts found")
    return [found[k] for k in sorted(found)]


def read_charts(source: SceneSource) -> dict[str, np.ndarray]:
    """The scene's SIC/SOD/FLOE (uint8, 255 = no data) from its package, train scene or reference."""
    if source.predicted:
        from autoice.submission import read_submission

        charts = read_submission(source.charts, keys=[source.key]).get(source.key, {})
        missing = [c for c in schema.CHARTS if c not in charts]
        if missing:
            raise SceneError(source.charts, f"scene {source.key} lacks the chart(s) {', '.join(missing)}")
        for c in schema.CHARTS:
            a = charts[c]
            if a.dtype.kind not in "iu" or (a.size and (int(a.min()) < 0 or int(a.max()) > schema.CHART_FILL)):
                raise SceneError(source.charts, f"{schema.submission_variable(source.key, c)} does not hold "
                                 f"{c} classes (dtype {a.dtype})")  # fmt: skip
            outside = (a >= schema.N_CLASSES[c]) & (a != schema.CHART_FILL)
            if outside.any():
                raise SceneError(source.charts, f"{schema.submission_variable(source.key, c)} has "
                                 f"{int(outside.sum())} pixels outside the {c} classes 0..{schema.N_CLASSES[c] - 1}")
        return {c: np.asarray(charts[c], dtype=np.uint8) for c in schema.CHARTS}
    with open_scene(source.charts) as ds:
        if not any(c in ds.variables for c in schema.CHARTS):
            raise SceneError(source.charts, "has no charts (SIC, SOD, FLOE): a test scene is exported from "
                             "its predictions (upload_package.nc --data DIR)")  # fmt: skip
        return {c: np.asarray(read_variable(ds, c), dtype=np.uint8) for c in schema.CHARTS}


def read_geolocation(source: SceneSource) -> tuple[Geolocation, dict[str, Any]]:
    """The scene's checked geolocation and its global attributes (provenance)."""
    ds = open_scene(source.scene, SceneKind.TEST, check_values=False)  # NaN or missing tie points: one line
    with ds:
        return scene_geolocation(ds, source.scene), dict(ds.attrs)


def read_chart_stack(source: SceneSource) -> tuple[Geolocation, dict[str, Any], np.ndarray]:
    """A scene's geolocation, its attributes and its (3, h, w) classes, checked to share the scene's shape.

    Predictions are no data (255) where the scene has no SAR data or is land, as in the reference
    (:func:`autoice.scenes.chartless`); the upload package itself keeps the model's output there.
    """
    geo, attrs = read_geolocation(source)
    charts = read_charts(source)
    for c, a in charts.items():
        if a.shape != geo.shape:
            raise SceneError(source.charts, f"{source.key} {c} has shape {a.shape}, its scene {geo.shape}")
    stack = np.stack([charts[c] for c in schema.CHARTS])
    if source.predicted:
        with open_scene(source.scene, SceneKind.TEST, check_values=False) as ds:
            outside = chartless(ds, path=source.scene)
        if outside is not None:
            stack[:, outside] = schema.CHART_FILL
    return geo, attrs, stack


def read_uncertainty(folder: PathLike, key: str, shape: tuple[int, int]) -> tuple[np.ndarray, int]:
    """The scene's uncertainty maps (3, h, w) float32 from ``<key>_uncertainty.nc``, and their downscale."""
    import xarray as xr

    path = Path(folder) / f"{key}_uncertainty.nc"
    if not path.is_file():
        raise SceneError(path, f"no uncertainty map for scene {key} (make it with autoice predict --uncertainty)")
    try:
        with xr.open_dataset(path, engine="netcdf4", cache=False) as ds:
            maps = np.stack([np.asarray(ds[c].values, dtype=np.float32) for c in schema.CHARTS])
            d = int(ds.attrs.get("downscale", 1))
    except (OSError, KeyError, ValueError, RuntimeError) as exc:
        raise SceneError(path, f"not an uncertainty map (SIC, SOD, FLOE float32): {exc}") from exc
    expected = (-(-shape[0] // d), -(-shape[1] // d))
    if maps.shape[1:] != expected:
        raise SceneError(path, f"maps of shape {maps.shape[1:]} do not fit scene {key} {shape} at downscale {d}")
    return maps, d


# ----------------------------------------------------------------------------- metadata
def class_names(chart: str) -> tuple[str, ...]:
    """Class names of a chart (SIC's as ``0%``..``100%``)."""
    return schema.CLASS_NAMES[chart]


def flag_meanings(chart: str) -> str:
    """CF ``flag_meanings``: one word per class."""
    words = []
    for name in class_names(chart):
        word = name.replace("%", "_percent") if chart == "SIC" else name
        words.append(re.sub(r"[^A-Za-z0-9]+", "_", word).strip("_").lower())
    if chart == "SIC":
        words = [f"concentration_{w}" for w in words]
    return " ".join(words)


def scene_time(key: str) -> str:
    """ISO 8601 acquisition start of a scene from its key (``20180124T194759_dmi``)."""
    return datetime.strptime(key[:15], "%Y%m%dT%H%M%S").replace(tzinfo=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def provenance(source: SceneSource, attrs: dict[str, Any], package_attrs: dict[str, Any] | None = None
               ) -> dict[str, str]:  # fmt: skip
    """Where the charts came from: source file, model (when the package names it), software, scene time."""
    out = {
        "source_file": source.charts.name,
        "scene_file": source.scene.name,
        "scene_id": str(attrs.get("scene_id", source.key)),
        "ice_service": str(attrs.get("ice_service", source.key[-3:])),
        "scene_time": scene_time(source.key),
        "charts": "model prediction" if source.predicted else "ice analyst chart (reference)",
        "software": f"autoice {__version__}",
    }
    if attrs.get("original_id"):
        out["original_id"] = str(attrs["original_id"])
    for name in ("model_uri", "model_version", "model"):
        if package_attrs and package_attrs.get(name):
            out[name] = str(package_attrs[name])
    return out


def _package_attrs(source: SceneSource) -> dict[str, Any]:
    if not source.predicted:
        return {}
    from autoice.submission import _open_nc

    with _open_nc(source.charts) as nc:
        return {a: nc.getncattr(a) for a in nc.ncattrs()}


# ----------------------------------------------------------------------------- GeoTIFF
def _colormap(chart: str) -> dict[int, tuple[int, int, int, int]]:
    from autoice.plots import CHART_COLOURS, NO_DATA_COLOUR

    cmap = {k: (*rgb, 255) for k, rgb in enumerate(CHART_COLOURS[chart])}
    cmap[schema.CHART_FILL] = (*(round(255 * v) for v in NO_DATA_COLOUR), 0)
    return cmap


def _class_tags(chart: str) -> dict[str, str]:
    from autoice.plots import CHART_COLOURS

    tags = {"CHART": chart, "DESCRIPTION": schema.CHART_DESCRIPTIONS[chart], "NODATA_VALUE": str(schema.CHART_FILL)}
    for k, (name, rgb) in enumerate(zip(class_names(chart), CHART_COLOURS[chart], strict=True)):
        tags[f"CLASS_{k}"] = f"{name};#{rgb[0]:02x}{rgb[1]:02x}{rgb[2]:02x}"
    return tags


def write_cog(path: PathLike, data: np.ndarray, *, crs: CRS | None, transform: Any = None, gcps: list | None = None,
              names: Sequence[str], tags: dict[str, str], band_tags: Sequence[dict[str, str]] | None = None,
              nodata: float, colormap: dict[int, tuple[int, int, int, int]] | None = None,
              overview_resampling: str = OVERVIEW_RESAMPLING) -> Path:  # fmt: skip
    """Write (bands, h, w) as a Cloud-Optimized GeoTIFF, atomically: an in-memory GTiff copied by GDAL's COG driver."""
    import rasterio
    import rasterio.errors
    import rasterio.shutil
    from rasterio.crs import CRS as RioCRS

    count, height, width = data.shape
    profile = {"driver": "MEM", "count": count, "height": height, "width": width, "dtype": data.dtype.name,
               "nodata": nodata}  # fmt: skip
    if gcps is None:
        profile["crs"] = RioCRS.from_wkt(crs.to_wkt())
        profile["transform"] = transform
    # a MEM source: GDAL keeps its colour table when copying (an in-memory GTiff drops a multi-band one)
    with warnings.catch_warnings():  # native grid: georeferenced by GCPs, which are set after creation
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        mem = rasterio.open(f"/vsimem/autoice-export-{os.getpid()}-{id(data)}.mem", "w", **profile)
    with mem:
        if gcps is not None:
            mem.gcps = (gcps, RioCRS.from_user_input(LONLAT))
        mem.write(data)
        mem.update_tags(**tags)
        for i, name in enumerate(names, start=1):
            mem.set_band_description(i, name)
            if band_tags is not None:
                mem.update_tags(i, **band_tags[i - 1])
        if colormap is not None:
            mem.write_colormap(1, colormap)
        # no .aux.xml sidecar beside the temporary file: everything must live inside the COG
        with atomic_output(path) as tmp, rasterio.Env(GDAL_PAM_ENABLED="NO"):
            rasterio.shutil.copy(mem, tmp, driver="COG", COMPRESS="DEFLATE", BLOCKSIZE=BLOCK,
                                 OVERVIEW_RESAMPLING=overview_resampling, NUM_THREADS=WARP_THREADS)  # fmt: skip
    return Path(path)


# ----------------------------------------------------------------------------- NetCDF
def _crs_variable(crs: CRS) -> dict[str, Any]:
    attrs = {k: v for k, v in crs.to_cf().items() if v is not None}
    attrs["spatial_ref"] = crs.to_wkt()
    return attrs


def write_cf_netcdf(path: PathLike, charts: np.ndarray, *, grid: Grid | None, geo: Geolocation | None,
                    attrs: dict[str, str], uncertainty: np.ndarray | None = None, title: str | None = None,
                    history: str = "autoice export") -> Path:  # fmt: skip
    """Write charts (3, h, w) as CF-1.8 netCDF-4, atomically (see the module docstring).

    ``grid`` places them on a map (a scene's or a mosaic's); None keeps the swath grid of ``geo``.
    """
    import xarray as xr

    from autoice.interrupts import deferred

    if grid is not None:
        dims = ("y", "x")
        t = grid.transform
        x = t.c + (np.arange(grid.width) + 0.5) * t.a
        y = t.f + (np.arange(grid.height) + 0.5) * t.e
        lon = np.empty((grid.height, grid.width), np.float32)
        lat = np.empty_like(lon)
        for start in range(0, grid.height, _LATLON_ROWS):
            rows = slice(start, min(grid.height, start + _LATLON_ROWS))
            lon[rows], lat[rows] = grid_lonlat(grid, rows)
        projected = grid.crs.is_projected
        xattrs = {"standard_name": "projection_x_coordinate" if projected else "longitude",
                  "long_name": "x coordinate of projection", "units": "m" if projected else "degrees_east",
                  "axis": "X"}  # fmt: skip
        yattrs = {"standard_name": "projection_y_coordinate" if projected else "latitude",
                  "long_name": "y coordinate of projection", "units": "m" if projected else "degrees_north",
                  "axis": "Y"}  # fmt: skip
        coords = {"x": ("x", x, xattrs), "y": ("y", y, yattrs)}
        crs_attrs = _crs_variable(grid.crs)
    else:  # native swath grid: lines and samples, positions only through lat/lon
        assert geo is not None, "a swath-grid NetCDF needs the scene's geolocation"
        dims = ("line", "sample")
        lon64, lat64 = geo.lonlat_grid()
        lon, lat = lon64.astype(np.float32), lat64.astype(np.float32)
        coords = {"line": ("line", np.arange(geo.shape[0], dtype=np.int32), {"long_name": "80 m line index"}),
                  "sample": ("sample", np.arange(geo.shape[1], dtype=np.int32), {"long_name": "80 m sample index"})}
        from pyproj import CRS

        crs_attrs = _crs_variable(CRS.from_user_input("EPSG:4326"))
    coords["lat"] = (dims, lat, {"standard_name": "latitude", "units": "degrees_north", "long_name": "latitude"})
    coords["lon"] = (dims, lon, {"standard_name": "longitude", "units": "degrees_east", "long_name": "longitude"})
    data_vars: dict[str, Any] = {"crs": ((), np.int32(0), crs_attrs)}
    encoding: dict[str, dict[str, Any]] = {"crs": {}, "lat": {"zlib": True, "complevel": 4, "_FillValue": None},
                                           "lon": {"zlib": True, "complevel": 4, "_FillValue": None}}  # fmt: skip
    chunks = (min(BLOCK, charts.shape[1]), min(BLOCK, charts.shape[2]))
    for i, chart in enumerate(schema.CHARTS):
        n = schema.N_CLASSES[chart]
        data_vars[chart] = (dims, charts[i], {
            "long_name": schema.CHART_DESCRIPTIONS[chart], "grid_mapping": "crs", "coordinates": "lat lon",
            "flag_values": np.arange(n, dtype=np.uint8), "flag_meanings": flag_meanings(chart),
            "valid_range": np.array([0, n - 1], dtype=np.uint8),
        })  # fmt: skip
        encoding[chart] = {"zlib": True, "complevel": 4, "_FillValue": np.uint8(schema.CHART_FILL), "dtype": "uint8",
                           "chunksizes": chunks}  # fmt: skip
        if uncertainty is not None:
            name = f"{chart}_uncertainty"
            data_vars[name] = (dims, uncertainty[i], {"long_name": f"{chart} model uncertainty",
                                                      "grid_mapping": "crs", "coordinates": "lat lon"})  # fmt: skip
            encoding[name] = {"zlib": True, "complevel": 4, "_FillValue": np.float32(np.nan), "chunksizes": chunks}
    ds = xr.Dataset(data_vars, coords=coords, attrs={
        "Conventions": "CF-1.8",
        "title": title or f"Sea ice charts (SIC, SOD, FLOE) of scene {attrs.get('scene_time', '')}",
        "institution": "autoice", "history": f"{datetime.now(timezone.utc):%Y-%m-%dT%H:%M:%SZ} {history}",
        **attrs,
    })  # fmt: skip
    for c in ("x", "y", "line", "sample"):
        if c in ds.variables:
            encoding[c] = {"_FillValue": None}
    with atomic_output(path) as tmp, deferred():
        ds.to_netcdf(tmp, engine="netcdf4", format="NETCDF4", encoding=encoding)
    return Path(path)


# ----------------------------------------------------------------------------- one scene, all scenes
def export_scene(source: SceneSource, out: PathLike, *, fmt: str, crs: CRS | None,
                 resolution: float = DEFAULT_RESOLUTION,
                 uncertainty: PathLike | None = None) -> list[Path]:  # fmt: skip
    """Export one scene; returns the files written (see the module docstring)."""
    geo, attrs, stack = read_chart_stack(source)
    unc = read_uncertainty(uncertainty, source.key, geo.shape) if uncertainty is not None else None
    meta = provenance(source, attrs, _package_attrs(source))
    out = Path(out)
    grid: Grid | None = None
    if crs is not None:
        rep = reproject_scene(stack, geo, crs, resolution, threads=WARP_THREADS)
        stack = rep.data
        grid = Grid(crs=crs, transform=rep.transform, width=stack.shape[2], height=stack.shape[1])
    unc_data = None
    if unc is not None:
        maps, d = unc
        if crs is not None:
            unc_data = reproject_scene(maps, geo, crs, grid=grid, downscale=d, nodata=np.nan).data
        else:
            rows, cols = np.arange(geo.shape[0]) // d, np.arange(geo.shape[1]) // d
            unc_data = maps[:, rows[:, None], cols[None, :]]
        unc_data[stack == schema.CHART_FILL] = np.nan  # no class, no uncertainty (land, beyond the swath)
    tags = {k.upper(): v for k, v in meta.items()}
    tags["CRS"] = crs.to_string() if crs is not None else "native swath grid with tie points as GCPs (EPSG:4326)"
    geo_kw: dict[str, Any] = ({"crs": crs, "transform": grid.transform} if grid is not None
                              else {"crs": None, "gcps": geo.gcps()})  # fmt: skip
    written: list[Path] = []
    if fmt == "geotiff":
        for i, chart in enumerate(schema.CHARTS):  # one file per chart: a TIFF colour table needs a single band
            written.append(write_cog(out / f"{source.key}_{chart}.tif", stack[i : i + 1], names=[chart],
                                     tags={**tags, "CHART": chart}, band_tags=[_class_tags(chart)],
                                     nodata=schema.CHART_FILL, colormap=_colormap(chart), **geo_kw))  # fmt: skip
        if unc_data is not None:
            written.append(write_cog(out / f"{source.key}_uncertainty.tif", unc_data.astype(np.float32),
                                     names=[f"{c}_uncertainty" for c in schema.CHARTS], tags=tags, nodata=np.nan,
                                     overview_resampling="AVERAGE", **geo_kw))  # fmt: skip
    elif fmt == "netcdf":
        written.append(write_cf_netcdf(out / f"{source.key}.nc", stack, grid=grid, geo=geo, attrs=meta,
                                       uncertainty=unc_data))  # fmt: skip
    else:
        raise ConfigError(f"--format: unknown format {fmt!r}; valid: {', '.join(FORMATS)}")
    return written


def export(sources: Sequence[PathLike] | PathLike, out: PathLike, *, fmt: str = "geotiff",
           crs: CRS | None | str = "EPSG:3413", resolution: float = DEFAULT_RESOLUTION, data: PathLike | None = None,
           uncertainty: PathLike | None = None, progress: bool = True,
           scheduler: str | None = None) -> ExportResult:  # fmt: skip
    """Export every scene of ``sources`` into the folder ``out``; bad scenes are named after the good ones are done.

    ``crs`` is a pyproj CRS, text (``EPSG:3413``) or None / ``"native"`` for the swath geometry.
    Each scene is one task of :func:`autoice.batch.run_each` (on a Dask cluster with ``scheduler``).
    """
    from autoice.batch import run_each
    from autoice.geolocation import parse_crs

    if fmt not in FORMATS:
        raise ConfigError(f"--format: unknown format {fmt!r}; valid: {', '.join(FORMATS)}")
    if fmt == "sigrid3":  # one file of polygons for all scenes
        from autoice.sigrid import export_sigrid

        return export_sigrid(sources, out, crs=crs, resolution=resolution, data=data, uncertainty=uncertainty,
                             progress=progress, scheduler=scheduler)  # fmt: skip
    if isinstance(crs, str):
        crs = parse_crs(crs)
    check_resolution(resolution)
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    if uncertainty is not None and not Path(uncertainty).is_dir():
        raise SceneError(uncertainty, "no such folder (uncertainty maps from autoice predict --uncertainty)")
    scenes = find_sources(list(sources), data)
    ensure_folder(out)
    result = ExportResult()

    def collect(i: int, files: list[Path]) -> None:
        result.files.extend(files)
        result.scenes.append(scenes[i].key)

    jobs = [(s, str(out), fmt, crs, resolution, None if uncertainty is None else str(uncertainty)) for s in scenes]
    batch = run_each(_export_job, jobs, [str(s.charts) for s in scenes], desc="export", progress=progress,
                     scheduler=scheduler, outputs=[out], on_result=collect)  # fmt: skip
    result.files.sort()
    result.scenes.sort()
    batch.check(what="scenes", outcome=f"the other scenes were exported to {out}", partial=result)
    return result


def _export_job(source: SceneSource, out: str, fmt: str, crs: CRS | None, resolution: float,
                uncertainty: str | None) -> list[Path]:  # fmt: skip
    """One scene's export: a task of :func:`export` (module level, so that it pickles for a cluster)."""
    return export_scene(source, out, fmt=fmt, crs=crs, resolution=resolution, uncertainty=uncertainty)

