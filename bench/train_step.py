"""Training-step throughput of the multi-task U-Net on this machine (prints figures, asserts nothing).

One step = forward + chart losses + weighted sum + backward + optimizer step, on random inputs and
random labels (about 20 % of pixels 255), with each preset's channels, filters, SIC mode, batch
size, task weights and optimizer. Patch size defaults to 256 for every preset (the real recipes).
Each preset runs twice: in fp32 and as ``train`` runs it with ``train.amp`` (channels-last, and
autocast where the device has fast low precision: CUDA, or a CPU with native bf16; on other CPUs
the second row is fp32 channels-last).
Wall ms/step is the median; "cpu ms" is the process CPU time (user + sys, all threads) of the
median step, a figure that stays meaningful when other jobs share the cores.

Usage: .venv/bin/python bench/train_step.py [--steps 5] [--warmup 2] [--presets baseline mmseaice demo]
       [--patch-size 256] [--batch-size N] [--threads N] [--device cpu]
"""

import argparse
import time

import torch

from autoice import schema
from autoice.config import load_config
from autoice.devices import amp_dtype
from autoice.models import build_model, chart_losses, n_parameters, weighted_loss


def _optimizer(cfg, params):
    t = cfg.train
    if t.optimizer == "sgd":
        return torch.optim.SGD(params, lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay)
    return torch.optim.Adam(params, lr=t.lr, weight_decay=t.weight_decay)


def bench(preset, *, steps, warmup, patch_size, batch_size, device, amp):
    cfg = load_config(preset)
    torch.manual_seed(0)
    fmt = torch.channels_last if amp else torch.contiguous_format
    kind = torch.device(device).type
    dtype = amp_dtype(torch.device(device)) if amp else None
    model = build_model(cfg).to(device, memory_format=fmt).train()
    opt = _optimizer(cfg, model.parameters())
    b = batch_size or cfg.train.batch_size
    x = torch.randn(b, len(cfg.data.inputs), patch_size, patch_size, device=device).contiguous(memory_format=fmt)
    y = torch.stack([torch.randint(0, schema.N_CLASSES[c], (b, patch_size, patch_size)) for c in schema.CHARTS], 1)
    y[torch.rand(y.shape) < 0.2] = schema.CHART_FILL
    y = y.to(torch.uint8).to(device)

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(kind, dtype=dtype or torch.float32, enabled=dtype is not None):
            out = model(x)
        losses = chart_losses({k: v.float() for k, v in out.items()}, y, sic_mode=cfg.model.sic_mode)
        weighted_loss(losses, cfg.train.task_weights).backward()
        opt.step()

    for _ in range(warmup):
        step()
    times, cpu = [], []
    for _ in range(steps):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0, c0 = time.perf_counter(), time.process_time()
        step()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    times.sort()
    cpu.sort()
    median = times[len(times) // 2]
    return {
        "preset": preset,
        "mode": ("channels-last " + (str(dtype).removeprefix("torch.") if dtype else "fp32")) if amp else "fp32",
        "channels": len(cfg.data.inputs),
        "filters": "/".join(map(str, cfg.model.filters)),
        "sic_mode": cfg.model.sic_mode,
        "params": n_parameters(model),
        "batch": b,
        "ms_step": 1e3 * median,
        "ms_best": 1e3 * times[0],
        "cpu_ms": 1e3 * cpu[len(cpu) // 2],
        "patches_s": b / median,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=5, help="timed steps (median reported)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    ap.add_argument("--presets", nargs="+", default=["baseline", "mmseaice", "demo"])
    ap.add_argument("--patch-size", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=0, help="0 = the preset's train.batch_size")
    ap.add_argument("--threads", type=int, default=0, help="torch threads; 0 = torch's default")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, device {args.device}, {torch.get_num_threads()} threads, "
          f"patch {args.patch_size}, {args.warmup} warm-up + {args.steps} timed steps")  # fmt: skip
    header = f"{'preset':<10} {'mode':<22} {'ch':>3} {'filters':<12} {'sic':<14} {'params':>9} {'batch':>5} "
    print(header + f"{'ms/step':>9} {'best ms':>9} {'patches/s':>10} {'cpu ms':>9}")
    for preset, amp in ((p, a) for p in args.presets for a in (False, True)):
        r = bench(preset, steps=args.steps, warmup=args.warmup, patch_size=args.patch_size,
                  batch_size=args.batch_size, device=args.device, amp=amp)  # fmt: skip
        print(f"{r['preset']:<10} {r['mode']:<22} {r['channels']:>3} {r['filters']:<12} {r['sic_mode']:<14} "
              f"{r['params']:>9,} {r['batch']:>5} {r['ms_step']:>9.0f} {r['ms_best']:>9.0f} {r['patches_s']:>10.2f} "
              f"{r['cpu_ms']:>9.0f}")  # fmt: skip


if __name__ == "__main__":
    main()
