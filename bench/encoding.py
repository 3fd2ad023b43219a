"""The server's CPU per frame, by stage: what a run's frames cost the process that stores them.

A local worker hands the server each flush's rows (``run(layers_later=True)``); the server's
job thread builds the frames' layers, writes their wire JSON and compresses it, and the
recorder writes a chunk's columns from the frames it holds. On a CPU those stages share the
cores with the runs, so each µs here is taken from training when cores are busy (a preset's
four runs on two cores). Measured per frame, thread CPU time, the best of ``--rounds``, for
the dashboard's default network and for the 4-run preset's BN run (6×100 tanh):

  layers      the flush's frame layers from its rows (``FlushLayers.steps``: its arrays,
              ``layer_table``, then their dicts)
  wire        the frame's cleaning and JSON (``normcore.frames.wire``)
  zlib 1      zlib at level 1, its fastest (how frames were stored before)
  zstd 1      ``normcore.frames.pack`` (how frames are stored now)
  inflate     reading a blob back (SSE replay, exports, views of the open tail)
  columns     ``app.frame_columns.from_frames`` over the frames, as a chunk's are written:
    dicts     from the layers' dicts (a stored chunk's blobs decoded; a live run's before)
    held      from the rows of the flushes' arrays the server holds (a live run's now)

    python bench/encoding.py --steps 512 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def per_frame(fn: Callable[[], object], frames: int, rounds: int) -> float:
    """Best thread CPU µs per frame of ``fn`` over ``rounds``."""
    best = float("inf")
    for _ in range(rounds):
        start = time.thread_time()
        fn()
        best = min(best, time.thread_time() - start)
    return best / frames * 1e6


def measure(config: dict, rounds: int) -> dict[str, float]:
    from app.frame_arrays import from_frames
    from normcore.frames import pack, unpack, wire
    from normcore.probe.frame_numbers import FlushLayers
    from normcore.train import run

    frames = list(run(config, rounded=True, layers_later=True))
    flushes = list({id(f["layers"].flush): f["layers"].flush for f in frames}.values())
    n = len(frames)

    # each round builds the layers anew, from fresh flushes over the same rows
    row = {"layers": per_frame(lambda: [FlushLayers(*f.args).steps() for f in flushes], n, rounds)}
    built = [{**f, "layers": f["layers"].built()} for f in frames]
    row["wire"] = per_frame(lambda: [wire(f, layers_rounded=True) for f in built], n, rounds)
    cleaned, texts = zip(*(wire(f, layers_rounded=True) for f in built), strict=True)
    data = [t.encode() for t in texts]
    old, new = [zlib.compress(d, 1) for d in data], [pack(d) for d in data]
    assert all(unpack(b) == d for b, d in zip(new, data, strict=True))
    row["zlib 1"] = per_frame(lambda: [zlib.compress(d, 1) for d in data], n, rounds)
    row["zstd 1"] = per_frame(lambda: [pack(d) for d in data], n, rounds)
    row["inflate zlib"] = per_frame(lambda: [zlib.decompress(b) for b in old], n, rounds)
    row["inflate zstd"] = per_frame(lambda: [unpack(b) for b in new], n, rounds)
    held = [{**c, "layers": f["layers"].row()} for c, f in zip(cleaned, frames, strict=True)]
    row["columns dicts"] = per_frame(lambda: from_frames(list(cleaned)), n, rounds)
    row["columns held"] = per_frame(lambda: from_frames(held), n, rounds)
    row["JSON bytes"] = statistics.mean(map(len, data))
    row["zlib bytes"] = statistics.mean(map(len, old))
    row["zstd bytes"] = statistics.mean(map(len, new))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the table here")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    nets = {
        "default 3×100": {"steps": args.steps, "device": "cpu"},
        "preset BN 6×100": {
            "depth": 6,
            "activation": "tanh",
            "norm": "batch",
            "steps": args.steps,
            "device": "cpu",
        },
    }
    print(f"load before: {os.getloadavg()}  (µs a frame, thread CPU, best of {args.rounds})")
    table = {name: measure(config, args.rounds) for name, config in nets.items()}
    keys = list(next(iter(table.values())))
    print(f"{'':16}" + "".join(f"{name:>18}" for name in table))
    for key in keys:
        print(f"{key:16}" + "".join(f"{row[key]:18.1f}" for row in table.values()))
    for name, row in table.items():
        print(
            f"{name}: zstd {row['zlib 1'] / row['zstd 1']:.1f}× faster than zlib 1, "
            f"{row['zstd bytes'] / row['zlib bytes']:.2f}× its bytes"
        )
    print(f"load after: {os.getloadavg()}")
    if args.json:
        args.json.write_text(json.dumps(table, indent=1))


if __name__ == "__main__":
    main()
