"""The benchmark's resampling statistics (bench/realism.py): paired scenes, training runs resampled too."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from autoice import metrics, schema

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from realism import paired_margin, runs_draws, runs_interval, runs_margin  # noqa: E402


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
