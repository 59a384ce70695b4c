"""PyTorch CPU reference timings for the cases of segloss-bench (bench/segloss_bench.cpp).

What it measures: on float32 logits of shape (8,1,512,512) with a binary target, the median
wall time of one forward + backward (gradient to the logits) of
  - bce_with_logits            F.binary_cross_entropy_with_logits(x, t), mean reduction
  - bce_with_logits_weighted   the same with weight= a per-pixel tensor w = 1 + 2*t
  - soft_dice                  the Carvana SoftDiceLoss written in torch: p = sigmoid(x);
                               per image I = sum p*t, P = sum p, G = sum t;
                               score = (2*I + 1e-5) / (P + G + 1e-5); loss = 1 - score.mean()
                               (the smooth terms of segloss's defaults, smooth_nr = smooth_dr = 1e-5)
  - bce_with_logits+soft_dice  the sum of the two losses, then one backward
at each thread count of --threads (torch.set_num_threads; interop threads fixed to 1).
The data follow segloss_bench.cpp's pattern: logits ~ normal(0, 3) from a fixed seed (7; torch's
generator, so the values are not bit-identical to the C++ std::mt19937 draw) and the target
((i/512/128 + i%512/128) % 2) over the flattened index. Each case runs 3 warm-up iterations, then
--reps timed ones (time.perf_counter); the median is reported. Before each iteration the
logits' .grad is set to None, so every backward allocates and writes a fresh gradient.

Output: one JSON object per line on stdout, with the keys
  {"name", "shape", "device", "threads", "median_ms", "impl"}
and, on stderr, the torch version and the first lines of torch.__config__.parallel_info().

Run it with the system interpreter, which has Debian's python3-torch (the python3 on PATH has no
torch):
    /usr/bin/python3 bench/compare_pytorch.py --threads 1,2 [--reps 25] [--filter name]

bench/RESULTS.md divides these medians by segloss-bench's median_ms for the same name and thread
count (the speed-up of segloss's fused value_and_grad over the PyTorch formulation).
"""

import argparse
import json
import statistics
import sys
import time

import torch
import torch.nn.functional as F

SHAPE = (8, 1, 512, 512)
SMOOTH_NR = 1e-5
SMOOTH_DR = 1e-5


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts (default 1,2)")
    ap.add_argument("--reps", type=int, default=25, help="timed iterations (default 25, at least 3)")
    ap.add_argument("--filter", default="", help="run only the cases whose name contains this")
    a = ap.parse_args()
    a.threads = [int(s) for s in a.threads.split(",") if s.strip()]
    a.reps = max(3, a.reps)
    return a


CE_SHAPE = (8, 21, 512, 512)


def make_data():
    n = 1
    for d in SHAPE:
        n *= d
    gen = torch.Generator().manual_seed(7)
    x = torch.normal(0.0, 3.0, size=SHAPE, generator=gen, dtype=torch.float32)
    i = torch.arange(n, dtype=torch.int64)
    t = ((i // 512 // 128 + i % 512 // 128) % 2).to(torch.float32).reshape(SHAPE)
    w = 1.0 + 2.0 * (t > 0.5).to(torch.float32)
    return x.contiguous(), t.contiguous(), w.contiguous()


def soft_dice_loss(logits, targets):
    # The historical Carvana SoftDiceLoss, with segloss's default smooth terms.
    num = logits.size(0)
    probs = torch.sigmoid(logits)
    m1 = probs.view(num, -1)
    m2 = targets.view(num, -1)
    intersection = (m1 * m2).sum(1)
    score = (2.0 * intersection + SMOOTH_NR) / (m1.sum(1) + m2.sum(1) + SMOOTH_DR)
    return 1.0 - score.mean()


def carvana_combined_loss(logits, labels):
    """The Carvana seed's combined_loss(is_weight=True, is_log_dice=False) (the seeds note, section
    3), run on the CPU: the code as written there, except that Variable(...).cuda() and .cuda() are
    dropped and the kernel table is cut to the 512 entry this shape uses. The weight map is
    computed from the labels inside the loss, as the seed does, and takes no gradient."""
    size = logits.size()
    logits = logits.view(size[0], size[2], size[3])
    labels = labels.view(size[0], size[2], size[3])
    kernel_size = 21  # H == 512 in the seed's table
    a = F.avg_pool2d(labels, kernel_size=kernel_size, padding=kernel_size // 2, stride=1)
    ind = a.ge(0.01) * a.le(0.99)
    ind = ind.float()
    weights = torch.ones(a.size())
    w0 = weights.sum()
    weights += ind * 2
    w1 = weights.sum()
    weights = weights / w1 * w0
    # WeightedBCELoss2d
    w = weights.view(-1)
    z = logits.view(-1)
    gt = labels.view(-1)
    loss = z.clamp(min=0) - z * gt + torch.log(1 + torch.exp(-z.abs()))
    bce_loss = (loss * w).sum() / w.sum()
    # WeightedSoftDiceLoss
    probs = torch.sigmoid(logits)
    num = labels.size(0)
    w = weights.view(num, -1)
    w2 = w * w
    m1 = probs.view(num, -1)
    m2 = labels.view(num, -1)
    intersection = m1 * m2
    score = 2.0 * ((w2 * intersection).sum(1) + 1) / ((w2 * m1).sum(1) + (w2 * m2).sum(1) + 1)
    dice_loss = 1 - score.sum() / num
    return bce_loss + dice_loss


def softmax_dice_loss(logits, labels):
    """Multi-class soft Dice as MONAI's DiceLoss(softmax=True, to_onehot_y=True) computes it with
    its defaults (per image and class, smooth 1e-5), in torch: softmax, one-hot, sums over H, W."""
    c = logits.shape[1]
    p = torch.softmax(logits, dim=1)
    t = F.one_hot(labels, c).permute(0, 3, 1, 2).to(p.dtype)
    inter = (p * t).sum((2, 3))
    score = (2.0 * inter + SMOOTH_NR) / (p.sum((2, 3)) + t.sum((2, 3)) + SMOOTH_DR)
    return 1.0 - score.mean()


LOVASZ_SHAPE = (2, 21, 256, 256)


def lovasz_grad(gt_sorted):
    """The increments g_k = J_k - J_{k-1} of the Jaccard loss along the sorted pixels (Alg. 1 of
    Berman et al., CVPR 2018): J_k = 1 - (G - cumsum(gt)) / (G + cumsum(1 - gt))."""
    total = gt_sorted.sum()
    jac = 1.0 - (total - gt_sorted.cumsum(0)) / (total + (1.0 - gt_sorted).cumsum(0))
    return torch.cat([jac[:1], jac[1:] - jac[:-1]])


def lovasz_softmax_reference(logits, labels):
    """The authors' Lovasz-Softmax (bermanmaxim/LovaszSoftmax, pytorch/lovasz_losses.py:
    classes='present', per_image=False, ignore=None) in our own torch: softmax over C, then per
    class present in the labels one descending sort of |fg - p_c| over all pixels, the dot with
    lovasz_grad of the sorted ground truth, and the mean over those classes."""
    C = logits.shape[1]
    probs = torch.softmax(logits, dim=1).movedim(1, -1).reshape(-1, C)
    lab = labels.reshape(-1)
    losses = []
    for c in range(C):
        fg = (lab == c).to(probs.dtype)
        if fg.sum() == 0:
            continue
        errors = (fg - probs[:, c]).abs()
        errors_sorted, perm = torch.sort(errors, 0, descending=True)
        losses.append(torch.dot(errors_sorted, lovasz_grad(fg[perm])))
    return torch.stack(losses).mean()


def median_ms(reps, work):
    for _ in range(3):  # warm-up: allocator, caches, thread pool
        work()
    ms = []
    for _ in range(reps):
        t0 = time.perf_counter()
        work()
        ms.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(ms)


def main():
    args = parse_args()
    torch.set_num_interop_threads(1)
    print("torch", torch.__version__, file=sys.stderr)
    for line in torch.__config__.parallel_info().splitlines()[:6]:
        print(line, file=sys.stderr)

    x, t, w = make_data()
    x.requires_grad_(True)

    def step(loss_fn):
        def work():
            x.grad = None
            loss = loss_fn()
            loss.backward()
        return work

    cases = [
        ("bce_with_logits",
         "F.binary_cross_entropy_with_logits(x, t) mean; backward",
         lambda: F.binary_cross_entropy_with_logits(x, t)),
        ("bce_with_logits_weighted",
         "F.binary_cross_entropy_with_logits(x, t, weight=1+2t) mean; backward",
         lambda: F.binary_cross_entropy_with_logits(x, t, weight=w)),
        ("soft_dice",
         "Carvana SoftDiceLoss: sigmoid, per-image sums, 1-((2I+1e-5)/(P+G+1e-5)).mean(); backward",
         lambda: soft_dice_loss(x, t)),
        ("bce_with_logits+soft_dice",
         "F.binary_cross_entropy_with_logits(x, t) + SoftDiceLoss; one backward",
         lambda: F.binary_cross_entropy_with_logits(x, t) + soft_dice_loss(x, t)),
        ("carvana_combined_loss",
         "Carvana combined_loss(is_weight=True): avg_pool2d(k=21) boundary weights, "
         "WeightedBCELoss2d + WeightedSoftDiceLoss; one backward",
         lambda: carvana_combined_loss(x, t)),
    ]

    shape_str = "(" + ",".join(str(d) for d in SHAPE) + ")"
    run_cases(args, cases, step, shape_str, args.reps)

    # Multi-class: F.cross_entropy on (8,21,512,512) float32 logits and int64 labels, the same
    # data as segloss-bench (labels (i / 64) % 21 over the flattened (N,H,W) index).
    if not args.filter or any(args.filter in k for k in ("cross_entropy", "softmax_dice", "ce_dice")):
        n, c, h, w_ = CE_SHAPE
        gen = torch.Generator().manual_seed(7)
        xc = torch.normal(0.0, 3.0, size=CE_SHAPE, generator=gen, dtype=torch.float32)
        xc.requires_grad_(True)
        y = ((torch.arange(n * h * w_, dtype=torch.int64) // 64) % c).reshape(n, h, w_)

        def ce_step(loss_fn):
            def work():
                xc.grad = None
                loss_fn().backward()
            return work

        ce_cases = [("cross_entropy", "F.cross_entropy(x, y) mean; backward",
                     lambda: F.cross_entropy(xc, y)),
                    ("softmax_dice", "MONAI-style DiceLoss(softmax, one-hot): softmax, one_hot, "
                     "per image and class sums; backward", lambda: softmax_dice_loss(xc, y)),
                    ("ce_dice", "F.cross_entropy + the softmax Dice above; one backward",
                     lambda: F.cross_entropy(xc, y) + softmax_dice_loss(xc, y))]
        run_cases(args, ce_cases, ce_step, "(" + ",".join(str(d) for d in CE_SHAPE) + ")",
                  max(5, args.reps // 3))

    # Lovasz-Softmax on (2,21,256,256) float32 logits and int64 labels (i / 64) % 21, as in
    # segloss-bench.
    if not args.filter or args.filter in "lovasz_softmax":
        n, c, h, w_ = LOVASZ_SHAPE
        gen = torch.Generator().manual_seed(7)
        xl = torch.normal(0.0, 3.0, size=LOVASZ_SHAPE, generator=gen, dtype=torch.float32)
        xl.requires_grad_(True)
        yl = ((torch.arange(n * h * w_, dtype=torch.int64) // 64) % c).reshape(n, h, w_)

        def lovasz_step(loss_fn):
            def work():
                xl.grad = None
                loss_fn().backward()
            return work

        lovasz_cases = [("lovasz_softmax",
                         "Lovasz-Softmax (authors' algorithm, classes present, batch): softmax, "
                         "per class sort + lovasz_grad + dot, mean; backward",
                         lambda: lovasz_softmax_reference(xl, yl))]
        run_cases(args, lovasz_cases, lovasz_step,
                  "(" + ",".join(str(d) for d in LOVASZ_SHAPE) + ")", max(5, args.reps // 3))


def run_cases(args, cases, step, shape_str, reps):
    for name, impl, loss_fn in cases:
        if args.filter and args.filter not in name:
            continue
        for threads in args.threads:
            torch.set_num_threads(threads)
            ms = median_ms(reps, step(loss_fn))
            print(json.dumps({
                "name": name,
                "shape": shape_str,
                "device": "cpu",
                "threads": threads,
                "median_ms": round(ms, 3),
                "impl": impl,
            }), flush=True)


if __name__ == "__main__":
    main()
