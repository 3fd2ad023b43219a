"""A model of one's own for the tests of normcore.watch and of what reads its frames: a
tapering MLP (4 → 24 → 12 with a LayerNorm → 2, tanh), and the step a user writes around a
Watch."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from normcore.watch import Watch


@dataclass
class OwnModel:
    forward: Callable[[torch.Tensor], torch.Tensor]
    layers: dict  # what Watch takes: {"fc1": fc1, "fc2": (fc2, norm)}
    opt: torch.optim.Optimizer
    x: torch.Tensor
    y: torch.Tensor

    def train(self, watch: Watch, steps: int, on_step=lambda step: None) -> None:
        """`steps` steps of one's own loop around `watch`; `on_step(step)` after each."""
        for step in range(1, steps + 1):
            training_step(watch, self.forward, self.opt, self.x, self.y)
            on_step(step)


def tapering_mlp(seed: int = 0) -> OwnModel:
    torch.manual_seed(seed)
    fc1, fc2, norm, head = nn.Linear(4, 24), nn.Linear(24, 12), nn.LayerNorm(12), nn.Linear(12, 2)

    def forward(x: torch.Tensor) -> torch.Tensor:
        return head(torch.tanh(norm(fc2(torch.tanh(fc1(x))))))

    params = [p for m in (fc1, fc2, norm, head) for p in m.parameters()]
    opt = torch.optim.SGD(params, lr=0.1)
    x, y = torch.randn(32, 4), torch.randint(0, 2, (32,))
    return OwnModel(forward, {"fc1": fc1, "fc2": (fc2, norm)}, opt, x, y)


def training_step(watch: Watch, forward, opt, x, y, fail: bool = False) -> None:
    """One step as a user writes it; `fail` raises inside it before the forward pass."""
    with watch.step():
        if fail:
            raise KeyError("a step that raises")
        logits = forward(x)
        loss = F.cross_entropy(logits, y)
        opt.zero_grad()
        loss.backward()
        watch.measure(loss, logits, y)
        opt.step()
