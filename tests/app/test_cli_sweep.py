"""`normscope sweep`: locally on the server's own machinery, or against a server; a table of
the metric over the grid; invalid sweeps refused before anything runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from app.cli import build_parser
from app.cli.sweep import request_from_args, table
from tests.utils.server import ROOT

QUICK = [
    "--base",
    "depth=2",
    "--base",
    "width=8",
    "--base",
    "steps=10",
    "--base",
    "eval_every=10",
    "--base",
    "dataset=moons",
]


def sweep_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", "sweep", *args],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "NORMSCOPE_WARM_WORKERS": "0", **env},
    )


def test_flags_become_the_sweep_request():
    args = build_parser().parse_args(
        [
            "sweep",
            "--grid",
            "norm=batch,group",
            "--grid",
            "batch_size=2,4",
            "--base",
            "lr=0.05",
            "--seeds",
            "3",
            "--metric",
            "loss",
            "--skip-invalid",
        ]
    )
    assert request_from_args(args) == {
        "base": {"lr": 0.05},
        "grid": {"norm": ["batch", "group"], "batch_size": [2, 4]},
        "seeds": 3,
        "metric": "loss",
        "skip_invalid": True,
    }
    preset = request_from_args(build_parser().parse_args(["sweep", "--preset", "wu-he"]))
    assert preset["grid"]["batch_size"] == [2, 4, 8, 16, 32, 64]
    for bad, message in [
        (["--grid", "norm"], "write FIELD=VALUE"),
        ([], "at least one --grid"),
        (["--base-preset", "nope", "--grid", "depth=2"], "'nope' is unknown"),
    ]:
        with pytest.raises(ValueError, match=message):
            request_from_args(build_parser().parse_args(["sweep", *bad]))


def test_local_sweep_prints_the_table_and_writes_json(tmp_path):
    out = tmp_path / "sweep.json"
    done = sweep_cli(
        *QUICK,
        "--grid",
        "norm=none,layer",
        "--seeds",
        "2",
        "--json",
        str(out),
        env={"NORMSCOPE_DATA_DIR": str(tmp_path / "data")},
    )
    assert done.returncode == 0, done.stderr
    sweep = json.loads(out.read_text())
    assert sweep["status"] == "completed" and sweep["cells_done"] == 4
    assert "4/4 cells" in done.stderr  # the progress line
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["norm", "eval_acc", "(mean", "±", "std)", "n"]
    assert lines[-1] == f"sweep {sweep['id']}: completed, 4/4 cells"
    assert table(sweep) == done.stdout.rstrip("\n")


def test_invalid_sweep_exits_2_naming_the_cell(tmp_path):
    done = sweep_cli(
        *QUICK,
        "--grid",
        "norm=batch",
        "--grid",
        "batch_size=1,8",
        env={"NORMSCOPE_DATA_DIR": str(tmp_path / "data")},
    )
    assert done.returncode == 2
    assert "cell 0 (norm='batch', batch_size=1)" in done.stderr
    assert "skip_invalid" in done.stderr


def test_sweep_against_a_server(server):
    done = sweep_cli(*QUICK, "--grid", "norm=none,rms", "--server", server.url, "-q", env={})
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1].endswith("completed, 2/2 cells")
