"""The norm registry against an independent float64 numpy recomputation, plus name handling."""

import json

import numpy as np
import pytest
import torch
from torch import nn

from normcore.config import NORM_NAMES
from normcore.norms import (
    NORMS,
    create_norm_layer,
    make_conv2d,
    make_linear,
    norm_affine,
    norm_catalog,
    resolve,
)

BN_EPS = LN_EPS = 1e-5  # PyTorch's defaults, which the registry keeps
RMS_EPS = np.finfo(np.float64).eps  # nn.RMSNorm's eps=None means finfo(dtype).eps


def _standardize(x: np.ndarray, axes: tuple[int, ...], eps: float) -> np.ndarray:
    mean = x.mean(axis=axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)  # biased, as every norm uses
    return (x - mean) / np.sqrt(var + eps)


def _reference(name: str, x: np.ndarray, groups: int) -> np.ndarray:
    """Normalization without g, b, from the papers' definitions. x: (B, C) or (B, C, H, W)."""
    spatial = tuple(range(2, x.ndim))
    if name == "none":
        return x
    if name == "batch":
        return _standardize(x, (0, *spatial), BN_EPS)
    if name == "layer":
        return _standardize(x, tuple(range(1, x.ndim)), LN_EPS)
    if name == "instance":  # a [B, C] step has no positions: the sample's features are one instance
        return _standardize(x, spatial or (1,), LN_EPS)
    if name == "group":
        b, c = x.shape[:2]
        g = x.reshape(b, groups, c // groups, *x.shape[2:])
        return _standardize(g, tuple(range(2, g.ndim)), LN_EPS).reshape(x.shape)
    if name == "rms":
        axes = tuple(range(1, x.ndim))
        return x / np.sqrt((x**2).mean(axis=axes, keepdims=True) + RMS_EPS)
    raise AssertionError(name)


def _randomize_affine(module: nn.Module, gen: torch.Generator) -> None:
    for p in module.parameters():
        p.data = torch.randn(p.shape, generator=gen, dtype=p.dtype) * 0.5 + 1.0


BETWEEN = [n for n, s in NORMS.items() if not s.in_linear]


@pytest.mark.parametrize("dims", [1, 2])
@pytest.mark.parametrize("name", BETWEEN)
def test_norm_layer_matches_float64_reference(name: str, dims: int) -> None:
    gen = torch.Generator().manual_seed(1)
    shape = (6, 8) if dims == 1 else (6, 8, 3, 4)
    x = torch.randn(shape, generator=gen, dtype=torch.float64) * 3 + 2
    layer = create_norm_layer(name, 8, dims=dims, groups=4).double().train()
    _randomize_affine(layer, gen)
    g, b = norm_affine(layer)
    want = _reference(name, x.numpy(), groups=4)
    view = (1, -1) + (1,) * (dims - 1) * 2
    if g is not None:
        want = want * g.detach().numpy().reshape(view)
    if b is not None:
        want = want + b.detach().numpy().reshape(view)
    torch.testing.assert_close(layer(x), torch.from_numpy(want), rtol=1e-10, atol=1e-10)


def test_instance_norm_normalizes_each_channel_over_positions() -> None:
    x = torch.randn(4, 5, 7, dtype=torch.float64)
    got = create_norm_layer("instance", 5, affine=False).double()(x)
    torch.testing.assert_close(got, torch.from_numpy(_standardize(x.numpy(), (2,), LN_EPS)))


def test_batch_norm_updates_running_stats_with_momentum_one_tenth() -> None:
    layer = create_norm_layer("batch", 3).double()
    x = torch.randn(50, 3, dtype=torch.float64) + 4
    layer(x)
    torch.testing.assert_close(layer.running_mean, 0.1 * x.mean(0))
    assert NORMS["batch"].properties["running_stats"]


def _unit_rows(v: np.ndarray) -> np.ndarray:
    flat = v.reshape(v.shape[0], -1)
    return (flat / np.linalg.norm(flat, axis=1, keepdims=True)).reshape(v.shape)


@pytest.mark.parametrize("name", list(NORMS))
def test_make_linear_matches_float64_reference(name: str) -> None:
    gen = torch.Generator().manual_seed(2)
    layer = make_linear(name, 5, 7).double()
    _randomize_affine(layer, gen)
    x = torch.randn(9, 5, generator=gen, dtype=torch.float64) * 4
    xn = x.numpy()
    g, b = (None if t is None else t.detach().numpy() for t in norm_affine(layer))
    if name == "weight":
        v = layer.parametrizations.weight.original1.detach().numpy()
        want = xn @ (g[:, None] * _unit_rows(v)).T + b
    elif name == "cosine":
        cos = (xn / np.linalg.norm(xn, axis=1, keepdims=True)) @ _unit_rows(
            layer.weight.detach().numpy()
        ).T
        want = g * cos + b
    else:
        assert type(layer) is nn.Linear
        want = xn @ layer.weight.detach().numpy().T + layer.bias.detach().numpy()
    torch.testing.assert_close(layer(x), torch.from_numpy(want), rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("name", ["weight", "cosine", "none"])
def test_make_conv2d_matches_float64_reference(name: str) -> None:
    gen = torch.Generator().manual_seed(3)
    conv = make_conv2d(name, 3, 4, 3, padding=1).double()
    _randomize_affine(conv, gen)
    x = torch.randn(2, 3, 5, 5, generator=gen, dtype=torch.float64)
    patches = nn.functional.unfold(x, 3, padding=1).numpy()  # (B, 27, 25)
    g, b = (None if t is None else t.detach().numpy()[None, :, None] for t in norm_affine(conv))
    if name == "weight":
        w = g[0] * _unit_rows(conv.parametrizations.weight.original1.detach().numpy()).reshape(
            4, -1
        )
        want = np.einsum("ok,bkp->bop", w, patches) + b
    elif name == "cosine":
        w = _unit_rows(conv.weight.detach().numpy()).reshape(4, -1)
        cos = np.einsum("ok,bkp->bop", w, patches) / np.linalg.norm(patches, axis=1)[:, None]
        want = g * cos + b
    else:
        w = conv.weight.detach().numpy().reshape(4, -1)
        want = np.einsum("ok,bkp->bop", w, patches) + conv.bias.detach().numpy()[None, :, None]
    torch.testing.assert_close(conv(x), torch.from_numpy(want.reshape(2, 4, 5, 5)))


def test_weight_norm_gradient_wrt_v_is_orthogonal_to_w() -> None:
    """Salimans & Kingma 2016: ∇_v = (g/‖v‖)(I − w wᵀ/‖w‖²)∇_w, so ∇_v ⟂ w row by row."""
    torch.manual_seed(0)
    layer = make_linear("weight", 6, 4).double()
    x = torch.randn(32, 6, dtype=torch.float64)
    (layer(x).tanh() ** 2).sum().backward()
    v = layer.parametrizations.weight.original1
    w = layer.weight.detach()
    cos = (v.grad * w).sum(1) / (v.grad.norm(dim=1) * w.norm(dim=1))
    torch.testing.assert_close(cos, torch.zeros(4, dtype=torch.float64), atol=1e-12, rtol=0)
    assert v.grad.abs().max() > 1e-3  # the gradient itself is not trivially zero


def test_weight_norm_without_affine_is_a_fixed_unit_direction() -> None:
    layer = make_linear("weight", 6, 4, affine=False)
    torch.testing.assert_close(layer.weight.norm(dim=1), torch.ones(4))
    assert layer.bias is None
    assert norm_affine(layer) == (None, None)
    assert all(p.requires_grad is False for p in [layer.parametrizations.weight.original0])


def test_cosine_norm_of_a_zero_input_is_zero_with_a_finite_gradient() -> None:
    layer = make_linear("cosine", 5, 3, affine=False)
    x = torch.zeros(2, 5, requires_grad=True)
    y = layer(x)
    y.sum().backward()
    assert torch.equal(y, torch.zeros(2, 3))
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize("name", list(NORMS))
def test_affine_flag_controls_the_second_scale_and_shift(name: str) -> None:
    spec = NORMS[name]
    build = make_linear if spec.in_linear else create_norm_layer
    on = build(name, 8, 8) if spec.in_linear else build(name, 8)
    off = build(name, 8, 8, affine=False) if spec.in_linear else build(name, 8, affine=False)
    assert (norm_affine(on)[0] is not None) == spec.properties["has_affine"]
    assert norm_affine(off) == (None, None)


@pytest.mark.parametrize(
    ("spelling", "name"),
    [
        ("Batch_Norm", "batch"),
        ("BN", "batch"),
        ("LayerNorm", "layer"),
        ("RMSNorm", "rms"),
        ("gn", "group"),
        ("weight-norm", "weight"),
        ("Identity", "none"),
        ("cosine", "cosine"),
    ],
)
def test_names_are_normalized(spelling: str, name: str) -> None:
    assert resolve(spelling).name == name


@pytest.mark.parametrize(
    ("cls", "name"),
    [
        (nn.BatchNorm2d, "batch"),
        (nn.LayerNorm, "layer"),
        (nn.GroupNorm, "group"),
        (nn.RMSNorm, "rms"),
        (nn.InstanceNorm2d, "instance"),
        (nn.Identity, "none"),
    ],
)
def test_layer_classes_are_accepted_in_place_of_names(cls: type, name: str) -> None:
    assert resolve(cls).name == name
    assert isinstance(create_norm_layer(cls, 4), nn.Module)


def test_unknown_norm_name_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match="norm 'bn2' is unknown; known: none, batch, layer"):
        create_norm_layer("bn2", 4)


def test_unknown_norm_class_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="norm class 'Linear' is unknown; known: .*BatchNorm1d"):
        create_norm_layer(nn.Linear, 4)


def test_group_count_must_divide_features() -> None:
    with pytest.raises(ValueError, match="groups 3 must divide num_features 8"):
        create_norm_layer("group", 8, groups=3)


def test_catalog_is_json_ready_and_in_canonical_order() -> None:
    catalog = json.loads(json.dumps(norm_catalog()))
    assert [entry["name"] for entry in catalog] == list(NORM_NAMES)
    for entry in catalog:
        assert set(entry["properties"]) == set(NORMS["batch"].properties)
        assert entry["note"] and "\n" not in entry["note"]
    assert dict((e["name"], e["aliases"]) for e in catalog)["batch"] == ["bn"]


def test_conv_options_other_than_stride_padding_dilation_are_rejected() -> None:
    with pytest.raises(ValueError, match=r"conv option\(s\) \['groups'\] not supported"):
        make_conv2d("cosine", 4, 4, 3, groups=2)


def test_cosine_conv_with_stride_is_scale_invariant_in_weights_and_data() -> None:
    conv = make_conv2d("cosine", 3, 4, 3, stride=2, padding=1, affine=False).double()
    x = torch.randn(2, 3, 7, 7, dtype=torch.float64) + 1
    y = conv(x)
    assert y.shape == (2, 4, 4, 4) and y.abs().max() <= 1
    conv.weight.data *= 5
    torch.testing.assert_close(conv(0.2 * x), y)
