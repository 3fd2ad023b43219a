"""Runs of a model of one's own: create one, send its frames (app/services/watched.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, status

from app.api.params import RunId
from app.deps import HubDep, StoreDep
from app.schemas import FrameIn, Run, WatchedRunIn
from app.services import watched

router = APIRouter(prefix="/runs", tags=["watched runs"])


@router.post("/watched", status_code=status.HTTP_201_CREATED)
def create_watched_run(spec: WatchedRunIn, store: StoreDep) -> Run:
    """A run that the client trains (normcore.watch.Watch); it starts running."""
    return Run.model_validate(watched.create_watched_run(store, spec))


@router.post("/{run_id}/frames")
def append_frames(
    run_id: RunId,
    frames: Annotated[list[FrameIn], Body(min_length=1, max_length=10_000)],
    store: StoreDep,
    hub: HubDep,
) -> Run:
    """Frames of a watched run, in seq order from the stored ones on (a resent frame is
    skipped); a last frame that says completed or diverged ends the run."""
    return Run.model_validate(watched.append_frames(store, hub, run_id, frames))
