"""C8: weight-scale invariance, the gradient law, and a higher usable learning rate (C9 is in
data_scale.py).

Each experiment is (a) a few RunConfigs and direct layer checks, (b) a measurement to numbers,
(c) a pure verdict from those numbers (see checks.py for the rules every verdict follows).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from normcore import invariance
from normcore.claims.base import Experiment, variant
from normcore.claims.batches import norm_net
from normcore.claims.checks import (
    GRAD_LAW_RESIDUAL_TOL,
    Numbers,
    check,
    combine,
    fmt,
    lower,
    num,
)
from normcore.claims.measures import final_eval, plot, trace
from normcore.config import RunConfig
from normcore.frames import Frame

# The four norms the seed's section 3 speaks about.
FOUR = ("batch", "layer", "weight", "cosine")


def invariant_norms(table: dict[str, Any], norms: tuple[str, ...], want: bool) -> list[str]:
    """Norms in `norms` whose measured invariance differs from `want` (or is unmeasured)."""
    wrong = []
    for name in norms:
        cell = table.get(name) or {}
        dev, tol = num(cell.get("deviation")), num(cell.get("tol"))
        if dev is None or tol is None or (dev <= tol) != want:
            wrong.append(name)
    return wrong


def _cells(table: dict[str, Any], norms: tuple[str, ...]) -> str:
    return ", ".join(f"{k} {fmt((table.get(k) or {}).get('deviation'))}" for k in norms)


def _worst(deviations: dict[str, Any] | None) -> float | None:
    values = [num(v) for v in (deviations or {}).values()]
    return None if not values or None in values else max(v for v in values if v is not None)


def residual(measured: dict[str, Any], predicted: dict[str, Any] | None) -> dict[str, Any]:
    """{lambda: |measured - predicted|}: the deviation from the law that eps does not explain
    (None where either is unmeasured; no prediction reads as 0: a norm without eps)."""
    out = {}
    for lam, dev in measured.items():
        pred = (predicted or {}).get(lam, 0.0)
        out[lam] = abs(dev - pred) if num(dev) is not None and num(pred) is not None else None
    return out


def verdict_c8(n: Numbers) -> dict[str, Any]:
    """numbers: weight_rescale {norm: {deviation, tol}}, grad_law {norm: {lambda: rel dev}},
    grad_law_predicted {norm: {lambda: the rel dev eps predicts}} (absent: 0), max_lr
    {none, batch} (0.0 when no lr of the grid trains)."""
    wrong = invariant_norms(n["weight_rescale"], FOUR, True)
    law = n["grad_law"]
    predicted = n.get("grad_law_predicted") or {}
    worst = {k: _worst(residual(v, predicted.get(k))) for k, v in law.items()}
    raw = {k: _worst(v) for k, v in law.items()}
    law_bad = [k for k in FOUR if (w := worst.get(k)) is None or w > GRAD_LAW_RESIDUAL_TOL]
    lr = n["max_lr"]
    checks = [
        check(
            "Norm(lambda W x) = Norm(W x) for BN, LN, WN, CN",
            not wrong,
            f"max deviation: {_cells(n['weight_rescale'], FOUR)}"
            + (f"; not invariant: {', '.join(wrong)}" if wrong else ""),
        ),
        check(
            "||grad wrt lambda W|| * lambda = ||grad wrt W|| for lambda in 0.1, 1, 10, up to "
            "the deviation eps predicts",
            not law_bad,
            "worst relative deviation, measured: "
            + ", ".join(f"{k} {fmt(raw.get(k))}" for k in FOUR)
            + "; beyond eps's prediction: "
            + ", ".join(f"{k} {fmt(worst.get(k))}" for k in FOUR)
            + f" (needs <= {GRAD_LAW_RESIDUAL_TOL:g})",
        ),
        lower(
            "BN trains at a higher learning rate",
            lr.get("none"),
            lr.get("batch"),
            "largest lr that trains without BN",
            "with BN",
        ),
    ]
    criterion = (
        "Re-scaling a layer's weight matrix changes the output of BN, LN, WN and CN by no "
        "more than the measured tolerance; the weight gradient after scaling by lambda, "
        "times lambda, equals the unscaled gradient for lambda in 0.1, 1, 10 up to the "
        "deviation eps predicts (the unscaled gradient with eps / lambda^2: a norm of "
        "lambda z with eps is one of z with eps / lambda^2), within "
        f"{GRAD_LAW_RESIDUAL_TOL:g}; and the largest learning rate of the grid that still "
        "trains is higher with BN than without."
    )
    return combine(criterion, checks, n)


# --- (a) arms and (b) measurements ------------------------------------------------------

LAMBDAS = (0.1, 1.0, 10.0)  # the gradient law's scales (the issue's; invariance uses its own)
TRAINS_ACC = 0.5  # "still trains": not diverged and held-out accuracy >= this (chance 0.1)


def lr_grid(quick: bool) -> tuple[float, ...]:
    return (0.03, 0.3, 3.0, 30.0) if quick else (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)


def c8_arms(quick: bool) -> dict[str, RunConfig]:
    """C4's network at batch 64, plain SGD, over a learning-rate grid, without and with BN."""
    return {
        f"{n}/lr{lr:g}": variant(norm_net(quick, n, 64), optimizer="sgd", lr=lr)
        for n in ("none", "batch")
        for lr in lr_grid(quick)
    }


def _weight(linear: Any) -> torch.Tensor:
    """The weight SGD moves: WN's direction v, else .weight (CN's w included)."""
    param = getattr(linear, "parametrizations", None)
    weight = param.weight.original1 if param is not None else linear.weight
    assert isinstance(weight, torch.Tensor)
    return weight


def gradient_law(config: RunConfig) -> dict[str, dict[str, float]]:
    """{"measured": {lambda: | lambda * ||grad at lambda W|| - ||grad at W|| | / ||grad at W||},
    "predicted": {lambda: the same deviation as eps predicts it}, "eps_over_var": {lambda:
    eps / (lambda^2 * the smallest per-unit variance of z)}} for the second hidden layer of
    `config`'s network (float64, training mode, one digits batch).

    The prediction: a norm of lambda z with eps is the norm of z with eps / lambda^2 (BN, LN
    and GN divide by sqrt(lambda^2 var + eps)), so lambda * grad at lambda W is exactly the
    gradient at W with the layer's eps divided by lambda^2. The law is exact up to that term,
    which matters only where eps is comparable to lambda^2 var. A norm without eps (WN, CN,
    whose eps guards ||x||, not W x) predicts 0.

    lambda scales the layer's whole affine map, weight and bias, so its pre-activation becomes
    lambda * z: the BN paper's BN((aW)u) with the bias a plain layer adds (BN's centering
    would remove it anyway; LN's would not). The gradient is taken w.r.t. the weight alone.
    """
    from normcore.data import load_dataset
    from normcore.models import build_model

    data = load_dataset(config.dataset, seed=config.seed)
    torch.manual_seed(config.seed)
    model = build_model(config, data.input_shape, data.n_classes).double().train()
    x, y = data.train_x[: config.batch_size].double(), data.train_y[: config.batch_size]
    linear: Any = model.blocks[1].linear
    w = _weight(linear)
    bias = getattr(linear, "bias", None)
    # WN's own bias and CN's b sit after the normalization: they are not part of W x.
    scaled = [w] if config.norm in ("weight", "cosine") or bias is None else [w, bias]
    originals = [p.detach().clone() for p in scaled]

    def grad_norm(lam: float) -> float:
        with torch.no_grad():
            for p, p0 in zip(scaled, originals, strict=True):
                p.copy_(lam * p0)
        (g,) = torch.autograd.grad(F.cross_entropy(model(x), y), [w])
        return float(g.norm())

    norm_module = getattr(model.blocks[1], "norm", None)
    eps_holder = norm_module if isinstance(getattr(norm_module, "eps", None), float) else None
    eps0 = eps_holder.eps if eps_holder is not None else None

    def grad_with_eps(eps: float) -> float:
        assert eps_holder is not None
        eps_holder.eps = eps
        try:
            return grad_norm(1.0)
        finally:
            eps_holder.eps = eps0

    ref = grad_norm(1.0)
    measured = {f"{lam:g}": abs(lam * grad_norm(lam) - ref) / ref for lam in LAMBDAS}
    grad_norm(1.0)  # the weights back at W
    if eps0 is None:
        return {
            "measured": measured,
            "predicted": dict.fromkeys(measured, 0.0),
            "eps_over_var": dict.fromkeys(measured, 0.0),
        }
    predicted = {f"{lam:g}": abs(grad_with_eps(eps0 / lam**2) - ref) / ref for lam in LAMBDAS}
    with torch.no_grad():
        z = linear(model.blocks[0](x))  # the second layer's pre-activation, (B, H)
        dims = (0,) if config.norm == "batch" else (1,)
        smallest = float(z.var(dim=dims, unbiased=False).min())
    ratio = {f"{lam:g}": eps0 / (lam**2 * smallest) for lam in LAMBDAS}
    return {"measured": measured, "predicted": predicted, "eps_over_var": ratio}


def _by_norm(rows: list[dict[str, Any]], transform: str) -> dict[str, dict[str, Any]]:
    return {
        r["norm"]: {"deviation": r["max_deviation"], "tol": r["tolerance"]}
        for r in rows
        if r["transform"] == transform
    }


def max_trained_lr(frames: dict[str, list[Frame]], norm: str, quick: bool):
    accs = {f"{lr:g}": final_eval(frames[f"{norm}/lr{lr:g}"]) for lr in lr_grid(quick)}
    ok = [lr for lr in lr_grid(quick) if (num(accs[f"{lr:g}"]) or 0.0) >= TRAINS_ACC]
    return (max(ok) if ok else 0.0), accs


def measure_c8(frames: dict[str, list[Frame]], quick: bool):
    rows = invariance.check_all(FOUR)
    law_norms = (*FOUR, "none")
    laws = {n: gradient_law(norm_net(quick, n, 64)) for n in law_norms}
    law = {n: v["measured"] for n, v in laws.items()}
    max_lr, lr_acc = {}, {}
    for n in ("none", "batch"):
        max_lr[n], lr_acc[n] = max_trained_lr(frames, n, quick)
    numbers = {
        "weight_rescale": _by_norm(rows, "weight_matrix_rescaling"),
        "grad_law": law,
        "grad_law_predicted": {n: v["predicted"] for n, v in laws.items()},
        "eps_over_var": {n: v["eps_over_var"] for n, v in laws.items()},
        "max_lr": max_lr,
        "lr_acc": lr_acc,
        "trains_acc": TRAINS_ACC,
    }
    series = [
        plot(
            "Held-out accuracy by learning rate (plain SGD)",
            "learning rate",
            "accuracy",
            [trace(n, lr_grid(quick), list(a.values())) for n, a in lr_acc.items()],
            log_x=True,
        ),
        plot(
            "Gradient law: |lambda ||grad at lambda W|| - ||grad at W||| / ||grad at W||",
            "lambda",
            "relative deviation",
            [trace(n, LAMBDAS, [max(v, 1e-17) for v in d.values()]) for n, d in law.items()],
            log_x=True,
            log_y=True,
        ),
    ]
    return numbers, series


C8 = Experiment(
    id="C8",
    title="Weight-scale invariance: larger weights, smaller gradients, higher usable lr",
    claim=(
        "Norm(lambda W x) = Norm(W x) holds for BN, LN, WN and CN. The gradient with respect to "
        "lambda W is 1/lambda times the gradient with respect to W, so larger weights get "
        "smaller gradients, updates are steadier and a higher learning rate can be used."
    ),
    experiment=(
        "normcore.invariance's weight-matrix re-scaling check (float64, affine off) for the "
        "four norms; lambda * ||grad at lambda W|| against ||grad at W|| for the second hidden "
        "layer of C4's network (lambda 0.1, 1, 10; no norm as a contrast); and C4's network "
        "trained with plain SGD over a learning-rate grid with and without BN: the largest lr "
        f"that does not diverge and reaches held-out accuracy >= {TRAINS_ACC}."
    ),
    configs=c8_arms,
    measure=measure_c8,
    verdict=verdict_c8,
)
