"""Time to result on a CPU: a hand-written PyTorch loop vs the same run through `normscope serve`.

All in one process tree, side by side, in rounds (the variants alternate inside a round, so a
noisy neighbour slows all of them alike; medians over rounds are printed):

  loop          the loop a user would write: the dashboard's default network (mlp 3×100
                sigmoid, digits, batch 60, SGD lr 0.1), 2000 steps, 1 intra-op thread, no
                probes; data loaded and model built before the clock starts
  serve         the same config POSTed to `normscope serve` with default settings (probing
                every step): POST -> the run's stream says `completed`
  first frame   POST -> the first frame event on the run's SSE stream, warm workers waiting
  per round     loop, serve, serve, loop (ABBA): the round's ratio is its two serves over
                its two loops, so a host whose speed drifts within the round (this 2-core
                machine's moves ±20% from minute to minute) slows both sides alike; printed
                as the median and range of the rounds beside the ratio of the medians
  + busy core   loop and serve again while a child process of the bench keeps one core busy
                (a bounded busy loop, ended after the phase)
  preset ×4     the catalog's 4-run preset (none / BN / LN / RMS on 6×100 tanh) POSTed
                together, until all four ended, vs its first run alone (the issue's measure;
                it is the cheapest: BN, LN and RMS cost 1.2-1.5× as much), vs the mean of
                the four alone and vs the ideal for 2 cores (the four alone, summed, / 2);
                and the same ideal for the four arms as hand-written loops (torch's own
                norm layers, no NormScope: what the 2.5× target meets before any probe)

Targets (issue 13): serve <= 1.5× loop idle, <= 2.0× with a busy core; preset ×4 <= 2.5×
one run alone; first frame <= 0.5 s. The machine's load (`os.getloadavg`) is printed before
and after: on a shared machine say so next to the numbers.

    python bench/time_to_result.py --rounds 3
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_RUN = {"steps": 2000, "device": "cpu"}  # every other field: the dashboard's default


def hand_written_loop(steps: int, run: dict | None = None) -> float:
    """Seconds for `steps` SGD steps of the default network (or of an MLP ``run`` of the
    catalog: depth × [linear, its norm, activation], digits), the way a user writes it."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    from normcore.config import RunConfig
    from normcore.data import load_dataset

    cfg = RunConfig.model_validate({**DEFAULT_RUN, **(run or {})})
    assert cfg.model == "mlp" and cfg.dataset == "digits" and cfg.placement == "before", cfg
    torch.set_num_threads(1)
    torch.manual_seed(0)
    data = load_dataset("digits")
    norms = {"batch": nn.BatchNorm1d, "layer": nn.LayerNorm, "rms": nn.RMSNorm}
    activation = {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU}[cfg.activation]
    layers: list[nn.Module] = []
    for i in range(cfg.depth):
        layers.append(nn.Linear(64 if i == 0 else cfg.width, cfg.width))
        if cfg.norm != "none":
            layers.append(norms[cfg.norm](cfg.width))
        layers.append(activation())
    model = nn.Sequential(*layers, nn.Linear(cfg.width, 10))
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr)
    n, b = len(data.train_y), cfg.batch_size
    order = torch.randperm(n)
    start = time.perf_counter()
    for step in range(steps):
        at = (step * b) % (n - b)
        idx = order[at : at + b]
        x, y = data.train_x[idx], data.train_y[idx]
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return time.perf_counter() - start


def _busy(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:  # bounded: ends even if the bench dies
        pass


class Serve:
    """`normscope serve` with default settings on a free loopback port and a temp data dir
    (``launcher``: what runs the CLI, ``python -m app.cli`` unless another bench wraps it)."""

    def __init__(self, data_dir: Path, launcher: list[str] | None = None, env: dict | None = None):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("NORMSCOPE_")} | (env or {})
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        self.log = open(data_dir / "serve.log", "w")  # noqa: SIM115  (closed in stop)
        command = [
            *(launcher or [sys.executable, "-m", "app.cli"]),
            "serve",
            "--port",
            str(self.port),
            "--data-dir",
            str(data_dir),
            "--log-level",
            "warning",
        ]
        self.proc = subprocess.Popen(
            command, env=env, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT
        )
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=60)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if self.client.get("/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        self.wait_warm()

    def wait_warm(self, timeout: float = 120) -> None:
        """Until no run is active and a warm worker waits (its warm-up done: it answers)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            jobs = self.client.get("/api/jobs").json()
            if jobs["count"] == 0 and jobs["warm_workers"] >= 1 and jobs.get("warm_ready", 1):
                return
            time.sleep(0.1)
        raise RuntimeError(f"no warm worker within {timeout}s: {jobs}")

    def post_and_follow(self, config: dict) -> tuple[float, float, str]:
        """(seconds to the first frame event, seconds to the end, final status) after POST."""
        start = time.perf_counter()
        run = self.client.post("/api/runs", json=config)
        run.raise_for_status()
        first = None
        with self.client.stream("GET", f"/api/runs/{run.json()['id']}/events") as stream:
            event = None
            for line in stream.iter_lines():
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: ") and event == "frame" and first is None:
                    first = time.perf_counter() - start
                elif line.startswith("data: ") and event == "status":
                    status = json.loads(line[6:])["status"]
                    if status not in ("queued", "running"):
                        return first or float("nan"), time.perf_counter() - start, status
        raise RuntimeError("the stream ended before the run did")

    def post_all_and_wait(self, configs: list[dict]) -> float:
        """Seconds from POSTing every config to every run ended."""
        start = time.perf_counter()
        ids = []
        for config in configs:
            response = self.client.post("/api/runs", json=config)
            response.raise_for_status()
            ids.append(response.json()["id"])
        for run_id in ids:
            while self.client.get(f"/api/runs/{run_id}").json()["status"] in ("queued", "running"):
                time.sleep(0.05)
        return time.perf_counter() - start

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.log.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--no-busy", action="store_true", help="skip the busy-core phase")
    parser.add_argument("--no-preset", action="store_true", help="skip the 4-run preset")
    parser.add_argument("--preset-steps", type=int, help="the preset's runs' steps (the catalog's)")
    args = parser.parse_args()
    config = {**DEFAULT_RUN, "steps": args.steps}
    print(f"load before: {os.getloadavg()}  cores: {os.cpu_count()}", flush=True)
    results: dict[str, list[float]] = {}
    paired: dict[str, list[float]] = {}  # each round's ABBA ratio

    def note(name: str, value: float) -> None:
        results.setdefault(name, []).append(value)
        print(f"  {name:<24} {value:8.3f} s", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        serve = Serve(Path(tmp))
        try:
            presets = serve.client.get("/api/catalog").json()["presets"]
            preset = next(p for p in presets if len(p["runs"]) == 4)
            steps = {"steps": args.preset_steps} if args.preset_steps else {}
            preset_runs = [{**run, "device": "cpu", **steps} for run in preset["runs"]]

            def abba(suffix: str) -> float:
                """loop, serve, serve, loop -> the round's serves over its loops."""
                loops, serves = [hand_written_loop(args.steps)], []
                for _ in range(2):
                    serve.wait_warm()
                    first, total, status = serve.post_and_follow(config)
                    assert status == "completed", status
                    serves.append(total)
                    if not suffix:
                        note("first frame", first)
                loops.append(hand_written_loop(args.steps))
                for value in loops:
                    note(f"loop{suffix}", value)
                for value in serves:
                    note(f"serve{suffix}", value)
                return sum(serves) / sum(loops)

            for r in range(args.rounds):
                print(f"round {r + 1}", flush=True)
                paired.setdefault("serve / loop", []).append(abba(""))
                if not args.no_busy:
                    busy = mp.get_context("spawn").Process(target=_busy, args=(300.0,))
                    busy.start()
                    try:
                        ratio = abba(" + busy core")
                    finally:
                        busy.kill()
                        busy.join()
                    paired.setdefault("serve + busy core / loop", []).append(ratio)
                if not args.no_preset:
                    loops = [hand_written_loop(run["steps"], run) for run in preset_runs]
                    note("preset: loops, ideal", sum(loops) / 2)
                    note("preset: loop, first run", loops[0])
                    alone = []
                    for run in preset_runs:
                        serve.wait_warm()
                        alone.append(serve.post_all_and_wait([run]))
                    note("preset: one run", alone[0])
                    note("preset: mean alone", statistics.mean(alone))
                    note("preset: ideal, 2 cores", sum(alone) / 2)
                    serve.wait_warm()
                    note("preset: all four", serve.post_all_and_wait(preset_runs))
        finally:
            serve.stop()
    med = {name: statistics.median(values) for name, values in results.items()}
    print(f"\nmedians over {args.rounds} rounds (load after: {os.getloadavg()})")
    for name, value in med.items():
        print(f"  {name:<24} {value:8.3f} s")
    print("ratios (target):")
    print(f"  serve / loop                   {med['serve'] / med['loop']:6.2f}×  (<= 1.5)")
    _print_paired("serve / loop", paired)
    if "serve + busy core" in med:
        ratio = med["serve + busy core"] / med["loop"]
        print(f"  serve + busy core / loop       {ratio:6.2f}×  (<= 2.0)")
        _print_paired("serve + busy core / loop", paired)
        ratio = med["loop + busy core"] / med["loop"]
        print(f"  loop + busy core / loop        {ratio:6.2f}×  (the load's own cost)")
    if "preset: all four" in med:
        ratio = med["preset: all four"] / med["preset: one run"]
        print(f"  preset all four / one run      {ratio:6.2f}×  (<= 2.5)")
        ratio = med["preset: all four"] / med["preset: mean alone"]
        print(f"  preset all four / mean alone   {ratio:6.2f}×  (the runs' costs differ)")
        ratio = med["preset: ideal, 2 cores"] / med["preset: one run"]
        print(f"  ideal / one run                {ratio:6.2f}×  (the best a 2-core machine does)")
        ratio = med["preset: loops, ideal"] / med["preset: loop, first run"]
        print(f"  the same, hand-written loops   {ratio:6.2f}×  (the norms' own cost, no probe)")
    print(f"  first frame after POST         {med['first frame']:6.3f} s  (<= 0.5)")


def _print_paired(name: str, paired: dict[str, list[float]]) -> None:
    """The rounds' ABBA ratios of ``name``: their median and range."""
    ratios = paired[name]
    span = f"{min(ratios):.2f}-{max(ratios):.2f}"
    print(f"    per round (ABBA)             {statistics.median(ratios):6.2f}×  (range {span})")


if __name__ == "__main__":
    main()
