"""Shared fixtures. Device from TORCH_DEVICE (default cpu)."""

import os

import pytest
import torch


@pytest.fixture(scope="session")
def device() -> torch.device:
    return torch.device(os.environ.get("TORCH_DEVICE", "cpu"))
