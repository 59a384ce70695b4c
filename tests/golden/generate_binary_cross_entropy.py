#!/usr/bin/python3
"""Golden reference values for segloss's binary_cross_entropy (probabilities), computed with
PyTorch in float64.

    /usr/bin/python3 tests/golden/generate_binary_cross_entropy.py

It rewrites tests/golden/binary_cross_entropy.txt next to this script, in the format of the other
golden files (README.md in this folder); tests/test_golden_binary_cross_entropy.cpp reads it.

The input is a probability tensor, stored as 'tensor probs'. Values and gradients are
torch.nn.functional.binary_cross_entropy itself (forward and its autograd backward, ATen's
binary_cross_entropy_backward): d(loss)/d(probs), with loss.backward(grad_out) for mean / sum and
(loss * grad_out).sum().backward() for none.

Reference 'pytorch_unet_BCELoss' is the training line of milesial/Pytorch-UNet quoted in the seeds
note (/work/shared/seeds/segmentation-losses-note.md, section 2): nn.BCELoss() on
sigmoid(y_pred).view(-1) and y.view(-1).float(). The stored probs are the sigmoid of random
logits, and the gradient is with respect to those probabilities (the test feeds segloss the
probabilities; the chain through the sigmoid is the caller's).

The 'edges' cases put probabilities at exactly 0 and 1 against targets 0, 1 and soft ones (the
-100 clamp of the logs decides the value, PyTorch's EPSILON = 1e-12f the gradient), and tiny ones
(1e-13: the epsilon is active; 1e-40 and 1e-50: the log is below -100 in double; 1e-40 is a
subnormal float, which checks segloss's float log there). Every value of these cases is chosen so
that rounding it to float changes nothing that matters: 0, 1, 2^-k and the tiny ones.
"""

import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from generate import BASE_SEED, Case, make_target, record, seed_for  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
OUTPUT = "binary_cross_entropy.txt"

torch.set_default_dtype(torch.float64)

S1 = (1, 1, 7)
S1B = (2, 3, 6)
S2 = (2, 3, 5, 4)
S3 = (2, 2, 2, 3, 4)


def edge_probs_and_targets(shape):
    """Each probability edge against each target kind, repeated to fill the shape."""
    ps = [0.0, 1.0, 1e-13, 1e-40, 1e-50, 2.0 ** -20, 1 - 2.0 ** -20, 0.5]
    ts = [0.0, 1.0, 0.25]
    pairs = [(p, t) for p in ps for t in ts]
    n = 1
    for d in shape:
        n *= d
    p = torch.tensor([pairs[i % len(pairs)][0] for i in range(n)]).view(shape)
    t = torch.tensor([pairs[i % len(pairs)][1] for i in range(n)]).view(shape)
    return p, t


def bce_case(name, shape, reduction, target="binary", weight=None, grad_out=1.0, edges=False,
             seed_code=False):
    seed_for(name)
    case = Case(name, "binary_cross_entropy")
    case.lines.append("shape " + " ".join(str(d) for d in shape))
    case.option("reduction", reduction)
    if edges:
        probs, tgt = edge_probs_and_targets(shape)
        probs.requires_grad_(True)
    elif seed_code:
        y_pred = torch.randn(shape) * 3.0
        probs = torch.sigmoid(y_pred).detach().requires_grad_(True)
        tgt = make_target(shape, target)
    else:
        # Away from 0 and 1 so that the float test (inputs rounded) sees the same math.
        probs = (torch.rand(shape) * 0.98 + 0.01).requires_grad_(True)
        tgt = make_target(shape, target)
    w = None if weight is None else torch.rand(weight) * 1.5 + 0.25
    case.tensor("probs", probs)
    case.tensor("target", tgt)
    if w is not None:
        case.tensor("weight", w)
    if seed_code:
        # Pytorch-UNet (seeds note, section 2): criterion = nn.BCELoss(); probs_flat =
        # F.sigmoid(y_pred).view(-1); loss = criterion(probs_flat, y.view(-1).float()).
        assert reduction == "mean" and w is None
        case.option("reference", "pytorch_unet_BCELoss")
        criterion = nn.BCELoss()
        probs_flat = probs.view(-1)
        y_flat = tgt.view(-1)
        loss = criterion(probs_flat, y_flat.float().to(torch.float64))
    else:
        loss = F.binary_cross_entropy(probs, tgt, weight=w, reduction=reduction)
    record(case, loss, probs, reduction, grad_out)
    return case


def cases():
    cs = []
    N, C, H, W = S2
    for r in ("mean", "sum", "none"):
        cs.append(bce_case("bce_probs_2d_" + r, S2, r))
        cs.append(bce_case("bce_probs_1d_" + r, S1, r))
        cs.append(bce_case("bce_probs_3d_" + r, S3, r))
        cs.append(bce_case("bce_probs_2d_soft_target_" + r, S2, r, target="soft"))
        cs.append(bce_case("bce_probs_2d_weight_full_" + r, S2, r, weight=S2))
        cs.append(bce_case("bce_probs_edges_" + r, (1, 2, 24), r, edges=True))
    cs.append(bce_case("bce_probs_1d_b_mean", S1B, "mean"))
    cs.append(bce_case("bce_probs_2d_mean_grad_out", S2, "mean", grad_out=0.37))
    cs.append(bce_case("bce_probs_2d_sum_grad_out", S2, "sum", grad_out=-1.75))
    cs.append(bce_case("bce_probs_2d_weight_n1hw_mean", S2, "mean", weight=(N, 1, H, W)))
    cs.append(bce_case("bce_probs_2d_weight_c11_sum", S2, "sum", weight=(C, 1, 1)))
    cs.append(bce_case("bce_probs_2d_weight_w_none", S2, "none", weight=(W,)))
    cs.append(bce_case("bce_probs_2d_weight_one_mean", S2, "mean", weight=(1,)))
    cs.append(bce_case("bce_probs_3d_weight_hw_mean", S3, "mean", weight=(S3[3], S3[4])))
    cs.append(bce_case("bce_probs_1d_b_weight_nc1_none", S1B, "none", weight=(2, 3, 1)))
    cs.append(bce_case("bce_probs_edges_weight_mean", (1, 2, 24), "mean", weight=(1, 2, 1),
                       edges=True))
    cs.append(bce_case("bce_probs_seed_pytorch_unet_BCELoss", (2, 1, 6, 5), "mean",
                       seed_code=True))
    cs.append(bce_case("bce_probs_seed_pytorch_unet_BCELoss_b", (4, 1, 8, 8), "mean",
                       seed_code=True))
    return cs


def main():
    cs = cases()
    names = [c.name for c in cs]
    assert len(set(names)) == len(names), "duplicate case names"
    path = os.path.join(HERE, OUTPUT)
    with open(path, "w") as f:
        f.write("# segloss golden data for binary_cross_entropy: generated by "
                "tests/golden/generate_binary_cross_entropy.py\n")
        f.write("# torch %s, float64, base seed %d. Do not edit; regenerate.\n"
                % (torch.__version__, BASE_SEED))
        f.write("torch %s\n" % torch.__version__)
        for c in cs:
            f.write(c.text())
        f.write("count %d\n" % len(cs))
    print("%s: %d cases, %d bytes" % (path, len(cs), os.path.getsize(path)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
