"""C7, C8, C9: bounded outputs and the two scale invariances, with their consequences.

Each experiment is (a) a few RunConfigs or direct layer checks, (b) a measurement to numbers,
(c) a pure verdict from those numbers (see checks.py for the rules every verdict follows).
"""

from __future__ import annotations

from typing import Any

from normcore.claims.checks import (
    ACC_MARGIN,
    BOUND_TOL,
    GRAD_LAW_TOL,
    Numbers,
    check,
    combine,
    finite,
    fmt,
    lower,
)

# The four norms the seed's section 3 speaks about.
FOUR = ("batch", "layer", "weight", "cosine")


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


def invariant_norms(table: dict[str, Any], norms: tuple[str, ...], want: bool) -> list[str]:
    """Norms in `norms` whose measured invariance differs from `want` (or is unmeasured)."""
    wrong = []
    for name in norms:
        cell = table.get(name) or {}
        dev, tol = cell.get("deviation"), cell.get("tol")
        if not finite(dev, tol) or (dev <= tol) != want:
            wrong.append(name)
    return wrong


def _cells(table: dict[str, Any], norms: tuple[str, ...]) -> str:
    return ", ".join(f"{k} {fmt((table.get(k) or {}).get('deviation'))}" for k in norms)


def verdict_c8(n: Numbers) -> dict[str, Any]:
    """numbers: weight_rescale {norm: {deviation, tol}}, grad_law {norm: {lambda: rel dev}},
    max_lr {none, batch} (0.0 when no lr of the grid trains)."""
    wrong = invariant_norms(n["weight_rescale"], FOUR, True)
    law = n["grad_law"]
    worst = {k: max(v.values()) if v and finite(*v.values()) else None for k, v in law.items()}
    law_bad = [k for k in FOUR if not (finite(worst.get(k)) and worst[k] <= GRAD_LAW_TOL)]
    lr = n["max_lr"]
    checks = [
        check(
            "Norm(lambda W x) = Norm(W x) for BN, LN, WN, CN",
            not wrong,
            f"max deviation: {_cells(n['weight_rescale'], FOUR)}"
            + (f"; not invariant: {', '.join(wrong)}" if wrong else ""),
        ),
        check(
            "||grad wrt lambda W|| * lambda = ||grad wrt W|| for lambda in 0.1, 1, 10",
            not law_bad,
            "worst relative deviation: "
            + ", ".join(f"{k} {fmt(worst.get(k))}" for k in FOUR)
            + f" (needs <= {GRAD_LAW_TOL:g})",
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
        f"times lambda, equals the unscaled gradient within {GRAD_LAW_TOL:g} for lambda in "
        "0.1, 1, 10; and the largest learning rate of the grid that still trains is higher "
        "with BN than without."
    )
    return combine(criterion, checks, n)


def verdict_c9(n: Numbers) -> dict[str, Any]:
    """numbers: data_rescale {norm: {deviation, tol}} for BN, LN, CN (invariant) and WN (not)."""
    table = n["data_rescale"]
    yes = ("batch", "layer", "cosine")
    wrong_yes = invariant_norms(table, yes, True)
    wrong_no = invariant_norms(table, ("weight",), False)
    checks = [
        check(
            "Norm(W lambda x) = Norm(W x) for BN, LN, CN",
            not wrong_yes,
            f"max deviation: {_cells(table, yes)}"
            + (f"; not invariant: {', '.join(wrong_yes)}" if wrong_yes else ""),
        ),
        check(
            "WN is not data-scale invariant",
            not wrong_no,
            f"max deviation: {_cells(table, ('weight',))}",
        ),
    ]
    criterion = (
        "Re-scaling the input data changes the normalized output of BN, LN and CN by no more "
        "than the measured tolerance, and changes WN's by more."
    )
    return combine(criterion, checks, n)
