"""The Sweep view in a real browser: launch a small sweep from the form, watch its heatmap fill
cell by cell as runs end, open a cell's runs."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Dashboard

pytestmark = pytest.mark.e2e

FILLED = """() => { const el = document.querySelector('[data-panel=sweep-grid]');
  return el && el.data ? el.data[0].z.flat().filter((v) => v !== null).length : -1; }"""


def test_sweep_from_the_form_fills_its_heatmap_and_opens_a_cell(dash: Dashboard, server):
    dash.open("#/launch")
    page = dash.page
    for name, value in {
        "depth": "2",
        "width": "16",
        "steps": "40",
        "eval_every": "40",
        "probe_every": "4",
    }.items():
        page.locator(f"#f-{name}").fill(value)
    page.locator(".sweep-row .sweep-field").select_option("norm")
    page.locator(".sweep-row .sweep-values").fill("none, layer")
    page.get_by_role("button", name="Vary another field").click()
    page.locator(".sweep-row").nth(1).locator(".sweep-field").select_option("batch_size")
    page.locator(".sweep-row").nth(1).locator(".sweep-values").fill("8, 32")
    page.locator("#sweep-seeds").fill("1")
    page.get_by_role("button", name="Start sweep").click()
    page.wait_for_url("**/#/sweep/*")
    sweep_id = page.url.rsplit("/", 1)[-1]

    # The heatmap is drawn while cells are still running, then fills to all four cells.
    page.wait_for_function(f"() => ({FILLED})() >= 0")
    seen = [page.evaluate(FILLED)]
    page.wait_for_function(
        "() => document.querySelector('[data-cells]')?.dataset.cells === '4/4'", timeout=240_000
    )
    page.wait_for_function(f"() => ({FILLED})() === 4", timeout=10_000)
    seen.append(page.evaluate(FILLED))
    assert seen[0] < 4 <= seen[-1], seen
    assert page.locator(".run-head [data-status]").first.get_attribute("data-status") == "completed"
    axes = page.evaluate("""() => { const el = document.querySelector('[data-panel=sweep-grid]');
        return [el.data[0].x, el.data[0].y]; }""")
    assert axes == [["8", "32"], ["none", "layer"]]
    dash.screenshot("sweep.png")

    with server.client() as client:
        sweep = client.get(f"/api/sweeps/{sweep_id}").json()
    run_id = next(
        c["run_id"] for c in sweep["cells"] if c["values"] == {"norm": "layer", "batch_size": 32}
    )
    # A click on the (32, layer) cell opens that cell's run (one seed: the run itself).
    box = page.locator("[data-panel=sweep-grid] .nsewdrag").bounding_box()
    page.mouse.click(box["x"] + box["width"] * 0.75, box["y"] + box["height"] * 0.25)
    page.wait_for_url(f"**/#/run/{run_id}")
    dash.assert_clean()


def test_sweeps_list_links_to_each_sweep(dash: Dashboard, server):
    with server.client() as client:
        body = {
            "base": {"depth": 2, "width": 8, "steps": 10, "eval_every": 10},
            "grid": {"norm": ["none", "layer"]},
        }
        sweep = client.post("/api/sweeps", json=body).json()
    dash.open("#/sweeps")
    row = dash.page.locator(f"tr[data-sweep='{sweep['id']}']")
    row.get_by_role("link", name="Open").click()
    dash.page.wait_for_url(f"**/#/sweep/{sweep['id']}")
    dash.page.wait_for_selector("[data-panel=sweep-grid] .main-svg")
    assert dash.page.locator("nav a[data-view=sweeps]").get_attribute("aria-current") == ""
    dash.assert_clean()
