"""C1 on the protocol (protocol.py): higher layers' inputs drift more, and BN steadies them.

The seed's C1: every iteration changes the lower layers' parameters, so the input distribution
of higher layers changes every iteration, more so with depth; BN reduces it. No paper
measures drift by depth; the nearest published picture is the BN paper's Figure 1 (one last
hidden layer's percentiles drift without BN), so the verdict cell is Figure 1's net (3 x 100
sigmoid, batch 60, N(0, 0.1) init; the same runs as FIG1's cell) and the regime map varies
depth and activation one factor at a time. The first edition ran one seed at one shared rate
(momentum 0.1) on a net whose no-norm arm did not train; here each arm's rate is tuned on
validation and a no-norm arm that does not train makes the cell read "degenerate baseline".

Measure (``relative_drift``, unchanged from the first edition): per hidden layer, the W1
distance of its activation-input histogram to the first probe's, in units of the first
probe's std, averaged over the second half of training; scale-free, so BN's unit-variance
inputs and a plain layer's raw pre-activations compare on equal terms.

Criterion, fixed before the runs: per seed, at each arm's chosen rate,
- *growth*: no norm's drift in the top hidden layer minus its drift in the first;
- *top drift*: each arm's drift in the top hidden layer.
A cell *holds* when growth is above 0 beyond two standard errors over seeds AND no norm's top
drift is above BN's beyond two standard errors; it *fails* when either is established the
other way; otherwise it reads as the part not established. Both arms must train (validation
accuracy +0.05, every layer's weights move), or the cell reads "degenerate baseline".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from normcore.claims import protocol as P
from normcore.claims.base import Experiment
from normcore.claims.checks import Numbers, finite
from normcore.claims.figure1 import figure1_net
from normcore.claims.measures import layer_values, mean, plot, relative_drift, steps, trace
from normcore.config import RunConfig
from normcore.frames import Frame

ARMS = ("none", "batch")
CLOSEST = "sigmoid, depth 3 (Fig. 1's net)"
NOT_PUBLISHED = (
    "drift by depth is the seed's claim, not a published measurement; the verdict cell is "
    "the BN paper's Figure 1 net (FIG1's runs)"
)


def regimes(quick: bool) -> dict[str, dict[str, Any]]:
    cells: dict[str, dict[str, Any]] = {
        CLOSEST: {},
        "sigmoid, depth 6": {"depth": 6},
        "relu, depth 6": {"activation": "relu", "depth": 6},
    }
    if not quick:
        # FIG1's ReLU cell: the same runs. (A tanh depth-6 cell was dropped for the full
        # mode's budget: depth is the claim's axis, sigmoid and ReLU span it.)
        cells["relu, depth 3"] = {"activation": "relu"}
    return cells


def deep_arms(quick: bool) -> dict[str, RunConfig]:
    """Figure 1's net with and without BN, deepened per regime; the Fig. 1 cell's configs are
    FIG1's, so a shared runner trains them once."""
    arms = {n: figure1_net(quick, norm=n) for n in ARMS}
    return P.sweep_configs(arms, regimes(quick), P.seeds(quick), P.grid(quick))


def _growth(drift: Sequence[Any]) -> float | None:
    return drift[-1] - drift[0] if len(drift) >= 2 and finite(drift[0], drift[-1]) else None


def _top(drift: Sequence[Any]) -> Any:
    return drift[-1] if drift else None


def verdict_c1(n: Numbers) -> dict[str, Any]:
    """numbers["cells"]: [{regime, published, lr: {arm: lr}, drift: {arm: [[per layer] per
    seed]}, baseline: {arm: {ok, reasons}}}]; adds comparisons, effects and verdicts."""
    cells, checks = [], []
    for cell in n["cells"]:
        growth = [_growth(d) for d in cell["drift"]["none"]]
        tops = {arm: [_top(d) for d in cell["drift"][arm]] for arm in ARMS}
        parts = [
            (
                "grows",
                "drift growth without BN, top - first layer",
                P.compare(growth, [0.0] * len(growth)),
            ),
            ("steadier", "top layer's drift, none - BN", P.compare(tops["none"], tops["batch"])),
        ]
        judged, checked = P.judge_parts(cell, parts, "drift grows with depth, BN reduces it")
        cells.append(judged)
        checks.append(checked)
    criterion = (
        "Per regime, each arm's lr tuned on validation, both arms training: without BN the "
        "top hidden layer's input drift (W1 to its first histogram in units of its first "
        "std, second half of training) exceeds the first layer's, and exceeds BN's top-layer "
        "drift, each beyond two standard errors over seeds (holds); either established the "
        f"other way fails. {NOT_PUBLISHED}."
    )
    return P.judged(n, cells, criterion, checks)


def _by_layer(runs: Sequence[Sequence[Any]]) -> list[Any]:
    """Per layer, the mean over seeds of a per-layer measure (None where no seed has it)."""
    depth = max((len(r) for r in runs), default=0)
    return [mean([r[i] for r in runs if i < len(r)]) for i in range(depth)]


def measure_c1(frames: dict[str, list[Frame]], quick: bool):
    measures = {"drift": relative_drift}
    cells = [
        {
            **P.tuned_cell(frames, regime, ARMS, P.seeds(quick), P.grid(quick), measures),
            "published": regime == CLOSEST,
            "matched": False,
        }
        for regime in regimes(quick)
    ]
    by_depth = [
        trace(f"{c['regime']} · {arm}", *_numbered(_by_layer(c["drift"][arm])))
        for c in cells
        for arm in ARMS
    ]
    first = P.seeds(quick)[0]
    cell = cells[0]
    deepest = []
    for arm in ARMS:
        run = frames[P.key(CLOSEST, arm, cell["lr"][arm], first)]
        w1 = layer_values(run, "w1_first")
        deepest.append(trace(arm, steps(run), w1[-1] if w1 else []))
    series = [
        plot(
            "Input drift by depth (mean over seeds, lr tuned per arm)",
            "hidden layer (depth)",
            "drift (W1 to the first histogram / first std)",
            by_depth,
            log_y=True,
        ),
        plot(
            f"Fig. 1's net, seed {first}: top hidden layer's W1 to its first histogram",
            "step",
            "W1",
            deepest,
        ),
    ]
    return {"cells": cells, "not_published": NOT_PUBLISHED}, series


def _numbered(values: Sequence[Any]) -> tuple[list[int], list[Any]]:
    return list(range(1, len(values) + 1)), list(values)


C1 = Experiment(
    id="C1",
    title="Higher layers' inputs drift more; BN steadies them",
    claim=(
        "Every iteration changes the lower layers' parameters, so the input distribution of "
        "higher layers changes every iteration; the effect grows with depth. BN reduces it."
    ),
    experiment=(
        "Figure 1's MLP (100 units a layer, batch 60, N(0, 0.1) init, plain SGD; digits and "
        "300 steps quick, Fashion-MNIST and 500 steps full) with and without BN, each arm's "
        "lr tuned on validation, 2 seeds quick / 5 full; regimes: sigmoid depth 3 (Fig. 1), "
        "sigmoid depth 6, ReLU depth 6 (and in full mode ReLU depth 3). "
        "Per hidden layer: the W1 distance of its input histogram to the first one, in units "
        "of the first std, over the second half of training. The no-norm arm must train."
    ),
    configs=deep_arms,
    measure=measure_c1,
    verdict=verdict_c1,
)
