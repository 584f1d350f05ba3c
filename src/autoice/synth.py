"""Seeded synthetic AI4Arctic scenes in the exact raw format, prepared by the real prepare path.

The real dataset cannot be downloaded everywhere, so tests, demos and benchmarks run on scenes from
here. Each scene is generated at 40 m in the raw layout (``ai4arctic-format.md`` section 3), written
with :func:`autoice.scenes.write_netcdf`, then turned into ready-to-train files by
:func:`autoice.prepare.prepare_file` exactly like a user's real files.

What makes the task hard, as in real data (parameters from ``shared/spec/physics.md``, cited ``P§x``):

* ice charts are SIGRID-3 egg codes per polygon, drawn from the real class priors by service, region
  and month (P§5); inside a polygon the ice/water pattern only matches CT on average, floe size
  follows the form code and partial ice types are placed in proportion to CA/CB/CC;
* SAR HH/HV with ice signatures by type and incidence slope (P§1.4), open water from a CMOD-like wind
  model (P§1.3) so that wind-roughened water looks like ice in HH, an HV noise floor with sub-swath
  seams and scalloping (P§1.1) and Gamma speckle (P§1.2);
* AMSR2 from a linear mixing model with footprint blur, so low frequencies bleed and coastal water
  sees land spill-over (P§2); ERA5 smooth and consistent with ice and water (P§4).

Scenes smaller than the real ~400 km are *miniatures*: structure scales (polygons, coast, weather,
AMSR2 footprints, the geographic extent of the tie points) shrink with the scene, so every size holds
the full variety; per-pixel physics (speckle, floes, noise-floor artefacts, distance zones) stays at
the real 40 m pixel size.

Example:
    >>> from autoice.synth import synthesize
    >>> result = synthesize("data/synth", n_train=4, n_test=2, height=600, width=640, seed=0)  # doctest: +SKIP
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import xarray as xr
from scipy import ndimage, special
from scipy.interpolate import RegularGridInterpolator
from scipy.spatial import cKDTree

from autoice import schema
from autoice.errors import AutoiceError

# --------------------------------------------------------------------------- constants

#: Raw extent (pixels at 40 m) of a real scene side; smaller scenes are miniatures of it.
FULL_EXTENT_PX = 10400
PX_PER_KM = 1000 / schema.RAW_PIXEL_SPACING  #: 25 raw pixels per km
SWATH_KM = 400.0  #: nominal S1 EW swath, P§1.1 (≈410 km)
INCIDENCE_RANGE = (18.9, 47.0)  #: EW incidence range, P§1.1
SUBSWATH_EDGES = (29.2, 34.5, 39.6, 43.9)  #: EW sub-swath seams (deg), P§1.1
ENL = 10.7  #: equivalent number of looks of GRDM at 40 m, P§1.1/1.2
BURST_KM = 23.0  #: azimuth burst length (scalloping period), P§1.1
_STRIP = 512  #: rows per strip of the SAR stage (fixed: results must not depend on machine)

# Surface classes of a pixel (internal): 0 water, 1..5 = SOD classes, 6 berg (glacier ice), 7 land.
WATER, NEW, YOUNG, THIN_FYI, THICK_FYI, OLD, BERG, LAND = range(8)
_N_SURF = 8

#: Stage codes per SOD class by service (SIGRID-3, spec §4; P§3.1).
_STAGE_CODES: dict[str, dict[int, tuple[int, ...]]] = {
    "cis": {NEW: (81,), YOUNG: (84, 85, 83), THIN_FYI: (87,), THICK_FYI: (91, 93, 86), OLD: (97, 96)},
    "dmi": {NEW: (81, 82), YOUNG: (83, 84, 85), THIN_FYI: (87, 88, 89), THICK_FYI: (86, 91, 93), OLD: (95, 96, 97)},
}
#: Plausible form codes per stage class (P§3.2): new ice is pancake/cake, old and thick ice big/vast floes.
_FORM_CODES: dict[int, tuple[int, ...]] = {
    NEW: (22, 2, 3),
    YOUNG: (3, 4, 4, 5),
    THIN_FYI: (4, 5, 6),
    THICK_FYI: (5, 6, 6, 6, 7),
    OLD: (5, 6, 6, 7, 7),
}
_SUMMER_FORMS = (4, 5, 6, 6)  #: melt-season break-up: smaller floes (P§3.2, Stern et al.)

# HH/HV at 35 deg and slopes (dB, dB/deg) per surface class, P§1.4 (winter). Index = surface class.
#                  water new    young  thinF  thickF old    berg  land
_HH35 = np.array([0.0, -26.0, -13.0, -16.5, -17.0, -10.0, 0.0, -10.0], np.float32)
_HV35 = np.array([0.0, -34.0, -27.0, -30.0, -30.0, -19.0, -10.0, -20.0], np.float32)
_HH_SLOPE = np.array([0.0, -0.29, -0.13, -0.30, -0.33, -0.17, 0.0, -0.10], np.float32)
_HV_SLOPE = np.array([0.0, -0.13, -0.04, -0.25, -0.28, -0.10, 0.0, -0.05], np.float32)
#: Deformation (ridging) range: level -> deformed FYI adds ~6 dB HH / 9 dB HV (P§1.4 level vs deformed FYI).
_HH_DEFORM = np.array([0.0, 4.0, 2.5, 5.0, 6.0, 2.5, 0.0, 5.0], np.float32)
_HV_DEFORM = np.array([0.0, 4.0, 2.0, 7.0, 9.0, 3.0, 0.0, 5.0], np.float32)

# Open-water HH (dB) from CMOD5.N + Zhang PR, wind-direction averaged, P§1.3 table.
_CMOD_THETA = np.array([25.0, 35.0, 45.0])
_CMOD_LOGU = np.log10([3.0, 7.0, 12.0])
_CMOD_HH = np.array([[-13.3, -8.9, -6.1], [-22.9, -17.7, -13.7], [-29.3, -23.8, -19.1]])
_WATER_HH = RegularGridInterpolator((_CMOD_THETA, _CMOD_LOGU), _CMOD_HH, bounds_error=False, fill_value=None)

# AMSR2 (P§2). Channel order of schema.AMSR2_FREQUENCIES: 6.9, 7.3, 10.7, 18.7, 23.8, 36.5, 89.
_FOOTPRINT_KM = np.array([[35, 62], [35, 62], [24, 42], [14, 22], [15, 26], [7, 12], [3, 5]], float)  # P§2.1
#: Open water (V, H) at SST 272 K, U 5 m/s, TCWV 5, TCLW 0 (Wentz & Meissner RTM, P§2.2 row 1).
_TB_WATER = np.array([[155, 76], [156, 77], [161, 80], [177, 95], [188, 110], [202, 125], [235, 164]], float)
#: Sensitivities P§2.3: per m/s wind, per kg/m² TCWV (2->20 over 18), per kg/m² TCLW (0->0.3), per K SST.
_DTB_WIND = np.array([[0.5, 0.9], [0.5, 0.9], [0.5, 1.0], [0.4, 1.2], [0.3, 1.3], [0.2, 1.3], [-0.1, 1.1]])
_DTB_TCWV = np.array([[0.5, 0.7], [0.5, 0.7], [1, 2], [7, 16], [18, 42], [6, 14], [12, 39]]) / 18.0
_DTB_TCLW = np.array([[0.7, 1.7], [0.7, 1.7], [1.6, 3.7], [3.8, 10], [5, 14], [7, 25], [8, 50]]) / 0.3
_DTB_SST = np.array([[1.7, 0.5], [1.7, 0.5], [0.7, 0], [-0.6, -0.9], [-1, -1.2], [-1.5, -1.9], [-0.6, -2.1]]) / 4.6
#: Ice and land emissions (V, H) per frequency, P§2.2 (Ivanova et al. 2015 FYI/MYI; thin ice ~FYI V, H lower).
_TB_FYI = np.array([[252, 232], [252, 232], [251, 234], [252, 237], [250, 236], [246, 235], [230, 221]], float)
_TB_MYI = np.array([[243, 219], [243, 219], [235, 212], [220, 202], [209, 192], [187, 176], [178, 170]], float)
_TB_LAND = np.array([[250, 232], [250, 232], [248, 230], [245, 228], [240, 225], [230, 218], [228, 220]], float)
_TB_WET = np.array([[255, 245], [255, 245], [256, 246], [258, 250], [258, 250], [260, 252], [255, 248]], float)
_THIN_H_DROP = {NEW: 35.0, YOUNG: 20.0, THIN_FYI: 8.0}  #: thin ice H lower than FYI by 10-40 K, P§2.2

#: Surface types that change little through the year in the pooled stats; per month climatology (P§4).
_T2M_ICE_MONTH = np.array([246, 245, 248, 255, 265, 271.5, 273, 272.5, 268, 261, 254, 249], float)
_TCWV_MONTH = np.array([2.5, 2.5, 3.0, 4.5, 7.0, 11.0, 14.0, 13.0, 9.5, 6.0, 4.0, 3.0])  # 70-90N, P§4
_SEA_FREEZING_K = 271.35  #: P§4


# --------------------------------------------------------------------------- regions


@dataclass(frozen=True)
class _Region:
    """Where a chart region lies and what ice it holds (P§5.1, P§5.2)."""

    lat: tuple[float, float]
    lon: tuple[float, float]
    months: tuple[int, ...]
    open_water: tuple[float, float, float, float]  #: share by season DJF, MAM, JJA, SON
    #: SOD class weights (new, young, thin FYI, thick FYI, old) by season DJF, MAM, JJA, SON
    stages: tuple[tuple[float, ...], ...]
    weight: float = 1.0  #: how often the region is drawn within its service


_ALL = tuple(range(1, 13))
_WEST = ((0.05, 0.3, 0.25, 0.4, 0), (0, 0.05, 0.1, 0.85, 0), (0, 0, 0, 1, 0), (0.75, 0.25, 0, 0, 0))
REGIONS: dict[str, dict[str, _Region]] = {
    "dmi": {
        "CapeFarewell": _Region((59, 62), (-50, -40), tuple(m for m in _ALL if m != 1), (0.93, 0.9, 0.97, 0.995),
                                ((0, 0, 0, 0.09, 0.91),) * 4),
        "SouthEast": _Region((62, 67), (-44, -32), tuple(m for m in _ALL if m not in (2, 7)), (0.85, 0.8, 0.9, 0.95),
                             ((0, 0, 0, 0.23, 0.77),) * 4),
        "CentralEast": _Region((67, 73), (-34, -18), _ALL, (0.6, 0.55, 0.8, 0.85),
                               ((0, 0.05, 0.05, 0.5, 0.4), (0, 0, 0.05, 0.55, 0.4), (0, 0, 0, 0.5, 0.5),
                                (0.37, 0.05, 0, 0.15, 0.43))),
        "NorthEast": _Region((74, 80), (-23, -5), _ALL, (0.35, 0.22, 0.5, 0.73),
                             ((0, 0.03, 0.04, 0.2, 0.73), (0, 0, 0.03, 0.24, 0.73), (0, 0, 0, 0.2, 0.8),
                              (0.2, 0.1, 0, 0.1, 0.6))),
        "North": _Region((80, 85), (-70, -10), _ALL, (0.1, 0.1, 0.2, 0.15),
                         ((0, 0, 0, 0.1, 0.9),) * 3 + ((0.05, 0, 0, 0.1, 0.85),)),
        "NorthWest": _Region((72, 77), (-70, -55), _ALL, (0.3, 0.3, 0.7, 0.8), _WEST),
        "CentralWest": _Region((67, 72), (-62, -50), _ALL, (0.5, 0.45, 0.85, 0.85), _WEST),
        "SouthWest": _Region((60, 67), (-58, -47), tuple(m for m in _ALL if m != 10), (0.7, 0.6, 0.95, 0.9),
                             ((0.39, 0.05, 0.03, 0.53, 0), (0.05, 0.05, 0.05, 0.85, 0), (0, 0, 0, 1, 0),
                              (0.8, 0.2, 0, 0, 0))),
        "Qaanaaq": _Region((76, 80), (-75, -60), _ALL, (0.2, 0.25, 0.6, 0.7),
                           ((0.05, 0.3, 0.25, 0.3, 0.1), (0, 0.05, 0.1, 0.75, 0.1), (0, 0, 0, 0.85, 0.15),
                            (0.7, 0.2, 0, 0, 0.1))),
    },
    "cis": {
        "SGRDIEA": _Region((63, 78), (-80, -55), tuple(range(1, 12)), (0.4, 0.3, 0.75, 0.75),
                           ((0, 0.63, 0.3, 0.07, 0), (0, 0, 0.01, 0.99, 0), (0, 0, 0, 0.87, 0.13),
                            (0.38, 0.48, 0, 0.07, 0.07)), 5.0),
        "SGRDIFOXE": _Region((64, 70), (-86, -72), tuple(m for m in _ALL if m != 4), (0.06, 0.3, 0.8, 0.8),
                             ((0, 0.51, 0.42, 0.07, 0), (0, 0.07, 0.1, 0.83, 0), (0, 0, 0, 1, 0),
                              (0.6, 0.4, 0, 0, 0))),
        "SGRDINFLD": _Region((46, 56), (-62, -47), tuple(range(1, 7)), (0.6, 0.65, 0.95, 0.95),
                             ((0.14, 0.66, 0.2, 0, 0), (0, 0, 0.07, 0.93, 0), (0, 0, 0, 1, 0), (0.6, 0.4, 0, 0, 0))),
        "SGRDIWA": _Region((68, 76), (-145, -115), (8, 9, 10), (0.2, 0.2, 0.56, 0.56),
                           ((0, 0, 0, 0.2, 0.8),) * 3 + ((0.15, 0, 0, 0.15, 0.7),)),
        "SGRDIHA": _Region((74, 83), (-125, -70), (8, 9, 10), (0.3, 0.3, 0.85, 0.9),
                           ((0, 0, 0, 0.43, 0.57),) * 3 + ((0.1, 0, 0, 0.35, 0.55),), 0.8),
        "SGRDIMID": _Region((68, 76), (-115, -80), (7, 8, 9, 10), (0.3, 0.3, 0.7, 0.7),
                            ((0, 0, 0, 0.69, 0.31),) * 3 + ((0.15, 0, 0, 0.55, 0.3),), 0.7),
    },
}  # fmt: skip


def _season(month: int) -> int:
    """Month 1..12 -> season index DJF 0, MAM 1, JJA 2, SON 3."""
    return (month % 12) // 3


# --------------------------------------------------------------------------- scene specs


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

    @property
    def rtt_name(self) -> str:
        """Ready-to-train file name of this scene."""
        return schema.raw_to_rtt_name(self.raw_name)


@dataclass
class SynthResult:
    """Files written by :func:`synthesize`, sorted by scene index within each list."""

    raw: list[Path] = field(default_factory=list)
    train: list[Path] = field(default_factory=list)
    test: list[Path] = field(default_factory=list)
    reference: list[Path] = field(default_factory=list)
    skipped: int = 0  #: scenes whose outputs already existed (not overwritten)


def _rng(seed: int, index: int, stream: int) -> np.random.Generator:
    """Independent random stream per (seed, scene, purpose), so a scene never depends on the others."""
    return np.random.default_rng([int(seed), int(index), int(stream)])


def _draw_spec(index: int, *, height: int, width: int, seed: int) -> SceneSpec:
    rng = _rng(seed, index, 0)
    service = schema.SERVICES[(index + seed) % 2]  # alternate, so a multi-scene run has both
    regions = REGIONS[service]
    names = list(regions)
    weights = np.array([regions[n].weight for n in names])
    region = names[rng.choice(len(names), p=weights / weights.sum())]
    months = np.array(regions[region].months)
    mweights = np.where((months >= 8) & (months <= 10), 2.0, 1.0)  # most real scenes Aug-Oct (spec §1)
    month = int(months[rng.choice(len(months), p=mweights / mweights.sum())])
    year = int(rng.integers(2018, 2022))
    day = int(rng.integers(1, 29))
    start = datetime(year, month, day, int(rng.integers(0, 24)), int(rng.integers(0, 60)), int(rng.integers(0, 60)))
    mission = "S1B" if (rng.random() < 0.4 and year >= 2018) else "S1A"
    stop = start + timedelta(seconds=int(rng.integers(20, 61)))
    # Absolute orbit: S1A orbit 20301 on 2018-01-24, 175 orbits per 12-day cycle; S1B is ~ 5000 behind.
    days = (start - datetime(2018, 1, 24)).total_seconds() / 86400
    orbit = int(20301 + days * 175 / 12) - (5250 if mission == "S1B" else 0)
    datatake = int(rng.integers(0, 16**6))
    crc = int(rng.integers(0, 16**4))
    fmt = "%Y%m%dT%H%M%S"
    product = f"{mission}_EW_GRDM_1SDH_{start.strftime(fmt)}_{stop.strftime(fmt)}_{orbit:06d}_{datatake:06X}_{crc:04X}"
    chart_time = start + timedelta(minutes=int(rng.integers(-90, 91)))
    if service == "dmi":
        chart = f"{chart_time.strftime('%Y%m%d%H%M')}_{region}_RIC"
    else:
        chart = f"{region}_{chart_time.strftime('%Y%m%dT%H%M')}Z_pl_a"
    raw_name = f"{product}_icechart_{service}_{chart}.nc"
    return SceneSpec(index, service, region, start, raw_name, height, width)


def scene_specs(n: int, *, height: int, width: int, seed: int, first_index: int = 0) -> list[SceneSpec]:
    """The specs of scenes ``first_index .. first_index + n - 1`` of a seeded synthetic dataset.

    Each spec depends only on (seed, index), except that S1 start times are kept unique within the
    list (a clash moves the later scene by whole minutes), because scene keys must be unique.

    Args:
        n: number of scenes.
        height: RTT (80 m) lines of every scene.
        width: RTT (80 m) samples of every scene.
        seed: dataset seed.
        first_index: index of the first scene (test scenes follow the training scenes).

    Returns:
        One :class:`SceneSpec` per scene, in index order.
    """
    if height < 2 or width < 2:
        raise AutoiceError(f"synth: scene size must be at least 2 x 2 RTT pixels, got {height} x {width}")
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
            spec = SceneSpec(spec.index, spec.service, spec.region, start, name, height, width)
        seen.add(spec.start.strftime("%Y%m%dT%H%M%S"))
        specs.append(spec)
    return specs


# --------------------------------------------------------------------------- noise helpers


def _upsample(a: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a small field to ``shape`` (cell-centre aligned), float32."""
    if a.shape == shape:
        return a.astype(np.float32, copy=False)
    zoom = (shape[0] / a.shape[0], shape[1] / a.shape[1])
    out = ndimage.zoom(a.astype(np.float32, copy=False), zoom, order=1, mode="nearest", grid_mode=True)
    if out.shape != shape:  # zoom rounds the output size; pad/crop the last row/column if needed
        out = np.pad(out, [(0, max(0, s - o)) for s, o in zip(shape, out.shape, strict=True)], mode="edge")
        out = out[: shape[0], : shape[1]]
    return out


def _noise(
    rng: np.random.Generator,
    shape: tuple[int, int],
    scale: float,
    *,
    octaves: int = 1,
    gain: float = 0.5,
) -> np.ndarray:
    """Smooth Gaussian noise (zero mean, unit std) with correlation length ``scale`` pixels, float32.

    Octaves (``scale``, ``scale / 2``, ...; amplitudes ``gain**k``) are each made on a grid with about
    3 steps per correlation length and summed coarse to fine, so the field is resized to full
    resolution once: large fields stay cheap.
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
        total = smooth if total is None else _upsample(total, small) + smooth
    assert total is not None
    out = _upsample(total, shape)
    sub = out[:: max(1, shape[0] // 257), :: max(1, shape[1] // 257)]  # stats on a sample: cheap
    out -= np.float32(sub.mean())
    out *= np.float32(1 / (sub.std() + 1e-12))
    return out


def _block_counts(cls: np.ndarray, n_cls: int, cell: int) -> np.ndarray:
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


# --------------------------------------------------------------------------- egg codes


@dataclass
class _Polygon:
    """One chart polygon: its SIGRID codes, intended labels and how to paint it."""

    poly_type: str
    ct: int = schema.NOT_FILLED
    partials: list[tuple[int, int, int]] = field(default_factory=list)  #: (C code, S code, F code), A first
    single: bool = True  #: CA left unfilled (single ice type)
    labels: tuple[int, int, int] = (schema.CHART_FILL,) * 3  #: intended SIC, SOD, FLOE
    ice_fraction: float = 0.0
    type_classes: tuple[int, ...] = ()  #: surface class of each partial
    type_shares: tuple[float, ...] = ()  #: share of the ice of each partial
    floe_class: int = 5  #: FLOE class that sets the floe texture (form of the largest partial)

    def code_row(self, pid: int) -> str:
        """The ``polygon_codes`` row: id;CT;CA;SA;FA;CB;SB;FB;CC;SC;FC;CN;CD;CF;POLY_TYPE."""
        nf = schema.NOT_FILLED
        cols = [nf] * 9
        for k, (c, s, f) in enumerate(self.partials):
            cols[3 * k : 3 * k + 3] = [c, s, f]
        if self.single and self.partials:
            cols[0] = nf  # single type: CA not filled (rule 1 of spec §4 fills it from CT)
        values = [pid, self.ct, *cols, nf, nf, nf]
        return ";".join(str(v) for v in values) + ";" + self.poly_type


def _intended_labels(ct: int, partials: list[tuple[int, int, int]]) -> tuple[int, int, int]:
    """SIC/SOD/FLOE class that an ice polygon's codes mean (spec §4), reasoned here independently.

    Codes are chosen so that this plain reading is the official one: no range codes, no unknowns in
    multi-type polygons, never three partials of one class.
    """
    fill = schema.CHART_FILL
    sic = schema.SIC_CODES[ct]
    if sic == 0:
        return 0, 0, 0
    thr = schema.THRESHOLDS["current"]
    tenths = [schema.SIC_CODES[c] for c, _, _ in partials]
    sod_cls = [schema.SOD_CODES.get(s, fill) for _, s, _ in partials]
    floe_cls = [schema.FLOE_CODES.get(f, fill) for _, _, f in partials]

    def dominant(classes: list[int], threshold: float) -> int:
        merged: dict[int, int] = {}
        for c, t in zip(classes, tenths, strict=True):
            merged[c] = merged.get(c, 0) + t
        best = max(merged, key=lambda c: merged[c])  # shares never tie at >= 65 %
        return best if merged[best] >= threshold * sic and best != fill else fill

    sod = dominant(sod_cls, thr["SOD"])
    floe = fill if fill in floe_cls else dominant(floe_cls, thr["FLOE"])
    return sic, sod, floe


def _split_tenths(rng: np.random.Generator, total: int, n: int) -> list[int]:
    """Split ``total`` tenths into ``n`` positive parts, the first (thickest) often dominant."""
    if n == 1:
        return [total]
    cuts = np.sort(rng.choice(np.arange(1, total), size=n - 1, replace=False))
    return [int(x) for x in np.diff(np.concatenate([[0], cuts, [total]]))]


def _ice_polygon(
    rng: np.random.Generator,
    service: str,
    month: int,
    weights: np.ndarray,
    rank: float,
    *,
    fast: bool,
) -> _Polygon:
    """Egg code of one ice polygon; ``rank`` 0..1 = position from the ice edge into the pack."""
    summer = month in (6, 7, 8, 9)
    stage_codes = _STAGE_CODES[service]
    if fast:  # land-fast ice: 10/10 (code 92), level, form 8 -> FLOE masked (P§3.3 / spec §4)
        cls = int(rng.choice(5, p=weights) + 1)
        stage = int(rng.choice(stage_codes[cls]))
        poly = _Polygon("I", ct=92, partials=[(92, stage, 8)], single=True)
        poly.labels = _intended_labels(92, poly.partials)
        poly.ice_fraction, poly.type_classes, poly.type_shares, poly.floe_class = 1.0, (cls,), (1.0,), 5
        return poly
    # Total concentration: pack (9+/10) deep inside, lower towards the edge; summer is looser (P§5.2).
    pack = rank > (0.55 if summer else 0.3)
    if pack and rng.random() < 0.75:
        ct = 91
    elif pack:
        ct = int(rng.choice([80, 90]))
    else:
        mean = (0.25 + 0.6 * rank) * 10 - (1.5 if summer else 0)
        ct = int(np.clip(np.round(mean + rng.normal(0, 1.5)), 1, 9)) * 10
    total = 10 if ct == 91 else ct // 10
    n_types = int(rng.choice([1, 2, 3], p=[0.5, 0.35, 0.15]))
    n_types = min(n_types, total, int((weights > 0).sum()) + 1)
    # thickest first (A is the thickest type in SIGRID-3)
    classes = sorted({int(c) + 1 for c in rng.choice(5, size=n_types, p=weights)}, reverse=True)
    if len(classes) < n_types and n_types == 3:
        classes = classes + [classes[-1]]  # two partials of one class: a 2-way merge, still unambiguous
    if len(classes) < n_types:
        n_types = len(classes)
    tenths = _split_tenths(rng, total, n_types)
    partials = []
    for cls, t in zip(classes, tenths, strict=True):
        stage = int(rng.choice(stage_codes[cls]))
        forms = _SUMMER_FORMS if summer and cls >= THICK_FYI else _FORM_CODES[cls]
        form = int(rng.choice(forms))
        if service == "cis" and form == 2:  # CIS charts have no FLOE cake (spec §9)
            form = 3
        partials.append((t * 10, stage, form))
    single = n_types == 1
    if single and partials[0][0] // 10 >= 1 and classes[0] == NEW and rng.random() < 0.5:
        partials[0] = (partials[0][0], partials[0][1], schema.UNKNOWN)  # new ice, form unknown (real CIS habit)
    if not single:
        # never three partials whose forms fall in one FLOE class (official 3-way merge under-counts)
        fcls = [schema.FLOE_CODES.get(f, -1) for _, _, f in partials]
        if len(partials) == 3 and len(set(fcls)) == 1:
            c, s, f = partials[2]
            partials[2] = (c, s, 4 if f != 4 else 5)
    poly = _Polygon("I", ct=ct, partials=partials, single=single)
    poly.labels = _intended_labels(ct, partials if not single else [(ct, partials[0][1], partials[0][2])])
    if ct == 91:
        poly.ice_fraction = float(rng.uniform(0.95, 0.99))
    else:
        poly.ice_fraction = float(np.clip(ct / 100 + rng.uniform(-0.03, 0.03), 0.02, 0.98))
    shares = np.array(tenths, float) / sum(tenths)
    poly.type_classes, poly.type_shares = tuple(classes), tuple(shares)
    big = int(np.argmax(shares))
    poly.floe_class = schema.FLOE_CODES.get(partials[big][2], 5)
    if poly.floe_class == schema.CHART_FILL:
        poly.floe_class = 1 if classes[big] == NEW else 3
    return poly


def _berg_polygon(rng: np.random.Generator) -> _Polygon:
    """DMI iceberg polygon: 1/10 glacier ice as icebergs -> SIC 1, SOD masked (98), FLOE bergs."""
    poly = _Polygon("I", ct=10, partials=[(10, 98, 10)], single=True)
    poly.labels = _intended_labels(10, poly.partials)
    poly.ice_fraction = float(rng.uniform(0.03, 0.1))
    poly.type_classes, poly.type_shares, poly.floe_class = (BERG,), (1.0,), 0
    return poly


# --------------------------------------------------------------------------- generation


def _land_field(rng: np.random.Generator, shape: tuple[int, int], zoom: float) -> tuple[np.ndarray, float]:
    """Continuous land field and the threshold above which a pixel is land (None-like +inf = no land)."""
    share = 0.0 if rng.random() < 0.3 else float(rng.uniform(0.03, 0.4))
    scale = 60 * PX_PER_KM * zoom
    field_ = _noise(rng, shape, scale, octaves=5, gain=0.55)
    # land on one side: a coast (gradient) plus fjords and islands (fractal octaves)
    angle = rng.uniform(0, 2 * np.pi)
    yy = np.linspace(-1, 1, shape[0], dtype=np.float32)[:, None]
    xx = np.linspace(-1, 1, shape[1], dtype=np.float32)[None, :]
    field_ += np.float32(1.5) * (np.cos(angle) * yy + np.sin(angle) * xx)
    if share == 0.0:
        return field_, np.inf
    sub = field_[:: max(1, shape[0] // 300), :: max(1, shape[1] // 300)]
    return field_, float(np.quantile(sub, 1 - share))


def generate_raw(spec: SceneSpec, seed: int) -> tuple[xr.Dataset, dict[str, np.ndarray]]:
    """Generate one synthetic scene in the raw (40 m) layout, with the labels it is meant to carry.

    Args:
        spec: the scene (from :func:`scene_specs`).
        seed: the dataset seed (with ``spec.index`` it fixes every random draw).

    Returns:
        ``(dataset, labels)``: the raw dataset (spec §3 layout, physical units, NaN outside the
        swath) and the intended charts ``{"SIC", "SOD", "FLOE"}`` as uint8 (raw grid, 255 = masked).
    """
    rows, cols = 2 * spec.height, 2 * spec.width
    shape = (rows, cols)
    zoom = float(np.clip(max(rows, cols) / FULL_EXTENT_PX, 0.01, 1.0))  # miniature factor
    month = spec.start.month
    season = _season(month)
    region = REGIONS[spec.service][spec.region]
    rng_geo, rng_ice, rng_sar, rng_met = (_rng(seed, spec.index, k) for k in (1, 2, 3, 4))

    # ---- swath geometry: incidence across samples (reversed when flipped), tie points -------------
    flip = int(rng_geo.random() < 0.5)
    theta_near = float(rng_geo.uniform(18.9, 19.6))
    theta_far = float(rng_geo.uniform(46.3, 47.0))
    theta_col = np.linspace(theta_near, theta_far, cols, dtype=np.float32)
    if flip:
        theta_col = theta_col[::-1].copy()

    # ---- land and coast ----------------------------------------------------------------------------
    land_field, land_thr = _land_field(rng_geo, shape, zoom)
    land = land_field > land_thr
    del land_field

    # ---- no-data: irregular swath edges (SAR + chart) and sometimes a chart border (chart only) -------
    edge_w = max(2, int(0.025 * cols))
    left = edge_w * (0.3 + np.abs(_noise(rng_geo, (rows, 1), rows / 6, octaves=3)[:, 0]))
    right = cols - 1 - edge_w * (0.3 + np.abs(_noise(rng_geo, (rows, 1), rows / 6, octaves=3)[:, 0]))
    top = int(rng_geo.integers(0, max(1, rows // 100) + 1))
    c_idx = np.arange(cols, dtype=np.float32)[None, :]
    nodata = (c_idx < left[:, None]) | (c_idx > right[:, None])
    nodata[:top] = True
    chart_gap = np.zeros(shape, bool)
    if rng_geo.random() < 0.3:  # the chart does not reach one corner of the image
        yy = np.linspace(0, 1, rows, dtype=np.float32)[:, None]
        xx = np.linspace(0, 1, cols, dtype=np.float32)[None, :]
        cut = float(rng_geo.uniform(0.15, 0.3))
        wiggle = 0.05 * _noise(rng_geo, (rows, 1), rows / 4)[:, :1]
        chart_gap = (yy + xx + wiggle) < cut if rng_geo.random() < 0.5 else (2 - yy - xx + wiggle) < cut

    # ---- polygons: noise-warped Voronoi regions on a grid of at most ~1.5 M cells ---------------------
    step = max(1, int(np.ceil(np.sqrt(rows * cols / 1.5e6))))
    grid = (-(-rows // step), -(-cols // step))
    n_poly = int(rng_geo.integers(10, 61))
    seeds = rng_geo.uniform([0, 0], [grid[0], grid[1]], size=(n_poly, 2))
    warp = 0.35 * np.sqrt(grid[0] * grid[1] / n_poly)
    gy, gx = np.mgrid[0 : grid[0], 0 : grid[1]].astype(np.float32)
    wscale = max(grid) / 8
    gy += warp * _noise(rng_geo, grid, wscale, octaves=3)
    gx += warp * _noise(rng_geo, grid, wscale, octaves=3)
    _, voronoi = cKDTree(seeds).query(np.column_stack([gy.ravel(), gx.ravel()]), workers=1)
    voronoi = voronoi.reshape(grid).astype(np.int32)
    del gy, gx
    land_small = land[::step, ::step]
    sea_small = ~land_small
    area = np.bincount(voronoi[sea_small], minlength=n_poly).astype(float)
    # ice-ness: a large-scale field (ice edge) decides which polygons are water and how packed the ice is
    ice_field = _noise(rng_ice, grid, max(grid) / 3, octaves=2)
    ice_field += np.float32(rng_ice.uniform(0.5, 2.0)) * np.linspace(-1, 1, grid[0], dtype=np.float32)[:, None]
    iceness = np.bincount(voronoi.ravel(), ice_field.ravel(), minlength=n_poly) / np.maximum(
        np.bincount(voronoi.ravel(), minlength=n_poly), 1
    )
    del ice_field
    coast_dist = ndimage.distance_transform_edt(sea_small) if land_small.any() else np.full(grid, np.inf)
    near_coast = ndimage.minimum(coast_dist, voronoi + 1, index=np.arange(1, n_poly + 1)) * step < 15 * PX_PER_KM

    # ---- egg codes per polygon ---------------------------------------------------------------------
    ow_share = float(np.clip(region.open_water[season] + rng_ice.normal(0, 0.1), 0.0, 0.97))
    weights = np.array(region.stages[season], float)
    weights = weights / weights.sum()
    order = np.argsort(iceness)
    cum = np.cumsum(area[order]) / max(area.sum(), 1)
    water = np.zeros(n_poly, bool)
    water[order[cum <= ow_share]] = True
    ranks = np.empty(n_poly)
    ranks[order] = np.linspace(0, 1, n_poly)
    ice_ranks = np.where(water, 0.0, (ranks - ow_share) / max(1e-6, 1 - ow_share))
    winter_fast = month in (11, 12, 1, 2, 3, 4, 5, 6)
    polys: list[_Polygon] = []
    for p in range(n_poly):
        if water[p]:
            poly = _Polygon("W", ct=0 if spec.service == "cis" else schema.NOT_FILLED)
            poly.labels = (0, 0, 0)
        elif spec.service == "dmi" and rng_ice.random() < 0.02:  # rare: bergs are 0.15 % of FLOE (spec §9)
            poly = _berg_polygon(rng_ice)
        else:
            fast = bool(winter_fast and near_coast[p] and rng_ice.random() < 0.5)
            poly = _ice_polygon(rng_ice, spec.service, month, weights, float(np.clip(ice_ranks[p], 0, 1)), fast=fast)
        polys.append(poly)
    land_poly = _Polygon("L")  # land: POLY_TYPE L with every code not filled -> no label

    # polygon ids 1..n_poly for sea, n_poly + 1 for land (index 0 unused)
    n_ids = n_poly + 2
    lut_sic = np.full(n_ids, schema.CHART_FILL, np.uint8)
    lut_sod = lut_sic.copy()
    lut_floe = lut_sic.copy()
    lut_frac = np.zeros(n_ids, np.float32)
    for p, poly in enumerate(polys):
        lut_sic[p + 1], lut_sod[p + 1], lut_floe[p + 1] = poly.labels
        lut_frac[p + 1] = poly.ice_fraction
    pid = np.repeat(np.repeat(voronoi + 1, step, axis=0), step, axis=1)[:rows, :cols]
    del voronoi
    pid[land] = n_poly + 1

    # ---- sub-polygon structure: floes and leads matching CT, floe size from the form code ----------
    # Floe texture scales (px): cake/small sub-pixel, medium ~5, big ~25, vast ~100 (P§3.2), capped by
    # the polygon size of miniature scenes.
    poly_px = np.sqrt(rows * cols / n_poly)
    scales = [1.0, 5.0, min(25.0, poly_px / 6), min(100.0, poly_px / 4)]
    # weights of each scale per FLOE class 0..6 (rows) -> floe noise per pixel
    floe_w = np.array(
        [[1, 0, 0, 0], [1, 0.3, 0, 0], [1, 0.6, 0, 0], [0.3, 1, 0.3, 0], [0.1, 0.3, 1, 0.2], [0.05, 0.1, 0.4, 1],
         [1, 0, 0, 0]], np.float32,
    )  # fmt: skip
    floe_w /= np.sqrt((floe_w**2).sum(axis=1, keepdims=True))
    lut_floe_cls = np.zeros(n_ids, np.uint8)
    for p, poly in enumerate(polys):
        lut_floe_cls[p + 1] = min(poly.floe_class, 6)
    w_pix = lut_floe_cls[pid]  # floe class index per pixel (uint8)
    floe_noise = np.zeros(shape, np.float32)
    for k, s in enumerate(scales):
        floe_noise += floe_w[w_pix, k] * _noise(rng_ice, shape, s)
    del w_pix
    # leads in the pack: long thin lines where a smooth field crosses zero (P§3.2 leads)
    lead = np.abs(_noise(rng_ice, shape, min(40.0, poly_px / 4), octaves=2))
    frac = lut_frac[pid]
    pack = frac >= 0.8
    # water where the noise is above the (1 - f) quantile; leads: |n| < t with P(|n| < t) = 1 - f
    u_floe = special.ndtr(floe_noise)
    is_ice = np.where(pack, lead >= special.ndtri(np.clip(1 - frac / 2, 0.5, 1.0)), u_floe < frac)
    del lead, u_floe, pack, floe_noise
    # partial ice types placed in proportion to CA/CB/CC: thresholds of an independent field at floe scale
    u_type = special.ndtr(_noise(rng_ice, shape, min(25.0, poly_px / 6), octaves=2))
    lut_cls = np.zeros((n_ids, 3), np.uint8)
    lut_cum = np.ones((n_ids, 3), np.float32)
    for p, poly in enumerate(polys):
        if poly.type_classes:
            k = len(poly.type_classes)
            lut_cls[p + 1, :k] = poly.type_classes
            lut_cls[p + 1, k:] = poly.type_classes[-1]
            lut_cum[p + 1, :k] = np.cumsum(poly.type_shares)
    surf = np.where(
        u_type <= lut_cum[:, 0][pid],
        lut_cls[:, 0][pid],
        np.where(u_type <= lut_cum[:, 1][pid], lut_cls[:, 1][pid], lut_cls[:, 2][pid]),
    )
    del u_type
    surf[~is_ice] = WATER
    surf[land] = LAND
    del is_ice, frac
    # outside the chart (swath edges, a chart border) the surface continues; only the labels stop

    labels = {"SIC": lut_sic[pid], "SOD": lut_sod[pid], "FLOE": lut_floe[pid]}

    # ---- 2 km grid: surface fractions per cell --------------------------------------------------------
    cell = schema.CELL_RAW
    fr = _block_counts(surf, _N_SURF, cell)  # (nr, nc, 8)
    nr, nc = fr.shape[:2]
    land_fr = fr[..., LAND]
    sea = np.maximum(1 - land_fr, 1e-6)
    ice_fr = fr[..., NEW:LAND].sum(axis=2) / sea  # concentration over the sea part of the cell

    # ---- ERA5 (P§4): smooth (~30 km) fields consistent with the ice cover ----------------------------
    met_sigma = max(1.5, 30 * zoom / 2)  # cells

    def smooth_cells(scale: float = met_sigma) -> np.ndarray:
        return _noise(rng_met, (nr, nc), scale * 2, octaves=2).astype(np.float64)

    mean_speed = float(7.1 * rng_met.weibull(2.0))  # Weibull k=2, mean ~6.3 m/s, P§4
    mean_speed = max(mean_speed, 1.0)
    direction = rng_met.uniform(0, 2 * np.pi) + 0.4 * smooth_cells()
    speed = mean_speed * np.exp(0.35 * smooth_cells())
    u10 = speed * np.cos(direction)  # across track (samples)
    v10 = speed * np.sin(direction)  # along track (lines)
    ice_smooth = ndimage.gaussian_filter(ice_fr, met_sigma, mode="nearest")
    lat_mid = float(np.mean(region.lat))
    t_ice = _T2M_ICE_MONTH[month - 1] - 0.4 * max(0.0, lat_mid - 70) + rng_met.normal(0, 3)
    t_ice = min(t_ice, 273.5)
    ow_excess = {0: 18.0, 1: 10.0, 2: 3.0, 3: 10.0}[season] + rng_met.uniform(-3, 5)  # water 5-30 K warmer (P§4)
    lat_warm = max(0.0, 66 - lat_mid) * 0.3  # sub-Arctic seas a few K warmer
    t_water = max(t_ice + ow_excess, 271.5) + lat_warm
    land_smooth = ndimage.gaussian_filter(land_fr, met_sigma, mode="nearest")
    t_surf_ice = t_ice * (ice_smooth + land_smooth * (1 - ice_smooth)) + t_water * (1 - ice_smooth) * (1 - land_smooth)
    t2m = t_surf_ice + 1.0 * smooth_cells()
    sst = np.maximum(_SEA_FREEZING_K, t_water - 1.0 + 0.5 * smooth_cells())
    inversion = 3.0 if season in (0, 1, 3) else 0.3  # ice skin 1-5 K below t2m in winter, P§4
    w_water = (1 - ice_smooth) * (1 - land_smooth)
    skt = (t2m - inversion) * (1 - w_water) + sst * w_water
    if season == 2:  # summer ice skin pinned near 273 K (P§4)
        skt = np.minimum(skt, 273.3 + 8 * w_water)
    tcwv_base = _TCWV_MONTH[month - 1] + max(0.0, 66 - lat_mid) * 0.4  # up to 20-25 sub-Arctic (P§4)
    tcwv = np.clip(tcwv_base * np.exp(0.25 * smooth_cells()), 0.5, 30)
    tclw = np.clip(0.04 * np.exp(1.0 * smooth_cells() - 0.5) * rng_met.uniform(0.3, 2.0), 0, 0.6)

    # ---- AMSR2 (P§2): per-cell mixing, then Gaussian footprint blur per frequency -----------------------
    melt = {6: 0.5, 7: 1.0, 8: 0.7}.get(month, 0.0)  # wet snow in summer (P§2.2 melting row)
    footprint_major_axis = int(rng_met.integers(0, 2))
    btemp: dict[str, np.ndarray] = {}
    for f, freq in enumerate(schema.AMSR2_FREQUENCIES):
        for p_i, pol in enumerate(("v", "h")):
            tb_w = (
                _TB_WATER[f, p_i]
                + _DTB_WIND[f, p_i] * (np.clip(speed, 0, 20) - 5)
                + _DTB_TCWV[f, p_i] * (tcwv - 5)
                + _DTB_TCLW[f, p_i] * tclw
                + _DTB_SST[f, p_i] * (sst - 272)
            )
            fyi = _TB_FYI[f, p_i] * (1 - melt) + _TB_WET[f, p_i] * melt
            myi = _TB_MYI[f, p_i] * (1 - melt) + _TB_WET[f, p_i] * melt
            tb_type = {
                NEW: fyi - (_THIN_H_DROP[NEW] if pol == "h" else 3),
                YOUNG: fyi - (_THIN_H_DROP[YOUNG] if pol == "h" else 2),
                THIN_FYI: fyi - (_THIN_H_DROP[THIN_FYI] if pol == "h" else 1),
                THICK_FYI: fyi,
                OLD: myi,
                BERG: myi,
            }
            atm_ice = {5: 0.2, 6: 0.6}.get(f, 0.05) * tcwv  # atmosphere over ice, P§2.3 note
            ice_part = sum(fr[..., c] * tb_type[c] for c in tb_type) + (fr[..., NEW:LAND].sum(axis=2)) * atm_ice
            tb = fr[..., WATER] * tb_w + ice_part + land_fr * _TB_LAND[f, p_i]
            fwhm = _FOOTPRINT_KM[f] * max(zoom, 0.1) / 2.0  # cells of 2 km (floor keeps tiny scenes blurred)
            sig = fwhm / 2.3548
            sigma = (sig[1], sig[0]) if footprint_major_axis == 0 else (sig[0], sig[1])
            tb = ndimage.gaussian_filter(tb, sigma, mode="nearest", truncate=3.0)
            tb += rng_met.normal(0, 0.4, size=tb.shape)  # NEdT ~0.3-1 K
            btemp[f"btemp_{freq}{pol}"] = tb
    if "btemp_7_3h" in btemp:  # 7.3 GHz ~ 6.9 GHz, means ~1 K higher (P§2.1, global_meanstd)
        btemp["btemp_7_3h"] = btemp["btemp_6_9h"] + 1.0 + rng_met.normal(0, 0.3, size=(nr, nc))
        btemp["btemp_7_3v"] = btemp["btemp_6_9v"] + 0.7 + rng_met.normal(0, 0.3, size=(nr, nc))

    # ---- SAR (P§1), strip by strip to bound memory ------------------------------------------------------
    hh = np.empty(shape, np.float32)
    hv = np.empty(shape, np.float32)
    # per-pixel wind from the 2 km grid (bilinear), direction relative to the range (samples) axis
    deform = _noise(rng_sar, shape, 6.0, octaves=3)  # ridging / deformation texture
    land_tex = _noise(rng_sar, shape, 20.0 * max(zoom, 0.2), octaves=4) if land.any() else None
    noise_floor = _hv_noise_floor(theta_col, rows, rng_sar)  # (rows, cols) dB, float32
    speed_px = _upsample(speed.astype(np.float32), shape)
    dir_px = _upsample(np.cos(2 * direction).astype(np.float32), shape)
    wind_rng = _rng(seed, spec.index, 5)
    for r0 in range(0, rows, _STRIP):
        r1 = min(rows, r0 + _STRIP)
        s = surf[r0:r1].astype(np.intp)
        dth = (theta_col[None, :] - 35.0).astype(np.float32)
        d = deform[r0:r1]
        hh_db = _HH35[s] + _HH_SLOPE[s] * dth + _HH_DEFORM[s] * 0.5 * d
        hv_db = _HV35[s] + _HV_SLOPE[s] * dth + _HV_DEFORM[s] * 0.5 * d
        if melt:  # wet snow: ice darker and FYI/MYI contrast mostly lost (P§1.4 melt row)
            ice = (s >= NEW) & (s <= OLD)
            hh_db = np.where(ice, (1 - melt) * hh_db + melt * (-16.0 + 1.5 * d + 0.2 * -dth), hh_db)
            hv_db = np.where(ice, (1 - melt) * hv_db + melt * (-27.0 + 1.5 * d), hv_db)
        if land_tex is not None:
            t = land_tex[r0:r1]
            hh_db = np.where(s == LAND, -10.0 + 3.0 * t, hh_db)  # rock/tundra -15..-5 dB (P§1.4)
            hv_db = np.where(s == LAND, -20.0 + 3.0 * t, hv_db)
        w = s == WATER
        u = np.clip(speed_px[r0:r1], 0.3, 30)
        th = np.broadcast_to(theta_col[None, :], u.shape)
        pts = np.column_stack([th[w], np.log10(u[w])])
        water_hh = _WATER_HH(pts).astype(np.float32) if pts.size else np.zeros(0, np.float32)
        # up/down-wind vs cross-wind modulation, ±0.7 dB (3 m/s) ... ±2.4 dB (12 m/s) at 35 deg (P§1.3)
        amp = np.clip(0.5 + 0.15 * u[w], 0.5, 3.0)
        water_hh = np.maximum(water_hh + amp * dir_px[r0:r1][w], -40.0)
        hh_db[w] = water_hh
        hv_db[w] = -35.6 + 0.59 * u[w]  # SFMR fit, P§1.3 (below the floor unless very windy)
        b = s == BERG
        if b.any():  # icebergs: point targets -5..+5 dB (P§1.4)
            hh_db[b] = wind_rng.uniform(-5, 5, size=int(b.sum()))
            hv_db[b] = wind_rng.uniform(-15, -5, size=int(b.sum()))
        # residual noise floor (denoised product): power-added, weak version on HH (P§1.1)
        nf = noise_floor[r0:r1]
        hh_lin = 10 ** (hh_db / 10) + 0.3 * 10 ** ((nf - 2.0) / 10)
        hv_lin = 10 ** (hv_db / 10) + 10 ** (nf / 10)
        # multiplicative Gamma speckle, ENL 10.7 at 40 m (P§1.2)
        hh_lin *= wind_rng.standard_gamma(ENL, size=hh_lin.shape, dtype=np.float32) / ENL
        hv_lin *= wind_rng.standard_gamma(ENL, size=hv_lin.shape, dtype=np.float32) / ENL
        hh[r0:r1] = 10 * np.log10(hh_lin)
        hv[r0:r1] = 10 * np.log10(hv_lin)
    del deform, land_tex, noise_floor, speed_px, dir_px
    hh[nodata] = np.nan
    hv[nodata] = np.nan

    # ---- distance to land (km) -> zones (spec §2); EDT on a grid of at most ~6.5 M cells ---------------
    dstep = max(1, int(np.ceil(np.sqrt(rows * cols / 6.5e6))))
    land_d = land[::dstep, ::dstep]
    if land_d.any():
        dist_km = ndimage.distance_transform_edt(~land_d).astype(np.float32) * (dstep / PX_PER_KM)
        dist_km = np.repeat(np.repeat(dist_km, dstep, axis=0), dstep, axis=1)[:rows, :cols]
    else:  # coast outside the scene: 30-400 km off one side (miniature distances)
        d0 = float(rng_geo.uniform(30, 400))
        ramp = np.linspace(0, cols / PX_PER_KM, cols, dtype=np.float32)[None, :]
        dist_km = np.broadcast_to(d0 + ramp, shape)
    zones = schema.distance_zone(np.maximum(dist_km, 0.02)).astype(np.float32)
    del dist_km
    zones[land] = 0
    zones[nodata] = np.nan

    polygon = pid.astype(np.float32)
    polygon[nodata | chart_gap] = np.nan
    del pid
    codes = [";".join(schema.POLYGON_CODES_HEADER)]
    codes += [poly.code_row(p + 1) for p, poly in enumerate(polys)]
    codes.append(land_poly.code_row(n_poly + 1))
    for name in schema.CHARTS:
        labels[name][nodata | chart_gap] = schema.CHART_FILL

    ds = _assemble(
        spec,
        shape=shape,
        zoom=zoom,
        theta_col=theta_col,
        flip=flip,
        rng=rng_geo,
        hh=hh,
        hv=hv,
        zones=zones,
        polygon=polygon,
        codes=codes,
        swath=_swath_segments(theta_col, rows, nodata),
        coarse={**btemp, **_era5_dict(u10, v10, t2m, skt, tcwv, tclw)},
    )
    return ds, labels


def _era5_dict(*fields: np.ndarray) -> dict[str, np.ndarray]:
    return dict(zip(schema.ERA5_VARIABLES, fields, strict=True))


def _hv_noise_floor(theta_col: np.ndarray, rows: int, rng: np.random.Generator) -> np.ndarray:
    """HV residual noise floor (dB): -22 at swath edges / EW1 to -30 at sub-swath centres (P§1.1).

    Each of the five sub-swaths gets an arch peaking at its edges, a step at the seams, and azimuth
    scalloping with the ~23 km burst period, strongest in EW1.
    """
    edges = np.array([INCIDENCE_RANGE[0], *SUBSWATH_EDGES, INCIDENCE_RANGE[1]], np.float32)
    sw = np.clip(np.searchsorted(edges, theta_col, side="right") - 1, 0, 4)
    lo, hi = edges[sw], edges[sw + 1]
    pos = (theta_col - lo) / (hi - lo) * 2 - 1  # -1..1 across each sub-swath
    centre = np.array([-24.5, -27.5, -28.5, -29.0, -27.0], np.float32)[sw]
    centre = centre + rng.uniform(-0.5, 0.5, size=5).astype(np.float32)[sw]  # residual seam steps
    arch = np.array([2.5, 2.0, 1.5, 1.5, 2.0], np.float32)[sw] * pos**2
    row_floor = (centre + arch).astype(np.float32)[None, :]
    period = BURST_KM * PX_PER_KM
    phase = rng.uniform(0, 2 * np.pi, size=5)
    lines = np.arange(rows, dtype=np.float32)[:, None]
    amp = np.array([1.0, 0.5, 0.4, 0.3, 0.3], np.float32)[sw][None, :]
    scallop = amp * np.cos(2 * np.pi * lines / period + phase[sw][None, :].astype(np.float32)) ** 2
    return (row_floor + scallop).astype(np.float32)


def _swath_segments(theta_col: np.ndarray, rows: int, nodata: np.ndarray) -> np.ndarray:
    """Sub-swath number 1..5 per pixel (0 = no data), the raw bookkeeping ``swath_segmentation``."""
    sw = (np.searchsorted(np.asarray(SUBSWATH_EDGES, np.float32), theta_col) + 1).astype(np.uint8)
    out = np.broadcast_to(sw[None, :], (rows, theta_col.size)).copy()
    out[nodata] = 0
    return out


def _assemble(
    spec: SceneSpec,
    *,
    shape: tuple[int, int],
    zoom: float,
    theta_col: np.ndarray,
    flip: int,
    rng: np.random.Generator,
    hh: np.ndarray,
    hv: np.ndarray,
    zones: np.ndarray,
    polygon: np.ndarray,
    codes: list[str],
    swath: np.ndarray,
    coarse: dict[str, np.ndarray],
) -> xr.Dataset:
    """Put the generated arrays in the raw layout (spec §3, scenes_api raw layout)."""
    rows, cols = shape
    region = REGIONS[spec.service][spec.region]
    n = schema.TIEPOINT_GRID
    t_lines = np.linspace(0, rows - 1, n)
    t_samples = np.linspace(0, cols - 1, n)
    tl, ts = np.meshgrid(t_lines, t_samples, indexing="ij")  # line-major order
    # a rotated ~400 km swath rectangle inside the region box (miniatures keep the real extent)
    heading = np.deg2rad(rng.uniform(-30, 30) + (180 if rng.random() < 0.5 else 0))
    km_per_px = 1 / (PX_PER_KM * zoom)
    along = (tl - rows / 2) * km_per_px
    across = (ts - cols / 2) * km_per_px * (-1 if flip else 1)
    dlat = (along * np.cos(heading) - across * np.sin(heading)) / 111.2
    east = along * np.sin(heading) + across * np.cos(heading)

    def inside(lo: float, hi: float, off: np.ndarray) -> float:
        a, b = lo - off.min(), hi - off.max()  # centres keeping the whole swath in [lo, hi]
        return float(rng.uniform(a, b)) if a < b else (lo + hi) / 2

    lat = inside(*region.lat, dlat) + dlat
    dlon = east / (111.2 * np.cos(np.deg2rad(lat)))
    lon = inside(*region.lon, dlon) + dlon
    theta_tp = np.interp(ts, np.arange(cols), theta_col.astype(np.float64))
    tie = {
        "sar_grid_line": tl,
        "sar_grid_sample": ts,
        "sar_grid_latitude": lat,
        "sar_grid_longitude": lon,
        "sar_grid_incidenceangle": theta_tp,
        "sar_grid_height": np.zeros_like(tl),
    }
    full = schema.FULL_DIMS
    cdims = schema.COARSE_DIMS
    data_vars: dict[str, tuple] = {
        schema.SAR_VARIABLES[0]: (full, hh),
        schema.SAR_VARIABLES[1]: (full, hv),
        schema.DISTANCE_VARIABLE: (full, zones),
        schema.POLYGON_ICECHART: (full, polygon),
        "swath_segmentation": (full, swath),
        schema.POLYGON_CODES: ((schema.RAW_CODES_DIM,), np.array(codes, dtype=str)),
    }
    for name in schema.COARSE_VARIABLES:
        data_vars[name] = (cdims, np.asarray(coarse[name], np.float64))
    for name in schema.RAW_TIEPOINTS:
        data_vars[name] = ((schema.RAW_TIEPOINT_DIM,), np.asarray(tie[name], np.float64).ravel())
    attrs = {
        "ice_service": spec.service,
        "flip": flip,
        "pixel_spacing": schema.RAW_PIXEL_SPACING,
        "scene_id": spec.raw_name.split("_icechart_")[0],
        "source": "autoice.synth (synthetic)",
    }
    return xr.Dataset(data_vars, attrs=attrs)


# --------------------------------------------------------------------------- writing


def write_raw(spec: SceneSpec, seed: int, out_dir: str | os.PathLike[str]) -> Path:
    """Generate one scene and write it as ``out_dir/<raw name>`` (netCDF-4, atomic).

    Args:
        spec: the scene.
        seed: dataset seed.
        out_dir: folder of the raw files (created if missing).

    Returns:
        The written path.
    """
    from autoice import scenes

    ds, _ = generate_raw(spec, seed)
    path = Path(out_dir) / spec.raw_name
    scenes.write_netcdf(ds, path)
    return path


def _make_scene(spec: SceneSpec, seed: int, out_dir: str, split: str, overwrite: bool) -> tuple[str, list[Path], bool]:
    """Worker job: raw -> RTT (train) or raw -> RTT -> test + reference. Returns (split, paths, skipped)."""
    from autoice import prepare, scenes

    root = Path(out_dir)
    raw_dir, split_dir = root / "raw", root / split
    raw_path = raw_dir / spec.raw_name
    rtt_path = split_dir / spec.rtt_name
    ref_path = split_dir / schema.parse_raw_name(spec.raw_name).reference_name  # type: ignore[union-attr]
    wanted = [raw_path, rtt_path] + ([ref_path] if split == "test" else [])
    if not overwrite and all(p.exists() for p in wanted):
        return split, wanted, True
    write_raw(spec, seed, raw_dir)
    result = prepare.prepare_file(raw_path, split_dir, overwrite=True)
    if split == "test":
        test_path, reference = scenes.split_reference(result.output)
        return split, [raw_path, test_path, reference], False
    return split, [raw_path, result.output], False


def synthesize(
    out_dir: str | os.PathLike[str],
    *,
    n_train: int,
    n_test: int,
    height: int,
    width: int,
    seed: int,
    workers: int = 1,
    overwrite: bool = False,
    progress: bool = True,
) -> SynthResult:
    """Write a synthetic dataset: ``raw/`` (40 m), ``train/`` (RTT with charts), ``test/`` (+ references).

    Training scenes are indices ``0 .. n_train - 1``, test scenes follow; scene *i* depends only on
    (seed, i), so ``workers`` never changes the results. Scenes whose outputs exist are kept unless
    ``overwrite``.

    Args:
        out_dir: dataset root.
        n_train: training scenes.
        n_test: test scenes (written without charts, plus ``_prep_reference.nc``).
        height: RTT lines per scene (raw has twice as many).
        width: RTT samples per scene.
        seed: dataset seed.
        workers: parallel processes.
        overwrite: regenerate scenes whose files exist.
        progress: show a tqdm bar on stderr.

    Returns:
        A :class:`SynthResult` with every file path.
    """
    from tqdm.auto import tqdm

    if n_train < 0 or n_test < 0:
        raise AutoiceError(f"{out_dir}: scene counts must not be negative (train {n_train}, test {n_test})")
    if workers < 1:
        raise AutoiceError(f"{out_dir}: workers must be >= 1, got {workers}")
    specs = scene_specs(n_train + n_test, height=height, width=width, seed=seed)
    jobs = [(spec, "train" if spec.index < n_train else "test") for spec in specs]
    results: dict[int, tuple[str, list[Path], bool]] = {}
    bar = tqdm(total=len(jobs), desc="synth", unit="scene", disable=not progress)
    try:
        if workers == 1 or len(jobs) <= 1:
            for spec, split in jobs:
                results[spec.index] = _make_scene(spec, seed, str(out_dir), split, overwrite)
                bar.update()
        else:
            from concurrent.futures import ProcessPoolExecutor, as_completed

            with ProcessPoolExecutor(max_workers=workers) as pool:
                futures = {
                    pool.submit(_make_scene, spec, seed, str(out_dir), split, overwrite): spec.index
                    for spec, split in jobs
                }
                for fut in as_completed(futures):
                    results[futures[fut]] = fut.result()
                    bar.update()
    finally:
        bar.close()
    out = SynthResult()
    for index in sorted(results):
        split, paths, skipped = results[index]
        out.raw.append(paths[0])
        out.skipped += int(skipped)
        if split == "train":
            out.train.append(paths[1])
        else:
            out.test.append(paths[1])
            out.reference.append(paths[2])
    return out
