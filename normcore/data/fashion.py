"""Fashion-MNIST (Zalando, 2017, MIT/Expat) read from Debian's ``dataset-fashion-mnist``.

The 784-dimensional MNIST-like set that ``normcore.data`` serves as ``fashion``: the official
60000/10000 split, 10 balanced classes, 28×28 grey images. Nothing is downloaded: the four
IDX files come from ``/usr/share/datasets/fashion-mnist`` (``apt-get install
dataset-fashion-mnist``) or from the folder named by ``NORMSCOPE_FASHION_DIR``.

Why a disk cache: runs train in spawned worker processes (a worker serves up to 100 runs,
then a fresh one takes over), so an in-process cache alone would gunzip 30 MB (about 1.3 s)
in every new worker. The parsed uint8 arrays are kept in one .npz
under the per-user cache folder (``$XDG_CACHE_HOME/normscope`` or ``~/.cache/normscope``),
named by the source files' path, size and mtime so a reinstalled package is re-read. The
cache is an optimization only: if it cannot be written, the files are parsed every time.

Why one global mean and std (not per pixel): per-pixel z-scores blow up the border pixels that
are almost always blank (std 0.0004 -> values up to 185 on the training split), and the convnet
sees the images as images, so one scale for all pixels keeps their contrast.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
import zipfile
from functools import lru_cache
from pathlib import Path
from typing import Any, cast

import numpy as np

DEFAULT_DIR = Path("/usr/share/datasets/fashion-mnist")
ENV_DIR = "NORMSCOPE_FASHION_DIR"
SIDE = 28
# split part -> (file name, IDX magic number: 0x0803 = uint8 3-D, 0x0801 = uint8 1-D)
FILES = {
    "train_x": ("train-images-idx3-ubyte.gz", 2051),
    "train_y": ("train-labels-idx1-ubyte.gz", 2049),
    "test_x": ("t10k-images-idx3-ubyte.gz", 2051),
    "test_y": ("t10k-labels-idx1-ubyte.gz", 2049),
}


def source_dir() -> Path:
    """Where the IDX files are read from: ``$NORMSCOPE_FASHION_DIR`` or Debian's folder."""
    return Path(os.environ.get(ENV_DIR) or DEFAULT_DIR)


def available() -> bool:
    """True when all four files are present (tests skip on this, CI installs the package)."""
    return all((source_dir() / name).is_file() for name, _ in FILES.values())


def _read_idx(path: Path, magic: int) -> np.ndarray:
    """One gzipped IDX file -> uint8 array: images (N, 784), labels (N,).

    Header: a big-endian int32 magic number, then one int32 per dimension; the data follows at
    byte 16 (images) or 8 (labels).
    """
    with gzip.open(path, "rb") as f:
        raw = f.read()
    found = int.from_bytes(raw[:4], "big") if len(raw) >= 8 else None
    if found != magic:
        raise ValueError(f"{path}: IDX magic number {found} is not {magic}; not an IDX file")
    ndim = magic & 0xFF
    dims = tuple(int(d) for d in np.frombuffer(raw[4 : 4 + 4 * ndim], ">i4"))
    data = np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim)
    if ndim == 3 and dims[1:] != (SIDE, SIDE):
        raise ValueError(f"{path}: image size {dims[1:]} is not ({SIDE}, {SIDE})")
    if data.size != int(np.prod(dims)):
        raise ValueError(f"{path}: {data.size} data bytes, header dims {dims} need {np.prod(dims)}")
    return data.reshape(dims[0], -1) if ndim == 3 else data


def _sources() -> dict[str, Path]:
    folder = source_dir()
    paths = {part: folder / name for part, (name, _) in FILES.items()}
    missing = [p.name for p in paths.values() if not p.is_file()]
    if missing:
        raise ValueError(
            f"dataset 'fashion': {', '.join(missing)} not found in {folder}; install Debian's "
            f"package with `apt-get install dataset-fashion-mnist`, or set {ENV_DIR} to a "
            f"folder holding {', '.join(name for name, _ in FILES.values())}"
        )
    return paths


def _cache_file(paths: dict[str, Path]) -> Path:
    """Per-user cache file named by the sources' identity (path, size, mtime)."""
    ident = "|".join(
        f"{p.resolve()}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in paths.values()
    )
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "normscope"
    return base / f"fashion-{hashlib.sha256(ident.encode()).hexdigest()[:16]}.npz"


def _raw(paths: dict[str, Path], cache: Path) -> dict[str, np.ndarray]:
    """The four uint8 arrays and the training pixels' histogram, from the cache when it is
    there, else parsed (and cached)."""
    try:
        with np.load(cache, allow_pickle=False) as z:
            return {part: z[part] for part in (*FILES, "train_hist")}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        pass  # absent or unreadable: parse the sources
    arrays = {part: _read_idx(paths[part], FILES[part][1]) for part in FILES}
    for split in ("train", "test"):
        n_x, n_y = len(arrays[f"{split}_x"]), len(arrays[f"{split}_y"])
        if n_x != n_y:
            raise ValueError(f"dataset 'fashion': {split} has {n_x} images but {n_y} labels")
    # The 256-bin pixel histogram gives the exact mean and std; cached, as it takes ~0.4 s.
    arrays["train_hist"] = np.bincount(arrays["train_x"].ravel(), minlength=256)
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cache.parent, suffix=".npz.tmp")
    except OSError:
        return arrays  # read-only home: parse every time
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **cast(dict[str, Any], arrays))
        os.replace(tmp, cache)  # atomic: concurrent workers never read half a file
    except OSError:
        Path(tmp).unlink(missing_ok=True)  # disk full: leave no partial file behind
    return arrays


def load() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(train_x, train_y, test_x, test_y): x float32 (N, 784) standardized, y int64 (N,).

    Pixels are scaled to [0, 1], then shifted and scaled by the training split's one mean and
    std. Cached in-process per source identity: callers share the arrays and must not write to
    them.
    """
    paths = _sources()
    return _standardized(tuple(paths.values()), _cache_file(paths))


@lru_cache(maxsize=2)  # keyed by the cache file's name, which changes with the sources
def _standardized(
    paths: tuple[Path, ...], cache: Path
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    raw = _raw(dict(zip(FILES, paths, strict=True)), cache)
    # Exact statistics from the histogram (no float64 copy of 47M pixels), applied through a
    # 256-entry table: one gather per pixel instead of three passes.
    counts = raw["train_hist"].astype(np.float64)
    levels = np.arange(256) / 255
    mean = counts @ levels / counts.sum()
    std = float(np.sqrt(counts @ (levels - mean) ** 2 / counts.sum())) or 1.0
    table = ((levels - mean) / std).astype(np.float32)
    tx, vx = table[raw["train_x"]], table[raw["test_x"]]
    return tx, raw["train_y"].astype(np.int64), vx, raw["test_y"].astype(np.int64)
