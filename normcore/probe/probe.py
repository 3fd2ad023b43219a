"""Device-side probes: taps, batched statistics, a ring buffer, no host sync per step.

Per probed step the trainer calls ``arm()`` before the forward pass, ``collect()`` after
backward (before the optimizer step) and ``after_step()`` after it. The model's ``Tap``s hand
the probe each layer's pre-activation and activation input (any other module: a forward hook).

On a GPU, which pays per kernel launch and per host-side dispatch, the taps only keep tensor
references; ``collect`` copies the step's tensors into fixed buffers (a stack of the layers,
one foreach norm of all gradients, the loss and logits) and replays one captured CUDA graph
(normcore.graphs) of all the statistics of ``normcore.stats.LayerStats`` and the row writes:
a few launches instead of about seventy. On a CPU, which pays per pass over memory, the taps
hand each layer (an RNN's: each time step) to ``LayerStats.layer``, compiled kernels, while
its tensors are still hot in cache, and the norms of a weight and its gradient are taken the
moment backward has written the gradient; ``collect`` then writes the row through numpy.
Each probed step fills one row of the ring (normcore.ring); ‖Δw‖ comes in ``after_step``
unless plain SGD's lr·‖∇w‖ already gave it. Nothing reads a device value on the host until
``flush()`` reads the ring and turns all its rows into Frame layers at once, except the first
``collect``, which reads each layer's range once to fix the histogram edges for the run.

Statistics and their edge cases (NaN, inf, constant layers) are documented in normcore.stats.
All hidden layers of a model must have equal shapes (ours do), so one ``stack`` batches them.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from normcore.norms import norm_affine
from normcore.probe.graphs import GraphReplay
from normcore.probe.kernels import hits, row_moments
from normcore.probe.ring import Ring
from normcore.probe.stats import COL, FIELDS, STAT_FIELDS, LayerStats, choose_edges, layer_frames
from normcore.probe.taps import ProbePoint, Reader


def _norm(t: torch.Tensor) -> torch.Tensor:
    """‖t‖ as √⟨t, t⟩: BLAS's dot reads a 4 MB weight from L3 ~25% faster than vector_norm,
    and a 1 MB activation gradient in cache 2× faster (float32 sums: a norm above ~1e19
    reads as inf, where it no longer matters)."""
    flat = t.reshape(-1)
    return torch.dot(flat, flat).sqrt()


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

    def __init__(
        self,
        points: list[ProbePoint],
        *,
        activation: str,
        bins: int = 64,
        rows: int = 32,
        device: torch.device | str = "cpu",
        optimizer: torch.optim.Optimizer | None = None,
    ) -> None:
        self.points, self.names = points, [p.name for p in points]
        self.L, self.bins, self.rows, self.activation = len(points), bins, rows, activation
        self.device = torch.device(device)
        self.weights: list[torch.Tensor] = [p.weight for p in points]
        self.gains, self.shifts = zip(*(norm_affine(p.affine) for p in points), strict=True)
        self.armed = False
        self.ring: Ring | None = None  # built at the first collect (needs the slot count)
        self._acts: list[list[torch.Tensor]] = [[] for _ in points]  # tap outputs, per layer
        self._pres: list[list[torch.Tensor]] = [[] for _ in points]
        self._act_grads: list[list[torch.Tensor]] = [[] for _ in points]  # or their norms
        self._pre_version = [0] * self.L  # of each pre tap's tensor when its hook saw it
        self._same = [True] * self.L  # pre-activation is the activation input (no norm)
        self._seen = [0] * self.L  # values of the probed step each layer's act tap saw
        self._trouble: list[str] = []  # what the hooks could not measure (raised by collect)
        self.n = 0  # values per layer and step (fixed by the first probe)
        self._x: torch.Tensor | None = None  # deferred path: staging rows (L, n) (_keep)
        self._pre: torch.Tensor | None = None
        self._handles: list = []
        for i, p in enumerate(points):
            # pre first: where pre and act are one module (no norm), its readers run in order
            self._handles.append(Reader(p.pre, self._on_pre(i)))
            self._handles.append(Reader(p.act, self._on_act(i)))
            if self.device.type == "cpu":  # see _on_grad
                self._handles.append(p.weight.register_post_accumulate_grad_hook(self._on_grad(i)))
        # CPU (eager): ‖w‖ and ‖∇w‖ as soon as backward has written ∇w (w was just read for
        # the input's gradient): both are still in cache, and read from memory they cost
        # twice as much. (gradient, its version) says the gradient was not changed since.
        self._norms: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, int] | None]
        self._norms = [None] * len(points)
        self._sgd = _plain_sgd(optimizer)
        self._old = [] if self._sgd else [torch.empty_like(w) for w in self.weights]
        self.stats: LayerStats | None = None  # built at the first collect (needs N and edges)
        # on a GPU a step's statistics, and Δw where the optimizer needs it after its step,
        # replay captured CUDA graphs (normcore.graphs)
        self._record_graph = GraphReplay(self._record, self.device)
        self._finish_graph = GraphReplay(self._finish, self.device)
        self._now: dict = {}  # the step's tensors, while _record or _finish runs
        self.staged = self.device.type == "cuda"  # inputs copied to fixed buffers (_stage)
        self.in_hooks = True  # CPU: measure each layer in its tap, while hot in cache
        self.eager = False  # ... from the second probe on (the first one fixes the edges)
        self.first: np.ndarray | None = None  # display histogram of the first probe
        self.prev: np.ndarray | None = None

    # hooks. A later in-place op (ReLU(inplace=True), a residual ``+=``) rewrites a layer's
    # output after its hook: statistics are taken in the hook (kernels) or of a copy made
    # there (the first probe; the deferred path copies into its staging rows, where the GPU
    # path stacked the tensors at collect anyway). Nothing here raises: a problem is kept
    # in _trouble and raised by collect, outside the forward pass.
    def _on_pre(self, i: int):
        def hook(out):
            if self.armed:
                if not isinstance(out, torch.Tensor):
                    return self._problem(
                        i, f"its module returned {type(out).__name__}, not a tensor"
                    )
                self._pres[i].append(out)
                self._pre_version[i] = out._version

        return hook

    def _on_act(self, i: int):
        def hook(out):
            if not self.armed:
                return
            if not isinstance(out, torch.Tensor):
                return self._problem(i, f"its module returned {type(out).__name__}, not a tensor")
            if not self._pres[i]:
                return self._problem(i, "its norm ran without its linear layer before it")
            pre = self._pres[i][-1]  # the pre tap fired just before (each time step)
            same = pre is out
            if not same and pre._version != self._pre_version[i]:
                return self._problem(
                    i, "its linear layer's output was changed in place before its norm read it"
                )
            self._same[i] &= same
            off, m = self._seen[i], out.numel()
            self._seen[i] = off + m
            if self.stats is not None and off + m > self.n:
                return  # the wrong size: collect names it
            if self.eager:
                self._pres[i].clear()
                try:
                    self.stats.layer(i, out, None if same else pre)  # type: ignore[union-attr]
                except ValueError as exc:  # (its message names the layer)
                    self._trouble.append(str(exc))
                    return
                if out.requires_grad:
                    out.register_hook(self._on_act_grad(i))
                return
            x = self._keep(out, self._x, i, off)
            self._acts[i].append(x)
            self._pres[i][-1] = x if same else self._keep(pre, self._pre_rows(), i, off)
            if out.requires_grad:
                out.register_hook(self._act_grads[i].append)

        return hook

    def _keep(self, t: torch.Tensor, rows: torch.Tensor | None, i: int, off: int):
        """A piece as it is now: a clone (the first probe, before the rows exist), else
        copied into row i of the staging rows at ``off``."""
        if rows is None:
            return t.detach().clone()
        return rows[i, off : off + t.numel()].view(t.shape).copy_(t.detach())

    def _pre_rows(self) -> torch.Tensor | None:
        """The staging rows of pre-activations (allocated when a layer first needs them)."""
        if self.stats is None:
            return None
        if self._pre is None:
            assert self._x is not None  # allocated with the stats, at setup
            self._pre = torch.empty_like(self._x)
            if not self.stats.kernel:
                self.stats.pre = self._pre
        return self._pre

    def _problem(self, i: int, what: str) -> None:
        self._trouble.append(f"layer {self.names[i]}: {what}")

    def _on_grad(self, i: int):
        def hook(w):
            if self.armed and self.eager:
                g = w.grad
                gn = _norm(g)  # just written: first
                self._norms[i] = (_norm(w.detach()), gn, g, g._version)

        return hook

    def _on_act_grad(self, i: int):
        def hook(grad):
            self._act_grads[i].append(_norm(grad))  # while hot in cache

        return hook

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()

    def arm(self) -> None:
        """The next forward/backward is a probed step."""
        self.disarm()
        self._norms = [None] * self.L
        if self.eager:
            self.stats.reset()  # type: ignore[union-attr]
        self.armed = True

    def disarm(self) -> None:
        """The armed step ends without ``collect`` (it raised): drop what the taps took."""
        self.armed = False
        for lists in (self._acts, self._pres, self._act_grads):
            for refs in lists:
                refs.clear()
        self._same, self._seen, self._trouble = [True] * self.L, [0] * self.L, []

    def drop_row(self) -> None:
        """Forget the step ``collect`` wrote last (``after_step`` not yet called)."""
        self.ring.drop_row()  # type: ignore[union-attr]
        self._now = {}
        self._grad_versions.clear()

    def _setup(self) -> None:
        idle = [name for name, refs in zip(self.names, self._acts, strict=True) if not refs]
        if idle:
            raise ValueError(
                f"layer {', '.join(idle)}: its module never ran in the probed "
                f"step (a module whose parent uses only its weights, such as "
                f"MultiheadAttention's out_proj, is never called)"
            )
        shapes = {tuple(t.shape) for refs in self._acts for t in refs}
        if len(shapes) != 1:
            raise ValueError(
                f"probed layers {', '.join(self.names)} need equal shapes; got {sorted(shapes)}"
            )
        n = sum(t.numel() for t in self._acts[0])
        ranges = [torch.stack(refs).nan_to_num(0.0, 0.0, 0.0).aminmax() for refs in self._acts]
        vmin, vmax = (torch.stack(v).double().cpu().numpy() for v in zip(*ranges, strict=True))
        edges = choose_edges(vmin, vmax, self.activation)  # the one host read, at setup
        self.edges, self.n = edges, n
        kernel = False if self.staged else None  # (a CPU may test the GPU's staged path)
        self.stats = LayerStats(
            edges, n, self.bins, self.activation, self.device, kernel, self.names
        )
        self.eager = self.stats.kernel and self.in_hooks
        dev = self.device
        if not self.eager:  # the deferred path copies each step's layers here (_keep)
            self._x = torch.empty(self.L, n, device=dev) if self.stats.kernel else self.stats.x
        self.ring = Ring(self.rows, self.L, self.stats.S, len(FIELDS), dev)
        self._nan = torch.full((self.L,), float("nan"), dtype=torch.float64, device=dev)
        # the step's rows before they enter the ring (torch's path)
        self._row = torch.empty(self.L, len(FIELDS), dtype=torch.float64, device=dev)
        self._glob = torch.empty(2, dtype=torch.float64, device=dev)
        # staging for the GPU's captured graph (see _stage)
        self._norm_buf = torch.empty(self.L * (1 + len(self._acts[0])), device=dev)
        self._inputs: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def collect(
        self,
        loss: torch.Tensor,
        logits: torch.Tensor | None = None,
        targets: torch.Tensor | None = None,
    ) -> None:
        """After backward, before the optimizer step: the step's statistics, on the device.
        ``logits`` (B, K) and ``targets`` (B,) give the batch accuracy (NaN without them)."""
        self.armed = False
        if self.full():
            raise RuntimeError(f"all {self.rows} rows of the probe are in use: flush() first")
        if self._trouble:
            raise ValueError(
                f"{'; '.join(dict.fromkeys(self._trouble))}: watch a module "
                f"whose output is the tensor to measure"
            )
        first = self.stats is None
        if first:
            self._setup()
        else:  # a layer that never ran, or ran with another batch size
            for i, got in enumerate(self._seen):
                if got != self.n:
                    raise self.stats._size_error(i, got)  # type: ignore[union-attr]
        grads = [w.grad if w.grad is not None else torch.zeros_like(w) for w in self.weights]
        self._grad_versions = [(g, g._version) for g in grads]
        norms = self._norms  # taken in the hooks (CPU), if the gradients did not change since
        hooked = all(
            n is not None and n[2] is g and n[3] == v
            for n, (g, v) in zip(norms, self._grad_versions, strict=True)
        )
        same = all(self._same)
        loss = loss.detach()
        logits = None if logits is None else logits.detach()
        self._now = dict(
            grads=grads,
            hooked=hooked,
            same=same,
            first=first,
            loss=loss,
            logits=logits,
            targets=targets,
            act_grads=all(self._act_grads),
        )
        lr = self._sgd.param_groups[0]["lr"] if self._sgd else None
        if self.staged and not first:
            self._stage()
            now = self._now  # the graph reads these fixed buffers (and parameters) only
            staged = [now[k] for k in ("x", "pre", "grad_norm", "loss", "logits", "targets")]
            self._record_graph([*staged, now.get("act_norms")], (same, now["act_grads"], lr))
        elif self.stats.kernel:  # type: ignore[union-attr]
            self._record_host()
        else:
            self._record()
        self._norms = [None] * self.L
        self.disarm()  # (the step's tensors: not held into the next step)
        self.ring.count += 1  # type: ignore[union-attr]  # (here: a graph replays no Python)

    def _staged_rows(self, same: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The staging rows the hooks filled: (x, pre), pre None when no layer has a norm; a
        norm-free layer among normed ones gets its activation row as its pre row."""
        assert self._x is not None
        if same:
            return self._x, None
        pre = self._pre_rows()
        assert pre is not None
        for i, alone in enumerate(self._same):
            if alone:
                pre[i].copy_(self._x[i])
        return self._x, pre

    def _stage(self) -> None:
        """GPU: the step's tensors into fixed buffers, so one captured graph serves every step
        (a few copies and norms, eager; the dozens of statistics kernels then replay)."""
        now, stats = self._now, self.stats
        assert stats is not None
        now["x"], now["pre"] = self._staged_rows(now["same"])
        act = [g for ts in self._act_grads for g in ts] if now["act_grads"] else []
        tensors = [*now["grads"], *act]  # one foreach kernel for both kinds of norm
        torch.stack(torch._foreach_norm(tensors), out=self._norm_buf[: len(tensors)])
        now["grad_norm"] = self._norm_buf[: self.L]
        if act:
            now["act_norms"] = self._norm_buf[self.L : len(tensors)]
        for name in ("loss", "logits", "targets"):
            value = now[name]
            if value is not None:
                buf = self._inputs.get(name)
                if buf is None or buf.shape != value.shape or buf.dtype != value.dtype:
                    buf = self._inputs[name] = torch.empty_like(value)
                now[name] = buf.copy_(value)

    def _record(self) -> None:
        """The step's statistics into the ring's next row (a CUDA graph on a GPU, reading the
        buffers ``_stage`` filled; elsewhere straight from the step's tensors)."""
        now, stats = self._now, self.stats
        assert stats is not None
        if "x" in now:  # staged: every layer in one batch, on copies it may overwrite
            stats._batch(now["x"], True, now["pre"], slice(0, self.L))
        elif now["first"]:  # the first probe's clones (a layer that never ran raised)
            stats(self._acts, None if now["same"] else self._pres)
        else:  # the layers the hooks copied into the staging rows: one batch
            x, pre = self._staged_rows(now["same"])
            stats._batch(x, True, pre, slice(0, self.L))
        cols = dict(zip(STAT_FIELDS, stats.cols.unbind(1), strict=True))
        # (norms taken in the hooks exist on the kernel path only: _record_host reads them)
        cols["weight_norm"] = torch.stack(torch._foreach_norm(self.weights))
        grad_norm = now.get("grad_norm")  # staged
        if grad_norm is None:
            grad_norm = torch.stack(torch._foreach_norm(now["grads"]))
        cols["grad_norm"] = grad_norm
        if "act_norms" in now:
            act = now["act_norms"]
        elif now["act_grads"]:  # every layer's activation gradient was seen
            act = torch.stack(torch._foreach_norm([g for ts in self._act_grads for g in ts]))
        if now["act_grads"]:
            cols["act_grad_norm"] = act.view(self.L, -1).square().sum(1).sqrt()  # over time
        for prefix, params in (("g", self.gains), ("b", self.shifts)):
            if params[0] is not None:
                std, mean = torch.std_mean(torch.stack(list(params)), dim=1, correction=0)
                cols[f"{prefix}_mean"], cols[f"{prefix}_std"] = mean, std
        if (lr := self._sgd_lr()) is not None:
            cols["update_norm"] = grad_norm * lr
        # one kernel writes the whole row; columns filled later (Δw, ICS) start as NaN
        torch.stack([cols.get(name, self._nan) for name in FIELDS], dim=1, out=self._row)
        logits, targets = now["logits"], now["targets"]
        acc = self._nan[0]
        if logits is not None and targets is not None:
            acc = (logits.argmax(1) == targets).float().mean()
        torch.stack([now["loss"], acc.to(now["loss"].dtype)], out=self._glob)
        if self._old:
            torch._foreach_copy_(self._old, self.weights)  # for ‖Δw‖ after the step
        self.ring.write(stats.hist, self._row, self._glob)  # type: ignore[union-attr]

    def _sgd_lr(self) -> float | None:
        """lr where plain SGD makes Δw = -lr·∇w (if ∇w stays: after_step checks), else None."""
        plain = self._sgd and not self._sgd.param_groups[0]["momentum"]
        return self._sgd.param_groups[0]["lr"] if plain else None  # type: ignore[union-attr]

    def _record_host(self) -> None:
        """CPU: the row of ``_record``, written into the ring's own memory through numpy
        views and compiled kernels: reading a CPU tensor is no sync, and a small model's step
        is short enough that each of ``_record``'s ~40 torch calls shows (237 → 130 µs a step
        for a 3×100 MLP). The same columns; accuracy and the g/b moments are summed in float64
        here, in float32 there."""
        now, stats = self._now, self.stats
        assert stats is not None
        if any(self._acts) or not self.eager:  # the first probe, or measured after backward
            stats(self._acts, None if now["same"] else self._pres)
        else:
            stats.require_complete()  # in the hooks: every piece of every layer came
        hist, row, glob = self.ring.host_row()  # type: ignore[union-attr]
        hist[:] = stats.hist.numpy()
        row[:, len(STAT_FIELDS) :] = math.nan  # columns with no value (yet: Δw, ICS)
        row[:, : len(STAT_FIELDS)] = stats.cols.numpy()
        if now["hooked"]:
            norms = [(float(n[0]), float(n[1])) for n in self._norms]  # type: ignore[index]
        else:
            norms = [
                (float(_norm(w)), float(_norm(g)))
                for w, g in zip(self.weights, now["grads"], strict=True)
            ]
        row[:, COL["weight_norm"]], row[:, COL["grad_norm"]] = zip(*norms, strict=True)
        if now["act_grads"]:  # every piece's activation gradient, or its norm (in hooks)
            row[:, COL["act_grad_norm"]] = [
                math.sqrt(sum(float(g if g.dim() == 0 else _norm(g)) ** 2 for g in refs))
                for refs in self._act_grads
            ]  # over an RNN's time steps
        for prefix, params in (("g", self.gains), ("b", self.shifts)):
            if params[0] is not None:
                values = torch.stack(list(params)).float().numpy()  # (numpy has no bfloat16)
                row_moments(values, row[:, COL[f"{prefix}_mean"]], row[:, COL[f"{prefix}_std"]])
        if (lr := self._sgd_lr()) is not None:
            row[:, COL["update_norm"]] = row[:, COL["grad_norm"]] * lr
        logits, targets = now["logits"], now["targets"]
        acc = math.nan
        if logits is not None and targets is not None:
            acc = hits(logits.float().numpy(), targets.numpy()) / len(targets)
        glob[:] = float(now["loss"]), acc
        if self._old:
            torch._foreach_copy_(self._old, self.weights)  # for ‖Δw‖ after the step

    @torch.no_grad()
    def after_step(self, ics: torch.Tensor | None = None) -> None:
        """After the optimizer step: ‖Δw‖ (and the ICS columns when measured) into the row
        ``collect`` wrote. Plain SGD whose gradients did not change since has it already."""
        opt, lr, inputs = self._sgd, None, []
        if opt is None:
            case = "diff"  # any other optimizer: the difference to the copy taken before
        elif opt.param_groups[0]["momentum"]:  # Δw = -lr·(momentum buffer)
            case, lr = "norm", opt.param_groups[0]["lr"]
            inputs = [opt.state[w]["momentum_buffer"] for w in self.weights]
        elif all(
            w.grad is g and g._version == v
            for w, (g, v) in zip(self.weights, self._grad_versions, strict=True)
        ):
            case = "ready"  # the gradients collect() measured: Δw = lr·‖∇w‖ is in the row
        else:  # changed since (clipped): Δw = -lr·(the gradient now)
            case, lr = "norm", opt.param_groups[0]["lr"]
            inputs = [w.grad if w.grad is not None else torch.zeros_like(w) for w in self.weights]
        if case != "ready" or ics is not None:
            self._now = dict(case=case, lr=lr, d=inputs, ics=ics)
            self._finish_graph([*inputs, ics], (case, lr))
        # hold no tensor of this step into the next: the allocator then reuses its blocks and
        # the next step's tensors land where this step's did
        self._now, self._grad_versions = {}, []

    def _finish(self) -> None:
        """Δw (and ICS) into the ring's last row, index - 1 on the device (a graph on a GPU)."""
        now, ring = self._now, self.ring
        assert ring is not None
        last = ring.index - 1
        update = None
        if now["case"] == "norm":
            update = torch.stack(torch._foreach_norm(now["d"])) * now["lr"]
        elif now["case"] == "diff":
            torch._foreach_sub_(self._old, self.weights)  # old - new
            update = torch.stack(torch._foreach_norm(self._old))
        if update is not None:
            column = ring.scal[..., COL["update_norm"]]  # (rows, L)
            column.index_copy_(0, last, update[None].to(column.dtype))
        if now["ics"] is not None:
            columns = ring.scal[..., COL["ics_l2"] : COL["ics_cos"] + 1]  # (rows, L, 2)
            columns.index_copy_(0, last, now["ics"][None].to(columns.dtype))

    def full(self) -> bool:
        return self.ring is not None and self.ring.full()

    def flush(self) -> list[tuple[list[dict], float, float, list[dict] | None]]:
        """Copy the used rows to the host (one sync) -> [(layers, loss, acc, ics)] in order."""
        if self.ring is None or self.ring.count == 0:
            return []
        hist, scal, glob = self.ring.read()
        steps, display = layer_frames(
            self.names,
            self.edges,
            hist,
            scal,
            self.n,
            self.bins,
            self.first,
            self.prev,
            self.activation,
        )
        if self.first is None:
            self.first = display[0]
        self.prev = display[-1]
        out = []
        for k, layers in enumerate(steps):
            ics = None
            if np.isfinite(scal[k, :, COL["ics_cos"]]).any():
                ics = [
                    dict(
                        name=name,
                        l2=float(scal[k, i, COL["ics_l2"]]),
                        cos=float(scal[k, i, COL["ics_cos"]]),
                    )
                    for i, name in enumerate(self.names)
                ]
            out.append((layers, float(glob[k, 0]), float(glob[k, 1]), ics))
        return out
