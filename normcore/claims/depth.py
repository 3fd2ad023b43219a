"""C1: what happens to layer inputs with depth (C2 is in saturation.py, ICS in ics_protocol.py).

Each experiment is (a) a few RunConfigs, (b) a measurement from their frames to numbers,
(c) a pure verdict from those numbers (see checks.py for the rules every verdict follows).
"""

from __future__ import annotations

from typing import Any

from normcore.claims.base import Experiment, arm_config
from normcore.claims.checks import (
    RANK_MIN,
    Numbers,
    combine,
    grows_with_depth,
    last,
    lower,
)
from normcore.claims.measures import (
    layer_values,
    plot,
    relative_drift,
    steps,
    trace,
)
from normcore.config import RunConfig
from normcore.frames import Frame

# --- C1, C2, ICS, Figure 1, C3: depth and the second shift/scale ------------------------


def verdict_c1(n: Numbers) -> dict[str, Any]:
    """numbers: drift_none, drift_batch — relative input drift per hidden layer."""
    checks = [
        grows_with_depth("drift grows with depth without a norm", n["drift_none"], "drift"),
        lower(
            "BN reduces the deepest layer's drift",
            last(n["drift_batch"]),
            last(n["drift_none"]),
            "drift with BN",
            "without",
        ),
    ]
    criterion = (
        "Without a norm, each layer's input drift (W1 distance to its first histogram, in "
        f"units of its first std) rises with depth (Spearman > {RANK_MIN}); with BN the "
        "deepest hidden layer drifts less than without."
    )
    return combine(criterion, checks, n)


# --- (a) arms and (b) measurements ------------------------------------------------------


def deep_arms(quick: bool) -> dict[str, RunConfig]:
    """C1's runs: a deep sigmoid MLP with and without BN.

    PyTorch's default init is Glorot & Bengio's (2010) "standard" U(-1/sqrt(n), 1/sqrt(n)),
    the setting in which they saw deep sigmoid nets' top layer saturate; SGD with momentum 0.9.
    """
    size = dict(depth=8, width=32, steps=400, probe_every=10, eval_every=100)
    if not quick:
        size = dict(depth=10, width=100, steps=4000, probe_every=40, eval_every=500)
    return {
        n: arm_config(quick, norm=n, optimizer="momentum", lr=0.1, ics=True, **size)
        for n in ("none", "batch")
    }


def _per_layer_plot(title: str, y_label: str, arms: dict[str, list[Any]], log_y=False):
    traces = [trace(arm, range(1, len(v) + 1), v) for arm, v in arms.items()]
    return plot(title, "hidden layer (depth)", y_label, traces, log_y)


def _layer_over_time(frames, key: str, layer: int, name: str) -> dict[str, Any]:
    values = layer_values(frames, key)
    return trace(name, steps(frames), values[layer] if values else [])


def _by_depth(
    frames: dict[str, list[Frame]],
    per_layer,
    prefix: str,
    by_depth: tuple[str, str],
    key: str,
    deepest: tuple[str, str],
):
    """C1's shape: a per-layer measure for each arm (numbers and a plot by
    depth) plus the deepest layer's `key` over time."""
    by_arm = {arm: per_layer(frames[arm]) for arm in ("none", "batch")}
    numbers = {f"{prefix}_{arm}": value for arm, value in by_arm.items()}
    series = [
        _per_layer_plot(*by_depth, by_arm),
        plot(
            deepest[0],
            "step",
            deepest[1],
            [_layer_over_time(frames[a], key, -1, a) for a in ("none", "batch")],
        ),
    ]
    return numbers, series


def measure_c1(frames: dict[str, list[Frame]], quick: bool):
    deepest = ("Deepest layer: W1 distance to its first histogram", "W1")
    return _by_depth(
        frames,
        relative_drift,
        "drift",
        ("Input drift by depth (W1 to first probe / first std)", "drift"),
        "w1_first",
        deepest,
    )


C1 = Experiment(
    id="C1",
    title="Higher layers' inputs drift more; BN steadies them",
    claim=(
        "Every iteration changes the lower layers' parameters, so the input distribution of "
        "higher layers changes every iteration; the effect grows with depth. BN reduces it."
    ),
    experiment=(
        "A deep sigmoid MLP on digits (8x32 quick, 10x100 full; default init, SGD with "
        "momentum 0.9, lr 0.1), trained with and without BN from the same seed. Per hidden "
        "layer: the W1 distance of its input histogram to the first one, in units of the "
        "first std, over the second half of training."
    ),
    configs=deep_arms,
    measure=measure_c1,
    verdict=verdict_c1,
)
