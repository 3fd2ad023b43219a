"""A worker whose run ended normally serves the next run, warm, and trains it exactly as a
fresh worker would; a worker whose run was cancelled is never reused.

The engine runs in this process (app/services/engine.py, as `normscope sweep` uses it) with
one slot, so every run goes to the one worker there is; the checks read the worker's pid in
the executor's snapshot while each run runs, and compare the runs' stored frames.
"""

from __future__ import annotations

import json
import time
from typing import Any

from app.services import runs as service
from app.services.engine import Engine, start_engine
from app.settings import Settings
from app.store import frame_text
from normcore.config import RunConfig
from tests.utils.server import LONG_RUN

SMALL = dict(depth=2, width=16, steps=300, probe_every=3, eval_every=100, device="cpu")
CLOCK = ("time", "steps_per_s")  # what differs between two runs of one config


def start(engine: Engine, **config: Any) -> tuple[str, int]:
    """Submit a run; its id and the pid of the worker that runs it."""
    cfg = RunConfig(**config)
    run = service.create_run(engine.store, engine.executor, engine.settings, cfg)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        for job in engine.executor.snapshot()["data"]:
            if job["run_id"] == run["id"]:
                return run["id"], job["pid"]
        status = engine.store.get_run(run["id"])["status"]
        assert status in ("queued", "running"), f"run ended before it was seen running: {status}"
        time.sleep(0.002)
    raise AssertionError("the run never started")


def wait(engine: Engine, run_id: str) -> str:
    deadline = time.monotonic() + 600
    while (status := engine.store.get_run(run_id)["status"]) in ("queued", "running"):
        assert time.monotonic() < deadline, f"run {run_id} never ended"
        time.sleep(0.05)
    return status


def frames(engine: Engine, run_id: str) -> list[dict[str, Any]]:
    out = []
    for _, blob in engine.store.iter_frames(run_id):
        frame = json.loads(frame_text(blob))
        out.append({k: v for k, v in frame.items() if k not in CLOCK})
    return out


def test_a_finished_runs_worker_trains_the_next_run_exactly_as_a_fresh_one(tmp_path):
    engine = start_engine(
        Settings(data_dir=tmp_path, max_jobs=1, warm_workers=1, max_steps=LONG_RUN)
    )
    try:
        first, pid = start(engine, **SMALL)
        assert wait(engine, first) == "completed"
        second, again = start(engine, **SMALL)
        assert again == pid  # the same process, already warm
        assert wait(engine, second) == "completed"
        a, b = frames(engine, first), frames(engine, second)
        assert len(a) == len(b) == 101 and a == b  # seeded: the same frames, bit for bit

        third, other = start(engine, **{**SMALL, "steps": LONG_RUN})
        assert other == pid
        service.cancel_run(engine.store, engine.executor, third, wait_s=60)
        assert engine.store.get_run(third)["status"] == "cancelled"
        fourth, fresh = start(engine, **SMALL)
        assert fresh != pid  # a cancelled run's worker is not handed on
        assert wait(engine, fourth) == "completed"
        assert frames(engine, fourth) == a
    finally:
        engine.stop()
