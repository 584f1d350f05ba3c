"""upload_package.nc: written exactly per spec section 7, read back, validated, scored."""

from __future__ import annotations

import re

import netCDF4
import numpy as np
import pytest
import xarray as xr

from autoice import schema, submission
from autoice.errors import SceneError, SubmissionError
from autoice.scenes import write_netcdf
from autoice.submission import (
    find_references,
    read_submission,
    scene_shapes,
    score_submission,
    validate_submission,
    write_submission,
)
from oracle import sklearn_scores

SHAPES = {"20180124T194759_dmi": (30, 41), "20190301T101010_cis": (25, 20)}
A = "20180124T194759_dmi"


def _preds(rng, shapes=SHAPES):
    return {
        k: {c: rng.integers(0, schema.N_CLASSES[c], s).astype(np.uint8) for c in schema.CHARTS}
        for k, s in shapes.items()
    }


def _reference(folder, key, charts):
    ds = xr.Dataset({c: (schema.FULL_DIMS, a) for c, a in charts.items()}, attrs={"scene_id": key})
    path = folder / f"{key}{schema.REFERENCE_SUFFIX}"
    write_netcdf(ds, path)
    return path


def _rtt(path, shape, charts=None):
    """A minimal but complete RTT file (inputs zero) with or without charts."""
    h, w = shape
    ch, cw = -(-h // schema.CELL_RTT), -(-w // schema.CELL_RTT)
    data = {v: (schema.FULL_DIMS, np.zeros(shape, np.float32)) for v in schema.FULL_GRID_INPUTS}
    data |= {v: (schema.COARSE_DIMS, np.zeros((ch, cw), np.float32)) for v in schema.COARSE_VARIABLES}
    data |= {v: (schema.TIEPOINT_DIMS, np.zeros((21, 21))) for v in schema.TIEPOINT_VARIABLES}
    data |= {c: (schema.FULL_DIMS, a) for c, a in (charts or {}).items()}
    write_netcdf(xr.Dataset(data, attrs={"scene_id": path.name}), path)
    return path


def _refs(tmp_path, rng, shapes=SHAPES):
    folder = tmp_path / "ref"
    truth = _preds(rng, shapes)
    for key, charts in truth.items():
        for a in charts.values():
            a[: a.shape[0] // 4] = schema.CHART_FILL  # masked rows
        _reference(folder, key, charts)
    return folder, truth


# ----------------------------------------------------------------------------- writing / reading
def test_written_file_follows_the_spec(tmp_path):
    rng = np.random.default_rng(0)
    preds = _preds(rng)
    path = write_submission(preds, tmp_path / "upload_package.nc")
    with netCDF4.Dataset(path) as nc:
        assert nc.data_model == "NETCDF4"
        assert sorted(nc.variables) == sorted(f"{k}_{c}" for k in SHAPES for c in schema.CHARTS)
        assert len(nc.dimensions) == 2 * len(nc.variables)
        for key, shape in SHAPES.items():
            for chart in schema.CHARTS:
                var = nc.variables[f"{key}_{chart}"]
                assert var.dimensions == (f"{key}_{chart}_dim0", f"{key}_{chart}_dim1")
                assert var.shape == shape
                assert var.dtype == np.uint8
                f = var.filters()
                assert f["zlib"] is True and f["complevel"] == 1
    back = read_submission(path)
    assert list(back) == sorted(SHAPES)
    for key in SHAPES:
        for chart in schema.CHARTS:
            np.testing.assert_array_equal(back[key][chart], preds[key][chart])
            assert back[key][chart].dtype == np.uint8
    assert list(read_submission(path, keys=[A])) == [A]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_integer_predictions_of_any_dtype_are_stored_as_uint8(tmp_path):
    path = write_submission({A: {"SOD": np.full((3, 4), 5, np.int64)}}, tmp_path / "u.nc")
    with netCDF4.Dataset(path) as nc:
        assert nc.variables[f"{A}_SOD"].dtype == np.uint8


@pytest.mark.parametrize(
    ("preds", "message"),
    [
        ({A: {"SIC": np.full((3, 4), 11, np.uint8)}}, f"{A}_SIC: values .* outside the SIC classes 0..10"),
        ({A: {"SOD": np.full((3, 4), 255, np.uint8)}}, f"{A}_SOD: values .* outside the SOD classes 0..5"),
        ({A: {"FLOE": np.zeros((3, 4), np.float32)}}, f"{A}_FLOE: prediction dtype float32 is not integer"),
        ({A: {"SIC": np.zeros((2, 3, 4), np.uint8)}}, f"{A}_SIC: prediction has 3 dims"),
        ({"scene1": {"SIC": np.zeros((3, 4), np.uint8)}}, "scene key 'scene1' is not"),
        ({A: {"ICE": np.zeros((3, 4), np.uint8)}}, "unknown chart"),
    ],
)
def test_bad_predictions_leave_no_file(tmp_path, preds, message):
    good = {"20170101T000000_cis": {"SIC": np.zeros((3, 4), np.uint8)}}  # written first, then dropped
    target = tmp_path / "upload_package.nc"
    with pytest.raises(SubmissionError, match=message) as err:
        write_submission(good | preds, target)
    assert str(target) in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_read_errors_name_the_file(tmp_path):
    bad = tmp_path / "upload_package.nc"
    bad.write_text("not a netCDF file")
    with pytest.raises(SubmissionError, match="upload_package.nc: not a readable netCDF-4 file"):
        read_submission(bad)
    with pytest.raises(SubmissionError, match="no such file"):
        read_submission(tmp_path / "none.nc")


# ----------------------------------------------------------------------------- validation
def _package(path, variables):
    """Hand-made package: name -> (dims, array)."""
    with netCDF4.Dataset(path, "w") as nc:
        for name, (dims, a) in variables.items():
            for d, n in zip(dims, a.shape, strict=True):
                if d not in nc.dimensions:
                    nc.createDimension(d, n)
            nc.createVariable(name, a.dtype, dims, zlib=True, complevel=1)[...] = a
    return path


def _good_variables(rng):
    out = {}
    for key, chart_arrays in _preds(rng).items():
        for chart, a in chart_arrays.items():
            name = f"{key}_{chart}"
            out[name] = ((f"{name}_dim0", f"{name}_dim1"), a)
    return out


def test_valid_package_has_no_problems(tmp_path):
    rng = np.random.default_rng(1)
    path = write_submission(_preds(rng), tmp_path / "u.nc")
    assert validate_submission(path, SHAPES) == []
    assert validate_submission(_package(tmp_path / "hand.nc", _good_variables(rng)), SHAPES) == []


def _mutations():
    a_sic, a_sod, a_floe = f"{A}_SIC", f"{A}_SOD", f"{A}_FLOE"
    return [
        ("missing", lambda v: v.pop(a_sod), rf"^{a_sod}: missing"),
        (
            "dims",
            lambda v: v.__setitem__(a_sic, (("y", "x"), v[a_sic][1])),
            rf"^{a_sic}: dims \('y', 'x'\), expected \('{a_sic}_dim0', '{a_sic}_dim1'\)",
        ),
        (
            "shape",
            lambda v: v.__setitem__(a_sic, (v[a_sic][0], np.zeros((30, 40), np.uint8))),
            rf"^{a_sic}: shape \(30, 40\), expected \(30, 41\)",
        ),
        (
            "dtype",
            lambda v: v.__setitem__(a_floe, (v[a_floe][0], v[a_floe][1].astype(np.int16))),
            rf"^{a_floe}: dtype int16, expected uint8",
        ),
        (
            "float-nan",
            lambda v: v.__setitem__(a_floe, (v[a_floe][0], np.full((30, 41), np.nan, np.float32))),
            rf"^{a_floe}: dtype float32, expected uint8\n{a_floe}: 1230 pixels outside the FLOE classes 0..6",
        ),
        (
            "range",
            lambda v: v[a_sod][1].__setitem__((0, slice(0, 3)), 6),
            rf"^{a_sod}: 3 pixels outside the SOD classes 0..5 \(values: 6\)",
        ),
        (
            "fill",
            lambda v: v[a_sic][1].__setitem__((slice(0, 2), 0), 255),
            rf"^{a_sic}: 2 pixels outside the SIC classes 0..10 \(values: 255\)",
        ),
        (
            "3d",
            lambda v: v.__setitem__(a_sic, ((f"{a_sic}_dim0", f"{a_sic}_dim1", "z"), np.zeros((30, 41, 2), np.uint8))),
            rf"^{a_sic}: has 3 dims",
        ),
        (
            "extra-scene",
            lambda v: v.__setitem__("20200101T000000_cis_SIC", (("e0", "e1"), np.zeros((2, 2), np.uint8))),
            r"^20200101T000000_cis_SIC: scene 20200101T000000_cis is not one of the test scenes",
        ),
        (
            "unexpected",
            lambda v: v.__setitem__("foo", (("f0",), np.zeros(2, np.uint8))),
            r"^foo: unexpected variable",
        ),
    ]


@pytest.mark.parametrize(("case", "mutate", "pattern"), _mutations(), ids=[m[0] for m in _mutations()])
def test_each_malformation_is_one_line_naming_the_variable(tmp_path, case, mutate, pattern):
    rng = np.random.default_rng(2)
    variables = _good_variables(rng)
    mutate(variables)
    problems = validate_submission(_package(tmp_path / "u.nc", variables), SHAPES)
    assert len(problems) == pattern.count(r"\n") + 1, problems  # one line per problem
    assert all("\n" not in p for p in problems)
    assert re.search(pattern, "\n".join(problems)), problems


def test_every_problem_is_reported(tmp_path):
    rng = np.random.default_rng(3)
    variables = _good_variables(rng)
    for name in list(variables)[:4]:
        variables.pop(name)
    variables["bar"] = (("b0",), np.zeros(2, np.uint8))
    problems = validate_submission(_package(tmp_path / "u.nc", variables), SHAPES)
    assert len(problems) == 5


@pytest.mark.parametrize("content", [b"", b"hello world", b"\x89HDF\r\n\x1a\n" + b"\0" * 40])
def test_unreadable_package_is_one_problem_naming_the_file(tmp_path, content):
    path = tmp_path / "upload_package.nc"
    path.write_bytes(content)
    problems = validate_submission(path, SHAPES)
    assert len(problems) == 1
    assert problems[0].startswith(f"{path}: not a readable netCDF-4 file")


def test_truncated_package(tmp_path):
    path = write_submission(_preds(np.random.default_rng(4)), tmp_path / "u.nc")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    problems = validate_submission(path, SHAPES)
    assert problems == [problems[0]] and problems[0].startswith(f"{path}: not a readable netCDF-4 file")


# ----------------------------------------------------------------------------- scenes
def test_scene_shapes_from_test_and_reference_files(tmp_path):
    d = tmp_path / "test"
    _rtt(d / f"{A}_prep.nc", SHAPES[A])
    _reference(d, "20190301T101010_cis", {c: np.zeros(SHAPES["20190301T101010_cis"], np.uint8) for c in schema.CHARTS})
    _reference(d, A, {c: np.zeros(SHAPES[A], np.uint8) for c in schema.CHARTS})
    assert scene_shapes(d) == SHAPES
    _reference(d, A, {c: np.zeros((5, 5), np.uint8) for c in schema.CHARTS})
    with pytest.raises(SceneError, match=f"differs from the other file of scene {A}"):
        scene_shapes(d)
    with pytest.raises(SceneError, match="no test scenes found"):
        scene_shapes(tmp_path / "test" / "..")


def test_find_references_prefers_reference_files_and_skips_test_inputs(tmp_path):
    d = tmp_path / "data"
    charts = {c: np.zeros(SHAPES[A], np.uint8) for c in schema.CHARTS}
    _rtt(d / f"{A}_prep.nc", SHAPES[A], charts)
    ref = _reference(d, A, charts)
    _rtt(d / "20190301T101010_cis_prep.nc", SHAPES["20190301T101010_cis"])  # test input: no charts
    found = find_references(d)
    assert found == {A: (ref, SHAPES[A])}
    train = d / f"{A}_prep.nc"
    assert find_references([train]) == {A: (train, SHAPES[A])}  # RTT files with charts work too


# ----------------------------------------------------------------------------- scoring


def test_score_equals_sklearn_on_concatenated_scenes(tmp_path, monkeypatch):
    monkeypatch.setattr(submission, "_BLOCK_PIXELS", 200)  # stream several row blocks per variable
    rng = np.random.default_rng(5)
    ref_dir, truth = _refs(tmp_path, rng)
    preds = {k: {c: np.where(rng.random(a.shape) < 0.7, np.minimum(a, schema.N_CLASSES[c] - 1), 0).astype(np.uint8)
                 for c, a in charts.items()} for k, charts in truth.items()}  # fmt: skip
    sub = write_submission(preds, tmp_path / "u.nc")
    report = score_submission(sub, ref_dir)
    assert report.missing == [] and report.extra == []
    res = report.pooled.result()
    expected = sklearn_scores(truth, preds)
    for chart in schema.CHARTS:
        assert abs(res.fractions[chart] - expected[chart]) <= 1e-9
        assert res.charts[chart] == float(np.round(expected[chart] * 100, 3))
    # per-scene scores are each scene alone
    one = sklearn_scores({A: truth[A]}, {A: preds[A]})
    assert abs(report.scenes[A].result().fractions["SOD"] - one["SOD"]) <= 1e-9


def test_missing_and_extra_variables(tmp_path):
    rng = np.random.default_rng(6)
    ref_dir, truth = _refs(tmp_path, rng)
    preds = {k: {c: np.minimum(a, schema.N_CLASSES[c] - 1) for c, a in ch.items()} for k, ch in truth.items()}
    del preds[A]["FLOE"]
    preds["20200101T000000_cis"] = {"SIC": np.zeros((4, 4), np.uint8)}
    report = score_submission(write_submission(preds, tmp_path / "u.nc"), ref_dir)
    assert report.missing == [f"{A}_FLOE"]
    assert report.extra == ["20200101T000000_cis_SIC"]
    res = report.pooled.result()
    assert res.charts["FLOE"] == 0.0 and res.missing == ("FLOE",)
    assert res.charts["SIC"] > 0  # the other charts still score


def test_wrong_shape_variable_scores_zero(tmp_path):
    rng = np.random.default_rng(7)
    ref_dir, truth = _refs(tmp_path, rng)
    preds = _preds(rng)
    preds[A]["SOD"] = np.zeros((3, 3), np.uint8)
    report = score_submission(write_submission(preds, tmp_path / "u.nc"), ref_dir)
    assert report.missing == [f"{A}_SOD"]
    assert report.problems == [f"{A}_SOD: shape (3, 3), expected {SHAPES[A]} (the scene's 80 m grid)"]
    assert report.pooled.result().charts["SOD"] == 0.0


def test_reference_out_of_range_class_is_refused(tmp_path):
    rng = np.random.default_rng(8)
    ref_dir, truth = _refs(tmp_path, rng)
    bad = dict(truth[A])
    bad["SOD"] = bad["SOD"].copy()
    bad["SOD"][-1, -1] = 9
    path = _reference(ref_dir, A, bad)
    sub = write_submission(_preds(rng), tmp_path / "u.nc")
    with pytest.raises(SceneError, match=f"{path}: chart SOD has out-of-range class 9"):
        score_submission(sub, ref_dir)
