"""Shared pieces of the differential fuzz: the case file format, the driver call, the
comparison of results, and the random inputs every family draws from.

Case file (what driver.cpp reads): one case is

    case <id> <kind>
    <key> <count> v1 ... v<count>        (one line per field; arrays add "<key>.shape")
    end

Results file (what driver.cpp writes): one line per case, "<id> OK <key> <count> v1 ..." for
each result, or "<id> ERR <message>" where segloss raised.
"""
import math
import os
import subprocess

import numpy as np

# ------------------------------------------------------------------------------ case files


def _token(v):
    """A field value as the driver parses it (integers as integers, floats round-tripping)."""
    if isinstance(v, str):
        return v
    if isinstance(v, (bool, np.bool_, int, np.integer)):
        return str(int(v))
    return repr(float(v))


def write_case(fh, cid, kind, fields):
    fh.write("case %s %s\n" % (cid, kind))
    for key, value in fields.items():
        if isinstance(value, np.ndarray):
            fh.write("%s.shape %d %s\n" % (key, value.ndim, " ".join(str(s) for s in value.shape)))
            values = value.ravel().tolist()
        elif isinstance(value, (list, tuple)):
            values = list(value)
        else:
            values = [value]
        fh.write("%s %d %s\n" % (key, len(values), " ".join(_token(v) for v in values)))
    fh.write("end\n")


def write_cases(path, cases):
    """cases: (id, kind, fields) triples."""
    with open(path, "w") as fh:
        for cid, kind, fields in cases:
            write_case(fh, cid, kind, fields)


def parse_results(path):
    """{id: {key: np.array}} for the driver's OK lines, {id: {"ERR": message}} for the others."""
    results = {}
    with open(path) as fh:
        for line in fh:
            toks = line.split()
            cid, status = toks[0], toks[1]
            if status == "ERR":
                results[cid] = {"ERR": " ".join(toks[2:])}
                continue
            fields, i = {}, 2
            while i < len(toks):
                key, n = toks[i], int(toks[i + 1])
                fields[key] = np.array([float(t) for t in toks[i + 2:i + 2 + n]])
                i += 2 + n
            results[cid] = fields
    return results


def run_driver(driver, cases_path, results_path):
    """One driver run, single-threaded (OpenMP) so results do not depend on the machine."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    subprocess.run([driver, cases_path, results_path], check=True, env=env)


# ------------------------------------------------------------------------------ comparison


def rel_err(got, expected):
    """max |got - expected| / max(max |expected|, 1e-12) over the finite entries. NaN and inf
    must sit at the same places (and infs have the same sign), else the error is inf."""
    a = np.asarray(got, dtype=float).ravel()
    b = np.asarray(expected, dtype=float).ravel()
    if a.shape != b.shape:
        return math.inf
    nan_a, nan_b = np.isnan(a), np.isnan(b)
    inf_a, inf_b = np.isinf(a), np.isinf(b)
    if (nan_a != nan_b).any() or (inf_a != inf_b).any() or (a[inf_a] != b[inf_b]).any():
        return math.inf
    finite = ~(nan_a | inf_a)
    if not finite.any():
        return 0.0
    diff = np.abs(a[finite] - b[finite]).max()
    return float(diff / max(np.abs(b[finite]).max(), 1e-12))


def elem_err(got, expected):
    """Worst relative error of single entries, over those above 1e-6 of the largest (a
    diagnostic: the pass/fail test is rel_err)."""
    a = np.asarray(got, dtype=float).ravel()
    b = np.asarray(expected, dtype=float).ravel()
    both = np.isfinite(a) & np.isfinite(b)
    a, b = a[both], b[both]
    if not b.size or not np.abs(b).max():
        return 0.0
    big = np.abs(b) > 1e-6 * np.abs(b).max()
    return float((np.abs(a[big] - b[big]) / np.abs(b[big])).max()) if big.any() else 0.0


def to_json(v):
    """Arrays as {"shape", "values"}, numpy scalars as Python numbers, recursively."""
    if isinstance(v, np.ndarray):
        return {"shape": list(v.shape), "values": v.ravel().tolist()}
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    if isinstance(v, (list, tuple)):
        return [to_json(a) for a in v]
    if isinstance(v, dict):
        return {k: to_json(a) for k, a in v.items()}
    return v


# ------------------------------------------------------------------------------ random inputs
# Every generator draws from one numpy Generator in a fixed order: a (family, seed) pair always
# gives the same cases, and case ids "<family>-<seed>-<index>" name them.


def rand_spatial(rng, max_numel=600):
    """1 to 3 spatial extents (sizes 1 and 2 often), at most max_numel pixels."""
    axes = rng.integers(1, 4)
    while True:
        extents = [int(rng.choice([1, 1, 2, 3, 4, 5, 7, 8, 11, 16])) for _ in range(axes)]
        if np.prod(extents) <= max_numel:
            return extents


def rand_logits(rng, shape):
    """Logits of one of several regimes: normal at several scales, small integers (exact ties),
    saturated (+-30, 0), a mix of normal and saturated, or tiny."""
    mode = rng.choice(["normal", "normal", "ints", "sat", "mixed", "tiny"])
    if mode == "normal":
        return rng.normal(size=shape) * rng.choice([0.1, 1.0, 3.0, 10.0])
    if mode == "ints":
        return rng.integers(-2, 3, size=shape).astype(float)
    if mode == "sat":
        return rng.choice([-30.0, 30.0, 0.0], size=shape)
    if mode == "tiny":
        return rng.normal(size=shape) * 1e-3
    x = rng.normal(size=shape) * 2
    saturated = rng.random(shape) < 0.3
    x[saturated] = rng.choice([-30.0, 30.0], size=int(saturated.sum()))
    return x


def bcast_shape(rng, full):
    """A shape that broadcasts to `full` by PyTorch's rule (for weights)."""
    kind = rng.choice(["full", "n1", "c11", "trail", "one", "random"])
    if kind == "full":
        return list(full)
    if kind == "n1":
        return [full[0], 1] + list(full[2:])
    if kind == "c11":
        return [full[1]] + [1] * (len(full) - 2)
    if kind == "trail":
        return list(full[2:])
    if kind == "one":
        return [1]
    drop = rng.integers(0, len(full))
    return [int(e) if rng.random() < 0.5 else 1 for e in full[drop:]]
