"""How much arithmetic one training step of a RunConfig costs, counted from the config alone.

The server sizes a run's CPU threads by this before any worker has built the model, so it is
a closed-form count, not a profile: multiply-accumulates of the weight layers (linear, conv,
recurrent) per sample, times 2 (a MAC is two FLOPs), times 3 (backward costs about twice the
forward: the input gradient and the weight gradient), times the batch. Norms, activations,
the loss and the probes are left out: they are elementwise, a few FLOPs per unit, and the
thread policy only needs to know whether the matmuls are big enough to split.
"""

from __future__ import annotations

import math

from normcore.config import RunConfig

# One sample's shape per data set (as normcore.data builds them) and its number of classes.
# Kept here, not read from normcore.data, so counting needs no data set and no torch.
INPUT_SHAPES: dict[str, tuple[int, ...]] = {
    "digits": (1, 8, 8),
    "fashion": (1, 28, 28),
    "sequence": (20, 3),
    "spirals": (2,),
    "moons": (2,),
    "circles": (2,),
    "xor": (2,),
    "blobs": (2,),
}
N_CLASSES = {"digits": 10, "fashion": 10, "sequence": 4, "blobs": 4, "spirals": 3}  # others: 2


def flops_per_step(cfg: RunConfig, *, input_size: int | None = None) -> float:
    """FLOPs of one training step (forward + backward) of ``cfg``'s weight layers.

    ``input_size`` overrides the data set's features per sample (benchmarks that feed
    random inputs of another width)."""
    shape = INPUT_SHAPES[cfg.dataset]
    classes = N_CLASSES.get(cfg.dataset, 2)
    w, d = cfg.width, cfg.depth
    if cfg.model == "convnet":
        channels, positions = shape[0], math.prod(shape[1:])
        macs = 9 * (channels * w + (d - 1) * w * w) * positions + w * classes
    elif cfg.model == "rnn":
        features = shape[1]
        steps = cfg.seq_len  # the training length (padding of varied lengths still computes)
        gates = 4 * w if cfg.cell == "lstm" else w
        features = input_size or features
        macs = steps * ((features + w) * gates + (d - 1) * (2 * w) * gates) + w * classes
    else:
        n_in = input_size or math.prod(shape)
        macs = n_in * w + (d - 1) * w * w + w * classes
    return 6.0 * macs * cfg.batch_size
