"""The shape of a claim experiment and the one function that runs any of them.

An experiment is (a) `configs(quick)`: named RunConfigs, its arms; (b) `measure(frames,
quick)`: the arms' frames -> (numbers, plots), which may add direct measurements of layers
(invariance, batch dependence) that need no training; (c) `verdict(numbers)`: pure, see
checks.py. `run_claim` wires them to a runner: by default `normcore.train.run` in this process;
the service passes one that records every arm as a stored run, so a result links to its runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from normcore.claims.checks import Numbers
from normcore.claims.measures import Plot
from normcore.config import RunConfig
from normcore.frames import Frame, clean

Arms = dict[str, RunConfig]
Measure = Callable[[dict[str, list[Frame]], bool], tuple[Numbers, list[Plot]]]


@dataclass(frozen=True)
class Experiment:
    """One claim of the seed as something that can be run and judged."""

    id: str
    title: str
    claim: str  # the seed's words
    experiment: str  # what is run and measured, in a sentence or two
    configs: Callable[[bool], Arms]
    measure: Measure
    verdict: Callable[[Numbers], dict[str, Any]]

    def describe(self, quick: bool = True) -> dict[str, Any]:
        """JSON-ready description without running anything."""
        return {
            "id": self.id,
            "title": self.title,
            "claim": self.claim,
            "experiment": self.experiment,
            "arms": {k: c.model_dump() for k, c in self.configs(quick).items()},
        }


@dataclass
class ArmRun:
    """What a runner hands back for one arm."""

    frames: list[Frame]
    run_id: str | None = None  # the stored run, when a service ran it
    status: str = "completed"  # the final frame's status, or the service's


def arm_config(quick: bool, **kw: Any) -> RunConfig:
    """An arm on digits with a sigmoid MLP unless `kw` says otherwise.

    Quick arms are tiny and pinned to the CPU (faster than a GPU at these sizes, and the same
    numbers on every machine); full arms use any device.
    """
    fixed: dict[str, Any] = dict(
        model="mlp",
        activation="sigmoid",
        dataset="digits",
        batch_size=60,
        optimizer="sgd",
        seed=0,
        device="cpu" if quick else "auto",
        hist_bins=32 if quick else 64,
    )
    return RunConfig(**{**fixed, **kw})


def variant(config: RunConfig, **changes: Any) -> RunConfig:
    """A copy of `config` with `changes`, validated again (model_copy would skip the checks)."""
    return RunConfig.model_validate({**config.model_dump(), **changes})


class Cancelled(RuntimeError):
    """The caller asked to stop; no verdict is produced from a partial experiment."""


Runner = Callable[[str, RunConfig], ArmRun]
StopFlag = Callable[[], bool]


class LocalRunner:
    """Runs arms in this process with normcore.train.run.

    Identical configs are run once per runner (C1, C2 and ICS share their runs, as do C4, C6
    and C7), which is safe because a run is a pure function of its RunConfig (seeded).
    `threads` caps torch's CPU threads while an arm runs: these nets are so small that one
    thread is faster than two fighting over a shared machine, and the numbers do not depend
    on the machine's core count. None leaves torch's setting alone.
    """

    def __init__(self, should_stop: StopFlag | None = None, threads: int | None = 1) -> None:
        self.should_stop = should_stop
        self.threads = threads
        self._cache: dict[str, ArmRun] = {}

    def __call__(self, arm: str, config: RunConfig) -> ArmRun:
        import torch

        from normcore.train import run  # heavy import, only when something is run

        key = config.model_dump_json()
        if key not in self._cache:
            saved = torch.get_num_threads()
            if self.threads:
                torch.set_num_threads(self.threads)
            try:
                frames = list(run(config, should_stop=self.should_stop))
            finally:
                torch.set_num_threads(saved)
            if self.should_stop and self.should_stop():
                raise Cancelled(f"claim run {arm!r} was cancelled")
            status = frames[-1].get("status", "completed") if frames else "failed"
            self._cache[key] = ArmRun(frames, None, status)
        return self._cache[key]


def run_experiment(exp: Experiment, *, quick: bool = True, runner: Runner | None = None):
    """Run every arm, measure, judge: the claim result as JSON-ready data.

    {id, title, claim, experiment, criterion, verdict, checks, numbers, regimes, series,
    run_configs, quick, duration_s}; regimes is None for claims not yet on the protocol.
    Raises Cancelled when the runner was told to stop.
    """
    runner = runner or LocalRunner()
    start = time.perf_counter()
    arms = exp.configs(quick)
    frames: dict[str, list[Frame]] = {}
    records = []
    many = getattr(runner, "map", None)  # a runner that trains many arms at once
    results = many(list(arms.items())) if many else [runner(a, c) for a, c in arms.items()]
    for (arm, config), result in zip(arms.items(), results, strict=True):
        frames[arm] = result.frames
        records.append(
            {
                "arm": arm,
                "label": config.label(),
                "config": config.model_dump(),
                "run_id": result.run_id,
                "status": result.status,
                "frames": len(result.frames),
            }
        )
    numbers, series = exp.measure(frames, quick)
    judged = exp.verdict(numbers)
    return clean(
        {
            "id": exp.id,
            "title": exp.title,
            "claim": exp.claim,
            "experiment": exp.experiment,
            "criterion": judged["criterion"],
            "verdict": judged["verdict"],
            "checks": judged["checks"],
            "numbers": judged["numbers"],
            "regimes": judged.get("regimes"),  # protocol claims: the regime map's cells
            "series": series,
            "run_configs": records,
            "quick": quick,
            "duration_s": round(time.perf_counter() - start, 2),
        }
    )
