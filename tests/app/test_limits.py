"""One limit, one message: a value above the library's bound is told the server's limit (the
one the form shows), and no message keeps pydantic's "Value error, " prefix."""

from __future__ import annotations

import pytest

from tests.utils.server import LONG_RUN


@pytest.mark.parametrize(
    ("field", "value", "limit"),
    [("steps", 100_000_000, LONG_RUN), ("width", 10**6, 1024), ("steps", LONG_RUN + 1, LONG_RUN)],
)
def test_a_value_above_a_limit_is_told_the_servers_limit(server, field, value, limit):
    with server.client() as client:
        got = client.post("/api/runs", json={field: value})
    assert got.status_code == 422, got.text
    [detail] = got.json()["detail"]
    assert detail["loc"] == ["body", field]
    assert detail["msg"] == (
        f"{field} {value} is above this server's limit of {limit} (NORMSCOPE_MAX_{field.upper()})"
    )


def test_messages_lose_pydantics_value_error_prefix(server):
    with server.client() as client:
        got = client.post("/api/runs", json={"norm": "bogus"})
    assert got.status_code == 422
    [detail] = got.json()["detail"]
    assert detail["msg"].startswith("norm 'bogus' is unknown"), detail["msg"]


def test_a_watched_runs_own_bound_keeps_its_message(server):
    body = {"label": "x", "activation": "tanh", "layers": ["a"], "steps": 10**13}
    with server.client() as client:
        got = client.post("/api/runs/watched", json=body)
    assert got.status_code == 422
    assert "less than or equal to 1000000000000" in got.json()["detail"][0]["msg"]
