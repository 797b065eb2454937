"""The fault campaign's random and server faults (docs/FAULTS.md): the driver SIGKILLed at 5 random points of
one run (resumed after each), and the MariaDB server restarted, cleanly or by a crash, while a run writes.
Every outcome is held to an undisturbed run of the same options: the same users_achievements rows, the
same ledger, 0 duplicates, the ledger exact against the table.

The points are random: drawn from SRB_FAULT_SEED when set (to replay a failure), else from a fresh seed
that every assertion message names. The job runs as a subprocess attached to the session's Ray, with
writes slowed by the write governor (`--max-write-rate`) and made small (`--batch-rows 2`), so that the
write phase lasts seconds and a point drawn in it lands while grants are being written.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests import operations as op
from tests import scenario as sc
from tests.conftest import report_figure, throwaway_database
from tests.servers import own_mariadb

pytestmark = [pytest.mark.db, pytest.mark.ray]

RUN_ID = "fault-campaign"
OPTIONS = ["--shard-rows", "8", "--batch-rows", "2", "--workers", "2", "--writers", "2", "--no-progress",
           "--max-write-rate", "20"]
LEDGER_KEY = ("run_id", "action", "source", "user_id", "achievement_id", "mode", "created_at", "score_id", "sr",
              "playcount", "total_hits")
KILLS = 5


@pytest.fixture(scope="module")
def ray_address(ray_session):
    return ray_session.get_runtime_context().gcs_address


@pytest.fixture(scope="module")
def undisturbed(ray_session, tmp_path_factory):
    """The run with the campaign's options, undisturbed: (its new users_achievements rows, its ledger as a
    Counter of LEDGER_KEY tuples)."""
    work = tmp_path_factory.mktemp("undisturbed")
    with throwaway_database() as url:
        sc.setup_database(url, work / "osu")
        code, report = op.run(url, work / "osu", work, "clean", "--apply", "--run-id", RUN_ID, *OPTIONS)
        assert code == 0 and report["status"] == "finished", report
        assert op.new_rows(url) == op.EXPECTED_ROWS
        return op.new_rows(url), ledger_set(url)


@pytest.fixture()
def seed() -> int:
    return int(os.environ.get("SRB_FAULT_SEED") or random.SystemRandom().randrange(2**32))


def ledger_set(url: str) -> Counter:
    return Counter(tuple(r[k] for k in LEDGER_KEY) for r in op.ledger_rows(url, RUN_ID))


def job_argv(url: str, osu_dir: Path, work: Path, ray_address: str, resume: bool) -> list:
    return ["run", "--db", url, "--osu-dir", osu_dir, "--apply", "--run-id", RUN_ID, "--report", work / "report.json",
            "--ray-address", ray_address, *OPTIONS, *(["--resume"] if resume else [])]


def run_exists(url: str) -> bool:
    return bool(op.query(url, "SELECT 1 FROM information_schema.tables WHERE table_schema = DATABASE() "
                              "AND table_name = 'srb_runs'")) and bool(
        op.query(url, "SELECT 1 FROM srb_runs WHERE run_id = :r", {"r": RUN_ID}))


def ledger_count(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        has = conn.execute(sa.text("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() "
                                   "AND table_name = 'srb_ledger'")).scalar()
        if not has:
            return 0
        return conn.execute(sa.text("SELECT COUNT(*) FROM srb_ledger WHERE run_id = :r"), {"r": RUN_ID}).scalar()


def wait_for_ledger(engine: sa.Engine, proc: subprocess.Popen, rows: int, why: str, timeout: float = 180) -> None:
    """Wait until the run's ledger holds at least `rows` rows; fail (with the job's output) if the job
    exits or the time runs out first."""
    deadline = time.monotonic() + timeout
    while ledger_count(engine) < rows:
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"{why}: the job exited ({proc.returncode}) before the ledger held {rows} rows:"
                                 f"\n{out[-2000:]}\n{err[-3000:]}")
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            raise AssertionError(f"{why}: the ledger did not reach {rows} rows in {timeout} s")
        time.sleep(0.02)


def has_ledger(url: str) -> bool:
    return bool(op.query(url, "SELECT 1 FROM information_schema.tables WHERE table_schema = DATABASE() "
                              "AND table_name = 'srb_ledger'"))


def assert_exact_so_far(url: str, why: str) -> None:
    rows = [r[1:] for r in op.table_rows(url)]
    assert len(rows) == len(set(rows)), f"{why}: duplicate rows"
    if not has_ledger(url):  # killed before the run made its tables: it must not have written a row
        assert op.new_rows(url) == set(), f"{why}: rows written before the run had a ledger"
        return
    assert op.ledger_matches_table(url, RUN_ID) == [], why
    assert op.new_rows(url) <= op.EXPECTED_ROWS, f"{why}: a row no undisturbed run writes"


def assert_as_undisturbed(url: str, undisturbed, why: str) -> None:
    rows, ledger = undisturbed
    assert_exact_so_far(url, why)
    assert op.new_rows(url) == rows == op.EXPECTED_ROWS, why
    assert ledger_set(url) == ledger, why
    assert max(ledger_set(url).values()) == 1, f"{why}: a ledger row twice"
    assert set(s for (s,) in op.query(url, "SELECT status FROM srb_shards WHERE run_id = :r", {"r": RUN_ID})) == {"done"}
    assert op.query(url, "SELECT status FROM srb_runs WHERE run_id = :r", {"r": RUN_ID}) == [("finished",)], why


def kill_points(rng: random.Random) -> list[tuple[int, float]]:
    """KILLS points (ledger rows this attempt must add, then seconds to wait): the first in the run's start
    (import, Ray, planning, rating: 0 rows, 0.5-5 s), the others at 1-8 rows into a resume's write phase,
    each followed by up to 0.3 s (at 20 grants/s a point lands anywhere in a batch's life: waiting for its
    permit, inside its transaction, between its commit and the next). At most 32 of the scenario's 54
    grants are written before the last kill, so every attempt still has writes ahead when its kill comes."""
    return [(0, rng.uniform(0.5, 5.0))] + [(rng.randint(1, 8), rng.uniform(0.0, 0.3)) for _ in range(KILLS - 1)]


def test_the_driver_killed_at_5_random_points_and_resumed_ends_as_undisturbed(tmp_path, ray_address, scenario_db,
                                                                              undisturbed, seed):
    url, osu_dir = scenario_db
    points = kill_points(random.Random(seed))
    engine = sa.create_engine(url)
    landed = []
    try:
        for n, (rows, delay) in enumerate(points, 1):
            why = f"SRB_FAULT_SEED={seed}, kill {n} of {KILLS} ({rows} more ledger rows + {delay:.2f} s)"
            proc = op.start_job(job_argv(url, osu_dir, tmp_path, ray_address, resume=run_exists(url)), None,
                                tmp_path / "unused-marker")
            wait_for_ledger(engine, proc, ledger_count(engine) + rows, why)
            time.sleep(delay)
            assert proc.poll() is None, f"{why}: the job ended ({proc.returncode}) before its kill"
            os.kill(proc.pid, signal.SIGKILL)
            proc.communicate(timeout=60)
            assert proc.returncode == -signal.SIGKILL, why
            assert_exact_so_far(url, why)
            done = op.query(url, "SELECT COUNT(*) FROM srb_shards WHERE run_id = :r AND status = 'done'",
                            {"r": RUN_ID}) if run_exists(url) else [(None,)]
            landed.append(f"{ledger_count(engine)} ledger rows, {done[0][0]} shards done")
    finally:
        engine.dispose()
    assert run_exists(url), f"SRB_FAULT_SEED={seed}: no kill came after the run was recorded"
    code, report = op.run(url, osu_dir, tmp_path, "final", "--apply", "--run-id", RUN_ID, "--resume", *OPTIONS)
    assert code == 0 and report["status"] == "finished", (seed, report)
    assert_as_undisturbed(url, undisturbed, f"SRB_FAULT_SEED={seed}, after the final resume")
    report_figure(f"driver SIGKILLed at 5 random points (seed {seed}): landed at " + "; ".join(landed))


@pytest.mark.parametrize("crash", [False, True], ids=["restart", "crash"])
def test_the_server_restarted_during_writes_stops_the_run_resumably_and_resume_ends_as_undisturbed(
        tmp_path, ray_address, undisturbed, seed, crash):
    rng = random.Random(seed)
    with own_mariadb() as server:
        url, osu_dir = server.url("test"), tmp_path / "osu"
        sc.setup_database(url, osu_dir)
        rows = rng.randrange(4, len(sc.EXPECTED_GRANTS) - 24)
        why = f"SRB_FAULT_SEED={seed}, {'crashed' if crash else 'restarted'} after {rows} ledger rows"
        engine = sa.create_engine(url)
        proc = op.start_job(job_argv(url, osu_dir, tmp_path, ray_address, resume=False), None, tmp_path / "unused")
        try:
            wait_for_ledger(engine, proc, rows, why)
        finally:
            engine.dispose()
        down = server.restart(crash=crash)
        out, err = proc.communicate(timeout=180)
        # the server forgot the run's lock (a named lock lives in its session): the run must stop before
        # its next write, resumable, rather than write on without knowing who else holds the run
        assert proc.returncode == 1, f"{why}: exit {proc.returncode}\n{out[-2000:]}\n{err[-3000:]}"
        assert "lost its run lock" in out + err and "--resume" in out + err, f"{why}:\n{out[-2000:]}\n{err[-3000:]}"
        assert op.query(url, "SELECT status FROM srb_runs WHERE run_id = :r", {"r": RUN_ID}) == [("running",)], why
        assert_exact_so_far(url, why)
        written = len(op.ledger_rows(url, RUN_ID))
        assert rows <= written < len(sc.EXPECTED_GRANTS), why

        code, report = op.run(url, osu_dir, tmp_path, "resume", "--apply", "--run-id", RUN_ID, "--resume", *OPTIONS)
        assert code == 0 and report["status"] == "finished", (why, report)
        assert_as_undisturbed(url, undisturbed, why)
        report_figure(f"MariaDB {'crashed' if crash else 'restarted'} after {rows} grants (seed {seed}): down "
                      f"{down:.1f} s, the run stopped with {written} written, the resume wrote the rest")
