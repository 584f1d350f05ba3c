"""Does a synthetic set look like the real AI4Arctic data, and are simple per-pixel models (wrongly) strong on it?

    .venv/bin/python bench/realism.py                    # 4 seeds x (30 train + 10 test) scenes of 600 x 640
    .venv/bin/python bench/realism.py --quick            # smoke test: 2 seeds x (3 + 2) tiny scenes, < 1 min
    .venv/bin/python bench/realism.py [--seeds 7000 7001 7002 7003] [--train-per-seed 30] [--test-per-seed 10]
        [--height 600] [--width 640] [--workdir bench_out/realism] [--workers 2] [--max-train-pixels 300000]
        [--test-stride 2] [--overwrite] [--json FILE] [--unet [--unet-set KEY=VALUE ...] [--unet-repeats N]]

Each seed is synthesised into WORKDIR/data_<h>x<w>/seed<S>/ (scenes already there are reused: pass
--overwrite after changing the generator). Then every scene is read once, one at a time, and three
markdown tables are printed:

(a) input marginals: the RTT inputs are standard-scaled with the organisers' global mean/std, so on
    data like the real set each input has mean ~0 and std ~1 (full-grid inputs over valid pixels,
    2 km inputs over every cell);
(b) composition beside the real training set (``autoice.realstats``): masked shares, class shares,
    water-share distribution, SOD coverage of ice, service / region / month mix;
(c) per-pixel baselines (majority, linear on the 20 coarse inputs, gradient boosting on all inputs
    plus 5x5 SAR texture, a tree on btemp_36_5h alone, a tree on t2m + skt alone) fitted on sampled
    training pixels and scored with the official metric on the held-out test scenes, with a
    scene-bootstrap 95 % interval of the combined score. On real data per-pixel models are weak
    (the organisers' U-Net reached 64-75); a synthetic set on which a tree on one AMSR2 channel
    scores like a U-Net is too easy. Two rows are not per-pixel: boosting with 4-12 km neighbourhood
    statistics (a cheap spatial model), and an oracle that averages the per-pixel boosting's predictions
    over the true chart polygons (read from the raw scenes): the room for context, i.e. the most that
    averaging per-pixel evidence over the right area can add. A spatial model beats it only by reading
    patterns that no single pixel shows.

--unet also trains the ``demo`` preset U-Net on all training scenes (linked into WORKDIR/unet_train/),
predicts each seed's test scenes and adds its official score to table (c), with the same polygon averaging
applied to its maps (near the boosting oracle: the room above the U-Net is knowing where the analyst's
boundaries run, not reading the pixels better). --unet-repeats N trains it with N training seeds: the
U-Net's score moves with its seed by about a point, as much as a margin of interest, so its row is then
the mean of the runs and its intervals resample the runs too. --json writes every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# Before any OpenMP runtime loads: spinning OpenMP threads (scikit-learn's gradient boosting) slow down
# 5-10x when the 2 cores are shared with other jobs; passive waiting costs next to nothing alone.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import peak_rss  # noqa: E402
from autoice import metrics, realstats, schema  # noqa: E402

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
TEXTURE = ("hh_mean5", "hh_std5", "hv_mean5", "hv_std5")
#: Neighbourhood statistics over 4 and 12 km (SAR) and 10 km (AMSR2): not per-pixel, a cheap spatial model.
CONTEXT = ("hh_mean51", "hh_std51", "hv_mean51", "hh_mean151", "hv_mean151", "btemp_36_5h_ctx", "btemp_18_7v_ctx")
#: Per-pixel feature columns: the 24 official inputs, then the SAR texture.
PER_PIXEL: tuple[str, ...] = (*schema.INPUT_VARIABLES, *TEXTURE)
#: Feature columns kept per sampled pixel.
FEATURES: tuple[str, ...] = (*PER_PIXEL, *CONTEXT)
FLAG_Z, FLAG_RATIO = 0.15, 0.15  #: table (a): |z| <= 0.15 and 0.85 <= ratio <= 1.15 is "ok"

NORMAL = {"seeds": [7000, 7001, 7002, 7003], "train_per_seed": 30, "test_per_seed": 10, "height": 600, "width": 640,
          "max_train_pixels": 300_000, "test_stride": 2, "boost_iter": 200, "n_boot": 200}  # fmt: skip
QUICK = {"seeds": [3000, 3001], "train_per_seed": 3, "test_per_seed": 2, "height": 200, "width": 224,
         "max_train_pixels": 20_000, "test_stride": 4, "boost_iter": 20, "n_boot": 50}  # fmt: skip
#: Shortened demo recipe for --quick --unet (tiny scenes: 200 x 224 at x5 is 40 x 45 pixels).
QUICK_UNET = ["train.epochs=2", "train.batches_per_epoch=4", "train.val_every=1", "data.patch_size=32"]


# ----------------------------------------------------------------------------- data
@dataclass
class SeedSet:
    """One synthesised seed: its files, as ``synthesize`` reported them (not a glob of stale folders)."""

    seed: int
    root: Path
    train: list[Path]
    test: list[Path]
    reference: list[Path]
    raw_test: list[Path] = field(default_factory=list)  #: the test scenes' raw files (chart polygons)


@dataclass
class Moments:
    """Running count, sum and sum of squares per input (float64: exact enough for standardised values)."""

    n: dict[str, int] = field(default_factory=lambda: dict.fromkeys(schema.INPUT_VARIABLES, 0))
    s: dict[str, float] = field(default_factory=lambda: dict.fromkeys(schema.INPUT_VARIABLES, 0.0))
    s2: dict[str, float] = field(default_factory=lambda: dict.fromkeys(schema.INPUT_VARIABLES, 0.0))

    def add(self, name: str, values: np.ndarray) -> None:
        """Pool one scene's values of ``name``."""
        v = values.astype(np.float64, copy=False).ravel()
        self.n[name] += int(v.size)
        self.s[name] += float(v.sum())
        self.s2[name] += float(np.dot(v, v))

    def mean_std(self, name: str) -> tuple[float, float]:
        """Pooled mean and (population) std."""
        n = self.n[name]
        if n == 0:
            return float("nan"), float("nan")
        mean = self.s[name] / n
        return mean, float(np.sqrt(max(self.s2[name] / n - mean * mean, 0.0)))


@dataclass
class ScenePixels:
    """What is kept of one scene: sampled feature rows and their labels (255 = not valid)."""

    x: np.ndarray  #: (n, len(FEATURES)) float32
    y: np.ndarray  #: (n, 3) uint8 in schema.CHARTS order
    use: np.ndarray  #: (n, 3) bool: row sampled for that chart's training set (train scenes)
    polygon: np.ndarray | None = None  #: (n,) chart polygon id of each row (test scenes with their raw file)


def synthesize_all(args: argparse.Namespace) -> list[SeedSet]:
    """Synthesise (or reuse) every seed's scenes."""
    from autoice import synth

    out = []
    base = args.workdir / f"data_{args.height}x{args.width}"
    for seed in args.seeds:
        root = base / f"seed{seed}"
        t0 = time.perf_counter()
        res = synth.synthesize(root, n_train=args.train_per_seed, n_test=args.test_per_seed, height=args.height,
                               width=args.width, seed=seed, workers=args.workers, overwrite=args.overwrite,
                               progress=False)  # fmt: skip
        n = args.train_per_seed + args.test_per_seed
        log(f"synth seed {seed}: {n - res.skipped} new, {res.skipped} reused ({time.perf_counter() - t0:.1f} s)")
        raw_test = list(res.raw[len(res.train) :])  # raw files are in scene order: training scenes first
        out.append(SeedSet(seed, root, list(res.train), list(res.test), list(res.reference), raw_test))
    return out


def region_month(original_id: str) -> tuple[str, int]:
    """Raw scene name -> (chart region, month of the S1 start time); "?" / 0 when the name is not a raw name."""
    m = schema.RAW_NAME.match(original_id)
    return (schema.chart_region(original_id) or "?"), (int(m["start"][4:6]) if m else 0)


def _read(nc: Any, name: str) -> np.ndarray:
    return np.asarray(nc.variables[name][:])


def _charts(nc: Any) -> dict[str, np.ndarray]:
    """The SIC/SOD/FLOE charts of an open scene or reference file, uint8 (255 = masked)."""
    return {c: _read(nc, c).astype(np.uint8) for c in schema.CHARTS}


def read_charts(path: Path) -> dict[str, np.ndarray]:
    """The charts of a scene or reference file (see :func:`_charts`)."""
    import netCDF4

    with netCDF4.Dataset(path) as nc:
        nc.set_auto_maskandscale(False)
        return _charts(nc)


def texture(x: np.ndarray, size: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std over ``size`` x ``size`` pixels (5: what a per-pixel model can know of its neighbourhood)."""
    from scipy.ndimage import uniform_filter

    x = x.astype(np.float64)
    m = uniform_filter(x, size=size, mode="reflect")
    m2 = uniform_filter(x * x, size=size, mode="reflect")
    return m.astype(np.float32), np.sqrt(np.clip(m2 - m * m, 0, None)).astype(np.float32)


def features_at(full: dict[str, np.ndarray], coarse: dict[str, np.ndarray], flat: np.ndarray, width: int
                ) -> np.ndarray:  # fmt: skip
    """Feature rows of the pixels ``flat`` (row-major indices); coarse cells by nearest (cell k = [25k, 25k+25))."""
    r, c = flat // width, flat % width
    x = np.empty((flat.size, len(FEATURES)), dtype=np.float32)
    for j, name in enumerate(FEATURES):
        if name in full:
            x[:, j] = full[name].ravel()[flat]
        else:
            g = coarse[name]
            rr = np.minimum(r // schema.CELL_RTT, g.shape[0] - 1)  # crop / clamp to the 2 km grid
            cc = np.minimum(c // schema.CELL_RTT, g.shape[1] - 1)
            x[:, j] = g[rr, cc]
    return x


def polygons_of(raw: Path, shape: tuple[int, int]) -> np.ndarray | None:
    """The chart polygon id of every 80 m pixel, from the raw scene's 40 m ``polygon_icechart``.

    Each 80 m pixel takes the largest id of its 2 x 2 block (ids only need to be constant inside a
    polygon; no data becomes -1). None when the raw grid does not halve to ``shape``.
    """
    import netCDF4

    with netCDF4.Dataset(raw) as nc:
        nc.set_auto_maskandscale(False)
        pid = np.asarray(nc.variables[schema.POLYGON_ICECHART][:], dtype=np.float64)
    from autoice.prepare import block_max  # the 2 x 2 reduction prepare applies to the charts

    if (pid.shape[0] // 2, pid.shape[1] // 2) != shape:
        return None
    return block_max(np.where(np.isfinite(pid), pid, -1).astype(np.int64))


def read_scene(path: Path, reference: Path | None, *, moments: Moments, rng: np.random.Generator | None,
               quota: int, stride: int, raw: Path | None = None
               ) -> tuple[realstats.RealScene, ScenePixels, int]:  # fmt: skip
    """Read one scene: pool its input moments, summarise its charts, keep sampled pixels.

    Training scenes (``rng`` given) keep up to ``quota`` random valid pixels per chart; test scenes
    keep every ``stride``-th row and column where any chart is valid, and with their ``raw`` file the
    chart polygon of each kept pixel. Returns the summary, the pixels and the number of chart-valid
    SIC pixels that have no SAR data.
    """
    import netCDF4

    with netCDF4.Dataset(path) as nc:
        nc.set_auto_maskandscale(False)
        full = {v: _read(nc, v).astype(np.float32, copy=False) for v in schema.FULL_GRID_INPUTS}
        coarse = {v: _read(nc, v).astype(np.float32, copy=False) for v in schema.COARSE_VARIABLES}
        service, original = str(nc.getncattr("ice_service")), str(nc.getncattr("original_id"))
        key = str(nc.getncattr("scene_id")) if "scene_id" in nc.ncattrs() else path.name[: schema.SCENE_KEY_LENGTH]
        charts = _charts(nc) if reference is None else read_charts(reference)
    height, width = full[schema.SAR_VARIABLES[0]].shape
    nodata = (full["nersc_sar_primary"] == 0) & (full["nersc_sar_secondary"] == 0) & (full["sar_incidenceangle"] == 0)
    valid_in = ~nodata
    for v in schema.FULL_GRID_INPUTS:
        moments.add(v, full[v][valid_in])
    for v in schema.COARSE_VARIABLES:
        moments.add(v, coarse[v])

    counts, masked = {}, {}
    for c in schema.CHARTS:
        b = np.bincount(charts[c].ravel(), minlength=256)
        counts[c], masked[c] = b[: schema.N_CLASSES[c]].astype(np.int64), int(b[schema.CHART_FILL])
    region, month = region_month(original)
    summary = realstats.RealScene(scene=key, service=service, region=region, month=month, counts=counts,
                                  masked=masked)  # fmt: skip
    unsupported = int(((charts["SIC"] != schema.CHART_FILL) & nodata).sum())

    full["hh_mean5"], full["hh_std5"] = texture(full["nersc_sar_primary"])
    full["hv_mean5"], full["hv_std5"] = texture(full["nersc_sar_secondary"])
    full["hh_mean51"], full["hh_std51"] = texture(full["nersc_sar_primary"], 51)
    full["hv_mean51"], _ = texture(full["nersc_sar_secondary"], 51)
    full["hh_mean151"], _ = texture(full["nersc_sar_primary"], 151)
    full["hv_mean151"], _ = texture(full["nersc_sar_secondary"], 151)
    for name in ("btemp_36_5h", "btemp_18_7v"):
        coarse[f"{name}_ctx"] = texture(coarse[name], 5)[0]
    labels = np.stack([charts[c].ravel() for c in schema.CHARTS], axis=1)  # (H*W, 3)
    if rng is not None:
        chosen = []
        for j in range(len(schema.CHARTS)):
            ok = np.flatnonzero(labels[:, j] != schema.CHART_FILL)
            chosen.append(rng.choice(ok, size=quota, replace=False) if ok.size > quota else ok)
        flat = np.unique(np.concatenate(chosen))
        use = np.stack([np.isin(flat, ch) for ch in chosen], axis=1)
    else:
        grid = (np.arange(0, height, stride)[:, None] * width + np.arange(0, width, stride)[None, :]).ravel()
        flat = grid[(labels[grid] != schema.CHART_FILL).any(axis=1)]
        use = np.zeros((flat.size, len(schema.CHARTS)), dtype=bool)
    polygon = polygons_of(raw, (height, width)) if raw is not None else None
    pixels = ScenePixels(features_at(full, coarse, flat, width), labels[flat], use,
                         None if polygon is None else polygon.ravel()[flat])  # fmt: skip
    return summary, pixels, unsupported


# ----------------------------------------------------------------------------- models
def _guarded(make: Callable[[], Any], fallback: Callable[[], Any]) -> Callable[[np.ndarray, np.ndarray], Any]:
    """Fit ``make()``, or ``fallback()`` when the labels hold a single class (classifiers refuse those)."""

    def fit(x: np.ndarray, y: np.ndarray) -> Any:
        from sklearn.exceptions import ConvergenceWarning

        values, counts = np.unique(y, return_counts=True)
        if (counts < 2).any() and values.size > 1:  # a class seen once cannot be split for early stopping
            keep = np.isin(y, values[counts >= 2])
            x, y = x[keep], y[keep]
        model = make() if np.unique(y).size > 1 else fallback()
        with warnings.catch_warnings():  # lbfgs on a capped budget: the fit is what a quick baseline gets
            warnings.simplefilter("ignore", ConvergenceWarning)
            return model.fit(x, y)

    return fit


#: Not a per-pixel model: the same boosting with neighbourhood statistics, to show what context is worth.
CONTEXT_MODEL = "spatial: gradient boosting + 4-12 km context"
#: Not a model at all: the per-pixel boosting's predictions averaged over the true chart polygons.
POLYGON_ORACLE = "oracle: per-pixel boosting averaged over the true chart polygons"
#: The same averaging applied to the U-Net's maps (its upload package, classes): with the polygons known, how
#: much the model that read the pixels still matters.
UNET_ORACLE = "oracle: U-Net averaged over the true chart polygons"
#: The per-pixel model the oracle averages.
ORACLE_OF = "gradient boosting (24 inputs + 5x5 HH/HV mean, std)"


def model_specs(boost_iter: int, quick: bool) -> list[tuple[str, tuple[str, ...], dict[str, Callable]]]:
    """(name, feature columns, chart -> fit(x, y)) of the five per-pixel baselines and the context model."""
    from sklearn.dummy import DummyClassifier, DummyRegressor
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    def majority() -> Any:
        return DummyClassifier(strategy="most_frequent")

    def per_chart(reg: Callable[[], Any], clf: Callable[[], Any]) -> dict[str, Callable]:
        out = {"SIC": _guarded(reg, DummyRegressor)}
        out.update({c: _guarded(clf, majority) for c in ("SOD", "FLOE")})
        return out

    def tree(cls: type) -> Callable[[], Any]:
        return lambda: cls(max_depth=8, min_samples_leaf=200, random_state=0)

    hgb = {"max_iter": boost_iter, "random_state": 0}
    coarse = schema.COARSE_VARIABLES
    return [
        ("majority / mean", FEATURES[:1], per_chart(DummyRegressor, majority)),
        ("linear (20 coarse inputs)", coarse,
         per_chart(LinearRegression,
                   lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=100 if quick else 300)))),
        (ORACLE_OF, PER_PIXEL,
         per_chart(lambda: HistGradientBoostingRegressor(**hgb), lambda: HistGradientBoostingClassifier(**hgb))),
        ("tree on btemp_36_5h", ("btemp_36_5h",), per_chart(tree(DecisionTreeRegressor), tree(DecisionTreeClassifier))),
        ("tree on t2m + skt", ("t2m", "skt"), per_chart(tree(DecisionTreeRegressor), tree(DecisionTreeClassifier))),
        (CONTEXT_MODEL, FEATURES,
         per_chart(lambda: HistGradientBoostingRegressor(**hgb), lambda: HistGradientBoostingClassifier(**hgb))),
    ]  # fmt: skip


def as_classes(chart: str, pred: np.ndarray) -> np.ndarray:
    """Model output -> uint8 classes (SIC regression rounded and clipped to 0..10)."""
    if chart == "SIC":
        return np.clip(np.rint(pred), 0, schema.N_CLASSES["SIC"] - 1).astype(np.uint8)
    return np.asarray(pred).astype(np.uint8)


def polygon_average(chart: str, pred: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Classes after giving every pixel its chart polygon's mean prediction (SIC) or most frequent class.

    What a model that knew the analyst's polygons, and nothing else beyond the per-pixel evidence, would
    predict: the most that averaging over the right area could add to a per-pixel model.
    """
    if polygon.size == 0:  # a test scene with no valid pixel on the scoring grid
        return as_classes(chart, pred)
    _, inverse = np.unique(polygon, return_inverse=True)
    if chart == "SIC":
        sums = np.bincount(inverse, weights=np.asarray(pred, np.float64))
        return as_classes(chart, (sums / np.bincount(inverse))[inverse])
    cls = as_classes(chart, pred).astype(np.int64)
    counts = np.zeros((inverse.max() + 1, schema.N_CLASSES[chart]), np.int64)
    np.add.at(counts, (inverse, cls), 1)
    return counts.argmax(axis=1).astype(np.uint8)[inverse]


def package_polygon_scores(package: Path, test: Sequence[Path], references: Sequence[Path], raws: Sequence[Path]
                           ) -> list[metrics.ScoreAccumulator]:  # fmt: skip
    """Per test scene: the submission's maps averaged over the scene's true chart polygons, scored."""
    from autoice.submission import read_submission

    maps = read_submission(package)
    out = []
    for f, ref, raw in zip(test, references, raws, strict=True):
        pred = maps[f.name[: schema.SCENE_KEY_LENGTH]]
        charts = read_charts(ref)
        polygon = polygons_of(raw, charts["SIC"].shape)
        if polygon is None:
            raise ValueError(f"{raw}: its chart polygons do not halve to {ref}'s grid")
        acc = metrics.ScoreAccumulator()
        for c in schema.CHARTS:
            valid = charts[c] != schema.CHART_FILL
            acc.update(c, charts[c][valid], polygon_average(c, pred[c][valid].astype(np.float64), polygon[valid]))
        out.append(acc)
    return out


def score(accs: Sequence[metrics.ScoreAccumulator], n_boot: int) -> dict[str, Any]:
    """Pooled official scores plus a scene-bootstrap 95 % interval of combined."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", metrics.ScoreWarning)
        pooled = metrics.pool(accs).result().as_dict()
    ci = metrics.bootstrap(list(accs), n_boot, seed=0)["combined"] if n_boot > 0 and accs else (np.nan, np.nan)
    return {**pooled, "combined_ci": [float(ci[0]), float(ci[1])]}


def run_baselines(train: list[ScenePixels], test: list[ScenePixels], boost_iter: int, n_boot: int, quick: bool
                  ) -> dict[str, dict[str, Any]]:  # fmt: skip
    """Fit every baseline per chart on the sampled training pixels; score it on the test pixels."""
    x_train = np.concatenate([p.x for p in train])
    y_train = np.concatenate([p.y for p in train])
    use = np.concatenate([p.use for p in train])
    x_test = np.concatenate([p.x for p in test])
    bounds = np.cumsum([0] + [p.x.shape[0] for p in test])
    with_polygons = bool(test) and all(p.polygon is not None for p in test)
    out = {}
    for name, cols, fits in model_specs(boost_iter, quick):
        t0 = time.perf_counter()
        idx = [FEATURES.index(c) for c in cols]
        accs = [metrics.ScoreAccumulator() for _ in test]
        oracle = [metrics.ScoreAccumulator() for _ in test] if name == ORACLE_OF and with_polygons else None
        for j, chart in enumerate(schema.CHARTS):
            rows = use[:, j]
            if not rows.any():
                raw = np.zeros(x_test.shape[0], dtype=np.float64)
            else:
                model = fits[chart](x_train[rows][:, idx], y_train[rows, j])
                raw = model.predict(x_test[:, idx])
            pred = as_classes(chart, raw)
            for k, acc in enumerate(accs):
                acc.update(chart, test[k].y[:, j], pred[bounds[k] : bounds[k + 1]])
                if oracle is not None:
                    mean = polygon_average(chart, raw[bounds[k] : bounds[k + 1]], test[k].polygon)  # type: ignore[arg-type]
                    oracle[k].update(chart, test[k].y[:, j], mean)
        out[name] = {**score(accs, n_boot), "seconds": round(time.perf_counter() - t0, 1), "_scenes": accs}
        log(f"{name}: combined {out[name]['combined']:.2f} ({out[name]['seconds']:.0f} s)")
        if oracle is not None:
            out[POLYGON_ORACLE] = {**score(oracle, n_boot), "seconds": 0.0, "_scenes": oracle}
    return out


# ----------------------------------------------------------------------------- U-Net
def run_unet(args: argparse.Namespace, sets: list[SeedSet], overrides: list[str], preset: str = "demo",
             work: Path | None = None) -> dict[str, Any]:  # fmt: skip
    """Train ``preset`` on all training scenes, predict and score every seed's test scenes.

    ``work`` is the run's folder (default WORKDIR/unet_<h>x<w>); the result's ``_history`` is the
    training history (``TrainResult.history``).
    """
    from autoice.config import load_config
    from autoice.predict import predict
    from autoice.submission import score_submission
    from autoice.train import train

    folder = args.workdir / "unet_train"
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.nc"):  # only our links: the set must be exactly this run's training scenes
        old.unlink()
    for s in sets:
        for f in s.train:
            link = folder / f.name
            if link.exists() or link.is_symlink():
                log(f"unet: {f.name} appears in two seeds; keeping the first")
                continue
            link.symlink_to(f.resolve())
    work = work if work is not None else args.workdir / f"unet_{args.height}x{args.width}"
    for stale in ("best.pt", "last.pt"):  # predict must not pick up an earlier run's checkpoint
        (work / "checkpoints" / stale).unlink(missing_ok=True)
    cfg = load_config(preset, overrides=overrides)
    t0 = time.perf_counter()
    result = train(cfg, folder, work, progress=False)
    t_train = time.perf_counter() - t0
    log(f"unet {preset}: trained in {t_train:.0f} s, best validation combined {result.best_score:.2f}")
    accs: list[metrics.ScoreAccumulator] = []
    averaged: list[metrics.ScoreAccumulator] | None = []
    for s in sets:
        if not s.test:  # a training-only seed
            continue
        package = work / f"upload_package_seed{s.seed}.nc"
        predict(str(work), s.test, package, progress=False)
        by_key = score_submission(package, s.reference).scenes
        accs.extend(by_key[f.name[:19]] for f in s.test)  # the baselines' scene order, for paired resampling
        if averaged is not None and len(s.raw_test) == len(s.test):
            averaged.extend(package_polygon_scores(package, s.test, s.reference, s.raw_test))
        else:
            averaged = None
    return {**score(accs, args.n_boot), "overrides": overrides, "train_seconds": round(t_train, 1),
            "seconds": round(time.perf_counter() - t0, 1), "best_val": result.best_score,
            "_scenes": accs, "_history": result.history, "_polygon_scenes": averaged}  # fmt: skip


def mean_of_runs(runs: Sequence[dict[str, Any]], n_boot: int) -> dict[str, Any]:
    """One row for a model trained ``len(runs)`` times: scores averaged over runs, interval over runs and scenes.

    Every number the runs share (scores, seconds) is their mean; the rest is the first run's. ``_runs`` holds
    every run's scenes for :func:`runs_margin`, ``run_combined`` each run's combined score. One run is returned
    as it is (its plain scene-bootstrap interval).
    """
    first = runs[0]
    if len(runs) == 1:
        return {**first, "_runs": [first["_scenes"]], "run_combined": [first["combined"]]}
    numbers = [k for k, v in first.items() if not k.startswith("_") and isinstance(v, (int, float))
               and all(isinstance(r.get(k), (int, float)) for r in runs)]  # fmt: skip
    scenes = [r["_scenes"] for r in runs]
    return {**first, **{k: float(np.mean([r[k] for r in runs])) for k in numbers},
            "combined_ci": list(runs_interval(scenes, n_boot)), "run_combined": [r["combined"] for r in runs],
            "_runs": scenes}  # fmt: skip


def paired_margin(a: Sequence[metrics.ScoreAccumulator], b: Sequence[metrics.ScoreAccumulator], n_boot: int
                  ) -> tuple[float, float]:  # fmt: skip
    """95 % interval of combined(a) - combined(b) when both are scored on the same resampled scenes.

    Paired resampling: the scene-to-scene spread of difficulty, which dominates each model's own
    interval, cancels in the difference.
    """
    return runs_margin([a], [b], n_boot)


def runs_draws(arms: Sequence[Sequence[Sequence[metrics.ScoreAccumulator]]], n_boot: int, *,
               paired_runs: bool = False) -> np.ndarray:  # fmt: skip
    """Bootstrap draws of each arm's run-mean combined score: ``(n_boot, n_arms)``.

    ``arms[i][r]`` is run ``r`` of arm ``i`` (a model trained with one training seed), its scenes in one
    order shared by every run and arm. Each draw resamples the scenes once for all arms (paired), and
    each arm's runs with replacement: a U-Net's score moves with its training seed (about a point on
    20 held-out scenes at the demo's size) as much as with the test scenes, and an interval over
    scenes alone claims a difference that another seed does not repeat. With one run per arm this is
    the plain paired scene bootstrap. ``paired_runs``: run ``r`` of every arm was trained with the same
    seed (the same validation hold-out, so the same training scenes), and a draw takes the same runs
    from each arm (arms of one run keep theirs).
    """
    n_scenes = len(arms[0][0])
    if any(len(run) != n_scenes for runs in arms for run in runs):
        raise ValueError("every run must be scored on the same scenes")
    scenes, runs_rng = np.random.default_rng(0), np.random.default_rng(1)
    counts = {len(runs) for runs in arms if len(runs) > 1}
    shared = paired_runs and len(counts) == 1
    out = np.empty((max(1, n_boot), len(arms)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", metrics.ScoreWarning)
        for k in range(out.shape[0]):
            idx = scenes.integers(0, n_scenes, size=n_scenes)
            common = runs_rng.integers(0, max(counts), size=max(counts)) if shared else None
            for i, runs in enumerate(arms):
                if len(runs) == 1:
                    pick = [0]
                else:
                    pick = common if shared else runs_rng.integers(0, len(runs), size=len(runs))
                out[k, i] = np.mean([metrics.pool([runs[r][j] for j in idx]).result().as_dict()["combined"]
                                     for r in pick])  # fmt: skip
    return out


def runs_margin(a: Sequence[Sequence[metrics.ScoreAccumulator]], b: Sequence[Sequence[metrics.ScoreAccumulator]],
                n_boot: int, *, paired_runs: bool = False) -> tuple[float, float]:  # fmt: skip
    """95 % interval of the run-mean combined of ``a`` minus that of ``b`` (:func:`runs_draws`)."""
    draws = runs_draws([a, b], n_boot, paired_runs=paired_runs)
    lo, hi = np.percentile(draws[:, 0] - draws[:, 1], [2.5, 97.5])
    return float(lo), float(hi)


def runs_interval(runs: Sequence[Sequence[metrics.ScoreAccumulator]], n_boot: int) -> tuple[float, float]:
    """95 % interval of the run-mean combined of one arm, runs and scenes resampled (:func:`runs_draws`)."""
    lo, hi = np.percentile(runs_draws([runs], n_boot)[:, 0], [2.5, 97.5])
    return float(lo), float(hi)


# ----------------------------------------------------------------------------- tables
def log(msg: str) -> None:
    """Progress on stderr, so stdout holds only the tables."""
    print(msg, file=sys.stderr, flush=True)


def md_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def marginals_table(m: Moments) -> tuple[str, list[dict[str, Any]]]:
    """Table (a) and its rows as dicts."""
    rows, data = [], []
    for v in schema.INPUT_VARIABLES:
        mean, std = m.mean_std(v)
        ok = abs(mean) <= FLAG_Z and abs(std - 1) <= FLAG_RATIO
        rows.append([f"`{v}`", f"{mean:+.3f}", f"{std:.3f}", "ok" if ok else "OFF"])
        data.append({"variable": v, "z_offset": mean, "std_ratio": std, "n": m.n[v], "ok": bool(ok)})
    return md_table(["variable", "z-offset", "std ratio", "flag"], rows), data


def _pct(x: float) -> str:
    return "n/a" if not np.isfinite(x) else f"{100 * x:.1f} %"


def _pp(a: float, b: float) -> str:
    return "n/a" if not (np.isfinite(a) and np.isfinite(b)) else f"{100 * (a - b):+.1f} pp"


def composition_table(syn: realstats.Composition, real: realstats.Composition) -> str:
    """Table (b): every figure of ``realstats.composition``, synthetic beside real."""
    rows: list[list[str]] = []

    def row(name: str, a: float, b: float) -> None:
        rows.append([name, _pct(a), _pct(b), _pp(a, b)])

    for c in schema.CHARTS:
        row(f"masked share {c}", syn.masked_share[c], real.masked_share[c])
    for c in schema.CHARTS:
        a, b = syn.class_shares[c], real.class_shares[c]
        tv = 0.5 * np.abs(a - b).sum()
        diff = " ".join(f"{100 * (x - y):+.1f}" for x, y in zip(a, b, strict=True))
        rows.append([f"{c} class shares 0..{len(a) - 1} (%)", " ".join(f"{100 * v:.1f}" for v in a),
                     " ".join(f"{100 * v:.1f}" for v in b), f"TV {100 * tv:.1f} pp: {diff}"])  # fmt: skip
    for q in syn.water_quantiles:
        row(f"per-scene water share q{round(100 * q)}", syn.water_quantiles[q], real.water_quantiles[q])
    row("scenes with >= 95 % water", syn.water_ge95, real.water_ge95)
    row("scenes with <= 5 % water", syn.water_le5, real.water_le5)
    row("ice pixels (SIC 1..10) with a valid SOD ice label", syn.ice_with_sod, real.ice_with_sod)
    row("scenes with no valid SOD ice pixel", syn.no_sod_ice, real.no_sod_ice)
    for s in sorted(set(syn.service) | set(real.service)):
        row(f"service {s}", syn.service.get(s, 0.0), real.service.get(s, 0.0))
    for r in sorted(set(syn.region) | set(real.region)):
        row(f"region {r}", syn.region.get(r, 0.0), real.region.get(r, 0.0))
    for mth in range(1, 13):
        row(f"month {mth:02d} {MONTHS[mth - 1]}", syn.month.get(mth, 0.0), real.month.get(mth, 0.0))
    jn_syn = sum(syn.month.get(m, 0.0) for m in range(6, 12))
    jn_real = sum(real.month.get(m, 0.0) for m in range(6, 12))
    row("months Jun-Nov", jn_syn, jn_real)
    head = f"figure (synthetic {syn.n_scenes} scenes, real {real.n_scenes})"
    return md_table([head, "synthetic", "real", "difference"], rows)


def baselines_table(results: dict[str, dict[str, Any]]) -> str:
    """Table (c)."""
    rows = []
    for name, r in results.items():
        lo, hi = r["combined_ci"]
        ci = "n/a" if not np.isfinite(lo) else f"[{lo:.1f}, {hi:.1f}]"
        rows.append([name, f"{r['SIC']:.2f}", f"{r['SOD']:.2f}", f"{r['FLOE']:.2f}", f"{r['combined']:.2f}", ci])
    return md_table(["model", "SIC R²", "SOD F1", "FLOE F1", "combined", "combined 95 % CI"], rows)


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, (np.floating, float)):
        return None if not np.isfinite(x) else float(x)
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, Path):
        return str(x)
    return x


def write_figures(path: Path, out: dict[str, Any]) -> None:
    """Every figure of a run as JSON (NaN as null), and say where."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_jsonable(out), indent=1) + "\n")
    print(f"figures: {path}")


# ----------------------------------------------------------------------------- main
def add_set_arguments(ap: argparse.ArgumentParser, normal: dict[str, Any], workdir: Path) -> None:
    """Options shared with bench/skill.py: set size, scene size, baselines, bootstrap, where and how."""
    ap.add_argument("--train-per-seed", type=int, default=None, help=f"default {normal['train_per_seed']}")
    ap.add_argument("--test-per-seed", type=int, default=None, help=f"default {normal['test_per_seed']}")
    ap.add_argument("--height", type=int, default=None, help=f"RTT lines, default {normal['height']}")
    ap.add_argument("--width", type=int, default=None, help=f"RTT samples, default {normal['width']}")
    ap.add_argument("--max-train-pixels", type=int, default=None,
                    help=f"baselines: sampled training pixels per chart, default {normal['max_train_pixels']}")
    ap.add_argument("--test-stride", type=int, default=None,
                    help=f"baselines: score every N-th test row and column, default {normal['test_stride']}")
    ap.add_argument("--boost-iter", type=int, default=None, help=f"boosting iterations, default {normal['boost_iter']}")
    ap.add_argument("--n-boot", type=int, default=None, help=f"bootstrap resamples, default {normal['n_boot']}")
    ap.add_argument("--workdir", type=Path, default=workdir)
    ap.add_argument("--workers", type=int, default=2, help="synthesis processes")
    ap.add_argument("--overwrite", action="store_true", help="regenerate scenes that already exist")
    ap.add_argument("--json", type=Path, default=None, help="write every figure here")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=None, help=f"default {NORMAL['seeds']}")
    add_set_arguments(ap, NORMAL, Path("bench_out/realism"))
    ap.add_argument("--quick", action="store_true", help="tiny smoke run (2 seeds x 3 + 2 scenes of 200 x 224)")
    ap.add_argument("--unet", action="store_true", help="also train and score the demo preset U-Net")
    ap.add_argument("--no-baselines", action="store_true",
                    help="tables (a) and (b) only: marginals and composition, in a minute or two")  # fmt: skip
    ap.add_argument("--unet-set", action="append", default=[], metavar="KEY=VALUE",
                    help="config override for the U-Net (repeatable), e.g. train.epochs=2")  # fmt: skip
    ap.add_argument("--unet-repeats", type=int, default=1, metavar="N",
                    help="train the U-Net N times (train.seed 0..N-1); its row is the mean of the runs and its "
                         "intervals resample the runs as well as the scenes (default 1)")  # fmt: skip
    args = ap.parse_args()
    defaults = QUICK if args.quick else NORMAL
    for k, v in defaults.items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    t_start = time.perf_counter()
    timings: dict[str, float] = {}

    sets = synthesize_all(args)
    timings["synth"] = time.perf_counter() - t_start

    t0 = time.perf_counter()
    moments = Moments()
    summaries: list[realstats.RealScene] = []
    train_px: list[ScenePixels] = []
    test_px: list[ScenePixels] = []
    n_train = sum(len(s.train) for s in sets)
    quota = max(1, args.max_train_pixels // max(1, n_train))  # per scene and chart: spread evenly
    rng = np.random.default_rng(12345)
    unsupported = 0
    for s in sets:
        for f in s.train:
            summ, px, u = read_scene(f, None, moments=moments, rng=rng, quota=quota, stride=args.test_stride)
            summaries.append(summ)
            train_px.append(px)
            unsupported += u
        raws = s.raw_test if len(s.raw_test) == len(s.test) else [None] * len(s.test)
        for f, ref, raw in zip(s.test, s.reference, raws, strict=True):
            summ, px, u = read_scene(f, ref, moments=moments, rng=None, quota=0, stride=args.test_stride, raw=raw)
            summaries.append(summ)
            test_px.append(px)
            unsupported += u
    timings["read"] = time.perf_counter() - t0
    n_sampled = {c: int(sum(p.use[:, j].sum() for p in train_px)) for j, c in enumerate(schema.CHARTS)}
    n_test_px = sum(p.x.shape[0] for p in test_px)
    log(f"read {len(summaries)} scenes in {timings['read']:.1f} s; training pixels per chart {n_sampled}; "
        f"test pixels {n_test_px}")  # fmt: skip

    # (a)
    table_a, marg = marginals_table(moments)
    print(f"\n### (a) Input marginals over all {len(summaries)} scenes (train + test)\n")
    print("Stored values are z = (x - mean) / std with the organisers' global statistics: real-like data "
          "gives z-offset ~ 0 and std ratio ~ 1. Full-grid inputs over valid pixels, 2 km inputs over every "
          "cell.\n")  # fmt: skip
    print(table_a)
    off = [d["variable"] for d in marg if not d["ok"]]
    print(f"\n{len(off)} of {len(marg)} inputs flagged OFF" + (f": {', '.join(off)}" if off else ""))

    # (b)
    syn = realstats.composition(summaries)
    real = realstats.composition(realstats.real_scenes())
    print(f"\n### (b) Composition: synthetic ({len(summaries)} scenes) vs real AI4Arctic training set "
          f"({real.n_scenes} scenes)\n")  # fmt: skip
    print(composition_table(syn, real))
    total_sic = sum(int(s.counts["SIC"].sum()) for s in summaries)
    print(f"\nsynthetic: {unsupported} of {total_sic} valid SIC pixels ({_pct(unsupported / max(1, total_sic))}) "
          "lie where the SAR has no data (no real figure)")  # fmt: skip

    if args.no_baselines:
        print(f"\ntime: synth {timings['synth']:.0f} s, read {timings['read']:.0f} s")
        return

    # (c)
    t0 = time.perf_counter()
    results = run_baselines(train_px, test_px, args.boost_iter, args.n_boot, args.quick)
    timings["baselines"] = time.perf_counter() - t0
    del train_px
    best = max((k for k in results if k not in (CONTEXT_MODEL, POLYGON_ORACLE)), key=lambda k: results[k]["combined"])
    margin_ci = None
    unet = None
    if args.unet:
        over = (QUICK_UNET if args.quick else []) + list(args.unet_set)
        t0 = time.perf_counter()
        runs = []
        for k in range(max(1, args.unet_repeats)):
            seed = [f"train.seed={k}"] if args.unet_repeats > 1 else []
            work = args.workdir / (f"unet_{args.height}x{args.width}" + (f"_seed{k}" if k else ""))
            runs.append(run_unet(args, sets, over + seed, work=work))
        timings["unet"] = time.perf_counter() - t0
        unet = mean_of_runs(runs, args.n_boot)
        results["U-Net (demo preset)"] = unet
        margin_ci = runs_margin(unet["_runs"], [results[best]["_scenes"]], args.n_boot)
        if all(r["_polygon_scenes"] for r in runs):
            oracles = [{**score(r["_polygon_scenes"], args.n_boot), "seconds": 0.0, "_scenes": r["_polygon_scenes"]}
                       for r in runs]  # fmt: skip
            results[UNET_ORACLE] = mean_of_runs(oracles, args.n_boot)
    n_test = sum(len(s.test) for s in sets)
    nth = {2: "2nd", 3: "3rd"}.get(args.test_stride, f"{args.test_stride}th")
    stride = "every pixel" if args.test_stride == 1 else f"every {nth} row and column"
    print(f"\n### (c) Per-pixel baselines: trained on <= {args.max_train_pixels} sampled pixels per chart from "
          f"{n_train} training scenes, scored (official metric, pooled) on {stride} of {n_test} held-out test "
          f"scenes; 95 % CI: {args.n_boot} scene-bootstrap resamples"
          + ("; the U-Net is scored on every pixel by `autoice score`" if unet else "") + "\n")  # fmt: skip
    print(baselines_table(results))
    b = results[best]
    weakest = min(schema.CHARTS, key=lambda c: b[c])
    label = {"SIC": "SIC R²", "SOD": "SOD F1", "FLOE": "FLOE F1"}
    print(f"\nbest per-pixel model: {best} (combined {b['combined']:.2f}); it scores lowest on "
          f"{label[weakest]} ({b[weakest]:.2f})")  # fmt: skip
    if CONTEXT_MODEL in results:
        ctx = results[CONTEXT_MODEL]
        lo, hi = paired_margin(ctx["_scenes"], b["_scenes"], args.n_boot)
        print(f"{CONTEXT_MODEL}: combined {ctx['combined']:.2f}, margin over the best per-pixel model "
              f"{ctx['combined'] - b['combined']:+.2f}, paired scene-bootstrap 95 % interval [{lo:+.1f}, {hi:+.1f}]")
    if POLYGON_ORACLE in results:  # against the model it averages (the best per-pixel one on full-size sets)
        orc, of = results[POLYGON_ORACLE], results[ORACLE_OF]
        lo, hi = paired_margin(orc["_scenes"], of["_scenes"], args.n_boot)
        print(f"room for context: {POLYGON_ORACLE} scores {orc['combined']:.2f}, "
              f"{orc['combined'] - of['combined']:+.2f} over the boosting it averages [{lo:+.1f}, {hi:+.1f}] "
              "(the most that averaging its evidence over the right area adds; a spatial model can do better only "
              "by reading patterns that no pixel shows)")  # fmt: skip
    if unet is not None:
        n_runs = len(unet["_runs"])
        each = f" (runs: {', '.join(f'{c:.2f}' for c in unet['run_combined'])})" if n_runs > 1 else ""
        how = "runs and scenes resampled" if n_runs > 1 else "paired scene-bootstrap"
        print(f"U-Net (demo preset) combined {unet['combined']:.2f}{each}: margin over the best per-pixel model "
              f"{unet['combined'] - b['combined']:+.2f}, {how} 95 % interval "
              f"[{margin_ci[0]:+.1f}, {margin_ci[1]:+.1f}]")  # fmt: skip
    if UNET_ORACLE in results and unet is not None:
        orc = results[UNET_ORACLE]
        lo, hi = runs_margin(orc["_runs"], unet["_runs"], args.n_boot, paired_runs=True)
        print(f"{UNET_ORACLE}: {orc['combined']:.2f}, {orc['combined'] - unet['combined']:+.2f} over the U-Net "
              f"[{lo:+.1f}, {hi:+.1f}] (where it is near the boosting oracle, what is left above the U-Net is where "
              "the analyst's boundaries run, not a better reading of the pixels)")  # fmt: skip

    timings["total"] = time.perf_counter() - t_start
    peak = peak_rss() / 1e9
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1e6
    print("\ntime: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items())
          + f"; peak RSS {peak:.2f} GB (largest child process {children:.2f} GB)")  # fmt: skip
    if args.json is not None:
        out = {
            "config": {k: v for k, v in vars(args).items()},
            "marginals": marg,
            "composition": {"synthetic": asdict(syn), "real": asdict(real)},
            "unsupported_sic_pixels": unsupported,
            "baselines": {k: {m: v for m, v in r.items() if not m.startswith("_")} for k, r in results.items()},
            "unet_margin_ci": margin_ci,
            "best_per_pixel": best,
            "training_pixels": n_sampled,
            "test_pixels": n_test_px,
            "timings_s": timings,
            "peak_rss_gb": peak,
        }
        write_figures(args.json, out)


if __name__ == "__main__":
    main()
