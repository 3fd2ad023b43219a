"""The CPU thread policy: how many intra-op threads a run gets, so runs never oversubscribe.

A run's torch threads spin on their cores; more threads than free cores do not add work, they
take turns, and a small step then waits on the slowest one: on the 2-core machine of issue 13
a bare loop of a 3×64 LN net fell from 198 to 1.5 steps/s with 2 threads while another
process held a core. A second thread only pays when each thread has enough arithmetic to
outweigh waking and joining it, so the policy is:

    threads = min(the run's share of the cores, FLOPs per step / MIN_FLOPS_PER_THREAD, 1..)

A run's share is the cores over the runs that share them (this one included), never less
than one. Small runs (the dashboard's default 3×100 net: 10 MFLOP a step) get one thread and
one core each, so as many run side by side as there are cores. Pure functions: the executor
counts the cores and the runs and calls them; tests call them at the edges.
"""

from __future__ import annotations

import os

# Below this many FLOPs per thread and step a second thread did not pay on the machine it was
# measured on (bench/thread_crossover.py; README "Runs on a CPU" has the table and the load).
# The 3×100 net on 100 inputs (11 MFLOP) measured 0.97× with 2 threads as the bench began
# (load 0.3 on 2 cores); every larger size, up to 8×2048 (52 GFLOP), measured slower with 2
# threads as the shared machine's load rose to 10. The bar is set where a thread gets ~100 ms
# of work a step: a large model may split, nothing the dashboard offers by default does.
MIN_FLOPS_PER_THREAD = 5e9


def available_cores() -> int:
    """The cores this process may run on (a container's or taskset's limit, not the host's)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def run_cores(cores: int) -> int:
    """The cores runs get by default: all of them up to 2, else all but one, which is left to
    the server, the recorder's writes and a browser on the same machine. On 2 cores two small
    runs side by side are what a Compare needs, and the server's share per frame is small."""
    if cores < 1:
        raise ValueError(f"cores must be at least 1, got {cores}")
    return cores if cores <= 2 else cores - 1


def intra_op_threads(
    flops_per_step: float,
    *,
    cores: int,
    runs: int = 1,
    min_flops_per_thread: float = MIN_FLOPS_PER_THREAD,
) -> int:
    """Threads for one run of ``flops_per_step`` among ``runs`` runs sharing ``cores``.

    Always at least 1 (a run always runs), never more than its share of the cores, and more
    than 1 only when every thread gets ``min_flops_per_thread`` of the step."""
    if cores < 1:
        raise ValueError(f"cores must be at least 1, got {cores}")
    if runs < 1:
        raise ValueError(f"runs must be at least 1 (this run), got {runs}")
    if not flops_per_step >= 0:  # also NaN
        raise ValueError(f"flops_per_step must be >= 0, got {flops_per_step}")
    share = max(1, cores // runs)
    by_work = max(1, int(flops_per_step // min_flops_per_thread))
    return min(share, by_work)
