"""Watch a model of one's own: NormScope's probes in one's own training loop.

    layers = {"fc1": (model.fc1, model.bn1), "fc2": model.fc2}
    with Watch(layers, activation="relu", optimizer=opt, every=10, out="frames.jsonl") as watch:
        for x, y in loader:
            with watch.step():                  # probes this step when it is due
                logits = model(x)
                loss = F.cross_entropy(logits, y)
                opt.zero_grad()
                loss.backward()
                watch.measure(loss, logits, y)  # after backward, before the optimizer step
                opt.step()
    # closed: the last frames sent, the last says "completed" ("diverged" after a non-finite
    # loss, "running" when the loop raised)

Each watched layer is named, and given as its linear (or conv) module alone, whose output is
the activation's input (no norm, or a norm inside it: weight norm, cosine norm), or as a pair
(linear, norm) whose outputs are the pre-activation and the activation's input: the norm must
read the linear's very output, which the first probed step checks (normcore.watch_pairs; a
pair that is none raises from ``measure`` naming both modules). The frames
are the trainer's (normcore.frames), so `normscope report frames.jsonl` draws them and the
dashboard's tools read them; there is no held-out evaluation (``eval`` is None).

Layers may differ in shape (a ConvNet, a tapering MLP): each has a Probe of its own
(normcore.probe.probe) until the first probed step shows the shapes; then, on a CPU's host
paths, the layers of each shape share one, and a frame gathers their rows. Nothing is read
on the host between flushes, as in the trainer; a batch size that changes between probed
steps is an error naming both sizes (probe fixed-size batches: drop the last partial one).
"""

from __future__ import annotations

import math
import sys
import time
import types
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import IO, Any

import torch
from torch import nn

from normcore.frames import FLUSH_SECONDS, PROBE_ROWS, Frame, StepRate, make_frame, to_json
from normcore.probe.host_recorder import HostRecorder
from normcore.probe.probe import Probe, flush_together, resolve_path
from normcore.probe.stats import ACT_RANGE
from normcore.probe.taps import ProbePoint
from normcore.watch_layers import (
    LayerFilter,
    LayerSpec,
    MaybePair,
    guess_activation,
    layer_points,
    pick_layers,
    probe_point,
)
from normcore.watch_pairs import PairCheck, not_a_pair


class Watch:
    """Probes on named layers of any model, every ``every``-th step of one's own loop.

    Frames go to ``out`` (JSON lines, one per frame, written), to ``on_frame`` (each frame)
    and ``on_frames`` (each batch read at a flush), or, with none of them, into ``frames``;
    ``on_close(completed)`` is called once all are sent (``normcore.client.Client.watch``
    uses the last two to send them to a server). ``activation`` (sigmoid, tanh, relu,
    gelu) sets what counts as saturated and the histogram's least range. ``steps`` (optional,
    the planned length) has the last step probed whatever ``every``. ``optimizer`` gives
    the lr in each frame and lets ‖Δw‖ be taken right after its step (without it: at the end
    of ``step()``). ``path`` picks the probes' recorder (normcore.probe.recorder.PATHS;
    None: the device's own).
    """

    def __init__(
        self,
        layers: Mapping[str, LayerSpec],
        *,
        activation: str,
        optimizer: torch.optim.Optimizer | None = None,
        every: int = 1,
        steps: int = 0,
        bins: int = 64,
        out: str | Path | None = None,
        on_frame: Callable[[Frame], None] | None = None,
        on_frames: Callable[[list[Frame]], object] | None = None,
        on_close: Callable[[bool], None] | None = None,
        path: str | None = None,
    ) -> None:
        if activation not in ACT_RANGE:
            raise ValueError(
                f"activation: one of {', '.join(sorted(ACT_RANGE))}; not {activation!r}"
            )
        if not isinstance(every, int) or every < 1:
            raise ValueError(f"every: a whole number of steps >= 1, not {every!r}")
        if not isinstance(steps, int) or steps < 0:
            raise ValueError(f"steps: the planned steps, a whole number >= 0, not {steps!r}")
        # The planned last step is probed too (as normcore.train does): a run of 1,500 steps
        # probed every 2nd ends at step 1,500, not 1,499, and its progress fills.
        self.planned = steps
        points = layer_points(layers)
        # a pair watch(model) proposed may turn out to be none: its layer alone is probed
        # beside it until the first probed step shows which (normcore.watch_pairs)
        alone = {
            i: probe_point(name, spec.layer)
            for i, (name, spec) in enumerate(layers.items())
            if isinstance(spec, MaybePair)
        }
        self.device = points[0].weight.device
        path = resolve_path(path, self.device)  # (before anything is opened or hooked)
        self.every, self.optimizer = every, optimizer
        self.frames: list[Frame] = []
        self._file: IO[str] | None = open(out, "w", encoding="utf-8") if out else None  # noqa: SIM115
        # the probes' hooks last: nothing that can fail comes after them
        probe = partial(
            Probe,
            activation=activation,
            bins=bins,
            rows=PROBE_ROWS,
            device=self.device,
            optimizer=optimizer,
            path=path,
        )
        # a probe per layer until the first probed step shows their shapes; then the layers
        # of equal shapes share one (_join_probes)
        self.probes = [probe([p]) for p in points]
        self._order = {name: i for i, name in enumerate(layers)}  # the frames' layer order
        self._joined = False
        self._alone = {i: probe([p]) for i, p in alone.items()}
        self._checks = {  # the pairs not yet judged, by layer index
            i: PairCheck(spec[0], spec[1])
            for i, spec in enumerate(layers.values())
            if isinstance(spec, tuple)
        }
        each = [s for s in (self._write if out else None, on_frame) if s is not None]
        self._sinks: list[Callable[[list[Frame]], object]] = [
            *(partial(_each, sink) for sink in each),
            *([on_frames] if on_frames else []),
        ]
        self._on_close = on_close
        self.run_id: str | None = None  # the server's run, when a Client made this Watch
        self._hook = optimizer.register_step_post_hook(self._stepped) if optimizer else None
        self.steps = 0  # steps begun
        self._phase = "idle"  # of the current probed step: armed, measured, finished
        self._meta: list[dict[str, Any]] = []  # host side of each probed row, in order
        self._held: Frame | None = None  # the last frame: the final one says how the run ended
        self._seq, self._last_flush = 0, time.perf_counter()
        self._diverged = False  # a non-finite loss was seen: the run ends diverged
        self._rate = StepRate(self._last_flush)

    @contextmanager
    def step(self) -> Iterator[bool]:
        """One training step; yields whether it is probed. A step that raises before
        ``measure`` leaves no row; one that raises after it keeps its row."""
        if self._phase == "closed":
            raise RuntimeError("this Watch is closed")
        self.steps += 1
        probing = (self.steps - 1) % self.every == 0 or self.steps == self.planned
        if probing:
            for probe in self._armable():
                probe.arm()
            for check in self._checks.values():
                check.reset()
                check.active = True
            self._phase = "armed"
        try:
            yield probing
        except BaseException:
            if self._phase == "measured":
                self._finish()
            self._disarm()
            raise
        if self._phase == "armed":
            self._disarm()
            raise RuntimeError(
                f"step {self.steps} was probed but measure(loss) was not "
                "called: call it after backward, before the optimizer step"
            )
        if self._phase == "measured":
            self._finish()
        self._phase = "idle"
        if probing and (
            not self._joined
            or self.probes[0].full()
            or time.perf_counter() - self._last_flush > FLUSH_SECONDS
        ):
            self._emit()
            self._join_probes()

    @torch.no_grad()
    def measure(
        self,
        loss: torch.Tensor,
        logits: torch.Tensor | None = None,
        targets: torch.Tensor | None = None,
    ) -> None:
        """After backward, before the optimizer step: this step's statistics (a no-op on a step
        that is not probed). ``logits`` (B, K) and ``targets`` (B,) give the batch accuracy."""
        if self._phase != "armed":
            if self._phase == "measured":
                raise RuntimeError(f"measure() was called twice in step {self.steps}")
            return
        if logits is not None and (
            logits.dim() != 2
            or targets is None
            or targets.dim() != 1
            or targets.is_floating_point()
            or len(targets) != len(logits)
        ):
            shapes = (tuple(logits.shape), None if targets is None else tuple(targets.shape))
            raise ValueError(
                f"logits, targets: (batch, classes) scores and (batch,) class "
                f"indices for the accuracy, not shapes {shapes}"
            )
        self._judge_pairs()
        collected: list[Probe] = []
        try:
            for probe in self.probes:
                probe.collect(loss, logits, targets)
                collected.append(probe)
        except BaseException:
            for probe in collected:  # all layers' rows or none: the probes stay in step
                probe.drop_row()
            raise
        lr = float(self.optimizer.param_groups[0]["lr"]) if self.optimizer else None
        self._meta.append(dict(step=self.steps, time=time.time(), clock=time.perf_counter(), lr=lr))
        self._phase = "measured"

    def _armable(self) -> list[Probe]:
        return [*self.probes, *self._alone.values()]

    def _disarm(self) -> None:
        for probe in self._armable():
            probe.disarm()
        for check in self._checks.values():
            check.active = False
            check.reset()  # (holds no tensor of the step)
        self._phase = "idle"

    def _judge_pairs(self) -> None:
        """After the first probed forward pass: each pair that is one stays; a proposed one
        that is none gives way to its layer alone; one given by hand raises, naming both."""
        for check in self._checks.values():
            check.active = False
        for i, check in list(self._checks.items()):
            if i not in self._alone and not check.holds():
                raise ValueError(not_a_pair(self.probes[i].names[0], check))
        for i, check in self._checks.items():
            check.close()
            if i in self._alone:
                loser = self._alone.pop(i)
                if not check.holds():
                    self.probes[i], loser = loser, self.probes[i]
                loser.disarm()
                loser.close()
        self._checks.clear()

    @property
    def points(self) -> list[ProbePoint]:
        """The layers measured, in the layer map's order (a pair proposed by ``watch`` that
        the first probed step showed to be none: its layer alone)."""
        points = [point for probe in self.probes for point in probe.points]
        return sorted(points, key=lambda point: self._order[point.name])

    def _join_probes(self) -> None:
        """Once every probe has flushed its first probed step (its edges and references
        fixed), the layers of equal shapes share one probe on the host paths: a probe's
        per-step cost is mostly per probe (collect, the norms, Δw), and resnet18's 21
        layers have 9 shapes. The frames are the same (tests/normcore/test_watch_any_model)."""
        if self._joined or any(p.first is None or p.ring is None for p in self.probes):
            return  # (nothing measured yet)
        self._joined = True
        if not isinstance(self.probes[0].recorder, HostRecorder):
            return  # a device probe's buffers are sized by its first step's pieces
        groups: dict[tuple, list[Probe]] = {}
        for probe in self.probes:
            groups.setdefault(probe.shapes, []).append(probe)
        self.probes = [Probe.joined(g) if len(g) > 1 else g[0] for g in groups.values()]

    def _stepped(self, *_: Any) -> None:
        if self._phase == "measured":
            self._finish()

    def _finish(self) -> None:
        for probe in self.probes:
            probe.after_step()
        self._phase = "finished"

    def _emit(self) -> None:
        """Read the probes' rows (one host read each) and send them on as frames."""
        rows = flush_together(self.probes)  # (frame layers built for all probes at once)
        self._last_flush = time.perf_counter()
        ready: list[Frame] = []
        for info, *layer_rows in zip(self._meta, *rows, strict=True):
            layers = [layer for row in layer_rows for layer in row[0]]
            layers.sort(key=lambda layer: self._order[layer["name"]])
            _, loss, acc, _ = layer_rows[0]
            self._diverged |= not math.isfinite(loss)
            frame = make_frame(
                seq=self._seq,
                step=info["step"],
                time=info["time"],
                status="running",
                device=self.device.type,
                loss=loss,
                acc=acc,
                lr=info["lr"],
                steps_per_s=self._rate(info["step"], info["clock"]),
                layers=layers,
            )
            self._seq += 1
            if self._held is not None:
                ready.append(self._held)
            self._held = frame
        self._meta.clear()
        self._send(ready)

    def _send(self, frames: list[Frame]) -> None:
        if not frames:
            return
        if not self._sinks:
            self.frames.extend(frames)
        for sink in self._sinks:
            sink(frames)

    def _write(self, frame: Frame) -> None:
        assert self._file is not None
        self._file.write(to_json(frame) + "\n")
        self._file.flush()

    def close(self, completed: bool = True) -> None:
        """The last frames; the last one says ``completed`` (or ``diverged``; ``running``
        when the loop did not complete). Removes the probes' hooks; a closed Watch takes no
        more steps."""
        if self._phase == "closed":
            return
        self._phase = "closed"
        try:
            self._emit()
            if completed and self._held is not None:  # the last frame says how it ended
                self._held["status"] = "diverged" if self._diverged else "completed"
            self._send([self._held] if self._held is not None else [])
            self._held = None
        finally:
            for probe in self._armable():
                probe.close()
            for check in self._checks.values():
                check.close()
            if self._hook is not None:
                self._hook.remove()
            if self._file is not None:
                self._file.close()
                self._file = None
            if self._on_close is not None:
                self._on_close(completed)

    def __enter__(self) -> Watch:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        if kind is None:
            self.close()
            return
        try:
            self.close(completed=False)
        except Exception as exc:  # the loop's own error is the one to see
            warnings.warn(f"closing the Watch after an error failed too: {exc!r}", stacklevel=2)


def watch(
    model: nn.Module,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    layers: LayerFilter | None = None,
    activation: str | None = None,
    **options: Any,
) -> Watch:
    """A Watch of a whole model in one line: every Linear and conv (each with the norm after
    it, where there is one), every recurrent and attention module, named by module path
    (normcore.watch_layers.pick_layers); ``layers`` narrows them (paths, or a predicate
    ``(path, module) -> bool``). ``activation`` defaults to the model's most common one.
    Other options as ``Watch``'s."""
    chosen = pick_layers(model, layers)
    return Watch(
        chosen, activation=activation or guess_activation(model), optimizer=optimizer, **options
    )


class _CallableModule(types.ModuleType):
    """``normcore.watch(model, ...)`` calls ``watch`` while ``normcore.watch.Watch`` stays
    importable: the module itself is callable."""

    def __call__(self, model: nn.Module, **options: Any) -> Watch:
        return watch(model, **options)


sys.modules[__name__].__class__ = _CallableModule


def _each(sink: Callable[[Frame], None], frames: list[Frame]) -> None:
    for frame in frames:
        sink(frame)
