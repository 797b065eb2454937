"""Run ledger, error report, stats fallback and exact rollback on the acceptance scenario (MariaDB),
and the ledgered writer itself on MariaDB and SQLite."""

from __future__ import annotations

import csv
import json
from collections import Counter

import pytest
import sqlalchemy as sa

from cluster.ledger import run_lock_name

from cluster import ledger
from cluster.rollback import rollback_run
from cluster.schema import create_production_schema, users_achievements
from tests import operations as op
from tests import scenario as sc

E, N, C, K, I, X, A, P, H, F, V, R, B = range(1001, 1014)


@pytest.mark.db
@pytest.mark.ray
def test_apply_records_each_inserted_row_and_reports_what_was_skipped(tmp_path, ray_session, scenario_db):
    url, osu_dir = scenario_db
    code, report = op.run(url, osu_dir, tmp_path, "r1", "--apply", "--run-id", "r1", "--shard-rows", "30",
                          "--batch-rows", "10")
    assert code == 0 and report["run_id"] == "r1" and report["status"] == "finished"
    assert op.new_rows(url) == op.EXPECTED_ROWS
    assert op.ledger_matches_table(url, "r1") == []
    recorded = op.ledger_rows(url, "r1")
    by_key = {(g.user_id, g.achievement_id, g.mode): g for g in sc.EXPECTED_GRANTS}
    assert len(recorded) == len(by_key)
    for r in recorded:  # each grant carries its qualifying score and the evidence the condition saw
        grant = by_key[(r["user_id"], r["achievement_id"], r["mode"])]
        assert (r["action"], r["source"], r["score_id"], r["created_at"]) == ("insert", "score", grant.score_id,
                                                                              grant.created_at)
    assert {r["sr"] for r in recorded if (r["user_id"], r["achievement_id"]) == (E, 5)} == {5.0}
    assert {r["playcount"] for r in recorded if (r["user_id"], r["achievement_id"]) == (P, 73)} == {5001}
    # progress: every shard done, the inserted counts add up to the ledger
    shards = op.query(url, "SELECT status, stage, inserted, attempts, finished_at FROM srb_shards WHERE run_id = 'r1'")
    assert len(shards) >= 3 and {s[:2] for s in shards} == {("done", "written")}
    assert sum(s[2] for s in shards) == len(recorded) and all(s[3] == 1 and s[4] for s in shards)
    run = op.query(url, "SELECT command, status, summary FROM srb_runs WHERE run_id = 'r1'")[0]
    assert run[:2] == ("run", "finished") and json.loads(run[2])["grants_written"] == len(recorded)

    # the error report: counts and sample score ids per reason (hand-derived from the scenario)
    assert report["skipped"] == {"missing_file": 1, "md5_mismatch": 1, "bad_format": 3, "impossible_convert": 1,
                                 "unknown_beatmap": 1}
    with (tmp_path / "r1.errors.csv").open() as fh:
        samples = [r for r in csv.DictReader(fh) if r["table"]]
    ids = {}
    for r in samples:
        ids.setdefault(r["reason"], set()).add(int(r["score_id"]))
    assert ids == {"missing_file": {210}, "md5_mismatch": {211}, "bad_format": {212, 213, 214},
                   "impossible_convert": {140}, "unknown_beatmap": {197}}
    assert {r["count"] for r in samples if r["reason"] == "bad_format"} == {"3"}

    # the same run id cannot start again; a finished run cannot be resumed
    before = op.table_rows(url)
    assert op.run(url, osu_dir, tmp_path, "again", "--apply", "--run-id", "r1")[0] == 2
    assert op.run(url, osu_dir, tmp_path, "resume", "--run-id", "r1", "--resume")[0] == 2
    # a second run inserts and records nothing
    code, second = op.run(url, osu_dir, tmp_path, "r2", "--apply", "--run-id", "r2")
    assert code == 0 and second["grants_written"] == 0 and op.ledger_rows(url, "r2") == []
    assert op.table_rows(url) == before


@pytest.mark.db
@pytest.mark.ray
def test_stats_only_thresholds_are_reported_and_granted_dated_now_on_request(tmp_path, ray_session, scenario_db):
    """user_stats holds 60000 plays and 5,000,000 hits for every user and full mode 0-6 and 8: every
    play-count/hit achievement is reached there, while the stored plays reach only (P, 73, 0),
    (H, 77, 1) and (F, 80, 2). Restricted R is left out: 12 users. Per user: play counts 73-76 in
    modes 0, 4, 8 (12), taiko hits 77-79 in 1, 5 (6), catch hits 80-82 in 2, 6 (6), mania hits 83-85
    in 3 (3): 27, so 324 - 3 = 321 candidates."""
    url, osu_dir = scenario_db
    code, report = op.run(url, osu_dir, tmp_path, "dry", "--shard-rows", "40")
    assert code == 0
    fallback = report["stats_fallback"]
    assert fallback["mode"] == "report" and fallback["candidates"] == 321 and fallback["users"] == 12
    assert fallback["by_achievement"] == {"73": 35, "74": 36, "75": 36, "76": 36, "77": 23, "78": 24, "79": 24,
                                          "80": 23, "81": 24, "82": 24, "83": 12, "84": 12, "85": 12}
    assert report["grants"]["total"] == len(sc.EXPECTED_GRANTS)
    with (tmp_path / "dry.stats-only.csv").open() as fh:
        listed = list(csv.DictReader(fh))
    assert len(listed) == 321 and str(R) not in {r["user_id"] for r in listed}
    assert (str(P), "73", "0") not in {(r["user_id"], r["achievement_id"], r["mode"]) for r in listed}

    code, report = op.run(url, osu_dir, tmp_path, "now", "--apply", "--run-id", "now", "--stats-fallback", "now",
                          "--shard-rows", "40")
    assert code == 0 and report["grants_written"] == len(sc.EXPECTED_GRANTS) + 321
    as_of = op.query(url, "SELECT as_of FROM srb_runs WHERE run_id = 'now'")[0][0]
    stats_rows = [r for r in op.ledger_rows(url, "now") if r["source"] == "stats_now"]
    assert len(stats_rows) == 321 and {r["created_at"] for r in stats_rows} == {as_of}
    assert all(r["score_id"] is None and r["playcount"] == 60000 for r in stats_rows)
    assert op.ledger_matches_table(url, "now") == []
    assert op.cli("rollback", "--db", url, "--run-id", "now", "--apply") == 0
    assert op.table_rows(url) == op.EXISTING


@pytest.mark.db
@pytest.mark.ray
def test_rollback_previews_then_deletes_only_rows_still_as_inserted(tmp_path, ray_session, scenario_db, capsys):
    url, osu_dir = scenario_db
    assert op.run(url, osu_dir, tmp_path, "r1", "--apply", "--run-id", "r1")[0] == 0
    recorded = {(r["user_id"], r["achievement_id"], r["mode"]): r["ua_id"] for r in op.ledger_rows(url, "r1")}
    changed_id = recorded[(E, 9, 0)]
    replaced_id = recorded[(C, 21, 0)]
    # after the run: someone changes one inserted row; the live server re-creates another under a new id
    op.execute(
        url,
        f"UPDATE users_achievements SET created_at = created_at + 1 WHERE id = {changed_id}",
        f"DELETE FROM users_achievements WHERE id = {replaced_id}",
        f"INSERT INTO users_achievements (user_id, achievement_id, mode, created_at) VALUES ({C}, 21, 0, 1700000000)",
    )
    before = op.table_rows(url)

    assert op.cli("rollback", "--db", url, "--run-id", "r1", "--report", tmp_path / "preview.json") == 0
    preview = json.loads((tmp_path / "preview.json").read_text())
    assert (preview["to_delete"], preview["changed"], preview["missing"], preview["applied"]) == (
        len(recorded) - 2, 1, 1, False)
    assert "preview" in capsys.readouterr().out
    assert op.table_rows(url) == before
    assert op.query(url, "SELECT COUNT(*) FROM srb_runs")[0][0] == 1

    holder = sa.create_engine(url)  # another process working on the run holds its lock
    with holder.connect() as conn:
        assert conn.execute(sa.select(sa.func.get_lock(run_lock_name(holder, "r1"), 0))).scalar() == 1
        assert op.cli("rollback", "--db", url, "--run-id", "r1", "--apply") == 2
        assert "another process" in capsys.readouterr().err
    holder.dispose()
    assert op.table_rows(url) == before
    assert op.cli("rollback", "--db", url, "--run-id", "r1", "--apply", "--rollback-id", "undo1",
                  "--batch-rows", "7") == 0
    remaining = op.table_rows(url)
    untouched = [r for r in before if r[0] not in set(recorded.values()) or r[0] == changed_id]
    assert remaining == untouched  # the scenario's rows, the changed row and the live server's row
    assert [r for r in remaining if r[0] in {h[0] for h in op.EXISTING}] == op.EXISTING
    undo = op.ledger_rows(url, "undo1")
    assert len(undo) == len(recorded) - 2 and {(r["action"], r["source"]) for r in undo} == {("delete", "rollback_delete")}
    runs = dict(op.query(url, "SELECT run_id, status FROM srb_runs"))
    assert runs == {"r1": "rolled_back", "undo1": "finished"}
    assert op.query(url, "SELECT command, target_run_id FROM srb_runs WHERE run_id = 'undo1'") == [("rollback", "r1")]

    # again: nothing left to do; then undo the rollback: every deleted row comes back with its id
    assert op.cli("rollback", "--db", url, "--run-id", "r1", "--apply", "--rollback-id", "undo2",
                  "--report", tmp_path / "again.json") == 0
    assert op.table_rows(url) == remaining and op.ledger_rows(url, "undo2") == []
    again = json.loads((tmp_path / "again.json").read_text())  # gone: the rows undo1 deleted, and the replaced one
    assert (again["to_delete"], again["missing"], again["already_undone"]) == (0, len(recorded) - 1, len(recorded) - 2)
    assert op.cli("rollback", "--db", url, "--run-id", "undo1", "--apply", "--rollback-id", "redo") == 0
    assert op.table_rows(url) == before


def _grants(*keys):
    return [{"user_id": u, "achievement_id": a, "mode": m, "created_at": 1_500_000_000 + a, "score_id": a,
             "sr": None, "playcount": None, "total_hits": None} for u, a, m in keys]


def _writer_checks(engine: sa.Engine) -> None:
    """write_ledgered records exactly the rows its INSERTs created, also when some already exist."""
    create_production_schema(engine)
    ledger.ensure_tables(engine)
    ledger.ensure_tables(engine)  # idempotent
    with engine.begin() as conn:  # rows that appeared after evaluation (e.g. from the live server)
        conn.execute(sa.insert(users_achievements), [
            {"user_id": 1, "achievement_id": 2, "mode": 0, "created_at": 42},
            {"user_id": 2, "achievement_id": 5, "mode": 4, "created_at": 43},
        ])
    grants = _grants((1, 1, 0), (1, 2, 0), (1, 3, 0), (2, 5, 4), (2, 6, 4), (3, 7, 8), (3, 8, 8))
    for run_id in ("w1", "w2"):
        ledger.create_run(engine, ledger.RunRecord(run_id, "run", "running", 1, 1, {}))
    result = ledger.write_ledgered(engine, "w1", grants, batch_rows=3)
    assert (result.inserted, result.present, result.batches) == (5, 2, 3)
    with engine.connect() as conn:
        table = {r[0]: tuple(r[1:]) for r in conn.execute(sa.select(users_achievements))}
    recorded = ledger.read_ledger(engine, "w1")
    assert sorted((r["user_id"], r["achievement_id"], r["mode"]) for r in recorded) == [
        (1, 1, 0), (1, 3, 0), (2, 6, 4), (3, 7, 8), (3, 8, 8)]
    for r in recorded:
        assert table[r["ua_id"]] == (r["user_id"], r["achievement_id"], r["mode"], r["created_at"])
    assert ledger.write_ledgered(engine, "w2", grants).inserted == 0 and ledger.read_ledger(engine, "w2") == []
    with pytest.raises(ValueError):
        ledger.write_ledgered(engine, "w3", grants + grants[:1])

    preview = rollback_run(engine, "w1")
    assert (preview.to_delete, preview.applied) == (5, False)
    summary = rollback_run(engine, "w1", apply=True, rollback_id="u1", batch_rows=2)
    assert summary.deleted == 5
    with engine.connect() as conn:
        left = sorted(tuple(r) for r in conn.execute(sa.select(users_achievements.c.user_id,
                                                               users_achievements.c.achievement_id)))
    assert left == [(1, 2), (2, 5)]


@pytest.mark.db
def test_ledgered_writer_is_exact_on_mariadb(fresh_mariadb_url):
    engine = sa.create_engine(fresh_mariadb_url)
    try:
        _writer_checks(engine)
    finally:
        engine.dispose()


def test_ledgered_writer_is_exact_on_sqlite(tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'w.db'}")
    try:
        _writer_checks(engine)
        assert Counter(r.command for r in ledger.list_runs(engine)) == {"run": 2, "rollback": 1}
    finally:
        engine.dispose()
