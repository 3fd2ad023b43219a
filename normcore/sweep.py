"""Sweeps: a base RunConfig × a grid over any of its fields × seeds, and their summaries.

Pure functions, no server: `expand` turns a sweep request into cells (each a validated
RunConfig) or the reasons it cannot, `metric_value` reads one number off a finished run's
frames, and `summarize` gives mean ± std over seeds per grid point. The service stores and
schedules the cells (app/services/sweeps.py); the CLI and the claims lab use the same pieces.

A *grid point* is one combination of grid values; a *cell* is a grid point at one seed, so a
sweep of 2 norms × 5 batch sizes × 3 seeds has 10 grid points and 30 cells (30 runs). Seeds
are ``base.seed + k`` for k in 0..seeds-1, so a sweep is reproducible from its request.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from normcore.config import RunConfig

# What a sweep can summarise, each read from a run's frames (see metric_value).
METRICS = {
    "eval_acc": "final held-out accuracy",
    "eval_loss": "final held-out loss",
    "loss": "final training loss (mean of the last 10 probed steps)",
    "sat_last": "final saturated fraction of the last hidden layer",
    "drift_mean": "mean Wasserstein-1 drift to the previous probe, over layers and steps",
}
MAX_SEEDS = 100

# Built-in sweeps (the catalog serves them; `normscope sweep --preset ID`).
SWEEP_PRESETS: dict[str, dict[str, Any]] = {
    "wu-he": {
        "title": "Wu & He's batch-size table: BN, GN, LN, RMS, none × batch size",
        "description": "Wu & He (2018) found Group Norm's error flat from 32 to 2 images per "
        "batch while BN's grows. Here: the ConvNet on Fashion-MNIST, 400 steps at every batch "
        "size (small batches see less data: compare norms within a column) and one learning "
        "rate for every norm, final held-out accuracy over 2 seeds. At this short budget BN "
        "leads at every batch size: a sweep to start from, not the claim's test (that is C4 "
        "in the claims lab, each arm's rate tuned, equal samples per batch size).",
        "base": {
            "model": "convnet",
            "dataset": "fashion",
            "depth": 2,
            "width": 16,
            "activation": "relu",
            "optimizer": "momentum",
            "lr": 0.02,
            "steps": 400,
            "eval_every": 400,
            "probe_every": 10,
        },
        "grid": {
            "norm": ["batch", "group", "layer", "rms", "none"],
            "batch_size": [2, 4, 8, 16, 32, 64],
        },
        "seeds": 2,
        "metric": "eval_acc",
    },
    "depth-norm": {
        "title": "Depth × norm: how deep can a sigmoid MLP go with each norm?",
        "description": "A sigmoid MLP of width 100 on digits at depths 2 to 16, without a norm "
        "and with BN, LN and WN: final held-out accuracy over 2 seeds.",
        "base": {
            "model": "mlp",
            "dataset": "digits",
            "width": 100,
            "activation": "sigmoid",
            "lr": 0.1,
            "steps": 600,
            "eval_every": 600,
            "probe_every": 10,
        },
        "grid": {"depth": [2, 4, 8, 16], "norm": ["none", "batch", "layer", "weight"]},
        "seeds": 2,
        "metric": "eval_acc",
    },
}


def parse_value(text: str) -> Any:
    """A command-line value: JSON where it parses (2, 0.1, true, null), else the text."""
    try:
        return json.loads(text)
    except ValueError:
        return text


@dataclass(frozen=True)
class Cell:
    """One run of a sweep: grid point `point` (index into the grid's product) at `seed`."""

    point: int
    values: dict[str, Any]
    seed: int
    config: dict[str, Any]


@dataclass(frozen=True)
class Invalid:
    """A grid point whose config does not validate: which point, which field, and why."""

    point: int
    values: dict[str, Any]
    field: str
    message: str

    def describe(self) -> str:
        vals = ", ".join(f"{k}={v!r}" for k, v in self.values.items())
        return f"cell {self.point} ({vals}): {self.field}: {self.message}"


@dataclass
class Expansion:
    cells: list[Cell] = field(default_factory=list)
    invalid: list[Invalid] = field(default_factory=list)


def grid_points(grid: dict[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """The product of the grid's values, the first field varying slowest."""
    names = list(grid)
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*grid.values())]


def check_grid(grid: dict[str, Sequence[Any]], seeds: int, max_cells: int) -> None:
    """Reject a grid that cannot describe a sweep, naming the field (ValueError)."""
    known = RunConfig.model_fields
    if not grid:
        raise ValueError("grid is empty; give at least one field with a list of values")
    for name, values in grid.items():
        if name not in known:
            raise ValueError(f"grid field {name!r} is unknown; known: {', '.join(known)}")
        if name == "seed":
            raise ValueError("grid field 'seed': give the number of seeds as `seeds` instead")
        if not isinstance(values, list | tuple) or not values:
            raise ValueError(f"grid field {name!r} needs a non-empty list of values")
    if not 1 <= seeds <= MAX_SEEDS:
        raise ValueError(f"seeds {seeds} is out of range 1..{MAX_SEEDS}")
    cells = math.prod(len(v) for v in grid.values()) * seeds
    if cells > max_cells:
        raise ValueError(
            f"the sweep has {cells} cells (grid points × seeds), above the limit of "
            f"{max_cells} (NORMSCOPE_MAX_SWEEP_CELLS)"
        )


def expand(base: dict[str, Any], grid: dict[str, Sequence[Any]], seeds: int) -> Expansion:
    """Every cell of the sweep as a validated config, and every grid point that is invalid."""
    out = Expansion()
    seed0 = int(base.get("seed", 0) or 0)
    for point, values in enumerate(grid_points(grid)):
        try:
            config = RunConfig.model_validate({**base, **values}).model_dump()
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(part) for part in error["loc"]) or "config"
            message = str(error["msg"]).removeprefix("Value error, ")
            out.invalid.append(Invalid(point, values, where, message))
            continue
        for k in range(seeds):
            seed = seed0 + k
            out.cells.append(Cell(point, values, seed, {**config, "seed": seed}))
    return out


@dataclass
class RunSeries:
    """What the metrics read off a finished run, in frame order, None where a frame has no
    value (a NaN is a value: a diverged number): ``evals`` the held-out "acc" and "loss" of
    the frames that evaluated, ``loss`` every frame's training loss, ``sat_last`` the last
    layer's saturation of the frames with layers, ``w1_prev`` (frames, layers) the drift to
    the previous probe. Built from frames (``from_frames``) or from a store's columns
    (app/services/sweeps.py), read by one rule (``metric_of``)."""

    evals: dict[str, list[float | None]]
    loss: list[float | None]
    sat_last: list[float | None]
    w1_prev: list[list[float | None]]

    @classmethod
    def from_frames(cls, frames: Iterable[dict[str, Any]]) -> RunSeries:
        frames = list(frames)
        evals = [f["eval"] for f in frames if f.get("eval")]
        layered = [f["layers"] for f in frames if f.get("layers")]
        return cls(
            evals={k: [_num(e.get(k)) for e in evals] for k in ("acc", "loss")},
            loss=[_num(f.get("loss")) for f in frames],
            sat_last=[_num(layers[-1].get("sat")) for layers in layered],
            w1_prev=[[_num(la.get("w1_prev")) for la in f.get("layers") or []] for f in frames],
        )


def metric_value(metric: str, frames: Iterable[dict[str, Any]]) -> float | None:
    """The metric of one finished run from its frames (in seq order); None when the run has
    nothing to say (no evaluation, diverged layers)."""
    return metric_of(metric, RunSeries.from_frames(frames))


def metric_of(metric: str, series: RunSeries) -> float | None:
    """The metric of one finished run from its series (``RunSeries``)."""
    if metric not in METRICS:
        raise ValueError(f"metric {metric!r} is unknown; known: {', '.join(METRICS)}")
    if metric in ("eval_acc", "eval_loss"):
        evals = _present(series.evals[metric.removeprefix("eval_")])
        return _finite(evals[-1]) if evals else None
    if metric == "loss":
        losses = _present(series.loss)[-10:]
        return _finite(sum(losses) / len(losses)) if losses else None
    if metric == "sat_last":
        sats = _present(series.sat_last)
        return _finite(sats[-1]) if sats else None
    drifts = _present(v for row in series.w1_prev for v in row)  # frame by frame, as stored
    return _finite(sum(drifts) / len(drifts)) if drifts else None


def _num(value: Any) -> float | None:
    return None if value is None else float(value)


def _present(values: Iterable[float | None]) -> list[float]:
    return [v for v in values if v is not None]


def _finite(value: float) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (ddof 1; None for one value: no spread measured)."""
    if not values:
        return None, None
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, None
    var = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
    return mean, math.sqrt(var)


def summarize(
    points: list[dict[str, Any]], per_seed: dict[int, list[float | None]]
) -> list[dict[str, Any]]:
    """One row per grid point: its values, the per-seed metric (None: no value yet or none
    measurable) and mean ± std over the seeds that have one."""
    rows = []
    for point, values in enumerate(points):
        seeds = per_seed.get(point, [])
        measured = [v for v in seeds if v is not None]
        mean, std = mean_std(measured)
        rows.append(
            {
                "point": point,
                "values": values,
                "per_seed": seeds,
                "n": len(measured),
                "mean": mean,
                "std": std,
            }
        )
    return rows
