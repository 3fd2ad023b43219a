"""The claims service lives in the app's lifespan, like the store: built at start-up (claim
runs a stopped server left active become interrupted before any request) and closed at
shutdown (its SQLite connection with it). In-process, with an executor that trains nothing."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from app.main import create_app
from app.services.claims import ClaimStore
from app.settings import Settings
from tests.utils.fakes import IdleExecutor
from tests.utils.inprocess import in_process


def make_app(tmp_path):
    return create_app(Settings(data_dir=tmp_path, max_jobs=1), make_executor=IdleExecutor)


def test_claim_runs_left_active_are_interrupted_at_startup(tmp_path) -> None:
    left = ClaimStore(tmp_path / "runs.db")  # what a stopped server left behind
    ids = [left.create("C1", quick=True)["id"], left.create("C4", quick=True)["id"]]
    left.update(ids[1], status="running")

    async def start_and_stop() -> list[dict]:
        async with in_process(make_app(tmp_path)):  # start-up only: no request to /api/claims
            return [left.get(run_id) for run_id in ids]

    found = asyncio.run(start_and_stop())
    left.close()
    assert [run["status"] for run in found] == ["interrupted", "interrupted"]
    assert {run["error"] for run in found} == {"the server stopped while the claim ran"}


def test_claims_connection_is_closed_at_shutdown(tmp_path) -> None:
    app = make_app(tmp_path)

    async def use_claims() -> None:
        async with in_process(app) as client:
            response = await client.get("/api/claims")
            assert response.status_code == 200

    asyncio.run(use_claims())
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        app.state.claims.claims.latest("C1")
