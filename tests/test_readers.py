"""The two shard readers (ConnectorX and SQLAlchemy streaming) return the same Arrow table, and the table
scan (id ranges joined to the lookups in polars) returns what the server-side joins return."""

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
        fast, fast_counts = db.read_shard_scores(engine, 0, 10**9)
        monkeypatch.setenv(db.READER_ENV, "sqlalchemy")
        assert db._connectorx_url(engine) is None
        slow, slow_counts = db.read_shard_scores(engine, 0, 10**9, batch_rows=777)
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
