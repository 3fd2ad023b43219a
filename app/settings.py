"""Settings: the one configuration path of the service, read from NORMSCOPE_* variables.

Every limit a client could use to exhaust the machine lives here (run sizes, queue, body
size), so an operator tunes them in one place and the API reports them in the catalog.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from normcore.config import MAX_BATCH, MAX_DEPTH, MAX_STEPS, MAX_WIDTH


def default_data_dir() -> Path:
    """The per-user data folder of the platform (XDG on Linux), so runs survive a reinstall."""
    home = Path.home()
    if sys.platform == "darwin":
        return home / "Library" / "Application Support" / "normscope"
    if os.name == "nt":
        return Path(os.environ.get("LOCALAPPDATA", home / "AppData" / "Local")) / "normscope"
    return Path(os.environ.get("XDG_DATA_HOME") or home / ".local" / "share") / "normscope"


class Settings(BaseSettings):
    """Server settings; each field is NORMSCOPE_<FIELD> in the environment."""

    model_config = SettingsConfigDict(env_prefix="NORMSCOPE_", extra="ignore")

    data_dir: Path = Field(default_factory=default_data_dir)  # runs.db lives here
    host: str = "127.0.0.1"  # loopback only unless the operator opens it up
    port: int = Field(default=8000, ge=0, le=65535)
    executor: Literal["local", "ray"] = "local"
    # None: one run per GPU, else on a CPU the cores (all up to 2, else all but one)
    max_jobs: int | None = Field(default=None, ge=1, le=256)
    queue_length: int = Field(default=32, ge=0, le=100_000)  # runs waiting beyond max_jobs
    # None: app/jobs/threads.py's policy (1 for small runs); set, every CPU run takes that many
    worker_threads: int | None = Field(default=None, ge=1, le=1024)
    # idle workers with torch, the kernels and the digits set loaded; None: one per slot, <= 4
    warm_workers: int | None = Field(default=None, ge=0, le=8)
    cancel_grace_s: float = Field(default=0.7, gt=0, le=30)  # then the worker is killed
    keepalive_s: float = Field(default=15.0, gt=0, le=3600)  # SSE comment when nothing happened
    retry_after_s: int = Field(default=10, ge=1)  # the Retry-After of a 429
    max_steps: int = Field(default=100_000, ge=1, le=MAX_STEPS)
    max_width: int = Field(default=1024, ge=1, le=MAX_WIDTH)
    max_depth: int = Field(default=MAX_DEPTH, ge=1, le=MAX_DEPTH)
    max_batch_size: int = Field(default=1024, ge=1, le=MAX_BATCH)
    max_sweep_cells: int = Field(default=1000, ge=1, le=100_000)  # grid points × seeds
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)  # a RunConfig is well under 1 KB
    token: SecretStr | None = None  # when set, /api and the stream need Bearer <token>
    frontend_dir: Path = Path(__file__).resolve().parent.parent / "frontend"
    # full-mode claim results committed with the code; the Claims view shows them until a
    # claim runs on this server (None or a missing file: none)
    claim_results: Path | None = (
        Path(__file__).resolve().parent.parent / "docs" / "claims-results" / "full.json"
    )

    @field_validator("token", "claim_results", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        # docker compose writes NORMSCOPE_TOKEN= for "no token"; never accept "" as a token
        # (nor as the current directory for the claim results).
        return None if value == "" else value

    @property
    def db_path(self) -> Path:
        return self.data_dir / "runs.db"

    def limits(self) -> dict[str, int]:
        """The run-size limits as the catalog and the 422 messages show them."""
        return {
            "steps": self.max_steps,
            "width": self.max_width,
            "depth": self.max_depth,
            "batch_size": self.max_batch_size,
        }

    def job_slots(self) -> int:
        """Capacity: the setting, else one per visible GPU, else on a CPU the cores runs may
        use (a run takes one per intra-op thread: app/jobs/threads.py)."""
        if self.max_jobs is not None:
            return self.max_jobs
        import torch

        from app.jobs.threads import available_cores, run_cores

        return torch.cuda.device_count() or run_cores(available_cores())
