"""The BN paper's Figure 1 and C3: a 3x100 sigmoid MLP, and what BN's own g, b are for.

Each experiment is (a) a few RunConfigs, (b) a measurement from their frames to numbers,
(c) a pure verdict from those numbers (see checks.py for the rules every verdict follows).
"""

from __future__ import annotations

from typing import Any

from normcore.claims.base import Experiment, arm_config
from normcore.claims.checks import SAT_MARGIN, Numbers, combine, lower
from normcore.claims.measures import (
    band_movement,
    eval_auc,
    evals,
    final_eval,
    final_saturation,
    layer_values,
    mean,
    plot,
    steps,
    trace,
)
from normcore.config import RunConfig
from normcore.frames import Frame


def verdict_fig1(n: Numbers) -> dict[str, Any]:
    """numbers: band_move_{none,batch} (15/50/85 movement), acc_auc_{none,batch}."""
    checks = [
        lower(
            "BN keeps the last layer's 15/50/85 band steadier",
            n["band_move_batch"],
            n["band_move_none"],
            "band movement with BN",
            "without",
        ),
        lower(
            "BN trains faster (mean held-out accuracy over the run)",
            n["acc_auc_none"],
            n["acc_auc_batch"],
            "without BN",
            "with BN",
        ),
    ]
    criterion = (
        "With BN the last hidden layer's 15th/50th/85th percentiles move less over training "
        "(mean distance to their first values, in units of the first 15-85 width), and the "
        "held-out accuracy averaged over the evaluations is higher than without BN."
    )
    return combine(criterion, checks, n)


def verdict_c3(n: Numbers) -> dict[str, Any]:
    """numbers: sat_affine, sat_plain (mean over layers), acc_affine, acc_plain."""
    checks = [
        lower(
            "g, b let the network use the saturated region",
            n["sat_plain"],
            n["sat_affine"],
            "saturation without g, b",
            "with",
            SAT_MARGIN,
        ),
        lower(
            "g, b restore expressiveness (held-out accuracy)",
            n["acc_plain"],
            n["acc_affine"],
            "accuracy without g, b",
            "with",
        ),
    ]
    criterion = (
        f"BN with g, b ends with a saturated fraction at least {SAT_MARGIN:g} above BN without "
        "them, and a higher held-out accuracy."
    )
    return combine(criterion, checks, n)


# --- (a) arms and (b) measurements ------------------------------------------------------

# The BN paper's Figure 1 network: 3 hidden layers of 100 sigmoid units, batch 60, small random
# Gaussian initial weights (digits for MNIST). The dashboard's Figure 1 preset uses it too.
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


def _fig1(quick: bool, **kw: Any) -> RunConfig:
    """The BN paper's net: 3 x 100 sigmoid, batch 60, small Gaussian init (digits for MNIST)."""
    size = dict(steps=500, probe_every=10, eval_every=50)
    if not quick:
        size = dict(steps=5000, probe_every=50, eval_every=250)
    return arm_config(quick, **{**FIGURE_1_NET, **size, **kw})


def fig1_arms(quick: bool) -> dict[str, RunConfig]:
    return {n: _fig1(quick, norm=n) for n in ("none", "batch")}


def c3_arms(quick: bool) -> dict[str, RunConfig]:
    """BN with g, b is Figure 1's BN arm (shared run); the other arm freezes g = 1, b = 0."""
    return {"affine": _fig1(quick, norm="batch"), "plain": _fig1(quick, norm="batch", affine=False)}


def _acc_curves(frames: dict[str, list[Frame]]) -> dict[str, Any]:
    traces = [trace(arm, *evals(f)) for arm, f in frames.items()]
    return plot("Held-out accuracy", "step", "accuracy", traces)


def measure_fig1(frames: dict[str, list[Frame]], quick: bool):
    numbers = {}
    for arm in ("none", "batch"):
        numbers[f"band_move_{arm}"] = band_movement(frames[arm])
        numbers[f"acc_auc_{arm}"] = eval_auc(frames[arm])
        numbers[f"acc_final_{arm}"] = final_eval(frames[arm])
    bands = []
    for arm in ("none", "batch"):
        for q in ("p15", "p50", "p85"):
            values = layer_values(frames[arm], q)
            dash = "solid" if q == "p50" else "dot"
            bands.append(
                trace(
                    arm,
                    steps(frames[arm]),
                    values[-1] if values else [],
                    group=arm,
                    label=q,
                    dash=dash,
                )
            )
    series = [
        _acc_curves(frames),
        plot("Last hidden layer: 15/50/85th percentiles of the sigmoid input", "step", "x", bands),
    ]
    return numbers, series


def measure_c3(frames: dict[str, list[Frame]], quick: bool):
    numbers = {}
    sat_curves = []
    for arm in ("affine", "plain"):
        numbers[f"sat_{arm}"] = mean(final_saturation(frames[arm]))
        numbers[f"sat_by_layer_{arm}"] = final_saturation(frames[arm])
        numbers[f"acc_{arm}"] = final_eval(frames[arm])
        per_probe = [mean(v) for v in zip(*layer_values(frames[arm], "sat"), strict=True)]
        sat_curves.append(trace(arm, steps(frames[arm]), per_probe))
    series = [
        plot("Saturated fraction (mean over hidden layers)", "step", "saturated", sat_curves),
        _acc_curves(frames),
    ]
    return numbers, series


FIG1 = Experiment(
    id="FIG1",
    title="BN paper, Figure 1: steadier inputs, faster training",
    claim=(
        "Ioffe & Szegedy 2015, Fig. 1: in a 3 x 100 sigmoid MLP (MNIST, batch 60) the 15/50/85th "
        "percentiles of a last-hidden-layer input drift strongly without BN and stay stable "
        "with BN; BN trains faster."
    ),
    experiment=(
        "The same 3 x 100 sigmoid MLP on digits (8 x 8, the closest bundled data set), batch 60, "
        "N(0, 0.1) init, SGD, with and without BN. The percentiles are of the whole last "
        "hidden layer's input (all units), not of one unit."
    ),
    configs=fig1_arms,
    measure=measure_fig1,
    verdict=verdict_fig1,
)

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
        "off): saturated fraction over the last quarter of training (mean over hidden layers) "
        "and final held-out accuracy."
    ),
    configs=c3_arms,
    measure=measure_c3,
    verdict=verdict_c3,
)
