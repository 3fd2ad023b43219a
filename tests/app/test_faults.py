"""Faults against real processes: a worker killed mid-run, the server killed mid-run, a run
that diverges. Each ends its run with an honest status and leaves the service working."""

from __future__ import annotations

import os
import signal

from tests.utils.runs import create, follow, stored_frames, wait_until
from tests.utils.server import LONG_RUN


def test_sigkill_of_the_worker_fails_the_run_and_the_server_carries_on(server):
    with server.client() as client:
        run = create(client, steps=LONG_RUN)
        wait_until(client, run["id"], 5)
        [job] = [j for j in client.get("/api/jobs").json()["data"] if j["run_id"] == run["id"]]
        os.kill(job["pid"], signal.SIGKILL)  # what the kernel's OOM killer does
        failed = wait_until(client, run["id"], timeout=30)
        assert failed["status"] == "failed"
        assert "SIGKILL" in failed["error"] and "out-of-memory" in failed["error"]
        assert len(stored_frames(client, run["id"])) == failed["frame_count"] >= 5  # kept
        assert client.get("/healthz").status_code == 200
        after = create(client, steps=50)
        assert wait_until(client, after["id"])["status"] == "completed"


def test_diverging_run_ends_diverged_with_its_frames_kept(server):
    with server.client() as client:
        run = create(client, lr=1e3, steps=500)
        events = follow(client, run["id"])
        done = client.get(f"/api/runs/{run['id']}").json()
    assert done["status"] == "diverged" and events[-1]["data"]["status"] == "diverged"
    frames = [e["data"] for e in events if e["event"] == "frame"]
    assert frames and frames[-1]["status"] == "diverged" and len(frames) == done["frame_count"]
    assert done["step"] < 500


def test_server_killed_mid_run_leaves_it_interrupted_with_frames_readable(start_server, tmp_path):
    first = start_server(tmp_path / "data")
    with first.client() as client:
        run = create(client, steps=LONG_RUN)
        wait_until(client, run["id"], 10)
    first.kill()
    second = start_server(tmp_path / "data")  # the same data dir
    with second.client() as client:
        again = client.get(f"/api/runs/{run['id']}").json()
        assert again["status"] == "interrupted" and "server stopped" in again["error"]
        frames = stored_frames(client, run["id"])
        assert len(frames) == again["frame_count"] >= 10
        assert [f["seq"] for f in frames] == list(range(len(frames)))
        events = follow(client, run["id"])  # the stream replays and ends
        assert events[-1]["data"]["status"] == "interrupted"
        assert len([e for e in events if e["event"] == "frame"]) == len(frames)
