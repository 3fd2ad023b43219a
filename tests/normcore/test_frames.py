"""normcore.frames.clean: the rounding every stored and streamed frame goes through."""

from __future__ import annotations

import json

import numpy as np

from normcore.frames import clean, decode, encode


def test_floats_keep_five_significant_digits_and_time_keeps_all():
    frame = {"loss": 2.329612345, "time": 1764130000.123456, "acc": 1.0e-7 / 3}
    assert clean(frame) == {"loss": 2.3296, "time": 1764130000.123456, "acc": 3.3333e-8}


def test_non_finite_floats_become_none_at_any_depth():
    frame = {"loss": float("nan"), "layers": [{"std": float("inf"), "hist": [-float("inf")]}]}
    assert clean(frame) == {"loss": None, "layers": [{"std": None, "hist": [None]}]}


def test_counts_bools_strings_and_none_pass_unchanged_and_tuples_become_lists():
    frame = {"counts": (0, 3, 7), "ok": True, "flags": [True, 2], "name": "h1", "eval": None}
    assert clean(frame) == {
        "counts": [0, 3, 7],
        "ok": True,
        "flags": [True, 2],
        "name": "h1",
        "eval": None,
    }
    assert type(clean(frame)["flags"][0]) is bool


def test_numpy_floats_are_rounded_like_floats():
    assert clean({"x": np.float64(0.123456789), "y": [np.float32(2.5)]}) == {
        "x": 0.12346,
        "y": [2.5],
    }


def test_encode_round_trips_the_cleaned_frame():
    frame = {"seq": 1, "loss": 0.1234567, "layers": [{"counts": [1, 2], "m": float("nan")}]}
    assert decode(encode(frame)) == json.loads(json.dumps(clean(frame)))


def reference_clean(value, digits=5):
    """clean() as its docstring defines it, one value at a time (the spec the fast walk of
    frames must equal)."""
    if isinstance(value, float):
        return float(f"%.{digits}g" % value) if np.isfinite(value) else None
    if isinstance(value, dict):
        return {k: reference_clean(v, 17 if k == "time" else digits) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [reference_clean(v, digits) for v in value]
    return value


def test_the_fast_walk_equals_the_definition_on_real_frames_and_odd_values():
    from normcore.config import RunConfig
    from normcore.train import run

    frames = list(run(RunConfig(steps=30, probe_every=3, eval_every=10, device="cpu")))
    frames += list(run(RunConfig(steps=12, norm="batch", val_fraction=0.1, device="cpu")))
    odd = {
        "time": [1764130000.123456789, float("nan")],  # an exact key: its list too
        "a": np.float64(0.123456789),
        "b": (1.5, float("-inf"), 2, None, "x", True),
        "c": {"d": [[0.333333333, 1], {"e": np.float64(2.5)}]},
        "f": [],
    }
    for frame in [*frames, odd]:
        got = clean(frame)
        assert got == reference_clean(frame)
        assert json.dumps(got) == json.dumps(reference_clean(frame))  # the same text too
