"""The Probe's recorders (normcore.probe.recorder): chosen once, by ``path`` or the device, and
interchangeable: the host's compiled kernels and the device's torch batch fill the same frame
fields on the same run, apart from float32 vs float64 sums and a value or two that lands in
the neighbouring fine bin."""

from __future__ import annotations

import pytest
import torch

from normcore.config import RunConfig
from normcore.models import build_model
from normcore.probe import kernels
from normcore.probe.device_recorder import DeviceRecorder
from normcore.probe.frame_numbers import FINE
from normcore.probe.host_recorder import HostRecorder
from normcore.probe.probe import RECORDERS, Probe, resolve_path
from normcore.probe.recorder import PATHS
from normcore.watch import Watch
from tests.utils.probing import probed_step

BINS = 16
NUMBA = pytest.mark.skipif(not kernels.AVAILABLE, reason="numba is missing")
pytestmark = pytest.mark.usefixtures("one_thread", "eager_in_hooks")

# numbers no histogram enters: float32 vs float64 sums of the same values
SUMS = ("mean", "std", "sat", "sat_pre", "grad_norm", "act_grad_norm", "weight_norm")
SUMS += ("update_ratio", "g_mean", "g_std", "b_mean", "b_std")
MOVED = 2  # values that may land in the neighbouring fine bin (float32 slot arithmetic)


def probed_run(path: str | None, steps: int = 5) -> tuple[Probe, list]:
    """A seeded BN + sigmoid MLP under Adam (‖Δw‖ from a copy), every step probed."""
    torch.manual_seed(0)
    cfg = RunConfig(depth=3, width=16, norm="batch", activation="sigmoid", batch_size=32)
    model = build_model(cfg, (10,), 4)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    probe = Probe(
        model.probe_points(), activation="sigmoid", bins=BINS, rows=8, optimizer=opt, path=path
    )
    x, y = torch.randn(32, 10), torch.randint(0, 4, (32,))
    recorder = probe.recorder
    for _ in range(steps):
        probed_step(model, probe, opt, x, y)
        assert probe.recorder is recorder  # chosen once, at construction
    rows = probe.flush()
    probe.close()
    return probe, rows


def test_the_recorder_is_the_devices_own_unless_a_path_is_given(monkeypatch):
    cpu = torch.device("cpu")
    assert resolve_path(None, torch.device("cuda")) == "staged"
    assert resolve_path(None, cpu) == ("in-hooks" if kernels.AVAILABLE else "torch")
    monkeypatch.setattr(kernels, "AVAILABLE", False)  # a GPU machine's bare torch
    assert resolve_path(None, cpu) == "torch"
    assert resolve_path("staged", cpu) == "staged"  # a CPU may run the GPU's path


@pytest.mark.parametrize(
    "path", [pytest.param(p, marks=NUMBA if p in HostRecorder.PATHS else ()) for p in PATHS]
)
def test_each_path_builds_its_recorder(path):
    assert sorted(RECORDERS) == sorted(PATHS)  # one recorder for each path, each path once
    model = build_model(RunConfig(depth=2, width=8), (5,), 3)
    probe = Probe(model.probe_points(), activation="sigmoid", path=path)
    kind = HostRecorder if path in HostRecorder.PATHS else DeviceRecorder
    assert type(probe.recorder) is kind and probe.recorder.path == path
    probe.close()


def test_an_unknown_path_is_named_and_a_host_path_needs_a_cpu_with_numba(monkeypatch, tmp_path):
    model = build_model(RunConfig(depth=2, width=8), (5,), 3)
    with pytest.raises(ValueError, match=r"path: one of in-hooks, .*; not 'gpu'"):
        Probe(model.probe_points(), activation="sigmoid", path="gpu")
    with pytest.raises(ValueError, match=r"path 'in-hooks': .* got device meta"):
        Probe(model.probe_points(), activation="sigmoid", path="in-hooks", device="meta")
    monkeypatch.setattr(kernels, "AVAILABLE", False)
    out = tmp_path / "frames.jsonl"
    with pytest.raises(ValueError, match=r"path 'after-backward': .* numba missing"):
        Watch({"fc": model.head}, activation="relu", path="after-backward", out=out)
    assert not out.exists()  # refused before anything was opened or hooked


def close(a: float | None, b: float | None, abs_tol: float, where: str) -> None:
    assert (a is None) == (b is None), where
    if a is not None and b is not None:
        assert a == pytest.approx(b, rel=1e-5, abs=abs_tol), where


@NUMBA
@pytest.mark.parametrize("device_path", ["torch", "staged"])
def test_host_and_device_recorders_fill_the_same_frame_fields(device_path):
    """The same seeded steps through the compiled kernels in the hooks and through torch's
    batch: every frame field alike, the sums within float32 rounding, the histogram within
    ``MOVED`` values and what is read from it within what those values move."""
    host_probe, host = probed_run("in-hooks")
    device_probe, device = probed_run(device_path)
    n, edges = host_probe.n, host_probe.edges
    assert device_probe.n == n and (device_probe.edges == edges).all()
    assert isinstance(host_probe.recorder, HostRecorder) and host_probe.recorder.eager
    assert len(host) == len(device) == 5
    for k, ((layers, loss, acc, ics), (want, want_loss, want_acc, want_ics)) in enumerate(
        zip(host, device, strict=True)
    ):
        assert loss == pytest.approx(want_loss, rel=1e-6) and acc == pytest.approx(want_acc)
        assert ics is None and want_ics is None
        for i, (layer, other) in enumerate(zip(layers, want, strict=True)):
            where = f"step {k} layer {layer['name']}"
            assert layer.keys() == other.keys(), where
            h, g = layer["hist"], other["hist"]
            assert (h["lo"], h["hi"]) == (g["lo"], g["hi"]), where
            moved = sum(abs(a - b) for a, b in zip(h["counts"], g["counts"], strict=True))
            moved += abs(h["under"] - g["under"]) + abs(h["over"] - g["over"])
            assert moved <= 2 * MOVED, where  # (each moved value: one count out, one in)
            assert layer["nonfinite"] == other["nonfinite"], where
            for key in SUMS:
                close(layer[key], other[key], 1e-6, f"{where} {key}")
            fine_bin = (edges[i, 1] - edges[i, 0]) / (BINS * FINE)
            for key in ("p15", "p50", "p85"):  # a bucket's interpolation, or its neighbour's
                close(layer[key], other[key], 2 * fine_bin, f"{where} {key}")
            for key in ("sat_graded", "out_mean", "out_std"):  # f, f' within [0, 1]
                close(layer[key], other[key], 4 * MOVED / n, f"{where} {key}")
            bin_width = fine_bin * FINE  # W1 in units of the value: a value moved a bin
            for key in ("w1_prev", "w1_first"):  # (each side of the pair)
                close(layer[key], other[key], 2 * MOVED * bin_width / n, f"{where} {key}")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_norms_rooted_together_have_the_bits_of_one_root_each(dtype):
    """HostRecorder takes the roots of a step's squared norms in one stacked sqrt: each must
    equal its own sqrt, bit for bit (frames stay what one sqrt per norm gave)."""
    from normcore.probe.host_recorder import _roots

    torch.manual_seed(0)
    values = torch.rand(4000, dtype=dtype) * torch.logspace(-8, 8, 4000, dtype=dtype)
    for size in (1, 3, 9, 17, 40):
        for start in range(0, len(values) - size, size):
            squares = [v.clone() for v in values[start : start + size]]
            assert _roots(squares) == [float(s.sqrt()) for s in squares]
    mixed = [torch.tensor(2.0), torch.tensor(2.0, dtype=torch.float64)]
    assert _roots(mixed) == [float(s.sqrt()) for s in mixed]


@NUMBA
def test_norms_from_backward_hooks_equal_norms_taken_at_collect(monkeypatch):
    """In-hooks takes ‖w‖, ‖∇w‖ in backward's hooks for weights of HOOKED_BYTES or more and at
    collect for smaller ones: both ways give the same frames, also when a gradient changes
    between backward and collect (the hooks' norms are then dropped)."""

    def frames(hooked_bytes: int) -> list:
        monkeypatch.setattr(HostRecorder, "HOOKED_BYTES", hooked_bytes)
        torch.manual_seed(0)
        cfg = RunConfig(depth=2, width=16, activation="tanh", batch_size=8)
        model = build_model(cfg, (10,), 4)
        opt = torch.optim.SGD(model.parameters(), lr=0.5)
        probe = Probe(model.probe_points(), activation="tanh", bins=BINS, path="in-hooks")
        hooks = sum(probe.recorder.hooks_weight(p.weight) for p in probe.points)
        x, y = torch.randn(8, 10), torch.randint(0, 4, (8,))
        for step in range(4):
            probe.arm()
            loss = torch.nn.functional.cross_entropy(logits := model(x), y)
            opt.zero_grad()
            loss.backward()
            if step == 2:  # clipped after the hooks took its norm
                probe.points[0].weight.grad.mul_(0.5)
            probe.collect(loss, logits, y)
            opt.step()
            probe.after_step()
        probe.close()
        return hooks, probe.flush()

    (hooked, rows), (unhooked, plain) = frames(0), frames(1 << 40)
    mixed, some = frames(1000)  # the 16×16 weight's hook only, not the 16×10 one's
    assert (hooked, mixed, unhooked) == (2, 1, 0)
    # a hook's norm is √(BLAS dot), collect's of a small tensor one _foreach_norm: float32
    # sums in another order (the gradient halved at step 2 is 0.5×, far beyond that)
    norms = ("grad_norm", "weight_norm", "update_ratio", "act_grad_norm")
    for other in (plain, some):
        assert without(rows, norms) == without(other, norms)
        for key in norms:
            assert numbers(other, key) == pytest.approx(numbers(rows, key), rel=1e-6)


def without(rows: list, keys: tuple[str, ...]) -> list:
    """Flushed rows with the layers' ``keys`` left out."""
    return [
        ([{k: v for k, v in layer.items() if k not in keys} for layer in layers], *rest)
        for layers, *rest in rows
    ]


def numbers(rows: list, key: str) -> list[float]:
    return [layer[key] for layers, *_ in rows for layer in layers]


@NUMBA
@pytest.mark.parametrize("norm", ["none", "batch"])
def test_in_hooks_stages_a_small_step_and_measures_it_as_in_the_hooks(monkeypatch, norm):
    """Below EAGER_BYTES of values a layer, in-hooks copies each layer into staging rows in
    its tap and measures all of them in one kernel call at collect: the same frames as
    measuring each in its tap (norms to float32 summation order), with or without a norm's
    own pre-activation."""

    def frames(eager_bytes: int) -> tuple[bool, list]:
        monkeypatch.setattr(HostRecorder, "EAGER_BYTES", eager_bytes)
        torch.manual_seed(0)
        cfg = RunConfig(depth=3, width=16, norm=norm, activation="sigmoid", batch_size=32)
        model = build_model(cfg, (10,), 4)
        opt = torch.optim.SGD(model.parameters(), lr=0.5)
        probe = Probe(model.probe_points(), activation="sigmoid", bins=BINS, path="in-hooks")
        x, y = torch.randn(32, 10), torch.randint(0, 4, (32,))
        for _ in range(4):
            probed_step(model, probe, opt, x, y)
        eager = probe.recorder.eager
        probe.close()
        return eager, probe.flush()

    (eager, hooked), (staged_eager, staged) = frames(0), frames(1 << 18)
    assert eager and not staged_eager  # 32 × 16 values a layer: 2 KB
    norms = ("grad_norm", "weight_norm", "update_ratio", "act_grad_norm")
    assert without(staged, norms) == without(hooked, norms)
    for key in norms:
        assert numbers(staged, key) == pytest.approx(numbers(hooked, key), rel=1e-6)
