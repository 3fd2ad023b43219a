"""The rules CI holds the code to, as tests: ruff's lint, its formatter's layout, mypy's types."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "command",
    [
        ["ruff", "check", "."],
        ["ruff", "format", "--check", "."],
        ["mypy", "normcore", "app"],
    ],
    ids=["ruff-check", "ruff-format", "mypy"],
)
def test_code_follows_the_rules(command):
    done = subprocess.run(
        [sys.executable, "-m", *command], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
