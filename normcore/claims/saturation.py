"""C2 on the protocol: Glorot & Bengio's (2010) Fig. 2 first, then its neighbourhood.

The seed's C2: changes in low layers, amplified through depth, push higher-layer inputs into
the saturation region of the activation, which stops learning early. The sharpest published
picture is Glorot & Bengio's Fig. 2 (4 hidden sigmoid layers, standard init U(-1/sqrt(n),
1/sqrt(n))): the top hidden layer's outputs are driven to 0 early in training while the lower
layers stay near 0.5, and training plateaus meanwhile.

Criterion, fixed before the runs (docs/saturation.md holds the script experiments that chose
the measure; the criterion was not changed after these runs):

- per seed, over the probes of the first ``window`` steps, the largest excess of the top
  hidden layer's graded saturation (``sat_graded``: 1 - mean slope / peak slope) over the mean
  of the lower layers': ``top_excess``;
- per seed, the validation accuracy gained over that window: ``gain``;
- a regime cell *holds* when top_excess > 0 beyond two standard errors over seeds AND the
  gain is below TRAIN_GAIN beyond two standard errors (learning stopped while the top layer
  saturated); it *fails* when either is established the other way; otherwise it reads what
  the two comparisons read (no difference measured / unmeasured).
- the no-norm network is the subject here, not a baseline: its stall is the effect. It must
  still move (its top layer's weights travel MOVE_MIN of their norm), checked and stated.

Regimes: the published setting (sigmoid, depth 4, standard init, batch 10, SGD 0.1, as
published: no lr tuning, the rate is part of the setting) and one factor changed at a time:
depth 2, tanh (Glorot & Bengio saw tanh saturate from the lower layers up), and in full mode
depth 5 and batch 60. Fashion-MNIST stands in for Shapeset-3x2.
"""

from __future__ import annotations

from typing import Any

from normcore.claims import protocol as P
from normcore.claims.base import Experiment, arm_config
from normcore.claims.checks import Numbers, check, fmt
from normcore.claims.measures import layer_values, plot, probed, steps, trace
from normcore.frames import Frame

PUBLISHED = "sigmoid, depth 4 (published)"


def regimes(quick: bool) -> dict[str, dict[str, Any]]:
    cells: dict[str, dict[str, Any]] = {
        PUBLISHED: {},
        "sigmoid, depth 2": {"depth": 2},
        "tanh, depth 4": {"activation": "tanh"},
    }
    if not quick:
        cells["sigmoid, depth 5"] = {"depth": 5}
        cells["sigmoid, depth 4, batch 60"] = {"batch_size": 60}
    return cells


def window(quick: bool) -> int:
    return 1500 if quick else 3000


def c2_arms(quick: bool):
    """Glorot & Bengio's net on Fashion-MNIST; full mode runs on to see the plateau end."""
    size = dict(steps=1500, probe_every=50, eval_every=1500)
    if not quick:
        size = dict(steps=10000, probe_every=200, eval_every=1500)  # budget.py: ~7 min
    glorot = arm_config(
        quick,
        model="mlp",
        depth=4,
        width=300,
        activation="sigmoid",
        dataset="fashion",
        batch_size=10,
        optimizer="sgd",
        lr=0.1,
        init="default",
        hist_bins=32,
        **size,
    )
    return P.sweep_configs({"none": glorot}, regimes(quick), P.seeds(quick), grid=None)


def top_excess(frames: list[Frame], until: int) -> float | None:
    """Largest (top layer's sat_graded - mean of the lower layers') over probes <= until."""
    graded = layer_values(frames, "sat_graded")
    if len(graded) < 2:
        return None
    best = None
    for j, step in enumerate(steps(frames)):
        if step > until:
            break
        top, lower = graded[-1][j], [layer[j] for layer in graded[:-1]]
        if top is None or any(v is None for v in lower):
            return None
        excess = top - sum(lower) / len(lower)
        best = excess if best is None else max(best, excess)
    return best


def gain_until(frames: list[Frame], until: int) -> float | None:
    """Validation accuracy at the last evaluation <= until, minus the first evaluation's."""
    vals = [(f["step"], f["val"].get("acc")) for f in frames if f.get("val")]
    inside = [v for s, v in vals if s <= until]
    if len(inside) < 2 or inside[0] is None or inside[-1] is None:
        return None
    return inside[-1] - inside[0]


def verdict_c2(n: Numbers) -> dict[str, Any]:
    """numbers["cells"]: [{regime, published, top_excess: [per seed], gain: [per seed],
    top_moves: [per seed]}]; adds each cell's comparisons, effects and verdict (the regime
    map's cell: {regime, published, seeds, lr, effects: [{name, value, se, needs}], verdict})."""
    cells, checks = [], []
    for cell in n["cells"]:
        k = len(cell["top_excess"])
        excess = P.compare(cell["top_excess"], [0.0] * k)
        stall = P.compare([P.TRAIN_GAIN] * k, cell["gain"])
        moving = [m is not None and m >= P.MOVE_MIN for m in cell["top_moves"]]
        parts = [P.cell_verdict(excess, "a > b", None), P.cell_verdict(stall, "a > b", None)]
        if not all(moving):
            verdict = P.UNMEASURED  # a frozen top layer's saturation is not training's doing
        elif P.FAILS in parts:
            verdict = P.FAILS
        elif parts == [P.HOLDS, P.HOLDS]:
            verdict = P.HOLDS
        else:
            verdict = next(v for v in parts if v != P.HOLDS)
        effects = [  # what the regime map shows in the cell: mean ± standard error over seeds
            {"name": "top excess", "value": excess["a"], "se": excess["se"], "needs": "> 0"},
            {
                "name": "validation gain",
                "value": stall["b"],
                "se": stall["se"],
                "needs": f"< {P.TRAIN_GAIN:g}",
            },
        ]
        cells.append(
            {**cell, "excess": excess, "stall": stall, "effects": effects, "verdict": verdict}
        )
        checks.append(
            check(
                f"{cell['regime']}: the top layer saturates first and learning stops",
                verdict == P.HOLDS,
                f"{verdict}: top excess {fmt(excess['a'])} ± {fmt(excess['se'])} (> 0 needed), "
                f"validation gain {fmt(stall['b'])} ± {fmt(stall['se'])} (< {P.TRAIN_GAIN:g} "
                f"needed), {sum(moving)}/{len(moving)} seeds' top layers move",
            )
        )
    verdict = P.summarize_cells(cells)
    criterion = (
        "Per regime, over seeds: the top hidden layer's graded saturation (1 - mean slope / "
        "peak slope) exceeds the lower layers' mean early in training (max over the probes of "
        "the window) beyond two standard errors, and validation accuracy gains less than "
        f"{P.TRAIN_GAIN:g} over that window beyond two standard errors. The verdict is the "
        "published cell's (Glorot & Bengio's setting); the other cells map where it holds."
    )
    return {
        "verdict": verdict,
        "criterion": criterion,
        "checks": checks,
        "numbers": {**n, "cells": cells},
        "regimes": cells,
    }


def measure_c2(frames: dict[str, list[Frame]], quick: bool):
    until = window(quick)
    cells = []
    for regime in regimes(quick):
        runs = [frames[P.key(regime, "none", 0.1, s)] for s in P.seeds(quick)]
        cells.append(
            {
                "regime": regime,
                "published": regime == PUBLISHED,
                "arm": "none",
                "lr": 0.1,
                "seeds": list(P.seeds(quick)),
                "top_excess": [top_excess(r, until) for r in runs],
                "gain": [gain_until(r, until) for r in runs],
                "top_moves": [(P.layer_movement(r) or [None])[-1] for r in runs],
                "final_test_acc": [(r[-1].get("eval") or {}).get("acc") for r in runs],
                "window": until,
            }
        )
    first = frames[P.key(PUBLISHED, "none", 0.1, P.seeds(quick)[0])]
    out_mean, out_std = layer_values(first, "out_mean"), layer_values(first, "out_std")
    fig2 = []
    for i, (m, s) in enumerate(zip(out_mean, out_std, strict=True)):
        fig2.append(
            trace(f"h{i + 1}", steps(first), m, error=[v if v is not None else 0 for v in s])
        )
    top = []
    for regime in regimes(quick):
        run0 = frames[P.key(regime, "none", 0.1, P.seeds(quick)[0])]
        graded = layer_values(run0, "sat_graded")
        top.append(trace(regime, steps(run0), graded[-1] if graded else []))
    acc = [
        trace(
            regime,
            [f["step"] for f in probed(fr) if f.get("val")],
            [f["val"]["acc"] for f in probed(fr) if f.get("val")],
        )
        for regime in regimes(quick)
        for fr in [frames[P.key(regime, "none", 0.1, P.seeds(quick)[0])]]
    ]
    series = [
        plot(
            "Glorot & Bengio Fig. 2: mean (± spread) of each layer's sigmoid outputs, "
            "published setting",
            "step",
            "mean output",
            fig2,
        ),
        plot(
            "Top hidden layer's graded saturation (1 - mean slope / peak)",
            "step",
            "graded saturation",
            top,
        ),
        plot("Validation accuracy", "step", "accuracy", acc),
    ]
    return {"cells": cells}, series


C2 = Experiment(
    id="C2",
    title="Higher layers saturate and learning stalls (Glorot & Bengio's Fig. 2)",
    claim=(
        "Changes in low layers, amplified through depth, push higher-layer inputs into the "
        "saturation region of the activation, which stops learning early. Glorot & Bengio "
        "2010, Fig. 2: with sigmoid units and the standard init, the top hidden layer is "
        "driven to saturation early while lower layers stay near 0.5, and training plateaus."
    ),
    experiment=(
        "A 4 x 300 sigmoid MLP with PyTorch's default init (Glorot & Bengio's standard "
        "U(-1/sqrt(n), 1/sqrt(n))) on Fashion-MNIST, batch 10, plain SGD at lr 0.1, as "
        "published; then depth 2 and tanh (and in full mode depth 5 and batch 60), one factor "
        "at a time; 2 seeds quick (1500 steps), 5 full (10000 steps, the plateau's end). "
        "Per layer the graded saturation and the mean and spread of the outputs."
    ),
    configs=c2_arms,
    measure=measure_c2,
    verdict=verdict_c2,
)
