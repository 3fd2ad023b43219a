"""The CPU thread policy at its edges (app/jobs/threads.py): pure functions, no processes."""

from __future__ import annotations

import math

import pytest

from app.jobs.threads import MIN_FLOPS_PER_THREAD, intra_op_threads, run_cores

DEFAULT_NET = 9.9e6  # FLOPs of a step of the dashboard's default 3×100 net on digits


def test_a_small_run_gets_one_thread_however_many_cores():
    for cores in (1, 2, 16, 256):
        assert intra_op_threads(DEFAULT_NET, cores=cores) == 1


def test_a_run_with_no_work_still_gets_one_thread():
    assert intra_op_threads(0.0, cores=8) == 1


def test_threads_grow_with_the_work_per_thread():
    bar = MIN_FLOPS_PER_THREAD
    assert intra_op_threads(bar * 2 - 1, cores=8) == 1
    assert intra_op_threads(bar * 2, cores=8) == 2
    assert intra_op_threads(bar * 5.5, cores=8) == 5


def test_a_big_run_never_gets_more_threads_than_its_share_of_the_cores():
    huge = MIN_FLOPS_PER_THREAD * 1000
    assert intra_op_threads(huge, cores=8) == 8
    assert intra_op_threads(huge, cores=8, runs=2) == 4
    assert intra_op_threads(huge, cores=8, runs=3) == 2  # 8 // 3: never round up
    assert intra_op_threads(huge, cores=2, runs=4) == 1  # more runs than cores: one each
    assert intra_op_threads(huge, cores=1) == 1


def test_the_bar_is_a_parameter():
    assert intra_op_threads(100.0, cores=4, min_flops_per_thread=25.0) == 4
    assert intra_op_threads(100.0, cores=4, min_flops_per_thread=50.0) == 2


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        (dict(flops_per_step=1.0, cores=0), "cores"),
        (dict(flops_per_step=1.0, cores=2, runs=0), "runs"),
        (dict(flops_per_step=-1.0, cores=2), "flops_per_step"),
        (dict(flops_per_step=math.nan, cores=2), "flops_per_step"),
    ],
)
def test_impossible_inputs_are_refused_by_name(kwargs, field):
    flops = kwargs.pop("flops_per_step")
    with pytest.raises(ValueError, match=field):
        intra_op_threads(flops, **kwargs)


def test_runs_get_every_core_up_to_two_and_leave_one_beyond():
    assert [run_cores(c) for c in (1, 2, 3, 4, 16)] == [1, 2, 2, 3, 15]
    with pytest.raises(ValueError, match="cores"):
        run_cores(0)
