"""`verify` in bounded memory: its peak RSS must not grow with the rows of users_achievements and of the
ledger. The same database shape at two sizes (20k and 400k rows in each, users fixed), verified in a fresh
process each time; the peak RSS of the larger must stay within a few tens of MB of the smaller (loading
every row as Python tuples, as verify did, costs hundreds of MB at 400k). The peak is the process's own
(VmHWM): getrusage's ru_maxrss survives fork and exec, so a child of a large pytest process would report
pytest's peak for both sizes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import sqlalchemy as sa

from cluster import ledger
from tests import operations as op
from tests import scenario as sc
from tests.conftest import REPO, report_figure, throwaway_database

pytestmark = [pytest.mark.db]

USERS = 5000
PROGRAM = """
import inspect, json, sys
from cluster import db
from testbed.bench import own_peak_rss_mb
from cluster.verify import verify
engine = db.connect(sys.argv[1])
batching = {"batch_rows": int(sys.argv[2])} if "batch_rows" in inspect.signature(verify).parameters else {}
report = verify(engine, "big", **batching)
print(json.dumps({"rss_mb": own_peak_rss_mb(),  # VmHWM: ru_maxrss would be pytest's own peak, inherited
                  "after": sum(r["after"] for r in report.counts), "checked": report.unsupported["checked"],
                  "missing": report.ledger_missing["rows"], "duplicates": report.duplicates["groups"],
                  "zero": [(r["zero_before"], r["zero_after"]) for r in report.zero_achievements]}))
"""


def build(url: str, rows: int) -> None:
    """USERS users with one passed osu! score each; `rows` users_achievements rows spread over them, all
    inserted by run "big" (ledger rows, source "score", no score id: checked, and unsupported)."""
    engine = sa.create_engine(url)
    try:
        sc.load_production_schema(engine)
        ledger.ensure_tables(engine)
    finally:
        engine.dispose()
    per_user = USERS  # row n: user 1 + n % USERS, then achievement, then mode (all distinct)
    op.execute(
        url,
        "INSERT INTO users (id, username, username_safe, password_md5, email, register_datetime, latest_activity, "
        f"privileges) SELECT seq, CONCAT('u', seq), CONCAT('u', seq), '', CONCAT(seq, '@x'), 0, 0, 3 FROM seq_1_to_{USERS}",
        f"INSERT INTO scores (id, beatmap_md5, userid, `time`, play_mode, completed, checksum) "
        f"SELECT seq, 'x', seq, 1, 0, 3, MD5(seq) FROM seq_1_to_{USERS}",
        "INSERT INTO users_achievements (id, user_id, achievement_id, mode, created_at) "
        f"SELECT seq, 1 + seq % {per_user}, 1 + (seq DIV {per_user}) % 96, (seq DIV {per_user * 96}) % 7, seq "
        f"FROM seq_1_to_{rows}",
        "INSERT INTO srb_runs (run_id, command, status, started_at, as_of, updated_at, config) "
        "VALUES ('big', 'run', 'finished', 1, 1, 1, '{}')",
        "INSERT INTO srb_ledger (run_id, action, source, ua_id, user_id, achievement_id, mode, created_at, recorded_at) "
        "SELECT 'big', 'insert', 'score', id, user_id, achievement_id, mode, created_at, 1 FROM users_achievements",
    )


def peak(url: str, batch_rows: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-c", PROGRAM, url, str(batch_rows)], capture_output=True, text=True,
                            env=env, cwd=REPO, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_verify_peak_memory_does_not_grow_with_rows():
    figures = {}
    for rows in (20_000, 400_000):
        with throwaway_database() as url:
            build(url, rows)
            figures[rows] = peak(url, 10_000)
        assert figures[rows]["after"] == figures[rows]["checked"] == rows
        assert figures[rows]["missing"] == figures[rows]["duplicates"] == 0
        # every user passed in mode 0 and holds something there after the run; before it, nothing
        assert figures[rows]["zero"][0] == [USERS, 0]
    small, large = figures[20_000]["rss_mb"], figures[400_000]["rss_mb"]
    report_figure(f"verify peak RSS (batch 10k rows): {small:.0f} MB at 20k rows, {large:.0f} MB at 400k rows")
    assert large - small < 60, f"verify peak RSS grew from {small:.0f} MB to {large:.0f} MB"
