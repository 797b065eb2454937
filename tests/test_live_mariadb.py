"""Running beside live traffic, against a real primary and replica (testbed.replica_pair: two mariadbd of
this module's own, binary log on, GTID replication, stopped by their pids at the end):

- a replica 30 s behind (MASTER_DELAY=30) holds every write of an --apply run, measured by the run's
  heartbeat, until it catches up; the run then ends with exactly the grants of an unthrottled run, and its
  figures reach the Ray metrics;
- the bulk reads go to the replica: the primary's handler and SELECT counters do not grow with the rows
  scanned, the replica's do;
- a window that excludes now writes nothing and says so (status, progress lines without a terminal);
  `control pause` holds the run; a paused run killed and resumed stays paused with the limits control
  set; `control resume` finishes it with the exact grants and ledger.

The runs are subprocesses attached to the session's Ray (they can be SIGKILLed); the scenario is
tests/scenario.py in a database of its own per test, created on the primary and replicated.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
import urllib.request
import uuid
from datetime import datetime, timedelta, timezone

import pytest
import ray
import sqlalchemy as sa

from cluster import control
from testbed.replica_pair import ReplicaPair
from tests import operations as op
from tests import scenario as sc

pytestmark = [pytest.mark.db, pytest.mark.ray]

OPTIONS = ["--workers", "2", "--shard-rows", "2000", "--db-retry-wait", "0.05"]


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """A MariaDB primary and replica for this module (started once, stopped by their pids at the end)."""
    with ReplicaPair(tmp_path_factory.mktemp("replica-pair")) as started:
        yield started


@pytest.fixture(scope="module")
def ray_address(ray_session):
    return ray_session.get_runtime_context().gcs_address


@pytest.fixture()
def scenario(pair, tmp_path):
    """The scenario in a fresh database on the primary, replicated: (primary URL, replica URL, .osu dir)."""
    name = f"srb_live_{uuid.uuid4().hex[:8]}"
    url = pair.create_database(name)
    sc.setup_database(url, tmp_path / "osu")
    pair.wait_caught_up()
    yield url, pair.replica.url(name), tmp_path / "osu"
    pair.delay(0)
    pair.primary.query(f"DROP DATABASE IF EXISTS `{name}`")


def published(url: str, run_id: str) -> dict:
    """The status run `run_id` last published ({} before its first)."""
    engine = sa.create_engine(url)
    try:
        found = control.read_status(engine, run_id)
    finally:
        engine.dispose()
    return found[1] if found else {}


def wait_for(what: str, check, proc=None, timeout: float = 240.0):
    """Poll `check()` until it returns something truthy; fail with the job's output if it exits first."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"the job exited ({proc.returncode}) before {what}:\n{out[-2000:]}\n{err[-4000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.5)


def held(status: dict, reason: str) -> float:
    return ((status.get("governor") or {}).get("held_seconds") or {}).get(reason, 0.0)


def run_argv(url, read_url, osu_dir, work, run_id, ray_address, *extra):
    return ["run", "--db", url, "--read-db", read_url, "--osu-dir", osu_dir, "--apply", "--run-id", run_id,
            "--report", work / f"{run_id}.json", "--ray-address", ray_address, *OPTIONS, *extra]


def finish(proc, timeout: float = 300.0) -> tuple[str, str]:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, f"{out[-2000:]}\n{err[-4000:]}"
    return out, err


def scrape_metrics(timeout: float = 60.0, wanted: tuple[str, ...] = ()) -> str:
    """The session's Ray node's Prometheus text, once it shows every line prefix in `wanted`."""
    port = ray.nodes()[0]["MetricsExportPort"]
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        try:
            text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        except OSError:
            text = ""
        if all(w in text for w in wanted):
            return text
        time.sleep(2)
    return text


def metric(text: str, name: str, **tags) -> float | None:
    """The value of metric `name` whose labels include `tags` (summed over the other labels)."""
    total, found = 0.0, False
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', line[: line.rindex("}")]))
        if all(labels.get(k) == v for k, v in tags.items()):
            total += float(line.rsplit(" ", 1)[1])
            found = True
    return total if found else None


def test_a_replica_30s_behind_holds_every_write_until_it_catches_up(pair, scenario, tmp_path, ray_address):
    url, read_url, osu_dir = scenario
    run_id = "lagged"
    pair.delay(30)
    proc = op.start_job(run_argv(url, read_url, osu_dir, tmp_path, run_id, ray_address, "--no-progress"), None,
                        tmp_path / "marker")
    # the writers ask and are held; after ~30 s the heartbeat shows on the replica, 30 s old
    status = wait_for("a measured lag of 20 s or more", lambda: (
        s if held(s := published(url, run_id), "lag") >= 3
        and any((v or 0) >= 20 for v in (s["governor"].get("lag") or {}).values()) else None), proc)
    assert status["state"].startswith("throttled: lag=") and "> 10s on 127.0.0.1:" in status["state"]
    assert op.ledger_rows(url, run_id) == [] and op.table_rows(url) == op.EXISTING, "a grant was written"
    assert status["governor"]["rows_written"] == 0

    pair.delay(0)  # the replica catches up: the lag falls and the run writes
    finish(proc)
    assert op.new_rows(url) == op.EXPECTED_ROWS
    assert len(op.ledger_rows(url, run_id)) == len(sc.EXPECTED_GRANTS)
    assert op.ledger_matches_table(url, run_id) == []
    report = json.loads((tmp_path / f"{run_id}.json").read_text())
    assert report["read_database"]["replica"] and report["read_database"]["lag_source"] == "SHOW REPLICA STATUS"
    governor = report["governor"]
    assert governor["held_seconds"]["lag"] >= held(status, "lag") >= 3 and governor["lag_seconds"]["max"] >= 20
    assert governor["batch_sizes"]["samples"] >= 1 and governor["threads_running_figures"]["samples"] > 0

    # the same figures as Ray metrics (the node's Prometheus endpoint)
    text = scrape_metrics(wanted=("ray_srb_grants_written", "ray_srb_throttled_seconds", "ray_srb_scores_read"))
    assert metric(text, "ray_srb_grants_written_total", run_id=run_id) == len(sc.EXPECTED_GRANTS)
    assert metric(text, "ray_srb_scores_read_total", run_id=run_id) == sum(report["rows_read"].values())
    # the status shows held seconds rounded to the millisecond; the metric counts them unrounded
    assert round(metric(text, "ray_srb_throttled_seconds_total", run_id=run_id, reason="lag"), 3) >= held(status, "lag")
    assert metric(text, "ray_srb_replica_lag_seconds", run_id=run_id) is not None
    assert metric(text, "ray_srb_errors_total", run_id=run_id, reason="missing_file") >= 1
    assert report["sr_calculations"] > 0 and metric(text, "ray_srb_keys_rated_total") >= report["sr_calculations"]


def handler_reads(server) -> int:
    return sum(server.status(name) for name in ("Handler_read_rnd_next", "Handler_read_next", "Handler_read_key"))


def test_the_bulk_reads_go_to_the_replica(pair, scenario, tmp_path, ray_address):
    url, read_url, osu_dir = scenario
    rows = sum(1 for _ in sc.all_scores())
    counters = {}
    for tag, reads in (("replica", read_url), ("primary", url)):
        before = {s.name: (handler_reads(s), s.status("Com_select")) for s in (pair.primary, pair.replica)}
        code, report = op.run(url, osu_dir, tmp_path, tag, "--read-db", reads, "--read", "scan",
                              "--ray-address", ray_address, "--out", tmp_path / f"{tag}.parquet", "--run-id", tag,
                              *OPTIONS)
        assert code == 0 and sum(report["rows_read"].values()) == rows
        counters[tag] = {s.name: (handler_reads(s) - before[s.name][0], s.status("Com_select") - before[s.name][1])
                         for s in (pair.primary, pair.replica)}
    on_replica, on_primary = counters["replica"], counters["primary"]
    # reading from the replica: the score rows are read there, and the primary reads far fewer than them
    assert on_replica["replica"][0] >= rows
    assert on_replica["primary"][0] < rows / 5, counters
    # the same run reading the primary reads them there: the counter measures the scan
    assert on_primary["primary"][0] >= rows
    assert on_replica["primary"][1] <= on_primary["primary"][1] - 3, "the scan's SELECTs moved to the replica"


def utc_window_excluding_now() -> str:
    start = datetime.now(timezone.utc) + timedelta(hours=2)
    end = start + timedelta(hours=1)
    return f"{start:%H:%M}-{end:%H:%M}"


def test_window_pause_kill_resume(pair, scenario, tmp_path, ray_address, capsys):
    url, read_url, osu_dir = scenario
    run_id = "window-pause"
    control_cli = ("control", "--db", url, "--run-id", run_id)
    window = utc_window_excluding_now()
    proc = op.start_job(run_argv(url, read_url, osu_dir, tmp_path, run_id, ray_address, "--window", window,
                                 "--progress-interval", "1"), None, tmp_path / "marker")

    # 1. outside the window: writers held, nothing written, and the run says why
    status = wait_for("writers held by the window", lambda: (
        s if held(s := published(url, run_id), "window") >= 3 else None), proc)
    assert status["state"].startswith(f"outside window: outside window {window} UTC (opens in ")
    assert op.ledger_rows(url, run_id) == [] and op.table_rows(url) == op.EXISTING
    capsys.readouterr()
    assert op.cli(*control_cli, "status") == 0
    shown = capsys.readouterr().out
    assert f"run {run_id}: outside window" in shown and "window " + window in shown

    # 2. paused, and the window lifted: still held, by the pause alone
    assert op.cli(*control_cli, "pause") == 0
    assert op.cli(*control_cli, "set", "window=none", "max-write-rate=1000") == 0
    wait_for("the pause alone to hold", lambda: published(url, run_id).get("state") == "paused: paused by operator",
             proc, timeout=60)
    paused_for = held(published(url, run_id), "paused")
    wait_for("two more seconds paused", lambda: held(published(url, run_id), "paused") >= paused_for + 2, proc)
    assert op.ledger_rows(url, run_id) == [] and op.table_rows(url) == op.EXISTING

    # 3. killed while paused
    os.kill(proc.pid, signal.SIGKILL)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    lines = [line for line in err.splitlines() if line.startswith(f"sr-backfill {run_id} ")]
    assert any(f"outside window {window}" in line for line in lines), err[-3000:]
    assert any(line.endswith("paused: paused by operator") for line in lines), err[-3000:]
    assert all(re.search(r"shards \d+/\d+, scores [\d,]+ \([\d,]+/s\), grants [\d,]+ ", line) for line in lines)
    capsys.readouterr()
    op.cli(*control_cli, "status")
    assert f"run {run_id}: not running" in capsys.readouterr().out

    # 4. resumed: it keeps what control set (paused, no window, the rate) and writes nothing until resumed
    proc = op.start_job(["run", "--db", url, "--read-db", read_url, "--run-id", run_id, "--resume",
                         "--report", tmp_path / "resumed.json", "--ray-address", ray_address, *OPTIONS,
                         "--progress-interval", "1"], None, tmp_path / "marker")
    status = wait_for("the resumed run held by the pause", lambda: (
        s if (s := published(url, run_id)).get("pid") == proc.pid and held(s, "paused") >= 3 else None), proc)
    assert status["state"] == "paused: paused by operator"
    assert status["governor"]["limits"]["window"] is None and status["governor"]["limits"]["max_write_rate"] == 1000
    assert op.ledger_rows(url, run_id) == [] and op.table_rows(url) == op.EXISTING

    # 5. resumed by the operator: it finishes with the grants and ledger of an uninterrupted run
    assert op.cli(*control_cli, "resume") == 0
    out, err = finish(proc)
    assert "limits kept from the run's control row" in err
    assert op.new_rows(url) == op.EXPECTED_ROWS
    assert op.ledger_matches_table(url, run_id) == []
    assert len(op.ledger_rows(url, run_id)) == len(sc.EXPECTED_GRANTS)
    report = json.loads((tmp_path / "resumed.json").read_text())
    assert report["status"] == "finished" and report["resumed"]
    assert report["governor"]["held_seconds"]["paused"] >= 3
    capsys.readouterr()
    op.cli(*control_cli, "status")
    assert f"run {run_id}: finished" in capsys.readouterr().out


def test_an_applied_rollback_is_held_by_replica_lag_and_by_pause_as_a_run_is(pair, scenario, tmp_path, ray_address):
    """An applied rollback deletes under the same write governor as a run: a lag replica that shows no
    beat of the rollback yet (it is 30 s behind) holds every delete, `control pause` holds them after the
    replica caught up, and `control resume` lets the rollback remove exactly the run's rows."""
    url, read_url, osu_dir = scenario
    finish(op.start_job(run_argv(url, read_url, osu_dir, tmp_path, "undo-me", ray_address, "--no-progress"), None,
                        tmp_path / "marker"))
    assert len(op.ledger_rows(url, "undo-me")) == len(sc.EXPECTED_GRANTS)
    pair.wait_caught_up()
    pair.delay(30)
    report = tmp_path / "rollback.json"
    proc = op.start_job(["rollback", "--db", url, "--run-id", "undo-me", "--apply", "--rollback-id", "undo-held",
                         "--lag-replica", read_url, "--report", report, "--db-retry-wait", "0.05"], None,
                        tmp_path / "marker")
    wait_for("the rollback's control row",
             lambda: op.query(url, "SELECT paused FROM srb_control WHERE run_id = 'undo-held'"), proc)
    time.sleep(4)
    assert proc.poll() is None and op.ledger_rows(url, "undo-held") == [], "a delete went through the lag"
    assert op.new_rows(url) == op.EXPECTED_ROWS

    assert op.cli("control", "--db", url, "--run-id", "undo-held", "pause") == 0
    time.sleep(5)  # the rollback reads its control row every 2 s: two polls and more
    pair.delay(0)
    pair.wait_caught_up()
    time.sleep(4)
    assert proc.poll() is None and op.ledger_rows(url, "undo-held") == [], "a delete went through the pause"

    assert op.cli("control", "--db", url, "--run-id", "undo-held", "resume") == 0
    out, _ = finish(proc)
    assert op.new_rows(url) == set() and op.table_rows(url) == op.EXISTING
    summary = json.loads(report.read_text())
    assert summary["deleted"] == len(sc.EXPECTED_GRANTS)
    assert len(op.ledger_rows(url, "undo-held")) == len(sc.EXPECTED_GRANTS)
    governor = summary["governor"]
    assert governor["held_seconds"]["lag"] >= 3 and governor["held_seconds"]["paused"] >= 3
    assert governor["rows_written"] == len(sc.EXPECTED_GRANTS)
    assert "held (s, wall)" in out and "paused" in out
