"""The governor's collectors and the run's control row on a real MariaDB (cluster.control), without Ray:
the heartbeat read back, lag unknown until a beat is there, Threads_running, the control row a new run
stores and a resume keeps, and a Watch feeding a WriteGovernor that a `control pause` then holds.
`sr-backfill control` on a recorded run: set, status, refusals."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from cluster import control, ledger
from cluster.errors import RunStateError
from cluster.governor import HOLD_SECONDS, Sources, WriteGovernor, WriteLimits
from tests import operations as op

pytestmark = pytest.mark.db


@pytest.fixture()
def engine(fresh_mariadb_url):
    engine = sa.create_engine(fresh_mariadb_url)
    yield engine
    engine.dispose()


def record_run(engine, run_id: str) -> None:
    ledger.ensure_tables(engine)
    ledger.create_run(engine, ledger.RunRecord(run_id, "run", "running", ledger.now(), ledger.now(), {}))


def test_heartbeat_is_read_back_and_lag_is_unknown_until_a_beat_is_there(engine):
    started = control.now_us()
    with control.autocommit_engine(str(engine.url.render_as_string(hide_password=False))).connect() as conn:
        seconds, detail = control.measure_lag(conn, "hb", started + 3_000_000, started)
        assert seconds is None and "srb_heartbeat not there yet (3s" in detail
        control.ensure_tables(engine)
        seconds, detail = control.measure_lag(conn, "hb", started + 3_000_000, started)
        assert seconds is None and detail == "no heartbeat of this run there yet (3s since the first beat)"
        control.write_beat(conn, "hb", started)
        control.write_beat(conn, "hb", started + 500_000)  # the row is rewritten, not added
        assert control.read_beat(conn, "hb") == started + 500_000
        seconds, detail = control.measure_lag(conn, "hb", started + 2_500_000, started)
        assert seconds == pytest.approx(2.0) and detail == "heartbeat"
        assert conn.execute(sa.text("SELECT COUNT(*) FROM srb_heartbeat")).scalar() == 1
        # not a replica: its own status says so (the fallback never invents a figure)
        assert control.replication_lag(conn) == (None, "not a replica (no replication status)")
        assert control.threads_running(conn) >= 1


def test_a_new_run_stores_its_limits_and_a_resume_keeps_what_control_set(engine):
    record_run(engine, "ctl")
    given = WriteLimits(max_lag=10.0, max_threads_running=25, chunk_time=0.5, batch_rows=700)
    limits, notes = control.open_control(engine, "ctl", given, frozenset(), resume=False)
    assert limits == given and notes == []
    assert control.load_control(engine, "ctl") == WriteLimits(max_lag=10.0, max_threads_running=25, chunk_time=0.5)

    control.change_control(engine, "ctl", paused=True)
    control.change_control(engine, "ctl", max_write_rate=300.0, window="22:00-06:00")
    # a resume with the defaults keeps everything control set, paused included
    limits, notes = control.open_control(engine, "ctl", given, frozenset(), resume=True)
    assert limits == WriteLimits(max_write_rate=300.0, batch_rows=700, chunk_time=0.5, max_lag=10.0,
                                 max_threads_running=25, window="22:00-06:00", paused=True)
    assert any("paused" in note for note in notes)
    # a limit given again on the resume's command line replaces the stored one (and is stored)
    limits, _ = control.open_control(engine, "ctl", WriteLimits(max_lag=4.0), frozenset({"max_lag"}), resume=True)
    assert limits.max_lag == 4.0 and limits.max_write_rate == 300.0 and limits.paused
    assert control.load_control(engine, "ctl").max_lag == 4.0

    with pytest.raises(RunStateError):
        control.change_control(engine, "no-such-run", paused=True)
    with pytest.raises(ValueError):
        control.change_control(engine, "ctl", max_lag=-1.0)
    assert control.load_control(engine, "ctl").max_lag == 4.0, "a refused change stores nothing"


def test_a_watch_feeds_the_governor_and_a_pause_holds_it(engine, fresh_mariadb_url):
    record_run(engine, "watched")
    limits = WriteLimits(max_lag=10.0, max_threads_running=1000, batch_rows=50)
    control.open_control(engine, "watched", limits, frozenset(), resume=False)
    # the database itself as the lag replica: its heartbeat is read back at once
    governor = WriteGovernor(limits, Sources(replicas=(control.replica_name(fresh_mariadb_url),), threads_running=True),
                             run_id="watched", need_limits=True)
    settings = control.WatchSettings("watched", fresh_mariadb_url, (fresh_mariadb_url,), control_seconds=0.5)
    with control.Watch(settings, governor) as watch:
        deadline = time.monotonic() + 20
        while governor.acquire(50).rows == 0:
            assert time.monotonic() < deadline, governor.state()
            time.sleep(0.2)
        status = governor.status()
        assert status["state"] == "writing"
        assert 0 <= status["lag"][control.replica_name(fresh_mariadb_url)] < 2
        assert status["threads_running"] >= 1
        assert op.cli("control", "--db", fresh_mariadb_url, "--run-id", "watched", "pause") == 0
        deadline = time.monotonic() + 10
        while (permit := governor.acquire(50)).rows:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert permit.reason == "paused by operator" and permit.wait_seconds == HOLD_SECONDS
        assert op.cli("control", "--db", fresh_mariadb_url, "--run-id", "watched", "resume") == 0
        deadline = time.monotonic() + 10
        while governor.acquire(50).rows == 0:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert watch.errors == {}, watch.last_error
    with engine.connect() as conn:
        beats = conn.execute(sa.text("SELECT beat_us FROM srb_heartbeat WHERE run_id = 'watched'")).scalar()
    assert abs(beats / 1e6 - time.time()) < 10


def test_control_command_sets_shows_and_refuses(engine, fresh_mariadb_url, capsys):
    record_run(engine, "cmd")
    control.open_control(engine, "cmd", WriteLimits(max_lag=10.0, max_threads_running=25), frozenset(), resume=False)
    base = ("control", "--db", fresh_mariadb_url, "--run-id", "cmd")
    assert op.cli(*base, "set", "max-write-rate=250", "window=01:00-05:00", "max-lag=3") == 0
    assert control.load_control(engine, "cmd") == WriteLimits(max_write_rate=250.0, max_lag=3.0, max_threads_running=25,
                                                              window="01:00-05:00")
    capsys.readouterr()
    assert op.cli(*base, "status") == 0
    out = capsys.readouterr().out
    assert "run cmd: not running" in out
    assert "max-lag 3 s, max-threads-running 25, max-write-rate 250/s, window 01:00-05:00" in out
    assert op.cli(*base, "set", "max-lag=0") != 0
    assert op.cli(*base, "set", "speed=3") != 0
    assert op.cli(*base, "set") != 0
    assert op.cli("control", "--db", fresh_mariadb_url, "--run-id", "unknown-run", "pause") == 2
    assert "no such backfill run" in capsys.readouterr().err
    assert control.load_control(engine, "cmd").max_lag == 3.0
