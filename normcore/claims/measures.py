"""Measurements: pure functions from a run's frames (normcore.frames) to numbers and plot series.

Frames may hold None anywhere a value was non-finite (a diverged layer); every function here
skips those values and returns None when nothing measurable is left, so the verdict's checks
fail with "unmeasured" instead of crashing or inventing a number.

Plots are small JSON-ready dicts the dashboard draws without knowing the claim:
``{"title", "x_label", "y_label", "log_x", "log_y", "kind": "line" | "bar",
"traces": [{"name", "x": [...], "y": [...]}]}``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from normcore.claims.checks import finite
from normcore.frames import Frame

Plot = dict[str, Any]


def mean(values: Sequence[Any]) -> float | None:
    good = [v for v in values if finite(v)]
    return sum(good) / len(good) if good else None


def probed(frames: Sequence[Frame]) -> list[Frame]:
    """Frames that carry layer statistics (a diverged final frame may have none)."""
    return [f for f in frames if f.get("layers")]


def layer_names(frames: Sequence[Frame]) -> list[str]:
    good = probed(frames)
    return [layer["name"] for layer in good[0]["layers"]] if good else []


def layer_values(frames: Sequence[Frame], key: str) -> list[list[Any]]:
    """values[layer][probe] of one per-layer field."""
    good = probed(frames)
    if not good:
        return []
    depth = len(good[0]["layers"])
    return [[f["layers"][i].get(key) for f in good] for i in range(depth)]


def tail(values: Sequence[Any], fraction: float) -> list[Any]:
    """The last `fraction` of a series (at least one element)."""
    k = max(1, math.ceil(len(values) * fraction))
    return list(values[-k:])


def relative_drift(frames: Sequence[Frame], fraction: float = 0.5) -> list[float | None]:
    """Per layer: W1 distance to the first histogram, in units of the first std, averaged over
    the last `fraction` of the probes. Scale-free, so BN's unit-variance inputs and a plain
    layer's raw pre-activations are compared on equal terms."""
    w1 = layer_values(frames, "w1_first")
    std = layer_values(frames, "std")
    out = []
    for w1_layer, std_layer in zip(w1, std, strict=True):
        std0 = std_layer[0]
        m = mean(tail(w1_layer, fraction))
        out.append(m / std0 if finite(m, std0) and std0 > 0 else None)
    return out


def final_saturation(frames: Sequence[Frame], key: str = "sat", fraction: float = 0.25):
    """Per layer: the saturated fraction averaged over the last `fraction` of the probes."""
    return [mean(tail(v, fraction)) for v in layer_values(frames, key)]


def band_movement(frames: Sequence[Frame], layer: int = -1) -> float | None:
    """How far one layer's 15/50/85th percentiles wander from their first values: the mean over
    probes of the mean absolute change of the three, in units of the first 15-85 width."""
    good = probed(frames)
    if not good:
        return None
    first = good[0]["layers"][layer]
    width = (first.get("p85") or 0) - (first.get("p15") or 0)
    if not finite(width) or width <= 0:
        return None
    moves = []
    for f in good:
        cur = f["layers"][layer]
        deltas = [cur.get(k) - first[k] for k in ("p15", "p50", "p85") if finite(cur.get(k))]
        moves.append(sum(abs(d) for d in deltas) / 3 / width if len(deltas) == 3 else None)
    if any(m is None for m in moves):
        return None  # a layer that blew up did not stay steady
    return mean(moves)


def evals(frames: Sequence[Frame], key: str = "acc") -> tuple[list[int], list[Any]]:
    """(steps, values) of the held-out evaluations (eval mode)."""
    pts = [(f["step"], f["eval"].get(key)) for f in frames if f.get("eval")]
    return [s for s, _ in pts], [v for _, v in pts]


def final_eval(frames: Sequence[Frame], key: str = "acc") -> float | None:
    """The last held-out evaluation; None when the run diverged or never evaluated."""
    if not frames or frames[-1].get("status") == "diverged":
        return None
    _, values = evals(frames, key)
    return values[-1] if values and finite(values[-1]) else None


def eval_auc(frames: Sequence[Frame]) -> float | None:
    """Mean held-out accuracy over the evaluations: higher means it learned sooner."""
    _, values = evals(frames)
    if not values or any(not finite(v) for v in values):
        return None
    return mean(values)


def ics_means(frames: Sequence[Frame]) -> tuple[list[Any], list[Any]]:
    """Per layer: Santurkar's ||G - G'|| and cos(G, G'), averaged over the probes."""
    rows = [f["ics"] for f in frames if f.get("ics")]
    if not rows:
        return [], []
    depth = len(rows[0])
    l2 = [mean([r[i].get("l2") for r in rows]) for i in range(depth)]
    cos = [mean([r[i].get("cos") for r in rows]) for i in range(depth)]
    return l2, cos


def steps(frames: Sequence[Frame]) -> list[int]:
    return [f["step"] for f in probed(frames)]


def plot(
    title: str,
    x_label: str,
    y_label: str,
    traces: list[dict[str, Any]],
    log_y: bool = False,
    log_x: bool = False,
    kind: str = "line",
) -> Plot:
    """kind: "line" (x numeric) or "bar" (x categories)."""
    return dict(
        title=title,
        x_label=x_label,
        y_label=y_label,
        log_x=log_x,
        log_y=log_y,
        kind=kind,
        traces=traces,
    )


def trace(name: str, x: Sequence[Any], y: Sequence[Any], **extra: Any) -> dict[str, Any]:
    return {"name": name, "x": list(x), "y": list(y), **extra}
