"""Where a ledgered write batch's time goes (issue 14, docs/SCALING.md "batch-time breakdown").

One writer writes synthetic grants through the run's own write path (cluster.ledger.write_ledgered, with
the run's lock and a shard's progress row, as a writer actor does) into a throwaway MySQL/MariaDB database
that already holds `present` rows, and every statement of every batch is timed by what it is:

    insert      the multi-row INSERT IGNORE into users_achievements
    read_back   LAST_INSERT_ID() and the primary-key range read of the batch's new ids
    ledger      the multi-row INSERT into srb_ledger
    progress    the UPDATE of the shard's progress row
    lock_check  IS_USED_LOCK: does the run's driver still hold the run lock
    commit      COMMIT
    client      the rest of the batch's wall: building rows and parameters in Python (PyMySQL escaping)

`--parallel 1,2,3,4` also writes with that many writer processes at once (each its own users, shard and
connection, all under one run lock, ungoverned, as the run's writer actors write) and prints the grants
per second of all of them together: the database's capacity for ledgered writes, without rating beside.

Two figures show what the write path replaced, measured on the same data in the same process:
`row_value_in_ms`, the old read-back (a row-value IN over the unique key, run on each batch's keys
after its commit), and a second pass with SQLAlchemy's default named parameters (`paramstyle_named`)
instead of the positional ones cluster.db.connect uses for PyMySQL.

    python -m testbed.write_breakdown --db mysql+pymysql://root@127.0.0.1:3306 [--grants 50000] [--parallel 1,2,3]

`--db` is a server URL (no database): the database `srb_write_breakdown` is created there and dropped
after. Times are milliseconds per batch (mean over the batches); rates are grants per second.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import time
from collections import defaultdict
from contextlib import contextmanager
from typing import Iterator

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from cluster import db, ledger
from cluster.schema import create_production_schema, users_achievements
from cluster.shards import Shard
from testbed.bench import create_database, drop_database

DATABASE = "srb_write_breakdown"
PARTS = ("insert", "read_back", "ledger", "progress", "lock_check", "commit", "client")


def grants(count: int, first_user: int = 1) -> list[dict]:
    """`count` grants of 12 per user from `first_user` on, with evidence columns, as a shard task returns
    them: user_id, achievement_id, mode, created_at (unix seconds), score_id, sr (stars), playcount,
    total_hits."""
    return [{"user_id": first_user + n // 12, "achievement_id": 1 + n % 12, "mode": (0, 1, 2, 3, 4, 5, 6, 8)[n % 8],
             "created_at": 1_500_000_000 + n, "score_id": 10**12 + n, "sr": (n % 900) / 100, "playcount": n % 5000,
             "total_hits": None} for n in range(count)]


def _kind(statement: str) -> str:
    text = statement.lstrip().upper()
    if text.startswith("INSERT IGNORE INTO USERS_ACHIEVEMENTS"):
        return "insert"
    if "LAST_INSERT_ID" in text or text.startswith("SELECT USERS_ACHIEVEMENTS."):
        return "read_back"
    if text.startswith("INSERT INTO SRB_LEDGER"):
        return "ledger"
    if text.startswith("UPDATE SRB_SHARDS"):
        return "progress"
    if "IS_USED_LOCK" in text:
        return "lock_check"
    return "other"


@contextmanager
def _timed(engine: sa.Engine) -> Iterator[dict]:
    """Seconds per statement kind (and commit) on `engine`'s connections while the block runs."""
    spent: dict = defaultdict(float)
    started: dict = {}

    def before(conn, cursor, statement, parameters, context, executemany):
        started[id(cursor)] = time.perf_counter()

    def after(conn, cursor, statement, parameters, context, executemany):
        spent[_kind(statement)] += time.perf_counter() - started.pop(id(cursor))

    def commit(conn):
        started["commit"] = time.perf_counter()

    original = ledger.pause_point

    def pause_point(name: str) -> None:  # "commit" fires right after a batch's COMMIT returned
        if name == "commit" and "commit" in started:
            spent["commit"] += time.perf_counter() - started.pop("commit")
        original(name)

    sa.event.listen(engine, "before_cursor_execute", before)
    sa.event.listen(engine, "after_cursor_execute", after)
    sa.event.listen(engine, "commit", commit)
    ledger.pause_point = pause_point
    try:
        yield spent
    finally:
        ledger.pause_point = original
        sa.event.remove(engine, "before_cursor_execute", before)
        sa.event.remove(engine, "after_cursor_execute", after)
        sa.event.remove(engine, "commit", commit)


def _row_value_in_ms(engine: sa.Engine, rows: list[dict], batch_rows: int) -> float:
    """The read-back the write path used before: a row-value IN over (user_id, achievement_id, mode),
    for each batch's keys, mean milliseconds per batch."""
    table = users_achievements
    columns = (table.c.user_id, table.c.achievement_id, table.c.mode, table.c.id)
    seconds, batches = 0.0, 0
    with engine.connect() as conn:
        for start in range(0, len(rows), batch_rows):
            keys = [(r["user_id"], r["achievement_id"], r["mode"]) for r in rows[start : start + batch_rows]]
            query = sa.select(*columns).where(sa.tuple_(table.c.user_id, table.c.achievement_id, table.c.mode).in_(keys))
            started = time.perf_counter()
            found = conn.execute(query).all()
            seconds += time.perf_counter() - started
            batches += 1
            assert len(found) == len(keys), "the read-back must find every row the batch wrote"
    return 1000 * seconds / batches


def one_pass(url: str, count: int, present: int, batch_rows: int, named: bool, run_id: str) -> dict:
    """Write `count` grants in `batch_rows`-row batches into `url`'s users_achievements after `present`
    rows of other users, ledgered, under a run lock, with a shard's progress row. Returns
    {grants_per_s, batches, ms: {part: mean ms per batch}, client_cpu_ms (client CPU per batch)}.
    Raises AssertionError if the write did not insert and ledger every grant."""
    engine = _prepared(url, present, named)
    try:
        rows = grants(count)
        with ledger.run_lock(engine, run_id) as lock:
            ledger.create_run(engine, ledger.RunRecord(run_id, "run", "running", 1, 1, {}),
                              [Shard(0, 1, count, count)], lock)
            with _timed(engine) as spent:
                cpu, wall = time.process_time(), time.perf_counter()
                result = ledger.write_ledgered(engine, run_id, rows, shard=0, batch_rows=batch_rows,
                                               lock=lock.token())
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        assert (result.inserted, result.present) == (count, 0), result
        assert sum(ledger.ledger_totals(engine, run_id).get("insert", {}).values()) == count
        ms = {part: 1000 * spent.get(part, 0.0) / result.batches for part in PARTS if part != "client"}
        ms["client"] = 1000 * wall / result.batches - sum(ms.values())
        figures = {"grants_per_s": round(count / wall), "batches": result.batches,
                   "ms": {k: round(v, 2) for k, v in ms.items()}, "client_cpu_ms": round(1000 * cpu / result.batches, 2)}
        if not named:
            figures["row_value_in_ms"] = round(_row_value_in_ms(engine, rows, batch_rows), 2)
        return figures
    finally:
        engine.dispose()


def _prepared(url: str, present: int, named: bool = False) -> sa.Engine:
    engine = sa.create_engine(url, poolclass=NullPool) if named else db.connect(url)
    create_production_schema(engine)
    ledger.ensure_tables(engine)
    with engine.begin() as conn:
        for start in range(0, present, 10_000):
            conn.execute(sa.insert(users_achievements),
                         [{c: r[c] for c in db.GRANT_COLUMNS}
                          for r in grants(min(10_000, present - start), first_user=10**7 + start // 12)])
    return engine


def _parallel_writer(url: str, run_id: str, shard: int, count: int, batch_rows: int, token: ledger.LockToken,
                     start, out) -> None:
    engine = db.connect(url)
    try:
        rows = grants(count, first_user=1 + shard * 10**6)
        start.wait()
        began = time.perf_counter()
        result = ledger.write_ledgered(engine, run_id, rows, shard=shard, batch_rows=batch_rows, lock=token)
        out.put((shard, result.inserted, began, time.perf_counter()))
    finally:
        engine.dispose()


def parallel_rate(url: str, writers: int, count: int, present: int, batch_rows: int, run_id: str) -> dict:
    """`writers` processes write `count` grants in all (each its own users and shard) at once into `url`'s
    users_achievements after `present` rows, ledgered, ungoverned, under one run lock: {writers,
    grants_per_s (all of them together, from the first writer's start to the last one's end)}. Raises
    AssertionError if a writer failed or did not insert every grant it was given."""
    engine = _prepared(url, present)
    each = count // writers
    try:
        with ledger.run_lock(engine, run_id) as lock:
            ledger.create_run(engine, ledger.RunRecord(run_id, "run", "running", 1, 1, {}),
                              [Shard(i, 1 + i * 10**6, (i + 1) * 10**6, each) for i in range(writers)], lock)
            context = multiprocessing.get_context("spawn")
            start, out = context.Barrier(writers), context.Queue()
            procs = [context.Process(target=_parallel_writer, args=(url, run_id, i, each, batch_rows, lock.token(),
                                                                    start, out)) for i in range(writers)]
            for proc in procs:
                proc.start()
            results = [out.get(timeout=600) for _ in procs]
            for proc in procs:
                proc.join()
        assert all(p.exitcode == 0 for p in procs) and all(r[1] == each for r in results), results
        seconds = max(r[3] for r in results) - min(r[2] for r in results)
        return {"writers": writers, "grants_per_s": round(writers * each / seconds)}
    finally:
        engine.dispose()


def measure(server: str, count: int = 50_000, present: int = 200_000, batch_rows: int = 1000,
            parallel: tuple[int, ...] = ()) -> dict:
    """Both passes, each on a fresh throwaway database on `server`: {"positional": one_pass figures (the
    write path as it is), "named": the same write with named parameters, "parallel": [parallel_rate
    figures for each count of writers in `parallel`]}."""
    out: dict = {}
    for label, named in (("positional", False), ("named", True)):
        url = create_database(server, DATABASE)
        try:
            out[label] = one_pass(url, count, present, batch_rows, named, f"breakdown-{label}")
        finally:
            drop_database(server, DATABASE)
    out["parallel"] = []
    for writers in parallel:
        url = create_database(server, DATABASE)
        try:
            out["parallel"].append(parallel_rate(url, writers, count, present, batch_rows, f"parallel-{writers}"))
        finally:
            drop_database(server, DATABASE)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m testbed.write_breakdown", description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", default="mysql+pymysql://root@127.0.0.1:3306", help="server URL, no database")
    parser.add_argument("--grants", type=int, default=50_000)
    parser.add_argument("--present", type=int, default=200_000, help="rows in users_achievements before")
    parser.add_argument("--batch-rows", type=int, default=1000)
    parser.add_argument("--parallel", default="", help="comma-separated writer counts, e.g. 1,2,3,4")
    args = parser.parse_args(argv)
    parallel = tuple(int(n) for n in args.parallel.split(",") if n)
    figures = measure(args.db, args.grants, args.present, args.batch_rows, parallel)
    for label in ("positional", "named"):
        f = figures[label]
        parts = ", ".join(f"{k} {v:.2f}" for k, v in f["ms"].items())
        extra = f"; old row-value IN read-back {f['row_value_in_ms']:.2f} ms" if "row_value_in_ms" in f else ""
        print(f"{label}: {f['grants_per_s']:,} grants/s, ms per {args.batch_rows}-row batch: {parts} "
              f"(client CPU {f['client_cpu_ms']:.2f}){extra}")
    for f in figures["parallel"]:
        print(f"{f['writers']} writer(s) at once: {f['grants_per_s']:,} grants/s together")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
