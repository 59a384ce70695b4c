"""Activations for the float64 references whose values are torch's but whose derivatives (and, for
neg_log_softmax, values) keep their relative precision where torch's lose it: at saturated
logits (|x| of 30 is common in the fuzz), segloss computes these from exp(-|x|) and shifted
logits, and a reference rounding to 1e-3 relative there would flag correct results."""
import torch

torch.set_default_dtype(torch.float64)


class SigmoidAcc(torch.autograd.Function):
    """sigmoid, with derivative exp(-|x|) / (1 + exp(-|x|))^2: torch's (1 - y) y cancels once y
    rounds near 1."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.sigmoid(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        e = torch.exp(-x.abs())
        return grad * e / (1 + e) ** 2


class SoftplusAcc(torch.autograd.Function):
    """softplus(x) = max(x, 0) + log1p(exp(-|x|)), without F.softplus's threshold (which returns x,
    and gradient 1, above x = 20)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.clamp(x, min=0) + torch.log1p(torch.exp(-x.abs()))

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * torch.sigmoid(x)


class SoftmaxAcc(torch.autograd.Function):
    """softmax over dim 1. Its backward p_c (d_c - sum_k p_k d_k), with d = G - G_r (r the first
    largest logit), equals torch's p (G - sum p G) without its cancellation when saturated (the
    shift segloss uses, docs/gradients.md §10.2)."""

    @staticmethod
    def forward(ctx, x):
        p = torch.softmax(x, 1)
        ctx.save_for_backward(x, p)
        return p

    @staticmethod
    def backward(ctx, grad):
        x, p = ctx.saved_tensors
        top = x.argmax(1, keepdim=True)
        d = grad - grad.gather(1, top)
        return p * (d - (p * d).sum(1, keepdim=True))


def neg_log_softmax(x):
    """-log p_c = log1p(sum_{k != c} exp(x_k - x_c)) for every class c (dim 1): accurate where
    p_c is near 1 (torch's log_softmax rounds -log p of a pixel leading by 30 to about 1e-3
    relative)."""
    C = x.shape[1]
    out = []
    for c in range(C):
        others = torch.ones(C)
        others[c] = 0
        e = torch.exp(x - x[:, c:c + 1]) * others.view([1, C] + [1] * (x.dim() - 2))
        out.append(torch.log1p(e.sum(1)))
    return torch.stack(out, 1)
