"""C1, FIG1 and C3 on the protocol: pure verdicts on hand-made numbers, and their measures.

Each verdict gets a swap test: the same per-seed numbers exchanged between the two arms must
flip the published cell's verdict, or the function is not reading them. Noise within two
standard errors must read "no difference measured", and an arm that does not train must
replace the verdict with "degenerate baseline".
"""

import math

import pytest

from normcore.claims import depth, figure1
from normcore.claims import protocol as p

OK = {"ok": True, "reasons": []}
FLAT = {"ok": False, "reasons": ["it does not train (validation accuracy +0, needs +0.05)"]}


def test_joint_verdict_needs_every_part_and_a_usable_baseline():
    assert p.joint_verdict([p.HOLDS, p.HOLDS]) == p.HOLDS
    assert p.joint_verdict([p.HOLDS, p.FAILS]) == p.FAILS
    assert p.joint_verdict([p.NO_DIFF, p.FAILS]) == p.FAILS
    assert p.joint_verdict([p.HOLDS, p.NO_DIFF]) == p.NO_DIFF
    assert p.joint_verdict([p.UNMEASURED, p.NO_DIFF]) == p.UNMEASURED
    assert p.joint_verdict([p.HOLDS, p.HOLDS], FLAT) == p.DEGENERATE


def test_arms_baseline_names_the_arm_of_each_reason():
    both = p.arms_baseline({"none": FLAT, "batch": OK})
    assert not both["ok"] and both["reasons"][0].startswith("none: it does not train")
    assert p.arms_baseline({"none": OK, "batch": OK}) == {"ok": True, "reasons": []}


# --- C1 -------------------------------------------------------------------------------------


def _c1_cell(none, batch, none_base=OK):
    return {
        "regime": "fig1",
        "published": True,
        "lr": {"none": 3.0, "batch": 0.3},
        "drift": {"none": [list(d) for d in none], "batch": [list(d) for d in batch]},
        "baseline": {"none": none_base, "batch": OK},
    }


GROWING = ([0.5, 2.0, 5.0], [0.6, 2.2, 5.3], [0.4, 1.9, 4.8])
STEADY = ([0.05, 0.04, 0.2], [0.06, 0.05, 0.25], [0.05, 0.04, 0.22])


def test_c1_holds_when_drift_grows_without_bn_and_flips_when_the_arms_are_swapped():
    result = depth.verdict_c1({"cells": [_c1_cell(GROWING, STEADY)]})
    assert result["verdict"] == "reproduced"
    cell = result["regimes"][0]
    assert cell["verdict"] == p.HOLDS
    assert cell["effects"][0]["value"] == pytest.approx(13.6 / 3)  # top - first, mean of seeds
    swapped = depth.verdict_c1({"cells": [_c1_cell(STEADY, GROWING)]})
    assert swapped["verdict"] == "not reproduced"
    assert swapped["regimes"][0]["steadier"]["direction"] == "a < b"


def test_c1_drift_that_shrinks_with_depth_fails_even_when_bn_is_steadier():
    shrinking = [d[::-1] for d in GROWING]
    cell = _c1_cell(shrinking, STEADY)
    assert depth.verdict_c1({"cells": [cell]})["regimes"][0]["verdict"] == p.FAILS


def test_c1_reads_no_difference_within_noise_and_degenerate_when_no_norm_does_not_train():
    noisy = ([0.5, 2.0, 9.0], [0.6, 2.2, 0.1], [0.4, 1.9, 0.3])
    cell = _c1_cell(noisy, STEADY)
    assert depth.verdict_c1({"cells": [cell]})["verdict"] == p.NO_DIFF
    frozen = depth.verdict_c1({"cells": [_c1_cell(GROWING, STEADY, FLAT)]})
    assert frozen["verdict"] == p.DEGENERATE
    assert "none: it does not train" in frozen["checks"][0]["detail"]


def test_c1_with_an_unmeasured_layer_is_unmeasured():
    broken = (GROWING[0], [0.6, 2.2, None], GROWING[2])
    assert depth.verdict_c1({"cells": [_c1_cell(broken, STEADY)]})["verdict"] == p.UNMEASURED


# --- FIG1 -----------------------------------------------------------------------------------


def _fig1_cell(band_none, band_batch, speed_none, speed_batch, batch_base=OK):
    return {
        "regime": figure1.PUBLISHED,
        "published": True,
        "lr": {"none": 3.0, "batch": 0.3},
        "band": {"none": list(band_none), "batch": list(band_batch)},
        "speed": {"none": list(speed_none), "batch": list(speed_batch)},
        "baseline": {"none": OK, "batch": batch_base},
    }


def test_fig1_holds_when_bn_is_steadier_and_faster_and_flips_when_swapped():
    wide, narrow = (2.9, 3.1, 3.0), (0.08, 0.09, 0.07)
    slow, fast = (0.55, 0.57, 0.56), (0.80, 0.81, 0.79)
    result = figure1.verdict_fig1({"cells": [_fig1_cell(wide, narrow, slow, fast)]})
    assert result["verdict"] == "reproduced"
    assert [e["value"] for e in result["regimes"][0]["effects"]] == [
        pytest.approx(2.92),
        pytest.approx(0.24),
    ]
    swapped = figure1.verdict_fig1({"cells": [_fig1_cell(narrow, wide, fast, slow)]})
    assert swapped["verdict"] == "not reproduced"
    # steadier but not faster beyond two standard errors: not established
    close = _fig1_cell(wide, narrow, (0.55, 0.80, 0.70), (0.60, 0.75, 0.72))
    assert figure1.verdict_fig1({"cells": [close]})["verdict"] == p.NO_DIFF
    flat = _fig1_cell(wide, narrow, slow, fast, batch_base=FLAT)
    assert figure1.verdict_fig1({"cells": [flat]})["verdict"] == p.DEGENERATE


def test_fig1_a_diverged_seed_is_unmeasured_not_reproduced():
    cell = _fig1_cell((2.9, None, 3.0), (0.08, 0.09, 0.07), (0.5, 0.5, 0.5), (0.8, 0.8, 0.81))
    result = figure1.verdict_fig1({"cells": [cell]})
    assert result["verdict"] == p.UNMEASURED
    assert "unmeasured" in result["checks"][0]["detail"]


# --- C3 -------------------------------------------------------------------------------------


def _c3_cell(beyond_affine, beyond_plain, acc_affine, acc_plain, plain_base=OK):
    return {
        "regime": figure1.SPIRALS,
        "published": True,
        "lr": {"affine": 3.0, "plain": 0.3},
        "cut": 2.0,
        "nonlinear": {"affine": list(beyond_affine), "plain": list(beyond_plain)},
        "acc": {"affine": list(acc_affine), "plain": list(acc_plain)},
        "baseline": {"affine": OK, "plain": plain_base},
    }


def test_c3_holds_when_g_b_use_the_non_linear_region_and_help_and_flips_when_swapped():
    used, unused = (0.22, 0.25, 0.21), (0.03, 0.02, 0.03)
    good, poor = (0.98, 0.97, 0.99), (0.60, 0.58, 0.61)
    result = figure1.verdict_c3({"cells": [_c3_cell(used, unused, good, poor)]})
    assert result["verdict"] == "reproduced"
    assert "beyond |x| > 2" in result["regimes"][0]["effects"][0]["name"]
    swapped = figure1.verdict_c3({"cells": [_c3_cell(unused, used, poor, good)]})
    assert swapped["verdict"] == "not reproduced"
    # g, b move the inputs but accuracy does not differ beyond two standard errors
    same = _c3_cell(used, unused, (0.96, 0.97, 0.95), (0.97, 0.95, 0.96))
    assert figure1.verdict_c3({"cells": [same]})["verdict"] == p.NO_DIFF
    flat = _c3_cell(used, unused, good, poor, plain_base=FLAT)
    assert figure1.verdict_c3({"cells": [flat]})["verdict"] == p.DEGENERATE


def _hist(counts, lo=-4.0, hi=4.0, under=0, over=0):
    return {"lo": lo, "hi": hi, "counts": list(counts), "under": under, "over": over}


def test_fraction_beyond_splits_the_bins_the_cut_falls_in():
    # bins of width 1 on [-4, 4]; the cut 2.5 halves the bins [-3, -2) and [2, 3)
    h = _hist([1, 2, 0, 0, 0, 0, 4, 1], under=1, over=1)
    # beyond: 1 (bin [-4, -3)) + 2 * 0.5 + 4 * 0.5 + 1 + 2 (under, over) of 10 values
    assert figure1.fraction_beyond(h, 2.5) == pytest.approx(7 / 10)
    assert figure1.fraction_beyond(h, 0.0) == pytest.approx(1.0)
    assert figure1.fraction_beyond(_hist([0] * 8), 2.0) is None


def test_fraction_beyond_two_of_a_fine_standard_normal_histogram_is_its_tail_mass():
    edges = [-8 + 16 * i / 1600 for i in range(1601)]
    cdf = [0.5 * (1 + math.erf(e / math.sqrt(2))) for e in edges]
    counts = [round(1e7 * (b - a)) for a, b in zip(cdf, cdf[1:], strict=False)]
    h = _hist(counts, lo=-8.0, hi=8.0)
    assert figure1.fraction_beyond(h, 2.0) == pytest.approx(math.erfc(2 / math.sqrt(2)), rel=1e-3)


def test_nonlinear_fraction_averages_layers_over_the_last_quarter_of_probes():
    inside, outside = _hist([0, 0, 0, 5, 5, 0, 0, 0]), _hist([5, 0, 0, 0, 0, 0, 0, 5])
    early = {"step": 0, "layers": [{"hist": outside}, {"hist": outside}]}
    late = {"step": 10, "layers": [{"hist": inside}, {"hist": outside}]}
    frames = [early, early, early, late, {"step": 11, "layers": []}]
    assert figure1.nonlinear_fraction(frames, 2.0) == pytest.approx(0.5)
    assert figure1.nonlinear_fraction([early], 2.0) == pytest.approx(1.0)


def _run(val_first, val_last, drift):
    """A hand-made run: two probes whose layers moved (update ratio 0.01 a step), a first and
    a last validation score, and one measured number (`drift`) on the last frame."""
    layers = [{"update_ratio": 0.01}, {"update_ratio": 0.01}]
    return [
        {"step": 0, "status": "running", "layers": layers, "val": {"acc": val_first}},
        {"step": 10, "status": "completed", "layers": layers, "val": {"acc": val_last}, "d": drift},
    ]


def test_tuned_cell_picks_each_arms_rate_on_validation_and_measures_its_runs():
    frames = {}
    for s in (0, 1):  # none trains best at 0.3, batch at 0.03; batch's 0.3 barely trains
        frames[p.key("r", "none", 0.03, s)] = _run(0.1, 0.5, 1.0 + s)
        frames[p.key("r", "none", 0.3, s)] = _run(0.1, 0.9, 3.0 + s)
        frames[p.key("r", "batch", 0.03, s)] = _run(0.1, 0.95, 0.1 * (s + 1))
        frames[p.key("r", "batch", 0.3, s)] = _run(0.1, 0.12, 9.0)
    cell = p.tuned_cell(frames, "r", ("none", "batch"), (0, 1), (0.03, 0.3), {"d": _last_d})
    assert cell["lr"] == {"none": 0.3, "batch": 0.03}
    assert cell["d"] == {"none": [3.0, 4.0], "batch": [pytest.approx(0.1), pytest.approx(0.2)]}
    assert cell["baseline"]["none"]["ok"] and cell["baseline"]["batch"]["ok"]
    # the runs of batch's two rates exchanged: the choice and the measures follow them
    for s in (0, 1):
        a, b = p.key("r", "batch", 0.03, s), p.key("r", "batch", 0.3, s)
        frames[a], frames[b] = frames[b], frames[a]
    swapped = p.tuned_cell(frames, "r", ("none", "batch"), (0, 1), (0.03, 0.3), {"d": _last_d})
    assert swapped["lr"]["batch"] == 0.3 and swapped["d"]["batch"] == cell["d"]["batch"]
    # a no-norm arm that trains at no rate: its best rate is measured, and flagged
    for s in (0, 1):
        for lr in (0.03, 0.3):
            frames[p.key("r", "none", lr, s)] = _run(0.1, 0.11, 5.0)
    flat = p.tuned_cell(frames, "r", ("none", "batch"), (0, 1), (0.03, 0.3), {"d": _last_d})
    assert flat["lr"]["none"] == 0.03 and not flat["baseline"]["none"]["ok"]
    assert "does not train" in flat["baseline"]["none"]["reasons"][0]


def _last_d(run):
    return run[-1]["d"]


def test_a_checks_detail_names_each_arms_rate():
    cell = _c3_cell((0.22, 0.25, 0.21), (0.03, 0.02, 0.03), (0.98, 0.97, 0.99), (0.6, 0.58, 0.61))
    detail = figure1.verdict_c3({"cells": [cell]})["checks"][0]["detail"]
    assert detail.startswith("holds: ") and detail.endswith("; lr affine 3, plain 0.3")
