"""The live stream (SSE) against a real server and real runs: order, completeness, resume,
and a client that never reads."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest

from tests.app.conftest import create, follow, stored_frames, wait_until
from tests.utils.server import sse_events


@pytest.fixture(scope="module")
def client(server):
    with server.client() as client:
        yield client


def test_stream_follows_a_run_to_the_end_in_seq_order(client):
    run = create(client, steps=300)
    events = follow(client, run["id"])
    frames = [e for e in events if e["event"] == "frame"]
    statuses = [e["data"]["status"] for e in events if e["event"] == "status"]
    done = client.get(f"/api/runs/{run['id']}").json()
    assert done["status"] == "completed" and done["frame_count"] == 300
    assert [int(e["id"]) for e in frames] == list(range(300)), "in order, none missing or twice"
    assert [e["data"]["seq"] for e in frames] == list(range(300)), "event id = frame seq"
    assert events[-1]["event"] == "status" and statuses[-1] == "completed"
    assert "running" in statuses or statuses[0] == "queued"
    assert [e["data"] for e in frames] == stored_frames(client, run["id"])


def test_stream_resumes_from_last_event_id_with_exactly_the_missed_frames(client):
    run = create(client, steps=400)
    before = []
    with client.stream("GET", f"/api/runs/{run['id']}/events") as response:
        for event in sse_events(response):
            if event["event"] == "frame":
                before.append(json.loads(event["data"]))
                if len(before) == 40:
                    break  # drop the connection mid-run
    assert client.get(f"/api/runs/{run['id']}").json()["status"] == "running"
    after = follow(client, run["id"], **{"Last-Event-ID": str(before[-1]["seq"])})
    after_frames = [e["data"] for e in after if e["event"] == "frame"]
    assert after[-1]["data"]["status"] == "completed"
    assert before + after_frames == stored_frames(client, run["id"]), "exactly, once each"


def test_stream_of_an_ended_run_replays_from_the_store(client):
    run = wait_until(client, create(client, steps=50)["id"])
    events = follow(client, run["id"], **{"Last-Event-ID": "44"})
    assert [e["data"]["seq"] for e in events[:-1]] == [45, 46, 47, 48, 49]
    assert events[-1]["event"] == "status" and events[-1]["data"]["status"] == "completed"


def _stuck_reader(url: str, path: str) -> socket.socket:
    """A client that requests the stream and never reads: a tiny receive window, so the
    server's writes to it stall almost at once."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    sock.sendall(
        f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n\r\n".encode()
    )
    return sock


def _timed_run(client, server, stuck: int) -> tuple[float, float, int]:
    """(run duration, delay of a reading client's final status after the run ended, frames
    that reading client got) with `stuck` never-reading clients attached."""
    # Big frames (256 bins) so the stream is several MB: more than the socket buffers hold.
    run = create(client, steps=800, hist_bins=256, depth=3)
    sockets = [_stuck_reader(server.url, f"/api/runs/{run['id']}/events") for _ in range(stuck)]
    got: list = []
    reader = threading.Thread(target=lambda: got.extend(follow(client, run["id"])))
    reader.start()
    try:
        reader.join(timeout=180)
        arrived = time.time()
        done = client.get(f"/api/runs/{run['id']}").json()
    finally:
        for sock in sockets:
            sock.close()
    assert done["status"] == "completed" and not reader.is_alive()
    frames = sum(1 for e in got if e["event"] == "frame")
    return done["finished_at"] - done["started_at"], arrived - done["finished_at"], frames


def test_a_client_that_never_reads_slows_neither_the_run_nor_other_clients(client, server):
    alone, _, _ = _timed_run(client, server, stuck=0)
    with_stuck, lag, frames = _timed_run(client, server, stuck=3)
    print(f"run alone {alone:.2f}s, with 3 stuck clients {with_stuck:.2f}s, lag {lag:.2f}s")
    assert frames == 800, "the reading client got every frame"
    # Generous bounds for a shared 2-core box: a stalled client must not serialize anything.
    assert with_stuck < 2 * alone + 5, (alone, with_stuck)
    assert lag < 5, f"the reading client's final status came {lag:.1f}s after the run ended"
    assert client.get("/healthz").status_code == 200
