"""normcore.frames.clean: the rounding every stored and streamed frame goes through."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from normcore.frames import clean, decode, encode, round_sig


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


# --- round_sig: clean's rounding, vectorized -------------------------------------------------


def _printf(values, digits: int) -> np.ndarray:
    """The definition: each finite value through "%.{digits}g" and back."""
    return np.array(
        [float(f"%.{digits}g" % v) if np.isfinite(v) else v for v in values], np.float64
    )


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.tobytes() == b.tobytes()  # -0.0 vs 0.0 and NaN payloads included


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.floats(allow_nan=True, allow_infinity=True, width=64), max_size=64),
    st.sampled_from([1, 3, 5, 7, 12]),
)
def test_round_sig_is_printf_rounding_bit_for_bit(values, digits):
    a = np.array(values, np.float64)
    assert _same_bits(round_sig(a, digits), _printf(a, digits))


@pytest.mark.parametrize("digits", [3, 5])
def test_round_sig_at_ties_powers_of_ten_and_the_range_ends(digits):
    """The cases a vectorized rounding gets wrong: decimal ties (k + 1/2)·10^e and their
    neighbours one ulp away, powers of ten one ulp either side (log10 rounds across them),
    values whose 10^s is not exact, subnormals and the largest doubles; random bit patterns."""
    ties = [
        (k + 0.5) * 10.0**e
        for k in (10 ** (digits - 1), 12345 % 10**digits, 10**digits - 1)
        for e in range(-30, 30)
    ]
    tens = [10.0**e for e in range(-320, 309)]
    near = [np.nextafter(t, inf) for t in ties + tens for inf in (np.inf, -np.inf)]
    extremes = [5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, 1e-25, 3.3e27]
    bits = np.random.default_rng(0).integers(0, 2**63, 20_000, dtype=np.uint64).view(np.float64)
    a = np.concatenate([ties, tens, near, extremes, bits])
    a = np.concatenate([a, -a, [0.0, -0.0, np.nan, np.inf, -np.inf]])
    assert _same_bits(round_sig(a, digits), _printf(a, digits))


def test_round_sig_keeps_the_shape_and_leaves_its_input_alone():
    a = np.array([[1.234567, np.nan], [-9.87654321, 0.0]])
    before = a.copy()
    out = round_sig(a)
    assert out.shape == (2, 2) and _same_bits(a, before)
    assert out[0, 0] == 1.2346 and out[1, 0] == -9.8765 and np.isnan(out[0, 1])


@pytest.mark.parametrize(
    "changes",
    [
        dict(),  # the dashboard's default: mlp, sigmoid, no norm
        dict(norm="batch", activation="tanh", depth=2, ics=True, val_fraction=0.1),
        dict(model="convnet", norm="group", activation="relu", dataset="digits", width=8),
        dict(model="rnn", dataset="sequence", norm="layer", activation="tanh", depth=1),
        dict(lr=1e6, activation="relu"),  # diverges: non-finite numbers become None
    ],
)
def test_a_run_with_rounded_layers_stores_what_cleaning_its_frames_stores(changes):
    """``run(rounded=True)`` rounds the layers in the probe's flush, and ``wire`` then keeps
    them as they are: the frames, their wire text and the stored blobs are the ones a full
    precision run gives through ``clean``, byte for byte. So are those of
    ``run(layers_later=True)``, whose layers ``wire`` builds after the frames crossed a pipe
    (pickled in batches that split flushes, as a worker sends them)."""
    from normcore.config import RunConfig
    from normcore.frames import LayersLater, to_json, wire
    from normcore.train import run

    cfg = RunConfig(**{"steps": 40, "probe_every": 3, "eval_every": 20, **changes})
    plain, rounded = list(run(cfg)), list(run(cfg, rounded=True))
    later = list(run(cfg, rounded=True, layers_later=True))
    assert all(isinstance(f["layers"], LayersLater) for f in later)
    later = [
        f for at in range(0, len(later), 5) for f in pickle.loads(pickle.dumps(later[at : at + 5]))
    ]
    assert len(plain) == len(rounded) == len(later) > 1
    for full, short, sent in zip(plain, rounded, later, strict=True):
        clocks = {"time": full["time"], "steps_per_s": full["steps_per_s"]}
        short, sent = {**short, **clocks}, {**sent, **clocks}
        assert short["layers"] == clean(full["layers"])
        text = wire(full)[1]
        assert wire(short, layers_rounded=True)[1] == text == to_json(full)
        assert wire(sent, layers_rounded=True)[1] == text
