"""Prepare throughput and peak memory on a full-size synthetic raw scene.

    python bench/prepare.py [--height 5000 --width 5200] [--workdir bench_out] [--block-lines 1024]

Prints raw MB/s (uncompressed in-memory size of the raw variables read, and file size on disk),
wall time and the peak RSS of the process that ran prepare. The raw scene is generated once by
``autoice.synth`` and cached in the workdir.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import measure  # noqa: E402


def _make_raw(workdir: Path, height: int, width: int, seed: int) -> Path:
    from autoice import synth

    spec = synth.scene_specs(1, height=height, width=width, seed=seed)[0]
    target = workdir / "raw" / spec.raw_name
    if not target.exists():
        synth.write_raw(spec, seed, workdir / "raw")
    return target


def _raw_bytes(path: Path) -> int:
    import xarray as xr

    with xr.open_dataset(path) as ds:
        return sum(v.dtype.itemsize * v.size for v in ds.variables.values() if v.dtype.kind in "fiu")


def _prepare(raw: str, out: str, block_lines: int) -> str:
    from autoice.prepare import prepare_file

    return str(prepare_file(raw, out, overwrite=True, block_lines=block_lines).output)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--height", type=int, default=5000, help="80 m lines (raw is twice that)")
    ap.add_argument("--width", type=int, default=5200, help="80 m samples (raw is twice that)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--block-lines", type=int, default=1024)
    ap.add_argument("--workdir", type=Path, default=Path("bench_out"))
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    raw = _make_raw(args.workdir, args.height, args.width, args.seed)
    mem_mb = _raw_bytes(raw) / 1e6
    disk_mb = raw.stat().st_size / 1e6
    out = args.workdir / "rtt"
    shutil.rmtree(out, ignore_errors=True)
    wall, peak, rtt = measure(_prepare, str(raw), str(out), args.block_lines)
    size = f"{args.height * 2} x {args.width * 2}"
    print(f"raw scene: {size} at 40 m, {mem_mb:.0f} MB in memory, {disk_mb:.0f} MB on disk")
    print(f"prepare: {wall:.1f} s  ->  {mem_mb / wall:.0f} MB/s (in-memory raw), {disk_mb / wall:.0f} MB/s (file)")
    print(f"peak RSS of the prepare process: {peak / 1e6:.0f} MB ({100 * peak / 1e6 / mem_mb:.0f} % of the raw size)")
    print(f"output: {rtt} ({Path(rtt).stat().st_size / 1e6:.0f} MB)")


if __name__ == "__main__":
    main()
