"""The claims lab's results as a page: docs/claims.md (Markdown) and a self-contained HTML
report, both pure functions of the result list `normscope claims --json` writes.

A result (normcore.claims.run_experiment) holds the claim, the experiment, the criterion fixed
before the runs, the verdict, its checks, the regime map (`regimes`: one cell per regime with
its verdict, effects as mean ± standard error over seeds, tuned learning rates and seeds),
small figure specs (`series`) and where it ran (`run_at`: commit, date, machine, wall time,
load). Nothing here measures or judges: the page says what the results say.
"""

from __future__ import annotations

import html
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from app.reports.figures import PALETTE
from app.reports.html import page
from normcore.claims import protocol as P

Result = dict[str, Any]


def _num(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return "—"
    return f"{value:.3g}"


def effect_text(effect: dict[str, Any]) -> str:
    """'name 0.0718 ± 0.0114 (needs > 0)': a cell's effect, mean ± standard error over seeds."""
    se = f" ± {_num(effect.get('se'))}" if effect.get("se") is not None else ""
    needs = f" (needs {effect['needs']})" if effect.get("needs") else ""
    return f"{effect.get('name', '')} {_num(effect.get('value'))}{se}{needs}"


def lr_text(lr: Any) -> str:
    """One rate, or each arm's tuned rate: 'batch 0.003 · group 0.03'."""
    if isinstance(lr, dict):
        return " · ".join(f"{arm} {_num(v)}" for arm, v in lr.items())
    return _num(lr) if lr is not None else "—"


def published_cell(result: Result) -> Result | None:
    cells = result.get("regimes") or []
    return next((c for c in cells if c.get("published")), None)


def regime_counts(result: Result) -> str:
    """'2 hold · 1 fails · 1 no difference measured' over the regime map's cells."""
    counts = Counter(c.get("verdict", P.UNMEASURED) for c in result.get("regimes") or [])
    return " · ".join(f"{n} {verdict}" for verdict, n in counts.items()) or "no regime map"


def provenance(results: Sequence[Result]) -> dict[str, Any]:
    """What the page says about where the results came from: commits, dates, machine, wall."""
    runs = [r.get("run_at") or {} for r in results]
    return {
        "commits": sorted({r.get("commit", "unknown") for r in runs}),
        "first": min((r["date"] for r in runs if r.get("date")), default="?"),
        "last": max((r["date"] for r in runs if r.get("date")), default="?"),
        "machines": sorted({r["machine"] for r in runs if r.get("machine")}),
        "wall_s": sum(float(r.get("duration_s") or 0.0) for r in results),
        "loads": [(r.get("load_before"), r.get("load_after")) for r in runs],
        "modes": sorted({"quick" if r.get("quick") else "full" for r in results}),
    }


PROTOCOL = (
    f"every arm runs with several seeds ({len(P.seeds(True))} quick, {len(P.seeds(False))} "
    "full); every tuned arm's learning rate is chosen on a validation split carved from the "
    f"training data ({P.VAL_FRACTION:.0%}) over the log grid {', '.join(map(str, P.LR_GRID))} "
    "(quick: every other value) and reported on the test split, while a published setting "
    "runs at its published rate; a comparison counts only beyond "
    f"{P.SE_FACTOR:g} standard errors of the difference over seeds (Welch's), otherwise "
    '"no difference measured"; a baseline must train (validation accuracy '
    f"+{P.TRAIN_GAIN:g} over the run) and its layers must move (weights travel "
    f'{P.MOVE_MIN:g} of their norm), otherwise the cell reads "degenerate baseline"; the '
    "criteria are fixed in code before the runs. A claim's verdict is its published (or "
    "closest) cell's; the other cells are its regime map."
)


# --- Markdown -------------------------------------------------------------------------------


def _md(text: Any) -> str:
    """A table cell: no line breaks, no column separators."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown(results: Sequence[Result], *, notes: str | None = None) -> str:
    """docs/claims.md: provenance, the protocol, the verdict table, then one section per
    claim with its regime map (effects, learning rates, seeds) and checks."""
    prov = provenance(results)
    lines = [
        f"# Claims lab: {' and '.join(prov['modes'])}-mode results",
        "",
        "Written by `normscope claims --full` from `claims-results/full.json`; do not edit by "
        "hand (rerun, or `normscope claims --render FILE`)."
        + (f" Notes by hand on earlier runs: [{notes}]({notes})." if notes else ""),
        "",
        f"- commit: {', '.join(prov['commits'])}",
        f"- finished: the first claim {prov['first']}, the last {prov['last']} (UTC)",
        f"- machine: {'; '.join(prov['machines']) or 'unknown'}",
        f"- wall time, all claims: {prov['wall_s'] / 60:.1f} min",
        "- load average (1, 5, 15 min) before the first claim and after the last: "
        f"{_load(prov['loads'])}",
        "",
        "## The protocol (normcore/claims/protocol.py)",
        "",
        PROTOCOL,
        "",
        "## Verdicts",
        "",
        "| claim | verdict | published cell | regime map | checks | wall | title |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        cell = published_cell(r)
        passed = sum(bool(c.get("passed")) for c in r.get("checks") or [])
        lines.append(
            "| "
            + " | ".join(
                _md(x)
                for x in (
                    f"[{r['id']}](#{r['id'].lower()})",
                    f"**{r.get('verdict')}**",
                    cell.get("regime") if cell else "—",
                    regime_counts(r),
                    f"{passed}/{len(r.get('checks') or [])}",
                    f"{float(r.get('duration_s') or 0) / 60:.1f} min",
                    r.get("title", ""),
                )
            )
            + " |"
        )
    for r in results:
        lines += ["", *_md_claim(r)]
    return "\n".join(lines) + "\n"


def _load(loads: list[tuple[Any, Any]]) -> str:
    """'0.84, 1.48, 1.5 → 2.93, 3, 3.05': the load average before the first claim and after
    the last."""
    if not loads:
        return "—"

    def triple(values: Any) -> str:
        return ", ".join(_num(x) for x in values) if values else "?"

    return f"{triple(loads[0][0])} → {triple(loads[-1][1])}"


def _md_claim(r: Result) -> list[str]:
    run_at = r.get("run_at") or {}
    lines = [
        f'<a id="{r["id"].lower()}"></a>',
        f"## {r['id']} — {r.get('title', '')}",
        "",
        f"> {r.get('claim', '')}",
        "",
        f"**Experiment.** {r.get('experiment', '')}",
        "",
        f"**Criterion.** {r.get('criterion') or r.get('error', '')}",
        "",
        f"**Verdict: {r.get('verdict')}** — {'quick' if r.get('quick') else 'full'} mode, "
        f"{float(r.get('duration_s') or 0):.0f} s wall, commit {run_at.get('commit', '?')}, "
        f"{run_at.get('date', '?')}.",
    ]
    cells = r.get("regimes") or []
    if cells:
        lines += [
            "",
            "| regime | verdict | effects (mean ± standard error over seeds) | lr | seeds |",
            "|---|---|---|---|---|",
        ]
        for c in cells:
            regime = c.get("regime", "") + (" (published)" if c.get("published") else "")
            effects = "<br>".join(_md(effect_text(e)) for e in c.get("effects") or []) or "—"
            seeds = ", ".join(str(s) for s in c.get("seeds") or []) or "—"
            verdict = c.get("verdict", P.UNMEASURED)
            lines.append(
                f"| {_md(regime)} | {_md(verdict)} | {effects} | {_md(lr_text(c.get('lr')))} "
                f"| {seeds} |"
            )
    if r.get("checks"):
        lines += ["", "Checks:", ""]
        for c in r["checks"]:
            lines.append(f"- [{'x' if c.get('passed') else ' '}] {c['name']}: {c['detail']}")
    return lines


# --- HTML -----------------------------------------------------------------------------------


def plotly_figure(spec: dict[str, Any]) -> dict[str, Any]:
    """A result's figure spec (normcore.claims.measures.plot) as a Plotly figure: the same
    drawing as the dashboard's claim_figures.figure, so the report matches the Claims view."""
    bar = spec.get("kind") == "bar"
    groups: list[Any] = []
    data = []
    for i, t in enumerate(spec.get("traces") or []):
        group = t.get("group")
        first = group is None or group not in groups
        if first and group is not None:
            groups.append(group)
        color = PALETTE[(i if group is None else groups.index(group)) % len(PALETTE)]
        if bar:
            x = [str(v) for v in t["x"]]
            data.append({"type": "bar", "name": t.get("name"), "x": x, "y": t["y"]})
            data[-1]["marker"] = {"color": color}
            continue
        trace = {
            "type": "scatter",
            "mode": "lines" if len(t["x"]) > 40 else "lines+markers",
            "name": t.get("name"),
            "x": t["x"],
            "y": t["y"],
            "line": {"color": color, "width": 1.8, "dash": t.get("dash") or "solid"},
            "marker": {"size": 5, "color": color},
        }
        if t.get("error"):
            trace["error_y"] = {"type": "data", "array": t["error"], "visible": True}
        if group is not None:
            trace.update(legendgroup=str(group), showlegend=first)
        data.append(trace)

    def axis(label: Any, log: Any, category: bool = False) -> dict[str, Any]:
        kind = "category" if category else "log" if log else "linear"
        return {"title": {"text": label or ""}, "type": kind, "automargin": True}

    layout = {
        "title": {"text": spec.get("title", ""), "font": {"size": 13}, "x": 0.01},
        "height": 300,
        "margin": {"l": 55, "r": 15, "t": 40, "b": 45},
        "barmode": "group" if bar else None,
        "xaxis": axis(spec.get("x_label"), spec.get("log_x"), bar),
        "yaxis": axis(spec.get("y_label"), spec.get("log_y")),
        "legend": {"font": {"size": 10}},
    }
    return {"data": data, "layout": layout}


CELL_COLORS = {  # the Claims view's colours (frontend/js/claim_figures.js CELL_COLORS)
    P.HOLDS: ("#006b4f", "#e3f5ef"),
    P.FAILS: ("#9c4200", "#fbece2"),
    P.NO_DIFF: ("#4a4f57", "#eef0f3"),
    P.DEGENERATE: ("#7a5a00", "#fcf3dc"),
    P.UNMEASURED: ("#4a4f57", "#ffffff"),
}


def _e(text: Any) -> str:
    return html.escape(str(text))


def _html_cells(cells: Iterable[dict[str, Any]]) -> str:
    out = []
    for c in cells:
        verdict = c.get("verdict", P.UNMEASURED)
        fg, bg = CELL_COLORS.get(verdict, CELL_COLORS[P.UNMEASURED])
        border = "2px solid currentColor" if c.get("published") else "1px solid #d0d4da"
        effects = "".join(f"<li>{_e(effect_text(e))}</li>" for e in c.get("effects") or [])
        seeds = ", ".join(str(s) for s in c.get("seeds") or [])
        out.append(
            f'<div class="cell" style="color:{fg};background:{bg};border:{border}">'
            f"<strong>{_e(c.get('regime', ''))}</strong>"
            + (" · published setting" if c.get("published") else "")
            + f"<div class='v'>{_e(verdict)}</div><ul>{effects}</ul>"
            f"<div class='m'>seeds {_e(seeds)} · lr {_e(lr_text(c.get('lr')))}</div></div>"
        )
    return f'<div class="map">{"".join(out)}</div>' if out else ""


def html_report(results: Sequence[Result]) -> str:
    """One self-contained page (plotly.js embedded, opens offline) of every claim's result."""
    prov = provenance(results)
    figures: dict[str, dict[str, Any]] = {}
    rows, sections = [], []
    for r in results:
        cell = published_cell(r)
        passed = sum(bool(c.get("passed")) for c in r.get("checks") or [])
        rows.append(
            f"<tr><td><a href='#{_e(r['id'])}'>{_e(r['id'])}</a></td>"
            f"<td><b>{_e(r.get('verdict'))}</b></td><td>{_e(cell['regime'] if cell else '—')}"
            f"</td><td>{_e(regime_counts(r))}</td><td>{passed}/{len(r.get('checks') or [])}</td>"
            f"<td>{float(r.get('duration_s') or 0) / 60:.1f} min</td><td>{_e(r.get('title'))}</td>"
            "</tr>"
        )
        plots = []
        for spec in r.get("series") or []:
            fid = f"fig{len(figures)}"
            figures[fid] = plotly_figure(spec)
            plots.append(f'<div class="plot" id="{fid}"></div>')
        checks = "".join(
            f"<li class='{'pass' if c.get('passed') else 'fail'}'>"
            f"{'✓' if c.get('passed') else '✗'} <b>{_e(c['name'])}</b> — {_e(c['detail'])}</li>"
            for c in r.get("checks") or []
        )
        run_at = r.get("run_at") or {}
        sections.append(
            f"<section id='{_e(r['id'])}'><h2>{_e(r['id'])} — {_e(r.get('title'))}</h2>"
            f"<blockquote>{_e(r.get('claim'))}</blockquote>"
            f"<p><b>Experiment.</b> {_e(r.get('experiment'))}</p>"
            f"<p><b>Criterion.</b> {_e(r.get('criterion') or r.get('error', ''))}</p>"
            f"<p><b>Verdict: {_e(r.get('verdict'))}</b> <span class='meta'>"
            f"{'quick' if r.get('quick') else 'full'} mode, "
            f"{float(r.get('duration_s') or 0):.0f} s wall, commit "
            f"{_e(run_at.get('commit', '?'))}, {_e(run_at.get('date', '?'))}</span></p>"
            f"{_html_cells(r.get('regimes') or [])}<ul class='checks'>{checks}</ul>"
            f"<div class='plots'>{''.join(plots)}</div></section>"
        )
    meta = (
        f"Commit {_e(', '.join(prov['commits']))}; the first claim finished "
        f"{_e(prov['first'])}, the last {_e(prov['last'])} UTC, on "
        f"{_e('; '.join(prov['machines']) or 'unknown')}; {prov['wall_s'] / 60:.1f} min wall in "
        f"all; load average before → after: {_e(_load(prov['loads']))}."
    )
    body = (
        f"<h2>The protocol</h2><p>{_e(PROTOCOL)}</p>\n<h2>Verdicts</h2>\n<table><tr>"
        "<th>claim</th><th>verdict</th><th>published cell</th><th>regime map</th>"
        f"<th>checks</th><th>wall</th><th>title</th></tr>{''.join(rows)}</table>\n"
        + "".join(sections)
    )
    title = f"NormScope claims lab: {' and '.join(prov['modes'])}-mode results"
    return page(title, meta, body, figures, CLAIMS_STYLE)


CLAIMS_STYLE = """
body { max-width: 1300px; }
blockquote { margin: .4rem 0; padding-left: .8rem; border-left: 3px solid #ccc; color: #444; }
.map { display: grid; grid-template-columns: repeat(auto-fill, minmax(15rem, 1fr));
  gap: .5rem; margin: .6rem 0; }
.cell { padding: .5rem .6rem; border-radius: 6px; font-size: 13px; }
.cell .v { font-weight: 600; } .cell ul { margin: .2rem 0; padding-left: 1rem; }
.cell .m { color: #555; }
.checks { list-style: none; padding-left: 0; } .checks .pass { color: #006b4f; }
.checks .fail { color: #9c4200; }
.plots { display: grid; grid-template-columns: repeat(auto-fill, minmax(380px, 1fr));
  gap: 8px; }
"""
