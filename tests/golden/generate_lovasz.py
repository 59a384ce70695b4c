#!/usr/bin/python3
"""Golden reference values for segloss's lovasz_softmax and lovasz_hinge, in PyTorch float64.

Run from anywhere with a Python that has torch (Debian: /usr/bin/python3 with python3-torch):

    /usr/bin/python3 tests/golden/generate_lovasz.py

It rewrites tests/golden/lovasz.txt next to this script, in the format of the other golden files
(README.md in this folder); tests/test_golden_lovasz.cpp reads it.

The reference is the authors' algorithm (Berman, Rannen Triki, Blaschko, CVPR 2018; the
semantics of lovasz_softmax / lovasz_hinge in github.com/bermanmaxim/LovaszSoftmax,
pytorch/lovasz_losses.py: classes 'present' | 'all' | a list, per_image, ignore, the mean over
images that counts every image, 0 for a problem without pixels or classes), written again here
with torch ops (our code, not a copy): per problem and class, sort the errors in decreasing
order, take the increments g_k of the Jaccard loss along that order (Alg. 1), and dot them with
the sorted errors (relu of them for the hinge). segloss's reductions sum and none (over the
problems) are the obvious sum and stack of the same per-problem losses. The softmax is
torch.softmax over the class axis; gradients come from torch.autograd, with the permutation
held fixed as in the authors' code (it sorts, then indexes).

Inputs: logits randn * 2 rounded to multiples of 2^-20 (exact in float as well). The sort must
mean the same order in float and double and under the C++ tests' finite differences, so every
case is drawn again (next seed) until, in every sort, neighbouring errors differ by at least
GAP and (hinge) every error is at least GAP away from 0 (relu's kink). Labels are int64 (the C++
test feeds them as int32 and int64).

Gradients (generate.py's record): loss.backward(grad_out) with a scalar grad_out for mean /
sum, and (loss * grad_out).sum().backward() with a random grad_out for none.
"""

import os
import sys

import torch

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from generate import BASE_SEED, Case, record, seed_for  # noqa: E402  (the shared writer)

HERE = os.path.dirname(os.path.abspath(__file__))
OUTPUT = "lovasz.txt"
GAP = 2e-6

torch.set_default_dtype(torch.float64)


class TooClose(Exception):
    pass


def check_gaps(errors, hinge):
    """Neighbouring sorted errors at least GAP apart (and, for the hinge, |e| >= GAP)."""
    e = torch.sort(errors.detach(), descending=True).values
    if hinge:
        if e.numel() and bool((e.abs() < GAP).any()):
            raise TooClose()
        e = e[e > 0]
    if e.numel() > 1 and bool(((e[:-1] - e[1:]) < GAP).any()):
        raise TooClose()


# --------------------------------------------------------------------------------------------
# The reference, written from the paper's Alg. 1 and the authors' semantics.
# --------------------------------------------------------------------------------------------

def jaccard_increments(gt_sorted):
    """The weights g_k = J_k - J_{k-1} (J_0 = 0) of Alg. 1, from counts.

    With the pixels in decreasing order of error, predict the first k of them wrong and the rest
    right: the prediction is the ground truth (P pixels) with those k flipped. If pos_k of them
    are positives and neg_k = k - pos_k negatives, the prediction keeps P - pos_k of the truth
    and their union has P + neg_k pixels, so J_k = 1 - (P - pos_k) / (P + neg_k).
    """
    n = gt_sorted.numel()
    first_k = torch.arange(1, n + 1, dtype=gt_sorted.dtype)  # k = 1 .. n
    positives = gt_sorted.sum()                                # P
    pos_k = torch.cumsum(gt_sorted, 0)
    neg_k = first_k - pos_k
    loss_k = 1.0 - (positives - pos_k) / (positives + neg_k)  # J_1 .. J_n
    previous = torch.cat([loss_k.new_zeros(1), loss_k[:-1]])   # J_0 .. J_{n-1}
    return loss_k - previous


def lovasz_extension(errors, gt, hinge):
    check_gaps(errors, hinge)
    order = torch.argsort(errors.detach(), descending=True)
    e = errors[order]
    if hinge:
        e = torch.relu(e)
    return torch.dot(e, jaccard_increments(gt[order]))


def softmax_problem(prob, lab, C, classes, ignore, zero):
    """prob (P, C), lab (P): the mean of loss_c over the classes counted, 0 without any."""
    keep = lab != ignore
    prob, lab = prob[keep], lab[keep]
    if lab.numel() == 0:
        return zero
    chosen = list(range(C)) if classes in ("present", "all") else classes
    terms = []
    for c in chosen:
        gt = (lab == c).to(prob.dtype)
        if classes == "present" and gt.sum() == 0:
            continue
        terms.append(lovasz_extension((gt - prob[:, c]).abs(), gt, hinge=False))
    return torch.stack(terms).mean() if terms else zero


def lovasz_softmax_ref(logits, labels, per_image, classes, ignore):
    """Per-problem losses (N) per image, (1) for the batch."""
    C = logits.shape[1]
    p = torch.softmax(logits, dim=1)
    zero = p.sum() * 0.0
    flat = p.movedim(1, -1).reshape(p.shape[0], -1, C)  # (N, S, C)
    lab = labels.reshape(labels.shape[0], -1)
    if per_image:
        return torch.stack([softmax_problem(flat[n], lab[n], C, classes, ignore, zero)
                            for n in range(p.shape[0])])
    return torch.stack([softmax_problem(flat.reshape(-1, C), lab.reshape(-1), C, classes,
                                        ignore, zero)])


def hinge_problem(x, t, ignore, zero):
    if ignore is not None:
        keep = t != ignore
        x, t = x[keep], t[keep]
    if t.numel() == 0:
        return zero
    signs = 2.0 * t - 1.0
    return lovasz_extension(1.0 - x * signs, t, hinge=True)


def lovasz_hinge_ref(logits, labels, per_image, ignore):
    zero = logits.sum() * 0.0
    if per_image:
        return torch.stack([hinge_problem(logits[n].reshape(-1), labels[n].reshape(-1), ignore,
                                          zero) for n in range(logits.shape[0])])
    return torch.stack([hinge_problem(logits.reshape(-1), labels.reshape(-1), ignore, zero)])


def reduce(per_problem, reduction):
    if reduction == "mean":
        return per_problem.mean()
    if reduction == "sum":
        return per_problem.sum()
    return per_problem


# --------------------------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------------------------

def rounded(t):
    return torch.round(t * 2.0 ** 20) / 2.0 ** 20


def draw(name, make):
    """make() draws the inputs and evaluates; drawn again until the sorts are well separated."""
    seed_for(name)
    for _ in range(200):
        try:
            return make()
        except TooClose:
            continue
    raise RuntimeError("case %s: no well-separated draw" % name)


def softmax_case(name, shape, reduction="mean", per_image=False, classes="present",
                 ignore=-100, ignore_frac=0.0, grad_out=1.0, label_pool=None, all_ignored=None):
    """label_pool: {image: list of classes} to draw that image's labels from (absent classes);
    all_ignored: an image whose pixels are all ignore."""
    C = shape[1]
    lshape = (shape[0],) + tuple(shape[2:])

    def make():
        x = rounded(torch.randn(shape) * 2.0).requires_grad_(True)
        y = torch.randint(0, C, lshape)
        if label_pool:
            for n, pool in label_pool.items():
                pick = torch.randint(0, len(pool), y[n].shape)
                y[n] = torch.tensor(pool)[pick]
        if ignore_frac > 0:
            y[torch.rand(lshape) < ignore_frac] = ignore
        if all_ignored is not None:
            y[all_ignored] = ignore
        loss = reduce(lovasz_softmax_ref(x, y, per_image, classes, ignore), reduction)
        return x, y, loss

    x, y, loss = draw(name, make)
    c = Case(name, "lovasz_softmax")
    c.lines.append("shape " + " ".join(str(d) for d in shape))
    c.option("reduction", reduction)
    c.option("per_image", int(per_image))
    if isinstance(classes, str):
        c.option("classes", classes)
    else:
        c.option("classes", "list")
        c.tensor("class_list", torch.tensor(classes, dtype=torch.float64))
    c.option("ignore_index", ignore)
    c.tensor("logits", x)
    c.tensor("target", y.to(torch.float64))
    record(c, loss, x, reduction, grad_out)
    return c


def hinge_case(name, shape, reduction="mean", per_image=True, ignore=None, ignore_frac=0.0,
               grad_out=1.0, all_ignored=None):
    def make():
        x = rounded(torch.randn(shape) * 2.0).requires_grad_(True)
        t = (torch.rand(shape) < 0.45).to(torch.float64)
        if ignore is not None and ignore_frac > 0:
            t[torch.rand(shape) < ignore_frac] = ignore
        if all_ignored is not None:
            t[all_ignored] = ignore
        loss = reduce(lovasz_hinge_ref(x, t, per_image, ignore), reduction)
        return x, t, loss

    x, t, loss = draw(name, make)
    c = Case(name, "lovasz_hinge")
    c.lines.append("shape " + " ".join(str(d) for d in shape))
    c.option("reduction", reduction)
    c.option("per_image", int(per_image))
    if ignore is not None:
        c.option("ignore", ignore)
    c.tensor("logits", x)
    c.tensor("target", t)
    record(c, loss, x, reduction, grad_out)
    return c


S2 = (2, 5, 4, 5)
S1 = (2, 5, 9)
S3 = (2, 4, 2, 3, 3)
C2 = (3, 2, 4, 4)
C21 = (2, 21, 3, 4)


def softmax_cases():
    cs = []
    for per_image in (False, True):
        pi = "_per_image" if per_image else ""
        for classes in ("present", "all", [0, 2, 4]):
            cn = classes if isinstance(classes, str) else "list"
            cs.append(softmax_case("ls_2d%s_%s_mean" % (pi, cn), S2, per_image=per_image,
                                   classes=classes,
                                   label_pool={0: [0, 1, 3]}))
        cs.append(softmax_case("ls_2d%s_ignore_mean" % pi, S2, per_image=per_image,
                               ignore=255, ignore_frac=0.3))
        for r in ("sum", "none"):
            cs.append(softmax_case("ls_2d%s_%s" % (pi, r), S2, reduction=r, per_image=per_image,
                                   label_pool={1: [2, 4]}))
    cs.append(softmax_case("ls_2d_mean_grad_out", S2, grad_out=0.37))
    cs.append(softmax_case("ls_2d_per_image_all_ignore_sum_grad_out", S2, reduction="sum",
                           per_image=True, classes="all", ignore=255, ignore_frac=0.25,
                           grad_out=-1.75))
    cs.append(softmax_case("ls_2d_per_image_image_all_ignored_mean", S2, per_image=True,
                           ignore=255, all_ignored=1))
    cs.append(softmax_case("ls_2d_per_image_image_all_ignored_all_none", S2, reduction="none",
                           per_image=True, classes="all", ignore=255, all_ignored=0))
    cs.append(softmax_case("ls_2d_ignore_index_0_mean", S2, ignore=0, ignore_frac=0.2))
    cs.append(softmax_case("ls_2d_list_absent_class_per_image_mean", S2, per_image=True,
                           classes=[1, 4], label_pool={0: [0, 1, 2], 1: [2, 3]}))
    cs.append(softmax_case("ls_c2_mean", C2))
    cs.append(softmax_case("ls_c2_per_image_all_sum", C2, reduction="sum", per_image=True,
                           classes="all"))
    cs.append(softmax_case("ls_c21_mean", C21))
    cs.append(softmax_case("ls_c21_all_mean", C21, classes="all"))
    cs.append(softmax_case("ls_c21_per_image_ignore_none", C21, reduction="none",
                           per_image=True, ignore=255, ignore_frac=0.2))
    cs.append(softmax_case("ls_1d_mean", S1))
    cs.append(softmax_case("ls_1d_per_image_list_sum", S1, reduction="sum", per_image=True,
                           classes=[3, 0]))
    cs.append(softmax_case("ls_3d_mean", S3))
    cs.append(softmax_case("ls_3d_per_image_all_ignore_mean", S3, per_image=True, classes="all",
                           ignore=255, ignore_frac=0.2))
    cs.append(softmax_case("ls_3d_none", S3, reduction="none"))
    return cs


H2 = (3, 1, 5, 6)
H1 = (2, 1, 11)
H3 = (2, 1, 2, 3, 4)
HC3 = (2, 3, 3, 4)


def hinge_cases():
    cs = []
    for per_image in (True, False):
        pi = "_per_image" if per_image else "_batch"
        for r in ("mean", "sum", "none"):
            cs.append(hinge_case("lh_2d%s_%s" % (pi, r), H2, reduction=r, per_image=per_image))
        cs.append(hinge_case("lh_2d%s_ignore_mean" % pi, H2, per_image=per_image, ignore=255,
                             ignore_frac=0.3))
    cs.append(hinge_case("lh_2d_per_image_mean_grad_out", H2, grad_out=0.37))
    cs.append(hinge_case("lh_2d_per_image_image_all_ignored_mean", H2, ignore=255,
                         all_ignored=1))
    cs.append(hinge_case("lh_2d_batch_ignore_sum_grad_out", H2, reduction="sum",
                         per_image=False, ignore=255, ignore_frac=0.2, grad_out=-1.75))
    cs.append(hinge_case("lh_c3_per_image_mean", HC3))
    cs.append(hinge_case("lh_c3_batch_none", HC3, reduction="none", per_image=False))
    cs.append(hinge_case("lh_1d_per_image_mean", H1))
    cs.append(hinge_case("lh_1d_batch_ignore_none", H1, reduction="none", per_image=False,
                         ignore=-1, ignore_frac=0.2))
    cs.append(hinge_case("lh_3d_per_image_none", H3, reduction="none"))
    cs.append(hinge_case("lh_3d_batch_mean", H3, per_image=False))
    return cs


def write(filename, cases):
    names = [c.name for c in cases]
    assert len(set(names)) == len(names), "duplicate case names"
    path = os.path.join(HERE, filename)
    with open(path, "w") as f:
        f.write("# segloss golden data for lovasz_softmax and lovasz_hinge: generated by "
                "tests/golden/generate_lovasz.py\n")
        f.write("# torch %s, float64, base seed %d. Do not edit; regenerate.\n"
                % (torch.__version__, BASE_SEED))
        f.write("torch %s\n" % torch.__version__)
        for c in cases:
            f.write(c.text())
        f.write("count %d\n" % len(cases))
    print("%s: %d cases, %d bytes" % (path, len(cases), os.path.getsize(path)))


def main():
    soft, hinge = softmax_cases(), hinge_cases()
    print("lovasz_softmax %d, lovasz_hinge %d" % (len(soft), len(hinge)))
    write(OUTPUT, soft + hinge)
    return 0


if __name__ == "__main__":
    sys.exit(main())
