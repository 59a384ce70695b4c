#!/usr/bin/python3
"""Golden reference values for segloss's ConfusionMatrix and scores, computed with numpy.

Run from anywhere with numpy (Debian: /usr/bin/python3):

    /usr/bin/python3 tests/golden/generate_metrics.py

It rewrites tests/golden/metrics.txt next to this script, in the format of the other golden files
(README.md in this folder, section "metrics"); tests/test_golden_metrics.cpp reads it. Every
number is float64 printed with '%.17g'; counts are integers; NaN is written "nan".

What the references are:
  * hist and fcn (acc, acc_cls, mean_iu, fwavacc): pytorch-fcn's _fast_hist and
    label_accuracy_score, copied verbatim from the seeds note
    (/work/shared/seeds/segmentation-losses-note.md, wkentaro/pytorch-fcn), called with the case's
    images. A pixel whose true label is the case's ignore_index is passed to them as -1, which
    their mask drops (a no-op when ignore_index is already outside [0, C)).
  * class.*, avg.*, image.*, per_image.*, kappa, mcc, pixel_accuracy: textbook definitions written
    here in numpy from the raw label arrays (not from the histogram): per class
    TP = #(t = k and p = k), FP = #(t != k and p = k), FN = #(t = k and p != k) over the counted
    pixels; IoU, Dice, precision, recall, F-beta; Cohen's kappa from p_o and p_e; the multi-class
    MCC as Gorodkin's covariance of one-hot matrices, COV(X, Y) / sqrt(COV(X, X) COV(Y, Y)).
    Undefined (0/0) values follow each policy: skip -> NaN, left out of means (np.nanmean);
    formula -> NaN, propagated (np.mean); one -> 1; zero -> 0.
  * an ignore_index inside [0, C) (cases ignore_zero, drop_with_ignore_index) names a class that
    is not scored: NaN per class whatever the policy, left out of every class mean (torchmetrics'
    macro average gives it weight 0); fcn's acc_cls and mean_iu are then the seed's nanmeans over
    the other classes (pytorch-fcn itself has no such class).
  * logits cases: the prediction is np.argmax(logits, axis=1) (first maximum; NaN wins), stored
    as tensor pred too.
Inputs are drawn from numpy's default_rng with a per-case seed (BASE_SEED + crc32(name)), so adding
or reordering cases does not change the others; logits are normal * 3 rounded to multiples of
2^-10 (exact in float as well).
"""

import os
import sys
import warnings
import zlib

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
OUTPUT = "metrics.txt"
BASE_SEED = 20240611
POLICIES = ["skip", "formula", "one", "zero"]
AVERAGES = ["micro", "macro", "weighted"]
SCORES = ["iou", "dice", "precision", "recall", "fbeta"]


# --------------------------------------------------------------------------------------------
# Seed code: pytorch-fcn's metrics, verbatim from the seeds note ("其他metrics").
# --------------------------------------------------------------------------------------------

def _fast_hist(label_true, label_pred, n_class):
    mask = (label_true >= 0) & (label_true < n_class)
    hist = np.bincount(
        n_class * label_true[mask].astype(int) +
        label_pred[mask], minlength=n_class ** 2).reshape(n_class, n_class)
    return hist


def label_accuracy_score(label_trues, label_preds, n_class):
    """Returns accuracy score evaluation result.
      - overall accuracy
      - mean accuracy
      - mean IU
      - fwavacc
    """
    hist = np.zeros((n_class, n_class))
    for lt, lp in zip(label_trues, label_preds):
        hist += _fast_hist(lt.flatten(), lp.flatten(), n_class)
    acc = np.diag(hist).sum() / hist.sum()
    acc_cls = np.diag(hist) / hist.sum(axis=1)
    acc_cls = np.nanmean(acc_cls)
    iu = np.diag(hist) / (hist.sum(axis=1) + hist.sum(axis=0) - np.diag(hist))
    mean_iu = np.nanmean(iu)
    freq = hist.sum(axis=1) / hist.sum()
    fwavacc = (freq[freq > 0] * iu[freq > 0]).sum()
    return acc, acc_cls, mean_iu, fwavacc


# --------------------------------------------------------------------------------------------
# Textbook scores from the raw labels.
# --------------------------------------------------------------------------------------------

def undefined_value(policy):
    return {"skip": np.nan, "formula": np.nan, "one": 1.0, "zero": 0.0}[policy]


def ratio(num, den, policy):
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = np.full(np.broadcast(num, den).shape, undefined_value(policy))
    ok = den != 0
    np.divide(num, den, out=out, where=ok)
    return out


def mean(values, policy, weights=None):
    v = np.asarray(values, dtype=np.float64)
    w = np.ones_like(v) if weights is None else np.asarray(weights, dtype=np.float64)
    if policy == "skip":
        keep = ~np.isnan(v)
        v, w = v[keep], w[keep]
    den = w.sum()
    if den == 0:
        return np.nan
    return float((w * v).sum() / den)


def counted(t, ignore_index, n_class):
    return (t != ignore_index) & (t >= 0) & (t < n_class)


def per_class(t, p, n_class, score, beta, policy, ignored=-1):
    """t, p: 1-D arrays of the counted pixels. The ignored class (an ignore_index inside
    [0, n_class)) is not scored: NaN whatever the policy."""
    values = per_class_scored(t, p, n_class, score, beta, policy)
    if 0 <= ignored < n_class:
        values[ignored] = np.nan
    return values


def per_class_scored(t, p, n_class, score, beta, policy):
    k = np.arange(n_class)[:, None]
    tp = ((t[None, :] == k) & (p[None, :] == k)).sum(axis=1)
    fp = ((t[None, :] != k) & (p[None, :] == k)).sum(axis=1)
    fn = ((t[None, :] == k) & (p[None, :] != k)).sum(axis=1)
    if score == "iou":
        return ratio(tp, tp + fp + fn, policy)
    if score == "dice":
        return ratio(2 * tp, 2 * tp + fp + fn, policy)
    if score == "precision":
        return ratio(tp, tp + fp, policy)
    if score == "recall":
        return ratio(tp, tp + fn, policy)
    b2 = beta * beta
    return ratio((1 + b2) * tp, (1 + b2) * tp + b2 * fn + fp, policy)


def averaged(t, p, n_class, score, beta, policy, average, ignored=-1):
    if average == "micro":
        tp = float((t == p).sum())
        miss = float(t.size) - tp  # every wrong pixel is one FP and one FN
        if score == "iou":
            return float(ratio(tp, tp + 2 * miss, policy))
        b2 = beta * beta if score == "fbeta" else 1.0
        if score in ("precision", "recall"):
            return float(ratio(tp, tp + miss, policy))
        return float(ratio((1 + b2) * tp, (1 + b2) * tp + b2 * miss + miss, policy))
    # The ignored class is left out of the class means, whatever the policy (torchmetrics' macro
    # average gives it weight 0).
    values = per_class(t, p, n_class, score, beta, policy, ignored)
    scored = np.arange(n_class) != ignored
    if average == "macro":
        return mean(values[scored], policy)
    support = np.array([(t == k).sum() for k in range(n_class)])
    return mean(values[scored], policy, support[scored])


def kappa(t, p, n_class, policy):
    if t.size == 0:
        return undefined_value(policy)
    p_o = np.mean(t == p)
    p_e = sum(np.mean(t == k) * np.mean(p == k) for k in range(n_class))
    return float(ratio(p_o - p_e, 1.0 - p_e, policy))


def mcc(t, p, n_class, policy):
    """Gorodkin (2004): R_K = COV(X, Y) / sqrt(COV(X, X) COV(Y, Y)) over one-hot matrices."""
    if t.size == 0:
        return undefined_value(policy)
    x = np.eye(n_class)[t]
    y = np.eye(n_class)[p]
    xc = x - x.mean(axis=0)
    yc = y - y.mean(axis=0)
    cov_xy = (xc * yc).sum()
    cov_xx = (xc * xc).sum()
    cov_yy = (yc * yc).sum()
    return float(ratio(cov_xy, np.sqrt(cov_xx * cov_yy), policy))


# --------------------------------------------------------------------------------------------
# Writer
# --------------------------------------------------------------------------------------------

def fmt(v):
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    v = float(v)
    if np.isnan(v):
        return "nan"
    return "%.17g" % v


def tensor_line(name, a):
    a = np.asarray(a)
    return " ".join(["tensor", name, str(a.ndim)] + [str(d) for d in a.shape] +
                    [fmt(v) for v in a.reshape(-1).tolist()])


def seed_for(name):
    return np.random.default_rng(BASE_SEED + zlib.crc32(name.encode()) % 100000)


def make_case(name, n_class, truth, pred=None, logits=None, ignore_index=-100,
              out_of_range="error", beta=2.0):
    truth = np.asarray(truth, dtype=np.int64)
    if logits is not None:
        logits = np.asarray(logits, dtype=np.float64)
        assert logits.shape[1] == n_class and logits.shape[:1] + logits.shape[2:] == truth.shape
        pred = np.argmax(logits, axis=1).astype(np.int64)
    pred = np.asarray(pred, dtype=np.int64)
    assert pred.shape == truth.shape and truth.ndim >= 2
    assert pred.min(initial=0) >= 0 and pred.max(initial=0) < n_class
    odd = (truth != ignore_index) & ((truth < 0) | (truth >= n_class))
    assert out_of_range == "drop" or not odd.any(), name

    lines = ["case " + name, "loss confusion_matrix",
             "shape " + " ".join(str(d) for d in truth.shape),
             "option num_classes %d" % n_class, "option ignore_index %d" % ignore_index,
             "option out_of_range " + out_of_range, "option beta " + fmt(beta),
             "option source " + ("logits" if logits is not None else "labels")]
    if logits is not None:
        lines.append(tensor_line("logits", logits))
    lines.append(tensor_line("pred", pred))
    lines.append(tensor_line("target", truth))

    # pytorch-fcn, per image, with ignored pixels passed as -1.
    fcn_true = [np.where(img == ignore_index, -1, img) for img in truth]
    fcn_pred = list(pred)
    hist = sum(_fast_hist(lt.flatten(), lp.flatten(), n_class)
               for lt, lp in zip(fcn_true, fcn_pred))
    lines.append(tensor_line("hist", hist))
    fcn = list(label_accuracy_score(fcn_true, fcn_pred, n_class))
    if 0 <= ignore_index < n_class:
        # pytorch-fcn has no ignored class inside [0, n_class); segloss leaves it out of acc_cls
        # and mean_iu: the seed's nanmeans over the other classes.
        scored = np.arange(n_class) != ignore_index
        fcn[1] = np.nanmean((np.diag(hist) / hist.sum(axis=1))[scored])
        iu = np.diag(hist) / (hist.sum(axis=1) + hist.sum(axis=0) - np.diag(hist))
        fcn[2] = np.nanmean(iu[scored])
    lines.append(tensor_line("fcn", np.array(fcn)))

    keep = counted(truth, ignore_index, n_class)
    t, p = truth[keep], pred[keep]
    assert hist.sum() == t.size
    lines.append(tensor_line("pixel_accuracy", np.array(ratio((t == p).sum(), t.size, "skip"))))
    for s in SCORES:
        lines.append(tensor_line("class." + s,
                                 per_class(t, p, n_class, s, beta, "skip", ignore_index)))
        lines.append(tensor_line("avg." + s, np.array(
            [[averaged(t, p, n_class, s, beta, pol, a, ignore_index) for a in AVERAGES]
             for pol in POLICIES])))
    lines.append(tensor_line("kappa", np.array([kappa(t, p, n_class, pol) for pol in POLICIES])))
    lines.append(tensor_line("mcc", np.array([mcc(t, p, n_class, pol) for pol in POLICIES])))

    # Per image: each image's macro score, then the mean over the images (skip: over the
    # images whose score is not NaN).
    for s in SCORES:
        per_img = np.array([[averaged(ti[ki], pi[ki], n_class, s, beta, pol, "macro",
                                      ignore_index)
                             for ti, pi, ki in zip(truth, pred, keep)] for pol in POLICIES])
        lines.append(tensor_line("image." + s, per_img))
        lines.append(tensor_line("per_image." + s, np.array(
            [mean(per_img[i], pol) for i, pol in enumerate(POLICIES)])))
    lines.append("end")
    return lines


def labels(rng, shape, classes, ignored=0.0, ignore_index=-100):
    """Labels drawn from `classes` (a list), with about `ignored` of them set to ignore_index."""
    t = rng.choice(np.asarray(classes), size=shape)
    if ignored > 0:
        t = np.where(rng.random(shape) < ignored, ignore_index, t)
    return t


def logits_of(rng, shape, scale=3.0):
    return np.round(rng.standard_normal(shape) * scale * 1024.0) / 1024.0


def noisy(rng, truth, n_class, keep=0.7, classes=None):
    """A prediction: the truth (where it is a class) with probability keep, else random."""
    classes = list(range(n_class)) if classes is None else classes
    guess = rng.choice(np.asarray(classes), size=truth.shape)
    valid = (truth >= 0) & (truth < n_class)
    return np.where(valid & (rng.random(truth.shape) < keep), truth, guess)


def cases():
    out = []

    def add(name, *args, **kw):
        out.append(make_case(name, *args, **kw))

    r = seed_for("c5_2d")
    t = labels(r, (2, 6, 5), list(range(5)), 0.15)
    add("c5_2d", 5, t, noisy(r, t, 5))
    r = seed_for("c5_2d_beta_half")
    t = labels(r, (2, 6, 5), list(range(5)), 0.15)
    add("c5_2d_beta_half", 5, t, noisy(r, t, 5), beta=0.5)
    r = seed_for("c5_2d_beta_one")
    t = labels(r, (3, 4, 4), list(range(5)))
    add("c5_2d_beta_one", 5, t, noisy(r, t, 5, 0.5), beta=1.0)
    r = seed_for("c1")
    t = labels(r, (2, 4, 3), [0], 0.2)
    add("c1", 1, t, np.zeros_like(t))
    r = seed_for("c2_binary")
    t = labels(r, (3, 8, 8), [0, 1])
    add("c2_binary", 2, t, noisy(r, t, 2, 0.8))
    r = seed_for("c21_voc_ignore_255")
    t = labels(r, (4, 16, 16), [0, 1, 2, 5, 7, 8, 12, 15, 20], 0.1, 255)
    add("c21_voc_ignore_255", 21, t, noisy(r, t, 21, 0.6, [0, 1, 2, 3, 5, 7, 8, 12, 15, 19]),
        ignore_index=255)
    r = seed_for("c150_ade")
    t = labels(r, (1, 20, 20), list(range(0, 150, 3)), 0.05, 255)
    add("c150_ade", 150, t, noisy(r, t, 150, 0.5, list(range(0, 150, 2))), ignore_index=255)
    r = seed_for("empty_classes")
    t = labels(r, (2, 5, 5), [0, 2])
    add("empty_classes", 6, t, noisy(r, t, 6, 0.6, [0, 2, 3]))
    r = seed_for("all_ignored")
    t = np.full((2, 3, 4), -100)
    add("all_ignored", 4, t, r.integers(0, 4, size=t.shape))
    r = seed_for("one_class_present_perfect")
    t = labels(r, (2, 4, 4), [2], 0.25)
    add("one_class_present_perfect", 4, t, np.full(t.shape, 2))
    r = seed_for("one_class_present_wrong")
    t = labels(r, (2, 4, 4), [2], 0.25)
    add("one_class_present_wrong", 4, t, noisy(r, t, 4, 0.5))
    r = seed_for("one_class_predicted")
    t = labels(r, (2, 4, 4), [0, 1, 3])
    add("one_class_predicted", 4, t, np.full(t.shape, 1))
    r = seed_for("perfect_c3")
    t = labels(r, (2, 5, 3), [0, 1, 2])
    add("perfect_c3", 3, t, t.copy())
    r = seed_for("ignore_zero")
    t = labels(r, (2, 6, 6), [0, 1, 2, 3], 0.0)
    add("ignore_zero", 4, t, noisy(r, t, 4), ignore_index=0)
    r = seed_for("drop_out_of_range_fcn")
    t = labels(r, (3, 5, 4), [0, 1, 2, 3, 4, -1, 255, 7])
    add("drop_out_of_range_fcn", 5, t, noisy(r, t, 5), out_of_range="drop")
    r = seed_for("drop_with_ignore_index")
    t = labels(r, (2, 5, 4), [0, 1, 2, -1, 9], 0.2, 3)
    add("drop_with_ignore_index", 4, t, noisy(r, t, 4), ignore_index=3, out_of_range="drop")
    r = seed_for("rank2_1d")
    t = labels(r, (3, 17), list(range(4)), 0.1)
    add("rank2_1d", 4, t, noisy(r, t, 4))
    r = seed_for("volume_3d")
    t = labels(r, (2, 3, 4, 5), list(range(3)), 0.1)
    add("volume_3d", 3, t, noisy(r, t, 3))
    r = seed_for("one_pixel")
    add("one_pixel", 3, np.array([[[1]]]), np.array([[[2]]]))
    r = seed_for("image_without_pixels")
    t = labels(r, (3, 4, 4), list(range(3)), 0.1)
    t[1] = -100
    add("image_without_pixels", 3, t, noisy(r, t, 3))

    # Logits: the prediction is the argmax over axis 1.
    r = seed_for("logits_c5")
    t = labels(r, (2, 6, 7), list(range(5)), 0.1)
    add("logits_c5", 5, t, logits=logits_of(r, (2, 5, 6, 7)))
    r = seed_for("logits_ties")
    t = labels(r, (2, 9, 9), list(range(4)))
    add("logits_ties", 4, t, logits=r.integers(-1, 2, size=(2, 4, 9, 9)).astype(np.float64))
    r = seed_for("logits_nan")
    t = labels(r, (1, 6, 6), list(range(3)))
    x = logits_of(r, (1, 3, 6, 6))
    x[0, 1, 0, :3] = np.nan
    x[0, 0, 1, 0] = np.nan
    x[0, 2, 1, :] = np.nan
    x[0, 1, 1, 1] = np.nan
    add("logits_nan", 3, t, logits=x)
    r = seed_for("logits_c21")
    t = labels(r, (1, 12, 12), list(range(21)), 0.1, 255)
    add("logits_c21", 21, t, logits=logits_of(r, (1, 21, 12, 12)), ignore_index=255)
    r = seed_for("logits_c1")
    t = labels(r, (2, 3, 3), [0], 0.2)
    add("logits_c1", 1, t, logits=logits_of(r, (2, 1, 3, 3)))
    r = seed_for("logits_3d")
    t = labels(r, (1, 2, 3, 4), list(range(3)))
    add("logits_3d", 3, t, logits=logits_of(r, (1, 3, 2, 3, 4)))
    r = seed_for("logits_1d_drop")
    t = labels(r, (3, 11), [0, 1, 2, 3, 4, -1, 255])
    add("logits_1d_drop", 4, t, logits=logits_of(r, (3, 4, 11)), out_of_range="drop")
    return out


def main():
    assert np.argmax(np.array([1.0, np.nan, 3.0, np.nan])) == 1  # NaN wins, first occurrence
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # 0/0 and nanmean of all-NaN
        all_cases = cases()
    with open(os.path.join(HERE, OUTPUT), "w") as f:
        f.write("# ConfusionMatrix and scores: pytorch-fcn's _fast_hist and label_accuracy_score\n")
        f.write("# (verbatim) and textbook scores in numpy; see generate_metrics.py.\n")
        f.write("numpy %s\n" % np.__version__)
        for lines in all_cases:
            f.write("\n".join(lines) + "\n")
        f.write("count %d\n" % len(all_cases))
    print("%s: %d cases" % (OUTPUT, len(all_cases)))


if __name__ == "__main__":
    sys.exit(main())
