"""The streaming metric equals scikit-learn's on the concatenated masked pixels, edge cases included."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.metrics import f1_score, precision_recall_fscore_support, r2_score

from autoice import schema
from autoice.metrics import (
    ChartAccumulator,
    ScoreAccumulator,
    ScoreWarning,
    bootstrap,
    combined_score,
    pool,
    r2_score_classes,
    to_percent,
    weighted_f1,
)

TOL = 1e-9
FILL = schema.CHART_FILL


def _sk(chart, t, p):
    keep = t != FILL
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if chart == "SIC":
            return r2_score(t[keep], p[keep])
        return f1_score(t[keep], p[keep], average="weighted")


def _random_case(rng, chart):
    n_cls = schema.N_CLASSES[chart]
    size = int(rng.integers(2, 3000))
    k = int(rng.integers(1, n_cls + 1))  # sometimes only a few classes present
    t = rng.integers(0, k, size).astype(np.uint8)
    t[rng.random(size) < rng.random() * 0.6] = FILL
    p = t.copy()
    wrong = rng.random(size) < rng.random()
    p[wrong] = rng.integers(0, n_cls, int(wrong.sum()))
    return t, p


@pytest.mark.parametrize("chart", schema.CHARTS)
def test_random_inputs_equal_sklearn(chart):
    rng = np.random.default_rng(abs(hash(chart)) % 2**32)
    for _ in range(150):
        t, p = _random_case(rng, chart)
        if (t != FILL).sum() < 2:
            continue
        acc = ChartAccumulator(chart)
        acc.update(t, p)
        assert abs(acc.score() - _sk(chart, t, p)) <= TOL


def test_chunked_and_merged_equal_one_pass():
    rng = np.random.default_rng(3)
    scenes = [_random_case(rng, "SOD") for _ in range(5)]
    pooled = ScoreAccumulator()
    per_scene = []
    for t, p in scenes:
        acc = ScoreAccumulator()
        for chart in schema.CHARTS:
            for part in np.array_split(np.arange(t.size), 3):  # several chunks per scene
                acc.update(chart, t[part], np.minimum(p[part], schema.N_CLASSES[chart] - 1))
        per_scene.append(acc)
    pooled = pool(per_scene)
    t_all = np.concatenate([t for t, _ in scenes])
    res = pooled.result()
    for chart in schema.CHARTS:
        p_all = np.concatenate([np.minimum(p, schema.N_CLASSES[chart] - 1) for _, p in scenes])
        assert abs(pooled.charts[chart].score() - _sk(chart, t_all, p_all)) <= TOL
        assert res.charts[chart] == float(np.round(_sk(chart, t_all, p_all) * 100, 3))
    assert res.n_valid["SOD"] == int((t_all != FILL).sum())


def test_2d_arrays_and_plain_functions():
    rng = np.random.default_rng(4)
    t = rng.integers(0, 11, (40, 50)).astype(np.uint8)
    t[:5] = FILL
    p = rng.integers(0, 11, (40, 50)).astype(np.uint8)
    assert abs(r2_score_classes(t, p) - _sk("SIC", t.ravel(), p.ravel())) <= TOL
    assert abs(weighted_f1(t, p) - _sk("SOD", t.ravel(), p.ravel())) <= TOL


def test_uint8_differences_do_not_wrap():
    # 0 - 10 in uint8 would wrap to 246: residuals must be computed in signed arithmetic
    t = np.array([0, 0, 10, 10], np.uint8)
    p = np.array([10, 10, 0, 0], np.uint8)
    assert r2_score_classes(t, p) == pytest.approx(r2_score(t.astype(int), p.astype(int)), abs=TOL)


@pytest.mark.parametrize(
    ("t", "p"),
    [
        ([3, 3, 3, 3], [3, 3, 3, 3]),  # one class only, perfect -> sklearn 1.0
        ([3, 3, 3, 3], [3, 4, 3, 3]),  # one class only, imperfect -> R2 0.0 (force_finite)
        ([0, 5, 10, 7], [4, 4, 4, 4]),  # constant predictions
        ([2, 2, 2, 2], [5, 5, 5, 5]),  # constant both, all wrong; F1 label 5 only in predictions
        ([1, 1, 2, 2, FILL, FILL], [1, 9, 2, 9, 0, 0]),  # labels present only in predictions
        ([1, 2, FILL, FILL], [FILL, FILL, 3, 3]),  # predicted 255 at valid pixels is a label too
        ([0, 1], [1, 0]),
    ],
)
def test_adversarial_cases_equal_sklearn(t, p):
    t, p = np.array(t, np.uint8), np.array(p, np.uint8)
    for chart in ("SIC", "SOD"):
        acc = ChartAccumulator(chart)
        acc.update(t, p)
        assert abs(acc.score() - _sk(chart, t, p)) <= TOL, chart


def test_empty_mask_scores_zero_with_warning():
    t = np.full(10, FILL, np.uint8)
    p = np.zeros(10, np.uint8)
    for chart in schema.CHARTS:
        acc = ChartAccumulator(chart)
        acc.update(t, p)
        with pytest.warns(ScoreWarning, match="no valid reference pixel"):
            assert acc.score() == 0.0
    # the same on zero-length input
    with pytest.warns(ScoreWarning):
        assert weighted_f1(np.array([], np.uint8), np.array([], np.uint8)) == 0.0


def test_single_valid_pixel_r2_is_nan_like_sklearn():
    t = np.array([4, FILL], np.uint8)
    p = np.array([4, 0], np.uint8)
    with pytest.warns(ScoreWarning, match="one valid pixel"):
        assert np.isnan(r2_score_classes(t, p))
    assert np.isnan(_sk("SIC", t, p))
    assert weighted_f1(t, p) == _sk("SOD", t, p) == 1.0


def test_float_sic_predictions_are_not_rounded():
    rng = np.random.default_rng(5)
    t = rng.integers(0, 11, 500).astype(np.uint8)
    t[:50] = FILL
    p = np.clip(t + rng.normal(0, 1.2, 500), 0, 10)
    p[:50] = np.nan  # predictions at masked pixels are free, even NaN
    acc = ChartAccumulator("SIC")
    acc.update(t[:200], p[:200])
    acc.update(t[200:], p[200:].astype(np.float32))
    keep = t != FILL
    expected = r2_score(t[keep], np.concatenate([p[:200], p[200:].astype(np.float32)])[keep])
    assert abs(acc.score() - expected) <= TOL
    assert acc.n_valid == 450
    assert acc.confusion_matrix().sum() == 450  # rounded predictions feed the per-class figures
    with pytest.raises(TypeError, match="SOD predictions must be integer"):
        ChartAccumulator("SOD").update(t, p)
    with pytest.raises(ValueError, match="NaN"):
        ChartAccumulator("SIC").update(np.zeros(3, np.uint8), np.array([0.0, np.nan, 1.0]))


def test_mixed_integer_and_float_chunks():
    rng = np.random.default_rng(6)
    t = rng.integers(0, 11, 400).astype(np.uint8)
    p_int = rng.integers(0, 11, 400).astype(np.uint8)
    p_float = p_int[200:] + rng.normal(0, 0.3, 200)
    acc = ChartAccumulator("SIC")
    acc.update(t[:200], p_int[:200])
    acc.update(t[200:], p_float)
    expected = r2_score(t, np.concatenate([p_int[:200], p_float]))
    assert abs(acc.score() - expected) <= TOL
    merged = acc.merge(ChartAccumulator("SIC"))
    assert merged.score() == acc.score()


def test_large_counts_stay_exact():
    # ~3e9 pixels worth of counts: R2 sums exceed float exactness of naive float32/streaming means
    acc = ChartAccumulator("SIC")
    acc.confusion[10, 10] = 1_500_000_000
    acc.confusion[0, 0] = 1_500_000_000
    acc.confusion[0, 1] = 7
    n = 3_000_000_007
    ss_tot = 100 * 1_500_000_000 - (10 * 1_500_000_000) ** 2 / n
    assert acc.score() == pytest.approx(1 - 7 / ss_tot, abs=1e-15)


def test_per_class_equals_sklearn():
    rng = np.random.default_rng(7)
    t = rng.integers(0, 6, 800).astype(np.uint8)
    t[:100] = FILL
    p = rng.integers(0, 6, 800).astype(np.uint8)
    acc = ChartAccumulator("SOD")
    acc.update(t, p)
    st = acc.per_class()
    keep = t != FILL
    prec, rec, f1, sup = precision_recall_fscore_support(t[keep], p[keep], labels=range(6), zero_division=0)
    np.testing.assert_allclose(st.precision, prec, atol=TOL)
    np.testing.assert_allclose(st.recall, rec, atol=TOL)
    np.testing.assert_allclose(st.f1, f1, atol=TOL)
    np.testing.assert_array_equal(st.support, sup)
    cm = acc.confusion_matrix()
    assert cm.shape == (6, 6)
    assert cm.sum() == keep.sum()
    assert cm[2, 3] == int(((t == 2) & (p == 3)).sum())


def test_rounding_and_combined_follow_the_organisers():
    assert to_percent(0.123456789) == 12.346
    assert to_percent(-0.5) == -50.0
    # (2 * SIC + 2 * SOD + FLOE) / 5, rounded to 3 decimals
    assert combined_score(92.02, 88.61, 70.70) == round((2 * 92.02 + 2 * 88.61 + 70.70) / 5, 3)
    assert combined_score(0.0, 0.0, 0.0) == 0.0


def test_missing_chart_scores_zero():
    rng = np.random.default_rng(8)
    acc = ScoreAccumulator()
    t = rng.integers(0, 6, 300).astype(np.uint8)
    acc.update("SIC", t, t)
    acc.update("SOD", t, t)
    acc.mark_missing("FLOE")
    res = acc.result()
    assert res.charts == {"SIC": 100.0, "SOD": 100.0, "FLOE": 0.0}
    assert res.missing == ("FLOE",)
    assert res.combined == 80.0
    # missing in one scene -> missing in the pool
    other = ScoreAccumulator()
    other.update("FLOE", t, t)
    assert pool([acc, other]).result().charts["FLOE"] == 0.0


def test_empty_chart_is_nan_for_subsets_zero_otherwise():
    t = np.arange(6, dtype=np.uint8).repeat(5)
    acc = ScoreAccumulator()
    acc.update("SIC", t, t)
    acc.update("SOD", t, t)
    acc.update("FLOE", np.full_like(t, FILL), t)  # nothing to score in FLOE
    acc.mark_missing("SOD")
    with warnings.catch_warnings():
        warnings.simplefilter("error", ScoreWarning)  # a subset's empty chart is silent
        res = acc.result(empty_nan=True)
    assert res.charts["SIC"] == 100.0 and res.charts["SOD"] == 0.0  # the missing rule still holds
    assert np.isnan(res.charts["FLOE"]) and np.isnan(res.combined)
    assert res.n_valid == {"SIC": 30, "SOD": 30, "FLOE": 0}
    with pytest.warns(ScoreWarning, match="no valid reference pixel"):
        official = acc.result()  # the whole test set keeps the 0-with-warning rule
    assert official.charts["FLOE"] == 0.0 and official.combined == 40.0


def test_input_validation():
    acc = ChartAccumulator("SOD")
    with pytest.raises(ValueError, match="differ in size"):
        acc.update(np.zeros(3, np.uint8), np.zeros(4, np.uint8))
    with pytest.raises(ValueError, match="outside 0..255"):
        acc.update(np.zeros(2, np.int64), np.array([1, 300]))
    with pytest.raises(ValueError, match="unknown chart"):
        ChartAccumulator("ICE")
    acc.update(np.array([1, 2], np.int64), np.array([1, 2], np.int32))  # other integer dtypes are fine
    assert acc.score() == 1.0


def _scene(rng, quality):
    acc = ScoreAccumulator()
    for chart in schema.CHARTS:
        n = schema.N_CLASSES[chart]
        t = rng.integers(0, n, 2000).astype(np.uint8)
        p = np.where(rng.random(2000) < quality, t, rng.integers(0, n, 2000)).astype(np.uint8)
        acc.update(chart, t, p)
    return acc


def test_bootstrap_replicates_are_exact_resamples():
    rng = np.random.default_rng(9)
    scenes = [_scene(rng, q) for q in (0.5, 0.6, 0.7, 0.8, 0.9)]
    ci = bootstrap(scenes, 300, seed=1)
    pooled = pool(scenes).result()
    assert set(ci) == {"SIC", "SOD", "FLOE", "combined"}
    for key, (lo, hi) in ci.items():
        value = pooled.combined if key == "combined" else pooled.charts[key]
        assert lo < value < hi
        assert hi - lo > 1.0  # scene qualities differ a lot: a real spread
    assert bootstrap(scenes, 300, seed=1) == ci  # seeded
    # with one scene every replicate is that scene: a zero-width interval at its score
    single = bootstrap(scenes[:1], 20)
    assert single["SOD"] == (scenes[0].result().charts["SOD"],) * 2
    with pytest.raises(ValueError):
        bootstrap([], 10)
