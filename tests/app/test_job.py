"""app.jobs.job: a run's frames leave the trainer a flush at a time, and are encoded the same
wherever their layers are built."""

from __future__ import annotations

import pickle
import queue
import threading

import numpy as np
import pytest

from app.frame_arrays import from_frames
from app.jobs.job import encode, train
from normcore.frames import LayersLater, decode, wire
from normcore.probe.frame_numbers import FlushLayers, TableRow


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
    for frame, (seq, step, text, blob, stored) in zip(frames, encoded, strict=True):
        assert isinstance(frame["layers"], LayersLater)
        assert (seq, step) == (frame["seq"], frame["step"])
        assert text == wire({**frame, "layers": frame["layers"].built()}, True)[1]
        row = stored["layers"]  # held for the columns: the flush's arrays, not its dicts
        assert isinstance(row, TableRow) and row.table.layers()[row.j] == frame["layers"].built()
        assert decode(blob) == {**stored, "layers": frame["layers"].built()}


@pytest.mark.parametrize(
    "config",
    [
        {"steps": 90, "depth": 2, "width": 16, "norm": "batch", "eval_every": 25},
        {"steps": 300, "lr": 1e3},  # diverges: inf and NaN numbers, frames cut short
    ],
)
def test_a_chunks_columns_from_its_held_frames_are_those_of_their_blobs(config):
    """The store writes a live run's columns from the frames ``encode`` held, whose layers
    are rows of their flushes' arrays: every column equals the one its blobs decode to,
    in chunks that start and end inside flushes, and in a chunk whose frames mix both."""
    outbox: queue.SimpleQueue = queue.SimpleQueue()
    train({"probe_every": 1, **config}, threading.Event(), outbox)
    sent = []
    while not outbox.empty():
        sent += pickle.loads(pickle.dumps(outbox.get()))  # as a worker sends them
    encoded = [encode(f) for f in sent]
    held = [item[4] for item in encoded]
    blobs = [decode(item[3]) for item in encoded]
    assert all(isinstance(frame["layers"], TableRow) for frame in held)
    chunks = [(lo, lo + 40) for lo in range(0, len(held), 40)]
    for lo, hi in chunks:
        _same_columns(from_frames(held[lo:hi]), from_frames(blobs[lo:hi]))
    _same_columns(from_frames(held[:7] + blobs[7:20]), from_frames(blobs[:20]))


def _same_columns(got: dict, want: dict) -> None:
    assert sorted(got) == sorted(want)
    for key, array in want.items():
        assert got[key].dtype == array.dtype and got[key].shape == array.shape, key
        np.testing.assert_array_equal(got[key], array, err_msg=key)


def test_a_flush_cut_short_by_divergence_still_reaches_the_outbox():
    outbox: queue.SimpleQueue = queue.SimpleQueue()
    status, error = train({"steps": 300, "lr": 1e3}, threading.Event(), outbox)
    frames = []
    while not outbox.empty():
        frames += outbox.get()
    assert (status, error) == ("diverged", None)
    assert frames[-1]["status"] == "diverged" and not frames[-1]["layers"].last
    assert [f["seq"] for f in frames] == list(range(len(frames)))
