"""normcore.watch: the probes on a model of one's own, in one's own training loop."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from normcore.frames import to_json
from normcore.probe import kernels
from normcore.watch import Watch
from tests.utils.own_model import training_step


class TaperingNet(nn.Module):
    """Layers of three shapes: conv + BN, linear + LN, and a plain linear (no norm)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.bn = nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4)
        self.fc1, self.ln = nn.Linear(4 * 6 * 6, 32), nn.LayerNorm(32)
        self.fc2, self.out = nn.Linear(32, 16), nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.bn(self.conv(x))).flatten(1)
        h = F.relu(self.ln(self.fc1(h)))
        return self.out(F.relu(self.fc2(h)))


def make(seed: int = 0):
    torch.manual_seed(seed)
    model = TaperingNet()
    layers = {"conv": (model.conv, model.bn), "fc1": (model.fc1, model.ln), "fc2": model.fc2}
    x, y = torch.randn(16, 1, 8, 8), torch.randint(0, 3, (16,))
    return model, layers, x, y


def train(model, watch, opt, x, y, steps: int, fail_at: int | None = None):
    for step in range(1, steps + 1):
        try:
            training_step(watch, model, opt, x, y, fail=step == fail_at)
        except KeyError:
            assert step == fail_at


def test_watch_measures_layers_of_any_shape_like_an_independent_float64_recomputation():
    model, layers, x, y = make()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    watch = Watch(layers, activation="relu", optimizer=opt, every=3)
    # an independent record of the probed steps: our own hooks and copies, in float64
    seen: list[dict] = []
    outputs: dict[str, torch.Tensor] = {}
    for module, key in (
        (model.conv, "conv_pre"),
        (model.bn, "conv"),
        (model.fc1, "fc1_pre"),
        (model.ln, "fc1"),
        (model.fc2, "fc2"),
    ):
        module.register_forward_hook(lambda m, a, out, key=key: outputs.__setitem__(key, out))
    weights = {"conv": model.conv.weight, "fc1": model.fc1.weight, "fc2": model.fc2.weight}
    for _ in range(10):
        with watch.step() as probed:
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            opt.zero_grad()
            loss.backward()
            watch.measure(loss, logits, y)
            before = {k: w.detach().double().clone() for k, w in weights.items()}
            gain, shift = model.ln.weight.detach().double(), model.ln.bias.detach().double()
            gb = (gain.mean().item(), gain.std(correction=0).item(), shift.mean().item())
            opt.step()
        if probed:
            record = {k: v.detach().double().numpy().ravel() for k, v in outputs.items()}
            for name, w in weights.items():
                record[f"{name}_w"], record[f"{name}_g"] = before[name], w.grad.double()
                record[f"{name}_dw"] = (w.detach().double() - before[name]).norm().item()
            record["loss"], record["gb"] = loss.item(), gb
            record["acc"] = (logits.argmax(1) == y).double().mean().item()
            seen.append(record)
    watch.close()

    frames = watch.frames
    assert [f["step"] for f in frames] == [1, 4, 7, 10]
    assert [f["seq"] for f in frames] == [0, 1, 2, 3]
    assert [f["status"] for f in frames] == ["running"] * 3 + ["completed"]
    for frame, record in zip(frames, seen, strict=True):
        assert frame["lr"] == 1e-2 and frame["eval"] is None and frame["device"] == "cpu"
        assert frame["loss"] == pytest.approx(record["loss"], rel=1e-6)
        assert frame["acc"] == pytest.approx(record["acc"])
        assert [layer["name"] for layer in frame["layers"]] == ["conv", "fc1", "fc2"]
        for layer in frame["layers"]:
            name = layer["name"]
            act, pre = record[name], record.get(f"{name}_pre", record[name])
            assert layer["mean"] == pytest.approx(act.mean(), abs=1e-5)
            assert layer["std"] == pytest.approx(act.std(), rel=1e-5)
            assert layer["sat"] == pytest.approx((act <= 0).mean())
            assert layer["sat_pre"] == pytest.approx((pre <= 0).mean())
            w, g = record[f"{name}_w"], record[f"{name}_g"]
            assert layer["weight_norm"] == pytest.approx(w.norm().item(), rel=1e-5)
            assert layer["grad_norm"] == pytest.approx(g.norm().item(), rel=1e-5)
            update = record[f"{name}_dw"] / w.norm().item()
            assert layer["update_ratio"] == pytest.approx(update, rel=1e-4)
            hist = layer["hist"]
            assert sum(hist["counts"]) + hist["under"] + hist["over"] == act.size
        # the norm's own g, b where the layer has a norm; None where it has none
        ln = frame["layers"][1]
        assert (ln["g_mean"], ln["g_std"], ln["b_mean"]) == pytest.approx(record["gb"], abs=1e-6)
        assert frame["layers"][2]["g_mean"] is None and frame["layers"][2]["b_mean"] is None
    assert frames[0]["layers"][0]["w1_first"] == 0.0
    assert all(f["layers"][2]["w1_first"] > 0 for f in frames[1:])  # fc2 drifts


def test_watch_writes_json_lines_and_calls_back_with_the_same_frames(tmp_path):
    got = []
    out = tmp_path / "frames.jsonl"
    model, layers, x, y = make()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with Watch(
        layers, activation="relu", optimizer=opt, every=2, out=out, on_frame=got.append
    ) as watch:
        train(model, watch, opt, x, y, steps=9)
        assert len(got) < 5  # frames arrive as the probes flush, the last one at close
    lines = out.read_text().splitlines()
    assert lines == [to_json(f) for f in got] and len(got) == 5  # steps 1, 3, 5, 7, 9
    assert json.loads(lines[-1])["status"] == "completed" and watch.frames == []


def test_the_planned_last_step_is_probed_whatever_every():
    model, layers, x, y = make()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with Watch(layers, activation="relu", optimizer=opt, every=2, steps=10) as watch:
        train(model, watch, opt, x, y, steps=10)
    assert [f["step"] for f in watch.frames] == [1, 3, 5, 7, 9, 10]  # the run ends at 10
    assert watch.frames[-1]["status"] == "completed"
    with pytest.raises(ValueError, match="steps: the planned steps"):
        Watch(layers, activation="relu", steps=-1)


def test_a_step_that_raises_leaves_no_row_and_the_next_is_probed():
    model, layers, x, y = make()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    watch = Watch(layers, activation="relu", optimizer=opt, every=2)
    train(model, watch, opt, x, y, steps=8, fail_at=3)
    watch.close()
    assert [f["step"] for f in watch.frames] == [1, 5, 7]
    assert all(len(f["layers"]) == 3 for f in watch.frames)


def test_misuse_is_an_error_naming_what_to_do():
    model, layers, x, y = make()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    watch = Watch(layers, activation="relu", optimizer=opt)
    with pytest.raises(RuntimeError, match=r"step 1 was probed but measure\(loss\)"):
        with watch.step():
            F.cross_entropy(model(x), y).backward()
    with pytest.raises(RuntimeError, match="measure\\(\\) was called twice in step 2"):
        with watch.step():
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            watch.measure(loss)
            watch.measure(loss)
    watch.close()
    with pytest.raises(RuntimeError, match="closed"):
        with watch.step():
            pass
    with pytest.raises(ValueError, match="every: .* not 0"):
        Watch(layers, activation="relu", every=0)
    with pytest.raises(ValueError, match="layers"):
        Watch({}, activation="relu")
    with pytest.raises(TypeError, match="layer 'act': ReLU has no weight"):
        Watch({"act": nn.ReLU()}, activation="relu")
    with pytest.raises(ValueError, match="relu6"):
        Watch(layers, activation="relu6")


def test_without_an_optimizer_the_update_is_taken_at_the_end_of_the_step():
    model, layers, x, y = make()
    watch = Watch({"fc2": layers["fc2"]}, activation="relu")
    w = model.fc2.weight
    with watch.step():
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        watch.measure(loss)
        before = w.detach().clone()
        with torch.no_grad():  # a hand-written update
            w -= 0.5 * w.grad
    watch.close()
    [frame] = watch.frames
    expected = (w.detach() - before).norm().item() / before.norm().item()
    assert frame["layers"][0]["update_ratio"] == pytest.approx(expected, rel=1e-5)
    assert frame["lr"] is None and math.isnan(frame["acc"])


def test_a_non_finite_loss_makes_the_end_diverged():
    model, layers, x, y = make()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    watch = Watch(layers, activation="relu", optimizer=opt)
    for poison in (False, True, False):  # the loop goes on after the non-finite loss
        with watch.step():
            loss = F.cross_entropy(model(x), y) * (math.inf if poison else 1.0)
            opt.zero_grad()
            loss.backward()
            watch.measure(loss)
            opt.step()
    watch.close()
    # only the last frame says how the run ended (a server takes no status mid-run)
    assert [f["status"] for f in watch.frames] == ["running", "running", "diverged"]
    assert not np.isfinite(watch.frames[1]["loss"])


NUMBA = pytest.mark.skipif(not kernels.AVAILABLE, reason="numba is missing")


@pytest.mark.parametrize(
    "path",
    [pytest.param("in-hooks", marks=NUMBA), pytest.param("after-backward", marks=NUMBA), "staged"],
)
def test_a_layer_that_cannot_be_measured_leaves_no_row_for_any_layer(path):
    """All layers' rows of a step or none: a step whose fc2 never ran (its measure raises)
    leaves the other probes in step with it, and the steps after are whole frames; on each
    of the probe's paths (compiled kernels in the hooks or after backward, torch's batch)."""
    model, layers, x, y = make()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    watch = Watch(layers, activation="relu", optimizer=opt, path=path)
    train(model, watch, opt, x, y, steps=2)
    with pytest.raises(ValueError), watch.step():  # fc2 is skipped: its probe has nothing
        h = F.relu(model.ln(model.fc1(F.relu(model.bn(model.conv(x))).flatten(1))))
        loss = F.cross_entropy(model.out(h[:, :16]), y)
        opt.zero_grad()
        loss.backward()
        watch.measure(loss)
    train(model, watch, opt, x, y, steps=2)
    watch.close()
    assert [f["step"] for f in watch.frames] == [1, 2, 4, 5]
    assert all([layer["name"] for layer in f["layers"]] == list(layers) for f in watch.frames)


def test_logits_and_targets_of_other_shapes_are_named():
    model, layers, x, y = make()
    watch = Watch(layers, activation="relu")
    for bad in (lambda logits: (logits[:, 0], y), lambda logits: (logits, y[:8])):
        with pytest.raises(ValueError, match=r"logits, targets: .* not shapes"):
            with watch.step():
                logits = model(x)
                loss = F.cross_entropy(logits, y)
                loss.backward()
                watch.measure(loss, *bad(logits))
    watch.close()


def test_out_is_written_afresh_by_each_watch(tmp_path):
    out = tmp_path / "frames.jsonl"
    for steps in (5, 3):
        model, layers, x, y = make()
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        with Watch(layers, activation="relu", optimizer=opt, out=out) as watch:
            train(model, watch, opt, x, y, steps=steps)
    assert [json.loads(line)["seq"] for line in out.read_text().splitlines()] == [0, 1, 2]
