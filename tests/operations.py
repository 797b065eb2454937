"""Shared steps of the production-safety tests: run the CLI (in-process or as a killable subprocess)
and read back users_achievements, the ledger and the progress tables."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import sqlalchemy as sa

from tests import scenario as sc

BIN = Path(sys.executable).parent
EXISTING = [(h.id, h.user_id, h.achievement_id, h.mode, h.created_at) for h in sc.EXISTING_ACHIEVEMENTS]
EXPECTED_ROWS = {g.row for g in sc.EXPECTED_GRANTS}  # (user_id, achievement_id, mode, created_at)


def cli(*argv: str) -> int:
    """`sr-backfill ARGV` in this process (the session's Ray); returns the exit code."""
    from jobs.cli import main

    try:
        return main([str(a) for a in argv])
    except SystemExit as exc:  # argparse and usage errors
        return exc.code if isinstance(exc.code, int) else 1


def run(url: str, osu_dir: Path, work: Path, tag: str, *extra: str) -> tuple[int, dict]:
    """`sr-backfill run` on the scenario with a report; returns (exit code, report or {})."""
    report = work / f"{tag}.json"
    code = cli("run", "--db", url, "--osu-dir", osu_dir, "--report", report, "--workers", "2", "--no-progress",
               *extra)
    return code, json.loads(report.read_text()) if report.exists() else {}


def query(url: str, sql: str, params: dict | None = None) -> list[tuple]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.text(sql), params or {})]
    finally:
        engine.dispose()


def execute(url: str, *statements: str) -> None:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            for statement in statements:
                conn.execute(sa.text(statement))
    finally:
        engine.dispose()


def table_rows(url: str) -> list[tuple[int, int, int, int, int]]:
    """users_achievements (id, user_id, achievement_id, mode, created_at) by id."""
    return sc.users_achievements_rows(url)


def new_rows(url: str) -> set[tuple[int, int, int, int]]:
    """users_achievements rows that the scenario did not start with, without ids."""
    existing_ids = {r[0] for r in EXISTING}
    return {r[1:] for r in table_rows(url) if r[0] not in existing_ids}


def ledger_rows(url: str, run_id: str | None = None) -> list[dict]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            sql = "SELECT * FROM srb_ledger" + (" WHERE run_id = :run" if run_id else "") + " ORDER BY id"
            return [dict(r) for r in conn.execute(sa.text(sql), {"run": run_id}).mappings()]
    finally:
        engine.dispose()


def ledger_matches_table(url: str, run_id: str) -> list[str]:
    """Problems with a backfill run's ledger: every insert row must be a row of the table with the same
    id and values, and every table row not in the scenario's start must be in the ledger."""
    problems = []
    by_id = {r[0]: r[1:] for r in table_rows(url)}
    recorded = [r for r in ledger_rows(url, run_id) if r["action"] == "insert"]
    for r in recorded:
        values = (r["user_id"], r["achievement_id"], r["mode"], r["created_at"])
        if by_id.get(r["ua_id"]) != values:
            problems.append(f"ledger row {values} (ua_id {r['ua_id']}) is not in the table as recorded")
    recorded_ids = {r["ua_id"] for r in recorded}
    existing_ids = {r[0] for r in EXISTING}
    for ua_id, values in by_id.items():
        if ua_id not in existing_ids and ua_id not in recorded_ids:
            problems.append(f"table row {ua_id} {values} is not in the ledger")
    if len(recorded_ids) != len(recorded):
        problems.append("the ledger names a row twice")
    return problems


def start_job(argv: list, pause_at: str | None, marker: Path) -> subprocess.Popen:
    """Start `sr-backfill ARGV` as a subprocess in its own process group, pausing at `pause_at`."""
    env = {**os.environ, "SRB_TEST_PAUSE_FILE": str(marker)}
    env.pop("SRB_TEST_PAUSE_AT", None)
    if pause_at:
        env["SRB_TEST_PAUSE_AT"] = pause_at
    return subprocess.Popen(
        [str(BIN / "sr-backfill"), *map(str, argv)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, start_new_session=True,
    )


def kill_when_paused(proc: subprocess.Popen, marker: Path, timeout: float = 180) -> str:
    """Wait until the job (or one of its Ray workers) writes its pause marker, then SIGKILL the job.
    Returns the marker's content. Fails (AssertionError with the job's output) if the job exits or
    times out first."""
    content, _ = paused_pid(proc, marker, timeout)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.returncode
    clear_pause(marker)
    return content


def paused_pid(proc: subprocess.Popen, marker: Path, timeout: float = 300) -> tuple[str, int]:
    """Wait until some process of the job (the job itself or one of its Ray workers) pauses at its
    pause point (cluster.pauses); return (the marker's content, the paused process's pid). The job is
    left running. Fails (AssertionError with the job's output) if the job exits or times out first."""
    deadline = time.monotonic() + timeout
    pid_file = Path(f"{marker}.pid")
    while not marker.exists():
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"job exited ({proc.returncode}) before pausing:\n{out[-2000:]}\n{err[-3000:]}")
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            raise AssertionError(f"job did not pause in {timeout}s:\n{out[-2000:]}\n{err[-3000:]}")
        time.sleep(0.05)
    return marker.read_text(), int(pid_file.read_text())


def clear_pause(marker: Path) -> None:
    """Remove a pause marker and its claim and pid files (cluster.pauses), so that the next job may pause."""
    for path in (marker, Path(f"{marker}.claimed"), Path(f"{marker}.pid")):
        path.unlink(missing_ok=True)
