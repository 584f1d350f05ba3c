"""``autoice validate`` and ``autoice score`` end to end on tiny files."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner
from sklearn.metrics import f1_score

from autoice import schema
from autoice.cli.main import cli, main
from autoice.scenes import write_netcdf
from autoice.submission import write_submission
from oracle import sklearn_scores

SHAPES = {"20180124T194759_dmi": (30, 41), "20190301T101010_cis": (25, 20), "20200505T050505_cis": (22, 33)}


@pytest.fixture
def case(tmp_path):
    """Reference folder (3 scenes) and a decent submission for it."""
    rng = np.random.default_rng(0)
    ref_dir = tmp_path / "ref"
    truth, preds = {}, {}
    for key, shape in SHAPES.items():
        truth[key], preds[key] = {}, {}
        for chart in schema.CHARTS:
            n = schema.N_CLASSES[chart]
            t = rng.integers(0, n, shape).astype(np.uint8)
            t[:4] = schema.CHART_FILL
            truth[key][chart] = t
            preds[key][chart] = np.where(rng.random(shape) < 0.8, np.minimum(t, n - 1), 0).astype(np.uint8)
        ds = xr.Dataset({c: (schema.FULL_DIMS, a) for c, a in truth[key].items()}, attrs={"scene_id": key})
        write_netcdf(ds, ref_dir / f"{key}{schema.REFERENCE_SUFFIX}")
    return tmp_path, ref_dir, truth, preds


def _expected(truth, preds):
    out = {c: float(np.round(v * 100, 3)) for c, v in sklearn_scores(truth, preds).items()}
    out["combined"] = float(np.round((out["SIC"] * 2 + out["SOD"] * 2 + out["FLOE"]) / 5, 3))
    return out


def _run(args):
    result = CliRunner().invoke(cli, args)
    return result


def test_score_json_is_the_only_stdout(case):
    tmp, ref_dir, truth, preds = case
    sub = write_submission(preds, tmp / "upload_package.nc")
    result = _run(["score", str(sub), "--reference", str(ref_dir), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)  # stdout is exactly one JSON object
    exp = _expected(truth, preds)
    assert {k: data[k] for k in exp} == exp
    assert data["n_scenes"] == 3 and "per_scene" not in data


def test_score_table_per_scene_and_bootstrap(case):
    tmp, ref_dir, truth, preds = case
    sub = write_submission(preds, tmp / "upload_package.nc")
    result = _run(["score", str(sub), "--reference", str(ref_dir), "--per-scene", "--bootstrap", "50"])
    assert result.exit_code == 0, result.output
    exp = _expected(truth, preds)
    lines = result.stdout.splitlines()
    sic_row = next(line for line in lines if line.startswith("SIC "))
    assert f"{exp['SIC']:.3f}" in sic_row and "[" in sic_row  # score and its CI
    assert any(line.startswith("combined") and f"{exp['combined']:.3f}" in line for line in lines)
    for key in SHAPES:
        one = _expected({key: truth[key]}, {key: preds[key]})
        row = next(line for line in lines if line.startswith(key))
        assert f"{one['SOD']:.3f}" in row and f"{one['combined']:.3f}" in row
    js = _run(["score", str(sub), "--reference", str(ref_dir), "--json", "--per-scene", "--bootstrap", "50"])
    data = json.loads(js.stdout)
    assert set(data["per_scene"]) == set(SHAPES)
    lo, hi = data["bootstrap"]["SOD"]
    assert lo <= data["SOD"] <= hi


def test_score_out_folder(case):
    tmp, ref_dir, truth, preds = case
    sub = write_submission(preds, tmp / "upload_package.nc")
    out = tmp / "report"
    result = _run(["score", str(sub), "--reference", str(ref_dir), "--out", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads((out / "scores.json").read_text())
    assert data["SOD"] == _expected(truth, preds)["SOD"]
    assert set(data["per_scene"]) == set(SHAPES)
    with (out / "per_class.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["chart", "class", "name", "precision", "recall", "f1", "support"]
    assert len(rows) == sum(schema.N_CLASSES.values())
    sod_water = next(r for r in rows if r["chart"] == "SOD" and r["class"] == "0")
    assert sod_water["name"] == schema.CLASS_NAMES["SOD"][0]
    t = np.concatenate([truth[k]["SOD"].ravel() for k in sorted(truth)])
    assert int(sod_water["support"]) == int((t == 0).sum())
    for chart in schema.CHARTS:
        assert (out / f"confusion_{chart}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(out.glob(".*tmp"))


def test_score_missing_and_extra_scenes_warn(case):
    tmp, ref_dir, truth, preds = case
    key = "20190301T101010_cis"
    del preds[key]  # a whole scene missing: every chart counts as missing
    preds["20210101T000000_dmi"] = {"SIC": np.zeros((3, 3), np.uint8)}
    sub = write_submission(preds, tmp / "upload_package.nc")
    result = _run(["score", str(sub), "--reference", str(ref_dir), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["SIC"] == data["SOD"] == data["FLOE"] == data["combined"] == 0.0
    assert data["missing_variables"] == [f"{key}_{c}" for c in schema.CHARTS]
    assert data["extra_variables"] == ["20210101T000000_dmi_SIC"]
    assert f"warning: {key}_SOD: missing; its chart scores 0" in result.stderr
    assert "warning: 20210101T000000_dmi_SIC: in the submission but matches no reference scene" in result.stderr


def test_validate_ok_and_problems(case, capsys):
    tmp, ref_dir, truth, preds = case
    sub = write_submission(preds, tmp / "upload_package.nc")
    result = _run(["validate", str(sub), "--data", str(ref_dir)])
    assert result.exit_code == 0
    assert "valid (3 scenes x 3 charts)" in result.stdout
    preds["20180124T194759_dmi"]["SOD"] = np.zeros((5, 5), np.uint8)
    del preds["20200505T050505_cis"]["FLOE"]
    bad = write_submission(preds, tmp / "bad.nc")
    with pytest.raises(SystemExit) as exit_:
        main(["validate", str(bad), "--data", str(ref_dir)])
    assert exit_.value.code == 1
    out, err = capsys.readouterr()
    assert out.splitlines() == [
        "20180124T194759_dmi_SOD: shape (5, 5), expected (30, 41) (the scene's 80 m grid)",
        "20200505T050505_cis_FLOE: missing (scene 20200505T050505_cis, chart FLOE)",
    ]
    assert err.strip() == f"autoice: error: {bad}: 2 problems found"


@pytest.mark.parametrize("command", ["validate", "score"])
def test_bad_files_are_one_line_errors(case, capsys, command):
    tmp, ref_dir, truth, preds = case
    junk = tmp / "upload_package.nc"
    junk.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 64)
    option = "--data" if command == "validate" else "--reference"
    with pytest.raises(SystemExit) as exit_:
        main([command, str(junk), option, str(ref_dir)])
    assert exit_.value.code == 1
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    assert f"{junk}: not a readable netCDF-4 file" in out + err
    # an empty reference folder
    (tmp / "empty").mkdir()
    with pytest.raises(SystemExit):
        main([command, str(junk), option, str(tmp / "empty")])
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "no " in err and "scenes found" in err


# ----------------------------------------------------------------------------- --by
CIS_RAW = ("S1A_EW_GRDM_1SDH_20200505T050505_20200505T050605_032462_03C2C2_ABCD_icechart_cis_SGRDIFOXE_"
           "20200505T0500Z_pl_a.nc")  # fmt: skip
GROUPS = {  # scene key -> (service, month, season); 20180124T194759_dmi is an official test scene (SouthEast)
    "20180124T194759_dmi": ("dmi", "01", "winter"),
    "20190301T101010_cis": ("cis", "03", "winter"),
    "20200505T050505_cis": ("cis", "05", "melt"),
}


def _write_reference(ref_dir, key, charts, **attrs):
    ds = xr.Dataset({c: (schema.FULL_DIMS, a) for c, a in charts.items()}, attrs={"scene_id": key, **attrs})
    write_netcdf(ds, ref_dir / f"{key}{schema.REFERENCE_SUFFIX}")


def _valid(truth, keys, chart):
    return sum(int((truth[k][chart] != schema.CHART_FILL).sum()) for k in keys)


def test_score_by_groups_equal_each_group_scored_alone(case):
    tmp, ref_dir, truth, preds = case
    sub = write_submission(preds, tmp / "upload_package.nc")
    result = _run(["score", str(sub), "--reference", str(ref_dir), "--by", "service", "--by", "season", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert list(data["by"]) == ["service", "season"]
    assert list(data["by"]["service"]) == ["cis", "dmi"] and list(data["by"]["season"]) == ["winter", "melt"]
    for column, grouping in ((0, "service"), (2, "season")):
        groups = data["by"][grouping]
        for label, g in groups.items():
            keys = sorted(k for k, v in GROUPS.items() if v[column] == label)
            assert g["scenes"] == keys and g["n_scenes"] == len(keys)
            # the official metric on the group's scenes alone (scikit-learn on their concatenated pixels)
            exp = _expected({k: truth[k] for k in keys}, {k: preds[k] for k in keys})
            assert {c: g[c] for c in exp} == exp, (grouping, label)
            assert g["valid_pixels"] == {c: _valid(truth, keys, c) for c in schema.CHARTS}
            assert g["missing"] == []
        for chart in schema.CHARTS:  # groups partition the scenes: counts add up to the overall ones
            assert sum(g["valid_pixels"][chart] for g in groups.values()) == data["valid_pixels"][chart]
        assert sum(g["n_scenes"] for g in groups.values()) == data["n_scenes"]
    # and the same figures as `autoice score` on a reference folder holding only that group's scenes
    alone = tmp / "cis_only"
    for key in (k for k, v in GROUPS.items() if v[0] == "cis"):
        _write_reference(alone, key, truth[key])
    solo = json.loads(_run(["score", str(sub), "--reference", str(alone), "--json"]).stdout)
    cis = data["by"]["service"]["cis"]
    assert {k: cis[k] for k in ("SIC", "SOD", "FLOE", "combined", "valid_pixels", "n_scenes")} == {
        k: solo[k] for k in ("SIC", "SOD", "FLOE", "combined", "valid_pixels", "n_scenes")
    }


def test_score_by_text_tables_in_order(case):
    tmp, ref_dir, truth, preds = case
    sub = write_submission(preds, tmp / "upload_package.nc")
    result = _run(["score", str(sub), "--reference", str(ref_dir), "--by", "month", "--by", "season", "--by", "month"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines.count("By month") == 1  # a repeated grouping is shown once
    start = lines.index("By month")
    assert [line.split()[:3] for line in lines[start + 2 : start + 5]] == [["01", "Jan", "1"], ["03", "Mar", "1"],
                                                                          ["05", "May", "1"]]  # fmt: skip
    assert "By season (winter Dec-Mar, melt Apr-Jun, summer Jul-Sep, freeze-up Oct-Nov)" in lines
    winter = next(line for line in lines if line.startswith("winter "))
    keys = [k for k, v in GROUPS.items() if v[2] == "winter"]
    exp = _expected({k: truth[k] for k in keys}, {k: preds[k] for k in keys})
    assert winter.split()[1:6] == ["2", *(f"{exp[c]:.3f}" for c in (*schema.CHARTS, "combined"))]
    assert winter.split()[6] == f"{_valid(truth, keys, 'SIC'):,}"


def test_score_by_region_from_attribute_and_official_list(case):
    tmp, ref_dir, truth, preds = case
    _write_reference(ref_dir, "20200505T050505_cis", truth["20200505T050505_cis"], original_id=CIS_RAW)
    # an original_id naming another scene is not believed: that scene's region stays unknown
    _write_reference(ref_dir, "20190301T101010_cis", truth["20190301T101010_cis"], original_id=CIS_RAW)
    sub = write_submission(preds, tmp / "upload_package.nc")
    result = _run(["score", str(sub), "--reference", str(ref_dir), "--by", "region", "--json"])
    assert result.exit_code == 0, result.output
    regions = json.loads(result.stdout)["by"]["region"]
    assert {label: g["scenes"] for label, g in regions.items()} == {
        "SGRDIFOXE": ["20200505T050505_cis"],  # from the file's original_id
        "SouthEast": ["20180124T194759_dmi"],  # from the official test-scene list
        "unknown": ["20190301T101010_cis"],
    }
    assert list(regions) == ["SGRDIFOXE", "SouthEast", "unknown"]


def test_score_by_group_without_valid_pixels_is_nan_and_missing_scores_zero(case):
    tmp, ref_dir, truth, preds = case
    key = "20180124T194759_dmi"  # the only dmi scene
    truth[key]["FLOE"][:] = schema.CHART_FILL
    _write_reference(ref_dir, key, truth[key])
    del preds["20190301T101010_cis"]["SOD"]
    sub = write_submission(preds, tmp / "upload_package.nc")
    result = _run(["score", str(sub), "--reference", str(ref_dir), "--by", "service", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    dmi, cis = data["by"]["service"]["dmi"], data["by"]["service"]["cis"]
    assert dmi["FLOE"] is None and dmi["combined"] is None and dmi["valid_pixels"]["FLOE"] == 0
    t, p = truth[key]["SOD"], preds[key]["SOD"]
    sod = f1_score(t[t != schema.CHART_FILL], p[t != schema.CHART_FILL], average="weighted")
    assert dmi["SOD"] == float(np.round(sod * 100, 3))
    assert cis["SOD"] == 0.0 and cis["missing"] == ["SOD"] and math.isfinite(cis["combined"])
    assert data["FLOE"] == cis["FLOE"] and math.isfinite(data["combined"])  # the overall score is unchanged
    text = _run(["score", str(sub), "--reference", str(ref_dir), "--by", "service"]).stdout
    dmi_row = next(line for line in text.splitlines() if line.startswith("dmi "))
    assert dmi_row.split()[4:6] == ["nan", "nan"]
    cis_row = next(line for line in text.splitlines() if line.startswith("cis "))
    assert cis_row.endswith("(missing: SOD scored 0)")


def test_score_by_unknown_grouping_is_a_usage_error(case):
    tmp, ref_dir, truth, preds = case
    sub = write_submission(preds, tmp / "upload_package.nc")
    result = _run(["score", str(sub), "--reference", str(ref_dir), "--by", "year"])
    assert result.exit_code == 2
    assert "Invalid value for '--by': 'year' is not one of 'service', 'month', 'season', 'region'" in result.output


def test_report_by_season_table(case, capsys):
    tmp, ref_dir, truth, preds = case
    sub = write_submission(preds, tmp / "upload_package.nc")
    out = tmp / "report.html"
    with pytest.raises(SystemExit) as exit_:
        main(["report", "--prediction", str(sub), "--reference", str(ref_dir), "-o", str(out), "--max-scenes", "0",
              "--by", "season"])  # fmt: skip
    assert exit_.value.code == 0, capsys.readouterr().err
    page = out.read_text()
    table = page[page.index('id="by-season"') :].split("</table>")[0]
    rows = table.split("</tr>")
    assert 'winter</td><td title="20180124T194759_dmi, 20190301T101010_cis">2</td>' in rows[1]
    keys = [k for k, v in GROUPS.items() if v[2] == "melt"]
    exp = _expected({k: truth[k] for k in keys}, {k: preds[k] for k in keys})
    assert "".join(f"<td>{exp[c]:.3f}</td>" for c in (*schema.CHARTS, "combined")) in rows[2]
    assert "freeze-up Oct-Nov" in page and 'id="by-region"' not in page


def test_score_refuses_out_of_range_predictions_as_validate_does(case, capsys):
    """Issue 10 item 12: SIC 255 where the reference is valid used to score SIC -233715 silently."""
    tmp, ref_dir, truth, preds = case
    import netCDF4

    key = next(iter(SHAPES))
    sub = write_submission(preds, tmp / "upload_package.nc")
    with netCDF4.Dataset(sub, "r+") as nc:  # a hand-edited package: our writer refuses such values
        nc[f"{key}_SIC"][10:12, :] = 255
    for cmd in (["score", str(sub), "--reference", str(ref_dir)], ["validate", str(sub), "--data", str(ref_dir)]):
        with pytest.raises(SystemExit) as exit_:
            main(cmd)
        assert exit_.value.code == 1, cmd
        out, err = capsys.readouterr()
        said = out + err
        assert f"{key}_SIC: 82 pixels outside the SIC classes 0..10" in said, said
        assert "Traceback" not in said


def test_outputs_under_a_regular_file_are_one_line_errors(case, capsys):
    """Issue 10 item 11: FileExistsError / NotADirectoryError tracebacks; now the folder and why."""
    tmp, ref_dir, truth, preds = case
    sub = write_submission(preds, tmp / "upload_package.nc")
    blocker = tmp / "afile"
    blocker.write_text("not a folder")
    for cmd in (["score", str(sub), "--reference", str(ref_dir), "--out", str(blocker / "scores")],
                ["synth", str(blocker / "data"), "--train", "1", "--test", "0"]):  # fmt: skip
        with pytest.raises(SystemExit) as exit_:
            main(cmd)
        assert exit_.value.code == 1, cmd
        err = capsys.readouterr().err
        errors = [line for line in err.splitlines() if line.startswith("autoice: error:")]
        assert len(errors) == 1 and "a file is in the way of this folder" in errors[0], (cmd, err)
        assert "Traceback" not in err


def test_file_errors_survive_pickling():
    """Issue 10 item 5: a SceneError raised in a worker process broke the pool (BrokenProcessPool)."""
    import pickle

    from autoice.errors import OutputError, SceneError, SubmissionError

    for cls in (SceneError, SubmissionError, OutputError):
        back = pickle.loads(pickle.dumps(cls("/data/x.nc", "chart SIC cannot be read")))
        assert type(back) is cls and str(back) == "/data/x.nc: chart SIC cannot be read"
        assert (back.path, back.fault) == ("/data/x.nc", "chart SIC cannot be read")
