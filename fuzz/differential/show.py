#!/usr/bin/env python3
"""Prints the failures of a fuzz.py report: the options, then per result the expected and the
got values (for long arrays, the entry that differs most and the NaN counts).

usage: show.py REPORT.json [ID ...]   (default: every failure)
"""
import json
import sys

import numpy as np


def describe_fields(fields):
    """Options as they are, arrays as their shape (and values when short)."""
    out = {}
    for key, v in fields.items():
        if isinstance(v, dict):
            out[key] = ("shape", v["shape"], v["values"] if len(v["values"]) <= 8 else "...")
        else:
            out[key] = v
    return out


def values(v):
    return np.array(v["values"] if isinstance(v, dict) else v, dtype=float).ravel()


def describe_result(key, got, expected):
    e = values(expected)
    if got is None:
        return "  %s missing, expected %s" % (key, e)
    g = values(got)
    if len(g) != len(e) or len(e) <= 6:
        return "  %s got %s expected %s" % (key, g, e)
    d = np.abs(g - e)
    i = int(np.nanargmax(np.where(np.isnan(d), np.inf, d)))
    return ("  %s n=%d, worst entry %d: got %.17g expected %.17g; NaN got %d expected %d"
            % (key, len(e), i, g[i], e[i], int(np.isnan(g).sum()), int(np.isnan(e).sum())))


def main(argv):
    with open(argv[0]) as fh:
        report = json.load(fh)
    ids = set(argv[1:])
    for failure in report["failures"]:
        if ids and failure["id"] not in ids:
            continue
        print("==", failure["id"], failure["kind"], failure["why"], failure.get("errs", ""))
        print(describe_fields(failure["fields"]))
        got = failure.get("got", {})
        for key, expected in failure.get("expected", {}).items():
            print(describe_result(key, got.get(key), expected))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
