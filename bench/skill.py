"""Skill of the U-Net presets and the per-pixel baselines for one training budget, on held-out seeds.

    .venv/bin/python bench/skill.py                      # 4 train seeds x 30 scenes, 4 test seeds x 10, 6 min each
    .venv/bin/python bench/skill.py --quick              # smoke test: tiny scenes, 1-epoch U-Nets, a few minutes
    .venv/bin/python bench/skill.py [--presets baseline mmseaice demo autoice] [--minutes 6 | --budget epochs]
        [--repeats 1] [--piece KEY=VALUE ... [--piece-preset demo]] [--set PRESET:KEY=VALUE ...]
        [--size auto|cpu|full] [--train-seeds 3000 3001 3002 3003]
        [--test-seeds 5000 5001 5002 5003] [--train-per-seed 30] [--test-per-seed 10] [--height 600] [--width 640]
        [--workdir bench_out/skill] [--workers 2] [--max-train-pixels 300000] [--test-stride 2]
        [--boost-iter 200] [--n-boot 200] [--overwrite] [--json FILE]

Training scenes come from the training seeds, test scenes from other seeds (never the same seed), each
synthesised into WORKDIR/data_<h>x<w>/seed<S>/ and reused on later runs (pass --overwrite after
changing the generator). Every model learns from the same training scenes:

- the per-pixel baselines of ``bench/realism.py`` (majority, linear, gradient boosting, two one-input
  trees) fitted on sampled training pixels, and its spatial context model (boosting with 4-12 km
  neighbourhood statistics, labelled "spatial"), scored on every --test-stride-th test row and column;
- one U-Net per --presets entry (a name that is not a shipped preset is skipped with a message),
  trained on all training scenes (linked into WORKDIR/unet_train/; each preset holds out its own
  validation scenes by its own rule), then run through the product path on the test scenes
  (``autoice.predict.predict`` -> upload_package.nc -> ``autoice.submission.score_submission``) and
  scored on every pixel.

Budget. ``--budget time`` (default): every preset trains for the same wall-clock, ``--minutes`` (default
6, what the demo preset's own 20 epochs took on 2 CPU cores in fp32; with native bf16 they take about
2), via ``train.time_budget_min=M`` and
``train.epochs=100000`` (training stops after the epoch that passes the budget; validation counts,
the patch-cache build before the first epoch does not). ``--budget epochs``: each preset's own epochs.

Size. Without a GPU (``--size auto``) or with ``--size cpu``, the presets of ``CPU_SIZED`` are shrunk to
the demo preset's size (the ``SIZE_KEYS`` values of demo.yaml: x5, 64 x 64 patches, 40-batch epochs,
...), so that baseline, mmseaice and autoice differ from demo only in their recipe pieces. With a GPU
(``--size auto``) or ``--size full`` every preset runs as shipped; give it scenes to match (at 600 x 640
an x10 scene is 60 x 64 pixels, padded into mmseaice's 256 x 256 patches). Override anything per preset with
``--set PRESET:KEY=VALUE`` (repeatable; ``--set KEY=VALUE`` applies to every preset); these come last.

Repeats. ``--repeats N`` trains every U-Net preset N times, with ``train.seed`` 0 .. N-1 (the last
override). The demo preset's score on 20 held-out scenes moves by about a point from one training
seed to another (85.5 to 87.4 with seeds 0-2), as much as most recipe pieces do, and the scene
bootstrap does not see it. With N > 1 a U-Net row gives the mean over its runs, the runs' combined
scores, and an interval that resamples runs as well as scenes; margins likewise (realism's
``runs_draws``). Two presets whose resolved configs are equal (``autoice`` and ``demo`` CPU-sized)
are trained once.

Pieces. ``--piece KEY=VALUE`` (repeatable) adds one U-Net: ``--piece-preset`` (default demo, trained
too if not among --presets) with those overrides, sized and budgeted like it, trained with the same
seeds, and the margin piece - preset (goal: interval above zero). This is how a recipe piece is put to
the test: ``bench/skill.py --presets demo --repeats 3 --budget epochs --piece train.water_consistency=1``.
Every margin between two U-Nets trained with the same N > 1 seeds also gets a second interval with the
runs paired by seed (run k of each shares its validation hold-out, so its training scenes).

Prints one markdown table (SIC R², SOD F1, FLOE F1, combined with a scene-bootstrap 95 % interval,
training seconds), a training table (epochs, patches/s, minutes per epoch, budget used), and paired
scene-bootstrap margins: demo - best per-pixel baseline (the spatial model excluded), mmseaice -
baseline, autoice - mmseaice, with issue 9's goals. Writes the validation curves of the U-Nets to
WORKDIR/skill_curves.png (each preset's own validation scenes and resolution: a guide, not the test).
--json writes every figure.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# Before any OpenMP runtime loads (see realism.py): passive waiting on the shared 2 cores.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from realism import (  # noqa: E402
    CONTEXT_MODEL,
    Moments,
    ScenePixels,
    SeedSet,
    add_set_arguments,
    log,
    md_table,
    mean_of_runs,
    read_scene,
    run_baselines,
    run_unet,
    runs_margin,
    synthesize_all,
    write_figures,
)

NORMAL = {"train_seeds": [3000, 3001, 3002, 3003], "test_seeds": [5000, 5001, 5002, 5003], "train_per_seed": 30,
          "test_per_seed": 10, "height": 600, "width": 640, "max_train_pixels": 300_000, "test_stride": 2,
          "boost_iter": 200, "n_boot": 200}  # fmt: skip
QUICK = {"train_seeds": [3000, 3001], "test_seeds": [5000], "train_per_seed": 2, "test_per_seed": 2,
         "height": 200, "width": 224, "max_train_pixels": 20_000, "test_stride": 4, "boost_iter": 20,
         "n_boot": 50}  # fmt: skip
#: --quick: every U-Net one epoch of 3 batches (after the budget and size overrides, before --set).
QUICK_UNET = ["train.epochs=1", "train.batches_per_epoch=3", "train.val_every=1", "data.patch_size=32"]
DEFAULT_PRESETS = ["baseline", "mmseaice", "demo", "autoice"]
#: Presets shrunk to the demo preset's size on CPU (demo is that size already).
CPU_SIZED = ("baseline", "mmseaice", "autoice")
#: What "size" is: resolution, patch, epoch length and count, restart period (in epochs), validation cadence.
#: Everything else (inputs, network, loss, optimiser, augmentation, sampling, validation rule) is recipe.
SIZE_KEYS = ("data.downscale", "data.patch_size", "train.epochs", "train.batches_per_epoch", "train.restart_epochs",
             "train.val_every")  # fmt: skip
#: Paired margins: (a, b, goal of issue 9). "best per-pixel" is resolved after the baselines ran.
MARGINS = (("demo", "best per-pixel", "margin >= 5"), ("mmseaice", "baseline", "margin > 0"),
           ("autoice", "mmseaice", "interval above 0"))  # fmt: skip


#: The key of the --piece arm among the U-Nets.
PIECE = "piece"


# ----------------------------------------------------------------------------- settings
def cpu_size() -> list[str]:
    """The demo preset's ``SIZE_KEYS`` as overrides."""
    from autoice.config import load_config

    flat = load_config("demo").flat()
    return [f"{k}={flat[k]}" for k in SIZE_KEYS]


def parse_sets(items: Sequence[str], presets: Sequence[str]) -> dict[str, list[str]]:
    """``PRESET:KEY=VALUE`` (or ``KEY=VALUE`` for every preset) -> preset -> overrides, in the given order."""
    out: dict[str, list[str]] = {p: [] for p in presets}
    for item in items:
        head, sep, _ = item.partition("=")
        if not sep:
            raise SystemExit(f"--set {item!r}: expected PRESET:KEY=VALUE or KEY=VALUE")
        if ":" in head:
            preset, _, rest = item.partition(":")
            if preset not in out:
                log(f"--set {item!r}: preset {preset!r} is not among the presets run; ignored")
                continue
            out[preset].append(rest)
        else:
            for p in out:
                out[p].append(item)
    return out


def overrides_for(preset: str, args: argparse.Namespace, sized: bool, user: list[str]) -> list[str]:
    """Size, then budget, then --quick, then the user's --set: a later value of a key wins."""
    over = cpu_size() if sized and preset in CPU_SIZED else []
    if args.budget == "time":
        over += [f"train.time_budget_min={args.minutes:g}", "train.epochs=100000"]
    if args.quick:
        over += QUICK_UNET
    last = {o.partition("=")[0]: o for o in over + user}  # one entry per key, the last one given
    return list(last.values())


def training_summary(history: list[dict[str, float]]) -> dict[str, float]:
    """Epochs, median patches/s, minutes per epoch (validation included) and minutes used, from a history."""
    if not history:
        return {"epochs": 0, "patches_per_s": float("nan"), "min_per_epoch": float("nan"), "minutes": float("nan")}
    minutes = history[-1]["elapsed_s"] / 60
    return {"epochs": len(history), "patches_per_s": float(np.median([h["patches_per_s"] for h in history])),
            "min_per_epoch": minutes / len(history), "minutes": minutes}  # fmt: skip


# ----------------------------------------------------------------------------- data
def synthesize(args: argparse.Namespace, seeds: Sequence[int], n_train: int, n_test: int) -> list[SeedSet]:
    """realism's ``synthesize_all`` for these seeds and counts."""
    changed = {"seeds": list(seeds), "train_per_seed": n_train, "test_per_seed": n_test}
    return synthesize_all(argparse.Namespace(**{**vars(args), **changed}))


def read_pixels(args: argparse.Namespace, train_sets: list[SeedSet], test_sets: list[SeedSet]
                ) -> tuple[list[ScenePixels], list[ScenePixels]]:  # fmt: skip
    """Sampled training pixels and strided test pixels (test scenes in seed, then file order)."""
    moments = Moments()  # not reported here: realism.py's table (a)
    n_train = sum(len(s.train) for s in train_sets)
    quota = max(1, args.max_train_pixels // max(1, n_train))
    rng = np.random.default_rng(12345)
    train_px = [read_scene(f, None, moments=moments, rng=rng, quota=quota, stride=args.test_stride)[1]
                for s in train_sets for f in s.train]  # fmt: skip
    test_px = [read_scene(f, ref, moments=moments, rng=None, quota=0, stride=args.test_stride)[1]
               for s in test_sets for f, ref in zip(s.test, s.reference, strict=True)]  # fmt: skip
    return train_px, test_px


def train_runs(args: argparse.Namespace, sets: list[SeedSet], preset: str, over: list[str], stem: str,
               timings: dict[str, float]) -> dict[str, Any]:  # fmt: skip
    """Train ``preset`` with ``over`` ``--repeats`` times (``train.seed`` 0..N-1 last), score each: one row."""
    runs = []
    for k in range(args.repeats):
        t0 = time.perf_counter()
        seed = [f"train.seed={k}"] if args.repeats > 1 else []
        work = args.workdir / (f"{stem}_{args.height}x{args.width}" + (f"_seed{k}" if k else ""))
        runs.append(run_unet(args, sets, over + seed, preset=preset, work=work))
        timings[f"unet {stem}" + (f" seed {k}" if args.repeats > 1 else "")] = time.perf_counter() - t0
    return mean_of_runs(runs, args.n_boot)


# ----------------------------------------------------------------------------- output
def _ci(r: dict[str, Any]) -> str:
    lo, hi = r["combined_ci"]
    runs = r.get("run_combined", [])
    spread = f" (runs {' / '.join(f'{c:.1f}' for c in runs)})" if len(runs) > 1 else ""
    return f"{r['combined']:.2f}" + ("" if not np.isfinite(lo) else f" [{lo:.1f}, {hi:.1f}]") + spread


def skill_table(rows: dict[str, dict[str, Any]]) -> str:
    """The one table: model, SIC, SOD, FLOE, combined [95 % CI], training seconds."""
    body = [[name, f"{r['SIC']:.2f}", f"{r['SOD']:.2f}", f"{r['FLOE']:.2f}", _ci(r), f"{r['train_seconds']:.0f}"]
            for name, r in rows.items()]  # fmt: skip
    return md_table(["model", "SIC R²", "SOD F1", "FLOE F1", "combined [95 % CI]", "train s"], body)


def training_table(unets: dict[str, dict[str, Any]]) -> str:
    """Per preset: epochs, patches/s, minutes per epoch, minutes of training, best validation combined."""
    body = []
    for preset, r in unets.items():
        t = r["training"]
        name = f"`{r.get('label', preset)}`" + (" (CPU-sized)" if r["sized"] else "")
        body.append([name, t["epochs"], f"{t['patches_per_s']:.1f}",
                     f"{t['min_per_epoch']:.2f}", f"{t['minutes']:.1f}", f"{r['best_val']:.2f}"])  # fmt: skip
    return md_table(["preset", "epochs", "patches/s", "min/epoch", "min trained", "best val combined"], body)


def plot_curves(unets: dict[str, dict[str, Any]], path: Path) -> bool:
    """Validation scores against training minutes, one line per preset; False when there is nothing to draw."""
    curves = {p: [h for h in r["_history"] if "val_combined" in h] for p, r in unets.items()}
    if not any(curves.values()):
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(16, 3.6), constrained_layout=True)
    for preset, pts in curves.items():
        t = [h["elapsed_s"] / 60 for h in pts]
        for ax, key in zip(axes, ["val_combined", "val_SIC", "val_SOD", "val_FLOE"], strict=True):
            ax.plot(t, [h[key] for h in pts], marker="o", ms=3, label=preset)
            ax.set_title(key)
            ax.set_xlabel("training time (min)")
    axes[0].legend()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


# ----------------------------------------------------------------------------- main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", nargs="+", default=DEFAULT_PRESETS, help=f"U-Net presets, default {DEFAULT_PRESETS}")
    ap.add_argument("--budget", choices=("time", "epochs"), default="time",
                    help="time: every preset trains --minutes; epochs: each preset's own epochs")  # fmt: skip
    ap.add_argument("--minutes", type=float, default=6.0, help="wall-clock training budget per preset, default 6")
    ap.add_argument("--repeats", type=int, default=1,
                    help="train each U-Net N times (train.seed 0..N-1); rows and margins average the runs")  # fmt: skip
    ap.add_argument("--piece", action="append", default=[], metavar="KEY=VALUE",
                    help="one more U-Net: --piece-preset with these overrides (repeatable), same seeds")  # fmt: skip
    ap.add_argument("--piece-preset", default="demo", help="the preset a --piece is measured against, default demo")
    ap.add_argument("--size", choices=("auto", "cpu", "full"), default="auto",
                    help="auto: CPU-sized without a GPU (and with --quick), full-size with one")  # fmt: skip
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="PRESET:KEY=VALUE",
                    help="config override for one preset (or KEY=VALUE for all; repeatable)")  # fmt: skip
    ap.add_argument("--train-seeds", type=int, nargs="+", default=None, help=f"default {NORMAL['train_seeds']}")
    ap.add_argument("--test-seeds", type=int, nargs="+", default=None, help=f"default {NORMAL['test_seeds']}")
    add_set_arguments(ap, NORMAL, Path("bench_out/skill"))
    ap.add_argument("--quick", action="store_true", help="smoke run: 2 x 2 train, 1 x 2 test scenes of 200 x 224")
    args = ap.parse_args()
    for k, v in (QUICK if args.quick else NORMAL).items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    if shared := sorted(set(args.train_seeds) & set(args.test_seeds)):
        raise SystemExit(f"--test-seeds must differ from --train-seeds (both hold {shared})")
    if args.repeats < 1:
        raise SystemExit(f"--repeats must be >= 1, got {args.repeats}")
    import torch

    from autoice.config import load_config, preset_names

    cuda = torch.cuda.is_available()
    sized = args.size == "cpu" or (args.size == "auto" and (not cuda or args.quick))
    known = preset_names()
    presets = []
    for p in dict.fromkeys(args.presets):
        if p in known:
            presets.append(p)
        else:
            log(f"preset {p!r} is not shipped (known: {', '.join(known)}); skipped")
    if args.piece and args.piece_preset not in presets:
        if args.piece_preset not in known:
            raise SystemExit(f"--piece-preset {args.piece_preset!r} is not a shipped preset ({', '.join(known)})")
        presets.append(args.piece_preset)  # the piece is measured against it
    user = parse_sets(args.sets, presets)
    t_start = time.perf_counter()
    timings: dict[str, float] = {}

    train_sets = synthesize(args, args.train_seeds, args.train_per_seed, 0)
    test_sets = synthesize(args, args.test_seeds, 0, args.test_per_seed)
    timings["synth"] = time.perf_counter() - t_start

    t0 = time.perf_counter()
    train_px, test_px = read_pixels(args, train_sets, test_sets)
    timings["read"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    baselines = run_baselines(train_px, test_px, args.boost_iter, args.n_boot, args.quick)
    timings["baselines"] = time.perf_counter() - t0
    del train_px, test_px
    best = max((k for k in baselines if k != CONTEXT_MODEL), key=lambda k: baselines[k]["combined"])

    unets: dict[str, dict[str, Any]] = {}
    trained: dict[str, str] = {}  # resolved config -> the preset that trained it
    for preset in presets:
        over = overrides_for(preset, args, sized, user[preset])
        flat = load_config(preset, overrides=over).flat()
        key = repr(sorted((k, v) for k, v in flat.items() if k != "preset"))  # the name is not a setting
        if key in trained:  # e.g. autoice CPU-sized is the demo preset: same runs, not trained twice
            log(f"unet {preset}: the same configuration as {trained[key]}; its runs are reused")
            unets[preset] = {**unets[trained[key]], "sized": sized and preset in CPU_SIZED, "same_as": trained[key]}
            continue
        trained[key] = preset
        log(f"unet {preset}: {' '.join(over) or 'as shipped'}")
        r = train_runs(args, train_sets + test_sets, preset, over, preset, timings)
        unets[preset] = {**r, "sized": sized and preset in CPU_SIZED, "training": training_summary(r["_history"])}
    if args.piece:  # the piece on top of its preset, trained with the same seeds
        pp = args.piece_preset
        over = overrides_for(pp, args, sized, user.get(pp, [])) + list(args.piece)
        log(f"unet {pp} + piece: {' '.join(over)}")
        r = train_runs(args, train_sets + test_sets, pp, over, "piece", timings)
        unets[PIECE] = {**r, "sized": sized and pp in CPU_SIZED, "training": training_summary(r["_history"]),
                        "label": f"{pp} + {', '.join(args.piece)}"}  # fmt: skip

    rows: dict[str, dict[str, Any]] = {}
    for name, r in baselines.items():
        label = name if name == CONTEXT_MODEL else f"per-pixel: {name}"
        rows[label] = {**r, "train_seconds": r["seconds"]}
    for preset, r in unets.items():
        same = f" = `{r['same_as']}`" if "same_as" in r else ""
        name = f"`{r['label']}`" if "label" in r else f"`{preset}`"
        rows[f"U-Net {name}" + (" (CPU-sized)" if r["sized"] else "") + same] = r

    margins: list[dict[str, Any]] = []
    wanted = list(MARGINS) + ([(PIECE, args.piece_preset, "interval above 0")] if args.piece else [])
    for a, b, goal in wanted:
        rb = baselines[best] if b == "best per-pixel" else unets.get(b)
        ra = unets.get(a)
        if ra is None or rb is None:
            continue
        runs_a, runs_b = ra.get("_runs", [ra["_scenes"]]), rb.get("_runs", [rb["_scenes"]])
        lo, hi = runs_margin(runs_a, runs_b, args.n_boot)
        paired = None  # runs of one seed share their validation hold-out: pairing them is the sharper test
        if len(runs_a) > 1 and len(runs_a) == len(runs_b):
            paired = list(runs_margin(runs_a, runs_b, args.n_boot, paired_runs=True))
        m = ra["combined"] - rb["combined"]
        met = m >= 5 if goal == "margin >= 5" else (m > 0 if goal == "margin > 0" else lo > 0)
        name_a = ra.get("label", a)
        margins.append({"a": name_a, "b": best if b == "best per-pixel" else b, "label": f"{name_a} - {b}",
                        "margin": m, "ci": [lo, hi], "ci_paired_runs": paired, "goal": goal,
                        "met": bool(met)})  # fmt: skip

    n_train = sum(len(s.train) for s in train_sets)
    n_test = sum(len(s.test) for s in test_sets)
    budget = f"{args.minutes:g} min of training each" if args.budget == "time" else "each preset's own epochs"
    budget = "--quick: 1 epoch of 3 batches each" if args.quick else budget
    size = f"{', '.join(CPU_SIZED)} CPU-sized to the demo preset's size" if sized else "every preset as shipped"
    print(f"\n### Skill on {n_test} held-out scenes of seeds {', '.join(map(str, args.test_seeds))} "
          f"({args.height} x {args.width}); trained on {n_train} scenes of seeds "
          f"{', '.join(map(str, args.train_seeds))}\n")  # fmt: skip
    print(f"U-Nets: {budget}, {'on CUDA' if cuda else 'on CPU'}, {size}"
          + "; scored on every pixel through "
          "predict -> upload_package.nc -> score_submission. Baselines: <= "
          f"{args.max_train_pixels} sampled pixels per chart, scored on a 1-in-{args.test_stride} grid of rows and "
          "columns, "
          "train s = fit + predict (U-Nets: the whole train() call, patch cache included). 95 % CI: "
          f"{args.n_boot} scene-bootstrap resamples"
          + (f"; each U-Net trained {args.repeats} times (train.seed 0..{args.repeats - 1}): mean of the runs, each "
             "run's combined in brackets, runs resampled with the scenes" if args.repeats > 1 else "")
          + ".\n")  # fmt: skip
    print(skill_table(rows))
    if unets:
        first = " of the first run (train.seed 0; best val: the mean of the runs)" if args.repeats > 1 else ""
        print(f"\nTraining{first} (patches/s: median over epochs; min/epoch includes validation):\n")
        print(training_table(unets))
    print(f"\nbest per-pixel model: {best} (combined {baselines[best]['combined']:.2f})")
    if margins:
        runs = ", training runs resampled too" if args.repeats > 1 else ""
        print(f"\nPaired scene-bootstrap margins of combined{runs} (issue 9's goals):\n")
        def _paired(m: dict[str, Any]) -> str:
            c = m["ci_paired_runs"]
            return "" if c is None else f"[{c[0]:+.1f}, {c[1]:+.1f}]"

        print(md_table(["margin", "combined", "95 % interval", "runs paired by seed", "goal", "met"],
                       [[f"{m['a']} - {m['b']}", f"{m['margin']:+.2f}", f"[{m['ci'][0]:+.1f}, {m['ci'][1]:+.1f}]",
                         _paired(m), m["goal"], "yes" if m["met"] else "NO"] for m in margins]))  # fmt: skip
    curves = args.workdir / "skill_curves.png"
    if plot_curves(unets, curves):
        print(f"\nvalidation curves: {curves}")
    timings["total"] = time.perf_counter() - t_start
    print("\ntime: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()))
    if args.json is not None:
        out = {
            "config": {**vars(args), "cuda": cuda, "sized": sized, "presets_run": presets, "cpu_size": cpu_size()},
            "models": {k: {m: v for m, v in r.items() if not m.startswith("_")} for k, r in rows.items()},
            "histories": {p: r["_history"] for p, r in unets.items()},
            "best_per_pixel": best,
            "margins": margins,
            "timings_s": timings,
        }
        write_figures(args.json, out)


if __name__ == "__main__":
    main()
