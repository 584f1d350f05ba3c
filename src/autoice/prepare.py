"""Raw 40 m scenes -> ready-to-train 80 m scenes, as the organisers describe it (spec section 5).

Per file: decode the polygon chart (:mod:`autoice.charts`) on the 40 m grid, then in row blocks
2 x 2 block mean for SAR, incidence angle (interpolated from the 21 x 21 tie points) and the
distance map, 2 x 2 max for the charts (255 wins at mask edges), odd last line/sample dropped,
no-data masks aligned, inputs standard-scaled with the organisers' global statistics, NaN -> 0
in inputs and -> 255 in charts. The 2 km AMSR2/ERA5 grid is the same in raw and RTT files and is
only scaled. Peak memory is a few row blocks, not the scene.

Choices where the spec is silent (documented in the README):
- an 80 m pixel is no-data when any of its four 40 m pixels has no HH, HV, incidence or distance
  value (mean propagates NaN); there every input is 0 and every chart 255;
- ``scene_id`` is the scene key (``20180124T194759_dmi``), ``original_id`` the raw file name;
- variable attributes ``min``/``max`` hold the raw physical extremes over valid pixels.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from autoice import charts, schema
from autoice.atomic import ensure_folder
from autoice.batch import run_each
from autoice.errors import AutoiceError, SceneError
from autoice.geolocation import interp_weights
from autoice.scenes import SceneKind, StreamWriter, chunk_cache, find_scenes, intact, open_scene, read_variable

PathLike = str | os.PathLike[str]
BLOCK_LINES = 1024  #: raw lines per block (even)


@dataclass
class PrepareResult:
    """What happened to one raw file."""

    source: Path
    output: Path
    skipped: bool = False  #: the output existed and was kept
    replaced: bool = False  #: the output existed but was damaged, and was made again
    undecodable: dict[str, int] = field(default_factory=dict)
    changed: int | None = None


def block_mean(x: np.ndarray) -> np.ndarray:
    """Mean over non-overlapping 2 x 2 blocks (odd edge dropped); NaN anywhere in a block -> NaN."""
    h, w = x.shape[0] // 2, x.shape[1] // 2
    return x[: 2 * h, : 2 * w].reshape(h, 2, w, 2).mean(axis=(1, 3), dtype=np.float32)


def block_max(x: np.ndarray) -> np.ndarray:
    """Max over non-overlapping 2 x 2 blocks (odd edge dropped): for charts 255 wins at mask edges."""
    h, w = x.shape[0] // 2, x.shape[1] // 2
    return x[: 2 * h, : 2 * w].reshape(h, 2, w, 2).max(axis=(1, 3))


@dataclass(frozen=True)
class TiePoints:
    """The 21 x 21 tie-point grid of a raw scene, sorted line-major."""

    lines: np.ndarray  #: (21,) raw line coordinates
    samples: np.ndarray  #: (21,) raw sample coordinates
    latitude: np.ndarray  #: (21, 21)
    longitude: np.ndarray  #: (21, 21)
    incidence: np.ndarray  #: (21, 21) degrees

    def incidence_block(self, rows: np.ndarray, sample_weights: np.ndarray) -> np.ndarray:
        """Bilinear incidence angle at raw ``rows`` x all samples (weights from :func:`interp_weights`)."""
        return (interp_weights(rows.astype(np.float64), self.lines) @ self.incidence @ sample_weights.T).astype(
            np.float32
        )


def read_tiepoints(ds: object, path: Path) -> TiePoints:
    """Tie points of a raw scene as a regular 21 x 21 grid, or SceneError if they do not form one."""
    line, sample, lat, lon, inc = (np.asarray(read_variable(ds, n, path=path), dtype=np.float64)
                                   for n in schema.RAW_REQUIRED_TIEPOINTS)  # fmt: skip
    order = np.lexsort((sample, line))
    n = schema.TIEPOINT_GRID
    line, sample, lat, lon, inc = (a[order].reshape(n, n) for a in (line, sample, lat, lon, inc))
    lines, samples = line[:, 0], sample[0, :]
    regular = np.all(line == lines[:, None]) and np.all(sample == samples[None, :])
    if not regular or np.any(np.diff(lines) <= 0) or np.any(np.diff(samples) <= 0):
        raise SceneError(path, "tie points (sar_grid_line, sar_grid_sample) do not form a regular 21 x 21 grid")
    if not np.all(np.isfinite(inc)):
        raise SceneError(path, "tie-point incidence angles contain NaN")
    return TiePoints(lines, samples, lat, lon, inc)


def _scale(name: str, x: np.ndarray) -> np.ndarray:
    mean, std = schema.global_meanstd()[name]
    return ((x - mean) / std).astype(np.float32)


def _codes(ds: object, path: Path) -> list[str]:
    values = read_variable(ds, schema.POLYGON_CODES, path=path).ravel()
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


def prepare_file(
    raw_path: PathLike,
    out_dir: PathLike,
    *,
    mode: str = "official",
    overwrite: bool = False,
    sod_threshold: float | None = None,
    floe_threshold: float | None = None,
    block_lines: int = BLOCK_LINES,
) -> PrepareResult:
    """Convert one raw scene to its RTT file in ``out_dir`` (atomically).

    An existing output is kept unless ``overwrite``, but only when it still opens with every
    variable: a truncated or damaged one (an interrupted copy, a full disk) is made again.
    """
    src = Path(raw_path)
    name = schema.parse_raw_name(src.name)
    if name is None:
        raise SceneError(src, "file name does not follow the raw scene pattern (<S1 product id>_icechart_<service>_"
                         "<chart id>.nc)")  # fmt: skip
    out = Path(out_dir) / schema.raw_to_rtt_name(src.name)
    replaced = False
    if out.exists() and not overwrite:
        if intact(out, SceneKind.TRAIN):
            return PrepareResult(src, out, skipped=True)
        replaced = True
    block_lines = max(2, block_lines - block_lines % 2)
    with chunk_cache(), open_scene(src, SceneKind.RAW) as ds:
        try:
            table = charts.decode_polygon_codes(_codes(ds, src), mode=mode, sod_threshold=sod_threshold,
                                                floe_threshold=floe_threshold)  # fmt: skip
        except AutoiceError as exc:
            raise SceneError(src, str(exc)) from exc
        tie = read_tiepoints(ds, src)
        try:
            _convert(ds, src, out, name, tie, table, block_lines)
        except AutoiceError:
            raise
        except (OSError, RuntimeError, ValueError) as exc:  # reads and writes have their own errors by now
            why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise SceneError(src, f"conversion to {out.name} failed ({why})") from exc
    return PrepareResult(src, out, replaced=replaced, undecodable=dict(table.undecodable), changed=table.changed)


def _convert(
    ds: object, src: Path, out: Path, name: schema.SceneName, tie: TiePoints, table: charts.ChartTable, block: int
) -> None:
    lines, samples = ds[schema.SAR_VARIABLES[0]].shape
    clines, csamples = ds[schema.COARSE_VARIABLES[0]].shape
    h, w = lines // 2, samples // 2
    dims = {
        schema.FULL_DIMS[0]: h,
        schema.FULL_DIMS[1]: w,
        schema.COARSE_DIMS[0]: clines,
        schema.COARSE_DIMS[1]: csamples,
        schema.TIEPOINT_DIMS[0]: schema.TIEPOINT_GRID,
        schema.TIEPOINT_DIMS[1]: schema.TIEPOINT_GRID,
    }
    sample_weights = interp_weights(np.arange(2 * w, dtype=np.float64), tie.samples)
    full_inputs = schema.FULL_GRID_INPUTS
    extremes = {n: [np.inf, -np.inf] for n in full_inputs}
    with StreamWriter(out, dims) as wr:
        for n in full_inputs:
            wr.create(n, "f4", schema.FULL_DIMS, {})
        for n in schema.COARSE_VARIABLES:
            wr.create(n, "f4", schema.COARSE_DIMS, {})
        for n in schema.TIEPOINT_VARIABLES:
            wr.create(n, "f8", schema.TIEPOINT_DIMS, {})
        for c in schema.CHARTS:
            wr.create(c, "u1", schema.FULL_DIMS,
                      {"polygon": schema.CHART_DESCRIPTIONS[c], "chart_fill_value": schema.CHART_FILL})  # fmt: skip
        # 2 km variables: same grid, scaled only.
        for n in schema.COARSE_VARIABLES:
            x = np.asarray(read_variable(ds, n, path=src), dtype=np.float64)
            finite = x[np.isfinite(x)]
            attrs = {"min": float(finite.min()), "max": float(finite.max())} if finite.size else {}
            scaled = _scale(n, x)
            wr.write(n, np.where(np.isfinite(scaled), scaled, np.float32(schema.INPUT_FILL)))  # NaN/Inf: no data
            wr.set_attrs(n, attrs)
        wr.write(schema.TIEPOINT_LATITUDE, tie.latitude)
        wr.write(schema.TIEPOINT_LONGITUDE, tie.longitude)
        # Full grid, streamed by row blocks.
        for r0 in range(0, 2 * h, block):
            r1 = min(r0 + block, 2 * h)
            sel = (slice(r0, r1), slice(0, 2 * w))
            raw = {n: np.asarray(read_variable(ds, n, sel, path=src), dtype=np.float32)
                   for n in (*schema.SAR_VARIABLES, schema.DISTANCE_VARIABLE)}  # fmt: skip
            raw[schema.INCIDENCE_VARIABLE] = tie.incidence_block(np.arange(r0, r1), sample_weights)
            pid = read_variable(ds, schema.POLYGON_ICECHART, sel, path=src)
            decoded = charts.rasterize(pid, table)
            valid = np.ones(((r1 - r0) // 2, w), dtype=bool)
            down = {}
            for n in full_inputs:
                x = raw[n]
                fin = x[np.isfinite(x)]
                if fin.size:
                    extremes[n][0] = min(extremes[n][0], float(fin.min()))
                    extremes[n][1] = max(extremes[n][1], float(fin.max()))
                down[n] = block_mean(x)
                valid &= np.isfinite(down[n])
            rows = slice(r0 // 2, r1 // 2)
            for n in full_inputs:
                wr.write(n, np.where(valid, _scale(n, down[n]), np.float32(schema.INPUT_FILL)), rows)
            for c in schema.CHARTS:
                wr.write(c, np.where(valid, block_max(decoded[c]), np.uint8(schema.CHART_FILL)), rows)
        for n, (lo, hi) in extremes.items():
            if np.isfinite(lo):
                wr.set_attrs(n, {"min": lo, "max": hi})
        flip = ds.attrs.get("flip", 0)
        wr.set_attrs(None, {
            "scene_id": name.key,
            "original_id": src.name,
            "ice_service": name.service,
            "flip": int(flip) if np.isscalar(flip) else 0,
            "pixel_spacing": schema.RTT_PIXEL_SPACING,
        })  # fmt: skip


def _prepare_one(raw: Path, out_dir: PathLike, kwargs: dict) -> PrepareResult:
    return prepare_file(raw, out_dir, **kwargs)


def prepare_files(
    paths: PathLike | Sequence[PathLike],
    out_dir: PathLike,
    *,
    workers: int = 1,
    mode: str = "official",
    overwrite: bool = False,
    progress: bool = True,
    scheduler: str | None = None,
    **kwargs: float | int | None,
) -> list[PrepareResult]:
    """Prepare raw files (or every raw file in the given folders), several in parallel.

    With ``scheduler`` (a Dask scheduler's address) the files are converted on that cluster's
    workers, which must see ``paths`` and ``out_dir`` at the same paths (shared storage).

    A bad file does not stop the others: every good one is written, then
    :class:`~autoice.errors.ScenesFailed` lists each bad file's one-line fault (its ``partial``
    holds the good files' results).
    """
    files = find_scenes(paths, [SceneKind.RAW])
    if not files:
        raise SceneError(paths if isinstance(paths, (str, os.PathLike)) else ", ".join(map(str, paths)),
                         "no raw scene files (*_icechart_*.nc) found")  # fmt: skip
    ensure_folder(out_dir)
    opts = {"mode": mode, "overwrite": overwrite, **kwargs}
    jobs = [(f, out_dir, opts) for f in files]
    batch = run_each(_prepare_one, jobs, [str(f) for f in files], workers=workers, desc="prepare", progress=progress,
                     scheduler=scheduler, outputs=[out_dir])  # fmt: skip
    results = sorted(batch.done(), key=lambda r: r.source)
    batch.check(partial=results)
    return results


def summarize(results: Iterable[PrepareResult]) -> list[str]:
    """Human-readable warning lines for undecodable polygons and corrected-mode changes."""
    lines = []
    for r in results:
        bad = {c: n for c, n in r.undecodable.items() if n}
        if bad:
            what = ", ".join(f"{n} {c}" for c, n in bad.items())
            lines.append(f"warning: {r.source.name}: polygons with codes that cannot be decoded set to 255: {what}")
        if r.changed:
            lines.append(f"note: {r.source.name}: corrected mode changed {r.changed} polygons versus official")
    return lines
