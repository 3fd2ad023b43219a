"""The run store and the recorder, in-process: SQLite on a temp file, the real writer thread."""

from __future__ import annotations

import threading
import time
import zlib

import numpy as np
import pytest

from app.jobs.job import encode as wire_frame
from app.jobs.recorder import Recorder
from app.store import Finish, Frames, Start, Store, frame_text, spread
from normcore.config import RunConfig
from normcore.frames import ZSTD_MAGIC, decode, encode, to_json


@pytest.fixture
def store(tmp_path):
    store = Store(tmp_path / "runs.db")
    yield store
    store.close()


def _new_run(store: Store, **config) -> str:
    cfg = RunConfig(**config)
    return store.create_run(cfg.model_dump(), cfg.label())["id"]


def _frame(seq: int) -> dict:
    return {
        "seq": seq,
        "step": seq + 1,
        "status": "running",
        "loss": 1.0 / (seq + 1),
        "acc": 0.5,
        "eval": None,
        "layers": [{"name": "h1", "mean": float(seq)}],
    }


def _rows(seqs) -> list[tuple[int, int, bytes]]:
    return [(s, s + 1, encode(_frame(s))) for s in seqs]


def test_store_uses_wal_and_stores_frames_in_the_encoded_form(store):
    run_id = _new_run(store)
    store.apply([Start(run_id, time.time()), Frames(run_id, _rows(range(3)), {"step": 3})])
    assert store._db().execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    [(seq, blob)] = store.read_frames(run_id, 1, 10)
    assert seq == 2 and decode(blob) == decode(encode(_frame(2)))
    assert frame_text(blob) == to_json(_frame(2))


def test_a_store_written_with_zlib_reads_as_one_written_now(store, monkeypatch):
    """Frames and columns are stored with zstd now; a store from before holds zlib blobs of
    both, and every read (a frame's text, its dict, a view's columns) gives the same."""
    from app import frame_columns

    n = frame_columns.CHUNK + 5
    runs = {}
    for old in (True, False):
        with monkeypatch.context() as m:
            if old:  # what the store wrote before: zlib at its fastest level
                m.setattr(frame_columns, "pack", lambda raw: zlib.compress(raw, 1))
            run_id = runs[old] = _new_run(store)
            rows = [
                (s, s + 1, zlib.compress(to_json(_frame(s)).encode(), 1) if old else blob)
                for s, _, blob in _rows(range(n))
            ]
            store.apply([Start(run_id, 0.0), Frames(run_id, rows, {"step": n})])
            store.apply([Finish(run_id, "completed", None, 1.0)])
        blobs = [blob for _, blob in store.read_frames(runs[old], -1, n)]
        assert all((blob[:4] == ZSTD_MAGIC) != old for blob in blobs)
        packed = store._db().execute(
            "SELECT data FROM frame_columns WHERE run_id = ? AND key = 'seq'", (run_id,)
        )
        compressed = [blob for (blob,) in packed if blob[:1] == b"Z"]  # (else raw: "R")
        assert compressed and all((blob[1:5] == ZSTD_MAGIC) != old for blob in compressed)
    old_frames, new_frames = (store.read_frames(runs[old], -1, n) for old in (True, False))
    for (_, a), (_, b) in zip(old_frames, new_frames, strict=True):
        assert frame_text(a) == frame_text(b) and decode(a) == decode(b)
    got, want = (
        store.read_columns(runs[old], 0, 2**62, {"h1": ["mean", "hist"]}, ["loss", "step"])
        for old in (True, False)
    )
    assert got.run["loss"].tobytes() == want.run["loss"].tobytes()
    assert got.layers["h1"]["mean"].tobytes() == want.layers["h1"]["mean"].tobytes()
    assert list(got.seq) == list(range(n))


def test_run_lifecycle_sets_status_times_step_and_final_metrics(store):
    run_id = _new_run(store, steps=3)
    assert store.get_run(run_id)["status"] == "queued"
    summary = {"step": 3, "device": "cpu", "loss": 0.5, "acc": 0.75, "eval_acc": 0.7}
    changed = store.apply([Start(run_id, 1.0), Frames(run_id, _rows(range(3)), summary)])
    assert changed == {run_id}
    run = store.get_run(run_id)
    assert (run["status"], run["step"], run["frame_count"], run["last_seq"]) == ("running", 3, 3, 2)
    assert run["final"] is None and run["metrics"]["loss"] == 0.5  # final only once ended
    store.apply([Finish(run_id, "completed", None, 2.0)])
    run = store.get_run(run_id)
    assert run["status"] == "completed" and run["device"] == "cpu"
    assert run["final"] == {"loss": 0.5, "acc": 0.75, "eval_loss": None, "eval_acc": 0.7}
    assert (run["started_at"], run["finished_at"]) == (1.0, 2.0)


def test_an_ended_run_keeps_its_status(store):
    run_id = _new_run(store)
    store.apply([Start(run_id, 1.0), Finish(run_id, "cancelled", None, 2.0)])
    assert store.apply([Finish(run_id, "failed", "late", 3.0)]) == set()
    assert store.get_run(run_id)["status"] == "cancelled"


def test_startup_marks_running_and_queued_runs_interrupted_and_keeps_frames(store):
    running, queued, done = _new_run(store), _new_run(store), _new_run(store)
    store.apply(
        [
            Start(running, 1.0),
            Frames(running, _rows(range(5)), {"step": 5}),
            Start(done, 1.0),
            Finish(done, "completed", None, 2.0),
        ]
    )
    assert sorted(store.mark_interrupted("server restarted")) == sorted([running, queued])
    assert store.get_run(running)["status"] == "interrupted"
    assert store.get_run(running)["error"] == "server restarted"
    assert store.get_run(done)["status"] == "completed"
    assert [seq for seq, _ in store.read_frames(running, -1, 100)] == list(range(5))


def test_list_runs_filters_by_status_and_counts_all_matches(store):
    ids = [_new_run(store) for _ in range(5)]
    store.apply([Start(ids[0], 1.0)])
    runs, count = store.list_runs(limit=2)
    assert count == 5 and len(runs) == 2
    runs, count = store.list_runs("running")
    assert count == 1 and runs[0]["id"] == ids[0]


def test_delete_removes_frames_and_late_frames_are_dropped(store):
    run_id = _new_run(store)
    store.apply([Frames(run_id, _rows(range(4)), {"step": 4})])
    assert store.delete_run(run_id) and store.get_run(run_id) is None
    store.apply([Frames(run_id, _rows(range(4, 6)), {"step": 6})])  # a worker still sending
    assert store.read_frames(run_id, -1, 100) == []
    assert not store.delete_run(run_id)


@pytest.mark.parametrize("total", [1, 2, 3, 10, 101, 1000])
@pytest.mark.parametrize("max_points", [2, 3, 7, 100])
def test_sampling_keeps_first_and_last_and_at_most_max_points(store, total, max_points):
    run_id = _new_run(store)
    store.apply([Frames(run_id, _rows(range(total)), {"step": total})])
    rows, count = store.sample_frames(run_id, 0, max_points)
    seqs = [seq for seq, _ in rows]
    assert count == total and len(seqs) == min(total, max_points)
    assert seqs[0] == 0 and seqs[-1] == total - 1 and seqs == sorted(set(seqs))
    gaps = [b - a for a, b in zip(seqs[:-1], seqs[1:], strict=True)]
    assert not gaps or max(gaps) - min(gaps) <= 1, "evenly spread"
    assert seqs == spread(total, max_points), "frames in a file are thinned alike"


def test_sampling_from_since_seq(store):
    run_id = _new_run(store)
    store.apply([Frames(run_id, _rows(range(50)), {"step": 50})])
    rows, total = store.sample_frames(run_id, 40, 100)
    assert total == 10 and [s for s, _ in rows] == list(range(40, 50))


def test_recorder_batches_many_frames_into_few_transactions(store):
    run_id = _new_run(store)
    published: list[tuple[str, list, object]] = []
    done = threading.Event()

    def publish(rid, frames, run):
        published.append((rid, frames, run))
        if run is not None and run["status"] == "completed":
            done.set()

    recorder = Recorder(store, publish, min_interval_s=0.01)
    commits = []
    commit = store.commit
    store.commit = lambda ops: commits.append(1) or commit(ops)  # count transactions
    recorder.start()
    recorder.started(run_id)
    for seq in range(2000):  # one frame per call: the worst case a worker could send
        recorder.frames(run_id, [wire_frame(_frame(seq))], {"step": seq + 1})
    recorder.finished(run_id, "completed")
    assert done.wait(10)
    recorder.stop()
    assert len(commits) < 200, f"{len(commits)} transactions for 2000 frames"
    assert store.get_run(run_id)["frame_count"] == 2000
    seqs = [seq for _, frames, _ in published for seq, _ in frames]
    assert seqs == list(range(2000)), "published in order, each once, after the commit"
    assert 0 < len(commits)


def test_the_recorder_announces_a_runs_end_before_writing_its_last_columns(store):
    """The hub hears a run's final status as soon as it is committed; the columns of its last
    chunk are written after that, and ``changed`` (a sweep reading its metric from them)
    hears of the end once they are."""
    from app import frame_columns

    run_id = _new_run(store)
    heard: dict[str, dict[int, int]] = {}
    done = threading.Event()

    def publish(rid, frames, run):
        if run is not None and run["status"] == "completed":
            heard["publish"] = frame_columns._sealed(store._db(), rid)

    def changed(run):
        if run["status"] == "completed":
            heard["changed"] = frame_columns._sealed(store._db(), run["id"])
            done.set()

    recorder = Recorder(store, publish, changed=changed)
    recorder.start()
    recorder.started(run_id)
    recorder.frames(run_id, [wire_frame(_frame(seq)) for seq in range(300)], {"step": 300})
    recorder.finished(run_id, "completed")
    assert done.wait(10)
    recorder.stop()
    assert heard == {"publish": {}, "changed": {0: 300}}


def test_columns_are_written_from_the_frames_in_hand_as_from_their_blobs(store, monkeypatch):
    """The recorder hands the store each frame as its blob decodes: a chunk's columns are
    written from those, no blob decoded, and equal the columns written from the blobs; once
    the run has ended nothing is kept in hand."""
    from app import frame_columns

    decoded: list[int] = []
    read = frame_columns._read_frames
    monkeypatch.setattr(
        frame_columns,
        "_read_frames",
        lambda db, run_id, lo, hi: decoded.append(hi - lo) or read(db, run_id, lo, hi),
    )
    n = frame_columns.CHUNK + 300
    frames = [{**_frame(seq), "loss": 1 / (seq + 1), "acc": None} for seq in range(n)]
    runs = {}
    for hand in (True, False):
        run_id = runs[hand] = _new_run(store)
        store.apply([Start(run_id, 0.0)])
        for lo in range(0, n, 100):
            items = [wire_frame(f) for f in frames[lo : lo + 100]]
            rows = [(seq, step, blob) for seq, step, _, blob, _ in items]
            held = [frame for *_, frame in items] if hand else None
            store.apply([Frames(run_id, rows, {"step": lo}, held=held)])
        store.apply([Finish(run_id, "completed", None, 1.0)])
        assert store._in_hand.get(run_id) is None
    assert decoded == [frame_columns.CHUNK, 300]  # the run without frames in hand only
    got, want = (
        store.read_columns(runs[h], 0, 2**62, {"h1": ["mean", "hist"]}, ["loss", "acc"])
        for h in (True, False)
    )
    assert list(got.seq) == list(range(n))
    for key in ("seq", "step", "status", "evals", "has_eval"):
        assert getattr(got, key).tobytes() == getattr(want, key).tobytes(), key
    for key in ("loss", "acc"):
        assert got.run[key].tobytes() == want.run[key].tobytes(), key
    for key in ("mean", "hist"):
        assert got.layers["h1"][key].tobytes() == want.layers["h1"][key].tobytes(), key


def test_sampling_reads_one_snapshot_while_frames_are_being_written(store):
    """A live run commits frames between the sampler's count and its sampling query (made
    deterministic with SQLite's statement trace): the page must still hold exactly
    max_points frames, end at the last one counted, and report the total it sampled."""
    run_id = _new_run(store)
    store.apply([Frames(run_id, _rows(range(100)), {"step": 100})])
    writer = Store(store.path)  # the recorder's own connection
    written: list[int] = []

    def write_during(statement: str) -> None:
        if "ROW_NUMBER" in statement and not written:
            written.append(1)
            writer.apply([Frames(run_id, _rows(range(100, 150)), {"step": 150})])

    store._db().set_trace_callback(write_during)
    try:
        rows, total = store.sample_frames(run_id, 0, 10)
    finally:
        store._db().set_trace_callback(None)
        writer.close()
    seqs = [seq for seq, _ in rows]
    assert written and len(seqs) == 10 and seqs[0] == 0
    assert seqs[-1] == total - 1, f"the last frame of the {total} counted; got {seqs}"


@pytest.mark.parametrize("steps", [60, 1100])  # an open tail only; a sealed chunk and a tail
def test_a_sweeps_metric_from_columns_is_the_metric_of_the_decoded_frames(store, steps):
    """The sweep service reads a cell's metric off the run's columns (run_series); the same
    rule over the stored frames, decoded one by one, gives every metric exactly."""
    from app.services.sweeps import run_series
    from normcore.sweep import METRICS, metric_of, metric_value
    from normcore.train import run

    cfg = RunConfig(steps=steps, probe_every=1, eval_every=25, depth=2, width=8)
    run_id = _new_run(store, **cfg.model_dump())
    frames = [wire_frame(f) for f in run(cfg, rounded=True)]
    store.apply([Start(run_id, 1.0), Frames(run_id, [(s, t, b) for s, t, _, b, _ in frames], {})])
    store.apply([Finish(run_id, "completed", None, 2.0)])
    stored = [decode(blob) for _, blob in store.iter_frames(run_id)]
    for metric in METRICS:
        want = metric_value(metric, stored)
        assert want is not None and metric_of(metric, run_series(store, run_id, metric)) == want


def test_columns_of_frames_with_gaps_read_each_gap_as_missing():
    """from_frames takes a row's keys at once where it has them all; a layer a frame lacks, a
    key a row lacks and a histogram with None counts or another length go the slow way, to
    the same columns: NaN where a number is missing, zeros where a histogram is."""
    from app.frame_arrays import from_frames
    from normcore.probe.frame_numbers import LAYER_LINES

    def layer(mean, hist=True, **changes):
        row = {k: 0.5 for k in LAYER_LINES} | {"name": "h1", "mean": mean, "nonfinite": 0}
        if hist:
            row["hist"] = {"lo": -1.0, "hi": 1.0, "counts": [1, 2, 3], "under": 4, "over": 5}
        return row | changes

    frames = [
        {"seq": 0, "layers": [layer(0.0)]},
        {"seq": 1, "layers": []},  # the layer is missing
        {"seq": 2, "layers": [{k: v for k, v in layer(2.0).items() if k != "std"}]},
        {"seq": 3, "layers": [layer(None, hist=False)]},
    ]
    full = from_frames(frames[:1] * 3)
    assert full["h1/mean"].tolist() == [0.0] * 3
    assert full["h1/hist"].tolist() == [[4, 1, 2, 3, 5]] * 3
    out = from_frames(frames)
    assert np.isnan(out["h1/mean"][[1, 3]]).all() and out["h1/mean"][2] == 2.0
    assert np.isnan(out["h1/std"][[1, 2]]).all() and out["h1/std"][3] == 0.5
    assert out["h1/hist"].tolist() == [[4, 1, 2, 3, 5], [0] * 5, [4, 1, 2, 3, 5], [0] * 5]
    frames[0]["layers"][0]["hist"] |= {"counts": [None, 2, 3], "under": None}
    frames[2]["layers"][0]["hist"]["counts"] = [1, 2, 3, 9]  # longer: cut to the first's bins
    assert from_frames(frames)["h1/hist"].tolist()[0::2] == [[0, 0, 2, 3, 5], [4, 1, 2, 3, 5]]


def test_frames_in_hand_are_kept_up_to_max_bytes_and_written_ones_free_their_room(monkeypatch):
    from app.frames_in_hand import InHand

    monkeypatch.setattr(InHand, "MAX_BYTES", 100)
    hand = InHand()
    rows = lambda seqs: [(s, s, b"x" * 30) for s in seqs]  # noqa: E731
    hand.add("r", rows([0, 1, 2]), [{"seq": s} for s in range(3)])  # 90 bytes
    assert sorted(hand.get("r") or {}) == [0, 1, 2]
    hand.written("r", 2)  # seqs 0, 1 written for good: 30 bytes left in hand
    hand.add("r", rows([3, 4]), [{"seq": 3}, {"seq": 4}])  # 90 bytes
    assert sorted(hand.get("r") or {}) == [2, 3, 4]
    hand.add("r", rows([5]), [{"seq": 5}])  # 120 bytes: over, the run is dropped
    assert hand.get("r") is None
    hand.add("r", rows([6]), [{"seq": 6}])  # dropped runs start again from nothing
    assert sorted(hand.get("r") or {}) == [6]
