#!/usr/bin/python3
"""Golden reference values for segloss's dice_score metric, computed with PyTorch and numpy.

Run from anywhere with a Python that has torch (Debian: /usr/bin/python3 with python3-torch):

    /usr/bin/python3 tests/golden/generate_dice_score.py

It rewrites tests/golden/dice_score.txt next to this script, in the format of the other golden
files (README.md in this folder). tests/test_golden_dice_score.cpp reads it.

Every case is computed by header_reference(): the formulas of metrics/dice_score.hpp in torch
ops, in float64 (q = [p > threshold] or torch.round(p); per score I, P, G over the cropped
pixels; S = (2 I + smooth_nr) / (P + G + smooth_dr); the empty policy; the mean; the clamp).
The generator also evaluates every case with float32 inputs and stops unless the hard
predictions are the same, so the C++ test can expect equal scores in float and double.

Seed cases (`option reference ...`) are computed with the seeds' own code as well, and the
generator stops unless the seed and the header reference agree (1e-12 relative; 2e-7 for
Pytorch-UNet, whose DiceCoeff rounds each score to float32 with .float()). The seed's own mean
is stored as `option seed_value`, and is also the case's value except for Pytorch-UNet, whose
value is the header's float64 mean:
  * carvana_DiceScore: DiceScore(threshold) from /work/shared/seeds/segmentation-losses-note.md
    ("3 loss与bce叠加", loss.py), verbatim.
  * carvana_dice_score_np: dice_score_np from the same file, verbatim (numpy).
  * pytorch_unet_eval: eval_net's "(F.sigmoid(y_pred) > 0.6).float()" then dice_coeff, with the
    seed's DiceCoeff.forward ("2 bce loss"). Three spellings: the forward is called as a plain
    function (torch 1.13 refuses legacy autograd Function instances; the body is unchanged
    except that save_for_backward is dropped); torch.dot gets input.view(-1) and
    target.view(-1) (the seed's torch 0.3 accepted n-d tensors in dot, current torch only 1-D);
    and dice_coeff -- which the note calls but does not show; it is the Pytorch-UNet loop
    "s = s + DiceCoeff().forward(c[0], c[1]) for each image; return s / (i + 1)" -- starts its
    sum from a float64 zero instead of torch.FloatTensor(1), which would round the mean to
    float32. eval_net calls it one image at a time (X.unsqueeze(0)) and averages.
  * albu_dice_clamp: albu's dice_loss and dice_clamp ("4 bce和dice loss综合"), verbatim, called as
    the training loop calls its metrics: func(F.sigmoid(ypreds)[:, :, 6:-6, 6:-6].contiguous(),
    ytrues[:, :, 6:-6, 6:-6].contiguous()).

Logits are randn * 3 rounded to multiples of 2^-10 (exact in float; none lies so close to a
threshold's logit that float32 and float64 sigmoids disagree, which the generator checks).
"""

import math
import os
import sys
import warnings

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.dont_write_bytecode = True  # no __pycache__ next to the data
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from generate import Case, seed_for, write  # noqa: E402  (the shared writer and seeds)

HERE = os.path.dirname(os.path.abspath(__file__))
OUTPUT = "dice_score.txt"

torch.set_default_dtype(torch.float64)
warnings.filterwarnings("ignore", message=".*sigmoid is deprecated.*")  # the seeds' F.sigmoid


# --------------------------------------------------------------------------------------------
# Seed code, verbatim except for the spellings listed in the docstring.
# --------------------------------------------------------------------------------------------

class DiceScore(nn.Module):
    def __init__(self, threshold=0.5):
        super(DiceScore, self).__init__()
        self.threshold = threshold

    def forward(self, logits, labels):
        probs = F.sigmoid(logits)
        num = labels.size(0)
        predicts = (probs.view(num, -1) > self.threshold).float()
        labels = labels.view(num, -1)
        intersection = (predicts * labels)
        score = 2. * (intersection.sum(1)) / (predicts.sum(1) + labels.sum(1))
        return score.mean()


def dice_score_np(predicted_masks, labels):
    assert len(predicted_masks.shape) >= 3
    num = predicted_masks.shape[0]

    predicted_masks = predicted_masks.reshape(num, -1).astype(float)
    assert predicted_masks.min() == 0 and predicted_masks.max() == 1.0
    labels = labels.reshape(num, -1)
    assert labels.min() == 0 and labels.max() == 1.0
    intersection = (predicted_masks * labels)
    assert not np.any((predicted_masks.sum(1) + labels.sum(1)) == 0)
    score = 2. * (intersection.sum(1)) / (predicted_masks.sum(1) + labels.sum(1))
    assert len(score.shape) == 1
    return score.mean()


def dice_coeff_forward(input, target):
    # DiceCoeff.forward of the seed, as a function (self.* kept as locals).
    inter = torch.dot(input.view(-1), target.view(-1)) + 0.0001
    union = torch.sum(input) + torch.sum(target) + 0.0001

    t = 2 * inter.float() / union.float()
    return t


def dice_coeff(input, target):
    # Pytorch-UNet's batch loop (not in the note), with a float64 zero as its start.
    s = torch.zeros(1, dtype=torch.float64)
    for i, c in enumerate(zip(input, target)):
        s = s + dice_coeff_forward(c[0], c[1])
    return s / (i + 1)


def pytorch_unet_eval(logits, labels):
    # eval_net: one image at a time, thresholded at 0.6, averaged.
    tot = 0.0
    for n in range(logits.shape[0]):
        y_pred = logits[n:n + 1]
        y = labels[n:n + 1]
        y_pred = (F.sigmoid(y_pred) > 0.6).float()
        dice = dice_coeff(y_pred, y.float()).item()
        tot += dice
    return tot / logits.shape[0]


def dice_loss(preds, trues, weight=None, is_average=True):
    num = preds.size(0)
    preds = preds.view(num, -1)
    trues = trues.view(num, -1)
    if weight is not None:
        w = torch.autograd.Variable(weight).view(num, -1)
        preds = preds * w
        trues = trues * w
    intersection = (preds * trues).sum(1)
    scores = 2. * (intersection + 1) / (preds.sum(1) + trues.sum(1) + 1)

    if is_average:
        score = scores.sum()/num
        return torch.clamp(score, 0., 1.)
    else:
        return scores


def dice_clamp(preds, trues, is_average=True):
    preds = torch.round(preds)
    return dice_loss(preds, trues, is_average=is_average)


def albu_metric(ypreds, ytrues):
    func = dice_clamp
    return func(F.sigmoid(ypreds)[:, :, 6:-6, 6:-6].contiguous(),
                ytrues[:, :, 6:-6, 6:-6].contiguous())


# --------------------------------------------------------------------------------------------
# The header's formulas (metrics/dice_score.hpp), in torch ops.
# --------------------------------------------------------------------------------------------

def hard_prediction(x, activation, threshold, rnd):
    p = torch.sigmoid(x) if activation == "sigmoid" else x
    if rnd:
        return torch.round(p)
    return (p > threshold).to(x.dtype)


def header_reference(x, t, activation="sigmoid", threshold=0.5, rnd=False, smooth_nr=0.0,
                     smooth_dr=0.0, per_channel=True, border=0, empty="skip", clamp=False):
    """Returns (scores, mean, skipped, empty_count, I, P, G); skipped scores are NaN."""
    q = hard_prediction(x, activation, threshold, rnd)
    if border:
        crop = (slice(None), slice(None)) + (slice(border, -border),) * (x.dim() - 2)
        q, t = q[crop], t[crop]
    dims = tuple(range(2, x.dim()))
    inter, psum, tsum = (q * t).sum(dims), q.sum(dims), t.sum(dims)
    if not per_channel:
        inter, psum, tsum = inter.sum(1), psum.sum(1), tsum.sum(1)
    scores = (2.0 * inter + smooth_nr) / (psum + tsum + smooth_dr)
    is_empty = (psum == 0) & (tsum == 0)
    skipped = 0
    if empty == "one":
        scores = torch.where(is_empty, torch.ones_like(scores), scores)
    elif empty == "zero":
        scores = torch.where(is_empty, torch.zeros_like(scores), scores)
    elif empty == "skip":
        scores = torch.where(is_empty, torch.full_like(scores, float("nan")), scores)
        skipped = int(is_empty.sum())
    counted = scores[~is_empty] if empty == "skip" else scores.reshape(-1)
    mean = counted.mean().item() if counted.numel() else float("nan")
    if clamp and not math.isnan(mean):
        mean = min(max(mean, 0.0), 1.0)
    return scores, mean, skipped, int(is_empty.sum()), inter, psum, tsum


# --------------------------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------------------------

CASES = []


def logits_like(shape, scale=3.0):
    return torch.round(torch.randn(shape) * scale * 1024.0) / 1024.0


def same(a, b):
    return (a == b) | (torch.isnan(a) & torch.isnan(b))


def close(a, b, rtol=1e-12):
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= rtol * abs(b)


def case(name, x, t, reference=None, **opts):
    full = dict(activation="sigmoid", threshold=0.5, rnd=False, smooth_nr=0.0, smooth_dr=0.0,
                per_channel=True, border=0, empty="skip", clamp=False)
    full.update(opts)
    scores, mean, skipped, n_empty, inter, psum, tsum = header_reference(x, t, **full)
    # float32 inputs: the same hard predictions.
    q64 = hard_prediction(x, full["activation"], full["threshold"], full["rnd"])
    q32 = hard_prediction(x.float(), full["activation"], full["threshold"], full["rnd"])
    assert torch.equal(q64, q32.double()), name + ": float32 predictions differ"
    if reference is not None:
        if reference == "carvana_DiceScore":
            seed = DiceScore(full["threshold"])(x, t).item()
        elif reference == "carvana_dice_score_np":
            seed = float(dice_score_np(x.numpy(), t.numpy()))
        elif reference == "pytorch_unet_eval":
            seed = pytorch_unet_eval(x, t)
        elif reference == "albu_dice_clamp":
            seed = albu_metric(x, t).item()
        else:
            raise ValueError(reference)
        if reference == "pytorch_unet_eval":
            # DiceCoeff rounds each score to float32 (inter.float() / union.float()).
            assert close(mean, seed, rtol=2e-7), (name, mean, seed)
        else:
            assert close(mean, seed), (name, mean, seed)
            mean = seed
    c = Case(name, "dice_score")
    c.lines.append("shape " + " ".join(str(d) for d in x.shape))
    if reference is not None:
        c.option("reference", reference)
        c.option("seed_value", repr(seed))
    c.option("activation", full["activation"])
    c.option("threshold", repr(full["threshold"]))
    c.option("round", int(full["rnd"]))
    c.option("smooth_nr", repr(full["smooth_nr"]))
    c.option("smooth_dr", repr(full["smooth_dr"]))
    c.option("per_channel", int(full["per_channel"]))
    c.option("border", full["border"])
    c.option("empty", full["empty"])
    c.option("clamp", int(full["clamp"]))
    c.option("skipped", skipped)
    c.option("empty_count", n_empty)
    c.tensor("pred", x)
    c.tensor("target", t)
    c.tensor("scores", scores)
    c.tensor("intersection", inter)
    c.tensor("prediction", psum)
    c.tensor("target_sum", tsum)
    c.value(mean)
    CASES.append(c)


def binary(shape, fraction=0.4):
    return (torch.rand(shape) < fraction).to(torch.float64)


def with_empty_planes(x, t, empty_both, empty_target):
    """Planes (n, c) in empty_both get no target and no predicted pixel (logits -8); planes in
    empty_target get no target but keep their prediction."""
    x, t = x.clone(), t.clone()
    for n, c in empty_both:
        x[n, c] = -8.0
        t[n, c] = 0.0
    for n, c in empty_target:
        t[n, c] = 0.0
    return x, t


def build():
    # --- seeds ---
    for thr in (0.5, 0.3, 0.8):
        name = "carvana_DiceScore_%g" % thr
        seed_for(name)
        s = (3, 1, 12, 10)
        case(name, logits_like(s), binary(s), reference="carvana_DiceScore", threshold=thr,
             per_channel=False, empty="formula")
    name = "carvana_DiceScore_channels"
    seed_for(name)
    s = (2, 3, 6, 5)
    case(name, logits_like(s), binary(s), reference="carvana_DiceScore", per_channel=False,
         empty="formula")
    for k, s in enumerate([(4, 1, 9, 11), (2, 2, 5, 6), (3, 1, 4, 5, 6)]):
        name = "carvana_dice_score_np_%d" % k
        seed_for(name)
        pm = binary(s, 0.5)
        pm.view(-1)[0], pm.view(-1)[1] = 0.0, 1.0  # the seed asserts min 0 and max 1
        lab = binary(s, 0.3)
        lab.view(-1)[0], lab.view(-1)[1] = 0.0, 1.0
        case(name, pm, lab, reference="carvana_dice_score_np", activation="none",
             per_channel=False, empty="formula")
    for k, s in enumerate([(3, 1, 10, 12), (2, 2, 7, 6)]):
        name = "pytorch_unet_eval_%d" % k
        seed_for(name)
        case(name, logits_like(s), binary(s), reference="pytorch_unet_eval", threshold=0.6,
             smooth_nr=2e-4, smooth_dr=1e-4, per_channel=False, empty="formula")
    name = "pytorch_unet_eval_empty"
    seed_for(name)
    s = (3, 1, 6, 7)
    x, t = with_empty_planes(logits_like(s), binary(s), [(1, 0)], [(2, 0)])
    case(name, x, t, reference="pytorch_unet_eval", threshold=0.6, smooth_nr=2e-4,
         smooth_dr=1e-4, per_channel=False, empty="formula")
    for k, s in enumerate([(3, 1, 20, 18), (2, 2, 16, 15)]):
        name = "albu_dice_clamp_%d" % k
        seed_for(name)
        case(name, logits_like(s), binary(s), reference="albu_dice_clamp", rnd=True,
             smooth_nr=2.0, smooth_dr=1.0, per_channel=False, border=6, clamp=True,
             empty="formula")
    name = "albu_dice_clamp_empty"  # empty images score 2: the clamp matters
    seed_for(name)
    s = (3, 1, 14, 14)
    x, t = with_empty_planes(logits_like(s), binary(s), [(0, 0), (2, 0)], [])
    case(name, x, t, reference="albu_dice_clamp", rnd=True, smooth_nr=2.0, smooth_dr=1.0,
         per_channel=False, border=6, clamp=True, empty="formula")

    # --- the header's options ---
    s = (3, 2, 8, 7)
    for policy in ("skip", "formula", "one", "zero"):
        for smooth in ((0.0, 0.0), (1.0, 1.0)):
            name = "empty_%s_smooth_%g" % (policy, smooth[0])
            seed_for(name)
            x, t = with_empty_planes(logits_like(s), binary(s), [(0, 1), (2, 0)], [(1, 1)])
            case(name, x, t, empty=policy, smooth_nr=smooth[0], smooth_dr=smooth[1])
    for policy in ("skip", "formula", "one", "zero"):
        name = "all_empty_%s" % policy
        seed_for(name)
        x = torch.full((2, 2, 4, 5), -8.0)
        case(name, x, torch.zeros(2, 2, 4, 5), empty=policy)
    name = "empty_per_image"
    seed_for(name)
    x, t = with_empty_planes(logits_like(s), binary(s), [(0, 0), (0, 1), (2, 0)], [])
    case(name, x, t, per_channel=False)
    for thr in (0.0, 0.25, 0.7, 1.0):
        name = "threshold_%g" % thr
        seed_for(name)
        case(name, logits_like((2, 2, 6, 6)), binary((2, 2, 6, 6)), threshold=thr)
    name = "threshold_half_exact_zero_logits"  # sigmoid(0) = 0.5 is not > 0.5
    seed_for(name)
    x = logits_like((2, 1, 6, 6))
    x[x.abs() < 1.0] = 0.0
    case(name, x, binary((2, 1, 6, 6)))
    name = "probabilities"
    seed_for(name)
    p = torch.round(torch.rand(2, 3, 5, 6) * 64) / 64
    p.view(-1)[::7] = 0.5  # exactly at the threshold: not > 0.5, and round(0.5) = 0
    case(name, p, binary((2, 3, 5, 6)), activation="none")
    name = "round_probabilities"
    seed_for(name)
    case(name, p, binary((2, 3, 5, 6)), activation="none", rnd=True)
    name = "round_values_half_even"  # torch.round on values outside [0, 1]: 2.5 -> 2, -0.5 -> 0
    seed_for(name)
    v = torch.round(torch.rand(2, 2, 5, 4) * 16 - 6) / 4
    case(name, v, binary((2, 2, 5, 4)), activation="none", rnd=True, empty="formula")
    name = "round_logits"
    seed_for(name)
    case(name, logits_like((2, 2, 7, 5)), binary((2, 2, 7, 5)), rnd=True)
    name = "soft_target"
    seed_for(name)
    case(name, logits_like((2, 2, 5, 5)), torch.round(torch.rand(2, 2, 5, 5) * 8) / 8)
    for b in (1, 2):
        name = "border_%d" % b
        seed_for(name)
        case(name, logits_like((2, 2, 9, 8)), binary((2, 2, 9, 8)), border=b)
    name = "border_1d"
    seed_for(name)
    case(name, logits_like((2, 2, 15)), binary((2, 2, 15)), border=3)
    name = "border_3d"
    seed_for(name)
    case(name, logits_like((2, 1, 5, 6, 7)), binary((2, 1, 5, 6, 7)), border=1)
    name = "volume"
    seed_for(name)
    case(name, logits_like((2, 2, 4, 5, 6)), binary((2, 2, 4, 5, 6)), per_channel=False)
    name = "one_spatial_axis"
    seed_for(name)
    case(name, logits_like((3, 2, 17)), binary((3, 2, 17)))
    name = "smooth_2_1_per_channel"
    seed_for(name)
    case(name, logits_like((2, 3, 6, 5)), binary((2, 3, 6, 5)), smooth_nr=2.0, smooth_dr=1.0)
    name = "clamp_empty_scores_2"
    seed_for(name)
    x, t = with_empty_planes(logits_like((3, 1, 6, 6)), binary((3, 1, 6, 6)), [(0, 0)], [])
    case(name, x, t, smooth_nr=2.0, smooth_dr=1.0, clamp=True, empty="formula")
    name = "one_pixel"
    seed_for(name)
    case(name, logits_like((2, 2, 1, 1)), binary((2, 2, 1, 1)))
    name = "large_logits"
    seed_for(name)
    case(name, logits_like((2, 2, 6, 6), scale=30.0), binary((2, 2, 6, 6)))


def main():
    build()
    write(OUTPUT, "dice_score", CASES, generator="tests/golden/generate_dice_score.py")


if __name__ == "__main__":
    main()
