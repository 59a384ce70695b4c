#!/usr/bin/python3
"""Golden reference values for segloss's cross_entropy, computed with PyTorch in float64.

Run from anywhere with a Python that has torch (Debian: /usr/bin/python3 with python3-torch):

    /usr/bin/python3 tests/golden/generate_cross_entropy.py

It rewrites tests/golden/cross_entropy.txt next to this script, in the format of the other golden
files (README.md in this folder). tests/test_golden_cross_entropy.cpp reads it.

Every number is float64 and printed with '%.17g'. The gradient is d(loss)/d(logits) from
torch.autograd: loss.backward(grad_out) with a scalar grad_out for mean / sum, and
(loss * grad_out).sum().backward() with a random grad_out shaped like the loss for none.

Inputs: logits are randn * scale rounded to multiples of 2^-10 and the random grad_out of
reduction none is rounded likewise. Both are then exact in float as well as double, and print in
at most ~13 characters, which keeps the file small; nothing else depends on it.

What the references are:
  * target labels / probs: torch.nn.functional.cross_entropy(logits, target, weight=...,
    ignore_index=..., reduction=..., label_smoothing=...) itself, with int64 labels (torch 1.13
    accepts no other label type; the C++ test feeds segloss the same labels as int32 and int64).
  * reference pytorch_fcn_cross_entropy2d: cross_entropy2d from the seeds note
    (/work/shared/seeds/segmentation-losses-note.md, wkentaro/pytorch-fcn), verbatim except for
    the two spellings torch 1.13 needs: F.log_softmax(input, dim=1) (the note's branch for
    torch >= 0.3) and F.nll_loss(..., reduction='sum') for the removed size_average=False.
  * Every case is also computed by header_reference() below: the formulas of
    losses/cross_entropy.hpp written out with torch ops (log_softmax, gather, sums). The
    generator asserts that torch and the header agree (value and gradient, 1e-12 relative)
    before it writes a case, so the file holds the header's semantics. Torch 1.13 agrees with the
    header on every case here, including label smoothing with reduction mean and ignored pixels
    (the smoothing term is divided by sum_i w_{y_i} over the pixels not ignored, like the NLL
    term), so all stored numbers are torch's own.
"""

import math
import os
import sys

import torch
import torch.nn.functional as F

sys.dont_write_bytecode = True  # no __pycache__ next to the data
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from generate import BASE_SEED, Case, fmt, seed_for  # noqa: E402  (the shared writer and seeds)

HERE = os.path.dirname(os.path.abspath(__file__))
OUTPUT = "cross_entropy.txt"

torch.set_default_dtype(torch.float64)


# --------------------------------------------------------------------------------------------
# Seed code: pytorch-fcn's cross_entropy2d from the seeds note ("1 2d交叉熵"), with the two
# modern-torch spellings named above. LooseVersion branch: the >= 0.3 one is taken.
# --------------------------------------------------------------------------------------------

def cross_entropy2d(input, target, weight=None, size_average=True):
    # input: (n, c, h, w), target: (n, h, w)
    n, c, h, w = input.size()
    # log_p: (n, c, h, w)
    log_p = F.log_softmax(input, dim=1)
    # log_p: (n*h*w, c)
    log_p = log_p.transpose(1, 2).transpose(2, 3).contiguous()
    log_p = log_p[target.view(n, h, w, 1).repeat(1, 1, 1, c) >= 0]
    log_p = log_p.view(-1, c)
    # target: (n*h*w,)
    mask = target >= 0
    target = target[mask]
    loss = F.nll_loss(log_p, target, weight=weight, reduction='sum')
    if size_average:
        loss /= mask.data.sum()
    return loss


# --------------------------------------------------------------------------------------------
# The header's formulas (losses/cross_entropy.hpp), in torch ops, for the cross-check.
# --------------------------------------------------------------------------------------------

def header_reference(x, target, kind, weight, reduction, ignore_index, eps,
                     ignore_negative=False, mean_over="weights"):
    """lse_i - x_ic = -log_softmax. Hard labels:
         l_i = (1 - eps) w_{y_i} (lse_i - x_{i,y_i}) + (eps / C) sum_c w_c (lse_i - x_ic),
       0 for ignored pixels; mean = sum_i l_i / sum_{i not ignored} w_{y_i} (or / the count of
       pixels not ignored for mean_over valid_pixels); a zero divisor gives NaN (PyTorch).
       Probabilities: l_i = sum_c w_c q'_ic (lse_i - x_ic), q' = (1 - eps) q + eps / C,
       mean = sum_i l_i / (N * spatial)."""
    C = x.shape[1]
    wshape = (1, C) + (1,) * (x.dim() - 2)
    w = torch.ones(C) if weight is None else weight
    nlp = -F.log_softmax(x, dim=1)  # lse_i - x_ic
    if kind == "probs":
        q = (1.0 - eps) * target + eps / C
        l = (w.view(wshape) * q * nlp).sum(1)
        if reduction == "mean":
            return l.sum() / l.numel()
        return l.sum() if reduction == "sum" else l
    ignored = target == ignore_index
    if ignore_negative:
        ignored = ignored | (target < 0)
    valid = ~ignored
    y = torch.where(valid, target, torch.zeros_like(target))
    nll_y = nlp.gather(1, y.unsqueeze(1)).squeeze(1)
    wy = w[y]
    l = (1.0 - eps) * wy * nll_y + (eps / C) * (w.view(wshape) * nlp).sum(1)
    l = torch.where(valid, l, torch.zeros_like(l))
    if reduction == "none":
        return l
    if reduction == "sum":
        return l.sum()
    if mean_over == "weights":
        den = torch.where(valid, wy, torch.zeros_like(wy)).sum()
    else:
        den = valid.sum().to(x.dtype)
    return l.sum() / den  # 0 / 0 = NaN when every pixel is ignored


def assert_close(name, what, a, b, rtol=1e-12):
    a = a.detach().reshape(-1)
    b = b.detach().reshape(-1)
    assert a.shape == b.shape, (name, what, a.shape, b.shape)
    both_nan = torch.isnan(a) & torch.isnan(b)
    scale = max(b[~torch.isnan(b)].abs().max().item() if (~torch.isnan(b)).any() else 0.0, 1e-300)
    diff = (a - b).abs()
    bad = ~both_nan & ~(diff <= rtol * torch.maximum(b.abs(), torch.tensor(1e-4 * scale)))
    bad = bad & ~(diff == 0)
    if bad.any():
        i = int(bad.nonzero()[0])
        raise AssertionError("%s: %s: torch and the header's formula differ at %d: %r vs %r"
                             % (name, what, i, a[i].item(), b[i].item()))


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------

S2 = (2, 5, 4, 3)     # two spatial axes
S3 = (2, 3, 2, 3, 4)  # three spatial axes
S1 = (3, 4, 7)        # one spatial axis
SC1 = (2, 1, 4, 3)    # one class: every label 0
SC21 = (1, 21, 3, 2)  # PASCAL VOC's 21 classes, small spatial
S2B = (2, 5, 3, 2)    # two spatial axes, smaller: the label-smoothing grid

Q = 1024.0  # logits and the random grad_out are multiples of 1 / Q


def quantized_randn(shape, scale):
    return torch.round(torch.randn(shape) * scale * Q) / Q


def make_labels(shape, C, ignore_index, ignore_frac, negatives=0.0):
    """Labels uniform in [0, C); a fraction `ignore_frac` set to ignore_index (at least one
    pixel when the fraction is positive); a fraction `negatives` set to -1 (pytorch-fcn)."""
    lshape = (shape[0],) + tuple(shape[2:])
    y = torch.randint(0, C, lshape, dtype=torch.int64)
    flat = y.view(-1)
    n = flat.numel()
    if ignore_frac >= 1.0:
        flat[:] = ignore_index
    elif ignore_frac > 0.0:
        m = torch.rand(n) < ignore_frac
        m[int(torch.randint(0, n, (1,)))] = True
        flat[m] = ignore_index
    if negatives > 0.0:
        m = torch.rand(n) < negatives
        m[int(torch.randint(0, n, (1,)))] = True
        flat[m] = -1
    return y


def make_probs(shape, scale=2.0):
    """softmax(randn * scale) over the classes, rounded to multiples of 1 / Q so that every
    row still sums to exactly 1 (largest remainders get the leftover units); exact in float."""
    p = torch.softmax(torch.randn(shape) * scale, dim=1) * Q
    k = torch.floor(p)
    left = (Q - k.sum(dim=1, keepdim=True)).to(torch.int64)  # units still to hand out per row
    order = torch.argsort(torch.argsort(p - k, dim=1, descending=True), dim=1)  # rank per class
    k = k + (order < left).to(k.dtype)
    q = k / Q
    assert (q.sum(dim=1) == 1.0).all()
    return q


def make_weight(C):
    return torch.rand(C) * 1.5 + 0.25


# --------------------------------------------------------------------------------------------
# One case
# --------------------------------------------------------------------------------------------

def ce_case(name, shape, reduction, kind="labels", weight=False, ignore_index=-100,
            ignore_frac=0.0, eps=0.0, scale=3.0, grad_out=1.0, fcn=False, negatives=0.0):
    """kind: labels or probs. fcn: evaluate pytorch-fcn's cross_entropy2d (size_average =
    reduction == 'mean') instead of F.cross_entropy."""
    seed_for(name)
    C = shape[1]
    case = Case(name, "cross_entropy")
    case.lines.append("shape " + " ".join(str(d) for d in shape))
    case.option("target", kind)
    case.option("reduction", reduction)
    x = quantized_randn(shape, scale).requires_grad_(True)
    if kind == "labels":
        tgt = make_labels(shape, C, ignore_index, ignore_frac, negatives)
    else:
        tgt = make_probs(shape)
    w = make_weight(C) if weight else None
    if kind == "labels" and not fcn:
        case.option("ignore_index", str(ignore_index))
    if eps != 0.0:
        case.option("label_smoothing", fmt(eps))
    all_ignored = kind == "labels" and ignore_frac >= 1.0
    if kind == "labels":
        n_ign = int(((tgt == ignore_index) | (tgt < 0)).sum()) if fcn else int(
            (tgt == ignore_index).sum())
        want_ignored = ignore_frac > 0.0 or negatives > 0.0 or ignore_index in range(C)
        assert (n_ign > 0) == want_ignored, (name, n_ign)
        assert all_ignored or n_ign < tgt.numel(), name
    if all_ignored and reduction == "mean":
        # PyTorch's mean of nothing is 0 / 0 = NaN; segloss gives that with all_ignored nan.
        case.option("all_ignored", "nan")
    case.tensor("logits", x)
    case.tensor("target", tgt)
    if w is not None:
        case.tensor("weight", w)

    if fcn:
        assert kind == "labels" and eps == 0.0 and reduction in ("mean", "sum") and len(shape) == 4
        case.option("reference", "pytorch_fcn_cross_entropy2d")
        case.option("size_average", "1" if reduction == "mean" else "0")
        loss = cross_entropy2d(x, tgt, weight=w, size_average=reduction == "mean")
        ref = header_reference(x, tgt, kind, w, reduction, -100, 0.0, ignore_negative=True,
                               mean_over="valid_pixels")
    else:
        loss = F.cross_entropy(x, tgt, weight=w, ignore_index=ignore_index, reduction=reduction,
                               label_smoothing=eps)
        ref = header_reference(x, tgt, kind, w, reduction, ignore_index, eps)

    # The header's formula, differentiated by autograd, must agree with torch (value and grad).
    if reduction == "none":
        go = quantized_randn(loss.shape, 1.0)
    else:
        go = torch.tensor(grad_out)
    (g_ref,) = torch.autograd.grad((ref * go).sum(), x, retain_graph=False)
    if reduction == "none":
        (loss * go).sum().backward()
        case.tensor("grad_out", go)
        case.tensor("values", loss)
    else:
        loss.backward(go)
        case.tensor("grad_out", go)
        case.value(loss.item())
    assert_close(name, "value", loss, ref)
    assert_close(name, "grad", x.grad, g_ref)
    if all_ignored:
        assert (x.grad == 0).all(), name
        if reduction == "mean":
            assert math.isnan(loss.item()), name
        else:
            assert (loss == 0).all(), name
    else:
        assert torch.isfinite(loss).all(), name
    case.tensor("grad", x.grad)
    return case


# --------------------------------------------------------------------------------------------
# The cases
# --------------------------------------------------------------------------------------------

REDUCTIONS = ("mean", "sum", "none")


def label_cases():
    cs = []
    # plain: every shape, every reduction
    for tag, shape in (("2d", S2), ("3d", S3), ("1d", S1), ("c1", SC1), ("c21", SC21)):
        for r in REDUCTIONS:
            if (tag, r) != ("3d", "sum"):
                cs.append(ce_case("ce_%s_plain_%s" % (tag, r), shape, r))
    cs.append(ce_case("ce_2d_plain_mean_grad_out", S2, "mean", grad_out=0.37))
    cs.append(ce_case("ce_2d_plain_sum_grad_out", S2, "sum", grad_out=-1.75))
    cs.append(ce_case("ce_2d_large_logits_mean", S2, "mean", scale=30.0))
    cs.append(ce_case("ce_2d_large_logits_none", S2, "none", scale=30.0))
    # class weights
    for r in REDUCTIONS:
        cs.append(ce_case("ce_2d_weight_" + r, S2, r, weight=True))
    cs.append(ce_case("ce_3d_weight_mean", S3, "mean", weight=True))
    cs.append(ce_case("ce_3d_weight_none", S3, "none", weight=True))
    cs.append(ce_case("ce_1d_weight_mean", S1, "mean", weight=True))
    cs.append(ce_case("ce_c21_weight_mean", SC21, "mean", weight=True))
    cs.append(ce_case("ce_c21_weight_none", SC21, "none", weight=True))
    cs.append(ce_case("ce_2d_weight_mean_grad_out", S2, "mean", weight=True, grad_out=2.5))
    # ignore_index: the default -100 present in the labels, 255, and 0 (a real class)
    for r in REDUCTIONS:
        cs.append(ce_case("ce_2d_ignore_m100_" + r, S2, r, ignore_frac=0.3))
        cs.append(ce_case("ce_2d_ignore_m100_weight_" + r, S2, r, weight=True, ignore_frac=0.3))
        if r != "sum":
            cs.append(ce_case("ce_2d_ignore_255_" + r, S2, r, ignore_index=255, ignore_frac=0.3))
    cs.append(ce_case("ce_2d_ignore_255_weight_mean", S2, "mean", weight=True, ignore_index=255,
                      ignore_frac=0.3))
    cs.append(ce_case("ce_3d_ignore_m100_weight_mean", S3, "mean", weight=True, ignore_frac=0.25))
    cs.append(ce_case("ce_1d_ignore_m100_none", S1, "none", ignore_frac=0.25))
    cs.append(ce_case("ce_c21_ignore_255_weight_mean", SC21, "mean", weight=True,
                      ignore_index=255, ignore_frac=0.2))
    cs.append(ce_case("ce_2d_ignore_0_mean", S2, "mean", ignore_index=0))
    cs.append(ce_case("ce_2d_ignore_0_none", S2, "none", ignore_index=0))
    cs.append(ce_case("ce_2d_ignore_0_weight_mean", S2, "mean", weight=True, ignore_index=0))
    cs.append(ce_case("ce_2d_ignore_0_weight_sum", S2, "sum", weight=True, ignore_index=0))
    # label smoothing 0.1 and 0.3, with and without weight, with and without ignored pixels
    for eps, etag in ((0.1, "ls01"), (0.3, "ls03")):
        for weight in (False, True):
            for ign in (False, True):
                for r in REDUCTIONS:
                    name = "ce_2d_%s%s%s_%s" % (etag, "_weight" if weight else "",
                                                "_ignore_m100" if ign else "", r)
                    cs.append(ce_case(name, S2B, r, weight=weight,
                                      ignore_frac=0.3 if ign else 0.0, eps=eps))
    cs.append(ce_case("ce_2d_ls03_weight_ignore_255_mean", S2, "mean", weight=True,
                      ignore_index=255, ignore_frac=0.3, eps=0.3))
    cs.append(ce_case("ce_2d_ls01_weight_ignore_0_mean", S2, "mean", weight=True, ignore_index=0,
                      eps=0.1))
    cs.append(ce_case("ce_2d_ls01_ignore_0_none", S2, "none", ignore_index=0, eps=0.1))
    cs.append(ce_case("ce_3d_ls01_weight_ignore_m100_mean", S3, "mean", weight=True,
                      ignore_frac=0.25, eps=0.1))
    cs.append(ce_case("ce_1d_ls03_ignore_m100_none", S1, "none", ignore_frac=0.25, eps=0.3))
    cs.append(ce_case("ce_c21_ls01_weight_ignore_255_mean", SC21, "mean", weight=True,
                      ignore_index=255, ignore_frac=0.2, eps=0.1))
    cs.append(ce_case("ce_c1_ls03_mean", SC1, "mean", eps=0.3))
    cs.append(ce_case("ce_2d_ls1_ignore_m100_mean", S2, "mean", ignore_frac=0.3, eps=1.0))
    cs.append(ce_case("ce_2d_ls03_weight_ignore_m100_mean_grad_out", S2, "mean", weight=True,
                      ignore_frac=0.3, eps=0.3, grad_out=-0.6))
    # every pixel ignored: mean is NaN in torch (segloss: all_ignored nan), sum and none 0
    for r in REDUCTIONS:
        cs.append(ce_case("ce_2d_all_ignored_" + r, S2, r, ignore_frac=1.0))
        cs.append(ce_case("ce_2d_all_ignored_255_weight_ls02_" + r, S2, r, weight=True,
                          ignore_index=255, ignore_frac=1.0, eps=0.2))
    return cs


def prob_cases():
    cs = []
    for r in REDUCTIONS:
        cs.append(ce_case("ce_probs_2d_" + r, S2, r, kind="probs"))
        cs.append(ce_case("ce_probs_2d_weight_" + r, S2, r, kind="probs", weight=True))
        cs.append(ce_case("ce_probs_2d_ls01_" + r, S2B, r, kind="probs", eps=0.1))
        cs.append(ce_case("ce_probs_2d_ls03_weight_" + r, S2B, r, kind="probs", weight=True,
                          eps=0.3))
    cs.append(ce_case("ce_probs_3d_mean", S3, "mean", kind="probs"))
    cs.append(ce_case("ce_probs_3d_weight_ls01_none", S3, "none", kind="probs", weight=True,
                      eps=0.1))
    cs.append(ce_case("ce_probs_1d_sum", S1, "sum", kind="probs"))
    cs.append(ce_case("ce_probs_1d_weight_none", S1, "none", kind="probs", weight=True))
    cs.append(ce_case("ce_probs_c21_weight_ls01_mean", SC21, "mean", kind="probs", weight=True,
                      eps=0.1))
    cs.append(ce_case("ce_probs_c1_mean", SC1, "mean", kind="probs"))
    cs.append(ce_case("ce_probs_2d_mean_grad_out", S2, "mean", kind="probs", grad_out=0.37))
    return cs


def fcn_cases():
    cs = []
    for weight in (False, True):
        for r in ("mean", "sum"):
            name = "ce_fcn_2d%s_size_average_%d" % ("_weight" if weight else "", r == "mean")
            cs.append(ce_case(name, S2, r, weight=weight, negatives=0.3, fcn=True))
    cs.append(ce_case("ce_fcn_c21_weight_size_average_1", SC21, "mean", weight=True,
                      negatives=0.2, fcn=True))
    cs.append(ce_case("ce_fcn_2d_no_negatives_size_average_1", (3, 4, 2, 3), "mean", fcn=True))
    cs.append(ce_case("ce_fcn_2d_weight_size_average_0_grad_out", (3, 4, 2, 3), "sum",
                      weight=True, negatives=0.4, grad_out=-1.75, fcn=True))
    return cs


def write(filename, cases):
    names = [c.name for c in cases]
    assert len(set(names)) == len(names), "duplicate case names"
    path = os.path.join(HERE, filename)
    with open(path, "w") as f:
        f.write("# segloss golden data for cross_entropy: generated by "
                "tests/golden/generate_cross_entropy.py\n")
        f.write("# torch %s, float64, base seed %d. Do not edit; regenerate.\n"
                % (torch.__version__, BASE_SEED))
        f.write("torch %s\n" % torch.__version__)
        for c in cases:
            f.write(c.text())
        f.write("count %d\n" % len(cases))
    print("%s: %d cases, %d bytes" % (path, len(cases), os.path.getsize(path)))


def main():
    labels, probs, fcn = label_cases(), prob_cases(), fcn_cases()
    print("labels %d, probs %d, pytorch_fcn %d" % (len(labels), len(probs), len(fcn)))
    write(OUTPUT, labels + probs + fcn)
    return 0


if __name__ == "__main__":
    sys.exit(main())
