"""A run's frames as columns: one numpy array per series, kept beside the frames in SQLite.

Why: a view of a 100,000-frame run needs a few series (loss, one layer's saturation) over all
of it. Parsing 100,000 JSON frames for that takes many seconds; reading the same series from
columns takes milliseconds. Frames stay the source of truth (SSE and exports serve them);
columns are derived from them once, in chunks of CHUNK consecutive seqs, each series of a
chunk its own compressed blob, so a request reads only the series it asks for.

A chunk is *sealed* (written to `frame_columns`) once it can no longer change: all CHUNK seqs
are stored, or the run has ended. The store seals after each write (`Store.apply`); reads seal
what an older store left unsealed. The open tail of a live run is parsed on each read (at most
CHUNK - 1 frames, memoised by frame count). What a chunk's arrays hold, and how frames become
them: app/frame_arrays.py.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

import numpy as np

from app.frame_arrays import EVAL_KEYS, Columns, from_frames
from normcore.frames import decode, pack, unpack

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
