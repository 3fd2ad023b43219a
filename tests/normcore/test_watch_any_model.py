"""normcore.watch on models nobody here wrote the probes for: in-place activations, residual
sums, attention, recurrent modules. Each watched layer's statistics must describe its output
as the layer produced it, before any later in-place op, on every probe path."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import normcore
from normcore.probe import kernels
from normcore.probe.probe import Probe
from normcore.watch import Watch, watch
from normcore.watch_layers import pick_layers
from tests.utils.own_model import training_step
from tests.utils.watch_checks import (
    PATHS,
    Clones,
    assert_frames_match,
    assert_on_path,
    watched,
)

pytestmark = pytest.mark.usefixtures("one_thread", "eager_in_hooks")


class ConvBnRelu(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv, self.bn = nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8)
        self.relu = nn.ReLU(inplace=True)  # rewrites the BN output the probe reads
        self.fc = nn.Linear(8 * 6 * 6, 4)

    def forward(self, x):
        return self.fc(self.relu(self.bn(self.conv(x))).flatten(1))

    def inputs(self):
        return torch.randn(16, 3, 8, 8), torch.randint(0, 4, (16,))


class BasicBlock(nn.Module):
    """torchvision's ResNet BasicBlock: in-place ReLUs and an in-place residual sum."""

    def __init__(self, planes: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += identity
        return self.relu(out)


class TinyResNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = nn.Sequential(BasicBlock(8), BasicBlock(8))
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        h = self.layer1(self.relu(self.bn1(self.conv1(x))))
        return self.fc(h.mean((2, 3)))

    def inputs(self):
        return torch.randn(8, 3, 8, 8), torch.randint(0, 5, (8,))


class Encoder(nn.Module):
    """torch's transformer encoder layer, its feed-forward ReLU in place."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(6, 16)
        self.block = nn.TransformerEncoderLayer(
            16, 4, 32, dropout=0.0, batch_first=True, activation=nn.ReLU(inplace=True)
        )
        self.head = nn.Linear(16, 3)

    def forward(self, x):
        return self.head(self.block(self.embed(x)).mean(1))

    def inputs(self):
        return torch.randn(8, 5, 6), torch.randint(0, 3, (8,))


class LSTMNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(4, 12, batch_first=True)
        self.fc, self.ln = nn.Linear(12, 10), nn.LayerNorm(10)
        self.head = nn.Linear(10, 3)

    def forward(self, x):
        out, _ = self.lstm(x)
        h = F.relu(self.ln(self.fc(out[:, -1])), inplace=True)
        return self.head(h)

    def inputs(self):
        return torch.randn(8, 7, 4), torch.randint(0, 3, (8,))


# the model, its layers as Watch takes them, and what watch(model) picks
MODELS = {
    "conv-bn-relu": (ConvBnRelu, lambda m: {"conv": (m.conv, m.bn), "fc": m.fc}),
    "resnet-block": (
        TinyResNet,
        lambda m: {
            "conv1": (m.conv1, m.bn1),
            **{
                f"layer1.{i}.conv{j}": (getattr(b, f"conv{j}"), getattr(b, f"bn{j}"))
                for i, b in enumerate(m.layer1)
                for j in (1, 2)
            },
            "fc": m.fc,
        },
    ),
    "transformer": (
        Encoder,
        lambda m: {
            "embed": m.embed,
            "block.self_attn": m.block.self_attn,
            "block.linear1": m.block.linear1,
            "block.linear2": m.block.linear2,
            "head": m.head,
        },
    ),
    "lstm": (LSTMNet, lambda m: {"lstm": m.lstm, "fc": (m.fc, m.ln), "head": m.head}),
}


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("name", list(MODELS))
def test_statistics_describe_each_output_as_its_layer_produced_it(name, path, monkeypatch):
    """A clone of each watched output taken in a forward hook (before any in-place op that
    follows), recomputed in float64, against every probed frame, the first one included."""
    if path == "torch":  # a CPU without numba: torch's batch, statistics after backward
        monkeypatch.setattr(kernels, "AVAILABLE", False)
    torch.manual_seed(0)
    build, layer_map = MODELS[name]
    model = build()
    layers = layer_map(model)
    assert list(pick_layers(model)) == list(layers)  # what watch(model) picks
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    w = watch(model, optimizer=opt, activation="relu", bins=16, path=path)
    clones = Clones(layers)
    for _ in range(3):
        clones.step(w, model, opt, *model.inputs())
    w.close()
    assert watched(w) == list(layers.items())  # the pairs the first step kept
    assert [f["step"] for f in w.frames] == [1, 2, 3]
    assert_on_path(w, path)
    # after the first step the host paths probe the layers of equal shapes together
    assert sum(p.L for p in w.probes) == len(layers)
    shapes = [p.shapes for p in w.probes]
    host = path in ("in-hooks", "after-backward")
    assert len(set(shapes)) == len(shapes) if host else len(w.probes) == len(layers)
    assert all([layer["name"] for layer in f["layers"]] == list(layers) for f in w.frames)
    assert_frames_match(w, clones, 16, f"{name} {path}")


@pytest.mark.skipif(not kernels.AVAILABLE, reason="numba is missing")
def test_probes_join_only_when_alike_and_flushed():
    model = TinyResNet()
    w = watch(model, activation="relu", bins=16)
    with pytest.raises(ValueError, match="join after their first flush"):
        Probe.joined(w.probes[:2])
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    training_step(w, model, opt, *model.inputs())  # the first probed step: flushed, joined
    assert len(w.probes) < len(w.points) and max(p.L for p in w.probes) > 1
    with pytest.raises(ValueError, match="must be alike host probes"):
        Probe.joined(w.probes[:2])  # (of two shapes: one probe each since the join)
    w.close()


def test_normcore_watch_is_callable_and_filters_layers():
    model = TinyResNet()
    w = normcore.watch(model, layers=["layer1.0.conv1", "fc"])
    assert [p.names[0] for p in w.probes] == ["layer1.0.conv1", "fc"]
    w.close()
    w = normcore.watch(model, layers=lambda path, module: path.startswith("layer1.1"))
    assert [p.names[0] for p in w.probes] == ["layer1.1.conv1", "layer1.1.conv2"]
    w.close()
    with pytest.raises(ValueError, match="'layer1.bn1' not among the layers watch picks"):
        normcore.watch(model, layers=["layer1.bn1"])
    with pytest.raises(ValueError, match="no Linear, conv, recurrent or attention layer"):
        normcore.watch(nn.Sequential(nn.ReLU()))


def test_the_activation_is_the_models_own():
    assert watch(LSTMNet()).probes[0].activation == "tanh"
    assert watch(TinyResNet()).probes[0].activation == "relu"
    gelu = nn.TransformerEncoderLayer(8, 2, 16, activation="gelu", batch_first=True)
    assert watch(gelu).probes[0].activation == "gelu"


def test_what_cannot_be_measured_is_named_at_construction():
    m, lstm = Encoder(), LSTMNet()
    with pytest.raises(
        ValueError, match="'x': the second of a pair is the norm after the layer, not a LSTM"
    ):
        Watch({"x": (lstm.fc, lstm.lstm)}, activation="tanh")
    with pytest.raises(ValueError, match="'attn': MultiheadAttention's out_proj is never called"):
        Watch({"attn": m.block.self_attn.out_proj}, activation="relu")
    with pytest.raises(ValueError, match=r"'c': \(BatchNorm2d, Conv2d\) is the wrong way round"):
        Watch({"c": (ConvBnRelu().bn, ConvBnRelu().conv)}, activation="relu")
    with pytest.raises(
        TypeError,
        match="'block': TransformerEncoderLayer has no weight: name its layers, or let watch",
    ):
        Watch({"block": m.block}, activation="relu")


def test_a_module_that_returns_a_tuple_or_never_runs_is_named_by_measure_not_forward():
    """What only the forward pass shows is raised by measure(), after backward, naming the
    layer; the forward pass itself never raises."""

    class Pair(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weight = nn.Parameter(torch.ones(3))

        def forward(self, x):
            return x * self.weight, x

    pair, unused, fc = Pair(), nn.Linear(3, 3), nn.Linear(3, 2)
    cases = (
        ({"pair": pair}, "layer pair: its module returned tuple"),
        ({"unused": unused}, "layer unused: its module never ran"),
    )
    for layers, message in cases:
        w = Watch(layers, activation="relu")
        with pytest.raises(ValueError, match=message), w.step():
            logits = fc(pair(torch.randn(4, 3))[0])  # the forward pass: no error
            loss = logits.square().mean()
            loss.backward()
            w.measure(loss)
        w.close()
