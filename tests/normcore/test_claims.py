"""Verdict functions are pure: hand-made numbers in, a verdict that follows the evidence out.

The swap tests feed the measured numbers of two arms exchanged (BN <-> no norm, affine on <->
off, ...): a verdict that did not flip would not be reading its numbers.
"""

import math

import pytest
from scipy.stats import spearmanr

from normcore.claims import batches, checks, cosine, depth, figure1, scale


def test_spearman_matches_scipy_with_ties():
    values = [0.1, 0.3, 0.3, 0.2, 0.9, 0.5]
    expected = spearmanr(values, range(len(values))).statistic
    assert checks.spearman(values) == pytest.approx(expected)


def test_spearman_of_unmeasured_or_constant_values():
    assert checks.spearman([0.1, None, 0.2]) is None
    assert checks.spearman([0.1, math.nan, 0.2]) is None
    assert checks.spearman([0.2, 0.2, 0.2]) == 0.0


def test_c1_reproduced_then_flips_when_bn_and_none_exchanged():
    n = {"drift_none": [0.1, 0.2, 0.4, 0.8], "drift_batch": [0.1, 0.1, 0.1, 0.1]}
    assert depth.verdict_c1(n)["verdict"] == "reproduced"
    swapped = {"drift_none": n["drift_batch"], "drift_batch": n["drift_none"]}
    assert depth.verdict_c1(swapped)["verdict"] == "not reproduced"


def test_c2_mixed_when_saturation_does_not_grow_with_depth():
    n = {"sat_none": [0.5, 0.4, 0.3], "sat_batch": [0.0, 0.0, 0.0]}
    result = depth.verdict_c2(n)
    assert result["verdict"] == "mixed"
    assert [c["passed"] for c in result["checks"]] == [False, True]


def test_fig1_flips_when_bn_and_none_exchanged():
    n = {"band_move_none": 0.9, "band_move_batch": 0.2, "acc_auc_none": 0.5, "acc_auc_batch": 0.8}
    assert figure1.verdict_fig1(n)["verdict"] == "reproduced"
    swapped = {
        "band_move_none": 0.2,
        "band_move_batch": 0.9,
        "acc_auc_none": 0.8,
        "acc_auc_batch": 0.5,
    }
    assert figure1.verdict_fig1(swapped)["verdict"] == "not reproduced"


def test_c3_flips_when_affine_on_and_off_exchanged():
    n = {"sat_affine": 0.2, "sat_plain": 0.01, "acc_affine": 0.95, "acc_plain": 0.9}
    assert figure1.verdict_c3(n)["verdict"] == "reproduced"
    swapped = {"sat_affine": 0.01, "sat_plain": 0.2, "acc_affine": 0.9, "acc_plain": 0.95}
    assert figure1.verdict_c3(swapped)["verdict"] == "not reproduced"


def test_ics_flips_when_bn_and_none_exchanged():
    n = {"l2_none": 1.0, "l2_batch": 3.0, "cos_none": 0.9, "cos_batch": 0.6}
    assert depth.verdict_ics(n)["verdict"] == "reproduced"
    swapped = {"l2_none": 3.0, "l2_batch": 1.0, "cos_none": 0.6, "cos_batch": 0.9}
    assert depth.verdict_ics(swapped)["verdict"] == "not reproduced"


def _c4_numbers(bn_small: float, gn_small: float, bn_one_class: float) -> dict:
    return {
        "acc_by_batch": {
            "batch": {"2": bn_small, "4": 0.9, "16": 0.95, "64": 0.95},
            "layer": {"2": 0.9, "4": 0.9, "16": 0.93, "64": 0.93},
            "group": {"2": gn_small, "4": 0.9, "16": 0.94, "64": 0.94},
        },
        "acc_by_order": {
            "batch": {"shuffled": 0.95, "one_class": bn_one_class},
            "layer": {"shuffled": 0.93, "one_class": 0.8},
            "group": {"shuffled": 0.94, "one_class": 0.8},
        },
    }


def test_c4_follows_wu_and_he_direction_and_flips_when_bn_and_gn_exchanged():
    result = batches.verdict_c4(_c4_numbers(bn_small=0.6, gn_small=0.93, bn_one_class=0.2))
    assert result["verdict"] == "reproduced"
    assert result["numbers"]["size_drop"]["batch"] == pytest.approx(0.35)
    # GN now loses the most from batch 64 to 2, BN the least: the size check fails.
    result = batches.verdict_c4(_c4_numbers(bn_small=0.93, gn_small=0.6, bn_one_class=0.2))
    assert result["verdict"] == "mixed"
    assert [c["passed"] for c in result["checks"]] == [False, True]


def test_c5_flips_when_bn_and_ln_exchanged():
    n = {"acc": {"batch": {"4": 0.5, "32": 0.7}, "layer": {"4": 0.8, "32": 0.85}}}
    assert batches.verdict_c5(n)["verdict"] == "reproduced"
    swapped = {"acc": {"batch": n["acc"]["layer"], "layer": n["acc"]["batch"]}}
    assert batches.verdict_c5(swapped)["verdict"] == "not reproduced"


def test_c6_flips_when_wn_and_bn_exchanged():
    n = {
        "batch_dependence": {"weight": 0.0, "batch": 0.3, "layer": 0.0},
        "acc_one_class": {"weight": 0.8, "batch": 0.2, "layer": 0.7},
    }
    assert batches.verdict_c6(n)["verdict"] == "reproduced"
    swap = {k: {**v, "weight": v["batch"], "batch": v["weight"]} for k, v in n.items()}
    assert batches.verdict_c6(swap)["verdict"] == "not reproduced"


def test_c7_flips_when_cn_and_bn_exchanged():
    n = {
        "cn_max_abs": 0.99,
        "acc": {"cosine": 0.7, "batch": 0.95, "layer": 0.94, "weight": 0.93, "none": 0.9},
    }
    assert cosine.verdict_c7(n)["verdict"] == "reproduced"
    swapped = {"cn_max_abs": 7.5, "acc": {**n["acc"], "cosine": 0.95, "batch": 0.7}}
    assert cosine.verdict_c7(swapped)["verdict"] == "not reproduced"


def _cell(deviation: float) -> dict:
    return {"deviation": deviation, "tol": 1e-4}


def test_c8_counts_each_part_of_the_claim():
    n = {
        "weight_rescale": {k: _cell(1e-7) for k in scale.FOUR},
        "grad_law": {k: {"0.1": 1e-6, "1": 0.0, "10": 1e-6} for k in scale.FOUR},
        "max_lr": {"none": 1.0, "batch": 10.0},
    }
    assert scale.verdict_c8(n)["verdict"] == "reproduced"
    swapped = {**n, "max_lr": {"none": 10.0, "batch": 1.0}}
    assert scale.verdict_c8(swapped)["verdict"] == "mixed"
    broken = {**swapped, "grad_law": {**n["grad_law"], "layer": {"0.1": 0.5, "1": 0.0}}}
    broken["weight_rescale"] = {**n["weight_rescale"], "batch": _cell(None)}
    assert scale.verdict_c8(broken)["verdict"] == "not reproduced"


def test_c9_flips_when_wn_and_ln_exchanged():
    table = {"batch": _cell(1e-7), "layer": _cell(1e-7), "cosine": _cell(1e-7), "weight": _cell(2)}
    assert scale.verdict_c9({"data_rescale": table})["verdict"] == "reproduced"
    swapped = {**table, "layer": table["weight"], "weight": table["layer"]}
    assert scale.verdict_c9({"data_rescale": swapped})["verdict"] == "not reproduced"


def test_unmeasured_numbers_never_reproduce_a_claim():
    n = {"band_move_none": None, "band_move_batch": 0.2, "acc_auc_none": math.nan}
    result = figure1.verdict_fig1({**n, "acc_auc_batch": 0.8})
    assert result["verdict"] == "not reproduced"
    assert "unmeasured" in result["checks"][0]["detail"]
