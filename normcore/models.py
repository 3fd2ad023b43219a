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
from torch import nn

from normcore.config import RunConfig
from normcore.norms import create_norm_layer, make_conv2d, make_linear, resolve
from normcore.probe.taps import ProbePoint, Tap

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
        z = self.pre(self.linear(x))  # (B, H) or (B, C, H, W)
        if self.placement == "before":
            return self.act(self.act_in(self.norm(z)))
        return self.norm(self.act(self.act_in(z)))

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
            x = block(x)  # (B, H)
        return self.head(x)  # (B, K)


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
            x = block(x)  # (B, C, H, W)
        return self.head(x.mean((2, 3)))  # (B, C) -> (B, K)


class RecurrentLayer(nn.Module):
    """An Elman or LSTM layer; the norm acts on the summed inputs W[x_t, h_{t-1}] at every
    time step (Ba et al. 2016), one norm module shared over time.

    Elman: h_t = act(norm(z_t)) (or norm(act(z_t)) with placement "after").
    LSTM: i, f, o, g = split(norm(z_t)); c_t = σ(f)c + σ(i)act(g); h_t = σ(o)act(c_t). The
    norm always sits on the summed inputs; the taps read the candidate g, the only gate that
    goes through the configured activation. Input: [B, T, F]; output [B, T, H].
    """

    def __init__(self, cfg: RunConfig, n_in: int) -> None:
        super().__init__()
        self.lstm, self.width, self.placement = cfg.cell == "lstm", cfg.width, cfg.placement
        gates = 4 * cfg.width if self.lstm else cfg.width
        self.linear = make_linear(cfg.norm, n_in + cfg.width, gates, affine=cfg.affine)
        self.norm = create_norm_layer(cfg.norm, gates, affine=cfg.affine, groups=cfg.groups)
        self.act = ACTIVATIONS[cfg.activation]()
        self.pre, self.act_in = Tap(), Tap()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, _ = x.shape
        h = c = x.new_zeros(B, self.width)  # (B, H)
        out = []
        for t in range(T):
            z = self.linear(torch.cat([x[:, t], h], dim=1))  # (B, H) or (B, 4H)
            if self.lstm:
                n = self.norm(z)
                i, f, o, g = n.chunk(4, dim=1)  # (B, H) each
                self.pre(z[:, 3 * self.width :])
                c = torch.sigmoid(f) * c + torch.sigmoid(i) * self.act(self.act_in(g))
                h = torch.sigmoid(o) * self.act(c)
            elif self.placement == "before":
                h = self.act(self.act_in(self.norm(self.pre(z))))
            else:
                h = self.norm(self.act(self.act_in(self.pre(z))))
            out.append(h)
        return torch.stack(out, dim=1)  # (B, T, H)


class RNN(_Probed):
    """depth stacked RecurrentLayers and a head on the last step. Input: [B, T, F] -> [B, K]."""

    def __init__(self, cfg: RunConfig, in_shape: tuple[int, ...], n_classes: int) -> None:
        super().__init__()
        self.norm_name = cfg.norm
        n_in = in_shape[-1]
        self.blocks = nn.ModuleList(
            RecurrentLayer(cfg, n_in if i == 0 else cfg.width) for i in range(cfg.depth)
        )
        self.head = nn.Linear(cfg.width, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.blocks:
            x = layer(x)  # (B, T, H)
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
