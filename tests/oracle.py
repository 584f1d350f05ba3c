"""Test oracles: the organisers' way of scoring, with scikit-learn (what our streaming metric must equal),
and a network's classes computed directly (what every form of a logged model must give)."""

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


def network_classes(net, cfg, x: np.ndarray) -> dict[str, np.ndarray]:
    """The network run directly on (B, C, H, W), each patch mirror-padded by the demo preset's edge margin
    (``np.pad``) and cropped, as `autoice predict` runs a scene: uint8 (B, H, W) classes per chart."""
    import torch

    from autoice.models.losses import to_classes

    assert cfg.model.water_rule == 0 and cfg.model.edge_margin == 16  # the demo preset's
    m = min(cfg.model.edge_margin, x.shape[2] - 1, x.shape[3] - 1)
    padded = np.pad(np.asarray(x, dtype=np.float32), ((0, 0), (0, 0), (m, m), (m, m)), mode="reflect")
    net.eval()
    with torch.no_grad():
        out = to_classes(net(torch.from_numpy(padded)), sic_mode=cfg.model.sic_mode)
    return {c: out[c].numpy()[:, m : m + x.shape[2], m : m + x.shape[3]] for c in schema.CHARTS}
