"""C9 on the protocol: data-scale invariance, Norm(W lambda x) = Norm(W x), measured over seeds.

The seed's C9: the invariance holds for BN, LN and CN, not for WN. Published: Ba, Kiros &
Hinton (2016) Table 1, "dataset re-scaling": BN invariant, LN invariant, WN not (CN from the
seed). Their table is algebra; a real layer adds eps, and eps makes the invariance approximate
in a way that is predictable, as C8's gradient law is: BN and LN divide by sqrt(var + eps) and
CN by sqrt(||x||^2 + eps), so a norm of lambda z with eps is exactly the norm of z with
eps / lambda^2. WN normalises the weight, not the data: WN(W lambda x) = lambda WN(W x).

This is a direct measurement, no training. The layer: the first hidden layer of C4's network
at its init (nn.Linear's, 64 -> 32, float64, affine off, training mode: batch statistics), on a
batch of 60 digits drawn by the seed; per seed (a new init and a new batch) and per lambda,
the output's relative deviation max |y(lambda x) - y(x)| / max |y(x)| ("measured"), the same
deviation predicted (eps / lambda^2 for BN, LN and CN; lambda y for WN), and eps over lambda^2
times the smallest variance (BN: per unit over the batch; LN: per sample over units; CN:
||x||^2) that says where eps matters.

Criterion, fixed before the runs. Per lambda (a regime cell), over seeds: for each of BN, LN
and CN the deviation beyond eps's prediction (|measured - predicted|) is below RESIDUAL_TOL
beyond two standard errors, and WN's measured deviation is above TOLERANCE beyond two
standard errors: holds. Any of these established the other way: fails. Otherwise the cell
reads what the undecided comparison reads. The raw deviations are reported beside: where eps
is comparable to lambda^2 var (small lambda) BN, LN and CN are invariant only up to eps, and
the cell says how far. The verdict is the published cell's (lambda 10: eps negligible).

The claim's second half, "it reduces gradient diffusion and makes the learning rate easier to
choose", is a training experiment (``c9_arms``): C4's ReLU MLP on digits with BN, LN, WN or no
norm, its inputs multiplied by 0.01, 1 or 100 (``RunConfig.input_scale``, train, validation
and test alike), each arm's lr tuned on validation per scale over the protocol's grid, seeds.
No paper ran this; the prediction follows from the algebra: BN's and LN's outputs and their
weights' gradients do not change when x is scaled (up to eps, and for LN up to the first
layer's bias, which is not scaled: LN(lambda W x + b) = LN(W x + b / lambda); BN's batch mean
removes b), so their best lr and their accuracy should not move; WN's and the plain net's do.

Criterion (fixed before the quick run reported in docs/claims.md; a first version, which
compared the chosen rates for equality, was replaced after one quick run because an exact
tie in validation accuracy between two rates decided it, see the docs). Per scale s (0.01,
100; a regime cell against scale 1), arm and seed, two shifts of test accuracy from scale 1
at its tuned rate: *transferred*, the rate tuned at scale 1 used at s (is the rate still
right?; a run that diverges there scores 0, as select_lr scores it), and *tuned*, the rate
tuned at s (is the accuracy still there?). The arm *stayed*
when both |shifts| are below ACC_TOL beyond two standard errors over seeds, *moved* when
either is above it beyond two standard errors, and otherwise reads what the undecided
comparison reads. The rates chosen at each scale are reported beside. The cell holds when BN
and LN stayed and WN and the plain net moved, fails when any arm did the opposite, and every
arm must train at scale 1 (degenerate baseline otherwise). The sweep's headline cell is scale
100 (eps negligible, as in the algebra); the claim is reproduced when both the published
invariance cell and the sweep's headline cell hold, not reproduced when either fails, and
otherwise reads the undecided one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from normcore import norms
from normcore.claims import protocol as P
from normcore.claims.base import Experiment, arm_config
from normcore.claims.checks import GRAD_LAW_RESIDUAL_TOL, Numbers, check, fmt
from normcore.claims.measures import final_eval, mean, plot, trace
from normcore.config import RunConfig
from normcore.frames import Frame
from normcore.invariance import TOLERANCE

FOUR = ("batch", "layer", "cosine", "weight")
INVARIANT = ("batch", "layer", "cosine")  # the seed's "holds for BN, LN and CN"
LAMBDAS = (0.01, 0.1, 0.5, 10.0, 1000.0)
PUBLISHED_LAMBDA = 10.0
RESIDUAL_TOL = GRAD_LAW_RESIDUAL_TOL  # float64: eps's prediction is exact to ~1e-15
BATCH, IN, OUT = 60, 64, 32
NAMES = {"batch": "BN", "layer": "LN", "cosine": "CN", "weight": "WN", "none": "no norm"}
# the learning-rate half: arms, input scales, which arms the claim says stay put
SWEEP_ARMS = ("batch", "layer", "weight", "none")
STAYS = ("batch", "layer")
SCALES = (0.01, 1.0, 100.0)
REFERENCE_SCALE, HEADLINE_SCALE = 1.0, 100.0
ACC_TOL = 0.02  # a test-accuracy shift below this (beyond two SE) is "did not move"
STAYED, MOVED = "stayed", "moved"
MATCHED = (
    "Ba et al.'s Table 1 (dataset re-scaling) is algebra without eps and without a lambda; "
    "matched: the transformation, one layer, the norms' statistics in training mode, affine "
    "off; differs: a real layer's eps, whose effect is predicted and reported"
)


def regime(lam: float) -> str:
    return f"lambda {lam:g}" + (" (published)" if lam == PUBLISHED_LAMBDA else "")


class Layer:
    """Norm(W x) for one norm in float64, W as C4's first hidden layer has it at init."""

    def __init__(self, norm: str, seed: int) -> None:
        self.norm_name = norm
        torch.manual_seed(seed)
        if norms.NORMS[norm].in_linear:  # WN's and CN's own layer is the normalisation
            self.linear = norms.make_linear(norm, IN, OUT, affine=False).double()
            self.norm: nn.Module = nn.Identity()
        else:
            self.linear = nn.Linear(IN, OUT, bias=False).double()
            self.norm = norms.create_norm_layer(norm, OUT, affine=False).double().train()

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.linear(x))  # (B, OUT)

    @contextmanager
    def eps_divided(self, factor: float) -> Iterator[None]:
        """The layer's eps divided by `factor` inside the block: the module's own eps (BN,
        LN), or normcore.norms' cosine eps, which CosineLinear reads at every call."""
        if self.norm_name == "cosine":
            saved = norms._EPS
            norms._EPS = saved / factor
            try:
                yield
            finally:
                norms._EPS = saved
            return
        module: Any = self.norm
        saved = module.eps
        module.eps = saved / factor
        try:
            yield
        finally:
            module.eps = saved

    def eps_over_var(self, x: torch.Tensor, lam: float) -> float:
        """eps / (lambda^2 * the smallest variance eps is added to); 0 for WN (no eps)."""
        if self.norm_name == "weight":
            return 0.0
        if self.norm_name == "cosine":
            return norms._EPS / (lam**2 * float(x.square().sum(1).min()))
        z = self.linear(x).detach()
        dims = 0 if self.norm_name == "batch" else 1
        eps: float = getattr(self.norm, "eps")  # noqa: B009 (nn.Module's eps is untyped)
        return eps / (lam**2 * float(z.var(dim=dims, unbiased=False).min()))


def _relative(new: torch.Tensor, ref: torch.Tensor) -> float:
    return float((new - ref).abs().max() / ref.abs().max().clamp_min(1e-300))


def digits_batch(seed: int) -> torch.Tensor:
    """BATCH standardized digits training samples, drawn by `seed`, float64 (B, 64)."""
    from normcore.data import load_dataset

    x = load_dataset("digits", seed=seed).train_x
    pick = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:BATCH]
    return x[pick].double()


def measure_one(norm: str, seed: int, lambdas=LAMBDAS) -> dict[str, dict[str, float]]:
    """{lambda: {measured, predicted, eps_over_var}} for one norm and one seed."""
    layer, x = Layer(norm, seed), digits_batch(seed)
    y = layer(x)

    def predicted(lam: float) -> torch.Tensor:
        if norm == "weight":  # no eps; a linear map of x
            return lam * y
        with layer.eps_divided(lam**2):
            return layer(x)

    out = {}
    for lam in lambdas:
        out[f"{lam:g}"] = {
            "measured": _relative(layer(lam * x), y),
            "predicted": _relative(predicted(lam), y),
            "eps_over_var": layer.eps_over_var(x, lam),
        }
    return out


def judge_invariance(n: Numbers) -> dict[str, Any]:
    """The invariance half. numbers["cells"]: [{regime, published, seeds, measured: {norm:
    [per seed]}, predicted: {norm: [per seed]}}]; adds residuals, comparisons, effects and
    verdicts."""
    cells, checks = [], []
    for cell in n["cells"]:
        k = len(cell["seeds"])
        residual = {
            norm: [
                abs(m - p) if m is not None and p is not None else None
                for m, p in zip(cell["measured"][norm], cell["predicted"][norm], strict=True)
            ]
            for norm in INVARIANT
        }
        parts = {norm: P.compare(residual[norm], [RESIDUAL_TOL] * k) for norm in INVARIANT}
        wn = P.compare(cell["measured"]["weight"], [TOLERANCE] * k)
        verdicts = [P.cell_verdict(parts[norm], "a < b", None) for norm in INVARIANT]
        verdicts.append(P.cell_verdict(wn, "a > b", None))
        if P.FAILS in verdicts:
            verdict = P.FAILS
        elif all(v == P.HOLDS for v in verdicts):
            verdict = P.HOLDS
        else:
            verdict = next(v for v in verdicts if v != P.HOLDS)
        worst = max(
            (parts[norm]["a"] for norm in INVARIANT if parts[norm]["a"] is not None), default=None
        )
        effects = [
            {"name": "WN deviation", "value": wn["a"], "se": wn["se"], "needs": f"> {TOLERANCE:g}"},
            {
                "name": "BN, LN, CN: largest deviation beyond eps's prediction",
                "value": worst,
                "se": None,
                "needs": f"< {RESIDUAL_TOL:g}",
            },
        ]
        for norm in INVARIANT:
            m, se, _ = P.mean_se(cell["measured"][norm])
            effects.append({"name": f"{NAMES[norm]} raw deviation", "value": m, "se": se})
        eps_bound = [
            norm for norm in INVARIANT if (mean(cell["measured"][norm]) or 0.0) > TOLERANCE
        ]
        cells.append(
            {
                **cell,
                "residual": residual,
                "comparisons": {**parts, "weight": wn},
                "effects": effects,
                "verdict": verdict,
                "invariant_only_up_to_eps": eps_bound,
            }
        )
        detail = (
            f"{verdict}: deviation beyond eps's prediction "
            + ", ".join(f"{NAMES[x]} {fmt(parts[x]['a'])}" for x in INVARIANT)
            + f" (< {RESIDUAL_TOL:g} needed); WN {fmt(wn['a'])} (> {TOLERANCE:g} needed); raw "
            + ", ".join(f"{NAMES[x]} {fmt(mean(cell['measured'][x]))}" for x in INVARIANT)
        )
        if eps_bound:
            detail += f"; eps makes {', '.join(NAMES[x] for x in eps_bound)} deviate beyond "
            detail += f"{TOLERANCE:g} here (predicted)"
        checks.append(
            check(
                f"{cell['regime']}: BN, LN, CN invariant up to eps; WN not",
                verdict == P.HOLDS,
                detail,
            )
        )
    criterion = (
        "Per lambda, over seeds (a new init and a new digits batch each): the relative output "
        "deviation of BN, LN and CN under x -> lambda x, beyond the deviation eps predicts "
        f"(the norm with eps / lambda^2), is below {RESIDUAL_TOL:g}, and WN's deviation is above "
        f"{TOLERANCE:g}, each beyond two standard errors (holds); either established the other "
        "way fails. The raw deviations are reported: where eps is comparable to lambda^2 var "
        "the invariance is approximate, as predicted. The verdict is the lambda 10 cell's. "
        f"{MATCHED}."
    )
    return P.judged(n, cells, criterion, checks)


def measure_invariance(quick: bool):
    by_seed = {norm: [measure_one(norm, s) for s in P.seeds(quick)] for norm in FOUR}
    cells: list[dict[str, Any]] = []
    for lam in LAMBDAS:
        lk = f"{lam:g}"
        cells.append(
            {
                "regime": regime(lam),
                "lambda": lam,
                "published": lam == PUBLISHED_LAMBDA,
                "matched": lam == PUBLISHED_LAMBDA,
                "seeds": list(P.seeds(quick)),
                "lr": None,  # nothing is trained
                "measured": {n: [r[lk]["measured"] for r in by_seed[n]] for n in FOUR},
                "predicted": {n: [r[lk]["predicted"] for r in by_seed[n]] for n in FOUR},
                "eps_over_var": {n: [r[lk]["eps_over_var"] for r in by_seed[n]] for n in FOUR},
            }
        )
    traces = []
    for norm in FOUR:
        for what, dash in (("measured", None), ("predicted", "dot")):
            ys = [max(mean(c[what][norm]) or 0.0, 1e-17) for c in cells]
            extra = {"dash": dash} if dash else {}
            traces.append(trace(f"{NAMES[norm]} {what}", list(LAMBDAS), ys, **extra))
    series = [
        plot(
            "Relative output deviation under x -> lambda x (mean over seeds; dotted: predicted)",
            "lambda",
            "max |y(lambda x) - y(x)| / max |y(x)|",
            traces,
            log_x=True,
            log_y=True,
        )
    ]
    return {"cells": cells, "matched": MATCHED}, series


# --- the learning-rate half: a tuned sweep over input scales --------------------------------


def scale_regime(scale: float) -> str:
    return f"inputs x{scale:g}"


def sweep_net(quick: bool, norm: str) -> RunConfig:
    """C4's ReLU MLP on digits at batch 32 (2x32 quick, 3x64 full); the regimes scale x."""
    steps = 60 if quick else 300
    return arm_config(
        quick,
        norm=norm,
        activation="relu",
        depth=2 if quick else 3,
        width=32 if quick else 64,
        batch_size=32,
        optimizer="momentum",
        lr=0.03,  # replaced by every value of the grid
        groups=4,
        steps=steps,
        probe_every=steps // 2,
        eval_every=steps // 2,
    )


def c9_arms(quick: bool) -> dict[str, RunConfig]:
    arms = {n: sweep_net(quick, n) for n in SWEEP_ARMS}
    regimes = {scale_regime(s): {"input_scale": s} for s in SCALES}
    return P.sweep_configs(arms, regimes, P.seeds(quick), P.grid(quick))


def sweep_cell(frames: dict[str, list[Frame]], scale: float, quick: bool) -> dict[str, Any]:
    """One input scale against scale 1: each arm tuned in both, test accuracy per seed, the
    chosen rates and the validation accuracy by rate; the baselines at scale 1."""
    regime, ref = scale_regime(scale), scale_regime(REFERENCE_SCALE)
    seeds, grid = P.seeds(quick), P.grid(quick)
    cell: dict[str, Any] = {
        "regime": regime,
        "reference": ref,
        "runs_of": [regime, ref],
        "scale": scale,
        "published": False,
        "matched": False,
        "headline": scale == HEADLINE_SCALE,
        "seeds": list(seeds),
        **{
            k: {}
            for k in ("lr", "lr_reference", "acc", "acc_reference", "acc_transfer", "val_by_lr")
        },
        "baseline": {},
    }
    for arm in SWEEP_ARMS:
        here = P.tuned_arm(frames, regime, arm, seeds, grid, final_eval)
        there = P.tuned_arm(frames, ref, arm, seeds, grid, final_eval)
        cell["lr"][arm], cell["lr_reference"][arm] = here["lr"], there["lr"]
        cell["acc"][arm], cell["acc_reference"][arm] = here["values"], there["values"]
        lr_ref = there["lr"] if there["lr"] is not None else grid[0]  # tune's fallback
        cell["acc_transfer"][arm] = [
            transferred(frames[P.key(regime, arm, lr_ref, s)]) for s in seeds
        ]
        cell["val_by_lr"][arm] = here["baseline"]["val_by_lr"]
        cell["baseline"][f"{arm}, {ref}"] = there["baseline"]
    return cell


def transferred(frames: list[Frame]) -> float | None:
    """Test accuracy of a run at the rate tuned at x1; 0 when it diverged (as select_lr scores
    a diverged seed): a rate that blows up at the new scale is the rate failing to transfer."""
    if frames and frames[-1].get("status") == "diverged":
        return 0.0
    return final_eval(frames)


def abs_shift(values, reference) -> list[float | None]:
    """Per seed |value - reference| (None where either is missing)."""
    return [
        abs(a - r) if a is not None and r is not None else None
        for a, r in zip(values, reference, strict=True)
    ]


def arm_state(cell: dict[str, Any], arm: str) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """Did ``arm`` stay or move from scale 1 to the cell's scale? (state, and the transferred
    and tuned |accuracy shifts| compared with ACC_TOL)."""
    ref = cell["acc_reference"][arm]
    k = len(ref)
    moved_rate = P.compare(abs_shift(cell["acc_transfer"][arm], ref), [ACC_TOL] * k)
    moved_acc = P.compare(abs_shift(cell["acc"][arm], ref), [ACC_TOL] * k)
    directions = (moved_rate["direction"], moved_acc["direction"])
    if "a > b" in directions:
        return MOVED, moved_rate, moved_acc
    if directions == ("a < b", "a < b"):
        return STAYED, moved_rate, moved_acc
    undecided = next(d for d in directions if d != "a < b")
    return undecided, moved_rate, moved_acc


def judge_sweep(cells: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Each scale's verdict: BN and LN stayed, WN and no norm moved (holds); any arm the other
    way fails; a baseline that does not train at scale 1 overrides. Returns (cells, checks)."""
    judged, checks = [], []
    for cell in cells:
        states, effects, per_arm = {}, [], []
        for arm in SWEEP_ARMS:
            state, rate, acc = arm_state(cell, arm)
            states[arm] = state
            expected = STAYED if arm in STAYS else MOVED
            other = MOVED if arm in STAYS else STAYED
            per_arm.append(P.HOLDS if state == expected else P.FAILS if state == other else state)
            needs = f"{'<' if arm in STAYS else '>'} {ACC_TOL:g}"
            effects += [
                {
                    "name": f"{NAMES[arm]}: |test acc shift| from x1, x1's lr",
                    "value": rate["a"],
                    "se": rate["se"],
                    "needs": needs,
                },
                {
                    "name": f"{NAMES[arm]}: |test acc shift| from x1, lr tuned here",
                    "value": acc["a"],
                    "se": acc["se"],
                    "needs": needs,
                },
            ]
        reasons = [f"{k}: {r}" for k, b in cell["baseline"].items() for r in b["reasons"]]
        if not all(b["ok"] for b in cell["baseline"].values()):
            verdict = P.DEGENERATE
        elif P.FAILS in per_arm:
            verdict = P.FAILS
        elif all(v == P.HOLDS for v in per_arm):
            verdict = P.HOLDS
        else:
            verdict = next(v for v in per_arm if v != P.HOLDS)
        judged.append({**cell, "states": states, "effects": effects, "verdict": verdict})
        detail = f"{verdict}: " + "; ".join(
            f"{NAMES[a]} {states[a]} (test acc {fmt(mean(cell['acc_reference'][a]))} at x1, lr "
            f"{cell['lr_reference'][a]:g}; here {fmt(mean(cell['acc_transfer'][a]))} at that lr, "
            f"{fmt(mean(cell['acc'][a]))} at lr {cell['lr'][a]:g} tuned here)"
            for a in SWEEP_ARMS
        )
        if reasons:
            detail += "; " + "; ".join(reasons)
        checks.append(
            check(
                f"{cell['regime']}: BN's and LN's lr and accuracy stay, WN's and no norm's move",
                verdict == P.HOLDS,
                detail,
            )
        )
    return judged, checks


def verdict_c9(n: Numbers) -> dict[str, Any]:
    """numbers: cells (the invariance half, see judge_invariance) and, when the sweep ran,
    sweep_cells (see sweep_cell). Reproduced when the published invariance cell and the
    sweep's headline cell hold; not reproduced when either fails; else the undecided one."""
    first = judge_invariance(n)
    if not n.get("sweep_cells"):
        return first
    sweep, checks = judge_sweep(n["sweep_cells"])
    verdicts = [P.summarize_cells(first["regimes"])]
    headline = [c for c in sweep if c.get("headline")]
    verdicts.append(
        {P.HOLDS: "reproduced", P.FAILS: "not reproduced"}.get(
            headline[0]["verdict"], headline[0]["verdict"]
        )
        if headline
        else P.UNMEASURED
    )
    if "not reproduced" in verdicts:
        verdict = "not reproduced"
    elif all(v == "reproduced" for v in verdicts):
        verdict = "reproduced"
    else:
        verdict = next(v for v in verdicts if v != "reproduced")
    criterion = first["criterion"] + (
        " The learning-rate half, C4's ReLU MLP on digits with inputs x0.01, x1, x100, each "
        "arm's lr tuned on validation per scale: per scale against x1, an arm stayed when its "
        "|test accuracy shift| from x1 both with x1's tuned lr and with the lr tuned at the "
        f"scale is below {ACC_TOL:g} beyond two standard errors over seeds, moved when either "
        "is above it beyond two standard errors; the "
        "cell holds when BN and LN stayed and WN and no norm moved, fails when any did the "
        "opposite; every arm must train at x1. The verdict: both the lambda 10 cell and the "
        "x100 cell hold (reproduced), either fails (not reproduced), else the undecided one."
    )
    numbers = {**first["numbers"], "sweep_cells": sweep}
    return {
        "verdict": verdict,
        "criterion": criterion,
        "checks": first["checks"] + checks,
        "numbers": numbers,
        "regimes": first["regimes"] + sweep,
    }


def sweep_series(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Chosen lr and test accuracy by input scale, per arm (mean over seeds)."""
    by_scale = {REFERENCE_SCALE: (cells[0]["lr_reference"], cells[0]["acc_reference"])}
    by_scale.update({c["scale"]: (c["lr"], c["acc"]) for c in cells})
    xs = sorted(by_scale)
    lr_traces = [trace(NAMES[a], xs, [by_scale[x][0][a] for x in xs]) for a in SWEEP_ARMS]
    acc_traces = [trace(NAMES[a], xs, [mean(by_scale[x][1][a]) for x in xs]) for a in SWEEP_ARMS]
    return [
        plot(
            "Learning rate chosen on validation by input scale",
            "input scale",
            "lr",
            lr_traces,
            log_x=True,
            log_y=True,
        ),
        plot(
            "Test accuracy at the chosen lr by input scale (mean over seeds)",
            "input scale",
            "test accuracy",
            acc_traces,
            log_x=True,
        ),
    ]


def measure_c9(frames: dict[str, list[Frame]], quick: bool):
    numbers, series = measure_invariance(quick)
    if frames:
        cells = [sweep_cell(frames, s, quick) for s in SCALES if s != REFERENCE_SCALE]
        numbers["sweep_cells"] = cells
        series = series + sweep_series(cells)
    return numbers, series


C9 = Experiment(
    id="C9",
    title="Data-scale invariance: BN, LN and CN, not WN",
    claim=(
        "Norm(W lambda x) = Norm(W x) holds for BN, LN and CN, not for WN. It reduces "
        "gradient diffusion and makes the learning rate easier to choose."
    ),
    experiment=(
        "One layer as C4's network has it at init (64 -> 32, float64, affine off, batch "
        "statistics) on a batch of 60 digits, per seed (2 quick, 5 full: new init, new batch) "
        "and per lambda in 0.01, 0.1, 0.5, 10, 1000: the output's relative deviation under "
        "x -> lambda x, against the deviation eps predicts (the norm with eps / lambda^2; "
        "lambda y for WN). The learning-rate half: C4's ReLU MLP on digits with BN, LN, WN or "
        "no norm, inputs x0.01, x1, x100, each arm's lr tuned on validation per scale "
        "(quick: 2x32, 60 steps, 4 rates, 2 seeds; full: 3x64, 300 steps, 7 rates, 5 seeds)."
    ),
    configs=c9_arms,
    measure=measure_c9,
    verdict=verdict_c9,
)
