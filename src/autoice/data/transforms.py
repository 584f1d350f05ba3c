"""Augmentation of training batches on tensors, on whatever device the batch is on.

Every sample gets its own random draw, and inputs and labels always get the same geometry:

- flips (horizontal, vertical, each with probability 1/2) and +-90 degree rotations (square
  patches): exact pixel permutations when no rescaling is configured;
- arbitrary rotation (``aug.rotation``): with probability ``aug.rotation_prob`` an integer angle
  uniform in ``[-rotation, rotation - 1]`` degrees (clockwise positive), about the patch centre;
- random rescale by ``s`` in ``[min, max]`` about the patch centre (with probability
  ``aug.scale_prob``, otherwise ``s = max``), combined with the flips and rotations into one
  resampling pass (``grid_sample``: inputs ``aug.resample``, labels nearest); uncovered pixels
  are filled with 0 (inputs) and 255 (labels), zooming in crops back to the patch;
- CutMix (``aug.cutmix``): per sample (``cutmix_mode=sample``: each sample its own draw and box,
  pasted from another sample) or per batch (``batch``: one draw, one box with area share
  ``1 - lambda``, ``lambda ~ Beta(1, 1)``, and partners by a random permutation, as MMSeaIce).

Random numbers come from the given generator only (drawn on its device), so a seeded generator
reproduces a run.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from autoice import schema
from autoice.config import AugmentConfig


def _rand(n: int, generator: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=generator, device=generator.device).cpu()


def _dihedral(x: torch.Tensor, hflip: torch.Tensor, vflip: torch.Tensor, rot: torch.Tensor) -> torch.Tensor:
    """Exact flips then quarter turns per sample (pixel permutations, no resampling)."""
    out = torch.empty_like(x)
    for i, (h, v, r) in enumerate(zip(hflip.tolist(), vflip.tolist(), rot.tolist(), strict=True)):
        dims = {-1} if h else set()
        dims ^= {-2} if v else set()
        if r:  # rot90 by +1 = flip the last axis then transpose; by -1 = flip the other axis then transpose
            dims ^= {-1} if r == 1 else {-2}
        t = x[i].flip(sorted(dims)) if dims else x[i]
        out[i].copy_(t.transpose(-2, -1) if r else t)
    return out


def _resample(x: torch.Tensor, y: torch.Tensor, hflip: torch.Tensor, vflip: torch.Tensor, rot: torch.Tensor,
              scale: torch.Tensor, angle: torch.Tensor | None = None, mode: str = "bilinear",
              ) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """Flips, quarter turns, rotation by ``angle`` degrees and rescale about the centre, one ``grid_sample``.

    The grid maps output to input positions, so the flips come first and the rotation (inverted)
    after them: the patch is flipped, then rotated and scaled, as torchvision's ``affine`` would.
    """
    b = x.shape[0]
    flips = torch.ones(b, 2)
    flips[:, 0] = torch.where(hflip, -1.0, 1.0)  # x (width) axis
    flips[:, 1] = torch.where(vflip, -1.0, 1.0)
    r = rot.float()
    rotation = torch.stack([torch.stack([1 - r.abs(), -r], -1), torch.stack([r, 1 - r.abs()], -1)], -2)
    linear = rotation @ torch.diag_embed(flips)
    if angle is not None:  # inverse of a clockwise turn in (x right, y down) coordinates
        a = torch.deg2rad(angle.double())
        c, s = torch.cos(a), torch.sin(a)
        inverse = torch.stack([torch.stack([c, s], -1), torch.stack([-s, c], -1)], -2).float()
        linear = linear @ inverse
    linear = linear / scale[:, None, None]
    theta = torch.cat([linear, torch.zeros(b, 2, 1)], dim=2).to(device=x.device, dtype=torch.float32)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    xs = F.grid_sample(x.float(), grid, mode=mode, padding_mode="zeros", align_corners=False)
    # labels + 1 so that the zero padding reads back as -1 -> CHART_FILL
    ys = F.grid_sample(y.float() + 1, grid, mode="nearest", padding_mode="zeros", align_corners=False)
    ys = ys.round().long() - 1
    ys = torch.where(ys < 0, torch.full_like(ys, schema.CHART_FILL), ys).to(y.dtype)
    return xs.to(x.dtype), ys


def _cutmix(x: torch.Tensor, y: torch.Tensor, prob: float, generator: torch.Generator) -> None:
    """Paste a random box of another sample into ``x`` and ``y`` (in place) with probability ``prob``."""
    b, _, h, w = x.shape
    if b < 2 or prob <= 0:
        return
    u = _rand(5 * b, generator).view(5, b)
    order = torch.argsort(_rand(b, generator))
    partner = torch.empty(b, dtype=torch.long)
    partner[order] = order.roll(-1)  # a derangement: nobody pastes from itself
    boxes = []
    for i in torch.nonzero(u[0] < prob).flatten().tolist():
        side = (1.0 - float(u[1, i])) ** 0.5  # box area share ~ U(0, 1), as in CutMix
        bh, bw = max(1, round(h * side)), max(1, round(w * side))
        cy, cx = int(u[2, i] * h), int(u[3, i] * w)
        r0, r1 = max(cy - bh // 2, 0), min(cy - bh // 2 + bh, h)
        c0, c1 = max(cx - bw // 2, 0), min(cx - bw // 2 + bw, w)
        j = int(partner[i])
        boxes.append((i, r0, r1, c0, c1, x[j, :, r0:r1, c0:c1].clone(), y[j, :, r0:r1, c0:c1].clone()))
    for i, r0, r1, c0, c1, xb, yb in boxes:
        x[i, :, r0:r1, c0:c1] = xb
        y[i, :, r0:r1, c0:c1] = yb


def cutmix_batch(x: torch.Tensor, y: torch.Tensor, prob: float, generator: torch.Generator
                 ) -> tuple[torch.Tensor, tuple[int, int, int, int]] | None:  # fmt: skip
    """MMSeaIce's CutMix, in place: with probability ``prob`` one box for the whole batch.

    ``lambda ~ Beta(1, 1)`` (uniform); the box side is ``int(side * sqrt(1 - lambda))`` per axis,
    centred on a uniform pixel, halves floored and clipped to the patch; sample ``i`` receives the
    box of sample ``perm[i]`` (a random permutation, so a sample may paste from itself).

    Returns:
        ``(perm, (r0, r1, c0, c1))`` when applied, else None.
    """
    b, _, h, w = x.shape
    u = _rand(4, generator)
    perm = torch.argsort(_rand(b, generator))
    if float(u[0]) >= prob:
        return None
    side = (1.0 - float(u[1])) ** 0.5
    cut_h, cut_w = int(h * side), int(w * side)
    cy, cx = min(int(u[2] * h), h - 1), min(int(u[3] * w), w - 1)
    r0, r1 = min(max(cy - cut_h // 2, 0), h), min(max(cy + cut_h // 2, 0), h)
    c0, c1 = min(max(cx - cut_w // 2, 0), w), min(max(cx + cut_w // 2, 0), w)
    idx = perm.to(x.device)
    x[:, :, r0:r1, c0:c1] = x[idx, :, r0:r1, c0:c1].clone()
    y[:, :, r0:r1, c0:c1] = y[idx, :, r0:r1, c0:c1].clone()
    return perm, (r0, r1, c0, c1)


def rotation_angles(b: int, aug: AugmentConfig, generator: torch.Generator) -> torch.Tensor:
    """Per-sample rotation angles (degrees): with ``aug.rotation_prob`` an integer in ``[-R, R - 1]``, else 0."""
    v = _rand(2 * b, generator).view(2, b)
    r = int(aug.rotation)
    drawn = (v[1] * 2 * r).floor().clamp(max=2 * r - 1) - r
    return torch.where(v[0] < aug.rotation_prob, drawn, torch.zeros(b))


def scale_factors(b: int, aug: AugmentConfig, u: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Per-sample rescale factors: uniform in ``aug.scale`` with ``aug.scale_prob``, else ``aug.scale[1]``."""
    lo, hi = aug.scale
    scale = lo + (hi - lo) * u
    if aug.scale_prob < 1.0:
        drawn = _rand(b, generator) < aug.scale_prob
        scale = torch.where(drawn, scale, torch.full_like(scale, hi))
    return scale


def augment_batch(x: torch.Tensor, y: torch.Tensor, aug: AugmentConfig,
                  generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """Augment a batch: ``x`` (B, C, p, p) inputs, ``y`` (B, 3, p, p) labels (255 = masked).

    Returns new tensors (the arguments are not modified) on the same device and dtypes.
    """
    b, _, h, w = x.shape
    if y.shape[0] != b or y.shape[-2:] != (h, w):
        raise ValueError(f"inputs {tuple(x.shape)} and labels {tuple(y.shape)} do not match")
    u = _rand(4 * b, generator).view(4, b)
    hflip = (u[0] < 0.5) if aug.flip else torch.zeros(b, dtype=torch.bool)
    vflip = (u[1] < 0.5) if aug.flip else torch.zeros(b, dtype=torch.bool)
    rot = torch.zeros(b, dtype=torch.long)
    if aug.rot90:
        if h != w:
            raise ValueError(f"rot90 needs square patches, got {h} x {w}")
        rot = (u[2] * 3).long().clamp(max=2) - 1  # -1, 0, +1 quarter turns
    angle = rotation_angles(b, aug, generator) if aug.rotation else None
    if aug.scale or angle is not None:
        scale = scale_factors(b, aug, u[3], generator) if aug.scale else torch.ones(b)
        x, y = _resample(x, y, hflip, vflip, rot, scale, angle, aug.resample)
    elif aug.flip or aug.rot90:
        x, y = _dihedral(x, hflip, vflip, rot), _dihedral(y, hflip, vflip, rot)
    if aug.cutmix > 0:
        if not (aug.scale or aug.flip or aug.rot90 or aug.rotation):
            x, y = x.clone(), y.clone()
        if aug.cutmix_mode == "batch":
            cutmix_batch(x, y, aug.cutmix, generator)
        else:
            _cutmix(x, y, aug.cutmix, generator)
    return x, y
