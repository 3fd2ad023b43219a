"""The Ray executor: the local executor's jobs on a Ray cluster, for sweeps one machine can't hold.

Each run is one Ray actor (`_RunActor`, threaded) that trains with the local worker's own job
function (`app.jobs.job.train`) and encodes frames with `app.jobs.job.encode`, so the
store gets exactly what a local worker would send. Frames come back by long polling: one pump
thread on the server keeps a single `take()` call outstanding per run and `ray.wait`s on all of
them; `take()` answers as soon as frames are there (or after `_POLL_S`) with everything that
piled up, as one batch. Why this rather than a `ray.util.queue.Queue` or a streaming generator:
the call that carries the frames is the call that reports the end of the run and the actor's
death (RayActorError), so there is no second channel to reconcile; the server pulls only as fast
as it reads (nothing piles up in the object store); and it needs only plain actor calls. One
pump thread, not one per run, so a sweep of hundreds of runs costs the server no threads.

Capacity and queue are the local executor's: `max_jobs` actors at once (unset: the cluster's
CPUs / threads per job), `queue_length` runs waiting here beyond that, then QueueFull. Cancel
asks the actor to stop between steps and `ray.kill`s it after `cancel_grace_s`. Ray connects to
RAY_ADDRESS, or starts a local instance when unset. Ray is imported here only, lazily.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from app.jobs.base import JobQueue, Sink
from app.jobs.job import BURSTS_PER_MESSAGE, END, encode, frames_of, train
from app.settings import Settings

log = logging.getLogger(__name__)

_POLL_S = 0.5  # longest a take() waits for frames; the run's end wakes it at once
_MAX_ERROR = 2000


class _RunActor:
    """One run on a Ray worker: training in a thread, frames drained by `take()`."""

    def __init__(self, config: dict[str, Any], threads: int):
        import ray
        import torch

        torch.set_num_threads(threads)
        self._node = ray.util.get_node_ip_address()  # the node this run trains on
        self._stop = threading.Event()
        self._outbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._summary: dict[str, Any] = {}
        self._result: tuple[str, str | None] | None = None
        threading.Thread(target=self._train, args=(config,), daemon=True).start()

    def _train(self, config: dict[str, Any]) -> None:
        self._result = train(config, self._stop, self._outbox)  # never raises
        self._outbox.put(END)

    def take(self, wait_s: float) -> dict[str, Any]:
        """Frames encoded since the last call, the run summary, and (status, error) at the end."""
        from normcore.frames import clean

        items = []
        try:
            items.append(self._outbox.get(timeout=wait_s))
            while len(items) < BURSTS_PER_MESSAGE and items[-1] is not END:
                items.append(self._outbox.get_nowait())
        except queue.Empty:
            pass
        frames = frames_of(items, self._summary)
        done = self._result if items and items[-1] is END else None
        return {
            "pid": os.getpid(),
            "node": self._node,
            "frames": [encode(f) for f in frames],
            "summary": clean(self._summary),
            "done": done,
        }

    def stop(self) -> None:
        self._stop.set()


@dataclass
class _Job:
    run_id: str
    slot: int
    actor: Any
    take: Any  # the outstanding take() ObjectRef
    started_at: float
    pid: int | None = None
    node: str | None = None  # the Ray node's address, once the actor answered
    cancelling: bool = False


class RayExecutor(JobQueue):
    """Runs jobs as Ray actors; thread-safe. See the module docstring."""

    def __init__(self, settings: Settings, sink: Sink):
        # max_jobs unset: the cluster's CPUs, known after start()
        super().__init__(
            sink,
            slots=settings.max_jobs or 1,
            queue_length=settings.queue_length,
            retry_after_s=settings.retry_after_s,
        )
        self._auto_slots = settings.max_jobs is None
        self.grace_s = settings.cancel_grace_s
        self.threads = settings.worker_threads or 1  # many small runs: one core each
        self._wake = threading.Event()
        self._owns_ray = False
        self._cluster_gpus = 0.0
        self._actor_class: Any = None
        self._pump_thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        import ray

        if not ray.is_initialized():
            address = os.environ.get("RAY_ADDRESS") or None
            local: dict[str, Any] = {} if address else {"include_dashboard": False}
            with _signal_handlers_kept():
                ray.init(address=address, logging_level=logging.WARNING, **local)
            self._owns_ray = True
        resources = ray.cluster_resources()
        self._cluster_gpus = resources.get("GPU", 0.0)
        if self._auto_slots:
            self.slots = max(1, int(resources.get("CPU", 1)) // self.threads)
        self._actor_class = ray.remote(_RunActor)
        self._pump_thread = threading.Thread(target=self._pump, name="ray-pump", daemon=True)
        self._pump_thread.start()

    def stop(self) -> None:
        """Kill every actor; running runs end `interrupted`, queued ones stay queued (the store
        marks them interrupted). Shuts Ray down only when this executor started it."""
        with self._lock:
            self._closed = True
            self._queue.clear()
            actors = [job.actor for job in self._jobs.values()]
        for actor in actors:
            _kill(actor)
        self._wake.set()
        if self._pump_thread is not None:
            self._pump_thread.join(timeout=15)
        if self._owns_ray:
            import ray

            ray.shutdown()

    # -- the executor interface ---------------------------------------------------------------
    def _stop(self, job: _Job) -> None:
        """Ask the actor to stop between steps; kill it if it has not after the grace."""
        job.actor.stop.remote()
        self._kill_after_grace(_kill, job.actor)

    def snapshot(self) -> dict[str, Any]:
        """Running jobs (pid: the actor's process, once it answered), the queue, capacity."""
        with self._lock:
            jobs = [
                {
                    "run_id": j.run_id,
                    "pid": j.pid,
                    "slot": j.slot,
                    "started_at": j.started_at,
                    "node": j.node,
                }
                for j in self._jobs.values()
            ]
            return {
                "data": jobs,
                "count": len(jobs),
                "queued": [r for r, _ in self._queue],
                "slots": self.slots,
                "queue_length": self.queue_length,
                "warm_workers": 0,
            }  # Ray keeps its own worker pool

    # -- internals -----------------------------------------------------------------------------
    def _launch(self, run_id: str, config: dict[str, Any]) -> None:
        """Create the run's actor (asynchronous: Ray schedules it); called with the lock held."""
        slot = min(set(range(self.slots)) - {job.slot for job in self._jobs.values()})
        # A GPU only where the cluster has one: a 'cuda' run on a CPU cluster then fails with
        # torch's reason instead of waiting forever for a GPU that will never come.
        wants_gpu = config.get("device", "auto") in ("auto", "cuda") and self._cluster_gpus >= 1
        threads = config.get("threads") or self.threads  # the run's own ask, else the setting
        actor = self._actor_class.options(
            num_cpus=threads,
            num_gpus=1 if wants_gpu else 0,
            max_concurrency=4,
            name=f"normscope-{run_id}",
        ).remote(config, threads)
        job = _Job(run_id, slot, actor, actor.take.remote(_POLL_S), time.time())
        self._jobs[run_id] = job
        self.sink.started(run_id)
        self._wake.set()

    def _pump(self) -> None:
        """Relay every run's take() answers to the sink until stopped and no job is left."""
        import ray

        while True:
            with self._lock:
                if self._closed and not self._jobs:
                    return
                waiting = {job.take: job for job in self._jobs.values()}
            if not waiting:
                self._wake.wait(0.5)
                self._wake.clear()
                continue
            refs = list(waiting)
            ready, rest = ray.wait(refs, num_returns=1, timeout=0.1)
            if ready and rest:  # and whatever else is ready now
                ready += ray.wait(rest, num_returns=len(rest), timeout=0)[0]
            for ref in ready:
                self._receive(waiting[ref], ref)

    def _receive(self, job: _Job, ref: Any) -> None:
        import ray
        from ray.exceptions import RayActorError

        try:
            answer = ray.get(ref)
        except RayActorError as exc:
            self._end(job, None, _death(exc))
            return
        except Exception as exc:  # take() itself raised: report it, the run cannot go on
            self._end(job, "failed", f"the Ray task failed: {exc}"[:_MAX_ERROR])
            return
        job.pid, job.node = answer["pid"], answer["node"]
        if answer["frames"]:
            self.sink.frames(job.run_id, answer["frames"], answer["summary"])
        if answer["done"] is not None:
            self._end(job, *answer["done"])
        else:
            job.take = job.actor.take.remote(_POLL_S)

    def _end(self, job: _Job, status: str | None, error: str | None) -> None:
        """Report the run's end (status None: its actor died) and start the next queued run."""
        _kill(job.actor)
        self._finish(job, status, error, death=error or "the Ray actor died")


@contextmanager
def _signal_handlers_kept() -> Iterator[None]:
    """ray.init replaces the SIGTERM handler with one that calls sys.exit: uvicorn's graceful
    shutdown (and with it `stop()`, which marks running runs interrupted) would never run."""
    main = threading.current_thread() is threading.main_thread()
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)} if main else {}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            if handler is not None:
                signal.signal(sig, handler)


def _kill(actor: Any) -> None:
    """End the actor's process; its outstanding take() then raises RayActorError."""
    import ray

    try:
        ray.kill(actor, no_restart=True)
    except Exception:  # already gone, or Ray shut down: nothing left to kill
        log.debug("ray.kill failed", exc_info=True)


def _death(exc: BaseException) -> str:
    """Why the actor ended without reporting, in the first lines of Ray's own explanation."""
    text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    return f"the Ray actor running the job died: {text}"[:_MAX_ERROR]
