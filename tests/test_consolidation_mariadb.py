"""Mode 7 -> 8 consolidation on the production DDL: preview, backup, copy keeping created_at, delete
only after verification, ledger and rollback of both steps."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from cluster import consolidation
from cluster.db import connect
from cluster.errors import ConsolidationNotVerified
from tests import operations as op
from tests import scenario as sc

pytestmark = pytest.mark.db

# (id, user_id, achievement_id, mode, created_at)
START = [
    (1, 10, 21, 7, 1_600_000_000),  # mode 7 only: copied
    (2, 10, 91, 7, 1_600_000_100),  # mode 7 only: copied
    (3, 11, 91, 7, 1_600_000_200),  # also held in mode 8 (later): not copied, mode 8 row kept as is
    (4, 11, 91, 8, 1_700_000_000),
    (5, 12, 94, 4, 1_650_000_000),  # relax row: untouched
    (6, 12, 94, 7, 1_610_000_000),  # copied
    (7, 13, 1, 0, 1_660_000_000),   # vanilla row: untouched
]


def rows(url) -> list[tuple]:
    return [tuple(r) for r in sc.users_achievements_rows(url)]


@pytest.fixture()
def database(fresh_mariadb_url):
    engine = sa.create_engine(fresh_mariadb_url)
    sc.load_production_schema(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO users_achievements (id, user_id, achievement_id, mode, created_at) VALUES "
            + ", ".join(str(r) for r in START)
        )
    engine.dispose()
    return fresh_mariadb_url


def test_preview_copy_delete_and_roll_back(database, tmp_path):
    url = database
    assert op.cli("consolidate-mode7", "--db", url, "--report", tmp_path / "preview.json") == 0
    preview = json.loads((tmp_path / "preview.json").read_text())
    assert (preview["mode7_rows"], preview["to_copy"], preview["already_in_mode8"], preview["applied"]) == (4, 3, 1, False)
    assert rows(url) == START and not [t for (t,) in op.query(url, "SHOW TABLES") if t.startswith("srb_")]
    assert op.cli("consolidate-mode7", "--db", url, "--delete-mode7") != 0  # --delete-mode7 needs --apply

    # copy: mode 8 rows with the mode 7 created_at; mode 7 rows kept; all of them backed up first
    assert op.cli("consolidate-mode7", "--db", url, "--apply", "--run-id", "copy", "--batch-rows", "2") == 0
    after_copy = rows(url)
    assert after_copy[: len(START)] == START
    assert {r[1:] for r in after_copy[len(START):]} == {(10, 21, 8, 1_600_000_000), (10, 91, 8, 1_600_000_100),
                                                        (12, 94, 8, 1_610_000_000)}
    assert op.query(url, "SELECT ua_id, user_id, achievement_id, mode, created_at FROM srb_mode7_backup "
                         "WHERE run_id = 'copy' ORDER BY ua_id") == [r for r in START if r[3] == 7]
    recorded = {(r["ua_id"], r["user_id"], r["achievement_id"], r["mode"], r["created_at"], r["source"])
                for r in op.ledger_rows(url, "copy")}
    assert recorded == {r + ("mode7_copy",) for r in after_copy[len(START):]}

    # delete: verified, then the four mode 7 rows go (recorded with their values)
    assert op.cli("consolidate-mode7", "--db", url, "--apply", "--delete-mode7", "--run-id", "delete") == 0
    after_delete = rows(url)
    assert [r for r in after_delete if r[3] == 7] == []
    assert [r for r in after_delete if r[3] != 7] == [r for r in after_copy if r[3] != 7]
    deleted = sorted((r["ua_id"], r["user_id"], r["achievement_id"], r["mode"], r["created_at"])
                     for r in op.ledger_rows(url, "delete") if r["action"] == "delete")
    assert deleted == [r for r in START if r[3] == 7]
    assert json.loads(op.query(url, "SELECT summary FROM srb_runs WHERE run_id = 'delete'")[0][0])["verified"] is True

    # undo both: the mode 7 rows come back with their ids, the copies go
    assert op.cli("rollback", "--db", url, "--run-id", "delete", "--apply") == 0
    assert rows(url) == after_copy
    assert op.cli("rollback", "--db", url, "--run-id", "copy", "--apply") == 0
    assert rows(url) == START


def test_delete_refused_when_a_copy_is_missing(database, monkeypatch):
    """If the copy left a mode 7 row without a mode 8 counterpart, nothing is deleted."""
    url = database
    monkeypatch.setattr(consolidation.ledger, "write_ledgered", lambda *a, **k: consolidation.ledger.WriteResult())
    engine = connect(url)
    try:
        with pytest.raises(ConsolidationNotVerified) as caught:
            consolidation.consolidate_mode7(engine, apply=True, delete_mode7=True, run_id="broken")
    finally:
        engine.dispose()
    assert caught.value.count == 3 and (10, 21) in caught.value.unverified
    assert rows(url) == START
    assert op.query(url, "SELECT status FROM srb_runs WHERE run_id = 'broken'") == [("failed",)]


def test_consolidation_and_its_rollback_write_under_the_governors_limits(database, tmp_path, capsys):
    """Both write beside live traffic as a run does: every transaction (backup, copy, delete; the
    rollback's restores and deletes) waits for a permit of a write governor, here a rate cap of 2 rows a
    second, so no transaction holds more than 2 rows and the cap held the writers."""
    url = database
    assert op.cli("consolidate-mode7", "--db", url, "--apply", "--delete-mode7", "--run-id", "capped",
                  "--max-write-rate", "2", "--report", tmp_path / "capped.json") == 0
    summary = json.loads((tmp_path / "capped.json").read_text())
    assert (summary["backed_up"], summary["copied"], summary["deleted_mode7"]) == (4, 3, 4)
    governor = summary["governor"]
    assert governor["limits"]["max_write_rate"] == 2
    assert governor["rows_written"] == 4 + 3 + 4 and governor["batches"] >= 2 + 2 + 2
    assert governor["batch_sizes"]["max"] <= 2 and governor["held_seconds"]["max_write_rate"] > 0
    assert "batch sizes (rows)" in capsys.readouterr().out

    assert op.cli("rollback", "--db", url, "--run-id", "capped", "--apply", "--rollback-id", "uncapped",
                  "--max-write-rate", "1", "--report", tmp_path / "rollback.json") == 0
    assert rows(url) == START
    governor = json.loads((tmp_path / "rollback.json").read_text())["governor"]
    assert governor["rows_written"] == 3 + 4 and governor["batch_sizes"]["max"] == 1 and governor["batches"] == 7
