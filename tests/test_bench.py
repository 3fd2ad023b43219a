"""bench/ runs end to end (its numbers are for people to read, not for tests to judge)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_probe_overhead_bench_measures_every_variant(tmp_path):
    out = tmp_path / "bench.json"
    args = [
        "--device",
        "cpu",
        "--width",
        "16",
        "--depth",
        "2",
        "--batch",
        "8",
        "--steps",
        "2",
        "--rounds",
        "1",
        "--json",
        str(out),
    ]
    result = subprocess.run(
        [sys.executable, ROOT / "bench" / "probe_overhead.py", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    table = json.loads(out.read_text())
    for variant in ("bare", "probe@1", "probe@10", "watch@1"):
        assert table[variant]["ms"] > 0 and table[variant]["cpu_ms"] > 0, table
        assert variant in result.stdout
    assert table["bare"]["ratio"] == 1.0
    assert 0 < table["bytes_per_frame"] <= 2500
