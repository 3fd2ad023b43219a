"""The Claims view in a real browser: run a claim from its page, see its verdict, checks,
plots and the links to the runs behind it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from normcore.claims import CLAIMS
from tests.e2e.conftest import Dashboard

pytestmark = pytest.mark.e2e
RESULTS = Path(__file__).resolve().parents[2] / "docs" / "claims-results" / "full.json"


def test_published_results_open_at_once_with_where_they_ran(dash: Dashboard):
    published = {r["id"]: r for r in json.loads(RESULTS.read_text())}
    page = dash.page
    dash.open("#/claims")
    page.wait_for_selector("tr[data-claim]")
    for claim_id, result in published.items():
        row = page.locator(f"tr[data-claim={claim_id}]")
        assert row.locator(".verdict").inner_text() == result["verdict"], claim_id
        assert "published" in row.inner_text()

    dash.open("#/claims/C2")
    result = published["C2"]
    note = page.locator(".published-note")
    note.wait_for()
    assert result["run_at"]["commit"] in note.inner_text()
    assert page.locator(".regime-cell").count() == len(result["regimes"])
    page.wait_for_function(
        "(n) => [...document.querySelectorAll('.claim-plots .plot')]"
        ".filter((el) => el.data && el.data.length).length === n",
        arg=len(result["series"]),
    )
    dash.screenshot("claim-published.png", full_page=True)
    dash.assert_clean()


def test_claims_view_runs_a_claim_and_shows_verdict_checks_plots_and_runs(
    dash: Dashboard, server: Any
):
    page = dash.page
    dash.open("#/claims")
    page.wait_for_selector("tr[data-claim]")
    assert page.locator("tr[data-claim]").count() == len(CLAIMS)

    page.click("tr[data-claim=C3] a.claim-id")
    page.wait_for_selector("text=Run (quick)")
    page.get_by_role("button", name="Run (quick)").click()
    with server.client() as client:
        started = client.get("/api/claims/C3").json()["latest"]
    assert not started["published"]  # the published result stays until this one completes
    # C3 is a sweep of 32 runs, each in a fresh worker: minutes on a loaded 2-core machine
    section = page.locator(f"section[data-claim-run='{started['id']}']")
    section.locator(".verdict").wait_for(timeout=900_000)

    with server.client() as client:
        latest = client.get("/api/claims/C3").json()["latest"]
    assert latest["id"] == started["id"] and latest["status"] == "completed"
    result = latest["result"]
    assert section.locator(".verdict").inner_text() == result["verdict"]
    assert section.locator("ul.checks li").count() == len(result["checks"])
    page.wait_for_function(
        "(n) => [...document.querySelectorAll('.claim-plots .plot')]"
        ".filter((el) => el.data && el.data.length).length === n",
        arg=len(result["series"]),
    )
    links = page.locator("table.arms a")
    assert links.count() == len(result["run_configs"]) == len(CLAIMS["C3"].configs(True))
    dash.screenshot("claim.png", full_page=True)

    links.first.click()  # an arm is an ordinary stored run
    assert dash.wait_status({"completed"}) == "completed"
    dash.assert_clean()
