"""The trainer: frames with every field, the BN paper's Figure 1, divergence, cancel, seeds."""

import json
import warnings

import pytest
import torch

from normcore.config import RunConfig
from normcore.frames import FRAME_STATUSES, decode, encode, to_json
from normcore.probe.probe import Probe
from normcore.train import resolve_device, run

FRAME_KEYS = {
    "seq",
    "step",
    "time",
    "status",
    "device",
    "loss",
    "acc",
    "lr",
    "steps_per_s",
    "val",
    "eval",
    "ics",
    "layers",
}
LAYER_KEYS = {
    "name",
    "hist",
    "nonfinite",
    "mean",
    "std",
    "p15",
    "p50",
    "p85",
    "sat",
    "sat_pre",
    "grad_norm",
    "act_grad_norm",
    "weight_norm",
    "update_ratio",
    "g_mean",
    "g_std",
    "b_mean",
    "b_std",
    "w1_prev",
    "w1_first",
    "sat_graded",
    "out_mean",
    "out_std",
}
# The BN paper's Figure 1 setting, shortened: 3×100 sigmoid MLP, batch 60, "small random
# Gaussian" init; lr 1.0 so the network without BN learns too (held-out acc ~0.9 at 300 steps).
FIG1 = dict(
    model="mlp",
    depth=3,
    width=100,
    activation="sigmoid",
    dataset="digits",
    batch_size=60,
    lr=1.0,
    init="gaussian",
    init_std=0.1,
    steps=300,
    probe_every=10,
    eval_every=100,
    device="cpu",
)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def fig1_runs(device):
    return {
        norm: list(run(dict(FIG1, norm=norm, device=device.type))) for norm in ("none", "batch")
    }


def band_movement(frames) -> float:
    """How far the last hidden layer's 15th and 85th percentiles ever got from where they began."""
    first = frames[0]["layers"][-1]
    last_layers = [f["layers"][-1] for f in frames]
    return max(abs(x["p15"] - first["p15"]) + abs(x["p85"] - first["p85"]) for x in last_layers)


def test_a_300_step_run_yields_frames_with_every_field(fig1_runs):
    for norm, frames in fig1_runs.items():
        assert [f["step"] for f in frames] == [*range(1, 300, 10), 300]
        assert [f["seq"] for f in frames] == list(range(len(frames)))
        assert [f["status"] for f in frames] == ["running"] * (len(frames) - 1) + ["completed"]
        for frame in frames:
            assert set(frame) == FRAME_KEYS
            assert [layer["name"] for layer in frame["layers"]] == ["h1", "h2", "h3"]
            for layer in frame["layers"]:
                assert set(layer) == LAYER_KEYS
                assert set(layer["hist"]) == {"lo", "hi", "counts", "under", "over"}
                total = (
                    sum(layer["hist"]["counts"]) + layer["hist"]["under"] + layer["hist"]["over"]
                )
                assert total == 60 * 100 and layer["nonfinite"] == 0
                gain = [layer[k] for k in ("g_mean", "g_std", "b_mean", "b_std")]
                assert all(v is not None for v in gain) == (norm == "batch")
                numbers = {k: v for k, v in layer.items() if k not in ("name", "hist")}
                assert all(v is not None for k, v in numbers.items() if k[:2] not in ("g_", "b_"))
            assert decode(encode(frame)) == json.loads(to_json(frame))
        evals = [f for f in frames if f["eval"] is not None]
        assert [f["step"] for f in evals] == [1, 101, 201, 300]
        batch_mode = evals[-1]["eval"]["acc_batch"]
        assert (batch_mode is not None) == (norm == "batch")  # BN keeps running statistics
        assert evals[-1]["eval"]["acc"] > 0.8  # both learn: the comparison below is fair


def test_batch_norm_keeps_the_last_layers_percentile_band_steadier(fig1_runs):
    """BN paper Fig. 1 (b, c), qualitatively: without BN the 15–85 band of the last hidden
    layer's sigmoid input drifts; with BN it stays put (measured ~1.0 vs ~3.7 here)."""
    with_bn, without = band_movement(fig1_runs["batch"]), band_movement(fig1_runs["none"])
    assert with_bn < 0.6 * without


def test_lr_1e3_ends_diverged_without_an_exception(device):
    # ReLU is unbounded, so the loss overflows to inf/NaN (sigmoid/tanh nets keep a huge but
    # finite cross-entropy at this lr and complete)
    cfg = dict(activation="relu", lr=1e3, steps=200, probe_every=5, device=device.type)
    frames = list(run(cfg))
    assert frames[-1]["status"] == "diverged"
    assert frames[-1]["step"] < 200
    assert all(f["status"] == "running" for f in frames[:-1]) and len(frames) >= 2
    assert json.loads(to_json(frames[-1]))["loss"] is None  # NaN/inf travel as null
    assert all(f["loss"] == f["loss"] for f in frames[:-1])  # frames before it kept, finite


@pytest.mark.parametrize("activation", ["sigmoid", "tanh"])
def test_lr_1e3_on_a_saturating_net_ends_diverged_on_an_exploded_loss(activation):
    # bounded activations keep the loss finite but huge: above EXPLODED_LOSS × log K is diverged
    frames = list(run(dict(activation=activation, lr=1e3, steps=200, probe_every=5)))
    assert frames[-1]["status"] == "diverged"
    assert frames[-1]["step"] < 200
    assert frames[-1]["loss"] > 100 * 2.302


def test_frame_time_keeps_sub_second_precision_on_the_wire():
    frames = list(run(dict(steps=3, probe_every=1, eval_every=10)))
    wire = [json.loads(to_json(f))["time"] for f in frames]
    assert wire == [f["time"] for f in frames]


def test_a_fixed_seed_reproduces_the_run_exactly():
    cfg = dict(norm="batch", steps=40, probe_every=4, ics=True, device="cpu", seed=3)

    def stable(frames):
        return [{k: v for k, v in f.items() if k not in ("time", "steps_per_s")} for f in frames]

    first, second = stable(run(cfg)), stable(run(cfg))
    assert json.dumps(first) == json.dumps(second)
    other = stable(run(dict(cfg, seed=4)))
    assert json.dumps(other) != json.dumps(first)


def test_should_stop_is_polled_between_steps_and_keeps_the_frames_so_far():
    calls = []

    def should_stop() -> bool:
        calls.append(1)
        return len(calls) > 25

    frames = list(run(dict(steps=100, probe_every=10, device="cpu"), should_stop=should_stop))
    assert [f["step"] for f in frames] == [1, 11, 21]
    assert all(f["status"] == "running" for f in frames)  # no final frame for a cancel
    assert len(calls) == 26


@pytest.mark.parametrize(
    "cfg",
    [
        dict(model="rnn", dataset="sequence", cell="elman", norm="layer", width=16),
        dict(model="rnn", dataset="sequence", cell="lstm", norm="batch", width=16),
        dict(model="convnet", norm="group", groups=2, width=4, activation="relu"),
        dict(norm="weight", optimizer="adam", lr=0.01, clip=1.0, placement="after"),
        dict(norm="cosine", optimizer="momentum", affine=False, activation="gelu"),
    ],
    ids=["elman-ln", "lstm-bn", "convnet-gn", "wn-adam-clip", "cn-momentum"],
)
def test_other_models_and_optimizers_complete(cfg):
    frames = list(run(dict(cfg, steps=12, probe_every=4, batch_size=16, device="cpu")))
    assert [f["step"] for f in frames] == [1, 5, 9, 12]
    assert frames[-1]["status"] == "completed" and frames[-1]["loss"] == frames[-1]["loss"]
    assert all(f["status"] in FRAME_STATUSES for f in frames)


def test_ics_is_reported_per_layer_when_asked():
    frames = list(run(dict(norm="batch", steps=3, ics=True, device="cpu")))
    ics = frames[-1]["ics"]
    assert [r["name"] for r in ics] == ["h1", "h2", "h3"]
    assert ics[0]["l2"] == 0.0 and ics[0]["cos"] == pytest.approx(1.0)
    assert ics[2]["l2"] > 0
    assert list(run(dict(steps=2, device="cpu")))[-1]["ics"] is None  # off by default


def test_device_auto_picks_cuda_only_when_present():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="device 'cuda' is not available"):
            resolve_device("cuda")


def test_an_8_layer_64_bin_frame_encodes_to_at_most_2_5_kb():
    frames = list(run(dict(norm="batch", depth=8, width=256, steps=20, hist_bins=64, eval_every=5)))
    assert all(
        len(f["layers"]) == 8 and len(f["layers"][0]["hist"]["counts"]) == 64 for f in frames
    )
    sizes = [len(encode(f)) for f in frames]
    assert max(sizes) <= 2500, sizes


def marking(method, mark: str, record: list):
    """``method`` that first appends ``mark`` to ``record``."""

    def marked(self, *args):
        record.append(mark)
        return method(self, *args)

    return marked


@pytest.mark.parametrize(
    "cfg",
    [
        dict(norm="batch", optimizer="sgd"),
        dict(norm="layer", optimizer="momentum", clip=1.0),
        dict(norm="weight", optimizer="adam", lr=0.01),
        dict(model="rnn", dataset="sequence", cell="lstm", norm="layer", width=16),
    ],
    ids=["bn-sgd", "ln-momentum-clip", "wn-adam", "lstm-ln"],
)
def test_a_gpu_run_syncs_the_host_only_when_it_flushes_frames(cfg, device, monkeypatch):
    """DESIGN's promise: no host sync per step. torch's sync debug mode reports every sync as
    a warning; markers put in the same record say where each fell. A step's own work (from
    one ``should_stop`` poll to the next) must have none; the first probe (it fixes the
    histogram edges) and the flushes that turn the ring buffer into frames may."""
    if device.type != "cuda":
        pytest.skip("host syncs exist on a GPU only (run with TORCH_DEVICE=cuda)")
    config = dict(cfg, steps=100, probe_every=1, eval_every=30, device="cuda")
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        for name in ("_setup", "flush"):
            monkeypatch.setattr(Probe, name, marking(getattr(Probe, name), name, record))
        torch.cuda.set_sync_debug_mode("warn")
        try:
            frames = list(run(config, should_stop=lambda: bool(record.append("step"))))
        finally:
            torch.cuda.set_sync_debug_mode("default")
    assert frames[-1]["status"] == "completed" and len(frames) == 100
    where, syncs = "start", []
    for item in record:
        if isinstance(item, str):
            where = item
        elif "synchroniz" in str(item.message):
            syncs.append(where)
    assert "flush" in record
    assert syncs.count("step") == 0, f"{syncs.count('step')} syncs inside steps"


def test_a_validation_split_is_evaluated_beside_the_test_split():
    cfg = RunConfig(
        dataset="digits",
        depth=2,
        width=16,
        steps=40,
        probe_every=10,
        eval_every=20,
        lr=0.5,
        val_fraction=0.2,
        device="cpu",
        hist_bins=8,
    )
    frames = list(run(cfg))
    both = [f for f in frames if f["eval"] is not None]
    assert [f["step"] for f in both] == [1, 21, 40]
    assert all(f["val"] is not None for f in both)
    assert all(f["val"] is None for f in frames if f["eval"] is None)
    assert set(both[-1]["val"]) == set(both[-1]["eval"])
    assert 0.0 <= both[-1]["val"]["acc"] <= 1.0 and both[-1]["val"]["loss"] > 0
    # the same weights on different samples: the two evaluations differ
    assert both[-1]["val"]["loss"] != both[-1]["eval"]["loss"]
    # without the split, frames say so with null
    plain = list(run(cfg.model_copy(update={"val_fraction": 0.0})))
    assert all(f["val"] is None for f in plain)
