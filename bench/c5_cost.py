"""C5's RNN arms timed in this tree and in another one (``--against``), side by side.

Each C5 quick-mode arm below (BN shared over time, BN per time step, LN; batch 4 at the fixed
length and batch 32 with variable, masked lengths; lr 0.03, seed 0) trains its full 300 steps
in a fresh subprocess on one torch thread, once per tree, the two trees alternating round by
round so that a noisy neighbour slows both alike. Printed per arm: the median wall seconds of
each tree, their ratio, and the final held-out accuracies (eval mode and batch statistics) of
each tree: a faster tree must give the same numbers (up to float rounding). Report
``uptime`` with it. To compare with main, export it first:

    git archive main | tar -x -C /tmp/before
    python bench/c5_cost.py --against /tmp/before --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ARMS = [  # C5 quick-mode config names: regime|arm|lr|seed
    "batch 4|batch|0.03|0",
    "batch 4|batch_step|0.03|0",
    "batch 4|layer|0.03|0",
    "batch 32, variable length|batch|0.03|0",
    "batch 32, variable length|batch_step|0.03|0",
    "batch 32, variable length|layer|0.03|0",
]

# run in the tree under test: its own normcore, its own C5 configs
CHILD = """
import json, sys, time, torch
from normcore.claims.rnn_protocol import c5_arms
from normcore.train import run
torch.set_num_threads(1)
cfg = c5_arms(True)[sys.argv[1]]
list(run(cfg.model_copy(update={"steps": 5})))  # warm the data set's cache and the kernels
start = time.perf_counter()
frames = list(run(cfg))
ev = frames[-1]["eval"]
print(json.dumps({"s": time.perf_counter() - start, "acc": ev["acc"], "acc_b": ev["acc_batch"]}))
"""


def measure(tree: Path, arm: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, arm], env=env, cwd=tree, check=True, capture_output=True
    )
    return json.loads(out.stdout.decode().strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--against", type=Path, help="another tree (e.g. main, exported)")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    here = Path(__file__).resolve().parent.parent
    trees = {"this": here} | ({"against": args.against.resolve()} if args.against else {})
    print(f"load average {os.getloadavg()}, 1 torch thread, {args.repeat} rounds")
    head = " ".join(f"{t + ' s':>10s}" for t in trees)
    print(f"{'arm':44s} {head} {'ratio':>6s}  final acc (eval / batch stats) per tree")
    for arm in ARMS:
        seconds: dict[str, list[float]] = {t: [] for t in trees}
        acc: dict[str, str] = {}
        for r in range(args.repeat):
            order = list(trees) if r % 2 == 0 else list(trees)[::-1]
            for t in order:
                got = measure(trees[t], arm)
                seconds[t].append(got["s"])
                acc[t] = f"{got['acc']:.4f} / {got['acc_b']}"
        med = {t: statistics.median(s) for t, s in seconds.items()}
        cols = " ".join(f"{med[t]:10.2f}" for t in trees)
        ratio = med["against"] / med["this"] if "against" in med else 1.0
        print(f"{arm:44s} {cols} {ratio:6.2f}  " + " | ".join(acc.values()), flush=True)


if __name__ == "__main__":
    main()
