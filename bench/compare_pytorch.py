"""PyTorch CPU reference timings for the cases of segloss-bench (bench/segloss_bench.cpp).

For every segloss-bench case that has a usual PyTorch formulation, the median wall time of one
forward + backward (gradient to the logits, or to the probabilities for binary_cross_entropy;
the forward alone for the metrics), on the same shapes and the same data pattern, at each
thread count of --threads (torch.set_num_threads; interop threads fixed to 1). The names and
shape strings are segloss-bench's, so bench/table.py pairs the lines by (name, shape, threads).

Binary, on (8,1,512,512) and the volume (2,4,96,96,96) (each channel a binary problem):
  bce_with_logits[_weighted|_pos_weight|_smoothing]
      F.binary_cross_entropy_with_logits, mean; weight = w = 1 + 2t; pos_weight 3 per channel
      (shape (C,1,1[,1]) so that it broadcasts over the channel axis); label smoothing eps 0.1
      as t (1 - eps) + eps / 2 (segloss's definition; PyTorch's BCE has no such option)
  binary_cross_entropy[_weighted]   F.binary_cross_entropy(sigmoid(x) as a leaf, t[, weight=w])
  soft_dice        the historical Carvana SoftDiceLoss (seeds note) per image and channel, with
                   segloss's smooth terms 1e-5: 1 - mean((2I + s) / (P + G + s))
  soft_dice_weighted   Carvana WeightedSoftDiceLoss (w^2 in every sum), smooth 1e-5
  soft_dice_squared    MONAI DiceLoss(sigmoid=True, squared_pred=True) in torch
  soft_dice_batch      MONAI DiceLoss(sigmoid=True, batch=True) in torch (sums over N)
  soft_jaccard[_squared]   the soft Jaccard of MONAI DiceLoss(sigmoid=True, jaccard=True
                   [, squared_pred]) in torch, with segloss's smooth placement
                   (I + s) / (P + G - I + s) (MONAI writes (2I + s) / (2(P + G - I) + s):
                   the same work)
  tversky, focal_tversky   MONAI TverskyLoss(sigmoid=True, alpha=0.3, beta=0.7) in torch:
                   (I + s) / (I + 0.3 FP + 0.7 FN + s); focal: mean((1 - TI)^(4/3))
  bce_with_logits+soft_dice   the sum of F.binary_cross_entropy_with_logits and SoftDiceLoss
  bce_with_logits+soft_dice_weighted_log   weighted BCE + -log(mean weighted Dice score)
  sigmoid_focal[_weighted]   torchvision's sigmoid_focal_loss formula (alpha 0.25, gamma 2,
                   mean) written in torch[, times w]
  lovasz_hinge[_batch]   the authors' Lovasz hinge (Berman et al., CVPR 2018, Alg. 1;
                   per image, or the batch as one problem) written in torch: errors
                   1 - x (2t - 1), one descending sort, relu(errors) . lovasz_grad
  dice_score       the seeds' thresholded DiceScore: (sigmoid(x) > 0.5), per image and
                   channel, 2I / (P + G) (forward only; no gradient)
  carvana_combined_loss   the Carvana seed's combined_loss(is_weight=True), on (8,1,512,512)
  boundary_weights_k11|k51   the Carvana seed's weight map: avg_pool2d(t, k, stride 1, padding
                   k // 2), 1 + 2 [0.01 <= a <= 0.99], normalized to the pixel count (forward)
Multi-class, on (8,21,512,512), (4,150,256,256) and the volume (2,4,96,96,96), int64 labels:
  cross_entropy[_weight|_ignore_index|_smoothing]   F.cross_entropy, mean; class weights
                   1 + (c % 3); ignore_index 255 on a tenth of the pixels; label_smoothing 0.1
  softmax_focal    -(1 - p_y)^2 log p_y from F.log_softmax, mean over pixels
  softmax_dice, softmax_jaccard, softmax_tversky   MONAI DiceLoss / DiceLoss(jaccard=True) /
                   TverskyLoss(alpha 0.3, beta 0.7) with softmax=True, to_onehot_y=True, in
                   torch: softmax, F.one_hot, per image and class sums, smooth 1e-5
  generalized_dice   MONAI GeneralizedDiceLoss(softmax=True, to_onehot_y=True) in torch:
                   w_c = 1 / T_c^2, infinite weights replaced by the image's largest finite one
  ce_dice, dice_focal   the sums cross_entropy + softmax_dice, softmax_dice + softmax_focal
  lovasz_softmax   the authors' Lovasz-Softmax (classes present, batch) in torch; on the
                   large shapes only with --slow (about a minute per call)
Lovasz-Softmax also on (2,21,256,256).

The data follow segloss_bench.cpp's pattern: logits ~ normal(0, 3) (torch's generator, seed 7,
so the values are not bit-identical to the C++ std::mt19937 draw); binary target the
checkerboard ((i / W / b + i % W / b) % 2) with b = W / 4 over the flat index; labels
(i / 64) % C over the flat (N, spatial) index. Each case runs warm-up iterations (3; 1 on the
large multi-class shapes), then --reps timed ones (the multi-class shapes: a fifth, at least
3; time.perf_counter); the median is reported. Before each iteration the input's .grad is set
to None, so every backward allocates and writes a fresh gradient.

Output: one JSON object per line on stdout, with the keys
  {"name", "shape", "device", "threads", "median_ms", "impl"}
and, on stderr, the torch version and the first lines of torch.__config__.parallel_info().

The cases are one table per family (BINARY_CASES, MULTICLASS_CASES: name, impl text, the leaf
the gradient goes to, the torch function of the inputs, and a flag), with the options as named
constants (POS_WEIGHT, BCE_SMOOTHING, TVERSKY_ALPHA, ...), so that bench/check_reference.py runs
these very functions.

What the comparison is worth: bench/check_reference.py runs every case of these tables (and
compare_numpy.py's) on small float64 inputs of the same kind and checks that value and gradient
agree with segloss's case (segloss_bench.cpp's options, through the C API) to a relative 1e-9,
so a speed-up printed by bench/table.py compares the same computation. Run it after changing a
formulation here or an option in segloss_bench.cpp (it is also the ctest check_reference):
    cmake --build build --target segloss_c
    /usr/bin/python3 bench/check_reference.py        # one JSON line per case, then a summary
It does not check the timings themselves (threads, warm-up) nor the float32 rounding at the
benchmark's sizes (--float32 runs the same check in float32 with a tolerance of 2e-5).

Run it with the system interpreter, which has Debian's python3-torch (the python3 on PATH has no
torch):
    /usr/bin/python3 bench/compare_pytorch.py --threads 1,2 [--reps 25] [--filter text] [--slow]
--filter keeps the cases whose "name shape" contains the text, as segloss-bench's.
bench/table.py divides these medians by segloss-bench's median_ms for the same name, shape and
thread count (the speed-up of segloss's fused value_and_grad over the PyTorch formulation).
"""

import argparse
import json
import statistics
import sys
import time

import torch
import torch.nn.functional as F

SMOOTH = 1e-5
BINARY_SHAPES = [(8, 1, 512, 512), (2, 4, 96, 96, 96)]
MULTICLASS_SHAPES = [(8, 21, 512, 512), (4, 150, 256, 256), (2, 4, 96, 96, 96)]
LOVASZ_SHAPE = (2, 21, 256, 256)


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts (default 1,2)")
    ap.add_argument("--reps", type=int, default=25, help="timed iterations (default 25, at least 3)")
    ap.add_argument("--filter", default="", help="run only the cases whose 'name shape' contains this")
    ap.add_argument("--slow", action="store_true",
                    help="also lovasz_softmax on the large multi-class shapes")
    a = ap.parse_args()
    a.threads = [int(s) for s in a.threads.split(",") if s.strip()]
    a.reps = max(3, a.reps)
    return a


def shape_str(shape):
    return "(" + ",".join(str(d) for d in shape) + ")"


def numel(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def logits(shape, dtype=torch.float32):
    gen = torch.Generator().manual_seed(7)
    return torch.normal(0.0, 3.0, size=shape, generator=gen, dtype=dtype).contiguous()


def binary_data(shape, dtype=torch.float32):
    w_ = shape[-1]
    b = max(1, w_ // 4)
    i = torch.arange(numel(shape), dtype=torch.int64)
    t = ((i // w_ // b + i % w_ // b) % 2).to(dtype).reshape(shape)
    w = 1.0 + 2.0 * (t > 0.5).to(dtype)
    return logits(shape, dtype), t.contiguous(), w.contiguous()


def label_data(shape, dtype=torch.float32):
    c = shape[1]
    label_shape = (shape[0],) + tuple(shape[2:])
    i = torch.arange(numel(label_shape), dtype=torch.int64)
    y = ((i // 64) % c).reshape(label_shape)
    yi = torch.where((i // 64) % 10 == 0, torch.full_like(i, 255), (i // 64) % c).reshape(label_shape)
    return logits(shape, dtype), y, yi


# ---- binary overlap losses (per image and channel: sums over the spatial axes) ----

def overlap_sums(p, t, w2=None, squared=False, batch=False):
    dims = tuple(range(2, p.dim()))
    if batch:
        dims = (0,) + dims
    pk = p * p if squared else p
    tk = t * t if squared else t
    if w2 is None:
        return (p * t).sum(dims), pk.sum(dims), tk.sum(dims)
    return (w2 * p * t).sum(dims), (w2 * pk).sum(dims), (w2 * tk).sum(dims)


def dice_score_of(i, p, g):
    return (2.0 * i + SMOOTH) / (p + g + SMOOTH)


def soft_dice_loss(x, t, **kw):
    i, p, g = overlap_sums(torch.sigmoid(x), t, **kw)
    return 1.0 - dice_score_of(i, p, g).mean()


def soft_jaccard_loss(x, t, **kw):
    i, p, g = overlap_sums(torch.sigmoid(x), t, **kw)
    return 1.0 - ((i + SMOOTH) / (p + g - i + SMOOTH)).mean()


def tversky_index(i, p, g, alpha=0.3, beta=0.7):
    return (i + SMOOTH) / (i + alpha * (p - i) + beta * (g - i) + SMOOTH)


def tversky_loss(x, t, gamma=1.0):
    s = tversky_index(*overlap_sums(torch.sigmoid(x), t))
    return (1.0 - s).mean() if gamma == 1.0 else (1.0 - s).clamp(min=0).pow(gamma).mean()


def sigmoid_focal_loss(x, t, w=None, alpha=0.25, gamma=2.0):
    # torchvision.ops.sigmoid_focal_loss's formula, reduction "mean".
    p = torch.sigmoid(x)
    ce = F.binary_cross_entropy_with_logits(x, t, reduction="none")
    p_t = p * t + (1 - p) * (1 - t)
    loss = ce * ((1 - p_t) ** gamma)
    loss = (alpha * t + (1 - alpha) * (1 - t)) * loss
    if w is not None:
        loss = loss * w
    return loss.mean()


def lovasz_hinge_flat(x, t):
    signs = 2.0 * t - 1.0
    errors = 1.0 - x * signs
    errors_sorted, perm = torch.sort(errors, 0, descending=True)
    return torch.dot(F.relu(errors_sorted), lovasz_grad(t[perm]))


def lovasz_hinge(x, t, per_image=True):
    if per_image:
        n = x.shape[0]
        return torch.stack([lovasz_hinge_flat(x[k].reshape(-1), t[k].reshape(-1))
                            for k in range(n)]).mean()
    return lovasz_hinge_flat(x.reshape(-1), t.reshape(-1))


def thresholded_dice(x, t):
    q = (torch.sigmoid(x) > 0.5).to(t.dtype)
    dims = tuple(range(2, x.dim()))
    return (2.0 * (q * t).sum(dims) / (q.sum(dims) + t.sum(dims))).mean()


def boundary_weight_map(t, k):
    a = F.avg_pool2d(t, kernel_size=k, padding=k // 2, stride=1)
    ind = (a.ge(0.01) * a.le(0.99)).to(a.dtype)  # .float() in the seed (float32 here)
    w = torch.ones(a.size(), dtype=a.dtype)
    w0 = w.sum()
    w = w + ind * 2
    return w / w.sum() * w0

# The seed's kernel sizes by image height (128 -> 11, ..., 1280 -> 51).
CARVANA_KERNELS = {128: 11, 256: 21, 512: 21, 1024: 41, 1280: 51}


def carvana_combined_loss(logits, labels):
    """The Carvana seed's combined_loss(is_weight=True, is_log_dice=False) (the seeds note, section
    3), run on the CPU: the code as written there, except that Variable(...).cuda() and .cuda() are
    dropped, and .float() / torch.ones(size) take the labels' dtype (float32 in the benchmark:
    the same; float64 in check_reference.py). The kernel size comes from the seed's table of
    heights (21 for H = 512). The weight map is computed from the labels inside the loss, as
    the seed does, and takes no gradient."""
    size = logits.size()
    logits = logits.view(size[0], size[2], size[3])
    labels = labels.view(size[0], size[2], size[3])
    kernel_size = CARVANA_KERNELS[size[2]]  # the seed's table: 21 for H = 512
    a = F.avg_pool2d(labels, kernel_size=kernel_size, padding=kernel_size // 2, stride=1)
    ind = a.ge(0.01) * a.le(0.99)
    ind = ind.to(a.dtype)
    weights = torch.ones(a.size(), dtype=a.dtype)
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



# ---- multi-class losses (softmax over C; one-hot targets as MONAI builds them) ----

def one_hot(y, c, dtype):
    return F.one_hot(y, c).movedim(-1, 1).to(dtype)


def softmax_sums(x, y):
    c = x.shape[1]
    p = torch.softmax(x, dim=1)
    t = one_hot(y, c, p.dtype)
    dims = tuple(range(2, x.dim()))
    return (p * t).sum(dims), p.sum(dims), t.sum(dims)


def softmax_dice_loss(x, y):
    return 1.0 - dice_score_of(*softmax_sums(x, y)).mean()


def softmax_jaccard_loss(x, y):
    i, p, g = softmax_sums(x, y)
    return 1.0 - ((i + SMOOTH) / (p + g - i + SMOOTH)).mean()


def softmax_tversky_loss(x, y):
    return 1.0 - tversky_index(*softmax_sums(x, y)).mean()


def generalized_dice_loss(x, y):
    i, p, g = softmax_sums(x, y)
    w = 1.0 / (g * g)
    inf = torch.isinf(w)
    w = torch.where(inf, torch.zeros_like(w), w)
    w = w + inf.to(w.dtype) * w.max(dim=1, keepdim=True).values
    score = (2.0 * (w * i).sum(1) + SMOOTH) / ((w * (p + g)).sum(1) + SMOOTH)
    return 1.0 - score.mean()


def softmax_focal_loss(x, y, gamma=2.0):
    logp = F.log_softmax(x, dim=1).gather(1, y.unsqueeze(1))
    return (-((1.0 - logp.exp()) ** gamma) * logp).mean()

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



def median_ms(reps, work, warmup=3):
    for _ in range(warmup):  # allocator, caches, thread pool
        work()
    ms = []
    for _ in range(reps):
        t0 = time.perf_counter()
        work()
        ms.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(ms)


def wanted(args, name, shape):
    return not args.filter or args.filter in name + " " + shape_str(shape)


def run_cases(args, shape, leaf, cases, reps, warmup=3):
    """Times each case (name, impl, loss_fn) wanted on `shape`: leaf.grad = None, loss_fn(),
    backward (no backward when leaf is None: a metric under torch.no_grad)."""
    for name, impl, loss_fn in cases:
        if not wanted(args, name, shape):
            continue

        def work():
            if leaf is None:
                with torch.no_grad():
                    loss_fn()
                return
            leaf.grad = None
            loss_fn().backward()

        for threads in args.threads:
            torch.set_num_threads(threads)
            ms = median_ms(reps, work, warmup)
            print(json.dumps({"name": name, "shape": shape_str(shape), "device": "cpu",
                              "threads": threads, "median_ms": round(ms, 3), "impl": impl}),
                  flush=True)


def any_wanted(args, names, shape):
    return any(wanted(args, n, shape) for n in names)


# ---- the cases: one table, shared with bench/check_reference.py ----
#
# Each case is (name, impl, leaf, fn, flag): fn(d) returns the loss (or the metric) of the
# inputs `d` (binary_inputs or label_inputs below); leaf is the attribute of d the gradient is
# taken to ("x": the logits, "p": the probabilities), or None for a metric (forward only, under
# torch.no_grad). flag: "planar" for the binary cases of the 2D shape only, "slow" for the
# multi-class case that runs on the large shapes only with --slow. The options below are
# segloss_bench.cpp's; check_reference.py reads them to set segloss's options.

POS_WEIGHT = 3.0            # bce_with_logits_pos_weight: 3 for every channel
BCE_SMOOTHING = 0.1         # bce_with_logits_smoothing: eps, t -> t (1 - eps) + eps / 2
TVERSKY_ALPHA, TVERSKY_BETA = 0.3, 0.7
FOCAL_TVERSKY_GAMMA = 4.0 / 3.0
FOCAL_ALPHA, FOCAL_GAMMA = 0.25, 2.0   # sigmoid_focal (torchvision's defaults)
SOFTMAX_FOCAL_GAMMA = 2.0
CE_IGNORE_INDEX = 255       # cross_entropy_ignore_index, on a tenth of the pixels
CE_SMOOTHING = 0.1          # cross_entropy_smoothing
BOUNDARY_KERNELS = {"boundary_weights_k11": 11, "boundary_weights_k51": 51}


def class_weights(c, dtype=torch.float32):
    """cross_entropy_weight's class weights 1 + (c % 3)."""
    return 1.0 + (torch.arange(c) % 3).to(dtype)


class Inputs:
    """The tensors a case reads (attributes), built once per shape."""

    def __init__(self, **kw):
        self.__dict__.update(kw)


def binary_inputs(shape, dtype=torch.float32):
    """Logits x (leaf), probabilities p = sigmoid(x) (a leaf of its own, for
    binary_cross_entropy), checkerboard target t, pixel weights w = 1 + 2t and w2 = w^2, and the
    per-channel pos_weight, shaped (C, 1, 1[, 1]) so that it broadcasts over the channel axis."""
    x, t, w = binary_data(shape, dtype)
    x.requires_grad_(True)
    p = torch.sigmoid(x.detach()).requires_grad_(True)
    pos_weight = torch.full((shape[1],) + (1,) * (len(shape) - 2), POS_WEIGHT, dtype=dtype)
    return Inputs(x=x, p=p, t=t, w=w, w2=w * w, pos_weight=pos_weight)


def label_inputs(shape, dtype=torch.float32):
    """Logits x (leaf), int64 labels y and yi (a tenth of the pixels CE_IGNORE_INDEX), and the
    class weights cw."""
    x, y, yi = label_data(shape, dtype)
    x.requires_grad_(True)
    return Inputs(x=x, y=y, yi=yi, cw=class_weights(shape[1], dtype))


BINARY_CASES = [
    ("bce_with_logits", "F.binary_cross_entropy_with_logits(x, t) mean; backward", "x",
     lambda d: F.binary_cross_entropy_with_logits(d.x, d.t), None),
    ("bce_with_logits_weighted",
     "F.binary_cross_entropy_with_logits(x, t, weight=1+2t); backward", "x",
     lambda d: F.binary_cross_entropy_with_logits(d.x, d.t, weight=d.w), None),
    ("bce_with_logits_pos_weight",
     "F.binary_cross_entropy_with_logits(x, t, pos_weight=3 per channel)", "x",
     lambda d: F.binary_cross_entropy_with_logits(d.x, d.t, pos_weight=d.pos_weight), None),
    ("bce_with_logits_smoothing",
     "F.binary_cross_entropy_with_logits(x, t (1 - 0.1) + 0.05)", "x",
     lambda d: F.binary_cross_entropy_with_logits(
         d.x, d.t * (1 - BCE_SMOOTHING) + BCE_SMOOTHING / 2), None),
    ("soft_dice", "Carvana SoftDiceLoss per image and channel, smooth 1e-5; backward", "x",
     lambda d: soft_dice_loss(d.x, d.t), None),
    ("soft_dice_weighted", "Carvana WeightedSoftDiceLoss (w^2 sums), smooth 1e-5; backward", "x",
     lambda d: soft_dice_loss(d.x, d.t, w2=d.w2), None),
    ("soft_dice_squared", "MONAI-style DiceLoss(sigmoid, squared_pred) in torch; backward", "x",
     lambda d: soft_dice_loss(d.x, d.t, squared=True), None),
    ("soft_dice_batch", "MONAI-style DiceLoss(sigmoid, batch=True) in torch; backward", "x",
     lambda d: soft_dice_loss(d.x, d.t, batch=True), None),
    ("soft_jaccard", "soft Jaccard (I + s) / (P + G - I + s), as MONAI jaccard=True; backward", "x",
     lambda d: soft_jaccard_loss(d.x, d.t), None),
    ("soft_jaccard_squared", "soft Jaccard as above, squared_pred; backward",
     "x", lambda d: soft_jaccard_loss(d.x, d.t, squared=True), None),
    ("tversky", "MONAI-style TverskyLoss(sigmoid, alpha 0.3, beta 0.7) in torch; backward", "x",
     lambda d: tversky_loss(d.x, d.t), None),
    ("focal_tversky", "Tversky as above, mean((1 - TI)^(4/3)); backward", "x",
     lambda d: tversky_loss(d.x, d.t, gamma=FOCAL_TVERSKY_GAMMA), None),
    ("bce_with_logits+soft_dice",
     "F.binary_cross_entropy_with_logits + SoftDiceLoss; one backward", "x",
     lambda d: F.binary_cross_entropy_with_logits(d.x, d.t) + soft_dice_loss(d.x, d.t), None),
    ("bce_with_logits+soft_dice_weighted_log",
     "weighted BCE + -log(mean w^2-weighted Dice score); one backward", "x",
     lambda d: F.binary_cross_entropy_with_logits(d.x, d.t, weight=d.w)
     - torch.log(dice_score_of(*overlap_sums(torch.sigmoid(d.x), d.t, w2=d.w2)).mean()), None),
    ("sigmoid_focal", "torchvision sigmoid_focal_loss formula (0.25, 2) mean; backward", "x",
     lambda d: sigmoid_focal_loss(d.x, d.t, alpha=FOCAL_ALPHA, gamma=FOCAL_GAMMA), None),
    ("sigmoid_focal_weighted", "the same times w; backward", "x",
     lambda d: sigmoid_focal_loss(d.x, d.t, w=d.w, alpha=FOCAL_ALPHA, gamma=FOCAL_GAMMA), None),
    ("lovasz_hinge", "Lovasz hinge (authors' algorithm, per image) in torch; backward", "x",
     lambda d: lovasz_hinge(d.x, d.t), None),
    ("lovasz_hinge_batch", "Lovasz hinge (authors' algorithm, batch) in torch; backward", "x",
     lambda d: lovasz_hinge(d.x, d.t, per_image=False), None),
    ("carvana_combined_loss",
     "Carvana combined_loss(is_weight=True): avg_pool2d(k=21) boundary weights, "
     "WeightedBCELoss2d + WeightedSoftDiceLoss; one backward", "x",
     lambda d: carvana_combined_loss(d.x, d.t), "planar"),
    ("binary_cross_entropy", "F.binary_cross_entropy(p, t) mean; backward to p", "p",
     lambda d: F.binary_cross_entropy(d.p, d.t), None),
    ("binary_cross_entropy_weighted", "F.binary_cross_entropy(p, t, weight=w); backward to p",
     "p", lambda d: F.binary_cross_entropy(d.p, d.t, weight=d.w), None),
    ("dice_score", "seeds' DiceScore: sigmoid(x) > 0.5, per image and channel (forward)", None,
     lambda d: thresholded_dice(d.x, d.t), None),
    ("boundary_weights_k11", "Carvana weight map, avg_pool2d k=11 (forward)", None,
     lambda d: boundary_weight_map(d.t, BOUNDARY_KERNELS["boundary_weights_k11"]), "planar"),
    ("boundary_weights_k51", "Carvana weight map, avg_pool2d k=51 (forward)", None,
     lambda d: boundary_weight_map(d.t, BOUNDARY_KERNELS["boundary_weights_k51"]), "planar"),
]
BINARY_NAMES = [c[0] for c in BINARY_CASES]


def run_table(args, shape, d, table, reps, warmup=3):
    """Times the cases of `table` in order, each with its leaf."""
    for name, impl, leaf, fn, _ in table:
        run_cases(args, shape, None if leaf is None else getattr(d, leaf),
                  [(name, impl, lambda fn=fn: fn(d))], reps, warmup)


def bench_binary(args, shape):
    if not any_wanted(args, BINARY_NAMES, shape):
        return
    planar = len(shape) == 4
    d = binary_inputs(shape)
    run_table(args, shape, d, [c for c in BINARY_CASES if c[4] != "planar" or planar],
              args.reps)


MULTICLASS_CASES = [
    ("cross_entropy", "F.cross_entropy(x, y) mean; backward", "x",
     lambda d: F.cross_entropy(d.x, d.y), None),
    ("cross_entropy_weight", "F.cross_entropy(x, y, weight=1+(c%3)); backward", "x",
     lambda d: F.cross_entropy(d.x, d.y, weight=d.cw), None),
    ("cross_entropy_ignore_index", "F.cross_entropy(x, y, ignore_index=255), a tenth ignored",
     "x", lambda d: F.cross_entropy(d.x, d.yi, ignore_index=CE_IGNORE_INDEX), None),
    ("cross_entropy_smoothing", "F.cross_entropy(x, y, label_smoothing=0.1); backward", "x",
     lambda d: F.cross_entropy(d.x, d.y, label_smoothing=CE_SMOOTHING), None),
    ("softmax_focal", "-(1-p_y)^2 log p_y from log_softmax, mean; backward", "x",
     lambda d: softmax_focal_loss(d.x, d.y, gamma=SOFTMAX_FOCAL_GAMMA), None),
    ("softmax_dice", "MONAI-style DiceLoss(softmax, one-hot) in torch; backward", "x",
     lambda d: softmax_dice_loss(d.x, d.y), None),
    ("softmax_jaccard", "soft Jaccard (I + s) / (U - I + s), softmax, one-hot; backward", "x",
     lambda d: softmax_jaccard_loss(d.x, d.y), None),
    ("softmax_tversky", "MONAI-style TverskyLoss(softmax, one-hot, 0.3, 0.7) in torch; backward",
     "x", lambda d: softmax_tversky_loss(d.x, d.y), None),
    ("generalized_dice", "MONAI-style GeneralizedDiceLoss(softmax, one-hot, square) in torch",
     "x", lambda d: generalized_dice_loss(d.x, d.y), None),
    ("ce_dice", "F.cross_entropy + the softmax Dice above; one backward", "x",
     lambda d: F.cross_entropy(d.x, d.y) + softmax_dice_loss(d.x, d.y), None),
    ("dice_focal", "the softmax Dice + the softmax focal above; one backward", "x",
     lambda d: softmax_dice_loss(d.x, d.y) + softmax_focal_loss(d.x, d.y,
                                                                 gamma=SOFTMAX_FOCAL_GAMMA), None),
    ("lovasz_softmax", "Lovasz-Softmax (authors' algorithm, classes present, batch) in torch",
     "x", lambda d: lovasz_softmax_reference(d.x, d.y), "slow"),
]
MULTICLASS_NAMES = [c[0] for c in MULTICLASS_CASES]
LOVASZ_SMALL_IMPL = ("Lovasz-Softmax (authors' algorithm, classes present, batch): "
                     "softmax, per class sort + lovasz_grad + dot, mean; backward")


def bench_multiclass(args, shape):
    if not any_wanted(args, MULTICLASS_NAMES, shape):
        return
    d = label_inputs(shape)
    big = numel(shape) > 25_000_000
    reps = max(3, args.reps // 5)
    table = [c for c in MULTICLASS_CASES if c[4] != "slow" or not big or args.slow]
    run_table(args, shape, d, table, reps, warmup=1 if big else 3)


def bench_lovasz_small(args):
    if not wanted(args, "lovasz_softmax", LOVASZ_SHAPE):
        return
    d = label_inputs(LOVASZ_SHAPE)
    fn = [c[3] for c in MULTICLASS_CASES if c[0] == "lovasz_softmax"][0]
    run_table(args, LOVASZ_SHAPE, d, [("lovasz_softmax", LOVASZ_SMALL_IMPL, "x", fn, None)],
              max(5, args.reps // 3))


def main():
    args = parse_args()
    torch.set_num_interop_threads(1)
    print("torch", torch.__version__, file=sys.stderr)
    for line in torch.__config__.parallel_info().splitlines()[:6]:
        print(line, file=sys.stderr)
    for shape in BINARY_SHAPES:
        bench_binary(args, shape)
    for shape in MULTICLASS_SHAPES:
        bench_multiclass(args, shape)
    bench_lovasz_small(args)


if __name__ == "__main__":
    main()
