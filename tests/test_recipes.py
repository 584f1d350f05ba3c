"""The baseline and mmseaice presets follow the published recipes: one test per row of docs/recipes.md.

Each test draws from a fixed seed on small tensors, so it is fast and repeatable, and each states
the source behaviour it pins (starter kit: astokholm/AI4ArcticSeaIceChallenge; winner:
echonax07/MMSeaIce).
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F  # noqa: N812

from autoice import schema
from autoice.config import AugmentConfig, load_config
from autoice.data.cache import CachedScene
from autoice.data.loader import PatchDataset, starter_cells
from autoice.data.transforms import _resample, augment_batch, cutmix_batch, rotation_angles, scale_factors
from autoice.inference import predict_scene
from autoice.models.losses import to_classes
from autoice.models.unet import MultiTaskUNet
from autoice.splits import validation_split

MM = load_config("mmseaice").augment


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ----------------------------------------------------------------------------- rotation
def test_rotation_angles_are_integers_in_source_range_with_p_half():
    n = 36_000
    a = rotation_angles(n, MM, _gen(1))
    assert torch.equal(a, a.round())
    assert int(a.min()) == -90 and int(a.max()) == 89  # numpy randint(-90, 90): 90 excluded
    # P(angle != 0) = 0.5 * 179 / 180; a binomial with sd ~ 0.0026
    assert abs(float((a != 0).float().mean()) - 0.5 * 179 / 180) < 0.012
    counts = torch.bincount((a[a != 0] + 90).long(), minlength=180).float()
    counts[90] = counts.sum() / 179  # angle 0 is mixed with "not rotated"; fill in for the test
    expected = counts.sum() / 180
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 260  # 179 dof: mean 179, sd ~ 19


def test_rotation_off_in_baseline_and_quarter_turns_gone_from_mmseaice():
    assert load_config("baseline").augment.rotation == 0
    assert MM.rotation == 90 and not MM.rot90


def _rotate_by_hand(img: np.ndarray, angle: float, fill: float) -> np.ndarray:
    """Clockwise rotation about the centre, nearest neighbour, from pixel geometry (the oracle)."""
    p = img.shape[-1]
    c = (p - 1) / 2
    t = math.radians(angle)
    out = np.full_like(img, fill)
    for i in range(p):
        for j in range(p):
            dx, dy = j - c, i - c  # output offset (x right, y down); invert a clockwise turn
            sx = math.cos(t) * dx + math.sin(t) * dy + c
            sy = -math.sin(t) * dx + math.cos(t) * dy + c
            si, sj = round(sy), round(sx)
            if 0 <= si < p and 0 <= sj < p:
                out[i, j] = img[si, sj]
    return out


@pytest.mark.parametrize("angle", [90.0, -90.0, 37.0, -64.0])
def test_rotation_is_nearest_clockwise_with_source_fills(angle):
    p = 16
    x = torch.arange(1, p * p + 1, dtype=torch.float32).view(1, 1, p, p)
    y = (torch.arange(p * p) % 7).view(1, 1, p, p)
    off = torch.zeros(1, dtype=torch.bool)
    xs, ys = _resample(x, y, off, off, torch.zeros(1, dtype=torch.long), torch.ones(1), torch.tensor([angle]),
                       "nearest")  # fmt: skip
    if abs(angle) == 90:  # clockwise for positive angles: torch.rot90 with k = -1
        assert torch.equal(xs[0, 0], torch.rot90(x[0, 0], -1 if angle > 0 else 1))
    oracle = _rotate_by_hand(x[0, 0].numpy(), angle, 0.0)
    assert (xs[0, 0].numpy() == oracle).mean() > 0.97  # rounding ties on a few pixels
    assert set(xs.unique().tolist()) <= set(x.unique().tolist()) | {0.0}  # nearest: no new values
    assert set(ys.unique().tolist()) <= set(range(7)) | {schema.CHART_FILL}
    assert torch.equal(xs[0, 0] == 0, ys[0, 0] == schema.CHART_FILL)  # fills 0 / 255 where uncovered
    if abs(angle) not in (90.0,):
        assert (ys == schema.CHART_FILL).any()


# ----------------------------------------------------------------------------- scale
def test_scale_p_half_else_upper_bound():
    n = 20_000
    u = torch.rand(n, generator=_gen(2))
    s = scale_factors(n, MM, u, _gen(3))
    fixed = s == 1.1
    assert abs(float(fixed.float().mean()) - 0.5) < 0.02
    drawn = s[~fixed]
    assert float(drawn.min()) >= 0.9 and float(drawn.max()) < 1.1
    assert abs(float(drawn.mean()) - 1.0) < 0.005  # U[0.9, 1.1]
    ours = scale_factors(n, AugmentConfig(scale=[0.9, 1.1]), u, _gen(3))
    assert not (ours == 1.1).any()  # demo / autoice: every sample draws


def test_mmseaice_resamples_every_patch_by_nearest():
    p = 32
    x = torch.arange(4 * p * p, dtype=torch.float32).view(4, 1, p, p) + 1
    y = (torch.arange(4 * p * p) % 5).view(4, 1, p, p)
    aug = AugmentConfig(scale=[0.9, 1.1], scale_prob=0.0, resample="nearest")  # always the 1.1 fallback
    xa, ya = augment_batch(x, y, aug, _gen(0))
    for i in range(4):
        assert not torch.equal(xa[i], x[i])  # zoomed in by 1.1
        assert set(xa[i].unique().tolist()) <= set(x[i].unique().tolist())  # nearest, no blending
    assert not (ya == schema.CHART_FILL).any()  # zoom in: nothing uncovered
    bilinear, _ = augment_batch(x, y, AugmentConfig(scale=[0.9, 1.1], scale_prob=0.0), _gen(0))
    assert not set(bilinear[0].unique().tolist()) <= set(x[0].unique().tolist())


# ----------------------------------------------------------------------------- CutMix
def _ids(b: int = 8, p: int = 24) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.arange(b, dtype=torch.float32).view(b, 1, 1, 1).repeat(1, 2, p, p)
    y = torch.arange(b).view(b, 1, 1, 1).repeat(1, 3, p, p)
    return x, y


def test_cutmix_one_box_per_batch_permutation_partners_p_half():
    applied, self_pairs, areas = 0, 0, []
    for seed in range(400):
        x, y = _ids()
        out = cutmix_batch(x, y, 0.5, _gen(seed))
        if out is None:
            assert torch.equal(x, _ids()[0])
            continue
        applied += 1
        perm, (r0, r1, c0, c1) = out
        assert sorted(perm.tolist()) == list(range(8))
        self_pairs += int((perm == torch.arange(8)).sum())
        areas.append((r1 - r0) * (c1 - c0) / 24**2)
        for i in range(8):
            inside = torch.zeros(24, 24, dtype=torch.bool)
            inside[r0:r1, c0:c1] = True
            assert (x[i, :, inside] == perm[i]).all() and (y[i, :, inside] == perm[i]).all()
            assert (x[i, :, ~inside] == i).all() and (y[i, :, ~inside] == i).all()
    assert 170 < applied < 230  # p = 0.5 over 400 batches
    assert self_pairs > 0  # a permutation, not a derangement
    assert 0.2 < float(np.mean(areas)) < 0.45  # box share ~ (1 - lambda), lambda ~ U(0, 1), clipped


def test_cutmix_batch_mode_through_augment_batch_shares_the_box():
    x, y = _ids()
    aug = AugmentConfig(cutmix=1.0, cutmix_mode="batch")
    xa, ya = augment_batch(x, y, aug, _gen(5))
    foreign = [(ya[i, 0] != i) for i in range(8)]
    boxes = {(int(m.any(1).nonzero().min()), int(m.any(1).nonzero().max()), int(m.any(0).nonzero().min()),
              int(m.any(0).nonzero().max())) for m in foreign if m.any()}  # fmt: skip
    assert len(boxes) == 1  # the same rectangle in every sample that got a foreign patch
    assert torch.equal(xa[:, 0], ya[:, 0].float())
    xs, ys = augment_batch(x, y, AugmentConfig(cutmix=1.0), _gen(5))  # ours: a box per sample
    per_sample = {tuple((ys[i, 0] != i).nonzero().min(0).values.tolist()) for i in range(8)}
    assert len(per_sample) > 1


# ----------------------------------------------------------------------------- sampling
def _scene(h: int, w: int, ident: int, valid: np.ndarray | None = None, d: int = 1,
           channels: tuple[str, ...] = ("nersc_sar_primary", "sar_incidenceangle")) -> CachedScene:  # fmt: skip
    """In-memory cached scene: channel 0 = row * 1000 + col, channel 1 = scene id (or a 2 km cell index)."""
    rows, cols = np.mgrid[0:h, 0:w]
    inputs = np.stack([rows * 1000 + cols, np.full((h, w), ident)]).astype(np.float32)
    labels = np.zeros((3, h, w), dtype=np.uint8)
    if valid is not None:
        labels[:, ~valid] = schema.CHART_FILL
    return CachedScene(key=f"s{ident}", path=Path(f"s{ident}.nc"), inputs=inputs, labels=labels,
                       valid=int((labels != 255).any(0).sum()), full_shape=(h * d, w * d), channels=channels,
                       downscale=d)  # fmt: skip


def _corners(ds: PatchDataset, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        x, y = ds.sample(rng)
        v = int(x[0, 0, 0])
        out.append((int(x[1, 0, 0]), v // 1000, v % 1000, int((y[0] != schema.CHART_FILL).sum())))
    return np.array(out)


def test_uniform_sampling_scene_and_corner_distribution():
    p = 16
    scenes = [_scene(40, 50, 0), _scene(30, 90, 1), _scene(56, 20, 2)]
    got = _corners(PatchDataset(scenes, p, seed=0, sampling="uniform"), 6000)
    share = np.bincount(got[:, 0], minlength=3) / len(got)
    assert np.abs(share - 1 / 3).max() < 0.025  # uniform over scenes, not weighted by area (0.24/0.33/0.20 ...)
    for s, (h, w) in enumerate([(40, 50), (30, 90), (56, 20)]):
        tops, lefts = got[got[:, 0] == s, 1], got[got[:, 0] == s, 2]
        assert tops.min() == 0 and tops.max() == h - p - 1  # numpy's exclusive bound: h - p never drawn
        assert lefts.min() == 0 and lefts.max() == w - p - 1
        assert abs(tops.mean() - (h - p - 1) / 2) < 1.0 and abs(lefts.mean() - (w - p - 1) / 2) < 1.5


def test_uniform_sampling_redraws_windows_with_at_most_one_valid_sic_pixel():
    p, h, w = 16, 48, 48
    sparse = np.zeros((h, w), dtype=bool)
    sparse[:10, :10] = True  # only the top-left corner is labelled
    scenes = [_scene(h, w, 0), _scene(h, w, 1, sparse)]
    got = _corners(PatchDataset(scenes, p, seed=1, sampling="uniform"), 4000)
    assert (got[:, 3] > 1).all()
    # exact acceptance of the sparse scene: corners (t, l) in [0, 32)^2 whose window holds >= 2 valid pixels
    t = np.arange(h - p)
    rows = np.clip(10 - t, 0, p)
    accept = float(((rows[:, None] * rows[None, :]) >= 2).mean())
    expected = accept / (1 + accept)  # scene drawn uniformly, then accepted
    sd = math.sqrt(expected * (1 - expected) / len(got))
    assert abs((got[:, 0] == 1).mean() - expected) < 4 * sd


def test_uniform_windows_rarely_touch_edges_centred_ones_often():
    p = 32
    scenes = [_scene(128, 128, 0)]
    uni = _corners(PatchDataset(scenes, p, seed=2, sampling="uniform"), 3000)
    cen = _corners(PatchDataset(scenes, p, seed=2), 3000)
    touch = lambda c: float((c[:, 1] == 0).mean())  # noqa: E731
    assert touch(uni) < 0.03  # 1 / 96
    assert touch(cen) > 0.1  # the window is clipped at the edge for every valid pixel near it


def test_mixed_downscaling_gives_every_factor_the_same_share_of_patches():
    """A scene cached at x1 (100 x 100) and x2 (50 x 50): half the patches from each copy, either placement
    (by area alone the x1 copy would get 80 % under valid_centred)."""
    scenes = [_scene(100, 100, 1, d=1), _scene(50, 50, 2, d=2)]
    for sampling in ("valid_centred", "uniform"):
        share = (_corners(PatchDataset(scenes, 8, seed=0, sampling=sampling), 2000)[:, 0] == 2).mean()
        assert share == pytest.approx(0.5, abs=0.04), sampling
    single = PatchDataset([_scene(100, 100, 1), _scene(50, 50, 2)], 8, seed=0)  # one factor: by valid area
    assert single.weights == pytest.approx([0.8, 0.2])


def _rare_scene(ident: int) -> CachedScene:
    """100 x 100 scene: SOD 4 and FLOE 5 everywhere but a 3 x 3 block of SOD 2 and one of FLOE 1; SOD masked
    in the top rows (a masked chart is never a class to balance)."""
    scene = _scene(100, 100, ident)
    scene.labels[1] = 4
    scene.labels[1, 50:53, 50:53] = 2
    scene.labels[1, :5] = schema.CHART_FILL
    scene.labels[2] = 5
    scene.labels[2, 10:13, 80:83] = 1
    return scene


def _holds(ds: PatchDataset, n: int) -> np.ndarray:
    """Per patch: holds SOD 2, holds FLOE 1 (the two rare blocks)."""
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        _, y = ds.sample(rng)
        out.append(((y[1] == 2).any().item(), (y[2] == 1).any().item()))
    return np.array(out)


def test_class_balanced_sampling_draws_rare_classes_as_often_as_common_ones():
    scenes = [_rare_scene(0)]
    off = _holds(PatchDataset(scenes, 8, seed=0), 2000).mean(0)
    assert (off < 0.03).all()  # about (8 + 2)^2 / 10^4 each with valid_centred placement
    full = _holds(PatchDataset(scenes, 8, seed=0, class_balanced=1.0), 4000).mean(0)
    # chart 1/2, then one of the chart's two classes 1/2: a quarter of the patches hold each rare block
    assert full == pytest.approx([0.25, 0.25], abs=0.035)
    half = _holds(PatchDataset(scenes, 8, seed=0, class_balanced=0.5, sampling="uniform"), 4000).mean(0)
    assert half == pytest.approx([0.125, 0.125], abs=0.03)


def test_class_balanced_index_is_seeded_and_bounded(monkeypatch):
    monkeypatch.setattr("autoice.data.loader.CLASS_INDEX_PER_SCENE", 50)
    a = PatchDataset([_rare_scene(0), _rare_scene(1)], 8, seed=3, class_balanced=1.0)
    b = PatchDataset([_rare_scene(0), _rare_scene(1)], 8, seed=3, class_balanced=1.0)
    sod, floe = a._class_index
    assert [len(c) for c in sod] == [2 * 9, 2 * 50] and [len(c) for c in floe] == [2 * 9, 2 * 50]
    for u, v in zip(sod + floe, b._class_index[0] + b._class_index[1], strict=True):
        assert np.array_equal(u, v)
    rows = sod[1][:, 1]  # SOD 4 pixels: never in the masked top rows
    assert rows.min() >= 5
    with pytest.raises(ValueError, match="class_balanced"):
        PatchDataset([_rare_scene(0)], 8, seed=0, class_balanced=1.5)


# ----------------------------------------------------------------------------- 2 km registration
def _source_crop_cells(corner: int, patch: int, d: int, n_cells: int) -> np.ndarray:
    """The starter kit's crop re-expressed with torch: cells from floor(corner / delta), nearest-stretched."""
    delta = schema.CELL_RTT / d
    first = int(corner / delta)
    n = int(np.ceil(patch / delta))
    cells = torch.arange(first, first + n, dtype=torch.float32).clamp(max=n_cells - 1)[None, None, :, None]
    return F.interpolate(cells, size=(patch, 1), mode="nearest")[0, 0, :, 0].long().numpy()


@pytest.mark.parametrize(("d", "patch"), [(1, 256), (10, 256), (5, 64)])
def test_starter_cells_match_the_source_and_stay_within_one_cell(d, patch):
    worst, off = 0, 0
    for corner in range(0, 600, 7):
        cells = starter_cells(corner, patch, d)
        assert np.array_equal(cells, _source_crop_cells(corner, patch, d, 10**6))
        true = (corner + np.arange(patch)) * d // schema.CELL_RTT
        worst = max(worst, int(np.abs(cells - true).max()))
        off += int((cells != true).sum())
    assert worst == 1 and off > 0  # out of register, by at most one cell


def test_loader_gives_starter_or_exact_2km_cells():
    d, p, h, w = 10, 64, 90, 100
    scene = _scene(h, w, 0, d=d, channels=("nersc_sar_primary", "btemp_18_7h"))
    rows, cols = np.arange(h) * d // schema.CELL_RTT, np.arange(w) * d // schema.CELL_RTT
    scene.inputs[1] = 1000 * rows[:, None] + cols[None, :]  # the cache: 2 km cells in register
    for mode in ("exact", "starter"):
        ds = PatchDataset([scene], p, seed=0, sampling="uniform", coarse_registration=mode)
        rng = np.random.default_rng(0)
        for _ in range(30):
            x, _ = ds.sample(rng)
            top, left = int(x[0, 0, 0]) // 1000, int(x[0, 0, 0]) % 1000
            if mode == "exact":
                r, c = rows[top : top + p], cols[left : left + p]
            else:
                r, c = starter_cells(top, p, d), starter_cells(left, p, d)
            assert np.array_equal(x[1].numpy(), 1000 * r[:, None] + c[None, :])
            assert x[0, 0, 1] == x[0, 0, 0] + 1  # the full-grid channel is untouched


# ----------------------------------------------------------------------------- validation
def _files(keys: list[str]) -> list[Path]:
    return [Path(f"/data/{k}_prep.nc") for k in keys]


#: What the starter notebook's np.random.seed(0); np.random.choice(train_list, 10, replace=False) picks.
STARTER_TEN = sorted(["20200312T102427_dmi", "20190812T131548_cis", "20200830T113911_cis", "20181118T120459_cis",
                      "20211017T194742_dmi", "20180914T115342_cis", "20210614T212049_dmi", "20200807T104219_cis",
                      "20190704T205616_dmi", "20210415T211945_dmi"])  # fmt: skip


def test_official_valset2_used_when_present_and_fallback_says_why():
    official = list(schema.official_scenes()["valset2"])
    assert len(official) == 17 and "20210321T194818_dmi" in official
    others = ["20190101T000000_cis", "20190102T000000_dmi", "20190103T000000_cis"]
    train, val, msg = validation_split(_files(others + official), "official", val_fraction=0.1, seed=0)
    assert [f.name[:19] for f in val] == sorted(official) and [f.name[:19] for f in train] == others
    assert "official 17 scenes" in msg
    train, val, msg = validation_split(_files(others + official[:16]), "official", val_fraction=0.1, seed=0)
    assert "only 16 of" in msg and "seeded hold-out" in msg and len(val) == 2


def test_starter_split_reproduces_the_notebook_draw():
    keys = list(schema.official_scenes()["dataset"])
    assert len(keys) == 512
    files = _files(sorted(keys))  # the order of the files does not matter, the official order does
    train, val, msg = validation_split(files, "starter", val_fraction=0.1, seed=0)
    assert sorted(f.name[:19] for f in val) == STARTER_TEN and len(train) == 502
    assert "starter kit's 10 scenes" in msg
    _, val, msg = validation_split(files[:8], "starter", val_fraction=0.25, seed=0)
    assert len(val) == 2 and "needs more than 10" in msg


@pytest.mark.slow
def test_training_uses_the_official_list_when_present(synth_data, tmp_path, capsys):
    from autoice.train import train

    data = tmp_path / "data"
    data.mkdir()
    sources = sorted((synth_data / "train").glob("*_prep.nc"))
    keys = list(schema.official_scenes()["valset2"]) + ["20190101T000000_cis", "20190102T000000_dmi"]
    for i, key in enumerate(keys):
        shutil.copy(sources[i % len(sources)], data / f"{key}_prep.nc")
    cfg = load_config("mmseaice", overrides=["train.epochs=1", "train.batches_per_epoch=1", "train.batch_size=2",
                                             "data.patch_size=32", "model.filters=[8, 8]", "data.downscale=2",
                                             "train.scheduler=none"])  # fmt: skip
    result = train(cfg, data, tmp_path / "run", progress=False)
    assert "official 17 scenes" in capsys.readouterr().err
    assert "val_combined" in result.history[-1]


# ----------------------------------------------------------------------------- inference
def test_whole_scene_inference_is_one_forward_pass():
    torch.manual_seed(0)
    model = MultiTaskUNet(3, [4, 8, 8]).eval()
    inputs = np.random.default_rng(0).normal(size=(3, 72, 88)).astype(np.float32)
    with torch.no_grad():
        ref = to_classes(model(torch.from_numpy(inputs)[None]), sic_mode="classification")
    whole = predict_scene(model, inputs, sic_mode="classification", tile=None).classes
    for chart in schema.CHARTS:
        assert np.array_equal(whole[chart], ref[chart][0].numpy())
    tiled = predict_scene(model, inputs, sic_mode="classification", tile=32, overlap=8).classes
    assert any(not np.array_equal(tiled[c], whole[c]) for c in schema.CHARTS)  # tiles < receptive field
    assert load_config("baseline").train.whole_scene and load_config("mmseaice").train.whole_scene
