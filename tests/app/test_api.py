"""The REST API against a real server: invalid queries of stored runs are 4xx naming the
parameter; runs complete and can be read, filtered, exported, cancelled, deleted. Bad bodies and
unknown ids are tested in-process (test_api_validation.py)."""

from __future__ import annotations

import csv
import io
import json
import time

import pytest

from app.api.catalog import PRESETS
from normcore.config import RunConfig
from tests.utils.runs import create, field_error, stored_frames, wait_until
from tests.utils.server import LONG_RUN


@pytest.fixture(scope="module")
def client(server):
    with server.client() as client:
        yield client


@pytest.fixture(scope="module")
def done_run(client):
    """One completed small run, shared by the read-only tests of this module."""
    run = create(client, steps=120, eval_every=40)
    return wait_until(client, run["id"])


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/api/runs", {"status": "sleeping"}, "status"),
        ("/api/runs", {"limit": 0}, "limit"),
        ("/api/runs", {"offset": -1}, "offset"),
        ("/api/runs", {"offset": 2**64}, "offset"),  # past SQLite's 64-bit integers
        ("/api/runs/{id}/frames", {"max_points": 1}, "max_points"),
        ("/api/runs/{id}/frames", {"since_seq": -1}, "since_seq"),
        ("/api/runs/{id}/frames", {"since_seq": "x"}, "since_seq"),
        ("/api/runs/{id}/frames", {"layers": "h1,nope"}, "layers"),
        ("/api/runs/{id}/export", {"format": "xml"}, "format"),
    ],
)
def test_invalid_query_parameters_are_422_naming_the_parameter(
    client, done_run, path, params, field
):
    response = client.get(path.format(id=done_run["id"]), params=params)
    assert response.status_code == 422
    field_error(response, field)


@pytest.mark.parametrize("last_event_id", ["abc", "1e3", str(2**64)])
def test_invalid_last_event_id_is_422(client, done_run, last_event_id):
    response = client.get(
        f"/api/runs/{done_run['id']}/events", headers={"Last-Event-ID": last_event_id}
    )
    assert response.status_code == 422
    field_error(response, "last-event-id")


def test_health_and_vendored_plotly(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok" and response.json()["device"] in ("cpu", "cuda")
    response = client.get("/vendor/plotly.min.js")
    assert response.status_code == 200 and "javascript" in response.headers["content-type"]
    assert len(response.content) > 1_000_000
    response = client.get("/openapi.json")
    assert response.status_code == 200 and "/api/runs/{run_id}/events" in response.json()["paths"]


def test_catalog_lists_choices_limits_and_valid_presets(client):
    response = client.get("/api/catalog")
    assert response.status_code == 200
    catalog = response.json()
    assert [n["name"] for n in catalog["norms"]][:3] == ["none", "batch", "layer"]
    assert all("suits_small_batch" in n["properties"] for n in catalog["norms"])
    assert catalog["limits"] == {"steps": LONG_RUN, "width": 1024, "depth": 32, "batch_size": 1024}
    assert catalog["defaults"] == RunConfig().model_dump()
    assert catalog["statuses"] == {
        "active": ["queued", "running"],
        "terminal": ["completed", "diverged", "failed", "cancelled", "interrupted"],
    }  # the dashboard reads these
    assert len(catalog["presets"]) >= 4
    titles = " | ".join(p["title"] for p in catalog["presets"])
    for words in ("Figure 1", "saturation", "batch size 2", "one-class"):
        assert words in titles
    for preset in PRESETS:  # each preset run is a valid config within the limits
        for partial in preset.runs:
            config = RunConfig(**partial)
            assert config.steps <= 20000 and config.width <= 1024


def test_completed_run_reads_back_with_metrics(client, done_run):
    assert done_run["status"] == "completed" and done_run["error"] is None
    assert done_run["step"] == done_run["steps"] == 120
    assert done_run["frame_count"] == 120 and done_run["device"] == "cpu"
    assert done_run["final"]["loss"] is not None and done_run["final"]["eval_acc"] is not None
    assert done_run["started_at"] <= done_run["finished_at"]
    listed = client.get("/api/runs", params={"status": "completed"}).json()
    assert done_run["id"] in [r["id"] for r in listed["data"]]
    assert listed["count"] >= len(listed["data"])
    # one run names its layers (a view loads the top one beside the overview); a list does not
    one = client.get(f"/api/runs/{done_run['id']}").json()
    depth = done_run["config"]["depth"]
    assert one["layers"] == [f"h{i}" for i in range(1, depth + 1)]
    assert all(r["layers"] is None for r in listed["data"])


def test_frames_are_downsampled_keeping_first_last_and_evaluations(client, done_run):
    response = client.get(f"/api/runs/{done_run['id']}/frames", params={"max_points": 10})
    assert response.status_code == 200
    page = response.json()
    seqs = [f["seq"] for f in page["data"]]
    every = client.get(f"/api/runs/{done_run['id']}/frames").json()["data"]
    evals = [f["seq"] for f in every if f["eval"]]
    assert set(evals) <= set(seqs), "no budget drops an evaluation"
    assert page["count"] == len(seqs) and 10 <= len(seqs) <= 10 + len(evals)
    assert page["total"] == 120 and page["dropped"] == 120 - len(seqs)
    assert (seqs[0], seqs[-1]) == (0, 119) == (page["first_seq"], page["last_seq"])
    page = client.get(f"/api/runs/{done_run['id']}/frames", params={"since_seq": 100}).json()
    assert [f["seq"] for f in page["data"]] == list(range(100, 120)) and page["dropped"] == 0


def test_frames_filtered_to_named_layers(client, done_run):
    response = client.get(f"/api/runs/{done_run['id']}/frames", params={"layers": "h2"})
    assert response.status_code == 200
    frames = response.json()["data"]
    assert frames and all([layer["name"] for layer in f["layers"]] == ["h2"] for f in frames)


def test_export_jsonl_and_csv_hold_every_frame(client, done_run):
    frames = stored_frames(client, done_run["id"])
    response = client.get(f"/api/runs/{done_run['id']}/export", params={"format": "jsonl"})
    assert response.status_code == 200
    assert "attachment" in response.headers["content-disposition"]
    assert [json.loads(line) for line in response.text.splitlines()] == frames
    response = client.get(f"/api/runs/{done_run['id']}/export", params={"format": "csv"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert len(rows) == 120 * 2  # one row per frame and hidden layer
    assert rows[-1]["seq"] == "119" and rows[-1]["layer"] == "h2" and float(rows[-1]["loss"]) > 0


def test_cancel_stops_a_running_run_and_a_second_cancel_conflicts(client):
    run = create(client, steps=LONG_RUN)
    wait_until(client, run["id"], 1)  # running, frames flowing
    started = time.monotonic()
    response = client.post(f"/api/runs/{run['id']}/cancel")
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled", response.json()
    assert time.monotonic() - started < 3  # the API promises 1 s; generous for a busy box
    assert response.json()["step"] < LONG_RUN and response.json()["frame_count"] > 0
    again = client.post(f"/api/runs/{run['id']}/cancel")
    assert again.status_code == 409 and "cancelled" in again.json()["detail"]


def test_delete_removes_the_run_and_its_frames(client):
    run = wait_until(client, create(client, steps=20)["id"])
    response = client.delete(f"/api/runs/{run['id']}")
    assert response.status_code == 204
    assert client.get(f"/api/runs/{run['id']}").status_code == 404
    assert client.get(f"/api/runs/{run['id']}/frames").status_code == 404


def test_jobs_show_the_running_worker(client):
    run = create(client, steps=LONG_RUN)
    try:
        wait_until(client, run["id"], 1)
        response = client.get("/api/jobs")
        assert response.status_code == 200
        jobs = {job["run_id"]: job for job in response.json()["data"]}
        assert jobs[run["id"]]["pid"] > 0 and response.json()["slots"] == 2
    finally:
        client.post(f"/api/runs/{run['id']}/cancel")


def test_dashboard_is_served_at_the_root_and_unknown_api_paths_stay_404(client):
    response = client.get("/", headers={"Accept": "text/html"})
    assert response.status_code == 200 and "text/html" in response.headers["content-type"]
    assert "/vendor/plotly.min.js" in response.text or "<script" in response.text
    response = client.get("/api/no-such-thing", headers={"Accept": "text/html"})
    assert response.status_code == 404 and response.headers["content-type"] == "application/json"
