"""Helpers of the API tests: a small run config, and creating, waiting for and following runs
over HTTP (any httpx client: a live server's or an in-process one)."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx

from normcore.frames import TERMINAL
from tests.utils.server import sse_events

# A run small enough for a shared 2-core machine (depth 2, width 16, the 2-D moons set).
SMALL: dict[str, Any] = {
    "depth": 2,
    "width": 16,
    "dataset": "moons",
    "batch_size": 32,
    "lr": 0.1,
    "eval_every": 50,
    "hist_bins": 32,
}


def create(client: httpx.Client, **config: Any) -> dict[str, Any]:
    response = client.post("/api/runs", json={**SMALL, **config})
    assert response.status_code == 201, response.text
    return response.json()


def wait_until(
    client: httpx.Client, run_id: str, done: Any = TERMINAL.__contains__, timeout: float = 120
) -> dict[str, Any]:
    """Poll the run until done(status) or, with `done` a number, frame_count >= it."""
    deadline = time.monotonic() + timeout
    while True:
        run = client.get(f"/api/runs/{run_id}").json()
        ok = run["frame_count"] >= done if isinstance(done, int) else done(run["status"])
        if ok:
            return run
        assert time.monotonic() < deadline, f"run {run_id} stuck: {run}"
        time.sleep(0.05)


def follow(client: httpx.Client, run_id: str, **headers: str) -> list[dict[str, Any]]:
    """Consume a run's whole stream: its events (frames and statuses) in arrival order."""
    events = []
    with client.stream("GET", f"/api/runs/{run_id}/events", headers=headers) as response:
        assert response.status_code == 200, response.read()
        for event in sse_events(response):
            if event["event"] is None:
                continue
            events.append({**event, "data": json.loads(event["data"])})
            if event["event"] == "status" and events[-1]["data"]["status"] in TERMINAL:
                break
    return events


def stored_frames(client: httpx.Client, run_id: str) -> list[dict[str, Any]]:
    page = client.get(f"/api/runs/{run_id}/frames", params={"max_points": 100_000}).json()
    assert page["dropped"] == 0
    return page["data"]


def field_error(response: httpx.Response, *loc: str) -> str:
    """Assert a 4xx whose validation detail points at `loc` (its tail); return the messages."""
    assert 400 <= response.status_code < 500, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, list), detail
    assert any(tuple(d["loc"][-len(loc) :]) == loc for d in detail), detail
    return " ".join(d["msg"] for d in detail)
