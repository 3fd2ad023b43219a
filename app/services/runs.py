"""What the run endpoints do, as plain functions of (store, executor, settings, input).

Handlers in app/api only parse and respond (TensorBoard's route/impl split), so this logic is
testable and reusable without HTTP.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Iterator
from typing import Any

from app import series
from app.errors import FieldError, RunConflict, RunNotFound, limit_message
from app.frame_columns import MAX_SEQ
from app.jobs.base import Executor
from app.live import Hub
from app.settings import Settings
from app.store import Finish, Store, frame_text
from normcore.config import RunConfig
from normcore.frames import ACTIVE, TERMINAL, decode
from normcore.probe.frame_numbers import LAYER_NUMBERS


def check_limits(config: RunConfig, settings: Settings) -> None:
    """Reject configs beyond the server's limits, naming the field (a 422 like pydantic's)."""
    for name, limit in settings.limits().items():
        value = getattr(config, name)
        if value > limit:
            raise FieldError(
                ("body", name),
                limit_message(name, value, limit),
                value,
                kind="less_than_equal",
            )


def get_run(store: Store, run_id: str) -> dict[str, Any]:
    run = store.get_run(run_id)
    if run is None:
        raise RunNotFound(run_id)
    return run


def read_run(store: Store, run_id: str) -> dict[str, Any]:
    """The run with its layers' names (from two frames: cheap for one run, not for a list), so
    a view can load a layer's detail beside the overview rather than after it."""
    return {**get_run(store, run_id), "layers": layer_names(store, run_id)}


def create_run(
    store: Store,
    executor: Executor,
    settings: Settings,
    config: RunConfig,
    label: str | None = None,
    rerun_of: str | None = None,
) -> dict[str, Any]:
    """Store the run as queued and hand it to the executor (which may refuse: queue full).
    The one way a run is made: the runs endpoint, re-runs and the claims lab's arms call it."""
    check_limits(config, settings)
    run = store.create_run(config.model_dump(), label or config.label(), rerun_of)
    try:
        executor.submit(run["id"], run["config"])
    except Exception:
        store.delete_run(run["id"])  # refused: leave no queued ghost behind
        raise
    return get_run(store, run["id"])


def cancel_run(
    store: Store, executor: Executor, run_id: str, wait_s: float, hub: Hub | None = None
) -> dict[str, Any]:
    """Stop a queued or running run and return it once it has ended (within `wait_s`)."""
    run = get_run(store, run_id)
    if run["status"] in TERMINAL:
        raise RunConflict(f"run {run_id!r} has already ended: {run['status']}")
    if not executor.cancel(run_id):  # a watched run, or one the executor lost
        if store.apply([Finish(run_id, "cancelled", None, time.time())]) and hub is not None:
            hub.publish_threadsafe(run_id, [], get_run(store, run_id))  # wake its viewers
    deadline = time.monotonic() + wait_s
    while run["status"] in ACTIVE and time.monotonic() < deadline:
        time.sleep(0.02)
        run = get_run(store, run_id)
    return run


def delete_run(store: Store, executor: Executor, run_id: str, wait_s: float) -> None:
    """Delete a run and its frames; an active run is cancelled first."""
    if get_run(store, run_id)["status"] in ACTIVE:
        cancel_run(store, executor, run_id, wait_s)
    store.delete_run(run_id)


def sample_frames(
    store: Store, run_id: str, since_seq: int, max_points: int
) -> tuple[list[tuple[int, bytes]], int]:
    """Frames from since_seq on, downsampled faithfully (app/series.frame_selection): every
    evaluation and status frame, the first and the last, and the loss's extremes kept."""
    cols = store.read_columns(run_id, 0, series.MAX_STEP, {}, ["loss"])
    seqs, total = series.frame_selection(cols, since_seq, max_points)
    return store.frames_at(run_id, seqs), total


def series_page(
    store: Store,
    run_id: str,
    fields: list[str],
    layers: list[str] | None,
    from_step: int,
    to_step: int,
    points: int,
    to_seq: int = MAX_SEQ,
) -> bytes:
    """The /series JSON: the requested fields over the step range, about `points` each, of
    the frames up to `to_seq` (two answers bounded alike describe the same frames, however
    many a live run stores between them)."""
    series.check_fields(fields)
    series.check_range(from_step, to_step)
    get_run(store, run_id)
    known = layer_names(store, run_id)
    if layers is not None:
        series.check_layers(layers, known)
    names = known if layers is None else layers
    layer_keys, run_keys = series.wanted_keys(fields, names)
    cols = store.read_columns(run_id, from_step, to_step, layer_keys, run_keys, to_seq)
    total = len(cols)
    answer = series.series(cols, fields, names, points, from_step, to_step, total)
    answer["layers"] = known
    return series.dumps(answer)


def layer_names(store: Store, run_id: str) -> list[str]:
    """The run's layers, from its first and newest frames (a layer may appear late)."""
    run = get_run(store, run_id)
    rows = store.read_frames(run_id, -1, 1) + store.read_frames(run_id, run["last_seq"] - 1, 1)
    names: list[str] = []
    for _, blob in rows:
        frame = decode(blob)
        names += [la["name"] for la in frame.get("layers", []) if la["name"] not in names]
    return names


def frames_page(
    store: Store, run_id: str, since_seq: int, max_points: int, layers: list[str] | None
) -> str:
    """The FramesPage JSON, assembled from the stored wire text (no parse unless filtering)."""
    get_run(store, run_id)
    rows, total = sample_frames(store, run_id, since_seq, max_points)
    texts = [frame_text(blob) for _, blob in rows]
    if layers is not None and texts:
        texts = _only_layers(texts, layers)
    head = {
        "count": len(rows),
        "total": total,
        "dropped": total - len(rows),
        "first_seq": rows[0][0] if rows else None,
        "last_seq": rows[-1][0] if rows else None,
    }
    return '{"data":[' + ",".join(texts) + "]," + json.dumps(head)[1:]


def _only_layers(texts: list[str], layers: list[str]) -> list[str]:
    frames = [json.loads(text) for text in texts]
    known = [layer["name"] for layer in frames[0].get("layers", [])]
    unknown = [name for name in layers if name not in known]
    if unknown:
        raise FieldError(
            ("query", "layers"),
            f"layers {', '.join(map(repr, unknown))} unknown; this run has: {', '.join(known)}",
            ",".join(layers),
        )
    wanted = set(layers)
    for frame in frames:
        frame["layers"] = [layer for layer in frame.get("layers", []) if layer["name"] in wanted]
    return [json.dumps(frame, separators=(",", ":")) for frame in frames]


def export_jsonl(store: Store, run_id: str) -> Iterator[str]:
    """Every stored frame, one wire-JSON line each, streamed page by page."""
    for _, blob in store.iter_frames(run_id):
        yield frame_text(blob) + "\n"


FRAME_COLUMNS = ("seq", "step", "time", "status", "device", "loss", "acc", "lr", "steps_per_s")
EVAL_COLUMNS = ("eval_loss", "eval_acc", "eval_loss_batch", "eval_acc_batch")
# a layer's numbers (normcore.probe.stats, the one list), then its histogram's tails
LAYER_COLUMNS = (*LAYER_NUMBERS, "nonfinite", "under", "over")


def export_csv(store: Store, run_id: str) -> Iterator[str]:
    """Long format, one row per frame and layer (histogram counts: use JSON lines)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow((*FRAME_COLUMNS, *EVAL_COLUMNS, "layer", *LAYER_COLUMNS))
    for i, (_, blob) in enumerate(store.iter_frames(run_id)):
        frame = decode(blob)
        head = [frame.get(k) for k in FRAME_COLUMNS]
        ev = frame.get("eval") or {}
        head += [ev.get(k.removeprefix("eval_")) for k in EVAL_COLUMNS]
        for layer in frame.get("layers") or [{}]:
            hist = layer.get("hist") or {}
            cells = [layer.get(k) for k in LAYER_COLUMNS[:-2]]
            cells += [hist.get("under"), hist.get("over")]
            writer.writerow([*head, layer.get("name"), *cells])
        if i % 200 == 199 or buffer.tell() > 1 << 16:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()
