"""SIGRID-3 egg-code decoding: the spec's tables, the organisers' rules and quirks, real charts."""

import csv
import math
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from autoice.charts import MODES, ChartTable, decode_chart, decode_polygon_codes, range_code_class, rasterize
from autoice.errors import ChartError, ConfigError
from autoice.schema import (
    CHART_FILL,
    CHARTS,
    FLOE_CODES,
    N_CLASSES,
    NOT_FILLED,
    POLYGON_CODES_HEADER,
    SIC_CODES,
    SOD_CODES,
    THRESHOLDS,
    UNKNOWN,
)

HEADER = ";".join(POLYGON_CODES_HEADER)
REALDATA = Path(__file__).resolve().parents[2] / "shared" / "realdata"
CIS_CSV = REALDATA / "cis_chart" / "cis_SGRDREA_20201102_polygons_with_official_classes.csv"
DMI_CSV = REALDATA / "dmi_charts" / "dmi_aari_charts_official_converter_output.csv"


def code_for(table, cls, skip=()):
    """A SIGRID code that ``table`` maps to ``cls`` (taken from the schema, never retyped)."""
    return next(code for code, value in table.items() if value == cls and code not in skip)


def conc(tenths):
    return code_for(SIC_CODES, tenths)


def stage(cls, skip=()):
    return code_for(SOD_CODES, cls, skip)


def form(cls, skip=()):
    return code_for(FLOE_CODES, cls, skip)


FULL = conc(10)  # 10/10
OLD, THICK, YOUNG, NEW = stage(5), stage(4), stage(2), stage(1)
VAST, BIG, MEDIUM, SMALL = form(5), form(4), form(3), form(2)
MASKED_FORMS = [code for code, value in FLOE_CODES.items() if value == CHART_FILL]


def row(pid=1, poly_type="I", **codes):
    """One polygon_codes row; fields not given are -9 (not filled)."""
    fields = {name: NOT_FILLED for name in POLYGON_CODES_HEADER}
    fields.update(id=pid, POLY_TYPE=poly_type, **codes)
    return ";".join(str(fields[name]) for name in POLYGON_CODES_HEADER)


def one(mode="official", poly_type="I", sod_threshold=None, floe_threshold=None, **codes):
    """Decode a single-row table -> ({chart: class}, table)."""
    table = decode_polygon_codes(
        [HEADER, row(poly_type=poly_type, **codes)],
        mode=mode,
        sod_threshold=sod_threshold,
        floe_threshold=floe_threshold,
    )
    return {c: int(table.classes[c][0]) for c in CHARTS}, table


# --------------------------------------------------------------------------- the spec's tables


@pytest.mark.parametrize(("code", "cls"), SIC_CODES.items())
@pytest.mark.parametrize("mode", MODES)
def test_concentration_code_table(code, cls, mode):
    got, table = one(mode, CT=code, SA=THICK, FA=BIG)
    assert got["SIC"] == cls
    if cls == 0:  # water is identical in all charts
        assert got["SOD"] == got["FLOE"] == 0
    assert table.undecodable == {c: 0 for c in CHARTS}


@pytest.mark.parametrize(("code", "cls"), SOD_CODES.items())
def test_stage_code_table(code, cls):
    got, table = one(CT=FULL, SA=code, FA=BIG)
    assert got["SOD"] == cls
    assert got["SIC"] == 10 and got["FLOE"] == FLOE_CODES[BIG]
    assert table.undecodable["SOD"] == 0


@pytest.mark.parametrize(("code", "cls"), FLOE_CODES.items())
def test_form_code_table(code, cls):
    got, table = one(CT=FULL, SA=OLD, FA=code)
    assert got["FLOE"] == cls
    assert got["SOD"] == SOD_CODES[OLD]  # SOD decoded even where FLOE is masked
    assert table.undecodable["FLOE"] == 0


def test_ca_takes_ct_when_not_filled():
    got, _ = one(CT=conc(8), CA=NOT_FILLED, SA=OLD, FA=BIG)
    assert (got["SOD"], got["FLOE"]) == (SOD_CODES[OLD], FLOE_CODES[BIG])
    # a filled CA is kept: 3/8 of the ice is not dominant
    got, _ = one(CT=conc(8), CA=conc(3), SA=OLD, FA=BIG)
    assert got["SOD"] == got["FLOE"] == CHART_FILL


# --------------------------------------------------------------------------- dominance


def test_dominance_threshold_current():
    assert THRESHOLDS["current"] == {"SOD": 0.65, "FLOE": 0.65}
    above, _ = one(CT=conc(9), CA=conc(6), SA=OLD, FA=BIG, CB=conc(3), SB=YOUNG, FB=SMALL)  # 66.7 %
    assert (above["SOD"], above["FLOE"]) == (SOD_CODES[OLD], FLOE_CODES[BIG])
    below, _ = one(CT=conc(8), CA=conc(5), SA=OLD, FA=BIG, CB=conc(3), SB=YOUNG, FB=SMALL)  # 62.5 %
    assert below["SOD"] == below["FLOE"] == CHART_FILL


def test_dominance_threshold_legacy():
    legacy = {"sod_threshold": THRESHOLDS["legacy"]["SOD"], "floe_threshold": THRESHOLDS["legacy"]["FLOE"]}
    exact, _ = one(CT=FULL, CA=conc(7), SA=OLD, CB=conc(3), SB=YOUNG, **legacy)  # 70 % exactly passes
    assert exact["SOD"] == SOD_CODES[OLD]
    below, _ = one(CT=conc(9), CA=conc(6), SA=OLD, CB=conc(3), SB=YOUNG, **legacy)  # 66.7 % < 70 %
    assert below["SOD"] == CHART_FILL
    floe_args = dict(CA=conc(4), SA=OLD, FA=BIG, CB=conc(2), SB=YOUNG, FB=SMALL, CC=conc(2), SC=NEW, FC=MEDIUM)
    half, _ = one(CT=conc(8), **floe_args, **legacy)  # 50 % exactly passes the legacy 0.5
    assert half["FLOE"] == FLOE_CODES[BIG]
    assert one(CT=conc(8), **floe_args)[0]["FLOE"] == CHART_FILL  # but not the current 0.65
    less, _ = one(CT=conc(9), **floe_args, **legacy)  # 44 %
    assert less["FLOE"] == CHART_FILL


@pytest.mark.parametrize("mode", MODES)
def test_ties_go_to_a_then_b(mode):
    low = {"sod_threshold": 0.4, "floe_threshold": 0.4}
    a_b, _ = one(mode, CT=FULL, CA=conc(4), SA=OLD, FA=BIG, CB=conc(4), SB=YOUNG, FB=SMALL, CC=conc(2), SC=NEW, **low)
    assert (a_b["SOD"], a_b["FLOE"]) == (SOD_CODES[OLD], FLOE_CODES[BIG])
    b_c, _ = one(mode, CT=FULL, CA=conc(2), SA=OLD, FA=BIG, CB=conc(4), SB=YOUNG, FB=SMALL, CC=conc(4), SC=NEW, **low)
    assert (b_c["SOD"], b_c["FLOE"]) == (SOD_CODES[YOUNG], FLOE_CODES[SMALL])


def test_corrected_tie_goes_to_class_of_earliest_partial():
    # class sums: young 2 + 2 = 4 (A and C), old 4 (B): tie -> young (A comes first)
    got, _ = one("corrected", CT=conc(8), CA=conc(2), SA=YOUNG, CB=conc(4), SB=OLD, CC=conc(2), SC=YOUNG,
                 sod_threshold=0.5)  # fmt: skip
    assert got["SOD"] == SOD_CODES[YOUNG]


def test_merge_by_class_not_by_code():
    young = [code for code, value in SOD_CODES.items() if value == SOD_CODES[YOUNG]]
    assert len(young) >= 2
    got, _ = one(CT=FULL, CA=conc(4), SA=young[0], CB=conc(3), SB=young[1], CC=conc(3), SC=OLD)
    assert got["SOD"] == SOD_CODES[YOUNG]  # 4 + 3 = 7/10 >= 65 %


def test_merge_quirk_three_partials_of_one_class():
    codes = dict(CT=conc(8), CA=conc(3), SA=YOUNG, FA=BIG, CB=conc(3), SB=YOUNG, FB=BIG, CC=conc(2), SC=YOUNG, FC=BIG)
    official, table = one("official", **codes)  # A gets only CC added: [5, 5, 2] -> 62.5 %
    assert official["SOD"] == official["FLOE"] == CHART_FILL
    assert table.changed is None
    corrected, table = one("corrected", **codes)  # 3 + 3 + 2 = 8 -> 100 %
    assert (corrected["SOD"], corrected["FLOE"]) == (SOD_CODES[YOUNG], FLOE_CODES[BIG])
    assert table.changed == 1


def test_corrected_ignores_not_filled_partial_concentration():
    # official adds CB = -9 to A when A and B share a stage: 10 - 9 = 1/10 -> masked
    codes = dict(CT=FULL, SA=OLD, SB=OLD, FA=VAST, FB=VAST)
    assert one("official", **codes)[0]["SOD"] == CHART_FILL
    assert one("corrected", **codes)[0]["SOD"] == SOD_CODES[OLD]


# --------------------------------------------------------------------------- range codes


@pytest.mark.parametrize(("code", "cls"), [(46, 5), (12, 2), (45, 5), (79, 8), (13, 2), (89, 9)])
def test_range_codes(code, cls):
    assert range_code_class(code) == cls
    official, table = one("official", CT=code, SA=OLD)
    assert official["SIC"] == CHART_FILL and table.undecodable["SIC"] == 1
    corrected, table = one("corrected", CT=code, SA=OLD)
    assert corrected["SIC"] == cls and table.undecodable["SIC"] == 0
    assert corrected["SOD"] == SOD_CODES[OLD]


def test_range_code_class_rejects_other_codes():
    for code in range(100):
        low, high = divmod(code, 10)
        expected = math.floor((low + high) / 2 + 0.5) if 1 <= low < high <= 9 else None
        assert range_code_class(code) == expected, code
    for code in SIC_CODES:
        assert range_code_class(code) is None


def test_range_codes_in_partials_corrected():
    # CA 23 -> 3 tenths, CB 70 -> 7: official compares raw 23 with 7 and picks A
    codes = dict(CT=FULL, CA=23, SA=YOUNG, CB=conc(7), SB=OLD)
    assert one("official", **codes)[0]["SOD"] == SOD_CODES[YOUNG]
    assert one("corrected", **codes)[0]["SOD"] == SOD_CODES[OLD]


# --------------------------------------------------------------------------- water, masks, unknowns


@pytest.mark.parametrize("poly_type", ["W", "w"])
@pytest.mark.parametrize("mode", MODES)
def test_water_polygon_is_zero_everywhere(poly_type, mode):
    got, table = one(mode, poly_type=poly_type, CT=FULL, SA=OLD, FA=VAST)
    assert got == {"SIC": 0, "SOD": 0, "FLOE": 0}
    got, table = one(mode, poly_type=poly_type)  # W rows usually carry nothing at all
    assert got == {"SIC": 0, "SOD": 0, "FLOE": 0}
    assert table.undecodable == {c: 0 for c in CHARTS}


@pytest.mark.parametrize("code", [code for code, value in SIC_CODES.items() if value == 0])
def test_ice_free_concentration_harmonises_water(code):
    got, _ = one(CT=code, CA=conc(5), SA=OLD, FA=MASKED_FORMS[0])
    assert got == {"SIC": 0, "SOD": 0, "FLOE": 0}


@pytest.mark.parametrize("masked", MASKED_FORMS)
@pytest.mark.parametrize("slot", ["A", "B", "C"])
def test_masked_form_in_any_partial_masks_floe(masked, slot):
    codes = dict(CT=FULL, CA=conc(7), SA=OLD, FA=VAST, CB=conc(2), SB=YOUNG, FB=SMALL, CC=conc(1), SC=NEW, FC=SMALL)
    codes["F" + slot] = masked
    got, table = one(**codes)
    assert got["FLOE"] == CHART_FILL
    assert got["SOD"] == SOD_CODES[OLD] and got["SIC"] == 10
    assert table.undecodable["FLOE"] == 0


def test_unknown_99_is_masked_not_counted():
    got, table = one(CT=UNKNOWN, SA=OLD)
    assert got["SIC"] == CHART_FILL
    got, table = one(CT=FULL, SA=UNKNOWN, FA=UNKNOWN)
    assert got["SOD"] == got["FLOE"] == CHART_FILL and got["SIC"] == 10
    assert table.undecodable == {c: 0 for c in CHARTS}


@pytest.mark.parametrize("poly_type", ["L", "S", "N", ""])
@pytest.mark.parametrize("mode", MODES)
def test_land_and_other_polygons_carry_no_label(poly_type, mode):
    got, table = one(mode, poly_type=poly_type, CT=FULL, SA=OLD, FA=VAST)
    assert got == {c: CHART_FILL for c in CHARTS}
    assert table.undecodable == {c: 0 for c in CHARTS}


def test_non_integer_code_makes_row_undecodable_but_cf_is_ignored():
    table = decode_polygon_codes([HEADER, row(1, CT="9x", SA=OLD), row(2, CT=FULL, SA=OLD, FA=VAST, CF="99-9")])
    assert [int(table.classes[c][0]) for c in CHARTS] == [CHART_FILL] * 3
    assert table.undecodable == {c: 1 for c in CHARTS}
    assert [int(table.classes[c][1]) for c in CHARTS] == [10, SOD_CODES[OLD], FLOE_CODES[VAST]]


@pytest.mark.parametrize(
    ("field", "value", "chart"), [("CT", NOT_FILLED, "SIC"), ("SA", 90, "SOD"), ("FA", 11, "FLOE")]
)
@pytest.mark.parametrize("mode", MODES)
def test_out_of_range_values_are_masked_and_counted(field, value, chart, mode):
    codes = dict(CT=FULL, SA=OLD, FA=VAST)
    codes[field] = value
    got, table = one(mode, **codes)
    assert got[chart] == CHART_FILL
    assert table.undecodable[chart] == 1


# --------------------------------------------------------------------------- rasterize


def small_table(mode="official"):
    rows = [HEADER, row(1, CT=FULL, SA=OLD, FA=VAST), row(3, "W"), row(4, CT=conc(5), SA=YOUNG, FA=SMALL)]
    return decode_polygon_codes(rows, mode=mode)


def test_rasterize_paints_classes():
    table = small_table()
    image = np.array([[1, 3, 4, np.nan], [2, 5, -1, 1.5], [4, 1e12, np.inf, 0]], dtype=np.float32)
    out = rasterize(image, table)
    assert set(out) == set(CHARTS)
    for chart in CHARTS:
        assert out[chart].dtype == np.uint8 and out[chart].shape == image.shape
    f = CHART_FILL
    assert out["SIC"].tolist() == [[10, 0, 5, f], [f, f, f, f], [5, f, f, f]]
    assert out["SOD"].tolist() == [[5, 0, 2, f], [f, f, f, f], [2, f, f, f]]
    assert out["FLOE"].tolist() == [[5, 0, 2, f], [f, f, f, f], [2, f, f, f]]


@pytest.mark.parametrize("dtype", [np.float64, np.int16, np.uint8, np.int64])
def test_rasterize_dtypes_and_input_untouched(dtype):
    table = small_table()
    image = np.array([[0, 1, 2], [3, 4, 5]], dtype=dtype)
    before = image.copy()
    out = rasterize(image, table)
    assert out["SIC"].tolist() == [[CHART_FILL, 10, CHART_FILL], [0, 5, CHART_FILL]]
    np.testing.assert_array_equal(image, before)
    if np.issubdtype(dtype, np.signedinteger):  # negative ids must not wrap around to the last polygon
        assert rasterize(np.array([-2, -1, 4], dtype=dtype), table)["SIC"].tolist() == [CHART_FILL, CHART_FILL, 5]


def test_rasterize_masked_array_and_empty_table():
    table = small_table()
    image = np.ma.masked_array([1, 4, 1], mask=[False, False, True])
    assert rasterize(image, table)["SIC"].tolist() == [10, 5, CHART_FILL]
    empty = decode_polygon_codes([HEADER])
    assert empty.ids.size == 0
    assert rasterize(np.array([[1.0, np.nan]]), empty)["SOD"].tolist() == [[CHART_FILL, CHART_FILL]]


def test_sparse_ids_match_dense_lookup():
    big = 10**9 + 7  # too far apart for a dense table
    rows = [HEADER, row(2, CT=FULL, SA=OLD, FA=VAST), row(big, CT=conc(3), SA=NEW, FA=SMALL)]
    table = decode_polygon_codes(rows)
    image = np.array([2, big, big + 1, 3, np.nan, -2])
    out = rasterize(image, table)
    f = CHART_FILL
    assert out["SIC"].tolist() == [10, 3, f, f, f, f]
    assert out["SOD"].tolist() == [5, 1, f, f, f, f]


def test_duplicate_id_last_row_wins_and_lut_layout():
    table = decode_polygon_codes([HEADER, row(2, CT=FULL, SA=OLD), row(2, CT=conc(3), SA=NEW)])
    assert rasterize(np.array([2.0]), table)["SIC"].tolist() == [3]
    lut = small_table().lut()
    assert lut.shape == (3, 4 + 2) and lut.dtype == np.uint8
    assert (lut[:, -1] == CHART_FILL).all() and (lut[:, [0, 2]] == CHART_FILL).all()
    assert lut[:, 1].tolist() == [10, 5, 5]


def test_decode_chart_one_call_and_input_types():
    rows = np.array([HEADER, row(1, CT=FULL, SA=OLD, FA=VAST), "", "   "], dtype="S")  # bytes, padded
    charts, table = decode_chart(np.array([[1.0, np.nan]]), rows, mode="corrected")
    assert isinstance(table, ChartTable) and table.mode == "corrected" and table.changed == 0
    assert charts["SOD"].tolist() == [[5, CHART_FILL]]


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([], "empty table"),
        (["", "  "], "empty table"),
        ([row(1, CT=FULL)], "row 0 should be the header"),
        ([HEADER.replace("CT", "CX")], "row 0 should be the header"),
        ([HEADER, row(1), row(2)[:-2]], "row 2 has 14 fields, expected 15"),
        ([HEADER, row(1) + ";X"], "row 1 has 16 fields"),
        ([HEADER, row("7a")], "row 1 has polygon id '7a'"),
        ([HEADER, row(-3)], "row 1 has polygon id '-3'"),
        ([HEADER, row(1.5)], "row 1 has polygon id '1.5'"),
        (HEADER, "got one string"),
        ([HEADER, 5], "row 1 is a int"),
    ],
)
def test_unreadable_table_raises_one_line(rows, message):
    with pytest.raises(ChartError, match=message) as info:
        decode_polygon_codes(rows)
    text = str(info.value)
    assert text.startswith("polygon_codes: ") and "\n" not in text


def test_bad_options_raise_config_error():
    with pytest.raises(ConfigError, match="chart mode"):
        decode_polygon_codes([HEADER], mode="fixed")
    with pytest.raises(ConfigError, match="sod_threshold"):
        decode_polygon_codes([HEADER], sod_threshold=65)
    with pytest.raises(ConfigError, match="floe_threshold"):
        decode_polygon_codes([HEADER], floe_threshold="x")
    with pytest.raises(ChartError, match="polygon_icechart"):
        rasterize(np.array(["1"]), small_table())


# --------------------------------------------------------------------------- real charts


def read_csv(path):
    if not path.is_file():
        pytest.skip(f"real chart material not found at {path} (shared/ must sit beside the repository)")
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_real_cis_chart_matches_official_converter():
    records = read_csv(CIS_CSV)
    assert len(records) == 297
    table = decode_polygon_codes([HEADER] + [r["polygon_code_string"] for r in records])
    for chart in CHARTS:
        expected = np.array([int(r[f"{chart}_class"]) for r in records])
        np.testing.assert_array_equal(table.classes[chart], expected, err_msg=chart)
    assert table.undecodable == {c: 0 for c in CHARTS}
    # through the image path too: every polygon once, plus pixels without a chart
    image = np.concatenate([table.ids.astype(float), [np.nan, table.ids.max() + 1.0]])
    out = rasterize(image.reshape(1, -1), table)
    for chart in CHARTS:
        assert out[chart][0, :-2].tolist() == table.classes[chart].tolist()
        assert out[chart][0, -2:].tolist() == [CHART_FILL, CHART_FILL]


def dmi_tables():
    charts = defaultdict(list)
    for record in read_csv(DMI_CSV):
        charts[record["chart"]].append(record)
    assert sum(len(v) for v in charts.values()) == 552
    return charts


def test_real_dmi_charts_official_mode():
    undecodable_sic = 0
    range_rows = 0
    for records in dmi_tables().values():
        table = decode_polygon_codes([HEADER] + [r["polygon_code_string"] for r in records])
        for chart in CHARTS:
            theirs = np.array([int(r[f"{chart}_official"]) for r in records])
            valid = (theirs < N_CLASSES[chart]) | (theirs == CHART_FILL)
            np.testing.assert_array_equal(table.classes[chart][valid], theirs[valid], err_msg=chart)
            assert (table.classes[chart][~valid] == CHART_FILL).all()
        undecodable_sic += table.undecodable["SIC"]
        range_rows += sum(r["CT_is_range_code"] == "1" and r["POLY_TYPE"] == "I" for r in records)
    assert range_rows == 90 and undecodable_sic == range_rows


def test_real_dmi_charts_corrected_mode():
    decoded = 0
    for records in dmi_tables().values():
        rows = [HEADER] + [r["polygon_code_string"] for r in records]
        table = decode_polygon_codes(rows, mode="corrected")
        official = decode_polygon_codes(rows)
        for chart in CHARTS:
            cls = table.classes[chart]
            assert ((cls < N_CLASSES[chart]) | (cls == CHART_FILL)).all(), chart
        for i, r in enumerate(records):
            if r["CT_is_range_code"] == "1" and r["POLY_TYPE"] == "I":
                low, high = divmod(int(r["CT"]), 10)
                assert table.classes["SIC"][i] == math.floor((low + high) / 2 + 0.5), r["polygon_code_string"]
                decoded += 1
        differs = np.zeros(len(records), bool)
        for chart in CHARTS:
            differs |= table.classes[chart] != official.classes[chart]
        assert table.changed == int(differs.sum())
    assert decoded == 90


# --------------------------------------------------------------------------- randomised


def test_random_egg_codes_always_decode_to_valid_classes():
    rng = np.random.default_rng(20240611)
    concs = [*SIC_CODES, NOT_FILLED, UNKNOWN, 46, 12, 79, 35]
    stages = [*SOD_CODES, NOT_FILLED]
    forms = [*FLOE_CODES, NOT_FILLED, UNKNOWN]
    types = ["I", "I", "I", "W", "L"]
    n = 3000
    pick = lambda values: rng.choice(values, size=n)  # noqa: E731
    columns = dict(
        CT=pick(concs), CA=pick(concs), SA=pick(stages), FA=pick(forms), CB=pick(concs), SB=pick(stages),
        FB=pick(forms), CC=pick(concs), SC=pick(stages), FC=pick(forms),
    )  # fmt: skip
    poly = pick(types)
    rows = [HEADER] + [row(i, poly[i], **{k: int(v[i]) for k, v in columns.items()}) for i in range(n)]
    image = rng.integers(-5, n + 5, size=(40, 60)).astype(float)
    image[rng.random(image.shape) < 0.1] = np.nan
    for mode in MODES:
        charts, table = decode_chart(image, rows, mode=mode)
        for chart in CHARTS:
            for values in (table.classes[chart], charts[chart]):
                assert ((values < N_CLASSES[chart]) | (values == CHART_FILL)).all(), (mode, chart)
            land = poly == "L"
            assert (table.classes[chart][land] == CHART_FILL).all()
            assert (table.classes[chart][poly == "W"] == 0).all()
        assert 0 < table.undecodable["SIC"] < n
