"""A raw scene written by hand per spec section 3 with plain xarray: not by our synth or writers.

It is what a user's own file looks like: float64 2 km variables, float32 SAR with NaN outside the
swath, a polygon table with a header row, 441 tie points in 1-D, odd grid sizes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

RAW_NAME = (
    "S1B_EW_GRDM_1SDH_20210317T083516_20210317T083620_026048_031B9A_66C3_icechart_dmi_202103170835_SouthWest_RIC.nc"
)
RTT_NAME = "20210317T083516_dmi_prep.nc"
LINES, SAMPLES = 101, 131  # odd on purpose: the last line/sample is dropped

HEADER = "id;CT;CA;SA;FA;CB;SB;FB;CC;SC;FC;CN;CD;CF;POLY_TYPE"
# id 1: 9+/10 old ice, vast floes -> SIC 10, SOD 5, FLOE 5
# id 2: open water polygon -> 0 / 0 / 0
# id 3: 5/10 young ice, fast-ice form (8) -> SIC 5, SOD 2, FLOE 255
# id 4: land -> 255
# id 7: range-coded CT 46 (DMI) -> official SIC 255 (undecodable), SOD 3 (single type), FLOE 2
CODES = [
    HEADER,
    "1;91;-9;95;6;-9;-9;-9;-9;-9;-9;-9;-9;-9;I",
    "2;0;-9;-9;-9;-9;-9;-9;-9;-9;-9;-9;-9;-9;W",
    "3;50;-9;84;8;-9;-9;-9;-9;-9;-9;-9;-9;-9;I",
    "4;-9;-9;-9;-9;-9;-9;-9;-9;-9;-9;-9;-9;-9;L",
    "7;46;-9;87;3;-9;-9;-9;-9;-9;-9;-9;-9;-9;I",
]
EXPECTED = {  # polygon id -> (SIC, SOD, FLOE) in official mode
    1: (10, 5, 5),
    2: (0, 0, 0),
    3: (5, 2, 255),
    4: (255, 255, 255),
    7: (255, 3, 2),
}
COARSE = [f"btemp_{f}{p}" for f in ("6_9", "7_3", "10_7", "18_7", "23_8", "36_5", "89_0") for p in ("h", "v")]
COARSE += ["u10m_rotated", "v10m_rotated", "t2m", "skt", "tcwv", "tclw"]


def polygon_image() -> np.ndarray:
    """Polygon ids: vertical bands (even widths so 2x2 blocks stay inside), a land corner, NaN border."""
    pid = np.full((LINES, SAMPLES), np.nan, dtype=np.float32)
    pid[:, 0:30] = 1
    pid[:, 30:60] = 2
    pid[:, 60:90] = 3
    pid[:, 90:] = 7
    pid[80:, 110:] = 4  # land
    pid[:4, :] = np.nan  # no chart at the top
    return pid


def write(folder: Path, *, name: str = RAW_NAME, seed: int = 0) -> Path:
    """Write the hand-made raw scene into ``folder`` and return its path."""
    rng = np.random.default_rng(seed)
    full = ("sar_lines", "sar_samples")
    coarse = ("2km_grid_lines", "2km_grid_samples")
    cl, cs = -(-LINES // 50), -(-SAMPLES // 50)
    hh = rng.normal(-15, 3, (LINES, SAMPLES)).astype(np.float32)
    hv = rng.normal(-25, 3, (LINES, SAMPLES)).astype(np.float32)
    hh[:, :2] = np.nan  # outside the swath
    hv[:, :2] = np.nan
    hv[50, 51] = np.nan  # one lone no-data pixel: masks must be aligned
    dist = np.tile(np.linspace(0, 41, SAMPLES, dtype=np.float32), (LINES, 1))
    tl = np.linspace(0, LINES - 1, 21)
    ts = np.linspace(0, SAMPLES - 1, 21)
    line, sample = np.meshgrid(tl, ts, indexing="ij")
    inc = 19.0 + 28.0 * sample / (SAMPLES - 1) + 0.01 * line  # bilinear in (line, sample)
    lat = 65.0 + 0.01 * line - 0.001 * sample
    lon = -52.0 + 0.02 * sample
    data = {
        "nersc_sar_primary": (full, hh),
        "nersc_sar_secondary": (full, hv),
        "distance_map": (full, dist),
        "polygon_icechart": (full, polygon_image()),
        "polygon_codes": (("codes",), np.array(CODES, dtype=object)),
        "sar_grid_line": (("tie",), line.ravel()),
        "sar_grid_sample": (("tie",), sample.ravel()),
        "sar_grid_latitude": (("tie",), lat.ravel()),
        "sar_grid_longitude": (("tie",), lon.ravel()),
        "sar_grid_incidenceangle": (("tie",), inc.ravel()),
        "sar_grid_height": (("tie",), np.zeros(441)),
        "amsr2_swath_map": (coarse, np.ones((cl, cs), dtype=np.int8)),
    }
    for k, n in enumerate(COARSE):
        data[n] = (coarse, 200.0 + k + rng.normal(0, 1, (cl, cs)))
    ds = xr.Dataset(data, attrs={"flip": 1, "pixel_spacing": 40, "ice_service": "dmi"})
    path = Path(folder) / name
    ds.to_netcdf(path, engine="netcdf4", format="NETCDF4")
    return path
