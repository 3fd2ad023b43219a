"""normcore.cost.flops_per_step against the built model's own weights (an independent count)."""

from __future__ import annotations

import math

import pytest
from torch import nn

from normcore.config import DATASETS, RunConfig
from normcore.cost import INPUT_SHAPES, N_CLASSES, flops_per_step
from normcore.data import fashion, load_dataset
from normcore.models import build_model


def macs_of(model: nn.Module, positions: int, steps: int) -> int:
    """Per-sample multiply-accumulates read off the modules: a Linear's weight once per time
    step (`steps`, 1 for feed-forward nets), a conv's weight once per output position."""
    total = 0
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            total += module.weight.numel() * positions
        elif isinstance(module, nn.Linear):
            head = module is getattr(model, "head", None)
            total += module.weight.numel() * (1 if head else steps)
    return total


@pytest.mark.parametrize(
    "config",
    [
        dict(),  # the dashboard's default: mlp 3×100 on digits
        dict(depth=1, width=7, dataset="moons", batch_size=5),
        dict(model="convnet", depth=2, width=8, dataset="fashion", batch_size=4),
        dict(model="rnn", depth=2, width=16, dataset="sequence", batch_size=3),
        dict(model="rnn", cell="lstm", depth=1, width=8, dataset="sequence", batch_size=2),
    ],
)
def test_flops_match_the_weights_of_the_built_model(config):
    cfg = RunConfig.model_validate(config)
    shape = INPUT_SHAPES[cfg.dataset]
    model = build_model(cfg, shape, N_CLASSES.get(cfg.dataset, 2))
    positions = math.prod(shape[1:]) if cfg.model == "convnet" else 1
    steps = shape[0] if cfg.model == "rnn" else 1
    assert flops_per_step(cfg) == 6 * cfg.batch_size * macs_of(model, positions, steps)


@pytest.mark.parametrize("name", [d for d in DATASETS if d != "fashion"])  # fashion: a 30 MB read
def test_shapes_and_classes_are_those_the_data_sets_have(name):
    data = load_dataset(name)
    assert (INPUT_SHAPES[name], N_CLASSES.get(name, 2)) == (data.input_shape, data.n_classes)


def test_fashion_is_28_by_28():
    assert INPUT_SHAPES["fashion"] == (1, fashion.SIDE, fashion.SIDE)


def test_the_default_net_is_about_ten_megaflops_a_step():
    # 6 × batch 60 × (64·100 + 2·100·100 + 100·10) MACs
    assert flops_per_step(RunConfig()) == 6 * 60 * 27_400
