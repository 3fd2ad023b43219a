"""W1 and Jensen–Shannon on fixed bins against scipy; the ICS measure against a by-hand G′."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.spatial.distance import jensenshannon
from scipy.stats import wasserstein_distance

from normcore.config import RunConfig
from normcore.drift import ics, jensen_shannon, wasserstein1
from normcore.models import build_model


def test_wasserstein1_matches_scipy_on_bin_positions():
    rng = np.random.default_rng(0)
    p, q = rng.integers(0, 50, (3, 10)), rng.integers(0, 50, (3, 10))
    width = np.array([0.5, 1.0, 2.0])
    got = wasserstein1(p, q, width)
    for i in range(3):
        pos = np.arange(10) * width[i]  # under/over are one bin outside: equal spacing
        assert got[i] == pytest.approx(wasserstein_distance(pos, pos, p[i], q[i]), rel=1e-12)


def test_jensen_shannon_matches_scipy_and_is_bounded():
    rng = np.random.default_rng(1)
    p, q = rng.integers(0, 9, (4, 12)), rng.integers(0, 9, (4, 12))
    p[0, :6], q[0, 6:] = 0, 0  # disjoint supports: exactly 1 bit
    got = jensen_shannon(p, q)
    for i in range(4):
        assert got[i] == pytest.approx(jensenshannon(p[i], q[i], base=2) ** 2, abs=1e-12)
    assert got[0] == pytest.approx(1.0)
    assert jensen_shannon(p[1], p[1]) == 0.0


def test_numpy_and_torch_agree():
    rng = np.random.default_rng(2)
    p, q = rng.random((2, 16)), rng.random((2, 16))
    w1 = wasserstein1(torch.from_numpy(p), torch.from_numpy(q), 0.25)
    js = jensen_shannon(torch.from_numpy(p), torch.from_numpy(q))
    np.testing.assert_allclose(w1.numpy(), wasserstein1(p, q, 0.25), rtol=1e-12)
    np.testing.assert_allclose(js.numpy(), jensen_shannon(p, q), rtol=1e-12)


def test_shifting_a_histogram_by_k_bins_moves_w1_by_k_widths():
    p = np.array([0, 3, 5, 2, 0, 0, 0])
    assert wasserstein1(p, np.roll(p, 2), 0.5) == pytest.approx(2 * 0.5)


def test_an_empty_histogram_gives_nan_not_an_error():
    with np.errstate(invalid="ignore"):
        assert np.isnan(wasserstein1(np.zeros(5), np.ones(5)))
        assert np.isnan(jensen_shannon(np.zeros(5), np.ones(5)))


def test_ics_equals_the_gradient_after_earlier_layers_stepped():
    torch.manual_seed(0)
    cfg = RunConfig(depth=3, width=8, norm="batch", activation="tanh", batch_size=16)
    model = build_model(cfg, (5,), 3)
    x, y = torch.randn(16, 5), torch.randint(0, 3, (16,))
    weights = [p.weight for p in model.probe_points()]
    blocks = [list(b.parameters()) for b in model.blocks]
    F.cross_entropy(model(x), y).backward()
    grads = [w.grad.clone() for w in weights]
    old = [p.detach().clone() for p in model.parameters()]
    torch.optim.SGD(model.parameters(), lr=0.3).step()
    new = [p.detach().clone() for p in model.parameters()]
    stats_before = [b.clone() for b in model.buffers()]
    got = ics(model, blocks, weights, grads, old, lambda: F.cross_entropy(model(x), y))
    # by hand, for layer 2 (index 2): layers 0 and 1 stepped, everything else as before
    twin = build_model(cfg, (5,), 3)
    twin.load_state_dict(model.state_dict())
    stepped = {id(p) for b in blocks[:2] for p in b}
    with torch.no_grad():
        for p, t, o, n in zip(model.parameters(), twin.parameters(), old, new, strict=True):
            t.copy_(n if id(p) in stepped else o)
    F.cross_entropy(twin(x), y).backward()
    g, g2 = grads[2].flatten().double(), twin.blocks[2].linear.weight.grad.flatten().double()
    assert got[2, 0].item() == pytest.approx((g - g2).norm().item(), rel=1e-5)
    assert got[2, 1].item() == pytest.approx(F.cosine_similarity(g, g2, dim=0).item(), rel=1e-6)
    assert got[0].tolist() == [0.0, pytest.approx(1.0)]  # nothing below layer 0 moved
    assert 0 < got[1, 0] and got[1, 1] < 1
    for p, n in zip(model.parameters(), new, strict=True):  # the model is left as it was
        assert torch.equal(p, n)
    for b, s in zip(model.buffers(), stats_before, strict=True):  # BN running stats too
        assert torch.equal(b, s)
