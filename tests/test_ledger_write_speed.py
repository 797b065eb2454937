"""The ledgered writer keeps one connection for all its batches: it reconnects after losing it between
batches (exactly one retry, an exact ledger), and its speed on MariaDB (a figure, not a limit)."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from cluster import db, ledger
from cluster.schema import create_production_schema, users_achievements
from testbed import write_breakdown
from tests.conftest import report_figure

def _grants(count: int, first_user: int = 1) -> list[dict]:
    """Grants with evidence (some of it null), a quarter of them stats-fallback grants."""
    out = []
    for n in range(count):
        row = {"user_id": first_user + n // 7, "achievement_id": 1 + n % 7, "mode": (0, 1, 2, 3, 4, 5, 6, 8)[n % 8],
               "created_at": 1_500_000_000 + n, "score_id": (None if n % 5 == 0 else 10**12 + n),
               "sr": (None if n % 6 == 0 else n / 7), "playcount": (None if n % 3 else n), "total_hits": None}
        if n % 4 == 0:
            row["source"] = "stats_now"
        out.append(row)
    return out


def _prepare(engine: sa.Engine, present: list[dict]) -> None:
    create_production_schema(engine)
    ledger.ensure_tables(engine)
    if present:
        with engine.begin() as conn:
            conn.execute(sa.insert(users_achievements), [{c: r[c] for c in db.GRANT_COLUMNS} for r in present])


def _check_ledger(engine: sa.Engine, run_id: str, expected: int) -> list[dict]:
    recorded = ledger.read_ledger(engine, run_id)
    with engine.connect() as conn:
        table = {r[0]: tuple(r[1:]) for r in conn.execute(sa.select(users_achievements))}
    assert len(recorded) == expected
    for r in recorded:
        assert table[r["ua_id"]] == (r["user_id"], r["achievement_id"], r["mode"], r["created_at"])
    return recorded


@pytest.mark.db
def test_a_connection_lost_between_batches_is_retried_on_a_new_one(fresh_mariadb_url, monkeypatch):
    engine = db.connect(fresh_mariadb_url)
    database = engine.url.database
    killed = []

    def kill_writer(name: str) -> None:  # after the first commit, kill the connection the writer keeps
        if name == "commit" and not killed:
            with engine.connect() as admin:
                ids = admin.execute(sa.text("SELECT id FROM information_schema.processlist WHERE db = :db"
                                            " AND id <> CONNECTION_ID()"), {"db": database}).scalars().all()
                for process in ids:
                    admin.exec_driver_sql(f"KILL CONNECTION {int(process)}")
                killed.extend(ids)

    try:
        _prepare(engine, [])
        ledger.create_run(engine, ledger.RunRecord("k", "run", "running", 1, 1, {}))
        monkeypatch.setattr(ledger, "pause_point", kill_writer)
        log = db.RetryLog()
        result = ledger.write_ledgered(engine, "k", _grants(300), batch_rows=100, log=log,
                                       retry=db.RetryPolicy(attempts=3, base_seconds=0.01))
        assert len(killed) == 1, "the writer should have held exactly one connection"
        assert (result.inserted, result.present, result.batches) == (300, 0, 3)
        assert sum(log.counts.values()) == 1 and set(log.counts) <= {0, 2006, 2013}, log.counts
        _check_ledger(engine, "k", 300)
    finally:
        engine.dispose()


@pytest.mark.db
def test_write_speed_figure(fresh_mariadb_url):
    engine = db.connect(fresh_mariadb_url)
    try:
        _prepare(engine, _grants(50_000, first_user=100_000))
        grants = _grants(20_000)
        ledger.create_run(engine, ledger.RunRecord("s", "run", "running", 1, 1, {}))
        started = time.perf_counter()
        result = ledger.write_ledgered(engine, "s", grants, batch_rows=1000)
        seconds = time.perf_counter() - started
        assert result.inserted == len(grants)
        _check_ledger(engine, "s", len(grants))
        report_figure(f"ledgered writes: {len(grants) / seconds:,.0f} grants/s (20k grants, 1k-row batches, "
                      f"into 50k rows, each with its ledger row)")
    finally:
        engine.dispose()


@pytest.mark.db
def test_the_batch_time_breakdown_times_every_part_of_the_write_path(fresh_mariadb_url):
    """testbed.write_breakdown (docs/SCALING.md) writes through the run's write path and names where a
    batch's time went: each part the path has took time, and the write inserted and ledgered every grant."""
    figures = write_breakdown.one_pass(fresh_mariadb_url, 3000, 1200, 500, named=False, run_id="b")
    assert figures["batches"] == 6
    ms = figures["ms"]
    assert set(ms) == set(write_breakdown.PARTS)
    assert all(ms[part] > 0 for part in ("insert", "read_back", "ledger", "progress", "lock_check", "commit")), ms
    assert ms["client"] > 0 and figures["client_cpu_ms"] > 0, figures
    assert figures["row_value_in_ms"] > 0


@pytest.mark.db
def test_the_parallel_write_figure_writes_every_grant_once_ledgered(fresh_mariadb_url):
    """The write-capacity figure's writers (separate processes, one run lock) write every grant given to
    them, each with the ledger row naming its id."""
    figures = write_breakdown.parallel_rate(fresh_mariadb_url, 2, 2000, 500, 300, run_id="p")
    assert figures["writers"] == 2 and figures["grants_per_s"] > 0
    engine = db.connect(fresh_mariadb_url)
    try:
        recorded = _check_ledger(engine, "p", 2000)
        assert {r["shard"] for r in recorded} == {0, 1}
    finally:
        engine.dispose()
