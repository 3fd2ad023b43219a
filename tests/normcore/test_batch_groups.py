"""Batch statistics per group in one pass (normcore.batch_groups): what the evaluation "with
batch statistics" gives batch by batch, for every model that has a BN, masked RNNs included."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from normcore.batch_groups import grouped_batch_norm, statistics_per_group, supports_groups
from normcore.config import RunConfig
from normcore.data.datasets import with_mask
from normcore.models import build_model
from normcore.train import evaluate


@pytest.mark.parametrize(
    "shape, size", [((40, 6), 4), ((40, 6), 2), ((40, 6), 40), ((12, 3, 5, 5), 3)]
)
@pytest.mark.parametrize("affine", [True, False])
def test_grouped_batch_norm_is_f_batch_norm_batch_by_batch(shape, size, affine):
    """The same kernel on the same numbers; its vectorized paths depend on the channel count,
    so the last bit may differ (at 32 channels and up it is often identical)."""
    torch.manual_seed(0)
    x = torch.randn(*shape) * 3 + 1
    w, b = (torch.randn(shape[1]), torch.randn(shape[1])) if affine else (None, None)
    ref = torch.cat([F.batch_norm(xb, None, None, w, b, True, 0.0, 1e-5) for xb in x.split(size)])
    torch.testing.assert_close(grouped_batch_norm(x, size, w, b, 1e-5), ref, rtol=1e-6, atol=1e-6)


def test_a_batch_that_does_not_split_into_groups_is_refused_naming_both_sizes():
    with pytest.raises(ValueError, match="10 samples.*groups of 4"):
        grouped_batch_norm(torch.randn(10, 3), 4, None, None, 1e-5)
    with pytest.raises(ValueError, match="group size 1"):
        with statistics_per_group(nn.BatchNorm1d(3), 1):
            pass


RNN = dict(model="rnn", dataset="sequence", activation="tanh", depth=1, width=8, seq_len=10)
MODELS = {
    "mlp-bn": (dict(model="mlp", depth=2, width=16), (20,)),
    "conv-bn": (dict(model="convnet", depth=2, width=4), (1, 6, 6)),
    "rnn-bn": (RNN, (10, 3)),
    "rnn-bn-per-step": (dict(RNN, bn_per_step=True), (10, 3)),
    "rnn-bn-masked": (dict(RNN, seq_vary=True), (10, 4)),
    "rnn-bn-per-step-masked-lstm": (
        dict(RNN, seq_vary=True, bn_per_step=True, cell="lstm"),
        (10, 4),
    ),
    "rnn-ln-masked": (dict(RNN, seq_vary=True, norm="layer"), (10, 4)),
}


def _inputs(name: str, shape: tuple[int, ...], n: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    if "masked" not in name:
        return torch.randn(n, *shape, generator=g)
    x = torch.randn(n, shape[0], shape[1] - 1, generator=g)
    # lengths 3..10; every 4th sequence full length, so some groups are all real at each step
    lengths = torch.randint(3, 11, (n,), generator=g)
    lengths[::4] = shape[0]
    return torch.from_numpy(with_mask(x.numpy(), lengths.numpy()))


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("size", [2, 4])
def test_one_pass_over_groups_gives_each_batch_its_own_statistics(name, size):
    """Against the model called batch by batch in train mode: the same logits (up to float
    rounding: a matmul over more rows may sum in another order), running statistics untouched
    inside the context and BN's own forward back after it."""
    changes, shape = MODELS[name]
    cfg = RunConfig(**{"norm": "batch", **changes})
    torch.manual_seed(0)
    model = build_model(cfg, shape, 4)
    # running statistics away from their defaults, so that reading them would show
    model.train()
    with torch.no_grad():
        model(_inputs(name, shape, 32) * 2 + 0.5)
    x = _inputs(name, shape, 24)
    with torch.no_grad():
        ref = torch.cat([model(xb) for xb in x.split(size)])
        buffers = [b.clone() for b in model.buffers()]
        with statistics_per_group(model, size) as grouped:
            got = model(x)
        after = [b.clone() for b in model.buffers()]
    assert grouped
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)
    assert all(torch.equal(a, b) for a, b in zip(buffers, after, strict=True))
    assert all("forward" not in m.__dict__ for m in model.modules())
    with torch.no_grad():  # out of the context: the whole batch's statistics again
        whole = model(x)
    assert not torch.allclose(whole, ref, atol=1e-3) or "ln" in name


def test_evaluate_with_batch_statistics_is_the_batch_by_batch_loop():
    """``evaluate`` in one pass against its definition: each batch of the training size
    normalized on its own, a last partial batch left out."""
    cfg = RunConfig(model="mlp", depth=2, width=16, norm="batch")
    torch.manual_seed(0)
    model = build_model(cfg, (20,), 4).eval()
    x, y = torch.randn(103, 20), torch.randint(0, 4, (103,))
    loss, acc = evaluate(model, x, y, 4, batch_stats=True)
    model.train()
    with torch.no_grad():
        logits = torch.cat([model(xb) for xb in x[:100].split(4)])
    torch.testing.assert_close(loss, F.cross_entropy(logits, y[:100]), rtol=1e-5, atol=1e-6)
    assert acc == (logits.argmax(1) == y[:100]).float().mean()
    model.eval()
    evaluate(model, x, y, 4, batch_stats=True)
    assert not model.training


class _OwnRunningStats(nn.modules.batchnorm._NormBase):
    """A norm with running statistics that batch_groups does not know."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x - x.mean(0)


def test_a_model_with_an_unknown_running_stats_norm_is_evaluated_batch_by_batch():
    model = nn.Sequential(nn.Linear(5, 3), _OwnRunningStats(3, 1e-5, 0.1, True, True))
    assert not supports_groups(model)
    with statistics_per_group(model, 4) as grouped:
        assert not grouped
    assert supports_groups(nn.Sequential(nn.Linear(5, 3), nn.BatchNorm1d(3), nn.LayerNorm(3)))
    # evaluate still gives the loop's answer: each batch of 4 centred on its own mean
    model.train()
    x, y = torch.randn(16, 5), torch.randint(0, 3, (16,))
    loss, _ = evaluate(model, x, y, 4, batch_stats=True)
    with torch.no_grad():
        logits = torch.cat([model(xb) for xb in x.split(4)])
    torch.testing.assert_close(loss, F.cross_entropy(logits, y))
