"""What an executor is, seen from the server: where runs go, and where their events come back.

The local executor (worker processes on this machine) implements it; a cluster executor would
too. Both report to a Sink — the recorder — from any thread.
"""

from __future__ import annotations

from typing import Any, Protocol

# One encoded frame: (seq, step, wire JSON text, `normcore.frames.encode` blob).
WireFrame = tuple[int, int, str, bytes]


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
