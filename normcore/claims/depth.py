"""C1, C2, ICS, the BN paper's Figure 1 and C3: what happens to layer inputs with depth.

Each experiment is (a) a few RunConfigs, (b) a measurement from their frames to numbers,
(c) a pure verdict from those numbers (see checks.py for the rules every verdict follows).
"""

from __future__ import annotations

from typing import Any

from normcore.claims.checks import (
    ICS_COS_TOL,
    ICS_L2_TOL,
    RANK_MIN,
    SAT_MARGIN,
    Numbers,
    check,
    combine,
    finite,
    fmt,
    grows_with_depth,
    last,
    lower,
)

# --- C1, C2, ICS, Figure 1, C3: depth and the second shift/scale ------------------------


def verdict_c1(n: Numbers) -> dict[str, Any]:
    """numbers: drift_none, drift_batch — relative input drift per hidden layer."""
    checks = [
        grows_with_depth("drift grows with depth without a norm", n["drift_none"], "drift"),
        lower(
            "BN reduces the deepest layer's drift",
            last(n["drift_batch"]),
            last(n["drift_none"]),
            "drift with BN",
            "without",
        ),
    ]
    criterion = (
        "Without a norm, each layer's input drift (W1 distance to its first histogram, in "
        f"units of its first std) rises with depth (Spearman > {RANK_MIN}); with BN the "
        "deepest hidden layer drifts less than without."
    )
    return combine(criterion, checks, n)


def verdict_c2(n: Numbers) -> dict[str, Any]:
    """numbers: sat_none, sat_batch — saturated fraction per hidden layer, end of training."""
    checks = [
        grows_with_depth("saturation grows with depth without a norm", n["sat_none"], "saturation"),
        lower(
            "BN reduces the deepest layer's saturation",
            last(n["sat_batch"]),
            last(n["sat_none"]),
            "saturation with BN",
            "without",
            SAT_MARGIN,
        ),
    ]
    criterion = (
        "Without a norm, the saturated fraction at the end of training rises with depth "
        f"(Spearman > {RANK_MIN}); with BN the deepest hidden layer is at least {SAT_MARGIN:g} "
        "less saturated than without."
    )
    return combine(criterion, checks, n)


def verdict_fig1(n: Numbers) -> dict[str, Any]:
    """numbers: band_move_{none,batch} (15/50/85 movement), acc_auc_{none,batch}."""
    checks = [
        lower(
            "BN keeps the last layer's 15/50/85 band steadier",
            n["band_move_batch"],
            n["band_move_none"],
            "band movement with BN",
            "without",
        ),
        lower(
            "BN trains faster (mean held-out accuracy over the run)",
            n["acc_auc_none"],
            n["acc_auc_batch"],
            "without BN",
            "with BN",
        ),
    ]
    criterion = (
        "With BN the last hidden layer's 15th/50th/85th percentiles move less over training "
        "(mean distance to their first values, in units of the first 15-85 width), and the "
        "held-out accuracy averaged over the evaluations is higher than without BN."
    )
    return combine(criterion, checks, n)


def verdict_c3(n: Numbers) -> dict[str, Any]:
    """numbers: sat_affine, sat_plain (mean over layers), acc_affine, acc_plain."""
    checks = [
        lower(
            "g, b let the network use the saturated region",
            n["sat_plain"],
            n["sat_affine"],
            "saturation without g, b",
            "with",
            SAT_MARGIN,
        ),
        lower(
            "g, b restore expressiveness (held-out accuracy)",
            n["acc_plain"],
            n["acc_affine"],
            "accuracy without g, b",
            "with",
        ),
    ]
    criterion = (
        f"BN with g, b ends with a saturated fraction at least {SAT_MARGIN:g} above BN without "
        "them, and a higher held-out accuracy."
    )
    return combine(criterion, checks, n)


def verdict_ics(n: Numbers) -> dict[str, Any]:
    """numbers: l2_{none,batch}, cos_{none,batch}: Santurkar's ICS, mean over layers."""
    l2_none, l2_bn, cos_none, cos_bn = n["l2_none"], n["l2_batch"], n["cos_none"], n["cos_batch"]
    l2_ok = finite(l2_none, l2_bn) and l2_bn >= (1 - ICS_L2_TOL) * l2_none
    cos_ok = finite(cos_none, cos_bn) and cos_bn <= cos_none + ICS_COS_TOL
    checks = [
        check(
            "BN does not reduce ||G - G'||",
            l2_ok,
            f"with BN {fmt(l2_bn)}, without {fmt(l2_none)} (reduced means < {1 - ICS_L2_TOL:g}x)",
        ),
        check(
            "BN does not raise cos(G, G')",
            cos_ok,
            f"with BN {fmt(cos_bn)}, without {fmt(cos_none)} (raised means > +{ICS_COS_TOL:g})",
        ),
    ]
    criterion = (
        "Santurkar et al.'s claim holds if BN leaves ||G - G'|| at least "
        f"{1 - ICS_L2_TOL:g}x its no-BN value and cos(G, G') at most {ICS_COS_TOL:g} above it "
        "(mean over hidden layers and probes)."
    )
    return combine(criterion, checks, n)
