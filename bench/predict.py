"""Full-scene inference speed and memory: mmseaice (x10) against the baseline's full-resolution pass.

    python bench/predict.py [--height 5000 --width 5200] [--workdir bench_out] [--skip-baseline]

One full-size synthetic test scene (made once by ``autoice synth`` and cached in the workdir). For
each model, in a fresh process: reading the file at the model's resolution, the network, classes
brought back to 80 m, and writing/validating upload_package.nc; peak RSS of that process. Weights
are freshly initialised: speed does not depend on them.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import measure  # noqa: E402


def _scene(workdir: Path, height: int, width: int) -> Path:
    from autoice import synth

    test = workdir / "predict_data" / "test"
    found = sorted(test.glob("*_prep.nc")) if test.exists() else []
    if not found:
        synth.synthesize(workdir / "predict_data", n_train=0, n_test=1, height=height, width=width, seed=1,
                         progress=False)  # fmt: skip
        found = sorted(test.glob("*_prep.nc"))
    return found[0]


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


def _run(checkpoint: str, scene: str, out: str) -> dict[str, float]:
    import numpy as np
    import torch

    from autoice import schema
    from autoice.data.inputs import scene_inputs, upsample_to
    from autoice.inference import predict_scene
    from autoice.predict import BASE_MEMORY, CPU_MAX_TILE, choose_tile, load_models
    from autoice.scenes import open_scene
    from autoice.submission import SubmissionWriter, validate_submission

    t = {}
    t0 = time.perf_counter()
    loaded = load_models([checkpoint], "cpu")
    cfg = loaded.config
    t["load model"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    with open_scene(scene, check_values=False) as ds:
        shape = (ds.sizes[schema.FULL_DIMS[0]], ds.sizes[schema.FULL_DIMS[1]])
        x = scene_inputs(ds, cfg.data.inputs, cfg.data.downscale, dtype=cfg.data.cache_dtype)
    t["read inputs"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    tile = choose_tile(cfg, x.shape[1:], 3e9 - BASE_MEMORY - x.nbytes, max_tile=CPU_MAX_TILE)
    with torch.inference_mode():
        res = predict_scene(loaded.networks, x, sic_mode=cfg.model.sic_mode, tile=tile)
    t["network + class decisions"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    full = {c: upsample_to(shape, res.classes[c], cfg.data.downscale) for c in schema.CHARTS}
    t["classes to 80 m"] = time.perf_counter() - t0
    t["read -> classes at 80 m"] = t["read inputs"] + t["network + class decisions"] + t["classes to 80 m"]
    t0 = time.perf_counter()
    key = Path(scene).name[:19]
    with SubmissionWriter(out) as w:
        for c in schema.CHARTS:
            w.add(key, c, full[c])
    assert validate_submission(out, {key: shape}) == []
    t["write + validate submission"] = time.perf_counter() - t0
    t["tile"] = float(tile)
    t["checksum"] = float(sum(int(np.asarray(a, dtype=np.int64).sum()) for a in full.values()) % 1000)
    return t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--height", type=int, default=5000)
    ap.add_argument("--width", type=int, default=5200)
    ap.add_argument("--workdir", type=Path, default=Path("bench_out"))
    ap.add_argument("--skip-baseline", action="store_true")
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    scene = _scene(args.workdir, args.height, args.width)
    print(f"scene: {scene.name} ({args.height} x {args.width} at 80 m)")
    results = {}
    for preset in ["mmseaice"] + ([] if args.skip_baseline else ["baseline"]):
        ckpt = _checkpoint(args.workdir, preset)
        wall, peak, t = measure(_run, str(ckpt), str(scene), str(args.workdir / f"upload_{preset}.nc"))
        results[preset] = (wall, peak, t)
        print(f"\n{preset}: peak RSS {peak / 1e9:.2f} GB, tile {int(t['tile'])}")
        for k, v in t.items():
            if k not in ("tile", "checksum"):
                print(f"  {k:<30} {v:7.2f} s")
    if "baseline" in results:
        a = results["mmseaice"][2]["read -> classes at 80 m"]
        b = results["baseline"][2]["read -> classes at 80 m"]
        print(f"\nmmseaice is {b / a:.1f}x faster than the baseline's full-resolution pass (read -> classes at 80 m)")


if __name__ == "__main__":
    main()
