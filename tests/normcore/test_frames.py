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
