"""``autoice export --format sigrid3``: polygons whose egg codes the project's decoder reads back to the prediction."""

from __future__ import annotations

import contextlib
import io
import itertools
import shutil
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from autoice import charts, schema, sigrid
from autoice import geolocation as gl

RES = 1000.0  # the 96 x 128 synthetic scenes span ~400 km (miniatures): ~3 km pixels
CRS_CODE = 3413


def _geo(path: Path) -> gl.Geolocation:
    with xr.open_dataset(path) as ds:
        return gl.scene_geolocation(ds, path)


def _read(path: Path) -> tuple[dict, np.ndarray, dict[str, np.ndarray]]:
    import pyogrio
    import shapely

    meta, _, wkb, values = pyogrio.raw.read(path)
    return meta, shapely.from_wkb(wkb), dict(zip(meta["fields"], values, strict=True))


def _decode(fields: dict[str, np.ndarray], mode: str = "official") -> np.ndarray:
    """(n, 3) classes of each polygon, through the project's decoder of AI4Arctic ``polygon_codes``."""
    rows = [";".join(schema.POLYGON_CODES_HEADER)]
    for i in range(len(fields["CT"])):
        rows.append(";".join([str(i), *(str(fields[f][i]) for f in schema.POLYGON_CODES_HEADER[1:])]))
    table = charts.decode_polygon_codes(rows, mode=mode)
    assert table.undecodable == {c: 0 for c in schema.CHARTS}
    return np.stack([table.classes[c] for c in schema.CHARTS], axis=1)


def _expected(stack: np.ndarray) -> np.ndarray:
    """What SIGRID-3 can carry: water (SIC 0) has SOD = FLOE = 0 (the decoder's rule)."""
    out = stack.copy()
    water = out[0] == 0
    out[1][water] = 0
    out[2][water] = 0
    return out


def _interior(label: np.ndarray, margin: int = 2) -> np.ndarray:
    """Pixels whose (2 margin + 1)^2 neighbourhood holds one value: more than ``margin`` pixels from a boundary."""
    h, w = label.shape
    core = label[margin : h - margin, margin : w - margin]
    same = np.ones_like(core, dtype=bool)
    for dr, dc in itertools.product(range(-margin, margin + 1), repeat=2):
        same &= label[margin + dr : h - margin + dr, margin + dc : w - margin + dc] == core
    out = np.zeros(label.shape, bool)
    out[margin : h - margin, margin : w - margin] = same
    return out


# ----------------------------------------------------------------------------- the code table
def test_every_class_triple_decodes_back_in_both_modes_and_threshold_sets():
    triples = list(itertools.product(range(schema.N_CLASSES["SIC"]), [*range(schema.N_CLASSES["SOD"]), 255],
                                     [*range(schema.N_CLASSES["FLOE"]), 255]))  # fmt: skip
    fields = {f: np.array([sigrid.egg_code(*t)[f] for t in triples]) for f in sigrid.SIGRID_FIELDS}
    want = _expected(np.array(triples, np.uint8).T[:, :, None])[:, :, 0].T
    for mode, thr in itertools.product(charts.MODES, schema.THRESHOLDS.values()):
        rows = [";".join(schema.POLYGON_CODES_HEADER)]
        rows += [";".join([str(i), *(fields[f][i] for f in sigrid.SIGRID_FIELDS)]) for i in range(len(triples))]
        table = charts.decode_polygon_codes(rows, mode=mode, sod_threshold=thr["SOD"], floe_threshold=thr["FLOE"])
        got = np.stack([table.classes[c] for c in schema.CHARTS], axis=1)
        assert np.array_equal(got, want), (mode, thr)
    # the chosen codes are those of the format's tables, written as CIS does (two characters, zero padded)
    assert all(schema.SIC_CODES[ct] == k for k, ct in sigrid.CT_CODE.items()) and sigrid.CT_CODE[10] == 92
    assert all(schema.SOD_CODES[sa] == k for k, sa in sigrid.SA_CODE.items())
    assert all(schema.FLOE_CODES[fa] == k for k, fa in sigrid.FA_CODE.items())
    assert sigrid.egg_code(10, 2, 3) == {**{f: "-9" for f in sigrid.SIGRID_FIELDS}, "CT": "92", "SA": "83",
                                         "FA": "04", "POLY_TYPE": "I"}  # fmt: skip
    assert sigrid.egg_code(0, 4, 4)["POLY_TYPE"] == "W" and sigrid.egg_code(0, 4, 4)["CT"] == "00"
    assert sigrid.egg_code(3, 0, 1)["CT"] == "30" and sigrid.egg_code(3, 0, 1)["FA"] == "02"


def test_readme_documents_the_code_table():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    for sa in sigrid.SA_CODE.values():
        assert f"`{sa:02d}`" in readme
    for fa in sigrid.FA_CODE.values():
        assert f"`{fa:02d}`" in readme
    assert "`92`" in readme and "POLY_TYPE" in readme and "sigrid3" in readme


# ----------------------------------------------------------------------------- round trip on synthetic scenes
def _package(synth_data: Path, path: Path, *, rng_seed: int = 3) -> tuple[Path, dict[str, np.ndarray]]:
    """A prediction for each test scene (both services): its reference, with classes where it has none.

    A model predicts every class everywhere: 16 x 16 blocks of random classes fill the reference's 255.
    """
    from autoice.submission import write_submission

    rng = np.random.default_rng(rng_seed)
    preds, stacks = {}, {}
    for ref in sorted((synth_data / "test").glob("*_prep_reference.nc")):
        with xr.open_dataset(ref) as ds:
            stack = np.stack([ds[c].values for c in schema.CHARTS])
        h, w = stack.shape[1:]
        for i, chart in enumerate(schema.CHARTS):
            blocks = rng.integers(0, schema.N_CLASSES[chart], (-(-h // 16), -(-w // 16))).astype(np.uint8)
            fill = np.kron(blocks, np.ones((16, 16), np.uint8))[:h, :w]
            stack[i] = np.where(stack[i] == 255, fill, stack[i])
        key = ref.name[: schema.SCENE_KEY_LENGTH]
        preds[key] = {c: stack[i] for i, c in enumerate(schema.CHARTS)}
        stacks[key] = stack
    return write_submission(preds, path), stacks


@pytest.fixture(scope="module")
def exported(synth_data, tmp_path_factory):
    from autoice.export import export

    out = tmp_path_factory.mktemp("sigrid")
    pkg, stacks = _package(synth_data, out / "upload_package.nc")
    export([pkg], out / "pred" / "chart.shp", fmt="sigrid3", data=synth_data / "test", resolution=RES,
           progress=False)  # fmt: skip
    export([pkg], out / "pred" / "chart.gpkg", fmt="sigrid3", data=synth_data / "test", resolution=RES,
           progress=False)  # fmt: skip
    export(_train(synth_data), out / "train" / "chart.shp", fmt="sigrid3", resolution=RES, progress=False)
    return out, stacks


def _train(synth_data: Path) -> list[Path]:
    """Two training scenes of each service."""
    scenes = sorted((synth_data / "train").glob("*_prep.nc"))
    return [p for s in schema.SERVICES for p in [q for q in scenes if q.name[16:19] == s][:2]]


def _shown(scene: Path, stack: np.ndarray) -> np.ndarray:
    """A prediction as the products show it: no data where its scene has no SAR data or is land."""
    from autoice.scenes import chartless, open_scene

    with open_scene(scene) as ds:
        outside = chartless(ds)
    assert outside is not None and outside.any()
    return np.where(outside, np.uint8(schema.CHART_FILL), stack)


def _scenes(synth_data, stacks):
    """(key, scene file with the tie points, expected charts) for the package's and the training scenes."""
    for key, stack in stacks.items():
        scene = synth_data / "test" / f"{key}{schema.RTT_SUFFIX}"
        yield "pred", key, scene, _shown(scene, stack)
    for path in _train(synth_data):
        with xr.open_dataset(path) as ds:
            stack = np.stack([ds[c].values for c in schema.CHARTS])
        yield "train", path.name[: schema.SCENE_KEY_LENGTH], path, stack


def test_exported_file_opens_with_its_crs_and_scene_attributes(exported):
    from pyproj import CRS

    out, stacks = exported
    for name in ("chart.shp", "chart.gpkg"):
        meta, geoms, fields = _read(out / "pred" / name)
        assert CRS.from_user_input(meta["crs"]).equals(CRS.from_epsg(CRS_CODE))
        assert meta["geometry_type"] == "Polygon" and len(geoms) > 20
        assert set(sigrid.SIGRID_FIELDS) <= set(fields) and {"SCENE", "SCENE_TIME", "AREA"} <= set(fields)
        assert set(fields["SCENE"]) == set(stacks)
        for key, t in zip(fields["SCENE"], fields["SCENE_TIME"], strict=True):
            assert t == f"{key[:4]}-{key[4:6]}-{key[6:8]}T{key[9:11]}:{key[11:13]}:{key[13:15]}Z"
        assert set(fields["POLY_TYPE"]) == {"I", "W"}
    prj = CRS.from_wkt((out / "pred" / "chart.prj").read_text())  # the shapefile's CRS file
    assert prj.to_epsg() == CRS_CODE and prj.equals(CRS.from_epsg(CRS_CODE), ignore_axis_order=True)
    assert sorted(p.suffix for p in (out / "pred").iterdir()) == [".cpg", ".dbf", ".gpkg", ".prj", ".shp", ".shx"]
    _, _, a = _read(out / "pred" / "chart.shp")
    _, _, b = _read(out / "pred" / "chart.gpkg")
    for f in sigrid.SIGRID_FIELDS:
        assert list(a[f]) == list(b[f])


def test_round_trip_reproduces_the_prediction_on_both_services(synth_data, exported):
    import rasterio.features
    import shapely
    from pyproj import CRS

    out, stacks = exported
    crs = CRS.from_epsg(CRS_CODE)
    files = {"pred": _read(out / "pred" / "chart.shp"), "train": _read(out / "train" / "chart.shp")}
    services, checked = set(), 0
    for which, key, scene, stack in _scenes(synth_data, stacks):
        _, geoms, fields = files[which]
        mine = fields["SCENE"] == key
        classes = _decode({f: v[mine] for f, v in fields.items()})
        assert np.array_equal(classes, _decode({f: v[mine] for f, v in fields.items()}, mode="corrected"))
        assert np.array_equal(classes, np.stack([fields[c][mine] for c in schema.CHARTS], axis=1))
        rep = gl.reproject_scene(stack, _geo(scene), crs, RES)
        want = _expected(rep.data)
        h, w = want.shape[1:]
        index = rasterio.features.rasterize(zip(geoms[mine], range(1, mine.sum() + 1), strict=True), out_shape=(h, w),
                                            transform=rep.transform, fill=0, dtype=np.int32)  # fmt: skip
        lut = np.concatenate([np.full((1, 3), 255, np.uint8), classes])
        got = lut[index].transpose(2, 0, 1)
        label = (want[0].astype(np.int32) * 256 + want[1]) * 256 + want[2]
        inner = _interior(label)
        data = inner & (want[0] != 255)
        assert data.sum() > 1000, key
        agree = (got[:, data] == want[:, data]).all(axis=0).mean()
        assert agree >= 0.99, (key, agree)
        nodata = inner & (want[0] == 255)
        assert (index[nodata] == 0).mean() >= 0.99, key  # no data is not exported
        assert shapely.is_valid(geoms[mine]).all()
        services.add(key[-3:])
        checked += 1
    assert services == set(schema.SERVICES) and checked == len(stacks) + 4


def test_polygons_have_no_gaps_or_overlaps(exported):
    import shapely

    out, _ = exported
    _, geoms, fields = _read(out / "pred" / "chart.gpkg")
    for key in sorted(set(fields["SCENE"])):
        g = geoms[fields["SCENE"] == key]
        union = shapely.union_all(g)
        total = shapely.area(g).sum()
        assert union.area == pytest.approx(total, rel=1e-9)  # no overlaps
        assert shapely.coverage_is_valid(g, gap_width=RES / 2)  # edges shared exactly, no sliver gaps
        assert np.sum(fields["AREA"][fields["SCENE"] == key]) == pytest.approx(total, rel=1e-9)


# ----------------------------------------------------------------------------- the raster steps
def _blocks() -> np.ndarray:
    """A 60 x 80 prediction: four big regions, three specks, a small island in no data, no data around."""
    stack = np.full((3, 60, 80), 255, np.uint8)
    stack[:, 5:55, 5:75] = np.array([5, 2, 3], np.uint8)[:, None, None]
    stack[:, 5:55, 40:75] = np.array([10, 4, 5], np.uint8)[:, None, None]
    stack[:, 30:55, 5:40] = np.array([0, 0, 0], np.uint8)[:, None, None]
    stack[:, 30:55, 40:75] = np.array([8, 1, 255], np.uint8)[:, None, None]
    stack[:, 15:18, 15:18] = np.array([9, 5, 6], np.uint8)[:, None, None]  # 9 px inside region 1
    stack[:, 10:12, 39:42] = np.array([2, 3, 1], np.uint8)[:, None, None]  # 6 px across regions 1 | 2
    stack[:, 45:47, 60:62] = np.array([10, 4, 5], np.uint8)[:, None, None]  # 4 px of region 2's triple in 4
    stack[:, 1:3, 1:3] = np.array([4, 4, 4], np.uint8)[:, None, None]  # 4 px island in no data
    return stack


def test_small_regions_are_merged_into_their_neighbour_and_islands_kept():
    import shapely
    from affine import Affine

    stack = _blocks()
    t = Affine(100.0, 0, 0, 0, -100.0, 6000.0)
    kept = sigrid.polygonize(stack, t, min_pixels=1, tolerance=0)
    assert len(kept.geometry) == 8  # 4 regions, 3 specks, 1 island: nothing merged at 1 pixel
    assert shapely.coverage_is_valid(kept.geometry)  # T-junctions noded: neighbours share every vertex
    merged = sigrid.polygonize(stack, t, min_pixels=10, tolerance=0)
    assert len(merged.geometry) == 5
    px = shapely.area(merged.geometry) / 100.0**2
    small = px < 10
    assert small.sum() == 1 and tuple(merged.classes[small][0]) == (4, 4, 4)  # the island: no neighbour
    assert sorted(map(tuple, merged.classes.tolist())) == sorted([(5, 2, 3), (10, 4, 5), (0, 0, 0), (8, 1, 255),
                                                                  (4, 4, 4)])  # fmt: skip
    # the 9-pixel speck went to the region around it; no data was neither filled nor grown
    inside = merged.geometry[[tuple(c) == (5, 2, 3) for c in merged.classes.tolist()]][0]
    assert inside.contains(shapely.Point(1650, 6000 - 1650)) and not inside.interiors
    assert shapely.area(merged.geometry).sum() == pytest.approx(shapely.area(kept.geometry).sum())
    assert shapely.union_all(merged.geometry).area == pytest.approx(shapely.area(merged.geometry).sum())


def test_a_noisy_patch_is_absorbed_pass_by_pass(monkeypatch):
    """GDAL's sieve merges a small region only into a neighbour as large as the area: one pass per layer."""
    import shapely
    from affine import Affine

    rng = np.random.default_rng(0)
    stack = np.full((3, 40, 40), 2, np.uint8)  # one large region ...
    patch = np.kron(rng.integers(3, 6, (3, 10, 10)), np.ones((2, 2), int)).astype(np.uint8)
    stack[:, 10:30, 10:30] = patch  # ... around 100 blocks of 2 x 2 pixels, nearly all of their own triple
    kept = sigrid.polygonize(stack, Affine.identity(), min_pixels=1, tolerance=0)
    assert len(kept.geometry) > 80
    monkeypatch.setattr(sigrid, "SIEVE_PASSES", 1)
    once = sigrid.polygonize(stack, Affine.identity(), min_pixels=10, tolerance=0)
    assert shapely.area(once.geometry).min() < 10  # the patch's inner blocks touch no large region yet
    monkeypatch.undo()
    merged = sigrid.polygonize(stack, Affine.identity(), min_pixels=10, tolerance=0)
    assert shapely.area(merged.geometry).min() >= 10 and shapely.area(merged.geometry).sum() == 1600
    assert shapely.coverage_is_valid(merged.geometry)


def test_sieve_threshold_comes_from_the_documented_area():
    assert sigrid.min_pixels(sigrid.MIN_AREA_KM2, 80.0) == 157  # 1 km² / (80 m)² = 156.25
    assert sigrid.min_pixels(1.0, 1000.0) == 1 and sigrid.min_pixels(0.0, 80.0) == 1
    assert sigrid.min_pixels(2.0, 1000.0) == 2


def test_simplification_removes_stair_steps_without_moving_boundaries_far():
    import rasterio.features
    import shapely
    from affine import Affine

    yy, xx = np.mgrid[0:120, 0:160]
    stack = np.zeros((3, 120, 160), np.uint8)
    stack[0] = np.where(yy > 0.6 * xx + 10, 3, 7)  # a diagonal boundary: stair-steps on the grid
    stack[1], stack[2] = 1, 2
    stack[:, (xx - 110) ** 2 + (yy - 40) ** 2 < 300] = np.array([9, 5, 4], np.uint8)[:, None]  # a disc
    t = Affine.identity()
    raw = sigrid.polygonize(stack, t, tolerance=0)
    simple = sigrid.polygonize(stack, t, tolerance=sigrid.TOLERANCE_PX)
    assert shapely.coverage_is_valid(raw.geometry)
    assert shapely.get_num_coordinates(simple.geometry).sum() < 0.5 * shapely.get_num_coordinates(raw.geometry).sum()
    assert shapely.coverage_is_valid(simple.geometry)
    assert shapely.union_all(simple.geometry).area == pytest.approx(shapely.area(simple.geometry).sum())
    for a, b in zip(raw.geometry, simple.geometry, strict=True):
        assert shapely.hausdorff_distance(a.boundary, b.boundary) <= 1.5  # pixels
    back = rasterio.features.rasterize(zip(simple.geometry, range(1, len(simple.geometry) + 1), strict=True),
                                       out_shape=(120, 160), transform=t, dtype=np.int32)  # fmt: skip
    want = sigrid.encode_triples(stack)
    lut = np.concatenate([[0], sigrid.encode_triples(simple.classes.T[:, :, None])[:, 0]])
    inner = _interior(want)
    assert (lut[back][inner] == want[inner]).mean() == 1.0


# ----------------------------------------------------------------------------- uncertainty
def test_each_polygon_carries_its_mean_uncertainty(synth_data, tmp_path):
    import rasterio.features
    from pyproj import CRS

    from autoice.export import export
    from autoice.scenes import write_netcdf

    pkg, stacks = _package(synth_data, tmp_path / "upload_package.nc")
    unc = tmp_path / "unc"
    unc.mkdir()
    for key, stack in stacks.items():
        h, w = stack.shape[1:]
        rows = np.arange(-(-h // 2), dtype=np.float32)[:, None] / h
        maps = {c: (("lines", "samples"), np.broadcast_to(rows + 0.1 * i, (-(-h // 2), -(-w // 2))).copy())
                for i, c in enumerate(schema.CHARTS)}  # fmt: skip
        write_netcdf(xr.Dataset(maps, attrs={"downscale": 2}), unc / f"{key}_uncertainty.nc")
    res = export([pkg], tmp_path / "out.gpkg", fmt="sigrid3", data=synth_data / "test", uncertainty=unc,
                 resolution=RES, progress=False)  # fmt: skip
    assert res.files == [tmp_path / "out.gpkg"] and sorted(res.scenes) == sorted(stacks)
    _, geoms, fields = _read(tmp_path / "out.gpkg")
    assert {"UNC_SIC", "UNC_SOD", "UNC_FLOE"} <= set(fields)
    key = sorted(stacks)[0]
    mine = fields["SCENE"] == key
    geo = _geo(synth_data / "test" / f"{key}{schema.RTT_SUFFIX}")
    crs = CRS.from_epsg(CRS_CODE)
    grid = gl.scene_grid(geo, crs, RES)
    with xr.open_dataset(unc / f"{key}_uncertainty.nc") as ds:
        maps = np.stack([ds[c].values for c in schema.CHARTS])
    ref = gl.reproject_scene(maps, geo, crs, grid=grid, downscale=2, nodata=np.nan).data
    index = rasterio.features.rasterize(zip(geoms[mine], range(1, mine.sum() + 1), strict=True),
                                        out_shape=(grid.height, grid.width), transform=grid.transform,
                                        dtype=np.int32)  # fmt: skip
    big = 0
    for i, chart in enumerate(schema.CHARTS):
        got = fields[f"UNC_{chart}"][mine]
        assert np.all((got >= 0.1 * i - 1e-6) & (got <= 0.5 + 0.1 * i + 1e-6))
        for p in range(mine.sum()):
            px = index == p + 1
            if px.sum() >= 30:  # the simplified outline differs from the pixel edges by a pixel at most
                assert abs(np.nanmean(ref[i][px]) - got[p]) < 0.02, (chart, p)
                big += 1
    assert big > 10
    assert np.std(fields["UNC_SIC"][mine]) > 0.01  # polygons differ: means, not one scene-wide value


# ----------------------------------------------------------------------------- bad input, atomic output
def _cli(args: list[str]) -> tuple[int, str]:
    from autoice.cli.main import main

    err = io.StringIO()
    code = 0
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            main(["export", *map(str, args), "--quiet"])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    return code, err.getvalue()


def _one_line(args: list[str], match: str) -> None:
    code, err = _cli(args)
    lines = [x for x in err.strip().splitlines() if x.startswith("autoice: error:")]
    assert code == 1 and len(lines) == 1 and match in lines[0], err
    assert "Traceback" not in err


def _leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob(".*") if p.name.endswith((".tmp", ".parts"))]


def test_bad_inputs_are_one_line_errors_and_write_nothing(synth_data, tmp_path):

    ref = sorted((synth_data / "test").glob("*_prep_reference.nc"))[0]
    out = tmp_path / "out"
    out.mkdir()
    sig = ["--format", "sigrid3", "--resolution", str(RES)]
    _one_line([ref, "-o", out / "chart.tif", *sig], "shapefile (.shp) or a GeoPackage (.gpkg)")
    _one_line([ref, "-o", out / "chart", *sig], "no extension")
    (out / "adir.shp").mkdir()
    _one_line([ref, "-o", out / "adir.shp", *sig], "a folder is in the way")
    _one_line([ref, "-o", out / "chart.shp", *sig, "--crs", "native"], "needs a map CRS")
    _one_line([ref, "-o", out / "chart.shp", "--format", "sigrid3", "--resolution", "0"], "--resolution")
    _one_line([ref, "-o", out / "chart.shp", *sig, "--uncertainty", tmp_path / "none"], "no such folder")
    (tmp_path / "afile").write_text("in the way")
    _one_line([ref, "-o", tmp_path / "afile" / "chart.gpkg", *sig], "afile")
    import netCDF4

    pkg, stacks = _package(synth_data, tmp_path / "upload_package.nc")
    key = sorted(stacks)[0]
    with netCDF4.Dataset(pkg, "a") as nc:
        nc[schema.submission_variable(key, "SOD")][3, 3] = 17
    code, err = _cli([pkg, "-o", tmp_path / "mixed.gpkg", *sig, "--data", synth_data / "test"])
    sod = schema.submission_variable(key, "SOD")
    assert code == 1 and f"{pkg}: {sod} has 1 pixels outside the SOD classes 0..5" in err, err
    assert "1 of 2 scenes failed" in err
    assert set(_read(tmp_path / "mixed.gpkg")[2]["SCENE"]) == set(stacks) - {key}  # the good scene is written
    _one_line([pkg, "-o", out / "chart.gpkg", *sig], "--data")
    assert sorted(p.name for p in out.iterdir()) == ["adir.shp"] and not list((out / "adir.shp").iterdir())
    assert not _leftovers(tmp_path)


def test_a_bad_scene_is_named_and_the_others_are_written(synth_data, tmp_path):
    src = tmp_path / "scenes"
    src.mkdir()
    train = sorted((synth_data / "train").glob("*_prep.nc"))[:3]
    for p in train:
        shutil.copy(p, src)
    broken = src / train[1].name
    broken.write_bytes(broken.read_bytes()[:5000])
    code, err = _cli([src, "-o", tmp_path / "chart.shp", "--format", "sigrid3", "--resolution", RES])
    assert code == 1 and train[1].name in err and "1 of 3 scenes failed" in err, err
    _, _, fields = _read(tmp_path / "chart.shp")
    assert set(fields["SCENE"]) == {train[0].name[:19], train[2].name[:19]}


def test_a_failed_write_leaves_the_old_chart_whole(synth_data, tmp_path, monkeypatch):
    import pyogrio.errors
    import pyogrio.raw

    from autoice.errors import OutputError
    from autoice.export import export

    ref = sorted((synth_data / "test").glob("*_prep_reference.nc"))
    export(ref[:1], tmp_path / "chart.shp", fmt="sigrid3", resolution=RES, progress=False)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    (tmp_path / "chart.qix").write_bytes(b"old spatial index")
    real = pyogrio.raw.write

    def broken(path, *args, **kwargs):
        real(path, *args, **kwargs)
        Path(path).with_suffix(".dbf").write_bytes(b"half")
        raise pyogrio.errors.DataSourceError("disk on fire")

    monkeypatch.setattr(pyogrio.raw, "write", broken)
    with pytest.raises(OutputError, match="disk on fire"):
        export(ref[1:], tmp_path / "chart.shp", fmt="sigrid3", resolution=RES, progress=False)

    def interrupted(path, *args, **kwargs):
        Path(path).write_bytes(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(pyogrio.raw, "write", interrupted)
    with pytest.raises(KeyboardInterrupt):
        export(ref[1:], tmp_path / "chart.shp", fmt="sigrid3", resolution=RES, progress=False)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.suffix != ".qix"} == before
    assert not _leftovers(tmp_path)
    monkeypatch.setattr(pyogrio.raw, "write", real)
    res = export(ref[1:], tmp_path / "chart.shp", fmt="sigrid3", resolution=RES, progress=False)
    assert res.scenes == [ref[1].name[:19]] and not (tmp_path / "chart.qix").exists()  # the old index would lie
    assert set(_read(tmp_path / "chart.shp")[2]["SCENE"]) == {ref[1].name[:19]}


def test_label_of_the_exported_chart_reproduces_the_prediction_on_the_scene_grid(synth_data, exported, tmp_path):
    """The loop closed: ``label(export(prediction))`` through both commands' code, on scenes of both services."""
    from autoice.export import export
    from autoice.labelling import label_scene
    from autoice.submission import write_submission

    _, stacks = exported
    services = set()
    for key, stack in stacks.items():
        folder = tmp_path / key
        package = write_submission({key: dict(zip(schema.CHARTS, stack, strict=True))}, folder / "upload_package.nc")
        chart = folder / "chart.gpkg"
        export([package], chart, fmt="sigrid3", data=synth_data / "test", resolution=RES, progress=False)
        scene = synth_data / "test" / f"{key}{schema.RTT_SUFFIX}"
        result = label_scene(scene, chart, folder / "labelled")
        assert result.polygons > 5 and not any(result.undecodable.values())
        with xr.open_dataset(result.output) as ds:
            got = np.stack([ds[c].values for c in schema.CHARTS])
            no_data = np.all([ds[v].values == 0 for v in schema.FULL_GRID_INPUTS], axis=0)  # label's 255 there
        want = _expected(_shown(scene, stack))
        inner = _interior((want[0].astype(np.int32) * 256 + want[1]) * 256 + want[2]) & ~no_data
        assert inner.sum() > 1000, key
        agree = (got[:, inner] == want[:, inner]).all(axis=0).mean()
        assert agree >= 0.99, (key, agree)
        services.add(key[-3:])
    assert services == set(schema.SERVICES)
