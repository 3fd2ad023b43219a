"""Executors run jobs away from the server process; see base.Executor."""

from __future__ import annotations

from app.jobs.base import Executor, Sink
from app.settings import Settings


def make_executor(settings: Settings, sink: Sink) -> Executor:
    """The executor the settings name."""
    if settings.executor == "local":
        from app.jobs.local import LocalExecutor

        return LocalExecutor(settings, sink)
    if settings.executor == "ray":
        from app.jobs.ray_executor import RayExecutor

        return RayExecutor(settings, sink)
    raise ValueError(
        f"NORMSCOPE_EXECUTOR={settings.executor!r} is not available in this build; use 'local'"
    )
