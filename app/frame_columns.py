"""A run's frames as columns: one numpy array per series, kept beside the frames in SQLite.

Why: a view of a 100,000-frame run needs a few series (loss, one layer's saturation) over all
of it. Parsing 100,000 JSON frames for that takes many seconds; reading the same series from
columns takes milliseconds. Frames stay the source of truth (SSE and exports serve them);
columns are derived from them once, in chunks of CHUNK consecutive seqs, each series of a
chunk its own compressed blob, so a request reads only the series it asks for.

A chunk is *sealed* (written to `frame_columns`) once it can no longer change: all CHUNK seqs
are stored, or the run has ended. The store seals after each write (`Store.apply`); reads seal
what an older store left unsealed. The open tail of a live run is parsed on each read (at most
CHUNK - 1 frames, memoised by frame count).
"""

from __future__ import annotations

import itertools
import json
import operator
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from normcore.frames import decode, pack, unpack
from normcore.probe.frame_numbers import LAYER_LINES, TableRow

CHUNK = 1024
MAX_SEQ = 2**62  # past any stored seq: SQLite integers are 64-bit

SCHEMA = """
CREATE TABLE IF NOT EXISTS frame_columns (
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    chunk INTEGER NOT NULL,
    key TEXT NOT NULL,
    n INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (run_id, key, chunk)  -- one series' chunks side by side: a read is a range
) WITHOUT ROWID;
"""

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


def _pack(array: np.ndarray) -> bytes:
    """dtype and shape in a short text line, then the raw bytes (np.save's header costs a
    Python literal parse per blob, and a view reads thousands). Compressed ("Z":
    `normcore.frames.pack`) when that saves a fifth, else raw ("R"): measured floats barely
    compress, and inflating them cost more than reading them."""
    raw = f"{array.dtype.str} {' '.join(map(str, array.shape))}\n".encode() + array.tobytes()
    packed = pack(raw)
    return b"Z" + packed if len(packed) < 0.8 * len(raw) else b"R" + raw


def _unpack(blob: bytes) -> np.ndarray:
    raw = unpack(blob[1:]) if blob[:1] == b"Z" else blob[1:]
    end = raw.index(b"\n")
    dtype, *shape = raw[:end].decode().split(" ")
    return np.frombuffer(raw, np.dtype(dtype), offset=end + 1).reshape([int(n) for n in shape if n])


def _decode_rows(rows: Iterable[tuple[int, bytes]]) -> list[dict[str, Any]]:
    return [decode(blob) for _, blob in rows]


def _read_frames(db: sqlite3.Connection, run_id: str, lo: int, hi: int) -> list[dict[str, Any]]:
    rows = db.execute(
        "SELECT seq, data FROM frames WHERE run_id = ? AND seq >= ? AND seq < ? ORDER BY seq",
        (run_id, lo, hi),
    ).fetchall()
    return _decode_rows(rows)


def _plan(db: sqlite3.Connection, run_id: str) -> tuple[int, bool, bool] | None:
    """(frame_count, contiguous, ended) of a run, or None when it does not exist."""
    row = db.execute(
        "SELECT frame_count, last_seq, status FROM runs WHERE id = ?", (run_id,)
    ).fetchone()
    if row is None:
        return None
    count, last_seq, status = row
    ended = status not in ("queued", "running")
    return count, count == last_seq + 1, ended


def _sealed(db: sqlite3.Connection, run_id: str) -> dict[int, int]:
    return dict(
        db.execute(
            "SELECT chunk, n FROM frame_columns WHERE run_id = ? AND key = 'seq'", (run_id,)
        ).fetchall()
    )


def seal(db: sqlite3.Connection, run_id: str, hand: dict[int, dict] | None = None) -> int:
    """Write the columns of every chunk of `run_id` that can no longer change and is not
    written yet (or was written from fewer frames than it now holds): from `hand` (seq ->
    the frame as its blob decodes) where it holds the chunk's frames, else from the blobs.
    Returns the seq below which every chunk is written for good (0: none; -1: the run is
    gone or has gaps in its seqs, so its chunks are never written)."""
    plan = _plan(db, run_id)
    if plan is None or not plan[1]:
        return -1  # gaps in the seqs: reads parse frames instead
    count, _, ended = plan
    done = _sealed(db, run_id)
    final = 0
    for chunk in range((count + CHUNK - 1) // CHUNK):
        lo, n = chunk * CHUNK, min(CHUNK, count - chunk * CHUNK)
        if n < CHUNK and not ended:
            break  # the open tail
        if done.get(chunk) != n:
            if not _write(db, run_id, chunk, _chunk_frames(db, run_id, lo, n, hand)):
                break
        if final == lo:
            final = lo + n
    return final


def _chunk_frames(
    db: sqlite3.Connection, run_id: str, lo: int, n: int, hand: dict[int, dict] | None
) -> list[dict[str, Any]] | None:
    """The chunk's n frames from seq lo: from `hand` when it holds them all, else decoded
    from the store; None when the store holds fewer (the snapshot moved under us)."""
    if hand is not None and all(seq in hand for seq in range(lo, lo + n)):
        return [hand[seq] for seq in range(lo, lo + n)]
    frames = _read_frames(db, run_id, lo, lo + n)
    return frames if len(frames) == n else None


def _write(
    db: sqlite3.Connection, run_id: str, chunk: int, frames: list[dict[str, Any]] | None
) -> bool:
    """The chunk's columns, replacing any written from fewer frames; False if not written."""
    if frames is None:
        return False  # the next write seals it
    n = len(frames)
    arrays = from_frames(frames)
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute("DELETE FROM frame_columns WHERE run_id = ? AND chunk = ?", (run_id, chunk))
        db.executemany(
            "INSERT INTO frame_columns (run_id, chunk, key, n, data) VALUES (?, ?, ?, ?, ?)",
            [(run_id, chunk, key, n, _pack(a)) for key, a in arrays.items()],
        )
        db.execute("COMMIT")
    except sqlite3.IntegrityError:
        db.execute("ROLLBACK")  # the run was deleted meanwhile
        return False
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return True


CACHE_BYTES = 256 << 20  # unpacked sealed arrays kept in memory, least recently used out


class Reader:
    """Reads columns of a run over a step range. Keeps recently read sealed arrays in memory
    (they never change: a re-sealed chunk has another frame count, so another key) and
    memoises the open tail of live runs: a zoom, a pan or a second view reads no blob twice."""

    def __init__(self, cache_bytes: int = CACHE_BYTES) -> None:
        self._tail: dict[str, tuple[tuple[int, int], dict[str, np.ndarray]]] = {}
        self._cache: OrderedDict[tuple[str, str, int, int], np.ndarray] = OrderedDict()
        self._cache_bytes, self._cache_limit = 0, cache_bytes
        self._lock = threading.Lock()

    def _tail_arrays(
        self, db: sqlite3.Connection, run_id: str, start: int, count: int, contiguous: bool
    ) -> dict[str, np.ndarray] | None:
        with self._lock:
            memo = self._tail.get(run_id)
        if memo and memo[0] == (start, count):
            return memo[1]
        frames = _read_frames(db, run_id, start, count if contiguous else 2**62)
        arrays = from_frames(frames) if frames else None
        if arrays is not None:
            with self._lock:
                if len(self._tail) > 64:
                    self._tail.clear()
                self._tail[run_id] = ((start, count), arrays)
        return arrays

    def read(
        self,
        db: sqlite3.Connection,
        run_id: str,
        from_step: int,
        to_step: int,
        layer_keys: dict[str, list[str]],
        run_keys: list[str],
        to_seq: int = MAX_SEQ,
    ) -> Columns:
        """Columns of frames with from_step <= step <= to_step and seq <= to_seq: always seq,
        step, status, evals; `run_keys` of the run series; per layer the keys asked for
        ("hist" for the histogram rows)."""
        seal(db, run_id)
        plan = _plan(db, run_id)
        count, contiguous, _ = plan if plan else (0, False, False)
        done = _sealed(db, run_id) if contiguous else {}
        sealed = []  # the chunks read from columns: those sealed from seq 0 on, no gap
        for chunk in range((count + CHUNK - 1) // CHUNK):
            if done.get(chunk) != min(CHUNK, count - chunk * CHUNK):
                break
            sealed.append(chunk)
        sealed_upto = min(count, len(sealed) * CHUNK)
        parts: list[dict[str, np.ndarray]] = []
        if sealed_upto:
            steps = self._blobs(db, run_id, "step", sealed, done)
            want = [
                c for c, s in steps.items() if s.size and s[-1] >= from_step and s[0] <= to_step
            ]
            if want:
                keys = ["seq", "step", "status", "eval", "has_eval", "names", "last", *run_keys]
                names = self._blobs(db, run_id, "names", want, done)
                all_names = list(dict.fromkeys(n for c in want for n in names[c].tolist()))
                for name in all_names:
                    keys += [f"{name}/{k}" for k in layer_keys.get(name, [])]
                    keys.append(f"{name}/edges")
                blobs = {key: self._blobs(db, run_id, key, want, done) for key in keys}
                for c in want:
                    parts.append({k: v[c] for k, v in blobs.items() if c in v})
        if sealed_upto < count:  # the open tail, or every frame when seqs have gaps
            tail = self._tail_arrays(db, run_id, sealed_upto, count, contiguous)
            if tail is not None:
                parts.append(tail)
        return _assemble(parts, from_step, to_step, to_seq, layer_keys, run_keys)

    def _blobs(
        self,
        db: sqlite3.Connection,
        run_id: str,
        key: str,
        chunks: list[int],
        sizes: dict[int, int],
    ) -> dict[int, np.ndarray]:
        out: dict[int, np.ndarray] = {}
        with self._lock:
            for c in chunks:
                hit = self._cache.get((run_id, key, c, sizes[c]))
                if hit is not None:
                    self._cache.move_to_end((run_id, key, c, sizes[c]))
                    out[c] = hit
        missing = [c for c in chunks if c not in out]
        if not missing:
            return out
        rows = db.execute(
            "SELECT chunk, n, data FROM frame_columns WHERE run_id = ? AND key = ? "
            "AND chunk BETWEEN ? AND ?",
            (run_id, key, min(missing), max(missing)),
        ).fetchall()
        with self._lock:
            for c, n, blob in rows:
                if c in out or sizes.get(c) != n:
                    continue
                out[c] = array = _unpack(blob)
                self._cache[(run_id, key, c, n)] = array
                self._cache_bytes += array.nbytes
            while self._cache_bytes > self._cache_limit and self._cache:
                self._cache_bytes -= self._cache.popitem(last=False)[1].nbytes
        return out


def _assemble(
    parts: list[dict[str, np.ndarray]],
    from_step: int,
    to_step: int,
    to_seq: int,
    layer_keys: dict[str, list[str]],
    run_keys: list[str],
) -> Columns:
    names = list(dict.fromkeys(n for p in parts for n in p["names"].tolist()))
    masks = [
        (p["step"] >= from_step) & (p["step"] <= to_step) & (p["seq"] <= to_seq) for p in parts
    ]

    def cat(key: str, empty: np.ndarray, fill: Any = np.nan) -> np.ndarray:
        pieces = []
        for p, m in zip(parts, masks, strict=True):
            if key in p:
                pieces.append(p[key][m])
            else:  # a layer this chunk lacks
                n = int(m.sum())
                pieces.append(np.full((n, *empty.shape[1:]), fill, empty.dtype))
        return np.concatenate(pieces) if pieces else empty

    cols = Columns(
        seq=cat("seq", np.zeros(0, np.int64)),
        step=cat("step", np.zeros(0, np.int64)),
        status=cat("status", np.zeros(0, np.int8)),
        run={k: cat(k, np.zeros(0)) for k in run_keys},
        evals=cat("eval", np.zeros((0, len(EVAL_KEYS)))),
        has_eval=cat("has_eval", np.zeros(0, bool), False),
        names=names,
    )
    for name in names:
        edges = next((p[f"{name}/edges"] for p in parts if f"{name}/edges" in p), None)
        cols.edges[name] = (float(edges[0]), float(edges[1])) if edges is not None else (0, 1)
        cols.layers[name] = {}
        for key in layer_keys.get(name, []):
            if key == "hist":
                width = next((p[f"{name}/hist"].shape[1] for p in parts if f"{name}/hist" in p), 2)
                cols.layers[name][key] = cat(f"{name}/hist", np.zeros((0, width), np.int32), 0)
            else:
                cols.layers[name][key] = cat(f"{name}/{key}", np.zeros(0))
    if parts:
        cols.last = json.loads(str(parts[-1]["last"]))
    return cols
