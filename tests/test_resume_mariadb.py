"""Checkpoint and resume: the job is SIGKILLed from outside at several points (after planning, in the
middle of a write batch, after shards finished), resumed each time, and must end with exactly the
users_achievements rows and ledger of an uninterrupted run. Rollback after a partial and after a
resumed run removes exactly what was inserted.

The job runs as a subprocess (`sr-backfill run ...`) attached to the session's Ray; the test-only
SRB_TEST_PAUSE_AT makes it stop at a named point (cluster.pauses) so that the kill lands there.
"""

from __future__ import annotations

from collections import Counter

import pytest

from tests import operations as op
from tests import scenario as sc

pytestmark = [pytest.mark.db, pytest.mark.ray]

RUN_ID = "kill-test"
# small shards and batches: several shards and write batches on the scenario's 54 grants
# one writer: the pause points count per writer process, so "write:2" is the run's second batch
OPTIONS = ["--shard-rows", "8", "--batch-rows", "6", "--workers", "2", "--writers", "1", "--no-progress",
           "--db-retry-wait", "0.05"]
LEDGER_KEY = ("run_id", "action", "source", "user_id", "achievement_id", "mode", "created_at", "score_id", "sr",
              "playcount", "total_hits")


def job_argv(url, osu_dir, work, ray_address, *extra):
    return ["run", "--db", url, "--osu-dir", osu_dir, "--apply", "--run-id", RUN_ID, "--report",
            work / "report.json", "--ray-address", ray_address, *OPTIONS, *extra]


def shard_status(url) -> Counter:
    return Counter(s for (s,) in op.query(url, "SELECT status FROM srb_shards WHERE run_id = :r", {"r": RUN_ID}))


def ledger_set(url) -> Counter:
    return Counter(tuple(r[k] for k in LEDGER_KEY) for r in op.ledger_rows(url, RUN_ID))


@pytest.fixture(scope="module")
def ray_address(ray_session):
    return ray_session.get_runtime_context().gcs_address


def test_killed_at_several_points_and_resumed_equals_an_uninterrupted_run(tmp_path, ray_address, scenario_db):
    from tests.conftest import throwaway_database

    url, osu_dir = scenario_db
    marker = tmp_path / "paused"

    # 1. killed once the plan is stored: nothing written, every shard pending
    proc = op.start_job(job_argv(url, osu_dir, tmp_path, ray_address), "plan", marker)
    assert op.kill_when_paused(proc, marker) == "plan:1"
    planned = shard_status(url)
    assert planned and set(planned) == {"pending"}, planned
    assert op.table_rows(url) == op.EXISTING and op.ledger_rows(url) == []
    plan = op.query(url, "SELECT shard, user_lo, user_hi, rows_planned FROM srb_shards ORDER BY shard")
    assert len(plan) >= 4, "the scenario should make several shards"

    # 2. resumed, killed in the middle of its second write batch (rows inserted, not committed)
    proc = op.start_job(job_argv(url, osu_dir, tmp_path, ray_address, "--resume"), "write:2", marker)
    assert op.kill_when_paused(proc, marker) == "write:2"
    assert op.ledger_matches_table(url, RUN_ID) == []
    first_batch = len(op.ledger_rows(url, RUN_ID))
    assert 1 <= first_batch <= 6, "exactly the first batch committed"
    assert shard_status(url)["done"] <= 1

    # 3. resumed again, killed right after two more shards finished
    done_before = shard_status(url)["done"]
    proc = op.start_job(job_argv(url, osu_dir, tmp_path, ray_address, "--resume"), "shard:2", marker)
    assert op.kill_when_paused(proc, marker) == "shard:2"
    assert op.ledger_matches_table(url, RUN_ID) == []
    assert shard_status(url)["done"] == done_before + 2
    assert len(op.ledger_rows(url, RUN_ID)) > first_batch

    # 4. resumed to the end (in this process)
    code, report = op.run(url, osu_dir, tmp_path, "final", "--apply", "--run-id", RUN_ID, "--resume", *OPTIONS)
    assert code == 0 and report["resumed"] and report["status"] == "finished"
    assert report["shards_done_before"] == done_before + 2
    assert report["grants_written"] == len(sc.EXPECTED_GRANTS)
    assert op.query(url, "SELECT shard, user_lo, user_hi, rows_planned FROM srb_shards ORDER BY shard") == plan
    assert set(shard_status(url)) == {"done"}
    assert op.query(url, "SELECT status FROM srb_runs WHERE run_id = :r", {"r": RUN_ID}) == [("finished",)]

    # the same run uninterrupted, on a second copy of the scenario
    with throwaway_database() as clean_url:
        sc.setup_database(clean_url, tmp_path / "osu-clean")
        code, _ = op.run(clean_url, tmp_path / "osu-clean", tmp_path, "clean", "--apply", "--run-id", RUN_ID, *OPTIONS)
        assert code == 0
        clean_rows, clean_ledger = op.new_rows(clean_url), ledger_set(clean_url)
    resumed_rows = [r[1:] for r in op.table_rows(url)]
    assert len(resumed_rows) == len(set(resumed_rows)), "duplicate rows"
    assert op.new_rows(url) == clean_rows == op.EXPECTED_ROWS
    assert ledger_set(url) == clean_ledger
    assert max(ledger_set(url).values()) == 1 and sum(ledger_set(url).values()) == len(sc.EXPECTED_GRANTS)
    assert op.ledger_matches_table(url, RUN_ID) == []
    inserted = op.query(url, "SELECT SUM(inserted) FROM srb_shards WHERE run_id = :r", {"r": RUN_ID})[0][0]
    assert inserted == len(sc.EXPECTED_GRANTS)

    # a resumed run rolls back exactly
    assert op.cli("rollback", "--db", url, "--run-id", RUN_ID, "--apply", "--rollback-id", "undo-kill-test") == 0
    assert op.table_rows(url) == op.EXISTING


def test_rollback_after_a_partial_run_removes_exactly_what_it_inserted(tmp_path, ray_address, scenario_db):
    url, osu_dir = scenario_db
    marker = tmp_path / "paused"
    proc = op.start_job(job_argv(url, osu_dir, tmp_path, ray_address), "commit:3", marker)
    assert op.kill_when_paused(proc, marker) == "commit:3"
    partial = op.ledger_rows(url, RUN_ID)
    assert 3 <= len(partial) < len(sc.EXPECTED_GRANTS)
    assert op.ledger_matches_table(url, RUN_ID) == []
    assert op.query(url, "SELECT status FROM srb_runs WHERE run_id = :r", {"r": RUN_ID}) == [("running",)]

    # a resume keeps its stored plan: another scope is refused before anything runs
    code, _ = op.run(url, osu_dir, tmp_path, "conflict", "--run-id", RUN_ID, "--resume", "--tier", "active", *OPTIONS)
    assert code == 2 and len(op.ledger_rows(url, RUN_ID)) == len(partial)

    assert op.cli("rollback", "--db", url, "--run-id", RUN_ID, "--apply", "--rollback-id", "undo-partial",
                  "--report", tmp_path / "rollback.json") == 0
    assert op.table_rows(url) == op.EXISTING
    deleted = op.ledger_rows(url, "undo-partial")
    assert sorted((r["ua_id"], r["action"]) for r in deleted) == sorted((r["ua_id"], "delete") for r in partial)
    # a rolled-back run cannot be resumed
    code, _ = op.run(url, osu_dir, tmp_path, "resume", "--apply", "--run-id", RUN_ID, "--resume", *OPTIONS)
    assert code == 2
    assert op.table_rows(url) == op.EXISTING
