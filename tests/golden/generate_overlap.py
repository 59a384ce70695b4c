#!/usr/bin/python3
"""Golden reference values for segloss's overlap losses (soft_dice, soft_jaccard, tversky) and
bce_dice, computed with PyTorch in float64.

Run from anywhere with a Python that has torch (Debian: /usr/bin/python3 with python3-torch):

    /usr/bin/python3 tests/golden/generate_overlap.py

It rewrites tests/golden/overlap.txt next to this script, in the format of the other golden files
(README.md in this folder, section "overlap"). tests/test_golden_overlap.cpp reads it.

Every number is float64 and printed with '%.17g'. The gradient is d(loss)/d(logits) from
torch.autograd: loss.backward(grad_out) with a scalar grad_out for mean / sum, and
(loss * grad_out).sum().backward() with a random grad_out shaped like the loss for none.

Inputs: logits are randn * scale, probabilities and soft targets rand, pixel weights
rand * 1.5 + 0.25, all rounded to multiples of 2^-10 (exact in float as in double, and short in
the file); the random grad_out of reduction none is rounded likewise.

What the references are (each case names its own in `option reference`):
  * header: header_reference() below, the formulas of losses/overlap.hpp written out with torch
    ops (the weight applied as Carvana or albu apply it, the score of each form written as its
    paper writes it, the empty policy, focal / log / clamp forms, the reductions), autograd for
    the gradient. No library has most of these options together, so this is their definition.
  * monai_DiceLoss, monai_TverskyLoss: monai_dice_loss() and monai_tversky_loss() below, MONAI's
    DiceLoss / TverskyLoss semantics (monai/losses/dice.py, tversky.py and utils.py's
    compute_tp_fp_fn at Project-MONAI/MONAI d388d1c, June 2025) re-implemented with torch ops:
    tp, fp, fn over the spatial axes (and the batch when batch=True), fp and fn halved for Dice,
    score (2 tp + smooth_nr) / (2 (tp + fp + fn) + smooth_dr); with squared_pred the sums come
    from squared L2 norms; include_background=False drops channel 0; weight multiplies the
    per-score loss (ignored when one channel is left, as MONAI does); Tversky takes
    fp = sum p (1 - t), fn = sum (1 - p) t. MONAI is not installed; the code is ours.
  * smp_TverskyLoss, smp_DiceLoss, smp_JaccardLoss: smp_overlap_loss() below, the semantics of
    segmentation_models_pytorch's losses (losses/dice.py, tversky.py, _functional.py
    soft_tversky_score at qubvel-org/segmentation_models.pytorch 5006616): p = exp(logsigmoid(x)),
    sums over the batch and the pixels per channel, tp = (sum p + sum t - |p - t|_1) / 2,
    score (tp + smooth) / max(tp + alpha fp + beta fn + smooth, eps), loss 1 - score or
    -log(max(score, eps)), zeroed for a channel without target pixels (but still in the mean),
    class_weights as (sum w l) / sum w, and the mean raised to gamma. smp is not installed.
  * carvana_*, albu_*, unet_*: the seed code of /work/shared/seeds/segmentation-losses-note.md,
    copied below verbatim except where torch 1.13 needs another spelling (F.sigmoid ->
    torch.sigmoid, Variable(...) removed, .cuda() removed, torch.tensor.torch.ones -> torch.ones)
    and evaluated with its own code.
Every non-header case is also computed with header_reference() under the segloss options the
case stores, and the generator stops unless the two agree to 1e-12 (value and gradient). So the
file proves, case by case, that those options reproduce the library or seed.

The weighted Carvana CombinedLoss cases use bce_with_logits' mean_over = weight_sum.
"""

import os
import sys
import warnings

import torch
import torch.linalg as LA
import torch.nn as nn
import torch.nn.functional as F

sys.dont_write_bytecode = True  # no __pycache__ next to the data
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from generate import BASE_SEED, Case, fmt, seed_for  # noqa: E402  (the shared writer and seeds)

HERE = os.path.dirname(os.path.abspath(__file__))
OUTPUT = "overlap.txt"

torch.set_default_dtype(torch.float64)
warnings.filterwarnings("ignore", category=UserWarning)  # size_average's deprecation notice


# --------------------------------------------------------------------------------------------
# Seed code, verbatim from the seeds note except for the spellings named in the docstring.
# Carvana ("3 loss与bce叠加", loss.py):
# --------------------------------------------------------------------------------------------

class BCELoss2d(nn.Module):
    """
    Binary Cross Entropy loss function
    """
    def __init__(self):
        super(BCELoss2d, self).__init__()
        self.bce_loss = nn.BCEWithLogitsLoss()

    def forward(self, logits, labels):
        logits_flat = logits.view(-1)
        labels_flat = labels.view(-1)
        return self.bce_loss(logits_flat, labels_flat)


class WeightedBCELoss2d(nn.Module):
    def __init__(self):
        super(WeightedBCELoss2d, self).__init__()

    def forward(self, logits, labels, weights):
        w = weights.view(-1)
        logits = logits.view(-1)
        gt = labels.view(-1)
        # http://geek.csdn.net/news/detail/126833
        loss = logits.clamp(min=0) - logits * gt + torch.log(1 + torch.exp(-logits.abs()))
        loss = loss * w
        loss = loss.sum() / w.sum()
        return loss


class WeightedSoftDiceLoss(nn.Module):
    def __init__(self):
        super(WeightedSoftDiceLoss, self).__init__()

    def forward(self, logits, labels, weights):
        probs = torch.sigmoid(logits)
        num = labels.size(0)
        w = weights.view(num, -1)
        w2 = w * w
        m1 = probs.view(num, -1)
        m2 = labels.view(num, -1)
        intersection = (m1 * m2)
        score = 2. * ((w2 * intersection).sum(1) + 1) / (
            (w2 * m1).sum(1) + (w2 * m2).sum(1) + 1)
        score = 1 - score.sum() / num
        return score


class SoftDiceLoss(nn.Module):
    def __init__(self):
        super(SoftDiceLoss, self).__init__()

    def forward(self, logits, labels):
        probs = torch.sigmoid(logits)
        num = labels.size(0)
        m1 = probs.view(num, -1)
        m2 = labels.view(num, -1)
        intersection = (m1 * m2)
        score = 2. * (intersection.sum(1) + 1) / (m1.sum(1) + m2.sum(1) + 1)
        score = 1 - score.sum() / num
        return score


class CombinedLoss(nn.Module):
    def __init__(self, is_weight=True, is_log_dice=False):
        super(CombinedLoss, self).__init__()
        self.is_weight = is_weight
        self.is_log_dice = is_log_dice
        if self.is_weight:
            self.weighted_bce = WeightedBCELoss2d()
            self.soft_weighted_dice = WeightedSoftDiceLoss()
        else:
            self.bce = BCELoss2d()
            self.soft_dice = SoftDiceLoss()

    def forward(self, logits, labels):
        size = logits.size()
        assert size[1] == 1, size
        logits = logits.view(size[0], size[2], size[3])
        labels = labels.view(size[0], size[2], size[3])
        if self.is_weight:
            batch_size, H, W = labels.size()
            if H == 128:
                kernel_size = 11
            elif H == 256:
                kernel_size = 21
            elif H == 512:
                kernel_size = 21
            elif H == 1024:
                kernel_size = 41
            elif H == 1280:
                kernel_size = 51
            else:
                raise ValueError('Unknown height')

            a = F.avg_pool2d(labels, kernel_size=kernel_size, padding=kernel_size // 2,
                             stride=1)
            ind = a.ge(0.01) * a.le(0.99)
            ind = ind.float()
            weights = torch.ones(a.size())

            w0 = weights.sum()
            weights += ind * 2
            w1 = weights.sum()
            weights = weights / w1 * w0

            bce_loss = self.weighted_bce(logits, labels, weights)
            dice_loss = self.soft_weighted_dice(logits, labels, weights)
        else:
            bce_loss = self.bce(logits, labels)
            dice_loss = self.soft_dice(logits, labels)

        if self.is_log_dice:
            l = bce_loss - (1 - dice_loss).log()
        else:
            l = bce_loss + dice_loss
        return l, bce_loss, dice_loss


def carvana_boundary_weights(labels):
    """The weight map of CombinedLoss(is_weight=True), its lines verbatim, for labels (N, H, W):
    weight 3 (then renormalized to the same total) where the local mean of the labels over a
    kernel_size window is in [0.01, 0.99], 1 elsewhere."""
    batch_size, H, W = labels.size()
    if H == 128:
        kernel_size = 11
    elif H == 256:
        kernel_size = 21
    elif H == 512:
        kernel_size = 21
    elif H == 1024:
        kernel_size = 41
    elif H == 1280:
        kernel_size = 51
    else:
        raise ValueError('Unknown height')

    a = F.avg_pool2d(labels, kernel_size=kernel_size, padding=kernel_size // 2,
                     stride=1)
    ind = a.ge(0.01) * a.le(0.99)
    ind = ind.float()
    weights = torch.ones(a.size())

    w0 = weights.sum()
    weights += ind * 2
    w1 = weights.sum()
    weights = weights / w1 * w0
    return weights


# albu ("4 bce和dice loss综合"):

def dice_loss(preds, trues, weight=None, is_average=True):
    num = preds.size(0)
    preds = preds.view(num, -1)
    trues = trues.view(num, -1)
    if weight is not None:
        w = weight.view(num, -1)
        preds = preds * w
        trues = trues * w
    intersection = (preds * trues).sum(1)
    scores = 2. * (intersection + 1) / (preds.sum(1) + trues.sum(1) + 1)

    if is_average:
        score = scores.sum()/num
        return torch.clamp(score, 0., 1.)
    else:
        return scores


class DiceLoss(nn.Module):
    def __init__(self, size_average=True):
        super().__init__()
        self.size_average = size_average

    def forward(self, input, target, weight=None):
        return 1-dice_loss(torch.sigmoid(input), target, weight=weight, is_average=self.size_average)


class BCEDiceLoss(nn.Module):
    def __init__(self, size_average=True):
        super().__init__()
        self.size_average = size_average
        self.dice = DiceLoss(size_average=size_average)

    def forward(self, input, target, weight=None):
        return nn.modules.loss.BCEWithLogitsLoss(size_average=self.size_average, weight=weight)(input, target) + self.dice(input, target, weight=weight)


# Pytorch-UNet ("2 bce loss"): a legacy autograd Function. torch 1.13 cannot call it through
# autograd, but its forward runs as a plain method, which is all its evaluation uses (values
# only; its backward is not used: `/ self.union * self.union` multiplies back by the union).

class DiceCoeff(torch.autograd.Function):
    """Dice coeff for individual examples"""

    def forward(self, input, target):
        self.save_for_backward(input, target)
        self.inter = torch.dot(input, target) + 0.0001
        self.union = torch.sum(input) + torch.sum(target) + 0.0001

        t = 2 * self.inter.float() / self.union.float()
        return t

    # This function has only a single output, so it gets only one gradient
    def backward(self, grad_output):

        input, target = self.saved_variables
        grad_input = grad_target = None

        if self.needs_input_grad[0]:
            grad_input = grad_output * 2 * (target * self.union + self.inter) \
                         / self.union * self.union
        if self.needs_input_grad[1]:
            grad_target = None

        return grad_input, grad_target


def unet_dice_coeff(input, target):
    """dice_coeff of the note's eval_net: the batch mean of DiceCoeff over each example's
    flattened (C, H, W) (torch.dot takes 1-D tensors). Returns the verbatim float32 result and
    the same two lines in float64 (the seed's .float() casts to float32)."""
    n = input.size(0)
    verbatim = sum(DiceCoeff().forward(input[i].reshape(-1), target[i].reshape(-1))
                   for i in range(n)) / n
    s64 = 0.0
    for i in range(n):
        inter = torch.dot(input[i].reshape(-1), target[i].reshape(-1)) + 0.0001
        union = torch.sum(input[i]) + torch.sum(target[i]) + 0.0001
        s64 = s64 + 2 * inter / union
    return verbatim, s64 / n


# --------------------------------------------------------------------------------------------
# The header's definition: losses/overlap.hpp in torch ops.
# --------------------------------------------------------------------------------------------

def default_options():
    return dict(reduction="mean", smooth_nr=1e-5, smooth_dr=1e-5, per_image=True,
                activation="sigmoid", squared=False, weight=None, weighting="squared",
                class_weight=None, include_background=True, empty="formula", gamma=1.0,
                log=False, clamp=False, alpha=0.5, beta=0.5)


def score_stats(x, t, o):
    """I, P, T per score: shape (N, C) per image, (C) for the batch.

    p = exp(logsigmoid(x)): the same p as torch.sigmoid to the last bit or so, but autograd's
    derivative through logsigmoid is computed from exp(-|x|) and keeps its relative precision
    for a saturated logit; torch.sigmoid's backward (1 - y) y loses it once y rounds near 1
    (x = 34.3: dp/dx = 1.2e-15, with an error of several percent)."""
    p = F.logsigmoid(x).exp() if o["activation"] == "sigmoid" else x
    k = 2 if o["squared"] else 1
    spatial = tuple(range(2, x.dim()))
    dims = spatial if o["per_image"] else (0,) + spatial
    w = o["weight"]
    if w is None:
        inter, pred, targ = p * t, p ** k, t ** k
    elif o["weighting"] == "squared":  # Carvana WeightedSoftDiceLoss: w^2 in every sum
        w2 = (w * w).expand(x.shape)
        inter, pred, targ = w2 * p * t, w2 * p ** k, w2 * t ** k
    else:  # albu dice_loss: p and t multiplied by w before the sums
        pw, tw = p * w, t * w
        inter, pred, targ = pw * tw, pw ** k, tw ** k
    return inter.sum(dim=dims), pred.sum(dim=dims), targ.sum(dim=dims)


def header_reference(loss, x, t, o):
    """The loss of losses/overlap.hpp; returns (loss tensor, kept, skipped)."""
    I, P, T = score_stats(x, t, o)
    C = x.shape[1]
    channel = torch.arange(C).expand(I.shape)
    excluded = (channel == 0) & (not o["include_background"])
    empty = (T == 0) & ~excluded & (o["empty"] != "formula")
    skipped = empty & (o["empty"] == "skip")
    fixed = empty & (o["empty"] != "skip")
    kept = ~excluded & ~empty
    counted = kept | fixed
    snr, sdr = o["smooth_nr"], o["smooth_dr"]
    if loss == "soft_dice":
        num, den = 2 * I + snr, P + T + sdr
    elif loss == "soft_jaccard":
        num, den = I + snr, P + T - I + sdr
    else:  # Tversky: FP = P - I, FN = T - I
        num, den = I + snr, I + o["alpha"] * (P - I) + o["beta"] * (T - I) + sdr
    # Scores left out or fixed never reach the loss; a safe denominator keeps their 0/0 (with
    # zero smooth terms) out of the backward pass.
    den = torch.where(kept, den, torch.ones_like(den))
    S = num / den
    fixed_value = 1.0 if o["empty"] == "one" else 0.0
    S = torch.where(fixed, torch.full_like(S, fixed_value), S)
    S = torch.where(counted, S, torch.ones_like(S))  # the left-out scores: any finite value
    cw = torch.ones(C) if o["class_weight"] is None else o["class_weight"]
    cw = cw.expand(S.shape)
    n = int(counted.sum())
    zero = (x * 0).sum()  # a zero that carries a (zero) gradient
    if o["log"]:
        per_score = -torch.log(S)
    elif o["clamp"]:
        per_score = 1 - torch.clamp(S, 0.0, 1.0)
    elif o["gamma"] == 1.0:
        per_score = 1 - S
    else:
        per_score = torch.clamp(1 - S, min=0.0) ** o["gamma"]
    zeros = torch.zeros_like(S)
    r = o["reduction"]
    if r == "none":
        out = torch.where(counted, cw * per_score, zeros) + zero
    elif n == 0:
        out = zero
    elif r == "mean" and (o["log"] or o["clamp"]):
        M = torch.where(counted, cw * S, zeros).sum() / n
        out = -torch.log(M) if o["log"] else 1 - torch.clamp(M, 0.0, 1.0)
    else:
        total = torch.where(counted, cw * per_score, zeros).sum()
        out = total / n if r == "mean" else total
    return out, n, int(skipped.sum())


def bce_reference(x, t, bo):
    """bce_with_logits as torch defines it; pos_weight given per channel as (C)."""
    pw = bo.get("pos_weight")
    if pw is not None:
        pw = pw.reshape((-1,) + (1,) * (x.dim() - 2))
    w = bo.get("weight")
    if bo.get("mean_over") == "weight_sum":
        total = F.binary_cross_entropy_with_logits(x, t, weight=w, pos_weight=pw,
                                                   reduction="sum")
        return total / (w.expand(x.shape).sum() if w is not None else x.numel())
    return F.binary_cross_entropy_with_logits(x, t, weight=w, pos_weight=pw,
                                              reduction=bo["reduction"])


def bce_dice_reference(x, t, bo, o, bce_weight, dice_weight):
    bce = bce_reference(x, t, bo)
    dice, n, skipped = header_reference("soft_dice", x, t, o)
    return bce_weight * bce + dice_weight * dice, bce, dice, n, skipped


# --------------------------------------------------------------------------------------------
# MONAI and smp semantics, re-implemented (see the module docstring).
# --------------------------------------------------------------------------------------------

def monai_tp_fp_fn(p, t, axes, order, decoupled):
    if order == 1:
        tp = torch.sum(p * t, dim=axes)
        if decoupled:  # Dice and Jaccard
            return tp, torch.sum(p, dim=axes) - tp, torch.sum(t, dim=axes) - tp
        return tp, torch.sum(p * (1 - t), dim=axes), torch.sum((1 - p) * t, dim=axes)  # Tversky
    # squared_pred: squared L2 norms
    po = LA.vector_norm(p, ord=2, dim=axes) ** 2
    go = LA.vector_norm(t, ord=2, dim=axes) ** 2
    diff = LA.vector_norm(p - t, ord=2, dim=axes) ** 2
    tp = (po + go - diff) / 2
    return tp, po - tp, go - tp


def monai_prepare(x, t, sigmoid, include_background):
    p = torch.sigmoid(x) if sigmoid else x
    if not include_background and p.shape[1] > 1:
        p, t = p[:, 1:], t[:, 1:]
    return p, t


def monai_reduce(f, reduction):
    if reduction == "mean":
        return f.mean()
    if reduction == "sum":
        return f.sum()
    return f


def monai_dice_loss(x, t, sigmoid=False, include_background=True, squared_pred=False,
                    jaccard=False, reduction="mean", smooth_nr=1e-5, smooth_dr=1e-5, batch=False,
                    weight=None):
    p, t = monai_prepare(x, t, sigmoid, include_background)
    axes = list(range(2, p.dim()))
    if batch:
        axes = [0] + axes
    tp, fp, fn = monai_tp_fp_fn(p, t, axes, 2 if squared_pred else 1, True)
    if not jaccard:
        fp, fn = fp * 0.5, fn * 0.5
    f = 1 - (2 * tp + smooth_nr) / (2 * (tp + fp + fn) + smooth_dr)
    if weight is not None and t.shape[1] != 1:
        f = f * weight
    return monai_reduce(f, reduction)


def monai_tversky_loss(x, t, sigmoid=False, include_background=True, alpha=0.5, beta=0.5,
                       reduction="mean", smooth_nr=1e-5, smooth_dr=1e-5, batch=False):
    p, t = monai_prepare(x, t, sigmoid, include_background)
    axes = list(range(2, p.dim()))
    if batch:
        axes = [0] + axes
    tp, fp, fn = monai_tp_fp_fn(p, t, axes, 1, False)
    f = 1 - (tp + smooth_nr) / (tp + alpha * fp + beta * fn + smooth_dr)
    return monai_reduce(f, reduction)


def smp_overlap_loss(x, t, alpha, beta, smooth=0.0, eps=1e-7, log_loss=False, gamma=1.0,
                     class_weights=None):
    """smp's binary / multilabel mode with from_logits=True (C = 1 is binary)."""
    bs, C = x.shape[0], x.shape[1]
    p = F.logsigmoid(x).exp().reshape(bs, C, -1)
    t = t.reshape(bs, C, -1)
    dims = (0, 2)
    psum, tsum = p.sum(dim=dims), t.sum(dim=dims)
    diff = LA.vector_norm(p - t, ord=1, dim=dims)
    tp = (psum + tsum - diff) / 2
    fp, fn = psum - tp, tsum - tp
    score = (tp + smooth) / (tp + alpha * fp + beta * fn + smooth).clamp_min(eps)
    loss = -torch.log(score.clamp_min(eps)) if log_loss else 1.0 - score
    loss = loss * (t.sum(dims) > 0).to(loss.dtype)
    if class_weights is not None:
        return ((loss * class_weights).sum() / class_weights.sum()) ** gamma
    return loss.mean() ** gamma


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------

def q(t):
    """Rounded to a multiple of 2^-10: exact in float and double."""
    return torch.round(t * 1024.0) / 1024.0


def make_logits(shape, scale=3.0, huge=None):
    x = q(torch.randn(shape) * scale)
    if huge is not None:  # about half the pixels at +-huge, with random signs
        sel = torch.rand(shape) < 0.5
        x = torch.where(sel, torch.sign(torch.randn(shape)) * huge, x)
    return x


def make_probs(shape):
    p = q(torch.rand(shape))
    sel = torch.rand(shape)
    p = torch.where(sel < 0.1, torch.zeros(shape), p)
    return torch.where(sel > 0.9, torch.ones(shape), p)  # exact 0 and 1 among them


def make_target(shape, kind):
    if kind == "binary":
        return (torch.rand(shape) < 0.4).to(torch.float64)
    if kind == "soft":
        return q(torch.rand(shape))
    raise ValueError(kind)


def make_weight(shape, zeros=False):
    w = q(torch.rand(shape) * 1.5 + 0.25)
    if zeros:
        w = torch.where(torch.rand(shape) < 0.3, torch.zeros(shape), w)
    return w


def shape_line(case, shape):
    case.lines.append("shape " + " ".join(str(d) for d in shape))


def write_options(case, loss, o, kept, skipped):
    """Every option that changes the math, written explicitly (no defaults in the file)."""
    case.option("reduction", o["reduction"])
    case.option("smooth_nr", fmt(o["smooth_nr"]))
    case.option("smooth_dr", fmt(o["smooth_dr"]))
    case.option("per_image", "1" if o["per_image"] else "0")
    case.option("activation", o["activation"])
    case.option("squared", "1" if o["squared"] else "0")
    case.option("weighting", o["weighting"])
    case.option("include_background", "1" if o["include_background"] else "0")
    case.option("empty", o["empty"])
    case.option("gamma", fmt(o["gamma"]))
    case.option("log", "1" if o["log"] else "0")
    case.option("clamp", "1" if o["clamp"] else "0")
    if loss == "tversky":
        case.option("alpha", fmt(o["alpha"]))
        case.option("beta", fmt(o["beta"]))
    case.option("kept", str(kept))
    case.option("skipped", str(skipped))
    if o["weight"] is not None:
        case.tensor("weight", o["weight"])
    if o["class_weight"] is not None:
        case.tensor("class_weight", o["class_weight"])


def close(a, b, what, name, tol=1e-12):
    a, b = a.detach(), b.detach()
    scale = max(float(b.abs().max()) if b.numel() else 0.0, 1e-300)
    err = float((a - b).abs().max()) if a.numel() else 0.0
    if not err <= tol * scale:
        raise SystemExit("%s: %s disagrees with the header reference: |diff| %g of %g"
                         % (name, what, err, scale))


def grad_of(fn, x, reduction, grad_out):
    """(loss, grad) of fn(x) with the autograd convention of the module docstring."""
    x = x.detach().clone().requires_grad_(True)
    out = fn(x)
    loss = out[0] if isinstance(out, tuple) else out
    if reduction == "none":
        (loss * grad_out).sum().backward()
    else:
        loss.backward(grad_out)
    return out, x.grad


def finish(case, reduction, value, grad, grad_out):
    case.tensor("grad_out", grad_out)
    if reduction == "none":
        case.tensor("values", value)
    else:
        case.value(float(value))
    if grad is not None:
        case.tensor("grad", grad)


def none_grad_out(shape):
    return q(torch.randn(shape))


# --------------------------------------------------------------------------------------------
# Case builders
# --------------------------------------------------------------------------------------------

def overlap_case(name, loss, shape, target="binary", scale=3.0, huge=None, weight=None,
                 weight_zeros=False, weight_tensor=None, class_weight=False, empty_planes=(),
                 grad_out=1.0, reference="header", library=None, inputs=None, **opts):
    """A soft_dice / soft_jaccard / tversky case. opts: the segloss options (overlap.hpp names).
    weight: None or the weight's shape. class_weight: True for random class weights (or a
    tensor). empty_planes: (n, c) pairs whose target is all 0 (with activation none, the input
    too). weight_tensor: a given pixel weight instead. library: None (the header is the
    reference) or fn(x, t) giving the library's loss. inputs: (x, t) instead of random ones."""
    seed_for(name)
    o = default_options()
    for k, v in opts.items():
        assert k in o, k
        o[k] = v
    if inputs is not None:
        x, t = inputs
    else:
        x = make_logits(shape, scale, huge) if o["activation"] == "sigmoid" else make_probs(shape)
        t = make_target(shape, target)
        for n, c in empty_planes:
            t[n, c] = 0.0
            if o["activation"] == "none":
                x[n, c] = 0.0
    if weight is not None:
        o["weight"] = make_weight(weight, weight_zeros)
    if weight_tensor is not None:
        o["weight"] = weight_tensor
    if class_weight is True:
        o["class_weight"] = q(torch.rand(shape[1]) * 1.5 + 0.25)
    elif class_weight is not False:
        o["class_weight"] = class_weight
    r = o["reduction"]
    if r == "none":
        grad_out_tensor = none_grad_out((shape[0], shape[1]) if o["per_image"] else (shape[1],))
    else:
        grad_out_tensor = torch.tensor(grad_out)
    (ref, kept, skipped), grad = grad_of(lambda v: header_reference(loss, v, t, o), x, r,
                                         grad_out_tensor)
    value = ref
    if library is not None:
        # reduction none: the library's per-score layout (albu's (N), MONAI's (N, C, 1, 1))
        # as segloss's (N, C) or (C)
        lib, lib_grad = grad_of(lambda v: library(v, t).reshape(ref.shape), x, r,
                                grad_out_tensor)
        close(lib, ref, "value", name)
        close(lib_grad, grad, "gradient", name)
        value, grad = lib, lib_grad
    case = Case(name, loss)
    shape_line(case, shape)
    if reference != "header":
        case.option("reference", reference)
    write_options(case, loss, o, kept, skipped)
    case.tensor("logits", x)
    case.tensor("target", t)
    finish(case, r, value.detach(), grad, grad_out_tensor)
    return case


def bce_dice_case(name, shape, reference="header", library=None, inputs=None, bce=None,
                  bce_weight=1.0, dice_weight=1.0, weight=None, weight_tensor=None,
                  bce_weight_map=None,
                  pos_weight=False, class_weight=False, grad_out=1.0, target="binary",
                  scale=3.0, empty_planes=(), **opts):
    """A bce_dice case. bce: the BCE options (reduction, weight, pos_weight, mean_over);
    bce_weight_map / pos_weight: shapes of random BCE weights (or tensors via bce)."""
    seed_for(name)
    o = default_options()
    for k, v in opts.items():
        assert k in o, k
        o[k] = v
    bo = {"reduction": "mean"}
    bo.update(bce or {})
    if inputs is not None:
        x, t = inputs
    else:
        x = make_logits(shape, scale)
        t = make_target(shape, target)
        for n, c in empty_planes:
            t[n, c] = 0.0
    if weight is not None:
        o["weight"] = make_weight(weight)
    if weight_tensor is not None:
        o["weight"] = weight_tensor
    if bce_weight_map is not None:
        bo["weight"] = make_weight(bce_weight_map)
    if pos_weight:
        bo["pos_weight"] = q(torch.rand(shape[1]) * 3.0 + 0.2)
    if class_weight:
        o["class_weight"] = q(torch.rand(shape[1]) * 1.5 + 0.25)
    g = torch.tensor(grad_out)
    (ref, bce_v, dice_v, kept, skipped), grad = grad_of(
        lambda v: bce_dice_reference(v, t, bo, o, bce_weight, dice_weight), x, "mean", g)
    value = ref
    if library is not None:
        lib, lib_grad = grad_of(lambda v: library(v, t), x, "mean", g)
        lib = lib[0] if isinstance(lib, tuple) else lib
        close(lib, ref, "value", name)
        close(lib_grad, grad, "gradient", name)
        value, grad = lib, lib_grad
    case = Case(name, "bce_dice")
    shape_line(case, shape)
    if reference != "header":
        case.option("reference", reference)
    case.option("bce_weight", fmt(bce_weight))
    case.option("dice_weight", fmt(dice_weight))
    case.option("bce.reduction", bo["reduction"])
    if "mean_over" in bo:
        case.option("bce.mean_over", bo["mean_over"])
    case.option("part_bce", fmt(float(bce_v)))
    case.option("part_dice", fmt(float(dice_v)))
    write_options(case, "soft_dice", o, kept, skipped)
    if "weight" in bo:
        case.tensor("bce.weight", bo["weight"])
    if "pos_weight" in bo:
        case.tensor("bce.pos_weight", bo["pos_weight"])
    case.tensor("logits", x)
    case.tensor("target", t)
    finish(case, "mean", value.detach(), grad, g)
    return case


# --------------------------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------------------------

S2 = (2, 2, 3, 2)      # the main 2-D shape
S2C3 = (2, 3, 3, 2)    # three channels (include_background, class weights)
S1 = (2, 2, 7)         # one spatial axis
S3 = (2, 2, 2, 3, 2)   # a volume
SC1 = (3, 1, 4, 3)     # one channel
LOSSES = ("soft_dice", "soft_jaccard", "tversky")
TV = dict(alpha=0.3, beta=0.7)


def lopts(loss, **kw):
    """Tversky cases get alpha 0.3, beta 0.7 unless given."""
    if loss == "tversky":
        for k, v in TV.items():
            kw.setdefault(k, v)
    return kw


def short(loss):
    return {"soft_dice": "dice", "soft_jaccard": "jaccard", "tversky": "tversky"}[loss]


def option_space_cases():
    cs = []
    for loss in LOSSES:
        s = short(loss)
        # reductions x per_image, 2-D
        for per_image in (True, False):
            for r in ("mean", "sum", "none"):
                cs.append(overlap_case("%s_2d_%s_%s" % (s, "img" if per_image else "batch", r),
                                       loss, S2, **lopts(loss, reduction=r,
                                                         per_image=per_image)))
        # probabilities, soft targets, 1-D, 3-D, one channel, grad_out, smooth terms
        cs.append(overlap_case(s + "_2d_probs_mean", loss, S2,
                               **lopts(loss, activation="none")))
        cs.append(overlap_case(s + "_2d_probs_soft_none", loss, S2, target="soft",
                               **lopts(loss, activation="none", reduction="none")))
        cs.append(overlap_case(s + "_2d_soft_target_sum", loss, S2, target="soft",
                               **lopts(loss, reduction="sum", smooth_nr=1.0, smooth_dr=1.0)))
        cs.append(overlap_case(s + "_1d_mean", loss, S1, **lopts(loss)))
        cs.append(overlap_case(s + "_1d_batch_none", loss, S1,
                               **lopts(loss, reduction="none", per_image=False)))
        cs.append(overlap_case(s + "_3d_mean", loss, S3, **lopts(loss, smooth_nr=0.0,
                                                               smooth_dr=1e-3)))
        cs.append(overlap_case(s + "_3d_batch_sum", loss, S3,
                               **lopts(loss, reduction="sum", per_image=False)))
        cs.append(overlap_case(s + "_c1_mean_grad_out", loss, SC1, grad_out=-1.75,
                               **lopts(loss, smooth_nr=2.0, smooth_dr=1.0)))
        cs.append(overlap_case(s + "_c3_sum_grad_out", loss, S2C3, grad_out=0.37,
                               **lopts(loss, reduction="sum", smooth_nr=0.5, smooth_dr=0.0)))
        # pixel weights in both forms; broadcast shapes; zero weights
        N, C, H, W = S2
        for weighting in ("squared", "on_inputs"):
            cs.append(overlap_case("%s_2d_weight_%s_mean" % (s, weighting), loss, S2,
                                   weight=S2, **lopts(loss, weighting=weighting)))
            cs.append(overlap_case("%s_2d_weight_n1hw_%s_none" % (s, weighting), loss, S2,
                                   weight=(N, 1, H, W),
                                   **lopts(loss, weighting=weighting, reduction="none")))
            cs.append(overlap_case("%s_2d_weight_hw_zeros_%s_batch_sum" % (s, weighting), loss,
                                   S2, weight=(H, W), weight_zeros=True,
                                   **lopts(loss, weighting=weighting, reduction="sum",
                                           per_image=False)))
        cs.append(overlap_case(s + "_3d_weight_on_inputs_probs_mean", loss, S3,
                               weight=(S3[0], 1) + S3[2:],
                               **lopts(loss, weighting="on_inputs", activation="none")))
        # class weights, include_background
        cs.append(overlap_case(s + "_c3_class_weight_mean", loss, S2C3, class_weight=True,
                               **lopts(loss)))
        cs.append(overlap_case(s + "_c3_class_weight_no_background_none", loss, S2C3,
                               class_weight=True,
                               **lopts(loss, include_background=False, reduction="none")))
        cs.append(overlap_case(s + "_c3_no_background_batch_mean", loss, S2C3,
                               **lopts(loss, include_background=False, per_image=False)))
        # empty targets under every policy (planes (0,1) and (1,0) empty; per batch channel 1)
        # (every reduction for Dice; one per policy, in turn, for Jaccard and Tversky)
        for i, empty in enumerate(("formula", "one", "zero", "skip")):
            rs = ("mean", "sum", "none")
            for r in rs if loss == "soft_dice" else (rs[(i + LOSSES.index(loss)) % 3],):
                cs.append(overlap_case("%s_2d_empty_%s_%s" % (s, empty, r), loss, S2,
                                       empty_planes=((0, 1), (1, 0)),
                                       **lopts(loss, empty=empty, reduction=r)))
            cs.append(overlap_case("%s_2d_empty_%s_batch_mean" % (s, empty), loss, S2,
                                   empty_planes=((0, 1), (1, 1)),
                                   **lopts(loss, empty=empty, per_image=False)))
        cs.append(overlap_case(s + "_2d_empty_skip_all_mean", loss, S2,
                               empty_planes=((0, 0), (0, 1), (1, 0), (1, 1)),
                               **lopts(loss, empty="skip")))
        cs.append(overlap_case(s + "_2d_empty_zero_probs_no_background_sum", loss, S2C3,
                               empty_planes=((0, 1), (1, 2), (1, 0)),
                               **lopts(loss, empty="zero", activation="none",
                                       include_background=False, reduction="sum")))
        # focal (gamma), log and clamp forms
        for gamma in (2.0, 0.5):
            for r in ("mean", "none"):
                cs.append(overlap_case("%s_2d_gamma%g_%s" % (s, gamma, r), loss, S2,
                                       **lopts(loss, gamma=gamma, reduction=r)))
        cs.append(overlap_case(s + "_c3_gamma1.5_class_weight_empty_one_sum", loss, S2C3,
                               class_weight=True, empty_planes=((0, 2),),
                               **lopts(loss, gamma=1.5, reduction="sum", empty="one")))
        for form in ("log", "clamp"):
            for r in ("mean", "sum", "none"):
                cs.append(overlap_case("%s_2d_%s_%s" % (s, form, r), loss, S2,
                                       **lopts(loss, reduction=r, **{form: True})))
            cs.append(overlap_case("%s_c3_%s_class_weight_empty_skip_batch_mean" % (s, form),
                                   loss, S2C3, class_weight=True, empty_planes=((0, 1), (1, 1)),
                                   **lopts(loss, per_image=False, empty="skip", **{form: True})))
        # large logits
        cs.append(overlap_case(s + "_2d_logits30_mean", loss, S2, scale=30.0, **lopts(loss)))
        cs.append(overlap_case(s + "_2d_logits1e4_none", loss, S2, huge=1e4,
                               **lopts(loss, reduction="none")))
        cs.append(overlap_case(s + "_3d_logits1e4_weight_sum", loss, S3, huge=1e4,
                               weight=S3, **lopts(loss, reduction="sum")))
    # squared sums (Dice and Jaccard; Tversky refuses them), with both weight forms
    for loss in ("soft_dice", "soft_jaccard"):
        s = short(loss)
        for r in ("mean", "sum", "none"):
            cs.append(overlap_case("%s_2d_squared_%s" % (s, r), loss, S2, squared=True,
                                   reduction=r))
        cs.append(overlap_case(s + "_2d_squared_probs_soft_batch_mean", loss, S2, target="soft",
                               squared=True, activation="none", per_image=False))
        for weighting in ("squared", "on_inputs"):
            cs.append(overlap_case("%s_2d_squared_weight_%s_mean" % (s, weighting), loss, S2,
                                   weight=S2, squared=True, weighting=weighting))
        cs.append(overlap_case(s + "_3d_squared_log_class_weight_mean", loss, S3, squared=True,
                               log=True, class_weight=True))
    return cs


def monai_cases():
    cs = []
    S2 = (2, 3, 3, 2)
    # DiceLoss(sigmoid=True), its defaults (smooth 1e-5 / 1e-5, per image, mean)
    for r in ("mean", "sum", "none"):
        cs.append(overlap_case(
            "monai_dice_sigmoid_" + r, "soft_dice", S2, reference="monai_DiceLoss",
            library=lambda x, t, r=r: monai_dice_loss(x, t, sigmoid=True, reduction=r),
            reduction=r))
    cs.append(overlap_case(
        "monai_dice_sigmoid_3d_soft_target", "soft_dice", S3, target="soft",
        reference="monai_DiceLoss", library=lambda x, t: monai_dice_loss(x, t, sigmoid=True)))
    cs.append(overlap_case(
        "monai_dice_probs_smooth0_1e-6", "soft_dice", S2, reference="monai_DiceLoss",
        library=lambda x, t: monai_dice_loss(x, t, smooth_nr=0.0, smooth_dr=1e-6),
        activation="none", smooth_nr=0.0, smooth_dr=1e-6))
    # squared_pred
    cs.append(overlap_case(
        "monai_dice_squared_pred", "soft_dice", S2, reference="monai_DiceLoss",
        library=lambda x, t: monai_dice_loss(x, t, sigmoid=True, squared_pred=True),
        squared=True))
    cs.append(overlap_case(
        "monai_dice_squared_pred_soft_batch_none", "soft_dice", S2, target="soft",
        reference="monai_DiceLoss",
        library=lambda x, t: monai_dice_loss(x, t, sigmoid=True, squared_pred=True, batch=True,
                                             reduction="none"),
        squared=True, per_image=False, reduction="none"))
    # jaccard: segloss soft_jaccard with the smooth terms halved
    cs.append(overlap_case(
        "monai_dice_jaccard", "soft_jaccard", S2, reference="monai_DiceLoss",
        library=lambda x, t: monai_dice_loss(x, t, sigmoid=True, jaccard=True),
        smooth_nr=0.5e-5, smooth_dr=0.5e-5))
    cs.append(overlap_case(
        "monai_dice_jaccard_squared_pred_sum", "soft_jaccard", S2, reference="monai_DiceLoss",
        library=lambda x, t: monai_dice_loss(x, t, sigmoid=True, jaccard=True, squared_pred=True,
                                             smooth_nr=1.0, smooth_dr=1.0, reduction="sum"),
        squared=True, smooth_nr=0.5, smooth_dr=0.5, reduction="sum"))
    # include_background=False (C = 3: two scores per image remain)
    cs.append(overlap_case(
        "monai_dice_no_background", "soft_dice", S2, reference="monai_DiceLoss",
        library=lambda x, t: monai_dice_loss(x, t, sigmoid=True, include_background=False),
        include_background=False))
    cs.append(overlap_case(
        "monai_dice_no_background_none", "soft_dice", S2, reference="monai_DiceLoss",
        library=lambda x, t: zero_channel0(monai_dice_loss(
            x, t, sigmoid=True, include_background=False, reduction="none"), batch=False),
        include_background=False, reduction="none"))
    # batch=True (segloss per_image false)
    for r in ("mean", "none"):
        cs.append(overlap_case(
            "monai_dice_batch_" + r, "soft_dice", S2, reference="monai_DiceLoss",
            library=lambda x, t, r=r: monai_dice_loss(x, t, sigmoid=True, batch=True,
                                                      reduction=r),
            per_image=False, reduction=r))
    # weight (class weights): MONAI's weight covers the channels kept; segloss takes C values
    cw3 = torch.tensor([0.25, 1.5, 0.75])
    cs.append(overlap_case(
        "monai_dice_weight", "soft_dice", S2, reference="monai_DiceLoss",
        library=lambda x, t: monai_dice_loss(x, t, sigmoid=True, weight=cw3),
        class_weight=cw3))
    cw2 = torch.tensor([1.25, 0.5])
    cs.append(overlap_case(
        "monai_dice_weight_no_background_batch_sum", "soft_dice", S2,
        reference="monai_DiceLoss",
        library=lambda x, t: monai_dice_loss(x, t, sigmoid=True, weight=cw2,
                                             include_background=False, batch=True,
                                             reduction="sum"),
        class_weight=torch.tensor([9.0, 1.25, 0.5]), include_background=False,
        per_image=False, reduction="sum"))
    # one channel left: MONAI ignores its weight (segloss: no class weight)
    cs.append(overlap_case(
        "monai_dice_weight_one_channel_left", "soft_dice", (2, 2, 3, 2),
        reference="monai_DiceLoss",
        library=lambda x, t: monai_dice_loss(x, t, sigmoid=True, include_background=False,
                                             weight=torch.tensor([3.0])),
        include_background=False))
    # TverskyLoss(alpha, beta)
    cs.append(overlap_case(
        "monai_tversky_sigmoid", "tversky", S2, reference="monai_TverskyLoss",
        library=lambda x, t: monai_tversky_loss(x, t, sigmoid=True, alpha=0.3, beta=0.7),
        alpha=0.3, beta=0.7))
    cs.append(overlap_case(
        "monai_tversky_soft_target_sum", "tversky", S2, target="soft",
        reference="monai_TverskyLoss",
        library=lambda x, t: monai_tversky_loss(x, t, sigmoid=True, alpha=0.8, beta=0.2,
                                                reduction="sum"),
        alpha=0.8, beta=0.2, reduction="sum"))
    cs.append(overlap_case(
        "monai_tversky_no_background_batch_none", "tversky", S2, reference="monai_TverskyLoss",
        library=lambda x, t: zero_channel0(monai_tversky_loss(
            x, t, sigmoid=True, alpha=0.6, beta=0.4, include_background=False, batch=True,
            reduction="none"), batch=True),
        alpha=0.6, beta=0.4, include_background=False, per_image=False, reduction="none"))
    cs.append(overlap_case(
        "monai_tversky_probs_3d", "tversky", S3, reference="monai_TverskyLoss",
        library=lambda x, t: monai_tversky_loss(x, t, alpha=0.5, beta=1.5, smooth_nr=1.0,
                                                smooth_dr=1.0),
        activation="none", alpha=0.5, beta=1.5, smooth_nr=1.0, smooth_dr=1.0))
    return cs


def zero_channel0(f, batch):
    """MONAI's none output without channel 0, laid out as segloss's (N, C) or (C) with 0 there."""
    if batch:
        return torch.cat([torch.zeros(1), f])
    return torch.cat([torch.zeros(f.shape[0], 1), f], dim=1)


def smp_cases():
    cs = []
    SB = (3, 1, 4, 3)
    SM = (2, 3, 3, 2)
    cs.append(overlap_case(
        "smp_tversky_binary", "tversky", SB, reference="smp_TverskyLoss",
        library=lambda x, t: smp_overlap_loss(x, t, 0.3, 0.7),
        alpha=0.3, beta=0.7, per_image=False, empty="one", smooth_nr=0.0, smooth_dr=0.0))
    for gamma in (2.0, 0.75):
        cs.append(overlap_case(
            "smp_tversky_binary_gamma%g" % gamma, "tversky", SB, reference="smp_TverskyLoss",
            library=lambda x, t, g=gamma: smp_overlap_loss(x, t, 0.7, 0.3, gamma=g),
            alpha=0.7, beta=0.3, gamma=gamma, per_image=False, empty="one", smooth_nr=0.0,
            smooth_dr=0.0))
    cs.append(overlap_case(
        "smp_tversky_binary_smooth1_log", "tversky", SB, reference="smp_TverskyLoss",
        library=lambda x, t: smp_overlap_loss(x, t, 0.4, 0.6, smooth=1.0, log_loss=True),
        alpha=0.4, beta=0.6, per_image=False, empty="one", smooth_nr=1.0, smooth_dr=1.0,
        log=True))
    # multilabel: the class of an empty channel counts as loss 0 in the mean (EmptyPolicy one)
    cs.append(overlap_case(
        "smp_tversky_multilabel_empty_class", "tversky", SM, reference="smp_TverskyLoss",
        empty_planes=((0, 1), (1, 1)),
        library=lambda x, t: smp_overlap_loss(x, t, 0.3, 0.7),
        alpha=0.3, beta=0.7, per_image=False, empty="one", smooth_nr=0.0, smooth_dr=0.0))
    cw = torch.tensor([0.5, 2.0, 1.0])
    cs.append(overlap_case(
        "smp_tversky_multilabel_class_weights", "tversky", SM, reference="smp_TverskyLoss",
        library=lambda x, t: smp_overlap_loss(x, t, 0.3, 0.7, smooth=0.5, class_weights=cw),
        class_weight=cw * 3 / cw.sum(), alpha=0.3, beta=0.7, per_image=False, empty="one",
        smooth_nr=0.5, smooth_dr=0.5))
    # log_loss per class then the mean: segloss log with reduction sum and class weights 1/C
    cs.append(overlap_case(
        "smp_tversky_multilabel_log_empty_class", "tversky", SM, reference="smp_TverskyLoss",
        empty_planes=((0, 2), (1, 2)),
        library=lambda x, t: smp_overlap_loss(x, t, 0.5, 0.5, smooth=1.0, log_loss=True),
        class_weight=torch.full((3,), 1.0 / 3.0), alpha=0.5, beta=0.5, per_image=False,
        empty="one", smooth_nr=1.0, smooth_dr=1.0, log=True, reduction="sum"))
    # DiceLoss and JaccardLoss are Tversky 0.5/0.5 and 1/1: segloss soft_dice with smooth 2s,
    # soft_jaccard with smooth s
    cs.append(overlap_case(
        "smp_dice_multilabel_smooth1", "soft_dice", SM, reference="smp_DiceLoss",
        empty_planes=((0, 0), (1, 0)),
        library=lambda x, t: smp_overlap_loss(x, t, 0.5, 0.5, smooth=1.0),
        per_image=False, empty="one", smooth_nr=2.0, smooth_dr=2.0))
    cs.append(overlap_case(
        "smp_jaccard_binary", "soft_jaccard", SB, reference="smp_JaccardLoss",
        library=lambda x, t: smp_overlap_loss(x, t, 1.0, 1.0),
        per_image=False, empty="one", smooth_nr=0.0, smooth_dr=0.0))
    return cs


def carvana_cases():
    cs = []
    for shape in ((2, 1, 4, 3), (2, 1, 2, 3, 2)):
        tag = "%dd" % (len(shape) - 2)
        cs.append(overlap_case(
            "carvana_SoftDiceLoss_" + tag, "soft_dice", shape, reference="carvana_SoftDiceLoss",
            library=lambda x, t: SoftDiceLoss()(x, t), smooth_nr=2.0, smooth_dr=1.0))
        # WeightedSoftDiceLoss with random positive weights, per pixel
        name = "carvana_WeightedSoftDiceLoss_random_" + tag
        seed_for(name + "_w")
        cs.append(weighted_dice_case(name, shape, make_weight(shape)))
    # WeightedSoftDiceLoss with the boundary weight map CombinedLoss computes (H must be 128)
    name = "carvana_WeightedSoftDiceLoss_boundary"
    x, t = boundary_inputs(name)
    w = carvana_boundary_weights(t.view(1, 128, 2)).view(t.shape)
    assert w.min() < w.max()
    cs.append(weighted_dice_case(name, tuple(t.shape), w, inputs=(x, t), grad_out=0.37))
    # CombinedLoss(is_weight=False): BCE (mean) + Dice, or BCE - log(mean Dice score)
    for is_log in (False, True):
        for shape in ((2, 1, 4, 3), (1, 1, 5, 4)):
            name = "carvana_CombinedLoss_unweighted%s_%dx%d" % ("_log" if is_log else "",
                                                                shape[0], shape[2])
            cs.append(bce_dice_case(
                name, shape, reference="carvana_CombinedLoss",
                library=lambda x, t, is_log=is_log: CombinedLoss(False, is_log)(x, t),
                smooth_nr=2.0, smooth_dr=1.0, log=is_log))
    # CombinedLoss(is_weight=True): the BCE term is normalized by the weight sum
    # (bce_with_logits mean_over = weight_sum)
    for is_log in (False, True):
        name = "carvana_CombinedLoss_weighted%s" % ("_log" if is_log else "")
        x, t = boundary_inputs(name)
        w = carvana_boundary_weights(t.view(1, 128, 2)).view(t.shape)
        cs.append(bce_dice_case(
            name, tuple(t.shape), reference="carvana_CombinedLoss", inputs=(x, t),
            library=lambda v, tt, is_log=is_log: CombinedLoss(True, is_log)(v, tt),
            bce={"weight": w, "mean_over": "weight_sum"}, weight_tensor=w, smooth_nr=2.0,
            smooth_dr=1.0, log=is_log))
    return cs


def weighted_dice_case(name, shape, w, inputs=None, grad_out=1.0):
    """Carvana WeightedSoftDiceLoss with the pixel weight w: soft_dice, weighting squared."""
    return overlap_case(name, "soft_dice", shape, reference="carvana_WeightedSoftDiceLoss",
                        inputs=inputs, library=lambda x, t: WeightedSoftDiceLoss()(x, t, w),
                        weight_tensor=w, grad_out=grad_out, smooth_nr=2.0, smooth_dr=1.0,
                        weighting="squared")


def boundary_inputs(name):
    """(1, 1, 128, 2): a band of ones (rows 40..79) with some noise, logits around it."""
    seed_for(name)
    shape = (1, 1, 128, 2)
    t = torch.zeros(shape)
    t[:, :, 40:80, :] = 1.0
    flip = torch.rand(shape) < 0.05
    t = torch.where(flip, 1.0 - t, t)
    x = q((t * 2.0 - 1.0) * 2.0 + torch.randn(shape) * 1.5)
    return x, t


def albu_cases():
    cs = []
    shape = (2, 1, 4, 3)
    # dice_loss on probabilities: the loss is 1 - dice_loss(...)
    for weighted in (False, True):
        for avg in (True, False):
            name = "albu_dice_loss_%s_%s" % ("weight" if weighted else "noweight",
                                             "average" if avg else "scores")
            seed_for(name + "_w")
            w = make_weight(shape) if weighted else None
            cs.append(overlap_case(
                name, "soft_dice", shape, reference="albu_dice_loss",
                library=lambda p, t, w=w, avg=avg: 1 - dice_loss(p, t, w, avg),
                activation="none", weighting="on_inputs", smooth_nr=2.0, smooth_dr=1.0,
                clamp=avg, reduction="mean" if avg else "none", weight_tensor=w))
    # the clamp at work: a mean score above 1 (every p and t is 1) gives loss 0, no gradient
    ones = torch.ones(shape)
    seed_for("albu_dice_loss_clamped_w")
    w = make_weight(shape)
    cs.append(overlap_case(
        "albu_dice_loss_clamped", "soft_dice", shape, reference="albu_dice_loss",
        inputs=(ones.clone(), ones.clone()),
        library=lambda p, t: 1 - dice_loss(p, t, w, True),
        activation="none", weighting="on_inputs", smooth_nr=2.0, smooth_dr=1.0, clamp=True,
        weight_tensor=w))
    # DiceLoss on logits
    for weighted in (False, True):
        for avg in (True, False):
            name = "albu_DiceLoss_%s_%s" % ("weight" if weighted else "noweight",
                                            "size_average" if avg else "scores")
            seed_for(name + "_w")
            w = make_weight(shape) if weighted else None
            cs.append(overlap_case(
                name, "soft_dice", shape, reference="albu_DiceLoss",
                library=lambda x, t, w=w, avg=avg: DiceLoss(avg)(x, t, weight=w),
                weighting="on_inputs", smooth_nr=2.0, smooth_dr=1.0, clamp=avg,
                reduction="mean" if avg else "none", weight_tensor=w))
    cs.append(overlap_case(
        "albu_DiceLoss_3d", "soft_dice", (2, 1, 2, 3, 2), reference="albu_DiceLoss",
        library=lambda x, t: DiceLoss()(x, t),
        weighting="on_inputs", smooth_nr=2.0, smooth_dr=1.0, clamp=True))
    # BCEDiceLoss: BCE (mean over elements, weighted when given) + DiceLoss
    for weighted in (False, True):
        name = "albu_BCEDiceLoss_%s" % ("weight" if weighted else "noweight")
        seed_for(name + "_w")
        w = make_weight(shape) if weighted else None
        cs.append(bce_dice_case(
            name, shape, reference="albu_BCEDiceLoss",
            library=lambda x, t, w=w: BCEDiceLoss()(x, t, weight=w),
            bce={"weight": w} if weighted else None, weighting="on_inputs", smooth_nr=2.0,
            smooth_dr=1.0, clamp=True, weight_tensor=w))
    return cs


def unet_cases():
    """Pytorch-UNet's DiceCoeff / dice_coeff: values only. segloss's soft_dice with activation
    none, smooth_nr 2e-4, smooth_dr 1e-4, per image, mean is 1 - dice_coeff."""
    cs = []
    for name, shape, kind in (("unet_dice_coeff_thresholded", (3, 1, 5, 4), "threshold"),
                              ("unet_dice_coeff_probs", (2, 1, 6, 5), "probs"),
                              ("unet_dice_coeff_n1", (1, 1, 4, 4), "threshold"),
                              ("unet_dice_coeff_empty_plane", (2, 1, 4, 3), "empty")):
        seed_for(name)
        x = make_logits(shape)
        t = make_target(shape, "binary")
        if kind == "probs":
            p = q(torch.sigmoid(x))
        else:
            p = (torch.sigmoid(x) > 0.6).to(torch.float64)  # eval_net's thresholding
        if kind == "empty":
            p[1], t[1] = 0.0, 0.0
        verbatim, coeff = unet_dice_coeff(p, t)
        if abs(float(verbatim) - float(coeff)) > 1e-6 * abs(float(coeff)):
            raise SystemExit(name + ": the float64 spelling disagrees with DiceCoeff")
        o = default_options()
        o.update(activation="none", smooth_nr=2e-4, smooth_dr=1e-4)
        ref, kept, skipped = header_reference("soft_dice", p, t, o)
        close(ref, 1 - coeff, "value", name)
        case = Case(name, "soft_dice")
        shape_line(case, shape)
        case.option("reference", "unet_dice_coeff")
        write_options(case, "soft_dice", o, kept, skipped)
        case.tensor("logits", p)
        case.tensor("target", t)
        case.value(float(1 - coeff))
        cs.append(case)
    return cs


def bce_dice_cases():
    cs = []
    cs.append(bce_dice_case("bce_dice_2d_default", S2))
    cs.append(bce_dice_case("bce_dice_c3_weights_sum", S2C3, bce_weight=0.3, dice_weight=1.7,
                            bce={"reduction": "sum"}, bce_weight_map=(S2C3[0], 1) + S2C3[2:],
                            pos_weight=True, class_weight=True, reduction="sum",
                            per_image=False))
    cs.append(bce_dice_case("bce_dice_3d_squared_log", S3, squared=True, log=True,
                            grad_out=-1.75))
    cs.append(bce_dice_case("bce_dice_2d_on_inputs_clamp", S2, weight=S2, weighting="on_inputs",
                            bce_weight_map=S2, clamp=True, smooth_nr=2.0, smooth_dr=1.0))
    cs.append(bce_dice_case("bce_dice_c3_empty_skip_no_background", S2C3,
                            empty_planes=((0, 1), (1, 2)), empty="skip",
                            include_background=False, gamma=2.0, grad_out=0.37))
    cs.append(bce_dice_case("bce_dice_1d_soft_weight_squared", S1, target="soft", weight=S1,
                            scale=30.0))
    return cs


def main():
    groups = [("options", option_space_cases()), ("monai", monai_cases()), ("smp", smp_cases()),
              ("carvana", carvana_cases()), ("albu", albu_cases()), ("unet", unet_cases()),
              ("bce_dice", bce_dice_cases())]
    cases = [c for _, g in groups for c in g]
    print(", ".join("%s %d" % (n, len(g)) for n, g in groups))
    names = [c.name for c in cases]
    assert len(set(names)) == len(names), "duplicate case names"
    path = os.path.join(HERE, OUTPUT)
    with open(path, "w") as f:
        f.write("# segloss golden data for the overlap losses and bce_dice: generated by "
                "tests/golden/generate_overlap.py\n")
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
