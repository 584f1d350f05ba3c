"""Per-scene statistics of the real AI4Arctic training set: what a synthetic set must look like.

The 512 official training scenes are summarised in ``resources/real_scenes.csv`` (chart histograms in
RTT pixels, service, region, month; sources in the file's header). The synthetic generator draws each
scene's composition from one of these rows, and ``bench/realism.py`` compares synthetic sets with
the pooled figures computed here, so both sides use one definition of every figure.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from autoice import schema

#: Number of classes per chart (index = class), 255 counted separately as ``masked``.
N_CLASSES = {"SIC": 11, "SOD": 6, "FLOE": 7}


@dataclass(frozen=True)
class RealScene:
    """One real training scene: where and when, and its chart histograms (pixel counts)."""

    scene: str  #: S1 start time, e.g. ``20180108T184332``
    service: str
    region: str
    month: int
    counts: dict[str, np.ndarray]  #: chart -> counts per class (0..n-1)
    masked: dict[str, int]  #: chart -> pixels with 255

    @property
    def total(self) -> int:
        """All pixels of the scene."""
        return int(self.counts["SIC"].sum() + self.masked["SIC"])

    def water_share(self) -> float:
        """Share of valid SIC pixels that are open water (NaN when the scene has no valid SIC pixel)."""
        valid = self.counts["SIC"].sum()
        return float(self.counts["SIC"][0] / valid) if valid else float("nan")


@lru_cache(maxsize=1)
def real_scenes() -> tuple[RealScene, ...]:
    """The 512 official training scenes, in file order."""
    out = []
    for r in schema.packaged_csv("real_scenes.csv"):
        counts = {c: np.array([int(r[f"{c}_{i}"]) for i in range(n)], np.int64) for c, n in N_CLASSES.items()}
        masked = {c: int(r[f"{c}_255"]) for c in N_CLASSES}
        out.append(RealScene(r["scene"], r["service"], r["region"], int(r["month"]), counts, masked))
    return tuple(out)


@dataclass
class Composition:
    """Pooled composition of a set of scenes, the figures the realism benchmark compares."""

    n_scenes: int
    class_shares: dict[str, np.ndarray]  #: chart -> share of valid pixels per class
    masked_share: dict[str, float]  #: chart -> share of all pixels that are 255
    water_quantiles: dict[float, float]  #: per-scene water share quantiles (scenes with valid SIC)
    water_ge95: float  #: share of scenes with >= 95 % water (of scenes with valid SIC)
    water_le5: float  #: share of scenes with <= 5 % water
    ice_with_sod: float  #: share of ice pixels (SIC 1..10) whose SOD is valid
    no_sod_ice: float  #: share of scenes without any valid SOD ice pixel
    service: dict[str, float]
    region: dict[str, float]
    month: dict[int, float]


def composition(scenes: list[RealScene] | tuple[RealScene, ...]) -> Composition:
    """Pooled figures of ``scenes`` (real rows, or synthetic scenes summarised the same way)."""
    n = len(scenes)
    shares, masked = {}, {}
    for chart in N_CLASSES:
        counts = sum(s.counts[chart] for s in scenes)
        m = sum(s.masked[chart] for s in scenes)
        shares[chart] = counts / max(1, counts.sum())
        masked[chart] = m / max(1, counts.sum() + m)
    water = np.array([s.water_share() for s in scenes])
    water = water[np.isfinite(water)]
    ice = sum(s.counts["SIC"][1:].sum() for s in scenes)
    sod_ice = sum(s.counts["SOD"][1:].sum() for s in scenes)

    def mix(values: list) -> dict:
        c = Counter(values)
        return {k: c[k] / n for k in sorted(c)}

    return Composition(
        n_scenes=n,
        class_shares=shares,
        masked_share=masked,
        water_quantiles={q: float(np.quantile(water, q)) if water.size else float("nan")
                         for q in (0.1, 0.25, 0.5, 0.75, 0.9)},  # fmt: skip
        water_ge95=float((water >= 0.95).mean()) if water.size else float("nan"),
        water_le5=float((water <= 0.05).mean()) if water.size else float("nan"),
        ice_with_sod=float(sod_ice / ice) if ice else float("nan"),
        no_sod_ice=float(np.mean([s.counts["SOD"][1:].sum() == 0 for s in scenes])) if n else float("nan"),
        service=mix([s.service for s in scenes]),
        region=mix([s.region for s in scenes]),
        month=mix([s.month for s in scenes]),
    )
