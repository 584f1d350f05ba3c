"""Export one full-size scene (5000 x 5200) to COG in EPSG:3413 at 80 m: wall time and peak RSS of export only.

Target (issue 11): <= 5 s and peak RSS < 2 GB. Run: python bench/export.py
"""

from __future__ import annotations

import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from pyproj import CRS, Transformer

from autoice import geolocation as gl
from autoice import schema
from autoice.export import _class_tags, _colormap, write_cog


def full_size_geolocation(h: int = 5000, w: int = 5200) -> gl.Geolocation:
    """A 400 x 416 km swath at 80 m in Fram Strait, heading 15 degrees.

    Like a real S1 scene (and the real EW geolocation grid in tests/test_export.py), lines and
    samples are straight on a plane tangent at the scene centre (azimuthal equidistant).
    """
    tl, ts = np.meshgrid(gl.tiepoint_positions(h), gl.tiepoint_positions(w), indexing="ij")
    heading = np.deg2rad(15.0)
    along, across = (tl - h / 2) * 80.0, (ts - w / 2) * 80.0
    north = along * np.cos(heading) - across * np.sin(heading)
    east = along * np.sin(heading) + across * np.cos(heading)
    plane = "+proj=aeqd +lat_0=78 +lon_0=-5 +datum=WGS84 +units=m"
    lon, lat = Transformer.from_crs(plane, gl.LONLAT, always_xy=True).transform(east, north)
    return gl.Geolocation(latitude=np.asarray(lat), longitude=np.asarray(lon), shape=(h, w))


THREADS = int(sys.argv[1]) if len(sys.argv) > 1 else 2


def main() -> None:
    geo = full_size_geolocation()
    rng = np.random.default_rng(0)
    blocks = rng.integers(0, 11, size=(3, 50, 52)).astype(np.uint8)
    charts = np.repeat(np.repeat(blocks, 100, axis=1), 100, axis=2)  # 100-pixel class blocks
    charts[:, :, :300] = schema.CHART_FILL
    crs = CRS.from_epsg(3413)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with tempfile.TemporaryDirectory() as tmp:
        t0, c0 = time.perf_counter(), time.process_time()
        rep = gl.reproject_scene(charts, geo, crs, 80.0, threads=THREADS)
        t1 = time.perf_counter()
        for i, chart in enumerate(schema.CHARTS):
            write_cog(Path(tmp) / f"scene_{chart}.tif", rep.data[i : i + 1], crs=crs, transform=rep.transform,
                      names=[chart], tags={}, band_tags=[_class_tags(chart)], nodata=schema.CHART_FILL,
                      colormap=_colormap(chart))  # fmt: skip
        t2, c2 = time.perf_counter(), time.process_time()
        size = sum(f.stat().st_size for f in Path(tmp).iterdir())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"scene {geo.shape} -> grid {rep.data.shape[1:]} EPSG:3413 80 m")
    print(f"reproject {t1 - t0:.2f} s, COG write {t2 - t1:.2f} s, total {t2 - t0:.2f} s wall (target <= 5 s), "
          f"{c2 - c0:.2f} s CPU ({THREADS} GDAL threads)")
    print(f"peak RSS {peak:.0f} MB (before export {base / 1024:.0f} MB; target < 2048 MB); COGs {size / 1e6:.1f} MB")
    sys.exit(0 if t2 - t0 <= 5 and peak < 2048 else 1)


if __name__ == "__main__":
    main()
