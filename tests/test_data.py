"""Model inputs, the patch cache, the loader and batch augmentation, on tiny hand-built RTT scenes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr

from autoice import schema
from autoice.config import AugmentConfig, DataConfig
from autoice.data.cache import build_cache, fingerprint
from autoice.data.inputs import downscaled_shape, scene_inputs, scene_labels, upsample_to
from autoice.data.loader import PatchDataset, make_loader
from autoice.data.transforms import augment_batch
from autoice.errors import ConfigError, SceneError, ScenesFailed
from autoice.scenes import open_scene, write_netcdf

DERIVED = ["latitude", "longitude", "month"]


def tie_axes(lines, samples):
    """Tie-point positions (80 m pixels) as the format assumes them: evenly spaced, first to last."""
    n = schema.TIEPOINT_GRID
    return np.linspace(0, lines - 1, n), np.linspace(0, samples - 1, n)


def make_scene(folder, lines=130, samples=110, *, start="20180324T101010", service="dmi", seed=0,
               charts=True, coarse_short=False, valid_box=None, lat=None, lon=None):  # fmt: skip
    """Write an RTT scene in the exact layout: full-grid pattern = pixel index, coarse value = cell index."""
    rng = np.random.default_rng(seed)
    cl, cs = -(-lines // schema.CELL_RTT), -(-samples // schema.CELL_RTT)
    if coarse_short:  # one cell short on each axis: the last pixels take the last cell
        cl, cs = cl - 1, cs - 1
    pix = np.arange(lines * samples, dtype=np.float32).reshape(lines, samples)
    cells = (1000 * np.arange(cl)[:, None] + np.arange(cs)[None, :]).astype(np.float32)
    data = {}
    for k, name in enumerate(schema.FULL_GRID_INPUTS):
        data[name] = (schema.FULL_DIMS, pix + k * 0.25)
    for k, name in enumerate(schema.COARSE_VARIABLES):
        data[name] = (schema.COARSE_DIMS, cells + 1e5 * k)
    tl, ts = np.meshgrid(np.arange(21.0), np.arange(21.0), indexing="ij")
    data[schema.TIEPOINT_LATITUDE] = (schema.TIEPOINT_DIMS, lat if lat is not None else 60 + 0.1 * tl + 0.01 * ts)
    data[schema.TIEPOINT_LONGITUDE] = (schema.TIEPOINT_DIMS, lon if lon is not None else -40 + 0.2 * ts)
    if charts:
        for chart in schema.CHARTS:
            c = rng.integers(0, schema.N_CLASSES[chart], (lines, samples)).astype(np.uint8)
            if valid_box is not None:
                keep = np.zeros_like(c, dtype=bool)
                keep[valid_box] = True
                c[~keep] = schema.CHART_FILL
            else:
                c[:, :3] = schema.CHART_FILL  # a masked border
            data[chart] = (schema.FULL_DIMS, c)
    key = f"{start}_{service}"
    ds = xr.Dataset(data, attrs={"scene_id": key, "original_id": "x.nc", "ice_service": service, "flip": 0,
                                 "pixel_spacing": schema.RTT_PIXEL_SPACING})  # fmt: skip
    path = folder / f"{key}_prep.nc"
    write_netcdf(ds, path, complevel=1)
    return path


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    return make_scene(tmp_path_factory.mktemp("scene"))


# ----------------------------------------------------------------------------- inputs
@pytest.mark.parametrize("coarse_short", [False, True])
@pytest.mark.parametrize("d", [1, 5, 10])
def test_coarse_variables_in_register(tmp_path, d, coarse_short):
    path = make_scene(tmp_path, coarse_short=coarse_short)
    with open_scene(path) as ds:
        x = scene_inputs(ds, ["btemp_18_7h", "tclw"], d)
        cl, cs = ds.sizes[schema.COARSE_DIMS[0]], ds.sizes[schema.COARSE_DIMS[1]]
    # independent formulation: each cell repeated 25 times (the last one extended), then every d-th pixel
    rows = np.repeat(np.arange(cl), schema.CELL_RTT)
    rows = np.concatenate([rows, np.full(200, cl - 1)])[:130:d]
    cols = np.repeat(np.arange(cs), schema.CELL_RTT)
    cols = np.concatenate([cols, np.full(200, cs - 1)])[:110:d]
    expected = 1000 * rows[:, None] + cols[None, :]
    assert x.shape == (2, *downscaled_shape((130, 110), d)) == (2, len(rows), len(cols))
    k = schema.COARSE_VARIABLES.index("btemp_18_7h")
    np.testing.assert_array_equal(x[0], expected + 1e5 * k)
    np.testing.assert_array_equal(x[1], expected + 1e5 * schema.COARSE_VARIABLES.index("tclw"))
    if d == 1:  # the cell boundary sits exactly between pixels 24 and 25
        assert x[0, 24, 0] == x[0, 0, 0] and x[0, 25, 0] == x[0, 0, 0] + 1000


@pytest.mark.parametrize("d", [1, 3, 10])
def test_full_grid_inputs_nearest(scene, d):
    with open_scene(scene) as ds:
        x = scene_inputs(ds, list(schema.FULL_GRID_INPUTS), d)
    pix = np.arange(130 * 110, dtype=np.float32).reshape(130, 110)
    for k in range(len(schema.FULL_GRID_INPUTS)):
        np.testing.assert_array_equal(x[k], pix[::d, ::d] + k * 0.25)


@pytest.mark.parametrize("d", [3, 10])
def test_full_grid_inputs_block_mean(scene, d):
    """``downscale_mode: mean`` averages each d x d block over its pixels with data (0 in SAR = no data)."""
    with open_scene(scene) as ds:
        x = scene_inputs(ds, list(schema.FULL_GRID_INPUTS), d, mode="mean")
        coarse = scene_inputs(ds, ["btemp_18_7h", "month"], d, mode="mean")
        np.testing.assert_array_equal(coarse, scene_inputs(ds, ["btemp_18_7h", "month"], d))  # full grid only
    pix = np.arange(130 * 110, dtype=np.float64).reshape(130, 110)
    h, w = downscaled_shape((130, 110), d)
    assert x.shape == (len(schema.FULL_GRID_INPUTS), h, w)
    for k, name in enumerate(schema.FULL_GRID_INPUTS):
        for i, j in ((0, 0), (1, 2), (h - 1, w - 1)):  # the last blocks are partial
            block = pix[i * d : (i + 1) * d, j * d : (j + 1) * d] + k * 0.25
            if name != schema.DISTANCE_VARIABLE:
                block = block[block != schema.INPUT_FILL]  # SAR primary (0, 0) is no data: not averaged in
            assert x[k, i, j] == pytest.approx(block.mean(), rel=1e-6), (name, i, j)
    assert x[0, 0, 0] != pytest.approx(pix[:d, :d].mean())
    with pytest.raises(ConfigError, match="downscale_mode"), open_scene(scene) as ds:
        scene_inputs(ds, ["nersc_sar_primary"], d, mode="median")


@pytest.mark.parametrize("d", [3, 10])
def test_sar_texture_is_the_block_spread_of_the_80m_pixels(scene, d):
    """``sar_*_std`` = population std of the SAR pixels with data in each d x d block; the same in either mode."""
    with open_scene(scene) as ds:
        ds = ds.load()
    ds["nersc_sar_secondary"].values[:d, :d] = schema.INPUT_FILL  # a block without data: 0, not NaN
    ds["nersc_sar_secondary"].values[d, 1] = np.nan  # a decoded _FillValue: left out of its block
    x = scene_inputs(ds, ["sar_primary_std", "sar_secondary_std"], d)
    np.testing.assert_array_equal(x, scene_inputs(ds, ["sar_primary_std", "sar_secondary_std"], d, mode="mean"))
    h, w = downscaled_shape((130, 110), d)
    assert x.shape == (2, h, w) and np.isfinite(x).all()
    for k, var in enumerate(schema.SAR_VARIABLES):
        full = ds[var].values.astype(np.float64)
        for i, j in ((0, 0), (1, 0), (1, 2), (h - 1, w - 1)):  # the last blocks are partial
            block = full[i * d : (i + 1) * d, j * d : (j + 1) * d]
            block = block[np.isfinite(block) & (block != schema.INPUT_FILL)]
            expected = block.std() if block.size else 0.0
            assert x[k, i, j] == pytest.approx(expected, rel=1e-5, abs=1e-6), (var, i, j)
    assert x[1, 0, 0] == 0.0 and x[0, 0, 0] > 0  # (0, 0) of the primary is its only no-data pixel
    with pytest.raises(ConfigError, match="sar_primary_std"):
        scene_inputs(ds, ["sar_primary_std"], 1)


def test_texture_inputs_need_downscaling():
    from autoice.config import Config, validate_config

    cfg = Config()
    cfg.data.inputs = [*cfg.data.inputs, "sar_primary_std"]
    cfg.data.downscale = 5
    validate_config(cfg)
    cfg.data.train_downscales = [1, 5]
    with pytest.raises(ConfigError, match="sar_primary_std need data.downscale"):
        validate_config(cfg)


def test_decoded_fill_values_become_input_fill(scene):
    with open_scene(scene) as ds:
        ds = ds.load()
    ds["nersc_sar_secondary"].values[5, 7] = np.nan  # what xarray makes of a _FillValue
    x = scene_inputs(ds, ["nersc_sar_secondary"], 1)
    assert x[0, 5, 7] == schema.INPUT_FILL and np.isnan(ds["nersc_sar_secondary"].values[5, 7])
    assert x[0, 5, 8] == 5 * 110 + 8 + 0.25


def test_latlon_at_tie_points_and_between(tmp_path):
    lines, samples = 101, 121  # tie points fall on pixels 0, 5, ..., 100 and 0, 6, ..., 120
    rng = np.random.default_rng(3)
    lat = rng.uniform(60, 80, (21, 21))
    path = make_scene(tmp_path, lines, samples, lat=lat)
    with open_scene(path) as ds:
        x = scene_inputs(ds, ["latitude", "longitude"], 1)
    (mu, sd) = schema.LATLON_MEANSTD["latitude"]
    np.testing.assert_allclose(x[0][::5, ::6] * sd + mu, lat, atol=1e-4)
    # between tie points: bilinear reproduces a + b*u + c*v + e*u*v exactly
    tl, ts = np.meshgrid(np.arange(21.0), np.arange(21.0), indexing="ij")
    smooth = 70 + 0.3 * tl - 0.2 * ts + 0.01 * tl * ts
    (tmp_path / "b").mkdir()
    path = make_scene(tmp_path / "b", 130, 110, lat=smooth)
    with open_scene(path) as ds:
        x = scene_inputs(ds, ["latitude"], 3)
    u = np.arange(0, 130, 3) * 20 / 129
    v = np.arange(0, 110, 3) * 20 / 109
    expected = 70 + 0.3 * u[:, None] - 0.2 * v[None, :] + 0.01 * u[:, None] * v[None, :]
    np.testing.assert_allclose(x[0] * sd + mu, expected, atol=1e-4)


def test_longitude_across_the_antimeridian(tmp_path):
    tl, ts = np.meshgrid(np.arange(21.0), np.arange(21.0), indexing="ij")
    lon = (179.0 + 0.2 * ts + 180) % 360 - 180  # 179 .. 183 wrapped to -177
    path = make_scene(tmp_path, 101, 121, lon=lon)
    with open_scene(path) as ds:
        x = scene_inputs(ds, ["longitude"], 1)
    mu, sd = schema.LATLON_MEANSTD["longitude"]
    got = x[0] * sd + mu
    v = np.arange(121) * 20 / 120
    expected = (179.0 + 0.2 * v + 180) % 360 - 180
    np.testing.assert_allclose(got, np.broadcast_to(expected, (101, 121)), atol=1e-3)
    assert np.abs(got).max() <= 180.001  # never the mean of 179 and -179 (= 0)


@pytest.mark.parametrize(("start", "value"), [("20180124T101010", -1.0), ("20190324T000000", 2 * 2 / 11 - 1),
                                              ("20201231T235959", 1.0)])  # fmt: skip
def test_month_encoding(tmp_path, start, value):
    path = make_scene(tmp_path, 40, 30, start=start)
    with open_scene(path) as ds:
        x = scene_inputs(ds, ["month"], 4)
    assert x.shape == (1, 10, 8)
    np.testing.assert_allclose(x, value, atol=1e-6)


def test_month_from_attrs_when_name_has_none(scene):
    with open_scene(scene) as ds:
        ds = ds.load()
    ds.encoding.pop("source", None)
    assert scene_inputs(ds, ["month"], 10)[0, 0, 0] == pytest.approx(2 * 2 / 11 - 1)
    ds.attrs.update(scene_id="?", original_id="?")
    with pytest.raises(SceneError, match="acquisition month"):
        scene_inputs(ds, ["month"], 10)


@pytest.mark.parametrize("d", [1, 4, 10])
def test_labels_downscaled_and_upsampled_back(scene, d):
    with open_scene(scene) as ds:
        lab = scene_labels(ds, d)
        full = np.stack([ds[c].values for c in schema.CHARTS])
    assert lab.dtype == np.uint8 and lab.shape == (3, -(-130 // d), -(-110 // d))
    np.testing.assert_array_equal(lab, full[:, ::d, ::d])
    up = upsample_to((130, 110), lab, d)
    assert up.shape == (3, 130, 110)
    np.testing.assert_array_equal(up[:, ::d, ::d], lab)
    np.testing.assert_array_equal(up[:, 129, 109], lab[:, (129 // d), (109 // d)])
    with pytest.raises(ValueError, match="do not match"):
        upsample_to((130, 110), lab[:, :-1], d)


# ----------------------------------------------------------------------------- cache
def _files(folder):
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}


def test_cache_equals_inputs_and_is_reused(tmp_path, scene):
    cfg = DataConfig(inputs=["nersc_sar_primary", "btemp_6_9h", "latitude", "month"], downscale=5,
                     cache_dtype="float32")  # fmt: skip
    (cached,) = build_cache([scene], cfg, tmp_path, progress=False)
    with open_scene(scene) as ds:
        expected = scene_inputs(ds, cfg.inputs, 5)
        labels = scene_labels(ds, 5)
    assert isinstance(cached.inputs, np.memmap) and cached.inputs.dtype == np.float32
    np.testing.assert_array_equal(cached.inputs, expected)
    np.testing.assert_array_equal(cached.labels, labels)
    assert cached.key == "20180324T101010_dmi" and cached.full_shape == (130, 110)
    assert cached.valid == int((labels != 255).any(0).sum()) > 0
    folder = tmp_path / fingerprint(cfg)
    before = _files(folder)
    assert {"20180324T101010_dmi.inputs.npy", "20180324T101010_dmi.labels.npy", "20180324T101010_dmi.json"} <= set(
        before
    )
    (again,) = build_cache([scene], cfg, tmp_path, progress=False)
    assert _files(folder) == before  # nothing rewritten
    np.testing.assert_array_equal(again.inputs, expected)
    # block-mean downscaling: another folder, the values scene_inputs gives in that mode
    cfg_mean = DataConfig(inputs=cfg.inputs, downscale=5, cache_dtype="float32", downscale_mode="mean")
    (mean,) = build_cache([scene], cfg_mean, tmp_path, progress=False)
    assert fingerprint(cfg_mean) != fingerprint(cfg)
    with open_scene(scene) as ds:
        np.testing.assert_array_equal(mean.inputs, scene_inputs(ds, cfg.inputs, 5, mode="mean"))
    assert not np.array_equal(mean.inputs, expected)
    # float16 cache: another folder, values rounded to half precision
    cfg16 = DataConfig(inputs=cfg.inputs, downscale=5, cache_dtype="float16")
    (half,) = build_cache([scene], cfg16, tmp_path, progress=False)
    assert fingerprint(cfg16) != fingerprint(cfg) and half.inputs.dtype == np.float16
    np.testing.assert_array_equal(half.inputs, expected.astype(np.float16))
    assert _files(folder) == before


def test_cache_invalidation(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    path = make_scene(src, seed=0)
    cfg = DataConfig(inputs=["nersc_sar_primary", "month"], downscale=2, cache_dtype="float32")
    (first,) = build_cache([path], cfg, tmp_path / "cache", progress=False)
    lab0 = np.array(first.labels)
    # config change -> another fingerprint folder, the first one untouched
    cfg2 = DataConfig(inputs=["nersc_sar_primary", "month"], downscale=3, cache_dtype="float32")
    build_cache([path], cfg2, tmp_path / "cache", progress=False)
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == sorted([fingerprint(cfg), fingerprint(cfg2)])
    cfg3 = DataConfig(inputs=["month", "nersc_sar_primary"], downscale=2, cache_dtype="float32")
    assert fingerprint(cfg3) != fingerprint(cfg)  # channel order matters
    # source rewritten -> rebuilt with the new content
    folder = tmp_path / "cache" / fingerprint(cfg)
    before = _files(folder)
    make_scene(src, seed=1)
    (second,) = build_cache([path], cfg, tmp_path / "cache", progress=False)
    after = _files(folder)
    assert all(after[n] != before[n] for n in before if n.startswith("20180324T101010_dmi."))
    assert not np.array_equal(second.labels, lab0)
    with open_scene(path) as ds:
        np.testing.assert_array_equal(second.labels, scene_labels(ds, 2))


def test_cache_parallel_test_scenes_and_errors(tmp_path):
    a = make_scene(tmp_path, start="20180101T000000")
    b = make_scene(tmp_path, start="20180202T000000", charts=False)
    cfg = DataConfig(inputs=["t2m", "month"], downscale=10)
    with pytest.raises(ScenesFailed, match=f"1 of 2 scenes failed: {b.name}") as exc:
        build_cache([a, b], cfg, tmp_path / "cache", workers=2, progress=False)
    (failure,) = exc.value.failures
    assert isinstance(failure, SceneError) and "missing variables SIC" in str(failure)
    out = build_cache([a, b], cfg, tmp_path / "cache2", workers=2, progress=False, with_labels=False)
    assert [s.key for s in out] == ["20180101T000000_dmi", "20180202T000000_dmi"]
    assert out[1].labels is None and out[0].labels is not None
    np.testing.assert_allclose(out[1].inputs[1], 2 * 1 / 11 - 1, atol=1e-3)
    with pytest.raises(SceneError, match="no such file"):
        build_cache([tmp_path / "nope_prep.nc"], cfg, tmp_path / "cache", progress=False)


# ----------------------------------------------------------------------------- loader
@pytest.fixture(scope="module")
def cached(tmp_path_factory):
    folder = tmp_path_factory.mktemp("loader")
    box = (slice(60, 64), slice(40, 47))  # sparse labels: 28 valid pixels of 14 300
    paths = [make_scene(folder, start="20180101T000000", valid_box=box),
             make_scene(folder, 20, 30, start="20180202T000000", seed=1)]  # fmt: skip
    cfg = DataConfig(inputs=["nersc_sar_primary", "btemp_6_9h", "month"], downscale=1, cache_dtype="float32")
    return build_cache(paths, cfg, folder / "cache", progress=False)


def _take(ds, n):
    it = iter(ds)
    return [next(it) for _ in range(n)]


def test_patches_shapes_valid_labels_and_padding(cached):
    ds = PatchDataset(cached, 32, seed=0)
    feb = 2 * 1 / 11 - 1  # month channel of the small 20 x 30 scene (the big one is January: -1)
    small = 0
    for x, y in _take(ds, 200):
        assert x.shape == (3, 32, 32) and x.dtype == torch.float32
        assert y.shape == (3, 32, 32) and y.dtype == torch.int64
        assert (y != 255).any()
        inside = (x[2] - feb).abs() < 1e-6
        if inside.any():  # the small scene, padded: it sits somewhere in the patch, 0 / 255 around it
            small += 1
            rows, cols = torch.nonzero(inside, as_tuple=True)
            r0, c0 = int(rows.min()), int(cols.min())
            assert inside.sum() == 600 and inside[r0 : r0 + 20, c0 : c0 + 30].all()
            assert x[0, r0 : r0 + 20, c0 : c0 + 30].flatten().tolist() == list(range(600))
            assert (x[:, ~inside] == 0).all() and (y[:, ~inside] == 255).all()
    assert 0 < small < 200


def test_sparse_labels_always_inside(cached):
    big = cached[0]
    ds = PatchDataset([big], 16, seed=5)
    for x, y in _take(ds, 100):
        valid = (y != 255).any(0)
        assert valid.any()
        r0, c0 = divmod(int(x[0, 0, 0]), 110)
        rows, cols = np.nonzero(valid.numpy())
        assert ((rows + r0 >= 60) & (rows + r0 < 64) & (cols + c0 >= 40) & (cols + c0 < 47)).all()


def test_determinism_ranks_and_weights(cached):
    a = [x for x, _ in _take(PatchDataset(cached, 32, seed=1), 20)]
    b = [x for x, _ in _take(PatchDataset(cached, 32, seed=1), 20)]
    c = [x for x, _ in _take(PatchDataset(cached, 32, seed=2), 20)]
    r = [x for x, _ in _take(PatchDataset(cached, 32, seed=1, rank=1, world_size=2), 20)]
    assert all(torch.equal(u, v) for u, v in zip(a, b, strict=True))
    assert not all(torch.equal(u, v) for u, v in zip(a, c, strict=True))
    assert not all(torch.equal(u, v) for u, v in zip(a, r, strict=True))
    ds = PatchDataset(cached, 32, seed=1)
    ds.set_epoch(1)
    assert not all(torch.equal(u, v) for u, (v, _) in zip(a, _take(ds, 20), strict=True))
    # scene chosen in proportion to its valid area (28 vs 20 x 27 valid pixels)
    assert ds.weights.tolist() == pytest.approx([28 / 568, 540 / 568])


def test_make_loader_with_two_workers(cached):
    cfg = DataConfig(patch_size=32, num_workers=2)
    loader = make_loader(cached, cfg, batch_size=4, seed=0, batches=5)
    batches = list(loader)
    assert len(batches) == len(loader) == 5
    for x, y in batches:
        assert x.shape == (4, 3, 32, 32) and y.shape == (4, 3, 32, 32)
        assert ((y != 255).flatten(1).any(1)).all()
    again = list(make_loader(cached, cfg, batch_size=4, seed=0, batches=5))
    assert all(torch.equal(u[0], v[0]) for u, v in zip(batches, again, strict=True))
    firsts = {tuple(x[0, 0, 0, :4].tolist()) for x, _ in batches}
    assert len(firsts) > 1  # the two workers do not repeat each other


# ----------------------------------------------------------------------------- augmentation
def _batch(b=8, p=32, c=3):
    """Labels with a 255 border and distinct values; channel 0 holds the label of SIC, channel 1 the sample id."""
    y = torch.arange(b * 3 * p * p).view(b, 3, p, p) % 250
    y[:, :, :3, :] = 255
    x = torch.zeros(b, c, p, p)
    x[:, 0] = y[:, 0].float()
    x[:, 1] = torch.arange(b).float()[:, None, None]
    y[:, 1] = torch.arange(b)[:, None, None]
    return x, y


def _dihedral_images(img):
    out = []
    for k in range(4):
        r = torch.rot90(img, k, (-2, -1))
        out += [r, r.flip(-1)]
    return out


def test_flips_and_rotations_move_inputs_and_labels_together():
    x, y = _batch()
    aug = AugmentConfig(flip=True, rot90=True)
    xa, ya = augment_batch(x, y, aug, torch.Generator().manual_seed(0))
    assert xa.shape == x.shape and ya.dtype == y.dtype
    assert torch.equal(xa[:, 0], ya[:, 0].float())  # moved together, 255 border included
    changed = 0
    for i in range(len(x)):
        options = _dihedral_images(y[i, 0])
        assert any(torch.equal(ya[i, 0], o) for o in options)
        changed += not torch.equal(ya[i, 0], y[i, 0])
    assert changed > 0
    assert torch.equal(x, _batch()[0])  # arguments untouched


def test_rescale_pads_with_fill_and_keeps_registration():
    p = 32
    y = torch.full((4, 3, p, p), 7)
    y[:, :, :, : p // 2] = 3  # two halves
    x = y[:, :1].float().repeat(1, 2, 1, 1)
    out_x, out_y = augment_batch(x, y, AugmentConfig(scale=[0.75, 0.75]), torch.Generator().manual_seed(0))
    pad = out_y[:, 0] == 255
    assert pad.any() and not pad[:, p // 2, p // 2].any()  # zoomed out: a border of 255
    assert (out_x[:, 0][pad].abs() < 7).all() and (out_x[:, 0][pad] == 0).float().mean() > 0.7
    inner = ~pad
    agree = (out_x[:, 0][inner] - out_y[:, 0][inner].float()).abs() < 1e-4
    assert agree.float().mean() > 0.85  # bilinear vs nearest differ only along the edges
    zx, zy = augment_batch(x, y, AugmentConfig(scale=[1.5, 1.5]), torch.Generator().manual_seed(0))
    assert not (zy == 255).any() and (zy[:, 0, :, :2] == 3).all() and (zy[:, 0, :, -2:] == 7).all()
    torch.testing.assert_close(zx[:, 0, :, :4], torch.full_like(zx[:, 0, :, :4], 3.0))


def test_cutmix_pastes_inputs_and_labels_together():
    x, y = _batch()
    xa, ya = augment_batch(x, y, AugmentConfig(cutmix=1.0), torch.Generator().manual_seed(1))
    assert torch.equal(xa[:, 1], ya[:, 1].float())  # sample id channel matches the pasted labels
    assert torch.equal(xa[:, 0], ya[:, 0].float())
    foreign = [(ya[i, 1] != i).any().item() for i in range(len(x))]
    assert sum(foreign) >= len(x) - 1
    xn, yn = augment_batch(x, y, AugmentConfig(cutmix=0.0), torch.Generator().manual_seed(1))
    assert torch.equal(xn, x) and torch.equal(yn, y)
    # the same generator seed gives the same batch
    xb, yb = augment_batch(x, y, AugmentConfig(flip=True, rot90=True, scale=[0.9, 1.1], cutmix=0.5),
                           torch.Generator().manual_seed(3))  # fmt: skip
    xc, yc = augment_batch(x, y, AugmentConfig(flip=True, rot90=True, scale=[0.9, 1.1], cutmix=0.5),
                           torch.Generator().manual_seed(3))  # fmt: skip
    assert torch.equal(xb, xc) and torch.equal(yb, yc)
