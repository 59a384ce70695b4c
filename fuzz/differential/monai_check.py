#!/usr/bin/env python3
"""A second check of the surface family against MONAI itself (optional: needs monai installed).

usage: monai_check.py COUNT SEED [--work-dir DIR]

Run `fuzz.py surface COUNT SEED` first: this draws the same cases, keeps those MONAI computes
the same way (masks, 2 or 3 spatial axes, the monai empty policy), and compares the driver's
results in the work directory with monai.metrics' compute_hausdorff_distance (plain and
percentile; MONAI reads percentile 0 as none, so that one is skipped),
compute_average_surface_distance and compute_surface_dice. MONAI computes in float32: the
tolerance is 1e-5 relative. Writes monai_bad_<seed>.json (the disagreements).
"""
import argparse
import json
import os
import sys
import warnings

import numpy as np
import torch
from monai.metrics import (compute_average_surface_distance, compute_hausdorff_distance,
                           compute_surface_dice)

import ref_surface
from cases import parse_results, rel_err

RTOL = 1e-5
REPO = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def monai_metrics(f):
    """MONAI's values for one masks case, as the driver names them."""
    pred, target = torch.tensor(f["pred"]), torch.tensor(f["target"])
    C = pred.shape[1]
    kw = {"include_background": True}
    if f.get("spacing"):
        kw["spacing"] = list(f["spacing"])
    directed = bool(f["directed"])
    out = {"hd": compute_hausdorff_distance(pred, target, directed=directed, **kw)}
    if f["percentile"] != 0:
        out["hdp"] = compute_hausdorff_distance(pred, target, percentile=f["percentile"],
                                                directed=directed, **kw)
    out["assd"] = compute_average_surface_distance(pred, target, symmetric=not directed, **kw)
    tolerance = list(f["class_tolerance"]) if "class_tolerance" in f else [f["tolerance"]] * C
    out["nsd"] = compute_surface_dice(pred, target, class_thresholds=tolerance, **kw)
    return {k: np.asarray(v, dtype=float).ravel() for k, v in out.items()}


def comparable(kind, f):
    return kind == "sd" and f["empty"] == "monai" and f["pred"].ndim >= 4


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("count", type=int)
    ap.add_argument("seed", type=int)
    ap.add_argument("--work-dir", default=os.environ.get(
        "DIFFFUZZ_WORK", os.path.join(REPO, ".cache", "difffuzz")))
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore")  # MONAI warns about empty masks, which are meant here
    results = parse_results(os.path.join(args.work_dir, "results_surface_%d.txt" % args.seed))
    rng = np.random.default_rng(args.seed)
    checked, agree, worst, bad = 0, 0, {}, []
    for i in range(args.count):
        kind, f = ref_surface.generate(rng)
        cid = "surface-%d-%d" % (args.seed, i)
        if not comparable(kind, f) or "ERR" in results[cid]:
            continue
        got = results[cid]
        expected = monai_metrics(f)
        errs = {k: rel_err(got[k], v) for k, v in expected.items()}
        for k, e in errs.items():
            worst[k] = max(worst.get(k, 0.0), e)
        checked += 1
        if all(e <= RTOL for e in errs.values()):
            agree += 1
        else:
            bad.append({"id": cid, "errs": errs, "got": {k: got[k].tolist() for k in expected},
                        "monai": {k: v.tolist() for k, v in expected.items()}})
    print(json.dumps({"seed": args.seed, "monai_cases": checked, "agree": agree, "worst": worst}))
    for b in bad[:10]:
        print(json.dumps(b)[:600])
    with open(os.path.join(args.work_dir, "monai_bad_%d.json" % args.seed), "w") as fh:
        json.dump(bad, fh)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
