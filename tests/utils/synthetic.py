"""Synthetic stored runs for the downsampling tests and bench/views.py: frames in the wire
layout of normcore/frames.py, written straight into a Store (no training), so a
100,000-frame run costs seconds, not hours."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from normcore.frames import encode


def layer(name: str, i: int, bins: int, rng: Any) -> dict[str, Any]:
    centre = bins // 2 + int(8 * math.sin(i / 5000))  # a slowly drifting distribution
    counts = [0] * bins
    for b in range(max(0, centre - 6), min(bins, centre + 7)):
        counts[b] = 40 - 5 * abs(b - centre) + int(rng.random() * 3)
    noise = rng.random()
    return {
        "name": name,
        "hist": {"lo": -4.0, "hi": 4.0, "counts": counts, "under": 1, "over": 2},
        "nonfinite": 0,
        "mean": 0.01 * noise,
        "std": 1.0 + 0.1 * noise,
        "p15": -1.0 + 0.1 * noise,
        "p50": 0.05 * noise,
        "p85": 1.0 + 0.1 * noise,
        "sat": 0.2 + 0.05 * noise,
        "sat_pre": 0.3 + 0.05 * noise,
        "grad_norm": 0.01 * (1 + noise),
        "act_grad_norm": 0.02,
        "weight_norm": 3.0,
        "update_ratio": 1e-3 * (1 + noise),
        "g_mean": 1.0 + 0.01 * noise,
        "g_std": 0.01,
        "b_mean": 0.001 * noise,
        "b_std": 0.002,
        "w1_prev": 0.001 * noise,
        "w1_first": 0.1 * abs(math.sin(i / 5000)),
    }


def frames(
    n: int, layers: int = 8, bins: int = 64, eval_every: int = 100, seed: int = 0
) -> Iterator[dict[str, Any]]:
    """n frames, one per step from step 1; an evaluation every `eval_every` steps and on the
    last; the last frame says "completed"."""
    import random

    rng = random.Random(seed)
    names = [f"h{k + 1}" for k in range(layers)]
    for seq in range(n):
        step = seq + 1
        last = seq == n - 1
        noise = rng.random()
        ev = None
        if eval_every and (step % eval_every == 0 or step == 1 or last):
            ev = {
                "loss": 1.0 / (1 + step / 1000),
                "acc": 1 - 0.5 / (1 + step / 1000),
                "loss_batch": None,
                "acc_batch": None,
            }
        yield {
            "seq": seq,
            "step": step,
            "time": 1764130000.0 + seq / 100,
            "status": "completed" if last else "running",
            "device": "cpu",
            "loss": 2.0 / (1 + step / 1000) + 0.1 * noise,
            "acc": 0.5 + 0.4 * noise,
            "lr": 0.1,
            "steps_per_s": 800.0,
            "eval": ev,
            "ics": None,
            "layers": [layer(name, seq, bins, rng) for name in names],
        }


def store_run(store: Any, n: int, edit: Any = None, batch: int = 2000, **kw: Any) -> dict[str, Any]:
    """A completed run of n synthetic frames in `store`; `edit(frame)` may change a frame
    (a spike) before it is stored."""
    from app.store import Finish, Frames, Start

    config = {"steps": n, "model": "mlp", "depth": kw.get("layers", 8)}
    run = store.create_run(config, f"synthetic {n} frames")
    store.apply([Start(run["id"], 0.0)])
    rows: list[tuple[int, int, bytes]] = []
    last: dict[str, Any] = {}
    for frame in frames(n, **kw):
        if edit is not None:
            edit(frame)
        rows.append((frame["seq"], frame["step"], encode(frame)))
        last = frame
        if len(rows) >= batch:
            store.apply([Frames(run["id"], rows, {"step": frame["step"], "loss": frame["loss"]})])
            rows = []
    if rows:
        store.apply([Frames(run["id"], rows, {"step": last["step"], "loss": last["loss"]})])
    store.apply([Finish(run["id"], "completed", None, 1.0)])
    return store.get_run(run["id"])
