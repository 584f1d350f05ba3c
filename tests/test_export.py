"""Geolocation and ``autoice export``: checked against pyproj, a real S1 geolocation grid, and round trips."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from autoice import geolocation as gl
from autoice import schema
from autoice.errors import ConfigError, SceneError

#: the real Sentinel-1A EW geolocation grid (Nares Strait, 2021-04-03; shared/realdata/README.md)
ANNOTATION = (Path(__file__).resolve().parents[2] / "shared" / "realdata" / "s1_ew_annotation"
              / "s1a-ew1-slc-hh-20210403t122536-20210403t122628-037286-046484-001.xml")  # fmt: skip
RES = 1000.0  # the 96 x 128 synthetic scenes span ~400 km (miniatures): ~3 km pixels


def _geo(path: Path) -> gl.Geolocation:
    with xr.open_dataset(path) as ds:
        return gl.scene_geolocation(ds, path)


def _interior(chart: np.ndarray, margin: int = 2) -> np.ndarray:
    """Valid pixels whose (2 margin + 1)^2 neighbourhood holds one class: more than ``margin`` from a boundary."""
    h, w = chart.shape
    ok = chart != schema.CHART_FILL
    same = np.zeros_like(ok)
    core = chart[margin : h - margin, margin : w - margin]
    inner = np.ones_like(core, dtype=bool)
    for dr in range(-margin, margin + 1):
        for dc in range(-margin, margin + 1):
            inner &= chart[margin + dr : h - margin + dr, margin + dc : w - margin + dc] == core
    same[margin : h - margin, margin : w - margin] = inner
    return ok & same


# ----------------------------------------------------------------------------- geolocation
def test_geolocation_matches_geodesic_interpolation_by_pyproj(synth_data):
    from pyproj import Geod

    geod = Geod(ellps="WGS84")
    rng = np.random.default_rng(0)
    for path in sorted((synth_data / "train").glob("*_prep.nc"))[:4]:
        geo = _geo(path)
        lon_t, lat_t = geo.lonlat(geo.lines[[0, 5, 20]], geo.samples[[0, 7, 20]])
        assert np.allclose(lat_t, geo.latitude[[0, 5, 20], [0, 7, 20]])  # exact at the tie points
        h, w = geo.shape
        rows, cols = rng.uniform(0, h - 1, 200), rng.uniform(0, w - 1, 200)
        lon, lat = geo.lonlat(rows, cols)
        # independent: interpolate along geodesics between the 4 surrounding tie points
        i = np.clip(np.searchsorted(geo.lines, rows, side="right") - 1, 0, 19)
        j = np.clip(np.searchsorted(geo.samples, cols, side="right") - 1, 0, 19)
        u = (rows - geo.lines[i]) / (geo.lines[i + 1] - geo.lines[i])
        v = (cols - geo.samples[j]) / (geo.samples[j + 1] - geo.samples[j])
        la, lo = geo.latitude, geo.longitude

        def along(lon1, lat1, lon2, lat2, f):
            az, _, dist = geod.inv(lon1, lat1, lon2, lat2)
            x, y, _ = geod.fwd(lon1, lat1, az, dist * f)
            return np.asarray(x), np.asarray(y)

        ax, ay = along(lo[i, j], la[i, j], lo[i, j + 1], la[i, j + 1], v)
        bx, by = along(lo[i + 1, j], la[i + 1, j], lo[i + 1, j + 1], la[i + 1, j + 1], v)
        ex, ey = along(ax, ay, bx, by, u)
        _, _, err = geod.inv(lon, lat, ex, ey)
        cell = geod.inv(lo[0, 0], la[0, 0], lo[1, 1], la[1, 1])[2]
        assert np.max(err) < 0.01 * cell, (path.name, np.max(err), cell)  # < 1 % of a tie-point cell


def test_model_inputs_use_the_geolocation_module(synth_data):
    from autoice.data.inputs import read_channel

    path = sorted((synth_data / "train").glob("*_prep.nc"))[0]
    geo = _geo(path)
    lon, lat = geo.lonlat_grid(downscale=2)
    with xr.open_dataset(path) as ds:
        x = read_channel(ds, "latitude", 2)
        y = read_channel(ds, "longitude", 2)
    m, s = schema.LATLON_MEANSTD["latitude"]
    assert np.allclose(x, (lat - m) / s, atol=1e-5)
    m, s = schema.LATLON_MEANSTD["longitude"]
    assert np.allclose(y, (lon - m) / s, atol=1e-5)


def _grid(lat0=75.0, lon0=-40.0, n=21, step=0.2):
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    return lat0 + step * i, lon0 + 2 * step * j


def test_tiepoints_nan_or_non_monotonic_are_scene_errors(tmp_path):
    lat, lon = _grid()
    gl.check_tiepoints(lat, lon, "ok.nc")
    bad = lat.copy()
    bad[3, 4] = np.nan
    with pytest.raises(SceneError, match="non-finite"):
        gl.check_tiepoints(bad, lon, "nan.nc")
    swapped = lat.copy()
    swapped[[5, 6]] = swapped[[6, 5]]
    with pytest.raises(SceneError, match="monotonic"):
        gl.check_tiepoints(swapped, lon, "swap.nc")
    with pytest.raises(SceneError, match="monotonic"):
        gl.check_tiepoints(np.full_like(lat, 75.0), lon, "flat.nc")


def test_synthetic_scenes_sit_in_their_real_regions(synth_data):
    from autoice.synth.specs import REGIONS

    for path in sorted((synth_data / "train").glob("*_prep.nc")):
        geo = _geo(path)
        with xr.open_dataset(path) as ds:
            service, tail = ds.attrs["ice_service"], str(ds.attrs["original_id"]).split("_icechart_")[1]
        tokens = tail.split("_")
        region = next(REGIONS[service][t] for t in tokens if t in REGIONS[service])
        lon, lat = geo.outline()
        c_lon, c_lat = geo.lonlat([geo.shape[0] / 2], [geo.shape[1] / 2])
        assert region.lat[0] <= c_lat[0] <= region.lat[1] and region.lon[0] <= c_lon[0] <= region.lon[1]
        x, y = gl._local_xy(lon, lat)
        assert 300e3 < np.hypot(x.max() - x.min(), y.max() - y.min()) < 800e3  # a ~400 km swath


def _annotation_geolocation(shape=(490, 120)) -> tuple[gl.Geolocation, np.ndarray]:
    """21 x 21 tie points resampled (linearly in line/pixel) from the real S1 EW geolocation grid."""
    if not ANNOTATION.exists():
        pytest.skip(f"real S1 annotation not found at {ANNOTATION} (shared/ must sit beside the repository)")
    pts = ET.parse(ANNOTATION).findall(".//geolocationGridPoint")
    rec = np.array([[float(p.findtext(k)) for k in ("line", "pixel", "latitude", "longitude")] for p in pts])
    lines, pixels = np.unique(rec[:, 0]), np.unique(rec[:, 1])
    lat = rec[:, 2].reshape(len(lines), len(pixels))
    lon = rec[:, 3].reshape(len(lines), len(pixels))
    tl = np.linspace(lines[0], lines[-1], 21)
    tp = np.linspace(pixels[0], pixels[-1], 21)
    wl, wp = gl.interp_weights(tl, lines), gl.interp_weights(tp, pixels)
    geo = gl.Geolocation(latitude=wl @ lat @ wp.T, longitude=wl @ lon @ wp.T, shape=shape)
    corners = np.array([[lon[0, 0], lat[0, 0]], [lon[0, -1], lat[0, -1]], [lon[-1, 0], lat[-1, 0]],
                        [lon[-1, -1], lat[-1, -1]]])  # fmt: skip
    return geo, corners


def test_real_s1_geolocation_grid_footprint_contains_its_corners():
    from pyproj import CRS, Transformer

    geo, corners = _annotation_geolocation()
    gl.check_tiepoints(geo.latitude, geo.longitude, ANNOTATION)
    crs = CRS.from_epsg(3413)
    rep = gl.reproject_scene(np.ones(geo.shape, np.uint8), geo, crs, 500.0)
    x, y = Transformer.from_crs(gl.LONLAT, crs, always_xy=True).transform(corners[:, 0], corners[:, 1])
    cols, rows = ~rep.transform @ (np.asarray(x), np.asarray(y))
    inside = rep.data[0, rows.astype(int), cols.astype(int)]
    assert (inside == 1).all(), inside
    # and the Nares Strait scene lands where it is: 77-80 N, 60-75 W
    lon, lat = geo.outline()
    assert 76.5 < lat.min() and lat.max() < 80 and -75 < lon.min() and lon.max() < -60


def test_warp_passes_through_every_real_tie_point():
    """GDAL's spline goes through the tie points: a global polynomial missed this grid by up to 4 km."""
    from pyproj import CRS

    geo, _ = _annotation_geolocation(shape=(980, 240))  # ~400 m pixels
    h, w = geo.shape
    index = np.stack([np.broadcast_to(np.arange(h)[:, None], (h, w)), np.broadcast_to(np.arange(w), (h, w))])
    crs = CRS.from_epsg(3413)
    rep = gl.reproject_scene(index.astype(np.uint16), geo, crs, 100.0, nodata=65535)
    rows, cols = np.meshgrid(np.round(geo.lines).astype(int), np.round(geo.samples).astype(int), indexing="ij")
    x, y = gl.project_points(geo, rows.ravel(), cols.ravel(), crs)
    c, r = ~rep.transform @ (x, y)
    got = rep.data[:, r.astype(int), c.astype(int)]
    assert (got != 65535).all()
    off = np.hypot(got[0] - rows.ravel(), got[1] - cols.ravel())
    assert off.max() <= 1.5, off.max()  # within the nearest-neighbour rounding of one source pixel


def test_geolocation_across_the_antimeridian():
    lat, lon = _grid(lat0=70.0, lon0=175.0)
    lon = (lon + 180) % 360 - 180  # 175 .. 183 stored as 175 .. -177
    gl.check_tiepoints(lat, lon, "seam.nc")
    geo = gl.Geolocation(latitude=lat, longitude=gl.unwrap_longitude(lon), shape=(201, 201))
    glon, _ = geo.lonlat([100.0, 100.0], [0.0, 200.0])
    assert glon[0] == pytest.approx(175.0) and glon[1] == pytest.approx(-177.0)
    mid, _ = geo.lonlat([0.0, 0.0], [125.0, 127.5])  # between tie points at 179.8 and -179.8: across, not round
    assert abs(mid[0]) == pytest.approx(180.0) and mid[1] == pytest.approx(-179.9)


def test_parse_crs_and_resolution_errors():
    assert gl.parse_crs("native") is None
    assert gl.parse_crs("EPSG:3413").to_epsg() == 3413
    with pytest.raises(ConfigError, match="unknown coordinate reference system"):
        gl.parse_crs("EPSG:999999")
    for bad in (0, -80, float("nan")):
        with pytest.raises(ConfigError, match="--resolution"):
            gl.check_resolution(bad)


# ----------------------------------------------------------------------------- export
@pytest.fixture(scope="module")
def exported(synth_data, tmp_path_factory):
    from autoice.export import export

    out = tmp_path_factory.mktemp("export")
    src = [synth_data / "test", synth_data / "train"]
    export(src, out / "tif", fmt="geotiff", resolution=RES, progress=False)
    export(src, out / "nc", fmt="netcdf", resolution=RES, progress=False)
    return out


def _references(synth_data):
    refs = {p.name[:19]: p for p in sorted((synth_data / "test").glob("*_prep_reference.nc"))}
    refs.update({p.name[:19]: p for p in sorted((synth_data / "train").glob("*_prep.nc"))})
    return refs


def _scene_of(synth_data, key):
    for folder in ("test", "train"):
        p = synth_data / folder / f"{key}_prep.nc"
        if p.exists():
            return p
    raise AssertionError(key)


def test_round_trip_geotiff_and_netcdf(synth_data, exported):
    import rasterio
    from pyproj import CRS

    crs = CRS.from_epsg(3413)
    rng = np.random.default_rng(1)
    checked = 0
    for key, ref in _references(synth_data).items():
        geo = _geo(_scene_of(synth_data, key))
        with xr.open_dataset(ref) as ds:
            charts = {c: ds[c].values for c in schema.CHARTS}
        nc = xr.open_dataset(exported / "nc" / f"{key}.nc")
        for chart in schema.CHARTS:
            rows, cols = np.nonzero(_interior(charts[chart]))
            if len(rows) == 0:
                continue
            k = rng.choice(len(rows), min(300, len(rows)), replace=False)
            rows, cols = rows[k], cols[k]
            x, y = gl.project_points(geo, rows, cols, crs)
            truth = charts[chart][rows, cols]
            with rasterio.open(exported / "tif" / f"{key}_{chart}.tif") as tif:
                got = np.array([v[0] for v in tif.sample(zip(x, y, strict=True))])
            assert np.mean(got == truth) >= 0.99, (key, chart, np.mean(got == truth))
            got_nc = nc[chart].sel(x=xr.DataArray(x), y=xr.DataArray(y), method="nearest").values
            assert np.mean(got_nc == truth) >= 0.99, (key, chart, np.mean(got_nc == truth))
            checked += len(rows)
        nc.close()
    assert checked > 1000


def test_cog_is_valid_with_crs_nodata_colours_and_class_names(synth_data, exported):
    import rasterio

    from autoice.plots import CHART_COLOURS

    key = next(iter(_references(synth_data)))
    for chart in schema.CHARTS:
        with rasterio.open(exported / "tif" / f"{key}_{chart}.tif") as tif:
            assert tif.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
            assert tif.profile["tiled"] and tif.block_shapes[0] == (512, 512)
            assert tif.profile["compress"] == "deflate"
            assert tif.overviews(1), "no overviews"
            assert tif.crs.to_epsg() == 3413 and tif.nodata == 255 and tif.dtypes[0] == "uint8"
            assert tif.descriptions == (chart,)
            cmap = tif.colormap(1)
            assert [cmap[k][:3] for k in range(schema.N_CLASSES[chart])] == list(CHART_COLOURS[chart])
            assert cmap[255][3] == 0  # no data is transparent
            tags = tif.tags(1)
            assert [tags[f"CLASS_{k}"].split(";")[0] for k in range(schema.N_CLASSES[chart])] == list(
                schema.CLASS_NAMES[chart]
            )
            assert tif.tags()["SCENE_TIME"].startswith(f"{key[:4]}-{key[4:6]}-{key[6:8]}T")
            assert set(np.unique(tif.read(1))) <= set(range(schema.N_CLASSES[chart])) | {255}
            assert (tif.read(1) == 255).any()  # outside the swath
    assert not list((exported / "tif").glob(".*"))  # no temporaries or .aux.xml sidecars


def test_netcdf_is_cf_with_a_grid_mapping_pyproj_understands(synth_data, exported):
    from pyproj import CRS, Transformer

    key = next(iter(_references(synth_data)))
    with xr.open_dataset(exported / "nc" / f"{key}.nc", decode_coords="all") as ds:
        assert ds.attrs["Conventions"] == "CF-1.8"
        assert {"source_file", "software", "scene_time"} <= set(ds.attrs)
        assert CRS.from_cf(ds["crs"].attrs) == CRS.from_epsg(3413)
        for chart in schema.CHARTS:
            v = ds[chart]
            assert v.encoding["_FillValue"] == 255 and v.encoding["dtype"] == np.uint8
            assert list(v.attrs["flag_values"]) == list(range(schema.N_CLASSES[chart]))
            assert len(v.attrs["flag_meanings"].split()) == schema.N_CLASSES[chart]
            assert "lat" in v.coords and "lon" in v.coords
        assert ds.x.attrs["standard_name"] == "projection_x_coordinate" and ds.x.attrs["units"] == "m"
        i, j = ds.sizes["y"] // 2, ds.sizes["x"] // 3
        lon, lat = Transformer.from_crs(3413, "OGC:CRS84", always_xy=True).transform(ds.x[j].item(), ds.y[i].item())
        assert abs(ds.lat[i, j].item() - lat) < 1e-4 and abs(ds.lon[i, j].item() - lon) < 1e-4


def test_native_crs_keeps_the_swath_with_gcps(synth_data, tmp_path):
    import rasterio

    from autoice.export import export

    ref = next(iter((synth_data / "test").glob("*_prep_reference.nc")))
    export([ref], tmp_path, crs="native", progress=False)
    key = ref.name[:19]
    with rasterio.open(tmp_path / f"{key}_SIC.tif") as tif, xr.open_dataset(ref) as ds:
        assert tif.shape == ds["SIC"].shape
        assert np.array_equal(tif.read(1), ds["SIC"].values)
        gcps, crs = tif.gcps
        assert len(gcps) == 441 and crs.to_epsg() == 4326


def test_geographic_crs_is_longitude_first(synth_data, tmp_path):
    import rasterio

    from autoice.export import export

    ref = next(iter((synth_data / "test").glob("*_prep_reference.nc")))
    export([ref], tmp_path, crs="EPSG:4326", resolution=5000, progress=False)
    geo = _geo(ref.with_name(ref.name.replace("_reference", "")))
    lon, lat = geo.outline()
    with rasterio.open(tmp_path / f"{ref.name[:19]}_SIC.tif") as tif:
        left, bottom, right, top = tif.bounds
    assert left <= lon.min() + 0.1 and right >= lon.max() - 0.1
    assert bottom <= lat.min() + 0.1 and top >= lat.max() - 0.1 and top <= 90


def _package(synth_data, path: Path, keys=None) -> Path:
    from autoice.submission import write_submission

    preds = {}
    for ref in sorted((synth_data / "test").glob("*_prep_reference.nc")):
        with xr.open_dataset(ref) as ds:
            preds[ref.name[:19]] = {c: np.where(ds[c].values == 255, 0, ds[c].values) for c in schema.CHARTS}
    if keys is not None:
        preds.update(keys)
    return write_submission(preds, path)


def test_predictions_with_uncertainty(synth_data, tmp_path):
    import rasterio

    from autoice.export import export
    from autoice.scenes import write_netcdf

    pkg = _package(synth_data, tmp_path / "upload_package.nc")
    unc = tmp_path / "unc"
    unc.mkdir()
    for ref in sorted((synth_data / "test").glob("*_prep_reference.nc")):
        with xr.open_dataset(ref) as ds:
            h, w = ds["SIC"].shape
        maps = {c: (("lines", "samples"), np.full((-(-h // 2), -(-w // 2)), 0.5, np.float32)) for c in schema.CHARTS}
        write_netcdf(xr.Dataset(maps, attrs={"downscale": 2}), unc / f"{ref.name[:19]}_uncertainty.nc")
    res = export([pkg], tmp_path / "out", data=synth_data / "test", uncertainty=unc, resolution=RES, progress=False)
    assert len(res.scenes) == 2 and len(res.files) == 8
    key = res.scenes[0]
    with rasterio.open(tmp_path / "out" / f"{key}_uncertainty.tif") as tif:
        assert tif.count == 3 and tif.dtypes == ("float32",) * 3
        a = tif.read(1)
        assert np.nanmax(a) == pytest.approx(0.5) and np.isnan(a).any()
    with rasterio.open(tmp_path / "out" / f"{key}_SIC.tif") as tif:
        assert tif.tags()["CHARTS"] == "model prediction" and tif.tags()["SOURCE_FILE"] == "upload_package.nc"
    export([pkg], tmp_path / "nc", fmt="netcdf", data=synth_data / "test", uncertainty=unc, resolution=RES,
           progress=False)  # fmt: skip
    with xr.open_dataset(tmp_path / "nc" / f"{key}.nc") as ds:
        assert ds["SIC_uncertainty"].dtype == np.float32


def test_predictions_are_no_data_on_land_and_beyond_the_swath(synth_data, tmp_path):
    """The model predicts every pixel; the products show none where the scene has no SAR data or is land."""
    import rasterio

    from autoice.export import export
    from autoice.scenes import chartless, open_scene

    keys = [p.name[:19] for p in sorted((synth_data / "test").glob("*_prep.nc"))]
    shapes = {}
    for k in keys:
        with xr.open_dataset(synth_data / "test" / f"{k}_prep.nc") as ds:
            shapes[k] = ds[schema.SAR_VARIABLES[0]].shape
    preds = {k: {c: np.ones(shapes[k], np.uint8) for c in schema.CHARTS} for k in keys}
    from autoice.submission import write_submission

    pkg = write_submission(preds, tmp_path / "upload_package.nc")
    export([pkg], tmp_path / "nc", fmt="netcdf", crs="native", data=synth_data / "test", progress=False)
    export([pkg], tmp_path / "tif", data=synth_data / "test", resolution=RES, progress=False)
    for k in keys:
        with open_scene(synth_data / "test" / f"{k}_prep.nc") as ds:
            outside = chartless(ds)
        assert outside is not None and 0 < outside.sum() < outside.size
        with xr.open_dataset(tmp_path / "nc" / f"{k}.nc", mask_and_scale=False) as ds:
            for c in schema.CHARTS:
                np.testing.assert_array_equal(ds[c].values == schema.CHART_FILL, outside)
                assert (ds[c].values[~outside] == 1).all()
        with rasterio.open(tmp_path / "tif" / f"{k}_SIC.tif") as tif:
            a = tif.read(1)
        assert set(np.unique(a)) == {1, schema.CHART_FILL}
    with xr.open_dataset(pkg) as ds:  # the package itself keeps every pixel, as the format asks
        assert (ds[f"{keys[0]}_SIC"].values == 1).all()


# ----------------------------------------------------------------------------- bad input: one line, no output
def _run(args):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "autoice", "export", *map(str, args), "--quiet"],
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def _one_line_error(proc, match: str):
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("autoice: error: ") and match in lines[-1], proc.stderr
    assert "Traceback" not in proc.stderr


def test_bad_inputs_are_one_line_errors_and_leave_nothing(synth_data, tmp_path):
    ref = next(iter(sorted((synth_data / "test").glob("*_prep_reference.nc"))))
    scene = ref.with_name(ref.name.replace("_reference", ""))
    out = tmp_path / "out"
    # a scene without tie points / with NaN tie points
    for name, edit, match in (
        ("none", lambda ds: ds.drop_vars(list(schema.TIEPOINT_VARIABLES)), "sar_grid2d"),
        ("nan", lambda ds: ds.assign({schema.TIEPOINT_LATITUDE: ds[schema.TIEPOINT_LATITUDE].where(
            ds[schema.TIEPOINT_LATITUDE] < ds[schema.TIEPOINT_LATITUDE].max())}), "non-finite"),  # fmt: skip
    ):
        folder = tmp_path / name
        folder.mkdir()
        shutil.copy(ref, folder / ref.name)
        with xr.open_dataset(scene) as ds:
            edit(ds.load()).to_netcdf(folder / scene.name)
        _one_line_error(_run([folder / ref.name, "-o", out]), match)
    _one_line_error(_run([ref, "-o", out, "--crs", "EPSG:999999"]), "unknown coordinate reference system")
    _one_line_error(_run([ref, "-o", out, "--resolution", "0"]), "--resolution")
    _one_line_error(_run([ref, "-o", out, "--resolution", "-5"]), "--resolution")
    _one_line_error(_run([ref, "-o", out, "--resolution", "0.01"]), "choose a coarser resolution")
    pkg = _package(synth_data, tmp_path / "upload_package.nc",
                   keys={"20991231T000000_dmi": {c: np.zeros((8, 8), np.uint8) for c in schema.CHARTS}})
    _one_line_error(_run([pkg, "-o", out, "--data", synth_data / "test"]), "20991231T000000_dmi")
    _one_line_error(_run([pkg, "-o", out]), "--data")
    assert not out.exists() or not list(out.iterdir())


def test_output_is_atomic_when_the_write_fails(synth_data, tmp_path, monkeypatch):
    import rasterio.shutil

    from autoice.export import export

    def broken(*args, **kwargs):
        Path(args[1]).write_bytes(b"partial")
        raise OSError("disk on fire")

    monkeypatch.setattr(rasterio.shutil, "copy", broken)
    ref = next(iter((synth_data / "test").glob("*_prep_reference.nc")))
    with pytest.raises(Exception):  # noqa: B017
        export([ref], tmp_path, resolution=RES, progress=False)
    assert list(tmp_path.iterdir()) == []
