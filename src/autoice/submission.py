"""The challenge's ``upload_package.nc``: write, read, validate and score it (spec section 7).

One netCDF-4 file; for every test scene and chart one uint8 variable ``{scene}_{chart}``
with its own dims ``{scene}_{chart}_dim0`` / ``_dim1``, the scene's 80 m shape, zlib level 1.
Writing is atomic. Reading back is eager (:func:`read_submission`, for tools and tests);
scoring (:func:`score_submission`) streams row blocks of the submission and the reference
files into :mod:`autoice.metrics` accumulators, so memory stays bounded whatever the
number of scenes.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from autoice import schema
from autoice.atomic import AtomicNetCDF
from autoice.errors import SceneError, SubmissionError
from autoice.interrupts import deferred
from autoice.metrics import ScoreAccumulator, Scores, pool

PathLike = str | os.PathLike[str]

COMPLEVEL = 1  #: zlib level of the official upload package
_KEY = re.compile(r"^\d{8}T\d{6}_(?:cis|dmi)$")
_VARIABLE = re.compile(r"^(?P<key>\d{8}T\d{6}_(?:cis|dmi))_(?P<chart>" + "|".join(schema.CHARTS) + r")$")
_BLOCK_PIXELS = 4_000_000  # pixels per streamed row block
UNKNOWN_REGION = "unknown"  #: region group of scenes whose chart region cannot be told


def dims_of(variable: str) -> tuple[str, str]:
    """The two dims that a submission variable owns."""
    return f"{variable}_dim0", f"{variable}_dim1"


def _reason(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return text or type(exc).__name__


def _open_nc(path: PathLike) -> Any:
    """Open a netCDF file read-only with raw values (no masking/scaling); SubmissionError if unreadable."""
    import netCDF4

    p = Path(path)
    if not p.exists():
        raise SubmissionError(p, "no such file")
    if p.is_dir():
        raise SubmissionError(p, "is a folder, expected a netCDF file")
    try:
        nc = netCDF4.Dataset(p, "r")
    except Exception as exc:  # OSError, RuntimeError... from the C library
        raise SubmissionError(
            p, f"not a readable netCDF-4 file (truncated or another format?): {_reason(exc)}"
        ) from exc
    nc.set_auto_maskandscale(False)
    return nc


# ----------------------------------------------------------------------------- writing
class SubmissionWriter(AtomicNetCDF):
    """Write ``upload_package.nc`` one scene chart at a time (no need to hold all predictions).

    Use as a context manager; the file appears under its final name only when the block
    ends without error.
    """

    def __init__(self, path: PathLike) -> None:
        super().__init__(path)
        self.variables: list[str] = []

    def add(self, key: str, chart: str, prediction: np.ndarray) -> None:
        """Add one scene chart; values must be integer classes of the chart (0..N-1)."""
        if not _KEY.match(key):
            raise SubmissionError(self.path, f"scene key {key!r} is not <YYYYMMDDTHHMMSS>_<cis|dmi>")
        if chart not in schema.CHARTS:
            raise SubmissionError(self.path, f"unknown chart {chart!r} for scene {key} (expected {schema.CHARTS})")
        name = schema.submission_variable(key, chart)
        if name in self.variables:
            raise SubmissionError(self.path, f"{name}: given twice")
        a = np.asarray(prediction)
        if a.ndim != 2:
            raise SubmissionError(self.path, f"{name}: prediction has {a.ndim} dims, expected 2 (lines, samples)")
        if a.dtype.kind not in "iub":
            raise SubmissionError(self.path, f"{name}: prediction dtype {a.dtype} is not integer classes (round it)")
        n = schema.N_CLASSES[chart]
        if a.size and (int(a.min()) < 0 or int(a.max()) >= n):
            raise SubmissionError(
                self.path, f"{name}: values [{int(a.min())}, {int(a.max())}] outside the {chart} classes 0..{n - 1}"
            )
        d0, d1 = dims_of(name)
        chunks = (max(1, min(a.shape[0], 256)), max(1, a.shape[1]))
        with deferred():
            self._nc.createDimension(d0, a.shape[0])
            self._nc.createDimension(d1, a.shape[1])
            var = self._nc.createVariable(name, "u1", (d0, d1), zlib=True, complevel=COMPLEVEL, chunksizes=chunks)
            var[...] = a.astype(np.uint8, copy=False)
        self.variables.append(name)

    def set_provenance(self, attrs: Mapping[str, str]) -> None:
        """Global attributes saying what made the file (model, version, run, software, time, scenes).

        Attributes, not variables: the challenge's checks (and :func:`validate_submission`) look only at
        variables, so the file stays a valid upload package.
        """
        with deferred():
            for key, value in attrs.items():
                self._nc.setncattr(key, str(value))


#: Global attributes :func:`autoice.predict.predict` writes into ``upload_package.nc`` (ACDD names where
#: one exists), in the order the report shows them.
PROVENANCE_ATTRIBUTES = ("autoice_model", "autoice_model_version", "autoice_run_id", "source", "date_created",
                         "autoice_scenes")  # fmt: skip


def read_provenance(path: PathLike) -> dict[str, str]:
    """The provenance attributes of a submission (those present), or {} for a file written without them."""
    with _open_nc(path) as nc:
        names = set(nc.ncattrs())
        return {k: str(nc.getncattr(k)) for k in PROVENANCE_ATTRIBUTES if k in names}


def write_submission(predictions: Mapping[str, Mapping[str, np.ndarray]], path: PathLike) -> Path:
    """Write the official upload package atomically.

    Args:
        predictions: scene key (e.g. ``20180124T194759_dmi``) -> chart -> 2-D integer array of
            classes at the scene's 80 m shape. Values are checked and stored as uint8.
        path: output file (conventionally ``upload_package.nc``).

    Returns:
        The written path. On any error nothing is left at ``path``.
    """
    with SubmissionWriter(path) as writer:
        for key in sorted(predictions):
            for chart in schema.CHARTS:
                if chart in predictions[key]:
                    writer.add(key, chart, predictions[key][chart])
            unknown = set(predictions[key]) - set(schema.CHARTS)
            if unknown:
                raise SubmissionError(path, f"unknown chart(s) {sorted(unknown)} for scene {key}")
    return Path(path)


# ----------------------------------------------------------------------------- reading
def read_submission(path: PathLike, keys: Iterable[str] | None = None) -> dict[str, dict[str, np.ndarray]]:
    """Read an upload package eagerly into ``{scene key: {chart: array}}``.

    Only variables named ``{key}_{chart}`` are read (others are ignored; see
    :func:`validate_submission`). ``keys`` restricts the scenes. The arrays keep the file's
    dtype. For scoring a full submission use :func:`score_submission`, which streams.
    """
    wanted = set(keys) if keys is not None else None
    out: dict[str, dict[str, np.ndarray]] = {}
    with _open_nc(path) as nc:
        for name, var in nc.variables.items():
            m = _VARIABLE.match(name)
            if not m or (wanted is not None and m["key"] not in wanted):
                continue
            try:
                out.setdefault(m["key"], {})[m["chart"]] = np.asarray(var[...])
            except Exception as exc:
                raise SubmissionError(path, f"{name}: cannot be read: {_reason(exc)}") from exc
    return {k: out[k] for k in sorted(out)}


# ----------------------------------------------------------------------------- validation
def _row_blocks(n_rows: int, width: int, *variables: Any) -> Iterator[slice]:
    """Row slices of about 4 M pixels, aligned to the variables' chunk heights (each chunk decoded once)."""
    rows = max(1, _BLOCK_PIXELS // max(width, 1))
    step = 1
    for v in variables:
        ch = v.chunking()
        if ch != "contiguous" and len(ch) == 2:
            step = max(step, int(ch[0]))
    rows = max(step, rows // step * step)
    for start in range(0, n_rows, rows):
        yield slice(start, min(n_rows, start + rows))


def _value_problem(name: str, chart: str, var: Any) -> str | None:
    """Count pixels outside the chart's classes, reading row blocks; None if all are valid."""
    n = schema.N_CLASSES[chart]
    lines, samples = var.shape
    bad = 0
    bad_values: set[float] = set()
    for rows in _row_blocks(lines, samples, var):
        block = np.asarray(var[rows, :])
        if block.dtype == np.uint8:
            counts = np.bincount(block.ravel(), minlength=256)
            bad += int(counts[n:].sum())
            bad_values.update(int(v) + n for v in np.flatnonzero(counts[n:])[:5])
        else:
            ok = np.isin(block, np.arange(n))
            bad += int(ok.size - np.count_nonzero(ok))
            bad_values.update(np.unique(block[~ok])[:5].tolist())
    if not bad:
        return None
    shown = ", ".join(str(v) for v in sorted(bad_values, key=str)[:5])
    return f"{name}: {bad} pixels outside the {chart} classes 0..{n - 1} (values: {shown})"


def validate_submission(
    path: PathLike, scene_shapes: Mapping[str, tuple[int, int]], *, check_values: bool = True,
    scheduler: str | None = None, progress: bool = False,
) -> list[str]:
    """Every problem of an upload package, one line each naming the variable (empty = valid).

    Checks that every scene x chart is present, names, own dims, shape = the scene's
    ``(sar_lines, sar_samples)``, dtype uint8, class ranges (SIC 0-10, SOD 0-5, FLOE 0-6;
    skipped with ``check_values=False``) and that no other variable is present. An
    unreadable file gives one line naming the file. The values, which is where the time goes, are
    read one task per scene (on the Dask cluster at ``scheduler`` when given).
    """
    try:
        nc = _open_nc(path)
    except SubmissionError as exc:
        return [str(exc)]
    with nc:
        numeric = {key: tuple(c for c in schema.CHARTS
                              if _numeric_2d(nc.variables.get(schema.submission_variable(key, c))))
                   for key in sorted(scene_shapes)}  # fmt: skip
    values: dict[str, str] = {}
    if check_values:
        from autoice.batch import run_each

        jobs = [(str(path), key, charts) for key, charts in numeric.items() if charts]
        batch = run_each(_value_problems, jobs, [str(path)] * len(jobs), desc="validating", progress=progress,
                         scheduler=scheduler)  # fmt: skip
        for found in batch.done():
            values.update(found)
        for exc in batch.failures.values():  # the file became unreadable since it was opened above
            return [str(exc)]
    try:
        nc = _open_nc(path)
    except SubmissionError as exc:
        return [str(exc)]
    problems: list[str] = []
    with nc:
        variables = dict(nc.variables)
        for key in sorted(scene_shapes):
            for chart in schema.CHARTS:
                name = schema.submission_variable(key, chart)
                var = variables.get(name)
                if var is None:
                    problems.append(f"{name}: missing (scene {key}, chart {chart})")
                    continue
                problems.extend(_structure_problems(name, var, tuple(scene_shapes[key])))
                if name in values:
                    problems.append(values[name])
        for name in sorted(set(variables) - _expected(scene_shapes)):
            m = _VARIABLE.match(name)
            if m:
                problems.append(f"{name}: scene {m['key']} is not one of the test scenes")
            else:
                problems.append(f"{name}: unexpected variable (expected <scene>_{{{','.join(schema.CHARTS)}}})")
        if nc.groups:
            problems.append(f"{path}: unexpected groups {sorted(nc.groups)} (variables must be at the root)")
    return problems


def _numeric_2d(var: Any) -> bool:
    return var is not None and var.ndim == 2 and var.dtype.kind in "iuf"


def _value_problems(path: str, key: str, charts: tuple[str, ...]) -> dict[str, str]:
    """Variable -> its problem, for one scene's charts whose values leave the classes (one task)."""
    out = {}
    with _open_nc(path) as nc:
        for chart in charts:
            name = schema.submission_variable(key, chart)
            try:
                p = _value_problem(name, chart, nc.variables[name])
            except Exception as exc:  # corrupt compressed data
                p = f"{name}: cannot be read: {_reason(exc)}"
            if p:
                out[name] = p
    return out


def _expected(scene_shapes: Mapping[str, tuple[int, int]]) -> set[str]:
    return {schema.submission_variable(k, c) for k in scene_shapes for c in schema.CHARTS}


def _structure_problems(name: str, var: Any, shape: tuple[int, int]) -> list[str]:
    problems = []
    if var.ndim != 2:
        return [f"{name}: has {var.ndim} dims {var.dimensions}, expected 2 {dims_of(name)}"]
    if tuple(var.dimensions) != dims_of(name):
        problems.append(f"{name}: dims {tuple(var.dimensions)}, expected {dims_of(name)}")
    if tuple(var.shape) != shape:
        problems.append(f"{name}: shape {tuple(var.shape)}, expected {shape} (the scene's 80 m grid)")
    if var.dtype != np.uint8:
        problems.append(f"{name}: dtype {var.dtype}, expected uint8")
    return problems


# ----------------------------------------------------------------------------- scenes
def scene_shapes(paths: PathLike | Iterable[PathLike]) -> dict[str, tuple[int, int]]:
    """Scene key -> ``(sar_lines, sar_samples)`` of the test scenes (``*_prep.nc`` / ``*_prep_reference.nc``).

    Only names and shapes are used. A scene present as both files must agree.
    """
    from autoice.scenes import SceneKind, find_scenes, open_scene

    files = find_scenes(paths, kinds=[SceneKind.TEST, SceneKind.REFERENCE])
    shapes: dict[str, tuple[int, int]] = {}
    for f in files:
        with open_scene(f, check_values=False) as ds:
            shape = (int(ds.sizes[schema.FULL_DIMS[0]]), int(ds.sizes[schema.FULL_DIMS[1]]))
        key = schema.scene_key(f.name)
        if key in shapes and shapes[key] != shape:
            raise SceneError(f, f"grid {shape} differs from the other file of scene {key} {shapes[key]}")
        shapes[key] = shape
    if not shapes:
        raise SceneError(_first(paths), "no test scenes found (*_prep.nc or *_prep_reference.nc)")
    return dict(sorted(shapes.items()))


def _first(paths: PathLike | Iterable[PathLike]) -> PathLike:
    if isinstance(paths, (str, os.PathLike)):
        return paths
    return next(iter(paths), ".")


def find_references(paths: PathLike | Iterable[PathLike]) -> dict[str, tuple[Path, tuple[int, int]]]:
    """Scene key -> (reference file, shape) from ``*_prep_reference.nc`` or RTT files with charts.

    Structure is validated (:func:`autoice.scenes.open_scene`); ``_prep.nc`` files without
    charts (test inputs) are skipped. Where a scene has both, the reference file is used.
    """
    from autoice.scenes import SceneKind, find_scenes, has_charts, open_scene

    files = find_scenes(paths, kinds=[SceneKind.REFERENCE, SceneKind.TRAIN])
    found: dict[str, tuple[Path, tuple[int, int]]] = {}
    for f in sorted(files, key=lambda f: not f.name.endswith(schema.REFERENCE_SUFFIX)):  # references first
        key = schema.scene_key(f.name)
        if key in found:
            continue
        with open_scene(f, check_values=False) as ds:
            if not has_charts(ds):
                continue
            shape = (int(ds.sizes[schema.FULL_DIMS[0]]), int(ds.sizes[schema.FULL_DIMS[1]]))
        found[key] = (f, shape)
    if not found:
        raise SceneError(
            _first(paths), "no reference scenes found (*_prep_reference.nc or *_prep.nc with SIC/SOD/FLOE)"
        )
    return dict(sorted(found.items()))


# ----------------------------------------------------------------------------- scoring
@dataclass
class ScoreReport:
    """Everything ``autoice score`` reports."""

    scenes: dict[str, ScoreAccumulator]  #: scene key -> its statistics (sorted by key)
    references: dict[str, Path]  #: scene key -> reference file
    missing: list[str] = field(default_factory=list)  #: variables absent/unusable: their chart scores 0
    extra: list[str] = field(default_factory=list)  #: submission variables of no reference scene
    problems: list[str] = field(default_factory=list)  #: structure problems behind ``missing``

    @property
    def pooled(self) -> ScoreAccumulator:
        """All scenes together: the official score."""
        return pool(self.scenes.values())


def _score_scene(
    submission: str, key: str, reference: str, shape: tuple[int, int], usable: tuple[str, ...]
) -> ScoreAccumulator:
    """Stream one scene's usable charts through an accumulator (runs in a worker process)."""
    from autoice.scenes import damaged

    acc = ScoreAccumulator()
    for chart in schema.CHARTS:
        if chart not in usable:
            acc.mark_missing(chart)
    if not usable:
        return acc
    with _open_nc(submission) as sub:
        try:
            ref = _open_nc(reference)
        except SubmissionError as exc:
            raise SceneError(reference, exc.fault) from exc
        with ref:
            for chart in usable:
                name = schema.submission_variable(key, chart)
                p_var, t_var = sub.variables[name], ref.variables[chart]
                for rows in _row_blocks(shape[0], shape[1], p_var, t_var):
                    try:
                        t = np.asarray(t_var[rows, :])
                    except Exception as exc:
                        raise damaged(reference, chart, exc) from exc
                    try:
                        p = np.asarray(p_var[rows, :])
                    except Exception as exc:
                        raise SubmissionError(submission, f"{name}: cannot be read: {_reason(exc)}") from exc
                    acc.update(chart, t, p)
                _check_reference_classes(reference, chart, acc)
                _check_predicted_classes(submission, name, chart, acc)
    return acc


def _check_predicted_classes(submission: str, name: str, chart: str, acc: ScoreAccumulator) -> None:
    """Predictions outside the classes would be scored as huge SIC errors: refuse them as validate does."""
    n = schema.N_CLASSES[chart]
    cols = acc.charts[chart].confusion[:, n:].sum(axis=0)
    bad = np.flatnonzero(cols)
    if bad.size:
        shown = ", ".join(str(int(v) + n) for v in bad[:5])
        raise SubmissionError(submission, f"{name}: {int(cols.sum())} pixels outside the {chart} classes "
                                          f"0..{n - 1} (values: {shown})")  # fmt: skip


def _check_reference_classes(reference: str, chart: str, acc: ScoreAccumulator) -> None:
    """Reference values outside the classes (and not 255) would silently count as labels: refuse them."""
    n = schema.N_CLASSES[chart]
    rows = acc.charts[chart].confusion[n : schema.CHART_FILL].sum(axis=1)
    bad = np.flatnonzero(rows)
    if bad.size:
        first = int(bad[0]) + n
        raise SceneError(
            reference,
            f"chart {chart} has out-of-range class {first} in {int(rows[bad[0]])} pixels "
            f"(expected 0..{n - 1} or {schema.CHART_FILL})",
        )


def score_submission(
    submission: PathLike,
    reference: PathLike | Iterable[PathLike],
    *,
    progress: bool = False,
    scheduler: str | None = None,
) -> ScoreReport:
    """Score an upload package against reference charts, as the challenge server did.

    Args:
        submission: the ``upload_package.nc``.
        reference: ``*_prep_reference.nc`` files / RTT files with charts, or folders of them.
        progress: show a progress bar on stderr.
        scheduler: a Dask scheduler's address: score the scenes on that cluster; only each
            scene's confusion matrices and sums come back, never pixels.

    Returns:
        Per-scene statistics (pool them for the official score) plus the variables that
        are missing or unusable (wrong shape, dims or dtype: their chart scores 0) and the
        submission variables that match no reference scene.
    """
    refs = find_references(reference)
    shapes = {k: shape for k, (_, shape) in refs.items()}
    with _open_nc(submission) as nc:
        variables = dict(nc.variables)
        usable: dict[str, tuple[str, ...]] = {}
        missing: list[str] = []
        problems: list[str] = []
        for key, shape in shapes.items():
            ok = []
            for chart in schema.CHARTS:
                name = schema.submission_variable(key, chart)
                var = variables.get(name)
                found = [f"{name}: missing"] if var is None else _structure_problems(name, var, shape)
                if found:
                    missing.append(name)
                    problems.extend(found)
                else:
                    ok.append(chart)
            usable[key] = tuple(ok)
        extra = sorted(set(variables) - _expected(shapes))
    jobs = [(str(submission), key, str(refs[key][0]), shapes[key], usable[key]) for key in shapes]
    results = _run(jobs, progress, scheduler)
    return ScoreReport(
        scenes=dict(zip(shapes, results, strict=True)),
        references={k: p for k, (p, _) in refs.items()},
        missing=missing,
        extra=extra,
        problems=problems,
    )


def _run(jobs: list[tuple[Any, ...]], progress: bool, scheduler: str | None) -> list[ScoreAccumulator]:
    """Score scenes one after another here, or as one task each on a Dask cluster.

    zlib decoding dominates; on our 2-core machine a local process pool gained nothing, and
    netCDF-C/HDF5 are not thread-safe, so there is no thread pool either. One bad scene is raised
    as its own error (as before); several are listed together.
    """
    from autoice.batch import run_each

    batch = run_each(_score_scene, jobs, [job[2] for job in jobs], desc="scoring", progress=progress,
                     scheduler=scheduler)  # fmt: skip
    if len(batch.failures) == 1:
        raise next(iter(batch.failures.values()))
    batch.check(outcome="no score")
    return batch.done()


# ----------------------------------------------------------------------------- groups
@dataclass(frozen=True)
class SceneGroup:
    """The official score of a subset of the scenes (one service, month, season or region)."""

    label: str  #: the group's value: ``cis``, ``03``, ``winter``, ``SGRDIEA``, ``unknown``...
    keys: tuple[str, ...]  #: its scenes
    scores: Scores  #: pooled over ``keys`` as the overall score is; a chart with no valid pixel is NaN


def scene_region(key: str, reference: PathLike) -> str:
    """Region of a scene's ice chart (``SGRDIEA``, ``NorthEast``...), or :data:`UNKNOWN_REGION`.

    Read from the raw file name in the reference file's ``original_id`` attribute (written by
    ``prepare`` and by the organisers into RTT files), else from the official test-scene list (the
    released ``_prep_reference.nc`` files may not carry attributes). A name of another scene is ignored.
    """
    candidates: list[str] = []
    try:
        with _open_nc(reference) as nc:
            if "original_id" in nc.ncattrs():
                raw = str(nc.getncattr("original_id"))
                candidates.append(raw if raw.endswith(".nc") else raw + ".nc")
    except SubmissionError:
        pass  # scoring read it already; an unreadable attribute only loses the region
    candidates += schema.official_test_scenes()
    for raw in candidates:
        name = schema.parse_raw_name(raw)
        if name is not None and name.key == key:
            region = schema.chart_region(raw)
            if region:
                return region
    return UNKNOWN_REGION


def _group_order(grouping: str) -> Callable[[str], Any]:
    """Sort key of a grouping's labels: services, seasons in schema order; months, regions by text."""
    if grouping == "service":
        return lambda label: (schema.SERVICES.index(label), label)
    if grouping == "season":
        return lambda label: list(schema.SEASONS).index(label)
    return lambda label: (label == UNKNOWN_REGION, label.casefold())  # months are zero-padded: text order = 1..12


def scene_labels(report: ScoreReport, grouping: str) -> dict[str, str]:
    """Scene key -> its label under ``grouping`` (one of :data:`autoice.schema.GROUPINGS`)."""
    if grouping not in schema.GROUPINGS:
        raise ValueError(f"unknown grouping {grouping!r}; expected one of {schema.GROUPINGS}")
    labels = {}
    for key, reference in report.references.items():
        if grouping == "region":
            labels[key] = scene_region(key, reference)
            continue
        name = schema.parse_scene_key(key)
        if name is None:  # find_references only yields keys of the pattern
            raise ValueError(f"scene key {key!r} does not follow <YYYYMMDDTHHMMSS>_<cis|dmi>")
        labels[key] = {"service": name.service, "month": f"{name.month:02d}", "season": name.season}[grouping]
    return labels


def score_groups(report: ScoreReport, grouping: str) -> list[SceneGroup]:
    """The official score per group of scenes: their per-scene statistics pooled, as for all scenes.

    Args:
        report: the result of :func:`score_submission`.
        grouping: ``service``, ``month`` (``01``..``12``, of the S1 start time), ``season``
            (:data:`autoice.schema.SEASONS`) or ``region`` (:func:`scene_region`).

    Returns:
        One :class:`SceneGroup` per label present, in a natural order (services and seasons as in the
        schema, months 1..12, regions by name with ``unknown`` last). Scores follow the official rules
        (a chart missing in any scene of the group scores 0) except that a chart with no valid
        reference pixel in the group is NaN rather than 0.
    """
    labels = scene_labels(report, grouping)
    members: dict[str, list[str]] = {}
    for key in report.scenes:
        members.setdefault(labels[key], []).append(key)
    return [
        SceneGroup(label, tuple(members[label]), pool(report.scenes[k] for k in members[label]).result(empty_nan=True))
        for label in sorted(members, key=_group_order(grouping))
    ]
