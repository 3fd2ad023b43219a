"""Runs of a model of one's own (normcore.watch) against a real server: the client trains,
the server stores, streams and ends them."""

from __future__ import annotations

import json
import threading

import pytest

from normcore.client import ApiError, Client
from normcore.frames import to_json
from normcore.watch import Watch
from tests.utils.own_model import tapering_mlp
from tests.utils.runs import create, follow, stored_frames, wait_until

LAYERS = ["fc1", "fc2"]


@pytest.fixture(scope="module")
def client(server):
    with Client(server.url, token=server.token) as client:
        yield client


def local_frames(steps: int = 40, every: int = 2, bins: int = 64) -> list[dict]:
    own = tapering_mlp()
    watch = Watch(own.layers, activation="tanh", optimizer=own.opt, every=every, bins=bins)
    own.train(watch, steps)
    watch.close()
    return watch.frames


def new_run(client: Client, **spec) -> str:
    body = {"label": "mine", "activation": "tanh", "layers": LAYERS, **spec}
    return client._json("POST", "/api/runs/watched", json=body)["id"]


def post(client: Client, run_id: str, frames: list) -> object:
    return client._http.post(f"/api/runs/{run_id}/frames", json=frames)


def test_a_watched_model_trains_in_its_own_loop_and_the_server_streams_and_stores_it(client):
    own = tapering_mlp()
    with client.watch(
        own.layers, label="my MLP", activation="tanh", optimizer=own.opt, every=2, steps=300
    ) as watch:
        run_id = watch.run_id
        assert client.run(run_id)["status"] == "running"
        events: list = []
        reader = threading.Thread(target=lambda: events.extend(follow(client._http, run_id)))
        reader.start()  # a live viewer from the start
        own.train(watch, 300)
    reader.join(timeout=60)
    run = client.run(run_id)
    assert (run["status"], run["step"], run["steps"], run["frame_count"]) == (
        "completed",
        299,
        300,
        150,
    )
    assert run["label"] == "my MLP" and run["device"] == "cpu" and run["final"]["acc"] is not None
    assert run["config"] == {
        "model": "own",
        "activation": "tanh",
        "layers": LAYERS,
        "probe_every": 2,
        "steps": 300,
    }
    frames = stored_frames(client._http, run_id)
    assert [f["seq"] for f in frames] == list(range(150)) and frames[-1]["status"] == "completed"
    assert [[layer["name"] for layer in f["layers"]] for f in frames] == [LAYERS] * 150
    streamed = [e["data"] for e in events if e["event"] == "frame"]
    assert streamed == frames and events[-1]["data"]["status"] == "completed"


def test_stored_frames_are_the_sent_ones_and_a_resent_batch_is_stored_once(client):
    frames = local_frames()
    run_id = new_run(client, every=2)
    client.append_frames(run_id, frames[:7])
    client.append_frames(run_id, frames[:12], max_bytes=3000)  # a retry overlapping: 2 requests
    assert client.run(run_id)["frame_count"] == 12
    run = client.append_frames(run_id, frames[12:])
    assert run["status"] == "completed" and run["frame_count"] == len(frames) == 20
    assert stored_frames(client._http, run_id) == [json.loads(to_json(f)) for f in frames]
    response = post(client, run_id, frames[-1:])  # a retry after a lost answer: no news
    assert response.status_code == 200 and response.json()["frame_count"] == 20
    response = post(client, run_id, [{**frames[-1], "seq": 20}])
    assert response.status_code == 409 and "has ended: completed" in response.json()["detail"]


@pytest.mark.parametrize(
    ("change", "loc", "words"),
    [
        (lambda fs: fs[1:], ["body", "0", "seq"], "seq 1 does not follow the stored frames"),
        (
            lambda fs: [{**fs[0], "status": "completed"}, fs[1]],
            ["body", "0", "status"],
            "must be the run's last",
        ),
        (
            lambda fs: [{**fs[0], "layers": [{**fs[0]["layers"][0], "name": "fc9"}]}],
            ["body", "0", "layers"],
            "layers fc9: this run's are fc1, fc2, in that order",
        ),
        (
            lambda fs: [{**fs[0], "layers": fs[0]["layers"][::-1]}],
            ["body", "0", "layers"],
            "layers fc2, fc1: this run's are fc1, fc2",
        ),
        (
            lambda fs: [
                {
                    **fs[0],
                    "layers": [
                        {k: v for k, v in layer.items() if k != "hist"} for layer in fs[0]["layers"]
                    ],
                }
            ],
            ["body", 0, "layers", 0, "hist"],
            "required",
        ),
        (lambda fs: [{**fs[0], "step": 2**63}], ["body", 0, "step"], "less than or equal"),
        (lambda fs: [{**fs[0], "loss": "low"}], ["body", 0, "loss"], "valid number"),
        (lambda fs: [{**fs[0], "layers": []}], ["body", 0, "layers"], "at least 1"),
        (lambda fs: [{**fs[0], "extra": 1}], ["body", 0, "extra"], "not permitted"),
        (lambda fs: [], ["body"], "at least 1"),
    ],
)
def test_bad_frames_are_422_naming_the_field_and_store_nothing(client, change, loc, words):
    run_id = new_run(client)
    response = post(client, run_id, change(local_frames(steps=4)))
    assert response.status_code == 422, response.text
    error = response.json()["detail"][0]  # (the first, where several layers share a fault)
    assert error["loc"] == loc and words in error["msg"], error
    assert client.run(run_id)["frame_count"] == 0


def test_non_finite_numbers_in_the_raw_json_are_422(client):
    run_id = new_run(client)
    text = to_json(local_frames(steps=1)[0])
    lo = text.index('"lo":') + len('"lo":')
    body = "[" + text[:lo] + "NaN" + text[text.index(",", lo) :] + "]"  # Python's json reads it
    response = client._http.post(
        f"/api/runs/{run_id}/frames", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", 0, "layers", 0, "hist", "lo"]


def test_a_watched_run_takes_no_frames_where_it_should_not(client):
    frames = local_frames(steps=2)
    response = post(client, "no-such-run", frames)
    assert response.status_code == 404 and "no-such-run" in response.json()["detail"]
    trained = create(client._http, steps=5)  # the server trains it: its worker sends frames
    response = post(client, trained["id"], frames)
    assert response.status_code == 409 and "trained by this server" in response.json()["detail"]
    wait_until(client._http, trained["id"])
    response = client._http.post(
        "/api/runs/watched", json={"label": "x", "activation": "relu6", "layers": ["a"]}
    )
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == [
        "body",
        "activation",
    ]


def test_cancel_in_the_dashboard_stops_the_loop_and_a_loop_that_raises_ends_cancelled(client):
    own = tapering_mlp()
    watch = client.watch(own.layers, label="stopped", activation="tanh", optimizer=own.opt)

    def cancel_at_200(step: int) -> None:  # what the dashboard's Cancel button does
        if step == 200:
            client.cancel(watch.run_id)

    with pytest.raises(ApiError) as caught, watch:
        own.train(watch, 100_000, on_step=cancel_at_200)
    assert caught.value.status == 409 and "has ended: cancelled" in str(caught.value.detail)
    run = client.run(watch.run_id)
    assert run["status"] == "cancelled" and run["frame_count"] >= 1
    assert stored_frames(client._http, watch.run_id)[-1]["status"] == "running"  # kept

    own = tapering_mlp()
    watch = client.watch(own.layers, label="crashed", activation="tanh", optimizer=own.opt)
    with pytest.raises(ZeroDivisionError), watch:
        own.train(watch, 10, on_step=lambda step: step == 10 and 1 / 0)
    run = client.run(watch.run_id)
    assert run["status"] == "cancelled" and run["frame_count"] == 10


def test_frames_a_send_could_not_deliver_go_with_the_next(client, monkeypatch):
    """A busy or failing server (here: one 503 answer) loses nothing: the frames wait and go
    first with the next batch."""
    own = tapering_mlp()
    watch = client.watch(own.layers, label="hiccup", activation="tanh", optimizer=own.opt)
    real, calls = client.append_frames, []

    def flaky(run_id, frames, **kw):
        calls.append(len(frames))
        if len(calls) == 1:
            raise ApiError(503, "the server is busy", "")
        return real(run_id, frames, **kw)

    monkeypatch.setattr(client, "append_frames", flaky)
    with pytest.warns(UserWarning, match="frames wait for the next send"), watch:
        own.train(watch, 100)  # 100 probed steps: several flushes
    monkeypatch.undo()
    run = client.run(watch.run_id)
    assert run["status"] == "completed" and run["frame_count"] == 100
    assert calls[1] > calls[0], "the undelivered frames went again, first"
    assert [f["step"] for f in stored_frames(client._http, watch.run_id)] == list(range(1, 101))


def test_a_watched_run_outlives_a_server_restart(start_server, tmp_path):
    first = start_server(tmp_path / "data")
    frames = local_frames(steps=6, every=1)
    with Client(first.url) as ns:
        run_id = new_run(ns)
        ns.append_frames(run_id, frames[:3])
    first.kill()
    second = start_server(tmp_path / "data")  # the same data dir: its loop goes on
    with Client(second.url) as ns:
        assert ns.run(run_id)["status"] == "running"
        run = ns.append_frames(run_id, frames[3:])
    assert run["status"] == "completed" and run["frame_count"] == 6


def test_a_frame_above_the_body_limit_says_what_to_change_and_ends_the_run(start_server):
    small = start_server(NORMSCOPE_MAX_BODY_BYTES="2048")
    own = tapering_mlp()
    with Client(small.url) as ns:
        watch = ns.watch(
            own.layers, label="big", activation="tanh", optimizer=own.opt, bins=512
        )  # two layers of 512 bins: a frame over 2 KB
        with pytest.raises(ApiError) as caught, watch:
            own.train(watch, 100)
        run = ns.run(watch.run_id)
    assert caught.value.status == 413 and "NORMSCOPE_MAX_BODY_BYTES" in str(caught.value)
    assert run["status"] == "cancelled" and run["frame_count"] == 0


def test_batches_above_a_low_body_limit_go_in_halves(start_server):
    small = start_server(NORMSCOPE_MAX_BODY_BYTES="4096")  # ~3 frames of 64 bins a request
    own = tapering_mlp()
    with Client(small.url) as ns:
        with ns.watch(own.layers, label="halves", activation="tanh", optimizer=own.opt) as watch:
            own.train(watch, 50)
        run = ns.run(watch.run_id)
    assert run["status"] == "completed" and run["frame_count"] == 50
