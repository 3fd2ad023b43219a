"""Shared fixtures. Device from TORCH_DEVICE (default cpu). At session start the Debian
packages the tests need are installed where missing (.ci/system-packages), so the one test
command runs every test on a fresh machine: none is skipped for a missing system package."""

import os
import subprocess
from pathlib import Path

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


def pytest_sessionstart(session: pytest.Session) -> None:
    script = Path(__file__).resolve().parents[1] / ".ci" / "system-packages"
    subprocess.run([str(script)], check=True)
