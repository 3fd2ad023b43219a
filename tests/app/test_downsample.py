"""app/downsample.py: extremes, evaluations and status frames survive any budget."""

from __future__ import annotations

import numpy as np
import pytest

from app import downsample as D


@pytest.mark.parametrize("points", [4, 7, 100, 1000])
def test_a_single_step_spike_survives_every_window_and_budget(points):
    rng = np.random.default_rng(0)
    x = np.arange(1, 100_001)
    y = rng.random(100_000)
    y[54_321] = 7.5  # the spike
    y[12_345] = -3.25  # and a dip
    for lo, hi in [(0, 100_000), (54_000, 55_000), (54_321, 54_322), (10_000, 60_000)]:
        idx = D.line_indices(x[lo:hi], y[lo:hi], points)
        kept = y[lo:hi][idx]
        assert kept.max() == y[lo:hi].max() and kept.min() == y[lo:hi].min()
        assert idx[0] == 0 and idx[-1] == hi - lo - 1, "first and last kept"
    idx = D.line_indices(x, y, points)
    assert len(idx) <= points + 4


def test_nan_stays_a_gap_and_forced_points_are_kept():
    y = np.array([1.0, 2, np.nan, np.nan, 3, 4, 5, 6, 7, 8, 9, np.nan])
    x = np.arange(len(y))
    idx = D.line_indices(x, y, 4, forced=np.array([6]))
    assert {0, 2, 6, 10, 11} <= set(idx.tolist())  # first, gap, forced, last finite, gap
    assert D.line_indices(x[:5], np.full(5, np.nan), 10).size == 0


def test_buckets_sum_counts_and_keep_the_maximum():
    starts = D.bucket_starts(10, 3)
    assert starts.tolist() == [0, 3, 6]
    counts = np.arange(20).reshape(10, 2)
    assert D.bucket_sum(counts, starts).tolist() == [[6, 9], [24, 27], [60, 64]]
    sat = np.array([0.1, 0.9, np.nan, 0.2, 0.2, 0.2, np.nan, np.nan, np.nan, np.nan])
    assert D.bucket_max(sat, starts)[:2].tolist() == [0.9, 0.2]
    assert np.isnan(D.bucket_max(sat, starts)[2])
    assert D.bucket_starts(2, 5).tolist() == [0, 1] and D.bucket_starts(0, 5).size == 0


@pytest.mark.parametrize("points", [2, 4, 10, 600])
def test_frame_indices_keep_every_forced_frame(points):
    loss = np.random.default_rng(1).random(20_000)
    keep = np.arange(0, 20_000, 100)
    idx = D.frame_indices(loss, np.arange(20_000), points, keep)
    assert set(keep.tolist()) <= set(idx.tolist())
    assert len(idx) <= len(keep) + max(points, D.MIN_POINTS) + 4
    assert loss[idx].max() == loss.max()
