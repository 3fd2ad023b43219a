"""GET /api/runs/{id}/series and the faithful /frames: every evaluation at any budget, a
single-step spike in the overview and in every zoom window, 422s that name what is wrong."""

from __future__ import annotations

import json
from typing import Any

import pytest

from app.services import runs as service
from app.store import Store
from tests.utils.synthetic import store_run

SPIKE_SEQ = 61_234
SPIKE = {"loss": 9.8765, "grad_norm": 123.45, "sat": 0.99871}


def series(store: Store, run_id: str, fields: str, **kw: Any) -> dict[str, Any]:
    args = {"layers": None, "from_step": 0, "to_step": 2**62, "points": 1000, **kw}
    return json.loads(service.series_page(store, run_id, fields.split(","), **args))


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Store:
    return Store(tmp_path_factory.mktemp("series") / "runs.db")


def test_every_evaluation_survives_any_budget(store):
    run = store_run(store, 20_500, layers=2, bins=16, eval_every=100)
    evals = 1 + 20_500 // 100  # step 1, every 100th step (the last, 20,500, is one)
    for points in (4, 5, 50, 1000, 20_000):
        got = series(store, run["id"], "loss,eval", points=points)
        assert len(got["eval"]["step"]) == evals, points
        assert got["eval"]["step"][:3] == [1, 100, 200] and got["eval"]["step"][-1] == 20_500
        assert len(got["run"]["loss"]["step"]) <= points + 6
    for max_points in (2, 10, 600):
        page = json.loads(service.frames_page(store, run["id"], 0, max_points, None))
        steps = [f["step"] for f in page["data"] if f["eval"]]
        assert len(steps) == evals, max_points
        assert page["data"][0]["seq"] == 0 and page["data"][-1]["status"] == "completed"


def _spike(frame: dict[str, Any]) -> None:
    if frame["seq"] == SPIKE_SEQ:
        frame["loss"] = SPIKE["loss"]
        frame["layers"][1]["grad_norm"] = SPIKE["grad_norm"]
        frame["layers"][0]["sat"] = SPIKE["sat"]


@pytest.mark.slow
def test_a_single_step_spike_is_in_the_overview_and_every_zoom_window(store):
    run = store_run(store, 100_000, layers=2, bins=16, edit=_spike)
    step = SPIKE_SEQ + 1
    windows = [
        (0, 2**62),
        (0, 100_000),
        (step, step),
        (step - 1, step + 1),
        (step - 5_000, step + 20_000),
        (50_000, 70_000),
        (step - 400, step + 3),
    ]
    for lo, hi in windows:
        got = series(store, run["id"], "loss,sat,grad_norm,max:sat", from_step=lo, to_step=hi)
        loss = dict(zip(got["run"]["loss"]["step"], got["run"]["loss"]["y"], strict=True))
        assert loss[step] == SPIKE["loss"], (lo, hi)
        h1, h2 = got["layer"]["h1"], got["layer"]["h2"]
        assert dict(zip(h1["sat"]["step"], h1["sat"]["y"], strict=True))[step] == SPIKE["sat"]
        grad = dict(zip(h2["grad_norm"]["step"], h2["grad_norm"]["y"], strict=True))
        assert grad[step] == SPIKE["grad_norm"]
        assert max(h1["max:sat"]) == SPIKE["sat"], "the overview's bucket keeps the spike"
        assert len(got["run"]["loss"]["step"]) <= 1000 + 6


def test_answers_bounded_by_one_seq_describe_the_same_frames(store):
    """The run view asks for the overview and a layer's detail in two requests; a live run
    stores frames between them. Bounded by one seq, both answers end at the same frame, in
    the sealed chunks and in the open tail alike."""
    run = store_run(store, 3000, layers=3, bins=16, eval_every=100)
    for bound in (0, 1023, 1024, 2500, 2999):
        overview = series(store, run["id"], "loss,eval,max:sat", to_seq=bound)
        detail = series(store, run["id"], "hist,p50", layers=["h3"], to_seq=bound)
        for answer in (overview, detail):
            assert answer["last"]["seq"] == bound and answer["count"] == bound + 1
        assert overview["heat"]["step"] == detail["heat"]["step"]
        assert detail["layer"]["h3"]["p50"]["step"][-1] == bound + 1  # step = seq + 1
    empty = series(store, run["id"], "loss,hist", to_seq=-1)
    assert empty["count"] == 0 and empty["last"] is None
    assert series(store, run["id"], "loss", to_seq=10**9)["last"]["seq"] == 2999


@pytest.fixture(scope="module")
def small_run(server) -> str:
    store = Store(server.data_dir / "runs.db")
    try:
        return store_run(store, 300, layers=3, bins=16, eval_every=50)["id"]
    finally:
        store.close()


def test_series_over_http_holds_just_the_requested_fields(server, small_run):
    with server.client() as client:
        got = client.get(
            f"/api/runs/{small_run}/series",
            params={"fields": "loss,hist,max:sat", "layers": "h2", "points": 10},
        )
        assert got.status_code == 200, got.text
        body = got.json()
        assert list(body["run"]) == ["loss"] and "eval" not in body
        assert list(body["layer"]) == ["h2"] and set(body["layer"]["h2"]) == {"hist", "max:sat"}
        assert len(body["heat"]["step"]) == 10 and len(body["layer"]["h2"]["hist"]["counts"]) == 10
        assert sum(map(sum, body["layer"]["h2"]["hist"]["counts"])) > 0
        assert body["layers"] == ["h1", "h2", "h3"] and body["total"] == 300


@pytest.mark.parametrize(
    ("params", "loc", "words"),
    [
        ({"fields": "loss,bogus"}, "fields", ["'bogus'", "known fields", "grad_norm", "max:sat"]),
        ({"fields": ""}, "fields", ["known fields"]),
        ({"fields": "sat", "layers": "h1,nope"}, "layers", ["'nope'", "this run has: h1, h2, h3"]),
        ({"points": 3}, "points", ["4"]),
        ({"points": 10**12}, "points", ["20000"]),
        ({"points": "many"}, "points", ["integer"]),
        ({"from_step": -1}, "from_step", ["0"]),
        ({"to_step": 2**70}, "to_step", []),
        ({"from_step": 10, "to_step": 5}, "to_step", ["below from_step 10"]),
        ({"to_seq": -2}, "to_seq", ["-1"]),
    ],
)
def test_bad_series_requests_are_422_naming_the_parameter(server, small_run, params, loc, words):
    with server.client() as client:
        got = client.get(f"/api/runs/{small_run}/series", params=params)
    assert got.status_code == 422, got.text
    detail = got.json()["detail"][0]
    assert detail["loc"][-1] == loc
    for word in words:
        assert word in detail["msg"], detail["msg"]


def test_series_of_an_unknown_run_is_404(server):
    with server.client() as client:
        assert client.get("/api/runs/nope/series").status_code == 404


def test_a_run_without_frames_has_empty_series_not_an_error(server):
    with server.client() as client:
        run = client.post("/api/runs", json={"steps": 500_000, "depth": 2, "width": 8}).json()
        client.post(f"/api/runs/{run['id']}/cancel")
        fields = "loss,eval,max:sat_graded,max:sat,hist"
        for _ in range(2):  # cancelled before or after its first frames: both answer 200
            page = client.get(f"/api/runs/{run['id']}/series", params={"fields": fields})
            assert page.status_code == 200, page.text
