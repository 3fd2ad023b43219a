"""The run's optimizer step: torch's own for anything but plain SGD, and for plain SGD the one
kernel torch's step runs, with the same weights to the bit."""

import pytest
import torch
from torch import nn

from normcore.config import RunConfig
from normcore.optim import Stepper, make_optimizer


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 4))
        self.unused = nn.Linear(3, 3)  # parameters without a gradient: skipped, not stepped

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def _net() -> _Net:
    torch.manual_seed(0)
    return _Net()


def _train(net: nn.Module, optimizer: torch.optim.Optimizer, steps: int, lean: bool) -> None:
    stepper = Stepper(optimizer)
    torch.manual_seed(1)
    for step in range(steps):
        x, y = torch.randn(5, 8), torch.randint(0, 4, (5,))
        if step == 2:
            for group in optimizer.param_groups:
                group["lr"] = 0.05  # a changed lr is the one used
        if lean:
            stepper.zero_grad()
        else:
            optimizer.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(net(x), y).backward()
        if lean:
            stepper.step()
        else:
            optimizer.step()


@pytest.mark.parametrize(
    "options",
    [
        {"optimizer": "sgd", "lr": 0.3},
        {"optimizer": "momentum", "lr": 0.1},
        {"optimizer": "adam", "lr": 0.01},
    ],
)
def test_the_steppers_weights_are_torchs_to_the_bit(options):
    cfg = RunConfig.model_validate(options)
    nets = [_net(), _net()]
    optimizers = [make_optimizer(cfg, net) for net in nets]
    _train(nets[0], optimizers[0], 6, lean=False)
    _train(nets[1], optimizers[1], 6, lean=True)
    for a, b in zip(nets[0].parameters(), nets[1].parameters(), strict=True):
        assert torch.equal(a, b)
    assert torch.equal(nets[1].unused.weight, _net().unused.weight)  # never stepped
    assert all(p.grad is not None for p in nets[1].body.parameters())


def test_only_plain_sgd_takes_the_lean_step():
    net = _net()
    params = list(net.parameters())
    assert Stepper(torch.optim.SGD(params, lr=0.1, foreach=True)).lean
    others = [
        torch.optim.SGD(params, lr=0.1, momentum=0.9, foreach=True),
        torch.optim.SGD(params, lr=0.1, weight_decay=1e-4, foreach=True),
        torch.optim.SGD(params, lr=0.1, foreach=False),
        torch.optim.SGD(params, lr=torch.tensor(0.1), foreach=True),
        torch.optim.SGD([{"params": params[:2]}, {"params": params[2:], "lr": 0.5}], lr=0.1),
        torch.optim.Adam(params, lr=0.1),
    ]
    assert not any(Stepper(optimizer).lean for optimizer in others)


def test_zero_grad_sets_every_gradient_to_none():
    net = _net()
    stepper = Stepper(torch.optim.SGD(net.parameters(), lr=0.1, foreach=True))
    net(torch.randn(2, 8)).sum().backward()
    stepper.zero_grad()
    assert all(p.grad is None for p in net.parameters())
