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

The scale g and shift b are shared by all steps (one per unit), as in Cooijmans et al.; the
module is a ``_NormBase`` so probes and ``norm_affine`` read g and b like any BN's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# Cooijmans et al. 2016 initialise BN's g at 0.1 in the LSTM: g = 1 drives the tanh units
# into saturation and the gradient through time vanishes.
COOIJMANS_GAIN = 0.1


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
        if not self.training:
            mean, var = self.running_mean[k], self.running_var[k]
        elif mask is None:
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
        else:
            mean, var = self._masked_moments(z, mask, k)
        y = (z - mean) / torch.sqrt(var + self.eps)
        if self.affine:
            y = y * self.weight + self.bias
        return y

    def _masked_moments(
        self, z: torch.Tensor, mask: torch.Tensor, k: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The real samples' mean and biased variance (what normalizes, as in BN); the running
        statistics take the unbiased variance, as BatchNorm1d's do."""
        w = mask.to(z.dtype)[:, None]  # (B, 1)
        n = w.sum()
        safe = n.clamp(min=1.0)
        mean = (z * w).sum(0) / safe  # (C,)
        var = ((z - mean) ** 2 * w).sum(0) / safe  # (C,), biased
        with torch.no_grad():
            m = self.momentum or 0.0
            unbiased = var * n / (n - 1).clamp(min=1.0)
            # no real sample at this step: the running statistics stay as they are
            m_eff = m * (n > 0).to(z.dtype)
            self.running_mean[k].mul_(1 - m_eff).add_(mean.detach() * m_eff)
            self.running_var[k].mul_(1 - m_eff).add_(unbiased.detach() * m_eff)
        return mean, var
