"""Distances between a layer's distributions over steps, and Santurkar et al.'s ICS measure.

Histograms here are on fixed bins (normcore.probe.stats): counts in slots [under, bins..., over]
with equal width ``w``. Under/over mass is placed one bin outside the edges, so when mass
leaves the edges W1 is a lower bound of the true distance. Both functions take numpy arrays
or torch tensors of shape (..., slots) and reduce the last axis; an empty histogram (no
finite values) gives NaN.

ICS (Santurkar et al. 2018, "How does batch normalization help optimization?"): for layer i,
G is its weight gradient and G′ the gradient on the same batch after every earlier layer took
its update. They report ‖G − G′‖₂ and cos(G, G′); large l2 / low cos = much covariate shift.
It costs one extra forward/backward per layer, so the trainer runs it only with config.ics.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn


def _xp(a):
    return torch if isinstance(a, torch.Tensor) else np


def _probabilities(counts):
    xp = _xp(counts)
    counts = counts.double() if xp is torch else np.asarray(counts, dtype=np.float64)
    total = counts.sum(-1, keepdims=True) if xp is np else counts.sum(-1, keepdim=True)
    return counts / total  # NaN rows where total == 0


def wasserstein1(p, q, width=1.0):
    """W1 between two histograms on the same fixed bins: width · Σ |CDF_p − CDF_q|.

    ``width`` (scalar or one per leading row) is the bin width in the data's units.
    """
    xp = _xp(p)
    p, q = _probabilities(p), _probabilities(q)
    gap = abs(p.cumsum(-1) - q.cumsum(-1))[..., :-1].sum(-1)  # the last CDF gap is 0
    if xp is torch:
        return gap * torch.as_tensor(width, dtype=gap.dtype, device=gap.device)
    return gap * np.asarray(width, dtype=np.float64)


def jensen_shannon(p, q):
    """Jensen–Shannon divergence in bits, in [0, 1]: 0 = same histogram, 1 = disjoint."""
    xp = _xp(p)
    p, q = _probabilities(p), _probabilities(q)
    m = (p + q) / 2

    def kl(a, b):  # Σ a log2(a/b), with 0 log 0 = 0
        terms = xp.where(a > 0, a * xp.log2(xp.where(a > 0, a, 1) / xp.where(b > 0, b, 1)), 0)
        return terms.sum(-1)

    empty = ~(xp.isfinite(p.sum(-1)) & xp.isfinite(q.sum(-1)))  # a histogram with no values
    return xp.where(empty, xp.nan, (kl(p, m) + kl(q, m)) / 2)


@torch.no_grad()
def _assign(params: Sequence[torch.Tensor], values: Sequence[torch.Tensor]) -> None:
    torch._foreach_copy_(list(params), list(values))


def ics(
    model: nn.Module,
    blocks: Sequence[Sequence[nn.Parameter]],
    weights: Sequence[torch.Tensor],
    grads: Sequence[torch.Tensor],
    old: Sequence[torch.Tensor],
    loss_fn: Callable[[], torch.Tensor],
) -> torch.Tensor:
    """(L, 2) device tensor of (‖G − G′‖₂, cos(G, G′)) per hidden layer, no host sync.

    Call after the optimizer step. ``blocks[i]`` are layer i's parameters (weight, bias, g, b),
    ``weights[i]`` the one whose gradient is measured, ``grads[i]`` its gradient G from this
    step's backward, ``old`` the values of ``model.parameters()`` before the step, and
    ``loss_fn()`` recomputes the loss on the same batch. The model's parameters and buffers
    (BN running statistics) are restored when it returns.
    """
    params = list(model.parameters())
    new = [p.detach().clone() for p in params]
    buffers = [b.detach().clone() for b in model.buffers()]
    index = {id(p): k for k, p in enumerate(params)}
    _assign(params, old)  # every layer back to before the step ...
    shifted = [grads[0]]  # layer 0 has no earlier layers: G′ = G by definition
    for i in range(1, len(blocks)):
        prior = [index[id(p)] for p in blocks[i - 1]]
        _assign([params[k] for k in prior], [new[k] for k in prior])  # ... earlier ones stepped
        with torch.enable_grad():
            (g,) = torch.autograd.grad(loss_fn(), [weights[i]])
        shifted.append(g)
    _assign(params, new)
    if buffers:
        _assign(list(model.buffers()), buffers)
    rows = []
    for g, s in zip(grads, shifted, strict=True):  # layer shapes differ (the first is H × in)
        g, s = g.flatten().double(), s.flatten().double()
        cos = torch.dot(g, s) / (torch.linalg.vector_norm(g) * torch.linalg.vector_norm(s))
        rows.append(torch.stack([torch.linalg.vector_norm(g - s), cos]))
    return torch.stack(rows)  # (L, 2); cos is NaN where a gradient is zero
