"""Faithful views in a real browser: every evaluation drawn, zoom loads detail, an overview
click leaves the opened layer's header in view."""

from __future__ import annotations

from typing import Any

import pytest

from app.store import Store
from tests.e2e.conftest import Dashboard, wait_run
from tests.utils.synthetic import store_run

pytestmark = pytest.mark.e2e

LOSS = "[data-panel=loss]"
IN_WINDOW = """([sel, lo, hi]) => { const t = document.querySelector(sel).data[0];
  return t.x.filter((x) => x >= lo && x <= hi).length; }"""


@pytest.fixture(scope="module")
def long_run(server: Any) -> str:
    """A stored 6,000-frame run (more frames than a chart draws at once)."""
    store = Store(server.data_dir / "runs.db")
    try:
        return store_run(store, 6_000, layers=3, bins=16, eval_every=100)["id"]
    finally:
        store.close()


def drawn(dash: Dashboard, selector: str) -> None:
    dash.page.wait_for_function(
        "(sel) => { const el = document.querySelector(sel);"
        " return el && el.data && el.data.some((t) => (t.x || []).length); }",
        arg=selector,
        timeout=60_000,
    )


def test_zoom_loads_the_window_in_full_detail_and_reset_the_overview(
    dash: Dashboard, long_run: str
):
    dash.open(f"#/run/{long_run}")
    drawn(dash, LOSS)
    overview = dash.points(LOSS)
    assert overview <= 800 + 6, "the whole run, downsampled"
    assert dash.page.evaluate(IN_WINDOW, [LOSS, 3000, 3100]) < 101
    dash.page.evaluate(
        "() => Plotly.relayout(document.querySelector('[data-panel=loss]'),"
        " {'xaxis.range[0]': 3000, 'xaxis.range[1]': 3100})"
    )
    # every one of the 101 steps in the window, in the loss chart and the open layer's charts
    dash.page.wait_for_function(f"(a) => ({IN_WINDOW})(a) === 101", arg=[LOSS, 3000, 3100])
    grad = "[data-panel=grad][data-layer=h3]"
    dash.page.wait_for_function(f"(a) => ({IN_WINDOW})(a) === 101", arg=[grad, 3000, 3100])
    dash.page.evaluate(
        "() => Plotly.relayout(document.querySelector('[data-panel=loss]'),"
        " {'xaxis.autorange': true})"
    )
    dash.page.wait_for_function(
        "(n) => document.querySelector('[data-panel=loss]').data[0].x.length === n",
        arg=overview,
    )
    last = dash.page.evaluate("document.querySelector('[data-panel=loss]').data[0].x.at(-1)")
    assert last == 6000
    dash.assert_clean()


def test_a_box_zoom_fetches_at_once_and_a_wheels_ticks_gather(dash: Dashboard, long_run: str):
    dash.open(f"#/run/{long_run}")
    drawn(dash, LOSS)
    series = lambda: [u for u in dash.requests if "/series" in u]  # noqa: E731
    before = len(series())
    # one relayout (a box zoom): its window is fetched with no wait for more
    dash.page.evaluate(
        "() => Plotly.relayout(document.querySelector('[data-panel=loss]'),"
        " {'xaxis.range[0]': 3000, 'xaxis.range[1]': 3100})"
    )
    dash.page.wait_for_function(f"(a) => ({IN_WINDOW})(a) === 101", arg=[LOSS, 3000, 3100])
    after_box = len(series())
    assert after_box > before
    # eight ticks 16 ms apart (a wheel): the first fetches, the rest gather into one more
    dash.page.evaluate(
        """async () => { const el = document.querySelector('[data-panel=loss]');
             for (let i = 1; i <= 8; i++) {
               Plotly.relayout(el, {'xaxis.range[0]': 3000 - 50 * i, 'xaxis.range[1]': 3100});
               await new Promise((r) => setTimeout(r, 16)); } }"""
    )
    dash.page.wait_for_function(f"(a) => ({IN_WINDOW})(a) === 501", arg=[LOSS, 2600, 3100])
    dash.page.wait_for_timeout(300)  # nothing more comes
    per_load = after_box - before  # a load's requests (the overview and the open layer)
    assert len(series()) - after_box == 2 * per_load
    dash.assert_clean()


def test_an_overview_click_opens_the_layer_with_its_header_below_the_top_bar(
    dash: Dashboard, long_run: str
):
    dash.open(f"#/run/{long_run}")
    drawn(dash, "[data-panel=overview]")
    box = dash.page.locator("[data-panel=overview] .nsewdrag").first.bounding_box()
    dash.page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 6)  # row h1
    h1 = dash.page.locator("details[data-layer=h1]")
    drawn(dash, "[data-panel=heatmap][data-layer=h1]")  # its detail loaded and drawn
    dash.page.wait_for_function(  # the smooth scroll has settled
        """() => new Promise((done) => { const y = scrollY;
             setTimeout(() => done(scrollY === y && y > 0), 300); })"""
    )
    bar = dash.page.locator("header.top").bounding_box()
    head = h1.locator("summary").bounding_box()
    assert head["y"] >= bar["y"] + bar["height"], (head, bar)
    assert head["y"] + head["height"] <= 768
    dash.screenshot("overview-click.png")
    dash.assert_clean()


@pytest.mark.slow
def test_compare_of_bn_figure_1_draws_every_held_out_point_of_each_arm(
    dash: Dashboard, server: Any
):
    with server.client() as client:
        [preset] = [
            p for p in client.get("/api/catalog").json()["presets"] if p["id"] == "bn-figure-1"
        ]
        ids = []
        for config in preset["runs"]:
            response = client.post("/api/runs", json=config)
            assert response.status_code == 201, response.text
            ids.append(response.json()["id"])
        runs = [wait_run(client, run_id, timeout_s=900) for run_id in ids]
    assert [r["status"] for r in runs] == ["completed", "completed"]
    expected = 31  # steps 100, 200, ..., 3000 and the first
    dash.open(f"#/compare/{','.join(ids)}")
    for panel in ("compare-eval-loss", "compare-eval-acc"):
        dash.page.wait_for_function(
            "([sel, n]) => { const el = document.querySelector(sel);"
            " return el && el.data && el.data.length === 2"
            " && el.data.every((t) => t.x.length === n); }",
            arg=[f"[data-panel={panel}]", expected],
            timeout=60_000,
        )
        steps = dash.page.evaluate(f"document.querySelector('[data-panel={panel}]').data[0].x")
        assert steps[-1] == 3000 and len(set(steps)) == expected, steps
    dash.screenshot("compare-bn-figure-1.png", full_page=True)
    dash.assert_clean()
