"""Per-chart losses that ignore unlabelled pixels, task weighting, and output decoding.

Targets are ``(B, 3, H, W)`` class indices in ``schema.CHARTS`` order with ``schema.CHART_FILL``
(255) where a chart has no label. Every loss is a mean over that chart's valid pixels only; a
chart with no valid pixel in the batch contributes an exact zero that is still attached to the
graph, so ``backward()`` works and the other charts keep training (no NaN from 0 / 0).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor

from autoice import schema
from autoice.models.unet import SIC_MODES


def _check_mode(sic_mode: str) -> None:
    if sic_mode not in SIC_MODES:
        raise ValueError(f"sic_mode must be one of {', '.join(SIC_MODES)}, got {sic_mode!r}")


def _is_regression(chart: str, sic_mode: str) -> bool:
    return chart == "SIC" and sic_mode == "regression"


def class_weights(counts: Mapping[str, np.ndarray], *, cap: float = 10.0) -> dict[str, Tensor]:
    """Inverse-square-root class weights per chart from training label ``counts`` (classes 0..K-1).

    Rare classes (new ice, cake ice) get more weight without the inverse frequency's extremes; the
    weights are scaled so their mean over the training pixels is 1 (the loss keeps its size, so task
    weights and learning rates keep their meaning) and capped at ``cap``. A class absent from the
    training labels gets weight 1 (it never appears in a target anyway).
    """
    out = {}
    for chart, n in counts.items():
        n = np.asarray(n, np.float64)
        share = n / max(n.sum(), 1.0)
        w = np.where(n > 0, 1.0 / np.sqrt(np.maximum(share, 1e-12)), 0.0)
        mean = float((w * share).sum())
        w = np.minimum(w / mean, cap) if mean > 0 else np.ones_like(w)
        out[chart] = torch.as_tensor(np.where(n > 0, w, 1.0), dtype=torch.float32)
    return out


def chart_losses(outputs: dict[str, Tensor], targets: Tensor, *, sic_mode: str,
                 weights: Mapping[str, Tensor] | None = None) -> dict[str, Tensor]:  # fmt: skip
    """One scalar loss per chart, over pixels whose target is not 255.

    Cross-entropy for class heads; for ``sic_mode="regression"`` the SIC loss is the MSE between the
    1-channel output and the class index (0..10) as a float.

    Args:
        outputs: ``{chart: (B, K, H, W)}`` from :class:`~autoice.models.unet.MultiTaskUNet`.
        targets: (B, 3, H, W) integer class indices (uint8 or long), 255 = ignore.
        sic_mode: ``"classification"`` or ``"regression"``.
        weights: optional per-class weights ``{chart: (K,)}`` for the cross-entropy heads
            (:func:`class_weights`); the weighted sum is still divided by the number of valid pixels.

    Returns:
        ``{chart: 0-d tensor}`` in ``schema.CHARTS`` order; 0 (with a grad_fn) for a chart without
        any valid pixel.
    """
    _check_mode(sic_mode)
    losses = {}
    for i, chart in enumerate(schema.CHARTS):
        out, target = outputs[chart], targets[:, i].long()
        valid = target != schema.CHART_FILL
        n_valid = valid.sum().clamp(min=1)
        if _is_regression(chart, sic_mode):
            # float32 so a half-precision (AMP) output cannot overflow the sum; where() rather than a
            # product so a NaN/inf prediction on an ignored pixel cannot leak in.
            pred = out[:, 0].float()
            err = torch.where(valid, pred - target.float(), torch.zeros((), dtype=pred.dtype, device=pred.device))
            losses[chart] = err.square().sum() / n_valid
        else:
            w = weights.get(chart) if weights is not None else None
            if w is not None:
                if w.numel() != out.shape[1]:
                    raise ValueError(f"{chart}: {w.numel()} class weights for a head of {out.shape[1]} classes")
                w = w.to(device=out.device, dtype=out.dtype)
            ce = F.cross_entropy(out, target, weight=w, ignore_index=schema.CHART_FILL, reduction="sum")
            losses[chart] = ce / n_valid
    return losses


def water_consistency(outputs: dict[str, Tensor], targets: Tensor, *, sic_mode: str) -> Tensor:
    """SIC away from 0 where the SOD and FLOE heads agree on open water, over pixels with any label.

    Per pixel ``w = P_SOD(water) * P_FLOE(water)`` (detached: the class heads say where water is, the
    SIC head follows) times, for regression SIC, ``relu(SIC)^2`` (class units), for classification SIC
    ``-log P_SIC(0)``; the mean over pixels where any chart has a label (the scene, not the padding).
    The demo maps showed 10-30 % SIC over water that both other heads call water (issue 9).
    """
    _check_mode(sic_mode)
    inside = (targets != schema.CHART_FILL).any(dim=1)
    # class 0 is open water (ice free) in every chart (schema.CLASS_NAMES)
    p = (F.softmax(outputs["SOD"].float(), dim=1)[:, 0] * F.softmax(outputs["FLOE"].float(), dim=1)[:, 0]).detach()
    sic = outputs["SIC"].float()
    if sic_mode == "regression":
        away = F.relu(sic[:, 0]).square()
    else:
        away = -F.log_softmax(sic, dim=1)[:, 0]
    term = torch.where(inside, p * away, torch.zeros((), dtype=away.dtype, device=away.device))
    return term.sum() / inside.sum().clamp(min=1)


def weighted_loss(losses: Mapping[str, Tensor], weights: Mapping[str, float]) -> Tensor:
    """Sum of ``weights[chart] * losses[chart]`` over the charts in ``losses`` (no normalisation).

    Raises:
        ValueError: if ``losses`` is empty or a chart in it has no weight.
    """
    missing = [c for c in losses if c not in weights]
    if missing:
        raise ValueError(f"no task weight for {', '.join(missing)} (weights given: {', '.join(weights)})")
    if not losses:
        raise ValueError("no losses to weight")
    return torch.stack([float(weights[c]) * loss for c, loss in losses.items()]).sum()


def dwa_weights(history: Sequence[Mapping[str, float]], base: Mapping[str, float], *,
                temperature: float) -> dict[str, float]:  # fmt: skip
    """Dynamic weight averaging (Liu et al. 2019, CVPR): the task weights for the next epoch.

    ``base[c] * K * softmax_c(r_c / temperature)`` with ``r_c`` the ratio of chart ``c``'s mean training
    loss in the last epoch to the one before (``history`` records with ``train_loss_<chart>``), K the
    number of charts: a chart whose loss stalls gains weight, the weights' mean stays 1 x ``base``. With
    fewer than two epochs (or a non-finite or zero loss) the weights are ``base``.
    """
    charts = list(base)
    if len(history) < 2:
        return dict(base)
    last, before = history[-1], history[-2]
    try:
        r = [float(last[f"train_loss_{c}"]) / float(before[f"train_loss_{c}"]) for c in charts]
    except (KeyError, ZeroDivisionError):
        return dict(base)
    if not all(math.isfinite(v) for v in r):
        return dict(base)
    z = [v / temperature for v in r]
    top = max(z)
    e = [math.exp(v - top) for v in z]
    return {c: float(base[c]) * len(charts) * ei / sum(e) for c, ei in zip(charts, e, strict=True)}


def to_classes(outputs: dict[str, Tensor], *, sic_mode: str) -> dict[str, Tensor]:
    """Predicted class index per pixel, ``{chart: (B, H, W) uint8}``.

    Class heads take the argmax. Regression SIC is rounded with ``torch.round`` (half to even:
    4.5 -> 4, 5.5 -> 6) and clipped to 0..10 (-0.7 -> 0, 10.6 -> 10); NaN becomes 0.
    """
    _check_mode(sic_mode)
    classes = {}
    for chart, out in outputs.items():
        if _is_regression(chart, sic_mode):
            value = torch.nan_to_num(out[:, 0].detach(), nan=0.0)
            classes[chart] = value.round().clamp(0, schema.N_CLASSES["SIC"] - 1).to(torch.uint8)
        else:
            classes[chart] = out.argmax(dim=1).to(torch.uint8)
    return classes


def class_probabilities(outputs: dict[str, Tensor], *, sic_mode: str) -> dict[str, Tensor]:
    """Softmax over classes per head, ``{chart: (B, K, H, W)}``, for TTA averaging and uncertainty.

    Regression SIC has no distribution: its raw value is returned as (B, H, W) float.
    """
    _check_mode(sic_mode)
    return {
        chart: out[:, 0] if _is_regression(chart, sic_mode) else out.softmax(dim=1) for chart, out in outputs.items()
    }
