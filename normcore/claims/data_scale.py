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
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from normcore import norms
from normcore.claims import protocol as P
from normcore.claims.base import Experiment
from normcore.claims.checks import GRAD_LAW_RESIDUAL_TOL, Numbers, check, fmt
from normcore.claims.measures import mean, plot, trace
from normcore.config import RunConfig
from normcore.frames import Frame
from normcore.invariance import TOLERANCE

FOUR = ("batch", "layer", "cosine", "weight")
INVARIANT = ("batch", "layer", "cosine")  # the seed's "holds for BN, LN and CN"
LAMBDAS = (0.01, 0.1, 0.5, 10.0, 1000.0)
PUBLISHED_LAMBDA = 10.0
RESIDUAL_TOL = GRAD_LAW_RESIDUAL_TOL  # float64: eps's prediction is exact to ~1e-15
BATCH, IN, OUT = 60, 64, 32
NAMES = {"batch": "BN", "layer": "LN", "cosine": "CN", "weight": "WN"}
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


def verdict_c9(n: Numbers) -> dict[str, Any]:
    """numbers["cells"]: [{regime, published, seeds, measured: {norm: [per seed]},
    predicted: {norm: [per seed]}}]; adds residuals, comparisons, effects and verdicts."""
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


def measure_c9(frames: dict[str, list[Frame]], quick: bool):
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


def no_arms(quick: bool) -> dict[str, RunConfig]:
    return {}


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
        "lambda y for WN). The gradient and learning-rate half of the claim is not tested."
    ),
    configs=no_arms,
    measure=measure_c9,
    verdict=verdict_c9,
)
