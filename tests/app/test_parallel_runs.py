"""Runs side by side on a CPU: one core each for small runs, queued ones take a freed core,
a run given more threads holds more cores, and its worker's torch really uses them.

Every server here is private (start_server): the checks read /api/jobs, which a shared
server's other runs would change. No check rests on how fast the machine trains: runs that
must still be running are LONG_RUN steps long and are cancelled.
"""

from __future__ import annotations

import time
from typing import Any

import httpx

from app.jobs.threads import available_cores, run_cores
from tests.utils.runs import create, wait_until
from tests.utils.server import LONG_RUN


def jobs_when(client: httpx.Client, ready: Any, timeout: float = 600) -> dict[str, Any]:
    """Poll /api/jobs until ready(jobs)."""
    deadline = time.monotonic() + timeout
    while True:
        response = client.get("/api/jobs")
        assert response.status_code == 200, response.text
        jobs = response.json()
        if ready(jobs):
            return jobs
        assert time.monotonic() < deadline, f"/api/jobs never got there: {jobs}"
        time.sleep(0.05)


def all_started(jobs: dict[str, Any]) -> bool:
    return all(job["torch_threads"] is not None for job in jobs["data"])


def test_by_default_a_cpu_server_has_a_slot_per_core_it_may_use(start_server):
    live = start_server(NORMSCOPE_MAX_JOBS=None)  # the server's own default
    with live.client() as client:
        jobs = client.get("/api/jobs").json()
    if jobs["device"] == "cpu":
        assert jobs["slots"] == run_cores(available_cores())  # the server inherits our cores


def test_two_small_runs_on_two_cores_train_at_once_and_cancelling_one_spares_the_other(
    start_server,
):
    live = start_server(NORMSCOPE_MAX_JOBS="2")
    with live.client() as client:
        a = create(client, steps=LONG_RUN, device="cpu")
        b = create(client, steps=LONG_RUN, device="cpu")
        # Neither run ends by itself: frames from both mean both hold a slot at once.
        wait_until(client, a["id"], 1, timeout=600)
        wait_until(client, b["id"], 1, timeout=600)
        jobs = jobs_when(client, lambda j: j["count"] == 2 and all_started(j))
        assert jobs["queued"] == []
        assert jobs["slots_used"] == 2
        assert sorted(slot for job in jobs["data"] for slot in job["slots"]) == [0, 1]
        for job in jobs["data"]:
            assert (job["threads"], job["torch_threads"]) == (1, 1)  # a small run: one each

        response = client.post(f"/api/runs/{a['id']}/cancel")
        assert response.status_code == 200, response.text
        assert wait_until(client, a["id"])["status"] == "cancelled"
        before = client.get(f"/api/runs/{b['id']}").json()
        assert before["status"] == "running"
        after = wait_until(client, b["id"], before["frame_count"] + 1)  # it keeps training
        assert after["status"] == "running"
        assert [j["run_id"] for j in client.get("/api/jobs").json()["data"]] == [b["id"]]
        assert client.post(f"/api/runs/{b['id']}/cancel").status_code == 200


def test_two_runs_posted_together_both_complete_side_by_side(start_server):
    live = start_server(NORMSCOPE_MAX_JOBS="2")
    with live.client() as client:
        a = create(client, steps=400, device="cpu")
        b = create(client, steps=400, device="cpu")
        ends = [wait_until(client, run["id"], timeout=600) for run in (a, b)]
    assert [run["status"] for run in ends] == ["completed", "completed"]
    first, second = ends
    # Started before the other ended, both ways: they did not wait for each other.
    assert second["started_at"] < first["finished_at"]
    assert first["started_at"] < second["finished_at"]


def test_a_run_given_more_threads_holds_more_cores_and_the_next_waits_for_them(start_server):
    live = start_server(NORMSCOPE_MAX_JOBS="2", NORMSCOPE_WORKER_THREADS="2")
    with live.client() as client:
        a = create(client, steps=LONG_RUN, device="cpu")
        jobs = jobs_when(client, lambda j: j["count"] == 1 and all_started(j))
        (job,) = jobs["data"]
        assert (job["threads"], job["torch_threads"], job["slots"]) == (2, 2, [0, 1])
        b = create(client, steps=LONG_RUN, device="cpu")
        assert client.get("/api/jobs").json()["queued"] == [b["id"]]  # no core is free
        assert client.get(f"/api/runs/{b['id']}").json()["status"] == "queued"

        assert client.post(f"/api/runs/{a['id']}/cancel").status_code == 200
        wait_until(client, b["id"], 1, timeout=600)  # the freed cores went to the queued run
        jobs = jobs_when(client, lambda j: j["count"] == 1 and all_started(j))
        assert [(j["run_id"], j["torch_threads"]) for j in jobs["data"]] == [(b["id"], 2)]
        assert client.post(f"/api/runs/{b['id']}/cancel").status_code == 200


def test_a_run_asking_for_threads_holds_that_many_cores_beside_policy_runs(start_server):
    live = start_server(NORMSCOPE_MAX_JOBS="2")  # the thread policy: one thread a small run
    with live.client() as client:
        a = create(client, steps=LONG_RUN, device="cpu", threads=2)
        jobs = jobs_when(client, lambda j: j["count"] == 1 and all_started(j))
        (job,) = jobs["data"]
        assert (job["run_id"], job["threads"], job["torch_threads"]) == (a["id"], 2, 2)
        assert job["slots"] == [0, 1]
        b = create(client, steps=LONG_RUN, device="cpu")  # asks nothing: waits for one core
        assert client.get("/api/jobs").json()["queued"] == [b["id"]]
        assert client.post(f"/api/runs/{a['id']}/cancel").status_code == 200
        jobs = jobs_when(client, lambda j: j["count"] == 1 and all_started(j))
        assert [(j["run_id"], j["threads"], j["torch_threads"]) for j in jobs["data"]] == [
            (b["id"], 1, 1)
        ]
        assert client.post(f"/api/runs/{b['id']}/cancel").status_code == 200
        # asking for more threads than the server has cores is answered, not queued forever
        c = create(client, steps=LONG_RUN, device="cpu", threads=64)
        jobs = jobs_when(client, lambda j: j["count"] == 1 and all_started(j))
        assert [(j["run_id"], j["threads"]) for j in jobs["data"]] == [(c["id"], 2)]
        assert client.post(f"/api/runs/{c['id']}/cancel").status_code == 200
