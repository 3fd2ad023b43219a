"""C4, C6: what a norm needs from its mini-batch (size, order); C5 is in rnn_protocol.py.

Each experiment is (a) a few RunConfigs, (b) a measurement from their frames to numbers,
(c) a pure verdict from those numbers (see checks.py for the rules every verdict follows).
"""

from __future__ import annotations

from typing import Any

import torch

from normcore.claims.base import Experiment, arm_config
from normcore.claims.checks import (
    ACC_MARGIN,
    BOUND_TOL,
    Numbers,
    check,
    combine,
    finite,
    fmt,
    lower,
    num,
)
from normcore.claims.measures import final_eval, plot, trace
from normcore.config import RunConfig
from normcore.frames import Frame

# Wu & He 2018, ResNet-50 on ImageNet, validation error % at 32/16/8/4/2 images per GPU.
WU_HE: dict[str, Any] = {
    "images_per_gpu": [32, 16, 8, 4, 2],
    "error": {
        "batch": [23.6, 23.7, 24.8, 27.3, 34.7],
        "group": [24.1, 24.2, 24.0, 24.2, 24.1],
    },
}


def drop(accs: dict[str, Any], small: str, large: str) -> float | None:
    """Accuracy lost going from the large to the small setting (None if unmeasured)."""
    a, b = num(accs.get(large)), num(accs.get(small))
    return None if a is None or b is None else a - b


def _loses_more(name: str, drops: dict[str, Any], what: str) -> dict[str, Any]:
    """BN's drop exceeds every other norm's by ACC_MARGIN."""
    bn = drops.get("batch")
    others = {k: v for k, v in drops.items() if k != "batch"}
    passed = finite(bn, *others.values()) and all(bn > v + ACC_MARGIN for v in others.values())
    listed = ", ".join(f"{k} {fmt(v)}" for k, v in others.items())
    return check(name, passed, f"{what}: batch {fmt(bn)} vs {listed} (needs +{ACC_MARGIN:g})")


def verdict_c4(n: Numbers) -> dict[str, Any]:
    """numbers: acc_by_batch {norm: {batch_size: acc}}, acc_by_order {norm: {order: acc}}."""
    sizes = sorted(int(b) for b in next(iter(n["acc_by_batch"].values())))
    small, large = str(sizes[0]), str(sizes[-1])
    size_drops = {k: drop(v, small, large) for k, v in n["acc_by_batch"].items()}
    order_drops = {k: drop(v, "one_class", "shuffled") for k, v in n["acc_by_order"].items()}
    checks = [
        _loses_more(
            f"BN loses the most going from batch {large} to {small} (Wu & He's direction)",
            size_drops,
            "held-out accuracy lost",
        ),
        _loses_more(
            "BN loses the most going from shuffled to one-class batches",
            order_drops,
            "held-out accuracy lost",
        ),
    ]
    criterion = (
        "Held-out accuracy (eval mode) lost from the largest to the smallest batch is larger "
        f"for BN than for LN and GN by more than {ACC_MARGIN:g}, as in Wu & He (BN +11.1 "
        "error points from 32 to 2 images per GPU, GN +0.0); and the accuracy lost from "
        f"shuffled to one-class batches is larger for BN than for LN and GN by {ACC_MARGIN:g}."
    )
    return combine(criterion, checks, {**n, "size_drop": size_drops, "order_drop": order_drops})


def verdict_c6(n: Numbers) -> dict[str, Any]:
    """numbers: batch_dependence {norm: max |change|}, acc_one_class {norm: acc}."""
    dep, acc = n["batch_dependence"], n["acc_one_class"]
    wn, bn = dep.get("weight"), dep.get("batch")
    independent = finite(wn, bn) and wn <= BOUND_TOL < bn
    checks = [
        check(
            "WN's output for a sample ignores the rest of its batch; BN's does not",
            independent,
            f"largest change of a sample's output when its batch-mates change: WN {fmt(wn)}, "
            f"BN {fmt(bn)} (independent means <= {BOUND_TOL:g})",
        ),
        lower(
            "WN trains on one-class batches where BN fails",
            acc.get("batch"),
            acc.get("weight"),
            "BN's held-out accuracy",
            "WN's",
            ACC_MARGIN,
        ),
    ]
    criterion = (
        "A sample's network output, in training mode, changes by at most "
        f"{BOUND_TOL:g} when its batch-mates are replaced under WN and by more under BN; and "
        f"with one-class batches WN's held-out accuracy exceeds BN's by {ACC_MARGIN:g}."
    )
    return combine(criterion, checks, n)


# --- (a) arms and (b) measurements ------------------------------------------------------

NORM_NET_NORMS = ("batch", "layer", "group")


def sizes(quick: bool) -> tuple[int, ...]:
    return (2, 4, 16, 64) if quick else (2, 4, 8, 16, 32, 64)


def norm_net(quick: bool, norm: str, batch_size: int, order: str = "shuffled") -> RunConfig:
    """The ReLU MLP that C4, C6 and C7 share (identical configs are run once).

    Same steps and lr at every batch size: the number of updates is equal, so smaller batches
    see fewer samples for every norm alike, and what differs between norms is how each copes
    with small or one-class batches.
    """
    size = dict(depth=3, width=32, steps=300, probe_every=50, eval_every=150)
    if not quick:
        size = dict(depth=4, width=64, steps=3000, probe_every=100, eval_every=500)
    return arm_config(
        quick,
        norm=norm,
        activation="relu",
        batch_size=batch_size,
        batch_order=order,
        optimizer="momentum",
        lr=0.02,
        groups=4,
        **size,
    )


ORDER_BATCH = 16  # batch size of the shuffled vs one-class comparison


def c4_arms(quick: bool) -> dict[str, RunConfig]:
    arms = {f"{n}/b{b}": norm_net(quick, n, b) for n in NORM_NET_NORMS for b in sizes(quick)}
    for n in NORM_NET_NORMS:
        arms[f"{n}/one_class"] = norm_net(quick, n, ORDER_BATCH, "one_class")
    return arms


def _acc_table(frames: dict[str, list[Frame]], norms, keys) -> dict[str, dict[str, Any]]:
    return {n: {str(k): final_eval(frames[f"{n}/{k}"]) for k in keys} for n in norms}


def measure_c4(frames: dict[str, list[Frame]], quick: bool):
    by_batch = _acc_table(frames, NORM_NET_NORMS, [f"b{b}" for b in sizes(quick)])
    by_batch = {n: {k[1:]: v for k, v in row.items()} for n, row in by_batch.items()}
    by_order = {
        n: {
            "shuffled": final_eval(frames[f"{n}/b{ORDER_BATCH}"]),
            "one_class": final_eval(frames[f"{n}/one_class"]),
        }
        for n in NORM_NET_NORMS
    }
    numbers = {"acc_by_batch": by_batch, "acc_by_order": by_order, "wu_he": WU_HE}
    error = [
        trace(n, list(row), [None if v is None else 100 * (1 - v) for v in row.values()])
        for n, row in by_batch.items()
    ]
    published = [
        trace(f"{n} (Wu & He, ImageNet)", WU_HE["images_per_gpu"], e, dash="dot")
        for n, e in WU_HE["error"].items()
    ]
    series = [
        plot(
            "Held-out error (eval mode) by batch size",
            "batch size",
            "error %",
            error + published,
            log_x=True,
        ),
        plot(
            f"Shuffled vs one-class batches (batch {ORDER_BATCH})",
            "norm",
            "accuracy",
            [
                trace(o, list(by_order), [r[o] for r in by_order.values()])
                for o in ("shuffled", "one_class")
            ],
            kind="bar",
        ),
    ]
    return numbers, series


C6_NORMS = ("weight", "batch", "layer")


def c6_arms(quick: bool) -> dict[str, RunConfig]:
    arms = {f"{n}/shuffled": norm_net(quick, n, ORDER_BATCH) for n in C6_NORMS}
    arms |= {f"{n}/one_class": norm_net(quick, n, ORDER_BATCH, "one_class") for n in C6_NORMS}
    return arms


@torch.no_grad()
def batch_dependence(config: RunConfig, trials: int = 4) -> float:
    """Largest change of sample 0's output (train mode, as in training) when the other
    samples of its batch are replaced by other held-out samples; an untrained network, as
    the dependence is the architecture's, not something training creates."""
    from normcore.data import load_dataset
    from normcore.models import build_model

    data = load_dataset(config.dataset, seed=config.seed)
    torch.manual_seed(config.seed)
    model = build_model(config, data.input_shape, data.n_classes).double().train()
    b, x = config.batch_size, data.test_x.double()
    ref = model(x[:b])[0]
    worst = 0.0
    for t in range(1, trials + 1):
        batch = torch.cat([x[:1], x[t * b : (t + 1) * b - 1]])  # same sample 0, new batch-mates
        worst = max(worst, float((model(batch)[0] - ref).abs().max()))
    return worst


def measure_c6(frames: dict[str, list[Frame]], quick: bool):
    arms = c6_arms(quick)
    dependence = {n: batch_dependence(arms[f"{n}/shuffled"]) for n in C6_NORMS}
    acc = {n: final_eval(frames[f"{n}/one_class"]) for n in C6_NORMS}
    shuffled = {n: final_eval(frames[f"{n}/shuffled"]) for n in C6_NORMS}
    numbers = {"batch_dependence": dependence, "acc_one_class": acc, "acc_shuffled": shuffled}
    series = [
        plot(
            f"Held-out accuracy, batch {ORDER_BATCH}",
            "norm",
            "accuracy",
            [
                trace("shuffled", list(shuffled), list(shuffled.values())),
                trace("one class per batch", list(acc), list(acc.values())),
            ],
            kind="bar",
        ),
        plot(
            "Change of one sample's output when its batch-mates change",
            "norm",
            "max |change|",
            [trace("dependence", list(dependence), list(dependence.values()))],
            kind="bar",
        ),
    ]
    return numbers, series


C4 = Experiment(
    id="C4",
    title="BN needs large, well-shuffled batches",
    claim=(
        "Batch norm is for large mini-batches with similar distributions; data must be "
        "shuffled well or results get much worse. Wu & He 2018 (ResNet-50, ImageNet): BN's "
        "error rises from 23.6% to 34.7% going from 32 to 2 images per GPU, GN stays at 24.1%."
    ),
    experiment=(
        "A ReLU MLP on digits with BN, LN or GN, trained for the same number of steps at each "
        f"batch size, and with shuffled vs one-class batches of {ORDER_BATCH}; held-out "
        "accuracy in eval mode (running statistics for BN). Compared with Wu & He in direction."
    ),
    configs=c4_arms,
    measure=measure_c4,
    verdict=verdict_c4,
)

C6 = Experiment(
    id="C6",
    title="WN uses no batch statistics",
    claim=(
        "Weight norm uses no statistics of the input data, so it avoids BN's mini-batch "
        "dependence and LN's single-transform limit; usable with dynamic networks."
    ),
    experiment=(
        "C4's network with WN, BN and LN: how far one sample's output moves when its "
        "batch-mates are swapped (training mode, float64), and held-out accuracy after "
        f"training on one-class batches of {ORDER_BATCH} (shuffled for reference)."
    ),
    configs=c6_arms,
    measure=measure_c6,
    verdict=verdict_c6,
)
