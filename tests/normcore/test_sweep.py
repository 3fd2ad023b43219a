"""Sweep expansion, validation and summaries (normcore.sweep), against hand computations."""

from __future__ import annotations

import math
import statistics

import pytest

from normcore.sweep import (
    METRICS,
    SWEEP_PRESETS,
    check_grid,
    expand,
    grid_points,
    mean_std,
    metric_value,
    parse_value,
    summarize,
)


def test_grid_points_vary_the_first_field_slowest():
    points = grid_points({"norm": ["none", "batch"], "batch_size": [2, 4, 8]})
    assert [tuple(p.values()) for p in points] == [
        ("none", 2),
        ("none", 4),
        ("none", 8),
        ("batch", 2),
        ("batch", 4),
        ("batch", 8),
    ]


def test_expand_gives_each_point_every_seed_from_the_base_seed():
    plan = expand({"seed": 7, "steps": 10}, {"norm": ["none", "layer"]}, seeds=3)
    assert not plan.invalid
    assert [(c.point, c.seed) for c in plan.cells] == [
        (0, 7),
        (0, 8),
        (0, 9),
        (1, 7),
        (1, 8),
        (1, 9),
    ]
    assert all(c.config["steps"] == 10 and c.config["seed"] == c.seed for c in plan.cells)
    assert plan.cells[3].config["norm"] == "layer"


def test_expand_names_the_invalid_cell_and_its_field():
    plan = expand({}, {"norm": ["batch", "layer"], "batch_size": [1, 8]}, seeds=2)
    assert len(plan.invalid) == 1
    bad = plan.invalid[0]
    assert (bad.point, bad.field, bad.values) == (
        0,
        "batch_size",
        {"norm": "batch", "batch_size": 1},
    )
    assert "cell 0" in bad.describe() and "batch norm needs more than one value" in bad.message
    assert len(plan.cells) == 3 * 2  # the other three points, two seeds each


@pytest.mark.parametrize(
    ("grid", "seeds", "message"),
    [
        ({}, 1, "grid is empty"),
        ({"nrom": ["batch"]}, 1, "grid field 'nrom' is unknown; known: model"),
        ({"seed": [1, 2]}, 1, "give the number of seeds as `seeds`"),
        ({"norm": []}, 1, "non-empty list"),
        ({"norm": ["batch"]}, 0, "seeds 0 is out of range"),
        ({"depth": list(range(1, 11)), "width": list(range(1, 11))}, 11, "1100 cells"),
    ],
)
def test_check_grid_rejects_with_the_reason(grid, seeds, message):
    with pytest.raises(ValueError) as info:
        check_grid(grid, seeds, max_cells=1000)
    assert message in str(info.value)


def test_mean_std_is_the_sample_std():
    values = [0.91, 0.87, 0.95]
    mean, std = mean_std(values)
    assert mean == pytest.approx(statistics.fmean(values))
    assert std == pytest.approx(statistics.stdev(values))
    assert mean_std([0.5]) == (0.5, None)
    assert mean_std([]) == (None, None)


def test_summarize_skips_missing_seed_values():
    points = grid_points({"norm": ["none", "batch"]})
    rows = summarize(points, {0: [0.5, None, 0.7], 1: [None]})
    assert rows[0]["n"] == 2 and rows[0]["mean"] == pytest.approx(0.6)
    assert rows[0]["std"] == pytest.approx(statistics.stdev([0.5, 0.7]))
    assert rows[1] == {
        "point": 1,
        "values": {"norm": "batch"},
        "per_seed": [None],
        "n": 0,
        "mean": None,
        "std": None,
    }


def _frame(step, loss, sat, w1, ev=None):
    layers = [{"name": "h1", "sat": 0.0, "w1_prev": w1}, {"name": "h2", "sat": sat, "w1_prev": w1}]
    return {"step": step, "loss": loss, "eval": ev, "layers": layers}


def test_metric_value_reads_each_metric_off_the_frames():
    frames = [_frame(i, 1.0 / (i + 1), 0.1 * i, 0.01 * i) for i in range(12)]
    frames[5]["eval"] = {"loss": 0.9, "acc": 0.4}
    frames[11]["eval"] = {"loss": 0.3, "acc": 0.8}
    assert metric_value("eval_acc", frames) == 0.8
    assert metric_value("eval_loss", frames) == 0.3
    assert metric_value("loss", frames) == pytest.approx(
        sum(1 / (i + 1) for i in range(2, 12)) / 10
    )
    assert metric_value("sat_last", frames) == pytest.approx(1.1)
    assert metric_value("drift_mean", frames) == pytest.approx(
        sum(0.01 * i for i in range(12)) / 12
    )
    assert set(METRICS) == {"eval_acc", "eval_loss", "loss", "sat_last", "drift_mean"}


def test_metric_value_is_none_without_evidence():
    assert metric_value("eval_acc", [_frame(0, 1.0, 0.0, 0.0)]) is None
    assert metric_value("loss", [{"loss": None, "layers": []}]) is None
    assert metric_value("sat_last", [{"loss": float("nan"), "layers": []}]) is None
    assert metric_value("eval_loss", [_frame(0, 1.0, 0, 0, {"loss": math.inf, "acc": 0.1})]) is None
    with pytest.raises(ValueError, match="metric 'acc' is unknown; known: eval_acc"):
        metric_value("acc", [])


def test_parse_value_reads_json_else_text():
    assert [parse_value(v) for v in ("2", "0.1", "true", "null", "batch")] == [
        2,
        0.1,
        True,
        None,
        "batch",
    ]


@pytest.mark.parametrize("preset", sorted(SWEEP_PRESETS))
def test_built_in_sweeps_have_only_valid_cells(preset):
    p = SWEEP_PRESETS[preset]
    plan = expand(p["base"], p["grid"], p["seeds"])
    assert not plan.invalid and len(plan.cells) == len(grid_points(p["grid"])) * p["seeds"]
