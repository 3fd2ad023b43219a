"""Whether a (layer, norm) pair is one: the norm's input must BE the layer's output.

A pair's frame reads the layer's output as "before the norm" (``sat_pre``) and the norm's
output as the activation's input, so it only means something when the norm normalizes exactly
what the layer produced. Module order cannot tell: a BERT block registers ``dense``,
``LayerNorm``, ``dropout``, but computes ``LayerNorm(dropout(dense(x)) + x)``. Neither can
tracing (torch.fx) in general: models with data-dependent control flow, as transformers' are,
do not trace. The first probed step can: ``PairCheck`` holds a forward hook on the layer
(what it returned, and that tensor's version) and a forward-pre-hook on the norm (what it
reads). The pair holds when every call of the norm reads the tensor the layer returned last,
unchanged in place since (views share the version counter, so ``out += residual`` shows),
or a view of exactly its values (a reshape or permute: ConvNeXt's channels-last LayerNorm
reads its conv's output permuted; the statistics are over all values, so order does not
matter).

The hooks look only while the probes are armed (a validation pass in eval mode, where dropout
returns its input, says nothing of training) and are removed once the step is judged: the
check costs one probed step's two hook calls per pair, nothing after.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from normcore.probe.taps import produced


def _dense_span(t: torch.Tensor) -> bool:
    """The tensor's elements fill one block of memory, each once (contiguous in some order of
    its dimensions, as a permutation of a contiguous tensor is)."""
    dims = sorted((s, n) for s, n in zip(t.stride(), t.shape, strict=True) if n != 1)
    expected = 1
    for stride, size in dims:
        if stride != expected:
            return False
        expected *= size
    return True


def same_values(read: object, out: torch.Tensor, version: int) -> bool:
    """``read`` is ``out`` as the layer returned it (``version``), or a view of exactly its
    elements."""
    if not isinstance(read, torch.Tensor) or read._version != version:
        return False
    if read is out:
        return True
    return (
        read.dtype == out.dtype
        and read.numel() == out.numel()
        and read.data_ptr() == out.data_ptr()
        and _dense_span(read)
        and _dense_span(out)
    )


class PairCheck:
    """Watches, while ``active``, whether ``norm`` reads what ``layer`` returns."""

    def __init__(self, layer: nn.Module, norm: nn.Module) -> None:
        self.layer, self.norm = layer, norm
        self.active = False
        self._handles = [
            layer.register_forward_hook(self._returned),
            norm.register_forward_pre_hook(self._reads, with_kwargs=True),
        ]
        self.reset()

    def reset(self) -> None:
        """Forget what was seen (a step that raised before it was judged)."""
        self._last: tuple[torch.Tensor, int] | None = None  # the layer's output, its version
        self.layer_calls = self.norm_calls = self.reads_it = 0

    def _returned(self, module: nn.Module, args: Any, out: Any) -> None:
        if self.active:
            out = produced(module, out)
            self.layer_calls += 1
            self._last = (out, out._version) if isinstance(out, torch.Tensor) else None

    def _reads(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        if not self.active:
            return
        self.norm_calls += 1
        read = args[0] if args else next(iter(kwargs.values()), None)
        if self._last is not None and same_values(read, *self._last):
            self.reads_it += 1

    def holds(self) -> bool:
        """What the step showed: each of the norm's calls read the layer's output."""
        return 0 < self.norm_calls == self.reads_it == self.layer_calls

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._last = None


def not_a_pair(name: str, check: PairCheck) -> str:
    """The error of a pair given by hand that the first step shows is none."""
    seen = (
        "it never ran"
        if not check.norm_calls
        else f"{check.norm_calls - check.reads_it} of its {check.norm_calls} call(s) read "
        f"another tensor"
    )
    return (
        f"layer {name!r}: the norm {check.norm!r} does not read the output of the layer "
        f"{check.layer!r} ({seen}: a residual sum, a dropout's output or an in-place change "
        f"of the layer's output), so the pair's statistics before the norm would describe "
        f"the wrong tensor: watch the layer alone, or pair it only with a norm applied to "
        f"its very output"
    )
