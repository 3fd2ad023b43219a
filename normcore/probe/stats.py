"""What a probe measures of a layer: device kernels into staging buffers, one row a step.

``LayerStats`` measures the activation inputs (and pre-activations) of L equally shaped
layers: saturation, a histogram, the centred sums, min and max. It never syncs. A GPU pays
per kernel launch, so all layers go in one batch of torch kernels (one ``histc`` over
layer-offset slots, float32 reductions); a CPU pays per pass over memory, so each layer goes
through the compiled kernels of normcore.probe.kernels (three passes, float64 sums), one piece at a
time from the probe's hooks while it is still in cache (``layer``).
A row's layout (``FIELDS``, ``FINE``) and how host copies of the rows become Frame layers
are ``normcore.probe.frame_numbers``'; ``normcore.probe.probe`` wires both to a model's hooks.

Histogram: ``bins`` equal half-open bins [a, b) on fixed edges [lo, hi] per layer, chosen once
from the first probed batch (its finite range widened by half its span on each side, and at
least the activation's useful range ``ACT_RANGE``), plus underflow (x < lo) and overflow
(x >= hi). Internally every bin is split into ``FINE`` sub-bins; the display counts are sums.

Saturation: the fraction of a layer's values in the activation's saturated region — sigmoid
|x| > 4.356 and tanh |x| > 2.178, where the derivative has fallen below 5% of its maximum
(σ' < 0.0125, tanh' < 0.05; the same point, since σ(x) = (1 + tanh(x/2))/2); relu and gelu
x <= 0 (dead units). ``sat`` reads the activation's input, ``sat_pre`` the pre-activation
before the norm. It counts over all values: ±inf lies in the saturated region (−inf only, for
relu/gelu), NaN in none.

Edge cases (never raised on): NaN and ±inf are counted in ``nonfinite`` and kept out of the
histogram, mean, std and percentiles, which describe the finite values (std is the population
std). Mean and std come from sums of d = x − c in float32, c the centre of the layer's edges
(relative error ~1e-6·(1 + (mean − c)²/std²); the CPU kernels sum d in float64). Min and max
are exact in the CPU kernels; torch's batch (a GPU, or a CPU without numba) takes them over
d with non-finite values as 0, a bracket that includes the centre. A layer with no finite
values reports None for those; a constant layer (min = max, or a spread below 1e-6 of its
rms: float32 resolution) has std 0 and exact percentiles (clipping to [min, max]). An empty
layer (N = 0) is rejected when the probe is built, and a later step whose layer holds more or
fewer than the first probed step's N values is an error naming both (its fractions would be
of the wrong N): probe a model with a fixed batch size (the trainer drops partial batches).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from normcore.probe import kernels
from normcore.probe.frame_numbers import FIELDS, FINE

SAT_THRESHOLD = {"sigmoid": 4.356, "tanh": 2.178}  # f'(x) < 5% of max f' beyond these
DEAD_AT_ZERO = ("relu", "gelu")  # saturated = dead: x <= 0
ACT_RANGE = {"sigmoid": 8.0, "tanh": 4.0, "relu": 4.0, "gelu": 4.0}  # edges cover ±this


def choose_edges(vmin: np.ndarray, vmax: np.ndarray, activation: str) -> np.ndarray:
    """(L, 2) fixed [lo, hi] per layer from the first batch's finite range (see module doc)."""
    reach = ACT_RANGE[activation]
    ok = np.isfinite(vmin) & np.isfinite(vmax)
    vmin, vmax = np.where(ok, vmin, 0.0), np.where(ok, vmax, 0.0)
    span = vmax - vmin
    lo = np.minimum(-reach, vmin - span / 2)
    hi = np.maximum(reach, vmax + span / 2)
    return np.stack([lo, hi], axis=1).astype(np.float64)


STAT_FIELDS = FIELDS[:7]  # the columns LayerStats fills; the probe adds the rest
_EMPTY_ROW = np.array([{"min": math.inf, "max": -math.inf}.get(f, 0.0) for f in STAT_FIELDS])
PART_VALUES = 1 << 16  # CPU: fewer values per thread cost more to hand out than they save


class LayerStats:
    """The statistics of L equally shaped layers into staging buffers ``hist`` (L, S) and
    ``cols`` (L, len(STAT_FIELDS)), with preallocated scratch.

    ``__call__(acts, pres)`` takes per layer the list of tensors holding its values (one per
    time step for an RNN) for the activation inputs and, where they differ, the
    pre-activations. On a CPU (``kernel``) each layer goes through the compiled kernels of
    normcore.probe.kernels, and ``layer(i, act, pre)`` adds one piece of layer i as soon as it
    exists, while it is hot in cache (``reset`` first). Elsewhere all L layers go in one
    batch of torch kernels (a GPU pays per launch); ``kernel=False`` runs that path on a CPU.
    The model's tensors are only read.
    """

    def __init__(
        self,
        edges: np.ndarray,
        n: int,
        bins: int,
        activation: str,
        device,
        kernel: bool | None = None,
        names: list[str] | None = None,
    ) -> None:
        if n < 1:
            raise ValueError(f"a probed layer must hold values; got {n} per layer")
        self.names = names or [str(i) for i in range(len(edges))]  # for errors
        device = self.device = torch.device(device)
        self.L, self.n, self.bins, self.activation = len(edges), n, bins, activation
        self.fine = bins * FINE
        self.S = self.fine + 3  # slots: under, fine bins, over, non-finite
        lo, hi = (torch.tensor(edges[:, i], dtype=torch.float32, device=device) for i in (0, 1))
        self.centre = ((lo + hi) / 2)[:, None]  # statistics of x - centre: no cancellation
        self.scale = (self.fine / (hi - lo))[:, None]  # 1 / fine-bin width
        self.kernel = device.type == "cpu" and kernels.AVAILABLE if kernel is None else kernel
        if self.kernel and (device.type != "cpu" or not kernels.AVAILABLE):
            raise ValueError(
                f"the compiled kernels need a CPU and numba; got device {device}, "
                f"numba {'present' if kernels.AVAILABLE else 'missing'}"
            )
        self.hist = torch.zeros(self.L, self.S, device=device)
        self.cols = torch.zeros(self.L, len(STAT_FIELDS), dtype=torch.float64, device=device)
        if self.kernel:
            k = np.float32(self.fine / 2 + 1)  # the slot of the centre
            centres, scales = self.centre[:, 0].tolist(), self.scale[:, 0].tolist()
            self._args = [
                (np.float32(c), np.float32(s), k, self.fine)
                for c, s in zip(centres, scales, strict=True)
            ]
            dead = activation in DEAD_AT_ZERO
            self._sat = (np.float32(SAT_THRESHOLD.get(activation, 0.0)), dead)
            # a layer in parts, one per thread torch may use, of at least PART_VALUES each
            parts = max(1, min(torch.get_num_threads(), n // PART_VALUES))
            self._kernel = kernels.accumulate_parallel if parts > 1 else kernels.accumulate
            self._slots = np.empty(n, dtype=np.int32)
            counts = np.empty((parts, 4, self.S), dtype=np.int32)
            self._scratch = (
                counts,
                np.empty((parts, self.S), dtype=np.float32),
                np.empty((parts, len(STAT_FIELDS))),
            )
            self._centres = np.array([a[0] for a in self._args], dtype=np.float32)
            self._scales = np.array([a[1] for a in self._args], dtype=np.float32)
            self._hist, self._cols = self.hist.numpy(), self.cols.numpy()  # shared memory
            self._seen = np.zeros(self.L, dtype=np.int64)  # values added to each row
            self.reset()
        else:
            self.x, self.scratch = (torch.empty(self.L, n, device=device) for _ in range(2))
            self.offset = (torch.arange(self.L, device=device) * self.S)[:, None]
            self.pre: torch.Tensor | None = None  # allocated when first needed
            self.d: torch.Tensor | None = None

    def reset(self) -> None:
        """Empty every row before ``layer`` adds a step's pieces (the kernel path)."""
        self._hist[:] = 0.0  # numpy views: two calls of ~1 µs
        self._cols[:] = _EMPTY_ROW
        self._seen[:] = 0

    def _size_error(self, i: int, got: int) -> ValueError:
        return ValueError(
            f"layer {self.names[i]} holds {got} values in this probed step; the "
            f"probe was built for {self.n} (its first probed step's): keep the "
            f"batch size and sequence length fixed while probing"
        )

    def check_sizes(self, acts: list[list[torch.Tensor]]) -> None:
        """Each layer's pieces hold n values in all (shapes only: no sync)."""
        for i, pieces in enumerate(acts):
            if (got := sum(t.numel() for t in pieces)) != self.n:
                raise self._size_error(i, got)

    def require_complete(self) -> None:
        """Every row holds exactly n values (its fractions divide by n)."""
        for i, got in enumerate(self._seen.tolist()):
            if got != self.n:
                raise self._size_error(i, got)

    def __call__(self, acts: list[list[torch.Tensor]], pres: list[list[torch.Tensor]] | None):
        """All layers; returns the staging buffers (hist, cols)."""
        if self.kernel:
            self.reset()
            for i, pieces in enumerate(acts):
                for j, act in enumerate(pieces):
                    self.layer(i, act, None if pres is None else pres[i][j])
            self.require_complete()
            return self.hist, self.cols
        self.check_sizes(acts)
        x, owned = _gather(acts, self.x)
        pre = None
        if pres is not None:
            if self.pre is None:
                self.pre = torch.empty_like(self.x)
            pre = _gather(pres, self.pre)[0]
        self._batch(x, owned, pre, slice(0, self.L))
        return self.hist, self.cols

    def rows(
        self, x: torch.Tensor, pre: torch.Tensor | None, hist: np.ndarray, cols: np.ndarray
    ) -> bool:
        """All L layers from rows of (L, n) float32 buffers (the deferred path's staging rows,
        each a layer's values of the step) in one kernel call, written anew into ``hist``
        (L, S) and ``cols`` (L, len(STAT_FIELDS)), a ring's row -> done; False where a layer
        goes in parts (more than one thread: ``layer`` splits it)."""
        if self._kernel is not kernels.accumulate:
            return False
        xs = x.numpy()
        kernels.accumulate_rows(
            xs,
            xs if pre is None else pre.numpy(),
            pre is None,
            self._centres,
            self._scales,
            *self._args[0][2:],
            *self._sat,
            self._slots,
            *self._scratch,
            _EMPTY_ROW,
            hist,
            cols,
        )
        return True

    def layer(self, i: int, act: torch.Tensor, pre: torch.Tensor | None) -> None:
        """Add one piece of layer i (its activation input, and its pre-activation where that
        differs) to row i: the compiled kernels, on a CPU (see normcore.probe.kernels)."""
        x = _flat_values(act)
        p = x if pre is None else _flat_values(pre)
        seen = int(self._seen[i]) + x.size
        if seen > self.n:  # (the kernels' scratch holds n values)
            raise self._size_error(i, seen)
        if p.size != x.size:
            raise ValueError(
                f"layer {self.names[i]}: the pre-activation holds {p.size} "
                f"values, the activation input {x.size}"
            )
        self._seen[i] = seen
        self._kernel(
            x,
            p,
            pre is None,
            *self._args[i],
            *self._sat,
            self._slots,
            *self._scratch,
            self._hist[i],
            self._cols[i],
        )

    def _saturated(self, x: torch.Tensor) -> torch.Tensor:
        """(c,) count of values in the saturated region (±inf are, NaN is not)."""
        s = self.scratch[: len(x)]
        if self.activation in DEAD_AT_ZERO:
            torch.le(x, 0.0, out=s)  # 1.0 / 0.0: float sums are fast, bool sums are not
        else:
            torch.gt(torch.abs(x, out=s), SAT_THRESHOLD[self.activation], out=s)
        return s.sum(1)

    def _histogram(self, d: torch.Tensor, rows: slice) -> None:
        """Slot counts of d = x - centre into hist (``histc`` skips NaN: the non-finite slot
        is what it did not count)."""
        c, S, s = len(d), self.S, self.scratch[: len(d)]
        # slot units: lo -> 1.0 (the first fine bin), centre -> fine/2 + 1; clamped into
        # [0.5, fine + 1.5], so under is slot 0 and over slot fine + 1 once floored
        torch.mul(d, self.scale[rows], out=s).add_(self.fine / 2 + 1).clamp_(0.5, self.fine + 1.5)
        out = self.hist[rows]
        torch.histc(s.add_(self.offset[:c]), c * S, 0, c * S, out=out.view(-1))
        out[:, -1] = self.n - out.sum(1)

    def _batch(self, x: torch.Tensor, owned: bool, pre: torch.Tensor | None, rows: slice):
        """x, pre: (c, n); x may be the model's own tensor (then only read) unless ``owned``."""
        sat = self._saturated(x)
        sat_pre = sat if pre is None else self._saturated(pre)
        nan = float("nan")
        centre = self.centre[rows]
        if owned:
            d = x.sub_(centre)
        else:
            if self.d is None:
                self.d = torch.empty_like(self.x)
            d = torch.sub(x, centre, out=self.d[: len(x)])
        self._histogram(d.nan_to_num_(nan, nan, nan), rows)  # non-finite: all NaN
        d.nan_to_num_(0.0)  # non-finite values add nothing to the sums
        total, vmin, vmax = d.sum(1), d.amin(1), d.amax(1)  # min/max: a bracket (centre incl.)
        sumsq = d.square_().sum(1)  # in place: a fresh temporary costs more than the pass
        c = centre[:, 0]
        bad = self.hist[rows, -1]
        torch.stack(
            [bad, total, sumsq, vmin + c, vmax + c, sat, sat_pre], dim=1, out=self.cols[rows]
        )  # the order of STAT_FIELDS


def _flat_values(t: torch.Tensor) -> np.ndarray:
    """A float32 numpy view of t's values, flat (a copy only of a piece that is not
    contiguous or float32). numpy reshapes in a fraction of torch's per-call time."""
    t = t.detach()
    return (t if t.dtype == torch.float32 else t.float()).numpy().reshape(-1)


def _gather(layers: list[list[torch.Tensor]], buf: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """The layers' values as (len(layers), n): a view of a lone contiguous float32 tensor (not
    owned), else stacked into the first rows of ``buf`` (owned: free to overwrite)."""
    lone = layers[0][0]
    if len(layers) == len(layers[0]) == 1 and lone.is_contiguous() and lone.dtype == buf.dtype:
        return lone.view(1, -1), False
    flat = [t.to(buf.dtype) for tensors in layers for t in tensors]  # (no copy when float32)
    rows = buf[: len(layers)]
    torch.stack(flat, out=rows.view(len(flat), *flat[0].shape))
    return rows, True
