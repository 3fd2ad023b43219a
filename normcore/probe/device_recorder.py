"""The GPU's recorder: all layers in one batch of torch kernels, replayed as a CUDA graph.

A GPU pays per kernel launch and per host-side dispatch, so the taps only copy each layer
into staging rows (normcore.probe.recorder) and ``record`` measures all layers at once. On the
``staged`` path (CUDA's default) it first copies the rest of the step's inputs into fixed
buffers (one foreach norm of all gradients, the loss, logits and targets), so one captured
CUDA graph (normcore.probe.graphs) of all the statistics of ``LayerStats`` and the row writes
serves every step: a few launches instead of about seventy. The ``torch`` path runs the same
statistics eagerly on the step's own tensors (a CPU without numba). Sums are float32 here,
float64 in ``HostRecorder``. Nothing reads the device on the host.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from normcore.probe.frame_numbers import FIELDS
from normcore.probe.graphs import GraphReplay
from normcore.probe.recorder import Layers, Recorder, Step, Taken
from normcore.probe.ring import Ring
from normcore.probe.stats import STAT_FIELDS, LayerStats


class DeviceRecorder(Recorder):
    """Paths ``staged`` (fixed buffers, a CUDA graph on a GPU) and ``torch`` (eager)."""

    PATHS = ("torch", "staged")

    def __init__(self, layers: Layers, taken: Taken, path: str) -> None:
        super().__init__(layers, taken, path)
        self.staged = path == "staged"
        self.graph = GraphReplay(self._record, layers.device)  # off CUDA: runs eagerly
        self._step: Step | None = None  # the step, while _record runs
        self._staged: dict[str, torch.Tensor] = {}  # its fixed buffers (_stage), if staged
        self._ring: Ring | None = None
        self._inputs: dict[str, torch.Tensor] = {}  # fixed buffers of loss, logits, targets

    def setup(self, edges: np.ndarray, n: int, bins: int, activation: str) -> LayerStats:
        layers, dev = self.layers, self.layers.device
        self.stats = LayerStats(edges, n, bins, activation, dev, False, layers.names)
        self._x = self.stats.x  # the taps copy each step's layers where the batch reads them
        self._nan = torch.full((layers.L,), float("nan"), dtype=torch.float64, device=dev)
        # the step's rows before they enter the ring
        self._row = torch.empty(layers.L, len(FIELDS), dtype=torch.float64, device=dev)
        self._glob = torch.empty(2, dtype=torch.float64, device=dev)
        # the norms of the gradients, and of the activation gradients of each piece (_stage)
        self._norm_buf = torch.empty(layers.L * (1 + len(self.taken.acts[0])), device=dev)
        return self.stats

    def _new_pre_rows(self) -> torch.Tensor:
        pre = super()._new_pre_rows()
        self.stats.pre = pre  # type: ignore[union-attr]  # (the batch's own buffer: one)
        return pre

    def record(self, step: Step, ring: Ring) -> None:
        self._ring = ring
        if self.staged and not step.first:
            self._step, self._staged = self._stage(step)
            s, staged = self._step, self._staged  # the graph reads these fixed buffers only
            inputs = [staged["x"], staged.get("pre"), staged["grad_norm"]]
            inputs += [s.loss, s.logits, s.targets, staged.get("act_norms")]
            sgd = self.layers.sgd  # (its lr is baked into the graph: update_norm)
            lr = sgd.param_groups[0]["lr"] if sgd else None
            self.graph(inputs, (s.same, s.act_grads, lr))
        else:
            self._step = step
            self._record()
        self._step, self._staged = None, {}  # (no tensor of this step held into the next)

    def _staged_rows(self, same: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The staging rows the taps filled: (x, pre), pre None when no layer has a norm; a
        norm-free layer among normed ones gets its activation row as its pre row."""
        assert self._x is not None
        if same:
            return self._x, None
        pre = self._pre_rows()
        assert pre is not None
        for i, alone in enumerate(self.taken.same):
            if alone:
                pre[i].copy_(self._x[i])
        return self._x, pre

    def _stage(self, step: Step) -> tuple[Step, dict[str, torch.Tensor]]:
        """The step's tensors into fixed buffers, so one captured graph serves every step
        (a few copies and norms, eager; the dozens of statistics kernels then replay)."""
        L = self.layers.L
        staged: dict[str, torch.Tensor] = {}
        x, pre = self._staged_rows(step.same)
        staged["x"] = x
        if pre is not None:
            staged["pre"] = pre
        act = [g for ts in self.taken.act_grads for g in ts] if step.act_grads else []
        tensors = [*step.grads, *act]  # one foreach kernel for both kinds of norm
        torch.stack(torch._foreach_norm(tensors), out=self._norm_buf[: len(tensors)])
        staged["grad_norm"] = self._norm_buf[:L]
        if act:
            staged["act_norms"] = self._norm_buf[L : len(tensors)]
        logits, targets = step.logits, step.targets
        fixed = replace(
            step,
            loss=self._fixed("loss", step.loss),
            logits=None if logits is None else self._fixed("logits", logits),
            targets=None if targets is None else self._fixed("targets", targets),
        )
        return fixed, staged

    def _fixed(self, name: str, value: torch.Tensor) -> torch.Tensor:
        """``value`` copied into the fixed buffer ``name`` (made anew if its shape changed)."""
        buf = self._inputs.get(name)
        if buf is None or buf.shape != value.shape or buf.dtype != value.dtype:
            buf = self._inputs[name] = torch.empty_like(value)
        return buf.copy_(value)

    def _record(self) -> None:
        """The step's statistics into the ring's next row (a CUDA graph on a GPU, reading the
        buffers ``_stage`` filled; elsewhere straight from the step's tensors)."""
        step, staged, stats, ring = self._step, self._staged, self.stats, self._ring
        assert step is not None and stats is not None and ring is not None
        layers, taken, L = self.layers, self.taken, self.layers.L
        if staged:  # every layer in one batch, on copies it may overwrite
            stats._batch(staged["x"], True, staged.get("pre"), slice(0, L))
        elif step.first:  # the first probe's clones (a layer that never ran raised)
            stats(taken.acts, None if step.same else taken.pres)
        else:  # the layers the taps copied into the staging rows: one batch
            x, pre = self._staged_rows(step.same)
            stats._batch(x, True, pre, slice(0, L))
        cols = dict(zip(STAT_FIELDS, stats.cols.unbind(1), strict=True))
        cols["weight_norm"] = torch.stack(torch._foreach_norm(layers.weights))
        grad_norm = staged.get("grad_norm")
        if grad_norm is None:
            grad_norm = torch.stack(torch._foreach_norm(step.grads))
        cols["grad_norm"] = grad_norm
        if "act_norms" in staged:
            act = staged["act_norms"]
        elif step.act_grads:  # every layer's activation gradient was seen
            act = torch.stack(torch._foreach_norm([g for ts in taken.act_grads for g in ts]))
        if step.act_grads:
            cols["act_grad_norm"] = act.view(L, -1).square().sum(1).sqrt()  # over time
        for prefix, params in (("g", layers.gains), ("b", layers.shifts)):
            if params[0] is not None:
                std, mean = torch.std_mean(torch.stack(list(params)), dim=1, correction=0)
                cols[f"{prefix}_mean"], cols[f"{prefix}_std"] = mean, std
        if (lr := layers.sgd_lr()) is not None:
            cols["update_norm"] = grad_norm * lr
        # one kernel writes the whole row; columns filled later (Δw, ICS) start as NaN
        torch.stack([cols.get(name, self._nan) for name in FIELDS], dim=1, out=self._row)
        acc = self._nan[0]
        if step.logits is not None and step.targets is not None:
            acc = (step.logits.argmax(1) == step.targets).float().mean()
        torch.stack([step.loss, acc.to(step.loss.dtype)], out=self._glob)
        if layers.old:
            torch._foreach_copy_(layers.old, layers.weights)  # for ‖Δw‖ after the step
        ring.write(stats.hist, self._row, self._glob)
