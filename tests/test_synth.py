"""Synthetic scenes: names, format, determinism, the synth -> prepare round trip, physical plausibility."""

from __future__ import annotations

import re

import numpy as np
import pytest
from click.testing import CliRunner

from autoice import prepare, schema, synth
from autoice.cli.main import cli
from autoice.errors import AutoiceError
from autoice.scenes import open_scene

SEED = 11
H, W = 96, 128  # RTT size of the dataset tests (raw 192 x 256)
N_TRAIN, N_TEST = 3, 2
DMI_CHART = re.compile(r"^\d{12}_[A-Za-z]+_RIC$")
CIS_CHART = re.compile(r"^SGRDI[A-Z]+_\d{8}T\d{4}Z_pl_a$")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    result = synth.synthesize(root, n_train=N_TRAIN, n_test=N_TEST, height=H, width=W, seed=SEED, progress=False)
    return root, result


def _arrays(path):
    with open_scene(path, check_values=False) as ds:
        return {name: np.asarray(ds[name].values) for name in ds.data_vars}, dict(ds.attrs)


def _same_files(paths_a, paths_b):
    for a, b in zip(paths_a, paths_b, strict=True):
        assert a.name == b.name
        (va, attrs_a), (vb, attrs_b) = _arrays(a), _arrays(b)
        assert va.keys() == vb.keys() and attrs_a == attrs_b
        for name in va:
            np.testing.assert_array_equal(va[name], vb[name], err_msg=f"{a.name}:{name}")


# --------------------------------------------------------------------------- names and files


def test_scene_specs_names_and_regions():
    specs = synth.scene_specs(40, height=H, width=W, seed=SEED)
    assert {s.service for s in specs} == set(schema.SERVICES)
    starts = [s.start for s in specs]
    assert len(set(starts)) == len(starts)
    for s in specs:
        m = schema.RAW_NAME.match(s.raw_name)
        assert m, s.raw_name
        assert m["service"] == s.service and m["mission"] in ("S1A", "S1B")
        assert m["start"] == s.start.strftime("%Y%m%dT%H%M%S") and m["stop"] > m["start"]
        assert (DMI_CHART if s.service == "dmi" else CIS_CHART).match(m["chart"]), m["chart"]
        assert s.region in m["chart"]
        assert 2018 <= s.start.year <= 2021
        assert s.start.month in synth.REGIONS[s.service][s.region].months
        assert schema.parse_rtt_name(s.rtt_name).key == s.rtt_name[:19]
    # a scene depends on (seed, index) only: a later slice is the same scenes
    assert synth.scene_specs(3, height=H, width=W, seed=SEED, first_index=5) == specs[5:8]
    assert synth.scene_specs(40, height=H, width=W, seed=SEED + 1) != specs


def test_dataset_files_line_up(dataset):
    root, result = dataset
    assert len(result.raw) == N_TRAIN + N_TEST and len(result.train) == N_TRAIN
    assert len(result.test) == len(result.reference) == N_TEST
    assert sorted(p.name for p in (root / "raw").glob("*.nc")) == sorted(p.name for p in result.raw)
    rtt_names = [schema.raw_to_rtt_name(p.name) for p in result.raw]
    assert [p.name for p in result.train + result.test] == rtt_names
    for ref, test in zip(result.reference, result.test, strict=True):
        assert ref.name == schema.parse_rtt_name(test.name).reference_name and ref.parent == test.parent
    assert not list(root.rglob("*.tmp"))
    for p in result.raw:
        with open_scene(p, "raw") as ds:
            assert ds.attrs["ice_service"] in p.name and ds.attrs["pixel_spacing"] == schema.RAW_PIXEL_SPACING
            assert ds.sizes[ds[schema.SAR_VARIABLES[0]].dims[0]] == 2 * H
            rows = [str(r) for r in ds[schema.POLYGON_CODES].values]
            assert rows[0] == ";".join(schema.POLYGON_CODES_HEADER)
            assert {r.rsplit(";", 1)[1] for r in rows[1:]} <= {"I", "W", "L"}
    for p in result.train:
        with open_scene(p, "train") as ds:
            assert (ds.sizes["sar_lines"], ds.sizes["sar_samples"]) == (H, W)
            assert ds.attrs["original_id"] in {r.name for r in result.raw}
    for p in result.test:
        with open_scene(p, "test") as ds:
            assert not set(schema.CHARTS) & set(ds.data_vars)
    for p in result.reference:
        with open_scene(p, "reference") as ds:
            assert set(ds.data_vars) == set(schema.CHARTS)


def test_rerun_keeps_existing_files(dataset):
    root, result = dataset
    again = synth.synthesize(root, n_train=N_TRAIN, n_test=N_TEST, height=H, width=W, seed=SEED, progress=False)
    assert again.skipped == N_TRAIN + N_TEST
    assert again.train == result.train and again.reference == result.reference


def test_same_seed_same_files_any_workers(dataset, tmp_path):
    root, result = dataset
    again = synth.synthesize(tmp_path, n_train=N_TRAIN, n_test=N_TEST, height=H, width=W, seed=SEED, workers=2,
                             progress=False)  # fmt: skip
    _same_files(result.raw + result.train + result.test + result.reference,
                again.raw + again.train + again.test + again.reference)  # fmt: skip


def test_different_seed_different_scenes(dataset):
    _, result = dataset
    spec = synth.scene_specs(1, height=H, width=W, seed=SEED + 1)[0]
    other, _ = synth.generate_raw(spec, SEED + 1)
    mine, _ = _arrays(result.raw[0])
    assert spec.raw_name != result.raw[0].name
    hh_a, hh_b = mine[schema.SAR_VARIABLES[0]], other[schema.SAR_VARIABLES[0]].values
    assert not np.array_equal(np.nan_to_num(hh_a), np.nan_to_num(hh_b))


def test_bad_arguments_raise_one_line_errors(tmp_path):
    with pytest.raises(AutoiceError, match="must not be negative"):
        synth.synthesize(tmp_path, n_train=-1, n_test=0, height=H, width=W, seed=0, progress=False)
    with pytest.raises(AutoiceError, match="at least 2 x 2"):
        synth.scene_specs(1, height=1, width=W, seed=0)


# --------------------------------------------------------------------------- round trip


def test_round_trip_charts_equal_intended_labels(dataset):
    """The real prepare path (and decoder) reproduces the labels the generator meant, pixel for pixel."""
    _, result = dataset
    specs = synth.scene_specs(N_TRAIN + N_TEST, height=H, width=W, seed=SEED)
    seen = {c: set() for c in schema.CHARTS}
    for spec in specs:
        raw, labels = synth.generate_raw(spec, SEED)
        full = np.zeros(labels["SIC"].shape, bool)
        for name in (*schema.SAR_VARIABLES, schema.DISTANCE_VARIABLE):
            full |= np.isnan(raw[name].values)
        nodata = prepare.block_max(full.astype(np.uint8)) > 0
        if spec.index < N_TRAIN:
            path = result.train[spec.index]
        else:
            path = result.reference[spec.index - N_TRAIN]
        got, _ = _arrays(path)
        for chart in schema.CHARTS:
            expected = prepare.block_max(labels[chart])
            expected[nodata] = schema.CHART_FILL
            np.testing.assert_array_equal(got[chart], expected, err_msg=f"{path.name}:{chart}")
            seen[chart] |= set(np.unique(expected).tolist())
    for chart in schema.CHARTS:  # the check is not vacuous: water, ice classes and masks all occur
        assert {0, schema.CHART_FILL} < seen[chart] and len(seen[chart]) >= 4, (chart, seen[chart])


def test_round_trip_many_small_scenes(tmp_path):
    """Egg codes of many scenes (all regions, both services) decode as intended (wider code coverage)."""
    codes_seen = set()
    for spec in synth.scene_specs(12, height=40, width=48, seed=5):
        raw_path = synth.write_raw(spec, 5, tmp_path / "raw")
        _, labels = synth.generate_raw(spec, 5)
        out = prepare.prepare_file(raw_path, tmp_path / "rtt").output
        got, _ = _arrays(out)
        with open_scene(raw_path, "raw") as ds:
            full = np.isnan(ds[schema.SAR_VARIABLES[0]].values) | np.isnan(ds[schema.DISTANCE_VARIABLE].values)
            codes_seen |= {tuple(str(r).split(";")[1:]) for r in ds[schema.POLYGON_CODES].values[1:]}
        nodata = prepare.block_max(full.astype(np.uint8)) > 0
        for chart in schema.CHARTS:
            expected = prepare.block_max(labels[chart])
            expected[nodata] = schema.CHART_FILL
            np.testing.assert_array_equal(got[chart], expected, err_msg=f"{out.name}:{chart}")
    multi = [c for c in codes_seen if c[4] != "-9"]  # CB filled
    assert len(multi) >= 5 and any(c[7] != "-9" for c in multi)  # two- and three-type polygons occur
    assert any(c[3] == "8" for c in codes_seen)  # fast ice


# --------------------------------------------------------------------------- physics


@pytest.fixture(scope="module")
def physics_scenes():
    specs = synth.scene_specs(8, height=300, width=320, seed=3)
    return [(spec, *synth.generate_raw(spec, 3)) for spec in specs]


def _pixel_speed(ds):
    speed = np.hypot(ds["u10m_rotated"].values, ds["v10m_rotated"].values)
    rows = np.arange(ds.sizes[schema.FULL_DIMS[0]]) // schema.CELL_RAW
    cols = np.arange(ds.sizes[schema.FULL_DIMS[1]]) // schema.CELL_RAW
    return speed[rows][:, cols]


def _pixel_incidence(ds):
    n = schema.TIEPOINT_GRID
    samples = ds["sar_grid_sample"].values[:n]
    inc = ds["sar_grid_incidenceangle"].values[:n]
    order = np.argsort(samples)
    return np.interp(np.arange(ds.sizes[schema.FULL_DIMS[1]]), samples[order], inc[order])[None, :]


def _cell_share(mask):
    return synth._block_counts(mask.astype(np.uint8), 2, schema.CELL_RAW)[..., 1]


def test_sar_water_brightens_with_wind_and_mimics_ice(physics_scenes):
    calm, windy, ice_hh, ice_hv, water_hv = [], [], [], [], []
    for _, ds, labels in physics_scenes:
        hh, hv = ds[schema.SAR_VARIABLES[0]].values, ds[schema.SAR_VARIABLES[1]].values
        speed = _pixel_speed(ds)
        band = (np.abs(_pixel_incidence(ds) - 35) < 5) & np.isfinite(hh)
        water = labels["SIC"] == 0
        ice = labels["SIC"] == 10
        calm.append(hh[water & band & (speed < 4)])
        windy.append(hh[water & band & (speed > 9)])
        ice_hh.append(hh[ice & band])
        ice_hv.append(hv[ice & np.isfinite(hv)])
        water_hv.append(hv[water & np.isfinite(hv)])
    calm, windy, ice_hh = np.concatenate(calm), np.concatenate(windy), np.concatenate(ice_hh)
    assert calm.size > 1000 and windy.size > 1000 and ice_hh.size > 1000
    assert windy.mean() > calm.mean() + 3  # CMOD: ~ +5 dB from 3 to 10 m/s at 35 deg
    assert np.percentile(windy, 90) > np.median(ice_hh)  # wind-roughened water as bright as ice in HH
    assert np.concatenate(ice_hv).mean() > np.concatenate(water_hv).mean() + 1


def test_sar_speckle_nan_and_incidence(physics_scenes):
    for spec, ds, _ in physics_scenes:
        hh = ds[schema.SAR_VARIABLES[0]].values
        nan = np.isnan(hh)
        assert 0 < nan.mean() < 0.2 and np.array_equal(nan, np.isnan(ds[schema.SAR_VARIABLES[1]].values))
        assert np.isnan(ds[schema.POLYGON_ICECHART].values[nan]).all()
        inc = ds["sar_grid_incidenceangle"].values.reshape(schema.TIEPOINT_GRID, schema.TIEPOINT_GRID)
        assert 18.5 < inc.min() < 20 and 46 < inc.max() < 47.5
        across = inc[0]
        assert np.all(np.diff(across) < 0) if ds.attrs["flip"] else np.all(np.diff(across) > 0)
        assert np.allclose(inc, inc[0])  # incidence varies across samples only
        region = synth.REGIONS[spec.service][spec.region]
        lat, lon = ds["sar_grid_latitude"].values, ds["sar_grid_longitude"].values
        assert region.lat[0] - 1 < lat.min() and lat.max() < region.lat[1] + 1  # the swath lies in the region box
        assert region.lon[0] - 3 < lon.min() and lon.max() < region.lon[1] + 3
        assert 300 < np.ptp(lat) * 111 * 1.5 and np.ptp(lat) * 111 < 600  # a ~400 km (rotated) swath
        zones = ds[schema.DISTANCE_VARIABLE].values
        finite = zones[np.isfinite(zones)]
        assert finite.min() >= 0 and finite.max() <= schema.N_DISTANCE_ZONES - 1
    flips = {ds.attrs["flip"] for _, ds, _ in physics_scenes}
    assert flips == {0, 1}


def test_amsr2_ice_warmer_than_water_and_coastal_spillover(physics_scenes):
    diffs = {"btemp_36_5h": [], "btemp_18_7v": []}
    spill = []
    for _, ds, labels in physics_scenes:
        land_cells = _cell_share(ds[schema.DISTANCE_VARIABLE].values == 0) > 0
        any_ice = _cell_share((labels["SIC"] >= 1) & (labels["SIC"] <= 10)) > 0.02
        water_cells = (_cell_share(labels["SIC"] == 0) > 0.8) & ~land_cells & ~any_ice
        ice_cells = _cell_share(labels["SIC"] == 10) > 0.9
        if water_cells.any() and ice_cells.any():
            for name in diffs:
                tb = ds[name].values
                diffs[name].append(tb[ice_cells].mean() - tb[water_cells].mean())
        # open water next to land vs open water far from land, both away from any ice
        open_water = water_cells & ~_dilate(any_ice, 2)
        near = open_water & _dilate(land_cells, 1)
        far = open_water & ~_dilate(land_cells, 3)
        if near.any() and far.any():
            tb = ds["btemp_6_9h"].values
            spill.append(tb[near].mean() - tb[far].mean())
    assert all(len(v) >= 3 for v in diffs.values())
    assert min(diffs["btemp_36_5h"]) > 20 and min(diffs["btemp_18_7v"]) > 20
    assert len(spill) >= 2 and min(spill) > 5  # land spill-over through the 35 x 62 km footprint


def _dilate(mask, n):
    from scipy import ndimage

    return ndimage.binary_dilation(mask, iterations=n)


def test_era5_colder_over_ice_in_winter():
    specs = [s for s in synth.scene_specs(30, height=150, width=160, seed=4) if s.start.month in (12, 1, 2, 3)]
    checked = 0
    for spec in specs:
        ds, labels = synth.generate_raw(spec, 4)
        water_cells = _cell_share(labels["SIC"] == 0) > 0.99
        ice_cells = _cell_share(labels["SIC"] == 10) > 0.9
        if water_cells.any() and ice_cells.any():
            t2m = ds["t2m"].values
            assert t2m[ice_cells].mean() < t2m[water_cells].mean() - 1, spec.raw_name
            assert 230 < t2m.min() and t2m.max() < 285
            checked += 1
    assert checked >= 1


def test_cis_charts_have_no_cake_or_bergs_and_dmi_can():
    forms = {"cis": set(), "dmi": set()}
    floe = {"cis": set(), "dmi": set()}
    for spec in synth.scene_specs(40, height=40, width=48, seed=8):
        ds, labels = synth.generate_raw(spec, 8)
        for row in ds[schema.POLYGON_CODES].values[1:]:
            cols = str(row).split(";")
            forms[spec.service] |= {int(cols[k]) for k in (4, 7, 10)}
        floe[spec.service] |= set(np.unique(labels["FLOE"]).tolist())
    assert not forms["cis"] & {2, 9, 10} and not floe["cis"] & {1, 6}
    assert forms["dmi"] & {2, 9, 10}
    assert floe["cis"] >= {0, 2, 3} and floe["dmi"] >= {0, 3}


# --------------------------------------------------------------------------- CLI


def test_cli_synth(tmp_path):
    runner = CliRunner()
    out = tmp_path / "ds"
    args = ["synth", str(out), "--train", "1", "--test", "1", "--height", "40", "--width", "48", "--seed", "2"]
    res = runner.invoke(cli, [*args, "--quiet"])
    assert res.exit_code == 0, res.output
    assert "synthesized 2 scene(s)" in res.stdout
    assert len(list((out / "raw").glob("*.nc"))) == 2
    assert len(list((out / "train").glob("*_prep.nc"))) == 1
    assert len(list((out / "test").glob("*_prep_reference.nc"))) == 1
    res = runner.invoke(cli, [*args, "--quiet"])
    assert res.exit_code == 0 and "kept 2 existing" in res.stdout
    assert runner.invoke(cli, ["synth", "--help"]).exit_code == 0
    bad = runner.invoke(cli, ["synth", str(out), "--height", "1"])
    assert bad.exit_code == 2 and "--height" in bad.output
