"""Plotly figures of a report, as plain JSON-ready dicts (no plotly Python objects: the page
embeds them as data, and building dicts is fast and needs no validation round trip).

Every builder takes a Run JSON and its frames (seq order; the frame layout is in
`normcore.frames`) and tolerates None values: a diverged layer shows as a gap, not an error.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

Frame = dict[str, Any]
RunFrames = tuple[dict[str, Any], list[Frame]]

MAX_LAYERS_SHOWN = 8  # distribution panels per run: a 30-layer net must not make 150 charts
MAX_HEATMAP_COLUMNS = 150  # probes per distribution heatmap; keeps a 4-run report a few MB
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b")


def _num(value: Any) -> float | None:
    return value if isinstance(value, int | float) and math.isfinite(value) else None


def layer_names(frames: list[Frame]) -> list[str]:
    return [layer["name"] for layer in frames[-1].get("layers", [])] if frames else []


def _series(frames: list[Frame], key: str, layer: int | None = None) -> list[float | None]:
    if layer is None:
        return [_num(f.get(key)) for f in frames]
    return [_num(f["layers"][layer].get(key)) if layer < len(f["layers"]) else None for f in frames]


def pick_layers(n: int) -> list[int]:
    """Up to MAX_LAYERS_SHOWN layer indices, evenly spread, first and last always in."""
    if n <= MAX_LAYERS_SHOWN:
        return list(range(n))
    step = (n - 1) / (MAX_LAYERS_SHOWN - 1)
    return sorted({round(i * step) for i in range(MAX_LAYERS_SHOWN)})


def _layout(title: str, **extra: Any) -> dict[str, Any]:
    base = {
        "title": {"text": title, "font": {"size": 13}, "x": 0.01, "xanchor": "left"},
        "margin": {"l": 50, "r": 20, "t": 36, "b": 36},
        "height": 280,
        "legend": {"font": {"size": 10}},
        "xaxis": {"title": {"text": "step"}},
    }
    base.update(extra)
    return base


def curves(runs: Sequence[RunFrames], metric: str, title: str) -> dict[str, Any]:
    """One plot, every run: training batch (solid), held-out (dashed), BN batch-stats (dotted)."""
    traces = []
    for i, (run, frames) in enumerate(runs):
        color, name = PALETTE[i % len(PALETTE)], short(run)
        steps = [f["step"] for f in frames]
        traces.append(_line(steps, _series(frames, metric), f"{name} train", color))
        evals = [f for f in frames if f.get("eval")]
        for key, dash, what in (
            (metric, "dash", "held-out"),
            (f"{metric}_batch", "dot", "batch stats"),
        ):
            ys = [_num(f["eval"].get(key)) for f in evals]
            if any(y is not None for y in ys):
                xs = [f["step"] for f in evals]
                traces.append(_line(xs, ys, f"{name} {what}", color, dash=dash, markers=True))
    layout = _layout(title)
    if metric == "loss":  # log: a diverging run must not flatten every other curve
        layout["yaxis"] = {"type": "log"}
    return {"data": traces, "layout": layout}


def _line(xs, ys, name, color, *, dash="solid", markers=False, width=1.5) -> dict[str, Any]:
    return {
        "type": "scatter",
        "mode": "lines+markers" if markers else "lines",
        "x": xs,
        "y": ys,
        "name": name,
        "line": {"color": color, "dash": dash, "width": width},
        "marker": {"size": 4},
    }


def short(run: dict[str, Any]) -> str:
    """The run's name in legends and titles (`display_names` sets `display`)."""
    return run.get("display") or run.get("label") or run["id"]


def display_names(runs: Sequence[dict[str, Any]]) -> list[str]:
    """Names that tell compared runs apart: the parts of their labels that differ
    ('none' vs 'batch'), else the config fields that differ ('lr=0.1'), else the ids."""
    labels = [str(run.get("label") or run["id"]) for run in runs]
    if len(runs) < 2:
        return labels
    parts = [label.split(" · ") for label in labels]
    if len({len(p) for p in parts}) == 1:
        differ = [i for i in range(len(parts[0])) if len({p[i] for p in parts}) > 1]
        if differ:
            names = [" · ".join(p[i] for i in differ) for p in parts]
            if len(set(names)) == len(names):
                return names
    configs = [run.get("config") or {} for run in runs]
    keys = [k for k in configs[0] if len({repr(c.get(k)) for c in configs}) > 1]
    names = [", ".join(f"{k}={c.get(k)}" for k in keys[:3]) for c in configs]
    if all(names) and len(set(names)) == len(names):
        return names
    return [str(run["id"]) for run in runs]


def saturation(run: dict[str, Any], frames: list[Frame]) -> dict[str, Any]:
    """Layers x steps; the buttons switch between after and before the norm."""
    names, steps = layer_names(frames), [f["step"] for f in frames]
    after = [_series(frames, "sat", i) for i in range(len(names))]
    before = [_series(frames, "sat_pre", i) for i in range(len(names))]
    trace = {
        "type": "heatmap",
        "x": steps,
        "y": names,
        "z": after,
        "zmin": 0,
        "zmax": 1,
        "colorscale": "Reds",
        "colorbar": {"title": {"text": "saturated"}, "thickness": 10},
        "hovertemplate": "%{y} step %{x}: %{z:.1%}<extra></extra>",
    }
    buttons = [
        {"label": "after norm", "method": "restyle", "args": [{"z": [after]}]},
        {"label": "before norm", "method": "restyle", "args": [{"z": [before]}]},
    ]
    menu = {
        "type": "buttons",
        "direction": "right",
        "x": 1,
        "xanchor": "right",
        "y": 1.02,
        "yanchor": "bottom",
        "pad": {"t": 0, "b": 0},
        "font": {"size": 10},
        "buttons": buttons,
    }
    layout = _layout(f"saturation · {short(run)}", updatemenus=[menu])
    layout["yaxis"] = {"autorange": "reversed"}
    return {"data": [trace], "layout": layout}


def _thin(frames: list[Frame], limit: int) -> list[Frame]:
    if len(frames) <= limit:
        return frames
    idx = sorted({round(i * (len(frames) - 1) / (limit - 1)) for i in range(limit)})
    return [frames[i] for i in idx]


def distribution(run: dict[str, Any], frames: list[Frame], layer: int) -> dict[str, Any]:
    """Histogram over steps on the layer's fixed bins, with the 15/50/85th percentiles."""
    cols = _thin(frames, MAX_HEATMAP_COLUMNS)
    hist = cols[0]["layers"][layer]["hist"]
    lo, hi, bins = hist["lo"], hist["hi"], len(hist["counts"])
    centers = [lo + (k + 0.5) * (hi - lo) / bins for k in range(bins)]
    z: list[list[float | None]] = [[None] * len(cols) for _ in range(bins)]
    occupied: set[int] = set()
    for j, frame in enumerate(cols):
        counts = frame["layers"][layer]["hist"]["counts"] if layer < len(frame["layers"]) else []
        total = sum(c for c in counts if c) or 1
        for k, count in enumerate(counts[:bins]):
            share = round((count or 0) / total, 4)
            z[k][j] = share
            if share >= 0.001:
                occupied.add(k)
    # Zoom to the bins that ever hold mass (one bin of margin): fixed edges are chosen wide.
    width = (hi - lo) / bins
    first, last = (min(occupied), max(occupied)) if occupied else (0, bins - 1)
    view = [lo + max(first - 1, 0) * width, lo + min(last + 2, bins) * width]
    steps = [f["step"] for f in cols]
    name = cols[-1]["layers"][layer]["name"]
    traces: list[dict[str, Any]] = [
        {
            "type": "heatmap",
            "x": steps,
            "y": centers,
            "z": z,
            "colorscale": "Viridis",
            "showscale": False,
            "hovertemplate": "step %{x}, x≈%{y:.2f}: %{z:.1%}<extra></extra>",
        }
    ]
    for key, dash in (("p15", "dot"), ("p50", "solid"), ("p85", "dot")):
        traces.append(_line(steps, _series(cols, key, layer), key, "#ffffff", dash=dash, width=1))
    layout = _layout(f"{name} input distribution · {short(run)}", showlegend=False)
    layout["yaxis"] = {"range": view, "title": {"text": "activation input"}}
    return {"data": traces, "layout": layout}


def share_view(figures: list[dict[str, Any]]) -> None:
    """One y range (the union of the panels' own) for a row of distribution panels."""
    ranges = [fig["layout"]["yaxis"]["range"] for fig in figures]
    if ranges:
        union = [min(r[0] for r in ranges), max(r[1] for r in ranges)]
        for fig in figures:
            fig["layout"]["yaxis"]["range"] = union


def per_layer_lines(
    run: dict[str, Any], frames: list[Frame], key: str, title: str, log: bool
) -> dict[str, Any]:
    steps = [f["step"] for f in frames]
    names = layer_names(frames)
    traces = []
    for i, name in enumerate(names):
        ys = _series(frames, key, i)
        if log:
            ys = [y if y is not None and y > 0 else None for y in ys]
        traces.append(_line(steps, ys, name, PALETTE[i % len(PALETTE)]))
    layout = _layout(f"{title} · {short(run)}")
    if log:
        layout["yaxis"] = {"type": "log"}
    return {"data": traces, "layout": layout}


def share_y_range(figures: list[dict[str, Any]]) -> None:
    """Give side-by-side panels one y range, so runs compare at a glance (log aware)."""
    values = [
        y for fig in figures for t in fig["data"] for y in t["y"] if isinstance(y, int | float)
    ]
    if not values:
        return
    log = figures[0]["layout"].get("yaxis", {}).get("type") == "log"
    if log:
        values = [math.log10(v) for v in values if v > 0]
        if not values:
            return
    lo, hi = min(values), max(values)
    pad = (hi - lo) * 0.05 or 0.5
    for fig in figures:
        fig["layout"].setdefault("yaxis", {})["range"] = [lo - pad, hi + pad]
