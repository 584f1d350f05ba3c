"""A mosaic of 20 full-size scenes (5000 x 5200 at 80 m) at 1 km in EPSG:3413: wall time and peak RSS.

Target (issue 11): <= 60 s and peak RSS < 2 GB. Run::

    python bench/mosaic.py [--workdir /tmp/autoice-bench-mosaic] [--scenes 20] [--workers 1]

The inputs are made once and kept in --workdir: 20 test scenes ``<key>_prep.nc`` of the real size
(constant inputs: only the tie points matter here) placed around Greenland and the Canadian Arctic
like the real coverage, several overlapping, each a 400 x 416 km swath with its own heading; and an
``upload_package.nc`` with blocky predictions for them (100-pixel class blocks, 1 % pixel noise).
``autoice mosaic upload_package.nc --data scenes -o mosaic.tif`` then runs in a fresh process (the
real command path: reading the package, the tie points, warping each scene straight to 1 km,
pasting, three COGs and the PNG quicklook); peak RSS is that process's own high-water mark.
Prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import measure  # noqa: E402

H, W = 5000, 5200
BLOCK = 100
#: scene centres (lat, lon) and headings (degrees): real regions of both services, some overlapping
PLACES = [(78.0, -5.0, 15), (76.5, -12.0, 20), (74.0, -17.0, 25), (71.0, -20.0, 30), (68.0, -28.0, 35),
          (65.0, -37.0, 40), (61.0, -43.0, 10), (63.0, -52.0, -10), (67.5, -56.0, -15), (70.5, -58.0, -20),
          (73.5, -62.0, -25), (76.5, -68.0, -30), (78.5, -72.0, -35), (81.5, -40.0, 0), (82.5, -15.0, 5),
          (74.5, -95.0, -5), (71.0, -130.0, 10), (72.5, -140.0, 15), (67.0, -80.0, -10), (52.0, -55.0, 20)]  # fmt: skip


def _key(i: int) -> str:
    return f"2021{1 + i % 12:02d}{1 + i:02d}T{10 + i % 10:02d}0000_{'dmi' if i % 2 else 'cis'}"


def _tiepoints(lat0: float, lon0: float, heading_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """A 400 x 416 km swath at 80 m, straight on a plane tangent at its centre (as bench/export.py)."""
    from pyproj import Transformer

    from autoice import geolocation as gl

    tl, ts = np.meshgrid(gl.tiepoint_positions(H), gl.tiepoint_positions(W), indexing="ij")
    heading = np.deg2rad(heading_deg)
    along, across = (tl - H / 2) * 80.0, (ts - W / 2) * 80.0
    north = along * np.cos(heading) - across * np.sin(heading)
    east = along * np.sin(heading) + across * np.cos(heading)
    plane = f"+proj=aeqd +lat_0={lat0} +lon_0={lon0} +datum=WGS84 +units=m"
    lon, lat = Transformer.from_crs(plane, gl.LONLAT, always_xy=True).transform(east, north)
    return np.asarray(lat), np.asarray(lon)


def _template(workdir: Path) -> Path:
    """One full-size test scene with constant inputs, from the structure of a small synthetic one."""
    import xarray as xr

    from autoice import schema, synth
    from autoice.scenes import chartless, write_netcdf

    path = workdir / "template_prep.nc"
    if path.exists():
        return path
    synth.synthesize(workdir / "small", n_train=0, n_test=1, height=64, width=64, seed=3, progress=False)
    small = next((workdir / "small" / "test").glob("*_prep.nc"))
    with xr.open_dataset(small) as ds:
        ds = ds.load()
    sizes = {schema.FULL_DIMS[0]: H, schema.FULL_DIMS[1]: W}
    coarse = [d for d in ds[schema.AMSR2_VARIABLES[0]].dims]
    sizes.update({coarse[0]: -(-H // schema.CELL_RTT), coarse[1]: -(-W // schema.CELL_RTT)})
    # every input the value of one sea pixel with SAR data: products leave land and no data empty
    sea = np.argwhere(~chartless(ds))[0]
    out = {}
    for name, var in ds.data_vars.items():
        if name in schema.TIEPOINT_VARIABLES:
            out[name] = var
        else:
            shape = tuple(sizes.get(d, n) for d, n in zip(var.dims, var.shape, strict=True))
            value = var.values[tuple(sea)] if var.dims == ds[schema.DISTANCE_VARIABLE].dims else var.values.flat[0]
            out[name] = (var.dims, np.full(shape, float(value), var.dtype), var.attrs)
    write_netcdf(xr.Dataset(out, attrs=ds.attrs), path)
    shutil.rmtree(workdir / "small")
    return path


def generate(workdir: Path, n: int) -> tuple[Path, Path]:
    import netCDF4

    from autoice import schema
    from autoice.submission import SubmissionWriter

    scenes, sub = workdir / "scenes", workdir / "upload_package.nc"
    keys = [_key(i) for i in range(n)]
    if sub.exists() and all((scenes / (k + schema.RTT_SUFFIX)).exists() for k in keys):
        return sub, scenes
    t0 = time.perf_counter()
    template = _template(workdir)
    scenes.mkdir(parents=True, exist_ok=True)
    for i, key in enumerate(keys):
        lat, lon = _tiepoints(*PLACES[i % len(PLACES)])
        path = scenes / (key + schema.RTT_SUFFIX)
        shutil.copy(template, path)
        with netCDF4.Dataset(path, "a") as nc:
            nc.variables[schema.TIEPOINT_LATITUDE][:] = lat
            nc.variables[schema.TIEPOINT_LONGITUDE][:] = lon
            nc.setncattr("scene_id", key)
    rng = np.random.default_rng(0)
    with SubmissionWriter(sub) as writer:
        for i, key in enumerate(keys):
            for chart in schema.CHARTS:
                k = schema.N_CLASSES[chart]
                small = rng.integers(0, k, (H // BLOCK + 1, W // BLOCK + 1), dtype=np.uint8)
                p = np.repeat(np.repeat(small, BLOCK, 0), BLOCK, 1)[:H, :W]
                noise = rng.random((H, W)) < 0.01
                p[noise] = rng.integers(0, k, int(noise.sum()), dtype=np.uint8)
                writer.add(key, chart, p)
            print(f"  predictions {i + 1}/{n}", file=sys.stderr, end="\r")
    print(f"generated {n} full-size scenes and their predictions in {time.perf_counter() - t0:.0f} s",
          file=sys.stderr)  # fmt: skip
    return sub, scenes


def run(sub: str, scenes: str, out: str, workers: int) -> dict[str, object]:
    from autoice.mosaic import mosaic

    t0 = time.perf_counter()
    res = mosaic([sub], out, data=scenes, resolution=1000.0, workers=workers, progress=False)
    m = res.mosaic
    return {"seconds": time.perf_counter() - t0, "grid": (m.grid.width, m.grid.height), "scenes": len(m.scenes),
            "files": [str(f) for f in res.files], "bytes": sum(Path(f).stat().st_size for f in res.files)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/autoice-bench-mosaic"))
    parser.add_argument("--scenes", type=int, default=20)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    sub, scenes = generate(args.workdir, args.scenes)
    out = args.workdir / "out" / "mosaic.tif"
    wall, peak, r = measure(run, str(sub), str(scenes), str(out), args.workers)
    print(f"mosaic of {r['scenes']} scenes of {H} x {W} -> {r['grid'][0]} x {r['grid'][1]} px at 1 km, EPSG:3413, "
          f"{args.workers} worker process(es)")  # fmt: skip
    print(f"wall {wall:.1f} s (target <= 60 s), peak RSS {peak / 2**20:.0f} MB (target < 2048 MB); "
          f"{len(r['files'])} files, {r['bytes'] / 1e6:.1f} MB: {', '.join(Path(f).name for f in r['files'])}")


if __name__ == "__main__":
    main()
