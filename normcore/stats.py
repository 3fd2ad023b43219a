"""The per-layer statistics of a Frame: batched device kernels, then host-side numpy.

``LayerStats`` works on the activation inputs of all L hidden layers stacked into one (L, N)
buffer: one pass each for the finite count, the two sums (float64 accumulation), min/max and
saturation, and one ``histc`` over layer-offset slots. It returns device tensors and never
syncs. ``layer_frames`` turns the host copies of those rows into Frame layers (normcore.frames).
``normcore.probes`` wires these to a model's hooks.

Histogram: ``bins`` equal half-open bins [a, b) on fixed edges [lo, hi] per layer, chosen once
from the first probed batch (its finite range widened by half its span on each side, and at
least the activation's useful range ``ACT_RANGE``), plus underflow (x < lo) and overflow
(x >= hi). Internally every bin is split into ``FINE`` sub-bins; the display counts are sums.

Percentiles (numpy's default 'linear' method) come from the fine histogram, not a sort: the
estimate interpolates inside the bucket holding rank q·(n−1) and is clipped to [min, max].
Error bound: |p̂ − p| <= width of the buckets holding the two order statistics numpy
interpolates between, i.e. one fine bin (hi − lo)/(bins·FINE) inside the edges (two when they
straddle a bin edge), and (lo − min) or (max − hi) in the under/over tails. Fine-bin
assignment is float32 arithmetic, exact to ~1e-3 of a fine bin at the edges.

Saturation (the activation's input): sigmoid |x| > 4.356 and tanh |x| > 2.178, where the
derivative has fallen below 5% of its maximum (σ' < 0.0125, tanh' < 0.05; the same point,
since σ(x) = (1 + tanh(x/2))/2); relu and gelu: the fraction x <= 0 (dead units).
``sat_pre`` is the same count on the pre-activation before the norm.

Edge cases (never raised on): NaN and ±inf are counted in ``nonfinite`` and kept out of the
histogram, mean, std, percentiles and saturation, which describe the finite values only (std
is the population std, from float64 sums; a variance below their rounding, 8·eps·E[x²], is
reported as 0). A layer with no finite values reports None for those. A constant layer has
std 0 and exact percentiles (clipping to [min, max]). An empty layer (N = 0) is
rejected when the probe is built, since a static-shape model never produces one.
"""

from __future__ import annotations

import numpy as np
import torch

from normcore.drift import wasserstein1

SAT_THRESHOLD = {"sigmoid": 4.356, "tanh": 2.178}  # f'(x) < 5% of max f' beyond these
DEAD_AT_ZERO = ("relu", "gelu")  # saturated = dead: x <= 0
ACT_RANGE = {"sigmoid": 8.0, "tanh": 4.0, "relu": 4.0, "gelu": 4.0}  # edges cover ±this
FINE = 8  # fine sub-bins per display bin (the percentiles' resolution)

# Columns of the per-layer float64 scalar row.
FIELDS = (
    "nonfinite", "sum", "sumsq", "min", "max", "sat", "sat_pre", "nonfinite_pre",
    "grad_norm", "act_grad_norm", "weight_norm", "update_norm",
    "g_mean", "g_std", "b_mean", "b_std", "ics_l2", "ics_cos",
)  # fmt: skip
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


def saturated(x: torch.Tensor, activation: str, scratch: torch.Tensor | None = None):
    """Per-row count of x in the saturated region: (L, N) -> (L,) int64."""
    mask = torch.empty(x.shape, dtype=torch.bool, device=x.device) if scratch is None else scratch
    if activation in DEAD_AT_ZERO:
        torch.le(x, 0.0, out=mask)
    else:
        torch.gt(x.abs(), SAT_THRESHOLD[activation], out=mask)
    return mask.sum(1)


class LayerStats:
    """The batched statistics of L equally shaped layers, with preallocated scratch.

    ``__call__(x, pre)`` consumes the (L, N) buffers ``x`` (activation input) and ``pre``
    (pre-activation, or None when it is the same tensor) as scratch and returns the fine
    histogram (L, S) and the scalar columns of ``FIELDS`` it owns.
    """

    def __init__(self, edges: np.ndarray, n: int, bins: int, activation: str, device):
        if n < 1:
            raise ValueError(f"a probed layer must hold values; got {n} per layer")
        self.L, self.n, self.bins, self.activation = len(edges), n, bins, activation
        self.fine = bins * FINE
        self.S = self.fine + 3  # slots: under, fine bins, over, one spare (top edge)
        lo, hi = (torch.tensor(edges[:, i], dtype=torch.float32, device=device) for i in (0, 1))
        w = (hi - lo) / self.fine
        offset = torch.arange(self.L, device=device, dtype=torch.float32) * self.S
        # x -> slot units: lo lands on 1.0 (first fine bin), under on [0.5, 1), over on
        # [fine + 1, fine + 1.5]; histc with unit bins then floors to the slot.
        self.clamp_lo, self.clamp_hi = (lo - w / 2)[:, None], (hi + w / 2)[:, None]
        self.scale, self.shift = (1 / w)[:, None], (1 - lo / w + offset)[:, None]
        self.mask = torch.empty(self.L, n, dtype=torch.bool, device=device)
        # Nonfinite values are zero-filled for the sums; take them back out of 0's slot.
        zero = torch.zeros(self.L, 1, device=device)
        self.zero_slot = self._slots(zero).floor().long().view(-1)  # (L,)

    def _slots(self, x: torch.Tensor) -> torch.Tensor:
        x.clamp_(self.clamp_lo, self.clamp_hi)
        return torch.addcmul(self.shift, x, self.scale, out=x)

    def __call__(self, x: torch.Tensor, pre: torch.Tensor | None):
        L, S = self.L, self.S
        bad = self.n - torch.isfinite(x).sum(1)  # (L,) NaN/inf count
        x.nan_to_num_(0.0, 0.0, 0.0)  # nonfinite -> 0, corrected for below
        total = x.sum(1, dtype=torch.float64)
        sumsq = torch.linalg.vector_norm(x, dim=1, dtype=torch.float64).square()
        vmin, vmax = torch.aminmax(x, dim=1)  # a bracket of the finite range (0 included)
        dead = self.activation in DEAD_AT_ZERO
        sat = saturated(x, self.activation, self.mask) - (bad if dead else 0)
        if pre is None:
            sat_pre, bad_pre = sat, bad
        else:
            bad_pre = self.n - torch.isfinite(pre).sum(1)
            pre.nan_to_num_(0.0, 0.0, 0.0)
            sat_pre = saturated(pre, self.activation, self.mask) - (bad_pre if dead else 0)
        hist = torch.histc(self._slots(x), bins=L * S, min=0, max=L * S)
        hist.index_add_(0, self.zero_slot, -bad.float())  # zero_slot includes the offset
        cols = dict(nonfinite=bad, sum=total, sumsq=sumsq, min=vmin, max=vmax, sat=sat,
                    sat_pre=sat_pre, nonfinite_pre=bad_pre)  # fmt: skip
        return hist.view(L, S), cols


def layer_frames(
    names: list[str], edges: np.ndarray, hist: np.ndarray, scal: np.ndarray, n: int,
    bins: int, first: np.ndarray | None, prev: np.ndarray | None,
) -> tuple[list[dict], np.ndarray]:  # fmt: skip
    """Host rows -> Frame layers (see normcore.frames), and the display counts (L, bins+2)."""
    L, fine = len(names), bins * FINE
    c = scal.T  # columns by name
    get = dict(zip(FIELDS, c, strict=True))
    under, over = hist[:, 0], hist[:, fine + 1]
    coarse = hist[:, 1 : fine + 1].reshape(L, bins, FINE).sum(-1)
    display = np.concatenate([under[:, None], coarse, over[:, None]], axis=1)  # (L, bins+2)
    nf = n - get["nonfinite"]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = get["sum"] / nf
        meansq = get["sumsq"] / nf
        var = meansq - mean**2  # below the float64 rounding of the sums it is noise: 0
        std = np.sqrt(np.where(var > 8 * np.finfo(np.float64).eps * meansq, var, 0.0 * var))
        pct = percentiles(hist, edges, get["min"], get["max"], nf, fine)
        w = (edges[:, 1] - edges[:, 0]) / bins
        # the first probe is its own reference: 0, or NaN for a histogram with no values
        w1_first = wasserstein1(display, display if first is None else first, w)
        w1_prev = wasserstein1(display, display if prev is None else prev, w)
        sat, sat_pre = get["sat"] / nf, get["sat_pre"] / (n - get["nonfinite_pre"])
        update_ratio = get["update_norm"] / get["weight_norm"]

    def num(a: np.ndarray, i: int) -> float | None:
        v = float(a[i])
        return v if np.isfinite(v) else None

    layers = []
    for i, name in enumerate(names):
        counts = [int(v) for v in coarse[i]]
        hist_i = dict(lo=float(edges[i, 0]), hi=float(edges[i, 1]), counts=counts,
                      under=int(under[i]), over=int(over[i]))  # fmt: skip
        layer = dict(name=name, hist=hist_i, nonfinite=int(get["nonfinite"][i]))
        for key, arr in (("mean", mean), ("std", std), ("p15", pct[0]), ("p50", pct[1]),
                         ("p85", pct[2]), ("sat", sat), ("sat_pre", sat_pre),
                         ("grad_norm", get["grad_norm"]), ("act_grad_norm", get["act_grad_norm"]),
                         ("weight_norm", get["weight_norm"]), ("update_ratio", update_ratio),
                         ("g_mean", get["g_mean"]), ("g_std", get["g_std"]),
                         ("b_mean", get["b_mean"]), ("b_std", get["b_std"]),
                         ("w1_prev", w1_prev), ("w1_first", w1_first)):  # fmt: skip
            layer[key] = num(arr, i)
        layers.append(layer)
    return layers, display


def percentiles(
    hist: np.ndarray, edges: np.ndarray, vmin: np.ndarray, vmax: np.ndarray, nf: np.ndarray,
    fine: int, qs: tuple[float, ...] = (0.15, 0.50, 0.85),
) -> np.ndarray:  # fmt: skip
    """(len(qs), L) percentiles from the fine histogram (bound in the module docstring)."""
    L = len(edges)
    counts = hist[:, : fine + 2]  # under, fine bins, over
    cum = counts.cumsum(1)
    lo, hi = edges[:, :1], edges[:, 1:]
    w = (hi - lo) / fine
    inner = lo + w * np.arange(fine + 1)  # (L, fine+1) fine-bin edges
    lower = np.concatenate([vmin[:, None], inner], axis=1)  # slot j spans [lower, upper]
    upper = np.concatenate([inner, vmax[:, None]], axis=1)
    out = np.full((len(qs), L), np.nan)
    for k, q in enumerate(qs):
        rank = q * (nf - 1)  # numpy's 'linear' method: index into the sorted values
        j = (cum > rank[:, None]).argmax(1)  # the slot holding that rank
        rows = np.arange(L)
        c = counts[rows, j]
        before = cum[rows, j] - c
        a, b = lower[rows, j], upper[rows, j]
        frac = np.clip((rank - before + 0.5) / np.maximum(c, 1), 0.0, 1.0)
        est = np.clip(a + frac * (b - a), vmin, vmax)
        out[k] = np.where(nf > 0, est, np.nan)
    return out
