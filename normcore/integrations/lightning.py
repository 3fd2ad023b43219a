"""NormScope's probes in a PyTorch Lightning ``Trainer`` (``pip install normscope[lightning]``).

    from normcore.integrations.lightning import NormScopeCallback

    trainer = lightning.Trainer(max_steps=1000, callbacks=[
        NormScopeCallback(url="http://127.0.0.1:8000", every=10),  # token: $NORMSCOPE_TOKEN
    ])
    trainer.fit(model, loader)  # a watched run on the server, drawn live

The whole LightningModule is watched (``normcore.watch``'s picks, by module path), or the
``layers=`` it names; the first optimizer gives the lr and ‖Δw‖. Each training batch is a
step: probed every ``every``-th one and the last planned one; measured in
``on_before_optimizer_step`` (after backward and AMP's unscaling, before gradient clipping),
with the loss ``on_before_backward`` saw. The run ends ``completed`` (or ``diverged``) at the
end of ``fit``, ``cancelled`` when fit raises or is interrupted.

One optimizer step per batch: gradient accumulation is refused when training starts (an
accumulated step's activations come from several forward passes). Probed batches must have
one size: a DataLoader whose last batch is partial is refused then too (drop it:
``DataLoader(..., drop_last=True)``).
"""

from __future__ import annotations

import math
from typing import Any

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader

from normcore.integrations.session import WatchOptions, WatchSession, check_full_batches, sized


class NormScopeCallback(pl.Callback):
    """Watches the model of ``Trainer.fit``; options as ``WatchOptions``, checked here."""

    def __init__(self, **options: Any) -> None:
        self.options = WatchOptions(**options)
        self.session: WatchSession | None = None
        self._loss: torch.Tensor | None = None

    @property
    def watch(self):
        """The Watch of the current (or last) fit: its frames and its run id."""
        return None if self.session is None else self.session.watch

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # (not on_fit_start: the train loader is set up only now, after the sanity check)
        if self.session is not None and not self.session.closed:  # a fit that never ended
            self.session.fail(RuntimeError("a new fit started"))
        if trainer.accumulate_grad_batches != 1:
            raise ValueError(
                f"accumulate_grad_batches: NormScope probes one batch per optimizer "
                f"step; set it to 1, not {trainer.accumulate_grad_batches}"
            )
        optimizer = trainer.optimizers[0] if trainer.optimizers else None
        planned = trainer.estimated_stepping_batches
        steps = int(planned) if math.isfinite(planned) else 0
        loader = trainer.train_dataloader
        if isinstance(loader, DataLoader):  # (not a custom batch sampler: batch_size None)
            examples = sized(loader.dataset)
            check_full_batches(examples, loader.batch_size, loader.drop_last, "drop_last")
        self.session = WatchSession(pl_module, optimizer, self.options, steps=steps)

    def on_train_batch_start(self, trainer, pl_module, batch: Any, batch_idx: int) -> None:
        if self.session is not None:
            self.session.begin()

    def on_before_backward(self, trainer, pl_module, loss: torch.Tensor) -> None:
        self._loss = loss

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        watched = trainer.optimizers[0] if trainer.optimizers else None
        if self.session is not None and self._loss is not None and optimizer is watched:
            self.session.measure(self._loss)

    def on_train_batch_end(self, trainer, pl_module, outputs: Any, batch: Any, batch_idx: int):
        self._loss = None
        if self.session is not None:
            self.session.end()

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.session is not None:
            self.session.close()

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        if self.session is not None:
            self.session.fail(exception)

    def teardown(self, trainer, pl_module, stage: str) -> None:
        # fit ended without on_fit_end or on_exception (nothing known does): do not leave
        # the probes' hooks on the model nor the run open
        if self.session is not None and not self.session.closed:
            self.session.fail(RuntimeError(f"{stage} ended without on_fit_end"))
