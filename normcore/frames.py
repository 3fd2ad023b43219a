"""The Frame: one probed training step, as plain JSON-ready data.

normcore produces frames, app stores and streams them, the frontend draws them. A frame is a
dict (not a class) so it crosses process, HTTP and SSE boundaries without adapters:

    {
      "seq": 12,              # monotonic per run, from 0; the SSE event id
      "step": 120,            # optimizer steps taken when the frame was probed
      "time": 1764130000.1,   # unix wall time
      "status": "running",    # FRAME_STATUSES: "running" | "completed" | "diverged"
      "device": "cpu",
      "loss": 0.41, "acc": 0.88, "lr": 0.1,  # training batch (None where non-finite)
      "steps_per_s": 812.0,
      "eval": null | {"loss", "acc",         # held-out split, model in eval mode
                      "loss_batch", "acc_batch"},  # same, batch statistics (norms with
                                                   # running stats only, else null)
      "val": null | {...},    # the same evaluation of the validation split (carved from the
                              # training data, config.val_fraction > 0; else always null):
                              # what learning rates are tuned on, never the test split
      "ics": null | [{"name", "l2", "cos"}],  # Santurkar et al., when config.ics
      "layers": [{
        "name": "h1",
        "hist": {"lo": -4.0, "hi": 4.0, "counts": [..bins..], "under": 0, "over": 3},
        "nonfinite": 0,                      # NaN/inf values, outside the histogram
        "mean", "std", "p15", "p50", "p85",  # of the activation's input (finite values)
        "sat", "sat_pre",                    # saturated fraction after / before the norm
                                             # (strict cut: slope below 5 % of its peak)
        "sat_graded",                        # 1 - mean slope / peak slope (normcore.probe.stats)
        "out_mean", "out_std",               # of the activation's outputs (sigmoid, tanh;
                                             # None for relu, gelu)
        "grad_norm", "act_grad_norm", "weight_norm", "update_ratio",
        "g_mean", "g_std", "b_mean", "b_std",  # the norm's own g, b (None without them)
        "w1_prev", "w1_first",               # Wasserstein-1 to the previous / first probe
      }]
    }

Histogram edges are fixed per layer for the whole run: `bins` equal bins on [lo, hi]. Any
float may be None: a diverged layer is reported, never raised on.

A frame is built by ``make_frame`` only (the trainer and ``Watch`` both call it). A *run* has
its own status (``RunStatus``: the store's, the API's, the client's and, through the catalog,
the dashboard's): ``ACTIVE`` while queued or running, then one of ``TERMINAL``. This module is
the one home of that vocabulary, as TensorBoard's ``metadata.py`` is for its writer and plugin.

`encode` / `decode` are the compact storage form: floats kept to 5 significant digits, JSON
without spaces, zstd (`pack`; a store written before holds zlib, which `unpack` reads too).
An 8-layer, 64-bin frame encodes to well under 2.5 KB.
"""

from __future__ import annotations

import zlib
from typing import Any, Literal, get_args

import numpy as np
import orjson
import zstandard

Frame = dict[str, Any]

# A frame's status: the last frame of a run says how the trainer ended it.
FRAME_STATUSES = ("running", "completed", "diverged")

# A run's status. Queued and running are active; every other one is final (terminal).
RunStatus = Literal[
    "queued", "running", "completed", "diverged", "failed", "cancelled", "interrupted"
]
RUN_STATUSES: tuple[str, ...] = get_args(RunStatus)
ACTIVE = ("queued", "running")
TERMINAL = tuple(s for s in RUN_STATUSES if s not in ACTIVE)

# When frames leave the device: every PROBE_ROWS probed steps (the rows the probe buffers on the
# device between host syncs), or sooner so a live view sees new frames at least every
# FLUSH_SECONDS (steps permitting).
PROBE_ROWS = 32
FLUSH_SECONDS = 0.5

DIGITS = 5  # significant digits a stored frame keeps of each float
EXACT_KEYS = frozenset({"time"})  # unix seconds need all their digits
_FORMATS = {d: f"%.{d}g" for d in range(1, 18)}
_POW10 = np.array([10.0**j for j in range(23)])  # 10^j, each exact
_JUST_INT = frozenset({int})  # a list whose types all are in it (bool is not): ints only


class LayersLater:
    """A frame's ``layers`` still to be built: step ``j`` of a flush whose ``steps()`` builds
    every step's layers at once (normcore.probe.frame_numbers.FlushLayers). A trainer asked for them
    (``run(layers_later=True)``) hands these on, so the layers are built where the frame is
    encoded, in the server's process and not on the training core; ``wire`` builds them."""

    __slots__ = ("flush", "j")

    def __init__(self, flush: Any, j: int) -> None:
        self.flush, self.j = flush, j

    def built(self) -> list[dict[str, Any]]:
        return self.flush.steps()[self.j]

    def row(self) -> Any:
        """The same layers as arrays: a row of the flush's table (``FlushLayers.row``)."""
        return self.flush.row(self.j)

    @property
    def last(self) -> bool:
        """The flush's last step."""
        return self.j == self.flush.count - 1


def make_frame(
    *,
    seq: int,
    step: int,
    time: float,
    status: str,
    device: str,
    loss: float | None,
    acc: float | None,
    lr: float | None,
    steps_per_s: float,
    layers: list[dict[str, Any]] | LayersLater,
    eval: dict[str, Any] | None = None,
    val: dict[str, Any] | None = None,
    ics: list[dict[str, Any]] | None = None,
) -> Frame:
    """One frame, with every key the contract above names (the trainer's and Watch's alike);
    its ``layers`` may be still to be built (``LayersLater``: ``wire`` builds them)."""
    return dict(
        seq=seq,
        step=step,
        time=time,
        status=status,
        device=device,
        loss=loss,
        acc=acc,
        lr=lr,
        steps_per_s=steps_per_s,
        eval=eval,
        val=val,
        ics=ics,
        layers=layers,
    )


class StepRate:
    """Steps per second between consecutive frames, from each frame's step and clock
    (``time.perf_counter``); the first is measured from the start of the run."""

    def __init__(self, clock: float):
        self.step, self.clock = 0, clock

    def __call__(self, step: int, clock: float) -> float:
        rate = (step - self.step) / max(clock - self.clock, 1e-9)
        self.step, self.clock = step, clock
        return rate


def summarize(frame: Frame, summary: dict[str, Any]) -> None:
    """A run's latest metrics, updated in place from its next frame (the store's summary, the
    report's final row); held-out ones persist between evaluations."""
    summary.update(
        step=frame.get("step"),
        device=frame.get("device"),
        loss=frame.get("loss"),
        acc=frame.get("acc"),
    )
    if frame.get("eval"):
        summary.update(eval_loss=frame["eval"].get("loss"), eval_acc=frame["eval"].get("acc"))


def clean(value: Any, digits: int = DIGITS) -> Any:
    """Round floats to `digits` significant digits; NaN/inf become None (valid JSON)."""
    # This runs once per frame on the training machine's core (the worker encodes), where a
    # frame is ~60 floats, ~20 other scalars and a few histograms: dicts are walked inline,
    # exact types first, so a scalar costs no call (2x faster than recursing on each value).
    kind = type(value)
    if kind is dict:
        fmt = _FORMATS[digits]
        out: dict[str, Any] = {}
        for k, v in value.items():
            t = type(v)
            if t is float:
                if v - v != 0.0:  # NaN or ±inf (inf - inf is NaN)
                    out[k] = None
                elif digits == 17 or k in EXACT_KEYS:
                    out[k] = v  # "%.17g" round-trips every double: nothing to round
                else:
                    out[k] = float(fmt % v)  # a ready "%.5g": 30% faster than an f-string
            elif t is int or t is str or t is bool or v is None:
                out[k] = v
            else:
                out[k] = clean(v, 17 if k in EXACT_KEYS else digits)
        return out
    if kind is float:
        if value - value != 0.0:
            return None
        return value if digits == 17 else float(_FORMATS[digits] % value)
    if kind is list or kind is tuple:
        if _JUST_INT.issuperset(map(type, value)):  # histogram counts: nothing to round
            return list(value)
        return [clean(v, digits) for v in value]
    if isinstance(value, float):  # float subclasses (numpy.float64)
        return clean(float(value), digits)
    if isinstance(value, dict):
        return clean(dict(value), digits)
    if isinstance(value, list | tuple):
        return clean(list(value), digits)
    return value


def round_sig(values: np.ndarray, digits: int = DIGITS) -> np.ndarray:
    """``clean``'s rounding for a float64 array at once: each finite value becomes
    ``float("%.{digits}g" % v)``, bit for bit; NaN and ±inf stay (the caller makes them None).

    A value's ``digits`` leading decimals, m = x·10^s, are computed in float64 and rounded
    half to even; the result is m / 10^s (or m·10^-s), one correctly rounded operation on
    exact operands, so the nearest double to the decimal, as parsing the printed text gives.
    Where that could differ from printf's rounding of the exact binary value — a fraction of
    m within 1e-9 of a half, m with a digit too many or too few (log10 rounded across a power
    of ten), or 10^s not exact (|s| > 22) — the value goes through "%.{digits}g" itself."""
    out = np.array(values, dtype=np.float64, copy=True)
    x = out.ravel()
    idx = np.flatnonzero(np.isfinite(x) & (x != 0.0))
    if idx.size == 0:
        return out
    v = x[idx]
    a = np.abs(v)
    s = digits - 1 - np.floor(np.log10(a)).astype(np.int64)
    exact = np.abs(s) <= 22
    # 10^|s| from a table (exact: every power up to 10^22 is a double), where np.power cost
    # most of a flush's rounding; clipped where |s| > 22, whose values take printf's path
    up, down = _POW10[np.clip(s, 0, 22)], _POW10[np.clip(-s, 0, 22)]
    m = a * up / down  # one of the two is 1: one rounding
    r = np.rint(m)
    fine = (
        exact
        & (np.abs(m - np.floor(m) - 0.5) > 1e-9)
        & (m >= 10.0 ** (digits - 1))
        & (m < 10.0**digits)
    )
    rounded = np.copysign(r / up * down, v)
    x[idx] = np.where(fine, rounded, v)
    fmt = _FORMATS[digits]
    for j in idx[~fine]:
        x[j] = float(fmt % x[j])
    return out


def to_json(frame: Frame) -> str:
    """The wire form (SSE data, JSON lines export): compact, NaN-free JSON (orjson: a tenth
    of json.dumps's time on a frame, the same values; floats in their shortest form)."""
    return wire(frame)[1]


def wire(frame: Frame, layers_rounded: bool = False) -> tuple[Frame, str]:
    """(the cleaned frame, its wire JSON): the dict is what parsing the JSON gives back.
    ``layers_rounded``: the frame's layers are clean already (a trainer run with
    ``rounded=True``): they are kept as they are instead of walked, ~90 % of a frame's
    cleaning (tests/normcore/test_frames.py holds the two ways equal). Layers still to be
    built (``LayersLater``) are built first."""
    layers = frame.get("layers")
    if isinstance(layers, LayersLater):
        frame = {**frame, "layers": layers.built()}
    if layers_rounded and "layers" in frame:
        cleaned = clean({**frame, "layers": None})
        cleaned["layers"] = frame["layers"]  # (in its place: the key order is the frame's)
    else:
        cleaned = clean(frame)
    return cleaned, orjson.dumps(cleaned).decode()


def encode(frame: Frame) -> bytes:
    """The storage form: compressed wire JSON."""
    return compress(to_json(frame))


def compress(text: str) -> bytes:
    """The storage form of a frame's wire JSON (what `decode` reads back): `pack`."""
    return pack(text.encode())


def decode(blob: bytes) -> Frame:
    return orjson.loads(unpack(blob))


ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"  # how every zstd frame begins; a zlib stream never does


def pack(data: bytes) -> bytes:
    """Stored bytes (a frame's JSON, a column): zstd at level 1. The server compresses every
    frame of every run while runs share its cores: on a 6-layer frame (3.9 KB of JSON) zstd
    took 27 µs for 1.21 KB where zlib's fastest level took 71 µs for 1.36 KB, and it inflates
    faster too (bench/encoding.py). The module's function: thread-safe, where a compressor
    object is not."""
    return zstandard.compress(data, 1)


def unpack(blob: bytes) -> bytes:
    """What `pack` stored, or zlib (stores written before zstd: frames and columns)."""
    if blob[:4] == ZSTD_MAGIC:
        return zstandard.decompress(blob)
    return zlib.decompress(blob)
