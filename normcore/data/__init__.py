"""Data sets that need no download (datasets.py: digits, toy sets, sequences, batch orders;
fashion.py: Fashion-MNIST read from Debian's package)."""

from normcore.data.datasets import Dataset, batch_indices, load_dataset, rescaled

__all__ = ["Dataset", "batch_indices", "load_dataset", "rescaled"]
