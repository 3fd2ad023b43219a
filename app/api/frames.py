"""A run's frames: downsampled pages, the live SSE stream, raw exports."""

from __future__ import annotations

from collections.abc import AsyncIterable, Iterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query
from fastapi.responses import Response, StreamingResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent

from app import service
from app.api.runs import RunId
from app.deps import HubDep, SettingsDep, StoreDep
from app.errors import FieldError
from app.live import follow
from app.schemas import FramesPage

router = APIRouter(prefix="/runs", tags=["frames"])


@router.get("/{run_id}/frames", response_model=FramesPage)
def read_frames(
    run_id: RunId,
    store: StoreDep,
    since_seq: Annotated[int, Query(ge=0, le=2**62)] = 0,
    max_points: Annotated[int, Query(ge=2, le=100_000)] = 2000,
    layers: Annotated[str | None, Query(max_length=4000, description="comma-separated")] = None,
) -> Response:
    """Frames from since_seq on, at most max_points (first and last kept), optionally only
    some layers."""
    names = [n.strip() for n in layers.split(",") if n.strip()] if layers is not None else None
    page = service.frames_page(store, run_id, since_seq, max_points, names)
    return Response(page, media_type="application/json")  # stored JSON, not re-serialized


def _stored_run(run_id: RunId, store: StoreDep) -> dict[str, Any]:
    return service.get_run(store, run_id)


def _resume_after(last_event_id: Annotated[str | None, Header(max_length=32)] = None) -> int:
    """The seq after which to resume; -1 (from the start) without Last-Event-ID."""
    if last_event_id is None:
        return -1
    try:
        return max(-1, int(last_event_id))
    except ValueError:
        raise FieldError(
            ("header", "last-event-id"), "Last-Event-ID must be a frame seq", last_event_id
        ) from None


@router.get("/{run_id}/events", response_class=EventSourceResponse)
async def stream_events(
    run: Annotated[dict[str, Any], Depends(_stored_run)],
    after: Annotated[int, Depends(_resume_after)],
    store: StoreDep,
    hub: HubDep,
    settings: SettingsDep,
) -> AsyncIterable[ServerSentEvent]:
    """Live frames ("frame", id = seq) and status changes ("status"), resumable with
    Last-Event-ID; ends with the final status."""
    # Dependencies run before the stream starts, so an unknown run is a plain 404.
    async for event in follow(store, hub, run["id"], after, settings.keepalive_s):
        yield event


class _Csv(StreamingResponse):
    media_type = "text/csv"


@router.get("/{run_id}/export", response_class=_Csv)
def export_run(
    run_id: RunId, store: StoreDep, format: Literal["csv", "jsonl"] = "jsonl"
) -> StreamingResponse:
    """Every stored frame as JSON lines or CSV (one row per frame and layer), streamed."""
    service.get_run(store, run_id)
    lines: Iterator[str] = (service.export_csv if format == "csv" else service.export_jsonl)(
        store, run_id
    )
    media = "text/csv" if format == "csv" else "application/x-ndjson"
    disposition = f'attachment; filename="normscope-{run_id}.{format}"'
    return StreamingResponse(lines, media_type=media, headers={"Content-Disposition": disposition})
