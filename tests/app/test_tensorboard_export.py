"""The TensorBoard export, read back with TensorBoard's own event reader: every scalar and
every histogram of the run, at its step."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import (  # noqa: E402
    EventAccumulator,
)

from app.tensorboard_export import RUN_NUMBERS, write_events  # noqa: E402
from normcore.probe.frame_numbers import LAYER_NUMBERS  # noqa: E402
from normcore.watch import Watch  # noqa: E402
from tests.utils.own_model import tapering_mlp  # noqa: E402
from tests.utils.server import ROOT  # noqa: E402


def watched_frames(steps: int = 5) -> list[dict]:
    own = tapering_mlp()
    watch = Watch(own.layers, activation="tanh", optimizer=own.opt, every=2)
    own.train(watch, steps)
    watch.close()
    return json.loads(json.dumps(watch.frames))  # as the wire carries them (NaN: null)


def read_back(directory) -> EventAccumulator:
    events = EventAccumulator(str(directory), size_guidance={"scalars": 0, "histograms": 0})
    events.Reload()
    return events


def check_round_trip(frames: list[dict], events: EventAccumulator) -> None:
    tags = events.Tags()
    steps = [f["step"] for f in frames]
    expected = {
        key: [(f["step"], f[key]) for f in frames if f[key] is not None] for key in RUN_NUMBERS
    }
    for frame in frames:
        for layer in frame["layers"]:
            for key in (*LAYER_NUMBERS, "nonfinite"):
                if layer.get(key) is not None:
                    expected.setdefault(f"{layer['name']}/{key}", []).append(
                        (frame["step"], layer[key])
                    )
    assert set(tags["scalars"]) == {tag for tag, values in expected.items() if values}
    for tag, values in expected.items():
        if values:
            got = [(e.step, e.value) for e in events.Scalars(tag)]
            assert [s for s, _ in got] == [s for s, _ in values], tag
            for (_, a), (_, b) in zip(got, values, strict=True):
                assert a == pytest.approx(b, rel=1e-6), tag  # (float32 in the file)
    names = [layer["name"] for layer in frames[0]["layers"]]
    assert sorted(tags["histograms"]) == sorted(f"{n}/hist" for n in names)
    for i, name in enumerate(names):
        got = events.Histograms(f"{name}/hist")
        assert [e.step for e in got] == steps
        for event, frame in zip(got, frames, strict=True):
            hist = frame["layers"][i]["hist"]
            value = event.histogram_value
            assert list(value.bucket) == [hist["under"], *hist["counts"], hist["over"]]
            width = (hist["hi"] - hist["lo"]) / len(hist["counts"])
            assert value.bucket_limit[0] == pytest.approx(hist["lo"])
            assert value.bucket_limit[-2] == pytest.approx(hist["hi"])
            assert value.bucket_limit[1] - value.bucket_limit[0] == pytest.approx(width)
            assert value.num == sum(value.bucket)
            mean = frame["layers"][i]["mean"]
            assert math.isclose(value.sum / value.num, mean, rel_tol=1e-6, abs_tol=1e-9)


def test_a_runs_frames_round_trip_through_tensorboards_reader(tmp_path):
    frames = watched_frames()
    assert [f["step"] for f in frames] == [1, 3, 5]
    path = write_events(frames, tmp_path / "tb")
    assert path.parent == tmp_path / "tb"
    check_round_trip(frames, read_back(tmp_path / "tb"))


def test_the_cli_exports_a_stored_run_for_tensorboard(server, tmp_path):
    frames = watched_frames()
    with server.client() as http:
        run = http.post(
            "/api/runs/watched",
            json=dict(label="tb", activation="tanh", layers=["fc1", "fc2"], every=2),
        ).json()
        answer = http.post(f"/api/runs/{run['id']}/frames", json=frames)
        assert answer.status_code == 200, answer.text
        stored = http.get(f"/api/runs/{run['id']}/export").text.splitlines()
        frames = [json.loads(line) for line in stored]  # as the store keeps them (rounded)
        body = http.get(f"/api/runs/{run['id']}/export", params={"format": "tensorboard"})
        assert body.status_code == 200
        assert body.headers["content-type"] == "application/octet-stream"
    (tmp_path / "api").mkdir()
    (tmp_path / "api" / "events.out.tfevents.1.normscope").write_bytes(body.content)
    check_round_trip(frames, read_back(tmp_path / "api"))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "app.cli",
            "export",
            run["id"],
            "--format",
            "tensorboard",
            str(tmp_path / "cli"),
            "--server",
            server.url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    check_round_trip(frames, read_back(tmp_path / "cli"))
