"""MLP, ConvNet and RNN built from a RunConfig, with the norm placed as the config says.

Every hidden layer computes a pre-activation ``z`` (``make_linear`` / ``make_conv2d``: WN and
CN live inside that layer), then ``act(norm(z))`` (placement "before", as in the BN paper) or
``norm(act(z))`` ("after"). Two ``Tap`` modules mark what the probes read: ``pre`` sees ``z``
before the norm, ``act_in`` sees the activation's input. ``model.probe_points()`` lists them
with the layer's weight and the module holding the norm's g, b.

All hidden layers of one model have the same shape (the ConvNet keeps the input's H×W with
padding and pools only in the head), so probes batch them with one ``stack``.
"""

from __future__ import annotations

import math
from typing import cast

import torch
import torch.nn.functional as F
import torch.nn.modules.module as _module
from torch import nn

from normcore.config import RunConfig
from normcore.norms import create_norm_layer, make_conv2d, make_linear, resolve
from normcore.probe.taps import ProbePoint, Tap
from normcore.step_norm import COOIJMANS_GAIN, StepBatchNorm, host_reads

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "gelu": nn.GELU,
}


def trained_weight(layer: nn.Module) -> nn.Parameter:
    """The weight SGD moves: WN's direction ``v`` (``original1``), else ``.weight``."""
    param = getattr(layer, "parametrizations", None)
    if param is not None and "weight" in param:
        return cast(nn.Parameter, param.weight.original1)
    return cast(nn.Parameter, layer.weight)


def _call(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``module(x)``, straight to its ``forward`` while no hook could see the call: nn.Module's
    call costs ~3 µs, and a Block's linear map, taps, norm and activation are five calls a
    layer (a 3×100 MLP's forward: 200 µs against a plain nn.Sequential's 155 µs on a 2-core
    laptop; the linear maps and the head called so too: 187 -> 178 µs, against 155)."""
    if (
        module._forward_hooks
        or module._forward_pre_hooks
        or module._backward_hooks
        or module._backward_pre_hooks
        or _module._global_forward_hooks
        or _module._global_forward_pre_hooks
        or _module._global_backward_hooks
        or _module._global_backward_pre_hooks
    ):
        return module(x)
    return module.forward(x)


class Block(nn.Module):
    """One hidden layer: z = linear(x); h = act(norm(z)) or norm(act(z)).

    Input: [B, F] (MLP) or [B, C, H, W] (ConvNet, ``linear`` a conv); output the same kind.
    """

    def __init__(self, linear: nn.Module, norm: nn.Module, act: str, placement: str) -> None:
        super().__init__()
        self.linear, self.norm, self.act = linear, norm, ACTIVATIONS[act]()
        self.placement = placement
        self.pre, self.act_in = Tap(), Tap()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = _call(self.pre, _call(self.linear, x))  # (B, H) or (B, C, H, W)
        if self.placement == "before":
            return _call(self.act, _call(self.act_in, _call(self.norm, z)))
        return _call(self.norm, _call(self.act, _call(self.act_in, z)))

    def probe_point(self, name: str, in_linear: bool) -> ProbePoint:
        affine = self.linear if in_linear else self.norm
        return ProbePoint(name, self.pre, self.act_in, trained_weight(self.linear), affine)


class _Probed(nn.Module):
    blocks: nn.ModuleList
    norm_name: str

    def probe_points(self) -> list[ProbePoint]:
        in_linear = resolve(self.norm_name).in_linear
        blocks = cast(list[Block], list(self.blocks))
        return [b.probe_point(f"h{i + 1}", in_linear) for i, b in enumerate(blocks)]


class MLP(_Probed):
    """depth × Block(width) and a linear head. Input: [B, *] (flattened); output [B, K]."""

    def __init__(self, cfg: RunConfig, n_in: int, n_classes: int) -> None:
        super().__init__()
        self.norm_name = cfg.norm
        self.blocks = nn.ModuleList(
            Block(
                make_linear(cfg.norm, n_in if i == 0 else cfg.width, cfg.width, affine=cfg.affine),
                create_norm_layer(cfg.norm, cfg.width, affine=cfg.affine, groups=cfg.groups),
                cfg.activation,
                cfg.placement,
            )
            for i in range(cfg.depth)
        )
        self.head = nn.Linear(cfg.width, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)  # (B, F)
        for block in self.blocks:
            x = _call(block, x)  # (B, H)
        return _call(self.head, x)  # (B, K)


class ConvNet(_Probed):
    """depth × 3×3 conv Blocks of ``width`` channels at the input's H×W, global average pool,
    linear head. Input: [B, 1, H, W] (or [B, H·W], reshaped); output [B, K].
    """

    def __init__(self, cfg: RunConfig, in_shape: tuple[int, ...], n_classes: int) -> None:
        super().__init__()
        self.norm_name, self.in_shape = cfg.norm, in_shape
        c = cfg.width
        self.blocks = nn.ModuleList(
            Block(
                make_conv2d(
                    cfg.norm, in_shape[0] if i == 0 else c, c, 3, padding=1, affine=cfg.affine
                ),
                create_norm_layer(cfg.norm, c, dims=2, affine=cfg.affine, groups=cfg.groups),
                cfg.activation,
                cfg.placement,
            )
            for i in range(cfg.depth)
        )
        self.head = nn.Linear(c, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.view(len(x), *self.in_shape)  # (B, 1, H, W)
        for block in self.blocks:
            x = _call(block, x)  # (B, C, H, W)
        return _call(self.head, x.mean((2, 3)))  # (B, C) -> (B, K)


class RecurrentLayer(nn.Module):
    """An Elman or LSTM layer; the norm acts on the summed inputs W[x_t, h_{t-1}] at every
    time step (Ba et al. 2016), one norm module shared over time.

    Elman: h_t = act(norm(z_t)) (or norm(act(z_t)) with placement "after").
    LSTM: i, f, o, g = split(norm(z_t)); c_t = σ(f)c + σ(i)act(g); h_t = σ(o)act(c_t). The
    norm always sits on the summed inputs; the taps read the candidate g, the only gate that
    goes through the configured activation. Input: [B, T, F]; output [B, T, H].

    Options (RunConfig, rnn only):
    - ``norm_terms`` "separate": norm(W_x x_t) + norm_h(W_h h_{t-1}) + b instead of
      norm(W[x_t, h_{t-1}]) (Cooijmans et al. 2016): one weight W = [W_x W_h] as before, so
      the probes read the same matrix, and the ``pre`` tap reads the unnormalized sum;
    - ``bn_per_step``: BN keeps statistics per time step (``StepBatchNorm``, g at 0.1), steps
      beyond ``seq_len`` reuse the last step's;
    - a ``mask`` [B, T] (``seq_vary``): at a padded step a sequence's state is held, so the
      last step's output is the state at the sequence's own last step, and BN's statistics
      leave the padded samples out.
    """

    def __init__(self, cfg: RunConfig, n_in: int) -> None:
        super().__init__()
        self.lstm, self.width, self.placement = cfg.cell == "lstm", cfg.width, cfg.placement
        self.n_in, self.separate = n_in, cfg.norm_terms == "separate"
        gates = 4 * cfg.width if self.lstm else cfg.width
        self.linear = make_linear(
            cfg.norm, n_in + cfg.width, gates, affine=cfg.affine, bias=not self.separate
        )
        self.norm = _recurrent_norm(cfg, gates)  # on the summed inputs, or the input term
        self.norm_h = _recurrent_norm(cfg, gates) if self.separate else None
        # with separate norms the bias comes after them (Cooijmans et al.'s b)
        self.bias = nn.Parameter(torch.zeros(gates)) if self.separate else None
        self.act = ACTIVATIONS[cfg.activation]()
        self.pre, self.act_in = Tap(), Tap()

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x: [B, T, F]; mask: [B, T] of 0/1 (1 = a real step) or None (all real)."""
        B, T, _ = x.shape
        h = c = x.new_zeros(B, self.width)  # (B, H)
        full = self._full_steps(mask, T)
        xs, w_h = self._input_terms(x)
        out = []
        for t in range(T):
            m = None if full[t] or mask is None else mask[:, t]  # (B,)
            h_new, c_new = self._step(xs[:, t], h, c, t, m, w_h)
            if m is None:
                h, c = h_new, c_new
            else:  # a finished sequence keeps its state: padding changes nothing downstream
                keep = m[:, None] > 0  # (B, 1)
                h = torch.where(keep, h_new, h)
                c = torch.where(keep, c_new, c) if self.lstm else c_new  # Elman: c unused
            out.append(h)
        return torch.stack(out, dim=1)  # (B, T, H)

    def _input_terms(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(W_x x_t (+ b) for every step at once [B, T, gates], W_h) when the layer is a plain
        ``nn.Linear`` nobody hooks: each step then adds only W_h h_{t-1}, one matmul instead of
        a concatenation and a matmul over [x_t, h_{t-1}] (the same sum, rounded in another
        order; ~25 % of a small RNN's step on a CPU). Else (x, None): WN's and CN's layers see
        the whole [x_t, h_{t-1}] every step."""
        linear = self.linear
        if type(linear) is not nn.Linear or linear._forward_hooks or linear._forward_pre_hooks:
            return x, None
        w_x, w_h = linear.weight[:, : self.n_in], linear.weight[:, self.n_in :]
        return F.linear(x, w_x, linear.bias), w_h  # (B, T, gates); bias None when separate

    @staticmethod
    def _full_steps(mask: torch.Tensor | None, T: int) -> list[bool]:
        """Which steps have every sample real: they run unmasked (BN's fused kernel, no state
        to hold), the same computation as masked up to rounding, a third of its cost. It takes
        a host read of the mask, so on the CPU only: on a GPU that read would be a sync in
        every training step, which the trainer avoids (every step runs masked there)."""
        if mask is None:
            return [True] * T
        if not host_reads(mask):
            return [False] * T
        return (mask > 0).all(0).tolist()

    def _norm(self, norm: nn.Module, z: torch.Tensor, t: int, m: torch.Tensor | None):
        return norm(z, t, m) if isinstance(norm, StepBatchNorm) else norm(z)

    def _step(
        self,
        x: torch.Tensor,
        h: torch.Tensor,
        c: torch.Tensor,
        t: int,
        m: torch.Tensor | None,
        w_h: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One time step: (h_t, c_t) from (h_{t-1}, c_{t-1}) [B, H] and x_t [B, F], or, with
        ``w_h``, x_t's term already through W_x (``_input_terms``)."""
        normed = None
        if self.separate and self.norm_h is not None and self.bias is not None:
            if w_h is None:
                w = cast(torch.Tensor, self.linear.weight)  # (gates, F + H) = [W_x W_h]
                x, w_h = F.linear(x, w[:, : self.n_in]), w[:, self.n_in :]
            zx, zh = x, F.linear(h, w_h)
            z = zx + zh
            normed = self._norm(self.norm, zx, t, m) + self._norm(self.norm_h, zh, t, m)
            normed = normed + self.bias
        elif w_h is not None:
            z = torch.addmm(x, h, w_h.t())  # (B, H) or (B, 4H)
        else:
            z = self.linear(torch.cat([x, h], dim=1))
        if self.lstm:
            n = self._norm(self.norm, z, t, m) if normed is None else normed
            i, f, o, g = n.chunk(4, dim=1)  # (B, H) each
            self.pre(z[:, 3 * self.width :])
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * self.act(self.act_in(g))
            return torch.sigmoid(o) * self.act(c), c
        if normed is not None:
            self.pre(z)  # the probes read the unnormalized sum of the two terms
            return self.act(self.act_in(normed)), c
        if self.placement == "before":
            return self.act(self.act_in(self._norm(self.norm, self.pre(z), t, m))), c
        return self._norm(self.norm, self.act(self.act_in(self.pre(z))), t, m), c


def _recurrent_norm(cfg: RunConfig, units: int) -> nn.Module:
    """The RNN's norm module: ``StepBatchNorm`` for BN per time step (g at 0.1, as Cooijmans
    et al.) or for masked sequences (one set shared by all steps, padding left out), else the
    registry's module (BN as one BatchNorm1d shared over time, as before these options)."""
    if cfg.norm == "batch" and (cfg.bn_per_step or cfg.seq_vary):
        steps = cfg.seq_len if cfg.bn_per_step else 1
        gain = COOIJMANS_GAIN if cfg.bn_per_step else 1.0
        return StepBatchNorm(units, steps, affine=cfg.affine, gain=gain)
    return create_norm_layer(cfg.norm, units, affine=cfg.affine, groups=cfg.groups)


class RNN(_Probed):
    """depth stacked RecurrentLayers and a head on the last step. Input: [B, T, F] -> [B, K].

    With ``seq_vary`` the input's last feature is the mask (``normcore.data.datasets.with_mask``:
    1 on a sequence's steps, 0 on its padding); it is split off and handed to every layer, and
    the head reads the last step, where each sequence's state was held since its end.
    Any length T runs (a test sequence may be longer than the training ones). The probes'
    taps still read every (sample, step) of a padded batch, padding included (its values come
    from a zero input and the held state): the probe needs the same count at every step.
    """

    def __init__(self, cfg: RunConfig, in_shape: tuple[int, ...], n_classes: int) -> None:
        super().__init__()
        self.norm_name, self.masked = cfg.norm, cfg.seq_vary
        n_in = in_shape[-1] - int(self.masked)
        self.blocks = nn.ModuleList(
            RecurrentLayer(cfg, n_in if i == 0 else cfg.width) for i in range(cfg.depth)
        )
        self.head = nn.Linear(cfg.width, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mask = None
        if self.masked:
            x, mask = x[..., :-1], x[..., -1]  # (B, T, F), (B, T)
        for layer in self.blocks:
            x = layer(x, mask)  # (B, T, H)
        return self.head(x[:, -1])  # (B, K)

    def probe_points(self) -> list[ProbePoint]:
        in_linear = resolve(self.norm_name).in_linear
        layers = cast(list[RecurrentLayer], list(self.blocks))
        return [
            ProbePoint(
                f"h{i + 1}",
                b.pre,
                b.act_in,
                trained_weight(b.linear),
                b.linear if in_linear else b.norm,
            )
            for i, b in enumerate(layers)
        ]


@torch.no_grad()
def _gaussian_init(model: nn.Module, std: float) -> None:
    """The BN paper's "small random Gaussian": every weight matrix N(0, std²), its bias 0."""
    for module in model.modules():
        weight = getattr(module, "weight", None)
        if not isinstance(weight, torch.Tensor) or weight.dim() < 2:
            continue  # not a layer with a weight matrix (norm layers' g is 1-D)
        new = torch.randn_like(weight) * std
        if hasattr(module, "parametrizations"):
            module.weight = new  # WN's right_inverse re-derives v = w and g = ‖w‖
        else:
            weight.copy_(new)
        bias = getattr(module, "bias", None)
        if isinstance(bias, torch.Tensor):
            bias.zero_()


def build_model(cfg: RunConfig, input_shape: tuple[int, ...], n_classes: int) -> _Probed:
    """The network of ``cfg`` for inputs of ``input_shape`` (one sample), seeded by the caller."""
    model: _Probed
    if cfg.model == "mlp":
        model = MLP(cfg, math.prod(input_shape), n_classes)
    elif cfg.model == "convnet":
        model = ConvNet(cfg, input_shape, n_classes)
    else:
        model = RNN(cfg, input_shape, n_classes)
    if cfg.init == "gaussian":
        _gaussian_init(model, cfg.init_std)
    return model
