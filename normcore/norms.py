"""The normalization registry: canonical name -> NormSpec (factory + the seed's properties).

Like timm's ``create_norm_layer``: a name ("Batch_Norm", "BN", "batch") or a layer class goes
in, an ``nn.Module`` comes out, and an unknown name raises ``ValueError`` listing the known ones
(timm's ``get_norm_layer`` returns a class instead; here ``resolve`` returns the NormSpec).

Two kinds of norm live here. Most (batch, layer, group, instance, rms) sit between a linear map
and its activation: ``create_norm_layer`` builds them. Weight norm and cosine norm change the
linear map itself (Salimans & Kingma 2016; Luo et al. 2017), so ``make_linear`` /
``make_conv2d`` build the layer that computes the pre-activation and ``create_norm_layer`` returns
``nn.Identity`` for them.

``affine`` switches the "second shift and scale" g, b (seed C3) on or off:
- batch/layer/group/instance: the layers' own per-unit weight and bias;
- rms: the per-unit gain g only (RMSNorm has no bias);
- weight: the gain g of ``w = g * v / ||v||`` and the layer's bias; off means g is frozen at 1
  and there is no bias, so ``w`` is the unit-norm direction ``v / ||v||``;
- cosine: Luo et al.'s layer has neither; affine adds a per-unit ``g * cos + b`` (g=1, b=0
  at init) so CN can be compared with the others on equal terms. It cannot restore the
  per-sample scale ``||x||`` that cos(w, x) discards (seed C7).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from normcore.config import NORM_ALIASES, NORM_NAMES, canonical

# Cosine norm divides by sqrt(||x||² + eps): smooth at x = 0, so a dead input gives cos = 0 and a
# bounded gradient (1/sqrt(eps)) instead of NaN or F.normalize's 1/eps. Exact above ||x|| ~ 1e-3.
_EPS = 1e-8


class LayerNorm2d(nn.GroupNorm):
    """Ba et al.'s layer norm for conv maps: each sample over all of (C, H, W), per-channel g, b.

    Input: [B, C, H, W]. One group holding every channel is exactly that statistic.
    """

    def __init__(self, num_features: int, affine: bool = True) -> None:
        super().__init__(1, num_features, affine=affine)


class RMSNorm2d(nn.RMSNorm):
    """RMS norm for conv maps: each sample divided by its RMS over (C, H, W), per-channel g.

    Input: [B, C, H, W]. Same statistic as ``LayerNorm2d`` without the re-centering.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.rms_norm(x, x.shape[1:], None, self.eps)  # (B, C, H, W)
        if self.weight is not None:
            y = y * self.weight.view(1, -1, 1, 1)
        return y


class InstanceNorm1d(nn.InstanceNorm1d):
    """Instance norm that also accepts one feature vector per sample.

    Input: [B, C, L] (each channel over its L positions) or [B, C] (an RNN step). A [B, C]
    input has no positions, so its single "instance" is the sample's C features: it is layer
    norm with per-unit g, b. Without this, PyTorch reads [B, C] as an unbatched [C, L].
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2:
            return super().forward(x)
        y = F.layer_norm(x, x.shape[1:], None, None, self.eps)  # (B, C)
        if self.affine:
            y = y * self.weight + self.bias
        return y


class CosineLinear(nn.Module):
    """Cosine normalization (Luo et al. 2017): pre-activation ``cos(w_i, x)`` for each unit.

    Input: [B, in_features] (or [*, in_features]). Output bounded in [-1, 1] before the
    optional per-unit ``g * cos + b``. Invariant to the scale of ``w_i`` and of ``x``.
    """

    def __init__(self, in_features: int, out_features: int, affine: bool = True) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        # nn.Linear's default init: the direction is all that matters, the scale is free.
        self.weight = nn.Parameter(nn.Linear(in_features, out_features).weight.detach().clone())
        self.g = nn.Parameter(torch.ones(out_features)) if affine else None
        self.b = nn.Parameter(torch.zeros(out_features)) if affine else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w_hat = F.normalize(self.weight, dim=1)  # (out, in) unit rows
        x_norm = (x.square().sum(-1, keepdim=True) + _EPS).sqrt()  # (B, 1)
        y = F.linear(x, w_hat) / x_norm  # (B, out)
        if self.g is not None and self.b is not None:
            y = y * self.g + self.b
        return y


class CosineConv2d(nn.Conv2d):
    """Cosine normalization for convolutions: cos(kernel, input patch) at every position.

    Input: [B, C_in, H, W]. The patch norm comes from convolving x² with a ones kernel. The
    conv's own bias is off; with affine, a per-channel ``g * cos + b`` follows.
    """

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, affine: bool = True, **kw: Any):
        super().__init__(in_ch, out_ch, kernel_size, bias=False, **kw)
        self.g = nn.Parameter(torch.ones(out_ch)) if affine else None
        self.b = nn.Parameter(torch.zeros(out_ch)) if affine else None
        self.register_buffer("ones", torch.ones(1, in_ch, *self.kernel_size), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w, ones = self.weight, self.ones.to(x.dtype)  # ones: (1, C_in, k, k)
        dot = self._conv_forward(x, w, None)  # (B, C_out, H', W')
        sq = F.conv2d(x * x, ones, None, self.stride, self.padding, self.dilation)  # type: ignore[arg-type]
        patch = (sq + _EPS).sqrt()  # (B, 1, H', W'): the norm of each input patch
        w_norm = w.flatten(1).norm(dim=1).clamp_min(1e-12).view(1, -1, 1, 1)  # (1, C_out, 1, 1)
        y = dot / (patch * w_norm)
        if self.g is not None and self.b is not None:
            y = y * self.g.view(1, -1, 1, 1) + self.b.view(1, -1, 1, 1)
        return y


@dataclass(frozen=True)
class NormSpec:
    """One registry entry: what the catalog shows and how to build the layer."""

    name: str
    title: str
    note: str  # one line from the seed (C4..C9) or the paper that introduced it
    properties: dict[str, bool]
    factory: Callable[..., nn.Module]  # (num_features, *, dims, affine, groups) -> nn.Module
    in_linear: bool = False  # True: the norm is part of the linear layer (make_linear)


def _identity(num_features: int, **_: Any) -> nn.Module:
    return nn.Identity()


def _batch(num_features: int, *, dims: int, affine: bool, **_: Any) -> nn.Module:
    cls = nn.BatchNorm1d if dims == 1 else nn.BatchNorm2d
    return cls(num_features, affine=affine)


def _layer(num_features: int, *, dims: int, affine: bool, **_: Any) -> nn.Module:
    if dims == 1:
        return nn.LayerNorm(num_features, elementwise_affine=affine)
    return LayerNorm2d(num_features, affine=affine)


def _group(num_features: int, *, affine: bool, groups: int, **_: Any) -> nn.Module:
    if groups < 1 or num_features % groups:
        raise ValueError(f"groups {groups} must divide num_features {num_features}")
    return nn.GroupNorm(groups, num_features, affine=affine)


def _instance(num_features: int, *, dims: int, affine: bool, **_: Any) -> nn.Module:
    if dims == 1:
        return InstanceNorm1d(num_features, affine=affine)
    return nn.InstanceNorm2d(num_features, affine=affine)


def _rms(num_features: int, *, dims: int, affine: bool, **_: Any) -> nn.Module:
    cls = nn.RMSNorm if dims == 1 else RMSNorm2d
    return cls(num_features, elementwise_affine=affine)


_PROPERTY_KEYS = (
    "batch_stats",  # statistics over the mini-batch (depends on batch size and order)
    "per_sample",  # each sample normalized on its own
    "weight_scale_invariant",  # Norm(λW·x) = Norm(W·x), seed C8
    "data_scale_invariant",  # Norm(W·λx) = Norm(W·x), seed C9
    "has_affine",  # has the second scale/shift g (and b) when affine=True
    "suits_rnn",  # usable per time step in a recurrent or dynamic network
    "suits_small_batch",
    "running_stats",  # keeps running mean/var for evaluation (train/eval gap)
)

# Layer norm's properties, which most per-sample norms share (the others name how they differ).
_LIKE_LAYER_NORM = {
    "per_sample",
    "weight_scale_invariant",
    "data_scale_invariant",
    "has_affine",
    "suits_rnn",
    "suits_small_batch",
}


def _spec(name: str, title: str, note: str, factory: Callable[..., nn.Module], has: set[str]):
    """One registry entry; ``has``: the properties above that the norm has."""
    assert has <= set(_PROPERTY_KEYS), f"{name}: unknown properties {has - set(_PROPERTY_KEYS)}"
    properties = {key: key in has for key in _PROPERTY_KEYS}
    return NormSpec(name, title, note, properties, factory, in_linear=name in ("weight", "cosine"))


NORMS: dict[str, NormSpec] = {
    spec.name: spec
    for spec in (
        _spec(
            "none",
            "No normalization",
            "The baseline: ICS and saturation left alone (C1, C2).",
            _identity,
            has={"per_sample", "suits_rnn", "suits_small_batch"},
        ),
        _spec(
            "batch",
            "Batch norm",
            "Large, well-shuffled, similar mini-batches; unsuited to RNNs "
            "and dynamic networks (C4).",
            _batch,
            has={
                "batch_stats",
                "weight_scale_invariant",
                "data_scale_invariant",
                "has_affine",
                "running_stats",
            },
        ),
        _spec(
            "layer",
            "Layer norm",
            "Per sample, no batch statistics: small batches, RNNs; one "
            "transform for the whole layer (C5).",
            _layer,
            has=_LIKE_LAYER_NORM,
        ),
        _spec(
            "weight",
            "Weight norm",
            "w = g·v/‖v‖ uses no data statistics: weight- but not "
            "data-scale invariant (C6, C8, C9).",
            _identity,
            has=_LIKE_LAYER_NORM - {"data_scale_invariant"},
        ),
        _spec(
            "cosine",
            "Cosine norm",
            "cos(w, x) replaces w·x: bounded, but the dot product's scale is lost (C7).",
            _identity,
            has=_LIKE_LAYER_NORM,
        ),
        _spec(
            "group",
            "Group norm",
            "Per sample over groups of channels: no batch-size dependence (Wu & He 2018).",
            _group,
            has=_LIKE_LAYER_NORM,
        ),
        _spec(
            "instance",
            "Instance norm",
            "Per sample and channel over positions; on a [B, C] RNN step it is layer norm.",
            _instance,
            has=_LIKE_LAYER_NORM - {"suits_rnn"},
        ),
        _spec(
            "rms",
            "RMS norm",
            "Layer norm without re-centering: divide by the RMS, gain only "
            "(Zhang & Sennrich 2019).",
            _rms,
            has=_LIKE_LAYER_NORM,
        ),
    )
}
assert tuple(NORMS) == NORM_NAMES, "the registry and normcore.config.NORM_NAMES must agree"

# Layer classes accepted in place of a name (timm accepts both).
_CLASS_NAMES: dict[type, str] = {
    nn.Identity: "none",
    nn.BatchNorm1d: "batch",
    nn.BatchNorm2d: "batch",
    nn.LayerNorm: "layer",
    LayerNorm2d: "layer",
    nn.GroupNorm: "group",
    nn.InstanceNorm1d: "instance",
    InstanceNorm1d: "instance",
    nn.InstanceNorm2d: "instance",
    nn.RMSNorm: "rms",
    RMSNorm2d: "rms",
    CosineLinear: "cosine",
    CosineConv2d: "cosine",
}


def resolve(name_or_class: str | type | NormSpec) -> NormSpec:
    """Any accepted spelling ("Batch_Norm", "BN", nn.BatchNorm1d) -> its NormSpec."""
    if isinstance(name_or_class, NormSpec):
        return name_or_class
    if isinstance(name_or_class, type):
        for cls in name_or_class.__mro__:
            if cls in _CLASS_NAMES:
                return NORMS[_CLASS_NAMES[cls]]
        known = ", ".join(sorted(c.__name__ for c in _CLASS_NAMES))
        raise ValueError(f"norm class {name_or_class.__name__!r} is unknown; known: {known}")
    return NORMS[canonical(name_or_class, NORM_NAMES, "norm", NORM_ALIASES)]


def create_norm_layer(
    name_or_class: str | type | NormSpec,
    num_features: int,
    *,
    dims: int = 1,
    affine: bool = True,
    groups: int = 4,
) -> nn.Module:
    """The module that normalizes a pre-activation of ``num_features`` units.

    ``dims=1``: input [B, C] (an MLP layer, an RNN step); ``dims=2``: [B, C, H, W].
    Weight and cosine norm live in the linear layer (``make_linear``): Identity here.
    """
    if dims not in (1, 2):
        raise ValueError(f"dims {dims} is not supported; use 1 ([B, C]) or 2 ([B, C, H, W])")
    if num_features < 1:
        raise ValueError(f"num_features {num_features} must be >= 1")
    spec = resolve(name_or_class)
    return spec.factory(num_features, dims=dims, affine=affine, groups=groups)


def _freeze_gain(layer: nn.Module) -> nn.Module:
    g: nn.Parameter = layer.parametrizations.weight.original0  # type: ignore[union-attr,assignment]
    g.data.fill_(1.0)
    g.requires_grad_(False)  # w = v / ||v||: a pure direction, no learned scale
    return layer


def make_linear(
    norm: str | type | NormSpec,
    in_features: int,
    out_features: int,
    *,
    affine: bool = True,
    bias: bool = True,
) -> nn.Module:
    """The layer computing the pre-activation: WN's / CN's own layer, else ``nn.Linear``.

    ``bias`` applies to plain linear layers; WN and CN take their shift from ``affine``.
    """
    name = resolve(norm).name
    if name == "cosine":
        return CosineLinear(in_features, out_features, affine=affine)
    if name == "weight":
        layer = weight_norm(nn.Linear(in_features, out_features, bias=affine), dim=0)
        return layer if affine else _freeze_gain(layer)
    return nn.Linear(in_features, out_features, bias=bias)


def make_conv2d(
    norm: str | type | NormSpec,
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    *,
    affine: bool = True,
    bias: bool = True,
    **conv_kw: Any,
) -> nn.Module:
    """The conv equivalent of ``make_linear`` (``conv_kw``: stride, padding, dilation)."""
    name = resolve(norm).name
    unknown = set(conv_kw) - {"stride", "padding", "dilation"}
    if unknown:  # cosine's patch norm is computed with exactly these three
        raise ValueError(
            f"conv option(s) {sorted(unknown)} not supported; use stride, padding, dilation"
        )
    if name == "cosine":
        return CosineConv2d(in_channels, out_channels, kernel_size, affine=affine, **conv_kw)
    if name == "weight":
        conv = nn.Conv2d(in_channels, out_channels, kernel_size, bias=affine, **conv_kw)
        layer = weight_norm(conv, dim=0)
        return layer if affine else _freeze_gain(layer)
    return nn.Conv2d(in_channels, out_channels, kernel_size, bias=bias, **conv_kw)


def norm_affine(module: nn.Module) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """The norm's "second scale and shift" (g, b) as flat tensors, or None where absent.

    Reads BN/LN/GN/IN/RMS ``weight``/``bias``, WN's gain ``original0`` (None when frozen by
    affine=False) with the layer's bias, and CN's ``g``/``b``.
    """
    if isinstance(module, CosineLinear | CosineConv2d):
        return module.g, module.b
    param = getattr(module, "parametrizations", None)
    if param is not None and "weight" in param:
        g = param.weight.original0
        bias: torch.Tensor | None = getattr(module, "bias", None)
        return (g.flatten() if g.requires_grad else None), bias
    if isinstance(module, nn.modules.batchnorm._NormBase | nn.LayerNorm | nn.GroupNorm):
        return module.weight, module.bias
    if isinstance(module, nn.RMSNorm):
        return module.weight, None
    return None, None


def norm_catalog() -> list[dict[str, Any]]:
    """JSON-ready registry for the API and dashboard, in the canonical order."""
    aliases = {name: sorted(a for a, n in NORM_ALIASES.items() if n == name) for name in NORMS}
    return [
        dict(
            name=spec.name,
            title=spec.title,
            note=spec.note,
            properties=dict(spec.properties),
            in_linear=spec.in_linear,
            aliases=aliases[spec.name],
        )
        for spec in NORMS.values()
    ]
