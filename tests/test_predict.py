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
