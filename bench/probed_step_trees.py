"""A probed step of the dashboard's default network, in two checkouts at once.

On a shared machine the host's speed drifts (this project's 2-core machine slowed by up to 2×
within minutes), so two trees timed one after the other compare the host's moods as much as
the code. Here both trees run *at the same time*, each pinned to a core of its own, and the
cores are swapped every round: a slowdown of the host hits both alike, and neither keeps the
better core.

Each tree's child times, on its own thread's CPU clock, blocks of `--block` steps of
  bare     forward, backward, SGD step of the default net (mlp 3×100 sigmoid, batch 60)
  probed   the same step with the probe on, as `normcore.train.run` takes it (arm, collect,
           after_step; a flush every 32 probed steps, its frame layers left to the server)
alternating, and reports the best and the median block of each. The parent prints both trees
per round and the medians over rounds of the best blocks: the probe's cost per step is
probed - bare.

    python bench/probed_step_trees.py --other /tmp/base     # this tree against another checkout
    python bench/probed_step_trees.py                       # this tree against itself (the noise)

Needs 2 cores (`os.sched_setaffinity`: Linux).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def child(blocks: int, block: int) -> None:
    """Time bare and probed steps of this process's tree; print them as JSON."""
    import torch
    import torch.nn.functional as F

    from normcore.config import RunConfig
    from normcore.data import load_dataset
    from normcore.frames import PROBE_ROWS
    from normcore.models import build_model
    from normcore.probe.probe import Probe

    torch.set_num_threads(1)
    torch.manual_seed(0)
    cfg = RunConfig()
    data = load_dataset(cfg.dataset)
    model = build_model(cfg, data.input_shape, data.n_classes)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr)
    probe = Probe(
        model.probe_points(),
        activation=cfg.activation,
        bins=cfg.hist_bins,
        rows=PROBE_ROWS,
        optimizer=opt,
        digits=5,
    )
    x, y = data.train_x[: cfg.batch_size].clone(), data.train_y[: cfg.batch_size].clone()

    def bare() -> None:
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def probed() -> None:
        if probe.full():
            probe.flush(later=True)
        probe.arm()
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        probe.collect(loss, logits, y)
        opt.step()
        probe.after_step(None)

    for _ in range(2 * PROBE_ROWS):  # the first probe, the kernels' first calls
        probed()
    times: dict[str, list[float]] = {"bare": [], "probed": []}
    for _ in range(blocks):
        for name, step in (("bare", bare), ("probed", probed)):
            start = time.thread_time()
            for _ in range(block):
                step()
            times[name].append((time.thread_time() - start) / block * 1e6)
    print(json.dumps({k: [min(v), statistics.median(v)] for k, v in times.items()}))


def run_pair(trees: list[Path], cores: list[int], blocks: int, block: int) -> list[dict]:
    """Both trees' children at once, tree i pinned to cores[i]."""
    procs = []
    for tree, core in zip(trees, cores, strict=True):
        env = {**os.environ, "PYTHONPATH": str(tree)}
        command = [sys.executable, __file__, "--child", str(blocks), str(block)]
        procs.append(
            subprocess.Popen(
                command,
                cwd=tree,
                env=env,
                stdout=subprocess.PIPE,
                text=True,
                preexec_fn=lambda core=core: os.sched_setaffinity(0, {core}),
            )
        )
    return [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--other", type=Path, default=ROOT, help="the checkout to compare")
    parser.add_argument("--rounds", type=int, default=6, help="an even number: cores swap")
    parser.add_argument("--blocks", type=int, default=16)
    parser.add_argument("--block", type=int, default=256, help="steps a timed block")
    parser.add_argument("--child", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(*args.child)
    cores = sorted(os.sched_getaffinity(0))[:2]
    if len(cores) < 2:
        raise SystemExit("needs 2 cores: both trees run at once, one on each")
    trees = {"this": ROOT, "other": args.other.resolve()}
    print(f"this: {ROOT}  other: {trees['other']}  load before: {os.getloadavg()}")
    best: dict[str, dict[str, list[float]]] = {t: {"bare": [], "probed": []} for t in trees}
    for r in range(args.rounds):
        order = cores if r % 2 == 0 else cores[::-1]
        results = run_pair(list(trees.values()), order, args.blocks, args.block)
        line = []
        for (name, result), core in zip(zip(trees, results, strict=True), order, strict=True):
            for kind in ("bare", "probed"):
                best[name][kind].append(result[kind][0])
            cost = result["probed"][0] - result["bare"][0]
            line.append(
                f"{name} (core {core}): bare {result['bare'][0]:.0f}, probed "
                f"{result['probed'][0]:.0f} (+{cost:.0f}) µs"
            )
        print(f"round {r + 1}: " + " | ".join(line), flush=True)
    print(
        f"\nmedians over {args.rounds} rounds of the best blocks, µs a step (load after: "
        f"{os.getloadavg()})"
    )
    costs = {}
    for name in trees:
        bare, probed = (statistics.median(best[name][k]) for k in ("bare", "probed"))
        rounds = zip(best[name]["probed"], best[name]["bare"], strict=True)
        costs[name] = statistics.median(p - b for p, b in rounds)
        print(
            f"  {name:<6} bare {bare:6.0f}  probed {probed:6.0f}  the probe +{costs[name]:.0f}"
            f" (the median round's probed - bare)"
        )
    print(f"  the probe's cost, this - other: {costs['this'] - costs['other']:+.0f} µs a step")


if __name__ == "__main__":
    main()
