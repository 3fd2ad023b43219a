"""How close normcore.claims.budget's estimate is to a measurement, per claim's kind of run.

For one full-mode config of each kind the claims train (C4's BN MLP at batch 2 and 32, C2's
4x300 sigmoid net on Fashion-MNIST, ICS's net with its extra passes, C5's RNN, C7's MLP), the
run is shortened to ``--steps`` (probes and evaluations kept in proportion), trained once on
one torch thread, and its CPU time (``time.process_time``: a loaded machine inflates it far
less than wall time) is printed beside ``run_seconds``'s estimate and their ratio. A ratio
above 1 means the estimate errs long, as budget.py intends. Report ``uptime`` with it.

    python bench/claims_cost.py --steps 600
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from normcore.claims import CLAIMS
from normcore.claims.base import variant
from normcore.claims.budget import run_seconds
from normcore.config import RunConfig
from normcore.train import run

KINDS = [  # (claim, fields a config must have)
    ("C4", {"norm": "batch", "batch_size": 2}),
    ("C4", {"norm": "group", "batch_size": 32}),
    ("C2", {"batch_size": 10, "depth": 4}),
    ("C2", {"batch_size": 60}),
    ("ICS", {"norm": "batch", "depth": 8}),
    ("C5", {"batch_size": 32}),
    ("C7", {"norm": "cosine", "dataset": "digits", "width": 32}),
    ("C9", {"norm": "layer", "input_scale": 100.0}),
]


def pick(claim: str, fields: dict) -> RunConfig | None:
    for cfg in CLAIMS[claim].configs(False).values():
        if all(getattr(cfg, k) == v for k, v in fields.items()):
            return cfg
    return None


def shortened(cfg: RunConfig, steps: int) -> RunConfig:
    n = min(steps, cfg.steps)
    factor = n / cfg.steps
    return variant(
        cfg,
        steps=n,
        device="cpu",
        probe_every=max(1, round(cfg.probe_every * factor)),
        eval_every=max(1, round(cfg.eval_every * factor)),
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=600)
    args = ap.parse_args()
    torch.set_num_threads(1)
    print(f"load average {os.getloadavg()}, 1 torch thread, --steps {args.steps}")
    print(f"{'claim':5s} {'config':44s} {'measured s':>10s} {'estimate s':>10s} {'ratio':>6s}")
    for claim, fields in KINDS:
        cfg = pick(claim, fields)
        if cfg is None:  # another branch changed the claim's configs
            print(f"{claim:5s} no full config with {fields}")
            continue
        short = shortened(cfg, args.steps)
        list(run(variant(short, steps=5)))  # warm the data set's cache and torch's kernels
        start = time.process_time()
        list(run(short))
        measured = time.process_time() - start
        estimate = run_seconds(short)
        what = f"{cfg.model} {cfg.depth}x{cfg.width} {cfg.norm} b{cfg.batch_size} {cfg.dataset}"
        print(f"{claim:5s} {what:44s} {measured:10.2f} {estimate:10.2f} {estimate / measured:6.2f}")


if __name__ == "__main__":
    main()
