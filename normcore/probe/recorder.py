"""What a ``Probe`` hands its recorder, and the interface both recorders share.

A ``Probe`` (normcore.probe.probe) owns the taps, the ring and the host side (frames); its
recorder turns a probed step into the ring's next row. One recorder serves a probe for its
whole run, chosen by ``path`` when the probe is built (``PATHS``):

  in-hooks        ``HostRecorder`` (a CPU with numba, its default): after the first probe,
                  each layer goes through the compiled kernels in its tap while hot in cache,
                  ‖w‖ and ‖∇w‖ as backward writes ∇w; the row is written through numpy.
  after-backward  ``HostRecorder``: the same kernels at ``collect``, on copies the taps took.
  torch           ``DeviceRecorder``: torch's batch of all layers at ``collect``, on copies
                  (the default off CUDA without numba).
  staged          ``DeviceRecorder``: the same batch on fixed buffers, replayed as a CUDA
                  graph (the default on CUDA; a CPU runs it eagerly, as the tests do).

Both fill the same columns (normcore.probe.frame_numbers.FIELDS) at different precision: the
host sums in float64 (the kernels, accuracy, the g/b moments), the device in float32.

The first probed step fixes the histogram edges, so on every path its taps keep clones and
it is measured at ``collect``. A later in-place op (ReLU(inplace=True), a residual ``+=``)
rewrites a layer's output after its tap: statistics describe the tensor as its layer produced
it, because they are taken in the tap (in-hooks) or of a copy made there (``Recorder.take``,
the deferred paths: into staging rows once the edges are known).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from normcore.norms import norm_affine
from normcore.optim import plain_sgd
from normcore.probe.ring import Ring
from normcore.probe.stats import LayerStats
from normcore.probe.taps import ProbePoint

PATHS = ("in-hooks", "after-backward", "torch", "staged")


class Layers:
    """The probed layers as the probe and its recorder both see them, fixed for the run."""

    def __init__(
        self,
        points: list[ProbePoint],
        device: torch.device,
        optimizer: torch.optim.Optimizer | None,
    ) -> None:
        self.names, self.L, self.device = [p.name for p in points], len(points), device
        self.weights: list[torch.Tensor] = [p.weight for p in points]
        self.gains, self.shifts = zip(*(norm_affine(p.affine) for p in points), strict=True)
        self.sgd = plain_sgd(optimizer)
        # any other optimizer: ‖Δw‖ from a copy of the weights taken at collect
        self.old = [] if self.sgd else [torch.empty_like(w) for w in self.weights]

    def sgd_lr(self) -> float | None:
        """lr where plain SGD makes Δw = -lr·∇w (if ∇w stays: after_step checks), else None."""
        plain = self.sgd and not self.sgd.param_groups[0]["momentum"]
        return self.sgd.param_groups[0]["lr"] if plain else None  # type: ignore[union-attr]


class Taken:
    """What the taps took of the probed step, per layer. ``clear`` empties the lists in place:
    gradient hooks registered on a step's activations append to these very lists."""

    def __init__(self, layers: int) -> None:
        self.acts: list[list[torch.Tensor]] = [[] for _ in range(layers)]  # clones or copies
        self.pres: list[list[torch.Tensor]] = [[] for _ in range(layers)]
        self.act_grads: list[list[torch.Tensor]] = [[] for _ in range(layers)]  # or norms
        self.same = [True] * layers  # pre-activation is the activation input (no norm)
        # (layer, output, its version when taken, whether the recorder made it keep its .grad)
        self.outs: list[tuple[int, torch.Tensor, int, bool]] = []

    def clear(self) -> None:
        for lists in (self.acts, self.pres, self.act_grads):
            for refs in lists:
                refs.clear()
        self.same = [True] * len(self.same)
        self.outs.clear()


@dataclass
class Step:
    """A probed step after backward, as ``collect`` hands it to the recorder."""

    grads: list[torch.Tensor]  # each weight's gradient (zeros where it has none)
    versions: list[int]  # ... and its version then (a hook's norm is of this gradient)
    first: bool  # the first probed step: the taps kept clones, the edges were just fixed
    same: bool  # every layer's pre-activation is its activation input
    act_grads: bool  # every layer's activation gradient was seen
    loss: torch.Tensor
    logits: torch.Tensor | None
    targets: torch.Tensor | None


class Recorder:
    """A probed step into the ring's next row. The base keeps the deferred paths' copies:
    ``take`` copies each tap's tensor as it is produced, clones in the first step and rows of
    the staging buffers (L, n) after it."""

    WEIGHT_GRADS = False  # wants ``weight_grad`` as backward writes a weight's gradient ...

    def hooks_weight(self, weight: torch.Tensor) -> bool:
        """... of this weight (the probe registers the hook only where this says so)."""
        return self.WEIGHT_GRADS

    def __init__(self, layers: Layers, taken: Taken, path: str) -> None:
        self.layers, self.taken, self.path = layers, taken, path
        self.stats: LayerStats | None = None  # built by setup
        self._x: torch.Tensor | None = None  # staging rows of the activation inputs (L, n)
        self._pre: torch.Tensor | None = None  # ... of the pre-activations, when needed
        self._dest: dict[tuple, torch.Tensor] = {}  # views of the rows a piece is copied to

    def setup(self, edges: np.ndarray, n: int, bins: int, activation: str) -> LayerStats:
        """At the first collect: the statistics of n values per layer on fixed ``edges``."""
        raise NotImplementedError

    def arm(self) -> None:
        """Before a probed step's forward pass."""

    def take(
        self, i: int, out: torch.Tensor, pre: torch.Tensor, same: bool, off: int
    ) -> str | None:
        """Layer i's tap produced ``out`` (its values ``off`` on in the step; ``pre`` is its
        pre-activation, ``out`` itself when ``same``) -> what could not be measured, if
        anything (``collect`` raises it, outside the forward pass)."""
        taken = self.taken
        x = self._keep(out, self._x, i, off)
        taken.acts[i].append(x)
        taken.pres[i][-1] = x if same else self._keep(pre, self._pre_rows(), i, off)
        if out.requires_grad:
            self._watch_grad(i, out)
        return None

    def _watch_grad(self, i: int, out: torch.Tensor) -> None:
        """Have backward hand layer i's ``out``'s gradient to ``taken.act_grads[i]``."""
        out.register_hook(self.taken.act_grads[i].append)

    def backward_done(self) -> None:
        """At ``collect``, before reading ``taken``: the step's backward has run."""

    def weight_grad(self, i: int, weight: torch.Tensor) -> None:
        """Backward has just written layer i's ``weight.grad`` (if ``WEIGHT_GRADS``)."""

    def record(self, step: Step, ring: Ring) -> None:
        """The step's statistics into the ring's next row; the taps' tensors are in ``taken``."""
        raise NotImplementedError

    def _keep(self, t: torch.Tensor, rows: torch.Tensor | None, i: int, off: int):
        """A piece as it is now: a clone (the first probe, before the rows exist), else
        copied into row i of the staging rows at ``off``."""
        if rows is None:
            return t.detach().clone()
        key = (rows is self._x, i, off, t.shape)
        if (dest := self._dest.get(key)) is None:  # (indexing costs a small step ~5 µs a call)
            dest = self._dest[key] = rows[i, off : off + t.numel()].view(t.shape)
        return dest.copy_(t.detach())

    def _pre_rows(self) -> torch.Tensor | None:
        """The staging rows of pre-activations (allocated when a layer first needs them)."""
        if self.stats is None:
            return None
        if self._pre is None:
            self._pre = self._new_pre_rows()
        return self._pre

    def _new_pre_rows(self) -> torch.Tensor:
        assert self._x is not None  # allocated with the stats, at setup
        return torch.empty_like(self._x)
