"""Downsampling that keeps what a chart must show: every extreme, every evaluation.

Stride sampling (every k-th frame) misses a one-step loss spike or saturation jump between
kept frames; TensorBoard's reservoir sampling has the same flaw. Here, as in plotly-resampler:

- Line series are reduced with MinMaxLTTB (tsdownsample, a maintained Rust implementation):
  the minimum and maximum of many small buckets are preselected, then LTTB picks the points
  that keep the shape. On top of that the series' own minimum and maximum over the requested
  range, its first and last points and any `forced` indices (status frames) are always kept,
  so the extreme of any window a user zooms into is drawn exactly.
- Heatmaps aggregate buckets of consecutive frames: histogram counts are summed (the browser
  normalises them), scalar maps (saturation, drift, gradient norm) take the bucket's maximum,
  so nothing a single step showed disappears into an average.
- Frames that carry an evaluation, the first and last frames and status frames are never
  dropped by `frame_indices` (what /frames serves).

Pure numpy functions of arrays; no I/O.
"""

from __future__ import annotations

import numpy as np
from tsdownsample import MinMaxLTTBDownsampler

_MINMAX_LTTB = MinMaxLTTBDownsampler()
MIN_POINTS = 4  # MinMaxLTTB needs 3 or more; first, last, minimum and maximum need 4


def line_indices(
    x: np.ndarray, y: np.ndarray, points: int, forced: np.ndarray | None = None
) -> np.ndarray:
    """Sorted indices of the points of (x, y) to draw: about `points` of the finite ones
    chosen by MinMaxLTTB, plus the first, last, minimum and maximum finite points, plus
    `forced`, plus the first NaN after each finite stretch (so a gap stays a gap)."""
    n = len(y)
    finite = np.isfinite(y)
    where = np.flatnonzero(finite)
    keep = [where[[0, -1]]] if where.size else []
    if forced is not None and forced.size:
        keep.append(forced)
    if where.size > max(points, MIN_POINTS - 1):
        # y (and x) of the finite points only: tsdownsample's MinMaxLTTB rejects NaN
        picked = _MINMAX_LTTB.downsample(x[where], y[where], n_out=max(points, MIN_POINTS))
        keep.append(where[picked.astype(np.int64)])
        keep.append(where[[np.argmin(y[where]), np.argmax(y[where])]])
    else:
        keep.append(where)
    gaps = np.flatnonzero(~finite[1:] & finite[:-1]) + 1 if n > 1 else np.zeros(0, np.int64)
    keep.append(gaps)
    return np.unique(np.concatenate(keep)).astype(np.int64) if keep else np.zeros(0, np.int64)


def bucket_starts(n: int, points: int) -> np.ndarray:
    """Start indices of min(n, points) buckets of consecutive frames, sizes differing by at
    most one: bucket k holds frames starts[k] .. starts[k+1]-1 (the last runs to n-1)."""
    m = min(n, points)
    return (np.arange(m, dtype=np.int64) * n) // m if m else np.zeros(0, np.int64)


def bucket_sum(values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Per bucket, the sum over its frames (histogram counts: bucket k's distribution)."""
    if not starts.size:
        return values[:0].astype(np.int64)
    return np.add.reduceat(values.astype(np.int64), starts, axis=0)


def bucket_max(values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Per bucket, the maximum over its frames, NaN ignored (NaN only for an all-NaN bucket):
    a saturation or drift map keeps the worst step of each bucket."""
    if not starts.size:
        return values[:0]
    return np.fmax.reduceat(values, starts, axis=0)


def frame_indices(loss: np.ndarray, x: np.ndarray, points: int, keep: np.ndarray) -> np.ndarray:
    """Indices of the whole frames /frames serves: about `points` frames chosen for the
    training loss by `line_indices`, plus every index in `keep` (evaluations, status
    frames), which no budget drops."""
    budget = max(MIN_POINTS, points - len(keep))
    chosen = line_indices(x, loss, budget, forced=keep)
    if len(chosen) < min(points, len(x)):  # picks and forced frames overlapped: top up once
        chosen = line_indices(x, loss, budget + points - len(chosen), forced=keep)
    if not np.isfinite(loss).any():  # no loss to follow (diverged at once): evenly spread
        chosen = np.union1d(chosen, bucket_starts(len(x), budget))
    return chosen
