"""Sentinel-1 EW HH/HV backscatter of a true surface (P§1), strip by strip to bound memory.

Per ice type a level and an incidence slope (P§1.4), ridges and deformation texture by stage, a
per-floe brightness so floe size shows as texture; open water from CMOD5.N + PR (P§1.3) driven by the
local wind, with wind streaks and rain cells, so windy water looks like ice; land as terrain (slopes
facing the radar bright, layover); an HV noise floor with sub-swath seams and scalloping (P§1.1);
Gamma speckle (P§1.2).
"""

from __future__ import annotations

import numpy as np
from scipy.interpolate import RegularGridInterpolator

from autoice import schema
from autoice.synth.fields import noise, oriented_noise
from autoice.synth.icechart import BERG, LAND, NEW, OLD, WATER
from autoice.synth.surface import Surface

PX_PER_KM = 1000 / schema.RAW_PIXEL_SPACING  #: 25 raw pixels per km
INCIDENCE_RANGE = (18.9, 47.0)  #: EW incidence range, P§1.1
SUBSWATH_EDGES = (29.2, 34.5, 39.6, 43.9)  #: EW sub-swath seams (deg), P§1.1
ENL = 10.7  #: equivalent number of looks of GRDM at 40 m, P§1.1/1.2
BURST_KM = 23.0  #: azimuth burst length (scalloping period), P§1.1
_STRIP = 512  #: rows per strip (fixed: results must not depend on the machine)

# HH/HV at 35 deg and slopes (dB, dB/deg) per surface class, P§1.4 (winter). Index = surface class.
#                  water new    young  thinF  thickF old    berg  land
#: First-year and young ice levels are those of level ice; deformed zones add _DEF_HH/_DEF_HV (below).
_HH35 = np.array([0.0, -24.0, -13.5, -17.5, -18.0, -10.0, 0.0, 0.0], np.float32)
_HV35 = np.array([0.0, -31.0, -26.5, -29.5, -29.5, -17.5, -10.0, 0.0], np.float32)
_HH_SLOPE = np.array([0.0, -0.29, -0.13, -0.30, -0.33, -0.17, 0.0, -0.10], np.float32)
_HV_SLOPE = np.array([0.0, -0.13, -0.04, -0.25, -0.28, -0.10, 0.0, -0.05], np.float32)
#: Deformation texture amplitude and ridge brightening (dB) per class (level vs deformed FYI, P§1.4).
_HH_TEX = np.array([0.0, 1.5, 1.2, 1.5, 1.8, 1.2, 0.0, 0.0], np.float32)
_HV_TEX = np.array([0.0, 1.5, 1.0, 2.0, 2.5, 1.5, 0.0, 0.0], np.float32)
_HH_RIDGE, _HV_RIDGE = 6.0, 8.0
#: Deformed zones (rafted young ice, rubble fields of FYI): towards deformed FYI, HH -11, HV -21 at 35 deg (P§1.4),
#: as bright as old ice in HH and close to it in HV; their texture is rougher (_DEF_TEX x the class texture).
_DEF_HH = np.array([0.0, 0.0, 2.5, 6.5, 7.0, 0.0, 0.0, 0.0], np.float32)
_DEF_HV = np.array([0.0, 0.0, 4.5, 8.5, 8.5, 0.0, 0.0, 0.0], np.float32)
_DEF_TEX = 1.8
#: Frost flowers and rafting on new ice (P§1.4: +6 dB or more): in a cold-season scene, with probability
#: _FROST_P, patches of its new ice are bright (HH -24 -> -15, HV -31 -> -26), like thin first-year ice.
_FROST_DB = (9.0, 5.0)
_FROST_P = 0.5
#: HH residual noise floor of the denoised product (dB): calm water is "at/below the noise floor" at about -25 dB
#: (P§1.3; NESZ spec max -22, P§1.1), with a weak copy of the HV floor's seams, arches and scalloping (<= 0.5 dB,
#: P§1.1). It was -36 to -40 dB before 2026-12-04, which left far-range calm water at -29 dB and the pooled HH
#: spread 1.13-1.20 x the organisers' (bench/realism.py (a), tuning seeds); now 0.97-1.05 x.
_HH_FLOOR_DB = -27.0
_HH_FLOOR_ARTEFACTS = 0.25
_FLOE_DB = np.array([0.0, 0.5, 0.8, 0.8, 0.8, 0.6, 0.0, 0.0], np.float32)  #: per-floe brightness spread

# Open-water HH (dB) from CMOD5.N + Zhang PR, wind-direction averaged, P§1.3 table.
_CMOD_THETA = np.array([25.0, 35.0, 45.0])
_CMOD_LOGU = np.log10([3.0, 7.0, 12.0])
_CMOD_HH = np.array([[-13.3, -8.9, -6.1], [-22.9, -17.7, -13.7], [-29.3, -23.8, -19.1]])
_WATER_HH = RegularGridInterpolator((_CMOD_THETA, _CMOD_LOGU), _CMOD_HH, bounds_error=False, fill_value=None)


def incidence(rng: np.random.Generator, cols: int) -> tuple[np.ndarray, int]:
    """Incidence angle per sample (deg) and the flip flag (far range first when 1)."""
    flip = int(rng.random() < 0.5)
    theta = np.linspace(rng.uniform(18.9, 19.6), rng.uniform(46.3, 47.0), cols, dtype=np.float32)
    return (theta[::-1].copy() if flip else theta), flip


def hv_noise_floor(theta_col: np.ndarray, rows: int, rng: np.random.Generator) -> np.ndarray:
    """HV residual noise floor (dB): -22 at swath edges / EW1 to -30 at sub-swath centres (P§1.1).

    Each of the five sub-swaths gets an arch peaking at its edges, a step at the seams, and azimuth
    scalloping with the ~23 km burst period, strongest in EW1.
    """
    edges = np.array([INCIDENCE_RANGE[0], *SUBSWATH_EDGES, INCIDENCE_RANGE[1]], np.float32)
    sw = np.clip(np.searchsorted(edges, theta_col, side="right") - 1, 0, 4)
    lo, hi = edges[sw], edges[sw + 1]
    pos = (theta_col - lo) / (hi - lo) * 2 - 1  # -1..1 across each sub-swath
    centre = np.array([-29.0, -32.0, -33.0, -33.5, -31.5], np.float32)[sw]  # residual after NERSC denoising
    centre = centre + rng.uniform(-0.5, 0.5, size=5).astype(np.float32)[sw]  # residual seam steps
    arch = np.array([2.5, 2.0, 1.5, 1.5, 2.0], np.float32)[sw] * pos**2
    row_floor = (centre + arch).astype(np.float32)[None, :]
    period = BURST_KM * PX_PER_KM
    phase = rng.uniform(0, 2 * np.pi, size=5)
    lines = np.arange(rows, dtype=np.float32)[:, None]
    amp = np.array([1.0, 0.5, 0.4, 0.3, 0.3], np.float32)[sw][None, :]
    scallop = amp * np.cos(2 * np.pi * lines / period + phase[sw][None, :].astype(np.float32)) ** 2
    return (row_floor + scallop).astype(np.float32)


def swath_segments(theta_col: np.ndarray, rows: int, nodata: np.ndarray) -> np.ndarray:
    """Sub-swath number 1..5 per pixel (0 = no data), the raw bookkeeping ``swath_segmentation``."""
    sw = (np.searchsorted(np.asarray(SUBSWATH_EDGES, np.float32), theta_col) + 1).astype(np.uint8)
    out = np.broadcast_to(sw[None, :], (rows, theta_col.size)).copy()
    out[nodata] = 0
    return out


def wind_texture(rng: np.random.Generator, shape: tuple[int, int], direction: float) -> np.ndarray:
    """Relative wind-speed modulation at SAR scale, a factor on the 2 km wind.

    Rolls/streaks along the wind (1-3 km apart, tens of km long) and rain cells (5-15 km, gust fronts
    bright, cores calm).
    """
    streaks = oriented_noise(rng, shape, 12 * PX_PER_KM, 1.2 * PX_PER_KM, direction)
    cells = noise(rng, shape, 4 * PX_PER_KM)
    rain = np.where(cells > 1.6, 0.45 * np.tanh(2.0 * (cells - 1.6)) * np.sign(cells - 2.1), 0.0)
    return np.exp(0.12 * streaks + rain).astype(np.float32)


def backscatter(
    rng: np.random.Generator,
    surface: Surface,
    theta_col: np.ndarray,
    speed_px: np.ndarray,
    dir_px: np.ndarray,
    *,
    terrain: np.ndarray | None,
    melt: float,
) -> tuple[np.ndarray, np.ndarray]:
    """HH and HV (dB) of every raw pixel.

    Args:
        rng: SAR random stream.
        surface: the true surface.
        theta_col: incidence angle per sample.
        speed_px: local 10 m wind speed per pixel (m/s).
        dir_px: cos(2 x wind direction relative to range), up/down-wind vs cross-wind modulation.
        terrain: land height field (unit std) or None without land.
        melt: 0..1 wet snow in the melt season.
    """
    rows, cols = surface.surf.shape
    hh = np.empty((rows, cols), np.float32)
    hv = np.empty((rows, cols), np.float32)
    floor = hv_noise_floor(theta_col, rows, rng)
    floor_mean = np.float32(floor.mean())
    frost = None
    if not melt and rng.random() < _FROST_P:  # frost flowers in patches of a few km (cold, calm, new ice)
        frost = noise(rng, (rows, cols), 2.5 * PX_PER_KM, octaves=2) > rng.uniform(-0.5, 0.5)
    land_tex = noise(rng, (rows, cols), 8.0, octaves=4) if terrain is not None else None
    slope = np.gradient(terrain, axis=1) if terrain is not None else None  # facing the radar: bright
    if slope is not None:
        slope /= np.float32(slope.std() + 1e-6)
    for r0 in range(0, rows, _STRIP):
        r1 = min(rows, r0 + _STRIP)
        s = surface.surf[r0:r1].astype(np.intp)
        dth = (theta_col[None, :] - 35.0).astype(np.float32)
        tex, rid, flo = surface.texture[r0:r1], surface.ridge[r0:r1], surface.floe[r0:r1]
        dfm = surface.deformed[r0:r1].astype(np.float32)
        tex = tex * (1 + (_DEF_TEX - 1) * dfm)
        hh_db = (_HH35[s] + _DEF_HH[s] * dfm + _HH_SLOPE[s] * dth + _HH_TEX[s] * tex + _FLOE_DB[s] * flo
                 + _HH_RIDGE * rid)  # fmt: skip
        hv_db = (_HV35[s] + _DEF_HV[s] * dfm + _HV_SLOPE[s] * dth + _HV_TEX[s] * tex + _FLOE_DB[s] * flo
                 + _HV_RIDGE * rid)  # fmt: skip
        if frost is not None:
            ff = (s == NEW) & frost[r0:r1]
            hh_db = np.where(ff, hh_db + _FROST_DB[0], hh_db)
            hv_db = np.where(ff, hv_db + _FROST_DB[1], hv_db)
        if melt:  # wet snow: ice darker, FYI/MYI contrast mostly lost, texture damped (P§1.4 melt row)
            ice = (s >= NEW) & (s <= OLD)
            hh_db = np.where(ice, (1 - melt) * hh_db + melt * (-16.0 + 1.0 * tex - 0.2 * dth + 0.5 * flo), hh_db)
            hv_db = np.where(ice, (1 - melt) * hv_db + melt * (-26.5 + 1.0 * tex + 0.5 * flo), hv_db)
        if land_tex is not None and slope is not None:
            lt, sl = land_tex[r0:r1], slope[r0:r1]
            layover = np.where(sl > 2.2, 6.0, 0.0)
            hh_db = np.where(s == LAND, -11.0 + 3.5 * np.tanh(sl) + 2.5 * lt + layover, hh_db)  # P§1.4 land
            hv_db = np.where(s == LAND, -22.0 + 3.0 * np.tanh(sl) + 2.5 * lt + layover, hv_db)
        w = s == WATER
        u = np.clip(speed_px[r0:r1], 0.3, 30)
        th = np.broadcast_to(theta_col[None, :], u.shape)
        pts = np.column_stack([th[w], np.log10(u[w])])
        water_hh = _WATER_HH(pts).astype(np.float32) if pts.size else np.zeros(0, np.float32)
        # up/down-wind vs cross-wind modulation, ±0.7 dB (3 m/s) ... ±2.4 dB (12 m/s) at 35 deg (P§1.3)
        amp = np.clip(0.5 + 0.15 * u[w], 0.5, 3.0)
        hh_db[w] = np.maximum(water_hh + amp * dir_px[r0:r1][w], -40.0)
        hv_db[w] = -35.6 + 0.59 * u[w]  # SFMR fit, P§1.3 (below the floor unless very windy)
        b = s == BERG
        if b.any():  # icebergs: point targets -5..+5 dB (P§1.4)
            hh_db[b] = rng.uniform(-5, 5, size=int(b.sum()))
            hv_db[b] = rng.uniform(-15, -5, size=int(b.sum()))
        # residual noise floor (denoised product): power-added, weak version on HH (P§1.1)
        nf = floor[r0:r1]
        hh_lin = 10 ** (hh_db / 10) + 10 ** ((_HH_FLOOR_DB + _HH_FLOOR_ARTEFACTS * (nf - floor_mean)) / 10)
        hv_lin = 10 ** (hv_db / 10) + 10 ** (nf / 10)
        # multiplicative Gamma speckle, ENL 10.7 at 40 m (P§1.2)
        hh_lin *= rng.standard_gamma(ENL, size=hh_lin.shape, dtype=np.float32) / ENL
        hv_lin *= rng.standard_gamma(ENL, size=hv_lin.shape, dtype=np.float32) / ENL
        hh[r0:r1] = 10 * np.log10(hh_lin)
        hv[r0:r1] = 10 * np.log10(hv_lin)
    return hh, hv
