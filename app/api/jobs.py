"""The executor's current work: running jobs (with worker pids), the queue, capacity."""

from __future__ import annotations

from fastapi import APIRouter

from app.deps import ExecutorDep
from app.schemas import JobList

router = APIRouter(prefix="/jobs", tags=["jobs"])


@router.get("")
def read_jobs(executor: ExecutorDep) -> JobList:
    """What runs now and what waits."""
    return JobList.model_validate(executor.snapshot())
