"""Random fields the generator builds scenes from: smooth noise, elongated noise, block shares.

Large fields are made on a coarse grid and resized once, so a full-size scene (10400 x 10400 raw
pixels) stays cheap; results never depend on the machine (fixed strip sizes, seeded generators).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def upsample(a: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a small field to ``shape`` (cell-centre aligned), float32."""
    if a.shape == shape:
        return a.astype(np.float32, copy=False)
    zoom = (shape[0] / a.shape[0], shape[1] / a.shape[1])
    out = ndimage.zoom(a.astype(np.float32, copy=False), zoom, order=1, mode="nearest", grid_mode=True)
    if out.shape != shape:  # zoom rounds the output size; pad/crop the last row/column if needed
        out = np.pad(out, [(0, max(0, s - o)) for s, o in zip(shape, out.shape, strict=True)], mode="edge")
        out = out[: shape[0], : shape[1]]
    return out


def _standardise(out: np.ndarray) -> np.ndarray:
    sub = out[:: max(1, out.shape[0] // 257), :: max(1, out.shape[1] // 257)]  # stats on a sample: cheap
    out -= np.float32(sub.mean())
    out *= np.float32(1 / (sub.std() + 1e-12))
    return out


def noise(rng: np.random.Generator, shape: tuple[int, int], scale: float, *, octaves: int = 1,
          gain: float = 0.5) -> np.ndarray:  # fmt: skip
    """Smooth Gaussian noise (zero mean, unit std) with correlation length ``scale`` pixels, float32.

    Octaves (``scale``, ``scale / 2``, ...; amplitudes ``gain**k``) are each made on a grid with about
    3 steps per correlation length and summed coarse to fine.
    """
    scales = [scale / 2.0**k for k in range(octaves)]
    scales = [s for s in scales if s >= 0.5] or [0.5]
    total: np.ndarray | None = None
    for k, s in enumerate(scales):
        step = max(1, int(s / 3))
        pad = 2 if step > 1 else 0  # a margin so that the resize never extrapolates
        small = (-(-shape[0] // step) + pad, -(-shape[1] // step) + pad)
        white = rng.standard_normal(small, dtype=np.float32)
        smooth = ndimage.gaussian_filter(white, s / step, mode="wrap")
        smooth *= np.float32(gain**k / (smooth[::3, ::3].std() + 1e-12))
        total = smooth if total is None else upsample(total, small) + smooth
    assert total is not None
    return _standardise(upsample(total, shape))


def oriented_noise(rng: np.random.Generator, shape: tuple[int, int], along: float, across: float,
                   angle: float) -> np.ndarray:  # fmt: skip
    """Gaussian noise (unit std) elongated along ``angle``: its zero crossings are long, straight lines.

    Correlated over ``along`` pixels in direction ``angle`` (radians from the sample axis) and
    ``across`` pixels across it.

    Made on a rotated grid of about 3 steps per ``across`` and sampled back onto a grid of the same
    step, then resized to ``shape``.
    """
    step = max(1.0, across / 3.0)
    small = (max(2, int(np.ceil(shape[0] / step))), max(2, int(np.ceil(shape[1] / step))))
    half = 0.5 * np.hypot(*small) + 3 * along / step + 2
    n = int(2 * half) + 1
    sig_along = along / step
    sig_across = across / step
    white = rng.standard_normal((n, n), dtype=np.float32)
    field = ndimage.gaussian_filter(white, (sig_across, sig_along), mode="wrap")  # axis 1 = along
    yy, xx = np.mgrid[0 : small[0], 0 : small[1]].astype(np.float32)
    yy -= small[0] / 2
    xx -= small[1] / 2
    c, s = np.float32(np.cos(angle)), np.float32(np.sin(angle))
    u = xx * c + yy * s + half  # along
    v = -xx * s + yy * c + half  # across
    out = ndimage.map_coordinates(field, [v, u], order=1, mode="wrap")
    return _standardise(upsample(out, shape))


def block_counts(cls: np.ndarray, n_cls: int, cell: int) -> np.ndarray:
    """Per (cell x cell) block, the share of pixels in each class: (lines, samples, n_cls) float64."""
    rows, cols = cls.shape
    nr, nc = -(-rows // cell), -(-cols // cell)
    r_idx = (np.arange(rows) // cell).astype(np.int64)
    c_idx = (np.arange(cols) // cell).astype(np.int64)
    out = np.zeros((nr * nc * n_cls,), np.float64)
    for r0 in range(0, rows, 2048):  # row strips bound the int64 index temporaries
        block = cls[r0 : r0 + 2048]
        key = (r_idx[r0 : r0 + 2048, None] * nc + c_idx[None, :]) * n_cls + block
        out += np.bincount(key.ravel(), minlength=out.size)
    out = out.reshape(nr, nc, n_cls)
    return out / np.maximum(out.sum(axis=2, keepdims=True), 1)
