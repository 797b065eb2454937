"""The run lock (cluster.ledger.run_lock) cannot vanish unnoticed: its connection is kept alive past the
server's `wait_timeout`, and every write transaction of a run checks that this process still holds it.
When the lock's connection is killed (`KILL CONNECTION`) in the middle of a run, the run stops before its
next write, resumably; after `--resume` the rows and the ledger are those of an undisturbed run.

A short `wait_timeout` is set per session through the test URL (`init_command`), never on the shared
server."""

from __future__ import annotations

import threading
import time
from collections import Counter
from urllib.parse import quote

import pyarrow as pa
import pytest
import sqlalchemy as sa

from cluster import db, ledger
from cluster.errors import RunLockLost, RunStateError
from tests import operations as op
from tests import scenario as sc
from tests.conftest import throwaway_database

pytestmark = pytest.mark.db

SHORT_WAIT = "?init_command=" + quote("SET SESSION wait_timeout=2")
# one writer: the run writes its batches one after another (the lock is killed after the second)
OPTIONS = ["--shard-rows", "8", "--batch-rows", "6", "--workers", "2", "--writers", "1", "--no-progress",
           "--db-retry-wait", "0.05"]
LEDGER_KEY = ("run_id", "action", "source", "user_id", "achievement_id", "mode", "created_at", "score_id", "sr",
              "playcount", "total_hits")


def grants(user_ids) -> pa.Table:
    return pa.table({"user_id": list(user_ids), "achievement_id": [1] * len(user_ids), "mode": [0] * len(user_ids),
                     "created_at": [1_500_000_000] * len(user_ids)})


def kill(url: str, connection_id: int) -> None:
    op.execute(url, f"KILL CONNECTION {int(connection_id)}")


def test_the_run_lock_outlives_a_short_wait_timeout(fresh_mariadb_url):
    engine = db.connect(fresh_mariadb_url + SHORT_WAIT)
    other = db.connect(fresh_mariadb_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT @@SESSION.wait_timeout")).scalar() == 2
        with ledger.run_lock(engine, "idle") as lock:
            time.sleep(5)  # more than twice the lock connection's wait_timeout, idle
            assert ledger.run_in_use(other, "idle"), "the lock vanished with its idle connection"
            with pytest.raises(RunStateError, match="another process"):
                with ledger.run_lock(other, "idle"):
                    pass
            with engine.connect() as conn:
                lock.check(conn)  # still this process's
        assert not ledger.run_in_use(other, "idle")  # released at the end of the block
    finally:
        engine.dispose()
        other.dispose()


def test_a_lost_lock_stops_the_next_write_before_it_commits(fresh_mariadb_url):
    from cluster.schema import metadata as schema

    engine = db.connect(fresh_mariadb_url)
    try:
        schema.create_all(engine, tables=[schema.tables["users_achievements"]])
        ledger.ensure_tables(engine)
        ledger.create_run(engine, ledger.RunRecord("lost", "run", "running", 1, 1, {}))
        with ledger.run_lock(engine, "lost") as lock:
            assert ledger.write_ledgered(engine, "lost", grants([1, 2, 3]), batch_rows=2, lock=lock).inserted == 3
            kill(fresh_mariadb_url, lock.connection_id)
            with pytest.raises(RunLockLost, match="resume"):
                ledger.write_ledgered(engine, "lost", grants([4, 5]), lock=lock)
            with pytest.raises(RunLockLost):
                ledger.update_run(engine, "lost", status="finished", lock=lock)
            # another process takes the run meanwhile: still refused, naming the other holder
            with ledger.run_lock(engine, "lost") as second:
                lock.lost = None  # as if the keep-alive had not noticed yet
                with pytest.raises(RunLockLost, match="another session"):
                    ledger.write_ledgered(engine, "lost", grants([6]), lock=lock)
                assert ledger.write_ledgered(engine, "lost", grants([7]), lock=second).inserted == 1
        assert sorted(r["user_id"] for r in ledger.read_ledger(engine, "lost")) == [1, 2, 3, 7]
        assert op.query(fresh_mariadb_url, "SELECT user_id FROM users_achievements ORDER BY user_id") == [
            (1,), (2,), (3,), (7,)]
        assert ledger.load_run(engine, "lost").status == "running"
    finally:
        engine.dispose()


def test_a_new_holding_under_the_old_connection_id_does_not_revive_a_lost_lock(fresh_mariadb_url):
    """Connection ids start again from 1 when the server restarts, so a resumed driver can hold the run's
    lock under the id the lost driver had: the lost driver's writers (its LockToken) must still be
    refused. Simulated without a restart: the same connection releases the lock and takes it again."""
    engine = db.connect(fresh_mariadb_url)
    try:
        with ledger.run_lock(engine, "reused") as lock:
            stale = lock.token()
            with engine.connect() as conn:
                stale.check(conn)  # the holding it names: accepted
            lock._conn.execute(sa.select(sa.func.release_lock(lock.session_name), sa.func.release_lock(lock.name)))
            lock._acquire()  # a new holding, on the same connection: the same connection id
            assert lock.connection_id == stale.connection_id and lock.session_name != stale.session_name
            with engine.connect() as conn:
                with pytest.raises(RunLockLost, match="another session"):
                    stale.check(conn)
                lock.token().check(conn)  # the new holding's writers go on
        with engine.connect() as conn:
            with pytest.raises(RunLockLost, match="nobody holds it"):
                stale.check(conn)
    finally:
        engine.dispose()


def ledger_set(url: str, run_id: str) -> Counter:
    return Counter(tuple(r[k] for k in LEDGER_KEY) for r in op.ledger_rows(url, run_id))


@pytest.mark.ray
def test_lock_connection_killed_mid_run_stops_resumably_and_resume_equals_an_undisturbed_run(
    tmp_path, ray_session, scenario_db, monkeypatch, capsys
):
    url, osu_dir = scenario_db
    run_id = "lock-killed"
    name = ledger.run_lock_name(db.connect(url), run_id)
    killed, stop = [], threading.Event()

    def kill_lock_after_second_commit() -> None:  # the writers commit in their own processes: watch the ledger
        while not stop.is_set():
            if op.query(url, "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() "
                             "AND table_name = 'srb_ledger'")[0][0]:
                batches = op.query(url, "SELECT COALESCE(SUM(batches), 0) FROM srb_shards WHERE run_id = :r",
                                   {"r": run_id})[0][0]
                if batches >= 2:
                    (holder,) = op.query(url, "SELECT IS_USED_LOCK(:n)", {"n": name})[0]
                    if holder is not None:
                        kill(url, holder)
                        killed.append(holder)
                    return
            time.sleep(0.01)

    watcher = threading.Thread(target=kill_lock_after_second_commit, daemon=True)
    watcher.start()
    code, _ = op.run(url, osu_dir, tmp_path, "killed", "--apply", "--run-id", run_id, *OPTIONS)
    stop.set()
    watcher.join()
    err = capsys.readouterr().err
    assert killed, "the run never reached its second committed batch"
    assert code == 1 and "lost its run lock" in err and "--resume" in err, err
    assert op.query(url, "SELECT status FROM srb_runs WHERE run_id = :r", {"r": run_id}) == [("running",)]
    partial = op.ledger_rows(url, run_id)
    assert 2 <= len(partial) < len(sc.EXPECTED_GRANTS), "it went on writing after losing its lock"
    assert op.ledger_matches_table(url, run_id) == []

    code, report = op.run(url, osu_dir, tmp_path, "resumed", "--apply", "--run-id", run_id, "--resume", *OPTIONS)
    assert code == 0 and report["resumed"] and report["status"] == "finished"
    assert report["grants_written"] == len(sc.EXPECTED_GRANTS)

    with throwaway_database() as clean_url:  # the same run, undisturbed
        sc.setup_database(clean_url, tmp_path / "osu-clean")
        code, _ = op.run(clean_url, tmp_path / "osu-clean", tmp_path, "clean", "--apply", "--run-id", run_id, *OPTIONS)
        assert code == 0
        clean_rows, clean_ledger = op.new_rows(clean_url), ledger_set(clean_url, run_id)
    rows = [r[1:] for r in op.table_rows(url)]
    assert len(rows) == len(set(rows)), "duplicate rows"
    assert op.new_rows(url) == clean_rows == op.EXPECTED_ROWS
    assert ledger_set(url, run_id) == clean_ledger and max(clean_ledger.values()) == 1
    assert op.ledger_matches_table(url, run_id) == []
