"""The two shard readers (ConnectorX and SQLAlchemy streaming) return the same Arrow table, and the table
scan (id ranges joined to the lookups in polars) returns what the server-side joins return. ConnectorX is
used only for URLs it can honour; every fallback to SQLAlchemy is logged and counted (cluster.db.ReadLog)."""

import logging

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from cluster import db
from testbed.demo import build_demo_database
from tests.conftest import MAPS


def read_both(url, monkeypatch):
    engine = db.connect(url)
    try:
        assert db._connectorx_url(engine) is not None
        fast_reads = db.ReadLog()
        fast, fast_counts = db.read_shard_scores(engine, 0, 10**9, reads=fast_reads)
        # ConnectorX itself produced every table: one read per score table, no fallback
        assert fast_reads.readers == {"connectorx": 3} and not fast_reads.fallbacks, fast_reads
        monkeypatch.setenv(db.READER_ENV, "sqlalchemy")
        assert db._connectorx_url(engine) is None
        slow_reads = db.ReadLog()
        slow, slow_counts = db.read_shard_scores(engine, 0, 10**9, batch_rows=777, reads=slow_reads)
        assert slow_reads.readers == {"sqlalchemy": 3} and not slow_reads.fallbacks  # chosen, not a fallback
    finally:
        engine.dispose()
    return fast, fast_counts, slow, slow_counts


def sort(table):
    return table.sort_by([("source", "ascending"), ("id", "ascending")])


@pytest.mark.db
def test_connectorx_and_sqlalchemy_read_the_same_rows_on_mariadb(fresh_mariadb_url, tmp_path, monkeypatch):
    build_demo_database(fresh_mariadb_url, tmp_path / "osu", MAPS, users=30, seed=4)
    fast, fast_counts, slow, slow_counts = read_both(fresh_mariadb_url, monkeypatch)
    assert fast_counts == slow_counts and sum(fast_counts.values()) > 1000
    assert fast.schema == slow.schema == db.SCORE_ARROW_SCHEMA
    assert sort(fast).equals(sort(slow))
    assert fast.column("beatmap_id").null_count > 0  # unknown beatmaps: nulls survive both readers


def test_connectorx_and_sqlalchemy_read_the_same_rows_on_sqlite(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    build_demo_database(url, tmp_path / "osu", MAPS, users=30, seed=4)
    fast, fast_counts, slow, slow_counts = read_both(url, monkeypatch)
    assert fast_counts == slow_counts and sort(fast).equals(sort(slow))


def add_odd_rows(url: str) -> None:
    """Two score rows the joins must handle: an upper-case copy of a known md5 (MySQL's latin1 collation
    matches it to its beatmap, SQLite does not), and a user without a users row."""
    import sqlalchemy as sa

    from cluster.schema import scores

    engine = db.connect(url)
    try:
        with engine.begin() as conn:
            row = dict(conn.execute(sa.select(scores).where(scores.c.completed == 3).limit(1)).mappings().one())
            odd = {**row, "id": None, "checksum": None, "beatmap_md5": row["beatmap_md5"].upper()}
            orphan = {**row, "id": None, "checksum": None, "userid": 987_654_321}
            conn.execute(sa.insert(scores), [odd, orphan])
    finally:
        engine.dispose()


def read_scanned(url: str, range_rows: int):
    """Every row through the table-scan path: id ranges read without joins, joined to the lookups."""
    from cluster.shards import plan_scan

    engine = db.connect(url)
    try:
        beatmap_rows, user_rows = db.read_lookups(engine)
        parts = [db.join_lookups(db.read_range_rows(engine, r.table, r.id_lo, r.id_hi), beatmap_rows, user_rows,
                                 engine.dialect.name)
                 for r in plan_scan(db.id_bounds(engine), range_rows)]
        joined, _ = db.read_shard_scores(engine, 0, 10**9)
    finally:
        engine.dispose()
    return pa.concat_tables(parts), joined


@pytest.mark.db
def test_table_scan_joins_like_the_server_on_mariadb(fresh_mariadb_url, tmp_path):
    build_demo_database(fresh_mariadb_url, tmp_path / "osu", MAPS, users=30, seed=4)
    add_odd_rows(fresh_mariadb_url)
    scanned, joined = read_scanned(fresh_mariadb_url, 700)
    assert scanned.schema == joined.schema == db.SCORE_ARROW_SCHEMA
    assert scanned.num_rows == joined.num_rows > 1000
    assert sort(scanned).equals(sort(joined))
    odd = sort(scanned).filter(pc.match_substring_regex(sort(scanned).column("beatmap_md5"), "[A-F]"))
    assert odd.num_rows == 1 and odd.column("beatmap_id")[0].as_py() is not None  # matched as MySQL matches
    assert scanned.column("privileges").null_count >= 1  # the user without a users row


def test_table_scan_joins_like_the_server_on_sqlite(tmp_path):
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    build_demo_database(url, tmp_path / "osu", MAPS, users=30, seed=4)
    add_odd_rows(url)
    scanned, joined = read_scanned(url, 500)
    assert sort(scanned).equals(sort(joined))
    odd = sort(scanned).filter(pc.match_substring_regex(sort(scanned).column("beatmap_md5"), "[A-F]"))
    assert odd.num_rows == 1 and odd.column("beatmap_id")[0].as_py() is None  # SQLite compares as stored


def test_connectorx_is_refused_for_url_options_it_cannot_honour():
    """ConnectorX 0.4's MySQL driver takes no TLS settings from its URL and always talks utf8mb4: a URL
    with TLS options, another charset or session options is read by SQLAlchemy, saying why (option names
    only, never values or the password); utf8mb4 and options that change nothing are honoured."""
    base = "mysql+pymysql://backfill:Pa55-w0rd@db.internal:3306/akatsuki"
    honoured = db.connectorx_source(db.connect(base + "?charset=utf8mb4&local_infile=1&connect_timeout=5"))
    assert honoured.url == "mysql://backfill:Pa55-w0rd@db.internal:3306/akatsuki" and honoured.refused is None
    assert "Pa55" not in repr(honoured)
    tls = db.connectorx_source(db.connect(base + "?ssl_ca=/etc/ca.pem&ssl_check_hostname=false&charset=utf8mb4"))
    assert tls.url is None and "TLS" in tls.refused and "ssl_ca" in tls.refused and "ssl_check_hostname" in tls.refused
    assert "/etc/ca.pem" not in tls.refused and "Pa55" not in tls.refused
    latin1 = db.connectorx_source(db.connect(base + "?charset=latin1"))
    assert latin1.url is None and "charset latin1" in latin1.refused
    session = db.connectorx_source(db.connect(base + "?init_command=SET+time_zone%3D%27%2B02%3A00%27"))
    assert session.url is None and "init_command" in session.refused
    assert db.connectorx_source(db.connect("sqlite://")) == db.ConnectorxSource(None)  # in memory: not a fallback


@pytest.mark.db
def test_connectorx_reads_honoured_urls_and_counts_every_fallback(fresh_mariadb_url, tmp_path, monkeypatch, caplog):
    build_demo_database(fresh_mariadb_url, tmp_path / "osu", MAPS, users=20, seed=4)
    engines = {options: db.connect(fresh_mariadb_url + options)
               for options in ("", "?charset=utf8mb4&local_infile=1", "?charset=latin1")}
    try:
        tables = {}
        for options, engine in engines.items():
            reads = db.ReadLog()
            tables[options], _ = db.read_shard_scores(engine, 0, 10**9, reads=reads)
            if options == "?charset=latin1":  # refused: SQLAlchemy, counted as a fallback per table
                assert reads.readers == {"sqlalchemy": 3} and sum(reads.fallbacks.values()) == 3
                assert all("charset latin1" in reason for reason in reads.fallbacks)
            else:
                assert reads.readers == {"connectorx": 3} and not reads.fallbacks
        assert len({sort(t).to_pydict().__repr__() for t in tables.values()}) == 1

        # a ConnectorX failure: logged (masked), counted, and the SQLAlchemy reader answers
        def broken(url, sql, return_type):
            raise RuntimeError(f"cannot connect to {url}")

        monkeypatch.setattr(db.connectorx, "read_sql", broken)
        reads = db.ReadLog()
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="cluster.db"):
            fallback, _ = db.read_shard_scores(engines[""], 0, 10**9, reads=reads)
        assert sort(fallback).equals(sort(tables[""]))
        assert reads.readers == {"sqlalchemy": 3} and reads.fallbacks == {"ConnectorX failed: RuntimeError": 3}
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 3 and all("ConnectorX failed: RuntimeError" in w for w in warnings)
    finally:
        for engine in engines.values():
            engine.dispose()
