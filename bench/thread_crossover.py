"""Where a second intra-op thread starts to pay: a bare training step at 1 thread vs N threads.

For each network size (an MLP of `depth` × `width` on inputs of `width` features, batch
`batch`), both thread counts run in the same process, interleaved round by round (the order
alternates, so a noisy neighbour slows both alike); the median per-round ratio is reported
next to the step's FLOPs (`normcore.cost.flops_per_step`). The smallest size whose ratio
stays above 1.1 is where app/jobs/threads.py's MIN_FLOPS_PER_THREAD comes from.

    python bench/thread_crossover.py --threads 2
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
import torch.nn.functional as F

from normcore.config import RunConfig
from normcore.cost import flops_per_step
from normcore.models import build_model

SIZES = [  # (depth, width, batch)
    (3, 100, 60),  # the dashboard's default network
    (3, 256, 128),
    (4, 512, 128),
    (4, 512, 256),
    (8, 1024, 256),
    (8, 2048, 256),
]


def step_time(cfg: RunConfig, threads: int, steps: int) -> float:
    """Seconds per training step (forward, backward, SGD) with `threads` intra-op threads."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = build_model(cfg, (cfg.width,), 10)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, foreach=True)
    x = torch.randn(cfg.batch_size, cfg.width)
    y = torch.randint(0, 10, (cfg.batch_size,))
    for _ in range(3):  # warm-up: allocator, kernels
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()
    start = time.perf_counter()
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--budget-s", type=float, default=0.15, help="per variant and round")
    parser.add_argument("--sizes", type=int, default=len(SIZES), help="the first N sizes only")
    args = parser.parse_args()
    print(f"load: {os.getloadavg()}  cores: {os.cpu_count()}")
    print(
        f"{'depth×width batch':>18} {'MFLOP/step':>11} {'1 thr ms':>9} "
        f"{args.threads} thr ms {'speed-up':>9}"
    )
    for depth, width, batch in SIZES[: args.sizes]:
        cfg = RunConfig.model_validate(dict(depth=depth, width=width, batch_size=batch))
        # the bench's inputs have `width` features; count them so (dataset 'digits' has 64)
        flops = flops_per_step(cfg, input_size=width)
        probe = step_time(cfg, 1, 2)
        steps = max(2, int(args.budget_s / max(probe, 1e-6)))
        ones, manys, ratios = [], [], []
        for r in range(args.rounds):
            order = (1, args.threads) if r % 2 == 0 else (args.threads, 1)
            got = {t: step_time(cfg, t, steps) for t in order}
            ones.append(got[1])
            manys.append(got[args.threads])
            ratios.append(got[1] / got[args.threads])
        print(
            f"{depth:>6}×{width:<5} {batch:>5} {flops / 1e6:>11.2f} "
            f"{statistics.median(ones) * 1e3:>9.3f} {statistics.median(manys) * 1e3:>9.3f} "
            f"{statistics.median(ratios):>9.2f}"
        )
    print(f"load after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
