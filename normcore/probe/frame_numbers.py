"""A flush's rows -> each probed step's Frame layers (normcore.frames), on the host.

``normcore.probe.stats`` measures a probed step into a row: per layer a fine histogram
(``FINE`` sub-bins per display bin, between under- and overflow) and the columns ``FIELDS``.
Here, in numpy, the rows of k steps become their Frame layers in one set of array operations
(``layer_table``): mean and std from the centred sums, the percentiles and the graded
saturation from the fine histogram, the display counts and their drift (W1 to the previous
and the first probe). A trainer asked for its layers later hands a flush on as
``FlushLayers``, and they are built in the server's process, where the frame is encoded.

Percentiles (numpy's default 'linear' method) come from the fine histogram, not a sort: the
estimate interpolates inside the bucket holding rank q·(n−1) and is clipped to [min, max].
Error bound: |p̂ − p| <= width of the buckets holding the two order statistics numpy
interpolates between, i.e. one fine bin (hi − lo)/(bins·FINE) inside the edges (two when they
straddle a bin edge), and (lo − min) or (max − hi) in the under/over tails. Fine-bin
assignment is float32 arithmetic, exact to ~1e-3 of a fine bin at the edges; counts are
exact up to 2^24 values per layer and step.

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
the edges at the edge (the edges reach at least ``stats.ACT_RANGE``, where the slope is below 0.2 %
of its peak), non-finite values as fully saturated (slope 0) and outside the output's mean.
For relu and gelu ``sat_graded`` is ``sat`` (the dead fraction) and the outputs, unbounded
beyond the edges, are not summarized (None).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from normcore.drift import wasserstein1
from normcore.frames import round_sig

FINE = 8  # fine sub-bins per display bin (the percentiles' resolution)

# Columns of the per-layer float64 row (normcore.probe.stats fills the first seven).
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
LAYER_LINES = (*LAYER_NUMBERS, "nonfinite")  # a LayerTable's lines: a run's columns of a layer


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


class LayerTable:
    """k probed steps' Frame layers as arrays: ``names`` (L), ``edges`` (L, 2) as a frame
    shows them, ``lines`` (k, L, len(LAYER_LINES)) float64 (NaN where a frame's number is
    None) and ``display`` (k, L, bins + 2), the counts [under, bins..., over]. ``layers()``
    is each step's Frame layers; a run's columns (app.frame_arrays) are these arrays."""

    def __init__(self, names: list[str], edges: np.ndarray, lines: np.ndarray, display):
        self.names, self.edges, self.lines, self.display = names, edges, lines, display

    def layers(self) -> list[list[dict]]:
        """Each step's Frame layers (normcore.frames), a dict each."""
        # Python floats, None where not finite: one object array, not a test per number (a
        # flush of 32 steps builds hundreds of layers)
        numbers = self.lines[..., :-1]
        if numbers.shape[-1] != len(LAYER_NUMBERS):
            raise ValueError(f"lines hold {numbers.shape[-1] + 1} columns, not {len(LAYER_LINES)}")
        boxed = numbers.astype(object)
        boxed[~np.isfinite(numbers)] = None
        values = boxed.tolist()
        display = self.display
        counts, unders, overs, bad = (
            a.astype(np.int64).tolist()
            for a in (display[..., 1:-1], display[..., 0], display[..., -1], self.lines[..., -1])
        )
        lo, hi = self.edges[:, 0].tolist(), self.edges[:, 1].tolist()
        steps = []
        for j in range(len(self.lines)):
            layers = []
            for i, name in enumerate(self.names):
                hist_i = {
                    "lo": lo[i],
                    "hi": hi[i],
                    "counts": counts[j][i],
                    "under": unders[j][i],
                    "over": overs[j][i],
                }
                cells = (name, hist_i, bad[j][i], *values[j][i])
                # (every row is as long as the keys: lines' shape says so, checked above; a
                # strict zip would check each of a flush's hundreds of rows, at twice the cost)
                layers.append(dict(zip(_LAYER_KEYS, cells)))  # noqa: B905
            steps.append(layers)
        return steps


def layer_table(
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
) -> LayerTable:
    """Host rows of k probed steps, ``hist`` (k, L, S) and ``scal`` (k, L, len(FIELDS)) ->
    their Frame layers as a ``LayerTable``.
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
    if digits is not None:
        values, edges = round_sig(values, digits), round_sig(edges, digits)
    # (the numbers are computed: from here on edges are only shown; not finite: NaN)
    lines = np.empty((k, L, len(LAYER_LINES)))
    lines[..., :-1], lines[..., -1] = values, get["nonfinite"]
    lines[~np.isfinite(lines)] = np.nan
    return LayerTable(names, edges, lines, display)


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


class TableRow(NamedTuple):
    """Step ``j`` of a flush's ``LayerTable``: a frame's layers as arrays."""

    table: LayerTable
    j: int


class FlushLayers:
    """What ``layer_table`` needs of one flush, held (and pickled) until its layers are
    wanted: ``table()`` builds every step's at once, once; ``steps()`` are their dicts."""

    def __init__(self, names, edges, hist, scal, n, bins, first, prev, activation, digits):
        self.args = (names, edges, hist, scal, n, bins, first, prev, activation, digits)
        self.count = len(hist)  # steps
        self._table: LayerTable | None = None
        self._steps: list[list[dict]] | None = None

    def build(self) -> LayerTable:
        return layer_table(*self.args)

    def table(self) -> LayerTable:
        if self._table is None:
            self._table = self.build()
        return self._table

    def steps(self) -> list[list[dict]]:
        if self._steps is None:
            self._steps = self.table().layers()
        return self._steps

    def row(self, j: int) -> TableRow:
        return TableRow(self.table(), j)
