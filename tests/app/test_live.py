"""The SSE generator in-process: a real store and hub, no server (races made deterministic)."""

from __future__ import annotations

import asyncio

import pytest

from app.live import Hub, follow
from app.store import Finish, Frames, Start, Store
from normcore.config import RunConfig
from normcore.frames import encode, to_json


@pytest.fixture
def store(tmp_path):
    store = Store(tmp_path / "runs.db")
    yield store
    store.close()


def _frame(seq: int) -> dict:
    return {"seq": seq, "step": seq + 1, "status": "running", "loss": 1.0, "layers": []}


def _frame_ids(chunks: list[bytes]) -> list[int]:
    text = b"".join(chunks).decode()
    return [int(line[4:]) for line in text.splitlines() if line.startswith("id: ")]


def test_a_terminal_status_from_the_store_drains_frames_the_tail_has_not_seen(store):
    """A reconnect at the run's end, while another viewer holds the run's channel: the store
    already has the last frames and the final status, their publish is still on its way to
    the event loop. The stream must send those frames before the final status."""
    cfg = RunConfig()
    run_id = store.create_run(cfg.model_dump(), cfg.label())["id"]
    rows = [(s, s + 1, encode(_frame(s))) for s in range(11)]
    store.apply([Start(run_id, 0.0), Frames(run_id, rows, {"step": 11})])
    store.apply([Finish(run_id, "completed", None, 1.0)])

    async def scenario() -> list[bytes]:
        hub = Hub(tail=64)
        other = hub.join(run_id)  # another viewer's channel, its tail at frames 0..5
        other.push([(s, to_json(_frame(s))) for s in range(6)], None)
        try:
            return [chunk async for chunk in follow(store, hub, run_id, 5, keepalive_s=5)]
        finally:
            hub.leave(run_id, other)

    chunks = asyncio.run(asyncio.wait_for(scenario(), 10))
    assert _frame_ids(chunks) == list(range(6, 11)), "every frame after Last-Event-ID, once"
    assert b'"status":"completed"' in chunks[-1]
