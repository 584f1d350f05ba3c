"""The benchmark's resampling statistics (bench/realism.py): paired scenes, training runs resampled too."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from autoice import metrics, schema

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from realism import (  # noqa: E402
    Moments,
    mean_of_runs,
    package_polygon_scores,
    paired_margin,
    polygon_average,
    polygons_of,
    read_charts,
    read_scene,
    runs_draws,
    runs_interval,
    runs_margin,
    score,
)


def scenes(errors: list[float]) -> list[metrics.ScoreAccumulator]:
    """One accumulator per scene: every chart right except a share ``e`` of its pixels.

    The labels and the order in which pixels go wrong are the same for every call: a model with larger
    errors is wrong wherever one with smaller errors is, on every scene.
    """
    rng = np.random.default_rng(0)
    out = []
    for e in errors:
        acc = metrics.ScoreAccumulator()
        for chart in schema.CHARTS:
            y = rng.integers(0, schema.N_CLASSES[chart], 200)
            wrong = rng.random(200) < e
            acc.update(chart, y, np.where(wrong, (y + 1) % schema.N_CLASSES[chart], y))
        out.append(acc)
    return out


def combined(accs: list[metrics.ScoreAccumulator]) -> float:
    return metrics.pool(accs).result().as_dict()["combined"]


def test_one_run_per_arm_is_the_paired_scene_bootstrap():
    a, b = scenes([0.1, 0.3, 0.05, 0.2, 0.4]), scenes([0.12, 0.35, 0.1, 0.25, 0.45])
    lo, hi = paired_margin(a, b, 100)
    assert (lo, hi) == runs_margin([a], [b], 100)
    draws = runs_draws([[a], [b]], 100)
    assert draws.shape == (100, 2)
    assert lo < combined(a) - combined(b) < hi and lo > 0  # a is better on every scene


def test_a_model_trained_several_times_is_the_mean_of_its_runs():
    """bench/realism.py --unet-repeats, bench/skill.py --repeats: the row is each figure's mean, the interval spans
    both runs; one run is its own row."""
    good, bad = scenes([0.05, 0.1, 0.05, 0.1]), scenes([0.3, 0.35, 0.3, 0.35])
    runs = [{**score(acc, 0), "seconds": sec, "overrides": ["a=1"], "_scenes": acc}
            for acc, sec in ((good, 2.0), (bad, 3.0))]  # fmt: skip
    row = mean_of_runs(runs, 200)
    assert row["combined"] == pytest.approx((combined(good) + combined(bad)) / 2)
    assert row["run_combined"] == pytest.approx([combined(good), combined(bad)])
    assert row["_runs"] == [good, bad] and row["seconds"] == 2.5 and row["overrides"] == ["a=1"]
    lo, hi = row["combined_ci"]
    assert lo < combined(bad) + 1 and hi > combined(good) - 1  # the runs' spread, not the scenes' alone
    one = mean_of_runs(runs[:1], 200)
    assert one["_runs"] == [good] and one["_scenes"] is good and one["combined"] == combined(good)


def test_runs_that_disagree_widen_the_interval():
    """Two runs of one model that differ as much as two training seeds do: the interval covers both."""
    errors = [0.1, 0.2, 0.15, 0.3, 0.25, 0.1]
    good, bad = scenes(errors), scenes([e + 0.1 for e in errors])
    other = scenes([e + 0.05 for e in errors])
    lo1, hi1 = runs_margin([good], [other], 100)
    lo2, hi2 = runs_margin([good, bad], [other], 100)
    assert lo1 > 0  # one lucky run looks like a clear win over the other model
    assert lo2 < 0 < hi2  # with the unlucky seed it does not
    lo, hi = runs_interval([good, bad], 100)
    assert lo <= combined(bad) and hi >= combined(good) - 1.0
    with pytest.raises(ValueError, match="same scenes"):
        runs_draws([[good, bad[:-1]]], 10)


def test_runs_of_one_seed_can_be_paired():
    """Runs trained with the same seed share their training scenes: pairing them removes the seed's share."""
    errors = [0.1, 0.2, 0.15, 0.3, 0.25, 0.1]
    a = [scenes(errors), scenes([e + 0.1 for e in errors])]  # seed 0 drew well, seed 1 badly, for both models
    b = [scenes([e + 0.02 for e in errors]), scenes([e + 0.12 for e in errors])]
    lo, hi = runs_margin(a, b, 100)
    assert lo < 0 < hi  # unpaired: the seeds' spread hides the small, steady difference
    lo, hi = runs_margin(a, b, 100, paired_runs=True)
    assert 0 < lo < hi


def test_polygon_average_gives_each_polygon_its_mean_or_most_frequent_class():
    polygon = np.array([4, 4, 4, 9, 9, 2])
    sic = polygon_average("SIC", np.array([1.0, 2.0, 6.0, 8.2, 9.6, 0.4]), polygon)
    assert sic.tolist() == [3, 3, 3, 9, 9, 0]  # means 3.0, 8.9, 0.4, then rounded
    sod = polygon_average("SOD", np.array([1, 1, 4, 5, 2, 5]), polygon)
    assert sod.tolist() == [1, 1, 1, 2, 2, 5]  # a tie goes to the lower class, as argmax does
    # a test scene with no valid pixel on the scoring grid (all of it masked) has nothing to average
    assert polygon_average("SOD", np.zeros(0), np.zeros(0, np.int64)).size == 0
    assert polygon_average("SIC", np.zeros(0), np.zeros(0, np.int64)).size == 0


def _purity(polygon: np.ndarray, labels: np.ndarray) -> float:
    """Share of valid pixels that carry their polygon's most frequent label."""
    agree = total = 0
    for q in np.unique(polygon):
        v = labels[(polygon == q) & (labels != schema.CHART_FILL)]
        if v.size:
            agree += np.bincount(v).max()
            total += v.size
    return agree / total


def test_test_pixels_carry_the_chart_polygon_of_their_raw_scene(tmp_path):
    """The oracle's polygons come from the raw file: a polygon holds one label per chart.

    Only pixels on a polygon's edge may differ (an 80 m pixel takes the largest id and, separately, the
    largest label of its four 40 m pixels).
    """
    from autoice import synth

    res = synth.synthesize(tmp_path, n_train=0, n_test=1, height=96, width=128, seed=11, progress=False)
    _, px, _ = read_scene(res.test[0], res.reference[0], moments=Moments(), rng=None, quota=0, stride=1,
                          raw=res.raw[0])  # fmt: skip
    assert px.polygon is not None and px.polygon.shape == (px.y.shape[0],)
    assert np.unique(px.polygon).size > 3
    for j in range(len(schema.CHARTS)):
        assert _purity(px.polygon, px.y[:, j]) > 0.95, schema.CHARTS[j]
    # not vacuous: polygons shifted by 8 pixels hold mixed labels
    whole = polygons_of(res.raw[0], (96, 128))
    assert whole is not None and polygons_of(res.raw[0], (96, 127)) is None
    labels = _read_sic(res.reference[0]).ravel()
    shifted = np.roll(whole, 8, axis=1).ravel()
    assert _purity(whole.ravel(), labels) > 0.95
    assert _purity(shifted, labels) < 0.85


def test_a_package_averaged_over_the_true_polygons_removes_scatter_inside_them(tmp_path):
    """The U-Net oracle: maps right on average inside each polygon but scattered score ~perfect once averaged."""
    from autoice import synth
    from autoice.submission import write_submission

    res = synth.synthesize(tmp_path, n_train=0, n_test=1, height=96, width=128, seed=11, progress=False)
    ref = read_charts(res.reference[0])
    rng = np.random.default_rng(0)
    noisy = {}
    for c in schema.CHARTS:
        y = np.where(ref[c] == schema.CHART_FILL, 0, ref[c]).astype(np.int64)
        flip = rng.random(y.shape) < 0.3  # 30 % of the pixels one class up or down: the majority stays right
        noisy[c] = np.clip(y + flip * rng.choice([-1, 1], y.shape), 0, schema.N_CLASSES[c] - 1).astype(np.uint8)
    package = write_submission({res.test[0].name[:19]: noisy}, tmp_path / "upload_package.nc")
    [acc] = package_polygon_scores(package, res.test, res.reference, res.raw[:1])
    raw = metrics.ScoreAccumulator()
    for c in schema.CHARTS:
        valid = ref[c] != schema.CHART_FILL
        raw.update(c, ref[c][valid], noisy[c][valid])
    averaged, scattered = acc.result().as_dict(), raw.result().as_dict()
    assert averaged["combined"] > 97 and averaged["combined"] - scattered["combined"] > 4, (scattered, averaged)


def _read_sic(path: Path) -> np.ndarray:
    import netCDF4

    with netCDF4.Dataset(path) as nc:
        nc.set_auto_maskandscale(False)
        return np.asarray(nc.variables["SIC"][:])


def test_chart_structure_ranks_classes_by_distance_from_water():
    """bench/chart_structure.py: stages that grow away from the water polygon correlate +1, reversed -1."""
    from chart_structure import polygon_correlations

    pid = np.repeat(np.arange(10)[None, :], 5, axis=0).repeat(4, axis=1)  # 10 vertical strips, id 0..9
    pid += 1  # ids 1..10; strip 1 is water
    stage = {q: (10, 1 + (q - 2) * 4 // 9, 255) for q in range(2, 11)}  # ages away from the water
    r = polygon_correlations(pid, stage, {1})
    assert r["SOD"] > 0.9 and np.isnan(r["SIC"]) and np.isnan(r["FLOE"])  # one SIC class; FLOE masked
    reverse = {q: (10, 5 - (q - 2) * 4 // 9, 255) for q in range(2, 11)}
    assert polygon_correlations(pid, reverse, {1})["SOD"] < -0.9
    assert np.isnan(polygon_correlations(pid, stage, set())["SOD"])  # no water: nothing to measure from


def test_chart_structure_counts_sea_polygons_per_400_km_tile():
    """bench/chart_structure.py: polygons of 100 km2 or more, land and slivers left out, per 400 km tile."""
    from chart_structure import sea_polygons, tile_counts

    pid = np.zeros((400, 800), np.int64)  # 1 km cells: two 400 km tiles side by side
    pid[:, :200], pid[:, 200:400] = 1, 2  # left tile: two sea polygons
    pid[:5, :5] = 3  # a 25 km2 sliver
    pid[:, 400:] = 4  # right tile: one polygon, land
    assert sea_polygons(pid, {1, 2, 3}, 1.0) == 2
    assert sea_polygons(pid, {1, 2, 3}, 10.0) == 3  # the same cells 10 km wide: the sliver counts
    assert tile_counts(pid, {1, 2, 3}, 1.0) == [2, 0]
    pid[:, 600:] = 0  # half of the right tile uncharted: still counted (>= 30 % covered) ...
    assert tile_counts(pid, {1, 2, 3, 4}, 1.0) == [2, 1]
    pid[:, 500:] = 0  # ... a quarter is not
    assert tile_counts(pid, {1, 2, 3, 4}, 1.0) == [2]
