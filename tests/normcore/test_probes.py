"""Every probe statistic against an independent float64 numpy recomputation.

The device path (normcore.probe: stats.LayerStats + frame_numbers.layer_table, probe.Probe) is
compared on fresh random inputs, including a layer with NaN, one with ±inf, a constant one, an
all-NaN one and one whose values fall outside its fixed edges.
"""

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from normcore.config import RunConfig
from normcore.models import build_model
from normcore.norms import norm_affine
from normcore.probe import kernels
from normcore.probe import stats as stats_module
from normcore.probe.device_recorder import DeviceRecorder
from normcore.probe.frame_numbers import FIELDS, FINE, layer_table
from normcore.probe.host_recorder import HostRecorder
from normcore.probe.probe import Probe
from normcore.probe.stats import ACT_RANGE, SAT_THRESHOLD, STAT_FIELDS, LayerStats, choose_edges
from normcore.probe.taps import ProbePoint, Tap
from normcore.train import run
from tests.utils.probing import probed_step

BINS = 16
NUMBA = pytest.mark.skipif(
    not kernels.AVAILABLE, reason="numba is missing (a GPU machine's bare torch)"
)


# every recorder's path (normcore.probe.recorder); the host's need numba
ALL_PATHS = [
    pytest.param("in-hooks", marks=NUMBA),
    pytest.param("after-backward", marks=NUMBA),
    "torch",
    "staged",
]

pytestmark = pytest.mark.usefixtures("one_thread", "eager_in_hooks")


def in_hooks(probe: Probe) -> bool:
    """The probe measured its last step in the taps (the in-hooks path, once set up)."""
    return isinstance(probe.recorder, HostRecorder) and probe.recorder.eager


def make_layers(rng: np.random.Generator, n: int) -> np.ndarray:
    """(6, n) float32: normal, with NaN, with ±inf, constant, all NaN, wide (beyond edges)."""
    x = rng.normal(0.3, 1.7, (6, n)).astype(np.float32)
    x[1, rng.choice(n, 7, replace=False)] = np.nan
    x[2, :3], x[2, 3:5] = np.inf, -np.inf
    x[3] = 0.1  # not a binary fraction: the float32 sums round
    x[4] = np.nan
    x[5] = rng.standard_cauchy(n).astype(np.float32) * 3  # heavy tails: under and over
    return x


def saturated_np(v: np.ndarray, activation: str) -> float:
    """Fraction of all values in the saturated region: ±inf are in it, NaN is not."""
    v = v.astype(np.float64)
    if activation in ("relu", "gelu"):
        return float(np.mean(v <= 0))
    return float(np.mean(np.abs(v) > SAT_THRESHOLD[activation]))


def percentile_bound(v: np.ndarray, q: float, lo: float, hi: float, vmin: float, vmax: float):
    """Width of the buckets holding the two order statistics numpy interpolates between."""
    s = np.sort(v.astype(np.float64))
    h = q * (len(s) - 1)
    w = (hi - lo) / (BINS * FINE)

    def bucket(value: float) -> tuple[float, float]:
        if value < lo:
            return vmin, lo
        if value >= hi:
            return hi, vmax
        k = math.floor((value - lo) / w)
        return lo + k * w, lo + (k + 1) * w

    return bucket(s[math.ceil(h)])[1] - bucket(s[math.floor(h)])[0]


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu", "gelu"])
@pytest.mark.parametrize(
    ("kernel", "parts", "hooks", "threads"),
    [
        (False, 2, False, 1),
        *(
            pytest.param(*p, marks=NUMBA)
            for p in [
                (True, 1, False, 1),
                (True, 2, False, 1),
                (True, 2, True, 1),
                (True, 1, True, 3),
            ]
        ),
    ],
    ids=["torch-batch", "kernel", "kernel-time-steps", "kernel-piece-by-piece", "kernel-3-threads"],
)
def test_layer_stats_match_float64_numpy(
    activation, kernel, parts, hooks, threads, device, monkeypatch
):
    """A GPU batches every layer into one set of torch kernels (histc); a CPU runs compiled
    kernels layer by layer, piece by piece from the hooks (an RNN's time steps: two halves
    here), and with more threads a layer in parts, one per thread. Every path must give the
    same numbers."""
    if device.type != "cpu" and kernel:
        pytest.skip("the compiled kernels are the CPU's path")
    monkeypatch.setattr(stats_module, "PART_VALUES", 1000)  # 4000 values: 3 parts of 1334
    monkeypatch.setattr(torch, "get_num_threads", lambda: threads)
    rng = np.random.default_rng(7)
    n = 4000
    x = make_layers(rng, n)
    pre = (x * 2.0 - 0.5).astype(np.float32)
    pre[0, :11] = np.nan
    finite = np.where(np.isfinite(x), x, 0.0)
    edges = choose_edges(finite.min(1), finite.max(1), activation)
    edges[5] = [-2.0, 2.0]  # narrower than the data: exercises under/over and the tails
    stats = LayerStats(edges, n, BINS, activation, device, kernel)
    if kernel:  # one part per thread, each with its own scratch row
        assert len(stats._scratch[-1]) == threads

    def split(rows: np.ndarray) -> list[list[torch.Tensor]]:
        return [list(torch.from_numpy(row.copy()).to(device).chunk(parts)) for row in rows]

    per_layer = split(x)
    if hooks:  # rows filled before are emptied by reset
        stats([[t * -3.0 for t in pieces] for pieces in per_layer], None)
        stats.reset()
        for i, pieces in enumerate(split(pre)):
            for act, p in zip(per_layer[i], pieces, strict=True):
                stats.layer(i, act, p)
        hist, cols = stats.hist.cpu(), stats.cols.cpu()
    else:
        hist, cols = (t.cpu() for t in stats(per_layer, split(pre)))
    assert cols.shape == (len(x), len(STAT_FIELDS))
    for tensors, row in zip(per_layer, x, strict=True):  # the model's tensors are only read
        np.testing.assert_array_equal(torch.cat(tensors).cpu().numpy(), row)
    scal = np.full((len(x), len(FIELDS)), np.nan)
    scal[:, : len(STAT_FIELDS)] = cols.numpy()
    table = layer_table(
        [f"h{i}" for i in range(len(x))], edges, hist.numpy()[None], scal[None], n, BINS, None, None
    )
    ((layers,), (display,)) = table.layers(), table.display
    for i, layer in enumerate(layers):
        v = x[i][np.isfinite(x[i])].astype(np.float64)
        lo, hi = edges[i]
        assert layer["nonfinite"] == n - len(v)
        assert layer["sat"] == pytest.approx(saturated_np(x[i], activation), abs=1e-12)
        assert layer["sat_pre"] == pytest.approx(saturated_np(pre[i], activation), abs=1e-12)
        if len(v) == 0:  # all NaN: reported, not raised on
            assert all(layer[k] is None for k in ("mean", "std", "p15", "p50", "p85"))
            assert layer["sat"] == layer["sat_pre"] == 0.0
            assert sum(layer["hist"]["counts"]) + layer["hist"]["under"] == 0
            continue
        assert layer["mean"] == pytest.approx(v.mean(), rel=1e-6, abs=1e-6)
        assert layer["std"] == pytest.approx(v.std(), rel=1e-5, abs=1e-6)
        # histogram: half-open bins [a, b) on [lo, hi]; under x < lo, over x >= hi
        w = (hi - lo) / BINS
        k = np.floor((v - lo) / w)
        expect = np.bincount(k[(v >= lo) & (v < hi)].astype(int), minlength=BINS)
        # float32 binning may move a value lying within 1e-3 of a fine bin from an edge
        near = np.sum(np.abs((v - lo) / (w / FINE) - np.round((v - lo) / (w / FINE))) < 1e-3)
        got = np.array(layer["hist"]["counts"])
        assert np.abs(got - expect).sum() <= 2 * near
        assert abs(layer["hist"]["under"] - np.sum(v < lo)) <= near
        assert abs(layer["hist"]["over"] - np.sum(v >= hi)) <= near
        assert display[i].sum() == len(v)
        vmin, vmax = min(v.min(), 0.0 if len(v) < n else v.min()), v.max()
        for q, key in ((0.15, "p15"), (0.5, "p50"), (0.85, "p85")):
            exact = np.percentile(v, q * 100)
            bound = percentile_bound(v, q, lo, hi, vmin, max(vmax, 0.0 if len(v) < n else vmax))
            assert abs(layer[key] - exact) <= bound * (1 + 1e-3) + 1e-6, (i, key)
            if i in (0, 1) and lo < exact < hi:  # the bound is tight where data is dense
                assert abs(layer[key] - exact) <= 2 * w / FINE
    assert layers[3]["std"] == 0.0
    assert layers[3]["p15"] == layers[3]["p50"] == layers[3]["p85"] == np.float32(0.1)
    assert layers[5]["hist"]["under"] > 0 and layers[5]["hist"]["over"] > 0


@pytest.mark.parametrize("activation", ["sigmoid", "tanh"])
def test_saturation_counts_values_just_beside_the_threshold(activation):
    """Values 1e-4 on either side of ±t land on the right side, in the over slot too."""
    t = SAT_THRESHOLD[activation]
    x = np.array(
        [t - 1e-4, t + 1e-4, -t + 1e-4, -t - 1e-4, 0.0, 3 * t, -3 * t, 50.0] * 4, dtype=np.float32
    )
    edges = choose_edges(np.array([-t]), np.array([t]), activation)
    stats = LayerStats(edges, len(x), BINS, activation, "cpu")
    assert edges[0, 1] < 50.0  # 50 is in the over slot
    stats([[torch.from_numpy(x)]], None)
    assert stats.cols[0, STAT_FIELDS.index("sat")] == saturated_np(x, activation) * len(x) == 20


def test_edges_cover_the_activation_range_and_widen_the_first_batch():
    edges = choose_edges(np.array([-1.0, -30.0, np.nan]), np.array([1.0, 10.0, np.nan]), "tanh")
    assert edges[0].tolist() == [-ACT_RANGE["tanh"], ACT_RANGE["tanh"]]
    assert edges[1].tolist() == [-50.0, 30.0]  # range 40 widened by 20 on each side
    assert edges[2].tolist() == [-4.0, 4.0]  # no finite values seen: the activation's range


def test_layer_stats_rejects_an_empty_layer():
    with pytest.raises(ValueError, match="must hold values; got 0"):
        LayerStats(np.array([[-1.0, 1.0]]), 0, 8, "relu", "cpu")


def numpy64(t: torch.Tensor) -> np.ndarray:
    """An independent float64 host copy of a (device) tensor."""
    return t.detach().double().cpu().numpy().copy()


class InPlaceAfterTap(torch.nn.Module):
    """Two layers whose activation input is doubled in place after its tap, from the
    ``start``-th forward pass on (a model may change what it does between steps)."""

    def __init__(self, start: int) -> None:
        super().__init__()
        self.start, self.calls = start, 0
        self.linears = torch.nn.ModuleList([torch.nn.Linear(6, 8), torch.nn.Linear(8, 8)])
        self.taps = torch.nn.ModuleList([Tap(), Tap()])
        self.head = torch.nn.Linear(8, 3)

    def forward(self, x):
        self.calls += 1
        for linear, tap in zip(self.linears, self.taps, strict=True):
            z = tap(linear(x))
            if self.calls >= self.start:
                z.mul_(2.0)
            x = torch.sigmoid(z)
        return self.head(x)

    def points(self) -> list[ProbePoint]:
        return [
            ProbePoint(f"h{i + 1}", tap, tap, linear.weight, torch.nn.Identity())
            for i, (linear, tap) in enumerate(zip(self.linears, self.taps, strict=True))
        ]


@pytest.mark.parametrize("start", [1, 3])
@pytest.mark.parametrize("path", ["in-hooks", "after-backward"])
@NUMBA
def test_activation_gradient_is_of_the_tensor_the_tap_saw(path, start):
    """The host paths keep a small layer's activation gradient with retain_grad after the
    first step, which would give the gradient of a tensor changed in place since its tap
    (here half the tap's). The first step finds such layers and keeps hooks on them; a layer
    that turns in-place later reads NaN (None in a frame) for that one step, never a wrong
    norm."""
    torch.manual_seed(0)
    model = InPlaceAfterTap(start)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    probe = Probe(model.points(), activation="sigmoid", bins=BINS, rows=8, optimizer=opt, path=path)
    grads: list[torch.Tensor] = []  # the gradient of each tap's tensor, as the tap saw it
    for tap in model.taps:
        tap.sinks.append(lambda out: out.register_hook(grads.append))
    x, y = torch.randn(16, 6), torch.randint(0, 3, (16,))
    expected = []
    for _ in range(5):
        grads.clear()
        probed_step(model, probe, opt, x, y)
        expected.append([float(g.norm()) for g in reversed(grads)])  # (backward: last first)
    got = [[layer["act_grad_norm"] for layer in layers] for layers, *_ in probe.flush()]
    for step, (want, have) in enumerate(zip(expected, got, strict=True), start=1):
        if step == start > 1 and path == "after-backward":  # turned in-place after step 1
            assert have == [None, None], (step, have)  # (a frame's NaN)
        else:
            assert have == pytest.approx(want, rel=1e-5), (step, have, want)
    if path == "after-backward":
        assert probe.recorder._retain == [False, False]  # hooks from the step it was seen


OPTIMIZERS = {
    "sgd": lambda p: torch.optim.SGD(p, lr=0.5),
    "momentum": lambda p: torch.optim.SGD(p, lr=0.5, momentum=0.9),
    "adam": lambda p: torch.optim.Adam(p, lr=0.01),
    "sgd-decay": lambda p: torch.optim.SGD(p, lr=0.5, weight_decay=0.1),
}


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
@pytest.mark.parametrize("norm", ["batch", "none"])
@pytest.mark.parametrize("path", ALL_PATHS)
def test_probe_matches_numpy_over_training_steps(optimizer, norm, path, device):
    """Six probed steps: the first sets the edges (batched); on a CPU, layers that fill the
    cache alone (here: a tiny cache) are measured in the hooks after that; on a GPU the later
    steps replay CUDA graphs. Plain SGD and momentum take ‖Δw‖ = lr·‖d‖ from the optimizer,
    other optimizers diff a copy."""
    if device.type != "cpu" and path != "staged":
        pytest.skip("a GPU stages a step's tensors for its CUDA graphs; the rest is the CPU's")
    torch.manual_seed(0)
    cfg = RunConfig(depth=3, width=16, norm=norm, activation="sigmoid", batch_size=32)
    model = build_model(cfg, (10,), 4).to(device)
    points = model.probe_points()
    opt = OPTIMIZERS[optimizer](model.parameters())
    # (a CPU runs the GPU's staged path eagerly)
    probe = Probe(
        points, activation="sigmoid", bins=BINS, rows=8, optimizer=opt, device=device, path=path
    )
    assert (probe.layers.old == []) == (optimizer in ("sgd", "momentum"))
    x, y = torch.randn(32, 10, device=device), torch.randint(0, 4, (32,), device=device)
    # an independent record of the same tensors: our own hooks, retained gradients
    seen: dict[str, list[torch.Tensor]] = {"act": [], "pre": []}

    def keep_act(module, args, out):
        out.retain_grad()
        seen["act"].append(out)

    def keep_pre(module, args, out):
        seen["pre"].append(out.detach().clone())

    for p in points:
        p.act.register_forward_hook(keep_act)
        p.pre.register_forward_hook(keep_pre)
    expected = []
    for _ in range(6):
        seen["act"].clear()
        seen["pre"].clear()
        loss, logits, (before, affine) = probed_step(
            model,
            probe,
            opt,
            x,
            y,
            lambda: (
                [numpy64(p.weight) for p in points],
                [
                    [None if t is None else numpy64(t) for t in norm_affine(p.affine)]
                    for p in points
                ],
            ),
        )
        expected.append(
            dict(
                loss=loss.item(),
                acc=(logits.argmax(1) == y).double().mean().item(),
                act=[numpy64(a) for a in seen["act"]],
                act_grad=[numpy64(a.grad) for a in seen["act"]],
                pre=[numpy64(p) for p in seen["pre"]],
                grad=[numpy64(p.weight.grad) for p in points],
                before=before,
                after=[numpy64(p.weight) for p in points],
                affine=affine,
            )
        )
    recorder = probe.recorder
    assert in_hooks(probe) == (path == "in-hooks")  # CPU: steps 2 to 6 ran in the hooks
    staged = isinstance(recorder, DeviceRecorder) and "loss" in recorder._inputs
    assert staged == (path == "staged")  # staged steps 2 to 6
    if device.type == "cuda":  # the staged statistics replay a captured CUDA graph
        assert recorder.graph.replays >= 1
        finish = probe._finish_graph  # Δw after the step; plain SGD has it from collect
        assert (finish.replays >= 1) == (optimizer != "sgd") and finish.captures <= 1
    for (layers, loss_v, acc_v, ics), e in zip(probe.flush(), expected, strict=True):
        assert loss_v == pytest.approx(e["loss"]) and acc_v == pytest.approx(e["acc"])
        assert ics is None
        for i, layer in enumerate(layers):
            act, w = e["act"][i], e["before"][i]
            assert layer["mean"] == pytest.approx(act.mean(), abs=1e-6)
            assert layer["std"] == pytest.approx(act.std(), rel=1e-5)
            assert layer["sat"] == pytest.approx(saturated_np(act, "sigmoid"))
            assert layer["sat_pre"] == pytest.approx(saturated_np(e["pre"][i], "sigmoid"))
            assert layer["grad_norm"] == pytest.approx(np.linalg.norm(e["grad"][i]), rel=1e-5)
            assert layer["act_grad_norm"] == pytest.approx(
                np.linalg.norm(e["act_grad"][i]), rel=1e-5
            )
            assert layer["weight_norm"] == pytest.approx(np.linalg.norm(w), rel=1e-5)
            ratio = np.linalg.norm(e["after"][i] - w) / np.linalg.norm(w)
            assert layer["update_ratio"] == pytest.approx(ratio, rel=1e-4)
            g, b = e["affine"][i]  # g, b as the forward pass used them
            for key, v in (("g", g), ("b", b)):
                if v is None:
                    assert layer[f"{key}_mean"] is None and layer[f"{key}_std"] is None
                else:
                    assert layer[f"{key}_mean"] == pytest.approx(v.mean(), abs=1e-6)
                    assert layer[f"{key}_std"] == pytest.approx(v.std(), abs=1e-6)
            hist = layer["hist"]
            assert sum(hist["counts"]) + hist["under"] + hist["over"] == act.size
    probe.close()


def test_the_grad_norm_is_the_raw_gradient_and_the_update_the_clipped_one(device):
    frames = list(run(dict(steps=6, probe_every=1, clip=1e-3, lr=0.1, device=device.type)))
    for layer in frames[0]["layers"]:
        assert layer["grad_norm"] > 1e-3  # not clipped
        # SGD moved w by lr·(clipped gradient): the whole model's gradient has norm 1e-3
        assert layer["update_ratio"] * layer["weight_norm"] <= 0.1 * 1e-3 * (1 + 1e-5)


def test_probe_without_a_norm_reports_no_gain_and_equal_saturations():
    cfg = RunConfig(depth=2, width=8, norm="none", activation="relu")
    model = build_model(cfg, (5,), 3)
    probe = Probe(model.probe_points(), activation="relu", bins=BINS, rows=2)
    probe.arm()
    loss = model(torch.randn(6, 5)).square().mean()
    loss.backward()
    probe.collect(loss)
    probe.after_step()
    ((layers, *_),) = probe.flush()
    for layer in layers:
        assert layer["g_mean"] is None and layer["b_std"] is None
        assert layer["sat"] == layer["sat_pre"]
        assert layer["update_ratio"] == 0.0  # no optimizer step was taken


def test_probe_records_nothing_unless_armed():
    model = build_model(RunConfig(depth=2, width=8), (5,), 3)
    probe = Probe(model.probe_points(), activation="sigmoid", bins=BINS)
    model(torch.randn(4, 5))
    assert all(not refs for refs in probe.taken.acts)
    probe.close()
    probe.arm()
    model(torch.randn(4, 5))
    assert all(not refs for refs in probe.taken.acts)  # hooks removed


@NUMBA
def test_probe_in_hooks_measures_a_gradient_changed_after_backward():
    """On a CPU the hooks take ‖w‖ and ‖∇w‖ as backward writes ∇w; a gradient changed in
    place before ``collect`` (here: doubled) is measured again, as it is then."""
    torch.manual_seed(0)
    model = build_model(RunConfig(depth=2, width=16, batch_size=8), (5,), 3)
    points = model.probe_points()
    probe = Probe(points, activation="sigmoid", bins=BINS, rows=4)
    x = torch.randn(8, 5)
    for changed in (False, False, True):  # the first probe fixes the edges (batched)
        probe.arm()
        model.zero_grad(set_to_none=True)
        model(x).square().mean().backward()
        if changed:
            points[0].weight.grad.mul_(2.0)
        probe.collect(torch.tensor(0.0))
        probe.after_step()
    assert in_hooks(probe)
    layers = probe.flush()[-1][0]
    for p, layer in zip(points, layers, strict=True):
        assert layer["grad_norm"] == pytest.approx(p.weight.grad.norm().item(), rel=1e-6)
        assert layer["weight_norm"] == pytest.approx(p.weight.norm().item(), rel=1e-6)
    probe.close()


def test_probe_reads_any_module_through_forward_hooks():
    """A model of one's own has no ``Tap``s: the probe then reads its modules' outputs through
    forward hooks, and measures the same numbers."""

    def frames(own_modules: bool):
        torch.manual_seed(0)
        model = build_model(RunConfig(depth=2, width=16, norm="batch"), (5,), 3)
        points = model.probe_points()
        if own_modules:
            for block in model.blocks:
                block.pre, block.act_in = torch.nn.Identity(), torch.nn.Identity()
            points = [
                ProbePoint(p.name, b.pre, b.act_in, p.weight, p.affine)
                for p, b in zip(points, model.blocks, strict=True)
            ]
        assert all(isinstance(p.act, Tap) for p in points) != own_modules
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        probe = Probe(points, activation="sigmoid", bins=BINS, rows=4, optimizer=opt)
        x, y = torch.randn(8, 5), torch.randint(0, 3, (8,))
        for _ in range(3):
            probed_step(model, probe, opt, x, y)
        return probe.flush()

    assert frames(own_modules=True) == frames(own_modules=False)


@NUMBA
@pytest.mark.parametrize("cell", ["elman", "lstm"])
def test_probe_in_hooks_measures_an_rnn_time_step_by_time_step(cell):
    """An RNN's taps fire once per time step: in the hooks each step's values are added to
    the layer's row as they come (activation gradients too), and the frames equal those of
    the same steps measured all at once after backward."""

    def frames(path: str):
        torch.manual_seed(0)
        cfg = RunConfig(model="rnn", dataset="sequence", cell=cell, norm="layer", width=12)
        model = build_model(cfg, (6, 4), 3)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        probe = Probe(
            model.probe_points(), activation="tanh", bins=BINS, rows=4, optimizer=opt, path=path
        )
        x, y = torch.randn(8, 6, 4), torch.randint(0, 3, (8,))
        for _ in range(3):
            probed_step(model, probe, opt, x, y)
        assert in_hooks(probe) == (path == "in-hooks")
        return probe.flush()

    eager, batched = frames("in-hooks"), frames("after-backward")
    for (layers, *rest), (expected, *expected_rest) in zip(eager, batched, strict=True):
        assert rest == expected_rest
        for layer, want in zip(layers, expected, strict=True):
            assert layer["hist"] == want["hist"]
            assert (layer["sat"], layer["sat_pre"]) == (want["sat"], want["sat_pre"])
            for key in ("mean", "std", "act_grad_norm", "grad_norm", "p50"):
                assert layer[key] == pytest.approx(want[key], rel=1e-5), key


def test_without_numba_a_cpu_probe_measures_the_same_with_torch():
    """numba is a dependency, but a GPU machine's bare torch may lack it: a CPU probe then runs
    torch's batch path, and a short run's frames match those of the compiled kernels."""
    script = (
        "import sys, json; sys.modules['numba'] = None\n"  # import numba -> ImportError
        "import torch; torch.set_num_threads(1)\n"  # as here (one_thread): the same sums
        "from normcore.probe import kernels; from normcore.train import run\n"
        "assert not kernels.AVAILABLE\n"
        "print(json.dumps(list(run(dict(norm='batch', steps=6, probe_every=2, device='cpu')))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    without = json.loads(done.stdout)
    with_numba = list(run(dict(norm="batch", steps=6, probe_every=2, device="cpu")))
    assert [f["step"] for f in without] == [f["step"] for f in with_numba] == [1, 3, 5, 6]
    for a, b in zip(without, with_numba, strict=True):  # (two processes: BLAS may round apart)
        for layer, want in zip(a["layers"], b["layers"], strict=True):
            h, w = layer["hist"], want["hist"]
            assert (h["lo"], h["hi"]) == pytest.approx((w["lo"], w["hi"]), rel=1e-6)
            assert np.abs(np.subtract(h["counts"], w["counts"])).sum() <= 2
            assert layer["sat"] == pytest.approx(want["sat"], abs=2 / 6000)
            assert layer["mean"] == pytest.approx(want["mean"], rel=1e-5, abs=1e-6)
            assert layer["std"] == pytest.approx(want["std"], rel=1e-5)


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
@pytest.mark.parametrize(
    "kernel", [pytest.param(True, marks=NUMBA), False], ids=["kernel", "batch"]
)
def test_a_layer_of_another_dtype_is_measured_as_its_float32_values(dtype, kernel):
    """A model of one's own may run in float64 or bfloat16: its layers are measured as their
    float32 values (a kernel reading float64 bits as float32 would count garbage)."""
    x = torch.randn(3000, dtype=dtype) * 2
    x[7] = float("nan")
    edges = choose_edges(np.array([-4.0]), np.array([4.0]), "tanh")
    got = LayerStats(edges, len(x), BINS, "tanh", "cpu", kernel)([[x]], None)
    want = LayerStats(edges, len(x), BINS, "tanh", "cpu", kernel)([[x.float()]], None)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("path", ALL_PATHS)
@pytest.mark.parametrize("batch", [16, 4])
def test_a_probed_step_of_another_batch_size_is_an_error_naming_both(path, batch):
    """The probe's buffers and fractions are sized by the first probed step: a later step of
    more or fewer values is refused with a message, never written past a buffer."""
    torch.manual_seed(0)
    model = build_model(RunConfig(depth=2, width=16, batch_size=8), (5,), 3)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    probe = Probe(
        model.probe_points(), activation="sigmoid", bins=BINS, rows=4, optimizer=opt, path=path
    )
    probed_step(model, probe, opt, torch.randn(8, 5), torch.randint(0, 3, (8,)))
    with pytest.raises(ValueError, match=rf"holds {batch * 16} values .* built for 128"):
        probed_step(model, probe, opt, torch.randn(batch, 5), torch.randint(0, 3, (batch,)))


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
@pytest.mark.parametrize("path", [pytest.param("in-hooks", marks=NUMBA), "staged"])
def test_a_model_of_another_dtype_is_probed(dtype, path):
    """bfloat16 and float64 models: every path measures them (numpy has no bfloat16)."""
    torch.manual_seed(0)
    model = build_model(RunConfig(depth=2, width=16, norm="batch"), (5,), 3).to(dtype)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    probe = Probe(
        model.probe_points(), activation="sigmoid", bins=BINS, rows=4, optimizer=opt, path=path
    )
    x, y = torch.randn(8, 5, dtype=dtype), torch.randint(0, 3, (8,))
    for _ in range(2):
        probed_step(model, probe, opt, x, y)
    for layers, loss, acc, _ in probe.flush():
        assert math.isfinite(loss) and 0.0 <= acc <= 1.0
        for layer in layers:
            assert (
                sum(layer["hist"]["counts"]) + layer["hist"]["under"] + layer["hist"]["over"] == 128
            )
            assert all(layer[k] is not None for k in ("mean", "std", "grad_norm", "g_mean"))


@pytest.mark.parametrize("path", ALL_PATHS[:3])
def test_a_norm_free_layer_may_name_one_module_as_pre_and_act(path):
    """A model of one's own without a norm has one point for both: its pre-activation is its
    activation input, and the probe reads it once, in the hooks or after backward."""
    torch.manual_seed(0)
    linear, act_in = torch.nn.Linear(5, 16), torch.nn.Identity()
    model = torch.nn.Sequential(linear, act_in, torch.nn.Tanh(), torch.nn.Linear(16, 3))
    point = ProbePoint("h1", act_in, act_in, linear.weight, torch.nn.Identity())
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    probe = Probe([point], activation="tanh", bins=BINS, rows=4, optimizer=opt, path=path)
    x, y = torch.randn(8, 5), torch.randint(0, 3, (8,))
    for _ in range(3):
        probed_step(model, probe, opt, x, y)
    assert in_hooks(probe) == (path == "in-hooks")
    for (layer,), *_ in probe.flush():
        assert layer["sat"] == layer["sat_pre"] and layer["mean"] is not None
