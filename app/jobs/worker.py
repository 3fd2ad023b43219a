"""The worker process: one job at a time, so a crash, an OOM or a kill ends only its run.

Life of a worker (started with the spawn method by the local executor):
1. import torch and the trainer while idle, so a new run does not pay for the import (a
   tiny run loads numba's compiled kernels and the digits data set too), then say ("ready",);
2. wait for ("run", run_id, config, env, threads) — or for EOF / None: exit; set its
   intra-op threads and report ("started", {"torch_threads": n}) as torch counts them;
3. train (`app.jobs.job.train`), handing frames to a sender thread that sends whatever
   piled up as one message, pickled: ~9 µs a frame where encoding it (rounding, JSON,
   compression: `app.jobs.job.encode`) costs ~100 µs, which the server's job thread pays on
   a core of its own instead of the training thread, whose GIL the sender shares (a small
   model's step is ~750 µs); "cancel" sets this run's should_stop;
4. send ("done", status, error) and wait for the next job (2.): the executor hands a worker
   whose run ended normally on a CPU to the next run, which then starts with torch, numba's
   kernels and the data sets already loaded (a sweep's cells pay the start-up once per
   worker, not once per cell). A run seeds everything it draws from its own config, so a
   reused worker trains exactly as a fresh one would (tests/app/test_worker_reuse.py).
One thread reads the pipe for the worker's whole life (jobs, cancels, the end). If the
server goes away (EOF or a broken pipe), the worker exits at once: no orphans.
"""

from __future__ import annotations

import os
import queue
import threading
from multiprocessing.connection import Connection
from typing import Any

from app.jobs.job import BURSTS_PER_MESSAGE, END, frames_of, train
from normcore.frames import clean


def main(conn: Connection) -> None:
    """Entry point of a worker process."""
    _warm_up()
    jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
    running: list[threading.Event] = []  # the stop flag of the run in progress, if any
    threading.Thread(target=_listen, args=(conn, jobs, running), daemon=True).start()
    _send_or_exit(conn, ("ready",))  # /api/jobs counts warm workers that are ready
    while job := jobs.get():
        stop = threading.Event()
        running[:] = [stop]
        _run(conn, job, stop)
        running.clear()


def _run(conn: Connection, job: tuple, stop: threading.Event) -> None:
    _, run_id, config, env, threads = job
    os.environ.update(env)  # e.g. CUDA_VISIBLE_DEVICES of the assigned GPU, before CUDA starts
    import torch

    # Intra-op threads: the machine's cores shared among the job slots. Oversubscribed
    # threads made a small CPU run 5x slower on a 2-core machine.
    torch.set_num_threads(threads)
    # What torch really uses, for /api/jobs (and the test that a run gets what it was given).
    _send_or_exit(conn, ("started", {"torch_threads": torch.get_num_threads()}))
    outbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
    sender = threading.Thread(target=_send, args=(conn, outbox), daemon=True)
    sender.start()
    status, error = train(config, stop, outbox)
    outbox.put(END)
    sender.join()
    _send_or_exit(conn, ("done", status, error))


def _warm_up() -> None:
    """Pay the first-run costs while idle: importing torch and the trainer, and the lazy
    imports of a first run (the optimizer pulls in torch._dynamo, ~2 s; the digits data set
    scikit-learn, ~1.5 s). CPU only, so CUDA is not initialised before the job's GPU is
    known."""
    try:
        from normcore.config import RunConfig
        from normcore.train import run

        tiny = RunConfig.model_validate(
            {
                "depth": 1,
                "width": 4,
                "dataset": "digits",
                "batch_size": 8,
                "steps": 2,
                "device": "cpu",
            }
        )
        for _ in run(tiny):
            pass
    except Exception:  # a broken warm-up must not kill the worker; the real run will say why
        pass


def _listen(conn: Connection, jobs: queue.SimpleQueue, running: list[threading.Event]) -> None:
    """The pipe's one reader: jobs to the main thread, "cancel" to the run in progress (one
    that comes while idle, for a run already done, is dropped), the end as None."""
    try:
        while True:
            message = conn.recv()
            if message == "cancel":
                for stop in list(running):
                    stop.set()
            else:
                jobs.put(message)  # ("run", ...), or None: exit when idle
                if not message:
                    return
    except (EOFError, OSError):
        os._exit(0)  # the server is gone: nobody will read this run's frames


def _send(conn: Connection, outbox: queue.SimpleQueue) -> None:
    """Send frames in batches: one message for the bursts (``train``'s flushes) waiting, up to
    ``BURSTS_PER_MESSAGE`` of them, not one per frame."""
    summary: dict[str, Any] = {}
    while True:
        items = [outbox.get()]
        while len(items) < BURSTS_PER_MESSAGE:
            try:
                items.append(outbox.get_nowait())
            except queue.Empty:
                break
        done = items[-1] is END
        frames = frames_of(items, summary)
        if frames:
            _send_or_exit(conn, ("frames", frames, clean(summary)))
        if done:
            return


def _send_or_exit(conn: Connection, message: tuple) -> None:
    try:
        conn.send(message)
    except (BrokenPipeError, EOFError, OSError):
        os._exit(0)
