#!/usr/bin/python3
"""Fits the float polynomial of pw::log1p_unit (core/pointwise.hpp). Not run by the build.

log1p(e) for e in [0, 1] is written as 2 u A(u^2) with u = e / (2 + e) in [0, 1/3] and
A(s) = atanh(sqrt(s)) / sqrt(s) on s in [0, 1/9]. The double path sums the atanh series; the
float path uses a degree-4 polynomial in s that minimizes the maximum relative error of A,
found here by iteratively reweighted least squares on Chebyshev nodes (a simple stand-in for
the Remez exchange). It prints the coefficients and the maximum relative error on a fine grid.

Run: /usr/bin/python3 scripts/fit_log1p_unit.py   (needs numpy)
"""
import numpy as np

S = 1.0 / 9.0
DEGREE = 4


def atanh_ratio(s):
    r = np.sqrt(s)
    return np.where(s > 0, np.arctanh(r) / np.where(r > 0, r, 1.0), 1.0)


def fit(degree, nodes=4000, rounds=60):
    k = np.arange(nodes)
    s = (S / 2) * (1 - np.cos(np.pi * (k + 0.5) / nodes))
    y = atanh_ratio(s)
    a = np.vander(s, degree + 1, increasing=True) / y[:, None]  # relative error rows
    w = np.ones(nodes)
    for _ in range(rounds):
        c, *_ = np.linalg.lstsq(a * w[:, None], w, rcond=None)
        err = np.abs(a @ c - 1)
        w *= (err / err.max()) ** 0.3 + 1e-3
    return c


def main():
    c = fit(DEGREE)
    grid = np.linspace(0, S, 400001)
    rel = np.abs(np.polyval(c[::-1], grid) / atanh_ratio(grid) - 1).max()
    c32 = c.astype(np.float32).astype(np.float64)
    rel32 = np.abs(np.polyval(c32[::-1], grid) / atanh_ratio(grid) - 1).max()
    print("degree %d: max relative error %.3g (coefficients rounded to float: %.3g)"
          % (DEGREE, rel, rel32))
    for i, v in enumerate(c32):
        print("  c%d = %.9gf" % (i, v))


if __name__ == "__main__":
    main()
