"""The Probe: taps on a model's layers, a ring buffer, no host sync per step.

Per probed step the trainer calls ``arm()`` before the forward pass, ``collect()`` after
backward (before the optimizer step) and ``after_step()`` after it. The model's ``Tap``s hand
the probe each layer's pre-activation and activation input (any other module: a forward hook).

The probe owns what every path shares: the taps and their checks, the first ``collect``, which
reads each layer's range once to fix the histogram edges for the run, the ring (normcore.ring)
of one row per probed step, ‖Δw‖ in ``after_step`` (unless plain SGD's lr·‖∇w‖ already gave
it) and ``flush()``, which reads the ring and turns all its rows into Frame layers at once.
How a step becomes a row is its recorder's, chosen once when the probe is built
(normcore.probe.recorder: ``path``): ``HostRecorder`` on a CPU (compiled kernels, in the taps
while hot in cache), ``DeviceRecorder`` on a GPU (one batch of torch kernels replayed as a
CUDA graph). Nothing reads a device value on the host until ``flush``, except that first
``collect``.

Statistics and their edge cases (NaN, inf, constant layers) are documented in normcore.stats.
All hidden layers of a model must have equal shapes (ours do), so one ``stack`` batches them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from normcore.frames import LayersLater
from normcore.probe import kernels
from normcore.probe.device_recorder import DeviceRecorder
from normcore.probe.frame_numbers import COL, FIELDS, FlushLayers, display_counts, layer_table
from normcore.probe.graphs import GraphReplay
from normcore.probe.host_recorder import HostRecorder
from normcore.probe.recorder import PATHS, Layers, Recorder, Step, Taken
from normcore.probe.ring import Ring
from normcore.probe.stats import choose_edges
from normcore.probe.taps import ProbePoint, Reader

RECORDERS: dict[str, type[Recorder]] = {
    path: cls for cls in (HostRecorder, DeviceRecorder) for path in cls.PATHS
}  # every path of PATHS (tests/normcore/test_recorders.py)


def resolve_path(path: str | None, device: torch.device) -> str:
    """The recorder's path: ``path`` checked, or the device's own when None (CUDA: staged,
    for its graphs; a CPU with numba: in-hooks; anything else: torch)."""
    if path is None:
        if device.type == "cuda":
            return "staged"
        return "in-hooks" if device.type == "cpu" and kernels.AVAILABLE else "torch"
    if path not in RECORDERS:
        raise ValueError(f"path: one of {', '.join(PATHS)}; not {path!r}")
    if RECORDERS[path] is HostRecorder and (device.type != "cpu" or not kernels.AVAILABLE):
        raise ValueError(
            f"path {path!r}: the compiled kernels need a CPU and numba; got device {device}, "
            f"numba {'present' if kernels.AVAILABLE else 'missing'}"
        )
    return path


class Probe:
    """Probes for a model's ``ProbePoint``s; ``rows`` probed steps fit before a flush.
    ``path`` picks the recorder (normcore.probe.recorder.PATHS; None: ``resolve_path``)."""

    def __init__(
        self,
        points: list[ProbePoint],
        *,
        activation: str,
        bins: int = 64,
        rows: int = 32,
        device: torch.device | str = "cpu",
        optimizer: torch.optim.Optimizer | None = None,
        path: str | None = None,
        digits: int | None = None,
    ) -> None:
        self.points, self.names = points, [p.name for p in points]
        self.digits = digits  # frames' floats rounded as the wire keeps them (layer_table)
        self.L, self.bins, self.rows, self.activation = len(points), bins, rows, activation
        self.device = torch.device(device)
        path = resolve_path(path, self.device)
        self.layers = Layers(points, self.device, optimizer)
        self.weights = self.layers.weights
        self.taken = Taken(self.L)
        self.recorder = RECORDERS[path](self.layers, self.taken, path)
        self.armed = False
        self._clear = True  # nothing taken since the last disarm
        self.ring: Ring | None = None  # built at the first collect (needs the slot count)
        self._pre_version = [0] * self.L  # of each pre tap's tensor when its hook saw it
        self._seen = [0] * self.L  # values of the probed step each layer's act tap saw
        self._trouble: list[str] = []  # what the hooks could not measure (raised by collect)
        self._grad_versions: list[tuple[torch.Tensor, int]] = []  # of collect's gradients
        self.n = 0  # values per layer and step (fixed by the first probe)
        self.shapes: tuple[tuple[int, ...], ...] = ()  # ... and the pieces' shapes
        self.optimizer = optimizer
        self._handles: list = []
        for i, p in enumerate(points):
            # pre first: where pre and act are one module (no norm), its readers run in order
            self._handles.append(Reader(p.pre, self._on_pre(i)))
            self._handles.append(Reader(p.act, self._on_act(i)))
            if self.recorder.hooks_weight(p.weight):
                self._handles.append(p.weight.register_post_accumulate_grad_hook(self._on_grad(i)))
        # Δw where the optimizer needs it after its step (a captured CUDA graph on a GPU)
        self._finish_graph = GraphReplay(self._finish, self.device)
        self._after: dict = {}  # after_step's case and tensors, while _finish runs
        self.first: np.ndarray | None = None  # display histogram of the first probe
        self.prev: np.ndarray | None = None

    # hooks. Nothing here raises: a problem is kept in _trouble and raised by collect,
    # outside the forward pass. The recorder takes what they pass on before any later
    # in-place op can rewrite it: it measures it there or copies it (normcore.probe.recorder).
    def _on_pre(self, i: int):
        def hook(out):
            if self.armed:
                if not isinstance(out, torch.Tensor):
                    return self._problem(
                        i, f"its module returned {type(out).__name__}, not a tensor"
                    )
                self.taken.pres[i].append(out)
                self._pre_version[i] = out._version

        return hook

    def _on_act(self, i: int):
        def hook(out):
            if not self.armed:
                return
            if not isinstance(out, torch.Tensor):
                return self._problem(i, f"its module returned {type(out).__name__}, not a tensor")
            taken = self.taken
            if not taken.pres[i]:
                return self._problem(i, "its norm ran without its linear layer before it")
            pre = taken.pres[i][-1]  # the pre tap fired just before (each time step)
            same = pre is out
            if not same and pre._version != self._pre_version[i]:
                return self._problem(
                    i, "its linear layer's output was changed in place before its norm read it"
                )
            taken.same[i] &= same
            off, m = self._seen[i], out.numel()
            self._seen[i] = off + m
            if self.recorder.stats is not None and off + m > self.n:
                return  # the wrong size: collect names it
            trouble = self.recorder.take(i, out, pre, same, off)
            if trouble is not None:
                self._trouble.append(trouble)

        return hook

    def _problem(self, i: int, what: str) -> None:
        self._trouble.append(f"layer {self.names[i]}: {what}")

    def _on_grad(self, i: int):
        def hook(w):
            if self.armed:
                self.recorder.weight_grad(i, w)

        return hook

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()

    def arm(self) -> None:
        """The next forward/backward is a probed step."""
        if not self._clear:  # (after collect it is: a small step pays per call)
            self.disarm()
        self.recorder.arm()
        self.armed, self._clear = True, False

    def disarm(self) -> None:
        """The armed step ends without ``collect`` (it raised): drop what the taps took."""
        self.armed = False
        self.taken.clear()
        self._seen, self._trouble = [0] * self.L, []
        self._clear = True

    def drop_row(self) -> None:
        """Forget the step ``collect`` wrote last (``after_step`` not yet called)."""
        self.ring.drop_row()  # type: ignore[union-attr]
        self._grad_versions.clear()

    def _setup(self) -> None:
        acts = self.taken.acts
        idle = [name for name, refs in zip(self.names, acts, strict=True) if not refs]
        if idle:
            raise ValueError(
                f"layer {', '.join(idle)}: its module never ran in the probed "
                f"step (a module whose parent uses only its weights, such as "
                f"MultiheadAttention's out_proj, is never called)"
            )
        shapes = {tuple(t.shape) for refs in acts for t in refs}
        if len(shapes) != 1:
            raise ValueError(
                f"probed layers {', '.join(self.names)} need equal shapes; got {sorted(shapes)}"
            )
        n = sum(t.numel() for t in acts[0])
        self.shapes = tuple(tuple(t.shape) for t in acts[0])
        ranges = [torch.stack(refs).nan_to_num(0.0, 0.0, 0.0).aminmax() for refs in acts]
        vmin, vmax = (torch.stack(v).double().cpu().numpy() for v in zip(*ranges, strict=True))
        edges = choose_edges(vmin, vmax, self.activation)  # the one host read, at setup
        self.edges, self.n = edges, n
        stats = self.recorder.setup(edges, n, self.bins, self.activation)
        self.ring = Ring(self.rows, self.L, stats.S, len(FIELDS), self.device)

    @classmethod
    def joined(cls, probes: list[Probe]) -> Probe:
        """One probe for the layers of ``probes``, alike (host recorders, equal shapes, the
        same activation, bins and rows) and flushed since their first probed step: their
        edges and display references carry over, their hooks are removed. What a Watch does
        once it knows its layers' shapes: a probe's per-step cost is mostly per probe, not
        per layer (collect, the norms, Δw)."""
        p0 = probes[0]
        alike = {
            (type(p.recorder), p.recorder.path, p.shapes, p.activation, p.bins, p.rows, p.digits)
            for p in probes
        }
        if len(alike) != 1 or type(p0.recorder) is not HostRecorder:
            raise ValueError(f"probes to join must be alike host probes; got {sorted(alike)}")
        if any(p.first is None or p.ring is None or p.ring.count for p in probes):
            raise ValueError("probes join after their first flush, with no rows held")
        joined = cls(
            [point for p in probes for point in p.points],
            activation=p0.activation,
            bins=p0.bins,
            rows=p0.rows,
            device=p0.device,
            optimizer=p0.optimizer,
            path=p0.recorder.path,
            digits=p0.digits,
        )
        for p in probes:
            p.close()
        joined.edges, joined.n, joined.shapes = (
            np.concatenate([p.edges for p in probes]),
            p0.n,
            p0.shapes,
        )
        stats = joined.recorder.setup(joined.edges, joined.n, joined.bins, joined.activation)
        joined.ring = Ring(joined.rows, joined.L, stats.S, len(FIELDS), joined.device)
        joined.first, joined.prev = (
            _joined([getattr(p, ref) for p in probes]) for ref in ("first", "prev")
        )
        return joined

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
        stats = self.recorder.stats
        first = stats is None
        if stats is None:
            self._setup()
        else:  # a layer that never ran, or ran with another batch size
            for i, got in enumerate(self._seen):
                if got != self.n:
                    raise stats._size_error(i, got)
        self.recorder.backward_done()
        grads = [w.grad if w.grad is not None else torch.zeros_like(w) for w in self.weights]
        self._grad_versions = [(g, g._version) for g in grads]
        step = Step(
            grads=grads,
            versions=[v for _, v in self._grad_versions],
            first=first,
            same=all(self.taken.same),
            act_grads=all(self.taken.act_grads),
            loss=loss.detach(),
            logits=None if logits is None else logits.detach(),
            targets=targets,
        )
        self.recorder.record(step, self.ring)  # type: ignore[arg-type]
        self.disarm()  # (the step's tensors: not held into the next step)
        self.ring.count += 1  # type: ignore[union-attr]  # (here: a graph replays no Python)

    def after_step(self, ics: torch.Tensor | None = None) -> None:
        """After the optimizer step: ‖Δw‖ (and the ICS columns when measured) into the row
        ``collect`` wrote. Plain SGD whose gradients did not change since has it already."""
        opt, lr, inputs = self.layers.sgd, None, []
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
        if case != "ready" or ics is not None:  # (no_grad here only: a small step pays ~4 µs)
            self._after = dict(case=case, lr=lr, d=inputs, ics=ics)
            with torch.no_grad():
                self._finish_graph([*inputs, ics], (case, lr))
        # hold no tensor of this step into the next: the allocator then reuses its blocks and
        # the next step's tensors land where this step's did
        self._after, self._grad_versions = {}, []

    def _finish(self) -> None:
        """Δw (and ICS) into the ring's last row, index - 1 on the device (a graph on a GPU)."""
        after, ring, old = self._after, self.ring, self.layers.old
        assert ring is not None
        last = ring.index - 1
        update = None
        if after["case"] == "norm":
            update = torch.stack(torch._foreach_norm(after["d"])) * after["lr"]
        elif after["case"] == "diff":
            torch._foreach_sub_(old, self.weights)  # old - new
            update = torch.stack(torch._foreach_norm(old))
        if update is not None:
            column = ring.scal[..., COL["update_norm"]]  # (rows, L)
            column.index_copy_(0, last, update[None].to(column.dtype))
        if after["ics"] is not None:
            columns = ring.scal[..., COL["ics_l2"] : COL["ics_cos"] + 1]  # (rows, L, 2)
            columns.index_copy_(0, last, after["ics"][None].to(columns.dtype))

    def full(self) -> bool:
        return self.ring is not None and self.ring.full()

    def flush(
        self, later: bool = False
    ) -> list[tuple[list[dict] | LayersLater, float, float, Any]]:
        """Copy the used rows to the host (one sync) -> [(layers, loss, acc, ics)] in order.
        ``later``: each step's layers as ``LayersLater``, built where a frame is encoded
        (``FlushLayers``): a flush then costs the training process a copy of its rows."""
        if self.ring is None or self.ring.count == 0:
            return []
        hist, scal, glob = self.ring.read()
        flush = FlushLayers(
            self.names,
            self.edges,
            hist.copy() if later else hist,  # (the ring's rows are written again)
            scal.copy() if later else scal,
            self.n,
            self.bins,
            self.first,
            self.prev,
            self.activation,
            self.digits,
        )
        if later:
            steps: list = [LayersLater(flush, j) for j in range(len(hist))]
            display = display_counts(hist, self.bins)
        else:
            steps, display = flush.steps(), flush.table().display
        return self._rows(steps, display, scal, glob)

    def _rows(self, steps: list, display: np.ndarray, scal, glob) -> list[tuple]:
        """``flush``'s answer from the Frame layers of the rows read, each step's ``display``
        counts (k, L, bins + 2) and the rows' columns; the display counts become references."""
        if self.first is None:
            self.first = display[0]
        self.prev = display[-1]
        out = []
        measured = np.isfinite(scal[:, :, COL["ics_cos"]]).any(1).tolist()  # (ICS, per row)
        for k, layers in enumerate(steps):
            ics = None
            if measured[k]:
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


def flush_together(probes: list[Probe]) -> list[list[tuple]]:
    """Each probe's ``flush()``, with the Frame layers of all of them built by one
    ``layer_table``: its ~40 array operations cost about as much for one layer as for many,
    and a Watch of a whole model holds a probe per layer shape. Every operation there is per
    layer row, so each layer's numbers are those its own flush gives. Probes that differ in
    rows held, bins, activation, digits or references (none yet, or some) flush one by one."""
    rings = [p.ring for p in probes]
    alike = {
        (r.count if r else 0, p.bins, p.activation, p.digits, p.first is None, p.prev is None)
        for p, r in zip(probes, rings, strict=True)
    }
    if len(probes) < 2 or len(alike) != 1 or not all(r and r.count for r in rings):
        return [p.flush() for p in probes]
    reads = [r.read() for r in rings]  # type: ignore[union-attr]
    hist, scal = (np.concatenate([read[i] for read in reads], axis=1) for i in (0, 1))
    first, prev = (_joined([getattr(p, ref) for p in probes]) for ref in ("first", "prev"))
    p0 = probes[0]
    table = layer_table(
        [name for p in probes for name in p.names],
        np.concatenate([p.edges for p in probes]),
        hist,
        scal,
        np.repeat([p.n for p in probes], [p.L for p in probes]),  # values per layer
        p0.bins,
        first,
        prev,
        p0.activation,
        p0.digits,
    )
    steps, display = table.layers(), table.display
    out, at = [], 0
    for p, (_, part, glob) in zip(probes, reads, strict=True):
        rows = slice(at, at + p.L)
        layers = [step[rows] for step in steps]
        out.append(p._rows(layers, display[:, rows], part, glob))
        at += p.L
    return out


def _joined(refs: list[np.ndarray | None]) -> np.ndarray | None:
    """The probes' display references as one (all None before their first flush: alike)."""
    return None if refs[0] is None else np.concatenate(refs)  # type: ignore[arg-type]
