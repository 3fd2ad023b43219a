"""Stream latency: a frame's creation in the worker -> its arrival at SSE clients on loopback.

Starts a real server (uvicorn + worker processes, a temporary data dir) and, for 1 and for N
concurrent viewers, trains one run while the viewers follow its event stream. The worker's
trainer is wrapped (through a sitecustomize on PYTHONPATH, bench only) to stamp every frame
with `bench_t_ns` = time.time_ns() when normcore.train.run yields it; a viewer subtracts that
from the moment the event's bytes arrive. Viewers are raw asyncio sockets with a regex, so
the measuring side costs little.

Also the training step rate with no viewer and with N viewers (steps between the first and
last frame over the time between their creation), interleaved rounds, medians reported.
Targets (issue 3): p95 < 100 ms with 20 viewers; step rate with 20 viewers within 5 %.

Note: the trainer itself hands frames over in bursts (a device ring of 32 probed steps, or
every 0.5 s); that buffering is before `bench_t_ns` and is not part of this latency.

    nice python bench/stream_latency.py --viewers 20 --steps 3000 --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]

STAMP = """
import time
import normcore.train as _train
_run = _train.run
def run(config, **kwargs):
    for frame in _run(config, **kwargs):
        frame["bench_t_ns"] = time.time_ns()  # an int: frames.clean keeps it exact
        yield frame
_train.run = run
"""

STAMP_RE = re.compile(rb'"bench_t_ns":(\d+)')
PROBE_RE = re.compile(rb'"time":([0-9.]+)')  # when the step was probed (before the trainer's
# device-side batching of up to 32 probed steps or 0.5 s)
END_RE = re.compile(rb'event: status\ndata: [^\n]*"status":"(?!queued|running)')


def start_server(data_dir: Path, port: int) -> subprocess.Popen:
    (data_dir / "stamp").mkdir(parents=True)
    (data_dir / "stamp" / "sitecustomize.py").write_text(STAMP)
    env = {
        **os.environ,
        "NORMSCOPE_DATA_DIR": str(data_dir),
        "NORMSCOPE_MAX_JOBS": "1",
        "PYTHONPATH": os.pathsep.join([str(data_dir / "stamp"), str(ROOT)]),
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "app.main:create_app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
    )
    for _ in range(600):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError("server did not start")


async def viewer(
    port: int, run_id: str, latencies: list[float], firsts: list[float], probed: list[float]
) -> None:
    """Follow one run's stream to its final status, recording each frame's latency (ms) from
    its yield and from its probe, and when the first frame arrived (time.time())."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"GET /api/runs/{run_id}/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Accept: text/event-stream\r\n\r\n".encode()
    )
    buffer = b""
    while True:
        data = await reader.read(1 << 16)
        now = time.time_ns()
        if not data:
            break
        buffer += data
        cut = buffer.rfind(b"\n\n")
        if cut < 0:
            continue
        complete, buffer = buffer[:cut], buffer[cut + 2 :]
        stamps = [(now - int(m.group(1))) / 1e6 for m in STAMP_RE.finditer(complete)]
        if stamps and not firsts:
            firsts.append(now / 1e9)
        latencies.extend(stamps)
        probed.extend(now / 1e6 - float(m.group(1)) * 1e3 for m in PROBE_RE.finditer(complete))
        if END_RE.search(complete):
            break
    writer.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def one_run(client: httpx.AsyncClient, port: int, config: dict, viewers: int, pid: int):
    """Train one run with `viewers` following it: (latencies ms, steps per second, server
    CPU seconds spent during the run)."""
    cpu = cpu_seconds(pid)
    posted = time.time()
    run = (await client.post("/api/runs", json=config)).json()
    latencies: list[float] = []
    firsts: list[float] = []
    probed: list[float] = []
    tasks = [
        asyncio.create_task(viewer(port, run["id"], latencies, firsts, probed))
        for _ in range(viewers)
    ]
    while (done := (await client.get(f"/api/runs/{run['id']}")).json())["status"] in (
        "queued",
        "running",
    ):
        await asyncio.sleep(0.5)  # polling costs the server CPU too: not too often
    if done["status"] != "completed":
        raise RuntimeError(f"bench run ended {done['status']}: {done['error']}")
    await asyncio.gather(*tasks)
    page = (await client.get(f"/api/runs/{run['id']}/frames", params={"max_points": 2})).json()
    first, last = page["data"][0], page["data"][-1]
    rate = (last["step"] - first["step"]) / ((last["bench_t_ns"] - first["bench_t_ns"]) / 1e9)
    server_cpu = cpu_seconds(pid) - cpu
    await client.delete(f"/api/runs/{run['id']}")
    return latencies, rate, server_cpu, (firsts[0] - posted if firsts else None), probed


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def bench(args: argparse.Namespace, port: int, pid: int) -> dict:
    config = {
        "depth": args.depth,
        "width": args.width,
        "dataset": args.dataset,
        "steps": args.steps,
        "probe_every": 1,
        "device": args.device,
    }
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
        await one_run(client, port, {**config, "steps": 200}, 1, pid)  # warm the worker pool
        lat: dict[int, list[float]] = {1: [], args.viewers: []}
        rates: dict[int, list[float]] = {0: [], args.viewers: []}
        cpu: dict[int, list[float]] = {0: [], 1: [], args.viewers: []}
        first_frame: list[float] = []
        from_probe: dict[int, list[float]] = {0: [], 1: [], args.viewers: []}
        for round_ in range(args.rounds):
            for n in (1, 0, args.viewers) if round_ % 2 == 0 else (1, args.viewers, 0):
                got, rate, server_cpu, first, probed = await one_run(client, port, config, n, pid)
                from_probe[n].extend(probed)
                if first is not None:
                    first_frame.append(first)
                print(
                    f"round {round_} viewers {n:2d}: {rate:8.1f} steps/s, {len(got)} frame "
                    f"arrivals, server CPU {server_cpu:.2f} s",
                    file=sys.stderr,
                )
                cpu[n].append(server_cpu)
                if n:
                    lat[n].extend(got)
                if n != 1:
                    rates[n].append(rate)
    result = {"config": config, "rounds": args.rounds}
    for n, values in lat.items():
        result[f"latency_ms_{n}_viewers"] = {
            "p50": round(pct(values, 0.5), 2),
            "p95": round(pct(values, 0.95), 2),
            "max": round(max(values), 2),
            "n": len(values),
        }
    base, loaded = statistics.median(rates[0]), statistics.median(rates[args.viewers])
    result["steps_per_s_no_viewer"] = round(base, 1)
    result[f"steps_per_s_{args.viewers}_viewers"] = round(loaded, 1)
    # Each round runs "none" and "N viewers" back to back: the median of the per-round ratios
    # cancels the slow drifts of a machine shared with other work better than two medians.
    ratios = [b / a for a, b in zip(rates[0], rates[args.viewers], strict=True)]
    result["rate_change_pct"] = round(100 * (statistics.median(ratios) - 1), 1)
    result["rate_change_pct_per_round"] = [round(100 * (r - 1), 1) for r in ratios]
    probe = from_probe[args.viewers]
    result[f"probe_to_viewer_ms_{args.viewers}_viewers"] = {
        "p50": round(pct(probe, 0.5), 1),
        "p95": round(pct(probe, 0.95), 1),
    }
    # POST -> first frame at a viewer, with a warm worker waiting:
    result["first_frame_s_median"] = round(statistics.median(first_frame), 3)
    # What viewers cost the server, independent of how loaded the machine is:
    result["server_cpu_s_per_run"] = {n: round(statistics.median(v), 2) for n, v in cpu.items()}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--viewers", type=int, default=20)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--width", type=int, default=100)
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        server = start_server(Path(tmp), port)
        try:
            result = asyncio.run(bench(args, port, server.pid))
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
