"""Checks: the building blocks of every verdict, and the margins they use.

Each claim's verdict is a few named checks, each a comparison of measured numbers against a
margin fixed here, before any run is seen. All checks pass: reproduced; none: not reproduced;
some: mixed. A number that could not be measured (None, NaN: a diverged run, a missing field)
fails its check, with the reason in the check's detail, so a broken experiment never reads as
a confirmed claim.

Nothing here runs a network; the tests feed these functions hand-made numbers (and the same
numbers with, say, BN and no-BN exchanged) to see the verdict follow the evidence.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

Numbers = dict[str, Any]

# Margins: differences smaller than these are read as noise, not as evidence.
ACC_MARGIN = 0.02  # two accuracy points (a few hundred held-out samples)
SAT_MARGIN = 0.01  # one percentage point of saturated units
BOUND_TOL = 1e-5  # float32 slack for "within [-1, 1]" and "independent of the batch"
GRAD_LAW_TOL = 0.01  # 1 % relative deviation for ||grad_{lambda W}|| * lambda = ||grad_W||
# ... beyond the deviation eps predicts (float64 arithmetic: the prediction is exact)
GRAD_LAW_RESIDUAL_TOL = 1e-6
RANK_MIN = 0.5  # Spearman correlation that counts as "grows with depth"
ICS_L2_TOL = 0.1  # BN "reduces" ||G - G'|| only if it is more than 10 % smaller
ICS_COS_TOL = 0.05  # ... or cos(G, G') is more than 0.05 higher


def finite(*values: Any) -> bool:
    """True when every value is a real, finite number (None and NaN are not)."""
    return all(isinstance(v, int | float) and math.isfinite(v) for v in values)


def num(value: Any) -> float | None:
    """The value as a float when it is a finite number, else None."""
    return float(value) if finite(value) else None


def fmt(value: Any) -> str:
    return f"{value:.4g}" if finite(value) else "unmeasured"


def check(name: str, passed: bool, detail: str) -> dict[str, Any]:
    return {"name": name, "passed": bool(passed), "detail": detail}


def combine(criterion: str, checks: list[dict[str, Any]], numbers: Numbers) -> dict[str, Any]:
    """All checks pass -> reproduced, none -> not reproduced, otherwise mixed."""
    passed = sum(c["passed"] for c in checks)
    if passed == len(checks):
        verdict = "reproduced"
    elif passed == 0:
        verdict = "not reproduced"
    else:
        verdict = "mixed"
    return {"verdict": verdict, "criterion": criterion, "checks": checks, "numbers": numbers}


def spearman(values: Sequence[Any]) -> float | None:
    """Rank correlation of `values` with their position (depth); None if unmeasurable.

    Ties get their average rank; a constant sequence has no trend and returns 0.
    """
    if len(values) < 3 or not finite(*values):
        return None

    def ranks(xs: Sequence[float]) -> list[float]:
        order = sorted(range(len(xs)), key=lambda i: xs[i])
        out = [0.0] * len(xs)
        i = 0
        while i < len(order):
            j = i
            while j + 1 < len(order) and xs[order[j + 1]] == xs[order[i]]:
                j += 1
            for k in range(i, j + 1):
                out[order[k]] = (i + j) / 2
            i = j + 1
        return out

    ry, rx = ranks(list(values)), [float(i) for i in range(len(values))]
    my, mx = sum(ry) / len(ry), sum(rx) / len(rx)
    cov = sum((a - my) * (b - mx) for a, b in zip(ry, rx, strict=True))
    vy = sum((a - my) ** 2 for a in ry)
    vx = sum((b - mx) ** 2 for b in rx)
    return 0.0 if vy == 0 else cov / math.sqrt(vy * vx)


def grows_with_depth(name: str, per_layer: Sequence[Any], what: str) -> dict[str, Any]:
    rho = spearman(per_layer)
    passed = rho is not None and rho > RANK_MIN
    return check(
        name, passed, f"Spearman correlation of {what} with depth {fmt(rho)} (needs > {RANK_MIN})"
    )


def lower(name: str, a: Any, b: Any, label_a: str, label_b: str, margin: float = 0.0):
    """Check a < b - margin."""
    passed = finite(a, b) and a < b - margin
    sign = "<" if passed else "not <"
    extra = f" - {margin:g}" if margin else ""
    return check(name, passed, f"{label_a} {fmt(a)} {sign} {label_b} {fmt(b)}{extra}")


def last(values: Sequence[Any]) -> Any:
    return values[-1] if values else None
