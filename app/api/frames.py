"""A run's frames: downsampled pages, the live SSE stream, raw exports."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query
from fastapi.responses import Response, StreamingResponse
from fastapi.sse import EventSourceResponse

from app import series
from app.api.params import RunId
from app.deps import HubDep, SettingsDep, StoreDep
from app.errors import FieldError
from app.frame_columns import MAX_SEQ
from app.live import follow
from app.schemas import FramesPage
from app.services import runs as service

router = APIRouter(prefix="/runs", tags=["frames"])


@router.get("/{run_id}/frames", response_model=FramesPage)
def read_frames(
    run_id: RunId,
    store: StoreDep,
    since_seq: Annotated[int, Query(ge=0, le=MAX_SEQ)] = 0,
    max_points: Annotated[int, Query(ge=2, le=100_000)] = 2000,
    layers: Annotated[str | None, Query(max_length=4000, description="comma-separated")] = None,
) -> Response:
    """Frames from since_seq on, at most max_points (first and last kept), optionally only
    some layers."""
    names = [n.strip() for n in layers.split(",") if n.strip()] if layers is not None else None
    page = service.frames_page(store, run_id, since_seq, max_points, names)
    return Response(page, media_type="application/json")  # stored JSON, not re-serialized


@router.get("/{run_id}/series")
def read_series(
    run_id: RunId,
    store: StoreDep,
    fields: Annotated[
        str, Query(max_length=4000, description="comma-separated: " + ", ".join(series.FIELDS))
    ] = "loss,acc,eval",
    layers: Annotated[
        str | None, Query(max_length=4000, description="comma-separated; default: every layer")
    ] = None,
    from_step: Annotated[int, Query(ge=0, le=series.MAX_STEP)] = 0,
    to_step: Annotated[int, Query(ge=0, le=series.MAX_STEP)] = series.MAX_STEP,
    points: Annotated[
        int, Query(ge=series.POINTS_RANGE[0], le=series.POINTS_RANGE[1])
    ] = series.DEFAULT_POINTS,
    to_seq: Annotated[
        int,
        Query(
            ge=-1,
            le=MAX_SEQ,
            description="only frames up to this seq (-1: none), e.g. the run's last_seq when "
            "the view asked, so that several answers describe the same frames",
        ),
    ] = MAX_SEQ,
) -> Response:
    """Just the requested fields over a step range, as columns, about `points` per series:
    line series by MinMaxLTTB with every extreme exact, every evaluation, heatmaps
    (`hist`: counts summed; `max:<key>`: bucket maximum) on shared step buckets."""
    names = series.parse_list(fields) or []
    page = service.series_page(
        store, run_id, names, series.parse_list(layers), from_step, to_step, points, to_seq
    )
    return Response(page, media_type="application/json")


def _stored_run(run_id: RunId, store: StoreDep) -> dict[str, Any]:
    return service.get_run(store, run_id)


def _resume_after(
    # str, not str | None: the document then says "a seq" rather than "a seq or null"
    last_event_id: Annotated[str, Header(max_length=32, pattern=r"^-?[0-9]{1,18}$")] = None,  # type: ignore[assignment]
    since_seq: Annotated[int | None, Query(ge=0, le=MAX_SEQ)] = None,
) -> int:
    """The seq after which to resume. A reconnect's Last-Event-ID wins; a first connection
    may say with ?since_seq= (as /frames does) where the history it already holds ends."""
    if last_event_id is None:
        return -1 if since_seq is None else since_seq - 1
    try:
        seq = int(last_event_id)
        if seq > MAX_SEQ:
            raise ValueError
        return max(-1, seq)
    except ValueError:
        raise FieldError(
            ("header", "last-event-id"), "Last-Event-ID must be a frame seq", last_event_id
        ) from None


_SSE_DOC: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/event-stream": {}}, "description": "an SSE stream"}
}


@router.get("/{run_id}/events", response_class=Response, responses=_SSE_DOC)
async def stream_events(
    run: Annotated[dict[str, Any], Depends(_stored_run)],
    after: Annotated[int, Depends(_resume_after)],
    store: StoreDep,
    hub: HubDep,
    settings: SettingsDep,
) -> EventSourceResponse:
    """Live frames ("frame", id = seq) and status changes ("status"), resumable with
    Last-Event-ID; ends with the final status."""
    # The EventSourceResponse is built here rather than from a yielding endpoint (which
    # response_class=EventSourceResponse would imply): a burst of frames
    # goes out as one write (not one per event through two one-slot memory streams), and a
    # stalled client that disconnects is a plain cancellation (FastAPI 0.165's keep-alive
    # task logs BrokenResourceError then). Dependencies above already gave unknown runs 404.
    stream = follow(store, hub, run["id"], after, settings.keepalive_s)
    return EventSourceResponse(
        stream, headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )


def _tensorboard(store: Any, run_id: str) -> Response:
    from app.tensorboard_export import write_events

    frames = (json.loads(line) for line in service.export_jsonl(store, run_id))
    with tempfile.TemporaryDirectory(prefix="normscope-tb-") as directory:
        try:
            data = write_events(frames, directory).read_bytes()
        except RuntimeError as exc:  # the tensorboard package is missing here
            raise FieldError(("query", "format"), str(exc), "tensorboard") from None
    name = f"events.out.tfevents.{run_id}.normscope"
    return Response(
        data,
        media_type="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


class _Csv(StreamingResponse):
    media_type = "text/csv"


_EXPORT_DOC: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {
            "text/csv": {},
            "application/x-ndjson": {},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
        "description": "CSV, JSON lines (format=jsonl), or a TensorBoard event file "
        "(format=tensorboard: put it in a log directory)",
    }
}


@router.get("/{run_id}/export", response_class=_Csv, responses=_EXPORT_DOC)
def export_run(
    run_id: RunId, store: StoreDep, format: Literal["csv", "jsonl", "tensorboard"] = "jsonl"
) -> Response:
    """Every stored frame as JSON lines or CSV (one row per frame and layer), streamed; or as
    a TensorBoard event file (scalars and per-layer histograms, app.tensorboard_export)."""
    service.get_run(store, run_id)
    if format == "tensorboard":
        return _tensorboard(store, run_id)
    lines: Iterator[str] = (service.export_csv if format == "csv" else service.export_jsonl)(
        store, run_id
    )
    media = "text/csv" if format == "csv" else "application/x-ndjson"
    disposition = f'attachment; filename="normscope-{run_id}.{format}"'
    return StreamingResponse(lines, media_type=media, headers={"Content-Disposition": disposition})
