"""What the dashboard draws, as compact columns: GET /api/runs/{id}/series, and the faithful
frame selection /frames and the reports use.

A request names the fields it draws (`loss`, `eval`, a layer's `sat`, its `hist`, the bucket
maximum `max:sat` of a layers x steps map) and a step range; the answer holds just those,
downsampled by `app.downsample` to about `points` per series. Evaluations and status frames
are never dropped; every series' minimum and maximum in the range are exact.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson

from app import downsample as D
from app.errors import FieldError
from app.frame_arrays import EVAL_KEYS, RUN_LINES, Columns
from normcore.probe.frame_numbers import LAYER_LINES

EVAL_FIELD = "eval"
HIST_FIELD = "hist"
MAX_PREFIX = "max:"  # a heatmap row: the bucket maximum of a layer series
LAYER_FIELDS = (*LAYER_LINES, HIST_FIELD, *(MAX_PREFIX + k for k in LAYER_LINES))
FIELDS = (*RUN_LINES, EVAL_FIELD, *LAYER_FIELDS)
POINTS_RANGE = (D.MIN_POINTS, 20_000)
DEFAULT_POINTS = 1000  # plotly-resampler's default: about one point per pixel of a wide chart
MAX_STEP = 2**62  # SQLite integers are 64-bit


def parse_list(text: str | None) -> list[str] | None:
    return [n.strip() for n in text.split(",") if n.strip()] if text is not None else None


def check_fields(fields: list[str]) -> None:
    unknown = [f for f in fields if f not in FIELDS]
    if unknown or not fields:
        said = ", ".join(map(repr, unknown)) if unknown else "none"
        raise FieldError(
            ("query", "fields"),
            f"fields {said} unknown; known fields: {', '.join(FIELDS)}",
            ",".join(fields),
        )


def check_layers(wanted: list[str], known: list[str]) -> None:
    unknown = [name for name in wanted if name not in known]
    if unknown:
        raise FieldError(
            ("query", "layers"),
            f"layers {', '.join(map(repr, unknown))} unknown; this run has: "
            f"{', '.join(known) or 'no layers yet'}",
            ",".join(wanted),
        )


def check_range(from_step: int, to_step: int) -> None:
    if from_step > to_step:
        raise FieldError(
            ("query", "to_step"),
            f"to_step {to_step} is below from_step {from_step}",
            to_step,
        )


def _floats(values: np.ndarray) -> np.ndarray:
    """A float column as dumps() writes it: NaN (a diverged step, a missing value) as null."""
    return np.ascontiguousarray(values, dtype=np.float64)


def _ints(values: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(values, dtype=np.int64)


def _line(cols: Columns, y: np.ndarray, points: int) -> dict[str, np.ndarray]:
    forced = np.flatnonzero(cols.status != 0)  # completed / diverged frames
    idx = D.line_indices(cols.step, y, points, forced)
    return {"step": _ints(cols.step[idx]), "y": _floats(y[idx])}


def series(
    cols: Columns,
    fields: list[str],
    layers: list[str],
    points: int,
    from_step: int,
    to_step: int,
    total: int,
) -> dict[str, Any]:
    """The /series answer for columns already restricted to the step range."""
    out: dict[str, Any] = {
        "from_step": from_step,
        "to_step": to_step,
        "points": points,
        "count": len(cols),
        "total": total,
        "layers": cols.names,
        "first_step": int(cols.step[0]) if len(cols) else None,
        "last_step": int(cols.step[-1]) if len(cols) else None,
        "last": None,
        "run": {},
        "layer": {},
    }
    if len(cols):
        last = int(np.argmax(cols.seq))
        status = cols.status[last]
        out["last"] = {
            "seq": int(cols.seq[last]),
            "step": int(cols.step[last]),
            "status": ("running", "completed", "diverged", None)[status],
            **cols.last,
        }
    for key in RUN_LINES:
        if key in fields:
            out["run"][key] = _line(cols, cols.run[key], points)
    if EVAL_FIELD in fields:
        rows = np.flatnonzero(cols.has_eval)
        out["eval"] = {"step": _ints(cols.step[rows])}
        for i, key in enumerate(EVAL_KEYS):
            out["eval"][key] = _floats(cols.evals[rows, i])
    heat = [f for f in fields if f == HIST_FIELD or f.startswith(MAX_PREFIX)]
    starts = D.bucket_starts(len(cols), points)
    if heat and len(cols):  # a run with no frame yet (queued, cancelled early) has no buckets
        ends = np.append(starts[1:], len(cols)) - 1
        out["heat"] = {"step": _ints(cols.step[starts]), "step_to": _ints(cols.step[ends])}
    for name in layers:
        data = cols.layers.get(name, {})
        here: dict[str, Any] = {}
        for f in fields:
            if f in LAYER_LINES and f in data:
                here[f] = _line(cols, data[f], points)
            elif f == HIST_FIELD and f in data:
                lo, hi = cols.edges[name]
                counts = _ints(D.bucket_sum(data[f], starts))
                here[f] = {"lo": lo, "hi": hi, "counts": counts}
            elif f.startswith(MAX_PREFIX) and f.removeprefix(MAX_PREFIX) in data:
                here[f] = _floats(D.bucket_max(data[f.removeprefix(MAX_PREFIX)], starts))
        out["layer"][name] = here
    return out


def wanted_keys(fields: list[str], layers: list[str]) -> tuple[dict[str, list[str]], list[str]]:
    """The column keys to read: per layer, and of the run."""
    keys = sorted({f.removeprefix(MAX_PREFIX) for f in fields if f in LAYER_FIELDS})
    return {name: keys for name in layers}, [k for k in RUN_LINES if k in fields]


def frame_selection(cols: Columns, since_seq: int, points: int) -> tuple[np.ndarray, int]:
    """Seqs of the frames /frames serves from since_seq on, and how many there are: about
    `points` chosen for the loss (MinMaxLTTB, its extremes exact), plus every evaluation,
    status frame, the first and the last, which no budget drops."""
    rows = np.flatnonzero(cols.seq >= since_seq)
    if not rows.size:
        return np.zeros(0, np.int64), 0
    seq, step, loss = cols.seq[rows], cols.step[rows], cols.run["loss"][rows]
    keep = np.flatnonzero(cols.has_eval[rows] | (cols.status[rows] != 0))
    keep = np.union1d(keep, [0, len(rows) - 1]).astype(np.int64)
    if len(rows) <= points:
        return seq, len(rows)
    return seq[D.frame_indices(loss, step, points, keep)], len(rows)


def dumps(answer: dict[str, Any]) -> bytes:
    """The answer as compact JSON; its columns stay numpy arrays to here (orjson writes them
    without a Python object per number, NaN as null): a run view's 1000-point answers of
    every layer cost milliseconds, not the tens json.dumps took over lists."""
    return orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY)
