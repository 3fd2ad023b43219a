"""bench/ runs end to end (its numbers are for people to read, not for tests to judge)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_bench(script: str, args: list[str], timeout: int) -> subprocess.CompletedProcess:
    """bench/``script`` with ``args``, which must end well (its stderr says why not)."""
    result = subprocess.run(
        [sys.executable, ROOT / "bench" / script, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stderr
    return result


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
    result = run_bench("probe_overhead.py", args, timeout=300)
    table = json.loads(out.read_text())
    for variant in ("bare", "probe@1", "probe@10", "watch@1"):
        assert table[variant]["ms"] > 0 and table[variant]["cpu_ms"] > 0, table
        assert variant in result.stdout
    assert table["bare"]["ratio"] == 1.0
    assert 0 < table["bytes_per_frame"] <= 2500


def test_sweep_bench_measures_scheduling_and_throughput(tmp_path):
    out = tmp_path / "sweep.json"
    args = ["--cells", "2", "--steps", "5", "--rounds", "2", "--json", str(out)]
    result = run_bench("sweep_overhead.py", args, timeout=600)
    table = json.loads(out.read_text())
    assert table["scheduling"]["cells"] == 2 and table["scheduling"]["wall_s"] > 0
    assert table["throughput"]["cells"] == 8 and table["throughput"]["ratio"] > 0
    assert len(table["throughput"]["rounds"]) == 2
    assert "per cell" in result.stdout and "2×2×2" in result.stdout


def test_time_to_result_bench_times_the_loop_and_a_served_run():
    args = ["--steps", "30", "--rounds", "1", "--no-busy", "--no-preset"]
    result = run_bench("time_to_result.py", args, timeout=600)
    lines = ("loop", "serve", "first frame", "serve / loop", "per round (ABBA)")
    lines += ("load before", "load after")
    for line in lines:
        assert line in result.stdout, result.stdout


def test_time_to_result_bench_sets_the_preset_beside_its_arms_as_hand_written_loops():
    args = ["--steps", "20", "--rounds", "1", "--no-busy", "--preset-steps", "20"]
    result = run_bench("time_to_result.py", args, timeout=600)
    for line in ("preset: loops, ideal", "preset all four / one run", "hand-written loops"):
        assert line in result.stdout, result.stdout


def test_thread_crossover_bench_prints_a_speed_up_per_size():
    args = ["--threads", "2", "--rounds", "1", "--budget-s", "0.001", "--sizes", "1"]
    result = run_bench("thread_crossover.py", args, timeout=300)
    assert "speed-up" in result.stdout and "3×100" in result.stdout


def test_encoding_bench_measures_every_stage_of_both_networks(tmp_path):
    out = tmp_path / "encoding.json"
    args = ["--steps", "40", "--rounds", "1", "--json", str(out)]
    run_bench("encoding.py", args, timeout=300)
    table = json.loads(out.read_text())
    assert set(table) == {"default 3×100", "preset BN 6×100"}
    for row in table.values():
        for stage in ("layers", "wire", "zlib 1", "zstd 1", "inflate zstd", "columns dicts"):
            assert row[stage] > 0, (stage, row)
        assert 0 < row["zstd bytes"] < row["JSON bytes"]
        assert 0 < row["columns held"] < row["columns dicts"]  # sliced arrays, no dict read


def test_server_gc_bench_sees_the_tuned_collector_collect_less_often(tmp_path):
    """Counts, not times: `normscope serve` tunes its collector (app.cli.serve), the
    defaults arm does not, so the young generation is collected far less often."""
    out = tmp_path / "gc.json"
    args = ["--rounds", "1", "--steps", "300", "--json", str(out)]
    run_bench("server_gc.py", args, timeout=600)
    rows = json.loads(out.read_text())
    [tuned], [defaults] = rows["tuned"], rows["defaults"]
    assert tuned["gen 0 collections"] * 5 < defaults["gen 0 collections"], rows
    assert tuned["server CPU s"] > 0 and tuned["preset wall s"] > 0
