"""The recorder: where every executor's events land — batched into the store, then announced.

Executors call `started`, `frames` and `finished` from their own threads; those calls only
enqueue. One writer thread drains the queue and commits everything that piled up in a single
transaction (at most one commit per `min_interval_s`, so a run probing every step makes tens
of commits a second, not hundreds), and only then tells the hub, so a subscriber woken by the
hub always finds the frames in the store. Order is kept: a run's last frames are committed
with or before its final status. The columns of the chunks a commit made final are written
after the hub heard of it (a run's last chunk takes tens of milliseconds), and ``changed``
hears of status changes after that (a sweep reads an ended cell's metric from them).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from app.jobs.base import WireFrame
from app.store import Finish, Frames, Op, Start, Store

log = logging.getLogger(__name__)

# (run_id, [(seq, frame JSON text)], run dict if its status changed else None)
Publish = Callable[[str, list[tuple[int, str]], dict[str, Any] | None], None]


_STOP = object()


class Recorder:
    """Thread-safe sink for executor events; see the module docstring."""

    def __init__(
        self,
        store: Store,
        publish: Publish,
        min_interval_s: float = 0.01,
        changed: Callable[[dict[str, Any]], None] | None = None,
    ):
        self.store = store
        self.publish = publish
        self.changed = changed  # hears each status change once its run's columns are written
        self.min_interval_s = min_interval_s
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name="recorder", daemon=True)

    # -- the sink interface executors use ---------------------------------------------------
    def started(self, run_id: str) -> None:
        self._queue.put((Start(run_id, time.time()), []))

    def frames(self, run_id: str, items: list[WireFrame], summary: dict[str, Any]) -> None:
        rows = [(seq, step, blob) for seq, step, _, blob, _ in items]
        texts = [(seq, text) for seq, _, text, _, _ in items]
        held = [frame for *_, frame in items]
        self._queue.put((Frames(run_id, rows, summary, held=held), texts))

    def finished(self, run_id: str, status: str, error: str | None = None) -> None:
        self._queue.put((Finish(run_id, status, error, time.time()), []))

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Commit what is queued, then end the writer thread."""
        self._queue.put(_STOP)
        self._thread.join(timeout=30)

    def _loop(self) -> None:
        last_commit = 0.0
        while True:
            batch = [self._queue.get()]
            # Let a burst pile up, but never hold a frame back longer than min_interval_s.
            time.sleep(max(0.0, last_commit + self.min_interval_s - time.monotonic()))
            while len(batch) < 10_000:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stop = _STOP in batch
            self._commit([item for item in batch if item is not _STOP])
            last_commit = time.monotonic()
            if stop:
                return

    def _commit(self, batch: list[tuple[Op, list[tuple[int, str]]]]) -> None:
        if not batch:
            return
        ops = [op for op, _ in batch]
        try:
            changed = self.store.commit(ops)
        except Exception:  # a full disk must not kill the writer; the runs show the gap
            log.exception("recorder: committing %d operations failed", len(batch))
            return
        texts: dict[str, list[tuple[int, str]]] = {}
        for op, frame_texts in batch:
            texts.setdefault(op.run_id, []).extend(frame_texts)
        runs = []
        for run_id, frame_texts in texts.items():
            run = self.store.get_run(run_id) if run_id in changed else None
            self.publish(run_id, frame_texts, run)
            runs += [run] if run is not None else []
        # the columns after the announcement (they are derived: a read parses frames where
        # they are missing), and those who read them (a sweep's metric) after the columns
        self.store.seal(ops)
        if self.changed is not None:
            for run in runs:
                self.changed(run)
