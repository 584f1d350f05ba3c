"""``autoice label``: real SIGRID-3 charts (CIS GeoPackage, DMI shapefiles) rasterised onto synthetic scenes.

Each synthetic scene gets tie points that put its footprint inside a real chart. The oracle is
independent of the labeller: every pixel centre's longitude/latitude (the scene's geolocation) goes
to the chart's CRS with pyproj, shapely finds the polygon that holds it, and the organisers'
converter output for that polygon (the CSV tables in ``shared/realdata``) gives the expected
classes. Pixels within one pixel of a polygon boundary are left out, as the issue allows.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from pyproj import CRS, Transformer

from autoice import schema
from autoice.cli.main import main
from autoice.errors import ChartError, SceneError

REALDATA = Path(__file__).resolve().parents[2] / "shared" / "realdata"
CIS_CHART = REALDATA / "cis_chart" / "cis_SGRDREA_20201102T.gpkg"
CIS_CSV = REALDATA / "cis_chart" / "cis_SGRDREA_20201102_polygons_with_official_classes.csv"
DMI_DIR = REALDATA / "dmi_charts"
DMI_CSV = DMI_DIR / "dmi_aari_charts_official_converter_output.csv"
CAPE = "201304100920_CapeFarewell_RIC"  # has its .prj (WGS 84)
NORTHEAST = "201308070805_NorthEast_RIC"  # no .prj, two invalid polygons
WGS84 = "EPSG:4326"
#: scene placements inside the charts: centre latitude, longitude, extent along / across track (km), heading
CIS_PLACE = (69.0, -81.5, 240.0, 300.0, 20.0)
CAPE_PLACE = (60.2, -45.6, 130.0, 180.0, -15.0)
NORTHEAST_PLACE = (76.4, -18.6, 200.0, 240.0, 10.0)


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"real chart material not found at {path} (shared/ must sit beside the repository)")
    return path


def read_rows(path: Path) -> list[dict[str, str]]:
    with need(path).open(newline="") as fh:
        return list(csv.DictReader(fh))


def cis_classes() -> dict[int, tuple[int, int, int]]:
    """Organisers' classes per CIS polygon id (ID_NEW = 1-based position); L/S polygons are not listed."""
    return {int(r["ID_NEW"]): tuple(int(r[f"{c}_class"]) for c in schema.CHARTS) for r in read_rows(CIS_CSV)}


def dmi_classes(chart: str, mode: str) -> dict[int, tuple[int, int, int]]:
    """Organisers' converter output per DMI polygon; a value that is no class (range code) is 255.

    Corrected mode: the project's decoder (checked against these tables in test_charts) on the
    organisers' code rows, and independently: a range code XY in CT is its midpoint, rounded half up.
    """
    from autoice.charts import decode_polygon_codes

    records = [r for r in read_rows(DMI_CSV) if r["chart"] == chart]
    ids = [int(r["poly_index_1based"]) for r in records]
    if mode == "corrected":
        table = decode_polygon_codes([";".join(schema.POLYGON_CODES_HEADER)]
                                     + [r["polygon_code_string"] for r in records], mode="corrected")  # fmt: skip
        for k, r in enumerate(records):
            if r["CT_is_range_code"] == "1" and r["POLY_TYPE"] == "I":
                low, high = divmod(int(r["CT"]), 10)
                assert table.classes["SIC"][k] == math.floor((low + high) / 2 + 0.5)
        return {i: tuple(int(table.classes[c][k]) for c in schema.CHARTS) for k, i in enumerate(ids)}
    out = {}
    for i, r in zip(ids, records, strict=True):
        values = [int(r[f"{c}_official"]) for c in schema.CHARTS]
        out[i] = tuple(v if v < schema.N_CLASSES[c] or v == schema.CHART_FILL else schema.CHART_FILL
                       for v, c in zip(values, schema.CHARTS, strict=True))  # fmt: skip
    return out


# ----------------------------------------------------------------------------- scenes placed in a chart
@pytest.fixture(scope="module")
def synth_scene(tmp_path_factory):
    """One small synthetic scene: its raw file (160 x 200 at 40 m) and its RTT (80 x 100)."""
    from autoice import synth

    out = tmp_path_factory.mktemp("label-synth")
    synth.synthesize(out, n_train=1, n_test=0, height=80, width=100, seed=5, progress=False)
    return sorted((out / "raw").glob("*.nc"))[0], sorted((out / "train").glob("*_prep.nc"))[0]


def tie_points(place: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
    """21 x 21 longitude/latitude of a rotated rectangle (axis 0 along track) centred at (lat, lon)."""
    lat0, lon0, along, across, heading = place
    u = np.linspace(-0.5, 0.5, schema.TIEPOINT_GRID)
    a, c = np.meshgrid(u * along * 1e3, u * across * 1e3, indexing="ij")
    th = np.deg2rad(heading)
    x, y = a * np.sin(th) + c * np.cos(th), a * np.cos(th) - c * np.sin(th)
    local = f"+proj=aeqd +lat_0={lat0} +lon_0={lon0} +datum=WGS84 +units=m"
    lon, lat = Transformer.from_crs(local, "OGC:CRS84", always_xy=True).transform(x, y)
    return np.asarray(lon), np.asarray(lat)


def placed(src: Path, folder: Path, place: tuple[float, ...]) -> Path:
    """A copy of the scene in ``folder`` whose tie points put it at ``place``."""
    from autoice.scenes import write_netcdf

    with xr.open_dataset(src) as ds:
        ds = ds.load()
    lon, lat = tie_points(place)
    if schema.TIEPOINT_LATITUDE in ds:  # RTT
        ds[schema.TIEPOINT_LATITUDE].values[:] = lat
        ds[schema.TIEPOINT_LONGITUDE].values[:] = lon
    else:  # raw: 1-D, line-major like sar_grid_line / sar_grid_sample
        order = np.lexsort((ds["sar_grid_sample"].values, ds["sar_grid_line"].values))
        for name, v in (("sar_grid_latitude", lat), ("sar_grid_longitude", lon)):
            values = np.empty(v.size)
            values[order] = v.ravel()
            ds[name].values[:] = values
    folder.mkdir(parents=True, exist_ok=True)
    write_netcdf(ds, folder / src.name)
    return folder / src.name


# ----------------------------------------------------------------------------- the oracle
def chart_polygons(path: Path, crs: str | None = None):
    import shapely
    from pyogrio.raw import read

    meta, _, wkb, _ = read(path)
    geoms = shapely.from_wkb(wkb)
    bad = ~shapely.is_valid(geoms)
    geoms[bad] = shapely.make_valid(geoms[bad], method="structure", keep_collapsed=False)
    return geoms, CRS.from_user_input(crs or meta["crs"])


def check_against(out: Path, chart: Path, classes: dict[int, tuple[int, int, int]], crs: str | None = None):
    """Compare a labelled RTT scene with the classes of the polygon holding each pixel centre.

    Returns the pixels checked, the expected (SIC, SOD, FLOE) of each, the polygon ids seen and the
    mismatches; pixels within one pixel of a boundary are not checked.
    """
    import shapely

    from autoice import geolocation as gl

    geoms, chart_crs = chart_polygons(chart, crs)
    with xr.open_dataset(out) as ds:
        geo = gl.scene_geolocation(ds, out)
        got = np.stack([ds[c].values for c in schema.CHARTS], axis=-1).reshape(-1, 3)
        nodata = np.all([ds[n].values == schema.INPUT_FILL for n in schema.FULL_GRID_INPUTS], axis=0).ravel()
    h, w = geo.shape
    rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    lon, lat = geo.lonlat(rows.ravel(), cols.ravel())
    x, y = Transformer.from_crs("OGC:CRS84", chart_crs, always_xy=True).transform(lon, lat)
    points = shapely.points(x, y)
    owner = np.zeros(points.size, np.int64)  # 1-based polygon id, 0 = none; a later feature wins
    pi, gi = shapely.STRtree(geoms).query(points, predicate="within")
    np.maximum.at(owner, pi, gi + 1)
    # one pixel in the chart's units, from the spacing of neighbouring pixel centres
    px = float(np.median(np.hypot(np.diff(x.reshape(h, w), axis=1), np.diff(y.reshape(h, w), axis=1))))
    # boundaries of the polygons clipped to the scene's box (10 pixels wider): faster than whole coastlines
    box = (x.min() - 10 * px, y.min() - 10 * px, x.max() + 10 * px, y.max() + 10 * px)
    edges = shapely.boundary(shapely.clip_by_rect(geoms[shapely.intersects(geoms, shapely.box(*box))], *box))
    near = np.zeros(points.size, bool)
    near[shapely.STRtree(edges).query(points, predicate="dwithin", distance=px)[0]] = True
    fill = (schema.CHART_FILL,) * 3
    expected = np.array([classes.get(int(k), fill) if k else fill for k in owner])
    expected[nodata] = schema.CHART_FILL
    check = ~near
    mismatches = np.flatnonzero(check & (got != expected).any(axis=1))
    return int(check.sum()), expected[check], set(owner[check].tolist()) - {0}, mismatches


def label(scene: Path, chart: Path, out: Path, **kw):
    from autoice.labelling import label_scene

    return label_scene(scene, chart, out, **kw)


# ----------------------------------------------------------------------------- the chart's code table
def test_code_rows_are_the_organisers_rows():
    """CIS zero-padded codes and CF pairs, DMI unpadded and range codes: the raw layout's rows, as in the CSVs."""
    from autoice.labelling import read_chart

    chart = read_chart(need(CIS_CHART))
    assert chart.crs.is_projected and "Lambert" in chart.crs.to_wkt() and len(chart.rows) == 432
    theirs = {int(r["ID_NEW"]): r["polygon_code_string"] for r in read_rows(CIS_CSV)}
    assert {i: chart.rows[i - 1] for i in theirs} == theirs
    assert set(chart.poly_types) == {"I", "W", "L", "S"}
    for name, crs in ((CAPE, None), (NORTHEAST, WGS84)):
        chart = read_chart(need(DMI_DIR / f"{name}.shp"), chart_crs=crs)
        theirs = {int(r["poly_index_1based"]): r["polygon_code_string"] for r in read_rows(DMI_CSV)
                  if r["chart"] == name}  # fmt: skip
        assert len(theirs) == len(chart.rows)
        assert {i: chart.rows[i - 1] for i in theirs} == theirs, name
        assert chart.crs.is_geographic
    assert chart.repaired == 2  # NorthEast has two self-intersecting polygons


# ----------------------------------------------------------------------------- real charts
def test_cis_chart_labels_equal_the_organisers_classes(synth_scene, tmp_path):
    scene = placed(synth_scene[1], tmp_path / "in", CIS_PLACE)
    result = label(scene, need(CIS_CHART), tmp_path / "out")
    assert result.output == tmp_path / "out" / scene.name and result.kind == "rtt"
    n, expected, seen, bad = check_against(result.output, CIS_CHART, cis_classes())
    assert bad.size == 0, f"{bad.size} of {n} pixels differ from the organisers' classes"
    h, w = 80, 100
    assert n > 0.6 * h * w  # most pixels lie more than a pixel from a boundary
    assert len(seen) >= 10 and len(set(expected[:, 0].tolist()) - {255}) >= 4  # many polygons, many classes
    assert result.polygons >= len(seen) and result.undecodable == {c: 0 for c in schema.CHARTS}
    assert result.labelled == int(np.count_nonzero(xr.open_dataset(result.output)["SIC"].values != 255))


@pytest.mark.parametrize("mode", ["official", "corrected"])
@pytest.mark.parametrize(("name", "place", "crs"), [(CAPE, CAPE_PLACE, None), (NORTHEAST, NORTHEAST_PLACE, WGS84)])
def test_dmi_charts_range_codes_by_mode(synth_scene, tmp_path, name, place, crs, mode):
    chart = need(DMI_DIR / f"{name}.shp")
    scene = placed(synth_scene[1], tmp_path / "in", place)
    result = label(scene, chart, tmp_path / "out", mode=mode, chart_crs=crs)
    classes = dmi_classes(name, mode)
    n, expected, seen, bad = check_against(result.output, chart, classes, crs)
    assert bad.size == 0, f"{bad.size} of {n} pixels differ"
    ranged = {int(r["poly_index_1based"]) for r in read_rows(DMI_CSV)
              if r["chart"] == name and r["CT_is_range_code"] == "1" and r["POLY_TYPE"] == "I"}  # fmt: skip
    assert len(seen & ranged) >= 2 and len(seen - ranged) >= 2  # range-coded polygons and others were checked
    sic = expected[:, 0]
    if mode == "official":  # range codes are not decoded: 255, counted and named
        assert result.undecodable["SIC"] >= 2 and "CT" in result.codes
        assert (sic == 255).sum() > 0
    else:
        assert result.undecodable["SIC"] == 0 and "CT" not in result.codes
    assert len(set(sic.tolist()) - {255}) >= 2


def test_raw_scene_gets_polygon_variables_that_prepare_decodes(synth_scene, tmp_path):
    """Raw: polygon_icechart + polygon_codes replaced; `prepare` then gives the organisers' classes."""
    from autoice.prepare import prepare_file

    raw = placed(synth_scene[0], tmp_path / "in", CIS_PLACE)
    result = label(raw, need(CIS_CHART), tmp_path / "labelled")
    assert result.kind == "raw"
    with xr.open_dataset(result.output) as ds:
        ids = ds[schema.POLYGON_ICECHART].values
        rows = [str(r) for r in ds[schema.POLYGON_CODES].values]
        assert ds[schema.POLYGON_ICECHART].dims == xr.open_dataset(raw)[schema.POLYGON_ICECHART].dims
    assert rows[0] == ";".join(schema.POLYGON_CODES_HEADER)
    listed = {int(r.split(";")[0]) for r in rows[1:]}
    assert listed == set(np.unique(ids[np.isfinite(ids)]).astype(int).tolist()) and len(listed) == result.polygons
    theirs = {int(r["ID_NEW"]): r["polygon_code_string"] for r in read_rows(CIS_CSV)}
    assert all(r == theirs[int(r.split(";")[0])] for r in rows[1:] if int(r.split(";")[0]) in theirs)
    prepared = prepare_file(result.output, tmp_path / "rtt")
    n, expected, seen, bad = check_against(prepared.output, CIS_CHART, cis_classes())
    assert bad.size == 0 and n > 0.5 * 80 * 100 and len(seen) >= 10


# ----------------------------------------------------------------------------- the command and bad input
def run_cli(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    captured = capsys.readouterr()
    return info.value.code, captured.out, captured.err


def test_cli_labels_good_scenes_and_names_the_one_the_chart_misses(synth_scene, tmp_path, capsys):
    good = placed(synth_scene[1], tmp_path / "a", CAPE_PLACE)
    far = placed(synth_scene[1], tmp_path / "b", CIS_PLACE)  # Foxe Basin: far from Cape Farewell
    out = tmp_path / "out"
    code, stdout, err = run_cli(["label", str(good), str(far.parent), "--chart", str(need(DMI_DIR / f"{CAPE}.shp")),
                                 "-o", str(out), "--quiet"], capsys)  # fmt: skip
    assert code == 1
    assert f"{good.name}: " in stdout and "polygons of" in stdout and "CT 12" in stdout  # the range codes named
    lines = err.strip().splitlines()
    assert lines[-1].startswith("autoice: error: 1 of 2 scenes failed") and "does not overlap" in lines[0]
    assert [p.name for p in out.iterdir()] == [good.name]  # the good one written, nothing half-written


def _write_chart(path: Path, geoms, fields: dict[str, list], crs: str | None = WGS84) -> Path:
    import shapely
    from pyogrio.raw import write

    wkb = np.array([shapely.to_wkb(g) for g in geoms], dtype=object)
    write(path, wkb, [np.asarray(v, dtype=object) for v in fields.values()], list(fields), geometry_type="Polygon",
          crs=crs, driver="GPKG")  # fmt: skip
    return path


def _around_cape(n: int = 2):
    """Small polygons (lon/lat) in the middle of CAPE_PLACE."""
    import shapely

    return [shapely.box(-45.6 + 0.2 * k, 60.1, -45.4 + 0.2 * k, 60.3) for k in range(n)]


def _codes(n: int, **changes):
    fields = {f: ["-9"] * n for f in schema.POLYGON_CODES_HEADER[1:-1]}
    fields["CT"] = ["92"] * n
    fields["SA"] = ["95"] * n
    fields["FA"] = ["08"] * n
    fields["POLY_TYPE"] = ["I"] * n
    fields.update(changes)
    return fields


@pytest.mark.parametrize(
    ("what", "make", "expect"),
    [
        ("no CRS", lambda d: DMI_DIR / f"{NORTHEAST}.shp", "declares no coordinate reference system"),
        ("missing attribute", lambda d: _write_chart(d / "c.gpkg", _around_cape(), {
            k: v for k, v in _codes(2).items() if k != "SA"}), "missing attribute SA"),
        ("unparseable code", lambda d: _write_chart(d / "c.gpkg", _around_cape(), _codes(2, CT=["92", "9x"])),
         "feature 2: attribute CT has the unparseable code '9x'"),
        ("unknown polygon type", lambda d: _write_chart(d / "c.gpkg", _around_cape(), _codes(2, POLY_TYPE=["I", "Q"])),
         "POLY_TYPE 'Q' is not one of"),
        ("empty layer", lambda d: _write_chart(d / "c.gpkg", [], _codes(0)), "holds no polygons"),
        ("not a chart", lambda d: (d / "c.shp").write_text("no") and d / "c.shp", "cannot read the chart"),
        ("no overlap", lambda d: _write_chart(d / "c.gpkg", [__import__("shapely").box(10, 10, 11, 11)], _codes(1)),
         "does not overlap this scene"),
    ],
)  # fmt: skip
def test_bad_charts_are_one_line_errors_and_write_nothing(synth_scene, tmp_path, capsys, what, make, expect):
    scene = placed(synth_scene[1], tmp_path / "in", CAPE_PLACE)
    (tmp_path / "chart").mkdir()
    chart = make(tmp_path / "chart")
    if not chart.exists():
        pytest.skip(f"real chart material not found at {chart}")
    out = tmp_path / "out"
    code, _, err = run_cli(["label", str(scene), "--chart", str(chart), "-o", str(out), "--quiet"], capsys)
    assert code == 1, err
    assert err.count("\n") == 1 and err.startswith("autoice: error: ") and expect in err, err
    assert str(chart) in err or scene.name in err  # names the file at fault
    assert not out.exists() or not any(out.iterdir())


def test_library_errors_and_chart_crs_option(synth_scene, tmp_path):
    from autoice.errors import ConfigError
    from autoice.labelling import read_chart

    with pytest.raises(ChartError, match="--chart-crs"):
        read_chart(need(DMI_DIR / f"{NORTHEAST}.shp"))
    with pytest.raises(ConfigError, match="--chart-crs"):
        read_chart(DMI_DIR / f"{NORTHEAST}.shp", chart_crs="EPSG:nope")
    scene = placed(synth_scene[1], tmp_path / "in", CIS_PLACE)
    with pytest.raises(SceneError, match="does not overlap"):
        label(scene, DMI_DIR / f"{CAPE}.shp", tmp_path / "out")


def test_test_scene_gains_charts_in_place_and_keeps_its_inputs(synth_scene, tmp_path):
    """A test scene (no charts) labelled into its own folder: replaced atomically, inputs byte for byte."""
    from autoice.scenes import SceneKind, open_scene, split_reference

    scene, reference = split_reference(placed(synth_scene[1], tmp_path / "in", CIS_PLACE))
    reference.unlink()
    with xr.open_dataset(scene) as ds:
        before = {n: ds[n].values.copy() for n in schema.INPUT_VARIABLES + schema.TIEPOINT_VARIABLES}
        assert "SIC" not in ds
    result = label(scene, need(CIS_CHART), scene.parent, mode="corrected")
    assert result.output == scene and sorted(p.name for p in scene.parent.iterdir()) == [scene.name]
    with open_scene(scene, SceneKind.TRAIN) as ds:  # a valid train scene now
        for n, v in before.items():
            np.testing.assert_array_equal(ds[n].values, v, err_msg=n)
        assert ds.attrs["icechart_file"] == CIS_CHART.name and ds.attrs["icechart_mode"] == "corrected"
        assert ds["SIC"].attrs["chart_fill_value"] == schema.CHART_FILL
    n, _, _, bad = check_against(scene, CIS_CHART, cis_classes())  # these CIS polygons decode alike in both modes
    assert bad.size == 0 and n > 0
