"""A probed training step as the trainer takes it, for the tests of normcore.probe."""

from __future__ import annotations

import torch.nn.functional as F


def probed_step(model, probe, opt, x, y, before_step=lambda: None):
    """One probed training step -> (loss, logits, what ``before_step`` returned)."""
    probe.arm()
    logits = model(x)
    loss = F.cross_entropy(logits, y)
    opt.zero_grad()
    loss.backward()
    probe.collect(loss, logits, y)
    seen = before_step()  # after backward, before the weights move
    opt.step()
    probe.after_step()
    return loss, logits, seen
