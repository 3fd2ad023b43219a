"""The CPU's recorder: compiled kernels (normcore.probe.kernels) and a row written through numpy.

A CPU pays per pass over memory, so on the ``in-hooks`` path each layer (an RNN's: each time
step) goes to ``LayerStats.layer`` in its tap while its tensors are still hot in cache, and the
norms of a weight and its gradient are taken the moment backward has written the gradient.
``after-backward`` runs the same kernels at ``collect`` on the copies the taps took into
staging rows, all layers in one call (``LayerStats.rows``). A small step pays per call, not
per pass: below ``EAGER_BYTES`` of values a layer, ``in-hooks`` stages its layers the same
way, tensors below ``HOOKED_BYTES`` have their norms taken at collect (a layer's three in one
kernel call, ``kernels.layer_norms``), and its activation gradient is kept by retain_grad, not
a hook (``_watch_grad``). Either way ``record`` then writes the ring's row in place through
numpy views: reading a CPU tensor is no sync, and a small model's step is short enough that
each of the torch path's ~40 calls shows. Accuracy, the g/b moments and a small layer's norms
are summed in float64 here, in float32 by ``DeviceRecorder``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from normcore.probe.frame_numbers import COL
from normcore.probe.kernels import hits, layer_norms, row_moments
from normcore.probe.recorder import Layers, Recorder, Step, Taken
from normcore.probe.ring import Ring
from normcore.probe.stats import STAT_FIELDS, LayerStats

_STATS = len(STAT_FIELDS)  # a row's first columns: LayerStats's
_NORMS = slice(COL["grad_norm"], COL["weight_norm"] + 1)  # ‖∇w‖, ‖∂a‖, ‖w‖: adjacent
assert COL["act_grad_norm"] == COL["grad_norm"] + 1 == COL["weight_norm"] - 1


def _square(t: torch.Tensor) -> torch.Tensor:
    """‖t‖² as ⟨t, t⟩: BLAS's dot reads a 4 MB weight from L3 ~25% faster than vector_norm,
    and a 1 MB activation gradient in cache 2× faster (float32 sums: a norm above ~1e19
    reads as inf, where it no longer matters). The root waits for ``_roots``."""
    flat = t.reshape(-1)
    return torch.dot(flat, flat)


def _float32(t: torch.Tensor) -> torch.Tensor:
    """t as float32 (itself when it is: no torch call, which a small step pays for)."""
    return t if t.dtype == torch.float32 else t.float()


def _roots(squares: list[torch.Tensor]) -> list[float]:
    """√ of each square as floats, in the square's dtype. One stacked sqrt where they share
    a dtype (the usual case): a small model's step pays per torch call. torch's sqrt gives
    an element the same bits alone or in a batch (tests/normcore/test_recorders.py); numpy's
    differs from it in the last bit for ~15% of float32 values, so it is not used here."""
    if not squares:
        return []
    if len({s.dtype for s in squares}) == 1:
        return torch.stack(squares).sqrt_().tolist()
    return [float(s.sqrt()) for s in squares]


class HostRecorder(Recorder):
    """Paths ``in-hooks`` (measured in the taps from the second probe on) and
    ``after-backward`` (measured at collect)."""

    PATHS = ("in-hooks", "after-backward")
    WEIGHT_GRADS = True
    # a weight this small is still in cache at collect: its norms are taken there, which
    # spares backward a call into Python per layer (a small model's step pays per call)
    HOOKED_BYTES = 1 << 18
    # the same for a layer's values of a step: below this, in-hooks stages copies as
    # after-backward does and measures every layer in one kernel call at collect (a 3×100
    # MLP's three calls in the taps cost more than the staged copies and one call)
    EAGER_BYTES = 1 << 18

    def hooks_weight(self, weight: torch.Tensor) -> bool:
        return weight.numel() * weight.element_size() >= self.HOOKED_BYTES

    def __init__(self, layers: Layers, taken: Taken, path: str) -> None:
        super().__init__(layers, taken, path)  # (a CPU with numba: probe.resolve_path)
        self.in_hooks = path == "in-hooks"
        self.eager = False  # measuring in the taps (in-hooks, once the edges are fixed)
        # ‖w‖², ‖∇w‖² taken as backward wrote ∇w, with (∇w, its version): unchanged since?
        self._norms: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, int] | None]
        self._norms = [None] * layers.L
        self._hooked = [self.hooks_weight(w) for w in layers.weights]  # (as the probe asks)
        # layers whose output no later op of the step changes in place (as far as seen): their
        # activation gradient is kept by retain_grad (registered in ~4 µs against a hook's ~12,
        # and no Python call in backward), which gives the gradient of a tensor's latest
        # version where a hook gives that of the tensor as the tap saw it
        self._retain = [True] * layers.L

    def setup(self, edges: np.ndarray, n: int, bins: int, activation: str) -> LayerStats:
        layers = self.layers
        self.stats = LayerStats(edges, n, bins, activation, layers.device, True, layers.names)
        self.eager = self.in_hooks and n * 4 >= self.EAGER_BYTES
        self._views = self.stats.hist.numpy(), self.stats.cols.numpy()  # (numpy views, made once)
        if not self.eager:  # after-backward: the taps copy each step's layers here
            self._x = torch.empty(layers.L, n, device=layers.device)
        # the layers with a norm's gain or shift, and those parameters (fixed for the run)
        self._affine = [
            (prefix, have, [params[i] for i in have])
            for prefix, params in (("g", layers.gains), ("b", layers.shifts))
            if (have := [i for i, p in enumerate(params) if p is not None])
        ]
        # ‖∇w‖, ‖∂a‖ and ‖w‖ of a layer in one kernel call, straight into their three adjacent
        # columns: no weight hooked (so each is small), every tensor float32, and the
        # activation gradients small, in one piece a layer, as tensors (not the hooks' squares)
        self._one_call = (
            not any(self._hooked)
            and not self.eager
            and all(w.dtype == torch.float32 for w in layers.weights)
            and all(
                len(refs) == 1
                and refs[0].dtype == torch.float32
                and refs[0].numel() * 4 < self.HOOKED_BYTES
                for refs in self.taken.acts
            )
        )
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
            out.register_hook(_append_square(self.taken.act_grads[i]))
        return None

    def _watch_grad(self, i: int, out: torch.Tensor) -> None:
        """A small output's gradient: a hook in the first probed step, which finds the layers
        whose output is changed in place after the tap; retain_grad after it, where none is.
        A large one's keeps its hook (retain_grad clones it, where a hook hands it over)."""
        if out.numel() * out.element_size() >= self.HOOKED_BYTES:
            super()._watch_grad(i, out)
            return
        # (a leaf's .grad would accumulate over steps; a non-leaf's is the step's own)
        mine = self.stats is not None and self._retain[i] and out.grad_fn is not None
        if mine:
            out.retain_grad()
        else:
            super()._watch_grad(i, out)
        self.taken.outs.append((i, out, out._version, mine))

    def backward_done(self) -> None:
        """The kept gradients into ``taken.act_grads``. A layer whose output was changed in
        place since its tap goes back to a hook from the next step, and its kept gradient
        (of the changed tensor) is dropped: the step's activation gradient norms are NaN.
        (The .grad stays on the model's tensor, which is freed with it: clearing it would
        take it from a model that retains it too.)"""
        taken, changed = self.taken, set()
        for i, out, version, mine in taken.outs:
            if out._version != version:
                self._retain[i] = False
                if mine:
                    changed.add(i)
            elif mine and (grad := out.grad) is not None:
                taken.act_grads[i].append(grad)
        for i in changed:
            taken.act_grads[i].clear()

    def weight_grad(self, i: int, weight: torch.Tensor) -> None:
        # ‖w‖ and ‖∇w‖ now (w was just read for the input's gradient): both are still in
        # cache, and read from memory they cost twice as much
        if self.eager:
            g = weight.grad
            assert g is not None  # (a post-accumulate hook: backward has just written it)
            gn = _square(g)  # just written: first
            self._norms[i] = (_square(weight.detach()), gn, g, g._version)

    def record(self, step: Step, ring: Ring) -> None:
        stats, layers, taken = self.stats, self.layers, self.taken
        assert stats is not None
        hist, row, glob = ring.host_row()
        # staged copies (after the first probe) whose layers all have, or all lack, a
        # pre-activation of their own: every layer from its staging row, in one call, written
        # straight into the ring's row
        staged = (
            not self.eager
            and not step.first
            and (step.same or not any(taken.same))
            and stats.rows(
                self._x,  # type: ignore[arg-type]
                None if step.same else self._pre,
                hist,
                row[:, :_STATS],
            )
        )
        if not staged:
            if any(taken.acts) or not self.eager:  # first probe; rows in parts
                stats(taken.acts, None if step.same else taken.pres)
            else:
                stats.require_complete()  # in the hooks: every piece of every layer came
            hist[:] = self._views[0]
            row[:, :_STATS] = self._views[1]
        row[:, _STATS:] = math.nan  # columns with no value (yet: Δw, ICS)
        self._write_norms(row, step)
        for prefix, have, params in self._affine:
            values = torch.stack(params).float().numpy()  # (no bf16)
            mean, std = np.empty(len(have)), np.empty(len(have))
            row_moments(values, mean, std)
            row[have, COL[f"{prefix}_mean"]], row[have, COL[f"{prefix}_std"]] = mean, std
        if (lr := layers.sgd_lr()) is not None:
            row[:, COL["update_norm"]] = row[:, COL["grad_norm"]] * lr
        acc = math.nan
        if step.logits is not None and step.targets is not None:
            acc = hits(_float32(step.logits).numpy(), step.targets.numpy()) / step.targets.shape[0]
        glob[0], glob[1] = step.loss.item(), acc
        if layers.old:
            torch._foreach_copy_(layers.old, layers.weights)  # for ‖Δw‖ after the step
        self._norms = [None] * layers.L

    def _write_norms(self, row: np.ndarray, step: Step) -> None:
        """‖∇w‖, the activation gradient's norm and ‖w‖ into ``row``: from the squares the
        hooks took where they are of the gradients as they are now, else taken now."""
        L = self.layers.L
        acts = self.taken.act_grads if step.act_grads else []
        if self._one_call and acts and all(len(refs) == 1 for refs in acts):  # (one call)
            each = zip(step.grads, acts, self.layers.weights, row[:, _NORMS], strict=True)
            for g, (a,), w, out in each:
                layer_norms(g.numpy(), a.numpy(), w.detach().numpy(), out)
            return
        hooked = all(  # the hooks' norms are of the gradients as they are now
            n is not None and n[2] is g and n[3] == v
            for n, g, v, on in zip(
                self._norms, step.grads, step.versions, self._hooked, strict=True
            )
            if on
        )
        items: list[torch.Tensor] = []
        layers = zip(self.layers.weights, step.grads, self._norms, self._hooked, strict=True)
        for w, g, kept, on in layers:  # (a layer without a hook: taken now)
            items += kept[:2] if hooked and on else (w, g)  # type: ignore[index]
        squared = [t.dim() == 0 for t in items]  # (a weight or gradient is never 0-d)
        for refs in acts:  # every piece's activation gradient, or its square (in the hooks)
            items += refs
            squared += [g.dim() == 0 for g in refs]
        roots = self._norms_of(items, squared)
        row[:, COL["weight_norm"]] = roots[0 : 2 * L : 2]
        row[:, COL["grad_norm"]] = roots[1 : 2 * L : 2]
        at = 2 * L
        for i, refs in enumerate(acts):  # over an RNN's time steps
            pieces, at = roots[at : at + len(refs)], at + len(refs)
            row[i, COL["act_grad_norm"]] = math.sqrt(sum(r**2 for r in pieces))

    def _norms_of(self, items: list[torch.Tensor], squared: list[bool]) -> list[float]:
        """‖t‖ of each item, as floats; a ``squared`` item is a hook's ‖t‖². Tensors below
        HOOKED_BYTES go to one ``_foreach_norm`` (a small model's step pays per call: nine
        dots and their roots cost it ~80 µs); larger ones to BLAS's dot (``_square``)."""
        small = [
            not sq and t.dtype == torch.float32 and t.numel() * 4 < self.HOOKED_BYTES
            for t, sq in zip(items, squared, strict=True)
        ]
        norms = [t for t, s in zip(items, small, strict=True) if s]
        squares = [
            t if sq else _square(t) for t, sq, s in zip(items, squared, small, strict=True) if not s
        ]
        out = iter(torch.stack(torch._foreach_norm(norms)).tolist() if norms else [])
        roots = iter(_roots(squares))
        return [next(out) if s else next(roots) for s in small]


def _append_square(refs: list[torch.Tensor]):
    """A gradient hook keeping the gradient's squared norm, taken while it is hot in cache."""

    def hook(grad: torch.Tensor) -> None:
        refs.append(_square(grad))

    return hook
