"""Family "surface": segloss's surface_distance (masks, kind "sd") and surface_distance_labels
(label maps, kind "sdl") against a reference built on scipy.ndimage.

The semantics are MONAI's (compute_hausdorff_distance, compute_average_surface_distance,
compute_surface_dice with use_subvoxels=False, and their helpers get_mask_edges /
get_surface_distance), as docs/surface-distance.md states them, written here with scipy:
  - border of a mask M: M xor binary_erosion(M) with the cross structuring element and the
    outside counted as background (border_value=0);
  - distances of one border's voxels to the other border: scipy.ndimage.distance_transform_edt
    of the other border's complement, with the voxel spacing (sampling);
  - Hausdorff: the larger of the two directions' maxima; percentile: each direction's
    numpy.percentile (linear interpolation), then the larger; ASSD: the mean of the two lists
    joined; surface Dice: border voxels within the tolerance over all border voxels;
    directed: the prediction-to-truth direction only (not for the surface Dice);
  - empty masks by segloss's SurfaceEmpty policy: monai (NaN, or inf / NaN / inf / 0 with one
    mask empty) or bounded (0 / 1, or the image diagonal / 0);
  - labels: class c's masks are label == c, the pixels whose true label is ignore_index removed
    from both.
"""
import math

import numpy as np
from scipy import ndimage

METRICS = ["hd", "hdp", "assd", "nsd"]

# ------------------------------------------------------------------------------ generation


def rand_mask(rng, sp):
    """A random, empty, full, single-voxel, line or ellipsoid (blob) mask."""
    mode = rng.choice(["blob", "blob", "rand", "empty", "full", "single", "line"])
    if mode == "rand":
        return rng.random(sp) < rng.choice([0.1, 0.5, 0.9])
    if mode == "empty":
        return np.zeros(sp, bool)
    if mode == "full":
        return np.ones(sp, bool)
    if mode == "single":
        mask = np.zeros(sp, bool)
        mask[tuple(rng.integers(0, s) for s in sp)] = True
        return mask
    if mode == "line":
        mask = np.zeros(sp, bool)
        index = [rng.integers(0, s) for s in sp]
        index[rng.integers(0, len(sp))] = slice(None)
        mask[tuple(index)] = True
        return mask
    grids = np.meshgrid(*[np.arange(s) for s in sp], indexing="ij")
    radius2 = 0
    for g, s in zip(grids, sp):
        centre = rng.uniform(-0.5, s - 0.5)
        semi_axis = rng.uniform(0.5, max(1.0, s / 1.5))
        radius2 = radius2 + ((g - centre) / semi_axis) ** 2
    return radius2 <= 1


def _gen_masks_case(rng, f, N, sp):
    C = int(rng.integers(1, 4))
    shape = [N, C] + sp
    pred = np.zeros(shape)
    target = np.zeros(shape)
    for n in range(N):
        for c in range(C):
            pred[n, c] = rand_mask(rng, sp)
            target[n, c] = rand_mask(rng, sp) if rng.random() < 0.6 else pred[n, c]
            if rng.random() < 0.3:  # perturb the truth a little
                target[n, c] = target[n, c].astype(bool) ^ (rng.random(sp) < 0.05)
    f["pred"], f["target"] = pred, target
    if rng.random() < 0.2:
        f["class_tolerance"] = list(rng.choice([0.0, 1.0, 2.0, 3.5], size=C))
    return "sd", f


def _gen_labels_case(rng, f, N, sp):
    K = int(rng.integers(2, 5))
    shape = [N] + sp
    pred = np.zeros(shape, np.int64)
    target = np.zeros(shape, np.int64)
    for n in range(N):
        for c in range(1, K):
            pred[n][rand_mask(rng, sp)] = c
            target[n][rand_mask(rng, sp)] = c
        if rng.random() < 0.5:  # the truth mostly the prediction
            target[n] = np.where(rng.random(sp) < 0.8, pred[n], target[n])
    ignore = int(rng.choice([-100, 255, 7]))
    f["ignore_index"] = ignore
    if rng.random() < 0.4:
        target[rng.random(shape) < 0.15] = ignore if ignore != -100 else 255
    classes = [int(c) for c in rng.permutation(K + 1)[:int(rng.integers(1, K + 1))]]
    f["classes"] = classes
    f["pred"], f["target"] = pred, target
    if rng.random() < 0.2:
        f["class_tolerance"] = list(rng.choice([0.0, 1.0, 2.0, 3.5], size=len(classes)))
    return "sdl", f


def generate(rng):
    """Masks (N, C, spatial) or label maps (N, spatial), 1 to 3 spatial axes, random options."""
    N = int(rng.integers(1, 3))
    axes = int(rng.integers(1, 4))
    limit = {1: 40, 2: 24, 3: 10}[axes]
    sp = [int(rng.integers(1, limit + 1)) for _ in range(axes)]
    f = {}
    if rng.random() < 0.5:
        f["spacing"] = list(rng.choice([1.0, 0.5, 2.5, 0.8, 1.3], size=axes))
    f["percentile"] = float(rng.choice([95.0, 95.0, 50.0, 0.0, 100.0, 99.0, 12.5]))
    f["tolerance"] = float(rng.choice([1.0, 0.0, 2.0, 1.5, 0.8]))
    f["directed"] = int(rng.random() < 0.2)
    f["empty"] = str(rng.choice(["monai", "bounded"]))
    if rng.random() < 0.5:
        return _gen_masks_case(rng, f, N, sp)
    return _gen_labels_case(rng, f, N, sp)


# ------------------------------------------------------------------------------ reference


def border(mask):
    """mask xor its erosion by the cross, the outside background (MONAI's get_mask_edges)."""
    if not mask.any():
        return mask.copy()
    cross = ndimage.generate_binary_structure(mask.ndim, 1)
    return mask ^ ndimage.binary_erosion(mask, structure=cross, border_value=0)


def empty_pair(pred, target, spacing, policy):
    """The four metrics where one mask or both are empty, and which case it is."""
    both = not pred.any() and not target.any()
    if policy == "bounded":
        if both:
            return [0.0, 0.0, 0.0, 1.0], "both"
        diagonal = math.sqrt(sum((n * s) ** 2 for n, s in zip(pred.shape, spacing)))
        return [diagonal, diagonal, diagonal, 0.0], "one"
    if both:
        return [math.nan] * 4, "both"
    return [math.inf, math.nan, math.inf, 0.0], "one"


def pair_metrics(pred, target, spacing, f, tolerance):
    """HD, HD-percentile, ASSD and surface Dice of one mask pair, with the border sizes and
    "both" / "one" / None for the empty cases."""
    bp, bt = border(pred), border(target)
    if not pred.any() or not target.any():
        values, empty = empty_pair(pred, target, spacing, f["empty"])
        return values, int(bp.sum()), int(bt.sum()), empty
    d_pt = ndimage.distance_transform_edt(~bt, sampling=spacing)[bp]  # pred border -> truth
    d_tp = ndimage.distance_transform_edt(~bp, sampling=spacing)[bt]  # truth border -> pred
    q = f["percentile"]
    if f["directed"]:
        hd, hdp, assd = d_pt.max(), np.percentile(d_pt, q), d_pt.sum() / len(d_pt)
    else:
        hd = max(d_pt.max(), d_tp.max())
        hdp = max(np.percentile(d_pt, q), np.percentile(d_tp, q))
        assd = (d_pt.sum() + d_tp.sum()) / (len(d_pt) + len(d_tp))
    nsd = ((d_pt <= tolerance).sum() + (d_tp <= tolerance).sum()) / (bp.sum() + bt.sum())
    return [float(hd), float(hdp), float(assd), float(nsd)], int(bp.sum()), int(bt.sum()), None


def mask_pairs(kind, f):
    """Rows (one per image) of (pred, target) boolean masks, one per column (class)."""
    pred, target = np.asarray(f["pred"]), np.asarray(f["target"])
    if kind == "sd":
        return [[(pred[n, c] != 0, target[n, c] != 0) for c in range(pred.shape[1])]
                for n in range(pred.shape[0])]
    rows = []
    for n in range(pred.shape[0]):
        keep = target[n] != f["ignore_index"]
        rows.append([((pred[n] == c) & keep, (target[n] == c) & keep) for c in f["classes"]])
    return rows


def reference(kind, f):
    """Expected driver results: per (image, class) hd, hdp, assd, nsd and border sizes bp, bt;
    mean_* (the mean of the non-NaN values), and the counts of empty and one-empty pairs."""
    pred = np.asarray(f["pred"])
    spacing = f.get("spacing") or [1.0] * (pred.ndim - (2 if kind == "sd" else 1))
    out = {k: [] for k in METRICS + ["bp", "bt"]}
    empties = {"both": 0, "one": 0}
    for row in mask_pairs(kind, f):
        for k, (pm, tm) in enumerate(row):
            tolerance = f["class_tolerance"][k] if "class_tolerance" in f else f["tolerance"]
            values, bp, bt, empty = pair_metrics(pm, tm, spacing, f, tolerance)
            if empty:
                empties[empty] += 1
            for name, value in zip(METRICS, values):
                out[name].append(value)
            out["bp"].append(bp)
            out["bt"].append(bt)
    for name in METRICS:
        values = np.array(out[name])
        values = values[~np.isnan(values)]
        out["mean_" + name] = float(values.sum() / len(values)) if len(values) else math.nan
    out["empty"] = empties["both"]
    out["one_empty"] = empties["one"]
    return out
