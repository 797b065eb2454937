"""Rollback beside live grants: after a backfill row exists the live server does not grant that achievement
again, so rolling the row back can leave a user without what they earned live meanwhile. On the acceptance
scenario, after an applied run, new scores are added as the live server would have received them (times
after the run started); the rollback's preview counts and lists the affected rows, `--regrant-live` grants
again exactly those a live score meets, dated by that score, as a run of its own that verifies clean and
rolls back exactly.

Live scores (all osu!, mode 0, passed unless said):
  E  osu_39206 with HR (5.00 stars):      meets E's skill-pass-5 (5) and HR intro (88); not 9, 19, 92, 89
  V  r2_3227428 with HD:                   meets V's HD intro (91); not 94, 88, 95, 96, 86, 87
  P  osu_2593923, no mods (play 5002):     meets P's osu-plays-5000 (73) by the running total; not NF intro (94)
  C  osu_2593923 with HD, FAILED:          not a passed score: none of C's rows is affected
  N  osu_39206 with HR, set BEFORE the run started (inserted late): not live, N unaffected
"""

from __future__ import annotations

import csv
import json

import pytest

from tests import operations as op
from tests import scenario as sc

pytestmark = [pytest.mark.db, pytest.mark.ray]

E, N, C, P, V = sc.E, sc.N, sc.C, sc.P, sc.V
AFFECTED = {(E, a, 0) for a in (5, 88, 9, 19, 92, 89)} | {(V, a, 0) for a in (91, 94, 88, 95, 96, 86, 87)} | {
    (P, 94, 0), (P, 73, 0)}


def add_scores(url: str, scores: list[sc.Score]) -> None:
    md5s = {key: sc.map_files(spec)[0] for key, spec in sc.MAP_SPECS.items()}
    engine = __import__("sqlalchemy").create_engine(url)
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        placeholders = ", ".join(["%s"] * 21)
        cur.executemany(f"INSERT INTO scores ({sc._SCORE_COLS}) VALUES ({placeholders})",
                        [sc._score_params(s, md5s) for s in scores])
        raw.commit()
    finally:
        raw.close()
        engine.dispose()


def rollback(url, tmp_path, tag, *extra) -> tuple[int, dict, list[dict]]:
    code = op.cli("rollback", "--db", url, "--run-id", "r1", "--report", tmp_path / f"{tag}.json",
                  "--live-csv", tmp_path / f"{tag}.live.csv", *extra)
    report = json.loads((tmp_path / f"{tag}.json").read_text()) if (tmp_path / f"{tag}.json").exists() else {}
    rows = list(csv.DictReader((tmp_path / f"{tag}.live.csv").open())) if (tmp_path / f"{tag}.live.csv").exists() else []
    return code, report, rows


def test_rollback_finds_and_grants_again_what_users_earned_live(tmp_path, ray_session, scenario_db, capsys):
    url, osu_dir = scenario_db
    assert op.run(url, osu_dir, tmp_path, "run", "--apply", "--run-id", "r1")[0] == 0
    started = op.query(url, "SELECT started_at FROM srb_runs WHERE run_id = 'r1'")[0][0]
    live = started + 3600
    S = sc.S
    add_scores(url, [
        sc.Score(S, 9001, E, "osu_39206", 0, sc.HR, 2, live + 10, sr=5.00),
        sc.Score(S, 9002, E, "osu_39206", 0, sc.HR, 3, live + 20, sr=5.00),  # later: not the date
        sc.Score(S, 9003, V, "r2_3227428", 0, sc.HD, 3, live + 30),
        sc.Score(S, 9004, P, "osu_2593923", 0, 0, 2, live + 40),
        sc.Score(S, 9005, C, "osu_2593923", 0, sc.HD, 1, live + 50),  # failed
        sc.Score(S, 9006, N, "osu_39206", 0, sc.HR, 3, started - 3600),  # before the run started
    ])
    expected_live = {(E, 5, 0, live + 10, 9001), (E, 88, 0, live + 10, 9001), (V, 91, 0, live + 30, 9003),
                     (P, 73, 0, live + 40, 9004)}

    # the preview counts and lists the affected rows, writes nothing
    before = op.table_rows(url)
    code, report, rows = rollback(url, tmp_path, "preview")
    assert code == 0 and report["live_since"] == started and report["regrant"] is None
    assert report["live_affected"] == len(AFFECTED) == len(rows)
    assert {(int(r["user_id"]), int(r["achievement_id"]), int(r["mode"])) for r in rows} == AFFECTED
    e_rows = [r for r in rows if int(r["user_id"]) == E]
    assert {(int(r["live_scores"]), int(r["first_live_score_at"])) for r in e_rows} == {(2, live + 10)}
    assert "earned live since   15 of the rows to delete" in capsys.readouterr().out

    # --regrant-live in a preview evaluates which the live scores meet, still writing nothing
    code, report, rows = rollback(url, tmp_path, "preview-live", "--regrant-live")
    assert code == 0 and op.table_rows(url) == before
    assert report["regrant"]["affected"] == 15 and report["regrant"]["met"] == 4 and report["regrant"]["not_met"] == 11
    assert report["regrant"]["run_id"] is None and report["regrant"]["inserted"] == 0
    met = {(int(r["user_id"]), int(r["achievement_id"]), int(r["mode"]), int(r["regrant_created_at"]),
            int(r["regrant_score_id"])) for r in rows if r["regrant_created_at"]}
    assert met == expected_live

    # applied: the run's rows go, the live grants come back dated by their score, ledgered as run live1
    code, report, rows = rollback(url, tmp_path, "apply", "--apply", "--rollback-id", "undo1", "--regrant-live",
                                  "--regrant-id", "live1")
    assert code == 0 and report["deleted"] == len(sc.EXPECTED_GRANTS)
    assert report["regrant"]["run_id"] == "live1" and report["regrant"]["inserted"] == 4
    assert op.new_rows(url) == {g[:4] for g in expected_live}
    recorded = op.ledger_rows(url, "live1")
    assert {(r["user_id"], r["achievement_id"], r["mode"], r["created_at"], r["score_id"]) for r in recorded} == expected_live
    assert {(r["action"], r["source"]) for r in recorded} == {("insert", "live_regrant")}
    assert [r for r in recorded if r["achievement_id"] == 73][0]["playcount"] == 5002  # the running total
    assert [r for r in recorded if r["achievement_id"] == 5][0]["sr"] == 5.00
    assert op.query(url, "SELECT command, status, target_run_id FROM srb_runs WHERE run_id = 'live1'") == [
        ("regrant-live", "finished", "undo1")]

    # repeating the applied rollback finds nothing left to do and writes no live grant twice
    code, report, _ = rollback(url, tmp_path, "again", "--apply", "--rollback-id", "undo2", "--regrant-live",
                               "--regrant-id", "live2")
    assert code == 0 and report["deleted"] == 0 and report["regrant"]["inserted"] == 0
    assert report["regrant"]["already_present"] == 4 and op.new_rows(url) == {g[:4] for g in expected_live}

    # the live grants are supported by their scores, and roll back exactly
    code = op.cli("verify", "--db", url, "--run-id", "live1", "--json", tmp_path / "verify.json", "--png",
                  tmp_path / "verify.png")
    verified = json.loads((tmp_path / "verify.json").read_text())
    assert code == 0 and verified["unsupported"]["checked"] == 4 and verified["unsupported"]["unsupported"] == 0
    assert op.cli("rollback", "--db", url, "--run-id", "live1", "--apply", "--live-csv", tmp_path / "x.csv") == 0
    assert op.table_rows(url) == op.EXISTING


def test_regrant_is_refused_for_a_rollback_target(tmp_path, ray_session, scenario_db):
    url, osu_dir = scenario_db
    assert op.run(url, osu_dir, tmp_path, "run", "--apply", "--run-id", "r1")[0] == 0
    assert op.cli("rollback", "--db", url, "--run-id", "r1", "--apply", "--rollback-id", "undo1",
                  "--live-csv", tmp_path / "a.csv") == 0
    assert op.cli("rollback", "--db", url, "--run-id", "undo1", "--regrant-live", "--live-csv", tmp_path / "b.csv") == 2
