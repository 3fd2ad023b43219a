"""Batch statistics per group of samples, all groups in one forward pass.

The held-out evaluation "with batch statistics" normalizes each batch of the training size
with its own statistics. Batch by batch, a test set of 1000 at batch 4 is 250 forward passes
(an RNN's: 250 x 20 steps of small ops), more than the whole training run costs. Inside
``statistics_per_group(model, size)`` every batch norm in train mode normalizes each run of
``size`` consecutive samples with that run's statistics instead, so one forward pass over many
batches gives what the batches give one by one: the same kernel on the same numbers (the
groups are laid side by side as channels), and running statistics are neither read nor
updated.

- ``nn.BatchNorm1d/2d/3d`` (any ``_BatchNorm``): its forward is replaced on the instance for
  the duration (torch's class has no such mode), restored on exit;
- ``StepBatchNorm`` (the RNN's): its ``group`` attribute, which its forward honours (masked
  steps included: each group's real samples);
- per-sample norms (layer, group, instance, RMS, ...) need nothing.
A model with any other module that keeps running statistics is not supported: the context
yields False and the caller evaluates batch by batch.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from types import MethodType

import torch
import torch.nn.functional as F
from torch import nn


def grouped_batch_norm(
    x: torch.Tensor,
    size: int,
    weight: torch.Tensor | None,
    bias: torch.Tensor | None,
    eps: float,
) -> torch.Tensor:
    """BN with batch statistics of each run of ``size`` samples of x [N, C, *] (N = G · size):
    the G groups become G · C channels of one batch of ``size``, one ``F.batch_norm`` call."""
    n, c, *rest = x.shape
    if n % size:
        raise ValueError(f"batch of {n} samples does not split into groups of {size}")
    groups = n // size
    lanes = x.reshape(groups, size, c, *rest).transpose(0, 1).reshape(size, groups * c, *rest)
    w = None if weight is None else weight.repeat(groups)  # (G·C,)
    b = None if bias is None else bias.repeat(groups)
    y = F.batch_norm(lanes, None, None, w, b, True, 0.0, eps)  # (size, G·C, *)
    return y.reshape(size, groups, c, *rest).transpose(0, 1).reshape(n, c, *rest)


def _grouped_forward(self: nn.modules.batchnorm._BatchNorm, x: torch.Tensor, size: int):
    if not self.training:  # eval mode reads the running statistics: no groups involved
        return nn.modules.batchnorm._BatchNorm.forward(self, x)
    return grouped_batch_norm(x, size, self.weight, self.bias, self.eps)


def supports_groups(model: nn.Module) -> bool:
    """Whether every module of ``model`` that keeps running statistics is one of the above."""
    from normcore.step_norm import StepBatchNorm  # step_norm imports grouped_batch_norm

    return all(
        isinstance(m, nn.modules.batchnorm._BatchNorm | StepBatchNorm)
        or not isinstance(m, nn.modules.batchnorm._NormBase)
        or isinstance(m, nn.modules.instancenorm._InstanceNorm)  # per sample
        for m in model.modules()
    )


@contextmanager
def statistics_per_group(model: nn.Module, size: int) -> Iterator[bool]:
    """Within: each batch norm of ``model`` in train mode normalizes groups of ``size``
    consecutive samples on their own. Yields False (and changes nothing) for a model it does
    not support."""
    if size < 2:
        raise ValueError(f"group size {size} must be >= 2 (batch statistics of one sample)")
    if not supports_groups(model):
        yield False
        return
    from normcore.step_norm import StepBatchNorm

    step_norms = [m for m in model.modules() if isinstance(m, StepBatchNorm)]
    batch_norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    try:
        for step_norm in step_norms:
            step_norm.group = size
        for bn in batch_norms:
            # an instance attribute shadows the class's forward; nn.Module calls self.forward
            setattr(bn, "forward", MethodType(lambda self, x: _grouped_forward(self, x, size), bn))  # noqa: B010
        yield True
    finally:
        for step_norm in step_norms:
            step_norm.group = None
        for bn in batch_norms:
            bn.__dict__.pop("forward", None)
