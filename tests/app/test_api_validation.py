"""Bad input is a 4xx naming the field, never a 500, and unknown ids are 404s — in-process
(no socket, no worker: an executor that trains nothing), since no run needs to train."""

from __future__ import annotations

import json

import pytest

from app.main import create_app
from app.settings import Settings
from tests.utils.fakes import IdleExecutor
from tests.utils.inprocess import InProcessClient
from tests.utils.runs import field_error
from tests.utils.server import LONG_RUN


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    settings = Settings(data_dir=tmp_path_factory.mktemp("api"), max_steps=LONG_RUN)
    with InProcessClient(create_app(settings, make_executor=IdleExecutor)) as client:
        yield client


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
        ({"seq_len": 40}, "seq_len", "model 'rnn' only"),
        (
            {"model": "rnn", "dataset": "sequence", "seq_len": 30, "seq_len_test": 20},
            "seq_len_test",
            "shorter than seq_len 30",
        ),
        ({"model": "rnn", "dataset": "sequence", "seq_len": 10_000}, "seq_len", "less than"),
        ({"model": "rnn", "dataset": "sequence", "bn_per_step": True}, "bn_per_step", "'none'"),
        ({"model": "rnn", "dataset": "sequence", "seq_vary": "yes"}, "seq_vary", "boolean"),
    ],
)
def test_create_run_rejects_invalid_config_naming_the_field(client, body, field, words):
    before = client.get("/api/runs").json()["count"]
    response = client.post("/api/runs", json=body)
    assert response.status_code == 422
    assert words in field_error(response, field)
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
    field_error(response, field)
    assert response.json()["detail"][0]["input"] == echoed


def test_create_run_rejects_a_body_over_the_size_limit(client):
    body = json.dumps({"norm": "layer", "padding": "x" * 70_000})  # limit: 64 KiB
    response = client.post("/api/runs", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 413


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
