"""PyTorch eager CUDA timings for the cases of segloss-cuda-bench (bench/cuda_bench.cu).

What it measures, on the GPU, as the median of --reps timed iterations (torch.cuda.Event around
each, after the warm-up: at least 3 iterations and at least --warmup-ms of wall time, 200 by
default, as segloss-cuda-bench) of one forward + backward (the gradient to the logits):
  - copy            y.copy_(x) of the logits (the bandwidth cross-check; no backward)
  - bce_dice_vg     F.binary_cross_entropy_with_logits(x, t) (mean) + soft Dice written in torch:
                    p = sigmoid(x); per image and channel I = sum p*t, P = sum p, T = sum t;
                    score = (2*I + 1e-5) / (P + T + 1e-5); dice = 1 - score.mean()
                    (segloss's soft_dice defaults), then loss.backward()
  - bce_vg          the BCE term alone
  - soft_dice_vg    the Dice term alone
  - cross_entropy_vg  F.cross_entropy(x, labels) (mean) on --ce-shape logits (C = 21 by
                    default) with int64 labels (i // 64) % 21, as segloss-bench's pattern
Data: float32 logits --shape (default 64,1,1024,1024: 2^26 logits) ~ normal(0, 3) from torch's
generator with seed 7, and the target ((i / W / 128) + (i % W / 128)) % 2 over the flattened
index (the pattern of segloss-cuda-bench; the logits are not bit-identical to its draw).

Output: one JSON object per line on stdout: {"name", "shape", "device", "median_ms", "impl"}.
Run it with a python3 that has PyTorch with CUDA:
    python3 bench/compare_cuda_pytorch.py [--shape 64,1,1024,1024] [--reps 20] [--filter name]
scripts/gpu-check.sh divides these medians by segloss-cuda-bench's for the same name.

--device cpu is for scripts/gpu-check.sh --dry-run only (a CPU-only torch, tiny shapes): the same
cases timed with time.perf_counter on the CPU, "device" labelled as an emulator dry run, so that
the script's plumbing (this program's arguments, its JSON, the table) is exercised without a GPU;
those numbers are no measurement of anything.
"""

import argparse
import json
import statistics
import sys
import time

import torch
import torch.nn.functional as F


def median_ms_cpu(fn, reps):
    """--device cpu (the dry run): wall-clock medians on the CPU."""
    for _ in range(3):
        fn()
    times = []
    for _ in range(reps):
        a = time.perf_counter()
        fn()
        times.append((time.perf_counter() - a) * 1e3)
    return statistics.median(times)


WARMUP_MS = 200.0


def warm_up(fn):
    """At least 3 calls and at least WARMUP_MS of wall time (at most 10,000 calls)."""
    start = time.perf_counter()
    for k in range(10000):
        fn()
        torch.cuda.synchronize()
        if k >= 2 and (time.perf_counter() - start) * 1e3 >= WARMUP_MS:
            break


def median_ms(fn, reps):
    warm_up(fn)
    times = []
    for _ in range(reps):
        a = torch.cuda.Event(enable_timing=True)
        b = torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    return statistics.median(times)


def soft_dice(x, t):
    p = torch.sigmoid(x)
    dims = tuple(range(2, x.dim()))
    inter = (p * t).sum(dims)
    score = (2 * inter + 1e-5) / (p.sum(dims) + t.sum(dims) + 1e-5)
    return 1 - score.mean()


def softmax_dice(x, labels):
    """softmax_dice's defaults (losses/softmax_overlap.hpp): per image and class, background
    included, smooth 1e-5, the mean over the scores; MONAI's DiceLoss(softmax=True,
    to_onehot_y=True) computes the same."""
    p = torch.softmax(x, 1)
    t = F.one_hot(labels, x.shape[1]).movedim(-1, 1).to(x.dtype)
    dims = tuple(range(2, x.dim()))
    inter = (p * t).sum(dims)
    score = (2 * inter + 1e-5) / (p.sum(dims) + t.sum(dims) + 1e-5)
    return 1 - score.mean()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", default="64,1,1024,1024")
    ap.add_argument("--ce-shape", default="16,21,448,448")
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--warmup-ms", type=float, default=200.0)
    ap.add_argument("--filter", default="")
    ap.add_argument("--device", choices=("cuda", "cpu"), default="cuda",
                    help="cpu: scripts/gpu-check.sh --dry-run only (not a measurement)")
    a = ap.parse_args()
    global WARMUP_MS
    WARMUP_MS = max(0.0, a.warmup_ms)
    if a.device == "cuda" and not torch.cuda.is_available():
        print(json.dumps({"name": "none", "skipped": "no CUDA device"}))
        return 0
    dev = torch.device(a.device)
    timer = median_ms if a.device == "cuda" else median_ms_cpu
    shape = tuple(int(v) for v in a.shape.split(","))
    gen = torch.Generator(device="cpu").manual_seed(7)
    x0 = (torch.randn(shape, generator=gen) * 3).to(dev)
    i = torch.arange(x0.numel(), device=dev)
    w = shape[-1]
    t = (((i // w // 128) + (i % w // 128)) % 2).float().reshape(shape)
    x = x0.clone().requires_grad_(True)
    y = torch.empty_like(x0)

    def step(loss_fn):
        def run():
            x.grad = None
            loss_fn().backward()
        return run

    cases = [
        ("copy", lambda: y.copy_(x0)),
        ("bce_dice_vg",
         step(lambda: F.binary_cross_entropy_with_logits(x, t) + soft_dice(x, t))),
        ("bce_vg", step(lambda: F.binary_cross_entropy_with_logits(x, t))),
        ("soft_dice_vg", step(lambda: soft_dice(x, t))),
    ]
    ce_shape = tuple(int(v) for v in a.ce_shape.split(","))
    multiclass = ("cross_entropy_vg", "softmax_dice_vg", "ce_dice_vg")
    if not a.filter or any(a.filter in n for n in multiclass):
        c = ce_shape[1]
        xc = (torch.randn(ce_shape, generator=gen) * 3).to(dev).requires_grad_(True)
        lab_shape = (ce_shape[0],) + ce_shape[2:]
        n_lab = 1
        for v in lab_shape:
            n_lab *= v
        labels = ((torch.arange(n_lab, device=dev) // 64) % c).reshape(lab_shape)

        def ce():
            xc.grad = None
            F.cross_entropy(xc, labels).backward()

        def sd():
            xc.grad = None
            softmax_dice(xc, labels).backward()

        def cd():
            xc.grad = None
            (F.cross_entropy(xc, labels) + softmax_dice(xc, labels)).backward()

        cases.append(("cross_entropy_vg", ce))
        cases.append(("softmax_dice_vg", sd))
        cases.append(("ce_dice_vg", cd))
    name_dev = (torch.cuda.get_device_name(0) if a.device == "cuda"
                else "cpu (emulator dry run: not a GPU number)")
    print(f"torch {torch.__version__}", file=sys.stderr)
    for name, fn in cases:
        if a.filter and a.filter not in name and name != "copy":
            continue
        ms = timer(fn, a.reps)
        sh = ce_shape if name in multiclass else shape
        print(json.dumps({"name": name, "shape": "(" + ",".join(map(str, sh)) + ")",
                          "device": name_dev, "median_ms": round(ms, 4),
                          "impl": "torch eager"}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
