"""Label scenes from a real SIGRID-3 ice chart (``autoice label``): chart polygons onto the scene grid.

An ice service delivers its chart as SIGRID-3 polygons (WMO/JCOMM technical report 23) in a
shapefile or GeoPackage whose attributes are the egg code. This module makes of it what an
AI4Arctic raw scene holds, ``polygon_icechart`` (polygon id per pixel) and ``polygon_codes`` (the
``;`` table, :data:`schema.POLYGON_CODES_HEADER`), and lets :mod:`autoice.charts` decode them:

1. :func:`read_chart` reads the layer with pyogrio in the CRS its ``.prj`` / GeoPackage declares
   (``chart_crs`` names it when the file does not, or overrides a wrong one), repairs invalid
   polygons with shapely's ``make_valid`` (structure method: polygons stay polygons), keeps holes
   and multipolygons, and normalises the codes: CIS zero-pads them (``02``, ``04``), DMI does not,
   empty or NULL is -9 (not filled). CF is not carried: CIS writes it as a four-character pair
   (``0499``, ``99-9``) and the organisers' tables hold -9 there, as does ours (the decoder ignores
   CF). A code that is not an integer, a POLY_TYPE outside I, W, L, N, S, a missing attribute, no
   CRS or no polygon at all is one :class:`ChartError` naming the chart, before any scene is read.
   Polygon ids are the features' 1-based positions in the layer (DMI's ``poly_index_1based``;
   CIS's ``ID_NEW``).
2. :func:`polygon_ids` maps the chart onto a scene: the scene's outline (its tie points through
   :class:`~autoice.geolocation.Geolocation`, a few pixels wide) selects and clips the polygons
   that overlap it, their edges are densified (straight in the chart's CRS), and every vertex goes
   to the scene's pixel coordinates: pyproj to a plane centred on the scene, then the bilinear
   tie-point mapping inverted by Newton's method (the same mapping that places every pixel, so a
   pixel is labelled by the polygon that holds its centre). ``rasterio.features.rasterize`` then
   paints the ids on the pixel grid (pixel centres inside; later features win where they overlap).
3. :func:`label_scene` writes the scene into the output folder, atomically: a ready-to-train scene
   gets its SIC/SOD/FLOE replaced (255 outside the chart and where the scene has no data, i.e. all
   four full-grid inputs hold the fill 0); a raw scene gets ``polygon_icechart`` (NaN outside the
   chart) and ``polygon_codes`` (the polygons that lie in the scene) replaced, so that ``autoice
   prepare`` does the rest. Each result reports the polygons used, the pixels labelled and the
   codes that could not be decoded.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from autoice import charts, schema
from autoice.errors import AutoiceError, ChartError, ConfigError, SceneError
from autoice.geolocation import LONLAT, Geolocation, check_tiepoints, crs_units_per_metre, unwrap_longitude

if TYPE_CHECKING:
    from pyproj import CRS

PathLike = str | os.PathLike[str]

#: chart file types read (GDAL drivers ESRI Shapefile and GPKG)
CHART_SUFFIXES: tuple[str, ...] = (".shp", ".gpkg")
#: egg-code attributes a chart must have (CF is not carried, CN and CD default to -9 when absent)
REQUIRED_FIELDS: tuple[str, ...] = ("CT", "CA", "SA", "FA", "CB", "SB", "FB", "CC", "SC", "FC", "POLY_TYPE")
OPTIONAL_FIELDS: tuple[str, ...] = ("CN", "CD")
#: SIGRID-3 polygon types: ice, water, land, no data, ice shelf (only I and W carry labels)
POLY_TYPES: tuple[str, ...] = (schema.POLY_TYPE_ICE, schema.POLY_TYPE_WATER, "L", "N", "S")
#: code fields of a ``polygon_codes`` row, in header order (between id and POLY_TYPE)
_ROW_FIELDS: tuple[str, ...] = schema.POLYGON_CODES_HEADER[1:-1]
_INTEGER = re.compile(r"[+-]?[0-9]{1,9}")
#: the scene outline used to select and clip polygons lies this many pixels outside the grid
MARGIN_PX = 2.0
#: chart edges are densified to segments of at most this many scene pixels before mapping
SEGMENT_PX = 8.0
#: Newton steps of the inverse tie-point mapping stop when they move less than this (pixels)
NEWTON_TOLERANCE_PX = 1e-4
_NEWTON_STEPS = 12
_POINTS_PER_BLOCK = 1 << 18  #: vertices mapped per block (bounded memory)
_MASK_ROWS = 1024  #: rows per block when reading the no-data mask of an RTT scene
#: which code fields feed each chart (for naming the codes that could not be decoded)
_CHART_FIELDS: dict[str, tuple[str, ...]] = {
    "SIC": ("CT", "CA", "CB", "CC"),
    "SOD": ("SA", "SB", "SC"),
    "FLOE": ("FA", "FB", "FC"),
}


# ----------------------------------------------------------------------------- the chart
@dataclass(frozen=True)
class Chart:
    """A SIGRID-3 chart read and checked: polygons in its own CRS, one ``polygon_codes`` row each.

    ``geometries[k]`` is the polygon of id ``k + 1`` (None when the feature has no geometry) and
    ``rows[k]`` its ``polygon_codes`` row.
    """

    path: Path
    crs: CRS
    geometries: np.ndarray  #: shapely Polygon / MultiPolygon (valid) or None, per feature
    rows: tuple[str, ...]
    codes: np.ndarray  #: (n, 12) int64 codes in ``_ROW_FIELDS`` order
    poly_types: tuple[str, ...]
    repaired: int  #: invalid polygons repaired with make_valid

    @property
    def ids(self) -> np.ndarray:
        """Polygon id of each feature (1-based position in the layer)."""
        return np.arange(1, len(self.rows) + 1, dtype=np.int64)


def _fail(path: Path, fault: str) -> ChartError:
    return ChartError(f"{path}: {fault}")


def _code(value: Any, path: Path, name: str, k: int) -> int:
    """An egg-code attribute as an integer: None, NaN or blank -> -9; zero-padded text accepted."""
    if value is None:
        return schema.NOT_FILLED
    if isinstance(value, (bool, np.bool_)):
        raise _fail(path, f"feature {k + 1}: attribute {name} holds a boolean, expected a SIGRID-3 code")
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        if np.isnan(value):
            return schema.NOT_FILLED
        if float(value).is_integer() and abs(value) < 1e9:
            return int(value)
        raise _fail(path, f"feature {k + 1}: attribute {name} has the unparseable code {value!r} "
                    "(expected an integer SIGRID-3 code)")  # fmt: skip
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    text = text.strip()
    if not text:
        return schema.NOT_FILLED
    if not _INTEGER.fullmatch(text):
        raise _fail(path, f"feature {k + 1}: attribute {name} has the unparseable code {text[:40]!r} "
                    "(expected an integer SIGRID-3 code)")  # fmt: skip
    return int(text)


def _poly_type(value: Any, path: Path, k: int) -> str:
    text = (value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value or "")).strip().upper()
    if text not in POLY_TYPES:
        raise _fail(path, f"feature {k + 1}: POLY_TYPE {str(value)[:40]!r} is not one of {', '.join(POLY_TYPES)}")
    return text


def _chart_crs(path: Path, declared: str | None, override: CRS | str | None) -> CRS:
    from pyproj import CRS
    from pyproj.exceptions import CRSError

    from autoice.geolocation import parse_crs

    if override is not None:
        crs = parse_crs(override, "--chart-crs") if isinstance(override, str) else override
        if crs is None:
            raise ConfigError("--chart-crs: 'native' is not a CRS a chart can be in (e.g. EPSG:4326)")
        return crs
    if not declared:
        raise _fail(path, "the chart declares no coordinate reference system (a shapefile needs its .prj); "
                    "name it with --chart-crs, e.g. EPSG:4326")  # fmt: skip
    try:
        crs = CRS.from_user_input(declared)
    except CRSError as exc:
        raise _fail(path, f"its coordinate reference system cannot be read ({str(exc).splitlines()[0]}); "
                    "name it with --chart-crs") from exc  # fmt: skip
    if not (crs.is_projected or crs.is_geographic):
        raise _fail(path, "its coordinate reference system is neither projected nor geographic; "
                    "name it with --chart-crs")  # fmt: skip
    return crs


def _read_layer(path: Path, layer: str | None) -> tuple[dict, np.ndarray, list[np.ndarray]]:
    """The layer as pyogrio reads it (meta, WKB geometries, field arrays); library errors as one line."""
    import pyogrio
    from pyogrio.errors import DataLayerError, DataSourceError, FieldError, GeometryError
    from pyogrio.raw import read

    if not path.exists():
        raise _fail(path, "no such chart file")
    if path.is_dir():
        raise _fail(path, f"is a folder, expected a chart file ({' or '.join(CHART_SUFFIXES)})")
    if path.suffix.lower() not in CHART_SUFFIXES:
        raise _fail(path, f"expected a SIGRID-3 shapefile (.shp) or GeoPackage (.gpkg), got {path.suffix or 'no'} "
                    "file type")  # fmt: skip
    try:
        with warnings.catch_warnings():  # GDAL's notes (ring winding order fixed, ...) are not errors
            warnings.simplefilter("ignore", RuntimeWarning)
            if layer is None:
                layers = pyogrio.list_layers(path)
                if len(layers) == 0:
                    raise _fail(path, "holds no layer")
                polygonal = [str(n) for n, kind in layers if kind and "POLYGON" in str(kind).upper()]
                layer = polygonal[0] if polygonal else str(layers[0][0])
            meta, _, geometry, fields = read(path, layer=layer)
    except ChartError:
        raise
    except (DataSourceError, DataLayerError, FieldError, GeometryError, OSError, ValueError, RuntimeError) as exc:
        why = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise _fail(path, f"cannot read the chart ({why})") from exc
    return meta, geometry, fields


def _polygons(path: Path, wkb: np.ndarray) -> tuple[np.ndarray, int]:
    """Valid 2-D Polygon/MultiPolygon per feature (None where missing or nothing polygonal is left)."""
    import shapely

    try:
        geoms = shapely.from_wkb(wkb)
    except shapely.errors.ShapelyError as exc:
        raise _fail(path, f"holds a geometry that cannot be decoded ({exc})") from exc
    present = ~shapely.is_missing(geoms)
    if not present.any():
        raise _fail(path, "the layer holds no polygons (every feature lacks a geometry)")
    geoms = np.where(present, shapely.force_2d(geoms), None)
    kinds = shapely.get_type_id(geoms)
    polygonal = (kinds == shapely.GeometryType.POLYGON) | (kinds == shapely.GeometryType.MULTIPOLYGON)
    if not polygonal[present].all():
        other = shapely.get_type_id(geoms[present & ~polygonal][0])
        raise _fail(path, f"holds {shapely.GeometryType(other).name} geometries, expected polygons")
    invalid = present & ~shapely.is_valid(geoms)
    if invalid.any():
        fixed = shapely.make_valid(geoms[invalid], method="structure", keep_collapsed=False)
        geoms[invalid] = [_polygonal_part(g) for g in fixed]
    empty = np.array([g is None or g.is_empty for g in geoms])
    return np.where(empty, None, geoms), int(invalid.sum())


def _polygonal_part(geom: Any) -> Any:
    import shapely

    if geom is None or geom.geom_type in ("Polygon", "MultiPolygon"):
        return geom
    parts = [p for p in shapely.get_parts(geom) if p.geom_type in ("Polygon", "MultiPolygon")]
    return shapely.union_all(parts) if parts else None


def read_chart(path: PathLike, *, chart_crs: CRS | str | None = None, layer: str | None = None) -> Chart:
    """Read and check a SIGRID-3 chart (shapefile or GeoPackage); see the module docstring.

    Args:
        path: the ``.shp`` or ``.gpkg``.
        chart_crs: the chart's CRS when the file declares none (or a wrong one): EPSG code, PROJ
            string or WKT; overrides what the file declares.
        layer: the layer to read; default the file's first polygon layer.

    Raises:
        ChartError: the file cannot be read, declares no CRS, has no polygons, misses an egg-code
            attribute, or holds a code that is not an integer or an unknown POLY_TYPE.
    """
    p = Path(path)
    meta, wkb, fields = _read_layer(p, layer)
    if len(wkb) == 0:
        raise _fail(p, "the layer holds no polygons (empty chart)")
    crs = _chart_crs(p, meta.get("crs"), chart_crs)
    names = {str(n).strip().upper(): i for i, n in enumerate(meta["fields"])}
    missing = [n for n in REQUIRED_FIELDS if n not in names]
    if missing:
        raise _fail(p, f"missing attribute{'s' if len(missing) > 1 else ''} {', '.join(missing)} (a SIGRID-3 "
                    f"chart has {', '.join(schema.POLYGON_CODES_HEADER[1:])})")  # fmt: skip
    geoms, repaired = _polygons(p, wkb)
    n = len(geoms)
    codes = np.full((n, len(_ROW_FIELDS)), schema.NOT_FILLED, np.int64)
    for j, name in enumerate(_ROW_FIELDS):
        if name in names and name != "CF":  # CF: see the module docstring
            values = fields[names[name]]
            codes[:, j] = [_code(values[k], p, name, k) for k in range(n)]
    types = tuple(_poly_type(v, p, k) for k, v in enumerate(fields[names["POLY_TYPE"]]))
    rows = tuple(";".join([str(k + 1), *map(str, codes[k].tolist()), types[k]]) for k in range(n))
    return Chart(path=p, crs=crs, geometries=geoms, rows=rows, codes=codes, poly_types=types, repaired=repaired)


# ----------------------------------------------------------------------------- chart -> scene grid
def _local_crs(geo: Geolocation) -> str:
    """An azimuthal equidistant plane centred on the scene (metres, no seam or pole inside a scene)."""
    from autoice.geolocation import wrap_longitude

    lon0 = float(wrap_longitude(np.mean(geo.longitude)))
    lat0 = float(np.clip(np.mean(geo.latitude), -90, 90))
    return f"+proj=aeqd +lat_0={lat0} +lon_0={lon0} +datum=WGS84 +units=m"


class _PixelMapping:
    """Scene plane (x, y) <-> pixel (line, sample) through the scene's bilinear tie-point geolocation."""

    def __init__(self, geo: Geolocation) -> None:
        from pyproj import Transformer

        self.geo = geo
        self.local = _local_crs(geo)
        self._to_local = Transformer.from_crs(LONLAT, self.local, always_xy=True)
        rows, cols = np.meshgrid(geo.lines, geo.samples, indexing="ij")
        x, y = self.forward(rows.ravel(), cols.ravel())
        self._scale = float(max(np.ptp(x), np.ptp(y), 1.0))
        design = self._design(x, y)
        fit, *_ = np.linalg.lstsq(design, np.column_stack([rows.ravel(), cols.ravel()]), rcond=None)
        self._fit = fit
        step = np.hypot(*np.diff(np.stack([x, y]).reshape(2, *rows.shape), axis=1).reshape(2, -1))
        self.pixel_m = float(np.median(step) / np.median(np.diff(geo.lines)))  #: metres per pixel along lines

    def forward(self, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Plane coordinates of pixel positions (the geolocation's bilinear tie-point interpolation)."""
        lon, lat = self.geo.lonlat(rows, cols)
        x, y = self._to_local.transform(lon, lat)
        return np.asarray(x), np.asarray(y)

    def _design(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        u, v = x / self._scale, y / self._scale
        return np.column_stack([np.ones_like(u), u, v, u * u, u * v, v * v, u**3, u * u * v, u * v * v, v**3])

    def inverse(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixel (line, sample) of plane points: a cubic fit to the tie points, refined by Newton's method."""
        rows, cols = (self._design(x, y) @ self._fit).T
        h = 0.25
        for _ in range(_NEWTON_STEPS):
            fx, fy = self.forward(rows, cols)
            rx, ry = self.forward(rows + h, cols)
            cx, cy = self.forward(rows, cols + h)
            a, b, c, d = (rx - fx) / h, (cx - fx) / h, (ry - fy) / h, (cy - fy) / h
            det = a * d - b * c
            det = np.where(np.abs(det) > 0, det, np.inf)
            ex, ey = fx - x, fy - y
            dr, dc = (d * ex - b * ey) / det, (a * ey - c * ex) / det
            rows, cols = rows - dr, cols - dc
            if not (np.abs(dr).max(initial=0.0) > NEWTON_TOLERANCE_PX or np.abs(dc).max(initial=0.0)
                    > NEWTON_TOLERANCE_PX):  # fmt: skip
                break
        return rows, cols


def _footprint(mapping: _PixelMapping, crs: CRS, scene: PathLike) -> Any:
    """The scene's outline, ``MARGIN_PX`` outside its pixels, as a polygon in the chart's CRS."""
    import shapely
    from pyproj import Transformer

    h, w = mapping.geo.shape
    m = MARGIN_PX + 0.5
    t = np.linspace(0.0, 1.0, 65)[:-1]
    top, bottom, left, right = -m, h - 1 + m, -m, w - 1 + m
    rows = np.concatenate([np.full_like(t, top), top + t * (bottom - top), np.full_like(t, bottom),
                           bottom - t * (bottom - top)])  # fmt: skip
    cols = np.concatenate([left + t * (right - left), np.full_like(t, right), right - t * (right - left),
                           np.full_like(t, left)])  # fmt: skip
    lon, lat = mapping.geo.lonlat(rows, cols)
    if crs.is_geographic:
        lon = np.unwrap(lon, period=360.0)
        if lon.min() < -180.0 or lon.max() > 180.0:
            raise SceneError(scene, "the scene crosses the antimeridian, where a chart in longitude/latitude "
                             "cannot be matched (reproject the chart, e.g. to EPSG:3413)")  # fmt: skip
    x, y = Transformer.from_crs(LONLAT, crs, always_xy=True).transform(lon, lat)
    x, y = np.asarray(x), np.asarray(y)
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise SceneError(scene, f"the scene does not fit on the chart's CRS ({crs.name})")
    return shapely.make_valid(shapely.Polygon(np.column_stack([x, y])))


def polygon_ids(chart: Chart, geo: Geolocation, scene: PathLike = "<scene>") -> np.ndarray:
    """Polygon id (feature position + 1) of every pixel of the scene grid ``geo.shape``; 0 outside the chart.

    A pixel takes the id of the polygon that holds its centre (see the module docstring).

    Raises:
        SceneError: no polygon of the chart overlaps the scene, or the scene cannot be placed on
            the chart's CRS.
    """
    import shapely
    from affine import Affine
    from pyproj import Transformer
    from rasterio import features

    mapping = _PixelMapping(geo)
    outline = _footprint(mapping, chart.crs, scene)
    present = np.flatnonzero(chart.geometries != None)  # noqa: E711 - elementwise
    tree = shapely.STRtree(chart.geometries[present])
    hits = np.sort(present[tree.query(outline, predicate="intersects")])
    if hits.size == 0:
        raise SceneError(scene, f"the chart {chart.path.name} does not overlap this scene")
    clipped = shapely.intersection(chart.geometries[hits], outline)
    keep = ~shapely.is_empty(clipped)
    clipped, hits = clipped[keep], hits[keep]
    clipped = np.array([_polygonal_part(g) for g in clipped], dtype=object)
    keep = np.array([g is not None for g in clipped], dtype=bool)
    clipped, hits = clipped[keep], hits[keep]
    if hits.size == 0:
        raise SceneError(scene, f"the chart {chart.path.name} does not overlap this scene")
    segment = SEGMENT_PX * mapping.pixel_m * crs_units_per_metre(chart.crs)
    dense = shapely.segmentize(clipped, segment)
    to_local = Transformer.from_crs(chart.crs, mapping.local, always_xy=True)

    def to_pixels(xy: np.ndarray) -> np.ndarray:
        out = np.empty_like(xy)
        for s in range(0, len(xy), _POINTS_PER_BLOCK):
            block = xy[s : s + _POINTS_PER_BLOCK]
            x, y = to_local.transform(block[:, 0], block[:, 1])
            rows, cols = mapping.inverse(np.asarray(x), np.asarray(y))
            out[s : s + _POINTS_PER_BLOCK, 0] = cols + 0.5  # pixel (r, c) covers [c, c + 1) x [r, r + 1)
            out[s : s + _POINTS_PER_BLOCK, 1] = rows + 0.5
        return out

    on_grid = shapely.transform(dense, to_pixels)
    ok = np.isfinite(shapely.bounds(on_grid)).all(axis=1)
    shapes = [(g, int(i) + 1) for g, i in zip(on_grid[ok], hits[ok], strict=True)]
    dtype = "int32" if len(chart.rows) < np.iinfo(np.int32).max else "int64"
    return features.rasterize(shapes, out_shape=geo.shape, fill=0, transform=Affine.identity(), dtype=dtype,
                              all_touched=False)  # fmt: skip


# ----------------------------------------------------------------------------- one scene
@dataclass
class LabelResult:
    """What labelling one scene did."""

    source: Path
    output: Path
    chart: Path
    kind: str  #: "raw" or "rtt"
    polygons: int = 0  #: chart polygons holding at least one pixel of the scene
    pixels: int = 0  #: pixels inside chart polygons (any POLY_TYPE)
    labelled: int = 0  #: pixels with a SIC class (RTT: also where the scene has data)
    undecodable: dict[str, int] = field(default_factory=dict)  #: chart -> I/W polygons with a code it cannot decode
    codes: dict[str, list[int]] = field(default_factory=dict)  #: egg-code field -> codes of those that are unknown
    changed: int | None = None  #: corrected mode: polygons whose classes differ from the official decoding


def _unknown_codes(chart: Chart, used: np.ndarray, mode: str) -> dict[str, list[int]]:
    """Per code field, the codes of the used I/W polygons that no table of the decoder knows."""
    known = {
        "SIC": set(schema.SIC_CODES) | ({c for c in range(100) if charts.range_code_class(c) is not None}
                                        if mode == "corrected" else set()),
        "SOD": set(schema.SOD_CODES),
        "FLOE": set(schema.FLOE_CODES),
    }  # fmt: skip
    labelled = np.array([chart.poly_types[i - 1] in (schema.POLY_TYPE_ICE, schema.POLY_TYPE_WATER) for i in used],
                        dtype=bool)  # fmt: skip
    rows = chart.codes[used[labelled] - 1]
    out: dict[str, list[int]] = {}
    for name, fields in _CHART_FIELDS.items():
        for f in fields:
            values = rows[:, _ROW_FIELDS.index(f)]
            bad = sorted({int(v) for v in values if v not in known[name] and v not in (schema.NOT_FILLED,
                                                                                     schema.UNKNOWN)})  # fmt: skip
            if bad:
                out[f] = bad
    return out


def _scene_kind(path: Path) -> str:
    from autoice.scenes import SceneKind, kind_from_name

    kind = kind_from_name(path.name)
    if kind == SceneKind.RAW:
        return "raw"
    if kind == SceneKind.TRAIN:
        return "rtt"
    if kind == SceneKind.REFERENCE:
        raise SceneError(path, f"is a test reference (charts only, no tie points): label its "
                         f"{schema.RTT_SUFFIX} scene instead")  # fmt: skip
    raise SceneError(path, "file name follows none of the scene patterns (raw S1 product + _icechart_, *_prep.nc)")


def raw_geolocation(ds: Any, path: PathLike) -> Geolocation:
    """The checked geolocation of an open raw scene: its 21 x 21 tie points at their stated 40 m positions."""
    from autoice.prepare import read_tiepoints

    tie = read_tiepoints(ds, Path(path))
    check_tiepoints(tie.latitude, tie.longitude, path)
    shape = tuple(int(s) for s in ds[schema.SAR_VARIABLES[0]].shape)
    return Geolocation(latitude=tie.latitude, longitude=unwrap_longitude(tie.longitude), shape=shape,  # type: ignore[arg-type]
                       nodes=(tie.lines, tie.samples))  # fmt: skip


def _no_data(ds: Any, path: Path, shape: tuple[int, int]) -> np.ndarray:
    """RTT pixels where the scene holds no data: every full-grid input is the fill value (prepare's rule).

    The other inputs are read only in the row blocks where the first one holds the fill value.
    """
    from autoice.scenes import read_variable

    mask = np.zeros(shape, dtype=bool)
    first, *others = schema.FULL_GRID_INPUTS
    for r0 in range(0, shape[0], _MASK_ROWS):
        rows = slice(r0, min(shape[0], r0 + _MASK_ROWS))
        block = read_variable(ds, first, (rows, slice(None)), path=path) == schema.INPUT_FILL
        for name in others:
            if not block.any():
                break
            block &= read_variable(ds, name, (rows, slice(None)), path=path) == schema.INPUT_FILL
        mask[rows] = block
    return mask


def _replace_charts(src: Path, target: Path, decoded: dict[str, np.ndarray], attrs: dict[str, str]) -> None:
    """Write ``target``: a byte copy of the RTT scene ``src`` whose SIC/SOD/FLOE are replaced (or added), atomically.

    Copying leaves the 24 inputs as they were stored (no decompression and recompression of four
    full-grid float32 variables), so rewriting a full-size scene costs little more than the copy.
    """
    import shutil

    import netCDF4

    from autoice.atomic import atomic_output, write_error
    from autoice.interrupts import deferred

    with atomic_output(target) as tmp:
        try:
            shutil.copyfile(src, tmp)
            with deferred(), netCDF4.Dataset(tmp, "a") as nc:
                for c in schema.CHARTS:
                    if c in nc.variables:
                        var = nc.variables[c]
                    else:  # a test scene: the charts are new
                        h, w = decoded[c].shape
                        var = nc.createVariable(c, "u1", schema.FULL_DIMS, zlib=True, complevel=4,
                                                chunksizes=(min(h, 256), min(w, 1024)))  # fmt: skip
                    var.set_auto_maskandscale(False)
                    var[...] = decoded[c]
                    var.setncatts({"polygon": schema.CHART_DESCRIPTIONS[c], "chart_fill_value": schema.CHART_FILL})
                nc.setncatts(attrs)
        except OSError as exc:
            raise write_error(target, exc) from exc


def label_scene(
    scene_path: PathLike,
    chart: Chart | PathLike,
    out: PathLike,
    *,
    mode: str = "official",
    chart_crs: CRS | str | None = None,
    layer: str | None = None,
    sod_threshold: float | None = None,
    floe_threshold: float | None = None,
) -> LabelResult:
    """Label one scene from a SIGRID-3 chart and write it, under its own name, into the folder ``out``.

    Args:
        scene_path: a ready-to-train ``_prep.nc`` (train or test) or a raw 40 m scene.
        chart: a chart from :func:`read_chart`, or the path of a ``.shp`` / ``.gpkg``.
        out: output folder (created if missing); may be the scene's own folder (then the scene is
            replaced, atomically).
        mode: egg-code decoding, ``"official"`` or ``"corrected"`` (:mod:`autoice.charts`).
        chart_crs: with a chart path: its CRS when the file declares none (see :func:`read_chart`).
        layer: with a chart path: the layer to read.
        sod_threshold: dominance threshold of the stage (default ``schema.THRESHOLDS["current"]``).
        floe_threshold: same for the form.

    Returns:
        What was labelled: polygons used, pixels in the chart and labelled, undecodable codes.

    Raises:
        ChartError: the chart is unusable; SceneError: the scene is, or the chart does not overlap it.
    """
    from autoice.scenes import SceneKind, chunk_cache, open_scene

    if mode not in charts.MODES:
        raise ConfigError(f"chart mode: expected one of {', '.join(charts.MODES)}, got {mode!r}")
    if not isinstance(chart, Chart):
        chart = read_chart(chart, chart_crs=chart_crs, layer=layer)
    src = Path(scene_path)
    kind = _scene_kind(src)
    target = Path(out) / src.name
    with chunk_cache(), open_scene(src, SceneKind.RAW if kind == "raw" else None, check_values=False) as ds:
        if kind == "raw":
            geo = raw_geolocation(ds, src)
        else:
            from autoice.geolocation import scene_geolocation

            geo = scene_geolocation(ds, src)
        ids = polygon_ids(chart, geo, src)
        counts = np.bincount(ids.ravel(), minlength=len(chart.rows) + 1)
        used = np.flatnonzero(counts[1:]) + 1
        if used.size == 0:
            raise SceneError(src, f"the chart {chart.path.name} does not overlap any pixel of this scene")
        header = ";".join(schema.POLYGON_CODES_HEADER)
        rows = [header] + [chart.rows[i - 1] for i in used]
        try:
            table = charts.decode_polygon_codes(rows, mode=mode, sod_threshold=sod_threshold,
                                                floe_threshold=floe_threshold)  # fmt: skip
        except ChartError as exc:
            raise ChartError(f"{chart.path}: {exc}") from exc
        result = LabelResult(src, target, chart.path, kind, polygons=int(used.size),
                             pixels=int(counts[1:].sum()), undecodable=dict(table.undecodable),
                             codes=_unknown_codes(chart, used, mode), changed=table.changed)  # fmt: skip
        provenance = {"icechart_file": chart.path.name, "icechart_mode": mode}
        if kind == "raw":
            sic = table.classes["SIC"]
            result.labelled = int(counts[used][sic != schema.CHART_FILL].sum())
            _guarded(src, target, _replace_polygons, ds, target, ids, rows, provenance)
            return result
        decoded = charts.rasterize(ids, table)
        del ids
        empty = _no_data(ds, src, geo.shape)
    for c in schema.CHARTS:
        decoded[c][empty] = schema.CHART_FILL
    result.labelled = int(np.count_nonzero(decoded["SIC"] != schema.CHART_FILL))
    _guarded(src, target, _replace_charts, src, target, decoded, provenance)
    return result


def _guarded(src: Path, target: Path, write: Any, *args: Any) -> None:
    """Run ``write(*args)``; a library failure while writing becomes one SceneError line."""
    try:
        write(*args)
    except AutoiceError:
        raise
    except (OSError, RuntimeError, ValueError) as exc:
        why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SceneError(src, f"writing {target} failed ({why})") from exc


def _replace_polygons(ds: Any, target: Path, ids: np.ndarray, rows: list[str], attrs: dict[str, str]) -> None:
    """Write the raw scene ``ds`` to ``target`` with its ``polygon_icechart`` and ``polygon_codes`` replaced."""
    from autoice.scenes import write_netcdf

    old = ds[schema.POLYGON_ICECHART]
    image = ids.astype(old.dtype if old.dtype.kind == "f" else np.dtype(np.float32))
    image[ids == 0] = np.nan  # no chart
    codes = ds[schema.POLYGON_CODES]
    new = ds.drop_vars([schema.POLYGON_ICECHART, schema.POLYGON_CODES])
    new[schema.POLYGON_ICECHART] = (old.dims, image, dict(old.attrs))
    new[schema.POLYGON_CODES] = (codes.dims, np.array(rows, dtype=str), dict(codes.attrs))
    new.attrs = {**ds.attrs, **attrs}
    write_netcdf(new, target)


# ----------------------------------------------------------------------------- many scenes
def _label_one(chart: Chart, scene: Path, out: PathLike, opts: dict[str, Any]) -> LabelResult:
    return label_scene(scene, chart, out, **opts)


def label_scenes(
    scenes: PathLike | Sequence[PathLike],
    chart: PathLike | Chart,
    out: PathLike,
    *,
    mode: str = "official",
    chart_crs: CRS | str | None = None,
    layer: str | None = None,
    sod_threshold: float | None = None,
    floe_threshold: float | None = None,
    workers: int = 1,
    progress: bool = True,
    scheduler: str | None = None,
) -> list[LabelResult]:
    """Label every scene (files or folders of raw / ``_prep.nc`` scenes) from one chart, several in parallel.

    The chart is read and checked once, before any scene (a bad chart writes nothing). A scene
    that fails (the chart does not overlap it, a damaged file) does not stop the others: they are
    written, then :class:`~autoice.errors.ScenesFailed` names it (its ``partial`` holds the results).
    """
    from autoice.atomic import ensure_folder
    from autoice.batch import run_each
    from autoice.scenes import SceneKind, find_scenes

    if mode not in charts.MODES:
        raise ConfigError(f"--mode: expected one of {', '.join(charts.MODES)}, got {mode!r}")
    if not isinstance(chart, Chart):
        chart = read_chart(chart, chart_crs=chart_crs, layer=layer)
    files = find_scenes(scenes, [SceneKind.RAW, SceneKind.TRAIN])
    if not files:
        where = scenes if isinstance(scenes, (str, os.PathLike)) else ", ".join(map(str, scenes))
        raise SceneError(where, "no scenes (raw *_icechart_*.nc or *_prep.nc) found")
    ensure_folder(out)
    opts = {"mode": mode, "sod_threshold": sod_threshold, "floe_threshold": floe_threshold}
    batch = run_each(_label_one, [(f, out, opts) for f in files], [str(f) for f in files], workers=workers,
                     desc="label", progress=progress, scheduler=scheduler, shared=chart,
                     outputs=[out])  # fmt: skip
    results = batch.done()
    batch.check(partial=results, outcome=f"the other scenes were labelled into {out}")
    return results


def summarize(results: Sequence[LabelResult]) -> list[str]:
    """One line per scene: polygons used, pixels labelled, codes that could not be decoded."""
    lines = []
    for r in results:
        line = (f"{r.source.name}: {r.polygons} polygons of {r.chart.name}, {r.pixels:,} pixels in the chart, "
                f"{r.labelled:,} labelled")  # fmt: skip
        bad = {c: n for c, n in r.undecodable.items() if n}
        if bad:
            codes = "; ".join(f"{f} {', '.join(map(str, v))}" for f, v in r.codes.items())
            line += (f"; polygons with codes that cannot be decoded (set to 255): "
                     f"{', '.join(f'{n} {c}' for c, n in bad.items())}" + (f" ({codes})" if codes else ""))  # fmt: skip
        if r.changed:
            line += f"; corrected mode changed {r.changed} polygons versus official"
        lines.append(line)
    return lines
