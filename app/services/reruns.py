"""Re-run: a new run with the config of one that did not finish, linked to it by `rerun_of`.

A server restart marks its queued and running runs `interrupted`; a failed run may have met
a full disk or an OOM that is gone now; a cancelled one may have been stopped by mistake.
Those can be re-run. Active runs cannot (they have not ended: cancel first), and neither can
completed or diverged ones: runs are seeded, so the same config gives the same frames again.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from app.errors import RunConflict
from app.jobs.base import Executor
from app.services import runs as service
from app.services.watched import OWN_MODEL
from app.settings import Settings
from app.store import Store
from normcore.config import RunConfig
from normcore.frames import ACTIVE

RERUNNABLE = ("interrupted", "failed", "cancelled")


def rerun(store: Store, executor: Executor, settings: Settings, run_id: str) -> dict[str, Any]:
    """Queue a copy of run `run_id`'s config as a new run; 409 when it cannot be re-run."""
    old = service.get_run(store, run_id)
    status = old["status"]
    if status in ACTIVE:
        raise RunConflict(
            f"run {run_id!r} is {status}: only a run that ended ({', '.join(RERUNNABLE)}) "
            "can be re-run; cancel it first"
        )
    if status not in RERUNNABLE:
        raise RunConflict(
            f"run {run_id!r} {status}: the same seeded config would give the same frames; "
            f"only {', '.join(RERUNNABLE)} runs can be re-run (launch a new run with "
            "another seed instead)"
        )
    if old["config"].get("model") == OWN_MODEL:
        raise RunConflict(
            f"run {run_id!r} was watched from its own training loop: the server cannot "
            "train it; run that script again"
        )
    try:
        config = RunConfig.model_validate(old["config"])
    except ValidationError as exc:  # a config stored by an older release
        raise RunConflict(
            f"run {run_id!r}'s config is no longer valid, so it cannot be re-run as it was: "
            f"{exc.errors()[0]['msg']}"
        ) from exc
    return service.create_run(store, executor, settings, config, rerun_of=run_id)
