"""What a claim costs to run, estimated from its configs before anything runs (issue 15).

The issue's target: ``normscope claims --full`` under 60 minutes on 2 cores with parallel
runs. ``full_cost()`` estimates every claim's CPU seconds from the RunConfigs its
``configs(False)`` lays out, so a claim whose sweep grows (more regimes, seeds, steps) shows it
here and in tests/normcore/test_claims_budget.py before anyone waits an hour for it.

One run's CPU seconds on one torch thread (``run_seconds``):

    RUN_S                                        build the model, hand the run to a worker
  + steps x (STEP_S[model] + flops_per_step x (batch + WEIGHT_BATCH) / batch / FLOP_RATE)
  + probes x depth x width x PROBE_UNIT_S                      the per-layer probes
  + evaluations x eval samples x forward FLOPs / FLOP_RATE    validation and test passes

flops_per_step is normcore.cost's count of the weight layers (forward + backward). Small nets
are dominated by the per-step overhead (Python, autograd, the norm's kernels), not by the
matmuls, hence STEP_S; an RNN's step runs its cell once per time step, hence its larger one.
A small batch's matmul is also slower per FLOP than a large one's (the weights are read for
few samples): WEIGHT_BATCH charges every step as if it carried that many more samples, which
fits C2's net at batch 10 (2.7 ms) and batch 60 (5.2 ms) with one FLOP_RATE.
The constants were fitted to CPU time (``time.process_time``, which a loaded machine inflates
far less than wall time) of full-mode configs on one thread on the shared 2-core machine (AMD
EPYC), 2026-12-06, load average 11-12 from other engineers' work; bench/claims_cost.py
re-measures them and prints the estimate's ratio to the measurement. Reference points (ms of
CPU per step, steps-long runs): C4's BN MLP 3x64 at batch 2, 1.16 ms over 4800 steps and at
batch 32, 1.14 ms over 1000; C7's 3x32 MLP, 0.87 ms over 2000; C2's 4x300 sigmoid MLP on
Fashion-MNIST at batch 10, 2.70 ms without probes and 3.34 ms probing every 100 steps; C5's
Elman RNN (64 units, 20 time steps) at batch 32, 4.24 ms and at batch 2, ~3.1 ms; C2's net at
batch 60, 5.2 ms probing every 100 steps. Where the
terms disagreed the larger was kept: the estimate errs long.

Claims that share a config (C4 and C6's BN runs, C1/C2/ICS's) run it once in one
``normscope claims`` (its runner caches by config), so each claim is charged only for the runs
no earlier claim of ``CLAIMS`` made. ``DIRECT_S``: claims' measurements outside the runs
(C6's batch dependence, C7's bound, C8's gradient law, C9's layers and sweep overhead),
measured once each at the same load (full mode, CPU time) and rounded up; quick mode is
charged the same.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from normcore.config import RunConfig
from normcore.cost import flops_per_step

CORES = 2  # the machine
FULL_LIMIT_S = 60 * 60  # the target for `normscope claims --full` on CORES cores
FULL_BUDGET_S = 50 * 60  # what the full configs may add up to: 10 minutes kept for the error

RUN_S = 0.1  # per run: model build, cached data set, the worker hand-off
STEP_S = {"mlp": 1.15e-3, "convnet": 1.5e-3, "rnn": 3.8e-3}  # per step, besides the FLOPs
FLOP_RATE = 78e9  # FLOP/s of the matmuls on one thread, fitted on C2's 4x300 net
WEIGHT_BATCH = 30  # a step costs as if its batch were this much larger (weight traffic)
PROBE_UNIT_S = 53e-6  # per probe, per hidden unit of each probed layer (C2: 16 ms per layer)
# samples one evaluation passes forward (the held-out split, plus a 10 % validation split)
EVAL_SAMPLES = {"digits": 520, "fashion": 16_000, "sequence": 1_200}
EVAL_SAMPLES_DEFAULT = 1_000
# Each claim's share of FULL_BUDGET_S, minutes on CORES cores: what its full sweep may cost.
# C1, FIG1, C3 and C5 share the 18.5 minutes the others leave (C6 and C8 gave 0.25 each of
# their slack; C8's lr sweep then took 0.45 from C2's, ICS's and C5's slack); their protocol
# sweeps estimated 23.5, 7.5, 10.8 and 132 minutes at 3000 steps on 2026-12-06, sized down
# in docs/claims.md, "Full mode's budget". C1 pays for Figure 1's net first (those runs are
# FIG1's and C3's too).
SHARE_MIN = {
    "C1": 3.9,  # 4 regimes x 2 arms x 7 rates x 5 seeds of Figure 1's net, 500 steps
    "C2": 7.4,  # 25 runs of Glorot & Bengio's 4x300 net, 10 000 steps each
    "FIG1": 1.75,  # its default-init and batch-10 cells (the rest are C1's runs)
    "ICS": 4.75,
    "C3": 2.25,  # 4 regimes x 2 arms (one arm is FIG1's), 500 steps
    "C4": 8.0,  # 6 batch sizes x 3 arms x 7 rates x 5 seeds, 6400 samples each
    "C5": 10.5,  # 5 regimes x 4 arms x 7 rates x 5 seeds, Elman RNN 1x64, 400 steps
    "C6": 2.5,  # WN's runs; the BN runs are C4's
    "C7": 5.75,
    "C8": 1.2,  # 2 regimes x 2 arms x 7 rates x 5 seeds, C4's net, 650 steps
    "C9": 2.0,
}
# measurements a claim makes outside its runs, full mode, CPU seconds (rounded up)
DIRECT_S = {"C6": 1.0, "C7": 2.0, "C8": 2.0, "C9": 5.0}  # measured 0.3, 1.4, 0.1, 1.9 s


def run_seconds(cfg: RunConfig) -> float:
    """Estimated CPU seconds of one run of ``cfg`` on one torch thread."""
    flops = flops_per_step(cfg)
    weights = (cfg.batch_size + WEIGHT_BATCH) / cfg.batch_size
    per_step = STEP_S.get(cfg.model, STEP_S["mlp"]) + flops * weights / FLOP_RATE
    probes = cfg.steps // cfg.probe_every + 1
    probe_s = probes * cfg.depth * cfg.width * PROBE_UNIT_S
    evals = math.ceil(cfg.steps / cfg.eval_every) + 1
    forward_per_sample = flops / 3.0 / cfg.batch_size  # flops_per_step counts fwd + bwd x batch
    samples = EVAL_SAMPLES.get(cfg.dataset, EVAL_SAMPLES_DEFAULT)
    eval_s = evals * samples * forward_per_sample / FLOP_RATE
    return RUN_S + cfg.steps * per_step + probe_s + eval_s


def sweep_cost(
    configs: Iterable[RunConfig], seen: set[str] | None = None
) -> dict[str, float | int]:
    """{runs, new_runs, steps, cpu_s} of a set of runs; ``seen`` (config JSON) holds the runs
    already paid for by earlier claims, and grows by these."""
    seen = set() if seen is None else seen
    runs = new = steps = 0
    cpu = 0.0
    for cfg in configs:
        runs += 1
        k = cfg.model_dump_json()
        if k in seen:
            continue
        seen.add(k)
        new += 1
        steps += cfg.steps
        cpu += run_seconds(cfg)
    return {"runs": runs, "new_runs": new, "steps": steps, "cpu_s": cpu}


def full_cost(quick: bool = False, claims: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Every claim's estimated cost in ``normscope claims`` order, sharing runs as its runner
    does: {claims: {id: {runs, new_runs, steps, cpu_s, wall_s}}, cpu_s, wall_s, cores,
    budget_s, limit_s}; wall_s is cpu_s over CORES (``ParallelRunner`` keeps both busy)."""
    if claims is None:
        from normcore.claims import CLAIMS

        claims = CLAIMS
    seen: set[str] = set()
    rows: dict[str, dict[str, float | int]] = {}
    for cid, exp in claims.items():
        row = sweep_cost(exp.configs(quick).values(), seen)
        row["cpu_s"] = float(row["cpu_s"]) + DIRECT_S.get(cid, 0.0)
        row["wall_s"] = row["cpu_s"] / CORES
        rows[cid] = row
    cpu = sum(float(r["cpu_s"]) for r in rows.values())
    return {
        "claims": rows,
        "cpu_s": cpu,
        "wall_s": cpu / CORES,
        "cores": CORES,
        "budget_s": FULL_BUDGET_S,
        "limit_s": FULL_LIMIT_S,
    }


def cost_table(cost: Mapping[str, Any]) -> str:
    """The estimate as lines: one per claim, then the total against the budget."""
    lines = [f"{'claim':6s} {'runs':>6s} {'new':>6s} {'steps':>10s} {'min on %d cores':>16s}"]
    lines[0] = lines[0] % cost["cores"]
    for cid, r in cost["claims"].items():
        lines.append(
            f"{cid:6s} {r['runs']:6d} {r['new_runs']:6d} {r['steps']:10d} {r['wall_s'] / 60:16.1f}"
        )
    lines.append(
        f"total: {cost['wall_s'] / 60:.1f} min on {cost['cores']} cores (estimate; budget "
        f"{cost['budget_s'] / 60:.0f}, target {cost['limit_s'] / 60:.0f})"
    )
    return "\n".join(lines)
