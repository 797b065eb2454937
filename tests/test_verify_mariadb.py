"""`sr-backfill verify` on the acceptance scenario: the clean run passes every check with hand-derived
figures (users with passed scores but zero achievements per full mode before/after, rarity), then
injected faults (a duplicate, a row deleted behind the ledger's back, a grant its score cannot
support) are each reported."""

from __future__ import annotations

import json

import pytest

from tests import operations as op
from tests import scenario as sc

pytestmark = [pytest.mark.db, pytest.mark.ray]

E, N, C, K, I, X, A, P, H, F, V, R, B = range(1001, 1014)

# Users with passed scores, per full mode (restricted R left out), and how many held no achievement in
# that mode before the run (EXISTING_ACHIEVEMENTS: N holds 94 in mode 0; A's mode 7 row counts as 8):
#   0: E N C I P V B (7), N held -> 6      1: C K H (3)         2: K F (2)          3: K X (2)
#   4: X (1)    5: H (1)    6: X (1)    8: A (1), held through mode 7 -> 0
# After the run every one of them holds something in each mode they passed in.
ZERO = {0: (7, 6, 0), 1: (3, 3, 0), 2: (2, 2, 0), 3: (2, 2, 0), 4: (1, 1, 0), 5: (1, 1, 0), 6: (1, 1, 0),
        8: (1, 0, 0)}


def verify(url, tmp_path, tag, *extra) -> tuple[int, dict]:
    code = op.cli("verify", "--db", url, "--json", tmp_path / f"{tag}.json", "--png", tmp_path / f"{tag}.png", *extra)
    return code, json.loads((tmp_path / f"{tag}.json").read_text())


def test_verify_checks_figures_and_reports_injected_faults(fresh_mariadb_url, tmp_path, ray_session):
    url = fresh_mariadb_url
    sc.setup_database(url, tmp_path / "osu")
    assert op.run(url, tmp_path / "osu", tmp_path, "run", "--apply", "--run-id", "r1")[0] == 0

    code, report = verify(url, tmp_path, "clean", "--run-id", "r1")
    assert code == 0 and report["problems"] == []
    assert report["duplicates"]["groups"] == 0 and report["mode7_rows"] == 1
    assert report["ledger_missing"]["rows"] == 0
    assert report["unsupported"] == {"checked": len(sc.EXPECTED_GRANTS), "sr": "recorded", "unsupported": 0,
                                     "by_reason": {}, "samples": []}
    zero = {r["mode"]: (r["users_with_passes"], r["zero_before"], r["zero_after"]) for r in report["zero_achievements"]}
    assert zero == ZERO
    counts = {r["achievement_id"]: (r["before"], r["after"]) for r in report["counts"]}
    assert counts[91] == (1, 6) and counts[94] == (1, 4) and counts[21] == (1, 4) and counts[73] == (0, 1)
    rarity = {(r["achievement_id"], r["mode"]): (r["holders"], r["users_with_passes"]) for r in report["rarity"]}
    assert rarity[(91, 0)] == (3, 7)  # I, V, B
    assert rarity[(94, 0)] == (3, 7)  # N (held), P, V
    assert rarity[(21, 8)] == (1, 1)  # A through the legacy mode 7 row
    assert rarity[(26, 1)] == (2, 3) and rarity[(5, 0)] == (1, 7) and rarity[(1, 0)] == (0, 7)
    assert (73, 1) not in rarity and (83, 4) not in rarity  # osu! play counts exist in 0, 4, 8 only
    png = (tmp_path / "clean.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000

    ids = {(r["user_id"], r["achievement_id"], r["mode"]): r["ua_id"] for r in op.ledger_rows(url, "r1")}
    # a skill grant whose recorded star rating no longer fits its band; recomputing from the maps restores it
    op.execute(url, f"UPDATE srb_ledger SET sr = 4.99 WHERE ua_id = {ids[(E, 5, 0)]}")
    code, report = verify(url, tmp_path, "band", "--run-id", "r1")
    assert code == 1 and report["unsupported"]["by_reason"] == {"condition_not_met": 1}
    assert [(s["user_id"], s["achievement_id"]) for s in report["unsupported"]["samples"]] == [(E, 5)]
    code, report = verify(url, tmp_path, "rerated", "--run-id", "r1", "--osu-dir", tmp_path / "osu")
    assert code == 0 and report["unsupported"]["sr"] == "recomputed" and report["unsupported"]["unsupported"] == 0

    # a grant whose score was deleted, a row deleted behind the ledger's back, a duplicate row
    op.execute(
        url,
        "DELETE FROM scores WHERE id = 215",  # B's 7-star BOM score: grants 7 and 17
        f"DELETE FROM users_achievements WHERE id = {ids[(C, 24, 0)]}",
        "ALTER TABLE users_achievements DROP INDEX user_achievement_mode",
        f"INSERT INTO users_achievements (user_id, achievement_id, mode, created_at) VALUES ({N}, 94, 0, 1)",
    )
    code, report = verify(url, tmp_path, "faults", "--run-id", "r1")
    assert code == 1 and len(report["problems"]) == 3
    assert report["duplicates"]["groups"] == 1 and report["duplicates"]["samples"][0]["user_id"] == N
    assert [s["id"] for s in report["ledger_missing"]["samples"]] == [ids[(C, 24, 0)]]
    assert report["unsupported"]["by_reason"] == {"condition_not_met": 1, "no_score": 2}
    assert op.cli("verify", "--db", url, "--run-id", "nope", "--json", tmp_path / "nope.json") == 2
