"""C5 on the protocol: its regimes and arms, and its criteria fixed before the runs, fed
hand-made numbers (swapping the arms must flip the verdict)."""

from __future__ import annotations

import pytest

from normcore.claims import protocol as P
from normcore.claims import rnn_protocol as R

OK = {"ok": True, "reasons": []}
BAD = {"ok": False, "reasons": ["it does not train"]}
GOOD, POOR, LEVEL = (0.90, 0.92, 0.91), (0.60, 0.62, 0.65), (0.75, 0.80, 0.85)


def cell(layer=GOOD, batch=POOR, batch_step=POOR, none=LEVEL, regime="batch 4", bad=()):
    return {
        "regime": regime,
        "published": regime == "batch 4",
        "seeds": [0, 1, 2],
        "lr": dict.fromkeys(R.ARMS, 0.3),
        "acc": {
            "layer": list(layer),
            "batch": list(batch),
            "batch_step": list(batch_step),
            "none": list(none),
        },
        "baseline": {a: BAD if a in bad else OK for a in R.ARMS},
    }


def judge(*cells):
    return R.verdict_c5({"cells": list(cells)})


def test_ln_beating_both_bns_holds_twice_and_swapping_ln_with_bn_flips_the_verdict():
    out = judge(cell())
    assert out["verdict"] == "reproduced"
    assert out["regimes"][0]["verdict"] == P.HOLDS
    assert out["regimes"][0]["verdict_per_step"] == P.HOLDS
    swapped = judge(cell(layer=POOR, batch=GOOD))
    assert swapped["verdict"] == "not reproduced"
    assert swapped["regimes"][0]["verdict_per_step"] == P.NO_DIFF  # LN and per-step BN level


def test_swapping_ln_with_per_step_bn_flips_only_the_per_step_verdict():
    out = judge(cell(layer=POOR, batch=POOR, batch_step=GOOD))
    c = out["regimes"][0]
    assert c["verdict_per_step"] == P.FAILS and c["verdict"] == P.NO_DIFF
    assert (
        judge(cell(layer=GOOD, batch=GOOD, batch_step=POOR))["regimes"][0]["verdict_per_step"]
        == P.HOLDS
    )


def test_within_two_standard_errors_is_no_difference():
    out = judge(cell(layer=(0.90, 0.80, 0.85), batch=(0.86, 0.84, 0.85)))
    assert out["verdict"] == "no difference measured"


def test_a_degenerate_bn_arm_is_reported_not_judged_and_only_where_it_is_used():
    out = judge(cell(batch=(0.25, 0.25, 0.25), bad=("batch",)))
    assert out["verdict"] == "degenerate baseline"
    assert out["regimes"][0]["verdict_per_step"] == P.HOLDS  # the per-step arm trains
    step = judge(cell(bad=("batch_step",)))["regimes"][0]
    assert step["verdict"] == P.HOLDS and step["verdict_per_step"] == P.DEGENERATE
    assert any(
        "batch_step: it does not train" in c["detail"]
        for c in judge(cell(bad=("batch_step",)))["checks"]
    )


def test_the_verdict_is_the_claims_cell_the_others_are_the_map():
    out = judge(cell(), cell(layer=POOR, batch=GOOD, regime="batch 32, variable length"))
    assert out["verdict"] == "reproduced"
    assert [c["verdict"] for c in out["regimes"]] == [P.HOLDS, P.FAILS]
    out = judge(cell(layer=POOR, batch=GOOD), cell(regime="batch 32, test 40 steps"))
    assert out["verdict"] == "not reproduced"


def test_effects_name_every_comparison_with_its_standard_error():
    effects = judge(cell())["regimes"][0]["effects"]
    names = [e["name"] for e in effects]
    assert names == [
        "test acc, LN - BN",
        "test acc, LN - BN per step",
        "test acc, none - BN",
        "test acc, BN per step - BN",
    ]
    assert effects[0]["value"] == pytest.approx(sum(GOOD) / 3 - sum(POOR) / 3)
    assert all(e["se"] > 0 for e in effects[:3])


def test_a_result_stored_before_the_per_step_arm_still_reads():
    old = cell()
    del old["acc"]["batch_step"], old["baseline"]["batch_step"], old["lr"]["batch_step"]
    out = judge(old)
    assert out["verdict"] == "reproduced"
    assert out["regimes"][0]["verdict_per_step"] == P.UNMEASURED


# --- the sweep's layout ---------------------------------------------------------------------


@pytest.mark.parametrize("quick", [True, False])
def test_every_regime_runs_every_arm_at_every_rate_and_seed(quick):
    configs = R.c5_arms(quick)
    regimes, seeds, grid = R.regimes(quick), P.seeds(quick), P.grid(quick)
    assert len(configs) == len(regimes) * len(R.ARMS) * len(grid) * len(seeds)
    assert len(seeds) == (2 if quick else 5)
    assert grid == (P.QUICK_LR_GRID if quick else P.LR_GRID)
    first = next(iter(regimes))
    assert first == f"batch {R.batch_sizes(quick)[0]}"  # the claim's cell: smallest batch
    for k, cfg in configs.items():
        regime, arm, _, _ = k.split("|")
        assert cfg.model == "rnn" and cfg.val_fraction == P.VAL_FRACTION
        assert cfg.bn_per_step == (arm == "batch_step")
        assert cfg.norm == {"none": "none", "layer": "layer"}.get(arm, "batch")
        assert cfg.seq_vary == ("variable length" in regime)
        assert cfg.test_len == (R.LONG_TEST_LEN if "test 40" in regime else cfg.seq_len)
        assert cfg.seq_task == ("early" if "early" in regime else "late")
        if quick:
            assert cfg.steps <= 300 and cfg.width <= 32 and cfg.device == "cpu"
    kinds = " ".join(regimes)
    assert "variable length" in kinds and "test 40 steps" in kinds
    assert ("early motif" in kinds) == (not quick)


def test_the_claims_cell_is_fixed_length_with_a_test_as_long_as_training():
    configs = R.c5_arms(True)
    claim = [c for k, c in configs.items() if k.startswith("batch 4|")]
    assert claim and all(not c.seq_vary and c.test_len == c.seq_len == 20 for c in claim)
