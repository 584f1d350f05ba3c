"""Model inputs and labels of one ready-to-train scene, at the preset's resolution.

Everything here is pure array work on an open RTT Dataset (no caching, no torch):

- full-grid variables (SAR, incidence angle, distance map) and the charts are downscaled by
  nearest neighbour: output pixel ``i`` takes 80 m pixel ``i * d`` (MMSeaIce); with ``mode="mean"`` the
  full-grid inputs are instead the mean of the block ``[i d, i d + d)`` over its pixels with data
  (multilooking: speckle averaged down, as a per-pixel model's 5 x 5 window does; 0 in SAR and incidence
  angle is no data there);
- the 2 km AMSR2/ERA5 variables are upsampled *in register* with the full grid: 2 km cell ``k``
  covers 80 m pixels ``[25k, 25k + 25)``, so output pixel ``i`` takes cell ``(i * d) // 25``
  (clipped to the grid). The starter kit's training crops shift them by up to a cell;
- ``latitude``/``longitude`` are bilinear from the 21 x 21 tie-point grid (evenly spaced from the
  first to the last 80 m line/sample; :mod:`autoice.geolocation`, the one implementation) and
  z-scored like the winning team did;
- ``sar_primary_std``/``sar_secondary_std`` (``TEXTURE_INPUTS``) are the standard deviation of the
  scaled 80 m SAR values in each pixel's ``d x d`` block, over its pixels with data: the sub-pixel
  texture (floes, ridges, speckle) that nearest downscaling drops and a per-pixel model's 5 x 5
  window keeps;
- ``month`` is the constant ``2 m / 11 - 1`` with ``m = 0..11`` the acquisition month.

Where the full grid has no data the derived and coarse channels keep their values: only the
labels say what is masked. Stored values that are not finite (NaN from a decoded ``_FillValue``,
+-Inf) are no data and become the format's no-data value 0.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import xarray as xr

from autoice import schema
from autoice.config import DERIVED_INPUTS, DOWNSCALE_MODES, TEXTURE_INPUTS, VALID_INPUTS
from autoice.errors import ConfigError, SceneError
from autoice.geolocation import tiepoint_field, unwrap_longitude
from autoice.scenes import read_variable

_START_TIME = re.compile(r"(?<!\d)(\d{4})(\d{2})(\d{2})T\d{6}(?!\d)")


def downscaled_shape(shape: tuple[int, int], downscale: int) -> tuple[int, int]:
    """Full-grid (lines, samples) -> grid at ``downscale`` (ceil: the last partial block counts)."""
    d = int(downscale)
    if d < 1:
        raise ValueError(f"downscale must be >= 1, got {downscale}")
    return -(-int(shape[0]) // d), -(-int(shape[1]) // d)


def upsample_to(shape: tuple[int, int], classes: np.ndarray, downscale: int) -> np.ndarray:
    """Nearest back to the 80 m grid: ``(..., h, w) -> (..., H, W)`` with pixel ``I`` <- ``I // d``.

    The inverse of the nearest downscaling used for inputs and labels (used by predict to give
    every 80 m pixel a class).
    """
    h, w = downscaled_shape(shape, downscale)
    if classes.shape[-2:] != (h, w):
        raise ValueError(
            f"classes of shape {classes.shape[-2:]} do not match {tuple(shape)} downscaled by {downscale} ({h}, {w})"
        )
    rows = np.arange(shape[0]) // downscale
    cols = np.arange(shape[1]) // downscale
    return classes[..., rows[:, None], cols[None, :]]


def coarse_index(n_full: int, n_coarse: int, downscale: int) -> np.ndarray:
    """2 km cell of each downscaled pixel along one axis: ``(i * d) // 25``, clipped to the grid."""
    n = -(-n_full // downscale)
    return np.minimum(np.arange(n) * downscale // schema.CELL_RTT, n_coarse - 1)


def scene_month(ds: xr.Dataset) -> int:
    """Acquisition month 1..12 from the file name, else the ``original_id``/``scene_id`` attributes."""
    source = ds.encoding.get("source")
    candidates = [Path(source).name] if source else []
    candidates += [str(ds.attrs[a]) for a in ("original_id", "scene_id") if a in ds.attrs]
    for text in candidates:
        m = _START_TIME.search(text)
        if m and 1 <= int(m[2]) <= 12:
            return int(m[2])
    raise SceneError(
        source or "<dataset>",
        "cannot tell the acquisition month (no YYYYMMDDTHHMMSS in the file name, original_id or scene_id)",
    )


def month_value(month: int) -> float:
    """Month 1..12 -> the winning team's encoding ``2 m / 11 - 1`` with ``m = month - 1``."""
    return 2.0 * (month - 1) / 11.0 - 1.0


def _full_size(ds: xr.Dataset) -> tuple[int, int]:
    return ds.sizes[schema.FULL_DIMS[0]], ds.sizes[schema.FULL_DIMS[1]]


def _block_moments(x: np.ndarray, d: int, *, squares: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Count, sum and sum of squares (zeros unless ``squares``) of the finite pixels of each ``d x d`` block."""
    h, w = -(-x.shape[0] // d), -(-x.shape[1] // d)
    total = np.zeros((h, w), np.float64)
    sq = np.zeros((h, w), np.float64)
    count = np.zeros((h, w), np.int32)
    for i in range(d):  # one offset at a time: no padded copy of a full-size scene
        for j in range(d):
            part = x[i::d, j::d]
            ok = np.isfinite(part)
            value = np.where(ok, part, 0.0).astype(np.float64, copy=False)  # squares of float32 lose digits
            total[: part.shape[0], : part.shape[1]] += value
            if squares:
                sq[: part.shape[0], : part.shape[1]] += value * value
            count[: part.shape[0], : part.shape[1]] += ok
    return count, total, sq


def block_mean(x: np.ndarray, d: int) -> np.ndarray:
    """Mean of each ``d x d`` block over its finite pixels (NaN where a block has none); partial blocks count."""
    count, total, _ = _block_moments(x, d, squares=False)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan).astype(np.float32)


def block_std(x: np.ndarray, d: int) -> np.ndarray:
    """Population standard deviation of each ``d x d`` block over its finite pixels (NaN where none)."""
    count, total, squares = _block_moments(x, d)
    n = np.maximum(count, 1)
    mean = total / n
    var = np.maximum(squares / n - mean * mean, 0.0)  # rounding can make a flat block slightly negative
    return np.where(count > 0, np.sqrt(var), np.nan).astype(np.float32)


def read_channel(ds: xr.Dataset, name: str, downscale: int, mode: str = "nearest") -> np.ndarray:
    """One model input channel at ``downscale``: (h, w) float32 (see the module docstring).

    ``mode`` (``DOWNSCALE_MODES``) applies to the full-grid inputs; the others are the same either way.
    """
    if mode not in DOWNSCALE_MODES:
        raise ConfigError(f"data.downscale_mode: {mode!r} is not one of {', '.join(DOWNSCALE_MODES)}")
    full = _full_size(ds)
    h, w = downscaled_shape(full, downscale)
    d = downscale
    if name in schema.FULL_GRID_INPUTS:
        x = np.asarray(read_variable(ds, name), dtype=np.float32)
        if d > 1 and mode == "mean":
            if name != schema.DISTANCE_VARIABLE:  # SAR and incidence angle: the format's 0 is no data
                x = np.where(x == schema.INPUT_FILL, np.float32(np.nan), x)
            x = block_mean(x, d)
        elif d > 1:
            x = np.ascontiguousarray(x[::d, ::d])
    elif name in TEXTURE_INPUTS:
        if d < 2:
            raise ConfigError(f"data.inputs: {name} needs a downscaling factor >= 2, got {d}")
        x = np.asarray(read_variable(ds, TEXTURE_INPUTS[name]), dtype=np.float32)
        x = block_std(np.where(x == schema.INPUT_FILL, np.float32(np.nan), x), d)
    elif name in schema.COARSE_VARIABLES:
        coarse = np.asarray(read_variable(ds, name), dtype=np.float32)
        rows = coarse_index(full[0], coarse.shape[0], d)
        cols = coarse_index(full[1], coarse.shape[1], d)
        x = coarse[rows[:, None], cols[None, :]]
    elif name in ("latitude", "longitude"):
        var = schema.TIEPOINT_LATITUDE if name == "latitude" else schema.TIEPOINT_LONGITUDE
        grid = np.asarray(read_variable(ds, var), dtype=np.float64)
        mean, std = schema.LATLON_MEANSTD[name]
        if name == "latitude":
            x = tiepoint_field((grid - mean) / std, full, d)
        else:
            x = tiepoint_field(unwrap_longitude(grid), full, d)
            x = ((x + 180.0) % 360.0 - 180.0 - mean) / std
        x = x.astype(np.float32)
    elif name == "month":
        x = np.full((h, w), month_value(scene_month(ds)), dtype=np.float32)
    else:
        raise ConfigError(f"data.inputs: unknown channel {name!r}; valid: {', '.join(VALID_INPUTS)}")
    if name not in DERIVED_INPUTS:
        # NaN (a _FillValue decoded by xarray) and +-Inf carry no measurement: no data, as the format's 0
        finite = np.isfinite(x)
        if not finite.all():
            x = np.where(finite, x, np.float32(schema.INPUT_FILL))  # not in place: x may be the caller's data
    return x


def cast_channel(x: np.ndarray, dtype: np.dtype | str) -> np.ndarray:
    """A channel in the cache/inference dtype; float16 is clipped to its range first (no inf)."""
    dtype = np.dtype(dtype)
    if dtype == np.float16:
        limit = float(np.finfo(np.float16).max)
        x = np.clip(x, -limit, limit)
    return x.astype(dtype, copy=False)


def scene_inputs(ds: xr.Dataset, channels: Sequence[str], downscale: int, *, dtype: str = "float32",
                 mode: str = "nearest") -> np.ndarray:  # fmt: skip
    """The model inputs of a scene: (C, h, w), channels in the given order.

    Args:
        ds: an open ready-to-train scene (train or test).
        channels: input names (``config.VALID_INPUTS``: stored variables, ``latitude``/``longitude``/``month``
            and the SAR texture channels).
        downscale: 1 = 80 m, 10 = 800 m.
        dtype: of the result; ``float16`` halves the memory (and is what the training cache holds).
        mode: how the full-grid inputs are downscaled (``DOWNSCALE_MODES``).
    """
    h, w = downscaled_shape(_full_size(ds), downscale)
    out = np.empty((len(channels), h, w), dtype=dtype)
    for i, name in enumerate(channels):
        out[i] = cast_channel(read_channel(ds, name, downscale, mode), dtype)
    return out


def scene_labels(ds: xr.Dataset, downscale: int) -> np.ndarray:
    """The charts of a scene: (3, h, w) uint8 in ``schema.CHARTS`` order, nearest (pixel ``i * d``)."""
    h, w = downscaled_shape(_full_size(ds), downscale)
    out = np.empty((len(schema.CHARTS), h, w), dtype=schema.CHART_DTYPE)
    for i, chart in enumerate(schema.CHARTS):
        out[i] = read_variable(ds, chart)[::downscale, ::downscale]
    return out
