"""Sweeps on a real server: cells validated up front, run as slots free, summarised over seeds;
cancel, kill-and-resume, delete, the live event stream and the CSV summary."""

from __future__ import annotations

import csv
import io
import json
import statistics
import time
from typing import Any

import httpx
import pytest

from tests.utils.runs import SMALL, stored_frames
from tests.utils.server import LONG_RUN, sse_events

QUICK = {**SMALL, "steps": 20, "eval_every": 20, "probe_every": 5}


def post_sweep(client: httpx.Client, **body: Any) -> dict[str, Any]:
    response = client.post("/api/sweeps", json={"base": QUICK, **body})
    assert response.status_code == 201, response.text
    return response.json()


def wait_sweep(
    client: httpx.Client,
    sweep_id: str,
    done=lambda s: s["status"] not in ("queued", "running"),
    timeout: float = 300,
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        sweep = client.get(f"/api/sweeps/{sweep_id}").json()
        if done(sweep):
            return sweep
        assert time.monotonic() < deadline, f"sweep {sweep_id} stuck: {sweep['status']}"
        time.sleep(0.1)


def test_sweep_summary_is_mean_and_std_of_its_stored_runs(server):
    with server.client() as client:
        sweep = post_sweep(client, grid={"norm": ["none", "batch"], "batch_size": [8, 32]}, seeds=2)
        assert sweep["cells_total"] == 8 and len({c["run_id"] for c in sweep["cells"]}) == 8
        sweep = wait_sweep(client, sweep["id"])
        assert sweep["status"] == "completed" and sweep["cells_done"] == 8
        by_point: dict[int, list[float]] = {}
        for cell in sweep["cells"]:
            run = client.get(f"/api/runs/{cell['run_id']}").json()
            assert run["config"]["seed"] == cell["seed"] and run["status"] == "completed"
            assert run["config"]["norm"] == cell["values"]["norm"]
            assert run["config"]["batch_size"] == cell["values"]["batch_size"]
            evals = [f["eval"]["acc"] for f in stored_frames(client, cell["run_id"]) if f["eval"]]
            assert cell["metric"] == evals[-1]
            by_point.setdefault(cell["point"], []).append(evals[-1])
        for row in sweep["summary"]:
            values = by_point[row["point"]]
            assert row["n"] == 2 and row["per_seed"] == values
            assert row["mean"] == pytest.approx(statistics.fmean(values))
            assert row["std"] == pytest.approx(statistics.stdev(values))
        table = list(
            csv.DictReader(io.StringIO(client.get(f"/api/sweeps/{sweep['id']}/summary.csv").text))
        )
        assert [(r["norm"], r["batch_size"]) for r in table] == [
            ("none", "8"),
            ("none", "32"),
            ("batch", "8"),
            ("batch", "32"),
        ]
        assert float(table[3]["eval_acc_mean"]) == pytest.approx(sweep["summary"][3]["mean"])
        listed = client.get("/api/sweeps").json()
        assert sweep["id"] in [s["id"] for s in listed["data"]] and listed["count"] >= 1


def test_invalid_cell_is_a_422_naming_cell_and_field(server):
    with server.client() as client:
        body = {"base": QUICK, "grid": {"norm": ["layer", "batch"], "batch_size": [1, 8]}}
        response = client.post("/api/sweeps", json=body)
        assert response.status_code == 422
        detail = response.json()["detail"][0]
        assert detail["loc"] == ["body", "grid", "batch_size"]
        assert "cell 2 (norm='batch', batch_size=1)" in detail["msg"]
        assert "skip_invalid" in detail["msg"]
        assert client.get("/api/sweeps").json()["count"] == len(
            client.get("/api/sweeps").json()["data"]
        )
        sweep = post_sweep(client, grid=body["grid"], skip_invalid=True)
        assert [(s["point"], s["field"]) for s in sweep["skipped"]] == [(2, "batch_size")]
        assert sorted({c["point"] for c in sweep["cells"]}) == [0, 1, 3]
        client.post(f"/api/sweeps/{sweep['id']}/cancel")


@pytest.mark.parametrize(
    ("body", "loc", "needle"),
    [
        ({"grid": {"nrom": ["batch"]}}, ["body", "grid"], "grid field 'nrom' is unknown"),
        ({"grid": {"norm": ["batch"]}, "metric": "acc"}, ["body", "metric"], "metric 'acc'"),
        ({"grid": {"norm": ["batch"]}, "base": {"depth": -1}}, ["body", "base"], "depth"),
        ({"grid": {"depth": list(range(1, 33))}, "seeds": 40}, ["body", "grid"], "1280 cells"),
        ({"grid": {"steps": [LONG_RUN + 1]}}, ["body", "steps"], "limit"),
        ({"grid": {}}, ["body", "grid"], ""),
        ({"grid": {"norm": "batch"}}, ["body", "grid", "norm"], ""),
    ],
)
def test_bad_sweeps_are_422s_that_say_why(server, body, loc, needle):
    with server.client() as client:
        response = client.post("/api/sweeps", json={"base": QUICK, **body})
    assert response.status_code == 422, response.text
    detail = response.json()["detail"][0]
    assert detail["loc"][: len(loc)] == loc and needle in detail["msg"]


def test_unknown_sweep_is_a_404(server):
    with server.client() as client:
        for method, path in [
            ("GET", ""),
            ("POST", "/cancel"),
            ("POST", "/resume"),
            ("DELETE", ""),
            ("GET", "/events"),
            ("GET", "/summary.csv"),
        ]:
            response = client.request(method, f"/api/sweeps/nosuch{path}")
            assert response.status_code == 404, (method, path)
            assert "sweep 'nosuch' not found" in response.text


def test_cancel_stops_running_and_queued_cells(start_server):
    live = start_server(NORMSCOPE_MAX_JOBS="1", NORMSCOPE_QUEUE_LENGTH="1")
    with live.client() as client:
        sweep = post_sweep(
            client, base={**QUICK, "steps": LONG_RUN}, grid={"width": [8, 16, 24, 32]}
        )
        wait_sweep(client, sweep["id"], lambda s: any(c["status"] == "running" for c in s["cells"]))
        cancelled = client.post(f"/api/sweeps/{sweep['id']}/cancel")
        assert cancelled.status_code == 200
        sweep = wait_sweep(client, sweep["id"])
        assert sweep["status"] == "cancelled"
        assert {c["status"] for c in sweep["cells"]} == {"cancelled"}
        assert client.get("/api/jobs").json()["count"] == 0
        again = client.post(f"/api/sweeps/{sweep['id']}/cancel")
        assert again.status_code == 409 and "already ended: cancelled" in again.text


def test_resume_after_a_server_kill_runs_only_the_missing_cells(start_server, tmp_path):
    live = start_server(tmp_path / "data", NORMSCOPE_MAX_JOBS="1")
    with live.client() as client:
        sweep = post_sweep(client, grid={"steps": [20, LONG_RUN]})
        short, long = sweep["cells"]
        wait_sweep(
            client,
            sweep["id"],
            lambda s: s["cells"][0]["ended"] and s["cells"][1]["status"] == "running",
        )
    live.kill()
    live.start()
    with live.client() as client:
        sweep = client.get(f"/api/sweeps/{sweep['id']}").json()
        assert sweep["status"] == "interrupted"
        assert [c["status"] for c in sweep["cells"]] == ["completed", "interrupted"]
        resumed = client.post(f"/api/sweeps/{sweep['id']}/resume")
        assert resumed.status_code == 200, resumed.text
        cells = resumed.json()["cells"]
        assert cells[0]["run_id"] == short["run_id"]  # the completed cell is not run again
        assert cells[1]["run_id"] != long["run_id"]  # the interrupted one runs anew
        runs = client.get("/api/runs").json()["data"]
        assert sorted(r["id"] for r in runs) == sorted(
            [short["run_id"], long["run_id"], cells[1]["run_id"]]
        )
        assert {r["id"]: r["status"] for r in runs}[long["run_id"]] == "interrupted"  # kept
        busy = client.post(f"/api/sweeps/{sweep['id']}/resume")
        assert busy.status_code == 409 and "still running" in busy.text
        assert client.delete(f"/api/sweeps/{sweep['id']}").status_code == 204
        assert client.get("/api/runs").json()["count"] == 0  # every run of the sweep went with it
        assert client.get(f"/api/sweeps/{sweep['id']}").status_code == 404


def test_events_stream_each_cell_then_the_sweep(server):
    with server.client() as client:
        sweep = post_sweep(client, grid={"norm": ["none", "layer"]}, seeds=2)
        events = []
        with client.stream("GET", f"/api/sweeps/{sweep['id']}/events") as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            for event in sse_events(response):
                if event["event"]:
                    events.append((event["event"], json.loads(event["data"])))
                if event["event"] == "sweep":
                    break
    kinds = [kind for kind, _ in events]
    assert kinds == ["cell"] * 4 + ["sweep"]
    assert sorted((d["point"], d["seed"]) for _, d in events[:4]) == [
        (0, 0),
        (0, 1),
        (1, 0),
        (1, 1),
    ]
    assert all(d["status"] == "completed" and d["metric"] is not None for _, d in events[:4])
    assert events[-1][1]["status"] == "completed"
