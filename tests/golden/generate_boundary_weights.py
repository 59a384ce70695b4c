#!/usr/bin/python3
"""Golden reference values for segloss's boundary_weights, computed with PyTorch.

Run from anywhere with a Python that has torch (Debian: /usr/bin/python3 with python3-torch):

    /usr/bin/python3 tests/golden/generate_boundary_weights.py

It rewrites tests/golden/boundary_weights.txt next to this script, in the format of the other
golden files (README.md in this folder). tests/test_golden_boundary_weights.cpp reads it.

A weight map takes one of two values per case, 1 or 1 + boost before normalizing, so a case
stores the mask, the 0/1 edge indicator `ind` and the two weights `levels` = (w where ind = 0,
w where ind = 1) instead of the full map: the test rebuilds the map as levels[ind] and checks
segloss's map element by element. The indicator is computed by PyTorch in float64 AND in
float32 (with the float32 mask, as segloss's float path sees it), and the generator stops
unless both agree, so the C++ test can require the same indicator in both precisions.

What the references are:
  * option reference carvana_CombinedLoss: the weight computation of the seed's
    CombinedLoss.forward (identical in combined_loss()) from
    /work/shared/seeds/segmentation-losses-note.md, verbatim except for one spelling:
    `Variable(torch.tensor.torch.ones(a.size())).cuda()` (which no current torch accepts and
    which needs a GPU) is `torch.ones(a.size(), dtype=a.dtype)`. Heights 128 and 256 (the
    kernel comes from the seed's table: 11 and 21; segloss runs with kernel_size = 0).
  * every case (seed ones included) is also computed by header_reference(): the formula of
    losses/boundary_weights.hpp with torch ops (F.avg_pool2d / F.avg_pool3d with stride 1,
    padding k // 2 and the default count_include_pad=True; ge/le; w / w.sum() * numel). The
    generator asserts that the seed and the header reference agree (indicator exactly, weights
    to 1e-15), so the file holds the header's semantics.
Masks are binary (random blobs: unions of ellipses or boxes, or Bernoulli noise), all zero,
all one, or soft with values in multiples of 1/8 (sums exact in float and double).
"""

import os
import sys

import torch
import torch.nn.functional as F

sys.dont_write_bytecode = True  # no __pycache__ next to the data
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from generate import Case, seed_for, write  # noqa: E402  (the shared writer and seeds)

HERE = os.path.dirname(os.path.abspath(__file__))
OUTPUT = "boundary_weights.txt"

torch.set_default_dtype(torch.float64)


# --------------------------------------------------------------------------------------------
# Seed code: the weight part of CombinedLoss.forward ("3 loss与bce叠加", loss.py), with the one
# spelling named above. labels arrive as (N, 1, H, W), as the seed's logits and labels do.
# --------------------------------------------------------------------------------------------

def carvana_combined_loss_weights(labels):
    size = labels.size()
    assert size[1] == 1, size
    labels = labels.view(size[0], size[2], size[3])
    batch_size, H, W = labels.size()
    if H == 128:
        kernel_size = 11
    elif H == 256:
        kernel_size = 21
    elif H == 512:
        kernel_size = 21
    elif H == 1024:
        kernel_size = 41
    elif H == 1280:
        kernel_size = 51
    else:
        raise ValueError('Unknown height')

    a = F.avg_pool2d(labels, kernel_size=kernel_size, padding=kernel_size // 2,
                     stride=1)
    ind = a.ge(0.01) * a.le(0.99)
    ind = ind.float()
    weights = torch.ones(a.size(), dtype=a.dtype)  # Variable(torch.tensor.torch.ones(a.size())).cuda()

    w0 = weights.sum()
    weights += ind * 2
    w1 = weights.sum()
    weights = weights / w1 * w0
    return weights.view(size), ind.view(size), kernel_size


# --------------------------------------------------------------------------------------------
# The header's formula (losses/boundary_weights.hpp), in torch ops.
# --------------------------------------------------------------------------------------------

def header_reference(mask, k, low=0.01, high=0.99, boost=2.0, normalize=True):
    """a = box average (zero padding counted), ind = low <= a <= high, w = 1 + boost ind,
    normalized to sum numel. Runs in the mask's dtype, as PyTorch would."""
    pool = F.avg_pool2d if mask.dim() == 4 else F.avg_pool3d
    a = pool(mask, kernel_size=k, padding=k // 2, stride=1)
    ind = (a.ge(low) * a.le(high)).to(mask.dtype)
    w = 1.0 + boost * ind
    if normalize:
        w = w / w.sum() * w.numel()
    return w, ind


def kernel_rule(height):
    """boundary_kernel_size() of losses/boundary_weights.hpp (to record the resolved k)."""
    hs, ks = [128, 256, 512, 1024, 1280], [11, 21, 21, 41, 51]
    if height <= hs[0]:
        num, den = ks[0] * height, hs[0]
    elif height >= hs[-1]:
        num, den = ks[-1] * height, hs[-1]
    else:
        i = max(j for j in range(5) if hs[j] <= height)
        den = hs[i + 1] - hs[i]
        num = ks[i] * den + (height - hs[i]) * (ks[i + 1] - ks[i])
    k = 2 * (num // (2 * den)) + 1
    k = max(k, 3)
    return min(k, height if height % 2 else height - 1)


# --------------------------------------------------------------------------------------------
# Masks
# --------------------------------------------------------------------------------------------

def blobs(shape, count=4):
    """Per plane or volume, the union of `count` random ellipses (ellipsoids) and boxes."""
    spatial = shape[2:]
    grids = torch.meshgrid(*[torch.arange(n, dtype=torch.float64) for n in spatial],
                           indexing="ij")
    m = torch.zeros(shape)
    for n in range(shape[0]):
        for c in range(shape[1]):
            plane = torch.zeros(spatial, dtype=torch.bool)
            for b in range(count):
                centre = [torch.rand(()).item() * e for e in spatial]
                radius = [(0.1 + 0.3 * torch.rand(()).item()) * e for e in spatial]
                if b % 2 == 0:
                    d = sum(((g - c0) / r) ** 2 for g, c0, r in zip(grids, centre, radius))
                    plane |= d <= 1.0
                else:
                    inside = torch.ones(spatial, dtype=torch.bool)
                    for g, c0, r in zip(grids, centre, radius):
                        inside &= (g - c0).abs() <= r
                    plane |= inside
            m[n, c] = plane.to(torch.float64)
    return m


def make_mask(shape, kind):
    if kind == "blobs":
        return blobs(shape)
    if kind == "noise":
        return (torch.rand(shape) < 0.5).to(torch.float64)
    if kind == "sparse":
        return (torch.rand(shape) < 0.03).to(torch.float64)
    if kind == "zeros":
        return torch.zeros(shape)
    if kind == "ones":
        return torch.ones(shape)
    if kind == "soft":  # multiples of 1/8, mostly 0 or 1
        m = blobs(shape)
        soft = torch.randint(0, 9, shape).to(torch.float64) / 8.0
        pick = torch.rand(shape) < 0.3
        return torch.where(pick, soft, m)
    raise ValueError(kind)


# --------------------------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------------------------

CASES = []


def levels_of(w, ind):
    """(w where ind = 0, w where ind = 1), checking the map takes only those two values."""
    w = w.reshape(-1)
    ind = ind.reshape(-1)
    off = w[ind == 0]
    on = w[ind == 1]
    lv = []
    for part, default in ((off, float("nan")), (on, float("nan"))):
        if part.numel():
            assert (part == part[0]).all(), "weights take more than two values"
            lv.append(part[0].item())
        else:
            lv.append(default)
    return lv


def case(name, shape, kind, k=0, low=0.01, high=0.99, boost=2.0, normalize=True, seed=False):
    seed_for(name)
    mask = make_mask(shape, kind)
    height = shape[-2]
    if k == 0:
        smallest = min(shape[2:])
        resolved = min(kernel_rule(height), smallest if smallest % 2 else smallest - 1)
    else:
        resolved = k
    w, ind = header_reference(mask, resolved, low, high, boost, normalize)
    w32, ind32 = header_reference(mask.float(), resolved, low, high, boost, normalize)
    assert torch.equal(ind, ind32.double()), name + ": float32 and float64 indicators differ"
    assert torch.allclose(w32.double(), w, rtol=1e-6, atol=0), name
    if seed:
        ws, inds, ks = carvana_combined_loss_weights(mask)
        assert ks == resolved, (name, ks, resolved)
        assert torch.equal(inds.double(), ind), name + ": seed indicator differs"
        assert torch.allclose(ws, w, rtol=1e-15, atol=0), name + ": seed weights differ"
        ws32, inds32, _ = carvana_combined_loss_weights(mask.float())
        assert torch.equal(inds32.double(), ind), name + ": seed float32 indicator differs"
        w = ws  # the seed's own numbers
    c = Case(name, "boundary_weights")
    c.lines.append("shape " + " ".join(str(d) for d in shape))
    if seed:
        c.option("reference", "carvana_CombinedLoss")
    c.option("kernel_size", k)
    c.option("resolved_kernel", resolved)
    c.option("low", repr(low))
    c.option("high", repr(high))
    c.option("boost", repr(boost))
    c.option("normalize", 1 if normalize else 0)
    c.tensor("mask", mask)
    c.tensor("indicator", ind)
    c.tensor("levels", torch.tensor(levels_of(w, ind)))
    c.value(ind.sum().item())  # the number of edge pixels
    CASES.append(c)


def build():
    # The seed itself: heights 128 and 256 (kernels 11 and 21 from its table), non-square.
    case("carvana_h128", (2, 1, 128, 40), "blobs", seed=True)
    case("carvana_h256", (1, 1, 256, 24), "blobs", seed=True)
    case("carvana_h128_noise", (1, 1, 128, 16), "sparse", seed=True)
    # Explicit kernels, 2-D, several channels (each plane filtered on its own).
    case("k3_blobs", (2, 3, 17, 23), "blobs", k=3)
    case("k5_blobs", (2, 2, 19, 13), "blobs", k=5)
    case("k7_noise", (1, 2, 15, 21), "noise", k=7)
    case("k1_noise", (2, 1, 9, 8), "noise", k=1)
    case("k1_soft", (2, 1, 9, 8), "soft", k=1)
    case("k13_sparse", (1, 1, 13, 30), "sparse", k=13)  # kernel = the height
    case("k5_soft", (2, 2, 16, 14), "soft", k=5)
    case("k9_blobs_wide", (1, 1, 12, 57), "blobs", k=9)
    case("k1_one_pixel_wide", (2, 1, 15, 1), "blobs", k=1)
    case("k1_one_pixel_tall", (2, 1, 1, 15), "noise", k=1)
    # Auto kernel below the table (rule: 11 H / 128) and fitted to the width.
    case("auto_h64", (2, 1, 64, 20), "blobs")
    case("auto_h100_narrow", (1, 1, 100, 7), "blobs")
    # Edge cases.
    case("all_zero", (2, 1, 16, 16), "zeros", k=5)
    case("all_one", (2, 1, 16, 12), "ones", k=5)
    case("all_one_k3", (1, 2, 7, 9), "ones", k=3)
    # Options: band, boost, no normalization.
    case("band_0.2_0.8", (2, 1, 20, 18), "blobs", k=7, low=0.2, high=0.8)
    case("band_0_1", (1, 1, 14, 14), "blobs", k=3, low=0.0, high=1.0)
    case("boost_5", (2, 1, 18, 16), "blobs", k=5, boost=5.0)
    case("boost_0.5_raw", (2, 1, 18, 16), "blobs", k=5, boost=0.5, normalize=False)
    case("raw", (1, 2, 16, 17), "blobs", k=7, normalize=False)
    case("negative_boost", (1, 1, 16, 16), "blobs", k=3, boost=-0.5)
    # Volumes (avg_pool3d): one k for the three axes.
    case("vol_k3_blobs", (2, 1, 9, 10, 11), "blobs", k=3)
    case("vol_k5_blobs", (1, 2, 8, 12, 10), "blobs", k=5)
    case("vol_k3_noise", (1, 1, 7, 6, 9), "noise", k=3)
    case("vol_k5_soft", (1, 1, 9, 9, 9), "soft", k=5)
    case("vol_all_one", (1, 1, 6, 7, 8), "ones", k=3)
    case("vol_auto", (1, 1, 5, 40, 12), "blobs")
    case("vol_raw_band", (1, 1, 8, 9, 10), "blobs", k=3, low=0.1, high=0.9, normalize=False)


def main():
    build()
    write(OUTPUT, "boundary_weights", CASES, generator="tests/golden/generate_boundary_weights.py")


if __name__ == "__main__":
    main()
