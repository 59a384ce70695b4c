"""Families "bcedice" (bce_dice, kind "bd") and "combined" (ce_dice with labels "cd" or
probabilities "cdp", dice_focal "dfo") against float64 PyTorch references written here.

Semantics matched (our code, from the documented formulas):
  - BCE: torch.nn.functional.binary_cross_entropy_with_logits (weight, pos_weight broadcast per
    channel, reduction), with segloss's extensions of losses/bce_with_logits.hpp: label smoothing
    z' = z (1 - eps) + eps / 2 and mean_over weight_sum (the sum over the weight sum, 0 where it
    is 0);
  - cross entropy: torch.nn.functional.cross_entropy (class weight, ignore_index,
    label_smoothing, probability targets; the weighted mean over the weight sum), with
    losses/cross_entropy.hpp's mean_over valid_pixels and all_ignored policy;
  - focal: -alpha_y (1 - p_y)^gamma log p_y per pixel (Lin et al. 2017; losses/focal.hpp: the
    mean over the pixels not ignored);
  - Dice: the soft Dice of losses/overlap.hpp and softmax_overlap.hpp, (2 I + s_nr) /
    (P + T + s_dr) per image or over the batch, with pixel weights (Carvana's w^2 in every sum,
    or albu's w on the inputs), squared sums, class weights, include_background, the empty-target
    policy, and the focal, log and clamp forms (MONAI's DiceLoss has this score).
ce_dice and dice_focal are MONAI's DiceCELoss / DiceFocalLoss in shape (losses/combined.hpp).
"""
import math

import numpy as np
import torch
import torch.nn.functional as F

from accurate import SigmoidAcc, SoftmaxAcc, SoftplusAcc, neg_log_softmax
from cases import bcast_shape, rand_logits, rand_spatial

torch.set_default_dtype(torch.float64)

# ------------------------------------------------------------------------------ Dice options


def gen_dice_opts(rng, f, pre, C, full=None):
    """Random Dice options under prefix `pre`; pixel weights only when `full` (the input shape)
    is given."""
    f[pre + "reduction"] = str(rng.choice(["mean", "sum"]))
    f[pre + "smooth_nr"] = float(rng.choice([1e-5, 0.0, 1.0, 2.0]))
    f[pre + "smooth_dr"] = float(rng.choice([1e-5, 1.0, 1e-3]))
    f[pre + "per_image"] = int(rng.random() < 0.6)
    f[pre + "squared"] = int(rng.random() < 0.3)
    if rng.random() < 0.3:
        f[pre + "class_weight"] = rng.choice([0.0, 0.5, 1.0, 2.0, 3.7], size=C)
    if C > 1 and rng.random() < 0.3:
        f[pre + "include_background"] = 0
    f[pre + "empty"] = str(rng.choice(["formula", "formula", "one", "zero", "skip"]))
    form = rng.choice(["linear", "linear", "focal", "log", "clamp"])
    if form == "focal":
        f[pre + "gamma"] = float(rng.choice([0.5, 2.0, 1.5, 3.0]))
    elif form == "log":
        f[pre + "log"] = 1
        if f[pre + "smooth_nr"] == 0.0:
            f[pre + "smooth_nr"] = 1.0  # -log(0) is a documented inf, not worth comparing
    elif form == "clamp":
        f[pre + "clamp"] = 1
    if full is not None and rng.random() < 0.35:
        f[pre + "weight"] = rng.choice([0.0, 0.5, 1.0, 0.25, 0.9], size=bcast_shape(rng, full))
        f[pre + "weighting"] = str(rng.choice(["squared", "on_inputs"]))


def _opt(f, pre, key, default):
    return f.get(pre + key, default)


def dice_scores(p, t, w_inter, w_sums, f, pre):
    """Scores (2 I + s_nr) / (P + T + s_dr), one per (image, class) or per class; p, t are
    (N, C, pixels), the weights broadcast to them. Returns the scores (rows, C) and T (rows, C)."""
    k = 2 if int(_opt(f, pre, "squared", 0)) else 1
    inter = (w_inter * p * t).sum(-1)
    p_sum = (w_sums * p ** k).sum(-1)
    t_sum = (w_sums * t ** k).sum(-1)
    if not int(_opt(f, pre, "per_image", 1)):
        inter, p_sum, t_sum = inter.sum(0), p_sum.sum(0), t_sum.sum(0)
    s_nr = float(_opt(f, pre, "smooth_nr", 1e-5))
    s_dr = float(_opt(f, pre, "smooth_dr", 1e-5))
    C = p.shape[1]
    scores = (2 * inter + s_nr) / (p_sum + t_sum + s_dr)
    return scores.reshape(-1, C), t_sum.reshape(-1, C)


def kept_scores(scores, t_sums, f, pre):
    """The (score, class weight) pairs counted: include_background drops class 0; a score whose
    target is empty becomes the constant 1 or 0, or is skipped, by the empty policy."""
    C = scores.shape[1]
    cw = _opt(f, pre, "class_weight", None)
    cw = torch.tensor(cw) if cw is not None else torch.ones(C)
    empty = _opt(f, pre, "empty", "formula")
    include_background = int(_opt(f, pre, "include_background", 1))
    kept = []
    for row in range(scores.shape[0]):
        for c in range(C):
            if c == 0 and not include_background:
                continue
            s = scores[row, c]
            if t_sums[row, c].item() == 0 and empty != "formula":
                if empty == "skip":
                    continue
                s = torch.tensor(1.0 if empty == "one" else 0.0)  # a constant: no gradient
            kept.append((s, cw[c]))
    return kept


def reduce_scores(kept, f, pre):
    """The loss from the kept scores S and class weights w: linear sum w (1 - S), focal
    sum w max(1 - S, 0)^gamma, log -log(sum w S / n) (mean) or -sum w log S, clamp
    1 - clamp(sum w S / n, 0, 1) (mean) or sum w (1 - clamp(S, 0, 1)); mean divides by n."""
    if not kept:
        return torch.tensor(0.0)
    S = torch.stack([s for s, _ in kept])
    w = torch.stack([c for _, c in kept])
    n = len(kept)
    mean = _opt(f, pre, "reduction", "mean") == "mean"
    if int(_opt(f, pre, "log", 0)):
        return -torch.log((w * S).sum() / n) if mean else (-w * torch.log(S)).sum()
    if int(_opt(f, pre, "clamp", 0)):
        if mean:
            return 1 - torch.clamp((w * S).sum() / n, 0, 1)
        return (w * (1 - torch.clamp(S, 0, 1))).sum()
    loss = 1 - S
    gamma = float(_opt(f, pre, "gamma", 1.0))
    if gamma != 1.0:
        loss = torch.clamp(loss, min=0) ** gamma
    return (w * loss).sum() / n if mean else (w * loss).sum()


def dice_loss(p, t, w_inter, w_sums, f, pre):
    """The Dice loss of p and t (N, C, pixels) with options under `pre`."""
    scores, t_sums = dice_scores(p, t, w_inter, w_sums, f, pre)
    return reduce_scores(kept_scores(scores, t_sums, f, pre), f, pre) + p.sum() * 0.0


def broadcast(w, full):
    return torch.tensor(np.broadcast_to(w, full).copy())


# ------------------------------------------------------------------------------ bce_dice


def _gen_binary_target(rng, shape):
    mode = rng.choice(["bin", "bin", "soft", "empty", "full", "sparse"])
    if mode == "bin":
        return (rng.random(shape) < 0.5).astype(float)
    if mode == "soft":
        return rng.random(shape)
    if mode == "empty":
        return np.zeros(shape)
    if mode == "full":
        return np.ones(shape)
    return (rng.random(shape) < 0.05).astype(float)


def _gen_pos_weight(rng, C, axes):
    """pos_weight as (C), (1), (C, 1, ...) or (1, C, 1, ...)."""
    layout = rng.choice(["c", "one", "c11", "1c11"])
    values = rng.choice([0.5, 1.0, 2.0, 10.0], size=C)
    if layout == "c":
        return values
    if layout == "one":
        return values[:1]
    if layout == "c11":
        return values.reshape([C] + [1] * axes)
    return values.reshape([1, C] + [1] * axes)


def gen_bcedice(rng):
    N = int(rng.integers(1, 4))
    C = int(rng.choice([1, 1, 2, 3, 4]))
    sp = rand_spatial(rng, 400)
    shape = [N, C] + sp
    f = {"x": rand_logits(rng, shape), "z": _gen_binary_target(rng, shape),
         "bce_weight": float(rng.choice([1.0, 0.5, 2.0, 0.0])),
         "dice_weight": float(rng.choice([1.0, 0.5, 3.0, 0.0])),
         "b.reduction": str(rng.choice(["mean", "sum"]))}
    if rng.random() < 0.35:
        f["b.weight"] = rng.choice([0.0, 0.5, 1.0, 2.0, 3.3], size=bcast_shape(rng, shape))
        f["b.mean_over"] = str(rng.choice(["elements", "weight_sum"]))
        if rng.random() < 0.1:
            f["b.weight"][...] = 0.0
    if rng.random() < 0.3:
        f["b.pos_weight"] = _gen_pos_weight(rng, C, len(sp))
    if rng.random() < 0.3:
        f["b.label_smoothing"] = float(rng.choice([0.1, 0.2, 1.0, 0.05]))
    gen_dice_opts(rng, f, "d.", C, shape)
    return "bd", f


def bce_term(x, z, f):
    """w [(1 - z') softplus(x) + pw z' softplus(-x)], summed or averaged (the documented formula;
    PyTorch's own pos_weight path loses precision at saturated logits: softplus(-30) is off by
    1e-2 relative there)."""
    shape = list(x.shape)
    C = shape[1]
    eps = float(f.get("b.label_smoothing", 0.0))
    zs = z * (1 - eps) + eps / 2
    pos_weight = torch.ones(1)
    if "b.pos_weight" in f:
        pv = np.asarray(f["b.pos_weight"]).ravel()
        pos_weight = torch.tensor(np.repeat(pv, C) if pv.size == 1 else pv)
        pos_weight = pos_weight.reshape([C] + [1] * (len(shape) - 2))
    per_element = (1 - zs) * SoftplusAcc.apply(x) + pos_weight * zs * SoftplusAcc.apply(-x)
    weight = broadcast(f["b.weight"], shape) if "b.weight" in f else None
    total = (per_element * weight).sum() if weight is not None else per_element.sum()
    if f["b.reduction"] == "sum":
        return total
    if f.get("b.mean_over", "elements") == "weight_sum" and weight is not None:
        return total / weight.sum() if weight.sum().item() != 0 else x.sum() * 0.0
    return total / x.numel()


def sigmoid_dice_term(x, z, f):
    """soft_dice on sigmoid(x): weighting squared puts w^2 in every sum; on_inputs uses p w and
    t w (so w^2 in I, w^k in the k-th powers)."""
    N, C = x.shape[:2]
    p = SigmoidAcc.apply(x).reshape(N, C, -1)
    t = z.reshape(N, C, -1)
    if "d.weight" not in f:
        return dice_loss(p, t, torch.ones(1), torch.ones(1), f, "d.")
    k = 2 if int(f.get("d.squared", 0)) else 1
    w = broadcast(f["d.weight"], list(x.shape)).reshape(N, C, -1)
    w_sums = w ** 2 if f["d.weighting"] == "squared" else w ** k
    return dice_loss(p, t, w ** 2, w_sums, f, "d.")


def ref_bcedice(kind, f):
    x = torch.tensor(f["x"], requires_grad=True)
    z = torch.tensor(f["z"])
    bce = bce_term(x, z, f)
    dice = sigmoid_dice_term(x, z, f)
    loss = f["bce_weight"] * bce + f["dice_weight"] * dice
    loss.backward()
    return {"value": loss.item(), "fwd": loss.item(), "part_bce": bce.item(),
            "part_dice": dice.item(), "grad": x.grad.numpy()}


# ------------------------------------------------------------------------------ ce_dice, dice_focal


def _gen_labels(rng, N, C, sp, ignore):
    y = rng.integers(0, C, size=[N] + sp)
    mode = rng.choice(["rand", "rand", "one", "allig", "someig", "imgig"])
    if mode == "one":  # one class everywhere
        y[:] = rng.integers(0, C)
    elif mode == "allig":  # every pixel ignored
        y[:] = ignore
    elif mode == "someig":  # 30 % ignored
        y[rng.random(y.shape) < 0.3] = ignore
    elif mode == "imgig":  # the first image ignored
        y[0] = ignore
    return y


def _gen_probabilities(rng, shape, N, C, sp):
    q = rng.random(shape) ** 3
    q /= q.sum(1, keepdims=True)
    if rng.random() < 0.3:  # one-hot probabilities
        q = np.moveaxis(np.eye(C)[rng.integers(0, C, size=[N] + sp)], -1, 1).copy()
    return q


def _gen_ce_opts(rng, f, kind, C, ignore):
    f["ce_weight"] = float(rng.choice([1.0, 0.5, 2.0, 0.0]))
    f["dice_weight"] = float(rng.choice([1.0, 0.5, 3.0, 0.0]))
    f["c.reduction"] = str(rng.choice(["mean", "sum"]))
    f["c.ignore_index"] = ignore
    if rng.random() < 0.3:
        f["c.weight"] = rng.choice([0.0, 0.5, 1.0, 2.0], size=C)
    if rng.random() < 0.3:
        f["c.label_smoothing"] = float(rng.choice([0.1, 0.3, 1.0]))
    if kind == "cd" and rng.random() < 0.2:
        f["c.mean_over"] = "valid_pixels"
    if rng.random() < 0.3:
        f["c.all_ignored"] = "nan"


def _gen_focal_opts(rng, f, C, ignore):
    f["dice_weight"] = float(rng.choice([1.0, 0.5, 3.0, 0.0]))
    f["focal_weight"] = float(rng.choice([1.0, 0.5, 2.0, 0.0]))
    f["f.reduction"] = str(rng.choice(["mean", "sum"]))
    f["f.ignore_index"] = ignore
    f["f.gamma"] = float(rng.choice([2.0, 0.0, 0.5, 1.0, 3.0, 1.7]))
    if rng.random() < 0.4:
        f["f.alpha"] = rng.choice([0.25, 0.75, 1.0, 0.0], size=C)


def gen_combined(rng):
    N = int(rng.integers(1, 4))
    C = int(rng.choice([1, 2, 3, 4, 5]))
    sp = rand_spatial(rng, 300)
    shape = [N, C] + sp
    f = {"x": rand_logits(rng, shape)}
    kind = str(rng.choice(["cd", "cd", "cdp", "dfo", "dfo"]))
    ignore = int(rng.choice([-100, 255, -1, 0]))
    y = _gen_labels(rng, N, C, sp, ignore)
    if kind == "cdp":  # probability targets: nothing ignored
        ignore = -100
        f["q"] = _gen_probabilities(rng, shape, N, C, sp)
    else:
        y[(y < 0) & (y != ignore)] = 0
        f["y"] = y.astype(np.int64)
    gen_dice_opts(rng, f, "d.", C)
    if C == 1:
        f.pop("d.include_background", None)
    f["d.ignore_index"] = ignore
    if kind == "dfo":
        _gen_focal_opts(rng, f, C, ignore)
    else:
        _gen_ce_opts(rng, f, kind, C, ignore)
    return kind, f


def softmax_dice_term(p, t, valid, f):
    """softmax_dice of p and t (N, C, spatial...), the pixels where `valid` is false dropped."""
    N, C = p.shape[:2]
    keep = valid.reshape(N, 1, -1)
    pm = torch.where(keep, p.reshape(N, C, -1), torch.zeros(1))
    tm = torch.where(keep, t.reshape(N, C, -1), torch.zeros(1))
    return dice_loss(pm, tm, torch.ones(1), torch.ones(1), f, "d.")


def ce_probabilities(x, q, f):
    """Cross entropy against probability targets q: sum_c w_c q'_c (-log p_c) per pixel,
    q' = (1 - eps) q + eps / C; mean over the pixels or sum."""
    C = x.shape[1]
    w = torch.tensor(f["c.weight"]) if "c.weight" in f else torch.ones(C)
    eps = float(f.get("c.label_smoothing", 0.0))
    qs = (1 - eps) * q + eps / C
    per_pixel = (w.view([1, C] + [1] * (x.dim() - 2)) * qs * neg_log_softmax(x)).sum(1)
    return per_pixel.sum() / per_pixel.numel() if f["c.reduction"] == "mean" else per_pixel.sum()


def ce_labels(x, y, f):
    """Cross entropy against labels: (1 - eps) w_y (-log p_y) + (eps / C) sum_c w_c (-log p_c)
    per pixel not ignored. Returns (per-pixel losses, the divisor): the divisor is 1 for sum, the
    valid pixels' count (mean_over valid_pixels) or their weight sum w_y (PyTorch's mean). With
    every pixel ignored the divisor of a mean is None (the all_ignored policy)."""
    C = x.shape[1]
    nl = neg_log_softmax(x)
    w = torch.tensor(f["c.weight"]) if "c.weight" in f else torch.ones(C)
    eps = float(f.get("c.label_smoothing", 0.0))
    valid = y != f["c.ignore_index"]
    y_safe = torch.where(valid, y, torch.zeros_like(y))
    w_y = w[y_safe]
    smooth = (w.view([1, C] + [1] * (x.dim() - 2)) * nl).sum(1)
    per_pixel = (1 - eps) * w_y * nl.gather(1, y_safe.unsqueeze(1)).squeeze(1) + (eps / C) * smooth
    per_pixel = torch.where(valid, per_pixel, torch.zeros(1))
    if f["c.reduction"] == "sum":
        return per_pixel, 1.0
    if not valid.any():
        return per_pixel, None
    if f.get("c.mean_over") == "valid_pixels":
        return per_pixel, float(valid.sum())
    return per_pixel, w_y[valid].sum()


def focal_term(x, p, t, y_safe, valid, f):
    """softmax_focal: -alpha_y (1 - p_y)^gamma log p_y per pixel not ignored, 1 - p_y computed as
    the other classes' sum; the mean over those pixels (0 without any) or the sum."""
    gamma = f["f.gamma"]
    log_py = -neg_log_softmax(x).gather(1, y_safe.unsqueeze(1)).squeeze(1)
    one_minus = (p * (1 - t)).sum(1)
    if gamma == 0:
        modulating = torch.ones_like(one_minus)
    else:  # 0^gamma = 0, with a zero (not NaN) derivative at 0
        pos = one_minus > 0
        base = torch.where(pos, one_minus, torch.ones_like(one_minus))
        modulating = torch.where(pos, base ** gamma, torch.zeros_like(one_minus))
    alpha = torch.tensor(f["f.alpha"])[y_safe] if "f.alpha" in f else torch.ones_like(log_py)
    per_pixel = torch.where(valid, -alpha * modulating * log_py, torch.zeros(1))
    count = int(valid.sum())
    if f["f.reduction"] == "sum":
        return per_pixel.sum()
    return per_pixel.sum() / count if count else per_pixel.sum() * 0.0


def _grad(loss, x):
    (g,) = torch.autograd.grad(loss, x, retain_graph=True)
    return g.numpy()


def _ce_dice_total(x, ce, dice, f):
    loss = f["ce_weight"] * ce + f["dice_weight"] * dice
    loss.backward()
    return {"value": loss.item(), "fwd": loss.item(), "part_ce": ce.item(),
            "part_dice": dice.item(), "grad": x.grad.numpy()}


def _ce_dice_split(x, ce_value, ce_grad, dice, f):
    """The totals from the CE term's value and gradient given apart (where autograd cannot
    express them) and the Dice term."""
    with np.errstate(invalid="ignore"):
        value = f["ce_weight"] * ce_value + f["dice_weight"] * dice.item()
        grad = f["ce_weight"] * ce_grad + f["dice_weight"] * _grad(dice, x)
    return {"value": value, "fwd": value, "part_ce": ce_value, "part_dice": dice.item(),
            "grad": grad}


def ref_ce_dice_labels(x, y, dice, f):
    per_pixel, divisor = ce_labels(x, y, f)
    if divisor is None:  # every pixel ignored, mean: all_ignored zero, or NaN (CE gradient 0)
        if f.get("c.all_ignored") == "nan":
            return _ce_dice_split(x, math.nan, np.zeros(x.shape), dice, f)
        return _ce_dice_total(x, x.sum() * 0.0, dice, f)
    if isinstance(divisor, torch.Tensor) and divisor.item() == 0:
        # a weighted mean over a zero weight sum (cross_entropy.hpp): the value sum / 0 (+-inf,
        # NaN for 0 / 0), the gradient d sum / dx / 0 on the valid pixels, 0 elsewhere
        with np.errstate(divide="ignore", invalid="ignore"):
            ce_value = float(np.float64(per_pixel.sum().item()) / 0.0)
            ce_grad = _grad(per_pixel.sum(), x) / 0.0
        valid = (y != f["c.ignore_index"]).unsqueeze(1).expand(x.shape).numpy()
        return _ce_dice_split(x, ce_value, np.where(valid, ce_grad, 0.0), dice, f)
    return _ce_dice_total(x, per_pixel.sum() / divisor, dice, f)


def ref_combined(kind, f):
    x = torch.tensor(f["x"], requires_grad=True)
    C = x.shape[1]
    p = SoftmaxAcc.apply(x)
    if kind == "cdp":
        q = torch.tensor(f["q"])
        dice = softmax_dice_term(p, q, torch.ones(q[:, 0].shape, dtype=torch.bool), f)
        return _ce_dice_total(x, ce_probabilities(x, q, f), dice, f)
    y = torch.tensor(f["y"])
    valid = y != f["d.ignore_index"]
    y_safe = torch.where(valid, y, torch.zeros_like(y))
    t = F.one_hot(y_safe, C).movedim(-1, 1).double()
    dice = softmax_dice_term(p, t, valid, f)
    if kind == "cd":
        return ref_ce_dice_labels(x, y, dice, f)
    focal = focal_term(x, p, t, y_safe, valid, f)
    loss = f["dice_weight"] * dice + f["focal_weight"] * focal
    loss.backward()
    return {"value": loss.item(), "fwd": loss.item(), "part_dice": dice.item(),
            "part_focal": focal.item(), "grad": x.grad.numpy()}
