"""Dashboard views of a long stored run, timed in Debian's chromium through Playwright.

Stores a synthetic run (tests/utils/synthetic.py: 100,000 frames, 8 layers, 64 bins, an
evaluation every 100 steps) and three copies of it, serves them with the code of `--tree`
(this checkout, or another one: run it once per tree on the same data to compare), and
measures, median of `--repeat`:

- run view: navigation to every panel drawn (loss, overview, the open layer's five charts);
- compare of the 4 runs: navigation to all 16 panels drawn;
- zoom: a zoom of the loss chart to 500 steps until that window is drawn at full detail
  (about 500 points); a tree that does not fetch detail reports the points it shows there;
- bytes: the API answers the run view's first load transferred.

Targets (issue 12): 1.0 s, 2.0 s, 300 ms, 1 MB. Timing only, never a pass/fail test.

    python bench/views.py --data /tmp/views-data                 # this tree
    python bench/views.py --data /tmp/views-data --tree /tmp/base  # the same data, other code
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path

import serve as bench_serve  # bench/serve.py: run as a script, bench/ is on sys.path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"]

DRAWN = """(sels) => sels.every((sel) => { const els = [...document.querySelectorAll(sel)];
  return els.length && els.every((el) => el.data && el.data.some((t) => (t.x || []).length)); })"""
RUN_PANELS = ["[data-panel=loss]", "[data-panel=overview]", "details.layer[open] .plot"]
COMPARE_PANELS = ["[data-panel^=compare-]"]
ZOOM = (50_000, 50_500)
IN_WINDOW = """([lo, hi]) => { const el = document.querySelector('[data-panel=loss]');
  const t = el && el.data && el.data[0]; if (!t) return 0;
  return t.x.filter((x) => x >= lo && x <= hi).length; }"""


def make_data(data: Path, frames: int) -> list[str]:
    """The run ids of `data`, storing the runs first when it holds none."""
    from app.store import Store
    from tests.utils.synthetic import store_run

    db = data / "runs.db"
    if not db.exists():
        data.mkdir(parents=True, exist_ok=True)
        store = Store(db)
        t0 = time.perf_counter()
        store_run(store, frames, layers=8, bins=64, eval_every=100)
        print(f"stored {frames} frames in {time.perf_counter() - t0:.0f} s", flush=True)
        store.close()
    con = sqlite3.connect(db)
    first = con.execute("SELECT id FROM runs ORDER BY created_at").fetchone()[0]
    have = con.execute("SELECT count(*) FROM runs").fetchone()[0]
    for k in range(have - 1, 3):  # three copies under new ids: Compare of four long runs
        new = f"{first[:9]}cp{k}"
        # every column copied by name (the runs table grows: sweep, cell, ...)
        cols = [r[1] for r in con.execute("PRAGMA table_info(runs)")]
        picks = [
            "?" if c == "id" else "label || ?" if c == "label" else
            "created_at + ?" if c == "created_at" else c
            for c in cols
        ]  # fmt: skip
        con.execute(
            f"INSERT INTO runs ({', '.join(cols)}) SELECT {', '.join(picks)} "
            "FROM runs WHERE id = ?",
            (new, f" copy {k}", k + 1, first),
        )
        con.execute(
            "INSERT INTO frames SELECT ?, seq, step, data FROM frames WHERE run_id = ?",
            (new, first),
        )
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master")}
        if "frame_columns" in tables:
            con.execute(
                "INSERT INTO frame_columns SELECT ?, chunk, key, n, data "
                "FROM frame_columns WHERE run_id = ?",
                (new, first),
            )
    con.commit()
    con.close()
    con = sqlite3.connect(db)
    ids = [r[0] for r in con.execute("SELECT id FROM runs ORDER BY created_at")]
    con.close()
    return ids


def serve(tree: Path, data: Path, port: int) -> subprocess.Popen:
    env = {
        "NORMSCOPE_DATA_DIR": str(data),
        "PYTHONPATH": str(tree),
        "OMP_NUM_THREADS": "1",
        "NORMSCOPE_WARM_WORKERS": "0",
    }
    return bench_serve.start(tree, port, env)


def measure(base: str, ids: list[str], repeat: int) -> dict[str, object]:
    from playwright.sync_api import sync_playwright

    out: dict[str, list[float]] = {"run_s": [], "compare_s": [], "zoom_s": [], "run_bytes": []}
    zoom_points: list[int] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{base}/#/runs")  # static files and plotly.js cached once, as in use
        page.wait_for_selector("table")
        for _ in range(repeat):
            responses: list = []

            def on_response(response: object, into: list = responses) -> None:
                into.append(response)

            page.on("response", on_response)
            t0 = time.perf_counter()
            page.evaluate(f"location.hash = '#/run/{ids[0]}'")
            page.wait_for_function(DRAWN, arg=RUN_PANELS, polling=16, timeout=120_000)
            out["run_s"].append(time.perf_counter() - t0)
            page.remove_listener("response", on_response)
            out["run_bytes"].append(sum(len(r.body()) for r in responses if "/api/" in r.url))
            t0 = time.perf_counter()
            page.evaluate(
                "([lo, hi]) => Plotly.relayout(document.querySelector('[data-panel=loss]'),"
                " {'xaxis.range[0]': lo, 'xaxis.range[1]': hi})",
                list(ZOOM),
            )
            try:
                page.wait_for_function(
                    f"(w) => ({IN_WINDOW})(w) >= 450", arg=list(ZOOM), polling=16, timeout=5_000
                )
                out["zoom_s"].append(time.perf_counter() - t0)
            except Exception:  # no detail fetched: say how much the window shows
                zoom_points.append(page.evaluate(IN_WINDOW, list(ZOOM)))
            page.evaluate("location.hash = '#/runs'")
            page.wait_for_selector("table")
            t0 = time.perf_counter()
            page.evaluate(f"location.hash = '#/compare/{','.join(ids[:4])}'")
            page.wait_for_function(DRAWN, arg=COMPARE_PANELS, polling=16, timeout=120_000)
            out["compare_s"].append(time.perf_counter() - t0)
            page.screenshot(path=str(Path(os.environ.get("BENCH_SHOTS", "/tmp")) / "compare.png"))
            page.evaluate("location.hash = '#/runs'")
            page.wait_for_selector("table")
        browser.close()
    # every round too: the first reads columns from SQLite, later ones from the server's cache
    result: dict[str, object] = {k: statistics.median(v) for k, v in out.items() if v}
    result.update({f"{k}_rounds": [round(x, 3) for x in v] for k, v in out.items() if v})
    if zoom_points:
        result["zoom_points_in_window"] = statistics.median(zoom_points)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--tree", type=Path, default=ROOT)
    parser.add_argument("--frames", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--fresh", action="store_true", help="store the runs anew")
    args = parser.parse_args()
    if args.fresh and args.data.exists():
        shutil.rmtree(args.data)
    ids = make_data(args.data, args.frames)
    proc = serve(args.tree.resolve(), args.data, args.port)
    try:
        result = measure(f"http://127.0.0.1:{args.port}", ids, args.repeat)
    finally:
        proc.terminate()
        proc.wait(10)
    load = os.getloadavg()
    result.update(tree=str(args.tree), frames=args.frames, load=[round(x, 2) for x in load])
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
