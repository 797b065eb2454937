"""The write governor's decisions (cluster.governor), without a database or Ray: every hold reason from
both sides of its limit, failing closed on missing and stale figures, the rate cap without bursts after
a hold, the batch size adapting within its bounds, and the wall seconds held counted once for several
writers."""

from __future__ import annotations

import calendar
from datetime import datetime

import pytest

from cluster.governor import (
    HOLD_SECONDS, MAX_BATCH_ROWS, MIN_BATCH_ROWS, STALE_SECONDS, GovernorClient, Sources, Window, WriteGovernor,
    WriteLimits, parse_limit,
)


class Clock:
    """A fake monotonic clock and UTC wall clock, moved by hand."""

    def __init__(self, wall: str = "2026-01-16T12:00:00") -> None:
        self.now = 1000.0
        self.unix = calendar.timegm(datetime.fromisoformat(wall).timetuple())

    def __call__(self) -> float:
        return self.now

    def wall(self) -> float:
        return self.unix

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.unix += seconds


def governor(limits=WriteLimits(), sources=Sources(), clock=None, **kwargs) -> tuple[WriteGovernor, Clock]:
    clock = clock or Clock()
    return WriteGovernor(limits, sources, clock=clock, wall=clock.wall, **kwargs), clock


REPLICA = Sources(replicas=("replica-a:3306",), threads_running=True)
GOVERNED = WriteLimits(max_lag=10.0, max_threads_running=25, batch_rows=500)


def fed(limits=GOVERNED, lag=1.0, threads=3) -> tuple[WriteGovernor, Clock]:
    g, clock = governor(limits, REPLICA)
    g.observe_lag("replica-a:3306", lag, "heartbeat")
    g.observe_threads_running(threads)
    return g, clock


def test_without_limits_every_batch_is_permitted_at_once():
    g, _ = governor(WriteLimits(batch_rows=700))
    assert [g.acquire(n).rows for n in (10_000, 300, 0)] == [700, 300, 1]
    assert g.state() == ("writing", [])


@pytest.mark.parametrize("lag, held", [(9.9, False), (10.0, False), (10.1, True), (31.2, True)])
def test_lag_above_max_lag_holds(lag, held):
    g, _ = fed(lag=lag)
    permit = g.acquire(100)
    assert (permit.rows == 0) == held
    if held:
        assert permit.reason == f"lag={lag:.1f}s > 10s on replica-a:3306" and permit.wait_seconds == HOLD_SECONDS
        assert g.state()[0] == "throttled"


@pytest.mark.parametrize("threads, held", [(24, False), (25, False), (26, True)])
def test_threads_running_above_the_limit_holds(threads, held):
    g, _ = fed(threads=threads)
    permit = g.acquire(100)
    assert (permit.rows == 0) == held
    if held:
        assert permit.reason == f"Threads_running={threads} > 25"


def test_missing_and_stale_figures_hold_until_measured_again():
    g, clock = governor(GOVERNED, REPLICA)
    permit = g.acquire(100)
    assert permit.rows == 0
    assert "lag unknown on replica-a:3306: no figure yet" in permit.reason
    assert "Threads_running unknown: no figure yet" in permit.reason
    g.observe_lag("replica-a:3306", 0.5)
    g.observe_threads_running(2)
    assert g.acquire(100).rows == 100
    clock.advance(STALE_SECONDS + 0.1)  # the collectors stopped reporting
    permit = g.acquire(100)
    assert permit.rows == 0 and "no figure for 5s" in permit.reason
    g.observe_lag("replica-a:3306", None, "no heartbeat of this run there yet (3s since the first)")
    g.observe_threads_running(2)
    assert g.acquire(100).reason == ("lag unknown on replica-a:3306: no heartbeat of this run there yet "
                                     "(3s since the first)")


def test_a_governor_fed_by_collectors_holds_until_told_its_limits():
    g, _ = governor(GOVERNED, Sources(), need_limits=True)
    assert g.acquire(10).reason == "waiting for the run's limits"
    g.set_limits(GOVERNED)
    assert g.acquire(10).rows == 10


def test_pause_and_resume():
    g, _ = fed()
    g.set_limits(WriteLimits(max_lag=10.0, max_threads_running=25, paused=True))
    permit = g.acquire(100)
    assert permit.rows == 0 and permit.reason == "paused by operator"
    assert g.state() == ("paused", ["paused by operator"])
    g.set_limits(WriteLimits(max_lag=10.0, max_threads_running=25))
    assert g.acquire(100).rows == 100
    assert g.batch_rows == 500, "new limits keep the batch size"


def test_several_reasons_are_all_named():
    g, _ = fed(lag=40.0, threads=90)
    g.set_limits(WriteLimits(max_lag=10.0, max_threads_running=25, paused=True))
    reason = g.acquire(1).reason
    assert reason == "paused by operator; lag=40.0s > 10s on replica-a:3306; Threads_running=90 > 25"
    assert g.state()[0] == "paused"


@pytest.mark.parametrize("text, inside, outside", [
    ("01:00-05:00", ["01:00:00", "04:59:59"], ["00:59:59", "05:00:00", "12:00:00"]),
    ("22:00-04:00", ["22:00:00", "23:59:59", "00:00:00", "03:59:59"], ["04:00:00", "21:59:59", "12:00:00"]),
])
def test_window_bounds_and_wrap_past_midnight(text, inside, outside):
    window = Window.parse(text)
    assert str(window) == text

    def unix(hms: str) -> int:
        return calendar.timegm(datetime.fromisoformat(f"2026-01-16T{hms}").timetuple())

    assert all(window.contains(unix(t)) for t in inside)
    assert not any(window.contains(unix(t)) for t in outside)


@pytest.mark.parametrize("text", ["1-5", "25:00-01:00", "01:00-01:00", "01:00", "aa:bb-cc:dd", "01:60-02:00"])
def test_bad_windows_are_refused(text):
    with pytest.raises(ValueError):
        Window.parse(text)


def test_outside_the_window_holds_and_says_when_it_opens():
    g, clock = governor(WriteLimits(window="13:30-14:00"), clock=Clock("2026-01-16T12:00:00"))
    permit = g.acquire(10)
    assert permit.rows == 0 and permit.reason == "outside window 13:30-14:00 UTC (opens in 1h30m)"
    assert g.state()[0] == "outside window"
    clock.advance(90 * 60)
    assert g.acquire(10).rows == 10


def test_rate_cap_paces_batches_and_gives_no_burst_after_a_pause():
    g, clock = governor(WriteLimits(max_write_rate=100.0, batch_rows=1000))
    assert g.acquire(1000).rows == 100, "a rate cap permits a second's worth at most"
    held = g.acquire(1000)
    assert held.rows == 0 and held.reason == "max-write-rate 100/s" and held.wait_seconds == pytest.approx(1.0)
    clock.advance(0.5)
    assert g.acquire(1000).wait_seconds == pytest.approx(0.5)
    clock.advance(0.5)
    assert g.acquire(1000).rows == 100
    # paused for a minute: afterwards still 100 rows per second, not 6,000 at once
    g.set_limits(WriteLimits(max_write_rate=100.0, paused=True))
    clock.advance(60)
    assert g.acquire(1000).rows == 0
    g.set_limits(WriteLimits(max_write_rate=100.0))
    permitted = 0
    for _ in range(50):
        permitted += g.acquire(1000).rows
        clock.advance(0.1)
    assert permitted <= 100 * 5 + 100, permitted


def test_batch_size_adapts_to_chunk_time_within_bounds():
    g, _ = governor(WriteLimits(batch_rows=1000, chunk_time=0.5))
    g.done(1000, 0.05)  # 10x faster than wanted
    assert 1000 < g.batch_rows <= MAX_BATCH_ROWS
    for _ in range(20):
        g.done(g.batch_rows, 0.01)
    assert g.batch_rows == MAX_BATCH_ROWS
    for _ in range(20):
        g.done(g.batch_rows, 10.0)  # very slow transactions
    assert g.batch_rows == MIN_BATCH_ROWS
    size = g.batch_rows
    g.done(3, 5.0)  # a shard's short tail: not a measure of the cost per row
    assert g.batch_rows == size
    fixed, _ = governor(WriteLimits(batch_rows=6))
    fixed.done(6, 0.001)
    assert fixed.batch_rows == 6, "without chunk_time the batch size is kept"


def test_held_seconds_count_wall_time_once_for_several_writers():
    g, clock = fed(lag=30.0)
    for _ in range(5):  # five writers asking within the same second, then again one second later
        g.acquire(10)
    clock.advance(HOLD_SECONDS)
    for _ in range(5):
        g.acquire(10)
    clock.advance(HOLD_SECONDS)
    assert g.held_seconds["lag"] == pytest.approx(2 * HOLD_SECONDS)
    assert g.held_seconds["any"] == pytest.approx(2 * HOLD_SECONDS)
    assert g.holds == 10


def test_status_figures():
    g, clock = fed(lag=2.0, threads=7)
    for lag in (1.0, 3.0, 50.0):
        g.observe_lag("replica-a:3306", lag)
    g.done(500, 0.2)
    clock.advance(10)
    g.done(300, 0.1)
    g.observe_lag("replica-a:3306", 2.0)
    g.observe_threads_running(7)
    status = g.status()
    assert status["state"] == "writing" and status["rows_written"] == 800 and status["batches"] == 2
    assert status["grants_per_s"] == pytest.approx(80.0)  # 800 rows over the 10 s since the first batch
    assert status["lag"] == {"replica-a:3306": 2.0} and status["threads_running"] == 7
    assert status["lag_seconds"]["samples"] == 5 and status["lag_seconds"]["max"] == 50.0
    assert status["batch_sizes"]["max"] == 500 and status["limits"]["max_lag"] == 10.0
    clock.advance(61)
    assert g.status()["grants_per_s"] == 0.0, "only the last minute counts"


def test_client_waits_through_holds(monkeypatch):
    g, clock = fed(lag=30.0)
    slept = []

    def sleep(seconds):
        slept.append(seconds)
        clock.advance(seconds)
        if len(slept) == 3:
            g.observe_lag("replica-a:3306", 1.0)
            g.observe_threads_running(1)

    client = GovernorClient(g, sleep=sleep)
    assert client.permit(250) == 250
    assert slept == [HOLD_SECONDS] * 3
    assert client.waited == {"lag": pytest.approx(3 * HOLD_SECONDS)}
    client.done(250, 0.1)
    assert client.status()["rows_written"] == 250


@pytest.mark.parametrize("word, value, parsed", [
    ("max-write-rate", "500", {"max_write_rate": 500.0}),
    ("max-write-rate", "none", {"max_write_rate": None}),
    ("max-lag", "2.5", {"max_lag": 2.5}),
    ("max-threads-running", "40", {"max_threads_running": 40}),
    ("window", "22:00-06:00", {"window": "22:00-06:00"}),
    ("window", "none", {"window": None}),
    ("chunk-time", "1", {"chunk_time": 1.0}),
])
def test_control_settings_parse(word, value, parsed):
    assert parse_limit(word, value) == parsed


@pytest.mark.parametrize("word, value", [
    ("max-lag", "0"), ("max-lag", "none"), ("max-threads-running", "0"), ("max-threads-running", "2.5"),
    ("max-write-rate", "-1"), ("window", "25:00-01:00"), ("speed", "1"), ("max-lag", "fast"),
])
def test_bad_control_settings_are_refused(word, value):
    with pytest.raises(ValueError):
        parse_limit(word, value)
