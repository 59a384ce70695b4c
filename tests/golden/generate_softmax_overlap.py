#!/usr/bin/python3
"""Golden reference values for segloss's softmax overlap losses (softmax_dice, softmax_jaccard,
softmax_tversky) and generalized_dice, computed with PyTorch in float64.

Run from anywhere with a Python that has torch (Debian: /usr/bin/python3 with python3-torch):

    /usr/bin/python3 tests/golden/generate_softmax_overlap.py

It rewrites tests/golden/softmax_overlap.txt next to this script, in the format of the other
golden files (README.md in this folder, section "softmax_overlap").
tests/test_golden_softmax_overlap.cpp reads it.

Every number is float64 and printed with '%.17g'. The gradient is d(loss)/d(logits) from
torch.autograd: loss.backward(grad_out) with a scalar grad_out for mean / sum, and
(loss * grad_out).sum().backward() with a random grad_out shaped like the loss for none.

Inputs: logits are randn * scale (3 unless the case says otherwise; some cases put about half
the logits at +-1e4), rounded to multiples of 2^-10 (exact in float as in double); label maps are
uniform in [0, C) (int64 here; the C++ test feeds them as int32 and as int64), with a fraction
set to ignore_index where the case says so; probability targets are softmax(randn * 2) rounded
to multiples of 2^-10 with every pixel's row still summing to exactly 1. The random grad_out of
reduction none is rounded likewise.

What the references are (each case names its own in `option reference`):
  * header: the formulas of losses/softmax_overlap.hpp and generalized_dice.hpp written out with
    torch ops. p = torch.softmax(x, 1) (with the backward of class Softmax below, the same
    derivative without the cancellation of torch's); a label map becomes its one-hot t; a pixel
    labelled ignore_index is removed from every sum by multiplying both p and t by a 0/1 mask of
    the valid pixels (MONAI has no ignore_index; the header says an ignored pixel counts nowhere).
    For softmax_dice / softmax_jaccard / softmax_tversky the sums and everything after them
    (score forms, class weights, include_background, the empty policies, focal, log and clamp
    forms, reductions) are those of the binary overlap family: generate_overlap.py's
    header_reference() applied to (p, t) with activation none, i.e. the same definition the
    overlap golden file checks. generalized_dice: gdl_reference() below (Sudre et al. 2017 with
    MONAI's rule for absent classes). Autograd for every gradient.
  * monai_DiceLoss, monai_TverskyLoss, monai_GeneralizedDiceLoss: MONAI's DiceLoss, TverskyLoss
    and GeneralizedDiceLoss with softmax=True (and to_onehot_y=True for label maps) as of
    Project-MONAI/MONAI d388d1c (June 2025; monai/losses/dice.py, tversky.py and utils.py's
    compute_tp_fp_fn, monai/networks/utils.py one_hot) re-implemented with torch ops below
    (MONAI is not installed; the code is ours). Every such case is also computed by the header
    reference under the segloss options the case stores, and the generator stops unless the
    two agree to 1e-12 of the largest magnitude (value and gradient). The stored numbers are
    the MONAI form's.
One deviation, on purpose: MONAI's GeneralizedDiceLoss computes its weights from
ground_o.float(), i.e. rounds 1/T^2 (or 1/T) to float32 before using them with float64 sums.
The re-implementation keeps the weights in float64: the float32 rounding (a relative 6e-8) is
an artifact of that cast, not part of the loss's definition.
"""

import os
import sys

import torch
import torch.linalg as LA
import torch.nn.functional as F

sys.dont_write_bytecode = True  # no __pycache__ next to the data
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from generate import BASE_SEED, Case, fmt, seed_for  # noqa: E402  (the shared writer and seeds)
import generate_overlap as ov  # noqa: E402  (the binary overlap family's header reference)

HERE = os.path.dirname(os.path.abspath(__file__))
OUTPUT = "softmax_overlap.txt"

torch.set_default_dtype(torch.float64)

OVERLAP_LOSSES = ("softmax_dice", "softmax_jaccard", "softmax_tversky")
BINARY = {"softmax_dice": "soft_dice", "softmax_jaccard": "soft_jaccard",
          "softmax_tversky": "tversky"}


# --------------------------------------------------------------------------------------------
# The softmax, with a backward that keeps its relative precision
# --------------------------------------------------------------------------------------------

class Softmax(torch.autograd.Function):
    """torch.softmax(x, 1) in the forward. The backward is the softmax's Jacobian written as
        dL/dx_c = p_c sum_k p_k (g_c - g_k)        (g = dL/dp)
    which is torch's own p_c (g_c - sum_k p_k g_k) rearranged with sum_k p_k = 1. torch's form
    cancels for a saturated pixel (p_r near 1): its error is about 1e-16 |g| while the true
    gradient, about (1 - p_r) |g_c - g_r|, can be far smaller (1e-13 with logits randn * 30).
    Every term of the pairwise form is computed directly, so it keeps 1e-16 relative precision.
    It costs C^2 per pixel, nothing at these sizes. check_backward() compares the two forms."""

    @staticmethod
    def forward(ctx, x):
        p = torch.softmax(x, dim=1)
        ctx.save_for_backward(p)
        return p

    @staticmethod
    def backward(ctx, g):
        (p,) = ctx.saved_tensors
        diff = g.unsqueeze(2) - g.unsqueeze(1)  # (N, C, C, ...): g_c - g_k
        plain = p * (g - (p * g).sum(dim=1, keepdim=True))  # torch's softmax backward
        grad = p * (p.unsqueeze(1) * diff).sum(dim=2)
        # the two forms agree to the rounding of the plain one: a few ulps of max |g|
        bound = 1e-14 * float(g.abs().max()) if g.numel() else 0.0
        err = float((grad - plain).abs().max()) if g.numel() else 0.0
        if not err <= bound:
            raise SystemExit("softmax backward: the pairwise form differs from torch's by %g "
                             "(max |g| %g)" % (err, float(g.abs().max())))
        return grad


def softmax(x):
    return Softmax.apply(x)


# --------------------------------------------------------------------------------------------
# The header's definition
# --------------------------------------------------------------------------------------------

def default_options(loss):
    if loss == "generalized_dice":
        return dict(reduction="mean", smooth_nr=1e-5, smooth_dr=1e-5, per_image=True,
                    w_type="square", include_background=True, ignore_index=-100)
    o = dict(reduction="mean", smooth_nr=1e-5, smooth_dr=1e-5, per_image=True, squared=False,
             class_weight=None, include_background=True, empty="formula", gamma=1.0, log=False,
             clamp=False, ignore_index=-100)
    if loss == "softmax_tversky":
        o.update(alpha=0.5, beta=0.5)
    return o


def class_inputs(x, target, kind, ignore_index):
    """p = softmax(x) over the classes and the target t (N, C, ...): the one-hot of a label map,
    with the ignored pixels zeroed in both p and t (a 0/1 mask of the valid pixels), or the
    probability target as given."""
    p = softmax(x)
    if kind == "probs":
        return p, target
    C = x.shape[1]
    valid = target != ignore_index
    y = torch.where(valid, target, torch.zeros_like(target))
    t = F.one_hot(y, C).movedim(-1, 1).to(x.dtype)
    m = valid.unsqueeze(1).to(x.dtype)
    return p * m, t * m


def overlap_reference(loss, x, target, kind, o):
    """softmax_dice / jaccard / tversky: (loss tensor, kept, skipped)."""
    p, t = class_inputs(x, target, kind, o["ignore_index"])
    bo = ov.default_options()
    for k in bo:
        if k in o:
            bo[k] = o[k]
    bo["activation"] = "none"  # p is already the softmax
    return ov.header_reference(BINARY[loss], p, t, bo)


def gdl_reference(x, target, kind, o):
    """generalized_dice per losses/generalized_dice.hpp: one score per image (or per batch),
    S = (2 sum_c w_c I_c + s_nr) / (sum_c w_c (P_c + T_c) + s_dr), w_c = 1/T_c^2, 1/T_c or 1,
    an infinite weight (absent class) replaced by the score's largest finite weight (0 when
    there is none); the weights are constants."""
    p, t = class_inputs(x, target, kind, o["ignore_index"])
    if not o["include_background"]:
        p, t = p[:, 1:], t[:, 1:]
    spatial = tuple(range(2, x.dim()))
    dims = spatial if o["per_image"] else (0,) + spatial
    I, P, T = (p * t).sum(dim=dims), p.sum(dim=dims), t.sum(dim=dims)  # (N, C') or (C')
    Tc = T.detach()
    if o["w_type"] == "square":
        w = 1.0 / (Tc * Tc)
    elif o["w_type"] == "simple":
        w = 1.0 / Tc
    else:
        w = torch.ones_like(Tc)
    finite = torch.isfinite(w)
    w_max = torch.where(finite, w, torch.zeros_like(w)).max(dim=-1, keepdim=True)[0]
    w = torch.where(finite, w, w_max.expand(w.shape))
    num = 2.0 * (w * I).sum(dim=-1) + o["smooth_nr"]
    den = (w * (P + T)).sum(dim=-1) + o["smooth_dr"]
    f = (1.0 - num / den).reshape(-1)  # (N) per image, (1) for the batch
    if o["reduction"] == "mean":
        return f.mean()
    if o["reduction"] == "sum":
        return f.sum()
    return f


# --------------------------------------------------------------------------------------------
# MONAI's semantics, re-implemented (see the module docstring)
# --------------------------------------------------------------------------------------------

def monai_one_hot(labels, num_classes):
    """monai.networks.utils.one_hot: labels (N, 1, ...) to (N, C, ...) by scatter along dim 1."""
    sh = list(labels.shape)
    sh[1] = num_classes
    return torch.zeros(sh).scatter_(1, labels.long(), 1.0)


def monai_prepare(x, target, to_onehot_y, include_background):
    """softmax=True, to_onehot_y, include_background: the first lines of every forward."""
    C = x.shape[1]
    assert C > 1  # MONAI ignores softmax and to_onehot_y for one channel
    p = softmax(x)  # torch.softmax(x, 1), with the precise backward
    t = monai_one_hot(target, C) if to_onehot_y else target
    if not include_background:
        p, t = p[:, 1:], t[:, 1:]
    return p, t


def monai_tp_fp_fn(p, t, axes, order, decoupled):
    """utils.py compute_tp_fp_fn with soft_label False."""
    if order == 1:
        tp = torch.sum(p * t, dim=axes)
        if decoupled:  # Dice, Jaccard
            return tp, torch.sum(p, dim=axes) - tp, torch.sum(t, dim=axes) - tp
        return tp, torch.sum(p * (1 - t), dim=axes), torch.sum((1 - p) * t, dim=axes)
    po = LA.vector_norm(p, ord=order, dim=axes) ** order
    go = LA.vector_norm(t, ord=order, dim=axes) ** order
    diff = LA.vector_norm(p - t, ord=order, dim=axes) ** order
    tp = (po + go - diff) / 2
    return tp, po - tp, go - tp


def monai_reduce(f, reduction):
    if reduction == "mean":
        return f.mean()
    if reduction == "sum":
        return f.sum()
    return f


def monai_dice_loss(x, target, to_onehot_y=True, include_background=True, squared_pred=False,
                    jaccard=False, reduction="mean", smooth_nr=1e-5, smooth_dr=1e-5,
                    batch=False, weight=None):
    p, t = monai_prepare(x, target, to_onehot_y, include_background)
    axes = list(range(2, p.dim()))
    if batch:
        axes = [0] + axes
    tp, fp, fn = monai_tp_fp_fn(p, t, axes, 2 if squared_pred else 1, True)
    if not jaccard:
        fp, fn = fp * 0.5, fn * 0.5
    f = 1 - (2 * tp + smooth_nr) / (2 * (tp + fp + fn) + smooth_dr)
    if weight is not None and t.shape[1] != 1:
        assert weight.shape[0] == t.shape[1]  # MONAI: one weight per class kept
        f = f * weight
    return monai_reduce(f, reduction)


def monai_tversky_loss(x, target, to_onehot_y=True, include_background=True, alpha=0.5,
                       beta=0.5, reduction="mean", smooth_nr=1e-5, smooth_dr=1e-5, batch=False):
    p, t = monai_prepare(x, target, to_onehot_y, include_background)
    axes = list(range(2, p.dim()))
    if batch:
        axes = [0] + axes
    tp, fp, fn = monai_tp_fp_fn(p, t, axes, 1, False)
    f = 1.0 - (tp + smooth_nr) / (tp + alpha * fp + beta * fn + smooth_dr)
    return monai_reduce(f, reduction)


def monai_generalized_dice_loss(x, target, to_onehot_y=True, include_background=True,
                                w_type="square", reduction="mean", smooth_nr=1e-5,
                                smooth_dr=1e-5, batch=False):
    p, t = monai_prepare(x, target, to_onehot_y, include_background)
    axes = list(range(2, p.dim()))
    if batch:
        axes = [0] + axes
    tp, fp, fn = monai_tp_fp_fn(p, t, axes, 1, True)
    fp, fn = fp * 0.5, fn * 0.5
    denominator = 2 * (tp + fp + fn)
    ground_o = torch.sum(t, axes)
    if w_type == "simple":
        w = torch.reciprocal(ground_o)
    elif w_type == "square":
        w = torch.reciprocal(ground_o * ground_o)
    else:
        w = torch.ones_like(ground_o)
    infs = torch.isinf(w)
    if batch:
        w[infs] = 0.0
        w = w + infs * torch.max(w)
    else:
        w[infs] = 0.0
        max_values = torch.max(w, dim=1)[0].unsqueeze(dim=1)
        w = w + infs * max_values
    final = 0 if batch else 1
    numer = 2.0 * (tp * w).sum(final, keepdim=True) + smooth_nr
    denom = (denominator * w).sum(final, keepdim=True) + smooth_dr
    f = 1.0 - numer / denom
    return monai_reduce(f, reduction)


def as_segloss_scores(f, C, include_background, per_image, N):
    """MONAI's reduction none ((N, C', 1, ...) or (C', 1, ...) for Dice, (N, C') or (C') for
    Tversky) as segloss's (N, C) or (C), with 0 for the background when it is left out."""
    f = f.reshape((N, -1) if per_image else (-1,))
    if include_background:
        return f
    zero = torch.zeros(f.shape[:-1] + (1,))
    return torch.cat([zero, f], dim=-1)


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------

q = ov.q  # multiples of 2^-10


def make_logits(shape, scale=3.0, huge=None):
    return ov.make_logits(shape, scale, huge)


def make_labels(shape, ignore_index=-100, ignore_frac=0.0):
    """Labels uniform in [0, C), shape (N, spatial...); a fraction set to ignore_index (at least
    one pixel when the fraction is positive, every pixel when it is >= 1)."""
    C = shape[1]
    y = torch.randint(0, C, (shape[0],) + tuple(shape[2:]), dtype=torch.int64)
    flat = y.view(-1)
    if ignore_frac >= 1.0:
        flat[:] = ignore_index
    elif ignore_frac > 0.0:
        m = torch.rand(flat.numel()) < ignore_frac
        m[int(torch.randint(0, flat.numel(), (1,)))] = True
        flat[m] = ignore_index
    return y


def make_probs(shape):
    """softmax(randn * 2) over the classes in multiples of 2^-10, each row summing to 1."""
    Q = 1024.0
    p = torch.softmax(torch.randn(shape) * 2.0, dim=1) * Q
    k = torch.floor(p)
    left = (Q - k.sum(dim=1, keepdim=True)).to(torch.int64)
    order = torch.argsort(torch.argsort(p - k, dim=1, descending=True), dim=1)
    k = k + (order < left).to(k.dtype)
    out = k / Q
    assert (out.sum(dim=1) == 1.0).all()
    return out


def random_class_weight(C):
    return q(torch.rand(C) * 1.5 + 0.25)


def remove_class(kind, target, n, c, C, ignore_index):
    """Class c absent from image n's target: its labels move to class (c + 1) % C (ignored
    pixels stay ignored); a probability target moves class c's mass there."""
    d = (c + 1) % C
    if kind == "labels":
        img = target[n]
        img[img == c] = d
    else:
        target[n, d] += target[n, c]
        target[n, c] = 0.0


# --------------------------------------------------------------------------------------------
# One case
# --------------------------------------------------------------------------------------------

def write_options(case, loss, o, kind, kept=None, skipped=None):
    """Every option that changes the math, written explicitly (no defaults in the file)."""
    case.option("target", kind)
    case.option("reduction", o["reduction"])
    case.option("smooth_nr", fmt(o["smooth_nr"]))
    case.option("smooth_dr", fmt(o["smooth_dr"]))
    case.option("per_image", "1" if o["per_image"] else "0")
    case.option("include_background", "1" if o["include_background"] else "0")
    case.option("ignore_index", str(o["ignore_index"]))
    if loss == "generalized_dice":
        case.option("w_type", o["w_type"])
        return
    case.option("squared", "1" if o["squared"] else "0")
    case.option("empty", o["empty"])
    case.option("gamma", fmt(o["gamma"]))
    case.option("log", "1" if o["log"] else "0")
    case.option("clamp", "1" if o["clamp"] else "0")
    if loss == "softmax_tversky":
        case.option("alpha", fmt(o["alpha"]))
        case.option("beta", fmt(o["beta"]))
    case.option("kept", str(kept))
    case.option("skipped", str(skipped))
    if o["class_weight"] is not None:
        case.tensor("class_weight", o["class_weight"])


def sm_case(name, loss, shape, kind="labels", scale=3.0, huge=None, ignore_frac=0.0,
            absent=(), class_weight=False, grad_out=1.0, reference="header", library=None,
            labels=None, **opts):
    """One case. kind: labels or probs. absent: (n, c) pairs, class c absent from image n's
    target. class_weight: True for random class weights, or a tensor. labels: a function
    (shape) -> label map instead of random labels. library: fn(x, target) giving the MONAI
    form of the loss in segloss's layout (reduction none: (N, C) / (C), or (N) / (1) for
    generalized_dice)."""
    seed_for(name)
    o = default_options(loss)
    for k, v in opts.items():
        assert k in o, (name, k)
        o[k] = v
    C = shape[1]
    x = make_logits(shape, scale, huge)
    if kind == "labels":
        target = labels(shape) if labels else make_labels(shape, o["ignore_index"], ignore_frac)
    else:
        assert o["ignore_index"] == -100 and not ignore_frac
        target = make_probs(shape)
    for n, c in absent:
        remove_class(kind, target, n, c, C, o["ignore_index"])
    if class_weight is True:
        o["class_weight"] = random_class_weight(C)
    elif class_weight is not False:
        o["class_weight"] = class_weight
    r = o["reduction"]
    gdl = loss == "generalized_dice"
    if r == "none":
        if gdl:
            go_shape = (shape[0],) if o["per_image"] else (1,)
        else:
            go_shape = (shape[0], C) if o["per_image"] else (C,)
        g = ov.none_grad_out(go_shape)
    else:
        g = torch.tensor(grad_out)
    kept = skipped = None
    if gdl:
        ref, grad = ov.grad_of(lambda v: gdl_reference(v, target, kind, o), x, r, g)
    else:
        (ref, kept, skipped), grad = ov.grad_of(
            lambda v: overlap_reference(loss, v, target, kind, o), x, r, g)
    value = ref
    if library is not None:
        lib, lib_grad = ov.grad_of(lambda v: library(v, target).reshape(ref.shape), x, r, g)
        ov.close(lib, ref, "value", name)
        ov.close(lib_grad, grad, "gradient", name)
        value, grad = lib, lib_grad
    for v in (value, grad):
        if not torch.isfinite(v).all():
            raise SystemExit(name + ": a non-finite reference")
    case = Case(name, loss)
    ov.shape_line(case, shape)
    if reference != "header":
        case.option("reference", reference)
    write_options(case, loss, o, kind, kept, skipped)
    case.tensor("logits", x)
    case.tensor("target", target)
    ov.finish(case, r, value.detach(), grad, g)
    return case


# --------------------------------------------------------------------------------------------
# Shapes
# --------------------------------------------------------------------------------------------

S2 = (2, 4, 3, 2)       # the main 2-D shape (generalized Dice: class sizes that differ)
SM = (2, 4, 2, 2)       # MONAI DiceLoss and TverskyLoss
S2S = (2, 3, 2, 2)      # smaller: the option grid of the header cases
S1 = (2, 3, 7)          # one spatial axis
S3 = (2, 3, 2, 3, 2)    # a volume
SC1 = (2, 1, 4, 3)      # one class
SC2 = (2, 2, 4, 3)
SC5 = (2, 5, 3, 2)
SC5V = (1, 5, 2, 3, 3)  # five classes in a volume
SC21 = (2, 21, 2, 2)    # PASCAL VOC's 21 classes, small spatially
SC150 = (1, 150, 2, 2)  # ADE20K's 150 classes, small spatially
TV = dict(alpha=0.3, beta=0.7)


# --------------------------------------------------------------------------------------------
# MONAI cases
# --------------------------------------------------------------------------------------------


def monai_target(kind, t):
    """MONAI's target: a label map as (N, 1, spatial...) with to_onehot_y, probabilities as they
    are."""
    return t.unsqueeze(1) if kind == "labels" else t


def monai_dice(name, shape, kind="labels", include_background=True, batch=False,
               squared=False, jaccard=False, reduction="mean", smooth_nr=1e-5, smooth_dr=1e-5,
               weight=False, **kw):
    """MONAI DiceLoss(softmax=True, to_onehot_y=(labels), include_background, batch,
    squared_pred, jaccard, weight, smooth_nr, smooth_dr). segloss: softmax_dice with the same
    options (batch = per_image false, squared_pred = squared, weight = class_weight with an
    unused channel-0 entry without the background), or softmax_jaccard with both smooth terms
    halved for jaccard=True."""
    N, C = shape[0], shape[1]
    seed_for(name + "_class_weight")
    cw = random_class_weight(C) if weight else None
    half = 0.5 if jaccard else 1.0

    def library(x, t):
        mw = None if cw is None else (cw if include_background else cw[1:])
        out = monai_dice_loss(x, monai_target(kind, t), to_onehot_y=kind == "labels",
                              include_background=include_background, squared_pred=squared,
                              jaccard=jaccard, reduction=reduction, smooth_nr=smooth_nr,
                              smooth_dr=smooth_dr, batch=batch, weight=mw)
        if reduction == "none":
            out = as_segloss_scores(out, C, include_background, not batch, N)
        return out

    return sm_case(name, "softmax_jaccard" if jaccard else "softmax_dice", shape, kind=kind,
                   reference="monai_DiceLoss", library=library,
                   class_weight=cw if weight else False, include_background=include_background,
                   per_image=not batch, squared=squared, reduction=reduction,
                   smooth_nr=smooth_nr * half, smooth_dr=smooth_dr * half, **kw)


def monai_tversky(name, shape, kind="labels", include_background=True, batch=False,
                  reduction="mean", alpha=0.5, beta=0.5, smooth_nr=1e-5, smooth_dr=1e-5, **kw):
    """MONAI TverskyLoss(softmax=True, to_onehot_y=(labels), alpha, beta, ...): softmax_tversky
    with the same alpha (false positives) and beta (false negatives)."""
    N, C = shape[0], shape[1]

    def library(x, t):
        out = monai_tversky_loss(x, monai_target(kind, t), to_onehot_y=kind == "labels",
                                 include_background=include_background, alpha=alpha, beta=beta,
                                 reduction=reduction, smooth_nr=smooth_nr, smooth_dr=smooth_dr,
                                 batch=batch)
        if reduction == "none":
            out = as_segloss_scores(out, C, include_background, not batch, N)
        return out

    return sm_case(name, "softmax_tversky", shape, kind=kind, reference="monai_TverskyLoss",
                   library=library, include_background=include_background, per_image=not batch,
                   reduction=reduction, alpha=alpha, beta=beta, smooth_nr=smooth_nr,
                   smooth_dr=smooth_dr, **kw)


def monai_gdl(name, shape, kind="labels", include_background=True, batch=False,
              reduction="mean", w_type="square", smooth_nr=1e-5, smooth_dr=1e-5, **kw):
    """MONAI GeneralizedDiceLoss(softmax=True, to_onehot_y=(labels), w_type, batch, ...):
    generalized_dice with the same options (batch = per_image false)."""

    def library(x, t):
        return monai_generalized_dice_loss(x, monai_target(kind, t), to_onehot_y=kind == "labels",
                                           include_background=include_background, w_type=w_type,
                                           reduction=reduction, smooth_nr=smooth_nr,
                                           smooth_dr=smooth_dr, batch=batch)

    return sm_case(name, "generalized_dice", shape, kind=kind,
                   reference="monai_GeneralizedDiceLoss", library=library,
                   include_background=include_background, per_image=not batch,
                   reduction=reduction, w_type=w_type, smooth_nr=smooth_nr, smooth_dr=smooth_dr,
                   **kw)


def monai_cases():
    cs = []
    # DiceLoss on label maps
    cs.append(monai_dice("monai_dice_labels_mean", SM))
    cs.append(monai_dice("monai_dice_labels_no_background", SM, include_background=False))
    cs.append(monai_dice("monai_dice_labels_batch", SM, batch=True))
    cs.append(monai_dice("monai_dice_labels_squared", SM, squared=True))
    cs.append(monai_dice("monai_dice_labels_weight", SM, weight=True))
    cs.append(monai_dice("monai_dice_labels_weight_no_background_batch", SM, weight=True,
                         include_background=False, batch=True))
    cs.append(monai_dice("monai_dice_labels_sum", SM, reduction="sum", grad_out=-1.75))
    cs.append(monai_dice("monai_dice_labels_none", SM, reduction="none"))
    cs.append(monai_dice("monai_dice_labels_none_no_background_batch", SM, reduction="none",
                         include_background=False, batch=True))
    cs.append(monai_dice("monai_dice_labels_smooth_0_1e-3", SM, smooth_nr=0.0,
                         smooth_dr=1e-3))
    cs.append(monai_dice("monai_dice_labels_smooth_1_1", SM, smooth_nr=1.0, smooth_dr=1.0,
                         grad_out=0.37))
    cs.append(monai_dice("monai_dice_labels_absent_class", SM, absent=((0, 1), (1, 3))))
    cs.append(monai_dice("monai_dice_labels_1d", S1))
    cs.append(monai_dice("monai_dice_labels_3d_batch", S3, batch=True))
    cs.append(monai_dice("monai_dice_labels_c2", SC2))
    cs.append(monai_dice("monai_dice_labels_c5_squared_none", SC5, squared=True,
                         reduction="none"))
    cs.append(monai_dice("monai_dice_labels_c21", SC21))
    cs.append(monai_dice("monai_dice_labels_logits30", SM, scale=30.0))
    # DiceLoss on probability targets
    cs.append(monai_dice("monai_dice_probs_mean", SM, kind="probs"))
    cs.append(monai_dice("monai_dice_probs_squared_batch", SM, kind="probs", squared=True,
                         batch=True))
    cs.append(monai_dice("monai_dice_probs_weight_none", SM, kind="probs", weight=True,
                         reduction="none"))
    cs.append(monai_dice("monai_dice_probs_3d_no_background_sum", S3, kind="probs",
                         include_background=False, reduction="sum"))
    # DiceLoss(jaccard=True): softmax_jaccard with halved smooth terms
    cs.append(monai_dice("monai_jaccard_labels_mean", SM, jaccard=True))
    cs.append(monai_dice("monai_jaccard_labels_squared_batch", SM, jaccard=True, squared=True,
                         batch=True))
    cs.append(monai_dice("monai_jaccard_labels_weight_none", SM, jaccard=True, weight=True,
                         reduction="none"))
    cs.append(monai_dice("monai_jaccard_labels_smooth_1_1_no_background", SC5, jaccard=True,
                         smooth_nr=1.0, smooth_dr=1.0, include_background=False))
    cs.append(monai_dice("monai_jaccard_probs_sum", SM, kind="probs", jaccard=True,
                         reduction="sum"))
    cs.append(monai_dice("monai_jaccard_probs_squared_1d", S1, kind="probs", jaccard=True,
                         squared=True))
    # TverskyLoss
    cs.append(monai_tversky("monai_tversky_labels_03_07", SM, **TV))
    cs.append(monai_tversky("monai_tversky_labels_07_03_batch", SM, alpha=0.7, beta=0.3,
                            batch=True))
    cs.append(monai_tversky("monai_tversky_labels_no_background_none", SM, reduction="none",
                            include_background=False, **TV))
    cs.append(monai_tversky("monai_tversky_labels_1_1_smooth_1", SM, alpha=1.0, beta=1.0,
                            smooth_nr=1.0, smooth_dr=1.0))
    cs.append(monai_tversky("monai_tversky_labels_3d_c5", SC5V, alpha=0.2, beta=0.8))
    cs.append(monai_tversky("monai_tversky_labels_logits30_batch_none", SM, scale=30.0,
                            batch=True, reduction="none", **TV))
    cs.append(monai_tversky("monai_tversky_probs_sum", SM, kind="probs", reduction="sum",
                            grad_out=-1.75, **TV))
    cs.append(monai_tversky("monai_tversky_probs_defaults", S1, kind="probs"))
    # GeneralizedDiceLoss: each weight type, per image and per batch, with absent classes
    for w in ("square", "simple", "uniform"):
        cs.append(monai_gdl("monai_gdl_%s_img_absent" % w, S2, w_type=w,
                            absent=((0, 2), (1, 0), (1, 3))))
        cs.append(monai_gdl("monai_gdl_%s_batch_absent" % w, S2, w_type=w, batch=True,
                            absent=((0, 2), (1, 2))))
    cs.append(monai_gdl("monai_gdl_square_img_none", S2, reduction="none", absent=((1, 1),)))
    cs.append(monai_gdl("monai_gdl_simple_batch_none", S2, w_type="simple", batch=True,
                        reduction="none"))
    cs.append(monai_gdl("monai_gdl_square_sum", S2, reduction="sum", grad_out=0.37))
    cs.append(monai_gdl("monai_gdl_square_no_background_absent", S2, include_background=False,
                        absent=((0, 1), (0, 3))))
    # an image whose labels are all background: with the background left out every class is
    # absent, every weight 0, and the score smooth_nr / smooth_dr
    cs.append(monai_gdl("monai_gdl_square_no_background_all_absent", S2,
                        include_background=False,
                        labels=lambda s: torch.cat([torch.zeros((1,) + s[2:], dtype=torch.int64),
                                                    torch.randint(0, s[1], (1,) + s[2:])])))
    cs.append(monai_gdl("monai_gdl_square_probs", S2, kind="probs"))
    cs.append(monai_gdl("monai_gdl_uniform_probs_batch_none", S2, kind="probs",
                        w_type="uniform", batch=True, reduction="none"))
    cs.append(monai_gdl("monai_gdl_square_c2", SC2))
    cs.append(monai_gdl("monai_gdl_simple_3d_c5", SC5V, w_type="simple"))
    cs.append(monai_gdl("monai_gdl_square_c21", SC21))  # most classes absent per image
    cs.append(monai_gdl("monai_gdl_square_1d", S1))
    cs.append(monai_gdl("monai_gdl_square_logits30", S2, scale=30.0))
    cs.append(monai_gdl("monai_gdl_square_smooth_0_1e-3", S2, smooth_nr=0.0, smooth_dr=1e-3))
    return cs


# --------------------------------------------------------------------------------------------
# Header cases: what the libraries lack
# --------------------------------------------------------------------------------------------

def short(loss):
    return {"softmax_dice": "dice", "softmax_jaccard": "jaccard", "softmax_tversky": "tversky",
            "generalized_dice": "gdl"}[loss]


def lopts(loss, **kw):
    """softmax_tversky cases get alpha 0.3, beta 0.7 unless given."""
    if loss == "softmax_tversky":
        for k, v in TV.items():
            kw.setdefault(k, v)
    return kw


def all_zero_image(s):
    """Image 0 labelled background everywhere, image 1 random: with the background left out,
    image 0 has no target pixel in any class."""
    return torch.cat([torch.zeros((1,) + tuple(s[2:]), dtype=torch.int64),
                      torch.randint(0, s[1], (s[0] - 1,) + tuple(s[2:]))])


def ignored_image(ignore_index):
    """Image 0 entirely ignore_index, the others random labels."""
    def f(s):
        y = torch.randint(0, s[1], (s[0],) + tuple(s[2:]))
        y[0] = ignore_index
        return y
    return f


def overlap_header_cases():
    cs = []
    for loss in OVERLAP_LOSSES:
        s = short(loss)

        def add(name, shape, every_loss=True, **kw):
            """every_loss False: a softmax_dice case only (the option is shared code; the file
            stays small)."""
            if every_loss or loss == "softmax_dice":
                cs.append(sm_case("%s_%s" % (s, name), loss, shape, **lopts(loss, **kw)))

        # reductions, per image and per batch (none with a random grad_out)
        for per_image in (True, False):
            for r in ("mean", "sum", "none"):
                add("%s_%s" % ("img" if per_image else "batch", r), S2S, reduction=r,
                    per_image=per_image)
        # ignore_index: -100 (the default), 255, 0 (a real class: class 0 never in the target)
        add("ignore_default_mean", S2S, ignore_frac=0.3)
        add("ignore_255_batch_none", S2S, ignore_index=255, ignore_frac=0.3,
            per_image=False, reduction="none")
        add("ignore_0_sum", S2S, ignore_index=0, ignore_frac=0.0, reduction="sum")
        add("ignore_image_formula_none", S2S, every_loss=False, labels=ignored_image(-100),
            reduction="none")
        add("ignore_image_skip_mean", S2S, labels=ignored_image(-100), empty="skip")
        add("ignore_all_skip_mean", S2S, ignore_frac=1.0, empty="skip")  # loss 0, no gradient
        add("ignore_all_batch_formula_sum", S2S, every_loss=False, ignore_frac=1.0,
            per_image=False, reduction="sum")
        add("ignore_255_absent_one", S2S, every_loss=False, ignore_index=255, ignore_frac=0.4,
            absent=((0, 1),), empty="one")
        # the empty policies with absent classes
        policies = ("one", "zero", "skip")
        reductions = ("mean", "sum", "none")
        for i, e in enumerate(policies):
            rs = reductions if loss == "softmax_dice" else (reductions[i],)
            for r in rs:
                add("empty_%s_%s" % (e, r), S2S, absent=((0, 1), (1, 2)), empty=e,
                    reduction=r)
        add("empty_skip_batch_none", S2S, every_loss=False, absent=((0, 2), (1, 2)), empty="skip",
            per_image=False, reduction="none")
        add("empty_zero_probs_no_background", S2S, every_loss=False, kind="probs",
            absent=((0, 1),), empty="zero", include_background=False)
        add("empty_formula_absent_mean", S2S, every_loss=False, absent=((0, 0), (1, 2)))
        # focal, log and clamp forms
        add("gamma2_mean", S2S, gamma=2.0)
        add("gamma05_none", S2S, gamma=0.5, reduction="none")
        add("gamma15_sum_weight_empty_one", S2S, gamma=1.5, reduction="sum",
            class_weight=True, absent=((1, 0),), empty="one")
        add("gamma2_probs_batch_mean", S2S, every_loss=False, kind="probs", gamma=2.0,
            per_image=False)
        for r in reductions:  # the forms are shared code: every reduction for Dice only
            if loss == "softmax_dice" or r == {"softmax_jaccard": "mean",
                                                "softmax_tversky": "sum"}[loss]:
                add("log_%s" % r, S2S, log=True, reduction=r)
            if loss == "softmax_dice" or r == {"softmax_jaccard": "none",
                                                "softmax_tversky": "mean"}[loss]:
                add("clamp_%s" % r, S2S, clamp=True, reduction=r)
        add("log_weight_skip_batch_mean", S2S, every_loss=False, log=True, class_weight=True,
            empty="skip", per_image=False, absent=((0, 1), (1, 1)))
        add("clamp_ignore_weight_mean", S2S, every_loss=False, clamp=True, class_weight=True,
            ignore_frac=0.3)
        # class weights, include_background
        add("weight_no_background_batch_mean", SC5, class_weight=True,
            include_background=False, per_image=False)
        add("weight_none", S2S, every_loss=False, class_weight=True, reduction="none")
        add("no_background_ignore_sum", S2S, every_loss=False, include_background=False,
            ignore_frac=0.2, reduction="sum")
        # probability targets, smooth terms, grad_out
        add("probs_mean", S2S, kind="probs")
        add("probs_none_batch", S2S, every_loss=False, kind="probs", reduction="none",
            per_image=False)
        add("smooth_0_1e-3_ignore", S2S, every_loss=False, smooth_nr=0.0, smooth_dr=1e-3,
            ignore_frac=0.2)
        add("smooth_2_1_grad_out", S2S, every_loss=False, smooth_nr=2.0, smooth_dr=1.0,
            grad_out=-1.75)
        # spatial axes and class counts
        add("1d_ignore_mean", S1, ignore_frac=0.2)
        add("3d_none", S3, reduction="none")
        add("3d_c5_batch_sum", SC5V, every_loss=False, per_image=False, reduction="sum",
            ignore_frac=0.1)
        add("c1_mean", SC1, ignore_frac=0.2)
        add("c1_probs_none", SC1, every_loss=False, kind="probs", reduction="none")
        add("c2_mean", SC2)
        add("c5_none", SC5, reduction="none", ignore_frac=0.2)
        add("c21_mean", SC21)
        add("c21_batch_skip_none", SC21, every_loss=False, per_image=False, empty="skip",
            reduction="none")
        # large logits
        add("logits30_mean", S2S, scale=30.0)
        add("logits30_probs_none", S2S, every_loss=False, kind="probs", scale=30.0,
            reduction="none")
        add("logits1e4_mean", S2S, huge=1e4, ignore_frac=0.2)
        add("logits1e4_batch_sum", S2S, every_loss=False, huge=1e4, per_image=False,
            reduction="sum")
        # squared sums (Dice and Jaccard; Tversky rejects them)
        if loss != "softmax_tversky":
            add("squared_mean", S2S, squared=True)
            add("squared_probs_batch_none", S2S, kind="probs", squared=True,
                per_image=False, reduction="none")
            add("squared_ignore_log_weight_3d", S3, every_loss=False, squared=True,
                ignore_frac=0.2, log=True, class_weight=True)
    # Tversky's alpha and beta
    for a, b in ((0.0, 1.0), (1.0, 0.0), (0.5, 0.5), (1.0, 1.0), (2.0, 0.25)):
        cs.append(sm_case("tversky_alpha%g_beta%g" % (a, b), "softmax_tversky", S2S,
                          alpha=a, beta=b, ignore_frac=0.2))
    # ADE20K's 150 classes
    cs.append(sm_case("dice_c150_mean", "softmax_dice", SC150, ignore_frac=0.25))
    return cs


def gdl_header_cases():
    cs = []

    def add(name, shape, **kw):
        cs.append(sm_case("gdl_" + name, "generalized_dice", shape, **kw))

    for w in ("square", "simple", "uniform"):
        add("%s_ignore_default_mean" % w, S2S, w_type=w, ignore_frac=0.3)
    add("square_ignore_255_batch_none", S2S, ignore_index=255, ignore_frac=0.3,
        per_image=False, reduction="none")
    add("square_ignore_0", S2S, ignore_index=0, ignore_frac=0.0)  # class 0 absent everywhere
    add("square_ignore_0_no_background_sum", S2S, ignore_index=0, include_background=False,
        reduction="sum")
    add("square_ignore_image_none", S2S, labels=ignored_image(-100), reduction="none")
    add("simple_ignore_all_mean", S2S, w_type="simple", ignore_frac=1.0)
    add("square_no_background_all_absent_none", S2S, include_background=False,
        labels=all_zero_image, reduction="none")
    add("square_img_none", S2S, reduction="none", absent=((0, 1),))
    add("square_probs_sum", S2S, kind="probs", reduction="sum", grad_out=-1.75)
    add("simple_probs_absent_none", S2S, kind="probs", w_type="simple", absent=((1, 2),),
        reduction="none")
    add("square_1d_ignore", S1, ignore_frac=0.2)
    add("square_3d_batch", S3, per_image=False, ignore_frac=0.1)
    add("square_c1", SC1, ignore_frac=0.2)
    add("uniform_c1_probs_none", SC1, kind="probs", w_type="uniform", reduction="none")
    add("square_c5_no_background_ignore", SC5, include_background=False, ignore_frac=0.2)
    add("square_c21_ignore_none", SC21, ignore_frac=0.2, reduction="none")
    add("square_c150", SC150, ignore_frac=0.25)
    add("square_logits1e4", S2S, huge=1e4, ignore_frac=0.2)
    add("uniform_logits1e4_batch_none", S2S, huge=1e4, w_type="uniform", per_image=False,
        reduction="none")
    add("square_logits30_probs", S2S, kind="probs", scale=30.0)
    add("square_smooth_1_1", S2S, smooth_nr=1.0, smooth_dr=1.0, absent=((0, 2),))
    return cs


def main():
    groups = [("monai", monai_cases()), ("header overlap", overlap_header_cases()),
              ("header generalized_dice", gdl_header_cases())]
    cases = [c for _, g in groups for c in g]
    print(", ".join("%s %d" % (n, len(g)) for n, g in groups))
    names = [c.name for c in cases]
    assert len(set(names)) == len(names), "duplicate case names"
    path = os.path.join(HERE, OUTPUT)
    with open(path, "w") as f:
        f.write("# segloss golden data for softmax_dice, softmax_jaccard, softmax_tversky and "
                "generalized_dice: generated by tests/golden/generate_softmax_overlap.py\n")
        f.write("# torch %s, float64, base seed %d. Do not edit; regenerate.\n"
                % (torch.__version__, BASE_SEED))
        f.write("torch %s\n" % torch.__version__)
        for c in cases:
            f.write(c.text())
        f.write("count %d\n" % len(cases))
    print("%s: %d cases, %d bytes" % (path, len(cases), os.path.getsize(path)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
