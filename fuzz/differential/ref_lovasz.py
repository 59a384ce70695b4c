"""Family "lovasz": segloss's lovasz_softmax (kind "lsm") and lovasz_hinge (kind "lhg") against a
float64 PyTorch reference.

The reference is written here from the paper (Berman, Rannen Triki, Blaschko, "The
Lovász-Softmax loss: a tractable surrogate for the optimization of the intersection-over-union
measure in neural networks", CVPR 2018, Alg. 1) and the semantics segloss documents in
losses/lovasz.hpp (classes present / all / a list, per_image, ignore, the mean over problems
that counts every problem, 0 for a problem without pixels or classes). Gradients come from
torch.autograd with the sort's permutation held fixed, i.e. the subgradient of the fixed order.

Where errors tie, the loss is not differentiable and any order of the tied pixels gives a valid
subgradient; segloss takes a documented one (ties by pixel index, after its own rounding of the
errors: losses/lovasz.hpp, backends/cpu/lovasz_keys.hpp). The reference follows that rule as far
as float64 torch allows (see softmax_order); a remaining gradient-only mismatch is re-run by
fuzz.py with perturbed logits (see near_ties).
"""
import numpy as np
import torch
import torch.nn.functional as F

from cases import rand_logits, rand_spatial
from accurate import SoftmaxAcc

torch.set_default_dtype(torch.float64)

# ------------------------------------------------------------------------------ generation


def _gen_softmax_case(rng, N, sp):
    C = int(rng.choice([1, 2, 2, 3, 4, 5]))
    shape = [N, C] + sp
    x = rand_logits(rng, shape)
    if rng.random() < 0.15:  # exact ties: one logit vector for all pixels of each image
        v = rng.normal(size=[N, C] + [1] * len(sp)) * 2
        x = np.broadcast_to(v, shape).copy()
    label_mode = rng.choice(["rand", "one", "ignored", "fewig"])
    ignore = int(rng.choice([-100, 255, 0, C - 1, -1]))
    y = rng.integers(0, C, size=[N] + sp)
    if label_mode == "one":  # one class everywhere
        y[:] = rng.integers(0, C)
    elif label_mode == "ignored":  # everything ignored (the first image kept half the time)
        y[:] = ignore if ignore != -100 else 0
        if rng.random() < 0.5 and N > 1:
            y[0] = rng.integers(0, C, size=sp)
    elif label_mode == "fewig":  # 30 % ignored
        y[rng.random(y.shape) < 0.3] = ignore
    if ignore == -100:  # -100 stays the default that ignores nothing here
        y[y == -100] = 0
    fields = {"x": x, "y": y.astype(np.int64), "ignore_index": ignore,
              "per_image": int(rng.random() < 0.5),
              "reduction": str(rng.choice(["mean", "sum", "none"])),
              "classes": str(rng.choice(["present", "all"]))}
    if rng.random() < 0.25:  # an explicit class list (ignore_index, if a class, left out)
        k = int(rng.integers(1, C + 1))
        class_list = [int(c) for c in rng.permutation(C)[:k]]
        if ignore in class_list:
            class_list.remove(ignore)
        if class_list:
            fields["class_list"] = class_list
    if fields["reduction"] == "none":
        fields["grad_out"] = rng.normal(size=[N if fields["per_image"] else 1])
    return "lsm", fields


def _gen_hinge_case(rng, N, sp):
    C = int(rng.choice([1, 1, 2, 3]))
    shape = [N, C] + sp
    x = rand_logits(rng, shape)
    if rng.random() < 0.2:  # ties in errors: logits from a tiny set
        x = rng.choice([-1.0, 0.0, 0.5, 1.0, 2.0], size=shape)
    elif rng.random() < 0.1:  # one logit for everything: errors 1 - x and 1 + x tie in blocks
        x = np.full(shape, rng.normal())
    y = (rng.random(shape) < rng.choice([0.0, 0.1, 0.5, 0.9, 1.0])).astype(float)
    fields = {"x": x, "y": y, "per_image": int(rng.random() < 0.6),
              "reduction": str(rng.choice(["mean", "sum", "none"]))}
    if rng.random() < 0.4:  # an ignore value, set on a random share of the pixels
        ignore = float(rng.choice([255.0, -1.0, 0.5, 1.0, 0.0]))
        fields["ignore"] = ignore
        y[rng.random(shape) < rng.choice([0.0, 0.2, 0.5, 1.0])] = ignore
    if fields["reduction"] == "none":
        fields["grad_out"] = rng.normal(size=[N if fields["per_image"] else 1])
    return "lhg", fields


def generate(rng):
    """One lovasz_softmax case or one lovasz_hinge case, half and half."""
    N = int(rng.integers(1, 4))
    sp = rand_spatial(rng, 300)
    if rng.random() < 0.5:
        return _gen_softmax_case(rng, N, sp)
    return _gen_hinge_case(rng, N, sp)


# ------------------------------------------------------------------------------ the extension


def jaccard_steps(gt_in_order):
    """The Lovász extension's weights for one ordering of the pixels (paper, Alg. 1).

    Take the pixels in the given order (decreasing error) and let the k first ones be predicted
    wrong, the others right: the predicted foreground is then the ground truth with those k
    pixels flipped. With P = |ground truth| and, among the first k pixels, pos_k positives and
    neg_k negatives, that prediction keeps P - pos_k true positives and its union with the truth
    has P + neg_k pixels, so its Jaccard loss is

        J_k = 1 - (P - pos_k) / (P + neg_k),    J_0 = 0,

    and the weight of the k-th pixel is J_k - J_{k-1}. The union is never empty (P > 0, or the
    first pixel is a negative), and the weights depend on the order and the truth only.
    """
    gt = np.asarray(gt_in_order, dtype=np.int64)
    seen = np.arange(1, gt.size + 1)        # k = 1 .. number of pixels
    positives = int(gt.sum())               # P
    pos_seen = np.cumsum(gt)                # pos_k
    neg_seen = seen - pos_seen              # neg_k
    kept_true = positives - pos_seen        # |truth  and  prediction_k|
    union = positives + neg_seen            # |truth  or  prediction_k|
    loss_k = 1.0 - kept_true / union        # J_1 .. J_P
    return np.diff(loss_k, prepend=0.0)     # J_k - J_{k-1}


def lovasz_extension(errors, gt, order):
    """sum_k errors[order[k]] (J_k - J_{k-1}), the truth taken in the same order. `order` is a
    permutation (decreasing errors); autograd sees errors[order], a fixed gather."""
    weights = jaccard_steps(gt.detach().numpy()[order])
    return torch.dot(errors[torch.from_numpy(order)], torch.from_numpy(weights))


def decreasing(values):
    """The permutation that sorts `values` in decreasing order, ties by index (first first)."""
    return np.lexsort((np.arange(len(values)), -np.asarray(values)))


# ------------------------------------------------------------------------------ lovasz_hinge


def hinge_problem(x, y):
    """lovasz_hinge of one problem (flat logits and 0/1 labels): errors 1 - x (2y - 1), sorted
    as computed (segloss computes them with the same rounding), relu's kink at 0 as torch."""
    if len(y) == 0:
        return x.sum() * 0.0
    errors = 1.0 - x * (2.0 * y - 1.0)
    order = decreasing(errors.detach().numpy())
    return lovasz_extension(F.relu(errors), y, order)


# ------------------------------------------------------------------------------ lovasz_softmax


def library_probabilities(logits):
    """p and q = 1 - p_max rounded the way segloss's step A rounds them (docs/gradients.md
    §11.3): with d = x - max x and r = 1 / sum_c exp(d) (summed in class order), p = exp(d) r,
    and q = r (the sum of exp(d) over the classes below the max, plus 1 for each class tied at
    the max but the first). logits: (C, P) numpy. Only used to order errors like the library."""
    shifted = logits - logits.max(0)
    exps = np.exp(shifted)
    total = np.zeros(logits.shape[1])
    others = np.zeros(logits.shape[1])
    tops = np.zeros(logits.shape[1])
    for c in range(logits.shape[0]):
        is_top = shifted[c] == 0
        total = total + exps[c]
        others = others + np.where(is_top, 0.0, exps[c])
        tops = tops + is_top
    scale = 1.0 / total
    return exps * scale, (others + (tops - 1)) * scale


def library_order(p, q, fg):
    """The order of segloss's softmax_key (backends/cpu/lovasz_keys.hpp) for one class: errors
    above 1/2 first, by increasing d = 1 - e computed without cancellation (p for a ground truth,
    q for another label whose class is the most probable), then the others by decreasing e
    (q for a ground truth with p > 1/2, else 1 - p; p for another label); ties by pixel index."""
    above_half = np.where(fg, p < 0.5, p > 0.5)
    d = np.where(fg, p, q)
    e = np.where(fg, np.where(p > 0.5, q, 1.0 - p), p)
    group = np.where(above_half, 0, 1)
    within = np.where(above_half, d, -e)
    return np.lexsort((np.arange(len(p)), within, group))


def tie_aware_order(errors, logits, fg):
    """Decreasing errors, where pixels with bit-identical x - max(x) and label (which segloss
    gives bit-identical errors, so they tie in pixel order) all take the first one's error:
    torch's vectorized softmax may round such pixels differently at a loop tail."""
    key = np.concatenate([(logits - logits.max(0)).T, fg[:, None]], 1)
    _, first, which = np.unique(key, axis=0, return_index=True, return_inverse=True)
    return decreasing(errors[first][which.ravel()])


def softmax_problem(p, y, logits, classes, class_list, emulate_order):
    """lovasz_softmax of one problem: p (C, P) probabilities (autograd), y (P) labels, logits
    (C, P) numpy (for the order only). The mean of the classes' losses over the classes counted
    (class_list if given, else every class, or those present with classes == "present"); None
    if no class is counted or there are no pixels."""
    C = p.shape[0]
    if p.shape[1] == 0:
        return None
    if emulate_order:
        lib_p, lib_q = library_probabilities(logits)
    losses = []
    for c in (class_list or range(C)):
        fg = (y == c).double()
        if not class_list and classes == "present" and fg.sum() == 0:
            continue
        # e = |fg - p_c|: p_c for another label; for the label, 1 - p_c written as the other
        # classes' sum (the same function without 1 - p's cancellation, and smooth there)
        rest = p[torch.arange(C) != c].sum(0) if C > 1 else torch.zeros_like(p[c])
        errors = torch.where(fg > 0, rest, p[c])
        fg_mask = fg.numpy() > 0
        if emulate_order:
            order = library_order(lib_p[c], lib_q, fg_mask)
        else:
            order = tie_aware_order(errors.detach().numpy(), logits, fg_mask)
        losses.append(lovasz_extension(errors, fg, order))
    return torch.stack(losses).mean() if losses else None


def _softmax_losses(x, f, emulate_order):
    """Per-problem lovasz_softmax losses (one per image with per_image, else one)."""
    N, C = x.shape[:2]
    p = SoftmaxAcc.apply(x).reshape(N, C, -1)
    logits = x.detach().numpy().reshape(N, C, -1)
    labels = np.asarray(f["y"]).reshape(N, -1)
    if f["per_image"]:
        problems = [(p[n], labels[n], logits[n]) for n in range(N)]
    else:
        problems = [(p.permute(1, 0, 2).reshape(C, -1), labels.reshape(-1),
                     logits.transpose(1, 0, 2).reshape(C, -1))]
    losses = []
    for pp, yy, xx in problems:
        keep = yy != f["ignore_index"]
        loss = softmax_problem(pp[:, torch.from_numpy(keep)], torch.from_numpy(yy[keep]),
                               xx[:, keep], f["classes"], f.get("class_list"), emulate_order)
        losses.append(loss if loss is not None else x.sum() * 0.0)
    return losses


def _hinge_losses(x, f):
    """Per-problem lovasz_hinge losses: each image (or the batch) flattened, ignore dropped."""
    y = torch.tensor(f["y"])
    N = x.shape[0]
    if f["per_image"]:
        problems = [(x[n].reshape(-1), y[n].reshape(-1)) for n in range(N)]
    else:
        problems = [(x.reshape(-1), y.reshape(-1))]
    losses = []
    for xf, yf in problems:
        if "ignore" in f:
            keep = yf != f["ignore"]
            xf, yf = xf[keep], yf[keep]
        losses.append(hinge_problem(xf, yf))
    return losses


def reference(kind, f, emulate_order=False):
    """Expected driver results: value (and fwd) and grad for mean / sum; for reduction none the
    per-problem values and the gradient of sum(values * grad_out)."""
    x = torch.tensor(f["x"], requires_grad=True)
    if kind == "lhg":
        per_problem = torch.stack(_hinge_losses(x, f))
    else:
        per_problem = torch.stack(_softmax_losses(x, f, emulate_order))
    if f["reduction"] == "none":
        (per_problem * torch.tensor(f["grad_out"])).sum().backward()
        return {"value": per_problem.detach().numpy(), "grad": x.grad.numpy()}
    loss = per_problem.mean() if f["reduction"] == "mean" else per_problem.sum()
    loss.backward()
    return {"value": loss.item(), "fwd": loss.item(), "grad": x.grad.numpy()}


# ------------------------------------------------------------------------------ tie diagnosis


def _problem_errors(kind, f):
    """Every sorted error list of a case (per problem, per class), ignored pixels removed."""
    x = torch.tensor(f["x"])
    y = torch.tensor(f["y"])
    N = x.shape[0]

    def split(e, keep):
        if f["per_image"]:
            return [e[n][keep[n]].numpy() for n in range(N)]
        return [e[keep].numpy()]

    if kind == "lhg":
        keep = y != f["ignore"] if "ignore" in f else torch.ones_like(y, dtype=torch.bool)
        return split(1 - x * (2 * y - 1), keep)
    p = torch.softmax(x, 1)
    keep = y != f["ignore_index"]
    lists = []
    for c in range(x.shape[1]):
        lists += split(((y == c).double() - p[:, c]).abs(), keep)
    return lists


def near_ties(kind, f):
    """How many neighbouring sorted errors differ by at most 1e-12 relative (ties included)."""
    count = 0
    for e in _problem_errors(kind, f):
        ordered = np.sort(e)[::-1]
        gaps = ordered[:-1] - ordered[1:]
        count += int((gaps <= 1e-12 * np.maximum(np.abs(ordered[:-1]), 1e-300)).sum())
    return count
