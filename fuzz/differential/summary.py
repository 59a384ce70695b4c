#!/usr/bin/env python3
"""Totals over fuzz.py reports, per family: cases, agreements, failures (tie-order ones apart),
the worst relative error of each result, and the failures grouped by reason.

usage: summary.py [REPORT.json ...]   (default: every report_*.json in the work directory,
                                       $DIFFFUZZ_WORK or .cache/difffuzz under the repository)
"""
import collections
import glob
import json
import os
import sys

REPO = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def report_paths(argv):
    if argv:
        return argv
    work = os.environ.get("DIFFFUZZ_WORK", os.path.join(REPO, ".cache", "difffuzz"))
    return sorted(glob.glob(os.path.join(work, "report_*.json")))


def add(total, report):
    for key in ("cases", "agree", "fail", "tie_order"):
        total[key] += report[key]
    total["seeds"].append(report["seed"])
    for key, err in report["worst"].items():
        total["worst"][key] = max(total["worst"].get(key, 0.0), err)
    for failure in report["failures"]:
        total["why"][(failure["kind"], failure["why"][:70])] += 1


def main(argv):
    totals = collections.OrderedDict()
    for path in report_paths(argv):
        with open(path) as fh:
            report = json.load(fh)
        total = totals.setdefault(report["family"], {
            "cases": 0, "agree": 0, "fail": 0, "tie_order": 0, "seeds": [], "worst": {},
            "why": collections.Counter()})
        add(total, report)
    if not totals:
        print("no reports")
        return 1
    for family, t in totals.items():
        print("%-9s %6d cases (seeds %s): %d agree, %d differ (%d tie-order)"
              % (family, t["cases"], ",".join(map(str, t["seeds"])), t["agree"], t["fail"],
                 t["tie_order"]))
        print("          worst relative error: " + ", ".join(
            "%s %.2e" % (k, v) for k, v in t["worst"].items()))
        for (kind, why), n in t["why"].items():
            print("          %5d %s %s" % (n, kind, why))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
