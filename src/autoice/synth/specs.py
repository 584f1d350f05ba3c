"""Which scenes a synthetic set holds: service, region, month and composition, drawn from the real set.

Every synthetic scene copies the *composition* of one real training scene (its template, a row of
:func:`autoice.realstats.real_scenes`): service, region, month, the share of open water, the SIC class
histogram, how much of the ice has a valid SOD and FLOE label and which classes, and the masked
share. Templates are picked by a low-discrepancy sequence over the real scenes sorted by month,
service and region, so a few dozen scenes come close to the real month, service and region mix.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

import numpy as np

from autoice import schema
from autoice.errors import AutoiceError
from autoice.realstats import RealScene, real_scenes

_GOLDEN = 0.6180339887498949  #: Weyl sequence step: consecutive scenes spread evenly over the templates
_SEED_STRIDE = 64  #: scene index offset between consecutive seeds in that sequence


@dataclass(frozen=True)
class Region:
    """Where a chart region lies and what ice it holds when a template says nothing (P§5.1, P§5.2)."""

    lat: tuple[float, float]
    lon: tuple[float, float]
    #: SOD class weights (new, young, thin FYI, thick FYI, old) by season DJF, MAM, JJA, SON
    stages: tuple[tuple[float, ...], ...]

    @property
    def months(self) -> tuple[int, ...]:
        """Months with real scenes of this region (no longer a guess: read from the real set)."""
        return _region_months().get(self, ())


_WEST = ((0.05, 0.3, 0.25, 0.4, 0), (0, 0.05, 0.1, 0.85, 0), (0, 0, 0, 1, 0), (0.75, 0.25, 0, 0, 0))
_EAST = ((0, 0.05, 0.05, 0.5, 0.4), (0, 0, 0.05, 0.55, 0.4), (0, 0, 0, 0.5, 0.5), (0.37, 0.05, 0, 0.15, 0.43))
REGIONS: dict[str, dict[str, Region]] = {
    "dmi": {
        "CapeFarewell": Region((59, 62), (-50, -40), ((0, 0, 0, 0.09, 0.91),) * 4),
        "SouthEast": Region((62, 67), (-44, -32), ((0, 0, 0, 0.23, 0.77),) * 4),
        "CentralEast": Region((67, 73), (-34, -18), _EAST),
        "NorthAndCentralEast": Region((68, 79), (-30, -8), _EAST),
        "NorthEast": Region((74, 80), (-23, -5), ((0, 0.03, 0.04, 0.2, 0.73), (0, 0, 0.03, 0.24, 0.73),
                                                 (0, 0, 0, 0.2, 0.8), (0.2, 0.1, 0, 0.1, 0.6))),
        "North": Region((80, 85), (-70, -10), ((0, 0, 0, 0.1, 0.9),) * 3 + ((0.05, 0, 0, 0.1, 0.85),)),
        "NorthWest": Region((72, 77), (-70, -55), _WEST),
        "CentralWest": Region((67, 72), (-62, -50), _WEST),
        "SouthWest": Region((60, 67), (-58, -47), ((0.39, 0.05, 0.03, 0.53, 0), (0.05, 0.05, 0.05, 0.85, 0),
                                                  (0, 0, 0, 1, 0), (0.8, 0.2, 0, 0, 0))),
        "Qaanaaq": Region((75, 80), (-80, -55), ((0.05, 0.3, 0.25, 0.3, 0.1), (0, 0.05, 0.1, 0.75, 0.1),
                                                (0, 0, 0, 0.85, 0.15), (0.7, 0.2, 0, 0, 0.1))),
    },
    "cis": {
        "SGRDIEA": Region((63, 78), (-80, -55), ((0, 0.63, 0.3, 0.07, 0), (0, 0, 0.01, 0.99, 0),
                                                (0, 0, 0, 0.87, 0.13), (0.38, 0.48, 0, 0.07, 0.07))),
        "SGRDIFOXE": Region((64, 70), (-86, -72), ((0, 0.51, 0.42, 0.07, 0), (0, 0.07, 0.1, 0.83, 0),
                                                  (0, 0, 0, 1, 0), (0.6, 0.4, 0, 0, 0))),
        "SGRDINFLD": Region((46, 56), (-62, -47), ((0.14, 0.66, 0.2, 0, 0), (0, 0, 0.07, 0.93, 0),
                                                  (0, 0, 0, 1, 0), (0.6, 0.4, 0, 0, 0))),
        "SGRDIWA": Region((68, 76), (-145, -115), ((0, 0, 0, 0.2, 0.8),) * 3 + ((0.15, 0, 0, 0.15, 0.7),)),
        "SGRDIHA": Region((74, 83), (-125, -70), ((0, 0, 0, 0.43, 0.57),) * 3 + ((0.1, 0, 0, 0.35, 0.55),)),
        "SGRDIMID": Region((68, 76), (-115, -80), ((0, 0, 0, 0.69, 0.31),) * 3 + ((0.15, 0, 0, 0.55, 0.3),)),
    },
}  # fmt: skip


def region_of(scene: RealScene) -> str:
    """Our region name for a real scene.

    Two CIS scenes are filed under DMI's "Qaanaaq"; CIS charts that area as part of its Eastern
    Arctic region (SGRDIEA), and so do we.
    """
    return scene.region if scene.region in REGIONS[scene.service] else "SGRDIEA"


@lru_cache(maxsize=1)
def _region_months() -> dict[Region, tuple[int, ...]]:
    out: dict[Region, set[int]] = {}
    for s in real_scenes():
        out.setdefault(REGIONS[s.service][region_of(s)], set()).add(s.month)
    return {r: tuple(sorted(m)) for r, m in out.items()}


def season(month: int) -> int:
    """Month 1..12 -> season index DJF 0, MAM 1, JJA 2, SON 3."""
    return (month % 12) // 3


@lru_cache(maxsize=1)
def _template_order() -> tuple[int, ...]:
    """Real scenes sorted so that an even spread over the list is an even spread over month/service/region.

    Month first: its twelve classes need the stratification most (service and region follow within).
    """
    scenes = real_scenes()
    key = [(s.month, s.service, s.region, np.nan_to_num(s.water_share(), nan=2.0)) for s in scenes]
    return tuple(sorted(range(len(scenes)), key=lambda i: key[i]))


def template_of(seed: int, index: int) -> int:
    """Index (into :func:`real_scenes`) of the real scene whose composition scene ``index`` copies."""
    order = _template_order()
    # one global Weyl sequence over (seed, index): consecutive seeds continue each other's spread
    position = ((seed * _SEED_STRIDE + index) * _GOLDEN) % 1.0
    return order[int(position * len(order))]


@dataclass(frozen=True)
class SceneSpec:
    """Everything that identifies one synthetic scene, drawn from (seed, index) alone."""

    index: int
    service: str
    region: str
    start: datetime
    raw_name: str
    height: int  #: RTT (80 m) lines; the raw grid has twice as many
    width: int  #: RTT (80 m) samples
    template: int = 0  #: the real scene (index into :func:`real_scenes`) whose composition it copies

    @property
    def rtt_name(self) -> str:
        """Ready-to-train file name of this scene."""
        return schema.raw_to_rtt_name(self.raw_name)

    @property
    def real(self) -> RealScene:
        """The real scene whose composition this one copies."""
        return real_scenes()[self.template]


def rng(seed: int, index: int, stream: int) -> np.random.Generator:
    """Independent random stream per (seed, scene, purpose), so a scene never depends on the others."""
    return np.random.default_rng([int(seed), int(index), int(stream)])


def _draw_spec(index: int, *, height: int, width: int, seed: int) -> SceneSpec:
    r = rng(seed, index, 0)
    template = template_of(seed, index)
    real = real_scenes()[template]
    service, region, month = real.service, region_of(real), real.month
    year = int(r.integers(2018, 2022))
    day = int(r.integers(1, 29))
    start = datetime(year, month, day, int(r.integers(0, 24)), int(r.integers(0, 60)), int(r.integers(0, 60)))
    mission = "S1B" if r.random() < 0.4 else "S1A"
    stop = start + timedelta(seconds=int(r.integers(20, 61)))
    # Absolute orbit: S1A orbit 20301 on 2018-01-24, 175 orbits per 12-day cycle; S1B is ~ 5000 behind.
    days = (start - datetime(2018, 1, 24)).total_seconds() / 86400
    orbit = int(20301 + days * 175 / 12) - (5250 if mission == "S1B" else 0)
    datatake = int(r.integers(0, 16**6))
    crc = int(r.integers(0, 16**4))
    fmt = "%Y%m%dT%H%M%S"
    product = f"{mission}_EW_GRDM_1SDH_{start.strftime(fmt)}_{stop.strftime(fmt)}_{orbit:06d}_{datatake:06X}_{crc:04X}"
    chart_time = start + timedelta(minutes=int(r.integers(-90, 91)))
    if service == "dmi":
        chart = f"{chart_time.strftime('%Y%m%d%H%M')}_{region}_RIC"
    else:
        chart = f"{region}_{chart_time.strftime('%Y%m%dT%H%M')}Z_pl_a"
    raw_name = f"{product}_icechart_{service}_{chart}.nc"
    return SceneSpec(index, service, region, start, raw_name, height, width, template)


def scene_specs(n: int, *, height: int, width: int, seed: int, first_index: int = 0) -> list[SceneSpec]:
    """The specs of scenes ``first_index .. first_index + n - 1`` of a seeded synthetic dataset.

    Each spec depends only on (seed, index), except that S1 start times are kept unique within the
    list (a clash moves the later scene by whole minutes), because scene keys must be unique.

    Args:
        n: number of scenes.
        height: RTT (80 m) lines of every scene.
        width: RTT (80 m) samples of every scene.
        seed: dataset seed (>= 0).
        first_index: index of the first scene (test scenes follow the training scenes).

    Returns:
        One :class:`SceneSpec` per scene, in index order.
    """
    if height < 2 or width < 2:
        raise AutoiceError(f"synth: scene size must be at least 2 x 2 RTT pixels, got {height} x {width}")
    if seed < 0:
        raise AutoiceError(f"synth: the seed must be >= 0, got {seed}")
    specs: list[SceneSpec] = []
    seen: set[str] = set()
    for index in range(first_index, first_index + n):
        spec = _draw_spec(index, height=height, width=width, seed=seed)
        while spec.start.strftime("%Y%m%dT%H%M%S") in seen:
            shift = timedelta(minutes=1)
            old = spec.start.strftime("%Y%m%dT%H%M%S")
            start = spec.start + shift
            stop_old = spec.raw_name[33:48]
            stop = (datetime.strptime(stop_old, "%Y%m%dT%H%M%S") + shift).strftime("%Y%m%dT%H%M%S")
            name = spec.raw_name.replace(old, start.strftime("%Y%m%dT%H%M%S"), 1).replace(stop_old, stop, 1)
            spec = SceneSpec(spec.index, spec.service, spec.region, start, name, height, width, spec.template)
        seen.add(spec.start.strftime("%Y%m%dT%H%M%S"))
        specs.append(spec)
    return specs
