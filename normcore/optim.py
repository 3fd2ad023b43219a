"""The optimizer of a run, and its step without the Optimizer's per-step Python.

torch.optim.SGD(foreach=True) does its work in one kernel, ``_foreach_add_(w, ∇w, alpha=-lr)``
for plain SGD, but wraps it in Python each step (dynamo's disable context, profiler contexts,
hooks, grouping the tensors by device and dtype), and ``zero_grad`` the same. ``Stepper`` runs
that same kernel on the same lists, so the weights come out bit for bit as torch's step leaves
them (tests/normcore/test_optim.py), and sets the gradients to None in a plain loop: a probed
step of ``normcore.train.run`` on the dashboard's default network went from 1031 to 898 µs on
a 2-core CPU (two checkouts side by side, cores swapped), 6×100 tanh 1747 -> 1585 µs. Any other
optimizer (momentum, Adam, weight decay ...) steps through torch as it is.
"""

from __future__ import annotations

import torch
from torch import nn

from normcore.config import RunConfig


def make_optimizer(cfg: RunConfig, model: nn.Module) -> torch.optim.Optimizer:
    params = list(model.parameters())
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, foreach=True)
    momentum = cfg.momentum if cfg.optimizer == "momentum" else 0.0
    return torch.optim.SGD(params, lr=cfg.lr, momentum=momentum, foreach=True)


def plain_sgd(optimizer: torch.optim.Optimizer | None) -> torch.optim.SGD | None:
    """The optimizer when its step is exactly w -= lr·d (SGD, heavy-ball momentum or none, no
    weight decay, dampening or Nesterov): then ‖Δw‖ = lr·‖d‖ without copying the weights."""
    if not isinstance(optimizer, torch.optim.SGD) or len(optimizer.param_groups) != 1:
        return None
    g = optimizer.param_groups[0]
    plain = not (g["weight_decay"] or g["dampening"] or g["nesterov"] or g["maximize"])
    return optimizer if plain else None


class Stepper:
    """``zero_grad()`` and ``step()`` of ``optimizer``: for SGD without momentum (dense
    gradients, float lr, foreach, not differentiable) the one kernel its step runs; for any
    other optimizer its own methods."""

    def __init__(self, optimizer: torch.optim.Optimizer) -> None:
        self.optimizer = optimizer
        self.params = [p for group in optimizer.param_groups for p in group["params"]]
        sgd = plain_sgd(optimizer)
        group = sgd.param_groups[0] if sgd is not None else {}
        self.lean = (
            sgd is not None
            and not group["momentum"]
            and group["foreach"]
            and not group["differentiable"]
            and not isinstance(group["lr"], torch.Tensor)
        )

    def zero_grad(self) -> None:
        """Every gradient to None (``zero_grad(set_to_none=True)``)."""
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        """w -= lr·∇w for each weight with a gradient, as torch's SGD step does it."""
        if not self.lean:
            self.optimizer.step()
            return
        params, grads = [], []
        for p in self.params:
            if p.grad is not None:
                if p.grad.is_sparse:  # (no model of ours has one; torch's step handles it)
                    self.optimizer.step()
                    return
                params.append(p)
                grads.append(p.grad)
        if params:
            lr = self.optimizer.param_groups[0]["lr"]  # (read each step: run() sets it)
            with torch.no_grad():
                torch._foreach_add_(params, grads, alpha=-lr)
