"""What an executor is, seen from the server: where runs go, and where their events come back.

The local executor (worker processes on this machine) implements it; a cluster executor would
too. Both report to a Sink — the recorder — from any thread.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from app.errors import QueueFull

# One encoded frame: (seq, step, wire JSON text, `normcore.frames.encode` blob, the frame as
# the blob decodes, its layers as their arrays where a flush built them: the store writes a
# chunk's columns from these without decoding blobs).
WireFrame = tuple[int, int, str, bytes, dict[str, Any]]


class Sink(Protocol):
    def started(self, run_id: str) -> None: ...

    def frames(self, run_id: str, items: list[WireFrame], summary: dict[str, Any]) -> None: ...

    def finished(self, run_id: str, status: str, error: str | None = None) -> None: ...


class Executor(Protocol):
    def start(self) -> None: ...

    def stop(self) -> None: ...

    def submit(self, run_id: str, config: dict[str, Any]) -> None:
        """Start or queue a run; raise app.errors.QueueFull when no room is left."""

    def cancel(self, run_id: str) -> bool:
        """Stop a queued or running run; False when this executor does not hold it."""

    def snapshot(self) -> dict[str, Any]:
        """Running jobs, queued run ids, capacity (the JobList schema)."""


class JobQueue:
    """Admission, queueing, cancel and end-of-job bookkeeping shared by the executors.

    `slots` jobs run at once (the local executor on a CPU: `slots` cores, see `_fits`) and
    `queue_length` wait; beyond that, QueueFull (429). A subclass
    says how a job starts (`_launch`, called with the lock held) and how a running one is
    asked to stop (`_stop`); when a job's end is known it calls `_finish`, which reports it
    and starts the next queued run. Jobs are any objects with `run_id` and `cancelling`.
    """

    def __init__(self, sink: Sink, *, slots: int, queue_length: int, retry_after_s: int):
        self.sink, self.slots = sink, slots
        self.queue_length, self.retry_after_s = queue_length, retry_after_s
        self._lock = threading.Lock()
        self._queue: deque[tuple[str, dict[str, Any]]] = deque()
        self._jobs: dict[str, Any] = {}
        self._closed = False

    def _launch(self, run_id: str, config: dict[str, Any]) -> None:
        raise NotImplementedError

    def _stop(self, job: Any) -> None:
        raise NotImplementedError

    def _fits(self, config: dict[str, Any]) -> bool:
        """Whether the run can start now (called with the lock held). One slot per job here;
        the local executor counts cores instead, a run taking as many as it has threads."""
        return len(self._jobs) < self.slots

    grace_s: float = 0.0  # how long a job asked to stop may take before it is killed

    def _kill_after_grace(self, kill: Callable[[Any], None], target: Any) -> None:
        """``kill(target)`` once ``grace_s`` has passed: a job asked to stop between steps that
        has not is killed (killing one that has ended is harmless)."""
        timer = threading.Timer(self.grace_s, kill, args=(target,))
        timer.daemon = True
        timer.start()

    def submit(self, run_id: str, config: dict[str, Any]) -> None:
        """Start the run now if a slot is free, else queue it; QueueFull when the queue is."""
        with self._lock:
            if not self._queue and self._fits(config):
                self._launch(run_id, config)
            elif len(self._queue) < self.queue_length:
                self._queue.append((run_id, config))
            else:
                raise QueueFull(len(self._queue), self.retry_after_s)

    def cancel(self, run_id: str) -> bool:
        """Stop a queued or running run; False if this executor does not hold it."""
        with self._lock:
            for item in self._queue:
                if item[0] == run_id:
                    self._queue.remove(item)
                    self.sink.finished(run_id, "cancelled")
                    return True
            job = self._jobs.get(run_id)
            if job is None:
                return False
            if job.cancelling:
                return True  # one stop request per job
            job.cancelling = True
        self._stop(job)
        return True

    def _finish(self, job: Any, status: str | None, error: str | None, death: str) -> None:
        """Report a job's end (status None: it died without saying; `death` says how) and
        start queued runs in the freed slot."""
        if status is None:
            if self._closed:
                status, error = "interrupted", "the server stopped while the run was running"
            elif job.cancelling:
                status, error = "cancelled", None
            else:
                status, error = "failed", death
        self.sink.finished(job.run_id, status, error)
        with self._lock:
            self._jobs.pop(job.run_id, None)
            while self._queue and not self._closed and self._fits(self._queue[0][1]):
                self._launch(*self._queue.popleft())
