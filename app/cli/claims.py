"""`normscope claims`: run the seed's claims as experiments and print their verdicts.

    normscope claims --quick              # every claim, small, on the CPU (~2.5 min on 2 cores)
    normscope claims --only C4 --only C7  # some claims (comma-separated works too)
    normscope claims --json results.json  # also write the full results
    normscope claims --dry-run            # the full mode's estimated cost per claim, no runs
    normscope claims --full               # full mode, published: docs/claims.md, the HTML
                                          # report and docs/claims-results/full.json
    normscope claims --render FILE        # the page and report again from stored results

The exit status says whether every experiment *ran* (0), not what it found: "not
reproduced" is a result like any other. 1: an experiment raised; 2: an unknown claim id.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from typing import Any

EXIT_FAILED, EXIT_INVALID = 1, 2
RESULTS, PAGE, REPORT = "claims-results/full.json", "claims.md", "claims-report.html"
NOTES = "claims-notes.md"  # notes by hand on earlier runs, linked from the page when present


def add_claims_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "claims",
        help="check the seed's claims C1..C9 with live experiments",
        description="Run each claim's experiment, measure, and print the verdict table. Exit "
        "status 0 when every experiment ran (whatever the verdicts), 1 when one failed, 2 for "
        "an unknown claim id.",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="small nets, few hundred steps, 2 seeds, CPU: 10-20 s a claim, C5 (the RNN) ~1.3 min",
    )
    p.add_argument(
        "--full",
        action="store_true",
        help="full mode (5 seeds, the whole lr grid), and publish the results: OUT/"
        f"{RESULTS}, OUT/{PAGE} and OUT/{REPORT} (claims not run keep their stored results)",
    )
    p.add_argument(
        "--render",
        metavar="FILE",
        help="run nothing: write OUT/claims.md and the HTML report from stored results (a "
        "--json file or OUT/claims-results/full.json)",
    )
    p.add_argument(
        "--out",
        metavar="DIR",
        default="docs",
        help="where --full and --render write (default: docs)",
    )
    p.add_argument(
        "--only",
        action="append",
        metavar="ID",
        default=[],
        help="run only this claim (repeatable, or comma-separated: C1,C4)",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="print each selected claim's estimated runs and minutes on 2 cores, run nothing",
    )
    p.add_argument(
        "--json",
        metavar="FILE",
        help="write the full results as a JSON list (rewritten after each claim, so an "
        "interrupted run keeps the claims it finished)",
    )
    p.add_argument(
        "--checks",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="print each claim's checks under the table (default: on)",
    )
    p.set_defaults(func=cmd_claims)


def selected(only: list[str]) -> list[str]:
    """Claim ids in the catalog's order; ValueError naming an unknown id."""
    from normcore.claims import CLAIMS, get_claim

    wanted = [part for item in only for part in item.split(",") if part.strip()]
    ids = {get_claim(w).id for w in wanted}
    return [c for c in CLAIMS if not ids or c in ids]


def cmd_claims(args: argparse.Namespace) -> int:
    from normcore.claims.parallel import ParallelRunner  # torch is imported here, not for --help

    try:
        ids = selected(args.only)
    except ValueError as exc:
        print(f"normscope claims: {exc}", file=sys.stderr)
        return EXIT_INVALID
    if args.quick and args.full:
        print("normscope claims: --quick and --full exclude each other", file=sys.stderr)
        return EXIT_INVALID
    if args.render:
        return render(read_results(args.render), args.out)
    mode = "quick" if args.quick else "full"
    if args.dry_run:
        from normcore.claims import CLAIMS
        from normcore.claims.budget import cost_table, full_cost

        cost = full_cost(args.quick, {c: CLAIMS[c] for c in ids})
        print(f"{mode} mode, estimated from the configs (normcore.claims.budget):")
        print(cost_table(cost))
        return 0
    # shared: claims that reuse an arm's config run it once; a claim's arms run side by side,
    # one process (and one torch thread) per core this process may use
    with ParallelRunner() as runner:
        return run_claims(args, ids, mode, runner)


def run_claims(args: argparse.Namespace, ids: list[str], mode: str, runner: Any) -> int:
    """Run the claims ``ids`` on ``runner``, print their table, publish them with --full."""
    from normcore.claims import run_claim

    results: list[dict[str, Any]] = []
    failed = 0
    load_before = load_average()
    published = os.path.join(args.out, RESULTS) if args.full else None
    stored = read_results(published) if published and os.path.exists(published) else []
    for claim_id in ids:
        print(f"running {claim_id} ({mode}) ...", file=sys.stderr, flush=True)
        start = time.perf_counter()
        try:
            result = run_claim(claim_id, quick=args.quick, runner=runner)
        except Exception as exc:  # one broken experiment must not hide the others' results
            failed += 1
            traceback.print_exc()
            result = failure(claim_id, exc, time.perf_counter() - start)
        result["run_at"] = provenance(start, load_before)
        load_before = load_average()
        results.append(result)
        if args.json:
            write_json(args.json, results)
        if published:
            write_json(published, merged(stored, results))
    print(table(results))
    if args.checks:
        print(checks(results))
    if published:
        render(merged(stored, results), args.out)
    return EXIT_FAILED if failed else 0


def read_results(path: str) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        results = json.load(f)
    if not isinstance(results, list) or not all(isinstance(r, dict) and "id" in r for r in results):
        raise SystemExit(f"normscope claims: {path} holds no list of claim results")
    return results


def merged(stored: list[dict[str, Any]], fresh: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The stored results with the fresh ones in their place, in the catalog's order."""
    from normcore.claims import CLAIMS

    by_id = {r["id"]: r for r in stored} | {r["id"]: r for r in fresh}
    order = list(CLAIMS)
    return sorted(by_id.values(), key=lambda r: order.index(r["id"]) if r["id"] in order else 99)


def render(results: list[dict[str, Any]], out: str) -> int:
    """OUT/claims.md and OUT/claims-report.html from `results`."""
    from app.reports.claims import html_report, markdown

    os.makedirs(out, exist_ok=True)
    notes = NOTES if os.path.exists(os.path.join(out, NOTES)) else None
    for name, text in ((PAGE, markdown(results, notes=notes)), (REPORT, html_report(results))):
        path = os.path.join(out, name)
        with open(f"{path}.part", "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(f"{path}.part", path)
        print(f"wrote {path}", file=sys.stderr)
    return 0


def write_json(path: str, results: list[dict[str, Any]]) -> None:
    """Write atomically: a reader (or a crash) never sees half a file."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = f"{path}.part"
    with open(tmp, "w") as out:
        json.dump(results, out, indent=1)
    os.replace(tmp, path)


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def provenance(start: float, load_before: list[float]) -> dict[str, Any]:
    """Where and when a claim ran: commit, date, machine, wall time, load before and after."""
    import platform
    import subprocess

    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=os.path.dirname(os.path.abspath(__file__)),
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return {
        "commit": commit or "unknown",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()} "
        f"{platform.release()}, torch threads 1 per arm",
        "wall_s": round(time.perf_counter() - start, 1),
        "load_before": load_before,
        "load_after": load_average(),
    }


def failure(claim_id: str, exc: Exception, duration: float) -> dict[str, Any]:
    from normcore.claims import get_claim

    exp = get_claim(claim_id)
    return {
        "id": exp.id,
        "title": exp.title,
        "verdict": "failed",
        "error": f"{exc!r}",
        "checks": [],
        "duration_s": round(duration, 2),
    }


def table(results: list[dict[str, Any]]) -> str:
    """One row per claim: id, verdict, checks passed, seconds, title."""
    rows = [("claim", "verdict", "checks", "time", "title")]
    for r in results:
        passed = sum(c["passed"] for c in r["checks"])
        rows.append(
            (
                r["id"],
                r["verdict"],
                f"{passed}/{len(r['checks'])}",
                f"{r['duration_s']:.1f}s",
                r["title"],
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = []
    for row in rows:
        cells = [c.ljust(w) for c, w in zip(row[:4], widths, strict=True)]
        lines.append("  ".join([*cells, row[4]]))
    return "\n".join(lines)


def checks(results: list[dict[str, Any]]) -> str:
    """Each claim's checks with the measured numbers they compared."""
    lines = []
    for r in results:
        lines.append(f"\n{r['id']}: {r.get('criterion') or r.get('error', '')}")
        for c in r["checks"]:
            lines.append(f"  [{'x' if c['passed'] else ' '}] {c['name']}: {c['detail']}")
    return "\n".join(lines)
