"""Runs: create, list, read, cancel, delete. Frames and the live stream: api/frames.py."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status
from fastapi.concurrency import run_in_threadpool

from app.api.params import RunId
from app.deps import ExecutorDep, HubDep, SettingsDep, StoreDep
from app.schemas import Run, RunList, RunStatus
from app.services import reruns
from app.services import runs as service
from normcore.config import RunConfig

router = APIRouter(prefix="/runs", tags=["runs"])


@router.get("")
def read_runs(
    store: StoreDep,
    status: RunStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**62)] = 0,  # SQLite integers are 64-bit
) -> RunList:
    """List runs, newest first, optionally only those with one status."""
    runs, count = store.list_runs(status, limit, offset)
    return RunList(data=[Run.model_validate(r) for r in runs], count=count)


@router.post("", status_code=status.HTTP_201_CREATED)
def create_run(
    config: RunConfig, store: StoreDep, executor: ExecutorDep, settings: SettingsDep
) -> Run:
    """Start a run (or queue it behind the running ones)."""
    return Run.model_validate(service.create_run(store, executor, settings, config))


@router.get("/{run_id}")
def read_run(run_id: RunId, store: StoreDep) -> Run:
    """One run: status, progress, final metrics, and its layers' names."""
    return Run.model_validate(service.read_run(store, run_id))


@router.post("/{run_id}/cancel")
async def cancel_run(
    run_id: RunId, store: StoreDep, executor: ExecutorDep, settings: SettingsDep, hub: HubDep
) -> Run:
    """Stop a queued or running run; answers once it has ended."""
    wait_s = settings.cancel_grace_s + 1.0
    run = await run_in_threadpool(service.cancel_run, store, executor, run_id, wait_s, hub)
    return Run.model_validate(run)


@router.post("/{run_id}/rerun", status_code=status.HTTP_201_CREATED)
def rerun_run(run_id: RunId, store: StoreDep, executor: ExecutorDep, settings: SettingsDep) -> Run:
    """Start a new run with the config of an interrupted, failed or cancelled one."""
    return Run.model_validate(reruns.rerun(store, executor, settings, run_id))


@router.delete("/{run_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_run(
    run_id: RunId, store: StoreDep, executor: ExecutorDep, settings: SettingsDep
) -> None:
    """Delete a run and its frames (cancelling it first if it is active)."""
    service.delete_run(store, executor, run_id, settings.cancel_grace_s + 1.0)
