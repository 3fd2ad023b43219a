"""Runs of a model of one's own (normcore.watch): the client trains, the server stores and
streams what it sends.

No executor takes part. A watched run is created running; its frames arrive by
``POST /api/runs/{id}/frames`` in seq order, are stored as the recorder stores a worker's and
published to the run's live viewers; its last frame (completed, diverged) or a cancel ends
it. A resent batch is stored once (frames at or below the stored ``last_seq`` are skipped),
so a client may retry after a lost answer. A client that learns of a cancel gets a 409 on its
next batch and stops.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from app.errors import FieldError, RunConflict
from app.live import Hub
from app.schemas import FrameIn, WatchedRunIn
from app.services.runs import get_run
from app.store import Finish, Frames, Start, Store
from normcore.frames import TERMINAL, encode, summarize, to_json

OWN_MODEL = "own"  # config["model"] of a watched run

_appending = threading.Lock()  # an append is read, check, write: one at a time


def create_watched_run(store: Store, spec: WatchedRunIn) -> dict[str, Any]:
    config = dict(
        model=OWN_MODEL,
        activation=spec.activation,
        layers=spec.layers,
        probe_every=spec.every,
        steps=spec.steps,
    )
    run = store.create_run(config, spec.label)
    store.apply([Start(run["id"], time.time())])
    return get_run(store, run["id"])


def append_frames(store: Store, hub: Hub, run_id: str, frames: list[FrameIn]) -> dict[str, Any]:
    """Store the frames after the run's last one and wake its viewers; returns the run."""
    with _appending:
        run = get_run(store, run_id)
        if run["config"].get("model") != OWN_MODEL:
            raise RunConflict(
                f"run {run_id!r} is trained by this server: its worker sends its frames"
            )
        fresh = [(i, f) for i, f in enumerate(frames) if f.seq > run["last_seq"]]
        if not fresh:  # all stored already: a retry after a lost answer
            return run
        if run["status"] in TERMINAL:
            raise RunConflict(f"run {run_id!r} has ended: {run['status']}")
        _check(run, fresh)
        dicts = [_stored(f) for _, f in fresh]
        summary: dict[str, Any] = {}
        for frame in dicts:
            summarize(frame, summary)
        rows = [(frame["seq"], frame["step"], encode(frame)) for frame in dicts]
        ops: list = [Frames(run_id, rows, summary, active_only=True)]
        if dicts[-1]["status"] != "running":
            ops.append(Finish(run_id, dicts[-1]["status"], None, time.time()))
        changed = store.apply(ops)
        run = get_run(store, run_id)
        if run["last_seq"] < dicts[-1]["seq"]:  # a cancel came between the check and here
            raise RunConflict(f"run {run_id!r} has ended: {run['status']}")
    hub.publish_threadsafe(
        run_id, [(f["seq"], to_json(f)) for f in dicts], run if changed else None
    )
    return run


def _stored(frame: FrameIn) -> dict[str, Any]:
    """The frame as sent: eval holds the keys it was sent with (each optional)."""
    stored = frame.model_dump()
    if frame.eval is not None:
        stored["eval"] = frame.eval.model_dump(exclude_unset=True)
    return stored


def _check(run: dict[str, Any], fresh: list[tuple[int, FrameIn]]) -> None:
    """The new frames follow the stored ones without a gap, hold the run's layers in its
    order (what the charts and reports line up), and only the last may end the run."""
    known = run["config"].get("layers") or []
    step = run.get("step") or 0  # the last stored frame's
    for k, (i, frame) in enumerate(fresh):
        if frame.step < step:
            raise FieldError(
                ("body", str(i), "step"),
                f"step {frame.step} goes back: the frame before is at step {step}",
                frame.step,
            )
        step = frame.step
        expected = run["last_seq"] + 1 + k
        if frame.seq != expected:
            raise FieldError(
                ("body", str(i), "seq"),
                f"seq {frame.seq} does not follow the stored frames: expected {expected}",
                frame.seq,
            )
        if frame.status != "running" and k < len(fresh) - 1:
            raise FieldError(
                ("body", str(i), "status"),
                f"a frame with status {frame.status!r} must be the run's last",
                frame.status,
            )
        names = [layer.name for layer in frame.layers]
        if names != known:
            raise FieldError(
                ("body", str(i), "layers"),
                f"layers {', '.join(names)}: this run's are {', '.join(known)}, in that order",
                names,
            )
