"""One ``Watch`` of a model driven by a framework's hooks, the part both adapters share.

A framework's loop has no ``with watch.step():`` block, so the adapter opens the step when a
batch starts (``begin``), measures after backward, before the optimizer step (``measure``),
and ends the step when the batch ends (``end``). A batch whose optimizer did not step (a
``training_step`` that returned None) was never measured: its step is dropped, leaving no
row, instead of raising inside the framework. ``close`` ends the run: ``completed`` (or
``diverged``) when training ended, ``cancelled`` on the server when it raised or was left
open when the interpreter exits (a transformers Trainer has no hook for an exception).

The options are checked when the callback is made (``WatchOptions``), before any training:
an error names the option and the value. The layers are picked when the model is known
(``normcore.watch_layers.pick_layers``), which names an unknown layer.
"""

from __future__ import annotations

import atexit
import warnings
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import torch
from torch import nn

from normcore.client import Client
from normcore.probe.stats import ACT_RANGE
from normcore.watch import Watch
from normcore.watch_layers import LayerFilter, guess_activation, pick_layers


class StepDropped(Exception):
    """Thrown into a Watch step that must leave no row (the step's own doc: a step that
    raises before ``measure`` leaves none)."""


@dataclass(frozen=True)
class WatchOptions:
    """What an adapter's user chooses; checked here, when the callback is made.

    ``layers``: module paths or a predicate ``(path, module) -> bool`` narrowing the layers
    ``watch(model)`` picks (all by default); ``every``: probe every n-th step; ``activation``:
    the model's most common one by default; ``url`` and ``token``: send the frames to that
    server as a watched run named ``label`` (default: the model's class); ``out``: write them
    to a JSON-lines file instead; neither: keep them in ``watch.frames``."""

    layers: LayerFilter | None = None
    every: int = 10
    activation: str | None = None
    bins: int = 64
    url: str | None = None
    token: str | None = None
    label: str | None = None
    out: str | Path | None = None

    def __post_init__(self) -> None:
        for name in ("every", "bins"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name}: a whole number >= 1, not {value!r}")
        if self.activation is not None and self.activation not in ACT_RANGE:
            raise ValueError(
                f"activation: one of {', '.join(sorted(ACT_RANGE))} (or None: the "
                f"model's own), not {self.activation!r}"
            )
        layers = self.layers
        if layers is not None and not callable(layers):
            given: object = (layers,) if isinstance(layers, str) else layers
            names = tuple(given) if hasattr(given, "__iter__") else None  # read once: kept
            if names is None or not all(isinstance(n, str) for n in names):
                raise TypeError(
                    f"layers: module paths or a predicate (path, module) -> bool, not {layers!r}"
                )
            object.__setattr__(self, "layers", names)
        if self.url is not None:
            parts = urlsplit(self.url) if isinstance(self.url, str) else None
            if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError(f"url: a server's http(s) address, not {self.url!r}")
            if self.out is not None:
                raise ValueError(
                    f"out: frames go to the server at url or to a file, not both "
                    f"(url={self.url!r}, out={str(self.out)!r})"
                )
        elif self.token is not None:
            raise ValueError("token: given without url, the server it is for")
        if self.label is not None and not (
            isinstance(self.label, str) and 0 < len(self.label) <= 200
        ):
            raise ValueError(f"label: a run name of 1 to 200 characters, not {self.label!r}")


def check_full_batches(examples: int | None, batch_size: int | None, drop_last: bool, fix: str):
    """Refuse, when training starts, a loader whose last batch of an epoch is partial: a
    probed batch must have the first probed one's size, and that batch, probed whenever its
    step is due, would stop the training there. ``fix`` names the option that drops it."""
    if examples is None or not batch_size or drop_last or examples % batch_size == 0:
        return
    raise ValueError(
        f"{fix}: the last batch of each epoch holds {examples % batch_size} of "
        f"{batch_size} examples ({examples} in all), and a probed batch must be full: "
        f"set {fix}=True to drop it"
    )


def sized(data: object) -> int | None:
    """``len(data)``, or None for a stream (an IterableDataset without a length)."""
    try:
        return len(data)  # type: ignore[arg-type]
    except TypeError:
        return None


class WatchSession:
    """A Watch of ``model`` (its run on the server, with ``options.url``) for one training."""

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer | None,
        options: WatchOptions,
        *,
        steps: int = 0,
    ) -> None:
        chosen = pick_layers(model, options.layers)
        kwargs: dict[str, Any] = dict(
            activation=options.activation or guess_activation(model),
            optimizer=optimizer,
            every=options.every,
            steps=steps,
            bins=options.bins,
        )
        self.client: Client | None = None
        if options.url is not None:
            self.client = Client(options.url, token=options.token)
            try:
                label = options.label or type(model).__name__
                self.watch = self.client.watch(chosen, label=label, **kwargs)
            except self.client._httpx.TransportError as exc:
                self.client.close()
                raise ConnectionError(
                    f"url: no NormScope server answers at {options.url!r} ({exc}): start "
                    f"one (normscope serve) or leave url out to keep the frames here"
                ) from exc
            except BaseException:
                self.client.close()
                raise
        else:
            self.watch = Watch(chosen, out=options.out, **kwargs)
        self.probing = False  # the current step is probed
        self.closed = False
        self._step: AbstractContextManager[bool] | None = None
        self._measured = False
        self._at_exit: Callable[[], None] = self._abandoned
        atexit.register(self._at_exit)

    @property
    def run_id(self) -> str | None:
        return self.watch.run_id

    def begin(self) -> None:
        """A batch starts: its step of the Watch (probed or not)."""
        if self._step is not None:  # the framework never ended the last one: no row for it
            self._drop(StepDropped("the batch before it never ended"))
        self._step = self.watch.step()
        self.probing = self._step.__enter__()
        self._measured = False

    def measure(
        self,
        loss: torch.Tensor,
        logits: torch.Tensor | None = None,
        targets: torch.Tensor | None = None,
    ) -> None:
        """After backward, before the optimizer steps (once a step; a no-op outside one)."""
        if self._step is None or self._measured:
            return
        self.watch.measure(loss, logits, targets)
        self._measured = True

    def end(self) -> None:
        """The batch ended: its step too; a probed step that was never measured is dropped."""
        if self._step is None:
            return
        if self.probing and not self._measured:
            self._drop(StepDropped("the optimizer did not step in this batch"))
            return
        step, self._step = self._step, None
        self.probing = False
        step.__exit__(None, None, None)

    def _drop(self, error: BaseException) -> None:
        step, self._step = self._step, None
        self.probing = False
        if step is not None:
            step.__exit__(type(error), error, error.__traceback__)  # returns False: not raised

    def close(self, error: BaseException | None = None) -> None:
        """Training ended (``error`` None) or raised ``error``: the last frames, and the run
        ends ``completed`` or ``diverged``, or is cancelled. Only the first call counts."""
        if self.closed:
            return
        self.closed = True
        atexit.unregister(self._at_exit)
        try:
            if self._step is not None:
                self._drop(error or StepDropped("training ended inside a step"))
            self.watch.close(completed=error is None)
        finally:
            if self.client is not None:
                self.client.close()

    def fail(self, error: BaseException) -> None:
        """Training raised ``error``: close, never hiding that error behind one of ours."""
        try:
            self.close(error)
        except Exception as exc:
            warnings.warn(
                f"closing the NormScope watch after {error!r} failed: {exc!r}", stacklevel=2
            )

    def _abandoned(self) -> None:
        self.fail(StepDropped("the interpreter exited with the watch open"))
