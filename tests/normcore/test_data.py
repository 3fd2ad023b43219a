"""Data sets are deterministic per seed and each batch order keeps its promise."""

import itertools

import pytest
import torch

from normcore.config import BATCH_ORDERS, DATASETS
from normcore.data import Dataset, batch_indices, fashion, load_dataset

SEEDED = tuple(name for name in DATASETS if name != "fashion")  # fashion: one official split


def test_fashion_mnist_is_installed():
    # .ci/system-packages installs dataset-fashion-mnist: a missing copy fails, never skips
    assert fashion.available(), f"no Fashion-MNIST in {fashion.source_dir()}"


@pytest.fixture(scope="module")
def sets() -> dict[str, Dataset]:
    return {name: load_dataset(name, seed=0) for name in SEEDED}


@pytest.fixture(scope="module")
def fashion_set() -> Dataset:
    return load_dataset("fashion", seed=0)


@pytest.mark.parametrize("name", SEEDED)
def test_dataset_is_deterministic_per_seed(name: str, sets: dict[str, Dataset]) -> None:
    again, other = load_dataset(name, seed=0), load_dataset(name, seed=1)
    assert torch.equal(again.train_x, sets[name].train_x)
    assert torch.equal(again.test_y, sets[name].test_y)
    assert not torch.equal(other.train_x, sets[name].train_x)


@pytest.mark.parametrize("name", SEEDED)
def test_dataset_shapes_labels_and_standardization(name: str, sets: dict[str, Dataset]) -> None:
    d = sets[name]
    assert d.name == name
    assert d.train_x.dtype == torch.float32 and d.train_y.dtype == torch.int64
    assert d.train_x.device.type == "cpu"
    assert d.train_x.shape[0] == d.train_y.shape[0] and d.test_x.shape[0] == d.test_y.shape[0]
    assert d.train_x[0].numel() == d.n_features == d.test_x[0].numel()
    # every class appears in both splits: the held-out accuracy means something
    assert set(d.train_y.tolist()) == set(d.test_y.tolist()) == set(range(d.n_classes))
    flat = d.train_x.reshape(-1, d.train_x.shape[-1])
    assert flat.mean(0).abs().max() < 1e-4  # z-scored with the training split's statistics
    assert ((flat.std(0) - 1).abs() < 1e-2).logical_or(flat.std(0) == 0).all()


def test_digits_keeps_the_image_shape_for_the_convnet(sets: dict[str, Dataset]) -> None:
    d = sets["digits"]
    assert d.input_shape == (1, 8, 8) and d.n_classes == 10
    assert d.train_x.shape[1:] == (64,)
    assert len(d.train_y) + len(d.test_y) == 1797  # scikit-learn's bundled copy, all of it


def test_seeded_sets_are_unchanged_by_adding_fashion_to_the_catalog(sets) -> None:
    """Each set's random stream is keyed by its name, not its place in DATASETS: the values
    below are what seed 0 gave before fashion was inserted after digits (commit 349405a)."""
    assert sets["spirals"].train_y[:8].tolist() == [1, 2, 2, 1, 0, 2, 0, 2]
    assert round(float(sets["moons"].train_x[0, 0]), 4) == 1.5978


def test_fashion_is_the_full_official_split_flat_for_the_mlp(fashion_set: Dataset) -> None:
    d = fashion_set
    assert d.input_shape == (1, 28, 28) and d.n_classes == 10 and d.n_features == 784
    assert d.train_x.shape == (60000, 784) and d.test_x.shape == (10000, 784)
    assert d.train_x.dtype == torch.float32 and d.train_y.dtype == torch.int64
    assert d.train_y.bincount().tolist() == [6000] * 10  # balanced, as Zalando published it
    assert d.test_y.bincount().tolist() == [1000] * 10


def test_fashion_is_standardized_with_one_training_mean_and_std(fashion_set: Dataset) -> None:
    x = fashion_set.train_x.double()
    assert abs(float(x.mean())) < 1e-6 and abs(float(x.std()) - 1) < 1e-6
    assert len(fashion_set.train_x[:500].unique()) <= 256  # one affine map of the 0..255 pixels
    assert abs(float(fashion_set.test_x.double().mean())) < 0.05  # same scale, other split


def test_fashion_is_the_same_for_every_seed_and_parse(fashion_set, tmp_path, monkeypatch) -> None:
    assert torch.equal(load_dataset("fashion", seed=1).train_x, fashion_set.train_x)
    fashion._standardized.cache_clear()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # no disk cache: parse the .gz files
    fresh = load_dataset("fashion", seed=0)
    assert torch.equal(fresh.train_x, fashion_set.train_x)
    assert torch.equal(fresh.test_y, fashion_set.test_y)
    assert len(list((tmp_path / "normscope").glob("fashion-*.npz"))) == 1


def test_fashion_labels_match_their_images(fashion_set: Dataset) -> None:
    """Softmax regression beats 70% held-out accuracy in 150 steps; shifted labels get 10%."""
    d = fashion_set
    torch.manual_seed(0)
    head = torch.nn.Linear(784, 10)
    opt = torch.optim.SGD(head.parameters(), lr=0.05)
    for idx in _take(d, "shuffled", 150, batch=128):
        loss = torch.nn.functional.cross_entropy(head(d.train_x[idx]), d.train_y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        assert (head(d.test_x).argmax(1) == d.test_y).float().mean() > 0.7


def test_sequence_is_batch_time_features(sets: dict[str, Dataset]) -> None:
    d = sets["sequence"]
    assert d.train_x.shape[1:] == d.input_shape and len(d.input_shape) == 2


def test_dataset_names_are_forgiving_and_unknown_ones_listed() -> None:
    assert load_dataset("Spirals").name == "spirals"
    with pytest.raises(
        ValueError, match="dataset 'mnist' is unknown; known: digits, fashion, spirals"
    ):
        load_dataset("mnist")


def _take(d: Dataset, order: str, n: int, batch: int = 60, seed: int = 0) -> list[torch.Tensor]:
    return list(itertools.islice(batch_indices(d, order, batch, seed), n))


@pytest.mark.parametrize("order", BATCH_ORDERS)
def test_batches_have_a_static_shape_and_are_seeded(order: str, sets: dict[str, Dataset]) -> None:
    d = sets["digits"]
    batches = _take(d, order, 60)  # > 2 epochs of digits at batch 60
    assert all(b.shape == (60,) and b.dtype == torch.int64 for b in batches)
    assert all(0 <= int(b.min()) and int(b.max()) < len(d.train_y) for b in batches)
    again = _take(d, order, 60)
    assert all(torch.equal(a, b) for a, b in zip(batches, again, strict=True))


def test_shuffled_visits_each_sample_once_per_epoch_in_a_new_order(sets) -> None:
    d = sets["digits"]
    per_epoch = len(d.train_y) // 60
    batches = _take(d, "shuffled", 2 * per_epoch)
    first, second = torch.cat(batches[:per_epoch]), torch.cat(batches[per_epoch:])
    assert len(first.unique()) == len(first) == per_epoch * 60  # no repeats; partial dropped
    assert not torch.equal(first, second)
    assert not torch.equal(batches[0], _take(d, "shuffled", 1, seed=1)[0])  # the seed matters


def test_fixed_order_repeats_the_same_batches_every_epoch(sets) -> None:
    d = sets["digits"]
    per_epoch = len(d.train_y) // 60
    batches = _take(d, "fixed", 2 * per_epoch)
    assert all(torch.equal(batches[i], batches[i + per_epoch]) for i in range(per_epoch))
    assert len(d.train_y[batches[0]].unique()) > 5  # mixed classes, just never reshuffled


def test_class_sorted_walks_the_labels_in_order(sets) -> None:
    d = sets["digits"]
    per_epoch = len(d.train_y) // 60
    labels = d.train_y[torch.cat(_take(d, "class_sorted", per_epoch))]
    assert torch.equal(labels, labels.sort().values)
    assert all(len(d.train_y[b].unique()) <= 2 for b in _take(d, "class_sorted", per_epoch))


@pytest.mark.parametrize("batch", [60, 400])  # 400 > any digit class: the pool wraps around
def test_one_class_batches_are_single_class_and_cycle(batch: int, sets) -> None:
    d = sets["digits"]
    batches = _take(d, "one_class", 25, batch=batch)
    classes = [d.train_y[b].unique().tolist() for b in batches]
    assert all(len(c) == 1 for c in classes)
    assert [c[0] for c in classes] == [i % 10 for i in range(25)]


def test_batch_size_larger_than_the_training_split_is_rejected(sets) -> None:
    with pytest.raises(ValueError, match="batch_size 5000 must be between 1 and the 1442"):
        batch_indices(sets["digits"], "shuffled", 5000, 0)


def test_unknown_batch_order_lists_the_known_ones(sets) -> None:
    with pytest.raises(ValueError, match="batch_order 'random' is unknown; known: shuffled"):
        batch_indices(sets["digits"], "random", 10, 0)


def test_sequence_task_is_learnable_by_an_elman_rnn(sets) -> None:
    """The promise in data.py: ~95% held-out accuracy in 300 SGD steps (chance is 25%)."""
    d = sets["sequence"]
    torch.manual_seed(0)
    rnn, head = torch.nn.RNN(d.input_shape[1], 64, batch_first=True), torch.nn.Linear(64, 4)
    opt = torch.optim.SGD([*rnn.parameters(), *head.parameters()], lr=0.1)
    for idx in _take(d, "shuffled", 300):
        out, _ = rnn(d.train_x[idx])  # (B, T, H)
        loss = torch.nn.functional.cross_entropy(head(out[:, -1]), d.train_y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        acc = (head(rnn(d.test_x)[0][:, -1]).argmax(1) == d.test_y).float().mean()
    assert acc > 0.85


# --- the validation split -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["digits", "spirals", "sequence"])
def test_validation_is_carved_from_training_and_leaves_test_alone(name: str) -> None:
    plain = load_dataset(name, seed=3)
    split = load_dataset(name, seed=3, val_fraction=0.2)
    assert plain.val_x is None and plain.val_y is None
    assert split.val_x is not None and split.val_y is not None
    n = len(plain.train_y)
    assert len(split.val_y) == round(0.2 * n)
    assert len(split.train_y) + len(split.val_y) == n
    # every validation sample is a training sample of the plain load, none is a test sample
    # (compared before standardization moved them: labels and counts per class add up)
    assert torch.equal(
        torch.bincount(split.train_y, minlength=plain.n_classes)
        + torch.bincount(split.val_y, minlength=plain.n_classes),
        torch.bincount(plain.train_y, minlength=plain.n_classes),
    )
    assert torch.equal(split.test_y, plain.test_y)


def test_the_same_seed_carves_the_same_validation_split_another_seed_another() -> None:
    split = load_dataset("digits", seed=1, val_fraction=0.25)
    again = load_dataset("digits", seed=1, val_fraction=0.25)
    other = load_dataset("digits", seed=2, val_fraction=0.25)
    assert split.val_x is not None and again.val_x is not None and other.val_x is not None
    assert torch.equal(again.val_x, split.val_x)
    assert not torch.equal(other.val_x, split.val_x)


def test_training_moments_exclude_the_validation_split() -> None:
    split = load_dataset("spirals", seed=0, val_fraction=0.3)
    assert split.val_x is not None
    assert split.train_x.mean(0).abs().max() < 1e-5  # standardized on what remains
    assert split.val_x.mean(0).abs().max() > 1e-5  # the held-out part is not re-centred


@pytest.mark.parametrize("fraction", [-0.1, 1.0])
def test_a_fraction_outside_0_1_is_refused_naming_it(fraction: float) -> None:
    with pytest.raises(ValueError, match="val_fraction"):
        load_dataset("xor", val_fraction=fraction)
