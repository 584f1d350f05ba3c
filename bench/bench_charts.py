"""Speed of SIGRID-3 decoding: table decode and per-block rasterisation (prints figures, asserts nothing).

Usage: .venv/bin/python bench/bench_charts.py [--lines 1000] [--samples 10400] [--polygons 3000]
"""

import argparse
import time

import numpy as np

from autoice.charts import decode_polygon_codes, rasterize
from autoice.schema import POLYGON_CODES_HEADER, SIC_CODES, SOD_CODES


def _rows(n, rng):
    conc, stage = list(SIC_CODES), list(SOD_CODES)
    rows = [";".join(POLYGON_CODES_HEADER)]
    for i in range(n):
        ct = int(rng.choice(conc))
        rows.append(f"{i};{ct};-9;{int(rng.choice(stage))};5;-9;-9;-9;-9;-9;-9;-9;-9;-9;I")
    return rows


def _best(fn, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=1000)
    ap.add_argument("--samples", type=int, default=10400)
    ap.add_argument("--polygons", type=int, default=3000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    rows = _rows(args.polygons, rng)
    for mode in ("official", "corrected"):
        t = _best(lambda m=mode: decode_polygon_codes(rows, mode=m), args.repeat)
        print(f"decode_polygon_codes {args.polygons} rows, {mode}: {t * 1e3:.1f} ms")
    table = decode_polygon_codes(rows)
    shape = (args.lines, args.samples)
    ids = rng.integers(0, args.polygons + 100, size=shape).astype(np.float64)
    ids[rng.random(shape) < 0.2] = np.nan
    for dtype in (np.float64, np.float32):
        image = ids.astype(dtype)
        t = _best(lambda im=image: rasterize(im, table), args.repeat)
        mpix = image.size / 1e6
        print(f"rasterize {shape[0]}x{shape[1]} {np.dtype(dtype).name}: {t * 1e3:.0f} ms ({mpix / t:.0f} Mpixel/s)")


if __name__ == "__main__":
    main()
