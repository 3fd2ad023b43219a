"""Results that last: `normscope claims --json/--full` keeps each claim's result with where and
when it ran, `--render` writes docs/claims.md and the self-contained HTML report from them,
and the server opens the published results at once until a claim runs on it.

The results come from a real quick run of C8 (seconds: its arms are small), not from fixtures.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import get_args

import pytest

from app.cli import main
from app.cli.claims import RESULTS, merged
from app.main import create_app
from app.schemas import Verdict
from app.settings import Settings
from normcore.claims import CLAIMS
from normcore.claims.protocol import CLAIM_VERDICTS
from tests.utils.fakes import IdleExecutor
from tests.utils.inprocess import in_process

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def results_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("claims") / "results.json"
    assert main(["claims", "--quick", "--only", "C8", "--json", str(path), "--no-checks"]) == 0
    return path


def test_json_holds_where_and_when_each_claim_ran(results_file):
    (result,) = json.loads(results_file.read_text())
    run_at = result["run_at"]
    assert result["id"] == "C8" and result["quick"] is True
    assert re.fullmatch(r"[0-9a-f]{7,}|unknown", run_at["commit"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", run_at["date"])
    assert "cores" in run_at["machine"] and run_at["wall_s"] > 0
    assert len(run_at["load_before"]) == len(run_at["load_after"]) == 3


def test_render_writes_the_page_and_a_self_contained_report(results_file, tmp_path):
    assert main(["claims", "--render", str(results_file), "--out", str(tmp_path)]) == 0
    (result,) = json.loads(results_file.read_text())
    page = (tmp_path / "claims.md").read_text()
    row = next(line for line in page.splitlines() if line.startswith("| [C8]"))
    assert f"**{result['verdict']}**" in row
    assert result["run_at"]["commit"] in page and "wall time, all claims" in page
    for check in result["checks"]:
        assert check["name"] in page
    for cell in result.get("regimes") or []:
        assert cell["regime"] in page and cell["verdict"] in page

    report = (tmp_path / "claims-report.html").read_text()
    assert "<script src" not in report and "<link" not in report  # opens offline
    figures = re.search(r'id="normscope-figures">(.*?)</script>', report, re.S)
    assert figures is not None
    drawn = json.loads(figures.group(1))
    assert len(drawn) == len(result["series"])
    assert [f["layout"]["title"]["text"] for f in drawn.values()] == [
        s["title"] for s in result["series"]
    ]


def test_render_refuses_a_file_without_results(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"id": "C8"}')
    with pytest.raises(SystemExit, match="no list of claim results"):
        main(["claims", "--render", str(bad), "--out", str(tmp_path)])


def test_full_and_quick_exclude_each_other(capsys):
    assert main(["claims", "--quick", "--full", "--only", "C8"]) == 2
    assert "exclude" in capsys.readouterr().err


def test_a_partial_rerun_replaces_only_its_claims_in_the_catalog_order():
    stored = [{"id": "C9", "v": "old"}, {"id": "C1", "v": "old"}, {"id": "C4", "v": "old"}]
    fresh = [{"id": "C4", "v": "new"}]
    out = merged(stored, fresh)
    assert [r["id"] for r in out] == ["C1", "C4", "C9"]
    assert [r["v"] for r in out] == ["old", "new", "old"]


def read(settings: Settings, claim_id: str, start: bool = False) -> dict:
    async def go() -> dict:
        app = create_app(settings, make_executor=IdleExecutor)
        async with in_process(app) as client:
            if start:
                started = await client.post(f"/api/claims/{claim_id}/run", json={"quick": True})
                assert started.status_code == 202, started.text
            response = await client.get(f"/api/claims/{claim_id}")
            assert response.status_code == 200, response.text
            return response.json()

    return asyncio.run(go())


def test_the_server_opens_published_results_until_a_claim_runs_on_it(results_file, tmp_path):
    (result,) = json.loads(results_file.read_text())
    settings = Settings(data_dir=tmp_path, max_jobs=1, claim_results=results_file)
    detail = read(settings, "C8")
    assert detail["result"]["published"] is True
    assert detail["result"]["verdict"] == result["verdict"]
    assert detail["result"]["result"]["run_at"] == result["run_at"]
    assert detail["latest"]["id"] == detail["result"]["id"]
    assert read(settings, "C1")["result"] is None  # a claim the file does not hold

    # a newer file replaces the older one's rows; a run on this server is the newest
    newer = tmp_path / "newer.json"
    newer.write_text(json.dumps([{**result, "run_at": {**result["run_at"], "commit": "abc1234"}}]))
    settings = Settings(data_dir=tmp_path, max_jobs=1, claim_results=newer)
    detail = read(settings, "C8", start=True)
    published = [h for h in detail["history"] if h["published"]]
    assert [h["id"] for h in published] == ["published-C8-abc1234"]
    assert detail["latest"]["published"] is False
    assert detail["latest"]["status"] in ("queued", "running")
    assert detail["result"]["id"] == "published-C8-abc1234"  # still the newest completed


def test_the_api_answers_every_verdict_a_claim_can_reach():
    # a protocol claim's "no difference measured" once made GET /api/claims/{id} a 500
    assert get_args(Verdict) == CLAIM_VERDICTS
    js = (ROOT / "frontend" / "js" / "claim_figures.js").read_text()
    assert all(f'"{v}"' in js.split("VERDICTS = ")[1].split(";")[0] for v in CLAIM_VERDICTS)


def test_every_published_verdict_is_served(tmp_path):
    settings = Settings(data_dir=tmp_path, max_jobs=1)  # the committed docs/ results
    for claim_id in CLAIMS:
        assert read(settings, claim_id)["result"]["published"] is True, claim_id


def test_an_unreadable_published_file_is_skipped_not_fatal(tmp_path, caplog):
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    settings = Settings(data_dir=tmp_path, max_jobs=1, claim_results=broken)
    assert read(settings, "C8")["result"] is None
    assert any("unreadable" in r.getMessage() for r in caplog.records)


def test_the_committed_full_results_hold_every_claim_with_its_provenance():
    path = ROOT / "docs" / RESULTS
    results = json.loads(path.read_text())
    assert [r["id"] for r in results] == list(CLAIMS)
    for r in results:
        assert r["quick"] is False, r["id"]
        assert r["verdict"] != "failed", (r["id"], r.get("error"))
        assert {"commit", "date", "machine", "wall_s"} <= set(r["run_at"]), r["id"]
        assert r["regimes"], f"{r['id']} has no regime map"
        assert any(c.get("published") for c in r["regimes"]), f"{r['id']}: no published cell"
    page = (ROOT / "docs" / "claims.md").read_text()
    assert all(f"| [{c}](#{c.lower()}) |" in page for c in CLAIMS)
