"""One self-contained HTML report of one run, or a comparison of several.

The file must open years later on a machine without network: plotly.js is embedded from the
installed `plotly` package (never a CDN), the figures are plain Plotly JSON inside the page,
and nothing else is loaded. `render_report` is a pure function of runs and their (already
downsampled) frames, so the HTTP endpoint, the CLI and a remote client share it.

Several runs render as a comparison: curves share one plot per metric; per-run panels
(saturation, distributions, gradient norms, drift) sit side by side in columns with the same
colour and axis ranges, so the eye compares like with like.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from app.errors import RunNotFound
from app.frame_arrays import Columns, from_frames
from app.reports import figures as F
from app.reports.figures import PALETTE, RunFrames
from app.series import frame_selection
from app.services.runs import sample_frames
from normcore.frames import decode, summarize

DEFAULT_MAX_POINTS = 400  # frames per run fetched for a report (the server downsamples)


def from_store(
    store: Any, run_ids: Iterable[str], max_points: int = DEFAULT_MAX_POINTS
) -> list[RunFrames]:
    """[(Run, frames)] read from an `app.store.Store`, each run downsampled to max_points
    frames (first and last kept) so a report of a million-step run stays a few MB."""
    out = []
    for run_id in run_ids:
        run = store.get_run(run_id)
        if run is None:
            raise RunNotFound(run_id)
        rows, _total = sample_frames(store, run_id, 0, max_points)
        out.append((run, [decode(blob) for _seq, blob in rows]))
    return out


def from_files(paths: Iterable[Path], max_points: int = DEFAULT_MAX_POINTS) -> list[RunFrames]:
    """[(Run, frames)] from JSON-lines files of frames (``normscope run --out``, ``export``, a
    ``normcore.watch.Watch``), each thinned to max_points as the store does. The run is named
    after its file; its status, step and final metrics are its last frame's."""
    out = []
    for path in paths:
        frames = []
        with open(path, encoding="utf-8") as lines:
            for number, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                try:
                    frame = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path}:{number}: not a JSON frame ({exc.msg})") from None
                if not isinstance(frame, dict) or not isinstance(frame.get("layers"), list):
                    raise ValueError(f"{path}:{number}: a frame needs a 'layers' list")
                frames.append(frame)
        if not frames:
            raise ValueError(f"{path}: holds no frames")
        final: dict[str, Any] = {}
        for frame in frames:
            summarize(frame, final)
        last = frames[-1]
        run = dict(
            id=path.stem,
            label=path.name,
            status=last.get("status"),
            device=last.get("device"),
            step=last.get("step"),
            steps=last.get("step"),
            frame_count=len(frames),
            final=final,
            config={"file": str(path), "frames": len(frames)},
        )
        seqs, _ = frame_selection(_columns(frames), 0, max_points)
        kept = set(seqs.tolist())
        out.append((run, [f for i, f in enumerate(frames) if i in kept]))
    return out


def _columns(frames: list[dict[str, Any]]) -> Columns:
    """Columns of frames read from a file, numbered by position (a file's seqs may repeat)."""
    arrays = from_frames([{**f, "seq": i} for i, f in enumerate(frames)])
    return Columns(
        seq=arrays["seq"],
        step=arrays["step"],
        status=arrays["status"],
        run={"loss": arrays["loss"]},
        evals=arrays["eval"],
        has_eval=arrays["has_eval"],
        names=[],
    )


@lru_cache(maxsize=1)
def plotly_js() -> str:
    """plotly.min.js from the installed plotly package, the same file the dashboard serves."""
    return resources.files("plotly").joinpath("package_data/plotly.min.js").read_text("utf-8")


def json_for_script(value: Any) -> str:
    # '<' escaped so no string in a label or error can close the <script> element.
    text = json.dumps(value, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c")


def _config_table(runs: Sequence[RunFrames]) -> str:
    """One run: its config in compact key/value columns. Several: one column per run, the
    rows that differ first and highlighted (they are what the comparison is about)."""
    configs = [run.get("config") or {} for run, _ in runs]
    keys = list(dict.fromkeys(k for config in configs for k in config))
    if len(runs) == 1:
        pairs = [
            f"<th>{html.escape(k)}</th><td>{html.escape(_plain(configs[0][k]))}</td>" for k in keys
        ]
        rows = ["".join(pairs[i : i + 4]) for i in range(0, len(pairs), 4)]
        return '<table class="config">' + "".join(f"<tr>{r}</tr>" for r in rows) + "</table>"
    differ = [k for k in keys if len({repr(c.get(k)) for c in configs}) > 1]
    head = "".join(f"<th>{html.escape(F.short(run))}</th>" for run, _ in runs)
    rows = []
    for key in differ + [k for k in keys if k not in differ]:
        cells = "".join(f"<td>{html.escape(_plain(c.get(key)))}</td>" for c in configs)
        cls = ' class="diff"' if key in differ else ""
        rows.append(f"<tr{cls}><th>{html.escape(key)}</th>{cells}</tr>")
    return f'<table class="config"><tr><th></th>{head}</tr>{"".join(rows)}</table>'


def _plain(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _fmt(value: Any, pct: bool = False) -> str:
    if not isinstance(value, int | float) or not math.isfinite(value):
        return "–"
    return f"{value:.1%}" if pct else f"{value:.4g}"


def _summary_table(runs: Sequence[RunFrames]) -> str:
    head = (
        "<tr><th>run</th><th>id</th><th>status</th><th>device</th><th>steps</th>"
        "<th>loss</th><th>acc</th><th>held-out loss</th><th>held-out acc</th></tr>"
    )
    rows = []
    for i, (run, _) in enumerate(runs):
        final = run.get("final") or run.get("metrics") or {}
        color = PALETTE[i % len(PALETTE)]
        cells = [
            f'<span class="dot" style="background:{color}"></span>{html.escape(F.short(run))}',
            html.escape(str(run["id"])),
            html.escape(str(run.get("status")))
            + (f" — {html.escape(str(run['error']))}" if run.get("error") else ""),
            html.escape(str(run.get("device") or "–")),
            f"{run.get('step', 0)}/{run.get('steps', run.get('config', {}).get('steps', '?'))}",
            _fmt(final.get("loss")),
            _fmt(final.get("acc"), pct=True),
            _fmt(final.get("eval_loss")),
            _fmt(final.get("eval_acc"), pct=True),
        ]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return f'<table class="summary">{head}{"".join(rows)}</table>'


def _section(title: str, note: str, figure_ids: list[list[str]]) -> str:
    """Rows of panels; each row holds one panel per run (the comparison columns)."""
    rows = "".join(
        f'<div class="row" style="--cols:{len(row)}">'
        + "".join(f'<div class="plot" id="{fid}"></div>' for fid in row)
        + "</div>"
        for row in figure_ids
    )
    return f"<section><h2>{title}</h2><p class='note'>{note}</p>{rows}</section>"


def render_report(
    runs: Sequence[RunFrames], *, title: str | None = None, generated: datetime | None = None
) -> str:
    """The HTML page for `runs` = [(Run JSON, frames)], frames in seq order, any may be empty."""
    if not runs:
        raise ValueError("render_report needs at least one run; got none")
    names = F.display_names([run for run, _ in runs])
    pairs = zip(runs, names, strict=True)
    runs = [({**run, "display": name}, frames) for (run, frames), name in pairs]
    figures: dict[str, dict[str, Any]] = {}

    def add(fig: dict[str, Any]) -> str:
        fid = f"fig{len(figures)}"
        figures[fid] = fig
        return fid

    with_frames = [(run, frames) for run, frames in runs if frames]
    sections = [
        "<section><h2>Runs</h2>" + _summary_table(runs) + "</section>",
        "<section><h2>Configuration</h2><p class='note'>"
        + ("Rows that differ between runs are highlighted." if len(runs) > 1 else "")
        + "</p>"
        + _config_table(runs)
        + "</section>",
    ]
    if with_frames:
        curves = [
            add(F.curves(with_frames, "loss", "loss")),
            add(F.curves(with_frames, "acc", "accuracy")),
        ]
        sections.append(
            _section(
                "Loss and accuracy",
                "Solid: training batch. Dashed: held-out set, model in eval mode. Dotted: "
                "held-out set with batch statistics (norms with running statistics only).",
                [curves],
            )
        )
        sat = [add(F.saturation(run, frames)) for run, frames in with_frames]
        sections.append(
            _section(
                "Saturation map",
                "Fraction of units in the activation's saturated region per layer and step "
                "(sigmoid/tanh: large |x|; ReLU: dead, x ≤ 0). The buttons switch to the "
                "input before the norm.",
                [sat],
            )
        )
        depth = max(len(F.layer_names(frames)) for _, frames in with_frames)
        picked = F.pick_layers(depth)
        rows = []
        for layer in picked:
            row = [
                F.distribution(run, frames, layer)
                for run, frames in with_frames
                if layer < len(F.layer_names(frames))
            ]
            F.share_view(row)
            rows.append([add(fig) for fig in row])
        shown = "" if len(picked) == depth else f" Showing {len(picked)} of {depth} layers."
        sections.append(
            _section(
                "Distribution drift",
                "Each layer's activation input over steps on its fixed bins (colour: share of "
                "values per bin), with the 15th, 50th and 85th percentiles as in the BN "
                "paper's Figure 1." + shown,
                rows,
            )
        )
        for key, name, log, note in (
            ("grad_norm", "gradient norm", True, "‖∇W‖ per layer, log scale."),
            (
                "w1_first",
                "drift from the first probe",
                False,
                "Wasserstein-1 distance of each layer's histogram to its first probe.",
            ),
        ):
            figs = [F.per_layer_lines(run, frames, key, name, log) for run, frames in with_frames]
            F.share_y_range(figs)
            sections.append(_section(name.capitalize(), note, [[add(f) for f in figs]]))

    label = " vs ".join(F.short(run) for run, _ in runs)
    if len(runs) > 1 and len(set(names)) == len(names):
        common = [p for p in str(runs[0][0].get("label", "")).split(" · ") if p not in label]
        label += f" ({' · '.join(common)})" if common else ""
    title = title or (f"NormScope report · {label}" if len(runs) > 1 else f"NormScope · {label}")
    when = (generated or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    kind = f"comparison of {len(runs)} runs" if len(runs) > 1 else "single run"
    meta = f"NormScope report, {kind}, generated {when}."
    return page(title, meta, "\n".join(sections), figures, RUN_STYLE)


STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 1500px;
       padding: 1rem 1.5rem; color: #222; }
h1 { font-size: 1.35rem; margin: .2rem 0; } h2 { font-size: 1.1rem; margin: 1.6rem 0 .3rem; }
.meta, .note { color: #666; margin: .2rem 0 .6rem; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border-bottom: 1px solid #e3e3e3; padding: 3px 10px; text-align: left; }
"""
RUN_STYLE = """
tr.diff { background: #fff4d6; font-weight: 600; }
.dot { display: inline-block; width: .7em; height: .7em; border-radius: 50%;
       margin-right: .4em; }
.row { display: grid; grid-template-columns: repeat(var(--cols), minmax(0, 1fr)); gap: 8px; }
.plot { min-height: 280px; }
"""


def page(title: str, meta: str, body: str, figures: dict[str, dict[str, Any]], style: str) -> str:
    """A self-contained NormScope page: `title` (plain text), `meta` and `body` (HTML), the
    shared look plus `style`, and `figures` drawn into the elements named by their keys."""
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="generator" content="NormScope">\n'
        f"<title>{html.escape(title)}</title>\n<style>{STYLE}{style}</style></head>\n<body>\n"
        f'<h1>{html.escape(title)}</h1>\n<p class="meta">{meta} Self-contained: opens '
        f"offline.</p>\n{body}\n{figure_scripts(figures)}\n</body></html>\n"
    )


def figure_scripts(figures: dict[str, dict[str, Any]]) -> str:
    """plotly.js and the figures as data, drawn into the elements named by their keys."""
    return (
        f"<script>{plotly_js()}</script>\n"
        f'<script type="application/json" id="normscope-figures">{json_for_script(figures)}'
        "</script>\n<script>\n"
        'const figures = JSON.parse(document.getElementById("normscope-figures").textContent);\n'
        "for (const [id, fig] of Object.entries(figures)) {\n"
        "  Plotly.newPlot(id, fig.data, fig.layout, {responsive: true, displaylogo: false});\n"
        "}\n</script>"
    )
