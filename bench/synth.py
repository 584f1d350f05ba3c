"""Time and peak memory of synthetic scene generation (generate + write raw) and of prepare.

Each scene runs in a fresh process so that the peak RSS is that scene's own.

    .venv/bin/python bench/synth.py                       # one full-size scene (5000 x 5200 at 80 m)
    .venv/bin/python bench/synth.py --height 600 --width 640 --count 3
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import peak_rss  # noqa: E402


def _peak_rss_gb() -> float:
    return peak_rss() / 1e9


def _generate_and_write(args: tuple) -> tuple[float, float, float, str]:
    height, width, seed, index, out_dir = args
    from autoice import scenes, synth

    spec = synth.scene_specs(1, height=height, width=width, seed=seed, first_index=index)[0]
    t0 = time.perf_counter()
    ds, _ = synth.generate_raw(spec, seed)
    t1 = time.perf_counter()
    scenes.write_netcdf(ds, f"{out_dir}/{spec.raw_name}")
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1, _peak_rss_gb(), f"{out_dir}/{spec.raw_name}"


def _prepare(args: tuple) -> tuple[float, float]:
    raw, out_dir = args
    from autoice import prepare

    t0 = time.perf_counter()
    prepare.prepare_file(raw, out_dir, overwrite=True)
    return time.perf_counter() - t0, _peak_rss_gb()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--height", type=int, default=5000, help="RTT lines (80 m); raw has twice as many")
    parser.add_argument("--width", type=int, default=5200, help="RTT samples (80 m)")
    parser.add_argument("--count", type=int, default=1, help="scenes to time")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-prepare", action="store_true", help="time generation + raw writing only")
    args = parser.parse_args()
    ctx = mp.get_context("spawn")
    print(f"synth bench: {args.count} scene(s) of {args.height} x {args.width} (80 m), raw "
          f"{2 * args.height} x {2 * args.width} (40 m)")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.count):
            with ctx.Pool(1) as pool:
                gen, write, rss, raw = pool.apply(_generate_and_write, ((args.height, args.width, args.seed, i, tmp),))
            line = f"scene {i}: generate {gen:7.2f} s  write raw {write:7.2f} s  peak RSS {rss:5.2f} GB"
            if not args.no_prepare:
                with ctx.Pool(1) as pool:
                    prep, prss = pool.apply(_prepare, ((raw, tmp),))
                line += f"  | prepare {prep:7.2f} s  peak RSS {prss:5.2f} GB"
            print(line, flush=True)


if __name__ == "__main__":
    main()
