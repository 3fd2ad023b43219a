"""A server with a token, one job slot and a one-run queue: the token guards every /api route
and the stream; a full queue answers 429 with Retry-After; a queued run's stream keeps alive."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.utils.runs import SMALL, create, follow, wait_until
from tests.utils.server import LONG_RUN, LiveServer, sse_events

TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    env = {"NORMSCOPE_TOKEN": TOKEN, "NORMSCOPE_MAX_JOBS": "1", "NORMSCOPE_QUEUE_LENGTH": "1"}
    live = LiveServer(tmp_path_factory.mktemp("guarded"), env).start()
    yield live
    live.stop()
    assert not live.server_errors(), "\n".join(live.server_errors())


@pytest.fixture(scope="module")
def client(guarded):
    with guarded.client() as client:
        yield client


ROUTES = [
    ("GET", "/api/runs", None),
    ("GET", "/api/catalog", None),
    ("GET", "/api/jobs", None),
    ("POST", "/api/runs", {**SMALL, "steps": 10}),
    ("GET", "/api/runs/nope", None),
    ("GET", "/api/runs/nope/events", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
def test_api_needs_the_right_bearer_token(guarded, method, path, body):
    anonymous = httpx.request(method, guarded.url + path, json=body)
    assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"] == "Bearer"
    wrong = {"Authorization": "Bearer not-the-token"}
    assert httpx.request(method, guarded.url + path, json=body, headers=wrong).status_code == 401
    right = {"Authorization": f"Bearer {TOKEN}"}
    response = httpx.request(method, guarded.url + path, json=body, headers=right)
    assert response.status_code in (200, 201, 404), response.text  # past the guard


def test_health_needs_no_token(guarded):
    response = httpx.get(guarded.url + "/healthz")
    assert response.status_code == 200 and response.json()["auth"] is True


def test_stream_takes_the_token_as_header_or_query_and_refuses_without(client, guarded):
    run = wait_until(client, create(client, steps=30)["id"])
    url = f"{guarded.url}/api/runs/{run['id']}/events"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, params={"token": "wrong"}).status_code == 401
    # What a browser's EventSource can do: the token in the query string, no header.
    with httpx.Client(base_url=guarded.url, params={"token": TOKEN}) as browser:
        events = follow(browser, run["id"])
    assert len([e for e in events if e["event"] == "frame"]) == 30
    assert events[-1]["data"]["status"] == "completed"


def test_query_token_is_not_accepted_for_writes(guarded):
    response = httpx.post(f"{guarded.url}/api/runs", params={"token": TOKEN}, json=SMALL)
    assert response.status_code == 401


def test_full_queue_is_429_with_retry_after_and_a_queued_stream_keeps_alive(client, guarded):
    for status in ("queued", "running"):  # start from an idle executor
        for run in client.get("/api/runs", params={"status": status}).json()["data"]:
            wait_until(client, run["id"])
    running = create(client, steps=LONG_RUN)
    queued = create(client, steps=20)
    try:
        wait_until(client, running["id"], lambda status: status == "running")
        before = client.get("/api/runs").json()["count"]
        response = client.post("/api/runs", json=SMALL)
        assert response.status_code == 429
        assert int(response.headers["retry-after"]) > 0 and "queue" in response.json()["detail"]
        assert client.get("/api/runs").json()["count"] == before, "the refused run is not kept"

        seen: list = []
        started = time.monotonic()
        with client.stream("GET", f"/api/runs/{queued['id']}/events") as stream:
            for event in sse_events(stream):
                seen.append(event)
                if event["comment"] == "keep-alive":
                    break  # NORMSCOPE_KEEPALIVE_S=1 in tests
                assert time.monotonic() - started < 10, seen
        assert seen[0]["event"] == "status" and '"status":"queued"' in seen[0]["data"]

        response = client.post(f"/api/runs/{queued['id']}/cancel")
        assert response.status_code == 200 and response.json()["status"] == "cancelled"
        assert response.json()["frame_count"] == 0 and response.json()["started_at"] is None
        events = follow(client, queued["id"])
        assert [e["data"]["status"] for e in events] == ["cancelled"]
    finally:
        client.post(f"/api/runs/{running['id']}/cancel")
