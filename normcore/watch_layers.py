"""Which layers a Watch measures: a layer map checked at construction, or the layers of a whole
model picked by their kind.

A watched layer is a module whose output is the activation's input (a Linear or a conv, with
no norm after it, or a norm inside it), a pair (layer, norm) whose outputs are the
pre-activation and the activation's input, or a recurrent or attention module
(``nn.LSTM``, ``nn.GRU``, ``nn.RNN``, ``nn.MultiheadAttention``: the tensor it returns, the
first of its pair). What cannot be measured is refused here, naming the layer, not found
inside the forward pass: a module with no weight, a pair given the wrong way round, a norm
that is a layer, MultiheadAttention's ``out_proj`` (never called: the attention uses only its
weight).

``pick_layers(model)`` takes every Linear and conv (transformers' ``Conv1D`` too, GPT-2's
linear layer, known by its name and its ``nf``), each proposed as a ``MaybePair`` with the norm
registered right after it in the same parent when that norm's feature count is the layer's
output count (``conv1``, ``bn1`` in a ResNet block; ``fc``, ``ln``), and every recurrent and
attention module (not the layers inside them). Module order only proposes: the first probed
step shows whether the norm reads the layer's very output (normcore.watch_pairs). Where it
does not (a BERT block's ``LayerNorm(dropout(dense(x)) + x)``, torch's transformer layers),
the layer is watched alone: its frame describes its own output, and the norm, which
normalizes a residual sum and has no weight of its own to report, is not a layer of the
frames. The layers' names are known at construction either way.

Weight statistics are norms (‖w‖, ‖∇w‖, ‖Δw‖), the same whichever way a weight is laid out,
so ``Conv1D``'s transposed (in, out) weight needs nothing of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import NamedTuple, cast

from torch import nn
from torch.nn.modules.linear import NonDynamicallyQuantizableLinear

from normcore.models import trained_weight
from normcore.norms import CosineLinear
from normcore.probe.taps import FIRST_OF_TUPLE, ProbePoint

LayerSpec = nn.Module | tuple[nn.Module, nn.Module]
LayerFilter = Iterable[str] | Callable[[str, nn.Module], bool]

# _NormBase: batch and instance norms
NORMS = (
    nn.modules.batchnorm._NormBase,
    nn.LayerNorm,
    nn.GroupNorm,
    nn.RMSNorm,
    nn.LocalResponseNorm,
)
LINEARS = (nn.Linear, nn.Bilinear, nn.modules.conv._ConvNd, CosineLinear)
TRANSFORMER_LAYERS = (nn.TransformerEncoderLayer, nn.TransformerDecoderLayer)


def is_linear(module: nn.Module) -> bool:
    """A Linear or conv, or transformers' ``Conv1D`` (a linear layer with its weight stored
    (in, out)), known without importing transformers: its class name, ``nf`` (its output
    count) and a 2-D weight."""
    if isinstance(module, LINEARS):
        return True
    weight = getattr(module, "weight", None)
    return (
        type(module).__name__ == "Conv1D"
        and isinstance(getattr(module, "nf", None), int)
        and isinstance(weight, nn.Parameter)
        and weight.dim() == 2
    )


class MaybePair(NamedTuple):
    """A (layer, norm) pair that watch(model) proposes from the module order: kept when the
    first probed step shows the norm reads the layer's output, else the layer is watched
    alone (normcore.watch_pairs). A pair given by hand as a plain tuple must be one."""

    layer: nn.Module
    norm: nn.Module


def layer_weight(name: str, module: nn.Module) -> nn.Parameter:
    """The weight that makes the module's output: a layer's (WN: its direction), a recurrent
    module's last input weight, an attention's output projection."""
    if isinstance(module, nn.RNNBase):
        return cast(nn.Parameter, getattr(module, f"weight_ih_l{module.num_layers - 1}"))
    if isinstance(module, nn.MultiheadAttention):
        return cast(nn.Parameter, module.out_proj.weight)
    try:
        return trained_weight(module)
    except AttributeError:
        hint = (
            ": name its layers, or let watch(model) pick them"
            if any(True for _ in module.children())
            else ""
        )
        raise TypeError(f"layer {name!r}: {type(module).__name__} has no weight{hint}") from None


def probe_point(name: str, spec: LayerSpec) -> ProbePoint:
    """A `ProbePoint` of one watched layer: `layer` or `(layer, norm)`, checked."""
    layer, norm = spec if isinstance(spec, tuple) and len(spec) == 2 else (spec, None)
    if not isinstance(layer, nn.Module) or not isinstance(norm, nn.Module | None):
        raise TypeError(
            f"layer {name!r}: a module or a (layer, norm) pair of modules, not {spec!r}"
        )
    if isinstance(layer, NonDynamicallyQuantizableLinear):
        raise ValueError(
            f"layer {name!r}: MultiheadAttention's out_proj is never called as a "
            f"module (the attention uses only its weight): watch the "
            f"MultiheadAttention itself"
        )
    if norm is not None:
        if isinstance(layer, NORMS):
            given = f"({type(layer).__name__}, {type(norm).__name__})"
            raise ValueError(
                f"layer {name!r}: {given} is the wrong way round: a pair is "
                f"(layer, the norm after it)"
            )
        if not isinstance(norm, NORMS) and (is_linear(norm) or isinstance(norm, FIRST_OF_TUPLE)):
            raise ValueError(
                f"layer {name!r}: the second of a pair is the norm after the "
                f"layer, not a {type(norm).__name__}"
            )
    weight = layer_weight(name, layer)
    return ProbePoint(name, layer, norm or layer, weight, norm or layer)


def _features(module: nn.Module) -> int | None:
    """A layer's output count, or a norm's feature count (None: unknown)."""
    if isinstance(module, nn.modules.conv._ConvNd):
        return module.out_channels
    if isinstance(module, nn.modules.batchnorm._NormBase):
        return module.num_features
    if isinstance(module, nn.GroupNorm):
        return module.num_channels
    if isinstance(module, nn.LayerNorm | nn.RMSNorm):
        shape = module.normalized_shape
        return shape[-1] if len(shape) == 1 else None
    if is_linear(module) and not isinstance(module, LINEARS):
        return cast(int, module.nf)  # Conv1D
    return getattr(module, "out_features", None)


def pick_layers(model: nn.Module, layers: LayerFilter | None = None) -> dict[str, LayerSpec]:
    """The layer map of a whole model (see the module doc), named by module path; ``layers``
    narrows it: module paths (each must be picked) or a predicate ``(path, module) -> bool``."""
    picked: dict[str, LayerSpec] = {}
    inside: list[str] = []  # recurrent and attention modules: their parts are theirs
    for parent_name, parent in model.named_modules():
        if any(parent_name == p or parent_name.startswith(f"{p}.") for p in inside):
            continue
        children = list(parent.named_children())
        for k, (child_name, child) in enumerate(children):
            path = f"{parent_name}.{child_name}" if parent_name else child_name
            if isinstance(child, FIRST_OF_TUPLE):
                picked[path] = child
                inside.append(path)
            elif is_linear(child):
                after = children[k + 1][1] if k + 1 < len(children) else None
                pair = isinstance(after, NORMS) and _features(after) == _features(child)
                picked[path] = MaybePair(child, after) if pair else child  # type: ignore[arg-type]
    order = {path: k for k, (path, _) in enumerate(model.named_modules())}
    picked = dict(sorted(picked.items(), key=lambda item: order[item[0]]))  # as modules() goes
    if layers is None:
        chosen = picked
    elif callable(layers):
        modules = dict(model.named_modules())
        chosen = {k: v for k, v in picked.items() if layers(k, modules[k])}
    else:
        names = list(layers) if not isinstance(layers, str) else [layers]
        unknown = [n for n in names if n not in picked]
        if unknown:
            raise ValueError(
                f"layers: {', '.join(map(repr, unknown))} not among the layers "
                f"watch picks: {', '.join(picked) or 'none'}"
            )
        chosen = {n: picked[n] for n in names}
    if not chosen:
        where = type(model).__name__ + (" after the filter" if layers else "")
        raise ValueError(
            f"layers: no Linear, conv, recurrent or attention layer to watch in {where}"
        )
    return chosen


def layer_points(layers: Mapping[str, LayerSpec]) -> list[ProbePoint]:
    if not layers:
        raise ValueError("layers: name at least one layer to watch")
    return [probe_point(name, spec) for name, spec in layers.items()]


ACTIVATIONS = {
    nn.ReLU: "relu",
    nn.ReLU6: "relu",
    nn.LeakyReLU: "relu",
    nn.GELU: "gelu",
    nn.SiLU: "gelu",
    nn.Tanh: "tanh",
    nn.Sigmoid: "sigmoid",
}


def guess_activation(model: nn.Module) -> str:
    """The model's most common activation (its saturation and histogram range): activation
    modules, torch's transformer layers (relu or gelu), recurrent modules (tanh); else relu."""
    seen: dict[str, int] = {}
    for module in model.modules():
        kind = ACTIVATIONS.get(type(module))
        if isinstance(module, TRANSFORMER_LAYERS):
            kind = "gelu" if getattr(module, "activation_relu_or_gelu", 1) == 2 else "relu"
        elif isinstance(module, nn.LSTM | nn.GRU) or (
            isinstance(module, nn.RNN) and module.nonlinearity == "tanh"
        ):
            kind = "tanh"
        if kind is not None:
            seen[kind] = seen.get(kind, 0) + 1
    return max(seen, key=lambda k: seen[k]) if seen else "relu"
