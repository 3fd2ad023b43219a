"""Device-side probes: hooks, batched statistics, a ring buffer, no host sync per step.

Per probed step the trainer calls ``arm()`` before the forward pass, ``collect()`` after
backward (before the optimizer step) and ``after_step()`` after it. On a GPU the hooks on the
model's taps only keep tensor references and ``collect`` does the batched work of
``normcore.stats.LayerStats`` over all layers at once (a GPU pays per launch). On a CPU (which
pays per pass over memory) the hooks hand each layer to ``LayerStats.layer`` as soon as its
tensors exist, still hot in cache, and keep nothing alive through backward, when a layer
fills the cache on its own; smaller layers go in cache-sized batches (fewer ops), as do RNN
layers, whose taps fire once per time step. Weights and gradients: on such a CPU their norms
are taken in a hook the moment backward has written the gradient (both still in cache),
else by ``torch._foreach_norm`` in ``collect``; one row of a preallocated device ring
buffer is written.
Nothing reads a device value on the host until ``flush()``, which copies the used rows to
(pinned, on CUDA) host memory with ``non_blocking=True`` and turns them into Frame layers.
The one exception is the first ``collect``, which reads each layer's range once to fix the
histogram edges for the whole run.

Statistics and their edge cases (NaN, inf, constant layers) are documented in normcore.stats.
All hidden layers of a model must have equal shapes (ours do), so one ``stack`` batches them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from normcore.norms import norm_affine
from normcore.stats import COL, FIELDS, STAT_FIELDS, LayerStats, choose_edges, layer_frames


@dataclass
class ProbePoint:
    """One hidden layer as the probes see it (the model builds these)."""

    name: str  # "h1", "h2", ...
    pre: nn.Module  # a tap whose output is the pre-activation before the norm
    act: nn.Module  # a tap whose output is the activation's input
    weight: nn.Parameter  # the layer's weight (WN: its direction v)
    affine: nn.Module  # where the norm's g, b live (normcore.norms.norm_affine)


def _plain_sgd(optimizer: torch.optim.Optimizer | None) -> torch.optim.SGD | None:
    """The optimizer when its step is exactly w -= lr·d (SGD, heavy-ball momentum or none, no
    weight decay, dampening or Nesterov): then ‖Δw‖ = lr·‖d‖ without copying the weights."""
    if not isinstance(optimizer, torch.optim.SGD) or len(optimizer.param_groups) != 1:
        return None
    g = optimizer.param_groups[0]
    plain = not (g["weight_decay"] or g["dampening"] or g["nesterov"] or g["maximize"])
    return optimizer if plain else None


class Probe:
    """Probes for a model's ``ProbePoint``s; ``rows`` probed steps fit before a flush."""

    def __init__(self, points: list[ProbePoint], *, activation: str, bins: int = 64,
                 rows: int = 32, device: torch.device | str = "cpu",
                 optimizer: torch.optim.Optimizer | None = None) -> None:  # fmt: skip
        self.points, self.names = points, [p.name for p in points]
        self.L, self.bins, self.rows, self.activation = len(points), bins, rows, activation
        self.device = torch.device(device)
        self.weights: list[torch.Tensor] = [p.weight for p in points]
        self.gains, self.shifts = zip(*(norm_affine(p.affine) for p in points), strict=True)
        self.armed, self.count = False, 0
        self._acts: list[list[torch.Tensor]] = [[] for _ in points]  # tap outputs, per layer
        self._pres: list[list[torch.Tensor]] = [[] for _ in points]
        self._act_grads: list[list[torch.Tensor]] = [[] for _ in points]  # or their norms
        self._handles = []
        for i, p in enumerate(points):
            self._handles.append(p.act.register_forward_hook(self._on_act(i)))
            self._handles.append(p.pre.register_forward_hook(self._on_pre(i)))
            self._handles.append(p.weight.register_post_accumulate_grad_hook(self._on_grad(i)))
        # CPU (eager): ‖w‖ and ‖∇w‖ as soon as backward has written ∇w (w was just read for
        # the input's gradient): both are still in cache, and read from memory they cost
        # twice as much. (gradient, its version) says the gradient was not changed since.
        self._norms: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, int] | None]
        self._norms = [None] * len(points)
        self._sgd = _plain_sgd(optimizer)
        self._old = [] if self._sgd else [torch.empty_like(w) for w in self.weights]
        self.stats: LayerStats | None = None  # built at the first collect (needs N and edges)
        self.eager = False  # per layer in the hooks (CPU, one tensor per layer and step)
        self.first: np.ndarray | None = None  # display histogram of the first probe
        self.prev: np.ndarray | None = None

    # hooks: the tap outputs themselves, so "pre is act" tells a norm-free layer
    def _on_pre(self, i: int):
        def hook(module, args, out):
            if self.armed:
                self._pres[i].append(out)

        return hook

    def _on_act(self, i: int):
        def hook(module, args, out):
            if not self.armed:
                return
            if self.eager and out.is_contiguous():
                (pre,) = self._pres[i]
                with torch.no_grad():
                    self.stats.layer(i, out, None if pre is out else pre)  # type: ignore[union-attr]
                self._pres[i].clear()
                if out.requires_grad:
                    out.register_hook(self._on_act_grad(i))
                return
            self._acts[i].append(out)
            if out.requires_grad:
                out.register_hook(self._act_grads[i].append)

        return hook

    def _on_grad(self, i: int):
        def hook(w):
            if self.armed and self.eager:
                g = w.grad
                gn = torch.linalg.vector_norm(g)  # just written: first
                self._norms[i] = (torch.linalg.vector_norm(w), gn, g, g._version)

        return hook

    def _on_act_grad(self, i: int):
        def hook(grad):
            self._act_grads[i].append(torch.linalg.vector_norm(grad))  # while hot in cache

        return hook

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()

    def arm(self) -> None:
        """The next forward/backward is a probed step."""
        for lists in (self._acts, self._pres, self._act_grads):
            for refs in lists:
                refs.clear()
        self._norms = [None] * self.L
        self.armed = True

    def _setup(self) -> None:
        shapes = {tuple(t.shape) for refs in self._acts for t in refs}
        if len(shapes) != 1:
            raise ValueError(f"probed layers need equal shapes; got {sorted(shapes)}")
        n = sum(t.numel() for t in self._acts[0])
        ranges = [torch.stack(refs).nan_to_num(0.0, 0.0, 0.0).aminmax() for refs in self._acts]
        vmin, vmax = (torch.stack(v).double().cpu().numpy() for v in zip(*ranges, strict=True))
        edges = choose_edges(vmin, vmax, self.activation)  # the one host read, at setup
        self.edges, self.n = edges, n
        self.stats = LayerStats(edges, n, self.bins, self.activation, self.device)
        # per layer in the hooks only where a layer fills the cache on its own: small layers
        # are cheaper in one batch (fewer ops), and RNN taps fire once per time step
        self.eager = self.stats.chunk == 1 and len(self._acts[0]) == 1 and self.device.type == "cpu"
        dev, pin = self.device, self.device.type == "cuda"
        self.dev_hist = torch.zeros(self.rows, self.L, self.stats.S, device=dev)
        self.dev_scal = torch.full((self.rows, self.L, len(FIELDS)), float("nan"),
                                   dtype=torch.float64, device=dev)  # fmt: skip
        self._nan = torch.full((self.L,), float("nan"), dtype=torch.float64, device=dev)
        self.dev_glob = torch.zeros(self.rows, 2, dtype=torch.float64, device=dev)
        self.host = [torch.empty(t.shape, dtype=t.dtype, pin_memory=pin)
                     for t in (self.dev_hist, self.dev_scal, self.dev_glob)]  # fmt: skip

    @torch.no_grad()
    def collect(self, loss: torch.Tensor, acc: torch.Tensor) -> None:
        """After backward, before the optimizer step: one row of statistics, on the device."""
        self.armed = False
        if self.stats is None:
            self._setup()
        assert self.stats is not None
        r, L = self.count, self.L
        if any(self._acts):  # the batched path (GPU, RNN, the first probe)
            same = all(a is p for acts, pres in zip(self._acts, self._pres, strict=True)
                       for a, p in zip(acts, pres, strict=True))  # fmt: skip
            self.stats(self._acts, None if same else self._pres)
        self.dev_hist[r].copy_(self.stats.hist)
        cols = dict(zip(STAT_FIELDS, self.stats.cols.unbind(1), strict=True))
        grads = [w.grad if w.grad is not None else torch.zeros_like(w) for w in self.weights]
        self._grad_versions = [(g, g._version) for g in grads]
        norms = self._norms
        if all(n is not None and n[2] is g and n[3] == v
               for n, (g, v) in zip(norms, self._grad_versions, strict=True)):  # fmt: skip
            cols["weight_norm"] = torch.stack([n[0] for n in norms])  # type: ignore[index]
            self._grad_norm = torch.stack([n[1] for n in norms])  # type: ignore[index]
        else:
            cols["weight_norm"] = torch.stack(torch._foreach_norm(self.weights))
            self._grad_norm = torch.stack(torch._foreach_norm(grads))
        cols["grad_norm"] = self._grad_norm
        self._norms = [None] * L
        if all(self._act_grads):  # every layer's activation gradient was seen
            flat = [g for refs in self._act_grads for g in refs]  # (eager: already norms)
            act = torch.stack(flat if flat[0].dim() == 0 else torch._foreach_norm(flat))
            cols["act_grad_norm"] = act.view(L, -1).square().sum(1).sqrt()  # over time
        for prefix, params in (("g", self.gains), ("b", self.shifts)):
            if params[0] is not None:
                std, mean = torch.std_mean(torch.stack(list(params)), dim=1, correction=0)
                cols[f"{prefix}_mean"], cols[f"{prefix}_std"] = mean, std
        # one kernel writes the whole row; columns filled later (Δw, ICS) start as NaN
        torch.stack([cols.get(name, self._nan) for name in FIELDS], dim=1, out=self.dev_scal[r])
        torch.stack([loss.detach(), acc.detach()], out=self.dev_glob[r])
        if self._old:
            torch._foreach_copy_(self._old, self.weights)  # for ‖Δw‖ after the step
        for refs in (*self._acts, *self._pres, *self._act_grads):
            refs.clear()

    @torch.no_grad()
    def after_step(self, ics: torch.Tensor | None = None) -> None:
        """After the optimizer step: ‖Δw‖ (and the ICS columns when measured)."""
        row = self.dev_scal[self.count]
        if self._sgd:  # Δw = -lr·d exactly: d the gradient or the momentum buffer
            opt = self._sgd
            group = opt.param_groups[0]
            if group["momentum"]:
                d: list[torch.Tensor] = [opt.state[w]["momentum_buffer"] for w in self.weights]
                update = torch.stack(torch._foreach_norm(d)) * group["lr"]
            elif all(
                w.grad is g and g._version == v  # the gradients collect() measured,
                for w, (g, v) in zip(self.weights, self._grad_versions, strict=True)
            ):
                update = self._grad_norm * group["lr"]  # not clipped since: reuse ‖g‖
            else:
                grads = [
                    w.grad if w.grad is not None else torch.zeros_like(w) for w in self.weights
                ]
                update = torch.stack(torch._foreach_norm(grads))
                update *= group["lr"]
        else:  # any other optimizer: the difference to the copy taken before the step
            torch._foreach_sub_(self._old, self.weights)  # old - new
            update = torch.stack(torch._foreach_norm(self._old))
        row[:, COL["update_norm"]] = update
        if ics is not None:
            row[:, COL["ics_l2"] : COL["ics_cos"] + 1] = ics
        self.count += 1

    def full(self) -> bool:
        return self.count >= self.rows

    def flush(self) -> list[tuple[list[dict], float, float, list[dict] | None]]:
        """Copy the used rows to the host (one sync) -> [(layers, loss, acc, ics)] in order."""
        n, self.count = self.count, 0
        if n == 0:
            return []
        for dev, host in zip((self.dev_hist, self.dev_scal, self.dev_glob), self.host,
                             strict=True):  # fmt: skip
            host[:n].copy_(dev[:n], non_blocking=True)
        if self.device.type == "cuda":
            torch.cuda.current_stream(self.device).synchronize()
        hist, scal, glob = (h[:n].numpy() for h in self.host)
        out = []
        for k in range(n):
            layers, display = layer_frames(self.names, self.edges, hist[k], scal[k], self.n,
                                           self.bins, self.first, self.prev)  # fmt: skip
            if self.first is None:
                self.first = display
            self.prev = display
            ics = None
            if np.isfinite(scal[k, :, COL["ics_cos"]]).any():
                ics = [dict(name=name, l2=float(scal[k, i, COL["ics_l2"]]),
                            cos=float(scal[k, i, COL["ics_cos"]]))
                       for i, name in enumerate(self.names)]  # fmt: skip
            out.append((layers, float(glob[k, 0]), float(glob[k, 1]), ics))
        return out
