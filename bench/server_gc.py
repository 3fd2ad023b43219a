"""The server's cyclic garbage collector over a 4-run preset: CPython's defaults vs
`normscope serve`'s own settings (app.cli.serve.tune_collector).

Each round starts `normscope serve` twice, once per arm (the order alternates), POSTs the
catalog's 4-run preset, waits until all four ended, and reads back from the server process:
the collections of each generation and the seconds they took (gc.callbacks), the server's
CPU seconds over the preset (/proc), and the preset's wall time. The collector's seconds are
CPU the server takes from the runs that share its cores.

    python bench/server_gc.py --rounds 2
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

ARMS = ("defaults", "tuned")


def child(arm: str, out: str, serve_args: list[str]) -> None:
    """`normscope serve` with a timer on every collection: SIGUSR1 zeroes it, SIGUSR2 writes
    it to ``out`` (uvicorn keeps SIGTERM and SIGINT for itself)."""
    import gc

    spent = {g: [0, 0.0] for g in range(3)}  # generation -> [collections, seconds]
    began = [0.0]

    def timer(phase: str, info: dict) -> None:
        if phase == "start":
            began[0] = time.perf_counter()
        else:
            spent[info["generation"]][0] += 1
            spent[info["generation"]][1] += time.perf_counter() - began[0]

    def zero(*_: object) -> None:
        for g in spent:
            spent[g] = [0, 0.0]

    gc.callbacks.append(timer)
    signal.signal(signal.SIGUSR1, zero)
    signal.signal(signal.SIGUSR2, lambda *_: Path(out).write_text(json.dumps(spent)))
    sys.path.insert(0, str(ROOT))
    from app.cli import main, serve

    if arm == "defaults":
        serve.tune_collector = lambda: None  # CPython's thresholds, nothing frozen
    sys.exit(main(serve_args))


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def one(arm: str, tmp: Path, steps: int | None) -> dict[str, float]:
    from time_to_result import Serve

    out = tmp / f"gc-{arm}.json"
    launcher = [sys.executable, __file__, "--child", arm, str(out)]
    serve = Serve(tmp / arm, launcher=launcher)
    try:
        presets = serve.client.get("/api/catalog").json()["presets"]
        preset = next(p for p in presets if len(p["runs"]) == 4)
        steps_of = {"steps": steps} if steps else {}
        runs = [{**run, "device": "cpu", **steps_of} for run in preset["runs"]]
        serve.wait_warm()
        before = cpu_seconds(serve.proc.pid)
        serve.proc.send_signal(signal.SIGUSR1)
        wall = serve.post_all_and_wait(runs)
        cpu = cpu_seconds(serve.proc.pid) - before
        serve.proc.send_signal(signal.SIGUSR2)
        while not out.exists():
            time.sleep(0.05)
    finally:
        serve.stop()
    spent = {int(g): v for g, v in json.loads(out.read_text()).items()}
    row = {"preset wall s": wall, "server CPU s": cpu}
    row["collector s"] = sum(s for _, s in spent.values())
    for g, (count, seconds) in spent.items():
        row[f"gen {g} collections"], row[f"gen {g} s"] = count, seconds
    return row


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], sys.argv[4:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, help="steps of each run (the preset's own if not)")
    parser.add_argument("--json", type=Path, help="also write every round's numbers here")
    args = parser.parse_args()
    print(f"load before: {os.getloadavg()}  cores: {os.cpu_count()}", flush=True)
    rows: dict[str, list[dict[str, float]]] = {arm: [] for arm in ARMS}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for arm in ARMS if r % 2 == 0 else ARMS[::-1]:
                (Path(tmp) / arm).mkdir(exist_ok=True)
                rows[arm].append(one(arm, Path(tmp), args.steps))
                shown = {k: round(v, 2) for k, v in rows[arm][-1].items()}
                print(f"round {r + 1} {arm:9} {shown}", flush=True)
    print(f"\nmedians over {args.rounds} rounds (load after: {os.getloadavg()})")
    keys = list(rows[ARMS[0]][0])
    print(f"{'':22}" + "".join(f"{arm:>12}" for arm in ARMS))
    for key in keys:
        values = [statistics.median(r[key] for r in rows[arm]) for arm in ARMS]
        print(f"{key:22}" + "".join(f"{v:12.2f}" for v in values))
    med = {a: statistics.median(r["collector s"] for r in rows[a]) for a in ARMS}
    print(f"the collector's seconds, tuned / defaults: {med['tuned'] / med['defaults']:.2f}×")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
