"""Every preset shows what its description promises: each runs briefly (fewer steps than the
preset's own, the effect named arrives early) and the named effect is checked in its frames."""

from __future__ import annotations

from typing import Any

import pytest

from app.api.catalog import PRESETS
from normcore.claims.measures import band_movement, eval_auc, final_eval
from normcore.data import fashion
from normcore.train import run

BY_ID = {p.id: p for p in PRESETS}


def frames_of(preset_id: str, **brief: Any) -> list[list[dict]]:
    """Each run of the preset, on the CPU, with `brief` overriding its length."""
    return [
        list(run({**cfg, "device": "cpu", "hist_bins": 32, **brief}))
        for cfg in BY_ID[preset_id].runs
    ]


def test_every_preset_is_checked_here():
    checked = {name.removeprefix("test_preset_").replace("_", "-") for name in globals()}
    assert {p.id for p in PRESETS} <= checked


@pytest.mark.skipif(not fashion.available(), reason="Fashion-MNIST is not installed")
def test_preset_deep_sigmoid_saturation():
    """Glorot & Bengio's Fig. 2: the top layer's graded saturation rises above the lower
    layers' early in training, its outputs sink toward 0, and accuracy sits at chance."""
    (frames,) = frames_of("deep-sigmoid-saturation", steps=800, probe_every=50, eval_every=800)
    first, last = frames[0]["layers"], frames[-1]["layers"]
    assert max(layer["sat_graded"] for layer in first) < 0.15  # nothing saturated at the start
    top, lower = last[-1], last[:-1]
    assert top["sat_graded"] > max(layer["sat_graded"] for layer in lower) + 0.3
    assert top["out_mean"] < 0.2 and all(layer["out_mean"] > 0.4 for layer in lower)
    assert all(layer["sat"] == 0.0 for layer in last)  # the strict cut sees none of it
    assert final_eval(frames) < 0.2  # learning has stalled (10 classes)


def test_preset_deep_sigmoid_vanishing_gradients():
    (frames,) = frames_of(
        "deep-sigmoid-vanishing-gradients", steps=100, probe_every=25, eval_every=100
    )
    for f in frames:
        grads = [layer["grad_norm"] for layer in f["layers"]]
        assert grads[0] < 1e-5 * grads[-1]
        assert all(layer["sat_graded"] < 0.2 for layer in f["layers"])  # not saturation
    assert final_eval(frames) < 0.2


def test_preset_bn_figure_1():
    """With BN the last layer's 15/50/85 band moves less and accuracy rises faster."""
    none, batch = frames_of("bn-figure-1", steps=500, probe_every=10, eval_every=50)
    assert band_movement(batch) < band_movement(none)
    assert eval_auc(batch) > eval_auc(none)


def test_preset_bn_batch_2_vs_ln():
    """At batch 2, BN's held-out accuracy (eval mode) is below LN's."""
    batch, layer = frames_of("bn-batch-2-vs-ln", steps=600, probe_every=50, eval_every=600)
    assert final_eval(batch) < final_eval(layer)


def test_preset_bn_one_class_vs_ln():
    """With one-class batches BN's eval-mode accuracy collapses; LN's does not."""
    batch, layer = frames_of("bn-one-class-vs-ln", steps=600, probe_every=50, eval_every=600)
    assert final_eval(batch) < 0.3 < final_eval(layer)


def test_preset_bn_affine():
    """Without g, b the normalized inputs stay near the sigmoid's linear middle; with them
    the inputs reach further into the saturated region (graded saturation higher)."""
    plain, affine = frames_of("bn-affine", steps=500, probe_every=50, eval_every=500)

    def graded(frames):
        return sum(layer["sat_graded"] for layer in frames[-1]["layers"]) / 3

    assert graded(affine) > graded(plain)


def test_preset_none_bn_ln_rms():
    """The four norms on one network: every one of them trains (a comparison of norms, not
    of a network that cannot learn)."""
    runs = frames_of("none-bn-ln-rms", steps=400, probe_every=50, eval_every=400)
    for frames in runs:
        first = next(f["eval"]["acc"] for f in frames if f.get("eval"))
        assert final_eval(frames) > first + 0.3
