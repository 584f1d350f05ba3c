"""The true ice field under the chart: concentration, ice types, floes, leads and ridges.

The chart is an analyst's summary of this field, not its source pixel for pixel (P§3, issue #8):
- polygon edges of the truth are displaced by a few km and rougher than the chart's generalised ones;
- each polygon's true concentration differs from its code (inter-analyst spread, ~6 points) and
  varies inside it; across edges the field is smooth, so water polygons hold ice near ice edges;
- partial ice types cover shares that disagree a little with CA/CB/CC;
- pack ice is broken by long, straight, intersecting lead systems and by cracks between floes whose
  spacing follows the form code (floe size); looser ice is floes of that size in water;
- ridges are linear, denser in thick and old ice than in young ice; fast ice is level.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage, special

from autoice.synth.fields import noise, oriented_noise, upsample
from autoice.synth.icechart import BERG, LAND, NEW, WATER, Polygon

#: Floe texture scales (raw pixels of 40 m, P§3.2): cake/small sub-pixel, medium ~5, big ~25, vast ~100.
_FLOE_SCALES = (1.0, 5.0, 25.0, 100.0)
#: Weight of each scale per FLOE class 0..6 (water, cake, small, medium, big, vast, bergs).
_FLOE_WEIGHTS = np.array(
    [[1, 0, 0, 0], [1, 0.2, 0, 0], [1, 0.5, 0, 0], [0.3, 1, 0.2, 0], [0.1, 0.3, 1, 0.15], [0.02, 0.05, 0.2, 1],
     [1, 0, 0, 0]], np.float32,
)  # fmt: skip
_FLOE_WEIGHTS /= np.sqrt((_FLOE_WEIGHTS**2).sum(axis=1, keepdims=True))
#: Share of pixels on ridges per surface class (P§1.4: deformed FYI and old ice ridged, new ice level).
RIDGE_DENSITY = np.array([0, 0.0, 0.01, 0.03, 0.07, 0.06, 0, 0], np.float32)
#: Share of each stage's area in deformed zones (rafted young ice, rubble and ridge fields of first-year ice;
#: P§1.4: deformed FYI is as bright as old ice in HH, so texture and floe shape, not the level, tell them apart).
DEFORMED_SHARE = np.array([0, 0.0, 0.3, 0.35, 0.45, 0.0, 0, 0], np.float32)
_ANALYST_SD = 0.06  #: spread of the true concentration around the polygon's code (inter-analyst, P§5 / issue)
_PACK = 0.85  #: above this true concentration, ice is continuous and broken by leads and cracks
#: Months in which open water freezes over (leads refreeze to nilas, new ice forms at the ice edge).
FREEZING_MONTHS = (10, 11, 12, 1, 2, 3, 4, 5)


@dataclass
class Surface:
    """The true surface of a scene at raw resolution."""

    surf: np.ndarray  #: uint8 surface class per pixel (WATER, NEW..OLD, BERG, LAND)
    texture: np.ndarray  #: float32, unit-std deformation texture (scaled per class by the SAR model)
    ridge: np.ndarray  #: bool, ridge pixels
    floe: np.ndarray  #: float32, unit-std floe-scale field (per-floe brightness in SAR)
    concentration: np.ndarray  #: float32 true ice concentration (smooth field, 0..1)
    lead: np.ndarray  #: bool, lead and crack pixels inside pack ice
    deformed: np.ndarray  #: float16 0..1, deformed-zone weight (young and first-year ice)


def true_concentration(rng: np.random.Generator, polys: list[Polygon], true_vor: np.ndarray) -> np.ndarray:
    """True concentration on the polygon grid: code +- analyst spread, variation inside, smooth edges."""
    n = len(polys)
    c_p = np.zeros(n + 1, np.float32)
    for p, poly in enumerate(polys):
        if poly.poly_type != "I":
            continue
        if poly.fast:
            c_p[p] = 1.0
        elif poly.type_classes == (BERG,):
            c_p[p] = rng.uniform(0.03, 0.1)
        elif poly.tenths == 10:
            c_p[p] = rng.uniform(0.93, 1.0)
        else:
            c_p[p] = np.clip(poly.tenths / 10 + rng.normal(0, _ANALYST_SD), 0.03, 0.97)
    grid = true_vor.shape
    c = c_p[true_vor]
    # bands and patches inside a polygon (marginal ice zones are far from uniform); open water stays open
    inside = noise(rng, grid, max(grid) / (4 * np.sqrt(max(n, 1))), octaves=2)  # ~16 patches per polygon
    c = c + (1.1 * c * (1 - c) + 0.03 * np.minimum(10 * c, 1)) * inside
    # marginal ice zone: the field is continuous across edges (a few km, scaled with the scene)
    c = ndimage.gaussian_filter(c, max(0.8, 0.006 * max(grid)), mode="nearest")
    return np.clip(c, 0.0, 1.0).astype(np.float32)


def build(rng: np.random.Generator, polys: list[Polygon], pid: np.ndarray, c_grid: np.ndarray, land: np.ndarray,
          *, month: int, extent_px: float) -> Surface:  # fmt: skip
    """The true surface at raw resolution.

    Args:
        rng: the scene's ice random stream.
        polys: chart polygons (index p has id p + 1 in ``pid``).
        pid: true polygon id per raw pixel (1..n; land pixels are handled by ``land``).
        c_grid: true concentration on the polygon grid (:func:`true_concentration`).
        land: land mask.
        month: 1..12 (refrozen leads in the cold season).
        extent_px: the scene's extent in raw pixels (scales of structures tied to the scene).
    """
    c = upsample(c_grid, pid.shape)
    poly_px = extent_px / np.sqrt(max(len(polys), 1))
    fast = _lut(polys, bool, lambda p: p.fast)[pid]
    floe = _floes(rng, polys, pid, poly_px)
    lead, across = _leads(rng, floe, c, fast, extent_px)
    # ice where floes are, in looser ice; in pack ice everywhere but leads and cracks
    pack = c >= _PACK
    is_ice = np.where(pack, ~lead, special.ndtr(floe) < c)
    surf = _ice_types(rng, polys, pid, poly_px, is_ice)
    # refrozen leads (nilas) in the cold season, open in the melt season (P§3.2 leads)
    if month in FREEZING_MONTHS:
        refrozen = lead & (noise(rng, pid.shape, across) > -0.2)
        surf[refrozen] = NEW
    surf[land] = LAND
    deformed, texture, ridge = _deformation(rng, surf, fast, poly_px)
    return Surface(surf, texture, ridge, floe, c, lead, deformed)


def _lut(polys: list[Polygon], dtype: type, value: Callable[[Polygon], Any]) -> np.ndarray:
    """A per-id lookup table (ids 1..n for the polygons; 0 and n + 1 stay zero)."""
    lut = np.zeros(len(polys) + 2, dtype)
    for p, poly in enumerate(polys):
        lut[p + 1] = value(poly)
    return lut


def _floes(rng: np.random.Generator, polys: list[Polygon], pid: np.ndarray, poly_px: float) -> np.ndarray:
    """Unit-std floe field: a mixture of scales per FLOE class (the form of the polygon's largest partial)."""
    w_pix = _lut(polys, np.uint8, lambda p: min(p.floe_class, 6))[pid]
    floe = np.zeros(pid.shape, np.float32)
    for k, s in enumerate(_FLOE_SCALES):
        floe += _FLOE_WEIGHTS[w_pix, k] * noise(rng, pid.shape, min(s, poly_px / 4))
    return floe


def _leads(rng: np.random.Generator, floe: np.ndarray, c: np.ndarray, fast: np.ndarray, extent_px: float
           ) -> tuple[np.ndarray, float]:  # fmt: skip
    """Lead and crack pixels of pack ice (not fast ice), as many as its open water (1 - concentration).

    Two long, straight, intersecting lead systems of segments of varying width, plus cracks between floes
    (zero crossings of the floe field: a network with the floe spacing). Returns the mask and the leads'
    across-scale in pixels (refrozen patches follow it).
    """
    shape = floe.shape
    a1 = rng.uniform(0, np.pi)
    a2 = a1 + rng.choice([-1, 1]) * rng.uniform(np.deg2rad(40), np.deg2rad(80))
    along, across = 0.5 * extent_px, max(6.0, 0.03 * extent_px)
    d = np.full(shape, np.inf, np.float32)
    for angle in (a1, a2):
        sys_ = np.abs(oriented_noise(rng, shape, along, across, angle))
        width = np.exp(0.6 * noise(rng, shape, across * 2))  # lead widths vary along and between leads
        active = noise(rng, shape, along / 3) > -0.4  # leads end: segments, not endless lines
        d = np.minimum(d, np.where(active, sys_ / width, np.inf))
        del sys_, width, active
    d = np.minimum(d, np.abs(floe) * 6.0)
    pack = c >= _PACK
    sample = d[pack & ~fast][:: max(1, int(pack.sum() // 200_000))] if pack.any() else np.zeros(1, np.float32)
    levels = np.linspace(0, 0.2, 41)
    finite = sample[np.isfinite(sample)]
    thresholds = np.quantile(finite, levels) if finite.size else np.zeros_like(levels)
    t = np.interp(1.0 - c, levels, thresholds).astype(np.float32)
    return pack & ~fast & (d < t), across


def _ice_types(rng: np.random.Generator, polys: list[Polygon], pid: np.ndarray, poly_px: float,
               is_ice: np.ndarray) -> np.ndarray:  # fmt: skip
    """Surface class per pixel: the polygon's partial ice types, in shares a little off the chart's."""
    n_ids = len(polys) + 2
    lut_cls = np.zeros((n_ids, 3), np.uint8)
    lut_cum = np.ones((n_ids, 3), np.float32)
    for p, poly in enumerate(polys):
        if poly.type_classes:
            k = len(poly.type_classes)
            shares = np.asarray(poly.type_shares, float) * np.exp(rng.normal(0, 0.25, size=k))
            lut_cls[p + 1, :k] = poly.type_classes
            lut_cls[p + 1, k:] = poly.type_classes[-1]
            lut_cum[p + 1, :k] = np.cumsum(shares / shares.sum())
    # partial types in patches of a few km (miniature: a third of a polygon), bigger than an AMSR2 cell
    u_type = special.ndtr(noise(rng, pid.shape, poly_px / 3, octaves=2))
    surf = np.where(
        u_type <= lut_cum[:, 0][pid],
        lut_cls[:, 0][pid],
        np.where(u_type <= lut_cum[:, 1][pid], lut_cls[:, 1][pid], lut_cls[:, 2][pid]),
    ).astype(np.uint8)
    del u_type
    surf[~is_ice] = WATER
    surf[is_ice & (surf == WATER)] = NEW  # ice spread into water polygons across an edge: new/grey ice
    return surf


def _deformation(rng: np.random.Generator, surf: np.ndarray, fast: np.ndarray, poly_px: float
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """Deformed zones, deformation texture and linear ridges by stage; fast ice level.

    Deformed zones of a few km (a sixth of a polygon) are soft-edged patches covering DEFORMED_SHARE of a
    stage; ridges (~1 km apart) are denser there. Returns (deformed weight, texture, ridge mask).
    """
    shape = surf.shape
    zone = special.ndtr(noise(rng, shape, poly_px / 6, octaves=2))
    share = DEFORMED_SHARE[surf]
    deformed = np.clip((zone - (1 - share)) / 0.08, 0, 1).astype(np.float16)
    deformed[fast] = 0
    del zone, share
    texture = noise(rng, shape, 6.0, octaves=3)
    ridge_field = np.abs(oriented_noise(rng, shape, 60.0, 12.0, rng.uniform(0, np.pi)))
    density = RIDGE_DENSITY[surf] * (1 + 2.0 * deformed.astype(np.float32))
    ridge = ridge_field < density * 1.25  # P(|N| < t) ~ 0.8 t for small t
    del ridge_field, density
    ridge &= ~fast
    texture[fast] *= 0.3
    return deformed, texture, ridge
