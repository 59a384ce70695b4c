#!/usr/bin/python3
"""Golden reference values for segloss's sigmoid_focal and softmax_focal, computed with PyTorch in
float64.

Run from anywhere with a Python that has torch (Debian: /usr/bin/python3 with python3-torch):

    /usr/bin/python3 tests/golden/generate_focal.py

It rewrites tests/golden/focal.txt next to this script, in the format of the other golden files
(README.md in this folder). tests/test_golden_focal.cpp reads it.

Every number is float64 and printed with '%.17g'. The gradient is d(loss)/d(logits) from
torch.autograd: loss.backward(grad_out) with a scalar grad_out for mean / sum, and
(loss * grad_out).sum().backward() with a random grad_out shaped like the loss for none.
Logits and the random grad_out are randn * scale rounded to multiples of 2^-10 (exact in float).

torchvision and kornia are not installed; the references are their definitions written here with
torch ops, in the textbook form (each term as the paper and those libraries state it), and
differentiated by autograd:
  * sigmoid_focal: torchvision.ops.sigmoid_focal_loss (Lin et al., ICCV 2017, as in RetinaNet):
      p = sigmoid(x), ce = F.binary_cross_entropy_with_logits(x, t, reduction='none'),
      p_t = p t + (1 - p)(1 - t), l = ce (1 - p_t)^gamma, times alpha t + (1 - alpha)(1 - t)
      when alpha >= 0; then times segloss's optional weight; mean = l.mean(), sum = l.sum().
  * softmax_focal: kornia.losses.focal_loss's -alpha (1 - p_t)^gamma log p_t with p = softmax
    over the classes (log p from F.log_softmax, and kornia's eps = 0), alpha per class, pixels
    with label ignore_index dropped (loss 0), mean = sum / the number of pixels not ignored (0
    when there are none).
Each case is also computed by the header's cancellation-free form (header_* below: 1 - p_t as
p (1 - t) + sigmoid(-x) t, or as the sum of the other classes' probabilities), and the generator
stops unless the two agree (1e-12 relative, with a floor of 1e-4 of the largest magnitude) in
value and gradient. softmax cases with gamma = 0 and no alpha are also checked against
F.cross_entropy(..., ignore_index) itself.
"""

import os
import sys

import torch
import torch.nn.functional as F

sys.dont_write_bytecode = True  # no __pycache__ next to the data
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from generate import BASE_SEED, Case, fmt, seed_for  # noqa: E402  (the shared writer and seeds)
from generate_cross_entropy import (  # noqa: E402
    assert_close, make_labels, quantized_randn)

HERE = os.path.dirname(os.path.abspath(__file__))
OUTPUT = "focal.txt"

torch.set_default_dtype(torch.float64)


# --------------------------------------------------------------------------------------------
# References
# --------------------------------------------------------------------------------------------

def sigmoid_focal_reference(x, t, alpha, gamma, weight, reduction):
    """torchvision.ops.sigmoid_focal_loss's definition, times an optional weight."""
    prob = torch.sigmoid(x)
    bce = F.binary_cross_entropy_with_logits(x, t, reduction="none")
    prob_t = prob * t + (1.0 - prob) * (1.0 - t)
    l = bce * (1.0 - prob_t) ** gamma
    if alpha >= 0:
        l = (alpha * t + (1.0 - alpha) * (1.0 - t)) * l
    if weight is not None:
        l = weight * l
    return reduce(l, reduction)


def sigmoid_focal_header(x, t, alpha, gamma, weight, reduction):
    """losses/focal.hpp's form: q = 1 - p_t = p (1 - t) + sigmoid(-x) t, no subtraction."""
    q = torch.sigmoid(x) * (1.0 - t) + torch.sigmoid(-x) * t
    ce = F.binary_cross_entropy_with_logits(x, t, reduction="none")
    a = alpha * t + (1.0 - alpha) * (1.0 - t) if alpha >= 0 else torch.ones_like(t)
    w = weight if weight is not None else torch.ones_like(t)
    return reduce(w * a * q ** gamma * ce, reduction)


def reduce(l, reduction):
    if reduction == "mean":
        return l.mean()
    return l.sum() if reduction == "sum" else l


def label_parts(x, target, ignore_index):
    valid = target != ignore_index
    y = torch.where(valid, target, torch.zeros_like(target))
    return valid, y


def softmax_reduce(l, valid, reduction):
    l = torch.where(valid, l, torch.zeros_like(l))
    if reduction == "none":
        return l
    if reduction == "sum":
        return l.sum()
    count = int(valid.sum())
    return l.sum() / max(count, 1)  # every pixel ignored: 0 (and a zero gradient)


def softmax_focal_reference(x, target, alpha, gamma, ignore_index, reduction):
    """-alpha[t] (1 - p_t)^gamma log p_t (kornia's focal_loss, eps 0), ignored pixels dropped."""
    valid, y = label_parts(x, target, ignore_index)
    log_p_t = F.log_softmax(x, dim=1).gather(1, y.unsqueeze(1)).squeeze(1)
    p_t = log_p_t.exp()
    a = alpha[y] if alpha is not None else torch.ones_like(p_t)
    l = -a * (1.0 - p_t) ** gamma * log_p_t
    return softmax_reduce(l, valid, reduction)


def softmax_focal_header(x, target, alpha, gamma, ignore_index, reduction):
    """The header's form: 1 - p_t as the sum of the other classes' probabilities."""
    valid, y = label_parts(x, target, ignore_index)
    p = F.softmax(x, dim=1)
    onehot = F.one_hot(y, x.shape[1]).movedim(-1, 1).to(x.dtype)
    q = (p * (1.0 - onehot)).sum(1)
    nll = -(F.log_softmax(x, dim=1) * onehot).sum(1)
    a = alpha[y] if alpha is not None else torch.ones_like(q)
    return softmax_reduce(a * q ** gamma * nll, valid, reduction)


# --------------------------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------------------------

def record(case, name, x, loss, ref, reduction, grad_out):
    """Stores the reference's value(s) and autograd gradient after checking it against the
    header's form (ref)."""
    if reduction == "none":
        go = quantized_randn(loss.shape, 1.0)
    else:
        go = torch.tensor(grad_out)
    (g_ref,) = torch.autograd.grad((ref * go).sum(), x, retain_graph=True)
    (g,) = torch.autograd.grad((loss * go).sum(), x)
    assert torch.isfinite(g).all(), name
    assert_close(name, "value", loss, ref)
    assert_close(name, "grad", g, g_ref)
    case.tensor("grad_out", go)
    if reduction == "none":
        case.tensor("values", loss)
    else:
        case.value(loss.item())
    case.tensor("grad", g)


def sigmoid_case(name, shape, reduction, alpha=0.25, gamma=2.0, target="binary", weight=None,
                 scale=3.0, grad_out=1.0):
    seed_for(name)
    case = Case(name, "sigmoid_focal")
    case.lines.append("shape " + " ".join(str(d) for d in shape))
    case.option("reduction", reduction)
    case.option("alpha", fmt(alpha))
    case.option("gamma", fmt(gamma))
    x = quantized_randn(shape, scale).requires_grad_(True)
    if target == "binary":
        t = (torch.rand(shape) < 0.4).to(torch.float64)
    else:
        t = torch.round(torch.rand(shape) * 1024.0) / 1024.0
    w = None if weight is None else torch.round((torch.rand(weight) * 1.5 + 0.25) * 1024) / 1024
    case.tensor("logits", x)
    case.tensor("target", t)
    if w is not None:
        case.tensor("weight", w)
    loss = sigmoid_focal_reference(x, t, alpha, gamma, w, reduction)
    ref = sigmoid_focal_header(x, t, alpha, gamma, w, reduction)
    record(case, name, x, loss, ref, reduction, grad_out)
    return case


def softmax_case(name, shape, reduction, alpha=False, gamma=2.0, ignore_index=-100,
                 ignore_frac=0.0, scale=3.0, grad_out=1.0):
    seed_for(name)
    C = shape[1]
    case = Case(name, "softmax_focal")
    case.lines.append("shape " + " ".join(str(d) for d in shape))
    case.option("reduction", reduction)
    case.option("gamma", fmt(gamma))
    case.option("ignore_index", str(ignore_index))
    x = quantized_randn(shape, scale).requires_grad_(True)
    y = make_labels(shape, C, ignore_index, ignore_frac)
    a = torch.round((torch.rand(C) * 1.5 + 0.25) * 1024) / 1024 if alpha else None
    case.tensor("logits", x)
    case.tensor("target", y)
    if a is not None:
        case.tensor("alpha", a)
    loss = softmax_focal_reference(x, y, a, gamma, ignore_index, reduction)
    ref = softmax_focal_header(x, y, a, gamma, ignore_index, reduction)
    if gamma == 0.0 and a is None:
        ce = F.cross_entropy(x, y, ignore_index=ignore_index, reduction=reduction)
        if ignore_frac < 1.0 or reduction != "mean":  # torch's mean of nothing is NaN
            assert_close(name, "cross_entropy", loss, ce)
    record(case, name, x, loss, ref, reduction, grad_out)
    return case


REDUCTIONS = ("mean", "sum", "none")

S2 = (2, 3, 4, 3)
S1 = (3, 1, 7)
S3 = (2, 2, 2, 3, 4)
SC1 = (2, 1, 4, 3)

M2 = (2, 5, 4, 3)
M3 = (2, 3, 2, 3, 4)
M1 = (3, 4, 7)
MC1 = (2, 1, 4, 3)
MC2 = (2, 2, 4, 3)
MC21 = (1, 21, 3, 2)


def sigmoid_cases():
    cs = []
    for r in REDUCTIONS:
        cs.append(sigmoid_case("sf_2d_defaults_" + r, S2, r))
    for g in (0.0, 0.5, 1.0, 1.5, 3.0):
        cs.append(sigmoid_case("sf_2d_gamma%s_mean" % fmt(g).replace(".", "p"), S2, "mean",
                               gamma=g))
    cs.append(sigmoid_case("sf_2d_gamma0p5_none", S2, "none", gamma=0.5))
    cs.append(sigmoid_case("sf_2d_gamma0p25_alpha0p75_none", S2, "none", gamma=0.25,
                           alpha=0.75))
    cs.append(sigmoid_case("sf_2d_no_alpha_mean", S2, "mean", alpha=-1.0))
    cs.append(sigmoid_case("sf_2d_no_alpha_sum", S2, "sum", alpha=-1.0))
    cs.append(sigmoid_case("sf_2d_no_alpha_gamma0_none", S2, "none", alpha=-1.0, gamma=0.0))
    cs.append(sigmoid_case("sf_2d_soft_mean", S2, "mean", target="soft"))
    cs.append(sigmoid_case("sf_2d_soft_gamma0p5_none", S2, "none", target="soft", gamma=0.5))
    for ws, tag in (((2, 3, 4, 3), "full"), ((2, 1, 4, 3), "pixel"), ((3, 1, 1), "channel")):
        cs.append(sigmoid_case("sf_2d_weight_%s_mean" % tag, S2, "mean", weight=ws))
        cs.append(sigmoid_case("sf_2d_weight_%s_none" % tag, S2, "none", weight=ws, gamma=1.5))
    for tag, shape in (("1d", S1), ("3d", S3), ("c1", SC1)):
        cs.append(sigmoid_case("sf_%s_mean" % tag, shape, "mean"))
        cs.append(sigmoid_case("sf_%s_gamma0p5_none" % tag, shape, "none", gamma=0.5))
    cs.append(sigmoid_case("sf_2d_mean_grad_out", S2, "mean", grad_out=0.37))
    cs.append(sigmoid_case("sf_2d_sum_grad_out", S2, "sum", grad_out=-1.75, gamma=0.5))
    # Large logits with gamma >= 1 only: the reference's (1 - p_t)**gamma has an infinite
    # derivative where 1 - p_t rounds to 0, which autograd turns into NaN for gamma < 1.
    cs.append(sigmoid_case("sf_2d_large_logits_mean", S2, "mean", scale=30.0))
    cs.append(sigmoid_case("sf_2d_large_logits_none", S2, "none", scale=30.0, gamma=1.0))
    return cs


def softmax_cases():
    cs = []
    for r in REDUCTIONS:
        cs.append(softmax_case("mf_2d_defaults_" + r, M2, r))
    for g in (0.0, 0.5, 1.0, 1.5, 3.0):
        cs.append(softmax_case("mf_2d_gamma%s_mean" % fmt(g).replace(".", "p"), M2, "mean",
                               gamma=g))
    cs.append(softmax_case("mf_2d_gamma0p5_none", M2, "none", gamma=0.5))
    cs.append(softmax_case("mf_2d_gamma0_ignore_none", M2, "none", gamma=0.0, ignore_frac=0.3))
    for r in REDUCTIONS:
        cs.append(softmax_case("mf_2d_alpha_" + r, M2, r, alpha=True))
        cs.append(softmax_case("mf_2d_ignore_m100_" + r, M2, r, ignore_frac=0.3))
        cs.append(softmax_case("mf_2d_all_ignored_" + r, M2, r, ignore_frac=1.0, gamma=0.5))
    cs.append(softmax_case("mf_2d_alpha_gamma0p5_none", M2, "none", alpha=True, gamma=0.5))
    cs.append(softmax_case("mf_2d_alpha_gamma0_sum", M2, "sum", alpha=True, gamma=0.0))
    cs.append(softmax_case("mf_2d_ignore_255_alpha_mean", M2, "mean", alpha=True,
                           ignore_index=255, ignore_frac=0.3))
    cs.append(softmax_case("mf_2d_ignore_0_none", M2, "none", ignore_index=0, gamma=0.5))
    cs.append(softmax_case("mf_2d_ignore_0_alpha_mean", M2, "mean", ignore_index=0, alpha=True))
    for tag, shape in (("1d", M1), ("3d", M3), ("c2", MC2), ("c21", MC21)):
        cs.append(softmax_case("mf_%s_mean" % tag, shape, "mean"))
        cs.append(softmax_case("mf_%s_alpha_gamma0p5_none" % tag, shape, "none", alpha=True,
                               gamma=0.5, ignore_frac=0.2))
    # One class: p_t = 1, loss and gradient 0. gamma >= 1 only: autograd's derivative of
    # (1 - p_t)**gamma at 1 - p_t = 0 is NaN for gamma < 1 (segloss's is 0; tests/test_focal.cpp).
    cs.append(softmax_case("mf_c1_mean", MC1, "mean"))
    cs.append(softmax_case("mf_c1_alpha_gamma1_none", MC1, "none", alpha=True, gamma=1.0,
                           ignore_frac=0.2))
    cs.append(softmax_case("mf_2d_mean_grad_out", M2, "mean", grad_out=0.37, ignore_frac=0.2))
    cs.append(softmax_case("mf_2d_sum_grad_out", M2, "sum", grad_out=-1.75, gamma=1.5))
    cs.append(softmax_case("mf_2d_large_logits_mean", M2, "mean", scale=30.0))
    cs.append(softmax_case("mf_2d_large_logits_none", M2, "none", scale=30.0, gamma=1.0,
                           alpha=True))
    return cs


def write(filename, cases):
    names = [c.name for c in cases]
    assert len(set(names)) == len(names), "duplicate case names"
    path = os.path.join(HERE, filename)
    with open(path, "w") as f:
        f.write("# segloss golden data for sigmoid_focal and softmax_focal: generated by "
                "tests/golden/generate_focal.py\n")
        f.write("# torch %s, float64, base seed %d. Do not edit; regenerate.\n"
                % (torch.__version__, BASE_SEED))
        f.write("torch %s\n" % torch.__version__)
        for c in cases:
            f.write(c.text())
        f.write("count %d\n" % len(cases))
    print("%s: %d cases, %d bytes" % (path, len(cases), os.path.getsize(path)))


def main():
    s, m = sigmoid_cases(), softmax_cases()
    print("sigmoid_focal %d, softmax_focal %d" % (len(s), len(m)))
    write(OUTPUT, s + m)
    return 0


if __name__ == "__main__":
    sys.exit(main())
