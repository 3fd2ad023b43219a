"""Path parameters several routers share, validated the same way everywhere."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path

RunId = Annotated[str, Path(min_length=1, max_length=64, description="the run's id")]
SweepId = Annotated[str, Path(min_length=1, max_length=64, description="the sweep's id")]
