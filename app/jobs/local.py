"""The local executor: each run in its own spawned worker process, a queue beyond capacity.

Capacity is `Settings.job_slots()` (one per GPU, else one on CPU). A warm worker — torch
already imported — waits idle, so a new run starts training at once; after it takes a job, a
fresh one is spawned. One thread per job reads the worker's pipe and hands frames to the sink
(the recorder). When the pipe ends without a "done" message the worker died: the run ends
`failed` with how it died (SIGKILL is what the kernel's OOM killer sends). Cancel asks the
worker to stop between steps, and kills it if it has not after `cancel_grace_s`.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from app.jobs.base import JobQueue, Sink
from app.jobs.worker import main as worker_main
from app.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class _Worker:
    process: BaseProcess
    conn: Connection


@dataclass
class _Job:
    run_id: str
    slot: int
    worker: _Worker
    started_at: float = field(default_factory=time.time)
    cancelling: bool = False
    thread: threading.Thread | None = None


class LocalExecutor(JobQueue):
    """Runs jobs in worker processes on this machine; thread-safe."""

    def __init__(self, settings: Settings, sink: Sink):
        super().__init__(
            sink,
            slots=settings.job_slots(),
            queue_length=settings.queue_length,
            retry_after_s=settings.retry_after_s,
        )
        self.warm = settings.warm_workers
        self.grace_s = settings.cancel_grace_s
        self._ctx = mp.get_context("spawn")  # fork would copy the server's threads and locks
        self._spares: list[_Worker] = []
        self._gpus = _visible_gpus()
        cores = os.cpu_count() or 1
        self.threads = settings.worker_threads or max(1, cores // self.slots)

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        with self._lock:
            self._fill_spares()

    def stop(self) -> None:
        """Kill every worker; runs still running end `interrupted`, queued ones stay queued
        (the store marks them interrupted)."""
        with self._lock:
            self._closed = True
            self._queue.clear()
            jobs, spares, self._spares = list(self._jobs.values()), self._spares, []
        for worker in spares:
            _kill(worker)
        for job in jobs:
            _terminate(job.worker)  # its job thread sees EOF, reports, closes the pipe
        for job in jobs:
            if job.thread is not None:
                job.thread.join(timeout=10)

    # -- the executor interface (submit, cancel: JobQueue) ------------------------------------
    def _stop(self, job: _Job) -> None:
        """Ask the worker to stop between steps; kill it if it has not after the grace."""
        try:
            job.worker.conn.send("cancel")
        except OSError:
            pass  # already gone; the job thread reports it
        self._kill_after_grace(_terminate, job.worker)

    def snapshot(self) -> dict[str, Any]:
        """Running jobs, the queue, capacity: for /api/jobs and the tests that kill workers."""
        with self._lock:
            jobs = [
                {
                    "run_id": j.run_id,
                    "pid": j.worker.process.pid,
                    "slot": j.slot,
                    "started_at": j.started_at,
                }
                for j in self._jobs.values()
            ]
            return {
                "data": jobs,
                "count": len(jobs),
                "queued": [r for r, _ in self._queue],
                "slots": self.slots,
                "queue_length": self.queue_length,
                "warm_workers": len(self._spares),
            }

    # -- internals (called with the lock held) -----------------------------------------------
    def _spawn(self) -> _Worker:
        ours, theirs = self._ctx.Pipe(duplex=True)
        process = self._ctx.Process(
            target=worker_main, args=(theirs,), daemon=True, name="normscope-worker"
        )
        process.start()
        theirs.close()  # only the child holds its end: its death is our EOF
        return _Worker(process, ours)

    def _fill_spares(self) -> None:
        self._spares = [w for w in self._spares if w.process.is_alive()]
        while not self._closed and len(self._spares) < self.warm:
            self._spares.append(self._spawn())

    def _launch(self, run_id: str, config: dict[str, Any]) -> None:
        used = {job.slot for job in self._jobs.values()}
        slot = min(set(range(self.slots)) - used)
        env = {"CUDA_VISIBLE_DEVICES": self._gpus[slot % len(self._gpus)]} if self._gpus else {}
        while True:
            worker = self._spares.pop(0) if self._spares else self._spawn()
            try:
                worker.conn.send(("run", run_id, config, env, self.threads))
                break
            except OSError:  # a spare that died while idle: take the next one
                _kill(worker)
        job = _Job(run_id, slot, worker)
        self._jobs[run_id] = job
        self.sink.started(run_id)
        job.thread = threading.Thread(
            target=self._follow, args=(job,), daemon=True, name=f"job-{run_id}"
        )
        job.thread.start()
        self._fill_spares()

    # -- the job thread ------------------------------------------------------------------------
    def _follow(self, job: _Job) -> None:
        """Relay a worker's messages to the sink until it ends, then start the next run."""
        done: tuple[str, str | None] | None = None
        try:
            while True:
                message = job.worker.conn.recv()
                if message[0] == "frames":
                    self.sink.frames(job.run_id, message[1], message[2])
                elif message[0] == "done":
                    done = (message[1], message[2])
                    break
        except (EOFError, OSError):
            pass
        except Exception:  # a message we cannot read: treat the worker as broken
            log.exception("job %s: bad message from worker", job.run_id)
        job.worker.process.join(timeout=1 if done else 5)
        _kill(job.worker)
        status, error = done if done is not None else (None, None)
        self._finish(job, status, error, death=_death(job.worker.process.exitcode))


def _terminate(worker: _Worker) -> None:
    """SIGKILL the process; the thread reading its pipe then sees EOF."""
    if worker.process.is_alive():
        worker.process.kill()


def _kill(worker: _Worker) -> None:
    """Terminate, reap, and close our end of the pipe (by the pipe's only reader)."""
    _terminate(worker)
    worker.process.join(timeout=5)
    worker.conn.close()


def _death(exitcode: int | None) -> str:
    """Why a worker ended without reporting: the words an operator needs."""
    if exitcode is not None and exitcode < 0:
        name = signal.Signals(-exitcode).name
        hint = " (the kernel's out-of-memory killer, or a kill -9)" if name == "SIGKILL" else ""
        return f"the worker process was killed by {name}{hint}"
    return f"the worker process exited with code {exitcode} without finishing the run"


def _visible_gpus() -> list[str]:
    """GPU ids a job may be pinned to, honouring an existing CUDA_VISIBLE_DEVICES."""
    import torch

    count = torch.cuda.device_count()
    visible = [d for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    return (visible or [str(i) for i in range(count)])[:count]
