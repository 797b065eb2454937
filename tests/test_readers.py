"""The two shard readers (ConnectorX and SQLAlchemy streaming) return the same Arrow table."""

import pytest

from cluster import db
from cluster.synth import build_demo_database
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
