"""HTML reports: self-contained (opens offline), carry the run's data, compare several runs.

Runs are real: trained by a real server, read back through the endpoint, the CLI and the
pure `render_report`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import httpx
import pytest

from app.reports.html import render_report
from normcore.client import Client

SMALL = {"width": 16, "depth": 3, "probe_every": 2, "eval_every": 10, "steps": 40}


def cli(*args: str, **env: str) -> subprocess.CompletedProcess:
    """`normscope ARGS` in a clean NORMSCOPE_ environment plus `env`."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("NORMSCOPE_")}
    exe = shutil.which("normscope")
    assert exe, "the `normscope` console script is not installed: pip install -e ."
    return subprocess.run(
        [exe, *args], env={**base, **env}, capture_output=True, text=True, timeout=120
    )


def figures_of(html: str) -> dict:
    match = re.search(
        r'<script type="application/json" id="normscope-figures">(.*?)</script>', html, re.S
    )
    assert match, "the report carries no figure data"
    return json.loads(match.group(1))


def find(figures: dict, title_part: str) -> list[dict]:
    return [f for f in figures.values() if title_part in f["layout"]["title"]["text"]]


@pytest.fixture(scope="module")
def runs(server):
    """Two finished runs that differ in their norm: [(Run, all frames)]."""
    with Client(server.url, token=server.token) as client:
        made = [client.create_run(SMALL, norm=norm) for norm in ("none", "batch")]
        done = [client.wait(run["id"], timeout=180) for run in made]
        return [(run, client.frames(run["id"])["data"]) for run in done]


def get(server, path: str, **params) -> httpx.Response:
    headers = {"Authorization": f"Bearer {server.token}"} if server.token else {}
    return httpx.get(server.url + path, params=params, headers=headers, timeout=60)


def assert_self_contained(html: str) -> None:
    assert html.startswith("<!doctype html>")
    assert not re.search(r"<script[^>]*\bsrc\s*=", html, re.I), "external script"
    assert not re.search(r"<link[^>]*\bhref\s*=\s*[\"']?(https?:)?//", html, re.I)
    assert not re.search(r"url\(\s*[\"']?(https?:)?//", html, re.I), "external css resource"
    assert "plotly.js v" in html[:200_000] or "plotly.js v" in html, "plotly.js not embedded"


def test_run_report_is_self_contained(server, runs):
    run, _ = runs[0]
    response = get(server, f"/api/runs/{run['id']}/report.html")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert_self_contained(response.text)


def test_run_report_contains_the_runs_data(server, runs):
    run, frames = runs[0]
    html = get(server, f"/api/runs/{run['id']}/report.html").text
    assert run["id"] in html and "completed" in html
    figures = figures_of(html)
    loss = find(figures, "loss")[0]["data"][0]
    assert loss["x"] == [f["step"] for f in frames]
    assert loss["y"] == [f["loss"] for f in frames]
    sat = find(figures, "saturation")
    assert len(sat) == 1
    assert sat[0]["data"][0]["y"] == [layer["name"] for layer in frames[-1]["layers"]]
    assert sat[0]["data"][0]["z"][0] == [f["layers"][0]["sat"] for f in frames]
    assert len(find(figures, "input distribution")) == SMALL["depth"]
    assert find(figures, "gradient norm") and find(figures, "drift from the first probe")


def test_comparison_report_puts_runs_side_by_side(server, runs):
    ids = ",".join(run["id"] for run, _ in runs)
    response = get(server, "/api/report.html", ids=ids)
    assert response.status_code == 200
    html = response.text
    assert_self_contained(html)
    figures = figures_of(html)
    names = [trace["name"] for trace in find(figures, "loss")[0]["data"]]
    assert "none train" in names and "batch train" in names
    assert len(find(figures, "saturation")) == 2
    assert len(find(figures, "input distribution")) == 2 * SMALL["depth"]
    differing = re.findall(r'<tr class="diff"><th>(\w+)</th>', html)
    assert differing == ["norm"]
    # side-by-side panels share one y range, so the runs compare at a glance
    grads = find(figures, "gradient norm")
    assert grads[0]["layout"]["yaxis"]["range"] == grads[1]["layout"]["yaxis"]["range"]


def test_report_of_unknown_run_is_a_404(server):
    response = get(server, "/api/runs/no-such-run/report.html")
    assert response.status_code == 404
    assert "no-such-run" in response.json()["detail"]
    response = get(server, "/api/report.html", ids="no-such-run")
    assert response.status_code == 404


def test_comparison_report_rejects_too_many_or_no_ids(server):
    for ids in (",", ",".join(f"r{i}" for i in range(9))):
        response = get(server, "/api/report.html", ids=ids)
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"] == ["query", "ids"]


def test_report_escapes_text_that_could_break_the_page(runs):
    run, frames = runs[0]
    evil = "</script><script>alert(1)</script>"
    html = render_report([({**run, "label": "<b>x</b>", "error": evil}, frames)])
    assert "<script>alert(1)" not in html and "<b>x</b>" not in html
    assert "&lt;/script&gt;&lt;script&gt;alert(1)" in html  # shown in the summary, as text
    figures_of(html)  # the figure JSON still parses


def test_report_of_a_run_without_frames_shows_its_config(runs):
    run, _ = runs[0]
    html = render_report([({**run, "status": "failed", "error": "worker killed"}, [])])
    assert "worker killed" in html and figures_of(html) == {}


def test_cli_report_from_local_store_and_from_server(server, runs, tmp_path):
    ids = [run["id"] for run, _ in runs]
    local, remote = tmp_path / "local.html", tmp_path / "remote.html"
    result = cli("report", *ids, "-o", str(local), NORMSCOPE_DATA_DIR=str(server.data_dir))
    assert result.returncode == 0, result.stderr
    args = ("report", *ids, "-o", str(remote), "--server", server.url)
    result = cli(*args, NORMSCOPE_TOKEN=server.token or "")
    assert result.returncode == 0, result.stderr
    for path in (local, remote):
        html = path.read_text()
        assert_self_contained(html)
        assert len(find(figures_of(html), "saturation")) == 2


def test_cli_report_of_unknown_run_fails_naming_it(server, tmp_path):
    out = tmp_path / "x.html"
    result = cli("report", "nope", "-o", str(out), NORMSCOPE_DATA_DIR=str(server.data_dir))
    assert result.returncode != 0 and "'nope'" in result.stderr
    assert not out.exists()


def test_cli_report_of_frames_files_draws_a_watched_model_beside_a_stored_run(
    server, runs, tmp_path
):
    # a model of one's own, watched in its own loop; beside it, a stored run's export
    from normcore.watch import Watch
    from tests.utils.own_model import tapering_mlp

    model, own = tapering_mlp(), tmp_path / "own.jsonl"
    with Watch(model.layers, activation="tanh", optimizer=model.opt, out=own) as watch:
        model.train(watch, 900)  # more frames than a report keeps (400)
    stored = tmp_path / "stored.jsonl"
    result = cli(
        "export", runs[1][0]["id"], "-o", str(stored), NORMSCOPE_DATA_DIR=str(server.data_dir)
    )
    assert result.returncode == 0, result.stderr

    out = tmp_path / "files.html"
    result = cli("report", str(own), str(stored), "-o", str(out))  # no store, no server
    assert result.returncode == 0, result.stderr
    html = out.read_text()
    assert_self_contained(html)
    figures = figures_of(html)
    assert len(find(figures, "saturation")) == 2
    [own_map] = [
        f for f in find(figures, "saturation") if "own.jsonl" in f["layout"]["title"]["text"]
    ]
    assert own_map["data"][0]["y"] == ["fc1", "fc2"]
    steps = own_map["data"][0]["x"]
    assert len(steps) == 400 and (steps[0], steps[-1]) == (1, 900), "thinned, ends kept"
    assert "completed" in html and "own.jsonl" in html

    # a bad file names itself and its line; files and run ids do not mix
    bad = tmp_path / "bad.jsonl"
    bad.write_text(own.read_text().splitlines()[0] + "\n{not json\n")
    result = cli("report", str(bad), "-o", str(tmp_path / "bad.html"))
    assert result.returncode == 1 and f"{bad}:2: not a JSON frame" in result.stderr
    result = cli("report", str(own), "some-run-id", "-o", str(tmp_path / "mixed.html"))
    assert result.returncode == 1 and "not both" in result.stderr


@pytest.mark.e2e
def test_report_renders_offline_in_chromium(runs, tmp_path):
    import playwright.sync_api as playwright  # the dev extra installs it

    path = tmp_path / "report.html"
    path.write_text(render_report(runs))
    count = len(figures_of(path.read_text()))
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium")
        page = browser.new_page()
        errors, outside = [], []
        page.on("pageerror", lambda e: errors.append(str(e)))

        def block(route):  # anything but the file itself is a network request
            outside.append(route.request.url)
            route.abort()

        page.route(re.compile(r"^(?!file:)"), block)
        page.goto(path.as_uri())
        page.wait_for_function(f"document.querySelectorAll('.js-plotly-plot').length === {count}")
        browser.close()
    assert errors == [] and outside == []
