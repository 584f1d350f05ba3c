"""The format module: naming, zones, scaling statistics, class tables."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from autoice import schema

SHARED = Path(__file__).resolve().parents[2] / "shared"
RAW = "S1A_EW_GRDM_1SDH_20180124T194759_20180124T194859_020301_022AA4_1F75_icechart_dmi_201801241950_SouthEast_RIC.nc"


def test_raw_to_rtt_name_and_key():
    assert schema.raw_to_rtt_name(RAW) == "20180124T194759_dmi_prep.nc"
    assert schema.scene_key("20180124T194759_dmi_prep_reference.nc") == "20180124T194759_dmi"
    name = schema.parse_raw_name(RAW)
    assert name.key == "20180124T194759_dmi" and name.month == 1
    assert name.rtt_name == schema.raw_to_rtt_name(RAW)
    assert name.reference_name == "20180124T194759_dmi_prep_reference.nc"
    assert schema.submission_variable(name.key, "SOD") == "20180124T194759_dmi_SOD"


@pytest.mark.parametrize("bad", ["20180124T194759_dmi_prep.nc", RAW.replace("_dmi_", "_xyz_"), RAW[:-3] + ".h5",
                                 "S1A_EW_GRDM_1SDH_2018012T194759" + RAW[31:]])
def test_bad_raw_names(bad):
    assert schema.parse_raw_name(bad) is None


def test_rtt_names():
    assert schema.parse_rtt_name("20180124T194759_cis_prep.nc").service == "cis"
    assert schema.parse_rtt_name("20180124T194759_cis_prep_reference.nc").key == "20180124T194759_cis"
    for bad in ("20180124T194759_cis.nc", "20180124_cis_prep.nc", "20180124T194759_abc_prep.nc"):
        assert schema.parse_rtt_name(bad) is None


@pytest.mark.skipif(not SHARED.exists(), reason="shared/ not beside the checkout")
def test_official_scene_lists_follow_the_pattern():
    names = json.loads((SHARED / "realdata/autoice_official/dataset.json").read_text())
    names += json.loads((SHARED / "realdata/autoice_official/testset.json").read_text())
    assert len(names) == 532
    for n in names:
        parsed = schema.parse_raw_name(n)
        assert parsed is not None, n
        assert schema.raw_to_rtt_name(n) == parsed.rtt_name


def test_seasons_cover_every_month_once_in_order():
    months = [m for ms in schema.SEASONS.values() for m in ms]
    assert sorted(months) == list(range(1, 13))
    assert list(schema.SEASONS) == ["winter", "melt", "summer", "freeze-up"]
    expected = {12: "winter", 1: "winter", 3: "winter", 4: "melt", 6: "melt", 7: "summer", 9: "summer",
                10: "freeze-up", 11: "freeze-up"}  # fmt: skip
    assert {m: schema.season(m) for m in expected} == expected
    assert schema.parse_raw_name(RAW).season == "winter"
    assert schema.describe_seasons() == "winter Dec-Mar, melt Apr-Jun, summer Jul-Sep, freeze-up Oct-Nov"
    for bad in (0, 13):
        with pytest.raises(ValueError, match="1..12"):
            schema.season(bad)


def test_scene_keys():
    name = schema.parse_scene_key("20190301T101010_cis")
    assert name is not None and (name.service, name.month, name.season) == ("cis", 3, "winter")
    for bad in ("20190301T101010_xyz", "20190301T101010_cis_prep.nc", "2019_cis"):
        assert schema.parse_scene_key(bad) is None


@pytest.mark.skipif(not SHARED.exists(), reason="shared/ not beside the checkout")
def test_packaged_test_scenes_are_the_organisers():
    official = json.loads((SHARED / "realdata/autoice_official/testset.json").read_text())
    assert sorted(schema.official_test_scenes()) == sorted(official) and len(official) == 20
    regions = {schema.chart_region(n) for n in official}
    assert {"SouthEast", "SGRDIEA", "SGRDIFOXE", "SGRDINFLD"} <= regions and None not in regions


def test_distance_zones():
    d = np.array([0, 0.2, 0.5, 0.51, 1.0, 1.5, 20, 20.5, 50, 51, 100, 101, 300, 301])
    assert schema.distance_zone(d).tolist() == [0, 1, 1, 2, 2, 3, 21, 22, 27, 28, 32, 33, 40, 41]
    assert schema.N_DISTANCE_ZONES == 42


@pytest.mark.skipif(not SHARED.exists(), reason="shared/ not beside the checkout")
def test_packaged_meanstd_is_the_organisers():
    official = json.loads((SHARED / "realdata/autoice_official/global_meanstd.json").read_text())
    stats = schema.global_meanstd()
    assert set(stats) == set(schema.INPUT_VARIABLES) == set(official)
    for n, (mean, std) in stats.items():
        assert (mean, std) == (official[n]["mean"], official[n]["std"])


def test_variable_lists():
    assert len(schema.INPUT_VARIABLES) == 24 and len(set(schema.INPUT_VARIABLES)) == 24
    assert schema.INPUT_VARIABLES[:4] == ("nersc_sar_primary", "nersc_sar_secondary", "sar_incidenceangle",
                                          "distance_map")
    assert schema.AMSR2_VARIABLES[:2] == ("btemp_6_9h", "btemp_6_9v")
    assert all(len(schema.CLASS_NAMES[c]) == schema.N_CLASSES[c] for c in schema.CHARTS)


def test_coarse_shape_rule():
    assert schema.coarse_shape_ok(5000, 200, 25) and schema.coarse_shape_ok(5200, 209, 25)
    assert not schema.coarse_shape_ok(5000, 150, 25)
