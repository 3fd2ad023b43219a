"""The CPU's recorder: compiled kernels (normcore.probe.kernels) and a row written through numpy.

A CPU pays per pass over memory, so on the ``in-hooks`` path each layer (an RNN's: each time
step) goes to ``LayerStats.layer`` in its tap while its tensors are still hot in cache, and the
norms of a weight and its gradient are taken the moment backward has written the gradient.
``after-backward`` runs the same kernels at ``collect`` on the copies the taps took. Either
way ``record`` then writes the ring's row in place through numpy views: reading a CPU tensor
is no sync, and a small model's step is short enough that each of the torch path's ~40 calls
shows (237 → 130 µs a step for a 3×100 MLP). Accuracy and the g/b moments are summed in
float64 here, in float32 by ``DeviceRecorder``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from normcore.probe.kernels import hits, row_moments
from normcore.probe.recorder import Layers, Recorder, Step, Taken
from normcore.probe.ring import Ring
from normcore.probe.stats import COL, STAT_FIELDS, LayerStats


def _norm(t: torch.Tensor) -> torch.Tensor:
    """‖t‖ as √⟨t, t⟩: BLAS's dot reads a 4 MB weight from L3 ~25% faster than vector_norm,
    and a 1 MB activation gradient in cache 2× faster (float32 sums: a norm above ~1e19
    reads as inf, where it no longer matters)."""
    flat = t.reshape(-1)
    return torch.dot(flat, flat).sqrt()


class HostRecorder(Recorder):
    """Paths ``in-hooks`` (measured in the taps from the second probe on) and
    ``after-backward`` (measured at collect)."""

    PATHS = ("in-hooks", "after-backward")
    WEIGHT_GRADS = True

    def __init__(self, layers: Layers, taken: Taken, path: str) -> None:
        super().__init__(layers, taken, path)  # (a CPU with numba: probe.resolve_path)
        self.in_hooks = path == "in-hooks"
        self.eager = False  # measuring in the taps (in-hooks, once the edges are fixed)
        # ‖w‖, ‖∇w‖ taken as backward wrote ∇w, with (∇w, its version): unchanged since?
        self._norms: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, int] | None]
        self._norms = [None] * layers.L

    def setup(self, edges: np.ndarray, n: int, bins: int, activation: str) -> LayerStats:
        layers = self.layers
        self.stats = LayerStats(edges, n, bins, activation, layers.device, True, layers.names)
        self.eager = self.in_hooks
        if not self.eager:  # after-backward: the taps copy each step's layers here
            self._x = torch.empty(layers.L, n, device=layers.device)
        return self.stats

    def arm(self) -> None:
        self._norms = [None] * self.layers.L
        if self.eager:
            self.stats.reset()  # type: ignore[union-attr]

    def take(
        self, i: int, out: torch.Tensor, pre: torch.Tensor, same: bool, off: int
    ) -> str | None:
        if not self.eager:
            return super().take(i, out, pre, same, off)
        self.taken.pres[i].clear()
        try:
            self.stats.layer(i, out, None if same else pre)  # type: ignore[union-attr]
        except ValueError as exc:  # (its message names the layer)
            return str(exc)
        if out.requires_grad:
            out.register_hook(_append_norm(self.taken.act_grads[i]))
        return None

    def weight_grad(self, i: int, weight: torch.Tensor) -> None:
        # ‖w‖ and ‖∇w‖ now (w was just read for the input's gradient): both are still in
        # cache, and read from memory they cost twice as much
        if self.eager:
            g = weight.grad
            assert g is not None  # (a post-accumulate hook: backward has just written it)
            gn = _norm(g)  # just written: first
            self._norms[i] = (_norm(weight.detach()), gn, g, g._version)

    def record(self, step: Step, ring: Ring) -> None:
        stats, layers, taken = self.stats, self.layers, self.taken
        assert stats is not None
        hooked = all(  # the hooks' norms are of the gradients as they are now
            n is not None and n[2] is g and n[3] == v
            for n, g, v in zip(self._norms, step.grads, step.versions, strict=True)
        )
        if any(taken.acts) or not self.eager:  # the first probe, or measured after backward
            stats(taken.acts, None if step.same else taken.pres)
        else:
            stats.require_complete()  # in the hooks: every piece of every layer came
        hist, row, glob = ring.host_row()
        hist[:] = stats.hist.numpy()
        row[:, len(STAT_FIELDS) :] = math.nan  # columns with no value (yet: Δw, ICS)
        row[:, : len(STAT_FIELDS)] = stats.cols.numpy()
        if hooked:
            norms = [(float(n[0]), float(n[1])) for n in self._norms]  # type: ignore[index]
        else:
            norms = [
                (float(_norm(w)), float(_norm(g)))
                for w, g in zip(layers.weights, step.grads, strict=True)
            ]
        row[:, COL["weight_norm"]], row[:, COL["grad_norm"]] = zip(*norms, strict=True)
        if step.act_grads:  # every piece's activation gradient, or its norm (in hooks)
            row[:, COL["act_grad_norm"]] = [
                math.sqrt(sum(float(g if g.dim() == 0 else _norm(g)) ** 2 for g in refs))
                for refs in taken.act_grads
            ]  # over an RNN's time steps
        for prefix, params in (("g", layers.gains), ("b", layers.shifts)):
            if params[0] is not None:
                values = torch.stack(list(params)).float().numpy()  # (numpy has no bfloat16)
                row_moments(values, row[:, COL[f"{prefix}_mean"]], row[:, COL[f"{prefix}_std"]])
        if (lr := layers.sgd_lr()) is not None:
            row[:, COL["update_norm"]] = row[:, COL["grad_norm"]] * lr
        acc = math.nan
        if step.logits is not None and step.targets is not None:
            acc = hits(step.logits.float().numpy(), step.targets.numpy()) / len(step.targets)
        glob[:] = float(step.loss), acc
        if layers.old:
            torch._foreach_copy_(layers.old, layers.weights)  # for ‖Δw‖ after the step
        self._norms = [None] * layers.L


def _append_norm(refs: list[torch.Tensor]):
    """A gradient hook keeping the gradient's norm, taken while it is hot in cache."""

    def hook(grad: torch.Tensor) -> None:
        refs.append(_norm(grad))

    return hook
