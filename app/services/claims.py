"""Claim runs in the service: each arm a stored run in a worker process, the verdict stored too.

A claim run is orchestrated by one thread in the server, which only submits runs, waits for
them and reads their frames: the training happens in the executor's worker processes, so the
server stays responsive, every arm shows up in the run list (labelled with its claim), and the
result links to those runs by id. Measuring and judging from frames is cheap; the few direct
layer checks (invariance, gradient law, batch dependence) take well under a second.

Results live in a `claim_runs` table beside the store's own tables in the same SQLite file,
managed here so the run store needs no change. Identical arms are run once per server
process (C1, C2 and ICS share theirs): a run is a pure function of its seeded config.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from app.errors import ClaimConflict, QueueFull
from app.jobs.base import Executor
from app.services import runs as service
from app.settings import Settings
from app.store import Store
from normcore.claims import CLAIMS, ArmRun, Experiment, run_experiment
from normcore.config import RunConfig
from normcore.frames import ACTIVE, decode

log = logging.getLogger(__name__)

USABLE = ("completed", "diverged")  # a diverged arm is evidence too (the lr sweep needs it)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS claim_runs (
    id TEXT PRIMARY KEY,
    claim_id TEXT NOT NULL,
    quick INTEGER NOT NULL,
    status TEXT NOT NULL,
    verdict TEXT,
    error TEXT,
    run_ids TEXT NOT NULL DEFAULT '[]',
    result TEXT,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL
);
CREATE INDEX IF NOT EXISTS claim_runs_by_claim ON claim_runs (claim_id, created_at);
"""
_COLUMNS = "id, claim_id, quick, status, verdict, error, run_ids, result, created_at, "
_COLUMNS += "started_at, finished_at"
PUBLISHED = "published-"  # id prefix of the rows load_published() writes


class ArmFailed(RuntimeError):
    """An arm's run ended without frames to judge (failed, cancelled, interrupted)."""


class ClaimStore:
    """claim_runs rows; one connection behind a lock (a few writes per claim run)."""

    def __init__(self, path: Any):
        self._db = sqlite3.connect(path, timeout=10, isolation_level=None, check_same_thread=False)
        self._lock = threading.Lock()
        self._closed = False
        with self._lock:
            self._db.executescript(_SCHEMA)

    def close(self) -> None:
        """Close the connection (at shutdown). A claim thread that outlives the server finds
        its updates dropped; the next start-up marks its claim run interrupted."""
        with self._lock:
            self._closed = True
            self._db.close()

    def create(self, claim_id: str, quick: bool) -> dict[str, Any]:
        run_id = uuid.uuid4().hex[:12]
        with self._lock:
            self._db.execute(
                "INSERT INTO claim_runs (id, claim_id, quick, status, created_at) "
                "VALUES (?, ?, ?, 'queued', ?)",
                (run_id, claim_id, int(quick), time.time()),
            )
        found = self.get(run_id)
        assert found is not None
        return found

    def update(self, run_id: str, **fields: Any) -> None:
        for key in ("run_ids", "result"):
            if key in fields:
                fields[key] = json.dumps(fields[key])
        sets = ", ".join(f"{k} = ?" for k in fields)
        with self._lock:
            if self._closed:
                return
            self._db.execute(
                f"UPDATE claim_runs SET {sets} WHERE id = ?", (*fields.values(), run_id)
            )

    def get(self, run_id: str) -> dict[str, Any] | None:
        rows = self._select("WHERE id = ?", (run_id,), with_result=True)
        return rows[0] if rows else None

    def history(self, claim_id: str, limit: int = 20) -> list[dict[str, Any]]:
        """The claim's runs, newest first, without their (large) results."""
        return self._select(
            "WHERE claim_id = ? ORDER BY created_at DESC LIMIT ?",
            (claim_id, limit),
            with_result=False,
        )

    def latest(self, claim_id: str, completed: bool = False) -> dict[str, Any] | None:
        where = "WHERE claim_id = ?" + (" AND status = 'completed'" if completed else "")
        rows = self._select(where + " ORDER BY created_at DESC LIMIT 1", (claim_id,), True)
        return rows[0] if rows else None

    def mark_interrupted(self) -> None:
        """Claim runs a previous server process left active cannot finish any more."""
        with self._lock:
            self._db.execute(
                "UPDATE claim_runs SET status = 'interrupted', finished_at = ?, "
                "error = 'the server stopped while the claim ran' WHERE status IN (?, ?)",
                (time.time(), *ACTIVE),
            )

    def publish(self, results: list[dict[str, Any]]) -> None:
        """Keep the published results as completed claim runs, dated when they ran, so each
        claim opens with one until this server runs it; rows of an older file go."""
        rows = []
        for r in results:
            run_at = r.get("run_at") or {}
            when = _epoch(run_at.get("date"))
            row_id = f"{PUBLISHED}{r['id']}-{run_at.get('commit', 'unknown')}"
            quick, verdict = int(bool(r.get("quick"))), r.get("verdict")
            rows.append((row_id, r["id"], quick, verdict, json.dumps(r), when, when, when))
        with self._lock:
            marks = ", ".join("?" for _ in rows)
            self._db.execute(
                f"DELETE FROM claim_runs WHERE id LIKE '{PUBLISHED}%' AND id NOT IN ({marks})",
                [row[0] for row in rows],
            )
            self._db.executemany(
                "INSERT OR REPLACE INTO claim_runs (id, claim_id, quick, status, verdict, "
                "result, created_at, started_at, finished_at) "
                "VALUES (?, ?, ?, 'completed', ?, ?, ?, ?, ?)",
                rows,
            )

    def _select(self, where: str, args: tuple, with_result: bool) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(f"SELECT {_COLUMNS} FROM claim_runs {where}", args).fetchall()
        out = []
        for row in rows:
            item = dict(zip(_COLUMNS.split(", "), row, strict=True))
            item["quick"] = bool(item["quick"])
            item["published"] = item["id"].startswith(PUBLISHED)
            item["run_ids"] = json.loads(item["run_ids"])
            result = item.pop("result")
            item["result"] = json.loads(result) if with_result and result else None
            out.append(item)
        return out


def _epoch(date: Any) -> float:
    """'2026-12-06T05:37:25Z' -> seconds; 0 (the oldest) when missing or unreadable."""
    from datetime import datetime

    try:
        return datetime.fromisoformat(str(date).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def load_published(path: Path | None) -> list[dict[str, Any]]:
    """The claim results at `path` (`normscope claims --full` writes them) whose claim is in
    the catalog; [] when there is no such file. A broken file is skipped, not fatal: the
    server must start whatever docs/ holds, and says why in its log."""
    if path is None or not path.is_file():
        return []
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        log.warning("published claim results %s unreadable: %s", path, exc)
        return []
    if not isinstance(results, list):
        log.warning("published claim results %s: not a list", path)
        return []
    return [r for r in results if isinstance(r, dict) and r.get("id") in CLAIMS]


class ExecutorRunner:
    """normcore.claims' Runner: each arm becomes a stored run in the executor's workers."""

    def __init__(self, owner: ClaimService, claim_run_id: str, claim_id: str):
        self.owner, self.claim_run_id, self.claim_id = owner, claim_run_id, claim_id
        self.run_ids: list[str] = []

    def __call__(self, arm: str, config: RunConfig) -> ArmRun:
        return self.map([(arm, config)])[0]

    def map(self, arms: list[tuple[str, RunConfig]]) -> list[ArmRun]:
        """Every arm as a stored run, as many at once as the executor has slots, so a sweep's
        arms train side by side; the next is submitted when any of them ends, which leaves the
        queue to other users (a claim of 100 arms never fills it and turns their runs away).
        An arm whose config ran already (in this claim or an earlier one of this server)
        reuses that run. Results in the order of `arms`."""
        window = max(1, int(self.owner.executor.snapshot().get("slots") or 1))
        ids: dict[str, str] = {}  # config JSON -> run id
        in_flight: list[str] = []
        for arm, config in arms:
            key = config.model_dump_json()
            if key in ids:
                continue
            known = self.owner.reusable(config)
            if known:
                ids[key] = known["id"]
                continue
            if len(in_flight) >= window:
                in_flight = self._wait_any(in_flight)
            ids[key] = self._submit(arm, config)
            in_flight.append(ids[key])
        return [self._result(arm, config, ids[config.model_dump_json()]) for arm, config in arms]

    def _result(self, arm: str, config: RunConfig, run_id: str) -> ArmRun:
        run = self._wait(run_id)
        if run["id"] not in self.run_ids:
            self.run_ids.append(run["id"])
            self.owner.claims.update(self.claim_run_id, run_ids=self.run_ids)
        if run["status"] not in USABLE:
            reason = f": {run['error']}" if run.get("error") else ""
            raise ArmFailed(f"arm {arm!r}: run {run['id']} ended {run['status']}{reason}")
        self.owner.remember(config, run["id"])
        store = self.owner.store
        frames = [decode(blob) for _, blob in store.iter_frames(run["id"])]
        return ArmRun(frames, run["id"], run["status"])

    def _submit(self, arm: str, config: RunConfig) -> str:
        owner = self.owner
        label = f"{self.claim_id} · {arm} · {config.label()}"
        while True:
            try:
                run = service.create_run(
                    owner.store, owner.executor, owner.settings, config, label=label
                )
                break
            except QueueFull:  # other users' runs first; a claim can wait its turn
                time.sleep(1.0)
        self.run_ids.append(run["id"])
        owner.claims.update(self.claim_run_id, run_ids=self.run_ids)
        return run["id"]

    def _wait_any(self, run_ids: list[str]) -> list[str]:
        """Wait until one of `run_ids` has ended; the ones still active."""
        while True:
            store = self.owner.store
            active = [r for r in run_ids if service.get_run(store, r)["status"] in ACTIVE]
            if len(active) < len(run_ids):
                return active
            time.sleep(0.1)

    def _wait(self, run_id: str) -> dict[str, Any]:
        while True:
            run = service.get_run(self.owner.store, run_id)
            if run["status"] not in ACTIVE:
                return run
            time.sleep(0.1)


class ClaimService:
    """Starts claim runs in threads and answers what the claims endpoints ask."""

    def __init__(self, store: Store, executor: Executor, settings: Settings):
        """Built at start-up (app/main.py's lifespan): claim runs a stopped server left
        active are marked interrupted before any request is answered."""
        self.store, self.executor, self.settings = store, executor, settings
        self.claims = ClaimStore(store.path)
        self.claims.mark_interrupted()
        self.claims.publish(load_published(settings.claim_results))
        self._known: dict[str, str] = {}  # config JSON -> id of a completed run
        self._lock = threading.Lock()

    def close(self) -> None:
        self.claims.close()

    def start(self, exp: Experiment, quick: bool) -> dict[str, Any]:
        with self._lock:
            active = self.claims.latest(exp.id)
            if active and active["status"] in ACTIVE:
                raise ClaimConflict(
                    f"claim {exp.id!r} is already running (claim run "
                    f"{active['id']!r}); wait for it to finish"
                )
            record = self.claims.create(exp.id, quick)
        thread = threading.Thread(
            target=self._execute,
            args=(record["id"], exp, quick),
            name=f"claim-{exp.id}",
            daemon=True,
        )
        thread.start()
        return record

    def _execute(self, claim_run_id: str, exp: Experiment, quick: bool) -> None:
        self.claims.update(claim_run_id, status="running", started_at=time.time())
        runner = ExecutorRunner(self, claim_run_id, exp.id)
        try:
            result = run_experiment(exp, quick=quick, runner=runner)
        except Exception as exc:  # the claim run records why; the server carries on
            self.claims.update(
                claim_run_id, status="failed", error=str(exc) or repr(exc), finished_at=time.time()
            )
            return
        self.claims.update(
            claim_run_id,
            status="completed",
            verdict=result["verdict"],
            result=result,
            finished_at=time.time(),
        )

    def reusable(self, config: RunConfig) -> dict[str, Any] | None:
        """A completed run of exactly this config from this server process, if still stored."""
        run_id = self._known.get(config.model_dump_json())
        run = self.store.get_run(run_id) if run_id else None
        return run if run and run["status"] in USABLE else None

    def remember(self, config: RunConfig, run_id: str) -> None:
        self._known[config.model_dump_json()] = run_id
