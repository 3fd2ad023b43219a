"""A chunk of a run's frames as arrays, one per series: the layout of a run's columns.

``from_frames`` turns consecutive frames into the arrays app/frame_columns.py stores per chunk
(and a report reads from a file): ``seq``, ``step``, ``status``, the run's lines, the held-out
evaluation, and per layer its lines (``normcore.probe.frame_numbers.LAYER_LINES``), histogram
rows and edges. Frames held by the server keep their layers as rows of their flushes' tables
(``TableRow``), whose arrays are sliced; frames decoded from their blobs have dicts, which are
read. ``Columns`` is such arrays assembled over a step range, as views read them.
"""

from __future__ import annotations

import itertools
import json
import operator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from normcore.probe.frame_numbers import LAYER_LINES, TableRow

RUN_LINES = ("loss", "acc", "lr", "steps_per_s")
EVAL_KEYS = ("loss", "acc", "loss_batch", "acc_batch")
FRAME_STATUS = ("running", "completed", "diverged")  # codes 0, 1, 2 in the "status" column


@dataclass
class Columns:
    """Columns of consecutive frames. Missing values are NaN; `layers[name][key]` for line
    keys, `layers[name]["hist"]` rows [under, bins..., over] and `edges[name]` (lo, hi)."""

    seq: np.ndarray
    step: np.ndarray
    status: np.ndarray
    run: dict[str, np.ndarray]
    evals: np.ndarray  # (n, 4): EVAL_KEYS, NaN where a frame has none
    has_eval: np.ndarray
    names: list[str]
    layers: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    edges: dict[str, tuple[float, float]] = field(default_factory=dict)
    last: dict[str, Any] = field(default_factory=dict)  # the newest frame's device, rate

    def __len__(self) -> int:
        return len(self.seq)


def _num(value: Any) -> float:
    return float("nan") if value is None else float(value)


def from_frames(frames: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """The blobs' arrays of one chunk: {key: array}, layer keys as "name/key". A frame's
    layers are dicts as they decode, or a row of its flush's table (a frame held in hand:
    app.jobs.job.encode)."""
    n = len(frames)
    out: dict[str, np.ndarray] = {
        "seq": np.array([f["seq"] for f in frames], np.int64),
        "step": np.array([f.get("step") or 0 for f in frames], np.int64),
        "status": np.array(
            [
                FRAME_STATUS.index(f["status"]) if f.get("status") in FRAME_STATUS else 3
                for f in frames
            ],
            np.int8,
        ),
    }
    for key in RUN_LINES:
        out[key] = np.array([_num(f.get(key)) for f in frames], np.float64)
    evals = np.full((n, len(EVAL_KEYS)), np.nan)
    has_eval = np.zeros(n, bool)
    for i, f in enumerate(frames):
        if isinstance(f.get("eval"), dict):
            has_eval[i] = True
            evals[i] = [_num(f["eval"].get(k)) for k in EVAL_KEYS]
    out["eval"], out["has_eval"] = evals, has_eval
    rows = [f.get("layers") for f in frames]
    table_rows = [row for row in rows if isinstance(row, TableRow)]
    if table_rows and len(table_rows) == n and _one_layout(table_rows):
        out.update(_table_columns(table_rows))
    else:
        if table_rows:  # (a chunk is held or decoded whole: its frames' layers never mix)
            frames = _with_layer_dicts(frames)
        out.update(_dict_columns(frames))
    last = frames[-1] if frames else {}
    out["last"] = np.array(json.dumps({k: last.get(k) for k in ("device", "steps_per_s")}))
    return out


def _dict_columns(frames: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """The layer columns of frames whose layers are dicts, as they decode."""
    out: dict[str, np.ndarray] = {}
    names: list[str] = []
    for f in frames:
        names += [layer["name"] for layer in f.get("layers", []) if layer["name"] not in names]
    out["names"] = np.array(names, dtype=str)
    by_name = [{la["name"]: la for la in f.get("layers", [])} for f in frames]
    absent: dict[str, Any] = {}  # a layer a frame lacks: NaN in every line
    for name in names:
        rows = [layers.get(name, absent) for layers in by_name]
        first = next((r["hist"] for r in rows if r.get("hist")), None)
        bins = len(first["counts"]) if first else 0
        table = _lines(rows)
        for j, key in enumerate(LAYER_LINES):
            out[f"{name}/{key}"] = np.ascontiguousarray(table[:, j])
        out[f"{name}/hist"] = _hist_rows(rows, bins)
        edges = [first["lo"], first["hi"]] if first else [0.0, 1.0]
        out[f"{name}/edges"] = np.array(edges, np.float64)
    return out


def _one_layout(rows: list[TableRow]) -> bool:
    """Every row's table holds the same layers, in the same order."""
    names = rows[0].table.names
    return all(row.table.names == names for row in rows)


def _table_columns(rows: list[TableRow]) -> dict[str, np.ndarray]:
    """The layer columns of frames whose layers are rows of their flushes' tables, one layout
    (``_one_layout``): the tables' arrays sliced, the same columns ``_dict_columns`` reads
    from the frames' dicts (tests/app/test_job.py), no dict read."""
    parts = [
        (table, [row.j for row in group])
        for table, group in itertools.groupby(rows, key=operator.attrgetter("table"))
    ]
    lines = np.concatenate([table.lines[js] for table, js in parts])  # (n, L, lines)
    hist = np.concatenate([table.display[js] for table, js in parts]).astype(np.int32)
    first = rows[0].table
    out = {"names": np.array(first.names, dtype=str)}
    for i, name in enumerate(first.names):
        for j, key in enumerate(LAYER_LINES):
            out[f"{name}/{key}"] = np.ascontiguousarray(lines[:, i, j])
        out[f"{name}/hist"] = np.ascontiguousarray(hist[:, i])
        out[f"{name}/edges"] = first.edges[i].astype(np.float64)
    return out


def _with_layer_dicts(frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Held frames as they decode: layers that are a table row, as their dicts (each table's
    dicts built once, for all its rows in the chunk)."""
    built: dict[int, list[list[dict]]] = {}  # id(table) -> its steps' layers
    out = []
    for frame in frames:
        row = frame.get("layers")
        if isinstance(row, TableRow):
            if (steps := built.get(id(row.table))) is None:
                steps = built[id(row.table)] = row.table.layers()
            frame = {**frame, "layers": steps[row.j]}
        out.append(frame)
    return out


_LINE_VALUES = operator.itemgetter(*LAYER_LINES)


def _lines(rows: list[dict[str, Any]]) -> np.ndarray:
    """(n, len(LAYER_LINES)) float64 of the layer rows, NaN for None or a missing key: the
    keys of a row at once (a trainer's rows have them all), else one by one."""
    try:  # (numpy reads None as NaN in a float64 array)
        table = np.array([_LINE_VALUES(r) for r in rows], np.float64)
    except (KeyError, TypeError):  # a layer the frame lacks ({}), a key a row lacks
        table = np.array([[r.get(k) for k in LAYER_LINES] for r in rows], np.float64)
    return table.reshape(len(rows), len(LAYER_LINES))


def _hist_rows(rows: list[dict[str, Any]], bins: int) -> np.ndarray:
    """(n, bins + 2) int32 rows [under, counts..., over] of the layer rows' histograms (zeros
    where a row has none): all at once where every row has one of ``bins`` counts."""
    hists: list[Any] = [r.get("hist") for r in rows]
    try:
        if all(h and len(h["counts"]) == bins for h in hists):
            table = [[h["under"], *h["counts"], h["over"]] for h in hists]
            return np.array(table, np.int32).reshape(len(rows), bins + 2)
    except (KeyError, TypeError, ValueError):  # None counts, a missing key: one by one
        pass
    hist = np.zeros((len(rows), bins + 2), np.int32)
    for i, h in enumerate(hists):
        if h:
            counts = [c or 0 for c in h["counts"]][:bins]
            hist[i, : len(counts) + 2] = [h.get("under") or 0, *counts, h.get("over") or 0]
    return hist
