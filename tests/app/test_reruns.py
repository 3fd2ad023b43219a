"""Re-run (POST /api/runs/{id}/rerun): a new run with the same config, linked to the old one,
for runs that ended interrupted, failed or cancelled; a 409 that says why for any other."""

from __future__ import annotations

from tests.utils.runs import create, wait_until
from tests.utils.server import LONG_RUN


def test_rerun_of_an_interrupted_run_is_a_new_run_with_its_config(start_server):
    live = start_server()
    with live.client() as client:
        old = create(client, steps=LONG_RUN, seed=7)
        wait_until(client, old["id"], 1)
    live.kill()  # the server dies mid-run; the next start marks the run interrupted
    live.start()
    with live.client() as client:
        assert client.get(f"/api/runs/{old['id']}").json()["status"] == "interrupted"
        response = client.post(f"/api/runs/{old['id']}/rerun")
        assert response.status_code == 201, response.text
        new = response.json()
        assert new["id"] != old["id"]
        assert new["rerun_of"] == old["id"]
        assert new["config"] == old["config"]
        assert new["status"] in ("queued", "running")
        assert wait_until(client, new["id"], 1)["status"] == "running"  # it trains
        listed = {run["id"]: run for run in client.get("/api/runs").json()["data"]}
        assert listed[new["id"]]["rerun_of"] == old["id"]
        assert listed[old["id"]]["rerun_of"] is None
        assert client.post(f"/api/runs/{new['id']}/cancel").status_code == 200


def test_rerun_of_a_running_run_is_a_conflict_that_says_why(server):
    with server.client() as client:
        run = create(client, steps=LONG_RUN)
        response = client.post(f"/api/runs/{run['id']}/rerun")
        assert response.status_code == 409, response.text
        detail = response.json()["detail"]
        assert run["id"] in detail
        assert "running" in detail or "queued" in detail
        assert "cancel it first" in detail

        assert client.post(f"/api/runs/{run['id']}/cancel").status_code == 200
        response = client.post(f"/api/runs/{run['id']}/rerun")  # cancelled: allowed now
        assert response.status_code == 201, response.text
        again = response.json()
        assert again["rerun_of"] == run["id"]
        assert client.post(f"/api/runs/{again['id']}/cancel").status_code == 200


def test_rerun_of_a_completed_run_is_a_conflict_and_an_unknown_run_is_not_found(server):
    with server.client() as client:
        run = create(client, steps=20)
        assert wait_until(client, run["id"])["status"] == "completed"
        response = client.post(f"/api/runs/{run['id']}/rerun")
        assert response.status_code == 409, response.text
        assert "completed" in response.json()["detail"]
        assert "seed" in response.json()["detail"]
        response = client.post("/api/runs/nosuchrun/rerun")
        assert response.status_code == 404, response.text
        assert "nosuchrun" in response.json()["detail"]


def test_a_runs_db_from_before_reruns_opens_and_its_runs_link_to_nothing(tmp_path):
    import re
    import sqlite3

    from app.store import _SCHEMA, Store

    path = tmp_path / "runs.db"
    with sqlite3.connect(path) as db:  # the schema as it was: no rerun_of column
        db.executescript(re.sub(r",\n\s*rerun_of TEXT[^\n]*", "", _SCHEMA))
        assert "rerun_of" not in {row[1] for row in db.execute("PRAGMA table_info(runs)")}
        db.execute(
            "INSERT INTO runs (id, status, config, label, created_at, steps) "
            "VALUES ('old', 'failed', '{\"steps\": 5}', 'x', 0, 5)"
        )
    db.close()
    store = Store(path)
    try:
        assert store.get_run("old")["rerun_of"] is None
        new = store.create_run({"steps": 5}, "x", rerun_of="old")
        assert store.get_run(new["id"])["rerun_of"] == "old"
    finally:
        store.close()
