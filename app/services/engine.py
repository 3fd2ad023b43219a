"""The service's moving parts in one place: the store, the recorder, the executor and the
services over them, started in order and stopped in reverse.

The server's lifespan owns one (it also recovers runs a stopped server left active, and marks
its own unfinished ones interrupted at the end); `normscope sweep` runs one without a server,
on the same store, touching only the runs it started.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from app.jobs import make_executor
from app.jobs.base import Executor, Sink
from app.jobs.recorder import Publish, Recorder
from app.services.claims import ClaimService
from app.services.sweeps import SweepService
from app.settings import Settings
from app.store import Store

log = logging.getLogger("normscope")


@dataclass
class Engine:
    settings: Settings
    store: Store
    recorder: Recorder
    executor: Executor
    claims: ClaimService
    sweeps: SweepService
    owner: bool  # the server: it owns every run in the store

    def stop(self) -> None:
        self.sweeps.stop()  # sweep runs never handed to the executor: interrupted
        self.executor.stop()  # running runs -> interrupted
        self.recorder.stop()
        self.claims.close()
        if self.owner:
            self.store.mark_interrupted("the server stopped before the run started")
        self.store.close()


def start_engine(
    settings: Settings,
    publish: Publish | None = None,
    *,
    sweep_changed: Callable[[], None] | None = None,
    owner: bool = True,
    make_executor: Callable[[Settings, Sink], Executor] = make_executor,
) -> Engine:
    """Open the store and start everything over it. `publish` hears every batch of frames and
    status change the recorder commits (the server's hub); sweeps hear the status changes and
    call `sweep_changed` once they stored an ended cell's metric."""
    store = Store(settings.db_path)
    if owner:
        left = store.mark_interrupted("the server stopped while the run was active")
        if left:
            log.warning("marked %d runs interrupted: %s", len(left), ", ".join(left))
    sweeps: list[SweepService] = []  # set below: the recorder starts before the service

    def changed(run: dict[str, Any]) -> None:
        if sweeps:
            sweeps[0].run_changed(run)  # a cell ended: the sweep's next one may start

    recorder = Recorder(store, publish or (lambda *_: None), changed=changed)
    recorder.start()
    executor = make_executor(settings, recorder)
    executor.start()
    claims = ClaimService(store, executor, settings)  # claim runs left active: interrupted
    sweeps.append(SweepService(store, executor, settings, sweep_changed))
    sweeps[0].start()
    return Engine(settings, store, recorder, executor, claims, sweeps[0], owner)
