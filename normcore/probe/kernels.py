"""CPU kernels for ``normcore.probe.stats.LayerStats``: a layer's statistics in three passes.

A CPU pays per pass over memory, and torch spends about ten passes on a layer's statistics
(the centred copy, sums, min, max, the slots, their integer copy, the histogram, saturation
before and after the norm). Compiled with numba, the same numbers take one vectorized pass
for the sums, fine-bin slots and saturation, one for the finite range and the histogram's
scatter (and one for the pre-activation's saturation where it differs): 476 → 350 µs for a
1 MB layer in cache, with no centred copy or integer copy written. With more than one torch
thread a layer goes in parts, one per thread (``accumulate_parallel``).

Each loop is written so LLVM vectorizes it ("reassoc" lets it split the sums into lanes;
NaN and inf keep their IEEE meaning, so no value is assumed finite). Three loops and not one:
the fused loop did not vectorize, and at a megabyte a layer each extra pass reads L2.

Definitions match ``LayerStats._batch`` (see normcore.probe.stats): d = x - centre in float32; the
slot of a finite d is floor(clamp(d·scale + k, 0.5, fine + 1.5)) (0 under, 1..fine the fine
bins, fine + 1 over) and fine + 2 for NaN and ±inf; sums are of the finite d, in float64;
min and max are of the finite x (±inf when there are none); saturation counts |x| > t, or
x <= 0 for relu/gelu, over every value (±inf saturated, NaN not).
"""

from __future__ import annotations

import threading

import numpy as np

try:
    from numba import njit, prange
except ImportError:  # numba is a dependency; a GPU-only machine may lack it (see AVAILABLE)
    njit, prange = None, range  # type: ignore[assignment, misc]

AVAILABLE = njit is not None  # else LayerStats measures a CPU layer with torch's batch path
_EXP = np.int32(0x7F800000)  # a float32 with every exponent bit set is ±inf or NaN


def _compiled(**options):
    """numba.njit without the GIL, its machine code cached on disk (the first compile takes
    a few seconds); where no cache directory is writable, compiled again in each process."""

    def wrap(fn):
        if njit is None:
            return fn  # never called: LayerStats checks AVAILABLE
        try:
            return njit(cache=True, nogil=True, **options)(fn)
        except RuntimeError:  # numba: "cannot cache function ...: no locator available"
            return njit(nogil=True, **options)(fn)

    return wrap


_vectorized = _compiled(fastmath={"reassoc", "nsz"})


@_vectorized
def _sums_and_slots(x, centre, scale, k, fine, t, dead, slots):
    """-> (non-finite count, Σd, Σd², saturated count) over d = x - centre (the sums of the
    finite d only); each value's slot into ``slots`` (int32: int16 stores do not vectorize)."""
    bits = x.view(np.int32)
    lo, hi, last = np.float32(0.5), np.float32(fine + 1.5), np.int32(fine + 2)
    bad, sat, total, sumsq = 0, 0, 0.0, 0.0
    for j in range(x.size):
        v = x[j]
        ok = (bits[j] & _EXP) != _EXP
        sat += (v <= 0) if dead else (abs(v) > t)
        d = v - centre
        d = d if ok else np.float32(0.0)
        total += d
        sumsq += np.float64(d) * d
        bad += np.int64(1) - ok
        s = d * scale + k
        s = s if s > lo else lo
        s = s if s < hi else hi
        slots[j] = np.int32(s) if ok else last
    return bad, total, sumsq, sat


@_vectorized
def _finite_range(x):
    """(min, max) of the finite values, compared as integers: a float32's bits, with the
    magnitude bits flipped when negative, sort as the floats do (and vectorize, where float
    min/max must mind NaN)."""
    bits = x.view(np.int32)
    big, small = np.int32(2**31 - 1), np.int32(-(2**31))
    kmin, kmax = big, small
    for j in range(x.size):
        b = bits[j]
        ok = (b & _EXP) != _EXP
        key = b ^ ((b >> 31) & np.int32(0x7FFFFFFF))
        low, high = (key, key) if ok else (big, small)  # (a select: a branch would not vectorize)
        kmin = low if low < kmin else kmin
        kmax = high if high > kmax else kmax
    if kmin > kmax:  # no finite value
        return np.inf, -np.inf
    keys = np.array([kmin, kmax], dtype=np.int32)
    keys ^= (keys >> 31) & np.int32(0x7FFFFFFF)  # the flip is its own inverse
    values = keys.view(np.float32)
    return np.float64(values[0]), np.float64(values[1])


@_vectorized
def _saturated(x, t, dead):
    """Count of |x| > t (dead: x <= 0); ±inf are saturated, NaN is not."""
    n = 0
    if dead:
        for j in range(x.size):
            n += x[j] <= 0
    else:
        for j in range(x.size):
            n += abs(x[j]) > t
    return n


@_vectorized
def _scatter(slots, counts):
    """counts (4, S) int32 <- the slot counts, in four interleaved copies: consecutive values
    in one bin (a narrow layer) would otherwise wait on each other's increment."""
    counts[:] = 0
    n = slots.size - slots.size % 4
    for j in range(0, n, 4):
        counts[0, slots[j]] += 1
        counts[1, slots[j + 1]] += 1
        counts[2, slots[j + 2]] += 1
        counts[3, slots[j + 3]] += 1
    for j in range(n, slots.size):
        counts[0, slots[j]] += 1


@_compiled()
def _piece(x, pre, same, centre, scale, k, fine, t, dead, slots, counts, hist, row):
    """One piece into an emptied ``hist`` (S,) and ``row`` (7,); scratch ``slots``, ``counts``."""
    bad, total, sumsq, sat = _sums_and_slots(x, centre, scale, k, fine, t, dead, slots)
    _scatter(slots, counts)
    for s in range(hist.size):
        hist[s] = counts[0, s] + counts[1, s] + counts[2, s] + counts[3, s]
    vmin, vmax = _finite_range(x)
    row[0], row[1], row[2], row[3], row[4] = bad, total, sumsq, vmin, vmax
    row[5] = sat
    row[6] = sat if same else _saturated(pre, t, dead)


@_compiled()
def _merge(hists, rows, hist, row):
    """The parts' histograms and rows into the layer's."""
    for p in range(len(rows)):
        hist += hists[p]
        row[0] += rows[p, 0]
        row[1] += rows[p, 1]
        row[2] += rows[p, 2]
        row[3] = min(row[3], rows[p, 3])
        row[4] = max(row[4], rows[p, 4])
        row[5] += rows[p, 5]
        row[6] += rows[p, 6]


@_compiled()
def accumulate(
    x, pre, same, centre, scale, k, fine, t, dead, slots, counts, hists, rows, hist, row
):
    """Add one piece of a layer (x, and pre its pre-activation; ``same`` for a layer without
    a norm before its activation, whose pre is x) to its histogram row ``hist`` (float32,
    exact to 2^24) and scalar ``row``: [non-finite, Σd, Σd², min, max, sat, sat_pre]
    (float64). Scratch: ``slots`` (>= x.size, int32), ``counts`` (1, 4, S), ``hists`` (1, S),
    ``rows`` (1, 7)."""
    _piece(
        x, pre, same, centre, scale, k, fine, t, dead, slots[: x.size], counts[0], hists[0], rows[0]
    )
    _merge(hists, rows, hist, row)


@_compiled()
def accumulate_rows(
    xs, pres, same, centres, scales, k, fine, t, dead, slots, counts, hists, rows, empty, hist, cols
):
    """Every layer at once: row i of ``xs`` (L, n) (and of ``pres``) is layer i's whole step,
    with centre and scale ``centres[i]``, ``scales[i]``; ``hist[i]`` and ``cols[i]`` are
    written anew, from zeros and the ``empty`` row (no reset first: they are a ring's row).
    One call for a small step's layers, whose per-call cost (~15 µs of Python and dispatch a
    layer) is what a small model pays most for."""
    for i in range(xs.shape[0]):
        hist[i, :] = 0.0
        cols[i, :] = empty
        _piece(
            xs[i],
            pres[i],
            same,
            centres[i],
            scales[i],
            k,
            fine,
            t,
            dead,
            slots[: xs.shape[1]],
            counts[0],
            hists[0],
            rows[0],
        )
        _merge(hists, rows, hist[i], cols[i])


@_compiled(parallel=True)
def _accumulate_parallel(
    x, pre, same, centre, scale, k, fine, t, dead, slots, counts, hists, rows, hist, row
):
    parts = len(rows)
    step = (x.size + parts - 1) // parts
    for p in prange(parts):
        a, b = p * step, min(x.size, (p + 1) * step)
        _piece(
            x[a:b],
            pre[a:b],
            same,
            centre,
            scale,
            k,
            fine,
            t,
            dead,
            slots[a:b],
            counts[p],
            hists[p],
            rows[p],
        )
    _merge(hists, rows, hist, row)


@_vectorized
def _sum_of_squares(x):
    """Σx² of a float32 array of any shape, summed in float64."""
    total = 0.0
    for v in x.flat:
        d = np.float64(v)
        total += d * d
    return total


@_compiled()
def layer_norms(grad, act_grad, weight, out):
    """‖∇w‖, ‖∂a‖ and ‖w‖ of one layer into ``out`` (3,): one call where torch's norms of
    a small layer's three tensors are three dispatches (and sum in float64 at a quarter of
    BLAS's speed: a 3×100 MLP's nine norms take 41 µs that way, 19 µs here)."""
    out[0] = np.sqrt(_sum_of_squares(grad))
    out[1] = np.sqrt(_sum_of_squares(act_grad))
    out[2] = np.sqrt(_sum_of_squares(weight))


@_compiled()
def hits(logits, targets):
    """How many rows of ``logits`` (B, K) have their first maximum at ``targets`` (B,) (as
    torch's argmax; a row with NaN counts as its first NaN)."""
    n = 0
    for i in range(logits.shape[0]):
        n += np.argmax(logits[i]) == targets[i]
    return n


@_compiled()
def row_moments(values, mean, std):
    """Each row's mean and population std (float64 sums) into ``mean`` and ``std``."""
    for i in range(values.shape[0]):
        m = 0.0
        for v in values[i]:
            m += v
        m /= values.shape[1]
        q = 0.0
        for v in values[i]:
            q += (v - m) ** 2
        mean[i], std[i] = m, np.sqrt(q / values.shape[1])


_one_launch = threading.Lock()  # numba's fallback thread pool (workqueue) aborts on two at once


def accumulate_parallel(*args) -> None:
    """``accumulate`` in len(rows) parts, one per thread, each with its own scratch row (one
    launch at a time in a process: training threads of their own may share it)."""
    with _one_launch:
        _accumulate_parallel(*args)
