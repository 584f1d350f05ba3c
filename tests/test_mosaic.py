"""``autoice mosaic`` and map views: overlap rules, extent, no data, round trips, bad input, atomic output."""

from __future__ import annotations

import shutil
from pathlib import Path

import netCDF4  # noqa: F401  # before any capsys: its log handlers must not bind to a captured stream
import numpy as np
import pytest
import xarray as xr
from pyproj import CRS, Transformer

from autoice import geolocation as gl
from autoice import schema
from autoice.cli.main import main
from autoice.mosaic import build_mosaic, mosaic, output_files
from autoice.scenes import write_netcdf

RES = 2000.0  # the 96 x 128 synthetic miniatures span ~400 km: ~3.5 km pixels
CRS_3413 = CRS.from_epsg(3413)
SHIFT_M = 150e3  # the second scene of a pair: the first moved 150 km across (they share ~60 % of their ground)


def _geo(path: Path) -> gl.Geolocation:
    with xr.open_dataset(path) as ds:
        return gl.scene_geolocation(ds, path)


def _charts(path: Path) -> dict[str, np.ndarray]:
    with xr.open_dataset(path) as ds:
        return {c: ds[c].values for c in schema.CHARTS}


def _interior(chart: np.ndarray, margin: int = 2) -> np.ndarray:
    """Valid pixels whose (2 margin + 1)^2 neighbourhood holds one class."""
    h, w = chart.shape
    core = chart[margin : h - margin, margin : w - margin]
    inner = core != schema.CHART_FILL
    for dr in range(-margin, margin + 1):
        for dc in range(-margin, margin + 1):
            inner &= chart[margin + dr : h - margin + dr, margin + dc : w - margin + dc] == core
    out = np.zeros(chart.shape, bool)
    out[margin : h - margin, margin : w - margin] = inner
    return out


def _footprint(geo: gl.Geolocation, crs=CRS_3413):
    from shapely import Polygon

    lon, lat = geo.outline()
    x, y = Transformer.from_crs(gl.LONLAT, crs, always_xy=True).transform(lon, lat)
    return Polygon(np.column_stack([x, y]))


def _sample(array: np.ndarray, grid: gl.Grid, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    cols, rows = ~grid.transform @ (np.asarray(x), np.asarray(y))
    return array[np.floor(rows).astype(int), np.floor(cols).astype(int)]


def _points(geo: gl.Geolocation, mask: np.ndarray, n: int, seed: int = 0):
    rows, cols = np.nonzero(mask)
    k = np.random.default_rng(seed).choice(len(rows), min(n, len(rows)), replace=False)
    x, y = gl.project_points(geo, rows[k], cols[k], CRS_3413)
    return rows[k], cols[k], x, y


# ----------------------------------------------------------------------------- two scenes sharing ground
def _shifted_key(key: str, days: int) -> str:
    from datetime import datetime, timedelta

    t = datetime.strptime(key[:15], "%Y%m%dT%H%M%S") + timedelta(days=days)
    return f"{t:%Y%m%dT%H%M%S}{key[15:]}"


def _write_pair(src_scene: Path, folder: Path, days: int) -> tuple[str, str]:
    """``folder`` gets scene A (a copy) and B: A moved SHIFT_M across, charts (A + 1) mod n, ``days`` later."""
    folder.mkdir(parents=True)
    key_a = src_scene.name[:19]
    for suffix in (schema.RTT_SUFFIX, schema.REFERENCE_SUFFIX):
        shutil.copy(src_scene.with_name(key_a + suffix), folder / (key_a + suffix))
    key_b = _shifted_key(key_a, days)
    geo = _geo(src_scene)
    lon0, lat0 = (float(v[0]) for v in geo.lonlat([geo.shape[0] / 2], [geo.shape[1] / 2]))
    plane = f"+proj=aeqd +lat_0={lat0} +lon_0={lon0} +datum=WGS84 +units=m"
    x, y = Transformer.from_crs(gl.LONLAT, plane, always_xy=True).transform(geo.longitude, geo.latitude)
    across = np.array([x[0, -1] - x[0, 0], y[0, -1] - y[0, 0]])
    across /= np.hypot(*across)
    lon, lat = Transformer.from_crs(plane, gl.LONLAT, always_xy=True).transform(x + SHIFT_M * across[0],
                                                                                 y + SHIFT_M * across[1])
    with xr.open_dataset(src_scene) as ds:
        b = ds.load()
    b[schema.TIEPOINT_LATITUDE].values[:] = lat
    b[schema.TIEPOINT_LONGITUDE].values[:] = gl.wrap_longitude(lon)
    b.attrs["scene_id"] = key_b
    write_netcdf(b, folder / (key_b + schema.RTT_SUFFIX))
    with xr.open_dataset(src_scene.with_name(key_a + schema.REFERENCE_SUFFIX)) as ds:
        ref = ds.load()
    for c in schema.CHARTS:
        v = ref[c].values
        ref[c].values[:] = np.where(v == schema.CHART_FILL, v, (v + 1) % schema.N_CLASSES[c])
    ref.attrs["scene_id"] = key_b
    write_netcdf(ref, folder / (key_b + schema.REFERENCE_SUFFIX))
    return key_a, key_b


@pytest.fixture(scope="module")
def pair(synth_data, tmp_path_factory):
    """Two folders of a scene A and its moved copy B: B one day newer in ``new``, one day older in ``old``."""
    refs = sorted((synth_data / "test").glob("*_prep_reference.nc"))

    def charted_at_both_sides(ref: Path) -> int:  # B moved across: each scene alone holds one side's columns
        counts = []
        for chart in _charts(ref).values():  # every chart: SOD and FLOE label less of the ice than SIC
            valid = chart != schema.CHART_FILL
            third = valid.shape[1] // 3
            counts += [int(valid[:, :third].sum()), int(valid[:, -third:].sum())]
        return min(counts)

    best = max(refs, key=charted_at_both_sides)
    scene = best.with_name(best.name[:19] + schema.RTT_SUFFIX)
    root = tmp_path_factory.mktemp("pair")
    keys = {"new": _write_pair(scene, root / "new", 1), "old": _write_pair(scene, root / "old", -1)}
    return root, keys


def _scene_facts(folder: Path, key: str):
    geo = _geo(folder / (key + schema.RTT_SUFFIX))
    return geo, _charts(folder / (key + schema.REFERENCE_SUFFIX)), _footprint(geo)


def _covered_by(poly, x, y, inset: float) -> np.ndarray:
    from shapely import contains_xy

    return contains_xy(poly.buffer(-inset), x, y)


def _agreement(m, geo, charts, mask_fn, chart="SIC") -> tuple[float, int]:
    """Share of interior pixels (selected by ``mask_fn(x, y)``) whose mosaic value is the chart's class."""
    rows, cols, x, y = _points(geo, _interior(charts[chart]), 20000)  # every interior pixel: strips are narrow
    keep = mask_fn(x, y)
    got = _sample(m.charts[schema.CHARTS.index(chart)], m.grid, x[keep], y[keep])
    truth = charts[chart][rows[keep], cols[keep]]
    return float(np.mean(got == truth)) if keep.any() else float("nan"), int(keep.sum())


def test_newest_scene_wins_where_scenes_overlap(pair):
    from autoice.export import find_sources

    root, keys = pair
    for which in ("new", "old"):  # B one day newer than A, then one day older
        folder = root / which
        key_a, key_b = keys[which]
        m = build_mosaic(find_sources([folder]), resolution=RES, progress=False)
        assert m.keys == sorted([key_a, key_b])  # oldest first
        newer, older = (key_b, key_a) if which == "new" else (key_a, key_b)
        geo_n, ch_n, fp_n = _scene_facts(folder, newer)
        geo_o, ch_o, fp_o = _scene_facts(folder, older)
        everywhere = lambda x, y: np.ones(len(x), bool)  # noqa: E731
        for chart in schema.CHARTS:
            # the newer scene's classes wherever it has one ...
            share, n = _agreement(m, geo_n, ch_n, everywhere, chart)
            assert share >= 0.99 and n > 100, (which, chart, share, n)
            # ... also where it lies over the older scene
            share, n = _agreement(m, geo_n, ch_n, lambda x, y, fp=fp_o: _covered_by(fp, x, y, 3 * RES), chart)
            assert share >= 0.99 and n > 30, (which, chart, share, n)
            # the older scene's classes where the newer one does not reach
            share, n = _agreement(m, geo_o, ch_o, lambda x, y, fp=fp_n: ~_covered_by(fp, x, y, -3 * RES),
                                  chart)
            assert share >= 0.99 and n >= 15, (which, chart, share, n)  # a strip; SOD labels less of the ice


def test_a_predicted_scene_covers_none_of_another_with_its_swath_edges_or_land(pair, tmp_path):
    """Models predict every pixel; where the newer scene has no SAR data or land, the older one shows."""
    from scipy.ndimage import binary_erosion

    from autoice.export import find_sources
    from autoice.scenes import chartless, open_scene
    from autoice.submission import write_submission

    root, keys = pair
    folder = root / "new"
    old, new = keys["new"]  # B one day newer than A
    masks = {}
    for key in (old, new):
        with open_scene(folder / (key + schema.RTT_SUFFIX)) as ds:
            masks[key] = chartless(ds)
    # the older scene predicts water everywhere, the newer one class 1 everywhere (its swath edges and land too)
    preds = {k: {c: np.full(masks[k].shape, int(k == new), np.uint8) for c in schema.CHARTS} for k in (old, new)}
    pkg = write_submission(preds, tmp_path / "upload_package.nc")
    m = build_mosaic(find_sources([pkg], folder), resolution=RES, progress=False)
    geo_n = _geo(folder / (new + schema.RTT_SUFFIX))
    fp_o = _footprint(_geo(folder / (old + schema.RTT_SUFFIX)))
    for inside, allowed in ((binary_erosion(masks[new], iterations=2), {0, schema.CHART_FILL}),
                            (binary_erosion(~masks[new], iterations=2), {1})):  # fmt: skip
        rows, cols, x, y = _points(geo_n, inside, 2000)
        got = _sample(m.charts[0], m.grid, x, y)
        assert set(np.unique(got)) <= allowed, np.unique(got, return_counts=True)
    # where the newer scene's edge lies over the older scene's sea, the older scene's water shows through
    rows, cols, x, y = _points(geo_n, binary_erosion(masks[new], iterations=2), 2000)
    over_old = _covered_by(fp_o, x, y, 3 * RES)
    assert (_sample(m.charts[0], m.grid, x[over_old], y[over_old]) == 0).sum() > 20


def _uncertainty(folder: Path, out: Path, values: dict[str, float]) -> Path:
    out.mkdir(exist_ok=True)
    for key, value in values.items():
        h, w = _charts(folder / (key + schema.REFERENCE_SUFFIX))["SIC"].shape
        maps = {c: (("lines", "samples"), np.full((-(-h // 2), -(-w // 2)), value, np.float32)) for c in schema.CHARTS}
        write_netcdf(xr.Dataset(maps, attrs={"downscale": 2}), out / f"{key}_uncertainty.nc")
    return out


def test_least_uncertain_pixel_wins_with_rule_confident(pair, tmp_path):
    from autoice.export import find_sources

    root, keys = pair
    folder = root / "new"
    key_a, key_b = keys["new"]  # B is newer, but A is surer: A must show wherever it has a class
    unc = _uncertainty(folder, tmp_path / "unc", {key_a: 0.2, key_b: 0.5})
    m = build_mosaic(find_sources([folder]), resolution=RES, rule="confident", uncertainty=unc, progress=False)
    geo_a, ch_a, fp_a = _scene_facts(folder, key_a)
    geo_b, ch_b, _ = _scene_facts(folder, key_b)
    for chart in schema.CHARTS:
        share, n = _agreement(m, geo_a, ch_a, lambda x, y: np.ones(len(x), bool), chart)
        assert share >= 0.99 and n > 100, (chart, share, n)
        share, n = _agreement(m, geo_b, ch_b, lambda x, y: ~_covered_by(fp_a, x, y, -3 * RES), chart)
        assert share >= 0.99 and n > 30, (chart, share, n)
    # the mosaic's uncertainty is that of the pixel shown; none where no class is shown
    _, _, x, y = _points(geo_a, _interior(ch_a["SIC"]), 200)
    assert np.allclose(_sample(m.uncertainty[0], m.grid, x, y), 0.2)
    assert np.isnan(m.uncertainty[m.charts == schema.CHART_FILL]).all()
    # equal uncertainty: the newer scene wins, as with --rule newest
    unc = _uncertainty(folder, tmp_path / "tie", {key_a: 0.3, key_b: 0.3})
    tie = build_mosaic(find_sources([folder]), resolution=RES, rule="confident", uncertainty=unc, progress=False)
    newest = build_mosaic(find_sources([folder]), resolution=RES, progress=False)
    assert np.array_equal(tie.charts, newest.charts)


def test_grid_covers_the_union_and_is_255_outside(pair):
    from shapely import contains_xy, union_all

    from autoice.export import find_sources

    folder = pair[0] / "new"
    m = build_mosaic(find_sources([folder]), resolution=RES, progress=False)
    prints = [_scene_facts(folder, k)[2] for k in m.keys]
    left, bottom, right, top = m.grid.bounds
    u = union_all(prints).bounds
    assert left <= u[0] < left + RES and right - RES < u[2] <= right
    assert bottom <= u[1] < bottom + RES and top - RES < u[3] <= top
    assert left % RES == 0 and top % RES == 0 and m.grid.transform.a == RES
    t = m.grid.transform
    xs = t.c + (np.arange(m.grid.width) + 0.5) * t.a
    ys = t.f + (np.arange(m.grid.height) + 0.5) * t.e
    xx, yy = np.meshgrid(xs, ys)
    outside = ~contains_xy(union_all(prints).buffer(2 * RES), xx, yy)
    assert outside.sum() > 1000  # two tilted swaths leave corners of their bounding box empty
    assert (m.charts[:, outside] == schema.CHART_FILL).all()
    inside = contains_xy(union_all(prints).buffer(-2 * RES), xx, yy)
    assert (m.charts[0, inside] != schema.CHART_FILL).mean() > 0.3  # and classes inside


# ----------------------------------------------------------------------------- written products
@pytest.fixture(scope="module")
def written(synth_data, tmp_path_factory):
    """A mosaic of 5 synthetic scenes (2 test references, 3 train scenes) as COGs and as CF NetCDF."""
    out = tmp_path_factory.mktemp("mosaic")
    src = [synth_data / "test", *sorted((synth_data / "train").glob("*_prep.nc"))[:3]]
    tif = mosaic(src, out / "tif" / "arctic.tif", resolution=RES, progress=False)
    nc = mosaic(src, out / "nc" / "arctic.nc", resolution=RES, progress=False)
    return out, tif, nc


def test_written_mosaic_round_trips_every_scene(synth_data, written):
    import rasterio
    from shapely import contains_xy, union_all

    out, tif, nc = written
    assert [f.name for f in tif.files] == ["arctic_SIC.tif", "arctic_SOD.tif", "arctic_FLOE.tif", "arctic.png"]
    assert [f.name for f in nc.files] == ["arctic.nc", "arctic.png"]
    m = tif.mosaic
    assert len(m.keys) == 5
    files = {k: (synth_data / "test" / (k + schema.REFERENCE_SUFFIX), synth_data / "test" / (k + schema.RTT_SUFFIX))
             for k in m.keys}  # fmt: skip
    files.update({k: (p, p) for k in m.keys for p in [synth_data / "train" / (k + schema.RTT_SUFFIX)] if p.exists()})
    geos = {k: _geo(files[k][1]) for k in m.keys}
    prints = {k: _footprint(g) for k, g in geos.items()}
    tifs = {}
    for chart in schema.CHARTS:
        with rasterio.open(out / "tif" / f"arctic_{chart}.tif") as f:
            tifs[chart] = (f.read(1), f.transform)
    with xr.open_dataset(out / "nc" / "arctic.nc") as nc_file:
        ds = nc_file[list(schema.CHARTS)].load()  # pointwise .sel on the open file reads chunk by chunk
    checked = 0
    for i, key in enumerate(m.keys):
        geo, charts = geos[key], _charts(files[key][0])
        newer = [prints[k] for k in m.keys[i + 1 :]]
        hidden = union_all(newer).buffer(3 * RES) if newer else None
        for chart in schema.CHARTS:
            rows, cols, x, y = _points(geo, _interior(charts[chart]), 200, seed=i)
            if hidden is not None:
                keep = ~contains_xy(hidden, x, y)
                rows, cols, x, y = rows[keep], cols[keep], x[keep], y[keep]
            if len(rows) == 0:
                continue
            truth = charts[chart][rows, cols]
            band, transform = tifs[chart]
            c, r = ~transform @ (x, y)
            got = band[np.floor(r).astype(int), np.floor(c).astype(int)]
            assert np.mean(got == truth) >= 0.99, (key, chart, np.mean(got == truth))
            got_nc = ds[chart].sel(x=xr.DataArray(x), y=xr.DataArray(y), method="nearest").values
            assert np.mean(got_nc == truth) >= 0.99, (key, chart)
            checked += len(rows)
    assert checked > 1000


def test_written_mosaic_is_cog_and_cf_with_provenance(written):
    import rasterio
    from pyproj import CRS

    out, tif, _ = written
    with rasterio.open(out / "tif" / "arctic_SOD.tif") as f:
        assert f.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG" and f.overviews(1)
        assert f.crs.to_epsg() == 3413 and f.nodata == 255 and f.colormap(1)[255][3] == 0
        tags = f.tags()
        assert tags["SCENES"].split() == tif.mosaic.keys and tags["CHART"] == "SOD"
        assert tags["OVERLAP_RULE"].startswith("newest") and tags["RESOLUTION_M"] == "2000"
        assert f.res == (RES, RES)
    with xr.open_dataset(out / "nc" / "arctic.nc", decode_coords="all") as ds:
        assert ds.attrs["Conventions"] == "CF-1.8" and ds.attrs["scenes"].split() == tif.mosaic.keys
        assert CRS.from_cf(ds["crs"].attrs) == CRS.from_epsg(3413)
        assert ds["SIC"].encoding["_FillValue"] == 255 and "lat" in ds["SIC"].coords
        assert ds.attrs["time_coverage_start"] < ds.attrs["time_coverage_end"]


def test_quicklook_and_show_map_draw_maps_with_legends(synth_data, written, tmp_path):
    from PIL import Image

    from autoice.maps import OUTSIDE_LABEL, load_map, map_figure
    from autoice.plots import legend_labels

    out, tif, _ = written
    with Image.open(out / "tif" / "arctic.png") as im:
        assert im.width > 1000 and im.height > 400
    fig = map_figure(load_map(out / "tif" / "arctic_SOD.tif"))
    labels = legend_labels(fig)
    for chart in schema.CHARTS:
        assert set(schema.CLASS_NAMES[chart]) <= set(labels)
    assert [ax.get_xlabel() for ax in fig.axes[:3]] == ["x (km)"] * 3
    import matplotlib.pyplot as plt

    plt.close(fig)
    view = load_map(out / "nc" / "arctic.nc")
    assert view.grid.crs.to_epsg() == 3413 and all(v is not None for v in view.charts.values())
    scene = sorted((synth_data / "test").glob("*_prep.nc"))[0]
    fig = map_figure(load_map(scene, resolution=4000))
    assert OUTSIDE_LABEL in legend_labels(fig)
    plt.close(fig)
    for target in (out / "tif" / "arctic_FLOE.tif", out / "nc" / "arctic.nc", scene):
        png = tmp_path / f"{target.name}.png"
        with pytest.raises(SystemExit) as exit_:
            main(["show", "--map", str(target), "-o", str(png), "--max-size", "300", "--dpi", "40"])
        assert exit_.value.code == 0 and png.stat().st_size > 1000


# ----------------------------------------------------------------------------- bad input and atomic output
def _cli(args, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([str(a) for a in args])
    out = capsys.readouterr()
    return exit_.value.code, out.out, out.err


def _one_line_error(result, match: str) -> None:
    code, _, err = result
    assert code == 1, err
    lines = err.strip().splitlines()
    assert lines[-1].startswith("autoice: error: ") and match in lines[-1], err
    assert "Traceback" not in err


def test_bad_inputs_are_one_line_errors_and_leave_nothing(synth_data, pair, tmp_path, capsys):
    from autoice.submission import write_submission

    folder = pair[0] / "new"
    out = tmp_path / "out" / "m.tif"
    args = [folder, "-o", out, "--quiet", "--resolution", RES]
    notie = tmp_path / "notie"
    notie.mkdir()
    # a scene other than the pair's, so that the folder below holds three scenes
    refs = sorted((synth_data / "test").glob("*_prep_reference.nc"))
    ref = next(r for r in refs if r.name[:19] not in pair[1]["new"])
    shutil.copy(ref, notie)
    with xr.open_dataset(ref.with_name(ref.name[:19] + schema.RTT_SUFFIX)) as ds:
        ds.load().drop_vars(list(schema.TIEPOINT_VARIABLES)).to_netcdf(notie / (ref.name[:19] + schema.RTT_SUFFIX))
    _one_line_error(_cli(["mosaic", notie, "-o", out, "--quiet"], capsys), "sar_grid2d_latitude")
    _one_line_error(_cli(["mosaic", *args, "--crs", "EPSG:999999"], capsys), "unknown coordinate reference system")
    _one_line_error(_cli(["mosaic", *args, "--crs", "native"], capsys), "a mosaic or map needs a map CRS")
    for bad in ("0", "-5", "nan"):
        _one_line_error(_cli(["mosaic", folder, "-o", out, "--resolution", bad], capsys), "--resolution")
    _one_line_error(_cli(["mosaic", folder, "-o", out, "--resolution", "1"], capsys), "for a mosaic of 2 scenes")
    _one_line_error(_cli(["mosaic", *args, "--rule", "confident"], capsys), "--rule confident needs --uncertainty")
    _one_line_error(_cli(["mosaic", folder, "-o", tmp_path / "m.png"], capsys), "NAME.tif")
    preds = {"20991231T000000_dmi": {c: np.zeros((8, 8), np.uint8) for c in schema.CHARTS}}
    pkg = write_submission(preds, tmp_path / "upload_package.nc")
    _one_line_error(_cli(["mosaic", pkg, "-o", out, "--data", synth_data / "test"], capsys), "20991231T000000_dmi")
    # two scenes, one bad: both handled, the bad one named, no mosaic
    both = tmp_path / "both"
    shutil.copytree(folder, both)
    shutil.copy(notie / ref.name, both)
    shutil.copy(notie / (ref.name[:19] + schema.RTT_SUFFIX), both)
    code, _, err = _cli(["mosaic", both, "-o", out, "--quiet", "--resolution", RES], capsys)
    assert code == 1 and "Traceback" not in err
    assert [x for x in err.splitlines() if x.startswith("autoice: failed:")] == [
        x for x in err.splitlines() if ref.name[:19] in x and "sar_grid2d_latitude" in x]
    assert "1 of 3 scenes failed" in err and "no mosaic was written" in err
    assert not out.parent.exists() or not list(out.parent.iterdir())


def test_output_files_appear_together_or_not_at_all(pair, tmp_path, monkeypatch):
    import rasterio.shutil

    real = rasterio.shutil.copy
    calls = []

    def second_fails(*args, **kwargs):
        calls.append(args[1])
        if len(calls) == 2:
            Path(args[1]).write_bytes(b"partial")
            raise OSError("disk on fire")
        return real(*args, **kwargs)

    monkeypatch.setattr(rasterio.shutil, "copy", second_fails)
    out = tmp_path / "out"
    with pytest.raises(OSError, match="disk on fire"):
        mosaic([pair[0] / "new"], out / "m.tif", resolution=RES, progress=False)
    assert len(calls) == 2 and list(out.iterdir()) == []  # the first COG, complete, was not renamed either
    monkeypatch.setattr(rasterio.shutil, "copy", real)
    res = mosaic([pair[0] / "new"], out / "m.tif", resolution=RES, progress=False)
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in res.files)
    assert res.files == output_files(out / "m.tif", uncertainty=False)


def test_report_maps_the_predicted_scenes_only_with_tie_points(synth_data, tmp_path):
    from autoice.report import write_report
    from autoice.submission import write_submission

    refs = sorted((synth_data / "test").glob("*_prep_reference.nc"))
    preds = {r.name[:19]: {c: np.where(v == 255, 0, v) for c, v in _charts(r).items()} for r in refs}
    sub = write_submission(preds, tmp_path / "upload_package.nc")
    page = write_report(sub, [synth_data / "test"], tmp_path / "with.html", max_scenes=0).read_text()
    overview = page[page.index('id="mosaic"') :].split("</figure>")[0]
    assert "data:image/png;base64," in overview and f"{len(refs)} predicted scenes" in overview
    alone = tmp_path / "references"  # no _prep.nc beside the references: no tie points, no map (and no failure)
    alone.mkdir()
    for r in refs:
        shutil.copy(r, alone)
    page = write_report(sub, [alone], tmp_path / "without.html", max_scenes=0).read_text()
    assert "no map of the predicted scenes: no tie points" in page
