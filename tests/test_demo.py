"""The embedded default end to end: `sr-backfill demo` (SQLite + local Ray) through the console script."""

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from conditions.catalogue import FAMILIES

BIN = Path(sys.executable).parent


@pytest.mark.ray
def test_demo_builds_a_database_runs_and_applies(tmp_path):
    demo_dir = tmp_path / "demo"
    env = {**os.environ, "RAY_ADDRESS": ""}  # its own local Ray, not the test session's
    proc = subprocess.run(
        [str(BIN / "sr-backfill"), "demo", "--dir", str(demo_dir), "--users", "120", "--no-progress"],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "grants written" in proc.stdout
    report = json.loads((demo_dir / "report.json").read_text())

    assert all(report["rows_read"][table] > 0 for table in ("scores", "scores_relax", "scores_ap"))
    assert report["eligible_scores"] > 0 and report["sr_calculations"] > 0
    assert report["sr_calculations"] + sum(report["sr_errors"].values()) == report["sr_keys"]
    for reason in ("missing_file", "md5_mismatch", "bad_format", "impossible_convert"):
        assert report["sr_errors"][reason] > 0, reason
    for reason in ("not_passed", "restricted", "unknown_beatmap", "unranked"):
        assert report["ineligible"][reason] > 0, reason
    assert all(report["grants"]["by_family"][family] > 0 for family in FAMILIES), report["grants"]
    assert {"0", "1", "2", "3", "4", "8"} <= set(report["grants"]["by_full_mode"])

    with sqlite3.connect(demo_dir / "demo.db") as conn:
        duplicates = conn.execute(
            "SELECT COUNT(*) FROM (SELECT 1 FROM users_achievements GROUP BY user_id, achievement_id, mode HAVING COUNT(*) > 1)"
        ).fetchone()[0]
    assert duplicates == 0
    assert report["grants_written"] == report["grants"]["total"]
