"""The live stream (SSE) against a real server and real runs: order, completeness, resume,
and a client that never reads."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest

from tests.utils.runs import create, follow, stored_frames, wait_until
from tests.utils.server import LONG_RUN, sse_events


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
    order = ["queued", "running", "completed"]  # each once, in order (a fast run may end
    assert statuses == sorted(set(statuses), key=order.index), statuses  # before we connect)
    assert [e["data"] for e in frames] == stored_frames(client, run["id"])


def test_stream_resumes_from_last_event_id_with_exactly_the_missed_frames(client):
    run = create(client, steps=LONG_RUN)  # still running until this test cancels it
    url = f"/api/runs/{run['id']}/events"
    before: list = []
    with client.stream("GET", url) as response:
        for event in sse_events(response):
            if event["event"] == "frame":
                before.append(json.loads(event["data"]))
                if len(before) == 40:
                    break  # drop the connection mid-run
    wait_until(client, run["id"], len(before) + 40)  # frames go on while nobody listens
    assert client.get(f"/api/runs/{run['id']}").json()["status"] == "running"
    after: list = []
    with client.stream("GET", url, headers={"Last-Event-ID": str(before[-1]["seq"])}) as response:
        for event in sse_events(response):
            if event["event"] == "frame":
                after.append(json.loads(event["data"]))
                if len(after) == 80:  # the missed frames, then live ones: now end the run
                    assert client.post(f"/api/runs/{run['id']}/cancel").status_code == 200
            elif event["event"] == "status" and '"cancelled"' in event["data"]:
                break
    assert len(after) >= 80 and after[0]["seq"] == 40
    assert before + after == stored_frames(client, run["id"]), "exactly, once each"


def test_stream_of_an_ended_run_replays_from_the_store(client):
    run = wait_until(client, create(client, steps=50)["id"])
    events = follow(client, run["id"], **{"Last-Event-ID": "44"})
    assert [e["data"]["seq"] for e in events[:-1]] == [45, 46, 47, 48, 49]
    assert events[-1]["event"] == "status" and events[-1]["data"]["status"] == "completed"


def test_stream_starts_at_since_seq_and_last_event_id_wins_on_reconnect(client):
    run = wait_until(client, create(client, steps=50)["id"])
    path = f"/api/runs/{run['id']}/events"
    with client.stream("GET", path, params={"since_seq": 47}) as response:
        seqs = [json.loads(e["data"])["seq"] for e in sse_events(response) if e["event"] == "frame"]
    assert seqs == [47, 48, 49], "history the page already holds is not sent again"
    headers = {"Last-Event-ID": "48"}
    with client.stream("GET", path, params={"since_seq": 10}, headers=headers) as response:
        seqs = [json.loads(e["data"])["seq"] for e in sse_events(response) if e["event"] == "frame"]
    assert seqs == [49]


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


def _follow_timed(client, run_id: str, out: dict) -> None:
    out["events"] = follow(client, run_id)
    out["arrived"] = time.time()


def test_a_client_that_never_reads_slows_neither_the_run_nor_other_clients(client, server):
    # Two identical runs side by side (the test server has two job slots), so both see the
    # same machine load; one of them also has three clients that never read. Big frames
    # (256 bins, ~3 KB each) make each stream MBs: more than the socket buffers hold.
    runs = [create(client, steps=800, hist_bins=256, depth=3) for _ in range(2)]
    stuck = [_stuck_reader(server.url, f"/api/runs/{runs[1]['id']}/events") for _ in range(3)]
    results: list[dict] = [{}, {}]
    readers = [
        threading.Thread(target=_follow_timed, args=(client, run["id"], out))
        for run, out in zip(runs, results, strict=True)
    ]
    try:
        for reader in readers:
            reader.start()
        for reader in readers:
            reader.join(timeout=240)
    finally:
        for sock in stuck:
            sock.close()
    done = [client.get(f"/api/runs/{run['id']}").json() for run in runs]
    assert [d["status"] for d in done] == ["completed", "completed"]
    # training time, first frame to last: a worker's start-up (the second run gets the
    # younger warm worker) is not what the stuck clients could slow
    times = [[e["data"]["time"] for e in out["events"] if e["event"] == "frame"] for out in results]
    alone, with_stuck = (t[-1] - t[0] for t in times)
    lags = [out["arrived"] - d["finished_at"] for out, d in zip(results, done, strict=True)]
    print(f"run alone {alone:.2f}s, beside 3 stuck clients {with_stuck:.2f}s, lags {lags}")
    for out in results:
        assert sum(1 for e in out["events"] if e["event"] == "frame") == 800
    # Generous bounds for a shared 2-core box: a stalled client must not serialize anything.
    assert with_stuck < 1.5 * alone + 3, (alone, with_stuck)
    assert max(lags) < 5, f"a reading client's final status came {max(lags):.1f}s late"
    assert client.get("/healthz").status_code == 200
