"""Running a claim's arms in parallel processes, one torch thread each.

A claim sweep is many small independent runs (arms × regimes × learning rates × seeds); these
nets are too small for two threads to speed one run up, so the cores are better spent on
runs side by side. ``ParallelRunner`` is a LocalRunner (same cache, same cancel) whose ``map``
trains a list of configs in a process pool of ``workers`` (spawned: no forked torch or numba
thread pools), each process with one torch thread. ``run_experiment`` uses ``map`` when a
runner has one.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from normcore.claims.base import ArmRun, Cancelled, LocalRunner, StopFlag
from normcore.config import RunConfig


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


def _train(config_json: str) -> list[dict]:
    from normcore.train import run

    return list(run(RunConfig.model_validate_json(config_json)))


def default_workers() -> int:
    """The cores this process may use (affinity, not the machine's count), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


class ParallelRunner(LocalRunner):
    """LocalRunner plus ``map``: many arms at once in ``workers`` processes. The processes
    live as long as the runner (``close``, or ``with``): each spawned one imports torch and
    the trainer (~2 s of CPU), which a pool per ``map`` paid again for every claim and every
    sweep of a claim (a quick run of every claim makes dozens)."""

    def __init__(self, should_stop: StopFlag | None = None, workers: int | None = None) -> None:
        super().__init__(should_stop, threads=1)
        self.workers = workers or default_workers()
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> ParallelRunner:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """End the worker processes (a later ``map`` starts new ones)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def map(self, jobs: Sequence[tuple[str, RunConfig]]) -> list[ArmRun]:
        todo = {}
        for _, config in jobs:
            k = config.model_dump_json()
            if k not in self._cache:
                todo[k] = config
        if len(todo) <= 1 or self.workers == 1:
            return [self(arm, config) for arm, config in jobs]
        if self._pool is None:
            context = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(self.workers, context, initializer=_one_thread)
        futures = {k: self._pool.submit(_train, k) for k in todo}
        try:
            for k, future in futures.items():
                if self.should_stop and self.should_stop():
                    raise Cancelled("claim sweep was cancelled")
                frames = future.result()
                status = frames[-1].get("status", "completed") if frames else "failed"
                self._cache[k] = ArmRun(frames, None, status)
        except BrokenProcessPool:
            self.close()  # a worker died: the next map starts a fresh pool
            raise
        except BaseException:
            for f in futures.values():
                f.cancel()  # (the ones not started; running ones end before the pool does)
            raise
        return [self._cache[config.model_dump_json()] for _, config in jobs]
