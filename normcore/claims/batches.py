"""C4, C6 on the protocol: what BN needs from its mini-batch (size, order), and WN's freedom.

C4, the seed: BN is for large mini-batches with similar distributions; data must be shuffled
well. Published: Wu & He (2018, Group Normalization; ResNet-50 on ImageNet), BN's
validation error 23.6 / 23.7 / 24.8 / 27.3 / 34.7 % at 32 / 16 / 8 / 4 / 2 images per GPU, GN's
24.1 / 24.2 / 24.0 / 24.2 / 24.1: BN's error rises at small batches, GN's stays flat. They train
every batch size for the same number of epochs (the rate scaled with the batch); here every
batch size sees the same number of samples (``samples``) and each arm's rate is tuned on
validation per batch size, which covers the rate scaling. Test accuracy in eval mode: BN with
its running statistics, as Wu & He evaluate it.

C6, the seed: WN uses no statistics of the input data, so it avoids BN's mini-batch
dependence. No published table; the same sweep with WN in GN's place, plus a direct check that
a sample's WN output ignores its batch-mates (``batch_dependence``).

Criterion, fixed before the runs. Per regime cell (a batch size, or an order, against the
reference: batch 32, shuffled) and per seed, an arm's *drop* is its test accuracy at the
reference minus its test accuracy in the regime, each at the rate tuned on validation there.
The cell *holds* when BN's drop exceeds the rival's (GN for C4, WN for C6) beyond two standard
errors over seeds, *fails* when it is below, and reads "no difference measured" otherwise. The
baselines must train (the degenerate-baseline check): every arm at the reference, the rival in
the regime; BN in the regime is the subject, its failure to train is the effect. The claim's
verdict is the published cell's: the smallest batch against 32 (C4's quick mode stops at 4).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from normcore.claims import protocol as P
from normcore.claims.base import Experiment, arm_config, variant
from normcore.claims.checks import BOUND_TOL, Numbers, check, finite, fmt
from normcore.claims.measures import final_eval, mean, plot, trace
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
REFERENCE = 32  # Wu & He's largest (and BN's best) images per GPU
C4_NOT_MATCHED = (
    "Wu & He trained ResNet-50 on ImageNet for a fixed number of epochs with the lr scaled to "
    "the batch; here a 3-layer ReLU MLP on digits, a fixed number of samples at every batch "
    "size, each arm's lr tuned on validation per batch size: the batch sizes, the arms (BN, "
    "GN; LN beside them), equal data seen and eval-mode BN are matched, the network and the "
    "data are not"
)
C6_NOT_MATCHED = (
    "no published table for WN at small batches (Salimans & Kingma 2016 do not vary the "
    "batch); the cell marked published is the smallest batch against 32, on C4's network"
)


def sizes(quick: bool) -> tuple[int, ...]:
    """Batch sizes; quick stops at 4 (batch 2 costs 2x the steps at ~the same time each)."""
    return (4, REFERENCE) if quick else (2, 4, 8, 16, REFERENCE, 64)


def samples(quick: bool) -> int:
    """Training samples every batch size sees: ~1.2 epochs of digits quick, ~4.9 full (the
    full budget's share, budget.py: 9600 samples made C4 alone ~11 minutes of the 50)."""
    return 1600 if quick else 6400


def size_changes(quick: bool, batch_size: int) -> dict[str, Any]:
    """A batch size's run length: the same samples for every size, two probes and two
    evaluations after the first (the degenerate-baseline check needs the layers' movement)."""
    steps = samples(quick) // batch_size
    return dict(batch_size=batch_size, steps=steps, probe_every=steps // 2, eval_every=steps // 2)


def batch_net(quick: bool, norm: str) -> RunConfig:
    """The ReLU MLP of C4 and C6 at the reference batch; regimes change the batch and order."""
    width = 32 if quick else 64
    return arm_config(
        quick,
        norm=norm,
        activation="relu",
        depth=3,
        width=width,
        optimizer="momentum",
        lr=0.03,  # replaced by every value of the grid
        groups=4,
        **size_changes(quick, REFERENCE),
    )


def norm_net(quick: bool, norm: str, batch_size: int, order: str = "shuffled") -> RunConfig:
    """The first edition's ReLU MLP at one shared lr, which C8 still trains and measures."""
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


def size_regime(batch_size: int) -> str:
    return f"batch {batch_size}"


REF_REGIME = size_regime(REFERENCE)
ONE_CLASS = f"one-class batches, batch {REFERENCE}"
CLASS_SORTED = f"class-sorted batches, batch {REFERENCE}"


def c4_regimes(quick: bool) -> dict[str, dict[str, Any]]:
    """Batch sizes (shuffled), then batch orders at the reference size: one class per batch
    (classes cycling) isolates BN's batch statistics from forgetting; class-sorted epochs
    (full mode) add the forgetting every arm suffers."""
    cells = {size_regime(b): size_changes(quick, b) for b in sizes(quick)}
    cells[ONE_CLASS] = {"batch_order": "one_class"}
    if not quick:
        cells[CLASS_SORTED] = {"batch_order": "class_sorted"}
    return cells


def c6_regimes(quick: bool) -> dict[str, dict[str, Any]]:
    return {size_regime(b): size_changes(quick, b) for b in sizes(quick)}


C4_ARMS = ("batch", "group", "layer")
C6_ARMS = ("batch", "weight")


def c4_arms(quick: bool) -> dict[str, RunConfig]:
    arms = {n: batch_net(quick, n) for n in C4_ARMS}
    return P.sweep_configs(arms, c4_regimes(quick), P.seeds(quick), P.grid(quick))


def c6_arms(quick: bool) -> dict[str, RunConfig]:
    arms = {n: batch_net(quick, n) for n in C6_ARMS}
    return P.sweep_configs(arms, c6_regimes(quick), P.seeds(quick), P.grid(quick))


# --- (b) measurement: tuned arms to drop cells ---------------------------------------------


def drops(reference: Sequence[Any], regime: Sequence[Any]) -> list[float | None]:
    """Per seed: test accuracy at the reference minus in the regime (None where either is)."""
    return [r - s if finite(r, s) else None for r, s in zip(reference, regime, strict=True)]


def drop_cell(
    frames: dict[str, list[Frame]],
    regime: str,
    arms: Sequence[str],
    subject: str,
    quick: bool,
) -> dict[str, Any]:
    """One regime against the reference: each arm tuned in both, its drop per seed, and the
    baselines the comparison needs (every arm at the reference, every arm but the subject in
    the regime)."""
    lr, lr_ref, acc, acc_ref, drop, base = {}, {}, {}, {}, {}, {}
    for arm in arms:
        here = P.tuned_arm(frames, regime, arm, P.seeds(quick), P.grid(quick), final_eval)
        ref = P.tuned_arm(frames, REF_REGIME, arm, P.seeds(quick), P.grid(quick), final_eval)
        lr[arm], lr_ref[arm] = here["lr"], ref["lr"]
        acc[arm], acc_ref[arm] = here["values"], ref["values"]
        drop[arm] = drops(ref["values"], here["values"])
        base[f"{arm}, {REF_REGIME}"] = ref["baseline"]
        if arm != subject:
            base[f"{arm}, {regime}"] = here["baseline"]
    return {
        "regime": regime,
        "reference": REF_REGIME,
        "runs_of": [regime, REF_REGIME],  # the Claims view links both regimes' runs
        "seeds": list(P.seeds(quick)),
        "lr": lr,
        "lr_reference": lr_ref,
        "acc": acc,
        "acc_reference": acc_ref,
        "drop": drop,
        "baseline": base,
    }


def judge_drops(
    cells: Sequence[dict[str, Any]], subject: str, rival: str, names: dict[str, str]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Each cell's verdict: the subject's drop above the rival's beyond two standard errors
    holds, below fails; a degenerate baseline overrides. Returns (cells, checks)."""
    judged, checks = [], []
    for cell in cells:
        effect = P.compare(cell["drop"][subject], cell["drop"][rival])
        reasons = [f"{k}: {r}" for k, b in cell["baseline"].items() for r in b["reasons"]]
        ok = all(b["ok"] for b in cell["baseline"].values())
        verdict = P.cell_verdict(effect, "a > b", {"ok": ok, "reasons": reasons})
        effects = [P.effect_of(f"drop {names[subject]} - drop {names[rival]}", effect, "> 0")]
        for arm in cell["drop"]:
            m, se, _ = P.mean_se(cell["drop"][arm])
            effects.append({"name": f"drop {names[arm]}", "value": m, "se": se})
        judged.append({**cell, "effect": effect, "effects": effects, "verdict": verdict})
        detail = (
            f"{verdict}: test accuracy lost from {cell['reference']} to {cell['regime']}, "
            + ", ".join(f"{e['name']} {fmt(e['value'])}" for e in effects[1:])
            + f"; {names[subject]} - {names[rival]} {fmt(effect['diff'])} ± {fmt(effect['se'])}"
            + f"; lr {cell['lr']} (reference {cell['lr_reference']})"
        )
        if reasons:
            detail += "; " + "; ".join(reasons)
        checks.append(
            check(
                f"{cell['regime']}: {names[subject]} loses more than {names[rival]}",
                verdict == P.HOLDS,
                detail,
            )
        )
    return judged, checks


NAMES = {"batch": "BN", "group": "GN", "layer": "LN", "weight": "WN"}


def verdict_c4(n: Numbers) -> dict[str, Any]:
    """numbers["cells"]: [{regime, published, drop: {arm: [per seed]}, baseline: {name: {ok,
    reasons}}, lr, ...}]; adds each cell's comparison, effects and verdict."""
    cells, checks = judge_drops(n["cells"], "batch", "group", NAMES)
    criterion = (
        "Per regime (a batch size, or one-class batches), against batch 32 shuffled, each "
        "arm's lr tuned on validation in both: BN's drop in test accuracy (eval mode) exceeds "
        "GN's beyond two standard errors over seeds (holds), falls below it (fails), or "
        "neither (no difference measured); every arm must train at batch 32 and GN and LN in "
        "the regime. LN's drop is reported beside them. The verdict is the smallest batch's "
        f"cell (Wu & He: BN +11.1 error points from 32 to 2, GN +0.0). {C4_NOT_MATCHED}."
    )
    return P.judged(n, cells, criterion, checks)


def verdict_c6(n: Numbers) -> dict[str, Any]:
    """numbers: cells (as C4's, arms batch and weight), batch_dependence {weight: [per seed],
    batch: [per seed]}: the largest change of a sample's output when its batch-mates change.
    A WN that depends on its batch (or a BN that does not) contradicts the mechanism the
    claim names: "not reproduced" whatever the cells say."""
    cells, checks = judge_drops(n["cells"], "batch", "weight", NAMES)
    dep = n["batch_dependence"]
    wn, bn = dep.get("weight") or [], dep.get("batch") or []
    independent = (
        bool(wn and bn) and finite(*wn, *bn) and max(wn) <= BOUND_TOL and min(bn) > BOUND_TOL
    )
    checks.insert(
        0,
        check(
            "WN's output for a sample ignores the rest of its batch; BN's does not",
            independent,
            f"largest change of a sample's output when its batch-mates change, over seeds: "
            f"WN {fmt(max(wn, default=None))}, BN smallest {fmt(min(bn, default=None))} "
            f"(independent means <= {BOUND_TOL:g})",
        ),
    )
    verdict = None if independent else "not reproduced"
    criterion = (
        "A sample's output (training mode, float64) changes by at most "
        f"{BOUND_TOL:g} when its batch-mates are replaced under WN, and by more under BN, for "
        "every seed; and per batch size, against batch 32, each arm's lr tuned on validation: "
        "BN's drop in test accuracy exceeds WN's beyond two standard errors over seeds "
        "(holds), falls below it (fails), or neither; WN must train in every regime and BN at "
        f"batch 32. The verdict is the smallest batch's cell. {C6_NOT_MATCHED}."
    )
    return P.judged(n, cells, criterion, checks, verdict)


def size_cells(frames, arms: Sequence[str], quick: bool) -> list[dict[str, Any]]:
    smallest = sizes(quick)[0]
    return [
        {
            **drop_cell(frames, size_regime(b), arms, "batch", quick),
            "published": b == smallest,
            "matched": False,
        }
        for b in sizes(quick)
        if b != REFERENCE
    ]


def error_by_batch(cells: Sequence[dict[str, Any]], arms: Sequence[str], quick: bool):
    """Test error % by batch size, mean over seeds at each arm's tuned rate, per arm."""
    by_size = {c["regime"]: c["acc"] for c in cells}
    by_size[REF_REGIME] = cells[0]["acc_reference"]
    traces = []
    for arm in arms:
        ys = []
        for b in sizes(quick):
            m = mean(by_size[size_regime(b)][arm])
            ys.append(None if m is None else 100 * (1 - m))
        traces.append(trace(NAMES[arm], list(sizes(quick)), ys))
    return traces


def measure_c4(frames: dict[str, list[Frame]], quick: bool):
    cells = size_cells(frames, C4_ARMS, quick)
    for regime in (ONE_CLASS, CLASS_SORTED):
        if regime in c4_regimes(quick):
            cell = drop_cell(frames, regime, C4_ARMS, "batch", quick)
            cells.append({**cell, "published": False, "matched": False})
    published = [
        trace(f"{NAMES[n]} (Wu & He, ImageNet)", WU_HE["images_per_gpu"], e, dash="dot")
        for n, e in WU_HE["error"].items()
    ]
    series = [
        plot(
            "Test error (eval mode) by batch size, lr tuned per arm and batch, mean over seeds",
            "batch size",
            "error %",
            error_by_batch(cells, C4_ARMS, quick) + published,
            log_x=True,
        ),
    ]
    return {"cells": cells, "wu_he": WU_HE, "not_matched": C4_NOT_MATCHED}, series


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
    cells = size_cells(frames, C6_ARMS, quick)
    small = size_changes(quick, sizes(quick)[0])
    dependence = {
        n: [batch_dependence(variant(batch_net(quick, n), **small, seed=s)) for s in P.seeds(quick)]
        for n in C6_ARMS
    }
    series = [
        plot(
            "Test error (eval mode) by batch size, lr tuned per arm and batch, mean over seeds",
            "batch size",
            "error %",
            error_by_batch(cells, C6_ARMS, quick),
            log_x=True,
        ),
        plot(
            f"Change of one sample's output when its batch-mates change (batch {sizes(quick)[0]})",
            "norm",
            "max |change|",
            [
                trace(
                    "seed " + str(s),
                    [NAMES[n] for n in C6_ARMS],
                    [max(dependence[n][i], 1e-17) for n in C6_ARMS],
                )
                for i, s in enumerate(P.seeds(quick))
            ],
            log_y=True,
            kind="bar",
        ),
    ]
    numbers = {"cells": cells, "batch_dependence": dependence, "not_matched": C6_NOT_MATCHED}
    return numbers, series


C4 = Experiment(
    id="C4",
    title="BN needs large, well-shuffled batches (Wu & He's batch-size table)",
    claim=(
        "Batch norm is for large mini-batches with similar distributions; data must be "
        "shuffled well or results get much worse. Wu & He 2018 (ResNet-50, ImageNet): BN's "
        "error rises from 23.6% to 34.7% going from 32 to 2 images per GPU, GN stays at 24.1%."
    ),
    experiment=(
        "A 3-layer ReLU MLP on digits with BN, GN or LN, every batch size trained on the same "
        "number of samples, each arm's lr tuned on validation per batch size (quick: batch 4 "
        "and 32, 4 rates, 2 seeds; full: 2, 4, 8, 16, 32, 64, 7 rates, 5 seeds), and one-class "
        "batches of 32 (full: class-sorted too); test accuracy in eval mode. Each regime's "
        "drop against batch 32 shuffled, BN's against GN's."
    ),
    configs=c4_arms,
    measure=measure_c4,
    verdict=verdict_c4,
)

C6 = Experiment(
    id="C6",
    title="WN uses no batch statistics, so small batches do not hurt it as they hurt BN",
    claim=(
        "Weight norm uses no statistics of the input data, so it avoids BN's mini-batch "
        "dependence and LN's single-transform limit; usable with dynamic networks."
    ),
    experiment=(
        "C4's sweep with WN and BN (the BN runs are C4's): each batch size's drop in test "
        "accuracy against batch 32, each arm's lr tuned on validation per batch size, 2 seeds "
        "quick / 5 full; and per seed, how far one sample's output moves when its batch-mates "
        "are swapped (training mode, float64). LN's single-transform limit and dynamic "
        "networks are not tested here."
    ),
    configs=c6_arms,
    measure=measure_c6,
    verdict=verdict_c6,
)
