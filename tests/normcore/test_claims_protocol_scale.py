"""C8's learning-rate part on the protocol: the verdict is a pure function of hand-made
per-seed largest trainable rates, and swapping the arms' rates must flip it; noise within two
standard errors reads "no difference measured"; a no-norm network that trains at no rate is a
degenerate baseline. Plus the measurement it rests on (the largest rate that trains, the
floor of a seed where none does, the sweep's layout)."""

import math

import pytest

from normcore.claims import protocol as P
from normcore.claims import scale

GRID = list(scale.LR_GRID)  # 0.01, 0.0464, 0.215, 1, 4.64, 21.5, 100
INVARIANT = {k: {"deviation": 1e-7, "tol": 1e-4} for k in scale.FOUR}
EXACT_LAW = {k: {"0.1": 1e-16, "1": 0.0, "10": 1e-16} for k in scale.FOUR}

LOW = [1.0, 1.0, 0.215, 1.0, 1.0]  # no norm: ~1 ...
HIGH = [21.5, 21.5, 4.64, 21.5, 21.5]  # ... BN: ~20, every seed


def _cell(none, batch, regime=scale.PUBLISHED, published=True):
    return {
        "regime": regime,
        "published": published,
        "seeds": list(range(len(none))),
        "grid": GRID,
        "lr": {"none": 1.0, "batch": 21.5},
        "max_lr": {"none": list(none), "batch": list(batch)},
    }


def _numbers(*cells, law=EXACT_LAW):
    return {"weight_rescale": INVARIANT, "grad_law": law, "cells": list(cells)}


def test_c8_holds_when_bn_trains_at_higher_rates_and_flips_when_swapped():
    result = scale.verdict_c8(_numbers(_cell(LOW, HIGH)))
    assert result["verdict"] == "reproduced"
    cell = result["regimes"][0]
    assert cell["verdict"] == P.HOLDS
    diff = sum(math.log10(b / a) for a, b in zip(LOW, HIGH, strict=True)) / len(LOW)
    assert cell["effects"][0]["name"] == "log10 max lr, BN - none"
    assert cell["effects"][0]["value"] == pytest.approx(diff)
    assert [c["passed"] for c in result["checks"]] == [True, True, True]
    swapped = scale.verdict_c8(_numbers(_cell(HIGH, LOW)))
    assert swapped["verdict"] == "not reproduced"
    assert swapped["regimes"][0]["effect"]["direction"] == "a < b"


def test_c8_reads_no_difference_within_two_standard_errors():
    # one step apart on average, but the seeds spread over three decades
    none = [0.0464, 21.5, 0.215, 4.64, 1.0]
    batch = [4.64, 0.215, 21.5, 1.0, 100.0]
    result = scale.verdict_c8(_numbers(_cell(none, batch)))
    assert result["verdict"] == P.NO_DIFF
    assert scale.verdict_c8(_numbers(_cell(batch, none)))["verdict"] == P.NO_DIFF
    # the same one-step difference without the spread counts
    steady = scale.verdict_c8(_numbers(_cell([1.0] * 4 + [0.215], [4.64] * 4 + [1.0])))
    assert steady["verdict"] == "reproduced"


def test_c8_a_no_norm_net_that_trains_at_no_rate_is_a_degenerate_baseline():
    none = [1.0, None, 1.0, 1.0, 1.0]  # seed 1 trains at no rate of the grid
    result = scale.verdict_c8(_numbers(_cell(none, HIGH)))
    assert result["verdict"] == P.DEGENERATE
    assert "none: no lr of the grid trains (seeds [1])" in result["checks"][2]["detail"]
    # BN is the subject: a BN net that never trains is evidence against the claim
    never = scale.verdict_c8(_numbers(_cell(LOW, [None] * 5)))
    assert never["verdict"] == "not reproduced"


def test_c8_a_seed_where_nothing_trains_scores_one_grid_step_below_the_grid():
    assert scale.nothing_trains(GRID) == pytest.approx(0.01 / 4.64, rel=1e-3)
    logs = scale.log_max_lr([None, 1.0, 100.0], GRID)
    assert logs[1:] == [0.0, 2.0]
    step = math.log10(GRID[1]) - math.log10(GRID[0])
    assert logs[0] == pytest.approx(math.log10(GRID[0]) - step)


def test_c8_verdict_is_the_published_cell_and_the_neighbour_maps_a_regime():
    sigmoid = _cell(HIGH, LOW, regime="sigmoid, batch 64", published=False)
    result = scale.verdict_c8(_numbers(_cell(LOW, HIGH), sigmoid))
    assert result["verdict"] == "reproduced"
    assert [c["verdict"] for c in result["regimes"]] == [P.HOLDS, P.FAILS]
    flipped = _cell(HIGH, LOW)
    other = _cell(LOW, HIGH, regime="sigmoid, batch 64", published=False)
    assert scale.verdict_c8(_numbers(flipped, other))["verdict"] == "not reproduced"


def test_c8_a_failed_mechanism_is_not_reproduced_whatever_the_cells_say():
    off = {**EXACT_LAW, "layer": {"0.1": 0.5, "1": 0.0, "10": 1e-16}}
    result = scale.verdict_c8(_numbers(_cell(LOW, HIGH), law=off))
    assert result["verdict"] == "not reproduced"
    assert not result["checks"][1]["passed"] and result["checks"][2]["passed"]


def test_max_trained_is_the_largest_rate_that_trains_and_follows_the_accuracies():
    # diverged (None) and below TRAINS_ACC do not train; a slow small rate does not matter
    val = {0.01: 0.3, 0.215: 0.9, 4.64: 0.6, 100.0: None}
    assert scale.max_trained(val) == 4.64
    swapped = {0.01: 0.6, 0.215: 0.9, 4.64: 0.3, 100.0: None}
    assert scale.max_trained(swapped) == 0.215
    assert scale.max_trained({0.01: 0.2, 1.0: None}) is None
    assert scale.max_trained({0.01: scale.TRAINS_ACC}) == 0.01


def _run(val, test=0.8, status="completed"):
    return [{"step": 300, "status": status, "val": {"acc": val}, "eval": {"acc": test}}]


def test_lr_cell_reads_each_seeds_largest_trained_rate_from_the_runs():
    grid, seeds = scale.lr_grid(True), P.seeds(True)
    frames = {}
    for arm, last_ok in (("none", 0.215), ("batch", 4.64)):
        for lr in grid:
            for s in seeds:
                if lr > last_ok:
                    run = _run(None, None, "diverged")
                else:
                    run = _run(0.9 if s == 0 or lr < last_ok else 0.4)
                frames[P.key(scale.PUBLISHED, arm, lr, s)] = run
    cell = scale.lr_cell(frames, scale.PUBLISHED, quick=True)
    assert cell["max_lr"] == {"none": [0.215, 0.01], "batch": [4.64, 0.215]}
    assert cell["published"] and cell["seeds"] == list(seeds)
    assert cell["lr"]["none"] == pytest.approx(math.sqrt(0.215 * 0.01), rel=1e-2)
    assert cell["val_by_lr"]["batch"]["100"] == [None, None]
    judged = scale.verdict_c8(_numbers(cell))
    assert judged["regimes"][0]["effect"]["diff"] == pytest.approx(math.log10(21.5), rel=1e-2)


def test_c8_sweep_lays_out_regimes_arms_rates_and_seeds():
    quick, full = scale.c8_arms(True), scale.c8_arms(False)
    assert len(quick) == 2 * 2 * 4 * 2 and len(full) == 2 * 2 * 7 * 5
    assert GRID[0] == 0.01 and GRID[-1] == 100.0 and scale.lr_grid(True) == tuple(GRID[::2])
    for name, cfg in quick.items():
        regime, arm, lr, seed = name.split("|")
        assert (cfg.norm, f"{cfg.lr:g}", str(cfg.seed)) == (arm, lr, seed)
        assert cfg.optimizer == "sgd" and cfg.batch_size == 64 and cfg.val_fraction > 0
        assert cfg.activation == ("relu" if regime == scale.PUBLISHED else "sigmoid")
        assert full[name].steps > cfg.steps
