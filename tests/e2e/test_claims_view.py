"""The Claims view in a real browser: run a claim from its page, see its verdict, checks,
plots and the links to the runs behind it."""

from __future__ import annotations

from typing import Any

import pytest

from normcore.claims import CLAIMS
from tests.e2e.conftest import Dashboard

pytestmark = pytest.mark.e2e


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
    # C3 is a sweep of 32 runs, each in a fresh worker: minutes on a loaded 2-core machine
    page.wait_for_selector("section[data-claim-run] .verdict", timeout=900_000)

    with server.client() as client:
        latest = client.get("/api/claims/C3").json()["latest"]
    assert latest["status"] == "completed"
    result = latest["result"]
    section = page.locator("section[data-claim-run]")
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
