"""Shared fixtures. Device from TORCH_DEVICE (default cpu)."""

import os

import pytest
import torch


@pytest.fixture(scope="session")
def device() -> torch.device:
    return torch.device(os.environ.get("TORCH_DEVICE", "cpu"))


@pytest.fixture(scope="module")
def one_thread():
    """One torch intra-op thread: at test sizes on 2 shared cores, more threads only contend."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
