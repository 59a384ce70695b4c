"""numpy reference timings for segloss-bench's confusion-matrix cases (bench/segloss_bench.cpp).

What it measures, on the same data as segloss-bench, for each multi-class shape (N, C, ...) of
segloss-bench, (8,21,512,512), (4,150,256,256) and (2,4,96,96,96) (truth (i // 64) % C and
prediction (i // 48) % C over the flat index of (N, spatial...), int64):
  - confusion_matrix_labels   pytorch-fcn's _fast_hist (seeds note): the mask
                              (t >= 0) & (t < C), then np.bincount(C * t[mask] + p[mask],
                              minlength=C**2).reshape(C, C)
  - confusion_matrix_logits   np.argmax(logits, axis=1) on float32 logits of the shape
                              (normal(0, 3), numpy's generator with seed 7), then _fast_hist
and on (8,21,512,512) only:
  - mean_iou                  _fast_hist, then pytorch-fcn's label_accuracy_score (acc,
                              acc_cls, mean_iu, fwavacc) and the macro Dice (segloss's case
                              also computes kappa and MCC: O(C^2) either way)
  - per_image_scores          _fast_hist per image, then the nanmean of each image's IoU and
                              the mean over the images
numpy runs these single-threaded (bincount and argmax do not use threads); the --threads value is
recorded for pairing with segloss-bench's line. Each case runs 3 warm-up iterations, then --reps
timed ones (time.perf_counter); the median is reported.

Output: one JSON object per line on stdout, with the keys
  {"name", "shape", "device", "threads", "median_ms", "impl"}
and the numpy version on stderr. Run it with the system interpreter:
    /usr/bin/python3 bench/compare_numpy.py --threads 1,2 [--reps 25] [--filter name]
The speed-up of segloss is this median divided by segloss-bench's median_ms for the same name
and thread count. bench/check_reference.py checks that these cases (fcn_case_* and
per_image_iou below) compute what segloss's cases compute (counts exactly, scores to 1e-9).
"""

import argparse
import json
import statistics
import sys
import time

import numpy as np

SHAPE = (8, 21, 512, 512)


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts (default 1,2)")
    ap.add_argument("--reps", type=int, default=25, help="timed iterations (default 25, at least 3)")
    ap.add_argument("--filter", default="", help="run only the cases whose 'name shape' contains this")
    a = ap.parse_args()
    a.threads = [int(s) for s in a.threads.split(",") if s.strip()]
    a.reps = max(3, a.reps)
    return a


def _fast_hist(label_true, label_pred, n_class):
    # pytorch-fcn, verbatim from the seeds note.
    mask = (label_true >= 0) & (label_true < n_class)
    hist = np.bincount(
        n_class * label_true[mask].astype(int) +
        label_pred[mask], minlength=n_class ** 2).reshape(n_class, n_class)
    return hist


def label_accuracy_score(hist):
    # pytorch-fcn's scores from the histogram (seeds note), plus the macro Dice.
    with np.errstate(divide="ignore", invalid="ignore"):
        acc = np.diag(hist).sum() / hist.sum()
        acc_cls = np.nanmean(np.diag(hist) / hist.sum(axis=1))
        iu = np.diag(hist) / (hist.sum(axis=1) + hist.sum(axis=0) - np.diag(hist))
        mean_iu = np.nanmean(iu)
        freq = hist.sum(axis=1) / hist.sum()
        fwavacc = (freq[freq > 0] * iu[freq > 0]).sum()
        dice = np.nanmean(2 * np.diag(hist) / (hist.sum(axis=1) + hist.sum(axis=0)))
    return acc, acc_cls, mean_iu, fwavacc, dice


def per_image_iou(truth, pred, c):
    with np.errstate(divide="ignore", invalid="ignore"):
        ious = []
        for t, p in zip(truth, pred):
            hist = _fast_hist(t.reshape(-1), p.reshape(-1), c)
            ious.append(np.nanmean(np.diag(hist) /
                                   (hist.sum(axis=1) + hist.sum(axis=0) - np.diag(hist))))
    return float(np.mean(ious))


def median_ms(reps, work):
    for _ in range(3):
        work()
    ms = []
    for _ in range(reps):
        t0 = time.perf_counter()
        work()
        ms.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(ms)


SHAPES = [(8, 21, 512, 512), (4, 150, 256, 256), (2, 4, 96, 96, 96)]


def shape_str(shape):
    return "(" + ",".join(str(d) for d in shape) + ")"


def wanted(args, name, shape):
    return not args.filter or args.filter in name + " " + shape_str(shape)


def label_maps(label_shape, c):
    """segloss-bench's truth (i // 64) % C and prediction (i // 48) % C over the flat index."""
    i = np.arange(int(np.prod(label_shape)), dtype=np.int64)
    return ((i // 64) % c).reshape(label_shape), ((i // 48) % c).reshape(label_shape)


def logits_of(shape, dtype=np.float32):
    """Logits normal(0, 3), numpy's generator with seed 7."""
    return np.random.default_rng(7).normal(0.0, 3.0, size=shape).astype(dtype)


# What each case computes from (truth, pred) label maps of C classes (x: logits for
# confusion_matrix_logits); bench/check_reference.py checks these against segloss.
def fcn_case_labels(truth, pred, c):
    return _fast_hist(truth.reshape(-1), pred.reshape(-1), c)


def fcn_case_logits(truth, x, c):
    return _fast_hist(truth.reshape(-1), np.argmax(x, axis=1).reshape(-1), c)


def fcn_case_mean_iou(truth, pred, c):
    return label_accuracy_score(_fast_hist(truth.reshape(-1), pred.reshape(-1), c))


def bench_shape(args, shape):
    n, c = shape[0], shape[1]
    label_shape = (n,) + tuple(shape[2:])
    names = ["confusion_matrix_labels", "confusion_matrix_logits"]
    if shape == SHAPES[0]:
        names += ["mean_iou", "per_image_scores"]
    if not any(wanted(args, k, label_shape if k != "confusion_matrix_logits" else shape)
               for k in names):
        return
    truth, pred = label_maps(label_shape, c)
    big = int(np.prod(shape)) > 25_000_000
    cases = [("confusion_matrix_labels", label_shape,
              "_fast_hist(t.flatten(), p.flatten(), %d)" % c,
              lambda: fcn_case_labels(truth, pred, c), args.reps)]
    if wanted(args, "confusion_matrix_logits", shape):
        x = logits_of(shape)
        cases.append(("confusion_matrix_logits", shape,
                      "_fast_hist(t.flatten(), np.argmax(x, axis=1).flatten(), %d)" % c,
                      lambda: fcn_case_logits(truth, x, c),
                      max(3, args.reps // (5 if big else 3))))
    if shape == SHAPES[0]:
        cases += [("mean_iou", label_shape, "_fast_hist, then label_accuracy_score and macro Dice",
                   lambda: fcn_case_mean_iou(truth, pred, c),
                   args.reps),
                  ("per_image_scores", label_shape,
                   "_fast_hist per image, nanmean IoU per image, mean over images",
                   lambda: per_image_iou(truth, pred, c), args.reps)]
    for name, sh, impl, work, reps in cases:
        if not wanted(args, name, sh):
            continue
        ms = median_ms(reps, work)
        for threads in args.threads:
            print(json.dumps({"name": name, "shape": shape_str(sh), "device": "cpu",
                              "threads": threads, "median_ms": round(ms, 3), "impl": impl}),
                  flush=True)


def main():
    args = parse_args()
    print("numpy", np.__version__, file=sys.stderr)
    for shape in SHAPES:
        bench_shape(args, shape)


if __name__ == "__main__":
    main()
