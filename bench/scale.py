"""Scaling on a Dask cluster: prepare and predict with 1 and with 2 workers on this machine.

    python bench/scale.py [--height 5000 --width 5200] [--prepare 4] [--predict 8] [--preset mmseaice]
                          [--workdir bench_out/scale]

A LocalCluster on 127.0.0.1 (one thread per worker process, OMP_NUM_THREADS=1) runs ``prepare``
over the first ``--prepare`` raw scenes and ``predict`` over ``--predict`` test scenes, through the
same ``--scheduler`` path the CLI takes; the time excludes starting the cluster and importing the
libraries in its workers. Scenes are
synthetic (made once, on the cluster, and cached in the workdir); the model's weights are freshly
initialised (speed does not depend on them). The issue's target: 2 workers >= 1.7x faster than 1.
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path


def _checkpoint(workdir: Path, preset: str) -> Path:
    import torch

    from autoice.config import load_config
    from autoice.models.unet import build_model, n_parameters

    path = workdir / f"{preset}_init.pt"
    if not path.exists():
        cfg = load_config(preset)
        torch.manual_seed(0)
        net = build_model(cfg)
        torch.save({"model": net.state_dict(), "config": cfg.to_dict(), "params": n_parameters(net)}, path)
    return path


def _warm() -> None:
    """Import what the tasks use, so that a worker's first scene is not also its start-up."""
    import autoice.inference  # noqa: F401
    import autoice.predict  # noqa: F401
    import autoice.prepare  # noqa: F401


def _cluster(n: int):
    from distributed import LocalCluster

    return LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=":0")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--height", type=int, default=5000, help="80 m lines (raw is twice that)")
    ap.add_argument("--width", type=int, default=5200, help="80 m samples (raw is twice that)")
    ap.add_argument("--prepare", type=int, default=4, help="raw scenes to prepare")
    ap.add_argument("--predict", type=int, default=8, help="test scenes to predict")
    ap.add_argument("--preset", default="mmseaice", help="model architecture for predict")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--workdir", type=Path, default=Path("bench_out/scale"))
    args = ap.parse_args()
    os.environ["OMP_NUM_THREADS"] = "1"  # one core per worker process (torch and BLAS read it at start)

    from distributed import Client

    from autoice.predict import predict
    from autoice.prepare import prepare_files
    from autoice.synth import synthesize

    data = args.workdir / f"data_{args.height}x{args.width}"
    n = max(args.prepare, args.predict)
    with _cluster(max(args.workers)) as c:
        t0 = time.perf_counter()
        synthesize(data, n_train=0, n_test=n, height=args.height, width=args.width, seed=5, progress=False,
                   scheduler=c.scheduler_address)  # fmt: skip
        print(f"data: {n} scenes of {args.height} x {args.width} at 80 m ({time.perf_counter() - t0:.0f} s, cached)")
    raw = sorted((data / "raw").glob("*.nc"))[: args.prepare]
    test = sorted((data / "test").glob("*_prep.nc"))[: args.predict]
    ckpt = _checkpoint(args.workdir, args.preset)
    times: dict[str, dict[int, float]] = {"prepare": {}, "predict": {}}
    for workers in args.workers:
        with _cluster(workers) as c, Client(c.scheduler_address) as client:
            client.run(_warm)
            out = args.workdir / f"out_{workers}"
            shutil.rmtree(out, ignore_errors=True)
            t0 = time.perf_counter()
            prepare_files(raw, out / "prep", overwrite=True, progress=False, scheduler=c.scheduler_address)
            times["prepare"][workers] = time.perf_counter() - t0
            t0 = time.perf_counter()
            predict(str(ckpt), test, out / "upload_package.nc", device="cpu", progress=False,
                    scheduler=c.scheduler_address)  # fmt: skip
            times["predict"][workers] = time.perf_counter() - t0
    print(f"{'command':<9}{'scenes':>7}" + "".join(f"{f'{w} worker(s)':>14}" for w in args.workers) + "   speed-up")
    for command, scenes in (("prepare", len(raw)), ("predict", len(test))):
        t = times[command]
        row = f"{command:<9}{scenes:>7}" + "".join(f"{t[w]:>12.1f} s" for w in args.workers)
        lo, hi = min(args.workers), max(args.workers)
        print(row + (f"   {t[lo] / t[hi]:.2f}x ({hi} vs {lo})" if hi != lo else ""))
    print(f"cores: {os.cpu_count()}, load average now: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
