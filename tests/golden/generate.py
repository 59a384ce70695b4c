#!/usr/bin/python3
"""Golden reference values for segloss, computed with PyTorch in float64.

Run from anywhere with a Python that has torch (Debian: /usr/bin/python3 with python3-torch):

    /usr/bin/python3 tests/golden/generate.py

It rewrites tests/golden/bce_with_logits.txt, bce_with_logits_options.txt (the label_smoothing and
mean_over options) and soft_dice.txt next to this script.
tests/test_golden.cpp reads them; README.md in this folder describes the format.

Every number is float64 and printed with '%.17g' (round-trips exactly). The gradient is always
d(loss)/d(logits) from torch.autograd:
  * reduction mean / sum: loss.backward(grad_out), grad_out a scalar (1 unless the case says
    otherwise), so grad = grad_out * dloss/dlogits;
  * reduction none: (loss * grad_out).sum().backward() with a random grad_out shaped like loss.

Semantics:
  * bce_with_logits is torch.nn.functional.binary_cross_entropy_with_logits itself (forward and
    its autograd backward, binary_cross_entropy_with_logits_backward in torch's
    derivatives.yaml). weight is passed as the broadcastable tensor torch accepts; pos_weight is
    passed as shape (C, 1, ..., 1) so that torch applies it per channel (a 1-D pos_weight would
    broadcast against the last axis). segloss receives the same pos_weight values as a C-element
    (or 1-element) tensor.
  * soft_dice has no torch.nn.functional counterpart; soft_dice_reference() below writes the
    formulas of losses/soft_dice.hpp with torch ops, and autograd differentiates them.
  * The Carvana seeds (BCELoss2d, WeightedBCELoss2d and SoftDiceLoss from /work/shared/seeds/
    segmentation-losses-note.md) are copied verbatim and evaluated with their own code, so the
    test shows that segloss with the documented options equals them.
  * bce_with_logits label_smoothing eps: F.binary_cross_entropy_with_logits on the smoothed
    target z (1 - eps) + eps / 2 (Keras' convention), or, for the cases with
    reference smp_SoftBCEWithLogitsLoss, on segmentation_models_pytorch's smoothed target
    (1 - z) s + z (1 - s) with smooth_factor s = eps / 2 (smp is not installed: its formula is
    written here with torch ops).
  * bce_with_logits mean_over weight_sum: the 'none' losses of
    F.binary_cross_entropy_with_logits summed and divided by the weight expanded to the input
    shape and summed, or (reference carvana_WeightedBCELoss2d) the seed class itself.
"""

import os
import sys
import warnings
import zlib

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
BASE_SEED = 20240611

torch.set_default_dtype(torch.float64)


# --------------------------------------------------------------------------------------------
# Seed code, copied verbatim from the seeds note ("3 loss与bce叠加", loss.py). Only these two
# classes are used. F.sigmoid is deprecated in torch 1.13 but still equals torch.sigmoid.
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


def carvana_weights(labels, kernel_size):
    """The weights Carvana's CombinedLoss builds for WeightedBCELoss2d (seeds note, is_weight
    branch), verbatim but for the kernel size, which the seed picks from H (11 for H = 128 up to
    51 for H = 1280; these test images are smaller) and Variable/.cuda(), which torch no longer
    needs: boundary pixels (3x3 average of the labels in [0.01, 0.99]) weigh 3, others 1, then
    everything is rescaled so that the weights sum to the pixel count. labels: (N, H, W)."""
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


class SoftDiceLoss(nn.Module):
    def __init__(self):
        super(SoftDiceLoss, self).__init__()

    def forward(self, logits, labels):
        probs = F.sigmoid(logits)
        num = labels.size(0)
        m1 = probs.view(num, -1)
        m2 = labels.view(num, -1)
        intersection = (m1 * m2)
        score = 2. * (intersection.sum(1) + 1) / (m1.sum(1) + m2.sum(1) + 1)
        score = 1 - score.sum() / num
        return score


# --------------------------------------------------------------------------------------------
# Reference of soft_dice: the formulas of losses/soft_dice.hpp, in torch ops.
# --------------------------------------------------------------------------------------------

def soft_dice_reference(x, t, reduction, smooth_nr, smooth_dr, per_image, activation):
    """p = sigmoid(x) (or x when activation is none); per score j (an (n, c) pair per image,
    a channel c over the batch otherwise) I = sum p t, U = sum p + sum t,
    S = (2 I + smooth_nr) / (U + smooth_dr); loss 1 - S, reduced by mean / sum / none."""
    p = torch.sigmoid(x) if activation == "sigmoid" else x
    spatial = tuple(range(2, x.dim()))
    dims = spatial if per_image else (0,) + spatial
    inter = (p * t).sum(dim=dims)
    union = p.sum(dim=dims) + t.sum(dim=dims)
    score = (2.0 * inter + smooth_nr) / (union + smooth_dr)
    loss = 1.0 - score  # shape (N, C) per image, (C) for the batch
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


# --------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------

def fmt(v):
    return "%.17g" % v


def tensor_line(name, t):
    """'tensor <name> <rank> <dims...> <values...>' in row-major order."""
    t = t.detach().contiguous()
    dims = list(t.shape)
    vals = t.reshape(-1).tolist()
    return " ".join(["tensor", name, str(len(dims))] + [str(d) for d in dims] +
                    [fmt(v) for v in vals])


class Case:
    def __init__(self, name, loss):
        self.name = name
        self.lines = ["case " + name, "loss " + loss]

    def option(self, key, value):
        self.lines.append("option %s %s" % (key, value))

    def tensor(self, name, t):
        self.lines.append(tensor_line(name, t))

    def value(self, v):
        self.lines.append("value " + fmt(v))

    def text(self):
        return "\n".join(self.lines + ["end"]) + "\n"


def seed_for(name):
    """A per-case seed, so adding or reordering cases does not change the others."""
    torch.manual_seed(BASE_SEED + zlib.crc32(name.encode()) % 100000)


def make_target(shape, kind):
    if kind == "binary":
        return (torch.rand(shape) < 0.4).to(torch.float64)
    if kind == "soft":
        return torch.rand(shape)
    raise ValueError(kind)


def record(case, loss, logits, reduction, grad_out_scalar):
    """Value (or values) and the autograd gradient of `loss` w.r.t. `logits`."""
    if reduction == "none":
        grad_out = torch.randn(loss.shape)
        (loss * grad_out).sum().backward()
        case.tensor("grad_out", grad_out)
        case.tensor("values", loss)
    else:
        grad_out = torch.tensor(grad_out_scalar)
        loss.backward(grad_out)
        case.tensor("grad_out", grad_out)
        case.value(loss.item())
    case.tensor("grad", logits.grad)


# --------------------------------------------------------------------------------------------
# bce_with_logits cases
# --------------------------------------------------------------------------------------------

S1 = (1, 1, 7)        # one spatial axis
S1B = (2, 3, 6)
S2 = (2, 3, 5, 4)     # two spatial axes
S3 = (2, 2, 2, 3, 4)  # three spatial axes


def pos_weight_shape(shape, per_channel=True):
    """The shape torch needs to apply pos_weight per channel: (C, 1, ..., 1)."""
    if not per_channel:
        return (1,)
    return (shape[1],) + (1,) * (len(shape) - 2)


def bce_case(name, shape, reduction, target="binary", weight=None, pos_weight=False,
             scale=3.0, grad_out=1.0, seed_code=False, label_smoothing=0.0, mean_over=None,
             reference=None):
    """weight: None or the weight's shape. pos_weight: False, 'channel' or 'single'.
    label_smoothing: eps (0: none). mean_over: None or 'weight_sum'. reference: None,
    'smp_SoftBCEWithLogitsLoss' (smoothing in smp's form) or 'carvana_WeightedBCELoss2d'
    (the seed class, with Carvana's weights; shape (N, 1, H, W))."""
    seed_for(name)
    case = Case(name, "bce_with_logits")
    case.lines.append("shape " + " ".join(str(d) for d in shape))
    case.option("reduction", reduction)
    if label_smoothing:
        case.option("label_smoothing", fmt(label_smoothing))
    if mean_over:
        case.option("mean_over", mean_over)
    logits = (torch.randn(shape) * scale).requires_grad_(True)
    tgt = make_target(shape, target)
    w = None if weight is None else torch.rand(weight) * 1.5 + 0.25
    if reference == "carvana_WeightedBCELoss2d":
        assert weight is None and shape[1] == 1
        n, _, h, wd = shape
        w = carvana_weights(tgt.view(n, h, wd), 3).view(shape)
    pw = None
    if pos_weight:
        pw = torch.rand(pos_weight_shape(shape, pos_weight == "channel")) * 3.0 + 0.2
    case.tensor("logits", logits)
    case.tensor("target", tgt)
    if w is not None:
        case.tensor("weight", w)
    if pw is not None:
        case.tensor("pos_weight", pw)
    if seed_code:
        # Carvana BCELoss2d: nn.BCEWithLogitsLoss (reduction mean) on flattened views.
        assert reduction == "mean" and w is None and pw is None
        case.option("reference", "carvana_BCELoss2d")
        loss = BCELoss2d()(logits, tgt)
    elif reference == "carvana_WeightedBCELoss2d":
        assert reduction == "mean" and mean_over == "weight_sum" and not label_smoothing
        case.option("reference", reference)
        n, _, h, wd = shape
        loss = WeightedBCELoss2d()(logits.view(n, h, wd), tgt.view(n, h, wd), w.view(n, h, wd))
    else:
        if reference == "smp_SoftBCEWithLogitsLoss":
            s = label_smoothing / 2  # smp's smooth_factor
            case.option("reference", reference)
            soft = (1 - tgt) * s + tgt * (1 - s)
        else:
            assert reference is None
            soft = tgt * (1 - label_smoothing) + label_smoothing / 2
        # The definition: torch.nn.functional.binary_cross_entropy_with_logits.
        if mean_over == "weight_sum" and reduction == "mean":
            per = F.binary_cross_entropy_with_logits(logits, soft, weight=w, pos_weight=pw,
                                                     reduction="none")
            total = w.expand(shape).sum() if w is not None else torch.tensor(per.numel() * 1.0)
            loss = per.sum() / total
        else:
            loss = F.binary_cross_entropy_with_logits(logits, soft, weight=w, pos_weight=pw,
                                                      reduction=reduction)
    record(case, loss, logits, reduction, grad_out)
    return case


def bce_cases():
    cs = []
    for r in ("mean", "sum", "none"):
        cs.append(bce_case("bce_2d_plain_" + r, S2, r))
        cs.append(bce_case("bce_1d_plain_" + r, S1, r))
    for r in ("mean", "none"):
        cs.append(bce_case("bce_3d_plain_" + r, S3, r))
        cs.append(bce_case("bce_1d_b_plain_" + r, S1B, r))
        cs.append(bce_case("bce_2d_soft_target_" + r, S2, r, target="soft"))
    cs.append(bce_case("bce_2d_plain_mean_grad_out", S2, "mean", grad_out=0.37))
    cs.append(bce_case("bce_2d_plain_sum_grad_out", S2, "sum", grad_out=-1.75))
    # weight broadcasting (PyTorch's rule: right-aligned, each extent 1 or equal)
    N, C, H, W = S2
    for r in ("mean", "sum", "none"):
        cs.append(bce_case("bce_2d_weight_full_" + r, S2, r, weight=S2))
        cs.append(bce_case("bce_2d_weight_n1hw_" + r, S2, r, weight=(N, 1, H, W)))
    for r in ("mean", "sum"):
        cs.append(bce_case("bce_2d_weight_c11_" + r, S2, r, weight=(C, 1, 1)))
    cs.append(bce_case("bce_2d_weight_one_mean", S2, "mean", weight=(1,)))
    cs.append(bce_case("bce_2d_weight_hw_sum", S2, "sum", weight=(H, W)))
    cs.append(bce_case("bce_2d_weight_w_mean", S2, "mean", weight=(W,)))
    cs.append(bce_case("bce_2d_weight_nc11_none", S2, "none", weight=(N, C, 1, 1)))
    cs.append(bce_case("bce_2d_weight_1c1w_mean", S2, "mean", weight=(1, C, 1, W)))
    cs.append(bce_case("bce_2d_weight_c11_soft_none", S2, "none", target="soft",
                       weight=(C, 1, 1)))
    n3, c3, d3, h3, w3 = S3
    cs.append(bce_case("bce_3d_weight_n1dhw_mean", S3, "mean", weight=(n3, 1, d3, h3, w3)))
    cs.append(bce_case("bce_3d_weight_c111_sum", S3, "sum", weight=(c3, 1, 1, 1)))
    cs.append(bce_case("bce_3d_weight_hw_none", S3, "none", weight=(h3, w3)))
    cs.append(bce_case("bce_1d_weight_l_mean", S1, "mean", weight=(S1[2],)))
    cs.append(bce_case("bce_1d_b_weight_nc1_none", S1B, "none", weight=(S1B[0], S1B[1], 1)))
    # pos_weight: torch shape (C, 1, ..., 1); segloss takes the C values
    for r in ("mean", "sum", "none"):
        cs.append(bce_case("bce_2d_pos_weight_" + r, S2, r, pos_weight="channel"))
    for r in ("mean", "none"):
        cs.append(bce_case("bce_3d_pos_weight_" + r, S3, r, pos_weight="channel"))
    cs.append(bce_case("bce_1d_pos_weight_sum", S1, "sum", pos_weight="channel"))
    cs.append(bce_case("bce_1d_b_pos_weight_none", S1B, "none", pos_weight="channel"))
    cs.append(bce_case("bce_2d_pos_weight_single_mean", S2, "mean", pos_weight="single"))
    cs.append(bce_case("bce_2d_pos_weight_soft_mean", S2, "mean", target="soft",
                       pos_weight="channel"))
    # weight and pos_weight together
    for r in ("mean", "sum", "none"):
        cs.append(bce_case("bce_2d_weight_n1hw_pos_weight_" + r, S2, r, weight=(N, 1, H, W),
                           pos_weight="channel"))
    cs.append(bce_case("bce_2d_weight_full_pos_weight_soft_none", S2, "none", target="soft",
                       weight=S2, pos_weight="channel"))
    cs.append(bce_case("bce_3d_weight_c111_pos_weight_mean", S3, "mean", weight=(c3, 1, 1, 1),
                       pos_weight="channel"))
    cs.append(bce_case("bce_1d_b_weight_l_pos_weight_sum", S1B, "sum", weight=(S1B[2],),
                       pos_weight="channel", grad_out=2.5))
    # large logits (|x| up to ~100): the stable log-sum-exp form
    for r in ("mean", "none"):
        cs.append(bce_case("bce_2d_large_logits_" + r, S2, r, scale=30.0))
    cs.append(bce_case("bce_2d_large_logits_pos_weight_weight_none", S2, "none", scale=30.0,
                       weight=(N, 1, H, W), pos_weight="channel"))
    # the Carvana seed BCELoss2d == bce_with_logits with reduction mean
    cs.append(bce_case("bce_seed_carvana_BCELoss2d", (3, 1, 6, 5), "mean", seed_code=True))
    cs.append(bce_case("bce_seed_carvana_BCELoss2d_multichannel", S2, "mean", seed_code=True))
    return cs


def bce_option_cases():
    """bce_with_logits with segloss's label_smoothing and mean_over options (its own file, so
    that each file stays small)."""
    N, C, H, W = S2
    n3, c3, d3, h3, w3 = S3
    cs = []
    # label smoothing (Keras' z (1 - eps) + eps / 2; smp's smooth_factor s = eps / 2)
    for r in ("mean", "sum", "none"):
        cs.append(bce_case("bce_2d_label_smoothing_0.1_" + r, S2, r, label_smoothing=0.1))
    cs.append(bce_case("bce_2d_label_smoothing_1_mean", S2, "mean", label_smoothing=1.0))
    cs.append(bce_case("bce_3d_label_smoothing_0.2_weight_pos_weight_none", S3, "none",
                       label_smoothing=0.2, weight=(n3, 1, d3, h3, w3), pos_weight="channel"))
    cs.append(bce_case("bce_1d_b_label_smoothing_0.05_soft_sum", S1B, "sum", target="soft",
                       label_smoothing=0.05, grad_out=-0.6))
    cs.append(bce_case("bce_2d_label_smoothing_large_logits_mean", S2, "mean", scale=30.0,
                       label_smoothing=0.1))
    cs.append(bce_case("bce_2d_smp_smooth_factor_0.1_mean", S2, "mean", label_smoothing=0.2,
                       reference="smp_SoftBCEWithLogitsLoss"))
    cs.append(bce_case("bce_2d_smp_smooth_factor_0.05_pos_weight_weight_none", S2, "none",
                       label_smoothing=0.1, pos_weight="channel", weight=(C, 1, 1),
                       reference="smp_SoftBCEWithLogitsLoss"))
    # mean over the weight sum (the weight expanded to the input shape)
    for ws, tag in ((S2, "full"), ((N, 1, H, W), "n1hw"), ((C, 1, 1), "c11"), ((W,), "w"),
                    ((1,), "one")):
        cs.append(bce_case("bce_2d_weight_%s_mean_over_weight_sum" % tag, S2, "mean", weight=ws,
                           mean_over="weight_sum"))
    cs.append(bce_case("bce_2d_no_weight_mean_over_weight_sum", S2, "mean",
                       mean_over="weight_sum"))
    cs.append(bce_case("bce_3d_weight_c111_pos_weight_mean_over_weight_sum", S3, "mean",
                       weight=(c3, 1, 1, 1), pos_weight="channel", mean_over="weight_sum",
                       grad_out=0.37))
    cs.append(bce_case("bce_2d_weight_n1hw_sum_mean_over_weight_sum", S2, "sum",
                       weight=(N, 1, H, W), mean_over="weight_sum"))
    cs.append(bce_case("bce_2d_weight_full_label_smoothing_mean_over_weight_sum", S2, "mean",
                       weight=S2, mean_over="weight_sum", label_smoothing=0.1,
                       target="soft"))
    # the Carvana seed WeightedBCELoss2d == bce_with_logits(weight, mean_over weight_sum)
    cs.append(bce_case("bce_seed_carvana_WeightedBCELoss2d", (2, 1, 8, 7), "mean",
                       mean_over="weight_sum", reference="carvana_WeightedBCELoss2d"))
    cs.append(bce_case("bce_seed_carvana_WeightedBCELoss2d_b", (3, 1, 5, 9), "mean",
                       mean_over="weight_sum", reference="carvana_WeightedBCELoss2d",
                       grad_out=-1.75))
    return cs


# --------------------------------------------------------------------------------------------
# soft_dice cases
# --------------------------------------------------------------------------------------------

def dice_case(name, shape, reduction, smooth_nr=1e-5, smooth_dr=1e-5, per_image=True,
              activation="sigmoid", target="binary", scale=3.0, grad_out=1.0, empty_planes=(),
              seed_code=False):
    """empty_planes: (n, c) pairs whose target (and, for activation none, input) is all 0."""
    seed_for(name)
    case = Case(name, "soft_dice")
    case.lines.append("shape " + " ".join(str(d) for d in shape))
    case.option("reduction", reduction)
    case.option("smooth_nr", fmt(smooth_nr))
    case.option("smooth_dr", fmt(smooth_dr))
    case.option("per_image", "1" if per_image else "0")
    case.option("activation", activation)
    if activation == "sigmoid":
        x = torch.randn(shape) * scale
    else:
        x = torch.rand(shape)  # probabilities
    tgt = make_target(shape, target)
    for n, c in empty_planes:
        tgt[n, c] = 0.0
        if activation == "none":
            x[n, c] = 0.0
    x.requires_grad_(True)
    case.tensor("logits", x)
    case.tensor("target", tgt)
    if seed_code:
        # Carvana SoftDiceLoss: per image over all of C * spatial, 2 (I + 1) / (U + 1);
        # with C = 1 that is per_image, smooth_nr = 2, smooth_dr = 1, mean.
        assert shape[1] == 1 and reduction == "mean" and per_image
        assert (smooth_nr, smooth_dr, activation) == (2.0, 1.0, "sigmoid")
        case.option("reference", "carvana_SoftDiceLoss")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # F.sigmoid deprecation
            loss = SoftDiceLoss()(x, tgt)
    else:
        loss = soft_dice_reference(x, tgt, reduction, smooth_nr, smooth_dr, per_image,
                                   activation)
    record(case, loss, x, reduction, grad_out)
    return case


def dice_cases():
    cs = []
    for per_image, tag in ((True, "image"), (False, "batch")):
        for r in ("mean", "sum", "none"):
            cs.append(dice_case("dice_2d_%s_%s" % (tag, r), S2, r, per_image=per_image))
            cs.append(dice_case("dice_2d_%s_probs_%s" % (tag, r), S2, r, per_image=per_image,
                                activation="none"))
        for r in ("mean", "none"):
            cs.append(dice_case("dice_3d_%s_%s" % (tag, r), S3, r, per_image=per_image))
            cs.append(dice_case("dice_1d_%s_%s" % (tag, r), S1, r, per_image=per_image))
            cs.append(dice_case("dice_1d_b_%s_%s" % (tag, r), S1B, r, per_image=per_image))
        cs.append(dice_case("dice_2d_%s_soft_target_none" % tag, S2, "none",
                            per_image=per_image, target="soft"))
        cs.append(dice_case("dice_3d_%s_probs_soft_target_sum" % tag, S3, "sum",
                            per_image=per_image, activation="none", target="soft"))
    # smooth terms
    for nr, dr, tag in ((1.0, 1.0, "1_1"), (2.0, 1.0, "2_1"), (0.0, 0.0, "0_0"),
                        (0.0, 1e-3, "0_1e-3"), (0.5, 0.0, "0.5_0")):
        cs.append(dice_case("dice_2d_image_smooth_%s_mean" % tag, S2, "mean", smooth_nr=nr,
                            smooth_dr=dr))
        cs.append(dice_case("dice_2d_batch_smooth_%s_none" % tag, S2, "none", smooth_nr=nr,
                            smooth_dr=dr, per_image=False))
    cs.append(dice_case("dice_2d_image_probs_smooth_1_1_none", S2, "none", smooth_nr=1.0,
                        smooth_dr=1.0, activation="none"))
    cs.append(dice_case("dice_2d_image_mean_grad_out", S2, "mean", grad_out=0.37))
    cs.append(dice_case("dice_2d_batch_sum_grad_out", S2, "sum", per_image=False,
                        grad_out=-1.75))
    # empty planes: target all 0 (and probabilities all 0 for activation none)
    cs.append(dice_case("dice_2d_image_empty_target_none", S2, "none",
                        empty_planes=((0, 1), (1, 2))))
    cs.append(dice_case("dice_2d_image_probs_empty_mean", S2, "mean", activation="none",
                        empty_planes=((0, 1), (1, 2))))
    cs.append(dice_case("dice_2d_image_probs_empty_smooth_1_1_none", S2, "none",
                        smooth_nr=1.0, smooth_dr=1.0, activation="none",
                        empty_planes=((1, 0),)))
    # large logits: saturated sigmoid
    cs.append(dice_case("dice_2d_image_large_logits_mean", S2, "mean", scale=30.0))
    # the Carvana seed SoftDiceLoss == soft_dice(smooth_nr=2, smooth_dr=1, per_image, mean)
    cs.append(dice_case("dice_seed_carvana_SoftDiceLoss", (3, 1, 6, 5), "mean", smooth_nr=2.0,
                        smooth_dr=1.0, seed_code=True))
    cs.append(dice_case("dice_seed_carvana_SoftDiceLoss_1d", (4, 1, 9), "mean", smooth_nr=2.0,
                        smooth_dr=1.0, seed_code=True))
    cs.append(dice_case("dice_seed_carvana_SoftDiceLoss_3d", (2, 1, 2, 3, 4), "mean",
                        smooth_nr=2.0, smooth_dr=1.0, target="soft", seed_code=True))
    return cs


# --------------------------------------------------------------------------------------------

def write(filename, loss, cases, generator="tests/golden/generate.py"):
    """Writes the cases to tests/golden/<filename>; other generators pass their own name."""
    names = [c.name for c in cases]
    assert len(set(names)) == len(names), "duplicate case names"
    path = os.path.join(HERE, filename)
    with open(path, "w") as f:
        f.write("# segloss golden data for %s: generated by %s\n" % (loss, generator))
        f.write("# torch %s, float64, base seed %d. Do not edit; regenerate.\n"
                % (torch.__version__, BASE_SEED))
        f.write("torch %s\n" % torch.__version__)
        for c in cases:
            f.write(c.text())
        f.write("count %d\n" % len(cases))
    print("%s: %d cases, %d bytes" % (path, len(cases), os.path.getsize(path)))


def main():
    write("bce_with_logits.txt", "bce_with_logits", bce_cases())
    write("bce_with_logits_options.txt", "bce_with_logits", bce_option_cases())
    write("soft_dice.txt", "soft_dice", dice_cases())
    return 0


if __name__ == "__main__":
    sys.exit(main())
