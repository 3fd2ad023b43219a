"""run(config) -> an iterator of Frames: one training loop, nanoGPT-style.

The step is shaped so it could be captured as a CUDA graph later: every batch is copied into
the same fixed input tensors (static shapes, the data sets drop a last partial batch), the
probes write into preallocated device buffers, and nothing reads a device value on the host
between flushes. A flush (after step 1, so the first frame comes at once; when the probe's ring
buffer is full; every ~0.5 s; and at the end) is the one host sync: it turns the collected
rows into frames, and it is where a diverged loss is noticed (NaN, inf, or above
EXPLODED_LOSS × log K). The run then ends with a frame of status "diverged" (the frames before
it kept), never an exception.

Frames carry a held-out evaluation (``eval``) on the first frame, on the first probed step at
or after every ``eval_every`` steps, and on the last frame; norms with running statistics (BN)
are evaluated both in eval mode and with batch statistics (batches of the training size).
With ``val_fraction`` > 0 the same frames carry the same evaluation of the validation split
(``val``), carved from the training data: what a learning rate is tuned on.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from normcore.batch_groups import statistics_per_group
from normcore.config import RunConfig
from normcore.data import batch_indices, load_dataset, rescaled
from normcore.data.datasets import SeqSpec
from normcore.drift import ics as ics_measure
from normcore.frames import DIGITS, FLUSH_SECONDS, PROBE_ROWS, Frame, StepRate, make_frame
from normcore.models import build_model
from normcore.norms import NORMS
from normcore.optim import Stepper, make_optimizer
from normcore.probe.probe import Probe

# A loss this many times the uniform guess's (log K) has exploded: sigmoid and tanh nets at
# absurd learning rates saturate and keep a huge but finite loss instead of reaching inf.
EXPLODED_LOSS = 100.0


def _num(value: torch.Tensor | None) -> float | None:
    return None if value is None else float(value)


def resolve_device(name: str) -> torch.device:
    """'auto' -> CUDA when available, else CPU; 'cuda' without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' is not available on this machine; use 'auto' or 'cpu'")
    return torch.device(name)


@torch.no_grad()
def evaluate(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int, batch_stats: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Held-out (loss, accuracy) as device tensors. ``batch_stats``: normalize each batch of
    ``batch_size`` with its own statistics (train mode), running statistics left untouched."""
    saved = [b.clone() for b in model.buffers()]
    was_training = model.training
    model.train(batch_stats)
    n = len(y) - len(y) % batch_size if batch_stats and len(y) >= batch_size else len(y)
    group = min(batch_size, n)  # batch statistics: one batch of the training size (or all)
    with ExitStack() as stack:
        grouped = batch_stats and group >= 2
        grouped = grouped and stack.enter_context(statistics_per_group(model, group))
        # ~1024 samples a pass; with batch statistics a whole number of batches, which the
        # norms normalize one by one within the pass (batch_groups), else one batch a pass
        size = max(1024 // group, 1) * group if grouped else group if batch_stats else 1024
        losses, hits = [], []
        for xb, yb in zip(x[:n].split(size), y[:n].split(size), strict=True):
            logits = model(xb)  # (b, K)
            losses.append(F.cross_entropy(logits, yb, reduction="sum"))
            hits.append((logits.argmax(1) == yb).sum())
    if saved:
        torch._foreach_copy_(list(model.buffers()), saved)
    model.train(was_training)
    return torch.stack(losses).sum() / n, torch.stack(hits).sum() / n


def held_out(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int, running_stats: bool
) -> dict[str, torch.Tensor | None]:
    """The frame's ``eval``: eval mode, and batch-statistics mode for norms with running stats."""
    loss, acc = evaluate(model, x, y, batch_size)
    loss_b, acc_b = evaluate(model, x, y, batch_size, True) if running_stats else (None, None)
    return dict(loss=loss, acc=acc, loss_batch=loss_b, acc_batch=acc_b)


def run(
    config: RunConfig | dict[str, Any],
    *,
    should_stop: Callable[[], bool] | None = None,
    rounded: bool = False,
    layers_later: bool = False,
) -> Iterator[Frame]:
    """Train ``config``; yield a frame every ``probe_every`` steps and a final one.
    ``rounded``: the layers' floats come rounded as the wire keeps them (the probe rounds a
    flush's rows at once, ``normcore.frames.round_sig``), for frames bound for a store
    (``normcore.frames.wire(frame, layers_rounded=True)``); else at full precision.
    ``layers_later``: a frame's ``layers`` is a ``normcore.frames.LayersLater``, built by
    ``wire`` where the frame is encoded (a server's process: off the training core)."""
    cfg = config if isinstance(config, RunConfig) else RunConfig.model_validate(config)
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    data = load_dataset(
        cfg.dataset, seed=cfg.seed, val_fraction=cfg.val_fraction, seq=SeqSpec.of(cfg)
    )
    data = rescaled(data, cfg.input_scale)
    model = build_model(cfg, data.input_shape, data.n_classes).to(device)
    optimizer = make_optimizer(cfg, model)
    stepper = Stepper(optimizer)
    probe = Probe(
        model.probe_points(),
        activation=cfg.activation,
        bins=cfg.hist_bins,
        rows=PROBE_ROWS,
        device=device,
        optimizer=optimizer,
        digits=DIGITS if rounded else None,
    )
    batches = batch_indices(data, cfg.batch_order, cfg.batch_size, cfg.seed)
    train_x, train_y = data.train_x.to(device), data.train_y.to(device)
    test_x, test_y = data.test_x.to(device), data.test_y.to(device)
    val = None
    if data.val_x is not None and data.val_y is not None:
        val = (data.val_x.to(device), data.val_y.to(device))
    # fixed input tensors: every step copies its batch into these (static shapes)
    idx = torch.empty(cfg.batch_size, dtype=torch.int64, device=device)
    pinned = device.type == "cuda"
    x = torch.empty(cfg.batch_size, *train_x.shape[1:], device=device)
    y = torch.empty(cfg.batch_size, dtype=torch.int64, device=device)
    bad = torch.zeros((), dtype=torch.bool, device=device)  # a diverged loss was seen
    loss_limit = EXPLODED_LOSS * math.log(max(data.n_classes, 2))
    running_stats = NORMS[cfg.norm].properties["running_stats"]
    blocks = [list(b.parameters()) for b in model.blocks]
    meta: list[dict[str, Any]] = []  # host side of each probed row, in order
    seq, last_eval, force_probe = 0, 0, False
    last_flush = start = time.perf_counter()
    rate = StepRate(start)

    def emit(final: bool) -> Iterator[Frame]:
        """Flush the probe (one host sync) and turn its rows into frames."""
        nonlocal seq, last_flush, force_probe
        rows, last_flush = probe.flush(later=layers_later), time.perf_counter()
        diverged = bool(bad)
        for info, (layers, loss_v, acc_v, ics_v) in zip(meta, rows, strict=True):
            step = info["step"]
            status = "running"
            if not loss_v <= loss_limit:  # NaN, inf or exploded
                status = "diverged"
            elif info is meta[-1] and (final or info["forced"]):
                status = "diverged" if diverged else "completed" if final else "running"
            ev, va = info["eval"], info["val"]
            frame = make_frame(
                seq=seq,
                step=step,
                time=info["time"],
                status=status,
                device=device.type,
                loss=loss_v,
                acc=acc_v,
                lr=info["lr"],
                steps_per_s=rate(step, info["clock"]),
                eval=ev and {k: _num(v) for k, v in ev.items()},
                val=va and {k: _num(v) for k, v in va.items()},
                ics=ics_v,
                layers=layers,
            )
            seq += 1
            yield frame
            if status == "diverged":
                meta.clear()
                return
        meta.clear()
        force_probe = diverged  # non-finite between probes: probe the next step and stop

    for step in range(1, cfg.steps + 1):
        if should_stop is not None and should_stop():
            yield from emit(final=False)  # frames so far; no final frame for a cancel
            return
        probing = force_probe or (step - 1) % cfg.probe_every == 0 or step == cfg.steps
        # data: copy the batch into the fixed input tensors. From pageable memory a CUDA copy
        # waits for the stream (a host sync per step); from pinned memory it is queued
        # (torch's caching host allocator keeps the block until the copy has read it)
        batch = next(batches)
        idx.copy_(batch.pin_memory() if pinned else batch, non_blocking=True)
        torch.index_select(train_x, 0, idx, out=x)
        torch.index_select(train_y, 0, idx, out=y)
        # lr (constant; a schedule would set it here)
        lr = cfg.lr
        for group in optimizer.param_groups:
            group["lr"] = lr
        # forward
        if probing:
            probe.arm()
        logits = model(x)  # (B, K)
        loss = F.cross_entropy(logits, y)
        if not probing:  # (a probed step's loss is in its row, which emit checks)
            torch.logical_or(bad, ~(loss.detach() <= loss_limit), out=bad)  # NaN/inf/big
        # backward
        stepper.zero_grad()
        loss.backward()
        measure_ics = probing and cfg.ics
        if measure_ics:
            grads = [
                torch.zeros_like(w) if w.grad is None else w.grad.detach().clone()
                for w in probe.weights
            ]
            old = [p.detach().clone() for p in model.parameters()]
        # probe (device only; the raw gradients, before clipping)
        if probing:
            probe.collect(loss, logits, y)
        # clip, step
        if cfg.clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), cfg.clip, foreach=True)
        stepper.step()
        if probing:
            ics = None
            if measure_ics:
                ics = ics_measure(
                    model, blocks, probe.weights, grads, old, lambda: F.cross_entropy(model(x), y)
                )
            probe.after_step(ics)
            ev = va = None
            if step == 1 or step // cfg.eval_every > last_eval or step == cfg.steps:
                last_eval = step // cfg.eval_every
                ev = held_out(model, test_x, test_y, cfg.batch_size, running_stats)
                if val is not None:
                    va = held_out(model, *val, cfg.batch_size, running_stats)
            meta.append(
                dict(
                    step=step,
                    time=time.time(),
                    clock=time.perf_counter(),
                    lr=lr,
                    eval=ev,
                    val=va,
                    forced=force_probe,
                )
            )
        # emit
        last = step == cfg.steps
        # the first probed step flushes at once: a viewer sees the run start, not 32 steps later
        if probing and (
            last
            or force_probe
            or probe.full()
            or step == 1
            or time.perf_counter() - last_flush > FLUSH_SECONDS
        ):
            for frame in emit(final=last):
                yield frame
                if frame["status"] == "diverged":
                    return
