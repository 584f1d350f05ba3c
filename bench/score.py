"""Benchmark: score 20 full-size scenes, streaming vs the naive concatenate-then-sklearn way.

Usage:
    python bench/score.py --workdir /tmp/autoice-bench-score [--scenes 20] [--naive-charts SOD]

Scenes (5000 x 5200 uint8 charts: blocky random classes, ~40 % masked; predictions = the
reference with changed blocks and 1 % pixel noise) are generated once and cached in
--workdir: reference files via ``scenes.write_netcdf``, the upload package via
``submission.write_submission``. Each approach runs in its own fresh process; peak RSS is
sampled every 50 ms over the process tree. Prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

H, W = 5000, 5200
BLOCK = 100


def _blocky(rng: np.random.Generator, n_classes: int) -> np.ndarray:
    small = rng.integers(0, n_classes, (H // BLOCK + 1, W // BLOCK + 1), dtype=np.uint8)
    return np.repeat(np.repeat(small, BLOCK, 0), BLOCK, 1)[:H, :W]


def generate(workdir: Path, n_scenes: int) -> tuple[Path, Path]:
    import xarray as xr

    from autoice import schema
    from autoice.scenes import write_netcdf
    from autoice.submission import SubmissionWriter

    ref_dir, sub = workdir / "reference", workdir / "upload_package.nc"
    keys = [f"2021{m:02d}{d:02d}T120000_{'dmi' if d % 2 else 'cis'}" for m, d in zip(
        [1 + i % 12 for i in range(n_scenes)], [1 + i for i in range(n_scenes)], strict=True)]  # fmt: skip
    if sub.exists() and len(list(ref_dir.glob("*_prep_reference.nc"))) == n_scenes:
        return sub, ref_dir
    t0 = time.perf_counter()
    rng = np.random.default_rng(0)
    with SubmissionWriter(sub) as writer:
        for i, key in enumerate(keys):
            mask = _blocky(rng, 10) < 4  # ~40 % masked
            ref, pred = {}, {}
            for chart in schema.CHARTS:
                n = schema.N_CLASSES[chart]
                truth = _blocky(rng, n)
                p = np.where(_blocky(rng, 5) == 0, _blocky(rng, n), truth)  # ~20 % of blocks wrong
                noise = rng.random((H, W)) < 0.01
                p[noise] = rng.integers(0, n, int(noise.sum()), dtype=np.uint8)
                ref[chart] = (schema.FULL_DIMS, np.where(mask, np.uint8(schema.CHART_FILL), truth))
                pred[chart] = p
                writer.add(key, chart, p)
            ds = xr.Dataset(ref, attrs={"scene_id": key, "ice_service": key[-3:], "pixel_spacing": 80})
            write_netcdf(ds, ref_dir / f"{key}{schema.REFERENCE_SUFFIX}")
            print(f"  generated {i + 1}/{n_scenes}", file=sys.stderr, end="\r")
    print(f"generated {n_scenes} scenes in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return sub, ref_dir


def _tree_rss() -> int:
    import psutil

    me = psutil.Process()
    total = 0
    for p in [me, *me.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def _sample_peak(stop: threading.Event, peak: list[int]) -> None:
    while not stop.wait(0.05):
        peak[0] = max(peak[0], _tree_rss())


def run_streaming(sub: Path, ref_dir: Path) -> dict:
    from autoice.submission import score_submission

    report = score_submission(sub, ref_dir)
    res = report.pooled.result()
    return {**res.as_dict(), "fractions": res.fractions}


def run_naive(sub: Path, ref_dir: Path, charts: list[str]) -> dict:
    """The organisers' way: concatenate the valid pixels of all scenes, then sklearn."""
    import netCDF4
    from sklearn.metrics import f1_score, r2_score

    out = {}
    for chart in charts:
        trues, preds = [], []
        with netCDF4.Dataset(sub) as s:
            s.set_auto_maskandscale(False)
            for f in sorted(ref_dir.glob("*_prep_reference.nc")):
                with netCDF4.Dataset(f) as r:
                    r.set_auto_maskandscale(False)
                    t = np.asarray(r[chart][:])
                p = np.asarray(s[f"{f.name[:19]}_{chart}"][:])
                keep = t != 255
                trues.append(t[keep])
                preds.append(p[keep])
        y_true, y_pred = np.concatenate(trues), np.concatenate(preds)
        del trues, preds
        if chart == "SIC":
            out[chart] = r2_score(y_true, y_pred)
        else:
            out[chart] = f1_score(y_true, y_pred, average="weighted")
        del y_true, y_pred
    return {"fractions": out}


def _child(args: argparse.Namespace) -> None:
    stop, peak = threading.Event(), [0]
    th = threading.Thread(target=_sample_peak, args=(stop, peak), daemon=True)
    th.start()
    t0 = time.perf_counter()
    if args.child == "streaming":
        res = run_streaming(args.sub, args.ref)
    else:
        res = run_naive(args.sub, args.ref, args.naive_charts)
    res["seconds"] = time.perf_counter() - t0
    stop.set()
    th.join()
    peak[0] = max(peak[0], _tree_rss())
    res["peak_rss_gb"] = peak[0] / 1e9
    print(json.dumps(res))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/autoice-bench-score"))
    ap.add_argument("--scenes", type=int, default=20)
    ap.add_argument("--naive-charts", nargs="*", default=["SOD"], help="charts for the naive run ('' to skip)")
    ap.add_argument("--child", choices=["streaming", "naive"], help=argparse.SUPPRESS)
    ap.add_argument("--sub", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--ref", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(args)
        return
    sub, ref_dir = generate(args.workdir, args.scenes)
    px = args.scenes * H * W
    print(f"{args.scenes} scenes x {H} x {W} = {px / 1e6:.0f} M pixels per chart")
    runs = [("streaming", [])]
    if [c for c in args.naive_charts if c]:
        runs.append(("naive", ["--naive-charts", *args.naive_charts]))
    results = {}
    for kind, extra in runs:
        cmd = [sys.executable, __file__, "--child", kind, "--sub", str(sub), "--ref", str(ref_dir), *extra]
        res = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        label = kind
        results[label] = res
        charts = ", ".join(f"{c} {v:.12f}" for c, v in res["fractions"].items())
        print(f"{label:<32} {res['seconds']:7.1f} s  peak RSS {res['peak_rss_gb']:6.2f} GB  [{charts}]")
    streaming = results["streaming"]["fractions"]
    for label, res in results.items():
        if label.startswith("naive"):
            for c, v in res["fractions"].items():
                print(f"  {c}: |streaming - sklearn| = {abs(streaming[c] - v):.2e}")


if __name__ == "__main__":
    main()
