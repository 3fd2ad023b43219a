"""app.jobs.job: a run's frames leave the trainer a flush at a time, and are encoded the same
wherever their layers are built."""

from __future__ import annotations

import pickle
import queue
import threading

from app.jobs.job import encode, train
from normcore.frames import LayersLater, wire
from normcore.probe.frame_numbers import FlushLayers


def test_train_hands_on_each_flush_as_one_burst_built_once_where_encoded(monkeypatch):
    """Every outbox item is one flush's frames (so a pipe carries a flush's rows once, and
    they are built once); the frames, pickled as a worker sends them, encode as the run's."""
    builds = []
    build = FlushLayers.build
    monkeypatch.setattr(FlushLayers, "build", lambda self: builds.append(1) or build(self))
    outbox: queue.SimpleQueue = queue.SimpleQueue()
    config = {"steps": 70, "probe_every": 1, "eval_every": 50, "depth": 2, "width": 16}
    assert train(config, threading.Event(), outbox) == ("completed", None)
    bursts = []
    while not outbox.empty():
        bursts.append(outbox.get())
    assert all(isinstance(b, list) and b for b in bursts)
    for burst in bursts:
        flushes = {id(f["layers"].flush) for f in burst}
        assert len(flushes) == 1 and burst[-1]["layers"].last
        assert [f["layers"].j for f in burst] == list(range(len(burst)))
    frames = [f for b in bursts for f in b]
    assert [f["seq"] for f in frames] == list(range(70)) and frames[-1]["status"] == "completed"
    assert len(bursts) > 2 and not builds  # (the first flush is step 1 alone; none built yet)
    sent = [f for b in pickle.loads(pickle.dumps(bursts)) for f in b]
    encoded = [encode(f) for f in sent]
    assert len(builds) == len(bursts)  # one build per flush
    for frame, (seq, step, text, _, stored) in zip(frames, encoded, strict=True):
        assert isinstance(frame["layers"], LayersLater)
        assert (seq, step) == (frame["seq"], frame["step"])
        assert text == wire({**frame, "layers": frame["layers"].built()}, True)[1]
        assert stored["layers"] == frame["layers"].built()


def test_a_flush_cut_short_by_divergence_still_reaches_the_outbox():
    outbox: queue.SimpleQueue = queue.SimpleQueue()
    status, error = train({"steps": 300, "lr": 1e3}, threading.Event(), outbox)
    frames = []
    while not outbox.empty():
        frames += outbox.get()
    assert (status, error) == ("diverged", None)
    assert frames[-1]["status"] == "diverged" and not frames[-1]["layers"].last
    assert [f["seq"] for f in frames] == list(range(len(frames)))
