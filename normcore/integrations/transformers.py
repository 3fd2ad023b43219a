"""NormScope's probes in a Hugging Face ``transformers.Trainer``
(``pip install normscope[transformers]``).

    from normcore.integrations.transformers import NormScopeCallback

    with NormScopeCallback(url="http://127.0.0.1:8000", every=10) as normscope:
        Trainer(model, args, train_dataset=data, callbacks=[normscope]).train()

The whole model is watched (``normcore.watch``'s picks, by module path: every Linear, with
the norm after it, and torch's recurrent and attention modules), or the ``layers=`` it
names; the Trainer's optimizer gives the lr and ‖Δw‖. Each optimizer step is a step: probed
every ``every``-th one and the planned last one (``max_steps``), measured in
``on_pre_optimizer_step`` (after backward and gradient clipping) with the loss of the
model's output (``outputs.loss``; with a ``logits`` of (batch, classes) and integer
``labels`` also the batch accuracy). The run ends ``completed`` (or ``diverged``) at the end
of ``train``.

A Trainer calls no callback when training raises: the ``with`` block above (or
``normscope.close()`` in a ``finally``) ends the run ``cancelled`` then; without either, it
ends so when the interpreter exits or the next ``train`` begins.

One batch per optimizer step: ``gradient_accumulation_steps`` above 1 is refused when
training begins, and so is a last partial batch (probed batches must have one size: set
``dataloader_drop_last=True``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch
from torch import nn
from transformers import TrainerCallback

from normcore.integrations.session import WatchOptions, WatchSession, check_full_batches, sized


def config_activation(model: nn.Module) -> str | None:
    """The activation the model's config names (``hidden_act``, GPT-2's
    ``activation_function``) as a Watch's: transformers' activations are its own modules,
    which ``guess_activation`` does not know (it would count BERT's one pooler tanh)."""
    config = getattr(model, "config", None)
    name = getattr(config, "hidden_act", None) or getattr(config, "activation_function", None)
    if not isinstance(name, str):
        return None  # guess from the modules
    name = name.lower()
    if name.startswith(("gelu", "silu", "swish")):  # smooth ReLUs: gelu's range
        return "gelu"
    return next((kind for kind in ("relu", "tanh", "sigmoid") if kind in name), None)


class NormScopeCallback(TrainerCallback):
    """Watches the model of ``Trainer.train``; options as ``WatchOptions``, checked here."""

    def __init__(self, **options: Any) -> None:
        self.options = WatchOptions(**options)
        self.session: WatchSession | None = None
        self._output: tuple[torch.Tensor | None, Any, Any] = (None, None, None)
        self._hook: Any = None

    @property
    def watch(self):
        """The Watch of the current (or last) training: its frames and its run id."""
        return None if self.session is None else self.session.watch

    def on_train_begin(
        self, args, state, control, model=None, optimizer=None, train_dataloader=None, **_: Any
    ):
        self.close(RuntimeError("a new train() began with the last one still open"))
        if args.gradient_accumulation_steps != 1:
            raise ValueError(
                f"gradient_accumulation_steps: NormScope probes one batch per optimizer "
                f"step; set it to 1, not {args.gradient_accumulation_steps}"
            )
        examples = sized(getattr(train_dataloader, "dataset", None))
        check_full_batches(
            examples, args.train_batch_size, args.dataloader_drop_last, "dataloader_drop_last"
        )
        if not isinstance(model, nn.Module):
            raise TypeError(
                f"model: the Trainer passed no torch module to its callbacks: {model!r}"
            )
        # accelerate wraps the optimizer; the torch one runs the step hooks Watch needs
        while isinstance(getattr(optimizer, "optimizer", None), torch.optim.Optimizer):
            optimizer = optimizer.optimizer
        options = self.options
        if options.activation is None:
            options = replace(options, activation=config_activation(model))
        self.session = WatchSession(model, optimizer, options, steps=state.max_steps)
        self._hook = model.register_forward_hook(self._keep_output, with_kwargs=True)

    def _keep_output(self, module: nn.Module, args: Any, kwargs: Any, output: Any) -> None:
        """The loss (and logits, labels) of the model's last forward pass."""
        if self.session is None or not self.session.probing:
            return
        get = output.get if hasattr(output, "get") else lambda key: getattr(output, key, None)
        self._output = (get("loss"), get("logits"), kwargs.get("labels"))

    def on_step_begin(self, args, state, control, **_: Any):
        self._output = (None, None, None)
        if self.session is not None:
            self.session.begin()

    def on_pre_optimizer_step(self, args, state, control, **_: Any):
        if self.session is None or not self.session.probing:
            return
        loss, logits, labels = self._output
        if not isinstance(loss, torch.Tensor):
            raise ValueError(
                "the model's output has no loss (outputs.loss) to probe with: give the "
                "Trainer labels the model computes its loss from"
            )
        classes = (
            isinstance(logits, torch.Tensor)
            and isinstance(labels, torch.Tensor)
            and logits.dim() == 2
            and labels.dim() == 1
            and not labels.is_floating_point()
            and len(labels) == len(logits)
        )
        self.session.measure(loss, logits if classes else None, labels if classes else None)

    def on_step_end(self, args, state, control, **_: Any):
        self._output = (None, None, None)
        if self.session is not None:
            self.session.end()

    def on_train_end(self, args, state, control, **_: Any):
        self.close()

    def close(self, error: BaseException | None = None) -> None:
        """End the run: completed (``error`` None) or cancelled; the hooks off the model."""
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
        if self.session is not None and not self.session.closed:
            if error is None:
                self.session.close()
            else:
                self.session.fail(error)

    def __enter__(self) -> NormScopeCallback:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, _: Any):
        self.close(error if kind is not None else None)
