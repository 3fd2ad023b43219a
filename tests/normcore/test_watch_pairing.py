"""watch(model) pairs a layer with a norm only when the norm reads the layer's very output
(normcore.watch_pairs), on any model: a BERT block's LayerNorm reads a residual sum, a norm
after an in-place ``out += x`` reads a changed tensor, a channels-last LayerNorm reads its
conv's output permuted (a pair). And transformers' Conv1D, GPT-2's linear layer, is picked."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from normcore.probe import kernels
from normcore.watch import Watch, watch
from normcore.watch_layers import MaybePair, pick_layers
from tests.utils.own_model import training_step
from tests.utils.watch_checks import (
    PATHS,
    Clones,
    assert_frames_match,
    assert_on_path,
    watched,
)

pytestmark = pytest.mark.usefixtures("one_thread", "eager_in_hooks")


class BertOutput(nn.Module):
    """transformers' BertOutput: ``dense``, ``LayerNorm``, ``dropout`` registered in this order,
    but the norm reads the residual sum."""

    def __init__(self, inner: int, hidden: int) -> None:
        super().__init__()
        self.dense = nn.Linear(inner, hidden)
        self.LayerNorm = nn.LayerNorm(hidden)
        self.dropout = nn.Dropout(0.1)

    def forward(self, h, residual):
        return self.LayerNorm(self.dropout(self.dense(h)) + residual)  # (B, T, hidden)


class InPlaceResidual(nn.Module):
    """The norm reads the layer's output object, but after ``+= x`` changed it in place."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.dense, self.norm = nn.Linear(hidden, hidden), nn.LayerNorm(hidden)

    def forward(self, x):
        out = self.dense(x)
        out += x
        return self.norm(out)


class ChannelsLast(nn.Module):
    """ConvNeXt's norm: a LayerNorm over channels of the conv's output permuted (a pair)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(channels, channels, 3, padding=1, groups=channels)
        self.norm = nn.LayerNorm(channels)

    def forward(self, x):  # (B, C, H, W) -> (B, H, W, C)
        return F.relu(self.norm(self.dwconv(x).permute(0, 2, 3, 1)))


class BertStyle(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed, self.embed_norm = nn.Linear(6, 16), nn.LayerNorm(16)  # a pair
        self.intermediate = nn.Linear(16, 32)
        self.output = BertOutput(32, 16)
        self.inplace = InPlaceResidual(16)
        self.head = nn.Linear(16, 3)

    def forward(self, x):  # (B, T, 6)
        x = self.embed_norm(self.embed(x))  # (B, T, 16)
        x = self.output(F.gelu(self.intermediate(x)), x)
        return self.head(self.inplace(x).mean(1))  # (B, 3)

    def inputs(self):
        return torch.randn(8, 5, 6), torch.randint(0, 3, (8,))

    def pairs(self):
        """What watch(model) watches after the first step."""
        return {
            "embed": (self.embed, self.embed_norm),
            "intermediate": self.intermediate,
            "output.dense": self.output.dense,
            "inplace.dense": self.inplace.dense,
            "head": self.head,
        }


class ConvNeXtish(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.block = ChannelsLast(8)
        self.head = nn.Linear(8, 4)

    def forward(self, x):
        return self.head(self.block(self.stem(x)).mean((1, 2)))

    def inputs(self):
        return torch.randn(4, 3, 6, 6), torch.randint(0, 4, (4,))

    def pairs(self):
        return {
            "stem": self.stem,
            "block.dwconv": (self.block.dwconv, self.block.norm),
            "head": self.head,
        }


def run_watched(model, path: str, steps: int = 3, **options) -> tuple[Watch, Clones]:
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    w = watch(model, optimizer=opt, bins=16, path=path, **options)
    clones = Clones(model.pairs())
    for _ in range(steps):
        clones.step(w, model, opt, *model.inputs())
    w.close()
    clones.remove()
    return w, clones


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("build", [BertStyle, ConvNeXtish])
def test_a_pair_stands_only_where_the_norm_reads_the_layers_output(build, path, monkeypatch):
    """The module order proposes (dense, LayerNorm) pairs; the first step keeps only those
    whose norm reads the layer's output, and every frame, the first included, describes the
    tensors it names: a float64 recomputation from clones taken in forward hooks."""
    if path == "torch":
        monkeypatch.setattr(kernels, "AVAILABLE", False)
    torch.manual_seed(0)
    model = build()
    expected = model.pairs()
    proposed = pick_layers(model)
    assert list(proposed) == list(expected)
    if build is BertStyle:  # the module order pairs them all
        assert isinstance(proposed["output.dense"], MaybePair)
        assert proposed["inplace.dense"] == (model.inplace.dense, model.inplace.norm)
    w, clones = run_watched(model, path, activation="gelu")
    assert watched(w) == list(expected.items())
    assert [f["step"] for f in w.frames] == [1, 2, 3]
    assert_on_path(w, path)
    assert_frames_match(w, clones, 16, f"{build.__name__} {path}")
    frame = w.frames[0]["layers"]
    unpaired = [layer for layer in frame if not isinstance(expected[layer["name"]], tuple)]
    assert all(layer["sat"] == layer["sat_pre"] for layer in unpaired)  # one tensor


def hooks(model: nn.Module) -> dict[str, tuple[int, int]]:
    """Each module's forward hooks and forward-pre-hooks, counted, where it has any."""
    counts = {
        name: (len(m._forward_hooks), len(m._forward_pre_hooks))
        for name, m in model.named_modules()
    }
    return {name: c for name, c in counts.items() if any(c)}


def test_once_judged_only_the_kept_probes_hooks_stay():
    """After the first step the pairs' checks and the probes that lost are off the model: a
    pair's probe reads its layer and its norm, a layer alone is read by its probe's two
    readers (pre and act); nothing is left after close."""
    model = BertStyle()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    w = watch(model, optimizer=opt, activation="gelu")
    assert hooks(model)["output.LayerNorm"] == (1, 1)  # the proposed pair's reader, its check
    training_step(w, model, opt, *model.inputs())
    alone = (2, 0)
    assert hooks(model) == {
        "embed": (1, 0),
        "embed_norm": (1, 0),
        "intermediate": alone,
        "output.dense": alone,
        "inplace.dense": alone,
        "head": alone,
    }
    training_step(w, model, opt, *model.inputs())
    w.close()
    assert hooks(model) == {}
    assert [f["step"] for f in w.frames] == [1, 2]


def test_a_pair_given_by_hand_that_is_none_is_named_at_the_first_step():
    """The forward pass runs; measure() raises, naming the layer and both modules; a true
    pair given by hand is kept."""
    model = BertStyle()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    w = Watch(
        {
            "out": (model.output.dense, model.output.LayerNorm),
            "embed": (model.embed, model.embed_norm),
        },
        activation="gelu",
        optimizer=opt,
    )
    message = (
        r"layer 'out': the norm LayerNorm\(\(16,\).*\) does not read the output of the layer "
        r"Linear\(in_features=32, out_features=16, bias=True\) \(1 of its 1 call\(s\) read "
        r"another tensor"
    )
    with pytest.raises(ValueError, match=message):
        training_step(w, model, opt, *model.inputs())
    with pytest.raises(ValueError, match=message):  # and at the next probed step again
        training_step(w, model, opt, *model.inputs())
    w.close()
    assert w.frames == []
    w = Watch({"embed": (model.embed, model.embed_norm)}, activation="gelu", optimizer=opt)
    training_step(w, model, opt, *model.inputs())
    w.close()
    assert watched(w) == [("embed", (model.embed, model.embed_norm))]
    w = Watch({"x": (model.inplace.dense, model.inplace.norm)}, activation="gelu")
    with pytest.raises(ValueError, match="layer 'x': the norm LayerNorm"):
        training_step(w, model, opt, *model.inputs())
    w.close()


class TinyGPT2(nn.Module):
    """A 2-layer GPT-2 of random weights (no download) and a classifier on its last token."""

    def __init__(self, transformers) -> None:
        super().__init__()
        config = transformers.GPT2Config(
            n_layer=2, n_embd=16, n_head=2, n_positions=16, vocab_size=50
        )
        self.gpt = transformers.GPT2Model(config)
        self.head = nn.Linear(16, 3)

    def forward(self, ids):  # (B, T)
        return self.head(self.gpt(input_ids=ids).last_hidden_state[:, -1])  # (B, 3)

    def inputs(self):
        return torch.randint(0, 50, (4, 6)), torch.randint(0, 3, (4,))

    def pairs(self):
        return {
            **{
                f"gpt.h.{i}.{part}": module
                for i, block in enumerate(self.gpt.h)
                for part, module in (
                    ("attn.c_attn", block.attn.c_attn),
                    ("attn.c_proj", block.attn.c_proj),
                    ("mlp.c_fc", block.mlp.c_fc),
                    ("mlp.c_proj", block.mlp.c_proj),
                )
            },
            "head": self.head,
        }


@pytest.mark.parametrize("path", PATHS)
def test_gpt2s_conv1d_layers_are_picked_and_measured(path, monkeypatch):
    """GPT-2's linear layers are transformers' Conv1D (weight stored (in, out)): each is a
    layer of the frames, its activation statistics from its output and its weight and
    gradient norms those of its weight."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # built from a config: nothing to download
    transformers = pytest.importorskip("transformers")
    if path == "torch":
        monkeypatch.setattr(kernels, "AVAILABLE", False)
    torch.manual_seed(0)
    model = TinyGPT2(transformers)
    expected = model.pairs()
    assert pick_layers(model) == expected
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    norms: list[dict[str, tuple[float, float]]] = []

    def before_step(optimizer, args, kwargs):  # the weights and gradients collect() saw
        norms.append(
            {
                name: (m.weight.double().norm().item(), m.weight.grad.double().norm().item())
                for name, m in expected.items()
            }
        )

    opt.register_step_pre_hook(before_step)
    w = watch(model, optimizer=opt, bins=16, path=path, activation="gelu")
    clones = Clones(expected)
    for _ in range(3):
        clones.step(w, model, opt, *model.inputs())
    w.close()
    assert watched(w) == list(expected.items())
    assert_frames_match(w, clones, 16, f"gpt2 {path}")
    for frame, seen in zip(w.frames, norms, strict=True):
        for layer in frame["layers"]:
            weight, grad = seen[layer["name"]]
            assert layer["weight_norm"] == pytest.approx(weight, rel=1e-5), layer["name"]
            assert layer["grad_norm"] == pytest.approx(grad, rel=1e-4), layer["name"]
