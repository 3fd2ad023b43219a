"""C7: cosine normalization bounds the pre-activation, and loses the dot product's scale.

Each experiment is (a) a few RunConfigs, (b) a measurement from their frames (and, for the
bound, from the network itself) to numbers, (c) a pure verdict from those numbers (see
checks.py for the rules every verdict follows).
"""

from __future__ import annotations

from typing import Any

import torch

from normcore.claims.base import Experiment, variant
from normcore.claims.batches import norm_net
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


def verdict_c7(n: Numbers) -> dict[str, Any]:
    """numbers: cn_max_abs (largest |pre-activation| under CN), acc {norm: held-out acc}."""
    acc = n["acc"]
    bound = n["cn_max_abs"]
    others = {k: v for k, v in acc.items() if k != "cosine"}
    best = max((v for v in others.values() if finite(v)), default=None)
    best_name = next((k for k, v in others.items() if v == best), "none")
    checks = [
        check(
            "CN's pre-activations stay within [-1, 1]",
            finite(bound) and bound <= 1 + BOUND_TOL,
            f"largest |pre-activation| under CN {fmt(bound)}",
        ),
        lower(
            "CN's loss of scale information costs accuracy here",
            acc.get("cosine"),
            best,
            "CN's held-out accuracy",
            f"the best dot-product net's ({best_name})",
            ACC_MARGIN,
        ),
    ]
    criterion = (
        "Every pre-activation of the cosine-normalized network, over the held-out data after "
        f"training, lies within [-1, 1] (+{BOUND_TOL:g}); and CN's held-out accuracy is more "
        f"than {ACC_MARGIN:g} below the best of the same network with BN, LN, WN or no norm."
    )
    return combine(criterion, checks, n)


# --- (a) arms and (b) measurements ------------------------------------------------------

C7_ARMS = ("cosine", "cosine_affine", "batch", "layer", "weight", "none")


def c7_arms(quick: bool) -> dict[str, RunConfig]:
    """C4's network at batch 64. "cosine" is Luo et al.'s layer (no g, b: the activation sees
    cos itself); "cosine_affine" adds g * cos + b so CN competes on equal terms."""
    arms = {n: norm_net(quick, n, 64) for n in ("batch", "layer", "weight", "none")}
    arms["cosine"] = variant(norm_net(quick, "cosine", 64), affine=False)
    arms["cosine_affine"] = norm_net(quick, "cosine", 64)
    return {k: arms[k] for k in C7_ARMS}


def outside_unit(frames: list[Frame]) -> float | None:
    """Fraction of activation inputs, over all probes and layers, in histogram bins lying
    wholly outside [-1, 1] (plus under/overflow): a lower bound on the mass beyond +-1."""
    total = outside = 0
    for frame in frames:
        for layer in frame.get("layers") or []:
            h = layer["hist"]
            width = (h["hi"] - h["lo"]) / len(h["counts"])
            for i, c in enumerate(h["counts"]):
                a = h["lo"] + i * width
                outside += c if (a + width < -1 or a > 1) else 0
            outside += h["under"] + h["over"]
            total += sum(h["counts"]) + h["under"] + h["over"]
    return outside / total if total else None


@torch.no_grad()
def cosine_bound(config: RunConfig, scales: tuple[float, ...] = (1e-3, 1.0, 1e3)) -> float:
    """Largest |activation input| of the CN network (no g, b) on the held-out set, with its
    weights and its inputs each scaled by every factor in `scales`: the bound must hold for
    any weights and any data, not only the ones training happened to reach."""
    from normcore.data import load_dataset
    from normcore.models import build_model

    data = load_dataset(config.dataset, seed=config.seed)
    torch.manual_seed(config.seed)
    model = build_model(config, data.input_shape, data.n_classes).double().eval()
    seen: list[float] = []
    blocks: list[Any] = list(model.blocks)
    hooks = [
        b.act_in.register_forward_hook(lambda m, i, o: seen.append(float(o.abs().max())))
        for b in blocks
    ]
    weights = [b.linear.weight for b in blocks]
    originals = [w.clone() for w in weights]
    for ws in scales:
        for w, w0 in zip(weights, originals, strict=True):
            w.copy_(w0 * ws)
        for xs in scales:
            model(data.test_x.double() * xs)
    for h in hooks:
        h.remove()
    return max(seen)


def measure_c7(frames: dict[str, list[Frame]], quick: bool):
    acc = {k: final_eval(frames[k]) for k in C7_ARMS}
    outside = {k: outside_unit(frames[k]) for k in C7_ARMS}
    bound = cosine_bound(c7_arms(quick)["cosine"])
    cn_accs = [x for k, v in acc.items() if k.startswith("cosine") and (x := num(v)) is not None]
    best_cn = max(cn_accs, default=None)
    numbers = {
        "cn_max_abs": bound,
        "acc": {"cosine": best_cn, **{k: v for k, v in acc.items() if not k.startswith("cos")}},
        "acc_by_arm": acc,
        "mass_outside_unit": outside,
    }
    series = [
        plot(
            "Held-out accuracy, same network",
            "norm",
            "accuracy",
            [trace("accuracy", list(acc), list(acc.values()))],
            kind="bar",
        ),
        plot(
            "Activation inputs beyond +-1 during training",
            "norm",
            "fraction",
            [trace("outside [-1, 1]", list(outside), list(outside.values()))],
            kind="bar",
        ),
    ]
    return numbers, series


C7 = Experiment(
    id="C7",
    title="CN bounds the pre-activation but loses the dot product's scale",
    claim=(
        "Cosine norm replaces w.x with the cosine of the angle between w and x, so outputs "
        "are bounded; but the scale information of the dot product is lost, which may reduce "
        "expressiveness."
    ),
    experiment=(
        "C4's ReLU MLP at batch 64 with CN (Luo et al.'s layer, and with a per-unit g, b), BN, "
        "LN, WN and no norm: the largest |activation input| of the CN network over the "
        "held-out set with weights and inputs scaled by 1e-3, 1, 1e3; the share of each run's "
        "activation inputs beyond +-1 during training; final held-out accuracy."
    ),
    configs=c7_arms,
    measure=measure_c7,
    verdict=verdict_c7,
)
