"""The ledger stays exact with concurrent writers under interleaved auto-increment (MySQL 8's default
innodb_autoinc_lock_mode=2): every ledger row names the users_achievements id its run inserted, with the
values it recorded, and no other; live submissions writing the same table in between change nothing."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from cluster import db, ledger
from cluster.schema import create_production_schema, users_achievements
from tests.servers import own_mariadb

pytestmark = pytest.mark.db

WRITERS, SHARDS, GRANTS_PER_SHARD, LIVE = 4, 8, 600, 2


def shard_grants(shard: int) -> list[dict]:
    """Grants of one shard's users (users of different shards interleave in id order, not in user id)."""
    return [{"user_id": 10_000 * (shard + 1) + n // 9, "achievement_id": 1 + n % 9, "mode": (0, 4, 8)[n % 3],
             "created_at": 1_500_000_000 + n, "score_id": 6_148_914_691_236_517_204 + shard * 10_000 + n}
            for n in range(GRANTS_PER_SHARD)]


def test_concurrent_writers_under_interleaved_autoinc_keep_an_exact_ledger():
    # interleaved auto-increment, and ids that step by 3 (as on a multi-primary setup): a statement's ids
    # are never first, first + 1, ...
    with own_mariadb("--innodb-autoinc-lock-mode=2", "--auto-increment-increment=3",
                     "--auto-increment-offset=2") as server:
        url = server.url("test")
        engine = db.connect(url)
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT @@innodb_autoinc_lock_mode, @@auto_increment_increment").one() == (2, 3)
        create_production_schema(engine)
        ledger.ensure_tables(engine)
        ledger.create_run(engine, ledger.RunRecord("conc", "run", "running", 1, 1, {}))
        # a few of shard 0's keys are held already: skipped, not ledgered (its batches go row by row; the
        # other shards' batches are inserted whole and read back)
        held = shard_grants(0)[::97]
        with engine.begin() as conn:
            conn.execute(sa.insert(users_achievements), [{c: g[c] for c in db.GRANT_COLUMNS} for g in held])
        results, errors, stop = [], [], threading.Event()

        def writer(shards: list[int]) -> None:
            own = db.connect(url)
            try:
                for shard in shards:
                    results.append(ledger.write_ledgered(own, "conc", shard_grants(shard), batch_rows=150))
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
            finally:
                own.dispose()

        def live_submissions(k: int) -> None:  # INSERT IGNOREs of other users, interleaving ids
            own = db.connect(url)
            n = 0
            try:
                while not stop.is_set():
                    with own.begin() as conn:
                        conn.execute(db.insert_ignore(conn, users_achievements),
                                     [{"user_id": 1 + n, "achievement_id": 5 + k, "mode": m, "created_at": 1_600_000_000}
                                      for m in (0, 1, 2)])
                    n += 1
            finally:
                own.dispose()

        lives = [threading.Thread(target=live_submissions, args=(k,)) for k in range(LIVE)]
        threads = [threading.Thread(target=writer, args=([s for s in range(SHARDS) if s % WRITERS == w],))
                   for w in range(WRITERS)]
        for live in lives:
            live.start()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        stop.set()
        for live in lives:
            live.join()
        assert not errors, errors

        wanted = {(g["user_id"], g["achievement_id"], g["mode"]) for s in range(SHARDS) for g in shard_grants(s)}
        already = {(g["user_id"], g["achievement_id"], g["mode"]) for g in held}
        recorded = ledger.read_ledger(engine, "conc")
        with engine.connect() as conn:
            table = {r[0]: tuple(r[1:]) for r in conn.execute(sa.select(
                users_achievements.c.id, users_achievements.c.user_id, users_achievements.c.achievement_id,
                users_achievements.c.mode, users_achievements.c.created_at))}
        assert sum(r.inserted for r in results) == len(recorded) == len(wanted - already)
        assert sum(r.present for r in results) == len(already)
        assert len({r["ua_id"] for r in recorded}) == len(recorded)
        for r in recorded:  # each ledger row names the row its run inserted, with the values it recorded
            assert table[r["ua_id"]] == (r["user_id"], r["achievement_id"], r["mode"], r["created_at"])
        assert {(r["user_id"], r["achievement_id"], r["mode"]) for r in recorded} == wanted - already
        # the ids interleaved: the writers' rows are not one consecutive run per batch
        live_ids = [i for i, row in table.items() if row[0] < 10_000]
        assert live_ids and min(live_ids) < max(r["ua_id"] for r in recorded)
        engine.dispose()
