"""SIGRID-3 charts in and out (issue 12): figures per full-size scene (5000 x 5200 at 80 m).

Goal: label and export each <= 10 s and peak RSS < 2 GB per scene. Each measurement is one
function run in a fresh process (``_util.measure``), so every peak RSS is that step's own.

- :func:`bench_label_in_memory`: the real CIS chart (Lambert conformal conic) read, mapped onto the
  scene grid and decoded into SIC/SOD/FLOE, nothing written;
- :func:`bench_label_scene`: ``labelling.label_scene`` end to end (the RTT scene read, its charts
  replaced, the scene rewritten as netCDF-4/zlib).

Run: ``python bench/sigrid.py`` (needs ``../shared/realdata`` beside the repository).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import xarray as xr
from pyproj import Transformer

from _util import measure
from autoice import schema

SHAPE = (5000, 5200)
CIS_CHART = Path(__file__).resolve().parents[2] / "shared" / "realdata" / "cis_chart" / "cis_SGRDREA_20201102T.gpkg"
#: a 400 x 416 km swath at 80 m in Foxe Basin (inside the CIS chart: ice, water, land), heading 20 degrees
CENTRE = (68.5, -80.0)
HEADING = 20.0


def make_scene(folder: Path, shape: tuple[int, int] = SHAPE) -> Path:
    """A full-size RTT scene (24 inputs, tie points, no charts) whose footprint lies in the CIS chart."""
    from autoice.scenes import write_netcdf

    h, w = shape
    n = schema.TIEPOINT_GRID
    lines, samples = np.meshgrid(np.linspace(0, h - 1, n), np.linspace(0, w - 1, n), indexing="ij")
    along, across = (lines - h / 2) * schema.RTT_PIXEL_SPACING, (samples - w / 2) * schema.RTT_PIXEL_SPACING
    th = np.deg2rad(HEADING)
    east, north = along * np.sin(th) + across * np.cos(th), along * np.cos(th) - across * np.sin(th)
    plane = f"+proj=aeqd +lat_0={CENTRE[0]} +lon_0={CENTRE[1]} +datum=WGS84 +units=m"
    lon, lat = Transformer.from_crs(plane, "OGC:CRS84", always_xy=True).transform(east, north)
    rng = np.random.default_rng(0)
    ch, cw = -(-h // schema.CELL_RTT), -(-w // schema.CELL_RTT)
    data = {name: (schema.FULL_DIMS, rng.standard_normal(shape, dtype=np.float32)) for name in schema.FULL_GRID_INPUTS}
    data.update({name: (schema.COARSE_DIMS, rng.standard_normal((ch, cw)).astype(np.float32))
                 for name in schema.COARSE_VARIABLES})  # fmt: skip
    data[schema.TIEPOINT_LATITUDE] = (schema.TIEPOINT_DIMS, np.asarray(lat))
    data[schema.TIEPOINT_LONGITUDE] = (schema.TIEPOINT_DIMS, np.asarray(lon))
    path = folder / "20201102T120000_cis_prep.nc"
    write_netcdf(xr.Dataset(data, attrs={"scene_id": path.name[:19], "ice_service": "cis", "flip": 0,
                                         "pixel_spacing": schema.RTT_PIXEL_SPACING}), path)  # fmt: skip
    return path


def _in_memory(scene: Path, chart: Path) -> dict[str, int]:
    from autoice import charts, labelling
    from autoice.geolocation import scene_geolocation

    table = labelling.read_chart(chart)
    with xr.open_dataset(scene) as ds:
        geo = scene_geolocation(ds, scene)
    ids = labelling.polygon_ids(table, geo, scene)
    used = np.flatnonzero(np.bincount(ids.ravel(), minlength=len(table.rows) + 1)[1:]) + 1
    rows = [";".join(schema.POLYGON_CODES_HEADER)] + [table.rows[i - 1] for i in used]
    decoded = charts.rasterize(ids, charts.decode_polygon_codes(rows))
    return {"polygons": int(used.size), "labelled": int(np.count_nonzero(decoded["SIC"] != schema.CHART_FILL))}


def _to_file(scene: Path, chart: Path, out: Path) -> dict[str, int]:
    from autoice.labelling import label_scene

    r = label_scene(scene, chart, out)
    return {"polygons": r.polygons, "labelled": r.labelled, "pixels": r.pixels}


def bench_label_in_memory(scene: Path, chart: Path) -> tuple[float, int, dict[str, int]]:
    """Chart read + mapped onto the grid + decoded: (seconds, peak RSS bytes, counts)."""
    return measure(_in_memory, scene, chart)


def bench_label_scene(scene: Path, chart: Path, out: Path) -> tuple[float, int, dict[str, int]]:
    """``label_scene`` end to end, the scene rewritten: (seconds, peak RSS bytes, counts)."""
    return measure(_to_file, scene, chart, out)


def main() -> None:
    if not CIS_CHART.is_file():
        sys.exit(f"real CIS chart not found at {CIS_CHART}")
    with tempfile.TemporaryDirectory() as tmp:
        scene = make_scene(Path(tmp))
        print(f"scene {SHAPE[0]} x {SHAPE[1]} (80 m) in the CIS chart {CIS_CHART.name}")
        wall, peak, counts = bench_label_in_memory(scene, CIS_CHART)
        print(f"label in memory   {wall:6.2f} s  peak RSS {peak / 2**20:7.0f} MiB  {counts}")
        wall, peak, counts = bench_label_scene(scene, CIS_CHART, Path(tmp) / "out")
        print(f"label_scene (I/O) {wall:6.2f} s  peak RSS {peak / 2**20:7.0f} MiB  {counts}")


if __name__ == "__main__":
    main()
