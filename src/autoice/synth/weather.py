"""The weather of a scene, and ERA5 as a coarse, imperfect estimate of it (P§4).

The *true* weather (wind with a front, water vapour, cloud liquid water with rain cells, SST) drives
the SAR water signal and the AMSR2 atmosphere. ERA5 is that weather smoothed to ~30 km with its own
errors, plus a climatological temperature: it never sees the true ice field (only land, which ERA5
knows), so ERA5 inputs carry the weather and the season, not the ice.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage, special

from autoice.synth.fields import noise

#: Near-surface air temperature climatology of the chart regions by month (K, P§4 ranges; pooled 268.6 +- 9.5).
_T2M_MONTH = np.array([256.5, 255.5, 257.5, 264, 271.5, 276, 278.5, 278, 276, 270.5, 264, 259], float)
#: Total column water vapour, 70-90N monthly mean (kg m-2, P§4), raised in sub-Arctic seas.
_TCWV_MONTH = np.array([2.7, 2.7, 3.2, 4.5, 6.8, 10.5, 13.5, 12.6, 9.0, 5.9, 4.0, 3.2])
SEA_FREEZING_K = 271.35  #: P§4


@dataclass
class Weather:
    """Weather on the 2 km grid: the truth (for SAR and AMSR2) and ERA5 (the model inputs)."""

    speed: np.ndarray  #: true 10 m wind speed (m/s)
    direction: np.ndarray  #: true wind direction (radians from the range axis)
    tcwv: np.ndarray  #: true total column water vapour (kg m-2)
    tclw: np.ndarray  #: true cloud liquid water (kg m-2)
    sst: np.ndarray  #: sea surface temperature (K)
    ice_temperature: np.ndarray  #: snow/ice surface temperature anomaly driver (K)
    era5: dict[str, np.ndarray]  #: u10m_rotated, v10m_rotated, t2m, skt, tcwv, tclw


def make(rng: np.random.Generator, grid: tuple[int, int], *, month: int, lat: float, zoom: float,
         quantiles: np.ndarray | None = None) -> Weather:  # fmt: skip
    """Weather of one scene on the 2 km grid ``grid`` (miniature scenes shrink the synoptic scales).

    ``quantiles`` (>= 5 values in (0, 1), see :func:`autoice.synth.specs.scene_quantiles`) set the
    scene-wide draws (mean wind speed and direction, vapour, cloud, temperature anomaly); without
    them they are drawn from ``rng``.
    """
    nr, nc = grid
    q = rng.uniform(1e-6, 1 - 1e-6, size=5) if quantiles is None else np.asarray(quantiles[:5], float)
    z = special.ndtri(q)  # standard normal quantiles
    syn = max(2.0, 150 * zoom / 2)  # synoptic scale (cells): ~150 km at full size
    meso = max(1.0, 30 * zoom / 2)  # ERA5 resolution ~30 km

    def field(scale: float, octaves: int = 2) -> np.ndarray:
        return noise(rng, grid, scale, octaves=octaves).astype(np.float64)

    # ---- wind: Weibull(k=2) scene mean (mean ~6.3 m/s, P§4), a front across the scene --------------------
    mean_speed = max(1.0, float(6.8 * np.sqrt(-np.log1p(-q[0]))))  # Weibull(k=2) quantile
    direction = 2 * np.pi * q[1] + 0.3 * field(syn)
    speed = mean_speed * np.exp(0.15 * field(meso, 3))
    if rng.random() < 0.4:  # a front: wind changes by 20-50 % over a few km along a line
        a = rng.uniform(0, 2 * np.pi)
        yy, xx = np.mgrid[0:nr, 0:nc]
        pos = (np.cos(a) * yy + np.sin(a) * xx - rng.uniform(0.2, 0.8) * (nr * abs(np.cos(a)) + nc * abs(np.sin(a))))
        speed = speed * (1 + rng.uniform(-0.5, 0.5) * 0.5 * (1 + np.tanh(pos / max(0.7, 2 * zoom))))
        direction = direction + rng.uniform(-0.5, 0.5) * 0.5 * (1 + np.tanh(pos / max(0.7, 2 * zoom)))
    speed = np.clip(speed, 0.2, 28.0)
    # ---- water vapour and clouds: skewed, rain cells in the liquid water ----------------------------------
    lat_warm = max(0.0, 66 - lat)
    tcwv = 0.98 * _TCWV_MONTH[month - 1] * (1 + 0.04 * lat_warm) * np.exp(0.15 * z[2] + 0.25 * field(syn))
    tclw = 0.005 * np.exp(1.0 * z[3] + 1.7 * field(meso, 3) - 0.3)
    cells = field(max(1.0, meso / 2), 1)  # convective/frontal cloud and rain cells, 0.2-0.5 kg m-2 (P§4)
    tclw = np.clip(tclw + np.where(cells > 1.2, 0.35 * (cells - 1.2), 0.0), 0, 1.0)
    # ---- temperatures: climatology of the month and latitude, a synoptic anomaly, colder land in winter ----
    t_clim = _T2M_MONTH[month - 1] - 0.5 * max(0.0, lat - 70) + 0.4 * lat_warm
    t2m = t_clim + 3.5 * z[4] + 2.0 * field(syn) + 0.6 * field(meso)
    winter = month in (11, 12, 1, 2, 3, 4)
    inversion = 1.5 if winter else (0.0 if month in (5, 10) else -1.5)  # skin below air over snow/ice, P§4
    skt = t2m - inversion + 1.2 * field(meso)
    sst = np.maximum(SEA_FREEZING_K, 271.4 + 0.45 * max(0.0, t_clim - 266) + 0.4 * lat_warm + 0.5 * field(syn))
    ice_temperature = 0.5 * (t2m - t_clim) + 1.5 * field(meso)
    # ---- ERA5: the weather smoothed to ~30 km, with errors of its own -------------------------------------
    sm = max(0.5, meso / 2)
    u_true, v_true = speed * np.cos(direction), speed * np.sin(direction)
    u10 = ndimage.gaussian_filter(u_true, sm, mode="nearest") + 0.8 * field(syn) + 0.6
    v10 = ndimage.gaussian_filter(v_true, sm, mode="nearest") + 0.8 * field(syn) + 0.6
    era5 = {
        "u10m_rotated": u10,
        "v10m_rotated": v10,
        "t2m": t2m + 1.0 * field(syn),  # ERA5 t2m errors of a few K over sea ice (P§4)
        "skt": skt + 1.5 * field(syn),
        "tcwv": np.clip(ndimage.gaussian_filter(tcwv, sm, mode="nearest") * np.exp(0.1 * field(syn)), 0.3, 40),
        # cloud water smoothed a little more than the rest (spread matched to global_meanstd, docs/synthetic.md)
        "tclw": np.clip(ndimage.gaussian_filter(tclw, 1.5 * sm, mode="nearest") * np.exp(0.4 * field(syn)), 0, 1.0),
    }
    return Weather(speed, direction, tcwv, tclw, sst, ice_temperature, era5)
