#!/usr/bin/env python3
"""Differential fuzz of segloss against float64 PyTorch and scipy references (README.md here).

usage: fuzz.py FAMILY COUNT SEED [--only ID] [--emulate-order] [--driver PATH] [--work-dir DIR]

FAMILY is lovasz, bcedice, combined or surface. COUNT cases are drawn from SEED (case ids
"<family>-<seed>-<index>", the same for a seed on every machine), run through the driver (built
by run.sh) and compared with the reference. Writes to the work directory cases_<family>_<seed>.txt,
results_<family>_<seed>.txt and report_<family>_<seed>.json (every failure with its inputs; show.py
prints them), and prints a one-line JSON summary.

--only ID          run one case of the COUNT drawn (to rerun a failure; the files it writes have
                   the full run's names: give another --work-dir to keep those)
--emulate-order    lovasz: order errors by segloss's sort keys, from its rounding of p, rather
                   than by the reference's values
--driver PATH      the driver (default $DIFFFUZZ_DRIVER, else WORK_DIR/driver)
--work-dir DIR     default $DIFFFUZZ_WORK, else .cache/difffuzz under the repository root
"""
import argparse
import functools
import json
import math
import os
import sys

import numpy as np

import ref_lovasz
import ref_overlap
import ref_surface
from cases import elem_err, parse_results, rel_err, run_driver, to_json, write_cases

RTOL = 1e-9  # every result: max |got - expected| <= RTOL * max |expected|
REPO = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

FAMILIES = {
    "lovasz": (ref_lovasz.generate, ref_lovasz.reference),
    "bcedice": (ref_overlap.gen_bcedice, ref_overlap.ref_bcedice),
    "combined": (ref_overlap.gen_combined, ref_overlap.ref_combined),
    "surface": (ref_surface.generate, ref_surface.reference),
}
LOVASZ_KINDS = ("lsm", "lhg")
PERTURBATION = 1e-7  # standard deviation of the noise added to the logits to separate ties


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("family", choices=sorted(FAMILIES))
    ap.add_argument("count", type=int)
    ap.add_argument("seed", type=int)
    ap.add_argument("--only", help="run this case id only")
    ap.add_argument("--emulate-order", action="store_true",
                    help="lovasz: order errors by segloss's sort keys")
    ap.add_argument("--work-dir", default=os.environ.get(
        "DIFFFUZZ_WORK", os.path.join(REPO, ".cache", "difffuzz")))
    ap.add_argument("--driver", default=os.environ.get("DIFFFUZZ_DRIVER"))
    args = ap.parse_args(argv)
    args.driver = args.driver or os.path.join(args.work_dir, "driver")
    return args


def draw_cases(generate, family, count, seed, only):
    """The seed's COUNT cases (every one is drawn, so ids and inputs do not depend on --only)."""
    rng = np.random.default_rng(seed)
    cases = []
    for i in range(count):
        kind, fields = generate(rng)
        cid = "%s-%d-%d" % (family, seed, i)
        if only is None or cid == only:
            cases.append((cid, kind, fields))
    return cases


def run_cases(args, cases, name):
    """Writes cases_<name>.txt, runs the driver into results_<name>.txt, returns the results."""
    cases_path = os.path.join(args.work_dir, "cases_%s.txt" % name)
    results_path = os.path.join(args.work_dir, "results_%s.txt" % name)
    write_cases(cases_path, cases)
    run_driver(args.driver, cases_path, results_path)
    return parse_results(results_path)


def compare(cid, kind, fields, got, reference):
    """(per-key errors, failure record or None) for one case."""
    try:
        expected = reference(kind, fields)
    except Exception as e:  # a reference that cannot evaluate the case is reported, not fatal
        return {}, {"id": cid, "kind": kind, "why": "reference raised %r" % e,
                    "got": to_json(got), "fields": to_json(fields)}
    if "ERR" in got:
        return {}, {"id": cid, "kind": kind, "why": "driver ERR: " + got["ERR"],
                    "expected": {k: to_json(np.asarray(v)) for k, v in expected.items()},
                    "fields": to_json(fields)}
    errs = {k: rel_err(got.get(k, np.array([])), v) for k, v in expected.items()}
    if "grad" in expected:
        errs["grad_elem"] = elem_err(got["grad"], expected["grad"])  # diagnostic only
    bad = {k: e for k, e in errs.items() if k != "grad_elem" and not e <= RTOL}
    if not bad:
        return errs, None
    return errs, {"id": cid, "kind": kind, "why": "mismatch", "errs": bad,
                  "got": {k: to_json(got[k]) for k in expected if k in got},
                  "expected": {k: to_json(np.asarray(v)) for k, v in expected.items()},
                  "fields": to_json(fields)}


def retry_tie_order(args, cases, failures, reference):
    """Lovász gradient-only mismatches: where the case has near-tied errors (mathematically equal
    errors computed with different roundings, which segloss and the reference may order apart:
    both are valid subgradients), rerun it with the logits perturbed by about 1e-7, which
    separates every tie. Agreement there marks the failure as a tie-order difference."""
    retry = [fl for fl in failures if fl["kind"] in LOVASZ_KINDS and fl["why"] == "mismatch"
             and set(fl["errs"]) == {"grad"}]
    if not retry:
        return
    by_id = {cid: fields for cid, _, fields in cases}
    rng = np.random.default_rng(args.seed + 99991)
    perturbed = []
    for fl in retry:
        fields = dict(by_id[fl["id"]])
        fl["near_ties"] = ref_lovasz.near_ties(fl["kind"], fields)
        fields["x"] = fields["x"] + rng.normal(size=fields["x"].shape) * PERTURBATION
        perturbed.append((fl["id"] + "-perturbed", fl["kind"], fields))
    results = run_cases(args, perturbed, "%s_%d_perturbed" % (args.family, args.seed))
    for fl, (cid, kind, fields) in zip(retry, perturbed):
        got = results.get(cid, {"ERR": "missing"})
        err = math.inf
        if "ERR" not in got:
            expected = reference(kind, fields)
            err = max(rel_err(got.get(k, np.array([])), v) for k, v in expected.items())
        fl["perturbed_err"] = err
        if err <= RTOL and fl["near_ties"] > 0:
            fl["why"] = "tie-order (tied or near-tied errors; perturbed case agrees)"


def main(argv):
    args = parse_args(argv)
    os.makedirs(args.work_dir, exist_ok=True)
    generate, reference = FAMILIES[args.family]
    if args.family == "lovasz":
        reference = functools.partial(reference, emulate_order=args.emulate_order)
    cases = draw_cases(generate, args.family, args.count, args.seed, args.only)
    results = run_cases(args, cases, "%s_%d" % (args.family, args.seed))
    failures, worst, agree = [], {}, 0
    for cid, kind, fields in cases:
        errs, failure = compare(cid, kind, fields, results.get(cid, {"ERR": "missing"}), reference)
        for k, e in errs.items():
            worst[k] = max(worst.get(k, 0.0), e)
        if failure:
            failures.append(failure)
        else:
            agree += 1
    retry_tie_order(args, cases, failures, reference)
    report = {"family": args.family, "seed": args.seed, "cases": len(cases), "agree": agree,
              "fail": len(failures),
              "tie_order": sum(fl["why"].startswith("tie-order") for fl in failures),
              "emulate_order": args.emulate_order, "rtol": RTOL, "worst": worst,
              "failures": failures}
    name = "report_%s_%d.json" % (args.family, args.seed)
    with open(os.path.join(args.work_dir, name), "w") as fh:
        json.dump(report, fh)
    print(json.dumps({k: v for k, v in report.items() if k != "failures"}))
    groups = {}
    for fl in failures:
        groups.setdefault((fl["kind"], fl["why"][:60]), []).append(fl["id"])
    for (kind, why), ids in groups.items():
        print("  %s %s: %d  %s" % (kind, why, len(ids), " ".join(ids[:5])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
