"""The organisers' way of scoring, with scikit-learn: the oracle our streaming metric must equal."""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.metrics import f1_score, r2_score

from autoice import schema


def sklearn_scores(truth: dict, preds: dict) -> dict[str, float]:
    """Pool every scene (255 references dropped) and score each chart as fractions (not percent)."""
    out = {}
    for chart in schema.CHARTS:
        t = np.concatenate([truth[k][chart].ravel() for k in sorted(truth)])
        p = np.concatenate([preds[k][chart].ravel() for k in sorted(truth)])
        keep = t != schema.CHART_FILL
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if chart == "SIC":
                out[chart] = float(r2_score(t[keep], p[keep]))
            else:
                out[chart] = float(f1_score(t[keep], p[keep], average="weighted"))
    return out
