"""Sweeps in the service: every cell a normal stored run, fed to the executor as slots free.

A sweep can hold far more cells than the executor's queue (1,000 by default against a queue
of 32), so the service keeps the cells that are not yet submitted and one scheduler thread
hands them over whenever the executor has room, woken by every run that ends. Each run knows
its sweep and cell through the `sweep_cells` table, beside the run store's tables in the same
SQLite file; a cell's metric is read from its run's frames once, when the run ends.

A server restart marks unfinished cells' runs interrupted (as every run); `resume` creates a
new run for exactly the cells whose run did not complete, and the cell points to it (the old
run stays, listed under the sweep, until the sweep is deleted).
"""

from __future__ import annotations

import json
import logging
import math
import queue
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

from app import series
from app.errors import FieldError, QueueFull, RunConflict, SweepNotFound
from app.frame_arrays import EVAL_KEYS
from app.jobs.base import Executor
from app.services import runs as service
from app.settings import Settings
from app.store import Finish, Store
from normcore.config import RunConfig
from normcore.frames import ACTIVE, TERMINAL
from normcore.sweep import (
    METRICS,
    RunSeries,
    check_grid,
    expand,
    grid_points,
    metric_of,
    summarize,
)

log = logging.getLogger(__name__)

DONE = ("completed", "diverged")  # a cell with a result (a diverged run is a result too)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sweeps (
    id TEXT PRIMARY KEY,
    request TEXT NOT NULL,
    skipped TEXT NOT NULL DEFAULT '[]',
    cancelled INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS sweep_cells (
    sweep_id TEXT NOT NULL REFERENCES sweeps (id) ON DELETE CASCADE,
    point INTEGER NOT NULL,
    seed INTEGER NOT NULL,
    run_id TEXT NOT NULL,
    metric REAL,
    measured INTEGER NOT NULL DEFAULT 0,  -- 1 once the ended run's metric was read
    PRIMARY KEY (sweep_id, point, seed)
);
CREATE INDEX IF NOT EXISTS sweep_cells_by_run ON sweep_cells (run_id);
CREATE TABLE IF NOT EXISTS sweep_runs (
    sweep_id TEXT NOT NULL REFERENCES sweeps (id) ON DELETE CASCADE,
    run_id TEXT NOT NULL,
    PRIMARY KEY (sweep_id, run_id)
);
"""


class SweepService:
    """Create, read, cancel, resume and delete sweeps; schedule their cells."""

    def __init__(
        self,
        store: Store,
        executor: Executor,
        settings: Settings,
        changed: Callable[[], None] | None = None,
    ):
        self.store, self.executor, self.settings = store, executor, settings
        self.changed = changed  # told when cells have ended (their metrics stored)
        self.store.db().executescript(_SCHEMA)
        self._pending: deque[tuple[str, dict[str, Any]]] = deque()  # (run_id, config)
        self._ended: queue.SimpleQueue[str] = queue.SimpleQueue()  # run ids that ended
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="sweeps", daemon=True)

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        self._measure_unmeasured()  # cells that ended while no server was watching
        self._thread.start()

    def stop(self) -> None:
        """End the scheduler; runs it never handed to the executor end interrupted (resume
        runs them), as a stopped server's queued runs do."""
        self._closed = True
        self._wake.set()
        self._thread.join(timeout=10)
        with self._lock:
            pending, self._pending = list(self._pending), deque()
        at = time.time()
        reason = "the sweep's scheduler stopped before the run started"
        self.store.apply([Finish(run_id, "interrupted", reason, at) for run_id, _ in pending])

    def run_changed(self, run: dict[str, Any]) -> None:
        """The recorder's hook: a run's status changed (any thread; only enqueues)."""
        if run["status"] in TERMINAL:
            self._ended.put(run["id"])
            self._wake.set()

    # -- requests ------------------------------------------------------------------------------
    def create(self, request: dict[str, Any]) -> dict[str, Any]:
        """Validate every cell, store the sweep and its runs, and queue them for the executor."""
        base, grid = request["base"], request["grid"]
        seeds, metric = request["seeds"], request["metric"]
        try:
            RunConfig.model_validate(base)
        except Exception as exc:
            raise FieldError(("body", "base"), f"base config is invalid: {exc}", base) from None
        if metric not in METRICS:
            known = ", ".join(METRICS)
            raise FieldError(
                ("body", "metric"), f"metric {metric!r} is unknown; known: {known}", metric
            )
        try:
            check_grid(grid, seeds, self.settings.max_sweep_cells)
        except ValueError as exc:
            raise FieldError(("body", "grid"), str(exc), grid) from None
        plan = expand(base, grid, seeds)
        if plan.invalid and not request.get("skip_invalid"):
            first = plan.invalid[0]
            raise FieldError(
                ("body", "grid", first.field),
                f"{first.describe()} ({len(plan.invalid)} invalid cells; send "
                "skip_invalid: true to run the others)",
                first.values,
            )
        for cell in plan.cells:  # the server's limits, before anything is stored
            service.check_limits(RunConfig.model_validate(cell.config), self.settings)
        sweep_id = uuid.uuid4().hex[:12]
        skipped = [
            {"point": i.point, "values": i.values, "field": i.field, "message": i.message}
            for i in plan.invalid
        ]
        with self.store.transaction() as db:
            db.execute(
                "INSERT INTO sweeps (id, request, skipped, created_at) VALUES (?, ?, ?, ?)",
                (sweep_id, json.dumps(request), json.dumps(skipped), time.time()),
            )
        for cell in plan.cells:
            self._new_run(sweep_id, cell.point, cell.seed, cell.config, cell.values)
        self._wake.set()
        return self.read(sweep_id)

    def _new_run(
        self, sweep_id: str, point: int, seed: int, config: dict[str, Any], values: dict
    ) -> str:
        label = RunConfig.model_validate(config).label()  # names every field off default
        run = self.store.create_run(config, label)
        with self.store.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO sweep_cells (sweep_id, point, seed, run_id) "
                "VALUES (?, ?, ?, ?)",
                (sweep_id, point, seed, run["id"]),
            )
            db.execute(
                "INSERT INTO sweep_runs (sweep_id, run_id) VALUES (?, ?)", (sweep_id, run["id"])
            )
        with self._lock:
            self._pending.append((run["id"], run["config"]))
        return run["id"]

    def list(self, limit: int = 100, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
        db = self.store.db()
        count = db.execute("SELECT COUNT(*) FROM sweeps").fetchone()[0]
        ids = db.execute(
            "SELECT id FROM sweeps ORDER BY created_at DESC, id LIMIT ? OFFSET ?", (limit, offset)
        ).fetchall()
        return [self.read(sweep_id, cells=False) for (sweep_id,) in ids], count

    def read(self, sweep_id: str, cells: bool = True) -> dict[str, Any]:
        """The sweep: request, status, progress and the summary over seeds per grid point."""
        db = self.store.db()
        row = db.execute(
            "SELECT request, skipped, cancelled, created_at FROM sweeps WHERE id = ?", (sweep_id,)
        ).fetchone()
        if row is None:
            raise SweepNotFound(sweep_id)
        request, skipped = json.loads(row[0]), json.loads(row[1])
        rows = db.execute(
            "SELECT c.point, c.seed, c.run_id, c.metric, c.measured, r.status FROM sweep_cells c "
            "LEFT JOIN runs r ON r.id = c.run_id WHERE c.sweep_id = ? ORDER BY c.point, c.seed",
            (sweep_id,),
        ).fetchall()
        points = grid_points(request["grid"])
        statuses = [status or "interrupted" for *_, status in rows]  # None: run deleted
        # A cell has ended once its run has and, for a run with a result, its metric is read.
        ended = [
            s in TERMINAL and (s not in DONE or bool(m))
            for (*_, m, _), s in zip(rows, statuses, strict=True)
        ]
        per_seed: dict[int, list[float | None]] = {}
        for point, _, _, metric, _, _ in rows:
            per_seed.setdefault(point, []).append(metric)
        sweep = {
            "id": sweep_id,
            "base": request["base"],
            "grid": request["grid"],
            "seeds": request["seeds"],
            "metric": request["metric"],
            "created_at": row[3],
            "status": _sweep_status(statuses, ended, bool(row[2])),
            "cells_total": len(rows),
            "cells_done": sum(ended),
            "skipped": skipped,
        }
        if cells:
            sweep["cells"] = [
                {
                    "point": p,
                    "values": points[p],
                    "seed": s,
                    "run_id": run_id,
                    "status": status,
                    "metric": metric,
                    "ended": end,
                }
                for (p, s, run_id, metric, _, _), status, end in zip(
                    rows, statuses, ended, strict=True
                )
            ]
            sweep["summary"] = summarize(points, per_seed)
        return sweep

    def cancel(self, sweep_id: str) -> dict[str, Any]:
        """Stop the sweep: unsubmitted cells never start, queued and running ones are cancelled."""
        sweep = self.read(sweep_id)
        if sweep["status"] not in ACTIVE:
            raise RunConflict(f"sweep {sweep_id!r} has already ended: {sweep['status']}")
        run_ids = {c["run_id"] for c in sweep["cells"]}
        with self.store.transaction() as db:
            db.execute("UPDATE sweeps SET cancelled = 1 WHERE id = ?", (sweep_id,))
        with self._lock:
            self._pending = deque(item for item in self._pending if item[0] not in run_ids)
        for cell in sweep["cells"]:
            if cell["status"] in ACTIVE:
                try:
                    service.cancel_run(self.store, self.executor, cell["run_id"], wait_s=0)
                except RunConflict:
                    pass  # it ended meanwhile
        return self.read(sweep_id)

    def resume(self, sweep_id: str) -> dict[str, Any]:
        """Run again exactly the cells whose run did not complete (interrupted, cancelled,
        failed); cells with a result or still active are left alone."""
        sweep = self.read(sweep_id)
        if sweep["status"] in ACTIVE:
            raise RunConflict(f"sweep {sweep_id!r} is still {sweep['status']}; nothing to resume")
        missing = [c for c in sweep["cells"] if c["status"] not in DONE]
        if not missing:
            raise RunConflict(f"sweep {sweep_id!r} has every cell completed; nothing to resume")
        with self.store.transaction() as db:
            db.execute("UPDATE sweeps SET cancelled = 0 WHERE id = ?", (sweep_id,))
        for cell in missing:
            old = self.store.get_run(cell["run_id"])
            config = old["config"] if old else {**sweep["base"], **cell["values"]}
            self._new_run(sweep_id, cell["point"], cell["seed"], config, cell["values"])
        self._wake.set()
        return self.read(sweep_id)

    def delete(self, sweep_id: str) -> None:
        """Delete the sweep and every run it ever created (cancelling active ones first)."""
        sweep = self.read(sweep_id)
        if sweep["status"] in ACTIVE:
            self.cancel(sweep_id)
        db = self.store.db()
        run_ids = [
            r
            for (r,) in db.execute("SELECT run_id FROM sweep_runs WHERE sweep_id = ?", (sweep_id,))
        ]
        for run_id in run_ids:
            if (run := self.store.get_run(run_id)) and run["status"] in ACTIVE:
                try:
                    service.cancel_run(self.store, self.executor, run_id, wait_s=2.0)
                except RunConflict:
                    pass
            self.store.delete_run(run_id)
        with self.store.transaction() as tx:
            tx.execute("DELETE FROM sweeps WHERE id = ?", (sweep_id,))

    def csv(self, sweep_id: str) -> str:
        """The summary as CSV: one row per grid point, its values, n, mean, std, per seed."""
        import csv
        import io

        sweep = self.read(sweep_id)
        fields = list(sweep["grid"])
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        seeds = [f"seed_{k}" for k in range(sweep["seeds"])]
        writer.writerow([*fields, "n", f"{sweep['metric']}_mean", f"{sweep['metric']}_std", *seeds])
        for row in sweep["summary"]:
            per_seed = row["per_seed"] + [None] * (len(seeds) - len(row["per_seed"]))
            writer.writerow(
                [row["values"][f] for f in fields] + [row["n"], row["mean"], row["std"], *per_seed]
            )
        return out.getvalue()

    # -- the scheduler thread ------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._closed:
            self._wake.wait(timeout=1.0)
            self._wake.clear()
            self._record_ended()
            self._submit_pending()

    def _submit_pending(self) -> None:
        while not self._closed:
            with self._lock:
                if not self._pending:
                    return
                run_id, config = self._pending[0]
            run = self.store.get_run(run_id)
            if run is not None and run["status"] == "queued":
                try:
                    self.executor.submit(run_id, config)
                except QueueFull:
                    return  # a run that ends wakes us again
                except Exception as exc:  # the executor refused it for good: say so on the run
                    log.exception("sweep run %s could not be submitted", run_id)
                    self._fail(run_id, f"the executor refused the run: {exc}")
            with self._lock:
                if self._pending and self._pending[0][0] == run_id:
                    self._pending.popleft()

    def _fail(self, run_id: str, error: str) -> None:
        self.store.apply([Finish(run_id, "failed", error, time.time())])

    def _record_ended(self) -> None:
        measured = False
        while True:
            try:
                run_id = self._ended.get_nowait()
            except queue.Empty:
                break
            self._measure(run_id)
            measured = True
        if measured and self.changed is not None:
            self.changed()

    def _measure(self, run_id: str) -> None:
        """Store the metric of a sweep cell's run that has ended (nothing for other runs)."""
        db = self.store.db()
        cells = db.execute(
            "SELECT c.sweep_id, s.request FROM sweep_cells c JOIN sweeps s ON s.id = c.sweep_id "
            "WHERE c.run_id = ?",
            (run_id,),
        ).fetchall()
        for sweep_id, request in cells:
            metric = json.loads(request)["metric"]
            value = metric_of(metric, run_series(self.store, run_id, metric))
            with self.store.transaction() as tx:
                tx.execute(
                    "UPDATE sweep_cells SET metric = ?, measured = 1 "
                    "WHERE sweep_id = ? AND run_id = ?",
                    (value, sweep_id, run_id),
                )

    def _measure_unmeasured(self) -> None:
        rows = (
            self.store.db()
            .execute(
                "SELECT c.run_id FROM sweep_cells c JOIN runs r ON r.id = c.run_id "
                f"WHERE c.metric IS NULL AND r.status IN ({', '.join('?' * len(DONE))})",
                DONE,
            )
            .fetchall()
        )
        for (run_id,) in rows:
            self._measure(run_id)


def run_series(store: Store, run_id: str, metric: str) -> RunSeries:
    """What ``metric`` reads of a stored run, from its columns (app/frame_columns.py): a
    few arrays instead of parsing every frame (a 500-step cell's frames cost the server
    ~20 ms to decode). Missing values are None, as in the frames (a stored frame holds no
    NaN: ``clean`` made it None)."""
    key = {"sat_last": "sat", "drift_mean": "w1_prev"}.get(metric)  # a layer line, or none
    names = service.layer_names(store, run_id) if key else []
    if metric == "sat_last":
        names = names[-1:]
    layer_keys = {name: [key] for name in names} if key else {}
    run_keys = ["loss"] if metric == "loss" else []
    cols = store.read_columns(run_id, 0, series.MAX_STEP, layer_keys, run_keys)
    evals = cols.evals[cols.has_eval]
    lines = [cols.layers[name][key] for name in names] if key else []  # one per layer
    return RunSeries(
        evals={k: _values(evals[:, EVAL_KEYS.index(k)]) for k in ("acc", "loss")},
        loss=_values(cols.run["loss"]) if run_keys else [],
        sat_last=_values(lines[0]) if metric == "sat_last" and lines else [],
        w1_prev=(  # (frames, layers): frame by frame, as the frames list them
            [_values(row) for row in np.stack(lines, axis=1)]
            if metric == "drift_mean" and lines
            else []
        ),
    )


def _values(array: np.ndarray) -> list[float | None]:
    return [None if math.isnan(v) else v for v in array.tolist()]


def _sweep_status(statuses: list[str], ended: list[bool], cancelled: bool) -> str:
    """queued (nothing started) | running | completed (every cell has a result) | cancelled |
    interrupted (some cells ended without a result and none is active: resume runs them)."""
    if not all(ended):
        started = any(s != "queued" for s in statuses)
        return "running" if started else "queued"
    if cancelled:
        return "cancelled"
    return "completed" if all(s in DONE for s in statuses) else "interrupted"
