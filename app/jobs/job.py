"""What a job does wherever it runs (a local worker process, a Ray actor): train one run, and
encode its frames for the store, so every executor hands the store exactly the same things."""

from __future__ import annotations

import os
import queue
import threading
import traceback
from typing import Any

from app.jobs.base import WireFrame
from normcore.frames import LayersLater, compress, summarize, wire

MAX_ERROR = 2000  # characters of an error kept on the run
BURSTS_PER_MESSAGE = 16  # a sender hands on at most this many of ``train``'s bursts at once
END = object()  # what a runner puts in the outbox once ``train`` has returned


def frames_of(items: list[Any], summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The frames of outbox items (``train``'s bursts, and ``END``), in order; ``summary``
    (the run's latest metrics) updated from them."""
    frames = [frame for burst in items if burst is not END for frame in burst]
    for frame in frames:
        summarize(frame, summary)
    return frames


def train(config: dict[str, Any], stop: threading.Event, outbox: queue.SimpleQueue) -> tuple:
    """Run the trainer, putting its frames in ``outbox`` a flush at a time (lists: the frames
    whose layers one flush builds cross a pipe together, so they are built once); return
    (status, error). Never raises."""
    from normcore.config import RunConfig
    from normcore.train import run

    last: dict[str, Any] = {}
    burst: list[dict[str, Any]] = []
    try:
        frames = run(
            RunConfig.model_validate(config),
            should_stop=stop.is_set,
            rounded=True,
            layers_later=True,  # built by ``encode``: by the server, for a local worker
        )
        for frame in frames:
            burst.append(frame)
            layers = frame["layers"]
            if not isinstance(layers, LayersLater) or layers.last:
                outbox.put(burst)
                burst = []
            last = frame
    except BaseException as exc:  # MemoryError, CUDA OOM, a bug: the run fails, with why
        return "failed", describe(exc)
    finally:  # a flush cut short (the run diverged, stopped or failed): its frames so far
        if burst:
            outbox.put(burst)
    status = last.get("status")
    finished = status == "diverged" or (
        status == "completed" and last.get("step") == config["steps"]
    )
    if stop.is_set() and not finished:
        return "cancelled", None
    if status not in ("completed", "diverged"):
        return "failed", f"the trainer ended without a final frame (last status {status!r})"
    return status, None


def describe(exc: BaseException) -> str:
    where = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    at = f" (at {os.path.basename(where[0].filename)}:{where[0].lineno})" if where else ""
    return f"{type(exc).__name__}: {exc}{at}"[:MAX_ERROR]


def encode(frame: dict[str, Any]) -> WireFrame:
    """A frame of ``train`` -> (seq, step, wire JSON, stored blob, the frame held for its
    columns): the blob is `normcore.frames.encode(frame)`, computed from the same text
    instead of serializing twice; the held frame is the cleaned dict the text was written
    from. ``train``'s frames come with their layers rounded already (``run(rounded=True)``),
    so only the rest of the frame is cleaned here, and their layers still to be built
    (``run(layers_later=True)``): ``wire`` builds them, all of a flush's at once. The held
    frame's layers are then the flush's arrays they were built from (a ``TableRow``), so a
    chunk's columns are sliced from those, and the layers' dicts are freed once sent."""
    layers = frame.get("layers")
    stored, text = wire(frame, layers_rounded=True)
    if isinstance(layers, LayersLater):
        stored["layers"] = layers.row()
    seq, step = int(frame["seq"]), int(frame.get("step") or 0)
    return seq, step, text, compress(text), stored
