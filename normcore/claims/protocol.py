"""The protocol every claim of the second edition follows, as pure functions (issue 15).

1. **Several seeds.** Each arm runs with every seed of the experiment.
2. **Each arm's learning rate is tuned** over a fixed log grid (``LR_GRID``) on a validation
   split carved from the training data (``RunConfig.val_fraction``, frame["val"]); the chosen
   rate's runs are reported on the test split (frame["eval"]). ``select_lr`` picks it.
3. **An effect counts only beyond two standard errors over seeds** (``compare``); otherwise the
   comparison reads "no difference measured", never a coin flip.
4. **A baseline must be non-degenerate** (``baseline_check``): it trains (its validation
   accuracy rises by ``TRAIN_GAIN`` over the run) and its layers move (each hidden layer's
   weights travel at least ``MOVE_MIN`` of their norm). An experiment with a degenerate
   baseline reports that instead of a verdict (``cell_verdict``).
5. **Criteria are fixed here and in each claim's module before the runs**; the tests feed them
   hand-made numbers and the same numbers swapped, and the verdict must flip.

``sweep_configs`` lays out an experiment's runs: arms × regimes × learning rates × seeds, each
a RunConfig with a key ``regime|arm|lr|seed`` so the measurement can find them again.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from normcore.claims.checks import check, finite, fmt
from normcore.config import RunConfig

# Half-decade steps over three decades; quick mode takes every other value.
LR_GRID = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0)
QUICK_LR_GRID = LR_GRID[::2]  # 0.003, 0.03, 0.3, 3
SE_FACTOR = 2.0  # an effect counts beyond this many standard errors of the difference
TRAIN_GAIN = 0.05  # "it trains": validation accuracy rises by this much over the run
MOVE_MIN = 1e-3  # "its layers move": each layer's weights travel this fraction of their norm
VAL_FRACTION = 0.1  # the validation split carved from training data for every tuned arm

# verdicts of one comparison and of one regime cell
HOLDS, FAILS, NO_DIFF = "holds", "fails", "no difference measured"
DEGENERATE, UNMEASURED = "degenerate baseline", "unmeasured"
# what a claim's result can say: checks.combine's three, and a protocol claim's published
# cell read as summarize_cells reads it (the API's schema and the dashboard take these)
CLAIM_VERDICTS = ("reproduced", "mixed", "not reproduced", NO_DIFF, DEGENERATE, UNMEASURED)


def mean_se(values: Sequence[Any]) -> tuple[float | None, float | None, int]:
    """(mean, standard error of the mean, n) of the finite values; SE None below 2 values."""
    good = [float(v) for v in values if finite(v)]
    n = len(good)
    if n == 0:
        return None, None, 0
    m = sum(good) / n
    if n < 2:
        return m, None, n
    var = sum((v - m) ** 2 for v in good) / (n - 1)
    return m, math.sqrt(var / n), n


def compare(a: Sequence[Any], b: Sequence[Any], factor: float = SE_FACTOR) -> dict[str, Any]:
    """Is mean(a) above mean(b)? Per-seed values in; the difference, its standard error
    (unpaired, Welch's: sqrt(se_a² + se_b²)) and a direction out:

    "a > b" or "a < b" when |diff| > factor × se, else "no difference measured"; "unmeasured"
    when either side has fewer than two finite values (no standard error) or any value of a
    side is missing (a diverged seed is not silently dropped from a comparison).
    """
    ma, sa, na = mean_se(a)
    mb, sb, nb = mean_se(b)
    out: dict[str, Any] = {"a": ma, "b": mb, "n_a": na, "n_b": nb, "diff": None, "se": None}
    if sa is None or sb is None or ma is None or mb is None or na < len(a) or nb < len(b):
        return {**out, "direction": UNMEASURED}
    diff, se = ma - mb, math.sqrt(sa**2 + sb**2)
    out.update(diff=diff, se=se)
    if abs(diff) > factor * se:
        return {**out, "direction": "a > b" if diff > 0 else "a < b"}
    return {**out, "direction": NO_DIFF}


def select_lr(val_scores: Mapping[float, Sequence[Any]]) -> dict[str, Any]:
    """The learning rate with the highest mean validation score over seeds.

    ``val_scores``: lr -> the per-seed validation accuracy (None where the run diverged or
    never evaluated: such a seed scores 0, so an lr that diverges for some seeds is not
    chosen for the others' sake). Ties go to the smaller rate. ``lr`` is None when no rate
    has a finite score at all.
    """
    means = {}
    for lr, scores in val_scores.items():
        values = [float(v) if finite(v) else 0.0 for v in scores]
        means[lr] = sum(values) / len(values) if values else None
    scored = [(m, -lr, lr) for lr, m in means.items() if m is not None]
    anything = any(finite(v) for scores in val_scores.values() for v in scores)
    best = max(scored)[2] if scored and anything else None
    return {"lr": best, "val_by_lr": {f"{lr:g}": m for lr, m in means.items()}}


def baseline_check(val_first: Any, val_last: Any, movement: Sequence[Any]) -> dict[str, Any]:
    """Is a baseline run usable as one? ``val_first``/``val_last``: its validation accuracy
    at the first and last evaluation; ``movement``: per hidden layer, how far its weights
    travelled relative to their norm (``layer_movement``). Degenerate when it does not train
    (gain below TRAIN_GAIN) or any layer moved less than MOVE_MIN."""
    reasons = []
    gain = val_last - val_first if finite(val_first, val_last) else None
    if gain is None:
        reasons.append("its validation accuracy was not measured")
    elif gain < TRAIN_GAIN:
        reasons.append(
            f"it does not train (validation accuracy +{fmt(gain)}, needs +{TRAIN_GAIN:g})"
        )
    still = [i + 1 for i, m in enumerate(movement) if not finite(m) or m < MOVE_MIN]
    if still:
        worst = min((m for m in movement if finite(m)), default=None)
        reasons.append(
            f"layers {still} do not move (weights travel {fmt(worst)} of their "
            f"norm at least, needs {MOVE_MIN:g})"
        )
    return {"ok": not reasons, "gain": gain, "movement": list(movement), "reasons": reasons}


def layer_movement(frames: Sequence[Mapping[str, Any]]) -> list[float | None]:
    """Per hidden layer: the path its weights travelled relative to their norm, estimated
    from the probed steps' update ratios ‖ΔW‖/‖W‖ times the steps each probe stands for."""
    probed = [f for f in frames if f.get("layers")]
    if not probed:
        return []
    out: list[float | None] = []
    for i in range(len(probed[0]["layers"])):
        total, prev = 0.0, 0
        for f in probed:
            r = f["layers"][i].get("update_ratio")
            if not finite(r):
                total = math.nan
                break
            total += r * (f["step"] - prev)
            prev = f["step"]
        out.append(total if math.isfinite(total) else None)
    return out


def cell_verdict(effect: dict[str, Any], expected: str, baseline: dict[str, Any] | None):
    """One regime cell: ``effect`` from ``compare`` and the direction the claim predicts
    ("a > b" or "a < b"). A degenerate baseline overrides everything."""
    if baseline is not None and not baseline["ok"]:
        return DEGENERATE
    direction = effect["direction"]
    if direction in (UNMEASURED, NO_DIFF):
        return direction
    return HOLDS if direction == expected else FAILS


def joint_verdict(parts: Sequence[str], baseline: dict[str, Any] | None = None) -> str:
    """A cell whose claim has several parts, each a ``cell_verdict`` read on its own: a
    degenerate baseline overrides everything; any part that fails fails the cell; the cell
    holds only when every part holds; otherwise it reads as its first part that does not
    hold ("no difference measured" or "unmeasured")."""
    if baseline is not None and not baseline["ok"]:
        return DEGENERATE
    if FAILS in parts:
        return FAILS
    return next((v for v in parts if v != HOLDS), HOLDS)


def arms_baseline(baselines: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Several arms' ``tuned_arm`` baselines as one: usable only when every arm is, with
    each reason named by its arm."""
    return {
        "ok": all(b["ok"] for b in baselines.values()),
        "reasons": [f"{arm}: {r}" for arm, b in baselines.items() for r in b["reasons"]],
    }


def judge_parts(
    cell: Mapping[str, Any], parts: Sequence[tuple[str, str, dict[str, Any]]], claim: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A regime cell whose claim has several parts, each a ``compare`` that the claim
    predicts reads "a > b": ``parts`` is [(key, name, comparison)]. The cell's arms must all
    be usable baselines (``cell["baseline"]``: arm -> tuned_arm's baseline). Returns the
    judged cell (each comparison under its key, ``effects`` for the regime map, ``verdict``,
    ``degenerate``: the reasons) and its check, named ``regime: claim``."""
    both = arms_baseline(cell["baseline"])
    verdict = joint_verdict([cell_verdict(c, "a > b", None) for _, _, c in parts], both)
    effects = [{"name": n, "value": c["diff"], "se": c["se"], "needs": "> 0"} for _, n, c in parts]
    said = [
        f"{n} {fmt(c['diff'])} ± {fmt(c['se'])} ({fmt(c['a'])} against {fmt(c['b'])})"
        for _, n, c in parts
    ]
    rates = ", ".join(f"{arm} {lr:g}" if finite(lr) else arm for arm, lr in cell["lr"].items())
    detail = f"{verdict}: " + "; ".join([*said, f"lr {rates}", *both["reasons"]])
    judged = {**cell, **{k: c for k, _, c in parts}, "effects": effects}
    judged.update(verdict=verdict, degenerate=both["reasons"])
    return judged, check(f"{cell['regime']}: {claim}", verdict == HOLDS, detail)


def summarize_cells(cells: Sequence[Mapping[str, Any]]) -> str:
    """The claim's verdict from its regime cells: "reproduced" when the published cell holds,
    "not reproduced" when it fails, "no difference measured", "degenerate baseline" or
    "unmeasured" as that cell reads; the other cells are the regime map."""
    published = [c for c in cells if c.get("published")]
    if not published:
        return UNMEASURED
    v = published[0]["verdict"]
    return {HOLDS: "reproduced", FAILS: "not reproduced"}.get(v, v)


# --- laying out a sweep -----------------------------------------------------------------


def key(regime: str, arm: str, lr: float, seed: int) -> str:
    return f"{regime}|{arm}|{lr:g}|{seed}"


def sweep_configs(
    arms: Mapping[str, RunConfig],
    regimes: Mapping[str, Mapping[str, Any]],
    seeds: Sequence[int],
    grid: Sequence[float] | None,
) -> dict[str, RunConfig]:
    """Every run of the sweep: arm × regime × lr × seed, keyed ``regime|arm|lr|seed``.

    A regime's overrides go over the arm's config; ``grid`` None keeps each arm's own lr
    (a published setting run as published). Every run carves a validation split.
    """
    out = {}
    for regime, changes in regimes.items():
        for arm, config in arms.items():
            merged = {**config.model_dump(), **changes, "val_fraction": VAL_FRACTION}
            for lr in grid if grid is not None else (merged["lr"],):
                for seed in seeds:
                    cfg = RunConfig.model_validate({**merged, "lr": lr, "seed": seed})
                    out[key(regime, arm, lr, seed)] = cfg
    return out


def final_val(frames: Sequence[Mapping[str, Any]], key_: str = "acc") -> Any:
    """The last validation score of a run; None when it diverged or never evaluated."""
    if not frames or frames[-1].get("status") == "diverged":
        return None
    vals = [f["val"].get(key_) for f in frames if f.get("val")]
    return vals[-1] if vals and finite(vals[-1]) else None


def first_val(frames: Sequence[Mapping[str, Any]], key_: str = "acc") -> Any:
    vals = [f["val"].get(key_) for f in frames if f.get("val")]
    return vals[0] if vals else None


def tune(
    frames: Mapping[str, Sequence[Any]],
    regime: str,
    arm: str,
    seeds: Sequence[int],
    grid: Sequence[float],
) -> dict[str, Any]:
    """Pick the arm's lr in a regime on validation; its runs, one per seed, come with it."""
    scores = {lr: [final_val(frames[key(regime, arm, lr, s)]) for s in seeds] for lr in grid}
    chosen = select_lr(scores)
    lr = chosen["lr"] if chosen["lr"] is not None else grid[0]
    return {**chosen, "runs": [frames[key(regime, arm, lr, s)] for s in seeds]}


def tuned_arm(
    frames: Mapping[str, Sequence[Any]],
    regime: str,
    arm: str,
    seeds: Sequence[int],
    grid: Sequence[float],
    value: Callable[[Any], Any],
) -> dict[str, Any]:
    """An arm in a regime, tuned: {lr, values: value(run) per seed at the chosen lr,
    baseline: {ok, reasons, val_by_lr} (degenerate when any seed's run is), runs}."""
    tuned = tune(frames, regime, arm, seeds, grid)
    checks = [baseline_check(first_val(r), final_val(r), layer_movement(r)) for r in tuned["runs"]]
    baseline = {
        "ok": all(c["ok"] for c in checks),
        "reasons": sorted({x for c in checks for x in c["reasons"]}),
        "val_by_lr": tuned["val_by_lr"],
    }
    values = [value(r) for r in tuned["runs"]]
    return {"lr": tuned["lr"], "values": values, "baseline": baseline, "runs": tuned["runs"]}


# --- pieces every claim's module on the protocol uses ------------------------------------


def seeds(quick: bool) -> tuple[int, ...]:
    """The experiment's seeds: 2 in quick mode, 5 in full."""
    return (0, 1) if quick else (0, 1, 2, 3, 4)


def grid(quick: bool) -> tuple[float, ...]:
    """The learning rates every tuned arm tries."""
    return QUICK_LR_GRID if quick else LR_GRID


def effect_of(name: str, comparison: Mapping[str, Any], needs: str) -> dict[str, Any]:
    """A regime cell's headline effect for the map: a comparison's difference ± its SE."""
    return {"name": name, "value": comparison["diff"], "se": comparison["se"], "needs": needs}


def judged(
    numbers: Mapping[str, Any],
    cells: list[dict[str, Any]],
    criterion: str,
    checks: list[dict[str, Any]],
    verdict: str | None = None,
) -> dict[str, Any]:
    """What a protocol claim's verdict function returns; ``verdict`` None reads the
    published cell's (``summarize_cells``); the judged cells are the regime map."""
    return {
        "verdict": verdict if verdict is not None else summarize_cells(cells),
        "criterion": criterion,
        "checks": checks,
        "numbers": {**numbers, "cells": cells},
        "regimes": cells,
    }


def tuned_cell(
    frames: Mapping[str, Sequence[Any]],
    regime: str,
    arms: Sequence[str],
    seeds: Sequence[int],
    grid: Sequence[float],
    measures: Mapping[str, Callable[[Any], Any]],
) -> dict[str, Any]:
    """One regime cell's numbers: each arm tuned in the regime (``tuned_arm``), then every
    measure of ``measures`` (name -> run -> number) per seed of the chosen runs:
    {regime, seeds, lr: {arm}, baseline: {arm}, name: {arm: [per seed]} ...}."""
    cell: dict[str, Any] = {"regime": regime, "seeds": list(seeds), "lr": {}, "baseline": {}}
    for name in measures:
        cell[name] = {}
    for arm in arms:
        got = tuned_arm(frames, regime, arm, seeds, grid, lambda run: None)
        cell["lr"][arm], cell["baseline"][arm] = got["lr"], got["baseline"]
        for name, measure in measures.items():
            cell[name][arm] = [measure(run) for run in got["runs"]]
    return cell
