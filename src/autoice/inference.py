"""Run multi-task models over a whole scene array: tiles, overlap blending, TTA, ensembles.

Shared by training-time validation and ``autoice predict``. Input is one scene's model-resolution
input array (C, h, w). Tiles are processed in row strips; per-chart scores (class probabilities, or
the SIC value for a regression head) are blended across overlapping tiles with a tapered window so
seams do not show, and rows are turned into classes as soon as no later tile touches them. Memory
is therefore a few tile-heights of rows, not the scene.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from autoice import schema
from autoice.devices import amp_dtype


def tiles(n: int, tile: int, overlap: int) -> list[tuple[int, int]]:
    """Start/stop pairs covering ``0..n`` with tiles of ``tile`` overlapping by at least ``overlap``."""
    if n <= tile:
        return [(0, n)]
    step = max(1, tile - overlap)
    starts = list(range(0, n - tile, step)) + [n - tile]
    return [(s, s + tile) for s in starts]


def _ramp(n: int, overlap: int) -> np.ndarray:
    r = np.ones(n, dtype=np.float32)
    k = min(overlap, n // 2)
    if k > 0:
        edge = (np.arange(k, dtype=np.float32) + 1) / (k + 1)
        r[:k] = edge
        r[n - k :] = edge[::-1]
    return r


def _window(h: int, w: int, overlap_h: int, overlap_w: int) -> np.ndarray:
    """Blending weights: 1 in the middle, linear ramps over the overlap at the edges."""
    return np.outer(_ramp(h, overlap_h), _ramp(w, overlap_w))


def _reflect(index: np.ndarray, n: int) -> np.ndarray:
    """Indices mirrored into ``0..n-1`` (edge pixel not repeated, like ``np.pad(mode="reflect")``)."""
    if n == 1:
        return np.zeros_like(index)
    period = 2 * (n - 1)
    index = np.abs(index) % period
    return np.where(index >= n, period - index, index)


def _tile_inputs(inputs: np.ndarray, r0: int, r1: int, c0: int, c1: int, margin: int) -> np.ndarray:
    """Rows r0..r1 and columns c0..c1 with ``margin`` pixels of context on every side.

    Context comes from the scene where it exists and is mirrored beyond the array edge, so a pixel at
    the edge of the scene sees the same kind of surroundings as one inside it instead of the network's
    zero padding (which made a frame of wrong SIC along every edge). Only the tile is copied.
    """
    h, w = inputs.shape[1:]
    if margin <= 0:
        return np.ascontiguousarray(inputs[:, r0:r1, c0:c1], dtype=np.float32)
    rows = _reflect(np.arange(r0 - margin, r1 + margin), h)
    cols = _reflect(np.arange(c0 - margin, c1 + margin), w)
    lo_r, hi_r = max(r0 - margin, 0), min(r1 + margin, h)
    lo_c, hi_c = max(c0 - margin, 0), min(c1 + margin, w)
    block = np.asarray(inputs[:, lo_r:hi_r, lo_c:hi_c], dtype=np.float32)  # one contiguous read of a memmap
    return np.ascontiguousarray(block[:, rows - lo_r][:, :, cols - lo_c])


def model_options(cfg: Any) -> dict[str, Any]:
    """The inference settings a training config fixes for its model (``predict_scene`` keywords)."""
    return {"sic_mode": cfg.model.sic_mode, "margin": cfg.model.edge_margin, "water_rule": cfg.model.water_rule}


def channels_per_chart(sic_mode: str) -> dict[str, int]:
    """Blended score channels per chart: class probabilities, 1 for a regression SIC head."""
    return {c: (1 if c == "SIC" and sic_mode == "regression" else schema.N_CLASSES[c]) for c in schema.CHARTS}


@dataclass
class SceneOutput:
    """Classes (uint8, h x w) per chart and, when asked, per-pixel uncertainty (float32, h x w).

    Uncertainty is the entropy (nats) of the blended class probabilities, and for a regression SIC
    head the standard deviation (classes) of the SIC value across ensemble members and flips.
    """

    classes: dict[str, np.ndarray]
    uncertainty: dict[str, np.ndarray] | None = None


def _passes(models: Sequence[torch.nn.Module], x: torch.Tensor, sic_mode: str, tta: bool, amp: bool
            ) -> Iterator[dict[str, torch.Tensor]]:  # fmt: skip
    flips = [(), (2,), (3,), (2, 3)] if tta else [()]
    # channels-last: faster convolutions, same values. Autocast on CUDA only: on a CPU, predictions stay
    # fp32, the same as the served model's (a CPU scene takes seconds; training is where bf16 pays)
    dtype = amp_dtype(x.device) if amp and x.device.type == "cuda" else None
    for model in models:
        for dims in flips:
            xi = (torch.flip(x, dims) if dims else x).contiguous(memory_format=torch.channels_last)
            with torch.autocast(x.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                out = model(xi)
            scores = {}
            for chart, t in out.items():
                t = t.float()
                s = t[:, :1] if chart == "SIC" and sic_mode == "regression" else torch.softmax(t, dim=1)
                scores[chart] = torch.flip(s, dims) if dims else s
            yield scores


class _Strip:
    """Blended scores of the rows not yet final: tiles add into it, finished rows leave it as classes.

    Holds the rows from the first non-final one down to the lowest tile seen, so memory is a few tile
    heights of the scene's width.
    """

    def __init__(self, h: int, w: int, k: dict[str, int], *, regression: bool, uncertainty: bool,
                 water_rule: float) -> None:  # fmt: skip
        self.w, self.k, self.regression, self.water_rule = w, k, regression, water_rule
        self.classes = {c: np.zeros((h, w), dtype=np.uint8) for c in schema.CHARTS}
        self.unc = {c: np.zeros((h, w), dtype=np.float32) for c in schema.CHARTS} if uncertainty else None
        self.lo = 0  #: first row not yet final
        self.acc = {c: np.zeros((k[c], 0, w), dtype=np.float32) for c in schema.CHARTS}
        self.weight = np.zeros((0, w), dtype=np.float32)
        #: sum of squared SIC values (the regression head's spread), when uncertainty is asked
        self.sq = np.zeros((0, w), dtype=np.float32) if uncertainty and regression else None

    def grow(self, to: int) -> None:
        """Make room for rows up to ``to`` (exclusive)."""
        extra = to - self.lo - self.weight.shape[0]
        if extra <= 0:
            return
        for c in schema.CHARTS:
            self.acc[c] = np.concatenate([self.acc[c], np.zeros((self.k[c], extra, self.w), np.float32)], axis=1)
        self.weight = np.concatenate([self.weight, np.zeros((extra, self.w), dtype=np.float32)])
        if self.sq is not None:
            self.sq = np.concatenate([self.sq, np.zeros((extra, self.w), dtype=np.float32)])

    def add(self, r0: int, r1: int, c0: int, c1: int, scores: dict[str, np.ndarray], sic_sq: np.ndarray | None,
            win: np.ndarray) -> None:  # fmt: skip
        """Add one tile's mean scores (and mean squared SIC), weighted by its blending window."""
        rows = slice(r0 - self.lo, r1 - self.lo)
        for c, s in scores.items():
            self.acc[c][:, rows, c0:c1] += s * win
        if self.sq is not None and sic_sq is not None:
            self.sq[rows, c0:c1] += sic_sq * win
        self.weight[rows, c0:c1] += win

    def finalize(self, upto: int) -> None:
        """Turn rows up to ``upto`` (exclusive) into classes and uncertainty; drop their sums."""
        n = upto - self.lo
        if n <= 0:
            return
        lo, wgt = self.lo, self.weight[:n]
        water = None
        if self.water_rule > 0:
            sod, floe = self.acc["SOD"][0, :n] / wgt, self.acc["FLOE"][0, :n] / wgt
            water = (sod >= self.water_rule) & (floe >= self.water_rule)
        for c in schema.CHARTS:
            mean = self.acc[c][:, :n] / wgt
            if c == "SIC" and self.regression:
                self.classes[c][lo:upto] = np.clip(np.rint(mean[0]), 0, schema.N_CLASSES[c] - 1).astype(np.uint8)
                if self.unc is not None and self.sq is not None:
                    self.unc[c][lo:upto] = np.sqrt(np.maximum(self.sq[:n] / wgt - mean[0] ** 2, 0.0))
            else:
                self.classes[c][lo:upto] = np.argmax(mean, axis=0).astype(np.uint8)
                if self.unc is not None:
                    p = np.clip(mean, 1e-12, 1.0)
                    self.unc[c][lo:upto] = -(p * np.log(p)).sum(axis=0)
            self.acc[c] = self.acc[c][:, n:]
        if water is not None:
            self.classes["SIC"][lo:upto][water] = 0
        self.weight = self.weight[n:]
        if self.sq is not None:
            self.sq = self.sq[n:]
        self.lo = upto


def _tile_scores(nets: Sequence[torch.nn.Module], x: torch.Tensor, crop: tuple[slice, slice], *, sic_mode: str,
                 tta: bool, amp: bool, squares: bool) -> tuple[dict[str, np.ndarray], np.ndarray | None]:  # fmt: skip
    """One tile's scores averaged over models and flips, cropped to the tile.

    With ``squares`` also the mean squared SIC value (the regression head's spread), else None.
    """
    n_pass = 0
    summed: dict[str, np.ndarray] = {}
    sic_sq = None
    for scores in _passes(nets, x, sic_mode, tta, amp):
        n_pass += 1
        for c, s in scores.items():
            arr = s[0, :, crop[0], crop[1]].cpu().numpy()
            summed[c] = summed[c] + arr if c in summed else arr
            if c == "SIC" and squares:
                sic_sq = sic_sq + arr[0] ** 2 if sic_sq is not None else arr[0] ** 2
    return {c: s / n_pass for c, s in summed.items()}, None if sic_sq is None else sic_sq / n_pass


@torch.no_grad()
def predict_scene(
    models: torch.nn.Module | Sequence[torch.nn.Module],
    inputs: np.ndarray,
    *,
    sic_mode: str,
    device: torch.device | str = "cpu",
    tile: int | None = 1024,
    overlap: int = 64,
    tta: bool = False,
    amp: bool = False,
    uncertainty: bool = False,
    margin: int = 0,
    water_rule: float = 0.0,
) -> SceneOutput:
    """Classes for a whole scene (and optionally uncertainty), with bounded memory.

    Args:
        models: one network or an ensemble (scores averaged); each returns ``{"SIC": (B,K,H,W), ...}``.
        inputs: (C, h, w) model-resolution inputs (float32 or float16).
        sic_mode: ``classification`` or ``regression``.
        device: where the networks run.
        tile: tile side in pixels; None = the whole scene in one forward pass (the source kits'
            validation: no seams, and the network sees the whole context of every pixel).
        overlap: overlap between neighbouring tiles, blended with linear ramps.
        tta: also average the four flips (test-time augmentation).
        amp: autocast on CUDA (bf16 where supported, else fp16); CPU inference is fp32.
        uncertainty: also return per-pixel uncertainty maps.
        margin: pixels of extra context read around every tile (mirrored beyond the scene's edge) and
            cropped from its output; 0 = the bare tile with the network's zero padding.
        water_rule: when > 0, SIC is set to 0 (open water) wherever both the SOD and the FLOE head give
            open water at least this probability: the heads then agree on water (0 = off).
    """
    nets = [models] if isinstance(models, torch.nn.Module) else list(models)
    for m in nets:
        m.eval()
    dev = torch.device(device)
    _, h, w = inputs.shape
    if tile is None:
        tile = max(h, w)
    regression = sic_mode == "regression"
    row_tiles, col_tiles = tiles(h, tile, overlap), tiles(w, tile, overlap)
    ov_h = overlap if len(row_tiles) > 1 else 0
    ov_w = overlap if len(col_tiles) > 1 else 0
    m = max(0, min(int(margin), h - 1, w - 1))
    strip = _Strip(h, w, channels_per_chart(sic_mode), regression=regression, uncertainty=uncertainty,
                   water_rule=water_rule)  # fmt: skip
    for i, (r0, r1) in enumerate(row_tiles):
        strip.grow(r1)
        for c0, c1 in col_tiles:
            x = torch.from_numpy(_tile_inputs(inputs, r0, r1, c0, c1, m))[None].to(dev)
            crop = (slice(m, m + r1 - r0), slice(m, m + c1 - c0))
            scores, sic_sq = _tile_scores(nets, x, crop, sic_mode=sic_mode, tta=tta, amp=amp,
                                          squares=regression and uncertainty)  # fmt: skip
            strip.add(r0, r1, c0, c1, scores, sic_sq, _window(r1 - r0, c1 - c0, ov_h, ov_w))
        strip.finalize(row_tiles[i + 1][0] if i + 1 < len(row_tiles) else h)
    return SceneOutput(strip.classes, strip.unc)
