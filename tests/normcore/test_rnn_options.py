"""The sequence task's and the RNN's options (issue 15, C5): lengths, masking, per-step BN,
separate input and recurrent norms, the early-motif task; defaults leave runs as they were."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from pydantic import ValidationError

from normcore import step_norm
from normcore.config import RNN_ONLY, RunConfig
from normcore.data import datasets
from normcore.data.datasets import MOTIF_LEN, SeqSpec, load_dataset, with_mask
from normcore.models import RNN, RecurrentLayer, build_model
from normcore.step_norm import COOIJMANS_GAIN, StepBatchNorm
from normcore.train import run

RNN_BASE = dict(model="rnn", dataset="sequence", activation="tanh", depth=1, width=8)


def rnn(**kw) -> RunConfig:
    return RunConfig(**{**RNN_BASE, **kw})


# --- config ----------------------------------------------------------------------------------


def test_the_defaults_are_the_task_as_it_was():
    cfg = RunConfig()
    assert {k: getattr(cfg, k) for k in RNN_ONLY} == RNN_ONLY
    assert rnn().test_len == 20 and rnn(seq_len=30).test_len == 30
    assert rnn(seq_len=30, seq_len_test=60).test_len == 60
    assert "seq_" not in rnn().label() and "seq_len_test 60" in rnn(seq_len_test=60).label()


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"model": "mlp", "dataset": "digits", "seq_len": 30}, "seq_len", "seq_len 30"),
        ({"model": "mlp", "dataset": "digits", "seq_vary": True}, "seq_vary", "model 'rnn' only"),
        ({"seq_len": 30, "seq_len_test": 20}, "seq_len_test", "seq_len_test 20 is shorter"),
        ({"seq_len": 5}, "seq_len", "greater than or equal to 10"),
        ({"norm": "layer", "bn_per_step": True}, "bn_per_step", "norm 'layer'"),
        ({"norm": "weight", "norm_terms": "separate"}, "norm_terms", "norm 'weight'"),
        (
            {"norm": "layer", "placement": "after", "norm_terms": "separate"},
            "norm_terms",
            "placement 'before'",
        ),
        ({"seq_task": "middle"}, "seq_task", "'middle' is unknown; known: late, early"),
        ({"seq_vary": 1}, "seq_vary", "boolean"),
    ],
)
def test_invalid_options_are_refused_naming_field_and_value(changes, field, words):
    with pytest.raises(ValidationError) as err:
        RunConfig(**{**RNN_BASE, **changes})
    errors = err.value.errors()
    assert errors[0]["loc"] == (field,)
    assert words in errors[0]["msg"]


# --- data ------------------------------------------------------------------------------------


def test_default_spec_is_the_sequence_set_as_it_was():
    a = load_dataset("sequence", seed=2, val_fraction=0.1)
    b = load_dataset("sequence", seed=2, val_fraction=0.1, seq=SeqSpec.of(rnn()))
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.test_x, b.test_x)
    assert a.input_shape == (20, 3)
    # the values seed 0 gave before the options existed (commit a7f5927)
    d = load_dataset("sequence", seed=0)
    assert d.train_y[:8].tolist() == [2, 3, 2, 3, 2, 2, 2, 1]
    assert round(float(d.train_x[0, 0, 0]), 4) == -0.8684


def test_longer_test_sequences_keep_training_and_validation_at_the_training_length():
    d = load_dataset("sequence", seed=0, val_fraction=0.1, seq=SeqSpec(20, 40))
    assert d.train_x.shape[1:] == (20, 3) and d.val_x is not None
    assert d.val_x.shape[1:] == (20, 3) and d.test_x.shape[1:] == (40, 3)
    same = load_dataset("sequence", seed=0, val_fraction=0.1)
    assert torch.equal(d.train_x, same.train_x)  # the test split is drawn after training's


def test_variable_lengths_carry_a_mask_and_zero_padding():
    d = load_dataset("sequence", seed=1, val_fraction=0.1, seq=SeqSpec(20, 30, vary=True))
    assert d.input_shape == (20, 4) and d.test_x.shape[1:] == (30, 4)
    for x, longest in ((d.train_x, 20), (d.val_x, 20), (d.test_x, 30)):
        assert x is not None
        mask = x[..., -1]
        lengths = mask.sum(1)
        assert set(mask.unique().tolist()) == {0.0, 1.0}
        assert int(lengths.min()) == -(-longest // 2) and int(lengths.max()) == longest
        # the mask is a prefix: real steps first, then padding, which is all zero
        assert torch.equal(mask, (torch.arange(x.shape[1]) < lengths[:, None]).float())
        assert float(x[..., :-1][mask == 0].abs().max()) == 0.0
    real = d.train_x[..., -1] > 0
    values = d.train_x[..., :-1][real]  # standardized over real steps only
    assert values.mean(0).abs().max() < 1e-5 and (values.std(0) - 1).abs().max() < 1e-3


@pytest.mark.parametrize("task", ["late", "early"])
def test_the_motif_sits_where_the_task_says_within_each_sequence(monkeypatch, task):
    import numpy as np

    monkeypatch.setattr(datasets, "SEQ_NOISE", 0.0)  # x is then the motif alone
    rng = np.random.default_rng(0)
    motifs = np.ones((4, MOTIF_LEN, 3))
    x, _, lengths = datasets._sequences(rng, motifs, 500, 24, SeqSpec(24, vary=True, task=task))
    starts = (x[..., 0] != 0).argmax(1)
    assert ((x[..., 0] != 0).sum(1) == MOTIF_LEN).all()
    assert (starts + MOTIF_LEN <= lengths).all()  # inside the sequence, never in padding
    if task == "early":
        assert (starts <= np.floor(lengths / 4)).all()
    else:
        assert (starts >= np.minimum(8, lengths - MOTIF_LEN)).all() and starts.max() > 12


# --- the model: masking ----------------------------------------------------------------------


def _padded_batch(seed: int = 0, T: int = 12, lengths=(12, 7, 5, 9, 12, 6)):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(len(lengths), T, 3, generator=g)
    return with_mask(x.numpy(), torch.tensor(lengths).numpy()), torch.tensor(lengths)


MASKED = [
    dict(norm="none"),
    dict(norm="layer"),
    dict(norm="batch"),
    dict(norm="batch", bn_per_step=True),
    dict(norm="batch", cell="lstm", depth=2),
    dict(norm="batch", bn_per_step=True, norm_terms="separate"),
    dict(norm="layer", norm_terms="separate", cell="lstm"),
]


@pytest.mark.parametrize("kw", MASKED)
def test_padded_steps_change_no_output_gradient_or_statistic(kw):
    """Garbage in the padding instead of zeros: the same outputs, gradients and running
    statistics (BN leaves padded samples out of its batch and running statistics)."""
    cfg = rnn(seq_len=12, seq_vary=True, **kw)
    x, lengths = _padded_batch()
    clean = torch.from_numpy(x)
    dirty = clean.clone()
    pad = dirty[..., -1] == 0
    dirty[..., :-1][pad] = torch.randn(int(pad.sum()), 3) * 50
    outs, grads, stats = [], [], []
    for inp in (clean, dirty):
        torch.manual_seed(0)
        model = build_model(cfg, (12, 4), 4).train()
        y = model(inp)
        F.cross_entropy(y, torch.arange(6) % 4).backward()
        outs.append(y.detach())
        grads.append([p.grad.clone() for p in model.parameters() if p.grad is not None])
        stats.append([b.clone() for b in model.buffers()])
    assert torch.equal(outs[0], outs[1])
    assert all(torch.equal(a, b) for a, b in zip(*grads, strict=True))
    assert all(torch.equal(a, b) for a, b in zip(*stats, strict=True))


@pytest.mark.parametrize("kw", [dict(norm="none"), dict(norm="layer", cell="lstm", depth=2)])
def test_a_padded_sequence_reads_as_the_same_sequence_unpadded(kw):
    """Per-sample norms: a sequence padded to 12 steps gives what it gives alone at its
    own length (the state is held through the padding; the head reads it)."""
    torch.manual_seed(0)
    masked = build_model(rnn(seq_len=12, seq_vary=True, **kw), (12, 4), 4).eval()
    torch.manual_seed(0)
    plain = build_model(rnn(seq_len=12, **kw), (12, 3), 4).eval()
    x, lengths = _padded_batch()
    out = masked(torch.from_numpy(x))
    for i, n in enumerate(lengths.tolist()):
        alone = plain(torch.from_numpy(x[i : i + 1, :n, :-1]))
        assert torch.allclose(out[i], alone[0], atol=1e-6)


def test_without_padding_the_masked_model_is_the_plain_one():
    torch.manual_seed(0)
    masked = build_model(rnn(seq_len=12, seq_vary=True, norm="layer"), (12, 4), 4)
    torch.manual_seed(0)
    plain = build_model(rnn(seq_len=12, norm="layer"), (12, 3), 4)
    x = torch.randn(5, 12, 3)
    full = torch.cat([x, torch.ones(5, 12, 1)], dim=2)
    assert torch.allclose(masked(full), plain(x), atol=1e-6)


# --- per-step BN -----------------------------------------------------------------------------


def test_per_step_bn_keeps_one_set_of_statistics_per_time_step():
    model = build_model(rnn(seq_len=12, norm="batch", bn_per_step=True), (12, 3), 4)
    norm = model.blocks[0].norm
    assert isinstance(norm, StepBatchNorm)
    assert norm.running_mean.shape == (12, 8) and norm.running_var.shape == (12, 8)
    assert torch.all(norm.weight == COOIJMANS_GAIN)
    # a step whose inputs have mean t: that step's running mean moves to 0.1 · t, no other
    bn = StepBatchNorm(3, 4)
    for t in range(4):
        bn(torch.randn(64, 3) * 0.01 + t, t)
    assert torch.allclose(bn.running_mean[:, 0], 0.1 * torch.arange(4.0), atol=2e-3)


def test_steps_beyond_the_trained_length_reuse_the_last_steps_statistics():
    bn = StepBatchNorm(3, 4)
    for t in range(4):
        bn(torch.randn(64, 3) + 3 * t, t)
    bn.eval()
    z = torch.randn(5, 3)
    assert torch.equal(bn(z, 9), bn(z, 3)) and not torch.equal(bn(z, 2), bn(z, 3))


def test_shared_statistics_without_a_mask_are_batchnorm1d():
    shared, ref = StepBatchNorm(6, 1), torch.nn.BatchNorm1d(6)
    for _ in range(3):
        z = torch.randn(10, 6) * 2 + 1
        assert torch.allclose(shared(z, 5), ref(z), atol=1e-6)
    assert torch.allclose(shared.running_mean[0], ref.running_mean)
    assert torch.allclose(shared.running_var[0], ref.running_var)


def test_masked_statistics_are_the_real_samples_statistics():
    bn = StepBatchNorm(2, 1, momentum=1.0)
    z = torch.tensor([[1.0, 2.0], [3.0, 6.0], [100.0, -100.0]])
    y = bn(z, 0, torch.tensor([1.0, 1.0, 0.0]))
    ref = F.batch_norm(z[:2], None, None, training=True)
    assert torch.allclose(y[:2], ref, atol=1e-5)
    assert torch.allclose(bn.running_mean[0], torch.tensor([2.0, 4.0]))
    assert torch.allclose(bn.running_var[0], z[:2].var(0))  # unbiased, as BatchNorm1d's
    before = bn.running_mean.clone()
    bn(z, 0, torch.zeros(3))  # no real sample at this step: nothing learned from it
    assert torch.equal(bn.running_mean, before)


def _forced_masked_forward(layer, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """RecurrentLayer.forward with the mask handed to every step, full ones included: the
    plain masked path that the layer's unmasked full steps must reproduce."""
    h = c = x.new_zeros(len(x), layer.width)
    out = []
    for t in range(x.shape[1]):
        m = mask[:, t]
        h_new, c_new = layer._step(x[:, t], h, c, t, m)
        keep = m[:, None] > 0
        h, c = torch.where(keep, h_new, h), torch.where(keep, c_new, c)
        out.append(h)
    return torch.stack(out, dim=1)


@pytest.mark.parametrize("kw", MASKED)
def test_full_steps_run_unmasked_as_the_masked_path_computes_them(kw, monkeypatch):
    """The fast paths against the plain masked one. Fast: steps 0-4 have every sample real
    (shortest length 5) and run unmasked (BN's fused kernel), the rest by the fused kernel on
    their real rows. Plain: the mask handed to every step, BN by weighted sums (what a GPU
    runs). Outputs, gradients and running statistics agree up to rounding (float64: float32's
    is amplified through 12 steps of an LSTM to ~1e-5)."""
    cfg = rnn(seq_len=12, seq_vary=True, **kw)
    x, _ = _padded_batch()
    inp = torch.from_numpy(x).double()
    seq, mask = inp[..., :-1], inp[..., -1]
    assert RecurrentLayer._full_steps(mask, 12) == [True] * 5 + [False] * 7
    got = []
    for forward in ("fast", "plain"):
        if forward == "plain":
            monkeypatch.setattr(step_norm, "host_reads", lambda t: False)
        torch.manual_seed(0)
        model = build_model(cfg, (12, 4), 4).double().train()
        h = seq
        for layer in model.blocks:
            h = layer(h, mask) if forward == "fast" else _forced_masked_forward(layer, h, mask)
        y = model.head(h[:, -1])
        F.cross_entropy(y, torch.arange(6) % 4).backward()
        grads = [p.grad.clone() for p in model.parameters() if p.grad is not None]
        got.append((y.detach(), grads, [b.clone() for b in model.buffers()]))
    (y0, g0, b0), (y1, g1, b1) = got
    torch.testing.assert_close(y0, y1, rtol=1e-10, atol=1e-12)
    for a, b in zip(g0 + b0, g1 + b1, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    "kw",
    [
        dict(norm="none"),
        dict(norm="layer", placement="after"),
        dict(norm="batch", bn_per_step=True),
        dict(norm="rms", cell="lstm", depth=2),
        dict(norm="layer", norm_terms="separate"),
    ],
)
def test_input_terms_for_all_steps_at_once_compute_the_concatenated_step(kw):
    """``_input_terms`` (W_x x_t for every step in one matmul, then W_h h_{t-1} per step)
    against the step over the concatenation [x_t, h_{t-1}], which a hooked layer still takes:
    outputs and gradients agree in float64 up to rounding."""
    x = torch.randn(5, 12, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    got = []
    for hooked in (False, True):
        torch.manual_seed(0)
        model = build_model(rnn(seq_len=12, **kw), (12, 3), 4).double().train()
        for layer in model.blocks:
            if hooked:
                layer.linear.register_forward_hook(lambda *_: None)
            assert (layer._input_terms(x[..., :1].expand(5, 12, layer.n_in))[1] is None) == hooked
        y = model(x)
        F.cross_entropy(y, torch.arange(5) % 4).backward()
        got.append([y.detach()] + [p.grad.clone() for p in model.parameters()])
    for a, b in zip(*got, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("norm", ["weight", "cosine"])
def test_layers_that_see_the_whole_concatenation_keep_the_step_over_it(norm):
    model = build_model(rnn(norm=norm), (20, 3), 4)
    layer = model.blocks[0]
    xs, w_h = layer._input_terms(torch.randn(2, 20, 3))
    assert w_h is None and xs.shape == (2, 20, 3)


@pytest.mark.parametrize("path", ["real rows", "weighted"])
@pytest.mark.parametrize("gain", [1.0, 0.1])
def test_masked_bn_is_batchnorm1d_on_the_real_samples(gain, path):
    """Float64 reference: a masked step's real outputs, the gradients of z, g and b (with the
    padded outputs discarded, as the RNN does) and the running statistics are BatchNorm1d's
    on the real rows alone; the padded rows are normalized with the real rows' statistics.
    Two paths: the CPU's (the fused kernel on the real rows) and the weighted sums that a GPU
    and the grouped evaluation take (called directly here, on the CPU)."""
    torch.manual_seed(0)
    z = (torch.randn(9, 5, dtype=torch.float64) * 3 + 1).requires_grad_(True)
    mask = torch.tensor([1, 0, 1, 1, 0, 1, 1, 0, 1], dtype=torch.float64)
    real = mask > 0
    upstream = torch.randn(int(real.sum()), 5, dtype=torch.float64)
    bn = StepBatchNorm(5, 3, gain=gain).double()
    y = bn(z, 1, mask) if path == "real rows" else bn._masked(z, mask, 9, 1)
    (y[real] * upstream).sum().backward()
    ref_bn = torch.nn.BatchNorm1d(5).double()
    with torch.no_grad():
        ref_bn.weight.fill_(gain)
    z_ref = z.detach().clone().requires_grad_(True)
    ref = ref_bn(z_ref[real])
    (ref * upstream).sum().backward()
    torch.testing.assert_close(y[real], ref)
    torch.testing.assert_close(z.grad[real], z_ref.grad[real])
    assert torch.all(z.grad[~real] == 0)  # padding has no say in the real samples' outputs
    torch.testing.assert_close(bn.weight.grad, ref_bn.weight.grad)
    torch.testing.assert_close(bn.bias.grad, ref_bn.bias.grad)
    torch.testing.assert_close(bn.running_mean[1], ref_bn.running_mean)
    torch.testing.assert_close(bn.running_var[1], ref_bn.running_var)
    assert torch.all(bn.running_mean[[0, 2]] == 0)  # the other steps' statistics untouched
    zr = z.detach()[real]
    pad = (z.detach()[~real] - zr.mean(0)) / torch.sqrt(zr.var(0, unbiased=False) + bn.eps)
    torch.testing.assert_close(y[~real], pad * gain)


def test_default_bn_rnn_is_one_batchnorm1d_as_before():
    model = build_model(rnn(norm="batch"), (20, 3), 4)
    assert type(model.blocks[0].norm) is torch.nn.BatchNorm1d


# --- separate input and recurrent norms -------------------------------------------------------


def test_separate_norms_compute_norm_x_plus_norm_h_plus_b():
    torch.manual_seed(0)
    model = build_model(rnn(norm="layer", norm_terms="separate", width=4), (3, 3), 2)
    assert isinstance(model, RNN)
    layer = model.blocks[0]
    with torch.no_grad():
        layer.bias.normal_()
        layer.norm.weight.normal_()
        layer.norm_h.weight.normal_()
    x = torch.randn(2, 3, 3)
    w = layer.linear.weight
    h = torch.zeros(2, 4)
    for t in range(3):
        z = layer.norm(x[:, t] @ w[:, :3].T) + layer.norm_h(h @ w[:, 3:].T) + layer.bias
        h = torch.tanh(z)
    assert torch.allclose(layer(x)[:, -1], h, atol=1e-6)
    assert layer.linear.bias is None  # the bias comes after the norms


# --- training ------------------------------------------------------------------------------


def test_a_run_trains_on_20_steps_and_is_tested_on_40_with_varied_masked_lengths():
    cfg = rnn(
        norm="batch",
        bn_per_step=True,
        seq_vary=True,
        seq_len_test=40,
        seq_task="early",
        batch_size=16,
        steps=30,
        probe_every=10,
        eval_every=30,
        val_fraction=0.1,
        device="cpu",
    )
    frames = list(run(cfg))
    last = frames[-1]
    assert last["status"] == "completed"
    assert 0.0 <= last["eval"]["acc"] <= 1.0 and last["val"]["acc"] is not None
    assert last["eval"]["acc_batch"] is not None  # BN's batch-statistics evaluation too
