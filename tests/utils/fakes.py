"""Fakes for in-process API tests (TestClient): the parts a test of validation, 404s or the
lifespan does not need for real, so no worker process starts."""

from __future__ import annotations

from typing import Any

from app.jobs.base import Sink
from app.settings import Settings


class IdleExecutor:
    """An Executor that accepts runs and never trains them (they stay queued)."""

    def __init__(self, settings: Settings | None = None, sink: Sink | None = None):
        self.submitted: list[str] = []
        self.started = self.stopped = False

    def start(self) -> None:
        self.started = True

    def stop(self) -> None:
        self.stopped = True

    def submit(self, run_id: str, config: dict[str, Any]) -> None:
        self.submitted.append(run_id)

    def cancel(self, run_id: str) -> bool:
        return run_id in self.submitted

    def snapshot(self) -> dict[str, Any]:
        return {"running": [], "queued": list(self.submitted), "capacity": 0}
