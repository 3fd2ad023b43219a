"""The graded saturation (sat_graded = 1 - mean f'(x)/max f') and the activation's output mean
and spread, from the fine histogram, against float64 numpy on every statistics path."""

import numpy as np
import pytest
import torch

from normcore.probe import kernels
from normcore.probe.frame_numbers import FIELDS, FINE, layer_table
from normcore.probe.stats import STAT_FIELDS, LayerStats, choose_edges

BINS = 16
# |d/dx f'(x)/max f'|: sigmoid's is max |tanh(x/2) sech^2(x/2)| / 1 = 0.385, tanh's twice that
SLOPE_LIP = {"sigmoid": 0.385, "tanh": 0.77}
OUT_LIP = {"sigmoid": 0.25, "tanh": 1.0}  # max f'(x)


def exact(x: np.ndarray, activation: str) -> tuple[float, float, float]:
    x = x.astype(np.float64)
    if activation == "sigmoid":
        y = 1 / (1 + np.exp(-x))
        slope = 4 * y * (1 - y)
    else:
        y = np.tanh(x)
        slope = 1 - y**2
    return 1 - slope.mean(), y.mean(), y.std()


def frame_layers(x: np.ndarray, activation: str, kernel: bool, edges=None):
    n = x.shape[1]
    if edges is None:
        edges = choose_edges(x.min(1), x.max(1), activation)
    stats = LayerStats(edges, n, BINS, activation, "cpu", kernel)
    hist, cols = stats([[torch.from_numpy(row.copy())] for row in x], None)
    scal = np.full((len(x), len(FIELDS)), np.nan)
    scal[:, : len(STAT_FIELDS)] = cols.numpy()
    table = layer_table(
        [f"h{i}" for i in range(len(x))],
        edges,
        hist.numpy()[None],
        scal[None],
        n,
        BINS,
        None,
        None,
        activation,
    )
    (layers,) = table.layers()
    return layers, edges


PATHS = [
    False,
    pytest.param(True, marks=pytest.mark.skipif(not kernels.AVAILABLE, reason="numba missing")),
]


@pytest.mark.parametrize("kernel", PATHS, ids=["torch-batch", "kernel"])
@pytest.mark.parametrize("activation", ["sigmoid", "tanh"])
def test_graded_saturation_and_outputs_match_numpy_within_the_stated_bound(activation, kernel):
    rng = np.random.default_rng(3)
    n = 3000
    x = np.stack(
        [
            rng.normal(0, 0.5, n),
            rng.normal(-3, 0.3, n),
            rng.normal(0, 4, n),
            rng.uniform(-12, 12, n),
        ]
    ).astype(np.float32)
    layers, edges = frame_layers(x, activation, kernel)
    for i, layer in enumerate(layers):
        lost, mean, std = exact(x[i], activation)
        w = (edges[i, 1] - edges[i, 0]) / (BINS * FINE)
        # the midpoint rule's error, plus the tails at the edges (slope below 2e-3 there)
        bound = SLOPE_LIP[activation] * w / 2 + 2e-3
        assert layer["sat_graded"] == pytest.approx(lost, abs=bound)
        out_bound = OUT_LIP[activation] * w / 2 + 2e-3
        assert layer["out_mean"] == pytest.approx(mean, abs=out_bound)
        assert layer["out_std"] == pytest.approx(std, abs=2 * out_bound)


def test_graded_saturation_sees_what_the_strict_cut_misses():
    """Glorot & Bengio's stalled top layer: inputs near -3, every sigmoid output below 0.1;
    no value beyond the strict cut 4.356, yet most of the slope is gone."""
    rng = np.random.default_rng(0)
    x = np.stack([rng.normal(0, 0.3, 2000), rng.normal(-3, 0.2, 2000)]).astype(np.float32)
    layers, _ = frame_layers(x, "sigmoid", False)
    assert layers[0]["sat"] == layers[1]["sat"] == 0.0
    assert layers[0]["sat_graded"] < 0.05 < 0.7 < layers[1]["sat_graded"]
    assert layers[1]["out_mean"] < 0.1 < 0.45 < layers[0]["out_mean"]


def test_non_finite_values_count_as_saturated_and_stay_out_of_the_output_mean():
    x = np.zeros((1, 100), np.float32)
    x[0, :10] = np.inf
    x[0, 10:20] = np.nan
    edges = np.array([[-8.0, 8.0]])
    layers, _ = frame_layers(x, "sigmoid", False, edges)
    assert layers[0]["sat_graded"] == pytest.approx(0.2, abs=1e-3)  # 20 of 100 have no slope
    # of the 80 finite zeros, counted at their fine bin's centre (16 / 128 / 2 above 0)
    assert layers[0]["out_mean"] == pytest.approx(0.25 * 16 / 128 / 2 + 0.5, abs=1e-3)


def test_relu_graded_saturation_is_the_dead_fraction_and_outputs_are_not_summarized():
    x = np.array([[-1.0, -0.5, 0.0, 0.5, 1.0, 2.0, 3.0, 4.0]], np.float32)
    layers, _ = frame_layers(x, "relu", False, np.array([[-4.0, 4.0]]))
    assert layers[0]["sat_graded"] == layers[0]["sat"] == pytest.approx(3 / 8)
    assert layers[0]["out_mean"] is None and layers[0]["out_std"] is None
