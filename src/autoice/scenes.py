"""Scene files: open lazily, validate against the format, write atomically.

Four kinds of file take part (spec sections 1-3): raw 40 m scenes with polygon charts,
ready-to-train (RTT) 80 m scenes with charts (train), RTT scenes without charts (test) and
the released test references (charts only). :func:`open_scene` checks a file completely
against :mod:`autoice.schema` and returns an xarray Dataset known to be valid, or raises a
:class:`~autoice.errors.SceneError` whose one line names the file and the fault.
:func:`read_variable` reads its data, turning a damaged chunk into such an error too.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator, Mapping
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from autoice import schema
from autoice.atomic import AtomicNetCDF, atomic_output
from autoice.errors import SceneError
from autoice.interrupts import deferred

PathLike = str | os.PathLike[str]


class SceneKind(str, Enum):
    """The kinds of scene file."""

    RAW = "raw"  #: 40 m, physical units, polygon chart
    TRAIN = "train"  #: RTT 80 m with SIC/SOD/FLOE
    TEST = "test"  #: RTT 80 m without charts
    REFERENCE = "reference"  #: ``_prep_reference.nc``: SIC/SOD/FLOE only


def kind_from_name(name: str) -> SceneKind | None:
    """Kind suggested by a file name alone (``_prep.nc`` -> TRAIN; content decides TRAIN vs TEST)."""
    if schema.RAW_NAME.match(name):
        return SceneKind.RAW
    m = schema.RTT_NAME.match(name)
    if m:
        return SceneKind.REFERENCE if m["reference"] else SceneKind.TRAIN
    return None


_EXAMPLES = {
    SceneKind.RAW: "S1A_EW_GRDM_1SDH_20180124T194759_20180124T194859_020301_022AA4_1F75_icechart_dmi_"
    "201801241950_SouthEast_RIC.nc",
    SceneKind.TRAIN: "20180124T194759_dmi_prep.nc",
    SceneKind.TEST: "20180124T194759_dmi_prep.nc",
    SceneKind.REFERENCE: "20180124T194759_dmi_prep_reference.nc",
}


def _check_name(path: Path, kind: SceneKind) -> None:
    named = kind_from_name(path.name)
    ok = named == kind or (named == SceneKind.TRAIN and kind == SceneKind.TEST)
    if not ok:
        raise SceneError(
            path, f"file name does not follow the {kind.value} scene pattern (e.g. {_EXAMPLES[kind]})"
        )


def _open(path: Path) -> xr.Dataset:
    if not path.exists():
        raise SceneError(path, "no such file")
    if path.is_dir():
        raise SceneError(path, "is a folder, expected a netCDF file")
    try:
        return xr.open_dataset(path, engine="netcdf4", cache=False, decode_times=False)
    except Exception as exc:  # netCDF4/HDF5 raise OSError, ValueError, RuntimeError...
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        reason = reason.replace(f": {str(path)!r}", "")  # netCDF4 repeats the path the message starts with
        raise SceneError(path, f"not a readable netCDF-4 file (truncated or another format?): {reason}") from exc


def open_scene(path: PathLike, kind: SceneKind | str | None = None, *, check_values: bool = True) -> xr.Dataset:
    """Open a scene lazily and validate it completely; raise SceneError naming the fault.

    Args:
        path: the netCDF file.
        kind: expected kind; None infers it from the name (and, for ``_prep.nc``, from whether
            the charts are present).
        check_values: also read the charts (uint8, cheap) to check their class ranges.

    Returns:
        The open Dataset (use it as a context manager). Nothing but the charts and the small
        tie-point geolocation grids (which must be finite) is read; read the rest with
        :func:`read_variable`.
    """
    p = Path(path)
    explicit = kind is not None
    if kind is None:
        kind = kind_from_name(p.name)
        if kind is None:
            raise SceneError(
                p, "file name follows none of the scene patterns (raw S1 product + _icechart_, *_prep.nc, "
                "*_prep_reference.nc)"
            )
    kind = SceneKind(kind)
    _check_name(p, kind)
    ds = _open(p)
    ds.encoding["source"] = str(p)  # as given (xarray made it absolute): read_variable names the file so
    try:
        if not explicit and kind == SceneKind.TRAIN and not has_charts(ds):
            kind = SceneKind.TEST  # a _prep.nc without charts is a test scene
        validate(ds, p, kind, check_values=check_values)  # its reads go through read_variable
    except BaseException:
        ds.close()
        raise
    return ds


def intact(path: PathLike, kind: SceneKind | str) -> bool:
    """Whether an existing output still opens with every variable of ``kind`` (cheap: reads no data).

    Commands that keep existing outputs ask this first, so that a truncated or damaged file
    (an interrupted copy, a full disk) is made again instead of being kept as done.
    """
    try:
        with open_scene(path, kind, check_values=False):
            return True
    except SceneError:
        return False


def has_charts(ds: xr.Dataset) -> bool:
    """Whether an opened RTT/reference scene carries ice charts (validation then requires all three)."""
    return any(c in ds.variables for c in schema.CHARTS)


# ----------------------------------------------------------------------------- validation
def _require(ds: xr.Dataset, path: Path, names: Iterable[str], why: str) -> None:
    missing = [n for n in names if n not in ds.variables]
    if missing:
        more = f" (+{len(missing) - 3} more)" if len(missing) > 3 else ""
        raise SceneError(path, f"missing variable{'s' if len(missing) > 1 else ''} "
                         f"{', '.join(missing[:3])}{more} ({why})")  # fmt: skip


def _check_dims(ds: xr.Dataset, path: Path, names: Iterable[str], dims: tuple[str, ...]) -> None:
    for n in names:
        if ds[n].dims != dims:
            raise SceneError(path, f"variable {n} has dims {ds[n].dims}, expected {dims}")


def _check_dtype(ds: xr.Dataset, path: Path, names: Iterable[str], kinds: str, expected: str) -> None:
    for n in names:
        if ds[n].dtype.kind not in kinds:
            raise SceneError(path, f"variable {n} has dtype {ds[n].dtype}, expected {expected}")


def _check_grids(path: Path, full: tuple[int, ...], coarse: tuple[int, ...], cell: int, *, min_size: int) -> None:
    """The full grid is big enough and the 2 km grid covers it at one cell per ``cell`` x ``cell`` pixels."""
    (lines, samples), (clines, csamples) = full, coarse
    if lines < min_size or samples < min_size:
        raise SceneError(path, f"full grid is {lines} x {samples}, too small")
    if not (schema.coarse_shape_ok(lines, clines, cell) and schema.coarse_shape_ok(samples, csamples, cell)):
        raise SceneError(path, f"2 km grid {clines} x {csamples} does not match the {lines} x {samples} full grid "
                         f"(one cell per {cell} x {cell} pixels)")  # fmt: skip


def _check_chart_values(ds: xr.Dataset, path: Path) -> None:
    for chart in schema.CHARTS:
        if chart not in ds.variables:
            continue
        counts = np.bincount(np.asarray(read_variable(ds, chart, path=path), dtype=np.uint8).ravel(), minlength=256)
        bad = np.flatnonzero(counts[schema.N_CLASSES[chart] : schema.CHART_FILL])
        if bad.size:
            first = int(bad[0]) + schema.N_CLASSES[chart]
            raise SceneError(
                path,
                f"chart {chart} has out-of-range class {first} in {int(counts[first])} pixels "
                f"(expected 0..{schema.N_CLASSES[chart] - 1} or {schema.CHART_FILL})",
            )


def _check_finite(ds: xr.Dataset, path: Path, names: Iterable[str], why: str) -> None:
    """Every value of these (small) variables is finite; NaN/Inf tie points would make NaN inputs downstream."""
    for n in names:
        x = read_variable(ds, n, path=path)
        bad = int(x.size - np.count_nonzero(np.isfinite(x)))
        if bad:
            raise SceneError(path, f"variable {n} has {bad} non-finite value{'s' if bad > 1 else ''} (NaN or Inf); "
                             f"{why}")  # fmt: skip


def validate(ds: xr.Dataset, path: PathLike, kind: SceneKind, *, check_values: bool = True) -> None:
    """Check ``ds`` against the format for ``kind``; raise SceneError on the first fault."""
    p = Path(path)
    if kind == SceneKind.RAW:
        _validate_raw(ds, p)
        return
    charts_needed = kind in (SceneKind.TRAIN, SceneKind.REFERENCE)
    if charts_needed:
        _require(ds, p, schema.CHARTS, f"a {kind.value} file holds the charts")
        _check_dims(ds, p, schema.CHARTS, schema.FULL_DIMS)
        _check_dtype(ds, p, schema.CHARTS, "u", "uint8")
        for chart in schema.CHARTS:
            if ds[chart].dtype != np.uint8:
                raise SceneError(p, f"variable {chart} has dtype {ds[chart].dtype}, expected uint8")
    if kind == SceneKind.REFERENCE:
        if check_values:
            _check_chart_values(ds, p)
        return
    _require(ds, p, schema.INPUT_VARIABLES + schema.TIEPOINT_VARIABLES, "ready-to-train inputs")
    _check_dims(ds, p, schema.FULL_GRID_INPUTS, schema.FULL_DIMS)
    _check_dims(ds, p, schema.COARSE_VARIABLES, schema.COARSE_DIMS)
    _check_dtype(ds, p, schema.INPUT_VARIABLES, "f", "float32")
    _check_dtype(ds, p, schema.TIEPOINT_VARIABLES, "f", "float64")
    for n in schema.TIEPOINT_VARIABLES:
        if ds[n].shape != (schema.TIEPOINT_GRID, schema.TIEPOINT_GRID):
            raise SceneError(p, f"variable {n} has shape {ds[n].shape}, expected (21, 21)")
    _check_finite(ds, p, schema.TIEPOINT_VARIABLES, "tie-point geolocation must be finite")
    full = tuple(ds.sizes[d] for d in schema.FULL_DIMS)
    _check_grids(p, full, tuple(ds.sizes[d] for d in schema.COARSE_DIMS), schema.CELL_RTT, min_size=2)
    if check_values and charts_needed:
        _check_chart_values(ds, p)


def _validate_raw(ds: xr.Dataset, p: Path) -> None:
    _require(ds, p, (*schema.SAR_VARIABLES, schema.DISTANCE_VARIABLE, schema.POLYGON_ICECHART), "raw full grid")
    _require(ds, p, schema.COARSE_VARIABLES, "raw 2 km AMSR2/ERA5 variables")
    _require(ds, p, (schema.POLYGON_CODES, *schema.RAW_REQUIRED_TIEPOINTS), "raw chart table and tie points")
    full = ds[schema.SAR_VARIABLES[0]]
    if full.ndim != 2:
        raise SceneError(p, f"variable {full.name} has {full.ndim} dims, expected 2 (lines, samples)")
    _check_dims(ds, p, (schema.SAR_VARIABLES[1], schema.DISTANCE_VARIABLE, schema.POLYGON_ICECHART), full.dims)
    _check_dtype(ds, p, (*schema.SAR_VARIABLES, schema.DISTANCE_VARIABLE), "f", "float (dB / zone id)")
    _check_dtype(ds, p, (schema.POLYGON_ICECHART,), "fiu", "a numeric polygon id")
    coarse = ds[schema.COARSE_VARIABLES[0]]
    if coarse.ndim != 2:
        raise SceneError(p, f"variable {coarse.name} has {coarse.ndim} dims, expected 2 (2 km lines, samples)")
    _check_dims(ds, p, schema.COARSE_VARIABLES, coarse.dims)
    _check_dtype(ds, p, schema.COARSE_VARIABLES, "f", "float")
    _check_grids(p, full.shape, coarse.shape, schema.CELL_RAW, min_size=4)
    n_tie = schema.TIEPOINT_GRID**2
    for n in schema.RAW_REQUIRED_TIEPOINTS:
        if ds[n].ndim != 1 or ds[n].size != n_tie:
            raise SceneError(p, f"tie-point variable {n} has shape {ds[n].shape}, expected ({n_tie},)")
    _check_dtype(ds, p, schema.RAW_GEOLOCATION, "fiu", "numeric degrees")
    _check_finite(ds, p, schema.RAW_GEOLOCATION, "tie-point geolocation must be finite")
    codes = ds[schema.POLYGON_CODES]
    if codes.ndim != 1 or codes.dtype.kind not in "OUS":
        raise SceneError(p, f"variable {schema.POLYGON_CODES} must be a 1-D array of strings, got {codes.dtype}")


# ----------------------------------------------------------------------------- reading
#: What netCDF-4/HDF5 raise when stored bytes cannot be decoded although the file opened (a damaged
#: compressed chunk gives ``RuntimeError: NetCDF: HDF error``; a short read an OSError).
_READ_ERRORS: tuple[type[Exception], ...] = (OSError, RuntimeError)


def damaged(path: PathLike, name: str, exc: BaseException) -> SceneError:
    """The one error for a variable of a scene whose data cannot be read (for readers that bypass xarray)."""
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return SceneError(path, f"cannot read variable {name}: data are damaged ({reason})")


def read_variable(ds: xr.Dataset, name: str, key: Any = None, *, path: PathLike | None = None) -> np.ndarray:
    """The values of variable ``name`` of an open scene (all of them, or the positional block ``key``).

    Every read of scene data goes through here: the file opened and validated, but a damaged chunk
    only fails when its data are touched, as a bare ``RuntimeError``; this names the file and the
    variable instead (:func:`damaged`). ``path`` defaults to the file the Dataset was opened from.
    """
    var = ds.variables[name]
    try:
        return np.asarray((var if key is None else var[key]).values)
    except _READ_ERRORS as exc:
        raise damaged(path if path is not None else ds.encoding.get("source", "<dataset>"), name, exc) from exc


def chartless(ds: xr.Dataset, *, path: PathLike | None = None, strip_pixels: int = 8_000_000) -> np.ndarray | None:
    """Pixels of a prepared scene where no chart belongs: no SAR data (the inputs' fill value) or land.

    A model predicts every pixel of the array, and the upload package keeps them all (spec section 7);
    the reference masks these pixels, so maps, GIS products and mosaics must not show ice there (nor let
    one scene's swath edge cover another scene's data). Both come from the distance map alone: land is
    its zone 0 (:data:`schema.LAND_ZONE_BELOW`), and no data is aligned across the full-grid inputs
    (spec section 5), so its fill value marks the swath's edges; it compresses far better than SAR, so
    a full scene reads in a fraction of the time. Without it, HH's fill value gives the no data alone.
    Read in strips of ``strip_pixels``; None when the scene holds neither input.
    """
    dist = schema.DISTANCE_VARIABLE
    name = dist if dist in ds.variables else schema.SAR_VARIABLES[0]
    if name not in ds.variables:
        return None
    lines, samples = ds.variables[name].shape
    mean, std = schema.global_meanstd()[dist]
    land_below = np.float32((schema.LAND_ZONE_BELOW - mean) / std)
    out = np.empty((lines, samples), dtype=bool)
    step = max(1, strip_pixels // max(samples, 1))
    for r in range(0, lines, step):
        values = read_variable(ds, name, slice(r, r + step), path=path)
        outside = values == np.float32(schema.INPUT_FILL)
        if name == dist:
            outside |= values < land_below
        out[r : r + step] = outside
    return out


# ----------------------------------------------------------------------------- finding
def find_scenes(paths: PathLike | Iterable[PathLike], kinds: Iterable[SceneKind | str] | None = None) -> list[Path]:
    """Files or folders -> sorted scene files of the wanted kinds (by name; TRAIN covers TEST)."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    wanted = {SceneKind(k) for k in kinds} if kinds is not None else set(SceneKind)
    if SceneKind.TEST in wanted:
        wanted.add(SceneKind.TRAIN)
    out: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            out.extend(f for f in sorted(p.glob("*.nc")) if kind_from_name(f.name) in wanted)
        elif p.exists():
            named = kind_from_name(p.name)
            if named is not None and named not in wanted:
                hint = "; make its 80 m scene with `autoice prepare` first" if named == SceneKind.RAW else ""
                expected = ", ".join(sorted(k.value for k in wanted))
                raise SceneError(p, f"is a {named.value} scene, expected {expected}{hint}")
            out.append(p)
        else:
            raise SceneError(p, "no such file or folder")
    return sorted(dict.fromkeys(out))


@contextlib.contextmanager
def chunk_cache(megabytes: int = 4) -> Iterator[None]:
    """Open netCDF files inside the block with a small per-variable HDF5 chunk cache.

    netCDF's default (64 MiB per open variable) costs hundreds of MB when a scene's many
    variables are streamed by row blocks, for no speed gain; restored on exit.
    """
    import netCDF4

    before = netCDF4.get_chunk_cache()
    netCDF4.set_chunk_cache(megabytes * 2**20, before[1], before[2])
    try:
        yield
    finally:
        netCDF4.set_chunk_cache(*before)


# ----------------------------------------------------------------------------- writing
def _encoding(ds: xr.Dataset, complevel: int) -> dict[str, dict[str, Any]]:
    enc: dict[str, dict[str, Any]] = {}
    for name, var in ds.variables.items():
        if var.dtype.kind in "OUS":
            enc[name] = {}
        else:
            enc[name] = {"zlib": True, "complevel": complevel, "_FillValue": None}
    return enc


def write_netcdf(ds: xr.Dataset, path: PathLike, *, complevel: int = 4) -> None:
    """Write ``ds`` as netCDF-4 with zlib on every numeric variable, atomically."""
    with atomic_output(path) as tmp, deferred():  # Ctrl-C inside xarray's write can deadlock on its lock
        ds.to_netcdf(tmp, engine="netcdf4", format="NETCDF4", encoding=_encoding(ds, complevel))


class StreamWriter(AtomicNetCDF):
    """Write a netCDF-4 file variable by variable and row block by row block (bounded memory).

    Used by :mod:`autoice.prepare`; the file appears under its final name only when the
    ``with`` block ends without error (atomic).
    """

    def __init__(self, path: PathLike, dims: Mapping[str, int], *, complevel: int = 4) -> None:
        super().__init__(path)
        with deferred():
            for name, size in dims.items():
                self._nc.createDimension(name, size)
        self._complevel = complevel

    def create(self, name: str, dtype: np.dtype | str, dims: tuple[str, ...], attrs: Mapping[str, Any]) -> None:
        """Declare a variable (zlib-compressed, chunked by row blocks for 2-D full-grid variables)."""
        sizes = [len(self._nc.dimensions[d]) for d in dims]
        chunks = [min(s, 256) for s in sizes[:-1]] + [min(sizes[-1], 1024)] if sizes else None
        with deferred():
            var = self._nc.createVariable(name, dtype, dims, zlib=True, complevel=self._complevel, chunksizes=chunks)
            var.setncatts(dict(attrs))

    def write(self, name: str, data: np.ndarray, rows: slice | None = None) -> None:
        """Write ``data`` into variable ``name`` (all of it, or the given row slice)."""
        var = self._nc.variables[name]
        with deferred():
            if rows is None:
                var[...] = data
            else:
                var[rows, ...] = data

    def set_attrs(self, name: str | None, attrs: Mapping[str, Any]) -> None:
        """Set attributes of a variable, or global attributes when ``name`` is None."""
        target = self._nc if name is None else self._nc.variables[name]
        with deferred():
            target.setncatts(dict(attrs))


def split_reference(rtt_path: PathLike) -> tuple[Path, Path]:
    """Turn an RTT file with charts into the released-test pair in the same folder.

    ``<key>_prep.nc`` is rewritten without SIC/SOD/FLOE and ``<key>_prep_reference.nc`` holds
    only the charts and the global attributes, as the organisers released the test set.
    """
    p = Path(rtt_path)
    name = schema.parse_rtt_name(p.name)
    if name is None:
        raise SceneError(p, "file name does not follow the *_prep.nc pattern")
    ref_path = p.with_name(name.reference_name)
    with open_scene(p, SceneKind.TRAIN) as ds:
        ds = ds.load()
    attrs = dict(ds.attrs)
    ref = xr.Dataset({c: ds[c] for c in schema.CHARTS}, attrs=attrs)
    test = ds.drop_vars(list(schema.CHARTS))
    test.attrs = attrs
    write_netcdf(ref, ref_path)
    write_netcdf(test, p)
    return p, ref_path
