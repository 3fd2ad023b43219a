"""Batch norm for a recurrent layer's time steps: statistics per step, and masked padding.

``StepBatchNorm`` normalizes one time step's [B, C] input with that step's batch statistics
(training) or running statistics (eval), keeping ``steps`` sets of them: Cooijmans et al.
2016's recurrent BN, where step t >= ``steps`` (a test sequence longer than any trained on)
reuses the last step's statistics. With ``steps=1`` it is one set shared by every step, like
one ``BatchNorm1d`` called at each step.

A ``mask`` ([B], 1 = the sample's sequence is still running, 0 = padding) leaves padded
samples out of the batch statistics and out of the running statistics; their outputs are
normalized with the real samples' statistics and are meant to be discarded by the caller (the
RNN holds a finished sequence's state). A step where no sample is real updates nothing.
Masked steps are the RNN's hot loop, so they are cheap: on the CPU BN's fused kernel runs on
the real rows (the padded rows, discarded, are normalized outside autograd); on a GPU, where
finding the real rows would sync, the mask weighs the sums.

The scale g and shift b are shared by all steps (one per unit), as in Cooijmans et al.; the
module is a ``_NormBase`` so probes and ``norm_affine`` read g and b like any BN's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from normcore.batch_groups import grouped_batch_norm

# Cooijmans et al. 2016 initialise BN's g at 0.1 in the LSTM: g = 1 drives the tanh units
# into saturation and the gradient through time vanishes.
COOIJMANS_GAIN = 0.1


def host_reads(t: torch.Tensor) -> bool:
    """Whether the host may read ``t`` for free: on the CPU; on a GPU it is a sync, which the
    trainer keeps out of its steps (the masked paths below then take the weighted sums)."""
    return t.device.type == "cpu"


class StepBatchNorm(nn.modules.batchnorm._NormBase):
    """BN over [B, C] with running statistics of shape (steps, C). Call as ``norm(z, t, mask)``."""

    running_mean: torch.Tensor
    running_var: torch.Tensor

    def __init__(
        self,
        num_features: int,
        steps: int,
        *,
        affine: bool = True,
        gain: float = 1.0,
        eps: float = 1e-5,
        momentum: float = 0.1,
    ) -> None:
        if steps < 1:
            raise ValueError(f"steps {steps} must be >= 1")
        super().__init__(num_features, eps, momentum, affine, track_running_stats=True)
        self.steps = steps
        # set by batch_groups.statistics_per_group: train mode normalizes each run of this
        # many samples with its own statistics (None: the whole batch)
        self.group: int | None = None
        # (steps, C) instead of _NormBase's (C,): one set of statistics per time step
        self.running_mean = torch.zeros(steps, num_features)
        self.running_var = torch.ones(steps, num_features)
        if affine:
            with torch.no_grad():
                self.weight.fill_(gain)

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() != 2:
            raise ValueError(f"StepBatchNorm takes [B, C] (one time step), not {input.dim()}-D")

    def forward(  # type: ignore[override]
        self, z: torch.Tensor, t: int = 0, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """z: [B, C] at time step t; mask: [B] of 0/1 or None (every sample real)."""
        self._check_input_dim(z)
        k = min(t, self.steps - 1)  # beyond the trained length: the last step's statistics
        if not self.training:  # BatchNorm1d's eval computation on step k's statistics
            return F.batch_norm(
                z,
                self.running_mean[k],
                self.running_var[k],
                self.weight,
                self.bias,
                False,
                0.0,
                self.eps,
            )
        if self.group is not None:  # batch statistics of each group, running ones untouched
            if mask is None:
                return grouped_batch_norm(z, self.group, self.weight, self.bias, self.eps)
            return self._masked(z, mask, self.group, None)
        if mask is None:
            # the whole batch is real: exactly BatchNorm1d's computation, on step k's buffers
            return F.batch_norm(
                z,
                self.running_mean[k],
                self.running_var[k],
                self.weight,
                self.bias,
                True,
                self.momentum or 0.0,
                self.eps,
            )
        if host_reads(mask):
            real = mask.nonzero().squeeze(1)  # (n,)
            if len(real) >= 2:
                return self._real_rows(z, real, k)
        return self._masked(z, mask, len(z), k)

    def _real_rows(self, z: torch.Tensor, real: torch.Tensor, k: int) -> torch.Tensor:
        """A masked training step by BN's fused kernel on the real rows (their outputs and
        step k's running statistics exactly BatchNorm1d's on them); the padded rows are
        normalized with the same statistics outside autograd: their outputs are discarded
        (the RNN holds the state), so no gradient comes back through them."""
        y_real, mean, invstd = torch.native_batch_norm(
            z.index_select(0, real),  # (n, C)
            self.weight,
            self.bias,
            self.running_mean[k],
            self.running_var[k],
            True,
            self.momentum or 0.0,
            self.eps,
        )
        with torch.no_grad():
            y = (z - mean) * invstd  # (B, C)
            if self.affine:
                y = torch.addcmul(self.bias, y, self.weight)
        return y.index_copy(0, real, y_real)

    def _masked(
        self, z: torch.Tensor, mask: torch.Tensor, size: int, k: int | None
    ) -> torch.Tensor:
        """z normalized with the real samples' mean and biased variance (what normalizes, as
        in BN), each run of ``size`` samples on its own; step k's running statistics (k not
        None: one group) take the unbiased variance, as BatchNorm1d's do. Few ops, since this
        runs at every masked time step: the mask, divided by the real count, weighs the sums."""
        c = z.shape[1]
        zg = z.reshape(-1, size, c)  # (G, size, C)
        w = mask.to(z.dtype).reshape(-1, size, 1)  # (G, size, 1)
        n = w.sum(1, keepdim=True)  # (G, 1, 1): real samples per group
        wn = w / n.clamp(min=1.0)  # the real samples' weights, summing to 1 (0 without any)
        mean = (zg * wn).sum(1, keepdim=True)  # (G, 1, C)
        d = zg - mean
        var = (d * d * wn).sum(1, keepdim=True)  # (G, 1, C), biased
        if k is not None:
            with torch.no_grad():
                # no real sample at this step: the running statistics stay as they are
                m = (n.view(()) > 0).to(z.dtype) * (self.momentum or 0.0)
                unbiased = var.view(c) * (n.view(()) / (n.view(()) - 1).clamp(min=1.0))
                # through .data: F.batch_norm at this forward's unmasked steps saved these
                # buffers for its backward (unread in train mode) and updates them in place
                # without a version bump; one here would fail that backward's version check
                self.running_mean.data[k].lerp_(mean.view(c), m)
                self.running_var.data[k].lerp_(unbiased, m)
        y = (d * torch.rsqrt(var + self.eps)).view_as(z)  # (B, C)
        if self.affine:
            y = torch.addcmul(self.bias, y, self.weight)
        return y
