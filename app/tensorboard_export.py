"""A run's frames as a TensorBoard event file, so a run opens in TensorBoard.

Scalars: the frame's ``loss``, ``acc``, ``lr``, ``steps_per_s``, ``eval/<key>`` and, per layer,
``<layer>/<number>`` for each of the frame layer's numbers (normcore.frames: mean, std,
percentiles, saturation, gradient norms, update ratio, the norm's g and b, drift, nonfinite).
Histograms: ``<layer>/hist``, the frame's own bins (TensorBoard's buckets end at their right
edges: the underflow bucket ends at ``lo``, the overflow bucket one bin width past ``hi``).
Each at the frame's training step. Values a frame holds as null (non-finite) are left out.

The writer is TensorBoard's own (through torch.utils.tensorboard), an optional dependency:
``pip install 'normscope[tensorboard]'``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from normcore.probe.frame_numbers import LAYER_NUMBERS

RUN_NUMBERS = ("loss", "acc", "lr", "steps_per_s")


def histogram(hist: dict[str, Any], mean: float | None, std: float | None) -> dict[str, Any]:
    """The frame layer's bins as ``add_histogram_raw``'s arguments (see the module doc)."""
    lo, hi, counts = hist["lo"], hist["hi"], [c or 0 for c in hist["counts"]]
    width = (hi - lo) / len(counts)
    limits = [lo] + [lo + width * (k + 1) for k in range(len(counts))] + [hi + width]
    buckets = [hist.get("under") or 0, *counts, hist.get("over") or 0]
    num = sum(buckets)
    filled = [k for k, c in enumerate(buckets) if c]
    lower = [lo - width, *limits[:-1]]  # each bucket's left edge
    m, s = mean or 0.0, std or 0.0
    return dict(
        min=lower[filled[0]] if filled else lo,
        max=limits[filled[-1]] if filled else hi,
        num=num,
        sum=m * num,
        sum_squares=(s * s + m * m) * num,
        bucket_limits=limits,
        bucket_counts=buckets,
    )


def write_events(frames: Iterable[dict[str, Any]], directory: str | Path) -> Path:
    """Write the frames into a new event file in ``directory``; returns its path."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as exc:  # torch raises this when the tensorboard package is missing
        raise RuntimeError(
            "the TensorBoard export needs the tensorboard package: "
            "pip install 'normscope[tensorboard]'"
        ) from exc
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    before = set(directory.glob("events.out.tfevents.*"))
    writer = SummaryWriter(str(directory))
    try:
        for frame in frames:
            step = int(frame["step"])

            def scalar(tag: str, value: object, step: int = step) -> None:
                if isinstance(value, int | float) and math.isfinite(value):
                    writer.add_scalar(tag, float(value), step)

            for key in RUN_NUMBERS:
                scalar(key, frame.get(key))
            for key, value in (frame.get("eval") or {}).items():
                scalar(f"eval/{key}", value)
            for layer in frame["layers"]:
                name = layer["name"]
                for key in (*LAYER_NUMBERS, "nonfinite"):
                    scalar(f"{name}/{key}", layer.get(key))
                raw = histogram(layer["hist"], layer.get("mean"), layer.get("std"))
                if raw["num"]:  # (a layer of only NaN has no histogram)
                    writer.add_histogram_raw(f"{name}/hist", global_step=step, **raw)
    finally:
        writer.close()
    (path,) = set(directory.glob("events.out.tfevents.*")) - before
    return path
