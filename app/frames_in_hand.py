"""The frames a live run committed since its last chunk of columns was written for good, as
the recorder holds them (app.frame_columns.seal writes a chunk from these)."""

from __future__ import annotations

import threading
from typing import Any


class InHand:
    """Per live run, the frames committed since its last chunk written for good, as their
    blobs decode, a trainer's layers as the arrays of their flush (the recorder has them:
    app.jobs.job.encode): `frame_columns.seal` writes a chunk from these, not from its blobs
    decoded again (~25 µs a frame of the server's CPU, which the runs on the same cores need).
    A run whose frames came without them or with a seq seen before, whose seqs have gaps, or
    whose blobs pass MAX_BYTES is dropped here; `seal` then decodes its blobs, as it always
    can."""

    MAX_BYTES = 4 << 20  # of blobs in hand, per run (layers as dicts: ~13× as much memory)

    def __init__(self) -> None:
        self._runs: dict[str, dict[int, dict[str, Any]]] = {}
        self._bytes: dict[str, dict[int, int]] = {}  # each frame's blob size ...
        self._total: dict[str, int] = {}  # ... and their sum, kept as they come and go
        self._lock = threading.Lock()

    def add(self, run_id: str, rows: list[tuple[int, int, bytes]], held: list[dict] | None) -> None:
        """Frames `rows` (seq, step, blob) were stored; `held`: their frames, or None."""
        with self._lock:
            sizes = self._bytes.get(run_id, {})
            if (
                held is None
                or len(held) != len(rows)
                or any(seq in sizes for seq, _, _ in rows)
                or self._total.get(run_id, 0) + sum(len(blob) for *_, blob in rows) > self.MAX_BYTES
            ):
                self._drop(run_id)
                return
            hand = self._runs.setdefault(run_id, {})
            sizes = self._bytes.setdefault(run_id, {})
            for (seq, _, blob), frame in zip(rows, held, strict=True):
                hand[seq], sizes[seq] = frame, len(blob)
            self._total[run_id] = self._total.get(run_id, 0) + sum(len(b) for *_, b in rows)

    def get(self, run_id: str) -> dict[int, dict[str, Any]] | None:
        return self._runs.get(run_id)

    def written(self, run_id: str, final: int) -> None:
        """`seal` answered `final`: forget the frames below it (all of them at -1)."""
        with self._lock:
            hand = self._runs.get(run_id)
            if hand is None or final == 0:
                return
            if final < 0:
                self._drop(run_id)
                return
            for seq in [seq for seq in hand if seq < final]:
                del hand[seq]
                self._total[run_id] -= self._bytes[run_id].pop(seq)
            if not hand:
                self._drop(run_id)

    def drop(self, run_id: str) -> None:
        """Forget the run's frames (deleted, or its columns cannot be written)."""
        with self._lock:
            self._drop(run_id)

    def _drop(self, run_id: str) -> None:
        self._runs.pop(run_id, None)
        self._bytes.pop(run_id, None)
        self._total.pop(run_id, None)
