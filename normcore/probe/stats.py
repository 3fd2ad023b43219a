"""The per-layer statistics of a Frame: device kernels into staging buffers, then numpy.

``LayerStats`` measures the activation inputs (and pre-activations) of L equally shaped
layers: saturation, a histogram, the centred sums, min and max. It never syncs. A GPU pays
per kernel launch, so all layers go in one batch of torch kernels (one ``histc`` over
layer-offset slots, float32 reductions); a CPU pays per pass over memory, so each layer goes
through the compiled kernels of normcore.probe.kernels (three passes, float64 sums), one piece at a
time from the probe's hooks while it is still in cache (``layer``).
``layer_frames`` turns host copies of the rows into Frame layers (normcore.frames);
``normcore.probe.probe`` wires both to a model's hooks.

Histogram: ``bins`` equal half-open bins [a, b) on fixed edges [lo, hi] per layer, chosen once
from the first probed batch (its finite range widened by half its span on each side, and at
least the activation's useful range ``ACT_RANGE``), plus underflow (x < lo) and overflow
(x >= hi). Internally every bin is split into ``FINE`` sub-bins; the display counts are sums.

Percentiles (numpy's default 'linear' method) come from the fine histogram, not a sort: the
estimate interpolates inside the bucket holding rank q·(n−1) and is clipped to [min, max].
Error bound: |p̂ − p| <= width of the buckets holding the two order statistics numpy
interpolates between, i.e. one fine bin (hi − lo)/(bins·FINE) inside the edges (two when they
straddle a bin edge), and (lo − min) or (max − hi) in the under/over tails. Fine-bin
assignment is float32 arithmetic, exact to ~1e-3 of a fine bin at the edges; counts are
exact up to 2^24 values per layer and step.

Saturation: the fraction of a layer's values in the activation's saturated region — sigmoid
|x| > 4.356 and tanh |x| > 2.178, where the derivative has fallen below 5% of its maximum
(σ' < 0.0125, tanh' < 0.05; the same point, since σ(x) = (1 + tanh(x/2))/2); relu and gelu
x <= 0 (dead units). ``sat`` reads the activation's input, ``sat_pre`` the pre-activation
before the norm. It counts over all values: ±inf lies in the saturated region (−inf only, for
relu/gelu), NaN in none.

Graded saturation (``sat_graded``): 1 − the mean slope f′(x)/max f′ over the layer's
activation inputs, for sigmoid and tanh — how much of its peak slope the layer has lost, the
factor by which its units shrink the gradient passing back through them. ``sat``'s strict cut
misses the saturation Glorot & Bengio (2010, Fig. 2) describe: in their setting (4×300
sigmoid, standard init, Fashion-MNIST here, batch 10, SGD 0.1) the top layer's inputs sink to
about −3 within 2000 steps, every output below 0.1 and accuracy at chance for ~7000 steps,
while ``sat`` reads 0 throughout; ``sat_graded`` reads 0.77 there against 0.02–0.16 for the
lower layers (docs/saturation.md). ``out_mean`` and ``out_std`` are the mean and spread of the
activation's outputs f(x), the quantities of Glorot & Bengio's Fig. 2. All three come from the
fine histogram on the host (no device pass): each fine bin counts at its centre (error below
f″'s bound times half a fine bin: < 0.3 % of the peak slope at 32 bins), values under or over
the edges at the edge (the edges reach at least ``ACT_RANGE``, where the slope is below 0.2 %
of its peak), non-finite values as fully saturated (slope 0) and outside the output's mean.
For relu and gelu ``sat_graded`` is ``sat`` (the dead fraction) and the outputs, unbounded
beyond the edges, are not summarized (None).

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

import functools
import math
from collections.abc import Callable

import numpy as np
import torch

from normcore.drift import wasserstein1
from normcore.frames import round_sig
from normcore.probe import kernels

SAT_THRESHOLD = {"sigmoid": 4.356, "tanh": 2.178}  # f'(x) < 5% of max f' beyond these
DEAD_AT_ZERO = ("relu", "gelu")  # saturated = dead: x <= 0
ACT_RANGE = {"sigmoid": 8.0, "tanh": 4.0, "relu": 4.0, "gelu": 4.0}  # edges cover ±this
FINE = 8  # fine sub-bins per display bin (the percentiles' resolution)

# Columns of the per-layer float64 scalar row.
FIELDS = (
    "nonfinite",
    "sum",
    "sumsq",
    "min",
    "max",
    "sat",
    "sat_pre",
    "grad_norm",
    "act_grad_norm",
    "weight_norm",
    "update_norm",
    "g_mean",
    "g_std",
    "b_mean",
    "b_std",
    "ics_l2",
    "ics_cos",
)
COL = {name: i for i, name in enumerate(FIELDS)}


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


# the Frame layer's numbers, in wire order (normcore.frames); non-finite ones travel as None
LAYER_NUMBERS = (
    "mean",
    "std",
    "p15",
    "p50",
    "p85",
    "sat",
    "sat_pre",
    "grad_norm",
    "act_grad_norm",
    "weight_norm",
    "update_ratio",
    "g_mean",
    "g_std",
    "b_mean",
    "b_std",
    "w1_prev",
    "w1_first",
    "sat_graded",
    "out_mean",
    "out_std",
)


_LAYER_KEYS = ("name", "hist", "nonfinite", *LAYER_NUMBERS)  # a Frame layer's, in order


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1 + np.tanh(x / 2))  # no overflow for large |x|


def _sigmoid_slope(x: np.ndarray) -> np.ndarray:
    """σ'(x) / σ'(0) = 4 σ(x)(1 − σ(x)) = 1 − tanh²(x/2)."""
    return 1 - np.tanh(x / 2) ** 2


def _tanh_slope(x: np.ndarray) -> np.ndarray:
    return 1 - np.tanh(x) ** 2


# f and f'/max f' of the bounded activations, for the graded saturation (see module doc)
_BOUNDED: dict[str, tuple[Callable[[np.ndarray], np.ndarray], ...]] = {
    "sigmoid": (_sigmoid, _sigmoid_slope),
    "tanh": (np.tanh, _tanh_slope),
}


def graded(
    hist: np.ndarray, edges: np.ndarray, n: int | np.ndarray, fine: int, activation: str | None
):
    """(sat_graded, out_mean, out_std), each (k, L), from the fine histogram ``hist`` (k, L, S)
    of a sigmoid or tanh layer (see module doc); None for other activations."""
    if activation not in _BOUNDED:
        return None
    edges = np.ascontiguousarray(edges, np.float64)
    basis = _graded_basis(edges.tobytes(), len(edges), fine, activation)
    counts = hist[..., : fine + 2]  # the non-finite slot adds nothing: slope 0
    # each layer's rows times its basis, one matmul: the four sums of every (step, layer) at
    # once, where three products of the rows and their sums cost a flush ~1.4× as much
    rows = np.moveaxis(counts, 1, 0).astype(np.float64)  # (L, k, fine + 2)
    nf, sloped, s1, s2 = np.moveaxis(np.matmul(rows, basis), -1, 0).swapaxes(1, 2)  # (k, L)
    with np.errstate(invalid="ignore", divide="ignore"):
        lost = 1 - sloped / n
        mean = s1 / nf
        var = s2 / nf - mean**2
    return lost, mean, np.sqrt(np.maximum(var, 0.0))


@functools.lru_cache(maxsize=64)
def _graded_basis(edges: bytes, L: int, fine: int, activation: str) -> np.ndarray:
    """(L, fine + 2, 4): per slot 1, f'(x)/max f', f(x), f(x)² at the slot's centre x, for
    ``graded``'s sums. A run's edges are fixed at its first probe, so each flush of it
    finds this made (it was half of ``graded``'s time)."""
    f, slope = _BOUNDED[activation]
    bounds = np.frombuffer(edges, np.float64).reshape(L, 2)
    lo, w = bounds[:, :1], (bounds[:, 1:] - bounds[:, :1]) / fine
    # slot centres: under at lo, fine bins at their middles, over at hi -> (L, fine + 2)
    x = np.concatenate([lo, lo + (np.arange(fine) + 0.5) * w, bounds[:, 1:]], axis=1)
    y = f(x)
    basis = np.stack([np.ones_like(x), slope(x), y, y * y], axis=-1)
    basis.flags.writeable = False  # (shared by every caller)
    return basis


def layer_frames(
    names: list[str],
    edges: np.ndarray,
    hist: np.ndarray,
    scal: np.ndarray,
    n: int | np.ndarray,
    bins: int,
    first: np.ndarray | None,
    prev: np.ndarray | None,
    activation: str | None = None,
    digits: int | None = None,
) -> tuple[list[list[dict]], np.ndarray]:
    """Host rows of k probed steps, ``hist`` (k, L, S) and ``scal`` (k, L, len(FIELDS)) ->
    each step's Frame layers (see normcore.frames), and the display counts (k, L, bins+2).
    ``n``: values per layer and step, one for all layers or one each (L,).
    ``first``, ``prev``: the display counts of the run's first and of the previous probe (None
    before there was one: a probe is then its own reference, W1 0, or NaN with no values).
    ``activation`` names the graded saturation's f (None: those numbers are None).
    ``digits``: round every float as ``normcore.frames.clean`` would (``round_sig``), so a
    frame bound for the wire needs no walk through its layers (None: full precision).
    All k steps in one set of array operations: a flush costs the host little per frame."""
    k, L, fine = len(hist), len(names), bins * FINE
    get = dict(zip(FIELDS, np.moveaxis(scal, -1, 0), strict=True))  # each (k, L)
    display = display_counts(hist, bins)
    under, coarse, over = display[..., 0], display[..., 1:-1], display[..., -1]
    nf = n - get["nonfinite"]
    with np.errstate(invalid="ignore", divide="ignore"):
        shift = get["sum"] / nf  # sums are of x - centre, centre = (lo + hi) / 2
        meansq = get["sumsq"] / nf
        var = meansq - shift**2
        # min == max, or a spread below float32 resolution (1e-6 of the rms): constant
        flat = (get["max"] == get["min"]) | (var <= 1e-12 * meansq)
        pct = percentiles(
            hist.reshape(k * L, -1),
            np.tile(edges, (k, 1)),
            get["min"].ravel(),
            get["max"].ravel(),
            nf.ravel(),
            fine,
        )
        w = (edges[:, 1] - edges[:, 0]) / bins
        before = display[:1] if prev is None else prev[None]
        previous = np.concatenate([before, display[:-1]])
        reference = display[:1] if first is None else first[None]
        numbers = dict(
            mean=edges.mean(1) + shift,
            std=np.sqrt(np.where(flat, 0.0 * var, var)),
            p15=pct[0].reshape(k, L),
            p50=pct[1].reshape(k, L),
            p85=pct[2].reshape(k, L),
            sat=get["sat"] / n,
            sat_pre=get["sat_pre"] / n,
            update_ratio=get["update_norm"] / get["weight_norm"],
            w1_prev=wasserstein1(display, previous, w),
            w1_first=wasserstein1(display, reference, w),
        )
        soft = graded(hist, edges, n, fine, activation)
        if soft is not None:
            numbers.update(sat_graded=soft[0], out_mean=soft[1], out_std=soft[2])
        elif activation is not None:  # relu, gelu: the dead fraction is already graded
            numbers["sat_graded"] = numbers["sat"]
    none = np.full((k, L), np.nan)
    values = np.stack([numbers.get(key, get.get(key, none)) for key in LAYER_NUMBERS], axis=-1)
    if digits is not None:  # (the numbers are computed: from here on edges are only shown)
        values, edges = round_sig(values, digits), round_sig(edges, digits)
    # Python floats, None where not finite: one object array, not a test per number (a
    # flush of 32 steps builds hundreds of layers)
    boxed = values.astype(object)
    boxed[~np.isfinite(values)] = None
    values = boxed.tolist()
    counts, unders, overs, bad = (
        a.astype(np.int64).tolist() for a in (coarse, under, over, get["nonfinite"])
    )
    lo, hi = edges[:, 0].tolist(), edges[:, 1].tolist()
    steps = []
    for j in range(k):
        layers = []
        for i, name in enumerate(names):
            hist_i = dict(
                lo=lo[i], hi=hi[i], counts=counts[j][i], under=unders[j][i], over=overs[j][i]
            )
            cells = (name, hist_i, bad[j][i], *values[j][i])
            layers.append(dict(zip(_LAYER_KEYS, cells, strict=True)))
        steps.append(layers)
    return steps, display


def display_counts(hist: np.ndarray, bins: int) -> np.ndarray:
    """Fine histogram rows (k, L, S) -> the display counts (k, L, bins + 2): under, each
    display bin's FINE sub-bins summed, over."""
    k, L, fine = *hist.shape[:2], bins * FINE
    out = np.empty((k, L, bins + 2), hist.dtype)
    out[..., 0], out[..., -1] = hist[..., 0], hist[..., fine + 1]
    fines, coarse = hist[..., 1 : fine + 1], out[..., 1:-1]
    # FINE strided adds: twice as fast as summing a reshaped axis of FINE (a short inner loop)
    np.copyto(coarse, fines[..., 0::FINE])
    for j in range(1, FINE):
        coarse += fines[..., j::FINE]
    return out


def percentiles(
    hist: np.ndarray,
    edges: np.ndarray,
    vmin: np.ndarray,
    vmax: np.ndarray,
    nf: np.ndarray,
    fine: int,
    qs: tuple[float, ...] = (0.15, 0.50, 0.85),
) -> np.ndarray:
    """(len(qs), L) percentiles from the fine histogram (bound in the module docstring)."""
    counts = hist[:, : fine + 2]  # slot 0 under, 1..fine the fine bins, fine + 1 over
    cum = counts.astype(np.int64).cumsum(1)  # (whole counts: exact, and ~2.5× float32's speed)
    rank = np.multiply.outer(nf - 1, qs)  # (L, q): numpy's 'linear' method, a sorted index
    j = _first_above(cum, rank)  # (L, q): the slot holding that rank
    c = np.take_along_axis(counts, j, 1)
    before = np.take_along_axis(cum, j, 1) - c
    lo, w = edges[:, :1], (edges[:, 1:] - edges[:, :1]) / fine
    # slot j spans [lo + (j-1)·w, lo + j·w]; the under slot starts at min, over ends at max
    a = np.where(j == 0, vmin[:, None], lo + (j - 1) * w)
    b = np.where(j == fine + 1, vmax[:, None], lo + j * w)
    frac = np.clip((rank - before + 0.5) / np.maximum(c, 1), 0.0, 1.0)
    est = np.clip(a + frac * (b - a), vmin[:, None], vmax[:, None])
    return np.where(nf[:, None] > 0, est, np.nan).T


def _first_above(cum: np.ndarray, rank: np.ndarray) -> np.ndarray:
    """(R, q): per row of ``cum`` (R, S), nondecreasing whole counts, the first slot whose
    count exceeds each ``rank`` (0 where none does, as an argmax over all-False would say).
    One searchsorted over all rows, where comparing every slot with every rank costs a flush
    of 32 steps ~0.4 ms: with whole counts cum > rank ⟺ cum > ⌊rank⌋, and row r shifted by
    r·(the largest count + 2) stays exact in float64 and lies wholly above row r − 1, so
    no row's search ends in another's (except past its last slot: then S, mapped to 0)."""
    R, S = cum.shape
    rows = np.arange(R)[:, None]
    shift = rows * (float(cum[:, -1].max(initial=0.0)) + 2.0)
    j = np.searchsorted((cum + shift).ravel(), np.floor(rank) + shift, side="right") - rows * S
    return np.where(j < S, j, 0)
