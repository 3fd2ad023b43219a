"""Sweep scheduling: what NormScope adds on top of the runs a sweep is made of.

Two measurements against a real server (uvicorn + local worker processes, a temporary data
dir), side by side with the same runs trained bare in this process:

1. Scheduling overhead: a sweep of N cells of 1-step runs, POST to `completed`. Overhead per
   cell = (sweep wall time - bare time of the N runs / slots) / N, where a bare run is
   `normcore.train.run(config)` drained in this process (model, data and probe set-up
   included, as a worker pays them). Target (issue 14): < 50 ms per cell.
2. Throughput on 2 cores: a 2×2×2 sweep (norm × batch size × 2 seeds) of 500-step runs with
   2 slots of one thread each, against (sum of the bare single-run times) / 2, in rounds
   (single runs, then the sweep), the median round printed with every round's ratio.
   Target: within 1.3×.

The machine's load (os.getloadavg) is printed with the numbers: on a shared box they move.

    python bench/sweep_overhead.py --cells 100 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.utils.server import LiveServer  # noqa: E402  (a real uvicorn, as the tests use)

SMALL = {"depth": 3, "width": 100, "dataset": "digits", "batch_size": 60}


def bare_seconds(configs: list[dict]) -> list[float]:
    """Each config trained in this process with one thread, model and data set-up included,
    after a warm-up run (as a warm worker has done)."""
    import torch

    from normcore.config import RunConfig
    from normcore.train import run

    torch.set_num_threads(1)
    for _ in run(RunConfig.model_validate({**configs[0], "steps": 2})):  # imports, kernels, data
        pass
    times = []
    for config in configs:
        start = time.perf_counter()
        for _ in run(RunConfig.model_validate(config)):
            pass
        times.append(time.perf_counter() - start)
    return times


def sweep_seconds(live: LiveServer, body: dict, timeout: float = 3600) -> tuple[float, dict]:
    """POST the sweep, follow its event stream (as the dashboard does) until its `sweep`
    event: the wall time and the ended sweep."""
    with live.client() as client:
        start = time.perf_counter()
        sweep = client.post("/api/sweeps", json=body).json()
        url = f"/api/sweeps/{sweep['id']}/events"
        with client.stream("GET", url, timeout=timeout) as events:
            event = None
            for line in events.iter_lines():
                if line.startswith("event:"):
                    event = line.split(":", 1)[1].strip()
                elif line.startswith("data:") and event == "sweep":
                    return time.perf_counter() - start, json.loads(line.split(":", 1)[1])
        raise AssertionError("the sweep's event stream ended without a `sweep` event")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cells", type=int, default=100, help="cells of the 1-step sweep")
    parser.add_argument("--steps", type=int, default=500, help="steps of the 2×2×2 sweep's runs")
    parser.add_argument("--slots", type=int, default=2)
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds of (single runs, 2×2×2 sweep); median"
    )
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    env = {
        "NORMSCOPE_MAX_JOBS": str(args.slots),
        "NORMSCOPE_WORKER_THREADS": "1",
        "NORMSCOPE_WARM_WORKERS": str(args.slots),
        "NORMSCOPE_MAX_STEPS": "100000",
    }
    result: dict = {"load_before": os.getloadavg(), "slots": args.slots}
    with tempfile.TemporaryDirectory() as tmp:
        live = LiveServer(Path(tmp) / "data", env).start()
        try:
            one = {**SMALL, "steps": 1, "eval_every": 1}
            bare = bare_seconds([{**one, "seed": s} for s in range(min(args.cells, 20))])
            bare_mean = sum(bare) / len(bare)
            body = {"base": one, "grid": {"norm": ["none"]}, "seeds": args.cells}
            wall, sweep = sweep_seconds(live, body)
            assert sweep["status"] == "completed", sweep["status"]
            per_cell = (wall - bare_mean * args.cells / args.slots) / args.cells
            result["scheduling"] = {
                "cells": args.cells,
                "wall_s": wall,
                "bare_run_s": bare_mean,
                "overhead_ms_per_cell": 1e3 * per_cell,
            }

            base = {**SMALL, "steps": args.steps, "eval_every": args.steps}
            grid = {"norm": ["none", "batch"], "batch_size": [30, 60]}
            configs = [
                {**base, "norm": n, "batch_size": b, "seed": s}
                for n in grid["norm"]
                for b in grid["batch_size"]
                for s in (0, 1)
            ]
            rounds = []  # the single runs, then the sweep, in each round: a neighbour's load
            for _ in range(args.rounds):  # moves both of a round alike
                singles = sum(bare_seconds(configs))
                wall2, sweep2 = sweep_seconds(live, {"base": base, "grid": grid, "seeds": 2})
                assert sweep2["status"] == "completed", sweep2["status"]
                rounds.append((wall2, singles, wall2 / (singles / args.slots)))
            wall2, singles, ratio = sorted(rounds, key=lambda r: r[2])[len(rounds) // 2]
            result["throughput"] = {
                "cells": len(configs),
                "wall_s": wall2,
                "single_runs_s": singles,
                "ideal_s": singles / args.slots,
                "ratio": ratio,
                "rounds": [r[2] for r in rounds],
            }
        finally:
            live.stop()
    result["load_after"] = os.getloadavg()
    s, t = result["scheduling"], result["throughput"]
    print(f"load {result['load_before'][0]:.2f} -> {result['load_after'][0]:.2f} (1-min avg)")
    print(
        f"{s['cells']} cells of 1-step runs: {s['wall_s']:.2f} s; "
        f"bare run {1e3 * s['bare_run_s']:.1f} ms; "
        f"NormScope overhead {s['overhead_ms_per_cell']:.1f} ms per cell (target < 50)"
    )
    print(
        f"2×2×2 sweep of {args.steps}-step runs: {t['wall_s']:.2f} s vs single runs "
        f"{t['single_runs_s']:.2f} s / {args.slots} = {t['ideal_s']:.2f} s: "
        f"{t['ratio']:.2f}× (target ≤ 1.3×), the median of {len(t['rounds'])} rounds: "
        + ", ".join(f"{r:.2f}×" for r in t["rounds"])
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
