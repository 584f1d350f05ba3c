"""Predict: whole scenes -> a valid upload_package.nc; tiling, TTA, ensembles, uncertainty."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr

from autoice import schema
from autoice.cli.main import main
from autoice.config import load_config
from autoice.errors import AutoiceError
from autoice.inference import predict_scene, tiles
from autoice.predict import choose_tile, predict, resolve_checkpoint
from autoice.submission import read_submission, scene_shapes, validate_submission


class PixelModel(torch.nn.Module):
    """No spatial context (1x1 convolutions): tiled and whole-scene outputs must agree exactly."""

    def __init__(self, c_in=3):
        super().__init__()
        torch.manual_seed(0)
        self.heads = torch.nn.ModuleDict({c: torch.nn.Conv2d(c_in, schema.N_CLASSES[c], 1) for c in schema.CHARTS})

    def forward(self, x):
        return {c: h(x) for c, h in self.heads.items()}


def test_tiles_cover_with_overlap():
    for n, t, o in [(10, 4, 1), (100, 32, 8), (31, 64, 8), (64, 64, 8)]:
        spans = tiles(n, t, o)
        covered = np.zeros(n, bool)
        for a, b in spans:
            assert b - a == min(t, n)
            covered[a:b] = True
        assert covered.all()


def test_tiling_and_tta_are_exact_for_a_pixel_model():
    x = np.random.default_rng(0).normal(size=(3, 70, 90)).astype(np.float32)
    model = PixelModel()
    whole = predict_scene(model, x, sic_mode="classification", tile=1024, uncertainty=True)
    tiled = predict_scene(model, x, sic_mode="classification", tile=32, overlap=8, uncertainty=True)
    flipped = predict_scene(model, x, sic_mode="classification", tile=32, overlap=8, tta=True)
    for c in schema.CHARTS:
        np.testing.assert_array_equal(tiled.classes[c], whole.classes[c])
        np.testing.assert_array_equal(flipped.classes[c], whole.classes[c])
        np.testing.assert_allclose(tiled.uncertainty[c], whole.uncertainty[c], atol=1e-5)
        assert whole.classes[c].dtype == np.uint8 and whole.classes[c].shape == (70, 90)
    assert (whole.uncertainty["SOD"] >= 0).all() and whole.uncertainty["SOD"].max() <= np.log(6) + 1e-5


def test_choose_tile_follows_the_budget():
    cfg = load_config("baseline")
    small, big = choose_tile(cfg, (5000, 5200), 0.5e9), choose_tile(cfg, (5000, 5200), 3e9)
    assert small < big and big % 16 == 0 and small >= 16
    assert choose_tile(cfg, (5000, 5200), 3e9, max_tile=512) == 512
    mm = load_config("mmseaice")
    assert choose_tile(mm, (500, 520), 1e9, max_tile=512) == 520  # small scene: one pass, no overlap


def test_predict_writes_a_valid_submission(trained_run, synth_data, tmp_path):
    out = tmp_path / "upload_package.nc"
    result = predict(str(trained_run), synth_data / "test", out, progress=False, uncertainty_dir=tmp_path / "unc")
    shapes = scene_shapes(synth_data / "test")
    assert sorted(result.scenes) == sorted(shapes)
    assert validate_submission(out, shapes) == []
    sub = read_submission(out)
    for key, charts in sub.items():
        for c, a in charts.items():
            assert a.shape == shapes[key] and a.dtype == np.uint8 and a.max() < schema.N_CLASSES[c]
    assert len(result.uncertainty) == len(shapes)
    with xr.open_dataset(result.uncertainty[0]) as ds:
        assert set(ds.data_vars) == set(schema.CHARTS) and ds.attrs["downscale"] == 2


def test_ensemble_and_tta(trained_run, synth_data, tmp_path):
    ckpt = resolve_checkpoint(trained_run)
    out = tmp_path / "ens.nc"
    predict([str(trained_run), str(ckpt)], synth_data / "test", out, tta=True, progress=False)
    assert validate_submission(out, scene_shapes(synth_data / "test")) == []


def test_bad_model_and_data(trained_run, tmp_path, capsys):
    with pytest.raises(AutoiceError, match="not a training workdir"):
        resolve_checkpoint(tmp_path)
    junk = tmp_path / "junk.pt"
    junk.write_text("nope")
    with pytest.raises(SystemExit) as e:
        main(["predict", "--model", str(junk), "--data", str(tmp_path), "-o", str(tmp_path / "x.nc")])
    assert e.value.code == 1
    err = capsys.readouterr().err
    assert "junk.pt: not a readable autoice checkpoint" in err and "Traceback" not in err
    with pytest.raises(SystemExit) as e:
        main(["predict", "--model", str(trained_run), "--data", str(tmp_path), "-o", str(tmp_path / "x.nc")])
    assert "no test scenes" in capsys.readouterr().err
    assert not (tmp_path / "x.nc").exists()


def test_edge_margin_mirrors_context_and_is_exact_for_a_pixel_model():
    from autoice.inference import _tile_inputs

    x = np.random.default_rng(1).normal(size=(3, 23, 31)).astype(np.float32)
    padded = np.pad(x, ((0, 0), (5, 5), (5, 5)), mode="reflect")
    np.testing.assert_array_equal(_tile_inputs(x, 0, 23, 0, 31, 5), padded)
    np.testing.assert_array_equal(_tile_inputs(x, 4, 12, 20, 31, 5), padded[:, 4:22, 20:41])
    model = PixelModel()
    plain = predict_scene(model, x, sic_mode="classification", tile=16, overlap=4)
    margin = predict_scene(model, x, sic_mode="classification", tile=16, overlap=4, margin=8)
    for c in schema.CHARTS:  # a pixel model cannot see the margin: it only moves the crop
        np.testing.assert_array_equal(margin.classes[c], plain.classes[c])


class ContextModel(torch.nn.Module):
    """Output = local mean of channel 0 over a 9 x 9 window with zero padding: sees the array edge."""

    def forward(self, x):
        m = torch.nn.functional.avg_pool2d(x[:, :1], 9, stride=1, padding=4, count_include_pad=True)
        return {c: torch.cat([m * (k + 1) for k in range(schema.N_CLASSES[c])], dim=1) for c in schema.CHARTS}


def test_edge_margin_removes_the_zero_padding_frame():
    x = np.ones((3, 40, 40), np.float32)  # a uniform scene: the true local mean is 1 everywhere
    model = ContextModel()
    plain = predict_scene(model, x, sic_mode="regression", tile=1024)
    margin = predict_scene(model, x, sic_mode="regression", tile=1024, margin=8)
    assert (plain.classes["SIC"][0] != plain.classes["SIC"][20]).any()  # zero padding darkens the edge rows
    assert (margin.classes["SIC"] == margin.classes["SIC"][20, 20]).all()  # mirrored context: no frame


class WaterModel(torch.nn.Module):
    """SOD/FLOE: water with probability p where input channel 0 is 1; SIC regression says 3 everywhere."""

    def __init__(self, p: float):
        super().__init__()
        self.logit = float(np.log(p / (1 - p)))

    def forward(self, x):
        b, _, h, w = x.shape
        out = {"SIC": torch.full((b, 1, h, w), 3.0)}
        for c in ("SOD", "FLOE"):
            t = torch.zeros((b, schema.N_CLASSES[c], h, w))
            t[:, 0] = x[:, 0] * (self.logit + np.log(schema.N_CLASSES[c] - 1))  # p(water) = p where x = 1
            out[c] = t
        return out


def test_water_rule_sets_sic_to_zero_only_where_both_heads_are_confident():
    x = np.zeros((3, 8, 10), np.float32)
    x[0, :, :5] = 1
    sure, unsure = WaterModel(0.9), WaterModel(0.6)
    off = predict_scene(sure, x, sic_mode="regression", tile=1024)
    assert (off.classes["SIC"] == 3).all()
    on = predict_scene(sure, x, sic_mode="regression", tile=1024, water_rule=0.8)
    assert (on.classes["SIC"][:, :5] == 0).all() and (on.classes["SIC"][:, 5:] == 3).all()
    weak = predict_scene(unsure, x, sic_mode="regression", tile=1024, water_rule=0.8)
    assert (weak.classes["SIC"] == 3).all()
    big = np.zeros((3, 40, 50), np.float32)
    big[0, :, :25] = 1
    tiled = predict_scene(sure, big, sic_mode="regression", tile=16, overlap=4, water_rule=0.8)
    assert (tiled.classes["SIC"][:, :25] == 0).all() and (tiled.classes["SIC"][:, 25:] == 3).all()


def test_a_trained_model_has_no_edge_frame_and_no_water_bias(trained_run, synth_data):
    """Issue 9's checks on a small trained model: SIC error near array edges no worse than inside, and
    no more SIC over open water where SOD and FLOE agree on water once the water rule is on. The model
    predicts with its preset's options (the demo's edge margin), as `autoice predict` does."""
    from autoice.data.inputs import scene_inputs, scene_labels
    from autoice.inference import model_options
    from autoice.predict import load_models
    from autoice.scenes import open_scene

    loaded = load_models([str(trained_run / "checkpoints" / "last.pt")], torch.device("cpu"))
    cfg = loaded.config
    edge, inner, wet_off, wet_on = [], [], [], []
    for f in sorted((synth_data / "train").glob("*_prep.nc")):
        with open_scene(f, check_values=False) as ds:
            x = scene_inputs(ds, cfg.data.inputs, cfg.data.downscale)
            y = scene_labels(ds, cfg.data.downscale)
        opts = model_options(cfg)
        assert opts["margin"] == 16 and opts["water_rule"] == 0  # the demo preset's
        off = predict_scene(loaded.networks, x, **opts)
        on = predict_scene(loaded.networks, x, **{**opts, "water_rule": 0.5})
        h, w = y.shape[1:]
        yy, xx = np.mgrid[0:h, 0:w]
        near = np.minimum(np.minimum(yy, h - 1 - yy), np.minimum(xx, w - 1 - xx)) < 4
        valid = y[0] != schema.CHART_FILL
        err = np.abs(off.classes["SIC"].astype(int) - y[0].astype(int))
        edge.append(err[valid & near])
        inner.append(err[valid & ~near])
        water = (on.classes["SOD"] == 0) & (on.classes["FLOE"] == 0)
        wet_off.append(off.classes["SIC"][water])
        wet_on.append(on.classes["SIC"][water])
    edge, inner = np.concatenate(edge), np.concatenate(inner)
    assert edge.size and inner.size
    assert edge.mean() <= inner.mean() + 0.5  # a frame of 1-2 classes would add ~1.5
    wet_on = np.concatenate(wet_on)
    assert wet_on.size == 0 or wet_on.mean() <= np.concatenate(wet_off).mean()


def test_predict_downscales_as_the_model_was_trained(trained_run, synth_data, tmp_path):
    """A checkpoint trained on block-mean inputs (``data.downscale_mode: mean``) is fed block-mean inputs."""
    import torch

    state = torch.load(resolve_checkpoint(trained_run), map_location="cpu", weights_only=False)
    state["config"]["data"]["downscale_mode"] = "mean"
    mean_ckpt = tmp_path / "mean.pt"
    torch.save(state, mean_ckpt)
    maps = {}
    for name, ckpt in (("nearest", resolve_checkpoint(trained_run)), ("mean", mean_ckpt)):
        result = predict(str(ckpt), synth_data / "test", tmp_path / f"{name}.nc", progress=False,
                         uncertainty_dir=tmp_path / name)  # fmt: skip
        maps[name] = []
        for path in sorted(result.uncertainty):
            with xr.open_dataset(path) as ds:
                maps[name].append(ds["SOD"].values.copy())
    # the tiny model's classes may not move, its probabilities do: the inputs differ
    assert any(not np.allclose(a, b, equal_nan=True) for a, b in zip(maps["nearest"], maps["mean"], strict=True))
