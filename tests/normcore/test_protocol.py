"""The claims protocol's pure pieces: lr selection on validation, the two-standard-error rule,
the degenerate-baseline check. Each gets a swap test: the same numbers exchanged between the
two sides must flip the outcome, or the function is not reading them."""

import math

import pytest

from normcore.claims import protocol as p
from normcore.config import RunConfig


def test_mean_se_matches_the_textbook_formula():
    m, se, n = p.mean_se([1.0, 2.0, 3.0, 4.0])
    assert (m, n) == (2.5, 4)
    assert se == pytest.approx(math.sqrt(5 / 3 / 4))
    assert p.mean_se([1.0]) == (1.0, None, 1)
    assert p.mean_se([None, math.nan]) == (None, None, 0)


def test_compare_counts_an_effect_beyond_two_standard_errors_and_flips_when_swapped():
    a, b = [0.90, 0.91, 0.89], [0.80, 0.82, 0.81]
    assert p.compare(a, b)["direction"] == "a > b"
    assert p.compare(b, a)["direction"] == "a < b"
    result = p.compare(a, b)
    assert result["diff"] == pytest.approx(0.09)
    assert result["se"] == pytest.approx(math.sqrt(0.01**2 / 3 + 0.01**2 / 3))


def test_compare_reads_no_difference_within_two_standard_errors():
    a, b = [0.90, 0.80, 0.85], [0.84, 0.86, 0.82]  # diff 0.01, se ~0.03
    assert p.compare(a, b)["direction"] == p.NO_DIFF
    assert p.compare(b, a)["direction"] == p.NO_DIFF
    # the same difference with a tenth of the noise counts
    tight = [0.851, 0.849, 0.850], [0.840, 0.841, 0.839]
    assert p.compare(*tight)["direction"] == "a > b"


def test_compare_needs_two_seeds_and_every_seed_measured():
    assert p.compare([0.9], [0.1])["direction"] == p.UNMEASURED
    assert p.compare([0.9, None, 0.9], [0.1, 0.1, 0.1])["direction"] == p.UNMEASURED
    assert p.compare([0.9, 0.92], [0.1, math.nan])["direction"] == p.UNMEASURED


def test_select_lr_picks_the_best_mean_validation_score_and_follows_the_scores():
    scores = {0.01: [0.70, 0.72], 0.1: [0.85, 0.83], 1.0: [0.60, 0.62]}
    assert p.select_lr(scores)["lr"] == 0.1
    swapped = {0.01: scores[0.1], 0.1: scores[0.01], 1.0: scores[1.0]}
    assert p.select_lr(swapped)["lr"] == 0.01
    assert p.select_lr(scores)["val_by_lr"] == {"0.01": 0.71, "0.1": 0.84, "1": 0.61}


def test_select_lr_scores_a_diverged_seed_as_zero_and_breaks_ties_low():
    # lr 1 is best on the seed that survived, but diverged on the other
    assert p.select_lr({0.1: [0.80, 0.80], 1.0: [0.95, None]})["lr"] == 0.1
    assert p.select_lr({0.1: [0.8, 0.8], 0.3: [0.8, 0.8]})["lr"] == 0.1
    assert p.select_lr({0.1: [None, None], 1.0: [None, None]})["lr"] is None


def test_baseline_check_flags_a_net_that_does_not_train_or_a_layer_that_does_not_move():
    healthy = p.baseline_check(0.1, 0.8, [0.05, 0.04, 0.03])
    assert healthy["ok"] and healthy["reasons"] == []
    flat = p.baseline_check(0.1, 0.11, [0.05, 0.04, 0.03])
    assert not flat["ok"] and "does not train" in flat["reasons"][0]
    frozen = p.baseline_check(0.1, 0.8, [5e-9, 0.04, 0.03])
    assert not frozen["ok"] and "layers [1] do not move" in frozen["reasons"][0]
    # swap: the same numbers exchanged between first and last accuracy flip the check
    assert not p.baseline_check(0.8, 0.1, [0.05, 0.04, 0.03])["ok"]
    assert not p.baseline_check(None, 0.8, [0.05])["ok"]


def test_a_degenerate_baseline_replaces_the_verdict():
    effect = p.compare([0.9, 0.91, 0.89], [0.5, 0.52, 0.51])
    ok = p.baseline_check(0.1, 0.6, [0.1, 0.1])
    bad = p.baseline_check(0.1, 0.1, [0.1, 0.1])
    assert p.cell_verdict(effect, "a > b", ok) == p.HOLDS
    assert p.cell_verdict(effect, "a < b", ok) == p.FAILS
    assert p.cell_verdict(effect, "a > b", bad) == p.DEGENERATE
    cells = [{"published": True, "verdict": p.HOLDS}, {"verdict": p.FAILS}]
    assert p.summarize_cells(cells) == "reproduced"
    assert p.summarize_cells([{**cells[0], "verdict": p.DEGENERATE}]) == p.DEGENERATE
    assert p.summarize_cells([{**cells[0], "verdict": p.NO_DIFF}]) == p.NO_DIFF


def test_layer_movement_integrates_update_ratios_over_the_steps_each_probe_stands_for():
    def frame(step, ratios):
        return {"step": step, "layers": [{"update_ratio": r} for r in ratios]}

    frames = [frame(1, [1e-3, 1e-9]), frame(11, [2e-3, 1e-9]), frame(21, [None, 1e-9])]
    moved = p.layer_movement(frames)
    assert moved[0] is None  # a layer whose ratio went missing is not called moving
    assert moved[1] == pytest.approx(21e-9)


def test_sweep_configs_lay_out_arms_regimes_lrs_and_seeds_with_a_validation_split():
    arms = {"none": RunConfig(norm="none", steps=10), "batch": RunConfig(norm="batch", steps=10)}
    regimes = {"d2": {"depth": 2}, "d4": {"depth": 4}}
    runs = p.sweep_configs(arms, regimes, seeds=(0, 1), grid=(0.01, 0.1))
    assert len(runs) == 2 * 2 * 2 * 2
    cfg = runs["d4|batch|0.1|1"]
    assert (cfg.depth, cfg.norm, cfg.lr, cfg.seed) == (4, "batch", 0.1, 1)
    assert cfg.val_fraction == p.VAL_FRACTION
    fixed = p.sweep_configs(arms, regimes, seeds=(0,), grid=None)
    assert set(fixed) == {"d2|none|0.1|0", "d2|batch|0.1|0", "d4|none|0.1|0", "d4|batch|0.1|0"}


def test_tuned_arm_reports_the_chosen_rates_runs_and_their_baseline_check():
    def run(first, last, ratio):
        return [
            {"step": 1, "val": {"acc": first}, "layers": [{"update_ratio": ratio}]},
            {
                "step": 100,
                "val": {"acc": last},
                "status": "completed",
                "layers": [{"update_ratio": ratio}],
            },
        ]

    frames = {p.key("r", "a", 0.1, s): run(0.1, 0.6, 1e-3) for s in (0, 1)}
    frames |= {p.key("r", "a", 1.0, s): run(0.1, 0.12, 1e-9) for s in (0, 1)}  # flat, frozen
    got = p.tuned_arm(frames, "r", "a", (0, 1), (0.1, 1.0), lambda r: r[-1]["val"]["acc"])
    assert got["lr"] == 0.1 and got["values"] == [0.6, 0.6] and got["baseline"]["ok"]
    # swap the runs between the rates: the frozen ones win nothing, the choice follows
    swapped = {
        p.key("r", "a", lr, s): frames[p.key("r", "a", other, s)]
        for lr, other in ((0.1, 1.0), (1.0, 0.1))
        for s in (0, 1)
    }
    again = p.tuned_arm(swapped, "r", "a", (0, 1), (0.1, 1.0), lambda r: r[-1]["val"]["acc"])
    assert again["lr"] == 1.0 and again["baseline"]["ok"]
