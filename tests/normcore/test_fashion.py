"""The Fashion-MNIST reader on small IDX files written here: parsing, scaling, cache, errors."""

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

from normcore.config import RunConfig
from normcore.data import fashion, load_dataset
from normcore.models import build_model


def _write_idx(path: Path, magic: int, data: np.ndarray) -> None:
    header = np.array([magic, *data.shape], ">i4").tobytes()
    with gzip.open(path, "wb") as f:
        f.write(header + data.astype(np.uint8).tobytes())


def _write_set(folder: Path, train_x, train_y, test_x, test_y) -> None:
    for part, data in zip(fashion.FILES, (train_x, train_y, test_x, test_y), strict=True):
        name, magic = fashion.FILES[part]
        _write_idx(folder / name, magic, np.asarray(data))


@pytest.fixture
def tiny(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Two black and two white 28×28 training images, one grey test image, in a temp folder
    named by NORMSCOPE_FASHION_DIR, with a temp cache folder."""
    src = tmp_path / "src"
    src.mkdir()
    train = np.repeat([0, 255, 0, 255], 28 * 28).reshape(4, 28, 28)
    _write_set(src, train, [3, 7, 3, 7], np.full((1, 28, 28), 51), [9])
    monkeypatch.setenv(fashion.ENV_DIR, str(src))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return src


def test_the_env_var_folder_is_read_and_scaled_by_the_training_mean_and_std(tiny) -> None:
    d = load_dataset("fashion")
    # pixels /255 -> {0, 1}, mean 0.5, std 0.5: black -1, white +1, grey (0.2 - 0.5)/0.5 = -0.6
    assert d.train_x.shape == (4, 784) and d.input_shape == (1, 28, 28) and d.n_classes == 10
    assert d.train_x[:, 0].tolist() == [-1.0, 1.0, -1.0, 1.0]
    assert torch.allclose(d.test_x, torch.full((1, 784), -0.6))
    assert d.train_y.tolist() == [3, 7, 3, 7] and d.test_y.tolist() == [9]


def test_the_parsed_files_are_cached_per_user_and_renewed_when_a_source_changes(tiny) -> None:
    cache = tiny.parent / "cache" / "normscope"
    load_dataset("fashion")
    (first,) = cache.glob("fashion-*.npz")
    written = first.stat().st_mtime_ns
    fashion._standardized.cache_clear()  # as a new worker process would start
    assert load_dataset("fashion").train_y.tolist() == [3, 7, 3, 7]
    assert list(cache.glob("fashion-*.npz")) == [first] and first.stat().st_mtime_ns == written
    name, magic = fashion.FILES["train_y"]
    _write_idx(tiny / name, magic, np.array([1, 2, 1, 2], np.int32))  # new size and mtime
    assert load_dataset("fashion").train_y.tolist() == [1, 2, 1, 2]
    assert len(list(cache.glob("fashion-*.npz"))) == 2


def test_an_unwritable_cache_only_costs_a_parse(tiny, tmp_path, monkeypatch) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    assert load_dataset("fashion").train_y.tolist() == [3, 7, 3, 7]


def test_missing_files_say_how_to_install_them(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(fashion.ENV_DIR, str(tmp_path))
    assert not fashion.available()
    with pytest.raises(ValueError, match="train-images-idx3-ubyte.gz.* not found in") as err:
        load_dataset("fashion")
    assert "`apt-get install dataset-fashion-mnist`" in str(err.value)
    assert "set NORMSCOPE_FASHION_DIR" in str(err.value)


def test_a_file_with_the_wrong_magic_number_is_named(tiny) -> None:
    name, _ = fashion.FILES["test_y"]
    _write_idx(tiny / name, 2051, np.zeros((1, 28, 28)))  # an image file where labels belong
    with pytest.raises(ValueError, match=f"{name}: IDX magic number 2051 is not 2049"):
        load_dataset("fashion")


def test_images_and_labels_of_different_counts_are_rejected(tiny) -> None:
    name, magic = fashion.FILES["train_y"]
    _write_idx(tiny / name, magic, np.array([3, 7, 3]))
    with pytest.raises(ValueError, match="train has 4 images but 3 labels"):
        load_dataset("fashion")


def test_a_truncated_file_is_rejected(tiny) -> None:
    name, _ = fashion.FILES["test_x"]
    with gzip.open(tiny / name, "wb") as f:
        f.write(np.array([2051, 1, 28, 28], ">i4").tobytes() + bytes(100))
    with pytest.raises(ValueError, match=r"100 data bytes, header dims \(1, 28, 28\) need 784"):
        load_dataset("fashion")


def test_the_convnet_takes_fashion_as_28_by_28_images(tiny) -> None:
    cfg = RunConfig(model="convnet", dataset="fashion", depth=1, width=4, norm="batch")
    d = load_dataset(cfg.dataset)
    model = build_model(cfg, d.input_shape, d.n_classes)
    assert model(d.train_x).shape == (4, 10)
    with pytest.raises(ValueError, match="needs an image data set \\('digits' or 'fashion'\\)"):
        RunConfig(model="convnet", dataset="moons")


def test_the_default_folder_is_debians(monkeypatch) -> None:
    monkeypatch.delenv(fashion.ENV_DIR, raising=False)
    assert fashion.source_dir() == Path("/usr/share/datasets/fashion-mnist")
