"""AMSR2 brightness temperatures of the true surface under the true weather (P§2).

Per 2 km cell the surface fractions are mixed linearly (P§2.4): open water from the Wentz & Meissner
model with its wind, vapour, cloud and SST sensitivities (P§2.3); ice per type with emissivities that
vary with snow, ice temperature and roughness (smooth fields and a scene offset, larger at higher
frequencies and for old ice); land; wet snow in summer. Each channel is then blurred by its footprint
(land spills over onto coastal water) and gets radiometer noise. Thin ice and ponded summer ice look
partly like open water, as they do to real concentration algorithms. Nothing here is invertible.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage, special

from autoice import schema
from autoice.synth.fields import noise
from autoice.synth.icechart import BERG, LAND, NEW, OLD, THICK_FYI, THIN_FYI, WATER, YOUNG
from autoice.synth.weather import Weather

_FOOTPRINT_KM = np.array([[35, 62], [35, 62], [24, 42], [14, 22], [15, 26], [7, 12], [3, 5]], float)  # P§2.1
#: Open water (V, H) with a typical Arctic atmosphere: Ivanova et al. 2015 tie points (P§2.2 row 2), taken
#: at the pooled mean weather of the real set (wind 6.3 m/s, TCWV 7.7, TCLW 0.04, P§4); 7.3 GHz as 6.9.
#: 18.7-89 GHz V and 89 GHz H raised by 3-7 K (within the spread of published tie points) so that the pooled
#: means match the organisers' global statistics (bench/realism.py table (a): they were 0.10-0.17 sd low).
_TB_WATER = np.array([[161, 82], [162, 83], [167, 88], [188, 108], [203, 128], [215, 145], [247, 203]], float)
_MEAN_WEATHER = (6.3, 7.7, 0.04)  #: wind (m/s), TCWV, TCLW (kg m-2) of those tie points
#: Sensitivities P§2.3: per m/s wind, per kg/m² TCWV (2->20 over 18), per kg/m² TCLW (0->0.3), per K SST.
_DTB_WIND = np.array([[0.5, 0.9], [0.5, 0.9], [0.5, 1.0], [0.4, 1.2], [0.3, 1.3], [0.2, 1.3], [-0.1, 1.1]])
_DTB_TCWV = np.array([[0.5, 0.7], [0.5, 0.7], [1, 2], [7, 16], [18, 42], [6, 14], [12, 39]]) / 18.0
_DTB_TCLW = np.array([[0.7, 1.7], [0.7, 1.7], [1.6, 3.7], [3.8, 10], [5, 14], [7, 25], [8, 50]]) / 0.3
_DTB_SST = np.array([[1.7, 0.5], [1.7, 0.5], [0.7, 0], [-0.6, -0.9], [-1, -1.2], [-1.5, -1.9], [-0.6, -2.1]]) / 4.6
#: Ice and land emission (V, H) per frequency, P§2.2 (Ivanova et al. 2015 FYI/MYI; thin ice ~FYI V, H lower).
_TB_FYI = np.array([[252, 228], [252, 228], [251, 232], [252, 237], [251, 236], [251, 235], [238, 224]], float)
_TB_MYI = np.array([[243, 215], [243, 215], [235, 210], [220, 202], [209, 192], [187, 176], [180, 170]], float)
_TB_LAND = np.array([[248, 226], [248, 226], [247, 227], [246, 228], [245, 226], [241, 220], [236, 222]], float)
_TB_WET = np.array([[255, 245], [255, 245], [256, 246], [258, 250], [258, 250], [260, 252], [255, 248]], float)
#: Thin ice emits between calm water and first-year ice (P§2.2: 36.5 GHz V 235-250, H 190-225): a share k of
#: its signal is water-like, so concentration algorithms see less ice than there is. k by stage (range over
#: the thickness inside the stage, a smooth field), larger at low frequencies (deeper emission layer).
_THIN_WATER_LIKE = {NEW: (0.3, 0.7), YOUNG: (0.1, 0.35), THIN_FYI: (0.02, 0.12)}
_THIN_FREQ = np.linspace(1.2, 0.8, 7)  #: factor on k from 6.9 to 89 GHz
#: Melt-pond cover of summer ice by month: ponds emit like calm water, so AMSR2 sees less ice than there is.
_POND = {6: 0.1, 7: 0.3, 8: 0.25, 9: 0.08}
#: Atmospheric emission over ice and land per kg m-2 of vapour (K): the 22 GHz line and 89 GHz most (P§2.3).
_ATM_OVER_ICE = np.array([0.05, 0.05, 0.1, 0.3, 0.8, 0.6, 0.8])
#: Emissivity variability of ice (K, V and H) per frequency: snow grains, layering, ice temperature.
#: 89 GHz raised to 14 / 18 K: scattering in the snow pack dominates there (the organisers' 89 GHz V spread was
#: 0.81 x real with 9 K).
_ICE_VAR = np.array([[2.5, 5], [2.5, 5], [3, 6.5], [4, 8], [4, 9.5], [4.5, 13], [14, 18]], float)
#: Snow layering and crusts lower H more than V: an H-only variability (K) that decouples the polarisation ratio
#: of ice from its concentration (the ratio is what PR-based algorithms such as ASI at 89 GHz read).
_ICE_LAYER_H = np.array([3, 3, 4, 5, 6, 8, 12], float)


def brightness(rng: np.random.Generator, fractions: np.ndarray, weather: Weather, *, month: int,
               zoom: float, quantile: float | None = None) -> dict[str, np.ndarray]:  # fmt: skip
    """The 14 ``btemp_*`` fields on the 2 km grid from surface ``fractions`` (nr, nc, 8).

    ``quantile`` sets the scene-wide emissivity offset (stratified across a set); else drawn from ``rng``.
    """
    nr, nc = fractions.shape[:2]
    melt = {6: 0.5, 7: 1.0, 8: 0.7}.get(month, 0.0)  # wet snow in summer (P§2.2 melting row)
    snow = noise(rng, (nr, nc), max(1.5, 40 * zoom / 2), octaves=2).astype(np.float64)  # snow/roughness
    old_var = noise(rng, (nr, nc), max(1.5, 20 * zoom / 2), octaves=2).astype(np.float64)
    layer = noise(rng, (nr, nc), max(1.5, 15 * zoom / 2), octaves=2).astype(np.float64)  # snow layering, crusts
    # scene-wide emissivity offset (snow cover, temperature regime)
    offset = 2.0 * float(special.ndtri(quantile)) if quantile is not None else rng.normal(0, 2.0)
    pond = np.clip(_POND.get(month, 0.0) * (1 + 0.5 * noise(rng, (nr, nc), max(1.5, 30 * zoom / 2))), 0, 0.6)
    ice_t = weather.ice_temperature
    thick = special.ndtr(noise(rng, (nr, nc), max(1.5, 10 * zoom / 2)).astype(np.float64))  # thickness in stage
    major = int(rng.integers(0, 2))
    speed = np.clip(weather.speed, 0, 20)
    out: dict[str, np.ndarray] = {}
    for f, freq in enumerate(schema.AMSR2_FREQUENCIES):
        for p_i, pol in enumerate(("v", "h")):
            tb_w = (
                _TB_WATER[f, p_i]
                + _DTB_WIND[f, p_i] * (speed - _MEAN_WEATHER[0])
                + _DTB_TCWV[f, p_i] * (weather.tcwv - _MEAN_WEATHER[1])
                + _DTB_TCLW[f, p_i] * (weather.tclw - _MEAN_WEATHER[2])
                + _DTB_SST[f, p_i] * (weather.sst - 272)
            )
            calm = tb_w - _DTB_WIND[f, p_i] * (speed - 1.0)  # calm water: refrozen leads, ponds
            var = _ICE_VAR[f, p_i]
            crust = -_ICE_LAYER_H[f] * layer if pol == "h" else 0.0
            fyi = (_TB_FYI[f, p_i] * (1 - melt) + _TB_WET[f, p_i] * melt + var * (snow + 0.5 * offset) + 0.3 * ice_t
                   + crust)  # fmt: skip
            myi = (_TB_MYI[f, p_i] * (1 - melt) + _TB_WET[f, p_i] * melt + var * (1.5 * old_var + 0.5 * offset)
                   + crust)  # fmt: skip
            thin = {}
            for c, (lo, hi) in _THIN_WATER_LIKE.items():
                k = _THIN_FREQ[f] * (hi - thick * (hi - lo))  # thinner ice: more water-like
                thin[c] = (1 - k) * fyi + k * calm
            tb_type = {
                **thin,
                THICK_FYI: fyi,
                OLD: myi,
                BERG: myi,
            }
            if month in _POND:  # ponded ice: part of its surface emits like (calm) water
                tb_type = {c: (1 - pond) * t + pond * calm for c, t in tb_type.items()}
            atm_ice = _ATM_OVER_ICE[f] * weather.tcwv  # atmosphere over ice and land, P§2.3 note
            ice_part = sum(fractions[..., c] * tb_type[c] for c in tb_type)
            ice_part = ice_part + fractions[..., NEW:LAND].sum(axis=2) * atm_ice
            land = fractions[..., LAND] * (_TB_LAND[f, p_i] + 0.4 * ice_t + atm_ice)
            tb = fractions[..., WATER] * tb_w + ice_part + land
            fwhm = _FOOTPRINT_KM[f] * max(zoom, 0.1) / 2.0  # cells of 2 km (floor keeps tiny scenes blurred)
            sig = fwhm / 2.3548
            sigma = (sig[1], sig[0]) if major == 0 else (sig[0], sig[1])
            tb = ndimage.gaussian_filter(tb, sigma, mode="nearest", truncate=3.0)
            tb += rng.normal(0, 0.6, size=tb.shape)  # NEdT ~0.3-1 K
            out[f"btemp_{freq}{pol}"] = tb
    if "btemp_7_3h" in out:  # 7.3 GHz ~ 6.9 GHz, means ~1 K higher (P§2.1, global_meanstd)
        out["btemp_7_3h"] = out["btemp_6_9h"] + 1.0 + rng.normal(0, 0.3, size=(nr, nc))
        out["btemp_7_3v"] = out["btemp_6_9v"] + 0.7 + rng.normal(0, 0.3, size=(nr, nc))
    return out
