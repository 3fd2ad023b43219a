"""The Ray executor against a real local Ray instance (2 CPUs), the real Store and Recorder:
a run through a real server (uvicorn, joining the instance via RAY_ADDRESS) completes with
every frame stored in order, and the server still stops gracefully; the queue fills and answers
QueueFull; cancel stops queued and running runs; a job that raises, or whose actor process is
killed, ends `failed` with the reason. Ray is a dev dependency: without it this file fails."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest
import ray  # no importorskip: CI installs ray, a missing one must fail here

from app.errors import QueueFull
from app.jobs.ray_executor import RayExecutor
from app.jobs.recorder import Recorder
from app.settings import Settings
from app.store import Store
from normcore.frames import TERMINAL, decode
from tests.utils.runs import SMALL, create, stored_frames, wait_until
from tests.utils.server import LONG_RUN, LiveServer


@pytest.fixture(scope="module", autouse=True)
def local_ray() -> Iterator[str]:
    """The local Ray instance; yields its address, for a server that joins it via RAY_ADDRESS."""
    context = ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield context.address_info["address"]
    ray.shutdown()


class Harness:
    """A RayExecutor wired to a real Recorder over a real Store, as the server wires it."""

    def __init__(self, data_dir: Any, **settings: Any):
        self.store = Store(data_dir / "runs.db")
        self.recorder = Recorder(self.store, lambda *_: None)
        self.recorder.start()
        self.executor = RayExecutor(
            Settings(executor="ray", data_dir=data_dir, **settings), self.recorder
        )
        self.executor.start()

    def submit(self, **config: Any) -> str:
        full = {**SMALL, **config}
        run_id = self.store.create_run(full, "test")["id"]
        self.executor.submit(run_id, full)
        return run_id

    def wait(self, run_id: str, frames: int | None = None, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            run = self.store.get_run(run_id)
            assert run is not None
            if run["status"] in TERMINAL or (frames is not None and run["frame_count"] >= frames):
                return run
            assert time.monotonic() < deadline, f"run {run_id} stuck: {run}"
            time.sleep(0.05)

    def close(self) -> None:
        self.executor.stop()  # idempotent, as the recorder's stop
        self.recorder.stop()
        self.store.close()


@pytest.fixture
def harness(tmp_path) -> Iterator[Harness]:
    h = Harness(tmp_path, max_jobs=1, queue_length=1, cancel_grace_s=0.7)
    yield h
    h.close()


def test_run_through_the_api_on_ray_completes_with_every_frame_in_seq_order(local_ray, tmp_path):
    env = {
        "NORMSCOPE_EXECUTOR": "ray",
        "RAY_ADDRESS": local_ray,
        "NORMSCOPE_MAX_JOBS": "2",
        "NORMSCOPE_QUEUE_LENGTH": "2",
    }
    server = LiveServer(tmp_path / "server", env).start()  # a second driver on the cluster
    try:
        with server.client() as client:
            run = create(client, steps=60, probe_every=2)
            done = wait_until(client, run["id"], timeout=60)
            frames = stored_frames(client, run["id"])
            jobs = client.get("/api/jobs").json()
    finally:
        server.stop()
    assert not server.server_errors(), server.log()
    assert done["status"] == "completed" and done["error"] is None, done
    assert [f["seq"] for f in frames] == list(range(len(frames))) and len(frames) >= 30
    assert done["frame_count"] == len(frames) and frames[-1]["step"] == 60
    assert frames[-1]["status"] == "completed" and done["final"]["loss"] == frames[-1]["loss"]
    assert jobs["slots"] == 2 and jobs["queue_length"] == 2 and jobs["count"] == 0


def test_full_queue_raises_and_cancel_stops_queued_and_running_runs(harness):
    running = harness.submit(steps=LONG_RUN)
    queued = harness.submit(steps=LONG_RUN)
    with pytest.raises(QueueFull):
        harness.submit(steps=10)
    snapshot = harness.executor.snapshot()
    assert [j["run_id"] for j in snapshot["data"]] == [running] and snapshot["queued"] == [queued]
    assert harness.executor.cancel(queued) and harness.wait(queued)["status"] == "cancelled"
    assert harness.store.get_run(queued)["started_at"] is None  # it never ran
    harness.wait(running, frames=3)
    asked = time.monotonic()
    assert harness.executor.cancel(running)
    cancelled = harness.wait(running, timeout=10)
    assert cancelled["status"] == "cancelled" and cancelled["error"] is None
    assert time.monotonic() - asked < 3  # stop between steps, killed after 0.7 s at worst
    assert 3 <= cancelled["frame_count"] < LONG_RUN
    assert harness.executor.cancel("no-such-run") is False


def test_a_job_that_raises_ends_failed_with_the_reason_and_the_queued_run_starts(harness):
    bad = harness.submit(steps=50, norm="no-such-norm")  # RunConfig raises inside the actor
    good = harness.submit(steps=20)  # queued behind it: one slot
    failed = harness.wait(bad)
    assert failed["status"] == "failed"
    assert "ValidationError" in failed["error"] and "no-such-norm" in failed["error"]
    assert harness.wait(good)["status"] == "completed"


def test_killing_the_actor_process_fails_the_run_and_stop_interrupts_the_next(harness):
    run_id = harness.submit(steps=LONG_RUN)
    harness.wait(run_id, frames=5)
    [job] = harness.executor.snapshot()["data"]
    assert job["run_id"] == run_id and job["pid"] not in (None, os.getpid())
    os.kill(job["pid"], signal.SIGKILL)  # what the kernel's out-of-memory killer does
    failed = harness.wait(run_id, timeout=30)
    assert failed["status"] == "failed" and "Ray actor" in failed["error"], failed
    blobs = list(harness.store.iter_frames(run_id))  # frames before the kill are kept
    assert [seq for seq, _ in blobs] == list(range(failed["frame_count"])) and len(blobs) >= 5
    assert decode(blobs[0][1])["seq"] == 0
    after = harness.submit(steps=LONG_RUN)  # the executor carries on; stop() interrupts it
    harness.wait(after, frames=3)
    harness.executor.stop()
    harness.recorder.stop()  # commits what the executor reported
    interrupted = harness.store.get_run(after)
    assert interrupted["status"] == "interrupted" and "server stopped" in interrupted["error"]
