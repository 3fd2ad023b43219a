"""The run store: SQLite in WAL mode, the source of truth for runs and their frames.

Frames are kept in `normcore.frames.encode` form (the wire JSON, compressed), so serving one to
an SSE client or an export is a decompress, never a parse. Writers batch: `apply` takes a
list of operations and commits them in one transaction (the recorder thread calls it with
whatever piled up while the previous commit ran). Readers use their own connection per
thread; WAL lets them read while the recorder writes.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app import frame_columns
from app.frame_arrays import Columns
from app.frame_columns import MAX_SEQ
from app.frames_in_hand import InHand
from normcore.frames import ACTIVE, TERMINAL, unpack

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    config TEXT NOT NULL,
    label TEXT NOT NULL,
    device TEXT,
    error TEXT,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    step INTEGER NOT NULL DEFAULT 0,
    steps INTEGER NOT NULL,
    frame_count INTEGER NOT NULL DEFAULT 0,
    last_seq INTEGER NOT NULL DEFAULT -1,
    final TEXT,
    rerun_of TEXT  -- the run this one re-runs (same config), if any
);
CREATE INDEX IF NOT EXISTS runs_by_status ON runs (status, created_at);
CREATE TABLE IF NOT EXISTS frames (
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    step INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;
"""

_RUN_COLUMNS = (
    "id, status, config, label, device, error, created_at, started_at, finished_at, "
    "step, steps, frame_count, last_seq, final, rerun_of"
)


@dataclass(frozen=True)
class Start:
    run_id: str
    at: float


@dataclass(frozen=True)
class Frames:
    """Frames of one run: (seq, step, encoded blob) rows and the run's latest metrics."""

    run_id: str
    rows: list[tuple[int, int, bytes]]
    summary: dict[str, Any]  # {"step", "device", "loss", "acc", "eval_loss", "eval_acc"}
    active_only: bool = False  # store them only while the run is queued or running
    # the rows' frames as their blobs decode (their layers as a flush's arrays, where they
    # were built from them: app.jobs.job.encode), when the sender has them: the columns of a
    # chunk are then written from these, not from its blobs decoded again
    held: list[dict[str, Any]] | None = None


@dataclass(frozen=True)
class Finish:
    run_id: str
    status: str
    error: str | None
    at: float


Op = Start | Frames | Finish


def spread(total: int, max_points: int) -> list[int]:
    """The indices ``Store.sample_frames`` keeps of ``total`` frames, for frames held
    elsewhere (a file): exactly min(total, max_points), evenly spread, first and last kept."""
    if total <= max_points:
        return list(range(total))
    m1, t1 = max_points - 1, total - 1
    return [rn for rn in range(total) if (rn * m1) % t1 < m1]


def frame_text(blob: bytes) -> str:
    """A stored frame as its wire JSON text (what SSE and JSON lines send)."""
    return unpack(blob).decode()


class Store:
    """Runs and frames in one SQLite file; safe to use from many threads."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._db().executescript(_SCHEMA + frame_columns.SCHEMA)  # its own transaction
        self._columns = frame_columns.Reader()
        self._in_hand = InHand()  # the recorder's frames, until sealed
        self._migrate()

    def _migrate(self) -> None:
        """Columns added since a database was created: a runs.db of an older release opens."""
        db = self._db()
        columns = {row[1] for row in db.execute("PRAGMA table_info(runs)")}
        if "rerun_of" not in columns:
            db.execute("ALTER TABLE runs ADD COLUMN rerun_of TEXT")

    # -- connections -----------------------------------------------------------------------
    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(
                self.path, timeout=10, isolation_level=None, check_same_thread=False
            )
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable at checkpoints
            db.execute("PRAGMA foreign_keys=ON")
            self._local.db = db
            with self._lock:
                self._all.append(db)
        return db

    def _tx(self) -> _Transaction:
        return _Transaction(self._db())

    # Services that keep tables of their own in this file (sweeps) use these.
    db = _db
    transaction = _tx

    def close(self) -> None:
        with self._lock:
            for db in self._all:
                db.close()
            self._all.clear()
        self._local = threading.local()

    # -- runs ------------------------------------------------------------------------------
    def create_run(
        self, config: dict[str, Any], label: str, rerun_of: str | None = None
    ) -> dict[str, Any]:
        run_id = uuid.uuid4().hex[:12]
        with self._tx() as db:
            db.execute(
                "INSERT INTO runs (id, status, config, label, created_at, steps, rerun_of) "
                "VALUES (?, 'queued', ?, ?, ?, ?, ?)",
                (run_id, json.dumps(config), label, time.time(), int(config["steps"]), rerun_of),
            )
        run = self.get_run(run_id)
        assert run is not None
        return run

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        row = self._db().execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,))
        found = row.fetchone()
        return _run(found) if found else None

    def list_runs(
        self, status: str | None = None, limit: int = 100, offset: int = 0
    ) -> tuple[list[dict[str, Any]], int]:
        where, args = ("WHERE status = ?", (status,)) if status else ("", ())
        db = self._db()
        count = db.execute(f"SELECT COUNT(*) FROM runs {where}", args).fetchone()[0]
        rows = db.execute(
            f"SELECT {_RUN_COLUMNS} FROM runs {where} ORDER BY created_at DESC, id "
            "LIMIT ? OFFSET ?",
            (*args, limit, offset),
        ).fetchall()
        return [_run(r) for r in rows], count

    def delete_run(self, run_id: str) -> bool:
        self._in_hand.drop(run_id)
        with self._tx() as db:
            return db.execute("DELETE FROM runs WHERE id = ?", (run_id,)).rowcount > 0

    def mark_interrupted(self, reason: str) -> list[str]:
        """Runs a stopped server left queued or running end `interrupted`; frames stay. A
        watched run (its own loop trains it, elsewhere) goes on: its frames may still come."""
        own = "json_extract(config, '$.model') IS NOT 'own'"
        with self._tx() as db:
            ids = [
                r[0]
                for r in db.execute(f"SELECT id FROM runs WHERE status IN (?, ?) AND {own}", ACTIVE)
            ]
            db.execute(
                "UPDATE runs SET status = 'interrupted', error = ?, finished_at = ? "
                f"WHERE status IN (?, ?) AND {own}",
                (reason, time.time(), *ACTIVE),
            )
        return ids

    # -- the recorder's batched writes -------------------------------------------------------
    def apply(self, ops: Iterable[Op]) -> set[str]:
        """Apply operations in one transaction; return the ids whose status changed. Then
        write the columns of the chunks of frames these made final (app/frame_columns.py)."""
        ops = list(ops)
        changed = self.commit(ops)
        self.seal(ops)
        return changed

    def commit(self, ops: list[Op]) -> set[str]:
        """``apply``'s transaction alone: the ids whose status changed. ``seal`` then writes
        the columns (a recorder announces the commit first: a run's last chunk takes tens of
        milliseconds, and its frames and status are stored already)."""
        changed: set[str] = set()
        stored: list[tuple[Frames, bool]] = []  # each Frames op: were all its rows new?
        with self._tx() as db:
            for op in ops:
                if isinstance(op, Frames):
                    stored.append((op, self._insert_frames(db, op) == len(op.rows)))
                elif isinstance(op, Start):
                    cur = db.execute(
                        "UPDATE runs SET status = 'running', started_at = ? "
                        "WHERE id = ? AND status = 'queued'",
                        (op.at, op.run_id),
                    )
                    changed.update([op.run_id] if cur.rowcount else [])
                else:
                    cur = db.execute(
                        "UPDATE runs SET status = ?, error = ?, finished_at = ? "
                        "WHERE id = ? AND status IN (?, ?)",
                        (op.status, op.error, op.at, op.run_id, *ACTIVE),
                    )
                    changed.update([op.run_id] if cur.rowcount else [])
        for op, new in stored:
            self._in_hand.add(op.run_id, op.rows, op.held if new else None)
        return changed

    def seal(self, ops: list[Op]) -> None:
        """The columns of the chunks of frames that ``ops`` (committed) made final."""
        for run_id in dict.fromkeys(op.run_id for op in ops if not isinstance(op, Start)):
            try:  # after the commit: writers wait less
                final = frame_columns.seal(self._db(), run_id, self._in_hand.get(run_id))
                self._in_hand.written(run_id, final)
            except Exception:  # columns are derived: frames are stored, reads parse them
                log.exception("cannot write the columns of run %s", run_id)
                self._in_hand.drop(run_id)

    @staticmethod
    def _insert_frames(db: sqlite3.Connection, op: Frames) -> int:
        """Store the op's frames; returns how many were new (not already stored)."""
        exists = db.execute(
            "SELECT 1 FROM runs WHERE id = ? AND (? OR status IN (?, ?))",
            (op.run_id, not op.active_only, *ACTIVE),
        ).fetchone()
        if not op.rows or not exists:
            return 0  # the run was deleted while its worker was still sending
        cur = db.executemany(
            "INSERT OR IGNORE INTO frames (run_id, seq, step, data) VALUES (?, ?, ?, ?)",
            [(op.run_id, seq, step, blob) for seq, step, blob in op.rows],
        )
        s = op.summary
        final = {k: s.get(k) for k in ("loss", "acc", "eval_loss", "eval_acc")}
        db.execute(
            "UPDATE runs SET frame_count = frame_count + ?, last_seq = MAX(last_seq, ?), "
            "step = ?, device = COALESCE(?, device), final = ? WHERE id = ?",
            (
                cur.rowcount,
                op.rows[-1][0],
                int(s.get("step") or 0),
                s.get("device"),
                json.dumps(final),
                op.run_id,
            ),
        )
        return cur.rowcount

    # -- frames ----------------------------------------------------------------------------
    def read_frames(self, run_id: str, after_seq: int, limit: int) -> list[tuple[int, bytes]]:
        """Up to `limit` frames with seq > after_seq, in seq order."""
        return (
            self._db()
            .execute(
                "SELECT seq, data FROM frames WHERE run_id = ? AND seq > ? ORDER BY seq LIMIT ?",
                (run_id, after_seq, limit),
            )
            .fetchall()
        )

    def iter_frames(self, run_id: str, page: int = 500) -> Iterator[tuple[int, bytes]]:
        """Every frame of a run in seq order, one page in memory at a time."""
        after = -1
        while rows := self.read_frames(run_id, after, page):
            yield from rows
            after = rows[-1][0]

    def read_columns(
        self,
        run_id: str,
        from_step: int,
        to_step: int,
        layer_keys: dict[str, list[str]],
        run_keys: list[str],
        to_seq: int = MAX_SEQ,
    ) -> Columns:
        """Columns of the frames with from_step <= step <= to_step and seq <= to_seq
        (app/frame_columns.py)."""
        return self._columns.read(
            self._db(), run_id, from_step, to_step, layer_keys, run_keys, to_seq
        )

    def frames_at(self, run_id: str, seqs: np.ndarray) -> list[tuple[int, bytes]]:
        """The stored frames with these seqs, in seq order."""
        rows: list[tuple[int, bytes]] = []
        values = [int(s) for s in seqs]
        for i in range(0, len(values), 500):  # SQLite's bound-variable limit
            part = values[i : i + 500]
            rows += (
                self._db()
                .execute(
                    f"SELECT seq, data FROM frames WHERE run_id = ? AND seq IN "
                    f"({','.join('?' * len(part))})",
                    (run_id, *part),
                )
                .fetchall()
            )
        return sorted(rows)

    def sample_frames(
        self, run_id: str, since_seq: int, max_points: int
    ) -> tuple[list[tuple[int, bytes]], int]:
        """Exactly min(total, max_points) frames with seq >= since_seq, evenly spread, the
        first and the last always kept; returns (rows, total frames in the range). One read
        transaction: frames a live run commits meanwhile stay out of both reads."""
        db = self._db()
        db.execute("BEGIN")
        try:
            return self._sample(db, run_id, since_seq, max_points)
        finally:
            db.execute("COMMIT")  # read only: ends the snapshot

    def _sample(
        self, db: sqlite3.Connection, run_id: str, since_seq: int, max_points: int
    ) -> tuple[list[tuple[int, bytes]], int]:
        total = db.execute(
            "SELECT COUNT(*) FROM frames WHERE run_id = ? AND seq >= ?", (run_id, since_seq)
        ).fetchone()[0]
        if total <= max_points:
            return self.read_frames(run_id, since_seq - 1, max(total, 1)), total
        # Row rn falls in bucket floor(rn * (m-1) / (T-1)), buckets 0..m-1; keep the first row
        # of each bucket: exactly m rows, rn = 0 and rn = T-1 among them.
        m1, t1 = max_points - 1, total - 1
        rows = db.execute(
            "SELECT f.seq, f.data FROM frames f JOIN ("
            "  SELECT seq FROM (SELECT seq, ROW_NUMBER() OVER (ORDER BY seq) - 1 AS rn"
            "                   FROM frames WHERE run_id = ? AND seq >= ?)"
            "  WHERE (rn * ?) % ? < ?) k ON f.seq = k.seq "
            "WHERE f.run_id = ? ORDER BY f.seq",
            (run_id, since_seq, m1, t1, m1, run_id),
        ).fetchall()
        return rows, total


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT (or ROLLBACK): one writer lock taken up front, no upgrade
    deadlocks between the recorder and request threads."""

    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, kind: object, *_: object) -> None:
        self.db.execute("ROLLBACK" if kind else "COMMIT")


def _run(row: tuple) -> dict[str, Any]:
    run = dict(zip(_RUN_COLUMNS.split(", "), row, strict=True))
    run["config"] = json.loads(run["config"])
    final = json.loads(run["final"]) if run["final"] else None
    run["final"] = final if run["status"] in TERMINAL else None
    run["metrics"] = final  # latest metrics while running, for the runs table
    return run
