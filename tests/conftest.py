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


@pytest.fixture(scope="module")
def eager_in_hooks():
    """The in-hooks path measures every layer in its tap, whatever its size (by default a
    step's layers below HostRecorder.EAGER_BYTES are staged and measured in one call at
    collect): what the tests of the in-hooks path check on their small models."""
    from normcore.probe.host_recorder import HostRecorder

    eager_bytes = HostRecorder.EAGER_BYTES
    HostRecorder.EAGER_BYTES = 0
    yield
    HostRecorder.EAGER_BYTES = eager_bytes


def pytest_sessionstart(session: pytest.Session) -> None:
    script = Path(__file__).resolve().parents[1] / ".ci" / "system-packages"
    subprocess.run([str(script)], check=True)
