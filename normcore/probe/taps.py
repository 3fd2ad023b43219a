"""Where probes read a model: ``Tap`` modules, the ``ProbePoint`` of each hidden layer, and a
``Reader`` that takes a module's output through its Tap, or through a forward hook on any
other module (a model of one's own)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence


class Tap(nn.Identity):
    """A named point in the forward pass that probes read; returns its input unchanged.

    Readers in ``sinks`` get the tensor. A forward hook would do the same, but any hook sends
    every call of its module down nn.Module's slow path, probed step or not; a model's own
    taps cost one empty loop when nothing reads them."""

    def __init__(self) -> None:
        super().__init__()
        self.sinks: list[Callable[[torch.Tensor], None]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for sink in self.sinks:
            sink(x)
        return x


# modules that return (output, state) or (output, attention weights): the tensor they
# produce is the first
FIRST_OF_TUPLE = (nn.RNNBase, nn.MultiheadAttention)


def produced(module: nn.Module, out: object) -> object:
    """The tensor a module produced: its output; the first of the pair that recurrent and
    attention modules return (of a PackedSequence: its data). Anything else as it came."""
    if isinstance(module, FIRST_OF_TUPLE) and isinstance(out, tuple) and out:
        out = out[0]
    return out.data if isinstance(out, PackedSequence) else out


class Reader:
    """Reads a module's output: a ``Tap``'s sink, or a forward hook on any other module."""

    def __init__(self, module: nn.Module, read: Callable[[torch.Tensor], None]) -> None:
        self.module, self.read = module, read
        if isinstance(module, Tap):
            module.sinks.append(read)
            self._hook = None
        else:
            self._hook = module.register_forward_hook(
                lambda m, args, out: read(produced(m, out))  # type: ignore[arg-type]
            )

    def remove(self) -> None:
        if self._hook is None:
            self.module.sinks.remove(self.read)  # type: ignore[union-attr, operator]
        else:
            self._hook.remove()


@dataclass
class ProbePoint:
    """One hidden layer as the probes see it (the model builds these)."""

    name: str  # "h1", "h2", ...
    pre: nn.Module  # a tap (best a Tap) whose output is the pre-activation before the norm
    act: nn.Module  # a tap (best a Tap) whose output is the activation's input
    weight: nn.Parameter  # the layer's weight (WN: its direction v)
    affine: nn.Module  # where the norm's g, b live (normcore.norms.norm_affine)
