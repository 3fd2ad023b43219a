"""normcore.claims: pure verdicts, measurements on hand-made frames, every claim for real.

Verdict functions are pure: hand-made numbers in, a verdict that follows the evidence out. The
swap tests feed the measured numbers of two arms exchanged (BN <-> no norm, affine on <->
off, ...): a verdict that did not flip would not be reading its numbers.
"""

import json
import math
from collections.abc import Iterator

import pytest
from scipy.stats import spearmanr

from normcore import claims
from normcore.claims import (
    checks,
    cosine,
    ics_protocol,
    measures,
    rnn_protocol,
    saturation,
    scale,
)
from normcore.claims.parallel import ParallelRunner
from normcore.config import RunConfig


def test_spearman_matches_scipy_with_ties():
    values = [0.1, 0.3, 0.3, 0.2, 0.9, 0.5]
    expected = spearmanr(values, range(len(values))).statistic
    assert checks.spearman(values) == pytest.approx(expected)


def test_spearman_of_unmeasured_or_constant_values():
    assert checks.spearman([0.1, None, 0.2]) is None
    assert checks.spearman([0.1, math.nan, 0.2]) is None
    assert checks.spearman([0.2, 0.2, 0.2]) == 0.0


def _c2_cell(regime, excess, gain, published=False):
    return {
        "regime": regime,
        "published": published,
        "top_excess": excess,
        "gain": gain,
        "top_moves": [0.1] * len(excess),
    }


def test_c2_holds_where_the_top_saturates_and_learning_stalls_and_flips_when_swapped():
    cells = [
        _c2_cell("published", [0.70, 0.68, 0.71], [0.00, 0.01, 0.00], published=True),
        _c2_cell("depth 2", [0.25, 0.30, 0.28], [0.45, 0.50, 0.47]),
        _c2_cell("tanh", [-0.4, -0.5, -0.45], [0.6, 0.6, 0.62]),
    ]
    result = saturation.verdict_c2({"cells": cells})
    assert result["verdict"] == "reproduced"
    assert [c["verdict"] for c in result["regimes"]] == ["holds", "fails", "fails"]
    # the top layer's and the gain's numbers exchanged with depth 2's: the published cell fails
    swapped = [{**cells[0], "top_excess": cells[2]["top_excess"], "gain": cells[1]["gain"]}]
    assert saturation.verdict_c2({"cells": swapped})["verdict"] == "not reproduced"


def test_c2_reads_no_difference_within_two_standard_errors_and_unmeasured_when_frozen():
    noisy = _c2_cell("published", [0.3, -0.3, 0.05], [0.0, 0.0, 0.01], published=True)
    assert saturation.verdict_c2({"cells": [noisy]})["verdict"] == "no difference measured"
    frozen = {**_c2_cell("published", [0.7, 0.7], [0.0, 0.0], True), "top_moves": [0.1, 1e-9]}
    assert saturation.verdict_c2({"cells": [frozen]})["verdict"] == "unmeasured"


def _ics_cell(rel_batch, rel_none, none_ok=True):
    ok = {"ok": True, "reasons": []}
    bad = {"ok": False, "reasons": ["it does not train"]}
    return {
        "regime": "relu",
        "published": True,
        "lr": {"none": 0.3, "batch": 0.3},
        "rel": {"batch": rel_batch, "none": rel_none},
        "baseline": {"none": ok if none_ok else bad, "batch": ok},
    }


def test_ics_holds_when_bn_raises_relative_ics_and_flips_when_swapped():
    cell = _ics_cell([0.30, 0.32, 0.31], [0.10, 0.11, 0.12])
    assert ics_protocol.verdict_ics({"cells": [cell]})["verdict"] == "reproduced"
    swapped = _ics_cell(cell["rel"]["none"], cell["rel"]["batch"])
    assert ics_protocol.verdict_ics({"cells": [swapped]})["verdict"] == "not reproduced"


def test_ics_reports_a_degenerate_baseline_instead_of_a_verdict():
    cell = _ics_cell([0.30, 0.32, 0.31], [1e-6, 1e-6, 1e-6], none_ok=False)
    result = ics_protocol.verdict_ics({"cells": [cell]})
    assert result["verdict"] == "degenerate baseline"
    assert "does not train" in result["checks"][0]["detail"]


def test_relative_ics_divides_by_the_gradient_norm_and_skips_the_first_layer():
    frame = {
        "ics": [{"l2": 9.0}, {"l2": 0.2}, {"l2": 0.6}],
        "layers": [{"grad_norm": 1.0}, {"grad_norm": 2.0}, {"grad_norm": 3.0}],
    }
    assert ics_protocol.relative_ics([frame, {"ics": None, "layers": []}]) == pytest.approx(0.15)


def _c5_cell(layer, batch, none=(0.9, 0.91, 0.92), batch_ok=True):
    ok = {"ok": True, "reasons": []}
    bad = {"ok": False, "reasons": ["it does not train"]}
    return {
        "regime": "batch 4",
        "published": True,
        "lr": {"none": 0.3, "batch": 0.3, "layer": 0.3},
        "acc": {"layer": list(layer), "batch": list(batch), "none": list(none)},
        "baseline": {"none": ok, "batch": ok if batch_ok else bad, "layer": ok},
    }


def test_c5_holds_when_ln_beats_bn_beyond_two_se_and_flips_when_swapped():
    cell = _c5_cell((0.90, 0.92, 0.91), (0.60, 0.62, 0.65))
    assert rnn_protocol.verdict_c5({"cells": [cell]})["verdict"] == "reproduced"
    swapped = _c5_cell(cell["acc"]["batch"], cell["acc"]["layer"])
    assert rnn_protocol.verdict_c5({"cells": [swapped]})["verdict"] == "not reproduced"
    close = _c5_cell((0.90, 0.80, 0.85), (0.86, 0.84, 0.85))
    assert rnn_protocol.verdict_c5({"cells": [close]})["verdict"] == "no difference measured"
    frozen = _c5_cell((0.90, 0.92, 0.91), (0.25, 0.25, 0.25), batch_ok=False)
    assert rnn_protocol.verdict_c5({"cells": [frozen]})["verdict"] == "degenerate baseline"


def _cell(deviation: float) -> dict:
    return {"deviation": deviation, "tol": 1e-4}


def _c8_lr_cell(none: list, batch: list) -> dict:
    """C8's published cell: per seed, the largest rate of the grid that trains."""
    return {
        "regime": scale.PUBLISHED,
        "published": True,
        "seeds": [0, 1, 2],
        "grid": list(scale.LR_GRID),
        "lr": {"none": 1.0, "batch": 21.5},
        "max_lr": {"none": none, "batch": batch},
    }


C8_HIGHER = _c8_lr_cell([1.0, 1.0, 0.215], [21.5, 21.5, 4.64])


def test_c8_counts_each_part_of_the_claim():
    n = {
        "weight_rescale": {k: _cell(1e-7) for k in scale.FOUR},
        "grad_law": {k: {"0.1": 1e-16, "1": 0.0, "10": 1e-16} for k in scale.FOUR},
        "cells": [C8_HIGHER],
    }
    assert scale.verdict_c8(n)["verdict"] == "reproduced"
    swapped = {**n, "cells": [_c8_lr_cell([21.5, 21.5, 4.64], [1.0, 1.0, 0.215])]}
    assert scale.verdict_c8(swapped)["verdict"] == "not reproduced"
    broken = {**n, "grad_law": {**n["grad_law"], "layer": {"0.1": 0.5, "1": 0.0}}}
    broken["weight_rescale"] = {**n["weight_rescale"], "batch": _cell(None)}
    result = scale.verdict_c8(broken)
    assert result["verdict"] == "not reproduced"
    assert [c["passed"] for c in result["checks"]] == [False, False, True]


def test_c8_predicts_the_eps_deviation_and_fails_when_the_prediction_is_not_met():
    """BN at lambda 0.1 deviates 1.19 % because eps is no longer small against lambda^2 var:
    predicted, that passes; the same deviation unpredicted (or the prediction swapped onto
    another norm) fails."""
    law = {k: {"0.1": 1e-16, "1": 0.0, "10": 1e-16} for k in scale.FOUR}
    law["batch"] = {"0.1": 0.0118676, "1": 0.0, "10": 5.2e-6}
    predicted = {k: dict.fromkeys(("0.1", "1", "10"), 0.0) for k in scale.FOUR}
    predicted["batch"] = {"0.1": 0.0118676, "1": 0.0, "10": 5.2e-6}
    n = {
        "weight_rescale": {k: _cell(1e-7) for k in scale.FOUR},
        "grad_law": law,
        "grad_law_predicted": predicted,
        "cells": [C8_HIGHER],
    }
    assert scale.verdict_c8(n)["verdict"] == "reproduced"
    swapped = {
        **n,
        "grad_law_predicted": {
            **predicted,
            "batch": predicted["layer"],
            "layer": predicted["batch"],
        },
    }
    result = scale.verdict_c8(swapped)
    assert result["verdict"] == "not reproduced" and not result["checks"][1]["passed"]


# --- measurements on hand-made frames ------------------------------------------------------


def _frame(step: int, layers: list[dict], status: str = "running", acc=None) -> dict:
    ev = None if acc is None else {"loss": 1.0, "acc": acc}
    return {"step": step, "status": status, "eval": ev, "layers": layers}


def _layer(std=1.0, w1=0.0, p=(-1.0, 0.0, 1.0), sat=0.0) -> dict:
    return {
        "name": "h",
        "std": std,
        "w1_first": w1,
        "p15": p[0],
        "p50": p[1],
        "p85": p[2],
        "sat": sat,
    }


def test_relative_drift_is_in_units_of_the_first_std():
    frames = [
        _frame(s, [_layer(std=2.0 if s == 0 else 9.0, w1=w)])
        for s, w in enumerate([0.0, 0.0, 1.0, 3.0])
    ]
    # second half of the probes: W1 1 and 3, mean 2, over the first std 2
    assert measures.relative_drift(frames) == [pytest.approx(1.0)]


def test_band_movement_averages_the_three_percentiles_over_the_first_width():
    frames = [_frame(0, [_layer(p=(-1, 0, 1))]), _frame(1, [_layer(p=(0, 1, 2))])]
    # moves: 0 at the first probe, 1 (in units of width 2 -> 0.5) at the second
    assert measures.band_movement(frames) == pytest.approx(0.25)
    frames.append(_frame(2, [_layer(p=(None, 0, 1))]))
    assert measures.band_movement(frames) is None


def test_final_eval_of_a_diverged_run_is_unmeasured():
    frames = [_frame(0, [_layer()], acc=0.5), _frame(10, [_layer()], acc=0.9)]
    assert measures.final_eval(frames) == 0.9
    frames.append(_frame(11, [], status="diverged"))
    assert measures.final_eval(frames) is None


def test_outside_unit_counts_bins_wholly_beyond_one():
    hist = {"lo": -4.0, "hi": 4.0, "counts": [1, 0, 0, 2, 2, 0, 0, 3], "under": 1, "over": 1}
    layer = {"name": "h", "hist": hist}
    # bins of width 1: [-4,-3) holds 1 and [3,4) holds 3, plus 2 under/over, of 10 values
    assert cosine.outside_unit([{"layers": [layer]}]) == pytest.approx(0.6)


def test_unknown_claim_names_the_known_ones():
    with pytest.raises(ValueError, match="known: C1, C2"):
        claims.get_claim("C42")
    assert claims.get_claim("fig1").id == "FIG1"


# --- every claim, quick mode, for real --------------------------------------------------------

RESULT_KEYS = {
    "id",
    "title",
    "claim",
    "experiment",
    "criterion",
    "verdict",
    "checks",
    "numbers",
    "regimes",
    "series",
    "run_configs",
    "quick",
    "duration_s",
}
VERDICTS = {"reproduced", "mixed", "not reproduced"}
# claims on the protocol (normcore.claims.protocol) read their published cell
PROTOCOL_VERDICTS = {
    "reproduced",
    "not reproduced",
    "no difference measured",
    "degenerate baseline",
    "unmeasured",
}
PROTOCOL = {"C1", "C2", "C3", "C4", "C5", "C6", "C7", "C8", "C9", "FIG1", "ICS"}


@pytest.fixture(scope="module")
def quick_results() -> Iterator[dict[str, dict]]:
    """Every claim in quick mode, sharing one runner as `normscope claims --quick` does (its
    arms in parallel processes, one thread each); each claim runs when a test first asks for
    it, so `-k C4` runs C4 alone."""

    class Results(dict):
        def __missing__(self, claim_id: str) -> dict:
            self[claim_id] = claims.run_claim(claim_id, quick=True, runner=runner)
            return self[claim_id]

    with ParallelRunner() as runner:
        yield Results()


@pytest.mark.slow
@pytest.mark.parametrize("claim_id", list(claims.CLAIMS))
def test_every_claim_runs_in_quick_mode(quick_results, claim_id):
    result = quick_results[claim_id]
    exp = claims.get_claim(claim_id)
    assert set(result) == RESULT_KEYS
    assert result["verdict"] in (PROTOCOL_VERDICTS if claim_id in PROTOCOL else VERDICTS)
    if claim_id in PROTOCOL:  # a regime map: seeds, lrs and a verdict per cell
        assert result["regimes"] and any(c["published"] for c in result["regimes"])
        for cell in result["regimes"]:
            chosen = cell["lr"] if isinstance(cell["lr"], dict) else {"arm": cell["lr"]}
            assert len(cell["seeds"]) >= 2 and cell["verdict"]  # lr: one, or one per arm
            if cell["lr"] is not None:  # a direct measurement (C9's invariance) has no lr
                assert chosen and all(lr > 0 for lr in chosen.values())
        if result["run_configs"]:  # a claim that trains reports the rates it chose
            assert any(cell["lr"] is not None for cell in result["regimes"])
    # the stored verdict is what the verdict function says about the stored numbers
    assert exp.verdict(result["numbers"])["verdict"] == result["verdict"]
    assert [r["arm"] for r in result["run_configs"]] == list(exp.configs(True))
    assert all(r["status"] in ("completed", "diverged") for r in result["run_configs"])
    most = 1500 if claim_id in PROTOCOL else 500
    assert all(r["config"]["steps"] <= most for r in result["run_configs"])
    assert json.loads(json.dumps(result, allow_nan=False)) == result
    for figure in result["series"]:
        assert figure["traces"] and all(len(t["x"]) == len(t["y"]) for t in figure["traces"])


@pytest.mark.slow
def test_quick_mode_is_repeatable(quick_results):
    """In this process the same numbers as in the pool's: a run is its seeded config."""
    again = claims.run_claim("FIG1", quick=True, runner=claims.LocalRunner())
    assert again["numbers"] == quick_results["FIG1"]["numbers"]
    assert again["verdict"] == quick_results["FIG1"]["verdict"]


def test_full_mode_arms_are_valid_and_larger_than_quick():
    quick = {c["id"]: c["arms"] for c in claims.claim_catalog(quick=True)}
    for full in claims.claim_catalog(quick=False):
        assert list(full["arms"]) == list(quick[full["id"]]) or full["id"] in (
            "C1",
            "C2",
            "C3",
            "FIG1",
            "C4",
            "C5",
            "C6",
            "C7",
            "C8",
            "C9",
            "ICS",
        )
        for arm, config in full["arms"].items():
            small = quick[full["id"]].get(arm)
            assert small is None or config["steps"] > small["steps"], (full["id"], arm)


def test_a_parallel_runner_keeps_its_processes_from_one_map_to_the_next():
    """Its worker processes serve every map until it closes: each spawned one imports torch
    and the trainer, which a quick run of every claim would otherwise pay dozens of times."""
    tiny = RunConfig(depth=1, width=4, dataset="digits", batch_size=8, steps=2, device="cpu")
    with ParallelRunner(workers=2) as runner:
        first = runner.map([(f"seed {s}", tiny.model_copy(update={"seed": s})) for s in (0, 1)])
        pids = set(runner._pool._processes)  # type: ignore[union-attr]
        again = runner.map([(f"seed {s}", tiny.model_copy(update={"seed": s})) for s in (2, 3)])
        assert set(runner._pool._processes) == pids and len(pids) == 2  # type: ignore[union-attr]
    assert runner._pool is None
    assert all(r.status == "completed" and r.frames for r in first + again)
