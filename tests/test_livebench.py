"""The pieces of `sr-backfill bench --live-load` (testbed.livebench, testbed.live_load) on a real MariaDB, not
timed: the load generator submits at its rate, records a latency per submission and counts errors by
code without stopping; its rows can never change a backfill's grants; the lag probe; the targets."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from testbed.livebench import LOAD_ACHIEVEMENTS, LOAD_MD5, LagProbe, LoadGenerator, LoadResult, add_load_users
from testbed.live_load import _targets
from tests import scenario as sc

pytestmark = pytest.mark.db


@pytest.fixture()
def database(fresh_mariadb_url):
    engine = sa.create_engine(fresh_mariadb_url)
    sc.load_production_schema(engine)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO users (id, username, username_safe, password_md5, email, register_datetime, "
                             "latest_activity, privileges) VALUES (5000, 'p', 'p', :pw, 'p@x', 0, 0, 3)"),
                     {"pw": "x" * 32})
    yield fresh_mariadb_url, engine
    engine.dispose()


def test_the_load_generator_submits_at_its_rate_and_counts_errors(database):
    url, engine = database
    load_users = add_load_users(url, 3)
    assert load_users == [5001, 5002, 5003]
    load = LoadGenerator(url, rate=40, load_users=load_users, achievement_users=[5000], workers=4).start()
    time.sleep(2.0)
    result = load.stop().summary()
    assert 70 <= result["due"] <= 90 and result["submissions"] == result["due"] and result["failed"] == 0
    assert 0 < result["p50_ms"] <= result["p99_ms"] <= result["max_ms"]
    with engine.connect() as conn:
        scores = conn.execute(sa.text("SELECT COUNT(*), MIN(userid), MAX(completed), MIN(beatmap_md5) FROM scores")).one()
        held = {a for (a,) in conn.execute(sa.text("SELECT DISTINCT achievement_id FROM users_achievements"))}
        holders = {u for (u,) in conn.execute(sa.text("SELECT DISTINCT user_id FROM users_achievements"))}
    # failed plays on an unknown map by the generator's own users; achievements no backfill grants
    assert scores == (result["submissions"], 5001, 1, LOAD_MD5)
    assert held <= set(LOAD_ACHIEVEMENTS) and holders == {5000}

    with engine.begin() as conn:
        conn.execute(sa.text("RENAME TABLE users_achievements TO users_achievements_away"))
    load = LoadGenerator(url, rate=40, load_users=load_users, achievement_users=[5000], workers=2).start()
    time.sleep(0.5)
    failed = load.stop().summary()
    assert failed["failed"] == failed["due"] > 0 and failed["errors"] == {"1146": failed["due"]}
    assert failed["submissions"] == 0 and failed["deadlocks_1213"] == failed["lock_waits_1205"] == 0


def test_lag_probe_on_the_same_server_sees_no_lag(database):
    url, _ = database
    probe = LagProbe(url, url, interval=0.1).start()
    time.sleep(1.0)
    probe.stop()
    assert probe.unknown == 0 and 0 <= probe.peak() < 1.0


def test_worst_window_p99_shows_a_burst_the_overall_p99_hides():
    result = LoadResult(rate=50, seconds=100)
    for second in range(100):
        latency = 0.5 if 40 <= second < 41 else 0.01  # one slow second in a hundred
        for i in range(50):
            result.latencies.append(latency if i < 30 else 0.01)
            result.finished.append(second + i / 50)
    summary = result.summary()
    assert summary["p99_ms"] == 10.0
    assert summary["worst_10s_p99_ms"] == 500.0


def phase(p99: float, errors: int = 0, lag: float = 0.5) -> dict:
    return {"load": {"p99_ms": p99, "failed": errors}, "max_lag_s": lag}


def test_targets_are_read_against_their_limits():
    met = _targets({"none": phase(100.0), "governed": phase(150.0, 0, 12.0)})
    assert all(t["met"] for t in met.values()) and met["governed_p99_over_none"]["value"] == 1.5
    missed = _targets({"none": phase(100.0), "governed": phase(151.0, 1, 12.1)})
    assert not any(t["met"] for t in missed.values())
