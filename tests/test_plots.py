"""Pictures and the HTML report: ``autoice show`` and ``autoice report`` on tiny synthetic scenes."""

from __future__ import annotations

import base64
import re
import warnings

import matplotlib.image as mpimg
import numpy as np
import pytest
import xarray as xr
from sklearn.metrics import f1_score

from autoice import plots, schema
from autoice.cli import main as cli_main
from autoice.errors import SceneError, SubmissionError
from autoice.report import write_report
from autoice.submission import score_submission, write_submission

ERROR_LABELS = [label for label, _ in plots.ERROR_CLASSES]


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def files(synth_data):
    """One train file, the test pair(s) and the reference charts of the test scenes."""
    train = sorted((synth_data / "train").glob("*_prep.nc"))
    tests = sorted((synth_data / "test").glob(f"*{schema.RTT_SUFFIX}"))
    refs = sorted((synth_data / "test").glob(f"*{schema.REFERENCE_SUFFIX}"))
    assert train and len(tests) == len(refs) >= 2
    charts = {}
    for r in refs:
        with xr.open_dataset(r) as ds:
            charts[schema.scene_key(r.name)] = {c: ds[c].values for c in schema.CHARTS}
    return {"train": train[0], "test": tests, "reference": refs, "charts": charts}


@pytest.fixture(scope="module")
def upload(files, tmp_path_factory):
    """A plausible submission for the test scenes: reference with masked pixels as 0 and a wrong stripe."""
    preds = {}
    for key, charts in files["charts"].items():
        preds[key] = {}
        for chart, ref in charts.items():
            p = np.where(ref == schema.CHART_FILL, 0, ref).astype(np.uint8)
            p[:, :10] = (p[:, :10] + 1) % schema.N_CLASSES[chart]
            preds[key][chart] = p
    path = tmp_path_factory.mktemp("upload") / "upload_package.nc"
    return write_submission(preds, path), preds


def _cli(args, capsys, monkeypatch):
    """Run ``autoice ARGS`` through main(); (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as exit_:
        cli_main.main(args)
    out, err = capsys.readouterr()
    return exit_.value.code, out, err


def _png_size(path):
    img = mpimg.imread(path)
    return img.shape[1], img.shape[0]  # width, height


# ----------------------------------------------------------------------------- reduction helpers
def test_display_step_brings_full_scenes_to_about_1000_pixels():
    assert plots.display_step((96, 128)) == 1
    step = plots.display_step((5000, 5200))
    assert step == 6 and -(-5200 // step) <= plots.MAX_DISPLAY_SIZE


def test_block_mean_ignores_no_data_and_keeps_partial_edge_blocks():
    a = np.arange(7 * 5, dtype=np.float32).reshape(7, 5)
    a[0, 0] = np.nan
    a[6, :] = np.nan  # last (partial) block row entirely no data
    out = plots.block_mean(a, 3)
    assert out.shape == (3, 2)
    assert out[0, 0] == pytest.approx(np.nanmean(a[:3, :3]))
    assert out[1, 1] == pytest.approx(a[3:6, 3:5].mean())  # partial block on the right edge
    assert np.isnan(out[2]).all()


def test_block_sample_and_coarse_upsampling_follow_the_grid():
    a = np.arange(100).reshape(10, 10)
    small = plots.block_sample(a, 4)
    assert small.shape == (3, 3)
    assert small[0, 0] == a[2, 2] and small[2, 2] == a[9, 9]  # block centres, clipped at the edge
    coarse = np.arange(12).reshape(3, 4)  # cell k covers pixels [25k, 25k + 25)
    up = plots.upsample_coarse(coarse, (60, 90), 1)
    assert up.shape == (60, 90)
    assert up[24, 24] == 0 and up[25, 25] == 5 and up[59, 89] == 11 and up[0, 75] == 3


def test_error_codes_and_class_difference():
    ref = np.array([[0, 3, 255], [10, 5, 255]], dtype=np.uint8)
    pred = np.array([[0, 4, 7], [8, 5, 0]], dtype=np.uint8)
    assert plots.error_codes(ref, pred).tolist() == [[0, 1, 2], [1, 0, 2]]
    diff = plots.class_difference(ref, pred)
    assert diff[0, :2].tolist() == [0, 1] and diff[1, :2].tolist() == [-2, 0] and np.isnan(diff[:, 2]).all()


def test_sar_composite_paints_no_data_grey():
    hh = np.array([[-20.0, -10.0], [np.nan, -5.0]])
    hv = np.array([[-30.0, -25.0], [-20.0, np.nan]])
    rgb = plots.sar_composite(hh, hv)
    assert rgb.shape == (2, 2, 3) and rgb.min() >= 0 and rgb.max() <= 1
    assert np.allclose(rgb[1, 0], plots.NO_DATA_COLOUR) and np.allclose(rgb[1, 1], plots.NO_DATA_COLOUR)


# ----------------------------------------------------------------------------- scene views
def test_train_view_unscales_inputs_and_keeps_charts(files):
    path = files["train"]
    view = plots.load_scene_view(path)
    with xr.open_dataset(path) as ds:
        hh_scaled = ds[schema.SAR_VARIABLES[0]].values
        assert view.step == 1 and view.shape == hh_scaled.shape
        for c in schema.CHARTS:
            np.testing.assert_array_equal(view.charts[c], ds[c].values)
    mean, std = schema.global_meanstd()[schema.SAR_VARIABLES[0]]
    valid = hh_scaled != 0
    assert np.array_equal(np.isfinite(view.hh), valid)  # 0 = no data -> NaN
    np.testing.assert_allclose(view.hh[valid], hh_scaled[valid] * std + mean, rtol=1e-5)
    assert -45 < np.nanmedian(view.hv) < np.nanmedian(view.hh) < 10  # dB, HV below HH
    assert 50 < np.nanmin(view.amsr2) and np.nanmax(view.amsr2) < 320  # kelvin


def test_test_scene_takes_charts_from_its_reference_and_back(files):
    test, ref = files["test"][0], files["reference"][0]
    key = schema.scene_key(test.name)
    for path in (test, ref):
        view = plots.load_scene_view(path)
        assert set(view.sources) == {test, ref}
        assert view.hh is not None and view.charts is not None
        for c in schema.CHARTS:
            np.testing.assert_array_equal(view.charts[c], files["charts"][key][c])


def test_reduced_view_is_consistent(files):
    view = plots.load_scene_view(files["train"], max_size=50)
    assert view.step == 3
    for a in (view.hh, view.hv, view.amsr2, *view.charts.values()):
        assert a.shape == view.display_shape == (32, 43)


@pytest.mark.parametrize("kind", ["train", "test", "reference"])
def test_show_writes_a_png_for_each_kind_of_input(files, tmp_path, kind):
    scene = files[kind] if kind == "train" else files[kind][0]
    out = plots.show_scene(scene, tmp_path / "scene.png")
    width, height = _png_size(out)
    assert 1000 < width < 2000 and 300 < height < 2000
    assert [p.name for p in tmp_path.iterdir()] == ["scene.png"]  # no temp file left


def test_figure_legends_name_every_class(files):
    view = plots.load_scene_view(files["train"])
    labels = plots.legend_labels(plots.scene_figure(view))
    for chart in schema.CHARTS:
        assert set(schema.CLASS_NAMES[chart]) <= set(labels)
    assert plots.NO_DATA_LABEL in labels


def test_prediction_is_drawn_beside_reference_with_error_maps(files, upload, tmp_path):
    sub, preds = upload
    test = files["test"][0]
    key = schema.scene_key(test.name)
    view = plots.load_scene_view(test)
    pred = plots.read_prediction_view(sub, view)
    for c in schema.CHARTS:
        np.testing.assert_array_equal(pred[c], preds[key][c])
    fig = plots.scene_figure(view, pred)
    labels = plots.legend_labels(fig)
    assert set(ERROR_LABELS) <= set(labels)
    assert set(schema.CLASS_NAMES["SOD"]) <= set(labels) and set(schema.CLASS_NAMES["FLOE"]) <= set(labels)
    titles = [ax.get_title() for ax in fig.axes]
    assert "SOD reference" in titles and "SOD prediction (land, no SAR data: grey)" in titles
    assert any(t.startswith("SOD error (") and "% correct" in t for t in titles)
    fig.clf()
    plain = plots.show_scene(test, tmp_path / "plain.png")
    both = plots.show_scene(test, tmp_path / "pred.png", prediction=sub)
    assert _png_size(both)[1] > 1.8 * _png_size(plain)[1]  # one row per chart instead of one in all


def test_prediction_panels_grey_out_land_and_no_sar_data(files, upload):
    """Predictions on land or outside the swath are not shown as ice: the reference masks them there."""
    sub, _ = upload
    view = plots.load_scene_view(files["test"][0])
    pred = plots.read_prediction_view(sub, view)
    hide = plots.not_sea(view)
    assert hide is not None and view.land is not None
    assert hide.any() and not hide.all()  # swath edges have no SAR data
    pred["SIC"] = np.full_like(pred["SIC"], 9)  # ice everywhere, edges included
    fig = plots.scene_figure(view, pred)
    panel = next(ax for ax in fig.axes if ax.get_title().startswith("SIC prediction"))
    shown = np.asarray(panel.images[0].get_array())
    grey = plots.chart_rgb(np.array([[schema.CHART_FILL]], np.uint8), "SIC")[0, 0]
    np.testing.assert_allclose(shown[hide], np.broadcast_to(grey, shown[hide].shape))
    np.testing.assert_allclose(shown[~hide], np.broadcast_to(plots.chart_rgb(np.array([[9]], np.uint8), "SIC")[0, 0],
                                                             shown[~hide].shape))  # fmt: skip
    # the distance map's zone 0 counts as land
    view.land = np.zeros(view.display_shape, bool)
    view.land[:3, :3] = True
    assert plots.not_sea(view)[:3, :3].all()
    fig.clf()


def test_prediction_of_a_test_scene_without_reference(files, upload, tmp_path):
    sub, _ = upload
    alone = tmp_path / files["test"][0].name
    alone.write_bytes(files["test"][0].read_bytes())  # no _prep_reference.nc beside it
    view = plots.load_scene_view(alone)
    assert view.charts is None
    out = plots.show_scene(alone, tmp_path / "alone.png", prediction=sub)
    assert _png_size(out)[0] > 1000


# ----------------------------------------------------------------------------- bad input
def test_show_bad_input_is_one_line_naming_the_file(files, upload, tmp_path, capsys, monkeypatch):
    sub, _ = upload
    out = tmp_path / "x.png"
    other = write_submission({"20000101T000000_dmi": {"SIC": np.zeros((3, 3), np.uint8)}}, tmp_path / "other.nc")
    code, _, err = _cli(["show", str(files["test"][0]), "--prediction", str(other), "-o", str(out)], capsys,
                        monkeypatch)  # fmt: skip
    key = schema.scene_key(files["test"][0].name)
    assert code == 1 and err.count("\n") == 1
    assert err.startswith(f"autoice: error: {other}: no prediction for scene {key}")
    junk = tmp_path / "20180124T194759_dmi_prep.nc"
    junk.write_text("not netCDF at all")
    code, _, err = _cli(["show", str(junk), "-o", str(out)], capsys, monkeypatch)
    assert code == 1 and err.count("\n") == 1 and f"{junk}: not a readable netCDF-4 file" in err
    code, _, err = _cli(["show", str(files["test"][0]), "--prediction", str(junk), "-o", str(out)], capsys,
                        monkeypatch)  # fmt: skip
    assert code == 1 and err.count("\n") == 1 and f"{junk}: not a readable netCDF-4 file" in err
    assert not out.exists()
    with pytest.raises(SceneError, match="unknown AMSR2 channel"):
        plots.load_scene_view(files["train"], amsr2_channel="btemp_99_9h")


def test_wrong_prediction_shape_is_refused(files, tmp_path):
    key = schema.scene_key(files["test"][0].name)
    bad = write_submission({key: {c: np.zeros((5, 5), np.uint8) for c in schema.CHARTS}}, tmp_path / "bad.nc")
    view = plots.load_scene_view(files["test"][0])
    with pytest.raises(SubmissionError, match=rf"{key}_SIC: shape \(5, 5\)"):
        plots.read_prediction_view(bad, view)
    assert all(v is None for v in plots.read_prediction_view(bad, view, missing_ok=True).values())


def test_show_cli_prints_the_png(files, upload, tmp_path, capsys, monkeypatch):
    out = tmp_path / "cli.png"
    code, stdout, _ = _cli(["show", str(files["reference"][1]), "--prediction", str(upload[0]), "-o", str(out),
                            "--max-size", "60"], capsys, monkeypatch)  # fmt: skip
    assert code == 0 and stdout.strip() == str(out) and _png_size(out)[0] > 1000


def test_comparison_figure_still_works(files, tmp_path):
    key, charts = next(iter(files["charts"].items()))
    out = plots.comparison_figure(charts, charts, tmp_path / "cmp.png", title=key)
    assert _png_size(out)[0] > 1000


# ----------------------------------------------------------------------------- report
def _images(page):
    return [base64.b64decode(b) for b in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)]


def test_report_holds_scores_tables_and_embedded_images(files, upload, tmp_path, capsys, monkeypatch):
    sub, preds = upload
    ref_dir = files["reference"][0].parent
    out = tmp_path / "report.html"
    code, stdout, _ = _cli(["report", "--prediction", str(sub), "--reference", str(ref_dir), "-o", str(out)], capsys,
                           monkeypatch)  # fmt: skip
    assert code == 0 and stdout.strip() == str(out)
    page = out.read_text()
    scored = score_submission(sub, [ref_dir])
    pooled = scored.pooled.result()
    overall = page[page.index('<table class="overall">') :]
    for chart in schema.CHARTS:
        assert f'<td class="l">{chart}</td><td>{pooled.charts[chart]:.3f}</td>' in overall
    assert f'<td class="l">combined</td><td>{pooled.combined:.3f}</td>' in overall
    for key, acc in scored.scenes.items():
        assert f"<td>{acc.result().combined:.3f}</td>" in page and f'id="{key}"' in page
    # per-class F1 against scikit-learn on the pooled valid pixels
    for chart in ("SOD", "FLOE"):
        t = np.concatenate([files["charts"][k][chart].ravel() for k in sorted(preds)])
        p = np.concatenate([preds[k][chart].ravel() for k in sorted(preds)])
        keep = t != schema.CHART_FILL
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            f1 = f1_score(t[keep], p[keep], labels=range(schema.N_CLASSES[chart]), average=None, zero_division=0)
        table = page[page.index(f'id="perclass-{chart}"') :].split("</table>")[0]
        for k in np.unique(t[keep]):
            assert f"<td>{f1[k]:.3f}</td>" in table.split("</tr>")[k + 1]
    images = _images(page)
    # confusion matrices + all scenes on one map + one map per scene
    assert len(images) == len(schema.CHARTS) + 1 + len(scored.scenes)
    overview = page[page.index('id="mosaic"') :].split("</figure>")[0]
    assert f"{len(scored.scenes)} predicted scenes warped by their tie points onto EPSG:3413" in overview
    assert all(png.startswith(b"\x89PNG\r\n\x1a\n") for png in images)
    assert not re.search(r'(src|href)="(https?:|//|file:)', page) and "<script" not in page  # self-contained
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]


def test_report_max_scenes_and_missing_charts(files, upload, tmp_path):
    _, preds = upload
    key = sorted(preds)[0]
    partial = {k: dict(v) for k, v in preds.items()}
    del partial[key]["FLOE"]
    sub = write_submission(partial, tmp_path / "partial.nc")
    out = write_report(sub, [files["reference"][0].parent], tmp_path / "r.html", max_scenes=1)
    page = out.read_text()
    assert len(_images(page)) == len(schema.CHARTS) + 1 + 1
    assert f"{key}_FLOE: missing; its chart scores 0" in page
    overview = page[page.index('id="mosaic"') :].split("</figure>")[0]  # the map leaves the incomplete scene out
    assert f"{len(preds) - 1} predicted scenes" in overview and f"left out (a chart missing or no _prep.nc): {key}" \
        in overview  # fmt: skip
    assert '<td class="l">FLOE</td><td>0.000</td>' in page


def test_report_bad_input_is_one_line_naming_the_file(files, tmp_path, capsys, monkeypatch):
    ref_dir = str(files["reference"][0].parent)
    out = tmp_path / "r.html"
    other = write_submission({"20000101T000000_dmi": {"SIC": np.zeros((3, 3), np.uint8)}}, tmp_path / "other.nc")
    code, _, err = _cli(["report", "--prediction", str(other), "--reference", ref_dir, "-o", str(out)], capsys,
                        monkeypatch)  # fmt: skip
    assert code == 1 and err.count("\n") == 1
    assert err.startswith(f"autoice: error: {other}: holds none of the")
    junk = tmp_path / "upload_package.nc"
    junk.write_bytes(b"\x00" * 100)
    code, _, err = _cli(["report", "--prediction", str(junk), "--reference", ref_dir, "-o", str(out)], capsys,
                        monkeypatch)  # fmt: skip
    assert code == 1 and err.count("\n") == 1 and f"{junk}: not a readable netCDF-4 file" in err
    assert not out.exists()
