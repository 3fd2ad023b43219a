"""Models built from a RunConfig: shapes, norm placement, probe points, init."""

import pytest
import torch
from torch import nn

from normcore.config import NORM_NAMES, RunConfig
from normcore.models import ConvNet, RecurrentLayer, build_model
from normcore.norms import norm_affine

pytestmark = pytest.mark.usefixtures("one_thread")


def sample(cfg: RunConfig, batch: int = 6) -> tuple[torch.Tensor, tuple[int, ...]]:
    shape = {"mlp": (1, 8, 8), "convnet": (1, 8, 8), "rnn": (7, 3)}[cfg.model]
    return torch.randn(batch, *shape), shape


def capture(model) -> dict[str, list[torch.Tensor]]:
    """Record every tap's output, in call order, per probe point."""
    seen: dict[str, list[torch.Tensor]] = {}
    for p in model.probe_points():
        for kind, tap in (("pre", p.pre), ("act", p.act)):
            refs = seen.setdefault(f"{p.name}.{kind}", [])
            tap.register_forward_hook(lambda m, a, out, refs=refs: refs.append(out))
    return seen


CASES = [
    (m, n) for m in ("mlp", "convnet", "rnn") for n in NORM_NAMES if (m, n) != ("mlp", "instance")
]


@pytest.mark.parametrize(("model", "norm"), CASES)
def test_every_model_and_norm_builds_runs_and_exposes_probe_points(model, norm):
    cfg = RunConfig(
        model=model,
        norm=norm,
        depth=2,
        width=8,
        groups=2,
        dataset="sequence" if model == "rnn" else "digits",
    )
    x, shape = sample(cfg)
    net = build_model(cfg, shape, 5)
    seen = capture(net)
    out = net(x)
    assert out.shape == (6, 5)
    out.sum().backward()
    points = net.probe_points()
    assert [p.name for p in points] == ["h1", "h2"]
    for p in points:
        assert p.weight.grad is not None  # the weight the optimizer moves
        g, b = norm_affine(p.affine)
        has_affine = norm not in ("none",)
        assert (g is not None or b is not None) == has_affine
    steps = 7 if model == "rnn" else 1  # the RNN's taps fire once per time step
    shapes = {t.shape for refs in seen.values() for t in refs}
    assert all(len(refs) == steps for refs in seen.values())
    assert len(shapes) == 1  # every hidden layer looks alike: one stack batches them


@pytest.mark.parametrize("placement", ["before", "after"])
def test_the_activation_input_is_normalized_only_when_the_norm_comes_before(placement):
    cfg = RunConfig(norm="batch", placement=placement, depth=2, width=16, affine=False)
    net = build_model(cfg, (10,), 3)
    seen = capture(net)
    net(torch.randn(64, 10) * 5 + 3)
    act, pre = seen["h1.act"][0], seen["h1.pre"][0]
    if placement == "before":  # BN in train mode: per-unit mean 0, variance 1
        torch.testing.assert_close(act.mean(0), torch.zeros(16), atol=1e-5, rtol=0)
        torch.testing.assert_close(act.var(0, unbiased=False), torch.ones(16), atol=1e-3, rtol=0)
    else:  # the activation reads the raw pre-activation, the norm follows it
        assert act is pre
        assert isinstance(net.blocks[0].norm, nn.BatchNorm1d)


def test_depth_and_width_are_what_the_config_says():
    deep = build_model(RunConfig(depth=32, width=3), (4,), 2)
    assert len(deep.probe_points()) == 32
    assert deep.blocks[0].linear.weight.shape == (3, 4)
    assert deep.blocks[31].linear.weight.shape == (3, 3)
    assert build_model(RunConfig(depth=1, width=1), (4,), 2)(torch.randn(2, 4)).shape == (2, 2)


@pytest.mark.parametrize("norm", ["none", "weight", "cosine"])
def test_gaussian_init_draws_weights_from_n0_std(norm):
    torch.manual_seed(0)
    cfg = RunConfig(norm=norm, init="gaussian", init_std=0.05, depth=2, width=200)
    net = build_model(cfg, (300,), 4)
    layer = net.blocks[1].linear
    w = layer.weight.detach()  # WN: the effective weight g·v/‖v‖
    assert w.std().item() == pytest.approx(0.05, rel=0.02)
    assert w.mean().abs().item() < 0.002
    if norm == "weight":  # g = ‖w‖ row by row, so the layer computes exactly w·x
        g = layer.parametrizations.weight.original0.detach().flatten()
        torch.testing.assert_close(g, w.norm(dim=1))
    if norm != "cosine":
        assert torch.count_nonzero(layer.bias) == 0


def test_affine_off_leaves_the_norm_without_g_and_b():
    net = build_model(RunConfig(norm="layer", affine=False), (4,), 2)
    assert norm_affine(net.probe_points()[0].affine) == (None, None)


def test_convnet_keeps_the_map_size_and_takes_flat_digits():
    cfg = RunConfig(model="convnet", norm="group", groups=2, width=4, depth=3)
    net = build_model(cfg, (1, 8, 8), 10)
    assert isinstance(net, ConvNet)
    seen = capture(net)
    assert net(torch.randn(5, 64)).shape == (5, 10)
    assert seen["h3.act"][0].shape == (5, 4, 8, 8)


def test_lstm_taps_read_the_candidate_gate_before_and_after_the_norm():
    cfg = RunConfig(
        model="rnn", dataset="sequence", cell="lstm", norm="layer", width=6, depth=1, affine=False
    )
    net = build_model(cfg, (4, 3), 2)
    layer = net.blocks[0]
    assert isinstance(layer, RecurrentLayer) and layer.linear.out_features == 24
    seen = capture(net)
    x = torch.randn(5, 4, 3)
    net(x)
    pre, act = seen["h1.pre"][0], seen["h1.act"][0]  # the first time step, h_0 = 0
    # LN over all four gates' summed inputs; the taps slice out the candidate g
    z = layer.linear(torch.cat([x[:, 0], torch.zeros(5, 6)], dim=1))  # (B, 4H)
    torch.testing.assert_close(pre, z[:, 18:])
    torch.testing.assert_close(act, nn.functional.layer_norm(z, (24,))[:, 18:])
    assert len(seen["h1.act"]) == 4  # once per time step


@pytest.mark.parametrize("model", ["mlp", "convnet"])
def test_a_hook_on_any_module_sees_its_call(model):
    """The blocks call their parts straight through ``forward`` while nothing hooks them
    (nn.Module's call costs a small step per module): a forward hook or pre-hook on any
    module, or a global one, still sees every call, and a pre-hook's new input is used."""
    cfg = RunConfig(model=model, depth=2, width=8, norm="batch", dataset="digits")
    x, shape = sample(cfg)
    net = build_model(cfg, shape, 5)
    plain = net(x)
    calls: list[nn.Module] = []
    handles = [
        m.register_forward_hook(lambda m, a, out: calls.append(m))
        for m in net.modules()
        if not isinstance(m, nn.ModuleList)  # (a container: never called)
    ]
    net(x)
    assert set(calls) == {m for m in net.modules() if not isinstance(m, nn.ModuleList)}
    for h in handles:
        h.remove()
    head_input: list[torch.Tensor] = []
    handle = net.head.register_forward_pre_hook(lambda m, a: (a[0] * 0,))
    with torch.nn.modules.module.register_module_forward_hook(
        lambda m, a, out: head_input.append(a[0]) if m is net.head else None
    ):
        zeroed = net(x)
    handle.remove()
    assert head_input and not head_input[0].any()  # the global hook saw the pre-hook's input
    assert torch.allclose(zeroed, net.head.bias.expand_as(zeroed))
    assert torch.equal(net(x), plain)
