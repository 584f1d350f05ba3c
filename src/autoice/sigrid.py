"""Predicted ice charts as SIGRID-3 polygons: ``autoice export --format sigrid3 -o OUT.shp|OUT.gpkg``.

Ice services exchange charts as SIGRID-3 (WMO/JCOMM technical report 23): polygons whose
attributes are the egg code. Per scene, on the scene's grid in the target CRS (as the GeoTIFF
export reprojects it, nearest neighbour):

1. **What SIGRID-3 can say.** A pixel whose SIC is 255 is no data and is not exported (SOD/FLOE
   without a concentration have no egg code that decodes back). Where SIC is 0 the polygon is
   water (``POLY_TYPE`` W), whose stage and form decode to 0, so SOD and FLOE are set to 0 there
   first (as the decoder does for the training labels). Every other (SIC, SOD, FLOE) triple,
   255 in SOD or FLOE included, is written as it is.
2. **Small regions.** Connected (4-neighbour) regions of one triple smaller than ``min_area``
   (:data:`MIN_AREA_KM2` = 1 km², i.e. ``min_area / resolution²`` pixels rounded up: 157 at
   80 m) are merged into a neighbouring region on the raster, before polygonising, with GDAL's
   sieve filter (:func:`rasterio.features.sieve`): the region takes the value of its *largest*
   neighbouring region. GDAL leaves a small region alone when no neighbour reaches the area, so
   the sieve is repeated while the polygons still include small ones and it changes something
   (at most :data:`SIEVE_PASSES` times): a noisy patch of small regions inside a large one is
   absorbed from its edge inwards. Working on the raster means the pieces can never leave gaps
   or overlaps. Small regions that reach no large region, not even through other small ones (an
   island surrounded by no data; a map that is noise everywhere), are kept; no-data pixels are
   never filled.
3. **Polygons.** :func:`rasterio.features.shapes` turns each region into one polygon (with its
   holes) on the pixel grid, so neighbours share their edges exactly.
4. **Simplified boundaries.** Each shared edge is simplified once, for both its polygons, by
   GEOS's coverage simplification (:func:`shapely.coverage_simplify`, Visvalingam-Whyatt) with a
   tolerance of :data:`TOLERANCE_PX` = 1 pixel (80 m at the default resolution; roughly the
   square root of the largest triangle area removed), which removes the pixel stair-steps and
   moves no boundary by much more than a pixel. The simplifier needs a coverage whose
   neighbours have the same vertices along a shared edge, and GDAL's polygons lack a vertex
   where a third region meets a straight edge: those junctions (pixel corners where three or
   more regions, no data included, meet) are first inserted into the edges that pass through
   them. The result has no gaps and no overlaps.
5. **Egg code** per polygon from its classes, through the table below (:data:`CT_CODE`,
   :data:`SA_CODE`, :data:`FA_CODE`; the one place these are chosen). The project's decoder
   (:func:`autoice.charts.decode_polygon_codes`, official and corrected mode alike) maps every
   code back to its class: a single ice type, so CA = CT and the dominance test passes at 100 %.

   ========  ==============================  =====================================
   chart     class                           written as
   ========  ==============================  =====================================
   SIC       0 (0 %)                         POLY_TYPE ``W``, CT ``00`` (ice free)
   SIC       k = 1..9 (10k %)                POLY_TYPE ``I``, CT ``10k`` (10 .. 90)
   SIC       10 (100 %)                      POLY_TYPE ``I``, CT ``92`` (10/10)
   SOD       0 open water                    SA ``80`` (no stage of development)
   SOD       1 new / 2 young / 3 thin FY     SA ``81`` / ``83`` / ``87``
   SOD       4 thick FY / 5 old              SA ``93`` / ``95``
   FLOE      0 open water                    FA ``00``
   FLOE      1 cake / 2 small / 3 medium     FA ``02`` / ``03`` / ``04``
   FLOE      4 big / 5 vast / 6 bergs        FA ``05`` / ``06`` / ``10``
   SOD/FLOE  255 (no class)                  SA / FA ``-9`` (not filled)
   ========  ==============================  =====================================

   CA, CB, SB, FB, CC, SC, FC, CN, CD are ``-9`` (not filled; CA is implied by CT), CF is
   ``-9``; water polygons have ``-9`` in every field but CT. Codes are written as CIS does:
   two-character text, zero padded.

Besides the egg code each polygon carries ``SIC``, ``SOD``, ``FLOE`` (its classes, 255 = none),
``SCENE`` (scene key), ``SCENE_TIME`` (ISO 8601 UTC acquisition start), ``AREA`` and ``PERIMETER``
(CRS units), and with ``--uncertainty`` the mean uncertainty of its pixels ``UNC_SIC``,
``UNC_SOD``, ``UNC_FLOE`` (empty where the map has none).

All scenes go into one layer of one file (``SCENE`` tells them apart; the polygons of overlapping
scenes overlap). The file is written by pyogrio (GDAL) into a hidden work folder beside the
target, then each of its files is renamed into place (the ``.shp`` last, after its ``.shx``,
``.dbf``, ``.prj``, ``.cpg``), so no file is ever half-written; stale spatial indexes of an
older shapefile of that name (``.qix``, ``.sbn``, ``.sbx``) are removed.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from autoice import schema
from autoice.errors import ConfigError, OutputError, SceneError
from autoice.export import (
    WARP_THREADS,
    ExportResult,
    SceneSource,
    find_sources,
    read_chart_stack,
    read_uncertainty,
    scene_time,
)
from autoice.geolocation import DEFAULT_RESOLUTION, Grid, check_resolution, parse_crs, reproject_scene

if TYPE_CHECKING:
    from affine import Affine
    from pyproj import CRS

PathLike = str | os.PathLike[str]

# ----------------------------------------------------------------------------- the egg code of each class
#: SIC class -> CT; class 0 is a water polygon (:data:`WATER_CT`).
CT_CODE: dict[int, int] = {**{k: 10 * k for k in range(1, 10)}, 10: 92}
#: CT of a water polygon (POLY_TYPE W): ice free.
WATER_CT = 0
#: SOD class -> SA (stage of development).
SA_CODE: dict[int, int] = {0: 80, 1: 81, 2: 83, 3: 87, 4: 93, 5: 95}
#: FLOE class -> FA (form of ice).
FA_CODE: dict[int, int] = {0: 0, 1: 2, 2: 3, 3: 4, 4: 5, 5: 6, 6: 10}

#: SIGRID-3 attribute fields, in the order of ``schema.POLYGON_CODES_HEADER`` (without its id).
SIGRID_FIELDS: tuple[str, ...] = schema.POLYGON_CODES_HEADER[1:]
#: Text width of each field in SIGRID-3: two-character codes, CF a pair of them, POLY_TYPE one letter.
FIELD_WIDTH: dict[str, int] = {**{f: 2 for f in SIGRID_FIELDS}, "CF": 4, "POLY_TYPE": 1}

MIN_AREA_KM2 = 1.0  #: regions below this area are merged into a neighbour (see the module docstring)
TOLERANCE_PX = 1.0  #: boundary simplification tolerance, in pixels of the target grid
#: Most sieve passes: GDAL merges a small region only into a neighbour as large as the area, so a
#: patch of small regions is absorbed from its edge inwards, a pass per layer (specks need one).
SIEVE_PASSES = 16
DRIVERS: dict[str, str] = {".shp": "ESRI Shapefile", ".gpkg": "GPKG"}
#: Sidecars of an older shapefile that would describe the wrong geometry after an overwrite.
STALE_SIDECARS: tuple[str, ...] = (".qix", ".sbn", ".sbx")

# compact codes of a (SIC, SOD, FLOE) triple on the raster: 0 = no data
_NSOD, _NFLOE = schema.N_CLASSES["SOD"] + 1, schema.N_CLASSES["FLOE"] + 1  # + "255"


def _text(code: int) -> str:
    return "-9" if code == schema.NOT_FILLED else f"{code:02d}"


def egg_code(sic: int, sod: int, floe: int) -> dict[str, str]:
    """The SIGRID-3 attributes (CT .. POLY_TYPE, as text) written for one (SIC, SOD, FLOE) triple.

    ``sic`` must be a class; ``sod``/``floe`` a class or 255. Water (SIC 0) ignores SOD and FLOE.
    """
    out = {f: _text(schema.NOT_FILLED) for f in SIGRID_FIELDS}
    if sic == 0:
        out["CT"], out["POLY_TYPE"] = _text(WATER_CT), schema.POLY_TYPE_WATER
        return out
    out["CT"], out["POLY_TYPE"] = _text(CT_CODE[sic]), schema.POLY_TYPE_ICE
    out["SA"] = _text(SA_CODE.get(sod, schema.NOT_FILLED))
    out["FA"] = _text(FA_CODE.get(floe, schema.NOT_FILLED))
    return out


# ----------------------------------------------------------------------------- raster -> polygons
@dataclass
class Polygons:
    """One scene's chart polygons, on its CRS.

    Attributes:
        geometry: shapely Polygons.
        classes: (n, 3) uint8 SIC, SOD, FLOE of each polygon (255 = no class).
        uncertainty: (n, 3) float32 mean uncertainty of each polygon's pixels (NaN: none), or None.
    """

    geometry: np.ndarray
    classes: np.ndarray
    uncertainty: np.ndarray | None = None


def encode_triples(charts: np.ndarray) -> np.ndarray:
    """(3, h, w) uint8 classes -> (h, w) uint16 code of the exported triple, 0 where SIC is 255.

    SOD and FLOE count as 0 where SIC is 0 (water polygons cannot carry them); see :func:`decode_triples`.
    Built from three 256-entry lookup tables, so no full-size temporary beyond the result.
    """
    values = np.arange(256)
    sic_lut = (np.minimum(values, schema.N_CLASSES["SIC"]) * _NSOD * _NFLOE + 1).astype(np.uint16)
    sod_lut = (np.minimum(values, _NSOD - 1) * _NFLOE).astype(np.uint16)
    floe_lut = np.minimum(values, _NFLOE - 1).astype(np.uint16)
    sic = charts[0]
    code = sic_lut[sic]
    code += sod_lut[charts[1]]
    code += floe_lut[charts[2]]
    np.putmask(code, sic == 0, sic_lut[0])  # water: (0, 0, 0)
    np.putmask(code, sic == schema.CHART_FILL, 0)
    return code


def decode_triples(codes: np.ndarray) -> np.ndarray:
    """Codes of :func:`encode_triples` (> 0) -> (n, 3) uint8 SIC, SOD, FLOE (255 = no class)."""
    r = np.asarray(codes, dtype=np.int64).ravel() - 1
    floe, r = r % _NFLOE, r // _NFLOE
    sod, sic = r % _NSOD, r // _NSOD
    sod = np.where(sod == _NSOD - 1, schema.CHART_FILL, sod)
    floe = np.where(floe == _NFLOE - 1, schema.CHART_FILL, floe)
    return np.stack([sic, sod, floe], axis=1).astype(np.uint8)


def _rings(shapes: list[tuple[dict[str, Any], float]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """GeoJSON polygons of :func:`rasterio.features.shapes` -> (coords (n, 2), ring ends, polygon ends).

    Offsets as :func:`shapely.from_ragged_array` takes them: ring ``j`` is ``coords[ends[j]:ends[j + 1]]``.
    """
    rings: list[np.ndarray] = [np.zeros((0, 2))]
    ring_end, poly_end = [0], [0]
    for geom, _ in shapes:
        for ring in geom["coordinates"]:
            rings.append(np.asarray(ring, dtype=np.float64))
            ring_end.append(ring_end[-1] + len(ring))
        poly_end.append(len(ring_end) - 1)
    return np.concatenate(rings), np.asarray(ring_end, np.int64), np.asarray(poly_end, np.int64)


def _junctions(codes: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Sorted unique keys ``y * (w + 1) + x`` of the corners among ``xy`` where three or more regions meet.

    No data and the outside of the grid count as a region. Only there can a ring pass straight
    through another ring's vertex (a T-junction), so only these points need noding.
    """
    h, w = codes.shape
    padded = np.zeros((h + 2, w + 2), codes.dtype)  # corner (x, y) touches padded pixels (y..y+1, x..x+1)
    padded[1:-1, 1:-1] = codes
    flat = padded.ravel()
    at = xy[:, 1] * (w + 2) + xy[:, 0]
    a, b, c, d = flat[at], flat[at + 1], flat[at + w + 2], flat[at + w + 3]
    del padded, flat
    distinct = 1 + (b != a) + ((c != a) & (c != b)) + ((d != a) & (d != b) & (d != c))
    meet = distinct >= 3
    keys = np.sort(xy[meet, 1] * (w + 1) + xy[meet, 0])
    return keys[np.concatenate([[True], keys[1:] != keys[:-1]])] if keys.size else keys


def _node(coords: np.ndarray, ring_end: np.ndarray, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Insert into every ring edge the junctions (:func:`_junctions`) that lie strictly inside it.

    GDAL's polygons have a vertex only where their own outline turns, so where a third region meets
    a straight edge one neighbour has a vertex the other lacks. Coverage simplification needs both
    to have it (a vertex-matched coverage). Edges on the pixel grid are axis-parallel, and only
    those at least two pixels long have a corner strictly inside.
    """
    h, w = codes.shape
    xy = np.rint(coords).astype(np.int64)
    n = len(xy)
    keys = _junctions(codes, xy)
    if n < 2 or keys.size == 0:
        return coords, ring_end
    step = np.abs(np.diff(xy, axis=0)).sum(axis=1)
    step[ring_end[1:-1] - 1] = 0  # from a ring's last vertex to the next ring's first: no edge
    edges = np.flatnonzero(step >= 2)
    a, b = xy[edges], xy[edges + 1]
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    horizontal = a[:, 1] == b[:, 1]
    # a row's corners have consecutive keys y * (w + 1) + x; a column's, in the transposed keys
    tkeys = np.sort((keys % (w + 1)) * (h + 1) + keys // (w + 1))
    lo_key = np.where(horizontal, lo[:, 1] * (w + 1) + lo[:, 0], lo[:, 0] * (h + 1) + lo[:, 1])
    hi_key = np.where(horizontal, hi[:, 1] * (w + 1) + hi[:, 0], hi[:, 0] * (h + 1) + hi[:, 1])
    start = np.where(horizontal, np.searchsorted(keys, lo_key, "right"), np.searchsorted(tkeys, lo_key, "right"))
    stop = np.where(horizontal, np.searchsorted(keys, hi_key, "left"), np.searchsorted(tkeys, hi_key, "left"))
    count = np.maximum(stop - start, 0)
    total = int(count.sum())
    if total == 0:
        return coords, ring_end
    per_vertex = np.zeros(n, np.int64)  # points inserted after vertex i (into its outgoing edge)
    per_vertex[edges] = count
    before = np.zeros(n + 1, np.int64)  # points inserted before vertex i
    np.cumsum(per_vertex, out=before[1:])
    out = np.empty((n + total, 2), np.float64)
    out[np.arange(n) + before[:n]] = coords
    e = np.repeat(np.arange(len(edges)), count)  # the edge of each inserted point
    k = np.arange(total) - np.repeat(np.cumsum(count) - count, count)  # its rank along the edge
    forward = np.where(horizontal[e], b[e, 0] > a[e, 0], b[e, 1] > a[e, 1])
    pos = start[e] + np.where(forward, k, count[e] - 1 - k)
    hk, vk = keys[np.minimum(pos, keys.size - 1)], tkeys[np.minimum(pos, tkeys.size - 1)]
    points = np.where(horizontal[e, None], np.stack([hk % (w + 1), hk // (w + 1)], axis=1),
                      np.stack([vk // (h + 1), vk % (h + 1)], axis=1))  # fmt: skip
    out[edges[e] + before[edges[e]] + 1 + k] = points
    return out, ring_end + before[ring_end]


def _to_crs(geometry: np.ndarray, transform: Affine) -> np.ndarray:
    """Pixel-grid (col, row) coordinates -> CRS coordinates through the grid's affine transform."""
    import shapely

    t = transform
    matrix = np.array([[t.a, t.d], [t.b, t.e]])
    offset = np.array([t.c, t.f])
    return shapely.transform(geometry, lambda xy: xy @ matrix + offset)


def polygonize(charts: np.ndarray, transform: Affine, *, min_pixels: int = 1, tolerance: float = TOLERANCE_PX,
               uncertainty: np.ndarray | None = None) -> Polygons:  # fmt: skip
    """Chart polygons of one scene on a map grid (steps 1-4 of the module docstring).

    Args:
        charts: (3, h, w) uint8 SIC, SOD, FLOE on the grid (255 = no data), classes checked.
        transform: the grid's affine transform (pixel -> CRS).
        min_pixels: regions of fewer pixels are merged into their largest neighbour (1: none; see step 2).
        tolerance: boundary simplification tolerance in pixels (0: pixel edges kept).
        uncertainty: (3, h, w) float uncertainty on the same grid (NaN = none), averaged per polygon.

    Returns:
        The polygons in the grid's CRS with their classes (and mean uncertainty).
    """
    import rasterio.features
    import shapely
    from affine import Affine

    codes = encode_triples(charts)
    data = codes > 0
    passes = SIEVE_PASSES if min_pixels > 1 else 0
    if passes:
        codes = rasterio.features.sieve(codes, int(min_pixels), mask=data, connectivity=4)
    while True:
        shapes = list(rasterio.features.shapes(codes, mask=data, connectivity=4, transform=Affine.identity()))
        coords, ring_end, poly_end = _rings(shapes)
        passes -= 1
        if passes <= 0:
            break
        pixels = shapely.area(shapely.from_ragged_array(shapely.GeometryType.POLYGON, coords, (ring_end, poly_end)))
        if not (pixels < min_pixels).any():  # the usual case: one pass merged every speck
            break
        merged = rasterio.features.sieve(codes, int(min_pixels), mask=data, connectivity=4)
        if np.array_equal(merged, codes):  # what is left reaches no large region (step 2)
            break
        codes = merged
    del data
    classes = decode_triples(np.array([v for _, v in shapes], dtype=np.int64))
    del shapes
    coords, ring_end = _node(coords, ring_end, codes)
    geometry = shapely.from_ragged_array(shapely.GeometryType.POLYGON, coords, (ring_end, poly_end))
    del coords
    mean = None
    if uncertainty is not None:
        mean = _polygon_means(geometry, uncertainty, codes.shape)
    del codes
    if tolerance > 0 and len(geometry):
        geometry = shapely.coverage_simplify(geometry, tolerance)
    return Polygons(_to_crs(geometry, transform), classes, mean)


def _polygon_means(geometry: np.ndarray, values: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(n, bands) mean of each band's finite values inside each (pixel-edge) polygon; NaN where none."""
    import rasterio.features

    index = rasterio.features.rasterize(zip(geometry, range(1, len(geometry) + 1), strict=True), out_shape=shape,
                                        fill=0, dtype=np.int32)  # fmt: skip
    flat = index.ravel()
    out = np.full((len(geometry), values.shape[0]), np.nan, np.float32)
    for b in range(values.shape[0]):
        v = values[b].ravel()
        ok = np.isfinite(v) & (flat > 0)
        n = np.bincount(flat[ok], minlength=len(geometry) + 1)[1:]
        s = np.bincount(flat[ok], weights=v[ok], minlength=len(geometry) + 1)[1:]
        with np.errstate(invalid="ignore", divide="ignore"):
            out[:, b] = np.where(n > 0, s / np.maximum(n, 1), np.nan)
    return out


def min_pixels(min_area_km2: float, resolution: float) -> int:
    """Pixels of ``resolution`` metres in ``min_area_km2`` (at least 1: nothing merged)."""
    return max(1, math.ceil(min_area_km2 * 1e6 / resolution**2))


# ----------------------------------------------------------------------------- one scene
@dataclass
class ScenePolygons:
    """One scene's polygons and what the attribute table needs of the scene."""

    key: str
    time: str
    polygons: Polygons


def scene_polygons(source: SceneSource, crs: CRS, resolution: float, uncertainty: PathLike | None,
                   min_area_km2: float, tolerance: float) -> ScenePolygons:  # fmt: skip
    """Read, reproject and polygonise one scene (a job of :func:`export_sigrid`; pickles for a cluster)."""
    geo, _, stack = read_chart_stack(source)  # classes checked: a value outside them is a scene error
    unc = read_uncertainty(uncertainty, source.key, geo.shape) if uncertainty is not None else None
    rep = reproject_scene(stack, geo, crs, resolution, threads=WARP_THREADS)
    del stack
    unc_data = None
    if unc is not None:
        grid = Grid(crs=crs, transform=rep.transform, width=rep.data.shape[2], height=rep.data.shape[1])
        maps, d = unc
        unc_data = reproject_scene(maps, geo, crs, grid=grid, downscale=d, nodata=np.nan).data
    polygons = polygonize(rep.data, rep.transform, min_pixels=min_pixels(min_area_km2, resolution),
                          tolerance=tolerance, uncertainty=unc_data)  # fmt: skip
    return ScenePolygons(source.key, scene_time(source.key), polygons)


# ----------------------------------------------------------------------------- the file
def check_output(out: PathLike) -> tuple[Path, str]:
    """The output file and its OGR driver, or one line saying why not (before any work is done)."""
    path = Path(out)
    driver = DRIVERS.get(path.suffix.lower())
    if driver is None:
        raise ConfigError(f"{path}: a SIGRID-3 chart is written as a shapefile (.shp) or a GeoPackage (.gpkg), "
                          f"got {path.suffix or 'no extension'!r}")  # fmt: skip
    if path.is_dir():
        raise OutputError(path, "a folder is in the way of this file")
    if not path.stem:
        raise ConfigError(f"{path}: the chart file needs a name before {path.suffix}")
    return path, driver


def attribute_table(scenes: Sequence[ScenePolygons], *, with_uncertainty: bool) -> dict[str, np.ndarray]:
    """The attribute columns of every polygon of ``scenes`` (see the module docstring), in write order."""
    import shapely

    classes = np.concatenate([s.polygons.classes for s in scenes])
    geometry = np.concatenate([s.polygons.geometry for s in scenes])
    triples, inverse = np.unique(classes, axis=0, return_inverse=True)
    codes = [egg_code(*map(int, t)) for t in triples]
    cols: dict[str, np.ndarray] = {}
    for f in SIGRID_FIELDS:
        cols[f] = np.array([c[f] for c in codes], dtype=f"U{FIELD_WIDTH[f]}")[inverse.ravel()]
    for i, chart in enumerate(schema.CHARTS):
        cols[chart] = classes[:, i].astype(np.int16)
    sizes = [len(s.polygons.classes) for s in scenes]
    cols["SCENE"] = np.repeat(np.array([s.key for s in scenes], f"U{schema.SCENE_KEY_LENGTH}"), sizes)
    cols["SCENE_TIME"] = np.repeat(np.array([s.time for s in scenes], "U20"), sizes)
    cols["AREA"] = shapely.area(geometry).astype(np.float64)
    cols["PERIMETER"] = shapely.length(geometry).astype(np.float64)
    if with_uncertainty:
        unc = np.concatenate([s.polygons.uncertainty for s in scenes])
        for i, chart in enumerate(schema.CHARTS):
            cols[f"UNC_{chart}"] = unc[:, i].astype(np.float64)
    return cols


def write_chart(out: PathLike, scenes: Sequence[ScenePolygons], crs: CRS, *, with_uncertainty: bool = False
                ) -> list[Path]:  # fmt: skip
    """Write every scene's polygons as one SIGRID-3 layer, atomically (see the module docstring)."""
    import pyogrio
    import shapely

    from autoice.atomic import work_folder, write_error
    from autoice.interrupts import deferred

    path, driver = check_output(out)
    cols = attribute_table(scenes, with_uncertainty=with_uncertainty)
    geometry = np.concatenate([s.polygons.geometry for s in scenes])
    multi = bool(len(geometry)) and bool((shapely.get_type_id(geometry) == shapely.GeometryType.MULTIPOLYGON).any())
    written: list[Path] = []
    with work_folder(path) as tmp:
        staged = tmp / path.name
        try:
            with deferred():
                pyogrio.raw.write(staged, shapely.to_wkb(geometry), list(cols.values()), list(cols),
                                  driver=driver, layer=path.stem, crs=crs.to_wkt(), encoding="UTF-8",
                                  geometry_type="MultiPolygon" if multi else "Polygon",
                                  promote_to_multi=multi)  # fmt: skip
        except OSError as exc:
            raise write_error(path, exc) from exc
        except (RuntimeError, ValueError) as exc:  # pyogrio's errors are RuntimeErrors (GDAL's message)
            raise OutputError(path, f"cannot write this chart: {str(exc).splitlines()[0]}") from exc
        files = sorted(tmp.iterdir(), key=lambda p: (p.suffix.lower() == path.suffix.lower(), p.name))
        with deferred():
            for f in files:  # the main file last: its sidecars are in place when it appears
                target = path.with_name(f.name)
                try:
                    os.replace(f, target)
                except OSError as exc:
                    raise write_error(target, exc) from exc
                written.append(target)
            if driver == DRIVERS[".shp"]:
                for ext in STALE_SIDECARS:
                    for stale in (path.with_suffix(ext), path.with_suffix(ext.upper())):
                        if stale.is_file():
                            stale.unlink()
    return written


# ----------------------------------------------------------------------------- all scenes
@dataclass
class SigridResult(ExportResult):
    """What :func:`export_sigrid` wrote: the chart's files, its scenes, and polygons per scene."""

    polygons: dict[str, int] | None = None


def export_sigrid(sources: Sequence[PathLike] | PathLike, out: PathLike, *, crs: CRS | None | str = "EPSG:3413",
                  resolution: float = DEFAULT_RESOLUTION, data: PathLike | None = None,
                  uncertainty: PathLike | None = None, min_area_km2: float = MIN_AREA_KM2,
                  tolerance: float = TOLERANCE_PX, progress: bool = True,
                  scheduler: str | None = None) -> SigridResult:  # fmt: skip
    """Export every scene of ``sources`` as SIGRID-3 polygons into one file ``out`` (.shp or .gpkg).

    Sources are those of :func:`autoice.export.export`. Scenes that fail are named after the
    others are written (``ScenesFailed``); nothing is written when none succeeds.
    """
    from autoice.atomic import ensure_folder
    from autoice.batch import run_each

    check_output(out)
    if isinstance(crs, str):
        crs = parse_crs(crs)
    if crs is None:
        raise ConfigError("--crs native: a SIGRID-3 chart needs a map CRS (e.g. EPSG:3413)")
    check_resolution(resolution)
    if not (math.isfinite(min_area_km2) and min_area_km2 >= 0):
        raise ConfigError(f"min_area_km2: must be a non-negative number of km², got {min_area_km2!r}")
    if not (math.isfinite(tolerance) and tolerance >= 0):
        raise ConfigError(f"tolerance: must be a non-negative number of pixels, got {tolerance!r}")
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    if uncertainty is not None and not Path(uncertainty).is_dir():
        raise SceneError(uncertainty, "no such folder (uncertainty maps from autoice predict --uncertainty)")
    found = find_sources(list(sources), data)
    ensure_folder(Path(out).parent)  # a file in the way: said before the work, not after
    jobs = [(s, crs, resolution, uncertainty, min_area_km2, tolerance) for s in found]
    batch = run_each(scene_polygons, jobs, [str(s.charts) for s in found], desc="export", progress=progress,
                     scheduler=scheduler)  # fmt: skip
    done = batch.done()
    result = SigridResult(polygons={s.key: len(s.polygons.classes) for s in done})
    if done:
        result.files = write_chart(out, done, crs, with_uncertainty=uncertainty is not None)
        result.scenes = [s.key for s in done]
    batch.check(what="scenes", outcome=f"the other scenes were exported to {out}" if done else "nothing written",
                partial=result)  # fmt: skip
    return result
