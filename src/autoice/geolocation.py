"""Where every pixel of a ready-to-train scene lies on Earth, and its mapping onto any CRS.

An RTT scene stores its geolocation only as a 21 x 21 tie-point grid (``sar_grid2d_latitude``,
``sar_grid2d_longitude``; axis 0 = lines) taken as evenly spaced from the first to the last 80 m
line/sample (spec section 2). One implementation serves everything that needs positions:

- :func:`tiepoint_field` interpolates a tie-point grid bilinearly to the (downscaled) pixel grid:
  the model's latitude/longitude inputs and :meth:`Geolocation.lonlat` both use it;
- :func:`scene_geolocation` reads and checks the grid (finite, in range, advancing monotonically
  along lines and samples without folding), so a bad grid is one :class:`SceneError`;
- :func:`reproject_scene` puts a scene's class (or value) arrays onto a projected grid with
  GDAL's warper, the tie points (projected onto the target CRS) as ground control points through
  which GDAL fits a thin-plate spline: it passes through every tie point, where GDAL's default
  polynomial missed a real S1 EW geolocation grid by kilometres (:func:`control_points` thins
  the points where the spline stays within 1/8 pixel of all of them, for speed). It returns the
  array, its affine transform and CRS, so a mosaic can place several scenes on one shared grid.

Longitude/latitude are always longitude first (``OGC:CRS84`` order): EPSG:4326 in GDAL and pyproj
is latitude first unless ``always_xy`` is asked for, which this module always does.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from autoice import schema
from autoice.errors import ConfigError, SceneError

if TYPE_CHECKING:
    import xarray as xr
    from affine import Affine
    from pyproj import CRS
    from rasterio.control import GroundControlPoint

PathLike = str | os.PathLike[str]

DEFAULT_CRS = "EPSG:3413"  #: NSIDC Sea Ice Polar Stereographic North
NATIVE = "native"  #: keep the swath geometry; tie points travel as ground control points
LONLAT = "OGC:CRS84"  #: WGS 84 longitude/latitude, longitude first
DEFAULT_RESOLUTION = float(schema.RTT_PIXEL_SPACING)  #: metres
METRES_PER_DEGREE = 111_320.0  #: for a resolution in metres on a geographic CRS (degrees of latitude)
_EDGE_POINTS = 64  #: points per scene edge when projecting its outline
MAX_GRID_PIXELS = 500_000_000  #: a target grid above this (a 400 km scene finer than ~18 m) is refused


def interp_weights(positions: np.ndarray, nodes: np.ndarray) -> np.ndarray:
    """Linear-interpolation weights (len(positions) x len(nodes)), extrapolating beyond the ends."""
    n = len(nodes)
    j = np.clip(np.searchsorted(nodes, positions, side="right") - 1, 0, n - 2)
    t = (positions - nodes[j]) / (nodes[j + 1] - nodes[j])
    w = np.zeros((len(positions), n))
    rows = np.arange(len(positions))
    w[rows, j] = 1.0 - t
    w[rows, j + 1] = t
    return w


def tiepoint_positions(n_full: int, n_points: int = schema.TIEPOINT_GRID) -> np.ndarray:
    """80 m pixel index (line or sample) of each tie point along one axis: first to last pixel, even steps."""
    return np.linspace(0, n_full - 1, n_points)


def tiepoint_field(grid: np.ndarray, shape: tuple[int, int], downscale: int = 1) -> np.ndarray:
    """Bilinear interpolation of a tie-point grid (axis 0 = lines) to the grid downscaled by ``downscale``.

    Downscaled pixel ``i`` is 80 m pixel ``i * d`` (nearest downscaling, as the model inputs).
    Separable: ``W_lines @ grid @ W_samples.T``.
    """
    lines, samples = shape
    n_l, n_s = grid.shape
    wl = interp_weights(np.arange(0, lines, downscale, dtype=np.float64), tiepoint_positions(lines, n_l))
    ws = interp_weights(np.arange(0, samples, downscale, dtype=np.float64), tiepoint_positions(samples, n_s))
    return (wl @ np.asarray(grid, dtype=np.float64)) @ ws.T


def unwrap_longitude(lon: np.ndarray) -> np.ndarray:
    """Make a tie-point longitude grid continuous across the antimeridian (so bilinear is right)."""
    out = np.unwrap(lon, period=360.0, axis=1)
    col0 = np.unwrap(out[:, 0], period=360.0)
    return out + (col0 - out[:, 0])[:, None]


def wrap_longitude(lon: np.ndarray) -> np.ndarray:
    """Longitudes back into [-180, 180)."""
    return (np.asarray(lon) + 180.0) % 360.0 - 180.0


# ----------------------------------------------------------------------------- the scene's geolocation
@dataclass(frozen=True)
class Geolocation:
    """The tie points of one scene and the size of its 80 m grid."""

    latitude: np.ndarray  #: (21, 21) degrees, axis 0 = lines
    longitude: np.ndarray  #: (21, 21) degrees, continuous (unwrapped across the antimeridian)
    shape: tuple[int, int]  #: (sar_lines, sar_samples) of the 80 m grid
    #: pixel line and sample of each row / column of tie points where a file states them (a raw scene's
    #: ``sar_grid_line``/``sar_grid_sample``); None: evenly from the first to the last pixel (RTT)
    nodes: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def lines(self) -> np.ndarray:
        """80 m line index of each row of tie points."""
        if self.nodes is not None:
            return self.nodes[0]
        return tiepoint_positions(self.shape[0], self.latitude.shape[0])

    @property
    def samples(self) -> np.ndarray:
        """80 m sample index of each column of tie points."""
        if self.nodes is not None:
            return self.nodes[1]
        return tiepoint_positions(self.shape[1], self.latitude.shape[1])

    def lonlat(self, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Longitude (wrapped to [-180, 180)) and latitude at 80 m pixel positions (floats allowed).

        The same bilinear interpolation as :func:`tiepoint_field`, at scattered points.
        """
        r = np.atleast_1d(np.asarray(rows, dtype=np.float64)).ravel()
        c = np.atleast_1d(np.asarray(cols, dtype=np.float64)).ravel()
        wl = interp_weights(r, self.lines)
        ws = interp_weights(c, self.samples)
        lat = np.einsum("ij,jk,ik->i", wl, self.latitude, ws)
        lon = np.einsum("ij,jk,ik->i", wl, self.longitude, ws)
        return wrap_longitude(lon), lat

    def lonlat_grid(self, downscale: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Longitude (in [-180, 180)) and latitude of every pixel of the grid downscaled by ``downscale``."""
        if self.nodes is not None:
            wl = interp_weights(np.arange(0, self.shape[0], downscale, dtype=np.float64), self.lines)
            ws = interp_weights(np.arange(0, self.shape[1], downscale, dtype=np.float64), self.samples)
            return wrap_longitude(wl @ self.longitude @ ws.T), wl @ self.latitude @ ws.T
        lon = wrap_longitude(tiepoint_field(self.longitude, self.shape, downscale))
        return lon, tiepoint_field(self.latitude, self.shape, downscale)

    def outline(self) -> tuple[np.ndarray, np.ndarray]:
        """Longitude/latitude along the scene's outer pixel edges (closed ring), for its footprint."""
        h, w = self.shape
        t = np.linspace(0.0, 1.0, _EDGE_POINTS)
        top, bottom, left, right = -0.5, h - 0.5, -0.5, w - 0.5
        rows = np.concatenate([np.full_like(t, top), top + t * (bottom - top), np.full_like(t, bottom),
                               bottom - t * (bottom - top)])  # fmt: skip
        cols = np.concatenate([left + t * (right - left), np.full_like(t, right), right - t * (right - left),
                               np.full_like(t, left)])  # fmt: skip
        return self.lonlat(rows, cols)

    def gcps(self, downscale: int = 1, crs: CRS | None = None) -> list[GroundControlPoint]:
        """The tie points as GDAL ground control points (x = longitude, y = latitude) of an array at ``downscale``.

        GDAL's pixel/line coordinates put (0, 0) at the first pixel's outer corner, so 80 m pixel
        ``r`` (downscaled position ``r / d``) has its centre at ``r / d + 0.5``.
        """
        from rasterio.control import GroundControlPoint

        d = float(downscale)
        x, y = self.longitude, self.latitude
        if crs is not None:  # the tie points' coordinates on crs
            x, y = (np.asarray(v) for v in _transformer(crs).transform(self.longitude, self.latitude))
        return [
            GroundControlPoint(row=float(r) / d + 0.5, col=float(c) / d + 0.5, x=float(x[i, j]), y=float(y[i, j]),
                               id=f"{i}_{j}")  # fmt: skip
            for i, r in enumerate(self.lines)
            for j, c in enumerate(self.samples)
        ]


#: subsets of the tie-point grid tried before all 441, sparsest first (every k-th row and column, ends kept)
_GCP_STEPS = (10, 5, 4, 2)
#: the spline through the kept tie points must reproduce every tie point within this many target pixels:
#: the error GDAL's warper itself allows (its approximate transformer's 0.125 pixel)
GCP_TOLERANCE_PX = 0.125


def control_points(geo: Geolocation, crs: CRS, tolerance: float, downscale: int = 1) -> list[GroundControlPoint]:
    """The tie points on ``crs`` as GCPs for GDAL's thin-plate spline, thinned where the scene is smooth.

    The spline's cost per pixel grows with the number of points, so the sparsest regular subset
    whose spline (GDAL's own, :class:`rasterio.transform.GCPTransformer`) puts every one of the 441
    tie points within ``tolerance`` (CRS units) is used; a grid with kinks (e.g. burst seams) keeps all.
    """
    from rasterio.transform import GCPTransformer

    every = geo.gcps(downscale, crs)
    n = geo.latitude.shape[0]
    rows = np.array([g.row for g in every])
    cols = np.array([g.col for g in every])
    xy = np.array([[g.x, g.y] for g in every])
    for step in _GCP_STEPS:
        keep = [i for i in range(n) if i % step == 0 or i == n - 1]
        subset = [every[i * n + j] for i in keep for j in keep]
        with GCPTransformer(subset, tps=True) as spline:
            xs, ys = spline.xy(rows, cols, offset="ul")
        if np.max(np.hypot(np.asarray(xs) - xy[:, 0], np.asarray(ys) - xy[:, 1])) <= tolerance:
            return subset
    return every


def _local_xy(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Tie points in metres on an azimuthal equidistant plane centred on the scene (no polar or seam trouble)."""
    from pyproj import Transformer

    lon0 = float(wrap_longitude(np.mean(lon)))
    lat0 = float(np.clip(np.mean(lat), -90, 90))
    local = f"+proj=aeqd +lat_0={lat0} +lon_0={lon0} +datum=WGS84 +units=m"
    x, y = Transformer.from_crs(LONLAT, local, always_xy=True).transform(lon, lat)
    return np.asarray(x), np.asarray(y)


def check_tiepoints(latitude: np.ndarray, longitude: np.ndarray, path: PathLike) -> None:
    """Raise SceneError unless the grid is finite, in range, and advances monotonically without folding.

    Monotonic: on a plane centred on the scene every step along a line of tie points goes the same
    way as the mean step (likewise along samples), and every cell keeps the scene's orientation.
    """
    lat = np.asarray(latitude, dtype=np.float64)
    lon = np.asarray(longitude, dtype=np.float64)
    n = schema.TIEPOINT_GRID
    if lat.shape != (n, n) or lon.shape != (n, n):
        raise SceneError(path, f"tie-point grids have shapes {lat.shape} and {lon.shape}, expected ({n}, {n})")
    for name, x in ((schema.TIEPOINT_LATITUDE, lat), (schema.TIEPOINT_LONGITUDE, lon)):
        bad = int(x.size - np.count_nonzero(np.isfinite(x)))
        if bad:
            raise SceneError(path, f"variable {name} has {bad} non-finite tie point{'s' if bad > 1 else ''} "
                             "(NaN or Inf): the scene cannot be geolocated")  # fmt: skip
    if np.abs(lat).max() > 90.0 or np.abs(lon).max() > 540.0:
        raise SceneError(path, "tie-point latitude/longitude out of range (|lat| > 90 or |lon| > 540 degrees)")
    x, y = _local_xy(unwrap_longitude(lon), lat)
    p = np.stack([x, y], axis=-1)
    for axis, what in ((0, "lines"), (1, "samples")):
        steps = np.diff(p, axis=axis)
        mean = steps.reshape(-1, 2).mean(axis=0)
        if not np.hypot(*mean) > 0 or (steps @ mean).min() <= 0:
            raise SceneError(path, f"tie points do not advance monotonically along {what}: "
                             "the geolocation grid is folded or repeated")  # fmt: skip
    d_lines = p[1:, :-1] - p[:-1, :-1]
    d_samples = p[:-1, 1:] - p[:-1, :-1]
    cross = d_lines[..., 0] * d_samples[..., 1] - d_lines[..., 1] * d_samples[..., 0]
    if not (np.all(cross > 0) or np.all(cross < 0)):
        raise SceneError(path, "tie points are not monotonic: the geolocation grid folds over itself")


def scene_geolocation(ds: xr.Dataset, path: PathLike | None = None) -> Geolocation:
    """The checked geolocation of an open RTT scene (``_prep.nc``, train or test)."""
    from autoice.scenes import read_variable

    where = path if path is not None else ds.encoding.get("source", "<dataset>")
    missing = [n for n in schema.TIEPOINT_VARIABLES if n not in ds.variables]
    if missing:
        raise SceneError(where, f"has no tie points ({', '.join(missing)} missing): the scene cannot be geolocated")
    lat = np.asarray(read_variable(ds, schema.TIEPOINT_LATITUDE, path=path), dtype=np.float64)
    lon = np.asarray(read_variable(ds, schema.TIEPOINT_LONGITUDE, path=path), dtype=np.float64)
    check_tiepoints(lat, lon, where)
    shape = (int(ds.sizes[schema.FULL_DIMS[0]]), int(ds.sizes[schema.FULL_DIMS[1]]))
    return Geolocation(latitude=lat, longitude=unwrap_longitude(lon), shape=shape)


# ----------------------------------------------------------------------------- CRS and grids
def parse_crs(text: str, option: str = "--crs") -> CRS | None:
    """A target CRS from what a user typed (``EPSG:3413``, a PROJ string, WKT); None for ``native``.

    ``option`` names the option in error messages.
    """
    from pyproj import CRS
    from pyproj.exceptions import CRSError

    if text.strip().lower() == NATIVE:
        return None
    try:
        crs = CRS.from_user_input(text)
    except CRSError as exc:
        raise ConfigError(f"{option}: unknown coordinate reference system {text!r} (e.g. EPSG:3413, EPSG:3995, "
                          "OGC:CRS84 or native)") from exc  # fmt: skip
    if not (crs.is_projected or crs.is_geographic):
        raise ConfigError(f"{option}: {text!r} is neither a projected nor a geographic 2-D CRS")
    return crs


def check_resolution(resolution: float) -> float:
    """The target pixel size in metres, which must be a positive finite number."""
    r = float(resolution)
    if not math.isfinite(r) or r <= 0:
        raise ConfigError(f"--resolution: must be a positive number of metres, got {resolution:g}")
    return r


def crs_units_per_metre(crs: CRS) -> float:
    """CRS units in one metre: 1 for metric projections, degrees of latitude for geographic CRSs."""
    if crs.is_geographic:
        return 1.0 / METRES_PER_DEGREE
    return 1.0 / float(crs.axis_info[0].unit_conversion_factor or 1.0)


def _transformer(crs: CRS) -> Any:
    from pyproj import Transformer

    return Transformer.from_crs(LONLAT, crs, always_xy=True)


@dataclass(frozen=True)
class Grid:
    """A north-up raster grid on a CRS: what a scene is reprojected onto (shared by a mosaic's scenes)."""

    crs: CRS
    transform: Affine
    width: int
    height: int

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(left, bottom, right, top) in CRS units."""
        t = self.transform
        return t.c, t.f + t.e * self.height, t.c + t.a * self.width, t.f


def footprint_bounds(geo: Geolocation, crs: CRS) -> tuple[float, float, float, float]:
    """(left, bottom, right, top) of the scene's outline projected onto ``crs``."""
    lon, lat = geo.outline()
    x, y = _transformer(crs).transform(lon, lat)
    x, y = np.asarray(x), np.asarray(y)
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ConfigError(f"--crs: the scene does not fit on {crs.name} (its outline does not project)")
    return float(x.min()), float(y.min()), float(x.max()), float(y.max())


def grid_for(bounds: tuple[float, float, float, float], crs: CRS, resolution: float, *,
             max_pixels: int = MAX_GRID_PIXELS, what: str = "for one scene") -> Grid:  # fmt: skip
    """A grid covering ``bounds`` with pixels of ``resolution`` metres, edges on multiples of the pixel size.

    Snapping the edges to multiples makes the grids of neighbouring scenes line up (mosaics).
    A grid above ``max_pixels`` is a ConfigError (``what`` says what the grid is for).
    """
    from affine import Affine

    step = check_resolution(resolution) * crs_units_per_metre(crs)
    left, bottom, right, top = bounds
    x0, y1 = math.floor(left / step) * step, math.ceil(top / step) * step
    width = max(1, math.ceil((right - x0) / step))
    height = max(1, math.ceil((y1 - bottom) / step))
    if width * height > max_pixels:
        raise ConfigError(f"--resolution: {resolution:g} m makes a grid of {width} x {height} pixels {what} "
                          f"(at most {max_pixels:,}); choose a coarser resolution")  # fmt: skip
    return Grid(crs=crs, transform=Affine(step, 0.0, x0, 0.0, -step, y1), width=width, height=height)


def window(grid: Grid, bounds: tuple[float, float, float, float]) -> tuple[int, int, Grid]:
    """The part of ``grid`` covering ``bounds`` (clipped to the grid): (first row, first column, sub-grid).

    The sub-grid's pixels are the grid's own pixels, so arrays warped onto it paste straight back.
    """
    from affine import Affine

    t = grid.transform
    left, bottom, right, top = bounds
    c0 = min(grid.width - 1, max(0, math.floor((left - t.c) / t.a + 1e-9)))
    c1 = max(c0 + 1, min(grid.width, math.ceil((right - t.c) / t.a - 1e-9)))
    r0 = min(grid.height - 1, max(0, math.floor((top - t.f) / t.e + 1e-9)))
    r1 = max(r0 + 1, min(grid.height, math.ceil((bottom - t.f) / t.e - 1e-9)))
    sub = Affine(t.a, 0.0, t.c + c0 * t.a, 0.0, t.e, t.f + r0 * t.e)
    return r0, c0, Grid(crs=grid.crs, transform=sub, width=c1 - c0, height=r1 - r0)


def ground_spacing(geo: Geolocation) -> float:
    """Mean ground distance (m) between neighbouring 80 m pixels, from the tie points.

    80 m for a real scene; larger for the synthetic miniatures, whose tie points span the real
    ~400 km footprint over fewer pixels.
    """
    x, y = _local_xy(geo.longitude, geo.latitude)
    along = np.hypot(np.diff(x, axis=0), np.diff(y, axis=0)).mean() / np.diff(geo.lines).mean()
    across = np.hypot(np.diff(x, axis=1), np.diff(y, axis=1)).mean() / np.diff(geo.samples).mean()
    return float((along + across) / 2)


def scene_grid(geo: Geolocation, crs: CRS, resolution: float = DEFAULT_RESOLUTION) -> Grid:
    """The grid that holds one whole scene on ``crs`` at ``resolution`` metres."""
    return grid_for(footprint_bounds(geo, crs), crs, resolution)


@dataclass(frozen=True)
class Reprojected:
    """A scene's arrays on a grid: ``data`` is (bands, height, width)."""

    data: np.ndarray
    transform: Affine
    crs: CRS


def reproject_scene(
    arrays: np.ndarray | Sequence[np.ndarray],
    geo: Geolocation,
    crs: CRS,
    resolution: float = DEFAULT_RESOLUTION,
    *,
    grid: Grid | None = None,
    downscale: int = 1,
    resampling: str = "nearest",
    nodata: float = schema.CHART_FILL,
    threads: int = 1,
) -> Reprojected:
    """Warp a scene's arrays (bands, lines, samples) from its swath geometry onto ``crs``.

    Args:
        arrays: one 2-D array or a stack of them, all on the scene's 80 m grid, or on that grid
            downscaled by ``downscale`` (uncertainty maps at the model's resolution).
        geo: the scene's geolocation (:func:`scene_geolocation`).
        crs: the target CRS (pyproj); geographic CRSs are longitude first.
        resolution: pixel size in metres (degrees of latitude on a geographic CRS) when ``grid``
            is not given.
        grid: the grid to fill (e.g. a mosaic's); default: the scene's own (:func:`scene_grid`).
        downscale: how much coarser than 80 m ``arrays`` are.
        resampling: a :class:`rasterio.enums.Resampling` name; ``nearest`` for classes.
        nodata: value of pixels in ``arrays`` that hold nothing, and of every target pixel
            outside the swath (255 for charts, NaN for floats).
        threads: GDAL warper threads.

    Returns:
        The warped stack with the grid's affine transform and CRS.
    """
    from rasterio.crs import CRS as RioCRS
    from rasterio.enums import Resampling
    from rasterio.warp import reproject

    src = np.asarray(arrays)
    if src.ndim == 2:
        src = src[None]
    if grid is None:
        grid = scene_grid(geo, crs, resolution)
    dst = np.full((src.shape[0], grid.height, grid.width), nodata, dtype=src.dtype)
    tolerance = GCP_TOLERANCE_PX * abs(grid.transform.a)
    reproject(
        source=src,
        destination=dst,
        gcps=control_points(geo, grid.crs, tolerance, downscale),
        src_crs=RioCRS.from_wkt(grid.crs.to_wkt()),
        src_nodata=nodata,
        dst_transform=grid.transform,
        dst_crs=RioCRS.from_wkt(grid.crs.to_wkt()),
        dst_nodata=nodata,
        resampling=Resampling[resampling],
        num_threads=threads,
        SRC_METHOD="GCP_TPS",  # through the tie points (a global polynomial misses S1 burst seams by km)
    )
    return Reprojected(data=dst, transform=grid.transform, crs=grid.crs)


def project_points(geo: Geolocation, rows: np.ndarray, cols: np.ndarray, crs: CRS) -> tuple[np.ndarray, np.ndarray]:
    """Target-CRS coordinates of 80 m pixel positions (via their longitude/latitude)."""
    lon, lat = geo.lonlat(rows, cols)
    x, y = _transformer(crs).transform(lon, lat)
    return np.asarray(x), np.asarray(y)


def grid_lonlat(grid: Grid, rows: slice | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Longitude/latitude of the centres of a grid's pixels (of the rows ``rows``), float64."""
    from pyproj import Transformer

    r = np.arange(grid.height)[rows if rows is not None else slice(None)]
    t = grid.transform
    xs = t.c + (np.arange(grid.width) + 0.5) * t.a
    ys = t.f + (r + 0.5) * t.e
    xx, yy = np.meshgrid(xs, ys)
    lon, lat = Transformer.from_crs(grid.crs, LONLAT, always_xy=True).transform(xx, yy)
    return np.asarray(lon), np.asarray(lat)
