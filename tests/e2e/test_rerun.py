"""The Re-run button: on a cancelled run's page and in the runs list, it starts a new run with
the same config and the page says which run it re-runs."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import SMALL, Dashboard, wait_run
from tests.utils.server import LONG_RUN

pytestmark = pytest.mark.e2e


def cancelled_run(server: Any) -> dict[str, Any]:
    with server.client() as client:
        run = client.post("/api/runs", json={**SMALL, "steps": LONG_RUN}).json()
        assert client.post(f"/api/runs/{run['id']}/cancel").status_code == 200
        return wait_run(client, run["id"])


def test_rerun_button_on_a_cancelled_run_opens_the_new_run(dash: Dashboard, server: Any):
    old = cancelled_run(server)
    assert old["status"] == "cancelled"
    dash.open(f"#/run/{old['id']}")
    dash.wait_status({"cancelled"})
    dash.page.get_by_role("button", name="Re-run").click()
    dash.page.wait_for_url(lambda url: old["id"] not in url)
    new_id = dash.page.url.rsplit("/", 1)[-1]
    dash.page.get_by_text(f"re-run of {old['id']}").wait_for()
    dash.screenshot("rerun-run-view.png")
    with server.client() as client:
        new = client.get(f"/api/runs/{new_id}").json()
        assert (new["rerun_of"], new["config"]) == (old["id"], old["config"])
        assert client.post(f"/api/runs/{new_id}/cancel").status_code == 200
    dash.assert_clean()


def test_rerun_button_in_the_runs_list_adds_a_run(dash: Dashboard, server: Any):
    old = cancelled_run(server)
    dash.open("#/runs")
    row = dash.page.locator(f"tr[data-run='{old['id']}']")
    row.get_by_role("button", name="Re-run").click()
    new_row = dash.page.locator("tr[data-run]").first  # newest first: the re-run
    new_row.wait_for()
    dash.page.wait_for_function(
        "(old) => document.querySelector('tr[data-run]').dataset.run !== old", arg=old["id"]
    )
    new_id = new_row.get_attribute("data-run")
    dash.screenshot("rerun-runs-list.png")
    with server.client() as client:
        new = client.get(f"/api/runs/{new_id}").json()
        assert new["rerun_of"] == old["id"]
        assert client.post(f"/api/runs/{new_id}/cancel").status_code == 200
    dash.assert_clean()
