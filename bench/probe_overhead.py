"""Probe overhead: a bare training step vs the same step with NormScope's probes on.

Variants, timed in one process with interleaved rounds (the order rotates every round, so a
noisy neighbour slows all of them alike; the median round is reported):
  bare       forward, backward, SGD step
  probe@1    the same with every probe on, every step (normcore.probe.probe.Probe, frames built)
  probe@10   probing every 10th step
  watch@1    every step through normcore.watch.Watch, as a model of one's own is probed:
             forward hooks on the linear and norm modules, one Probe per layer, frames built
  tensorboard  TensorBoard's add_histogram of the same tensors (each layer's activation input
             and weight gradient) every step, when tensorboard is installed; timed in a
             phase of its own against bare, since it slows whatever runs after it
The ratio to bare is the median over rounds of the per-round ratio, in wall time and in process
CPU time (less distorted by other processes); on a shared machine use many short rounds
(--steps 1 --rounds 40), --threads 1 and `nice`.

On CUDA it also counts host syncs (torch.cuda.set_sync_debug_mode) in an untimed pass of
2 × PROBE_ROWS steps: per step that does not flush (the target is 0), and within the flushes
(one per PROBE_ROWS probed steps: the copy to the host).
It prints the size of one encoded frame (normcore.frames.encode).

    nice python bench/probe_overhead.py --device cpu --width 1024 --depth 8 --batch 256

``--path`` picks the probe's recorder (normcore.probe.recorder): ``in-hooks`` (the compiled
kernels in the hooks, a CPU's default), ``after-backward`` (the kernels at collect, on the
copies the hooks took), ``torch`` (a CPU without numba: torch's batch at collect, on the
copies) or ``staged`` (CUDA's default: the batch on fixed buffers, a CUDA graph there).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import warnings

import torch
import torch.nn.functional as F

from normcore.config import RunConfig
from normcore.frames import PROBE_ROWS, encode
from normcore.models import build_model
from normcore.probe.probe import Probe
from normcore.probe.recorder import PATHS
from normcore.train import resolve_device
from normcore.watch import Watch


def make_step(args, device, variant: str):
    """A closure running one training step of ``variant`` on its own, identically seeded model."""
    torch.manual_seed(0)
    shape = dict(width=args.width, depth=args.depth, batch_size=args.batch)
    cfg = RunConfig.model_validate(dict(shape, norm=args.norm, activation=args.activation))
    model = build_model(cfg, (args.width,), 10).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, foreach=True)
    x = torch.randn(args.batch, args.width, device=device)
    y = torch.randint(0, 10, (args.batch,), device=device)
    every = {"probe@1": 1, "probe@10": 10}.get(variant, 0)
    probe = (
        Probe(
            model.probe_points(),
            activation=cfg.activation,
            bins=args.bins,
            rows=PROBE_ROWS,
            device=device,
            optimizer=opt,
            path=args.path,
        )
        if every
        else None
    )
    writer, acts = None, []
    if variant == "tensorboard":
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(tempfile.mkdtemp(prefix="probe-bench-tb-"))
        for p in model.probe_points():
            p.act.register_forward_hook(lambda m, a, out: acts.append(out.detach()))
    points = model.probe_points()
    state = {"n": 0}
    if variant == "watch@1":
        return _watched_step(model, cfg, opt, x, y, args), None, lambda: None

    def step() -> bool:
        """One step; True when it flushed the probe's ring buffer (the one host sync)."""
        state["n"] += 1
        probing = probe is not None and (state["n"] - 1) % every == 0
        if probe is not None and probing:
            probe.arm()
        acts.clear()
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if probe is not None and probing:
            probe.collect(loss, logits, y)
        opt.step()
        flushed = False
        if probe is not None and probing:
            probe.after_step()
            if probe.full():
                probe.flush()  # host copy + frame layers, as the trainer does
                flushed = True
        if writer is not None:
            for p, a in zip(points, acts, strict=True):
                writer.add_histogram(f"{p.name}/act_in", a, state["n"])
                writer.add_histogram(f"{p.name}/grad", p.weight.grad, state["n"])
        return flushed

    def settle() -> None:
        """Untimed, after a variant's round: TensorBoard's writer thread finishes its backlog
        here instead of slowing the next variant down."""
        if writer is not None:
            writer.flush()

    return step, probe, settle


def _watched_step(model, cfg, opt, x, y, args):
    """A step of one's own loop around a Watch of the model's blocks (frames discarded)."""
    layers = {f"h{i + 1}": (b.linear, b.norm) for i, b in enumerate(model.blocks)}
    watch = Watch(
        layers,
        activation=cfg.activation,
        optimizer=opt,
        bins=args.bins,
        on_frame=lambda frame: None,
        path=args.path,
    )

    def step() -> bool:
        with watch.step():
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            watch.measure(loss, logits, y)
            opt.step()
        return False

    return step


def timed(step, n: int, device) -> tuple[float, float]:
    """(wall ms, process CPU ms) per step over n steps. CPU time is what a busy shared machine
    distorts least: time spent descheduled does not count."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t, c = time.perf_counter(), time.process_time()
    for _ in range(n):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - t) / n * 1e3, (time.process_time() - c) / n * 1e3


def copy_cost(args, device, reps: int = 200) -> float:
    """µs of process CPU time to copy one layer's output into a probe's staging row, as the
    deferred paths do in the hook (median of 20 rounds of ``reps`` copies)."""
    t = torch.randn(args.batch, args.width, device=device)
    rows = torch.empty(2, t.numel(), device=device)
    samples = []
    for _ in range(20):
        c = time.process_time()
        for _ in range(reps):
            rows[1].view(t.shape).copy_(t)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        samples.append((time.process_time() - c) / reps * 1e6)
    return statistics.median(samples)


def count_syncs(step, n: int) -> tuple[float, int]:
    """(host syncs per step that does not flush, syncs in all flushes) that torch's sync debug
    mode reports over n steps (CUDA only)."""
    in_steps = in_flushes = plain = 0
    torch.cuda.set_sync_debug_mode("warn")
    try:
        for _ in range(n):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                flushed = step()
            syncs = sum("synchroniz" in str(w.message) for w in caught)
            in_flushes += syncs if flushed else 0
            in_steps += 0 if flushed else syncs
            plain += not flushed
    finally:
        torch.cuda.set_sync_debug_mode("default")
    return in_steps / max(plain, 1), in_flushes


def profile(step, variant: str, device) -> None:
    """torch.profiler's top ops (by self CPU time, and kernel count) over 10 steps."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with torch_profile(activities=activities) as prof:
        timed(step, 10, device)
    events = prof.key_averages()
    launches = sum(e.count for e in events if e.key in ("cudaLaunchKernel", "cuLaunchKernel"))
    print(f"--- profile: {variant}, 10 steps, {launches / 10:.0f} kernel launches per step")
    print(events.table(sort_by="self_cpu_time_total", row_limit=15))


def measure(steps: dict, variants: list[str], args, device, rounds: int | None = None) -> dict:
    """Interleaved rounds (the order rotates) -> {variant: {ms, ratio, cpu_ms, cpu_ratio}}."""
    wall: dict[str, list[float]] = {v: [] for v in variants}
    cpu: dict[str, list[float]] = {v: [] for v in variants}
    for r in range(rounds or args.rounds):
        order = variants[r % len(variants) :] + variants[: r % len(variants)]
        for v in order:
            steps[v][0]()  # untimed: absorbs what the previous variant left behind
            w, c = timed(steps[v][0], args.steps, device)
            steps[v][2]()  # settle
            wall[v].append(w)
            cpu[v].append(c)

    def paired(t: list[float], base: list[float]) -> float:
        """Median over rounds of variant / bare in the same round: drifting load cancels."""
        return statistics.median(a / b for a, b in zip(t, base, strict=True))

    return {
        v: {
            "ms": statistics.median(wall[v]),
            "ratio": paired(wall[v], wall["bare"]),
            "cpu_ms": statistics.median(cpu[v]),
            "cpu_ratio": paired(cpu[v], cpu["bare"]),
        }
        for v in variants
    }


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--width", type=int, default=1024)
    ap.add_argument("--depth", type=int, default=8)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--steps", type=int, default=20, help="timed steps per variant per round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--bins", type=int, default=64)
    ap.add_argument("--norm", default="batch")
    ap.add_argument("--activation", default="tanh")
    ap.add_argument("--path", choices=PATHS, help="the probe's recorder (default: the device's)")
    ap.add_argument("--no-tensorboard", action="store_true", help="skip its variant")
    ap.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    ap.add_argument("--json", metavar="FILE", help="write {variant: {ms, ratio, ...}} here")
    ap.add_argument(
        "--profile", action="store_true", help="also print the top ops of bare and probed steps"
    )
    args = ap.parse_args(argv)
    device = resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    variants = ["bare", "probe@1", "probe@10", "watch@1"]
    try:
        import tensorboard  # noqa: F401

        if not args.no_tensorboard:
            variants.append("tensorboard")
    except ImportError:
        print("tensorboard is not installed: skipping its variant")
    steps = {v: make_step(args, device, v) for v in variants}
    for step, _, _ in steps.values():  # warm-up: allocator, lazy imports, histogram edges
        timed(step, 3, device)
    # TensorBoard slows whatever runs after it (its writer thread, numpy's BLAS threads), so
    # it gets its own phase, paired with bare steps measured in that phase
    result = measure(steps, ["bare", "probe@1", "probe@10", "watch@1"], args, device)
    if "tensorboard" in steps:
        rounds = max(3, args.rounds // 4)
        result["tensorboard"] = measure(steps, ["bare", "tensorboard"], args, device, rounds)[
            "tensorboard"
        ]
    if device.type == "cuda":
        for v in result:
            per_step, flushes = count_syncs(steps[v][0], 2 * PROBE_ROWS)
            result[v]["syncs_per_step"], result[v]["syncs_in_flushes"] = per_step, flushes
    if args.profile:
        for v in ("bare", "probe@1"):
            profile(steps[v][0], v, device)
    step, probe, _ = steps["probe@1"]
    probe.flush()
    step()  # one more probed step, its frame built by hand as normcore.train does
    layers, loss, acc, _ = probe.flush()[-1]
    frame = dict(
        seq=0,
        step=1,
        time=time.time(),
        status="running",
        device=device.type,
        loss=loss,
        acc=acc,
        lr=0.01,
        steps_per_s=1.0,
        eval=None,
        ics=None,
        layers=layers,
    )
    size = len(encode(frame))
    print(
        f"{device.type} ({torch.get_num_threads()} threads)  width {args.width}  depth "
        f"{args.depth}  batch {args.batch}  {args.norm}+{args.activation}  {probe.recorder.path}  "
        f"{args.rounds} rounds × {args.steps} steps, median"
    )
    syncs = "  syncs/step (+ in flushes)" if device.type == "cuda" else ""
    print(f"{'variant':<12} {'ms/step':>9} {'× bare':>8} {'cpu ms':>9} {'× bare':>8}{syncs}")
    for v, row in result.items():
        syncs = ""
        if "syncs_per_step" in row:
            syncs = f"  {row['syncs_per_step']:.3f} (+{row['syncs_in_flushes']})"
        print(
            f"{v:<12} {row['ms']:>9.2f} {row['ratio']:>8.3f} {row['cpu_ms']:>9.2f} "
            f"{row['cpu_ratio']:>8.3f}{syncs}"
        )
    print(f"bytes per frame ({args.depth} layers, {args.bins} bins, encoded): {size}")
    print(
        f"staging copy of one layer at hook time (deferred paths; in-place ops after it): "
        f"{copy_cost(args, device):.1f} µs CPU per layer ({args.batch}×{args.width} float32)"
    )
    if device.type == "cuda":
        graphs = (probe.recorder.graph, probe._finish_graph)
        print(
            "probe@1 CUDA graphs (statistics, finish): "
            + ", ".join(
                f"{g.replays} replayed, {g.eager} eager, {g.captures} captured" for g in graphs
            )
        )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({**result, "bytes_per_frame": size}, fh, indent=1)
    return result


if __name__ == "__main__":
    main()
