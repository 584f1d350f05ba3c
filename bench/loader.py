"""Training-patch throughput: our cache + loader against the starter kit's read-from-netCDF loader.

    python bench/loader.py [--workdir bench_out/loader] [--scenes 4] [--height 5000 --width 5200]
                           [--seconds 10] [--random]

Same scenes, same run: ``--scenes`` full-size RTT scenes are made once in the workdir (by
``autoice.synth``, or random values with ``--random``), then

(a) starter-kit style: per patch, open the netCDF with xarray, read the SIC chart to check the
    patch has labels, read a random 256 x 256 window of the 4 full-grid inputs and the charts, read
    the 20 coarse variables and upsample their crop with ``torch.nn.functional.interpolate``;
(b) ours, baseline config (80 m, 24 channels, 256^2 patches, batch 8) with the augmentations on
    (flips, rot90, scale 0.9-1.1, CutMix 0.5), with 0 and 2 DataLoader workers: patches/s delivered
    as batches, without and with ``augment_batch`` (which the training loop runs on the device);
(c) ours, the mmseaice preset (16 channels incl. lat/lon/month, x10, 256^2 patches, batch 16, the
    same augmentations), same measurements;
plus a bare memory-map crop of the baseline cache for scale. The cache build time is printed
separately (cold: first build; warm: a second call that only checks the entries).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import numpy as np


def make_scenes(workdir: Path, n: int, height: int, width: int, random: bool) -> list[Path]:
    """``n`` full-size RTT training scenes in ``workdir`` (kept between runs)."""
    folder = workdir / ("random" if random else "synth")
    if not random:
        from autoice.synth import synthesize

        return list(synthesize(folder, n_train=n, n_test=0, height=height, width=width, seed=0, workers=2).train)
    import xarray as xr

    from autoice import schema
    from autoice.scenes import write_netcdf

    paths = []
    for i in range(n):
        path = folder / "train" / f"2019{1 + i:02d}15T120000_dmi_prep.nc"
        paths.append(path)
        if path.exists():
            continue
        rng = np.random.default_rng(i)
        cl, cs = -(-height // schema.CELL_RTT), -(-width // schema.CELL_RTT)
        data = {n_: (schema.FULL_DIMS, rng.standard_normal((height, width), dtype=np.float32))
                for n_ in schema.FULL_GRID_INPUTS}  # fmt: skip
        data |= {n_: (schema.COARSE_DIMS, rng.standard_normal((cl, cs), dtype=np.float32))
                 for n_ in schema.COARSE_VARIABLES}  # fmt: skip
        for c in schema.CHARTS:
            lab = rng.integers(0, schema.N_CLASSES[c], (height // 50, width // 50), dtype=np.uint8)
            lab = np.kron(lab, np.ones((50, 50), np.uint8))
            full = np.full((height, width), schema.CHART_FILL, np.uint8)
            full[: lab.shape[0], : lab.shape[1]] = lab
            data[c] = (schema.FULL_DIMS, full)
        t = np.linspace(0, 1, schema.TIEPOINT_GRID)
        data[schema.TIEPOINT_LATITUDE] = (schema.TIEPOINT_DIMS, 70 + np.add.outer(t, t))
        data[schema.TIEPOINT_LONGITUDE] = (schema.TIEPOINT_DIMS, -40 + np.add.outer(t, 2 * t))
        write_netcdf(xr.Dataset(data, attrs={"scene_id": path.name[:19], "ice_service": "dmi"}), path)
    return paths


# ----------------------------------------------------------------------------- (a) starter kit
def starter_kit_patches(paths: list[Path], seconds: float, patch: int = 256, seed: int = 0) -> tuple[int, float]:
    """Patches the starter kit's way (xarray per patch, coarse crop upsampled) for ``seconds``."""
    import torch
    import xarray as xr

    from autoice import schema

    rng = np.random.default_rng(seed)
    cell = schema.CELL_RTT
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        path = paths[rng.integers(len(paths))]
        with xr.open_dataset(path) as scene:
            sic = scene["SIC"].values  # the starter kit reads the whole chart to test the patch
            h, w = sic.shape
            r, c = int(rng.integers(h - patch)), int(rng.integers(w - patch))
            if np.sum(sic[r : r + patch, c : c + patch] != schema.CHART_FILL) <= 1:
                continue
            win = {"sar_lines": slice(r, r + patch), "sar_samples": slice(c, c + patch)}
            full = scene[list(schema.FULL_GRID_INPUTS)].isel(win).to_array().values
            charts = scene[list(schema.CHARTS)].isel(win).to_array().values
            coarse = scene[list(schema.COARSE_VARIABLES)].to_array().values
            cr, cc = r // cell, c // cell
            k = -(-patch // cell) + 1
            crop = torch.from_numpy(coarse[:, cr : cr + k, cc : cc + k].astype(np.float32))
            up = torch.nn.functional.interpolate(crop[None], scale_factor=cell, mode="nearest")[0]
            up = up[:, r - cr * cell : r - cr * cell + patch, c - cc * cell : c - cc * cell + patch]
            x = np.concatenate([full, up.numpy()])
            assert x.shape[0] == 24 and charts.shape[0] == 3
        n += 1
    return n, time.perf_counter() - t0


# ----------------------------------------------------------------------------- (b, c) ours
def our_patches(cached: list, cfg, workers: int, seconds: float, augment: bool) -> tuple[int, float]:
    """Batches from make_loader (optionally through augment_batch) for about ``seconds``."""
    import torch

    from autoice.data.loader import make_loader
    from autoice.data.transforms import augment_batch

    cfg.data.num_workers = workers
    gen = torch.Generator().manual_seed(0)
    loader = make_loader(cached, cfg.data, batch_size=cfg.train.batch_size, seed=0)
    it = iter(loader)
    for _ in range(2 * max(workers, 1)):  # workers started, queues filled
        next(it)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        x, y = next(it)
        if augment:
            x, y = augment_batch(x, y, cfg.augment, gen)
        n += x.shape[0]
    elapsed = time.perf_counter() - t0
    del it
    return n, elapsed


def bare_memmap(cached: list, patch: int, seconds: float) -> tuple[int, float]:
    """Random patch crops straight from the memory maps (the ceiling of any loader)."""
    rng = np.random.default_rng(0)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        s = cached[rng.integers(len(cached))]
        _, h, w = s.inputs.shape
        r, c = rng.integers(h - patch), rng.integers(w - patch)
        np.array(s.inputs[:, r : r + patch, c : c + patch], dtype=np.float32)
        n += 1
    return n, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, default=Path("bench_out/loader"))
    ap.add_argument("--scenes", type=int, default=4)
    ap.add_argument("--height", type=int, default=5000)
    ap.add_argument("--width", type=int, default=5200)
    ap.add_argument("--seconds", type=float, default=10.0, help="time budget per measurement")
    ap.add_argument("--random", action="store_true", help="random-valued scenes instead of autoice.synth")
    ap.add_argument("--cache-workers", type=int, default=2)
    args = ap.parse_args()

    import torch

    from autoice.config import load_config
    from autoice.data.cache import build_cache, fingerprint

    args.workdir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    paths = make_scenes(args.workdir, args.scenes, args.height, args.width, args.random)
    gb = sum(p.stat().st_size for p in paths) / 1e9
    print(f"scenes: {len(paths)} x {args.height} x {args.width} (80 m), {gb:.2f} GB of netCDF; "
          f"ready in {time.perf_counter() - t0:.0f} s")  # fmt: skip
    print(f"torch threads: {torch.get_num_threads()}")

    n, dt = starter_kit_patches(paths, args.seconds)
    starter = n / dt
    print(f"(a) starter kit, xarray per patch:          {starter:8.1f} patches/s ({n} in {dt:.1f} s)")

    aug_on = ["augment.flip=true", "augment.rot90=true", "augment.scale=[0.9, 1.1]", "augment.cutmix=0.5"]
    rows = []
    for name, cfg in (("baseline", load_config("baseline", overrides=aug_on)), ("mmseaice", load_config("mmseaice"))):
        cache = args.workdir / "cache"
        shutil.rmtree(cache / fingerprint(cfg.data), ignore_errors=True)
        t0 = time.perf_counter()
        cached = build_cache(paths, cfg.data, cache, workers=args.cache_workers, progress=False)
        cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        cached = build_cache(paths, cfg.data, cache, workers=args.cache_workers, progress=False)
        warm = time.perf_counter() - t0
        size = sum(c.inputs.nbytes + c.labels.nbytes for c in cached) / 1e9
        print(f"cache {name}: {len(cfg.data.inputs)} ch, x{cfg.data.downscale}, {cfg.data.cache_dtype}, {size:.2f} GB: "
              f"built in {cold:.1f} s ({cold / len(paths):.1f} s/scene, {args.cache_workers} workers), "
              f"reused in {warm:.2f} s")  # fmt: skip
        if name == "baseline":
            n, dt = bare_memmap(cached, cfg.data.patch_size, args.seconds / 2)
            print(f"    bare memmap crop, 24 x 256^2:            {n / dt:8.1f} patches/s")
        for workers in (0, 2):
            for augment in (False, True):
                n, dt = our_patches(cached, cfg, workers, args.seconds, augment)
                rate = n / dt
                rows.append((name, workers, augment, rate))
                what = "augmented" if augment else "loader only"
                label = f"({'b' if name == 'baseline' else 'c'}) {name}, {workers} workers, {what}"
                print(f"{label:44s} {rate:8.1f} patches/s  (x{rate / starter:.0f} the starter kit)")
    best = max(r for name, _, aug, r in rows if name == "baseline" and aug)
    print(f"speed-up, baseline augmented (best) vs starter kit: x{best / starter:.0f}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
