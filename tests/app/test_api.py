"""The REST API against a real server: bad input is a 4xx naming the field, never a 500;
unknown ids are 404s; runs complete and can be read, filtered, exported, cancelled, deleted."""

from __future__ import annotations

import csv
import io
import json
import time

import pytest

from app.api.catalog import PRESETS
from normcore.config import RunConfig
from tests.app.conftest import LONG_RUN, create, stored_frames, wait_until


@pytest.fixture(scope="module")
def client(server):
    with server.client() as client:
        yield client


@pytest.fixture(scope="module")
def done_run(client):
    """One completed small run, shared by the read-only tests of this module."""
    run = create(client, steps=120, eval_every=40)
    return wait_until(client, run["id"])


def _field_error(response, *loc):
    assert 400 <= response.status_code < 500, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, list), detail
    assert any(tuple(d["loc"][-len(loc) :]) == loc for d in detail), detail
    return " ".join(d["msg"] for d in detail)


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"norm": "bn2"}, "norm", "unknown"),
        ({"norm": "batch", "batch_size": 1}, "batch_size", "variance"),
        ({"lr": 0}, "lr", "greater than"),
        ({"lr": -1}, "lr", "greater than"),
        ({"steps": LONG_RUN + 1}, "steps", "limit"),  # the server's limit, below RunConfig's
        ({"width": 1025}, "width", "limit"),
        ({"batch_size": 1025}, "batch_size", "limit"),
        ({"depth": 0}, "depth", "greater than"),
        ({"dataset": "mnist-ish"}, "dataset", "unknown"),
        ({"steps": "many"}, "steps", "integer"),
        ({"steps": True}, "steps", "not true"),  # JSON's true is not 1
        ({"lr": False}, "lr", "not false"),
        ({"clip": True}, "clip", "not true"),
        ({"colour": "red"}, "colour", "Extra inputs"),
        ({"norm": "instance", "model": "mlp"}, "norm", "positions"),
    ],
)
def test_create_run_rejects_invalid_config_naming_the_field(client, body, field, words):
    before = client.get("/api/runs").json()["count"]
    response = client.post("/api/runs", json=body)
    assert response.status_code == 422
    assert words in _field_error(response, field)
    assert client.get("/api/runs").json()["count"] == before, "nothing was created"


@pytest.mark.parametrize("payload", ["{not json", "[1, 2]", '"a string"', ""])
def test_create_run_rejects_malformed_bodies(client, payload):
    response = client.post(
        "/api/runs", content=payload, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][0] == "body"


@pytest.mark.parametrize(
    ("raw", "field", "echoed"),
    [
        ('{"lr": NaN}', "lr", "nan"),  # Python's json parses these; strict JSON cannot echo them
        ('{"lr": Infinity}', "lr", "inf"),
        ('{"clip": -Infinity}', "clip", "-inf"),
        ('{"norm": "\\ud800"}', "norm", "\\ud800"),  # a lone surrogate: not encodable as UTF-8
    ],
)
def test_create_run_rejects_unencodable_values_naming_the_field(client, raw, field, echoed):
    response = client.post("/api/runs", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    _field_error(response, field)
    assert response.json()["detail"][0]["input"] == echoed


def test_create_run_rejects_a_body_over_the_size_limit(client):
    body = json.dumps({"norm": "layer", "padding": "x" * 70_000})  # limit: 64 KiB
    response = client.post("/api/runs", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 413


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
    _field_error(response, field)


@pytest.mark.parametrize("last_event_id", ["abc", "1e3", str(2**64)])
def test_invalid_last_event_id_is_422(client, done_run, last_event_id):
    response = client.get(
        f"/api/runs/{done_run['id']}/events", headers={"Last-Event-ID": last_event_id}
    )
    assert response.status_code == 422
    _field_error(response, "last-event-id")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/runs/nope"),
        ("POST", "/api/runs/nope/cancel"),
        ("DELETE", "/api/runs/nope"),
        ("GET", "/api/runs/nope/frames"),
        ("GET", "/api/runs/nope/events"),
        ("GET", "/api/runs/nope/export"),
    ],
)
def test_unknown_run_is_404_naming_the_id(client, method, path):
    response = client.request(method, path)
    assert response.status_code == 404
    assert "'nope'" in response.json()["detail"]


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
