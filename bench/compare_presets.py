"""Validation score of presets trained for the same wall-clock budget on the same synthetic scenes.

    python bench/compare_presets.py [--minutes 6] [--scenes 30] [--height 600 --width 640] [--workdir bench_out]

30 scenes of 600 x 640 are synthesised once (seeded); each preset holds out the same seeded 20 %
(6 scenes) for validation and trains until the time budget (``train.time_budget_min``) is spent.
The baseline's 500-batch epochs are cut to --baseline-batches so that it is validated as often;
everything else is the presets' own recipe. Prints the training curves (elapsed time, validation
scores per epoch) and writes them to WORKDIR/compare_presets.png.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=6.0, help="training budget per preset")
    ap.add_argument("--scenes", type=int, default=30)
    ap.add_argument("--height", type=int, default=600)
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--presets", nargs="+", default=["demo", "baseline"])
    ap.add_argument("--baseline-batches", type=int, default=25)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", type=Path, default=Path("bench_out"))
    args = ap.parse_args()

    from autoice import synth
    from autoice.config import load_config
    from autoice.train import train

    data = args.workdir / f"compare_data_{args.scenes}_{args.height}x{args.width}"
    synth.synthesize(data, n_train=args.scenes, n_test=0, height=args.height, width=args.width, seed=args.seed,
                     workers=2, progress=False)  # fmt: skip
    curves = {}
    for preset in args.presets:
        over = [f"train.time_budget_min={args.minutes}", "train.epochs=100000", "data.val_fraction=0.2",
                f"train.seed={args.seed}"]  # fmt: skip
        if preset == "baseline":
            over.append(f"train.batches_per_epoch={args.baseline_batches}")
        cfg = load_config(preset, overrides=over)
        work = args.workdir / f"compare_{preset}"
        result = train(cfg, data / "train", work, progress=False)
        curves[preset] = [{k: v for k, v in h.items() if k == "epoch" or k == "elapsed_s" or k.startswith("val_")}
                          for h in result.history]  # fmt: skip
        print(f"\n{preset}: best val combined {result.best_score:.3f} after {len(result.history)} epochs")
        for h in curves[preset]:
            if "val_combined" in h:
                print(f"  epoch {int(h['epoch']):3d}  {h['elapsed_s'] / 60:5.1f} min  combined {h['val_combined']:7.3f}"
                      f"  SIC {h['val_SIC']:7.3f}  SOD {h['val_SOD']:7.3f}  FLOE {h['val_FLOE']:7.3f}")  # fmt: skip
    (args.workdir / "compare_presets.json").write_text(json.dumps(curves, indent=1))
    _plot(curves, args.workdir / "compare_presets.png")
    print(f"\ncurves: {args.workdir / 'compare_presets.png'}")


def _plot(curves: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(16, 3.6), constrained_layout=True)
    for preset, hist in curves.items():
        pts = [h for h in hist if "val_combined" in h]
        t = [h["elapsed_s"] / 60 for h in pts]
        for ax, key in zip(axes, ["val_combined", "val_SIC", "val_SOD", "val_FLOE"], strict=True):
            ax.plot(t, [h[key] for h in pts], marker="o", ms=3, label=preset)
            ax.set_title(key)
            ax.set_xlabel("training time (min)")
    axes[0].legend()
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    main()
