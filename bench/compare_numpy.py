"""numpy reference timings for segloss-bench's confusion-matrix cases (bench/segloss_bench.cpp).

What it measures, on the same data as segloss-bench (21 classes; truth (i // 64) % 21 and
prediction (i // 48) % 21 over the flat index of (8,512,512), int64):
  - confusion_matrix_labels   pytorch-fcn's _fast_hist (seeds note): the mask
                              (t >= 0) & (t < C), then np.bincount(C * t[mask] + p[mask],
                              minlength=C**2).reshape(C, C)
  - confusion_matrix_logits   np.argmax(logits, axis=1) on (8,21,512,512) float32 logits
                              (normal(0, 3), numpy's generator with seed 7), then _fast_hist
numpy runs these single-threaded (bincount and argmax do not use threads); the --threads value is
recorded for pairing with segloss-bench's line. Each case runs 3 warm-up iterations, then --reps
timed ones (time.perf_counter); the median is reported.

Output: one JSON object per line on stdout, with the keys
  {"name", "shape", "device", "threads", "median_ms", "impl"}
and the numpy version on stderr. Run it with the system interpreter:
    /usr/bin/python3 bench/compare_numpy.py --threads 1,2 [--reps 25] [--filter name]
The speed-up of segloss is this median divided by segloss-bench's median_ms for the same name
and thread count.
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
    ap.add_argument("--filter", default="", help="run only the cases whose name contains this")
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


def median_ms(reps, work):
    for _ in range(3):
        work()
    ms = []
    for _ in range(reps):
        t0 = time.perf_counter()
        work()
        ms.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(ms)


def main():
    args = parse_args()
    print("numpy", np.__version__, file=sys.stderr)
    n, c, h, w = SHAPE
    i = np.arange(n * h * w, dtype=np.int64)
    truth = ((i // 64) % c).reshape(n, h, w)
    pred = ((i // 48) % c).reshape(n, h, w)
    cases = [("confusion_matrix_labels", "(8,512,512)", "_fast_hist(t.flatten(), p.flatten(), 21)",
              lambda: _fast_hist(truth.reshape(-1), pred.reshape(-1), c), args.reps)]
    if not args.filter or args.filter in "confusion_matrix_logits":
        x = np.random.default_rng(7).normal(0.0, 3.0, size=SHAPE).astype(np.float32)
        cases.append(("confusion_matrix_logits", "(8,21,512,512)",
                      "_fast_hist(t.flatten(), np.argmax(x, axis=1).flatten(), 21)",
                      lambda: _fast_hist(truth.reshape(-1), np.argmax(x, axis=1).reshape(-1), c),
                      max(5, args.reps // 3)))
    for name, shape, impl, work, reps in cases:
        if args.filter and args.filter not in name:
            continue
        ms = median_ms(reps, work)
        for threads in args.threads:
            print(json.dumps({"name": name, "shape": shape, "device": "cpu", "threads": threads,
                              "median_ms": round(ms, 3), "impl": impl}), flush=True)


if __name__ == "__main__":
    main()
