"""The AI4Arctic / AutoICE file format: the one place that spells it out.

Every variable name, dimension, dtype, fill value, class table, grid ratio and
file-name pattern of the dataset lives here (see ``shared/spec/ai4arctic-format.md``).
Code, generators and tests import these constants; nothing else retypes them.
This module holds constants and tiny pure helpers only: no I/O beyond reading the
packaged scaling statistics and the official test-scene list.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np

# --------------------------------------------------------------------------- charts
CHARTS: tuple[str, ...] = ("SIC", "SOD", "FLOE")
CHART_FILL = 255  #: masked / no label in a chart (uint8)
INPUT_FILL = 0.0  #: no data in a scaled input variable
CHART_DTYPE = np.uint8

N_CLASSES: dict[str, int] = {"SIC": 11, "SOD": 6, "FLOE": 7}

CLASS_NAMES: dict[str, tuple[str, ...]] = {
    "SIC": tuple(f"{10 * k}%" for k in range(11)),
    "SOD": ("Open water", "New ice", "Young ice", "Thin first-year ice", "Thick first-year ice", "Old ice"),
    "FLOE": ("Open water", "Cake ice", "Small floe", "Medium floe", "Big floe", "Vast floe", "Bergs"),
}

#: ``polygon`` attribute of each chart variable in RTT files (the organisers' strings).
CHART_DESCRIPTIONS: dict[str, str] = {
    "SIC": "Sea Ice Concentration [%]",
    "SOD": "Stage of Development",
    "FLOE": "Floe Size",
}

# --------------------------------------------------------------------------- inputs
SAR_VARIABLES: tuple[str, ...] = ("nersc_sar_primary", "nersc_sar_secondary")
INCIDENCE_VARIABLE = "sar_incidenceangle"
DISTANCE_VARIABLE = "distance_map"
FULL_GRID_INPUTS: tuple[str, ...] = (*SAR_VARIABLES, INCIDENCE_VARIABLE, DISTANCE_VARIABLE)

AMSR2_FREQUENCIES: tuple[str, ...] = ("6_9", "7_3", "10_7", "18_7", "23_8", "36_5", "89_0")
AMSR2_VARIABLES: tuple[str, ...] = tuple(f"btemp_{f}{p}" for f in AMSR2_FREQUENCIES for p in ("h", "v"))
ERA5_VARIABLES: tuple[str, ...] = ("u10m_rotated", "v10m_rotated", "t2m", "skt", "tcwv", "tclw")
COARSE_VARIABLES: tuple[str, ...] = (*AMSR2_VARIABLES, *ERA5_VARIABLES)

#: The 24 model inputs of the official baseline, in the official order.
INPUT_VARIABLES: tuple[str, ...] = (*FULL_GRID_INPUTS, *COARSE_VARIABLES)

#: RTT tie-point latitude/longitude (21 x 21, float64, not scaled).
TIEPOINT_LATITUDE = "sar_grid2d_latitude"
TIEPOINT_LONGITUDE = "sar_grid2d_longitude"
TIEPOINT_VARIABLES: tuple[str, ...] = (TIEPOINT_LATITUDE, TIEPOINT_LONGITUDE)
TIEPOINT_GRID = 21  #: tie points per axis (21 x 21 = 441)

# --------------------------------------------------------------------------- grids
FULL_DIMS: tuple[str, str] = ("sar_lines", "sar_samples")
COARSE_DIMS: tuple[str, str] = ("2km_grid_lines", "2km_grid_samples")
#: Dims of the 21 x 21 tie-point grids in RTT files. The names read (sample, line) but the
#: values vary like (line, sample): axis 0 is lines.
TIEPOINT_DIMS: tuple[str, str] = ("sar_sample_2dgrid_points", "sar_line_2dgrid_points")

RTT_PIXEL_SPACING = 80  #: metres
RAW_PIXEL_SPACING = 40  #: metres
DOWNSAMPLE = RTT_PIXEL_SPACING // RAW_PIXEL_SPACING  #: raw -> RTT block size (2)
CELL_RTT = 25  #: RTT pixels per 2 km cell side: cell k covers pixels [25k, 25k + 25)
CELL_RAW = 50  #: raw pixels per 2 km cell side

# Raw-file-only variables (spec section 3). Raw dims are not named by the spec: we find the
# grids from the shapes (full grid = the SAR variables' dims), so users' own files work.
POLYGON_ICECHART = "polygon_icechart"
POLYGON_CODES = "polygon_codes"
RAW_TIEPOINTS: tuple[str, ...] = (
    "sar_grid_line",
    "sar_grid_sample",
    "sar_grid_latitude",
    "sar_grid_longitude",
    "sar_grid_incidenceangle",
    "sar_grid_height",
)
RAW_REQUIRED_TIEPOINTS: tuple[str, ...] = RAW_TIEPOINTS[:5]
RAW_GEOLOCATION: tuple[str, ...] = ("sar_grid_latitude", "sar_grid_longitude")  #: must be finite
RAW_BOOKKEEPING: tuple[str, ...] = ("amsr2_swath_map", "swath_segmentation")
#: Dims that our generator (and our raw writer) uses for the raw-only 1-D variables.
RAW_TIEPOINT_DIM = "sar_grid_points"
RAW_CODES_DIM = "polygon_code_rows"
POLYGON_CODES_HEADER: tuple[str, ...] = (
    "id", "CT", "CA", "SA", "FA", "CB", "SB", "FB", "CC", "SC", "FC", "CN", "CD", "CF", "POLY_TYPE",
)  # fmt: skip

# --------------------------------------------------------------------------- attributes
GLOBAL_ATTRS: tuple[str, ...] = ("scene_id", "original_id", "ice_service", "flip", "pixel_spacing")
SERVICES: tuple[str, ...] = ("cis", "dmi")

# --------------------------------------------------------------------------- SIGRID-3
NOT_FILLED = -9  #: SIGRID "not filled"
UNKNOWN = 99  #: SIGRID "unknown"

#: Concentration code (CT, CA, CB, CC) -> SIC class, in the organisers' table order.
SIC_CODES: dict[int, int] = {
    0: 0, 1: 0, 2: 0, 55: 0,
    10: 1, 20: 2, 30: 3, 40: 4, 50: 5, 60: 6, 70: 7, 80: 8, 90: 9,
    91: 10, 92: 10,
}  # fmt: skip
#: Stage code (SA, SB, SC) -> SOD class; 255 = masked.
SOD_CODES: dict[int, int] = {
    0: 0, 80: 0,
    81: 1, 82: 1,
    83: 2, 84: 2, 85: 2,
    86: 4,
    87: 3, 88: 3, 89: 3,
    91: 4, 93: 4,
    95: 5, 96: 5, 97: 5,
    98: CHART_FILL, 99: CHART_FILL,
}  # fmt: skip
#: Form code (FA, FB, FC) -> FLOE class; 255 = masked (pancake, fast ice, level ice).
FLOE_CODES: dict[int, int] = {
    0: 0,
    22: CHART_FILL, 1: CHART_FILL,
    2: 1, 3: 2, 4: 3, 5: 4, 6: 5, 7: 5,
    8: CHART_FILL,
    9: 6, 10: 6,
    21: CHART_FILL,
}  # fmt: skip

#: Dominance thresholds (share of CT that the largest merged partial must reach).
THRESHOLDS: dict[str, dict[str, float]] = {
    "current": {"SOD": 0.65, "FLOE": 0.65},  # dataset since Dec 2022
    "legacy": {"SOD": 0.7, "FLOE": 0.5},  # first release / starter kit utils
}

POLY_TYPE_ICE = "I"
POLY_TYPE_WATER = "W"

# --------------------------------------------------------------------------- distance map
#: Upper edge (km) of each distance-to-land zone 1..40; zone 0 = land, zone 41 = beyond 300 km.
DISTANCE_ZONE_EDGES_KM: tuple[float, ...] = (
    0.5, 1.0,  # 1-2: half-km bands
    *[float(k) for k in range(2, 21)],  # 3-21: 1-km bands to 20 km
    *[float(k) for k in range(25, 51, 5)],  # 22-27: 5-km bands to 50 km
    *[float(k) for k in range(60, 101, 10)],  # 28-32: 10-km bands to 100 km
    *[float(k) for k in range(125, 301, 25)],  # 33-40: 25-km bands to 300 km
)  # fmt: skip
N_DISTANCE_ZONES = len(DISTANCE_ZONE_EDGES_KM) + 2  #: 42 (0..41)
#: An 80 m pixel is land where its distance zone is below this: zone 0 is land, and an 80 m zone is the mean of
#: four 40 m zones (spec section 5), so below 0.5 most of the pixel is land.
LAND_ZONE_BELOW = 0.5


def distance_zone(distance_km: np.ndarray) -> np.ndarray:
    """Distance to land (km, 0 on land) -> zone id 0..41 as in the organisers' ``distance_map``."""
    d = np.asarray(distance_km, dtype=np.float64)
    zone = np.searchsorted(np.asarray(DISTANCE_ZONE_EDGES_KM), d, side="left") + 1
    return np.where(d <= 0, 0, zone).astype(np.uint8)


# --------------------------------------------------------------------------- scaling
#: Winning team's z-scoring of interpolated latitude/longitude (spec section 8).
LATLON_MEANSTD: dict[str, tuple[float, float]] = {"latitude": (69.125, 7.032), "longitude": (-56.390, 31.329)}


@lru_cache(maxsize=1)
def global_meanstd() -> dict[str, tuple[float, float]]:
    """The organisers' (mean, std) of the 24 inputs in physical units, shipped with the package."""
    text = resources.files("autoice.resources").joinpath("global_meanstd.json").read_text()
    raw = json.loads(text)
    return {name: (float(raw[name]["mean"]), float(raw[name]["std"])) for name in INPUT_VARIABLES}


@lru_cache(maxsize=1)
def official_scenes() -> dict[str, tuple[str, ...]]:
    """Official scene lists shipped with the package, as scene keys.

    ``dataset``: the 512 training scenes in the order of the starter kit's ``datalists/dataset.json``
    (the order its seeded validation draw depends on); ``valset2``: MMSeaIce's 17 validation scenes
    (``datalists/valset2.json``).
    """
    raw = json.loads(resources.files("autoice.resources").joinpath("official_scenes.json").read_text())
    return {"dataset": tuple(raw["dataset"]), "valset2": tuple(raw["valset2"])}


#: Validation scenes the starter kit's quickstart draws (``np.random.seed(0)``, ``choice`` of 10).
STARTER_VAL_SCENES = 10
STARTER_VAL_SEED = 0

# --------------------------------------------------------------------------- names
RAW_NAME = re.compile(
    r"^(?P<product>(?P<mission>S1[A-D])_EW_GRD[MH]_1SD[HV]_(?P<start>\d{8}T\d{6})_(?P<stop>\d{8}T\d{6})"
    r"_(?P<orbit>\d{6})_(?P<datatake>[0-9A-F]{6})_(?P<crc>[0-9A-F]{4}))"
    r"_icechart_(?P<service>cis|dmi)_(?P<chart>[A-Za-z0-9_]+)\.nc$"
)
RTT_NAME = re.compile(r"^(?P<key>(?P<start>\d{8}T\d{6})_(?P<service>cis|dmi))_prep(?P<reference>_reference)?\.nc$")
RTT_SUFFIX = "_prep.nc"
REFERENCE_SUFFIX = "_prep_reference.nc"
SCENE_KEY_LENGTH = 19


@dataclass(frozen=True)
class SceneName:
    """The parts of a scene's name that the format defines."""

    start: str  #: S1 start time, YYYYMMDDTHHMMSS
    service: str  #: 'cis' or 'dmi'

    @property
    def key(self) -> str:
        """Scene key used in submissions, e.g. ``20180124T194759_dmi``."""
        return f"{self.start}_{self.service}"

    @property
    def rtt_name(self) -> str:
        """Ready-to-train file name."""
        return self.key + RTT_SUFFIX

    @property
    def reference_name(self) -> str:
        """Released test-reference file name."""
        return self.key + REFERENCE_SUFFIX

    @property
    def month(self) -> int:
        """Acquisition month 1..12."""
        return int(self.start[4:6])

    @property
    def season(self) -> str:
        """Season of the ice cycle (:data:`SEASONS`)."""
        return season(self.month)


def parse_raw_name(name: str) -> SceneName | None:
    """Raw file name -> its scene name parts, or None if it does not follow the pattern."""
    m = RAW_NAME.match(name)
    return SceneName(m["start"], m["service"]) if m else None


def chart_region(raw_name: str) -> str | None:
    """Raw file name -> the ice chart's region, or None if the name does not follow the pattern.

    CIS names carry it first (``SGRDIEA_<time>Z_pl_a``), DMI names second (``<time>_NorthEast_RIC``).
    """
    m = RAW_NAME.match(raw_name)
    if not m:
        return None
    parts = m["chart"].split("_")
    return (parts[0] if m["service"] == "cis" else parts[1]) if len(parts) > 1 else None


def parse_scene_key(key: str) -> SceneName | None:
    """Scene key (``20180124T194759_dmi``) -> parts, or None if it does not follow the pattern."""
    return parse_rtt_name(key + RTT_SUFFIX)


def parse_rtt_name(name: str) -> SceneName | None:
    """RTT (``_prep.nc``) or reference (``_prep_reference.nc``) file name -> parts, or None."""
    m = RTT_NAME.match(name)
    return SceneName(m["start"], m["service"]) if m else None


def raw_to_rtt_name(raw_name: str) -> str:
    """Raw file name -> RTT file name, by the organisers' character positions (17-31, 77-79)."""
    return raw_name[17:32] + "_" + raw_name[77:80] + RTT_SUFFIX


def scene_key(rtt_name: str) -> str:
    """RTT or reference file name -> scene key (its first 19 characters)."""
    return rtt_name[:SCENE_KEY_LENGTH]


def submission_variable(key: str, chart: str) -> str:
    """Name of a scene's chart variable in ``upload_package.nc``."""
    return f"{key}_{chart}"


@lru_cache(maxsize=1)
def official_test_scenes() -> tuple[str, ...]:
    """Raw file names of the 20 official test scenes (the organisers' ``testset.json``), shipped with the package.

    Their chart ids name the region (:func:`chart_region`), which the released reference files may not carry.
    """
    return tuple(r["raw_name"] for r in packaged_csv("official_test_scenes.csv"))


def packaged_csv(name: str) -> list[dict[str, str]]:
    """Rows of a CSV file shipped in ``autoice/resources`` (lines starting with ``#`` are its header notes)."""
    text = resources.files("autoice.resources").joinpath(name).read_text()
    body = "".join(line for line in text.splitlines(True) if not line.startswith("#"))
    return list(csv.DictReader(io.StringIO(body)))


# --------------------------------------------------------------------------- seasons
#: Seasons of the charts' ice cycle -> their months, in order from December. Chosen for the chart regions
#: (Greenland waters, Baffin Bay, Foxe Basin, Labrador, the Canadian Archipelago; spec physics.md section 5):
#: ``winter`` Dec-Mar: ice grows to its March maximum, young and thin first-year ice, dry snow;
#: ``melt`` Apr-Jun: from the maximum to break-up, thick first-year ice, melt onset (the south first: Labrador,
#: Cape Farewell, Davis Strait); ``summer`` Jul-Sep: melt and the September minimum, mostly open water, thick
#: first-year and old ice left, new ice only late in September; ``freeze-up`` Oct-Nov: new ice (peak October)
#: and young ice.
SEASONS: dict[str, tuple[int, ...]] = {
    "winter": (12, 1, 2, 3),
    "melt": (4, 5, 6),
    "summer": (7, 8, 9),
    "freeze-up": (10, 11),
}
_SEASON_OF_MONTH = {m: name for name, months in SEASONS.items() for m in months}


def season(month: int) -> str:
    """Month 1..12 -> its season name in :data:`SEASONS` (ValueError for another number)."""
    try:
        return _SEASON_OF_MONTH[month]
    except KeyError:
        raise ValueError(f"month must be 1..12, got {month!r}") from None


def describe_seasons() -> str:
    """The season months in words, for tables and help: ``winter Dec-Mar, melt Apr-Jun, ...``."""
    import calendar

    return ", ".join(f"{n} {calendar.month_abbr[m[0]]}-{calendar.month_abbr[m[-1]]}" for n, m in SEASONS.items())


#: What scores can be grouped by: the chart's service, the S1 acquisition month and its season (from the
#: scene name) and the chart's region (from the raw name, see :func:`chart_region`).
GROUPINGS: tuple[str, ...] = ("service", "month", "season", "region")


def coarse_shape_ok(n_full: int, n_coarse: int, cell: int) -> bool:
    """Whether a 2 km axis of ``n_coarse`` cells plausibly covers ``n_full`` pixels of ``cell`` each."""
    need = -(-n_full // cell)  # ceil
    return need - 1 <= n_coarse <= need + 1
