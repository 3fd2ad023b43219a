"""C4, C5, C6: what a norm needs from its mini-batch (size, order, sequences).

Each experiment is (a) a few RunConfigs, (b) a measurement from their frames to numbers,
(c) a pure verdict from those numbers (see checks.py for the rules every verdict follows).
"""

from __future__ import annotations

from typing import Any

from normcore.claims.checks import (
    ACC_MARGIN,
    BOUND_TOL,
    Numbers,
    check,
    combine,
    finite,
    fmt,
    lower,
)

# Wu & He 2018, ResNet-50 on ImageNet, validation error % at 32/16/8/4/2 images per GPU.
WU_HE = {
    "images_per_gpu": [32, 16, 8, 4, 2],
    "error": {
        "batch": [23.6, 23.7, 24.8, 27.3, 34.7],
        "group": [24.1, 24.2, 24.0, 24.2, 24.1],
    },
}


def drop(accs: dict[str, Any], small: str, large: str) -> float | None:
    """Accuracy lost going from the large to the small setting (None if unmeasured)."""
    a, b = accs.get(large), accs.get(small)
    return a - b if finite(a, b) else None


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


def verdict_c5(n: Numbers) -> dict[str, Any]:
    """numbers: acc {norm: {batch_size: acc}} for an RNN, norms 'batch' and 'layer'."""
    acc = n["acc"]
    sizes = sorted(int(b) for b in acc["layer"])
    checks = [
        lower(
            f"LN beats BN on the RNN at batch {b}",
            acc["batch"].get(str(b)),
            acc["layer"].get(str(b)),
            "BN",
            "LN",
        )
        for b in sizes
    ]
    criterion = (
        "On the sequence task, a recurrent network with LN per time step reaches a higher "
        f"held-out accuracy than with BN per time step, at every batch size tried ({sizes})."
    )
    return combine(criterion, checks, n)


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
