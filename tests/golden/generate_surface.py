#!/usr/bin/python3
"""Golden reference values for segloss's distance_transform and surface metrics, from scipy.

Run with a Python that has numpy and scipy (Debian: /usr/bin/python3 with python3-scipy):

    /usr/bin/python3 tests/golden/generate_surface.py

It rewrites tests/golden/surface.txt next to this script (format: README.md in this folder);
tests/test_golden_surface.cpp reads it. MONAI is not installed; the reference below is our own
numpy/scipy code written to MONAI's definitions (monai/metrics/utils.py get_mask_edges and
get_surface_distance; hausdorff_distance.py, surface_distance.py, surface_dice.py):

  * edt cases: scipy.ndimage.distance_transform_edt(mask != 0, sampling=spacing) per plane (to
    background), or of mask == 0 (to foreground); squared on request. A plane with nothing to
    measure to is +inf (segloss's definition; scipy has none), written by this script.
  * surface cases, per (image, class) pair, as MONAI does it: crop both masks to the bounding
    box of their union grown by one voxel (zeros outside the image; CropForeground margin=1),
    edges = binary_erosion(m) ^ m (scipy's default cross structure, border_value 0), then
    get_surface_distance(a, b): inf for every voxel of a when b has no edge; inf for every edge
    of b when a has none (MONAI's branch, verbatim in meaning); else
    distance_transform_edt(~b, sampling=spacing)[a]. Then
      hausdorff             max over the two directions of their max (NaN for an empty list;
                            torch.max propagates NaN)
      hausdorff_percentile  the same with np.percentile(d, p) (linear interpolation; NaN for a
                            list of infinities, as MONAI's torch.quantile gives)
      average_surface_distance  mean of the concatenated lists (NaN when empty)
      surface_dice          (#d_pt <= tau + #d_tp <= tau) / (|d_pt| + |d_tp|), NaN when 0/0
    directed: the first direction only (NSD stays symmetric). empty = bounded replaces, after
    the fact, both-empty pairs by 0 (1 for NSD) and one-empty pairs by the image diagonal
    sqrt(sum (extent * spacing)^2) (0 for NSD), as surface_distance.hpp defines it.
  * label cases: masks (label == c) with the pixels whose TRUE label is ignore_index cleared in
    both, then the same.

Masks are drawn from numpy's default_rng with a per-case seed (BASE_SEED + crc32(name)): blobs
(gaussian-smoothed noise, thresholded), single voxels, thin lines, empty and full masks.
"""

import os
import sys
import zlib

import numpy as np
from scipy import ndimage

HERE = os.path.dirname(os.path.abspath(__file__))
OUTPUT = "surface.txt"
BASE_SEED = 20240611
INF = float("inf")


def fmt(v):
    if isinstance(v, (bool, np.bool_)):
        return "1" if v else "0"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    v = float(v)
    if np.isnan(v):
        return "nan"
    if np.isinf(v):
        return "inf" if v > 0 else "-inf"
    if v == int(v) and abs(v) < 1e15:
        return str(int(v))
    return "%.17g" % v


def tensor_line(name, a):
    a = np.asarray(a)
    return " ".join(["tensor", name, str(a.ndim)] + [str(d) for d in a.shape] +
                    [fmt(v) for v in a.reshape(-1).tolist()])


def seed_for(name):
    return np.random.default_rng(BASE_SEED + zlib.crc32(name.encode()) % 100000)


# --------------------------------------------------------------------------------------------
# The reference
# --------------------------------------------------------------------------------------------

def edt_reference(mask, spacing, to, squared):
    """Per plane (n, c) of mask (N, C, spatial...)."""
    out = np.empty(mask.shape, dtype=np.float64)
    for n in range(mask.shape[0]):
        for c in range(mask.shape[1]):
            fg = mask[n, c] != 0
            inside = fg if to == "background" else ~fg  # voxels that get a distance
            if inside.all():
                d = np.full(fg.shape, INF)
            else:
                d = ndimage.distance_transform_edt(inside, sampling=spacing)
            out[n, c] = d * d if squared else d
    return out


def crop_like_monai(p, t):
    """Both masks cropped to the union's bounding box grown by one voxel, zero-padded."""
    union = p | t
    idx = np.nonzero(union)
    lo = [int(i.min()) - 1 for i in idx]
    hi = [int(i.max()) + 2 for i in idx]
    pad = [(max(0, -l), max(0, h - s)) for l, h, s in zip(lo, hi, union.shape)]
    sl = tuple(slice(l + a, h + a) for (l, h), (a, _) in zip(zip(lo, hi), pad))
    return np.pad(p, pad)[sl], np.pad(t, pad)[sl]


def surface_distance_monai(a, b, spacing):
    """MONAI's get_surface_distance(seg_pred=a, seg_gt=b): distances from a's edges to b's."""
    if not b.any():
        return np.full(int(a.sum()), INF)
    if not a.any():
        return np.full(int(b.sum()), INF)
    dis = ndimage.distance_transform_edt(~b, sampling=spacing)
    return dis[a]


def pair_reference(p, t, spacing, percentile, tau, directed):
    """hausdorff, percentile, assd, nsd, |edges p|, |edges t| of one pair (MONAI policy)."""
    if not (p | t).any():
        return np.nan, np.nan, np.nan, np.nan, 0, 0
    p, t = crop_like_monai(p, t)
    ep = ndimage.binary_erosion(p) ^ p
    et = ndimage.binary_erosion(t) ^ t
    d_pt = surface_distance_monai(ep, et, spacing)
    d_tp = surface_distance_monai(et, ep, spacing)
    lists = [d_pt] if directed else [d_pt, d_tp]

    def hd(f):
        vals = [np.nan if len(d) == 0 else f(d) for d in lists]
        return np.nan if any(np.isnan(v) for v in vals) else max(vals)

    hausdorff = hd(np.max)
    pct = hd(lambda d: np.percentile(d, percentile))
    joined = np.concatenate(lists)
    assd = np.nan if len(joined) == 0 else joined.mean()
    complete = len(d_pt) + len(d_tp)
    correct = int(np.sum(d_pt <= tau)) + int(np.sum(d_tp <= tau))
    nsd = np.nan if complete == 0 else correct / complete
    return hausdorff, pct, assd, nsd, int(ep.sum()), int(et.sum())


def surface_reference(pred, truth, spacing, percentile, taus, directed, empty):
    """pred, truth: bool (N, K, spatial...). Returns the six (N, K) arrays."""
    n_img, k_cls = pred.shape[:2]
    spatial = pred.shape[2:]
    diagonal = float(np.sqrt(sum((e * s) ** 2 for e, s in zip(spatial, spacing))))
    out = {k: np.zeros((n_img, k_cls)) for k in
           ["hausdorff", "hausdorff_percentile", "average_surface_distance", "surface_dice"]}
    borders = {k: np.zeros((n_img, k_cls), dtype=np.int64) for k in ["pred_border", "true_border"]}
    for n in range(n_img):
        for k in range(k_cls):
            p, t = pred[n, k], truth[n, k]
            vals = list(pair_reference(p, t, spacing, percentile, taus[k], directed))
            if empty == "bounded":
                if not p.any() and not t.any():
                    vals[:4] = [0.0, 0.0, 0.0, 1.0]
                elif not p.any() or not t.any():
                    vals[:4] = [diagonal, diagonal, diagonal, 0.0]
            for key, v in zip(["hausdorff", "hausdorff_percentile", "average_surface_distance",
                               "surface_dice"], vals[:4]):
                out[key][n, k] = v
            borders["pred_border"][n, k] = vals[4]
            borders["true_border"][n, k] = vals[5]
    out.update(borders)
    return out


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------

def blobs(r, shape, sigma=1.5, fill=0.4):
    """Bool masks of smooth random blobs, about `fill` of each plane on."""
    noise = r.random(shape)
    smooth = ndimage.gaussian_filter(noise, sigma=(0, 0) + (sigma,) * (len(shape) - 2))
    out = np.zeros(shape, dtype=bool)
    for n in range(shape[0]):
        for c in range(shape[1]):
            s = smooth[n, c]
            out[n, c] = s > np.quantile(s, 1.0 - fill)
    return out


def perturb(r, m, flips=0.03):
    """A prediction: the truth with a few voxels flipped and a random shift of the blob."""
    out = m.copy()
    for n in range(m.shape[0]):
        for c in range(m.shape[1]):
            axis = int(r.integers(0, m.ndim - 2))
            out[n, c] = np.roll(m[n, c], int(r.integers(-2, 3)), axis=axis)
    out ^= r.random(m.shape) < flips
    return out


def surface_case(name, pred, truth, spacing=None, percentile=95.0, tolerance=1.0,
                 class_tolerance=None, directed=False, empty="monai", labels=None):
    spatial = pred.ndim - 2
    sp = [1.0] * spatial if spacing is None else list(spacing)
    k = pred.shape[1]
    taus = class_tolerance if class_tolerance is not None else [tolerance] * k
    ref = surface_reference(pred, truth, sp, percentile, taus, directed, empty)
    lines = ["case " + name, "loss surface_distance",
             "shape " + " ".join(str(d) for d in (labels[0].shape if labels else pred.shape))]
    if spacing is not None:
        lines.append("option spacing " + ",".join(fmt(v) for v in spacing))
    lines.append("option percentile " + fmt(percentile))
    lines.append("option tolerance " + fmt(tolerance))
    if class_tolerance is not None:
        lines.append("option class_tolerance " + ",".join(fmt(v) for v in class_tolerance))
    lines.append("option directed " + ("1" if directed else "0"))
    lines.append("option empty " + empty)
    if labels:
        pl, tl, classes, ignore = labels
        lines.append("option form labels")
        lines.append("option classes " + ",".join(str(c) for c in classes))
        lines.append("option ignore_index " + str(ignore))
        lines.append(tensor_line("pred", pl))
        lines.append(tensor_line("target", tl))
    else:
        lines.append("option form masks")
        lines.append(tensor_line("pred", pred.astype(np.int64)))
        lines.append(tensor_line("target", truth.astype(np.int64)))
    for key in ["hausdorff", "hausdorff_percentile", "average_surface_distance", "surface_dice",
                "pred_border", "true_border"]:
        lines.append(tensor_line(key, ref[key]))
    lines.append("end")
    return lines


def label_case(name, pred_labels, true_labels, classes, ignore_index=-100, **kw):
    keep = true_labels != ignore_index
    pred = np.stack([(pred_labels == c) & keep for c in classes], axis=1)
    truth = np.stack([(true_labels == c) & keep for c in classes], axis=1)
    return surface_case(name, pred, truth,
                        labels=(pred_labels, true_labels, classes, ignore_index), **kw)


def edt_case(name, mask, spacing=None, to="background", squared=False):
    spatial = mask.ndim - 2
    sp = [1.0] * spatial if spacing is None else list(spacing)
    ref = edt_reference(mask, sp, to, squared)
    lines = ["case " + name, "loss distance_transform",
             "shape " + " ".join(str(d) for d in mask.shape)]
    if spacing is not None:
        lines.append("option spacing " + ",".join(fmt(v) for v in spacing))
    lines.append("option to " + to)
    lines.append("option squared " + ("1" if squared else "0"))
    lines.append(tensor_line("mask", mask.astype(np.int64)))
    lines.append(tensor_line("distance", ref))
    lines.append("end")
    return lines


def cases():
    out = []

    # ---- the EDT against scipy ----
    r = seed_for("edt_2d")
    out.append(edt_case("edt_2d", blobs(r, (2, 1, 17, 23), fill=0.5)))
    r = seed_for("edt_2d_sparse_foreground")
    out.append(edt_case("edt_2d_sparse_foreground", r.random((1, 2, 19, 16)) < 0.03,
                        to="foreground"))
    r = seed_for("edt_2d_aniso")
    out.append(edt_case("edt_2d_aniso", blobs(r, (1, 1, 21, 18)), spacing=(0.7, 2.3)))
    r = seed_for("edt_2d_aniso_squared")
    out.append(edt_case("edt_2d_aniso_squared", blobs(r, (1, 1, 15, 19)), spacing=(1.9, 0.45),
                        squared=True, to="foreground"))
    r = seed_for("edt_3d")
    out.append(edt_case("edt_3d", blobs(r, (1, 1, 9, 10, 11), fill=0.6)))
    r = seed_for("edt_3d_aniso")
    out.append(edt_case("edt_3d_aniso", r.random((1, 1, 8, 9, 10)) < 0.02, spacing=(3.0, 0.8, 1.1),
                        to="foreground"))
    r = seed_for("edt_3d_aniso_squared")
    out.append(edt_case("edt_3d_aniso_squared", blobs(r, (1, 1, 7, 8, 9)), spacing=(2.5, 1.0, 0.5),
                        squared=True))
    r = seed_for("edt_1d")
    out.append(edt_case("edt_1d", r.random((2, 1, 40)) < 0.1, spacing=(0.25,), to="foreground"))
    one = np.zeros((1, 1, 13, 17), dtype=bool)
    one[0, 0, 4, 11] = True
    out.append(edt_case("edt_single_voxel_foreground", one, spacing=(1.5, 0.5), to="foreground"))
    out.append(edt_case("edt_single_voxel_background", ~one, spacing=(1.5, 0.5)))
    empty = np.zeros((1, 2, 4, 5), dtype=bool)
    empty[0, 1, 2, 3] = True
    out.append(edt_case("edt_empty_plane_inf", empty, to="foreground"))
    out.append(edt_case("edt_1x1", np.ones((2, 1, 1, 1), dtype=bool) * np.array([0, 1]).reshape(2, 1, 1, 1)
                        .astype(bool), to="background"))

    # ---- surface metrics on masks ----
    for dims, name in [((2, 2, 24, 20), "2d"), ((1, 2, 10, 12, 11), "3d")]:
        r = seed_for("blobs_" + name)
        t = blobs(r, dims)
        p = perturb(r, t)
        out.append(surface_case("blobs_" + name, p, t))
        out.append(surface_case("blobs_%s_directed" % name, p, t, directed=True))
        out.append(surface_case("blobs_%s_p50_tol2" % name, p, t, percentile=50.0, tolerance=2.0))
        out.append(surface_case("blobs_%s_p100_tol0" % name, p, t, percentile=100.0, tolerance=0.0))
        out.append(surface_case("blobs_%s_p0" % name, p, t, percentile=0.0, tolerance=1.5))
        sp = (0.8, 1.7) if len(dims) == 4 else (2.5, 0.9, 1.3)
        out.append(surface_case("blobs_%s_aniso" % name, p, t, spacing=sp, tolerance=1.8))
        out.append(surface_case("blobs_%s_class_tol" % name, p, t, spacing=sp,
                                class_tolerance=[0.5, 2.7], percentile=90.0))
    r = seed_for("blobs_3d_medium")
    t = blobs(r, (1, 1, 16, 20, 24), sigma=2.5, fill=0.3)
    p = perturb(r, t, flips=0.01)
    out.append(surface_case("blobs_3d_medium", p, t, spacing=(2.0, 0.9, 0.9)))
    r = seed_for("blobs_1d")
    t = r.random((2, 1, 30)) < 0.3
    out.append(surface_case("blobs_1d", perturb(r, t), t, spacing=(0.4,)))

    # Single voxels, far apart and touching.
    a = np.zeros((1, 1, 9, 12), dtype=bool)
    b = a.copy()
    a[0, 0, 1, 2] = True
    b[0, 0, 7, 10] = True
    out.append(surface_case("single_voxels", a, b, spacing=(1.0, 0.6), tolerance=5.0))
    out.append(surface_case("single_voxel_vs_blob", a, blobs(seed_for("svb"), a.shape)))
    # Thin structures: a 1-voxel line against a shifted line; a diagonal line.
    a = np.zeros((1, 1, 15, 15), dtype=bool)
    b = a.copy()
    a[0, 0, 7, 2:13] = True
    b[0, 0, 8:10, 3:14] = True
    out.append(surface_case("thin_lines", a, b))
    c = np.zeros_like(a)
    for i in range(15):
        c[0, 0, i, i] = True
    out.append(surface_case("diagonal_line", c, a, spacing=(1.2, 0.7)))
    a3 = np.zeros((1, 1, 6, 7, 8), dtype=bool)
    a3[0, 0, 3, 1:6, 4] = True
    b3 = np.zeros_like(a3)
    b3[0, 0, 1:5, 2, 2:7] = True
    out.append(surface_case("thin_3d", a3, b3, spacing=(2.0, 1.0, 1.0)))
    # Full masks: the border is the image boundary.
    full = np.ones((1, 1, 6, 9), dtype=bool)
    out.append(surface_case("full_vs_blob", full, blobs(seed_for("fvb"), full.shape, fill=0.5)))
    out.append(surface_case("full_vs_full", full, full))
    # Empty masks under both policies: both empty, pred empty, truth empty, in one batch.
    r = seed_for("empties")
    t = blobs(r, (4, 1, 12, 13))
    p = perturb(r, t)
    t[0] = False
    p[0] = False  # both empty
    p[1] = False  # prediction empty
    t[2] = False  # truth empty
    for policy in ["monai", "bounded"]:
        out.append(surface_case("empties_" + policy, p, t, empty=policy, spacing=(1.0, 2.0)))
        out.append(surface_case("empties_%s_directed" % policy, p, t, empty=policy, directed=True))
    out.append(surface_case("all_empty", np.zeros((2, 2, 5, 4), dtype=bool),
                            np.zeros((2, 2, 5, 4), dtype=bool)))
    e3 = np.zeros((1, 1, 4, 5, 6), dtype=bool)
    f3 = e3.copy()
    f3[0, 0, 2, 2, 3] = True
    out.append(surface_case("empty_3d_bounded", e3, f3, empty="bounded", spacing=(3.0, 1.0, 1.0)))
    # 1x1 images: on/on, on/off, off/off.
    p = np.array([1, 1, 0], dtype=bool).reshape(3, 1, 1, 1)
    t = np.array([1, 0, 0], dtype=bool).reshape(3, 1, 1, 1)
    out.append(surface_case("one_by_one", p, t))
    out.append(surface_case("one_by_one_bounded", p, t, empty="bounded", spacing=(0.5, 2.0)))
    # A one-slice volume: every voxel of a 3D mask with depth 1 is a border voxel.
    r = seed_for("one_slice_volume")
    t = blobs(r, (1, 1, 1, 9, 10))
    out.append(surface_case("one_slice_volume", perturb(r, t), t, spacing=(5.0, 1.0, 1.0)))

    # ---- label maps ----
    r = seed_for("labels_2d")
    tl = r.integers(0, 4, size=(2, 16, 18))
    tl = ndimage.median_filter(tl, size=(1, 5, 5))
    pl = np.roll(tl, 1, axis=2)
    pl[r.random(pl.shape) < 0.03] = 2
    out.append(label_case("labels_2d", pl.astype(np.int32), tl.astype(np.int64), [1, 2, 3]))
    tl_void = tl.copy()
    tl_void[r.random(tl.shape) < 0.08] = 255
    out.append(label_case("labels_2d_ignore", pl.astype(np.int64), tl_void.astype(np.int32),
                          [3, 0, 2], ignore_index=255, spacing=(1.5, 1.0)))
    r = seed_for("labels_3d")
    tl = ndimage.median_filter(r.integers(0, 3, size=(1, 8, 9, 10)), size=(1, 3, 3, 3))
    pl = np.roll(tl, -1, axis=1)
    out.append(label_case("labels_3d", pl.astype(np.int64), tl.astype(np.int64), [1, 2, 7],
                          spacing=(2.0, 1.0, 0.5), tolerance=1.0))
    return out


def main():
    # np.percentile of a list of infinities is NaN (inf - inf in its interpolation), as MONAI's
    # torch.quantile: the reference keeps it, and numpy warns.
    with np.errstate(invalid="ignore"):
        all_cases = cases()
    with open(os.path.join(HERE, OUTPUT), "w") as f:
        f.write("# distance_transform and surface metrics: scipy.ndimage references written to\n")
        f.write("# MONAI's definitions; see generate_surface.py. Do not edit; regenerate.\n")
        f.write("numpy %s\n" % np.__version__)
        f.write("# scipy %s\n" % __import__("scipy").__version__)
        for lines in all_cases:
            f.write("\n".join(lines) + "\n")
        f.write("count %d\n" % len(all_cases))
    print("%s: %d cases, %d bytes" % (OUTPUT, len(all_cases),
                                      os.path.getsize(os.path.join(HERE, OUTPUT))))


if __name__ == "__main__":
    sys.exit(main())
