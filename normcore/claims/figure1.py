"""The BN paper's Figure 1 (FIG1) and C3, on the protocol (protocol.py): seeds, each arm's lr
tuned on validation, two standard errors, both arms training.

FIG1 — Ioffe & Szegedy (2015), Fig. 1: a 3 x 100 sigmoid MLP on MNIST, batch 60, small random
Gaussian init; without BN the 15/50/85th percentiles of a last-hidden-layer sigmoid input
drift in mean and variance, with BN they stay stable, and BN trains faster. Their learning
rate is not stated, so each arm's rate is tuned on validation (the protocol's rule, which
also keeps the no-norm arm from losing for its rate). MNIST does not ship here: the full
mode runs on Fashion-MNIST (the same 784-pixel format), quick mode on the 8 x 8 digits.

Criterion, fixed before the runs: per seed, at each arm's chosen rate,
- *band movement*: the last hidden layer's 15/50/85th percentiles' mean distance from their
  first values over the probes, in units of the first 15-85 width (``band_movement``);
- *speed*: the held-out test accuracy averaged over the evaluations (``eval_auc``: higher
  means it learned sooner).
A cell *holds* when no norm's band movement is above BN's beyond two standard errors over
seeds AND BN's speed is above no norm's beyond two standard errors; it *fails* when either
is established the other way; otherwise it reads as the part that is not established. Both
arms must train (the degenerate-baseline check), or the cell says so.

C3 — the seed: without trainable g, b each layer's input is forced to a standard
distribution, which sits almost entirely in the near-linear region of the activation and
reduces expressiveness; g and b let the layer move data into the non-linear region where
that helps. The issue's tuned runs showed the strict saturation cut (|x| > 4.356) sees almost
nothing, so the measure is graded: the fraction of activation inputs beyond ``NONLINEAR_CUT``
(sigmoid |x| > 2, tanh |x| > 1: the same point of the curve, where the slope has fallen to
42 % of its peak; a standard normal has 4.6 % of its mass there), and the distribution is
shown.

Criterion, fixed before the runs: per seed, at each arm's chosen rate, the fraction beyond the
cut (mean over hidden layers and over the last quarter of the probes) and the final held-out
test accuracy. A cell *holds* when BN with g, b is above BN without them beyond two standard
errors on both, *fails* when either is established the other way, otherwise reads as the part
not established; both arms must train. The verdict cell is a task where non-linearity
matters (three interleaved spirals, which no linear model separates); digits, which a linear
model nearly solves, is its neighbour.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

from normcore.claims import protocol as P
from normcore.claims.base import Experiment, arm_config
from normcore.claims.checks import Numbers, finite
from normcore.claims.measures import (
    band_movement,
    eval_auc,
    evals,
    final_eval,
    layer_values,
    mean,
    plot,
    probed,
    steps,
    tail,
    trace,
)
from normcore.config import RunConfig
from normcore.frames import Frame

# The BN paper's Figure 1 network as the dashboard's Figure 1 preset runs it (app/api/catalog):
# 3 hidden layers of 100 sigmoid units, batch 60, small random Gaussian initial weights.
FIGURE_1_NET: dict[str, Any] = {
    "model": "mlp",
    "depth": 3,
    "width": 100,
    "activation": "sigmoid",
    "init": "gaussian",
    "init_std": 0.1,
    "dataset": "digits",
    "batch_size": 60,
    "lr": 0.5,
}

FIG1_ARMS = ("none", "batch")
C3_ARMS = ("affine", "plain")
PUBLISHED = "sigmoid, depth 3, batch 60 (Fig. 1)"
SPIRALS = "sigmoid, spirals"
# Full mode's steps: 30 000 samples, half an epoch of Fashion-MNIST. Quick mode's 300 steps
# on digits establish the published cells' effects (FIG1's band movement and speed, C1's
# drift, C3's reach beyond the cut on spirals) by 6 or more standard errors; the three
# claims' 19 distinct arm x regime pairs x 7 rates x 5 seeds must fit their 7.9 minutes
# (budget.SHARE_MIN); at 3000 steps they estimated 42. Probes every 40 steps (13; quick has
# 16), evaluations every 125 (5: FIG1's speed averages them).
FULL_STEPS = 500
# where the slope f'(x)/max f' has fallen to 42 %: sigmoid(x) = (1 + tanh(x / 2)) / 2
NONLINEAR_CUT = {"sigmoid": 2.0, "tanh": 1.0}


def figure1_net(quick: bool, **kw: Any) -> RunConfig:
    """Figure 1's net, sized for the mode: digits and 300 steps quick, Fashion-MNIST and
    FULL_STEPS full (the paper ran 50 000 on MNIST). Shared by FIG1, C1 and C3 (identical
    configs are trained once per runner)."""
    size = dict(steps=300, probe_every=20, eval_every=100, dataset="digits")
    if not quick:
        size = dict(steps=FULL_STEPS, probe_every=40, eval_every=125, dataset="fashion")
    net = {k: v for k, v in FIGURE_1_NET.items() if k not in ("dataset", "lr")}
    return arm_config(quick, **{**net, **size, **kw})


def figure1_differs(quick: bool) -> str:
    data = "the 8 x 8 digits" if quick else "Fashion-MNIST"
    n = "300" if quick else f"{FULL_STEPS}"
    return (
        f"matched: 3 x 100 sigmoid, batch 60, N(0, 0.1) init, plain SGD; differs: {data} "
        f"instead of MNIST, {n} steps instead of 50 000, each arm's lr tuned (the paper states "
        "none), percentiles over all units of the last hidden layer rather than one unit"
    )


# --- FIG1 ---------------------------------------------------------------------------------


def fig1_regimes(quick: bool) -> dict[str, dict[str, Any]]:
    cells: dict[str, dict[str, Any]] = {PUBLISHED: {}, "relu, depth 3": {"activation": "relu"}}
    if not quick:
        cells["sigmoid, default init"] = {"init": "default"}
        cells["sigmoid, batch 10"] = {"batch_size": 10}  # depth is C1's axis (same net)
    return cells


def fig1_arms(quick: bool) -> dict[str, RunConfig]:
    arms = {n: figure1_net(quick, norm=n) for n in FIG1_ARMS}
    return P.sweep_configs(arms, fig1_regimes(quick), P.seeds(quick), P.grid(quick))


def verdict_fig1(n: Numbers) -> dict[str, Any]:
    """numbers["cells"]: [{regime, published, lr: {arm: lr}, band: {arm: [per seed]},
    speed: {arm: [per seed]}, baseline: {arm: {ok, reasons}}}]; adds comparisons, effects
    and verdicts."""
    cells, checks = [], []
    for cell in n["cells"]:
        steady = P.compare(cell["band"]["none"], cell["band"]["batch"])
        faster = P.compare(cell["speed"]["batch"], cell["speed"]["none"])
        parts = [
            ("steady", "band movement, none - BN", steady),
            ("faster", "mean test accuracy, BN - none", faster),
        ]
        judged, checked = P.judge_parts(cell, parts, "BN keeps the band steady, trains faster")
        cells.append(judged)
        checks.append(checked)
    criterion = (
        "Per regime, each arm's lr tuned on validation, both arms training: the last hidden "
        "layer's 15/50/85th percentiles move more without BN than with it (mean distance to "
        "their first values in units of the first 15-85 width) beyond two standard errors "
        "over seeds, and BN's held-out accuracy averaged over the evaluations is higher "
        "beyond two standard errors (holds); either established the other way fails. The "
        f"verdict is Figure 1's cell ({n.get('differs', '')})."
    )
    return P.judged(n, cells, criterion, checks)


def _bands(frames: Sequence[Frame], arm: str) -> list[dict[str, Any]]:
    """The last hidden layer's 15/50/85th percentiles over the steps, as three traces."""
    values = layer_values(frames, "p15"), layer_values(frames, "p50"), layer_values(frames, "p85")
    return [
        trace(
            arm,
            steps(frames),
            v[-1] if v else [],
            group=arm,
            label=q,
            dash="solid" if q == "p50" else "dot",
        )
        for q, v in zip(("p15", "p50", "p85"), values, strict=True)
    ]


def _bars(title: str, y_label: str, cells: list[dict[str, Any]], key: str):
    """One bar per regime and arm: the cells' per-seed ``key`` averaged over seeds."""
    names = [c["regime"] for c in cells]
    arms = list(cells[0][key])
    traces = [trace(arm, names, [mean(c[key][arm]) for c in cells]) for arm in arms]
    title = f"{title} by regime (mean over seeds, lr tuned per arm)"
    return plot(title, "regime", y_label, traces, kind="bar")


def measure_fig1(frames: dict[str, list[Frame]], quick: bool):
    measures = {"band": band_movement, "speed": eval_auc, "final_test_acc": final_eval}
    cells = [
        {
            **P.tuned_cell(frames, regime, FIG1_ARMS, P.seeds(quick), P.grid(quick), measures),
            "published": regime == PUBLISHED,
            "matched": False,
        }
        for regime in fig1_regimes(quick)
    ]
    first = P.seeds(quick)[0]
    chosen = {arm: frames[P.key(PUBLISHED, arm, cells[0]["lr"][arm], first)] for arm in FIG1_ARMS}
    series = [
        plot(
            f"Figure 1's cell, seed {first}: held-out accuracy at each arm's tuned lr",
            "step",
            "accuracy",
            [trace(arm, *evals(chosen[arm])) for arm in FIG1_ARMS],
        ),
        plot(
            f"Figure 1's cell, seed {first}: last hidden layer's 15/50/85th percentiles",
            "step",
            "sigmoid input x",
            [t for arm in FIG1_ARMS for t in _bands(chosen[arm], arm)],
        ),
        _bars("Band movement", "band movement (first 15-85 widths)", cells, "band"),
    ]
    return {"cells": cells, "differs": figure1_differs(quick)}, series


FIG1 = Experiment(
    id="FIG1",
    title="BN paper, Figure 1: steadier inputs, faster training",
    claim=(
        "Ioffe & Szegedy 2015, Fig. 1: in a 3 x 100 sigmoid MLP (MNIST, batch 60) the 15/50/85th "
        "percentiles of a last-hidden-layer input drift strongly without BN and stay stable "
        "with BN; BN trains faster."
    ),
    experiment=(
        "Figure 1's 3 x 100 sigmoid MLP (batch 60, N(0, 0.1) init, plain SGD) with and "
        "without BN, each arm's lr tuned on validation over a log grid, 2 seeds quick (digits, "
        "300 steps) / 5 full (Fashion-MNIST, 500 steps); the last hidden layer's 15/50/85th "
        "percentiles (over all its units) and the held-out accuracy over training. Neighbours: "
        "ReLU (and in full mode the default init and batch 10), one factor at a time."
    ),
    configs=fig1_arms,
    measure=measure_fig1,
    verdict=verdict_fig1,
)


# --- C3 -----------------------------------------------------------------------------------


def c3_regimes(quick: bool) -> dict[str, dict[str, Any]]:
    """Spirals first (non-linearity matters); digits is Figure 1's quick cell, so with a shared
    runner its affine arm is FIG1's BN arm."""
    cells: dict[str, dict[str, Any]] = {
        SPIRALS: {"dataset": "spirals"},
        "sigmoid, digits": {"dataset": "digits"},
    }
    if not quick:
        cells["tanh, spirals"] = {"dataset": "spirals", "activation": "tanh"}
        cells["sigmoid, fashion"] = {"dataset": "fashion"}
    return cells


def c3_arms(quick: bool) -> dict[str, RunConfig]:
    """BN with g, b (affine) and with g = 1, b = 0 frozen (plain), on Figure 1's net."""
    arms = {
        "affine": figure1_net(quick, norm="batch"),
        "plain": figure1_net(quick, norm="batch", affine=False),
    }
    return P.sweep_configs(arms, c3_regimes(quick), P.seeds(quick), P.grid(quick))


def fraction_beyond(hist: Mapping[str, Any], cut: float) -> float | None:
    """Fraction of a layer's histogrammed values with |x| > cut; a bin the cut splits counts
    in proportion to its part beyond (values spread evenly in a bin), under/overflow beyond
    (the edges reach the activation's useful range, past any cut used here)."""
    counts = hist["counts"]
    total = sum(counts) + hist["under"] + hist["over"]
    if not total:
        return None
    width = (hist["hi"] - hist["lo"]) / len(counts)
    beyond = float(hist["under"] + hist["over"])
    for i, c in enumerate(counts):
        a = hist["lo"] + i * width
        b = a + width
        beyond += c * (max(0.0, min(b, -cut) - a) + max(0.0, b - max(a, cut))) / width
    return beyond / total


def nonlinear_fraction(frames: Sequence[Frame], cut: float, fraction: float = 0.25):
    """Mean over hidden layers and over the last `fraction` of the probes of the fraction of
    activation inputs beyond `cut`; None when a probe has no histogram."""
    per_probe = []
    for f in tail(probed(frames), fraction):
        values = [fraction_beyond(layer["hist"], cut) for layer in f["layers"]]
        if not values or not finite(*values):
            return None
        per_probe.append(mean(values))
    return mean(per_probe)


def verdict_c3(n: Numbers) -> dict[str, Any]:
    """numbers["cells"]: [{regime, published, lr: {arm: lr}, nonlinear: {arm: [per seed]},
    acc: {arm: [per seed]}, baseline: {arm: {ok, reasons}}, cut}]; adds comparisons,
    effects and verdicts."""
    cells, checks = [], []
    for cell in n["cells"]:
        parts = [
            (
                "moved",
                f"fraction beyond |x| > {cell['cut']:g}, g, b on - off",
                P.compare(cell["nonlinear"]["affine"], cell["nonlinear"]["plain"]),
            ),
            (
                "better",
                "test accuracy, g, b on - off",
                P.compare(cell["acc"]["affine"], cell["acc"]["plain"]),
            ),
        ]
        claim = "g, b move inputs into the non-linear region and help"
        judged, checked = P.judge_parts(cell, parts, claim)
        cells.append(judged)
        checks.append(checked)
    criterion = (
        "Per regime, each arm's lr tuned on validation, both arms training: BN with g, b "
        "puts a larger fraction of the activation inputs beyond the non-linear cut (sigmoid "
        "|x| > 2, tanh |x| > 1; mean over hidden layers and the last quarter of training) "
        "than BN without them, and reaches a higher held-out accuracy, each beyond two "
        "standard errors over seeds (holds); either established the other way fails. The "
        "verdict is the spirals cell (a task no linear model solves); not a published setting."
    )
    return P.judged(n, cells, criterion, checks)


def _density(frames: Sequence[Frame], arm: str) -> dict[str, Any]:
    """The top hidden layer's activation-input histogram at the last probe, as a density
    (fraction per unit of x, so arms with different bin edges compare)."""
    last = probed(frames)[-1]["layers"][-1]["hist"]
    counts = last["counts"]
    total = sum(counts) + last["under"] + last["over"]
    width = (last["hi"] - last["lo"]) / len(counts)
    x = [last["lo"] + (i + 0.5) * width for i in range(len(counts))]
    return trace(arm, x, [c / total / width for c in counts])


def measure_c3(frames: dict[str, list[Frame]], quick: bool):
    cells = []
    for regime, changes in c3_regimes(quick).items():
        cut = NONLINEAR_CUT[changes.get("activation", "sigmoid")]
        measures: dict[str, Callable[[Any], Any]] = {
            "nonlinear": partial(nonlinear_fraction, cut=cut),
            "acc": final_eval,
        }
        cell = P.tuned_cell(frames, regime, C3_ARMS, P.seeds(quick), P.grid(quick), measures)
        cells.append({**cell, "published": regime == SPIRALS, "matched": False, "cut": cut})
    first = P.seeds(quick)[0]
    chosen = {arm: frames[P.key(SPIRALS, arm, cells[0]["lr"][arm], first)] for arm in C3_ARMS}
    series = [
        plot(
            f"Spirals, seed {first}: top hidden layer's sigmoid inputs at the end",
            "sigmoid input x (non-linear beyond |x| > 2)",
            "density",
            [_density(chosen[arm], arm) for arm in C3_ARMS],
        ),
        _bars("Beyond the non-linear cut", "fraction of inputs", cells, "nonlinear"),
        _bars("Held-out accuracy", "accuracy", cells, "acc"),
    ]
    return {"cells": cells}, series


C3 = Experiment(
    id="C3",
    title="The second shift/scale lets a BN layer use its non-linearity",
    claim=(
        "Without trainable g, b every layer's input is forced to a standard distribution, "
        "which sits almost entirely in the non-saturated, near-linear region of the "
        "activation and reduces expressiveness; g and b let the layer move data into the "
        "saturated region where that helps."
    ),
    experiment=(
        "Figure 1's BN network with g, b (affine on) and with g = 1, b = 0 frozen (affine "
        "off), each arm's lr tuned on validation, 2 seeds quick / 5 full, on three "
        "interleaved spirals (no linear model separates them) and on digits (and in full "
        "mode tanh on spirals and Fashion-MNIST): the fraction of activation inputs beyond "
        "sigmoid |x| > 2 (tanh |x| > 1), its distribution, and the held-out accuracy."
    ),
    configs=c3_arms,
    measure=measure_c3,
    verdict=verdict_c3,
)
