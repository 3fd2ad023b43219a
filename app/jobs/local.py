"""The local executor: each run in its own spawned worker process, a queue beyond capacity.

Capacity is `Settings.job_slots()`: one run per GPU; on a CPU, cores (app/jobs/threads.py), a
run taking as many as it gets intra-op threads, so small runs go one per core side by side and
nothing oversubscribes. A warm worker — torch
already imported — waits idle, so a new run starts training at once; after it takes a job, a
fresh one is spawned. One thread per job reads the worker's pipe, encodes its frames and
hands them to the sink (the recorder). When the pipe ends without a "done" message the worker
died: the run ends `failed` with how it died (SIGKILL is what the kernel's OOM killer sends).
Cancel asks the worker to stop between steps, and kills it if it has not after
`cancel_grace_s`.
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
from app.jobs.job import encode
from app.jobs.threads import available_cores, intra_op_threads
from app.jobs.worker import main as worker_main
from app.settings import Settings
from normcore.config import RunConfig
from normcore.cost import flops_per_step

log = logging.getLogger(__name__)

# A worker whose run ended normally on a CPU serves the next run (app/jobs/worker.py); after
# this many it is replaced, which bounds what a long-lived process may accumulate.
RUNS_PER_WORKER = 100


@dataclass
class _Worker:
    process: BaseProcess
    conn: Connection
    ready: bool = False  # its warm-up is done (it said so on the pipe)
    runs: int = 0  # runs it was given (a worker serves up to RUNS_PER_WORKER, one at a time)

    def poll_ready(self) -> bool:
        """Read a spare's ("ready",) if it came; never blocks."""
        try:
            while not self.ready and self.conn.poll(0):
                self.ready = self.conn.recv() == ("ready",)
        except (EOFError, OSError):
            pass  # a dead spare: _fill_spares replaces it
        return self.ready


@dataclass
class _Job:
    run_id: str
    slots: list[int]  # the GPU slot, or on a CPU the cores it holds (one per thread)
    threads: int  # intra-op threads it was given
    worker: _Worker
    started_at: float = field(default_factory=time.time)
    cancelling: bool = False
    thread: threading.Thread | None = None
    torch_threads: int | None = None  # what the worker's torch says it uses, once it started
    refilled: bool = False  # the spare it took has been replaced
    released: bool = False  # its run ended and its worker went on to serve others


class LocalExecutor(JobQueue):
    """Runs jobs in worker processes on this machine; thread-safe."""

    def __init__(self, settings: Settings, sink: Sink):
        super().__init__(
            sink,
            slots=settings.job_slots(),
            queue_length=settings.queue_length,
            retry_after_s=settings.retry_after_s,
        )
        # None: one warm worker per run that can start at once (at most 4), so the arms of a
        # preset posted together all start warm
        warm = settings.warm_workers
        self.warm: int = min(4, self.slots) if warm is None else warm
        self.grace_s = settings.cancel_grace_s
        self._ctx = mp.get_context("spawn")  # fork would copy the server's threads and locks
        self._spares: list[_Worker] = []
        self._gpus = _visible_gpus()
        self.fixed_threads = settings.worker_threads  # None: the thread policy decides
        cores = available_cores()
        self.gpu_threads = settings.worker_threads or max(1, cores // self.slots)

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
        if job.released:  # the run ended first and its worker serves another one now
            return
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
                    "slot": j.slots[0],
                    "slots": j.slots,
                    "threads": j.threads,
                    "torch_threads": j.torch_threads,
                    "started_at": j.started_at,
                }
                for j in self._jobs.values()
            ]
            return {
                "data": jobs,
                "count": len(jobs),
                "queued": [r for r, _ in self._queue],
                "slots": self.slots,
                "slots_used": len(self._used()),
                "device": "cuda" if self._gpus else "cpu",
                "queue_length": self.queue_length,
                "warm_workers": len(self._spares),
                "warm_ready": sum(w.poll_ready() for w in self._spares),
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
        """Keep a warm worker for each slot that is free, up to `warm`: busy slots need none,
        as their workers come back when their runs end (and no process starts torch on a
        core a run is using)."""
        self._spares = [w for w in self._spares if w.process.is_alive()]
        want = min(self.warm, self.slots - len(self._used()))
        while not self._closed and len(self._spares) < want:
            self._spares.append(self._spawn())

    def _used(self) -> set[int]:
        return {slot for job in self._jobs.values() for slot in job.slots}

    def _fits(self, config: dict[str, Any]) -> bool:
        """A GPU run needs a free GPU; a CPU run one free core, or as many as the threads it
        asks for (its config's ``threads``, else NORMSCOPE_WORKER_THREADS), and waits for them."""
        free = self.slots - len(self._used())
        asked = self._asked(config)
        if self._gpus or asked is None:
            return free >= 1
        return free >= min(asked, self.slots)

    def _asked(self, config: dict[str, Any]) -> int | None:
        """The threads a CPU run asks for: its own ``threads``, else the server's setting."""
        own = config.get("threads")
        return own if own is not None else self.fixed_threads

    def _threads(self, config: dict[str, Any], free: int) -> int:
        """The run's intra-op threads: on a GPU the cores over the GPUs; on a CPU what it asks
        for, or the thread policy's choice for its size among the runs that want cores now,
        within the free cores (never more threads than cores it holds)."""
        if self._gpus:
            return config.get("threads") or self.gpu_threads
        asked = self._asked(config)
        if asked is not None:
            return min(asked, self.slots)
        flops = flops_per_step(RunConfig.model_validate(config))
        runs = 1 + len(self._jobs) + len(self._queue)
        return min(free, intra_op_threads(flops, cores=self.slots, runs=runs))

    def _launch(self, run_id: str, config: dict[str, Any]) -> None:
        free = sorted(set(range(self.slots)) - self._used())
        threads = self._threads(config, len(free))
        slots = free[:1] if self._gpus else free[:threads]
        slot = slots[0]
        env = {"CUDA_VISIBLE_DEVICES": self._gpus[slot % len(self._gpus)]} if self._gpus else {}
        while True:
            pool = [w for w in self._spares if w.poll_ready()] or self._spares  # ready first
            if pool:
                worker = pool[0]
                self._spares.remove(worker)
            else:
                worker = self._spawn()
            try:
                worker.conn.send(("run", run_id, config, env, threads))
                worker.runs += 1
                break
            except OSError:  # a spare that died while idle: take the next one
                _kill(worker)
        job = _Job(run_id, slots, threads, worker)
        self._jobs[run_id] = job
        self.sink.started(run_id)
        job.thread = threading.Thread(
            target=self._follow, args=(job,), daemon=True, name=f"job-{run_id}"
        )
        job.thread.start()
        # The spare taken is replaced once this run's first frames are out: importing torch in
        # a new process now would take the CPU the first frame needs.

    # -- the job thread ------------------------------------------------------------------------
    def _follow(self, job: _Job) -> None:
        """Relay a worker's messages to the sink until it ends, then start the next run."""
        done: tuple[str, str | None] | None = None
        try:
            while True:
                message = job.worker.conn.recv()
                if message[0] == "frames":  # encoded here, off the training process's GIL
                    self.sink.frames(job.run_id, [encode(f) for f in message[1]], message[2])
                    if not job.refilled:  # its first frames are out: now replace its spare
                        job.refilled = True
                        with self._lock:
                            self._fill_spares()
                elif message[0] == "started":
                    job.torch_threads = message[1]["torch_threads"]
                elif message[0] == "done":
                    done = (message[1], message[2])
                    break
        except (EOFError, OSError):
            pass
        except Exception:  # a message we cannot read: treat the worker as broken
            log.exception("job %s: bad message from worker", job.run_id)
        if not self._release(job, done):
            job.worker.process.join(timeout=1 if done else 5)
            _kill(job.worker)
        status, error = done if done is not None else (None, None)
        self._finish(job, status, error, death=_death(job.worker.process.exitcode))
        with self._lock:
            self._fill_spares()  # also when it died before its first frames

    def _release(self, job: _Job, done: tuple[str, str | None] | None) -> bool:
        """Hand the worker of a run that ended normally on a CPU to the spares, where the
        next run takes it warm. Not one that was asked to stop (a late "cancel" could reach
        its next run), died, serves a GPU (CUDA_VISIBLE_DEVICES is fixed once CUDA starts),
        or has served RUNS_PER_WORKER runs."""
        worker = job.worker
        with self._lock:
            if (
                done is None
                or job.cancelling
                or self._closed
                or self._gpus
                or worker.runs >= RUNS_PER_WORKER
                or len(self._spares) >= self.warm
                or not worker.process.is_alive()
            ):
                return False
            job.released = True
            self._spares.insert(0, worker)  # first: it is ready now
            return True


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
