"""The official AutoICE score, computed streaming from sufficient statistics.

The organisers (spec section 6) drop every pixel whose reference is 255, concatenate the
remaining pixels of all scenes and call ``sklearn.metrics.r2_score`` (SIC, on class indices)
and ``f1_score(average="weighted")`` (SOD, FLOE). Each score is x100 and rounded to 3
decimals; combined = (2 SIC + 2 SOD + FLOE) / 5, rounded to 3 decimals; a missing chart
scores 0. Concatenating 20 full-size scenes takes > 10 GB, so here every chart keeps a
256 x 256 confusion matrix of (reference, prediction) uint8 pairs instead: it holds all the
statistics both metrics need (counts per label for F1; n, sum y, sum y^2 and the squared
residuals for R^2, all exact integers), merges by addition (scenes -> pooled, bootstrap
resamples) and makes per-class figures free. Reference row 255 is simply never read.

Edge cases follow the installed scikit-learn exactly (``force_finite=True`` for R^2:
constant reference -> 1.0 when the predictions are perfect, else 0.0; one valid pixel ->
NaN; F1 labels = union of labels in reference and prediction, zero division -> 0).
Where scikit-learn would raise (no valid pixel at all), the score is 0.0 with a
:class:`ScoreWarning`: the organisers' script would crash there instead.

This module is pure numpy: no file I/O.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from autoice import schema

#: Chart weights of the combined score, in the organisers' order.
WEIGHTS: dict[str, int] = {"SIC": 2, "SOD": 2, "FLOE": 1}
#: Charts scored with R^2 on class indices; the others use weighted F1.
REGRESSION_CHARTS: frozenset[str] = frozenset({"SIC"})
DECIMALS = 3  #: rounding of every published score (percent)

_L = 256  # label space of uint8 charts; reference label 255 (CHART_FILL) = masked
_MASK = schema.CHART_FILL
_CHUNK = 1 << 20  # pixels per bincount call: keeps temporaries ~2 MB and cache-resident


class ScoreWarning(UserWarning):
    """A score is undefined (no or one valid pixel) or a chart is missing."""


# ----------------------------------------------------------------------------- inputs
def _as_labels(a: np.ndarray, what: str) -> np.ndarray:
    """Integer labels 0..255 as a flat uint8 array (no copy when already uint8)."""
    a = np.asarray(a)
    if a.dtype == np.uint8:
        return a.reshape(-1)
    if a.dtype.kind == "b":
        return a.reshape(-1).astype(np.uint8)
    if a.dtype.kind not in "iu":
        raise TypeError(f"{what} must hold integer class indices, got dtype {a.dtype}")
    if a.size and (int(a.min()) < 0 or int(a.max()) > _MASK):
        raise ValueError(f"{what} holds values outside 0..{_MASK}: [{int(a.min())}, {int(a.max())}]")
    return a.reshape(-1).astype(np.uint8)


def pair_counts(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Counts of (reference, prediction) label pairs as a 256 x 256 int64 matrix.

    Both inputs are uint8-compatible integer arrays of the same shape. Done in chunks of
    1 M pixels with a uint16 combined index, so memory stays flat and the bins stay in cache
    (about 10x faster than one ``bincount`` over a full scene).
    """
    t = _as_labels(y_true, "y_true")
    p = _as_labels(y_pred, "y_pred")
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred differ in size: {t.size} vs {p.size}")
    out = np.zeros(_L * _L, dtype=np.int64)
    idx = np.empty(min(_CHUNK, t.size), dtype=np.uint16)
    for start in range(0, t.size, _CHUNK):
        tt, pp = t[start : start + _CHUNK], p[start : start + _CHUNK]
        v = idx[: tt.size]
        np.left_shift(tt, 8, out=v, dtype=np.uint16)
        np.bitwise_or(v, pp, out=v)
        out += np.bincount(v, minlength=_L * _L)
    return out.reshape(_L, _L)


# ----------------------------------------------------------------------------- scores
def _r2(n: int, sy: int, sy2: int, ss_res: int | float) -> float:
    """R^2 from exact sums, mirroring sklearn's r2_score(force_finite=True) decisions."""
    if n == 0:
        warnings.warn("R^2 undefined: no valid reference pixel; scoring 0.0", ScoreWarning, stacklevel=3)
        return 0.0
    if n < 2:
        warnings.warn("R^2 undefined with one valid pixel (sklearn returns NaN)", ScoreWarning, stacklevel=3)
        return float("nan")
    ss_tot_n = n * sy2 - sy * sy  # n * sum((y - mean)^2), exact in Python ints
    if ss_res == 0:
        return 1.0
    if ss_tot_n == 0:
        return 0.0
    return float(1 - Fraction(ss_res) * n / ss_tot_n)


def _weighted_f1(tp: np.ndarray, true_sum: np.ndarray, pred_sum: np.ndarray) -> float:
    """Weighted F1 (as sklearn's) over the labels present in either reference or prediction."""
    present = (true_sum > 0) | (pred_sum > 0)
    if not true_sum.any():
        warnings.warn("F1 undefined: no valid reference pixel; scoring 0.0", ScoreWarning, stacklevel=3)
        return 0.0
    tp, true_sum, pred_sum = tp[present], true_sum[present], pred_sum[present]
    f1 = 2.0 * tp.astype(np.float64) / (true_sum.astype(np.float64) + pred_sum.astype(np.float64))
    return float(np.average(f1, weights=true_sum))


def to_percent(score: float) -> float:
    """A metric in 0..1 -> the published percent with 3 decimals (``np.round``, as the organisers)."""
    return float(np.round(score * 100, DECIMALS))


def combined_score(sic: float, sod: float, floe: float) -> float:
    """Combined score from the three rounded percent scores, summed in the organisers' order."""
    total = 0.0
    for chart, score in zip(schema.CHARTS, (sic, sod, floe), strict=True):
        total += score * WEIGHTS[chart]
    return float(np.round(total / sum(WEIGHTS.values()), DECIMALS))


def r2_score_classes(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """SIC R^2 of the official metric: pixels with reference 255 dropped, then sklearn's ``r2_score``.

    Args:
        y_true: reference class indices (uint8-compatible; 255 = masked).
        y_pred: predictions, integer classes or float regression output (not rounded here).

    Returns:
        R^2 as a fraction (not percent); 0.0 with a :class:`ScoreWarning` when nothing is valid.
    """
    acc = ChartAccumulator("SIC")
    acc.update(y_true, y_pred)
    return acc.score()


def weighted_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """SOD/FLOE F1 of the official metric: reference-255 pixels dropped, sklearn's weighted F1.

    Returns:
        F1 as a fraction; 0.0 with a :class:`ScoreWarning` when nothing is valid.
    """
    acc = ChartAccumulator("SOD")
    acc.update(y_true, y_pred)
    return acc.score()


# ----------------------------------------------------------------------------- accumulators
@dataclass(frozen=True)
class ClassStats:
    """Per-class figures of one chart (arrays over its classes 0..N-1)."""

    chart: str
    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    support: np.ndarray  #: valid reference pixels of each class


class ChartAccumulator:
    """Sufficient statistics of one chart over any number of chunks and scenes.

    ``confusion[t, p]`` counts pixels with reference ``t`` and integer prediction ``p``
    (row 255 = masked reference, ignored by every score). Float SIC predictions (regression
    output) add exact R^2 sums to ``float_sums`` instead, and their rounded values to
    ``rounded`` for the per-class figures only.
    """

    def __init__(self, chart: str) -> None:
        if chart not in schema.N_CLASSES:
            raise ValueError(f"unknown chart {chart!r}; expected one of {schema.CHARTS}")
        self.chart = chart
        self.confusion = np.zeros((_L, _L), dtype=np.int64)
        self.rounded: np.ndarray | None = None  # allocated on the first float chunk
        #: n, sum y, sum y^2 (ints) and sum of squared residuals (float) of float predictions
        self.float_sums: list[int | float] = [0, 0, 0, 0.0]

    # -- building
    def update(self, y_true: np.ndarray, y_pred: np.ndarray) -> None:
        """Add a chunk (any shape; both the same). Reference 255 is masked; predictions there are free."""
        y_pred = np.asarray(y_pred)
        if y_pred.dtype.kind != "f":
            self.confusion += pair_counts(y_true, y_pred)
            return
        if self.chart not in REGRESSION_CHARTS:
            raise TypeError(f"{self.chart} predictions must be integer class indices, got dtype {y_pred.dtype}")
        self._update_float(_as_labels(y_true, "y_true"), y_pred.reshape(-1))

    def _update_float(self, t: np.ndarray, p: np.ndarray) -> None:
        if t.size != p.size:
            raise ValueError(f"y_true and y_pred differ in size: {t.size} vs {p.size}")
        n, sy, sy2, ss = self.float_sums
        for start in range(0, t.size, _CHUNK):
            tt, pp = t[start : start + _CHUNK], p[start : start + _CHUNK]
            keep = tt != _MASK
            tt, pp = tt[keep], pp[keep].astype(np.float64)
            if not np.isfinite(pp).all():
                raise ValueError("y_pred holds NaN or infinite values at valid pixels")
            counts = np.bincount(tt, minlength=_L).astype(object)  # Python ints: exact sums
            n += int(tt.size)
            sy += int((counts * np.arange(_L, dtype=object)).sum())
            sy2 += int((counts * np.arange(_L, dtype=object) ** 2).sum())
            d = tt - pp
            ss += float(np.dot(d, d))
            r = np.clip(np.rint(pp), 0, _MASK).astype(np.uint8)
            self.rounded = pair_counts(tt, r) + (0 if self.rounded is None else self.rounded)
        self.float_sums = [n, sy, sy2, ss]

    def merge(self, other: ChartAccumulator) -> ChartAccumulator:
        """A new accumulator holding both (pool scenes; the inputs are left unchanged)."""
        if other.chart != self.chart:
            raise ValueError(f"cannot merge {other.chart} into {self.chart}")
        out = ChartAccumulator(self.chart)
        out.confusion = self.confusion + other.confusion
        if self.rounded is not None or other.rounded is not None:
            zero = np.zeros((_L, _L), dtype=np.int64)
            out.rounded = (zero if self.rounded is None else self.rounded) + (
                zero if other.rounded is None else other.rounded
            )
        out.float_sums = [a + b for a, b in zip(self.float_sums, other.float_sums, strict=True)]
        return out

    # -- statistics
    def stats_vector(self) -> np.ndarray:
        """Linear sufficient statistics as one float64 vector (exact below 2**53; for bootstraps).

        Layout: tp[256], true_sum[256], pred_sum[256], then n, sum y, sum y^2, integer SS_res,
        float n, float sum y, float sum y^2, float SS_res.
        """
        cm = self.confusion[:_MASK]  # valid reference rows only
        tp = np.zeros(_L, dtype=np.int64)
        tp[:_MASK] = np.diagonal(cm)
        true_sum = np.zeros(_L, dtype=np.int64)
        true_sum[:_MASK] = cm.sum(axis=1)
        pred_sum = cm.sum(axis=0)
        y = np.arange(_MASK, dtype=np.int64)
        d = y[:, None] - np.arange(_L, dtype=np.int64)[None, :]
        reg = [true_sum.sum(), (true_sum[:_MASK] * y).sum(), (true_sum[:_MASK] * y * y).sum(), (cm * d * d).sum()]
        return np.concatenate([tp, true_sum, pred_sum, np.asarray(reg + self.float_sums, dtype=np.float64)])

    def _display(self) -> np.ndarray:
        """Integer counts plus rounded float predictions (for per-class figures)."""
        return self.confusion if self.rounded is None else self.confusion + self.rounded

    @property
    def n_valid(self) -> int:
        """Pixels with a valid reference seen so far."""
        return int(self.confusion[:_MASK].sum()) + int(self.float_sums[0])

    def score(self) -> float:
        """The chart's official metric as a fraction (R^2 for SIC, weighted F1 otherwise)."""
        return _score_from_vector(self.chart, self.stats_vector())

    def confusion_matrix(self) -> np.ndarray:
        """N x N matrix (rows reference, columns prediction) over the chart's classes.

        Predictions outside the chart's classes are left out (validation reports them);
        float SIC predictions appear rounded.
        """
        k = schema.N_CLASSES[self.chart]
        return self._display()[:k, :k].copy()

    def per_class(self) -> ClassStats:
        """Precision, recall, F1 and support of every class (0 where undefined, as sklearn's default)."""
        k = schema.N_CLASSES[self.chart]
        cm = self._display()[:_MASK]
        tp = np.diagonal(cm)[:k].astype(np.float64)
        support = cm.sum(axis=1)[:k]
        predicted = cm.sum(axis=0)[:k].astype(np.float64)

        def ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
            return np.divide(a, b, out=np.zeros_like(a), where=b > 0)

        return ClassStats(
            self.chart,
            precision=ratio(tp, predicted),
            recall=ratio(tp, support.astype(np.float64)),
            f1=ratio(2 * tp, support + predicted),
            support=support,
        )


def _score_from_vector(chart: str, v: np.ndarray) -> float:
    """Score of a chart from :meth:`ChartAccumulator.stats_vector` (possibly a bootstrap sum)."""
    tp, true_sum, pred_sum = v[:_L], v[_L : 2 * _L], v[2 * _L : 3 * _L]
    n, sy, sy2, ss_int, fn, fsy, fsy2, fss = v[3 * _L :]
    if chart in REGRESSION_CHARTS:
        ss_res: int | float = int(ss_int) + fss if fn else int(ss_int)
        return _r2(int(n) + int(fn), int(sy) + int(fsy), int(sy2) + int(fsy2), ss_res)
    return _weighted_f1(tp, true_sum, pred_sum)


@dataclass(frozen=True)
class Scores:
    """Published scores of one scene or of the pooled test set."""

    charts: dict[str, float]  #: chart -> percent, 3 decimals (0 where missing)
    combined: float  #: (2 SIC + 2 SOD + FLOE) / 5, 3 decimals
    fractions: dict[str, float]  #: chart -> unrounded metric (0..1, NaN possible), before the missing rule
    n_valid: dict[str, int]  #: valid reference pixels per chart
    missing: tuple[str, ...] = ()  #: charts scored 0 because a prediction was missing

    def as_dict(self) -> dict[str, float]:
        """``{"SIC": .., "SOD": .., "FLOE": .., "combined": ..}`` in percent."""
        return {**self.charts, "combined": self.combined}


@dataclass
class ScoreAccumulator:
    """All three charts of one scene or of many (merge to pool).

    A chart marked missing (its prediction was absent for at least one scene) scores 0, as
    the challenge server scored a submission without it.
    """

    charts: dict[str, ChartAccumulator] = field(default_factory=lambda: {c: ChartAccumulator(c) for c in schema.CHARTS})
    missing: set[str] = field(default_factory=set)

    def update(self, chart: str, y_true: np.ndarray, y_pred: np.ndarray) -> None:
        """Add a chunk of one chart."""
        self.charts[chart].update(y_true, y_pred)

    def mark_missing(self, chart: str) -> None:
        """Record that a chart's prediction is absent (the chart then scores 0)."""
        if chart not in self.charts:
            raise ValueError(f"unknown chart {chart!r}")
        self.missing.add(chart)

    def merge(self, other: ScoreAccumulator) -> ScoreAccumulator:
        """A new accumulator pooling both."""
        return ScoreAccumulator(
            {c: self.charts[c].merge(other.charts[c]) for c in schema.CHARTS}, self.missing | other.missing
        )

    def result(self, *, empty_nan: bool = False) -> Scores:
        """Rounded scores of everything accumulated.

        Args:
            empty_nan: a chart without any valid reference pixel scores NaN (and so does the combined
                score), silently, instead of 0.0 with a :class:`ScoreWarning`. Meant for subsets of the
                test set (one season, one region), where a chart with nothing to score is normal.
        """
        n_valid = {c: self.charts[c].n_valid for c in schema.CHARTS}
        empty = [c for c in schema.CHARTS if not n_valid[c]] if empty_nan else []
        fractions = {
            c: float("nan") if (c in self.missing or c in empty) and not n_valid[c] else self.charts[c].score()
            for c in schema.CHARTS
        }
        return _assemble(fractions, n_valid, self.missing, undefined=empty)


def _assemble(
    fractions: Mapping[str, float], n_valid: Mapping[str, int], missing: Iterable[str], undefined: Iterable[str] = ()
) -> Scores:
    missing = tuple(c for c in schema.CHARTS if c in set(missing))
    undefined = set(undefined)
    percents = {
        c: float("nan") if c in undefined else 0.0 if c in missing else to_percent(fractions[c]) for c in schema.CHARTS
    }
    return Scores(
        charts=percents,
        combined=combined_score(*(percents[c] for c in schema.CHARTS)),
        fractions=dict(fractions),
        n_valid=dict(n_valid),
        missing=missing,
    )


def pool(accumulators: Iterable[ScoreAccumulator]) -> ScoreAccumulator:
    """Merge per-scene accumulators into the pooled one (the official all-scenes-together score)."""
    out = ScoreAccumulator()
    for acc in accumulators:
        out = out.merge(acc)
    return out


# ----------------------------------------------------------------------------- bootstrap
def bootstrap(
    scenes: Sequence[ScoreAccumulator], n: int, *, seed: int = 0, level: float = 0.95
) -> dict[str, tuple[float, float]]:
    """Confidence intervals of the pooled scores by resampling scenes with replacement.

    Each replicate draws ``len(scenes)`` scenes, sums their sufficient statistics (exact, so a
    replicate is scored as if those scenes had been concatenated) and applies the official
    rounding and missing-chart rule.

    Args:
        scenes: one accumulator per scene.
        n: number of replicates.
        seed: seed of the resampling (results are reproducible).
        level: central coverage of the interval (0.95 -> 2.5th and 97.5th percentiles).

    Returns:
        ``{"SIC": (low, high), "SOD": ..., "FLOE": ..., "combined": ...}`` in percent.
    """
    if not scenes:
        raise ValueError("bootstrap needs at least one scene")
    if n < 1:
        raise ValueError(f"bootstrap needs n >= 1 replicates, got {n}")
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    rng = np.random.default_rng(seed)
    s = len(scenes)
    draws = rng.integers(0, s, size=(n, s))
    counts = np.stack([np.bincount(row, minlength=s) for row in draws]).astype(np.float64)  # (n, s)
    vectors = {c: np.stack([acc.charts[c].stats_vector() for acc in scenes]) for c in schema.CHARTS}
    missing = {c: np.array([c in acc.missing for acc in scenes]) for c in schema.CHARTS}
    summed = {c: counts @ vectors[c] for c in schema.CHARTS}  # exact: integers < 2**53
    results = np.empty((n, len(schema.CHARTS) + 1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ScoreWarning)
        for r in range(n):
            fr = {c: _score_from_vector(c, summed[c][r]) for c in schema.CHARTS}
            gone = [c for c in schema.CHARTS if (counts[r] * missing[c]).any()]
            sc = _assemble(fr, {}, gone)
            results[r] = [*(sc.charts[c] for c in schema.CHARTS), sc.combined]
    tail = (1 - level) / 2 * 100
    lo, hi = np.nanpercentile(results, [tail, 100 - tail], axis=0)
    names = (*schema.CHARTS, "combined")
    return {k: (round(float(a), DECIMALS), round(float(b), DECIMALS)) for k, a, b in zip(names, lo, hi, strict=True)}
