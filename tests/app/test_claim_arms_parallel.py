"""A claim's arms run side by side on the server's slots, as stored runs, like any runs.

The claims service keeps as many arms in flight as the executor has slots
(ExecutorRunner.map): on a server with two slots, two arms train at once, and a third is
submitted only when one of them has ended (any, not the oldest), so a claim never fills the
queue other users need. The checks read the runs' own start and end times, so they rest on
the order of events, not on how fast the machine is.
"""

from __future__ import annotations

from app.services.claims import ExecutorRunner
from app.services.engine import start_engine
from app.settings import Settings
from normcore.config import RunConfig

SMALL = dict(depth=2, width=16, steps=200, probe_every=20, eval_every=200, device="cpu")


def test_arms_are_all_submitted_before_any_is_waited_for(tmp_path):
    engine = start_engine(Settings(data_dir=tmp_path, max_jobs=2, warm_workers=2))
    try:
        record = engine.claims.claims.create("C1", quick=True)
        runner = ExecutorRunner(engine.claims, record["id"], "C1")
        arms = [(f"seed {s}", RunConfig(**SMALL, seed=s)) for s in range(3)]
        arms.append(("seed 0 again", arms[0][1]))  # the same config: one run, read twice
        results = runner.map(arms)

        assert [r.status for r in results] == ["completed"] * 4
        assert results[3].run_id == results[0].run_id and len(set(runner.run_ids)) == 3
        assert results[3].frames == results[0].frames
        runs = [engine.store.get_run(r.run_id) for r in results[:3]]
        assert all(run["label"].startswith("C1 · seed") for run in runs)
        # two slots: the second arm started before the first one ended
        first, second, third = sorted(runs, key=lambda run: run["created_at"])
        assert second["started_at"] < first["finished_at"]
        # and no more were submitted than there are slots: the queue stays free for others
        assert third["created_at"] >= min(first["finished_at"], second["finished_at"])
        # a claim run's runs are recorded with it
        assert sorted(engine.claims.claims.get(record["id"])["run_ids"]) == sorted(runner.run_ids)
    finally:
        engine.stop()


def test_a_slot_freed_by_a_short_arm_is_refilled_while_a_long_one_runs(tmp_path):
    engine = start_engine(Settings(data_dir=tmp_path, max_jobs=2, warm_workers=2))
    try:
        record = engine.claims.claims.create("C1", quick=True)
        runner = ExecutorRunner(engine.claims, record["id"], "C1")
        long = RunConfig(**{**SMALL, "steps": 3000, "probe_every": 300, "eval_every": 3000})
        arms = [("long", long)] + [(f"short {s}", RunConfig(**SMALL, seed=s)) for s in range(3)]
        results = runner.map(arms)

        assert [r.status for r in results] == ["completed"] * 4
        first, *short = [engine.store.get_run(r.run_id) for r in results]
        # the short arms took turns in the other slot while the long one still trained
        assert short[1]["created_at"] < first["finished_at"]
        assert short[1]["created_at"] >= short[0]["finished_at"]
    finally:
        engine.stop()
