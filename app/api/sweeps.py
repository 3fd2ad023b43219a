"""Sweeps: a grid of runs over config fields × seeds; create, list, read, cancel, resume,
delete, their live progress (SSE) and the summary as CSV."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated

import anyio
from fastapi import APIRouter, Query, status
from fastapi.responses import PlainTextResponse, StreamingResponse
from fastapi.sse import format_sse_event

from app.api.params import SweepId
from app.deps import HubDep, SettingsDep, SweepsDep
from app.live import Hub
from app.schemas import Sweep, SweepIn, SweepList
from app.services.sweeps import SweepService

router = APIRouter(prefix="/sweeps", tags=["sweeps"])


@router.post("", status_code=status.HTTP_201_CREATED)
def create_sweep(body: SweepIn, sweeps: SweepsDep) -> Sweep:
    """Validate every cell, then start the sweep (cells run as the executor has room)."""
    return Sweep.model_validate(sweeps.create(body.model_dump()))


@router.get("")
def read_sweeps(
    sweeps: SweepsDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**62)] = 0,
) -> SweepList:
    """List sweeps, newest first, with their status and progress."""
    data, count = sweeps.list(limit, offset)
    return SweepList(data=[Sweep.model_validate(s) for s in data], count=count)


@router.get("/{sweep_id}")
def read_sweep(sweep_id: SweepId, sweeps: SweepsDep) -> Sweep:
    """One sweep: its cells (status, run id, metric) and mean ± std over seeds per point."""
    return Sweep.model_validate(sweeps.read(sweep_id))


@router.post("/{sweep_id}/cancel")
def cancel_sweep(sweep_id: SweepId, sweeps: SweepsDep) -> Sweep:
    """Stop a sweep: its queued cells never start, its running ones are cancelled."""
    return Sweep.model_validate(sweeps.cancel(sweep_id))


@router.post("/{sweep_id}/resume")
def resume_sweep(sweep_id: SweepId, sweeps: SweepsDep) -> Sweep:
    """Run again only the cells without a result (interrupted, cancelled, failed)."""
    return Sweep.model_validate(sweeps.resume(sweep_id))


@router.delete("/{sweep_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_sweep(sweep_id: SweepId, sweeps: SweepsDep) -> None:
    """Delete a sweep and all its runs (cancelling active ones first)."""
    sweeps.delete(sweep_id)


@router.get("/{sweep_id}/summary.csv", response_class=PlainTextResponse)
def export_sweep(sweep_id: SweepId, sweeps: SweepsDep) -> PlainTextResponse:
    """The summary as CSV: one row per grid point, mean ± std and the value of each seed."""
    text = sweeps.csv(sweep_id)
    headers = {"Content-Disposition": f'attachment; filename="sweep-{sweep_id}.csv"'}
    return PlainTextResponse(text, media_type="text/csv", headers=headers)


@router.get(
    "/{sweep_id}/events",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": "`cell` events as cells end, then one `sweep` event",
        }
    },
)
async def stream_sweep(sweep_id: SweepId, sweeps: SweepsDep, settings: SettingsDep, hub: HubDep):
    """Live progress: a `cell` event (SweepCell JSON) for every cell that has ended, then a
    `sweep` event (the Sweep) when the sweep has ended."""
    await anyio.to_thread.run_sync(sweeps.read, sweep_id)  # 404 before the stream starts
    return StreamingResponse(
        _events(sweeps, hub, sweep_id, settings.keepalive_s),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _events(
    sweeps: SweepService, hub: Hub, sweep_id: str, keepalive_s: float, poll_s: float = 1.0
) -> AsyncIterator[bytes]:
    """Reads the sweep when a cell has ended (the hub says so the moment its metric is
    stored), and every `poll_s` in case a change came from elsewhere (a cancel)."""
    sent: dict[tuple[int, int], str] = {}
    quiet = 0.0
    while True:
        changed = hub.sweeps_changed  # before the read: a change during it wakes the wait
        try:
            sweep = await anyio.to_thread.run_sync(sweeps.read, sweep_id)
        except Exception:  # deleted meanwhile: the stream ends
            return
        for cell in sweep["cells"]:
            key = (cell["point"], cell["seed"])
            if cell["ended"] and sent.get(key) != cell["run_id"]:
                sent[key] = cell["run_id"]
                quiet = 0.0
                yield format_sse_event(event="cell", data_str=json.dumps(cell))
        if sweep["status"] not in ("queued", "running"):
            yield format_sse_event(event="sweep", data_str=json.dumps(sweep))
            return
        start = time.monotonic()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(changed.wait(), poll_s)
        quiet += time.monotonic() - start
        if quiet >= keepalive_s:
            quiet = 0.0
            yield format_sse_event(comment="keep-alive")
