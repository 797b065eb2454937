"""Today's live catalogue on MariaDB: tier-4 hit counts (97-99), stumbler (122) and jackpot (123) granted
from planted plays with their earliest unlock; 120 only counted; an older database without 97+ warns and
runs, and fails only when --achievements asks for the ids it lacks.

The planted plays sit next to the acceptance scenario (tests/scenario.py: its maps, .osu store and
users) under users 3001-3041; every run is scoped to them with --user-id. Ids follow production's
offsets (cluster.schema): scores from 300001, scores_relax above RELAX_OFFSET, scores_ap above AP_OFFSET.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

import polars as pl
import pytest
import sqlalchemy as sa

from cluster.schema import AP_OFFSET, RELAX_OFFSET
from tests import operations as op
from tests import scenario as sc

T1 = sc.T0 + 10_000_000  # 2017-11: every planted play is later than the scenario's
# planted ids sit above the scenario's own (tests/scenario.py: RX_ID + 201.., AP_ID, AP_ID + 1)
RELAX_FIRST, AP_FIRST = RELAX_OFFSET + 100_000, AP_OFFSET + 100_000
NEW_IDS = (97, 98, 99, 120, 122, 123)
RX, AP = 128, 8192
BIG = (32767, 32767, 32767, 32767, 32767, 0)  # n300, n100, n50, katu, geki, miss: smallint maxima


@dataclass(frozen=True)
class Play:
    table: str
    id: int
    user: int
    map: str  # key of sc.MAP_SPECS
    play_mode: int
    completed: int
    time: int
    counts: tuple[int, int, int, int, int, int] = (100, 0, 0, 0, 0, 0)  # n300, n100, n50, katu, geki, miss
    full_combo: bool = False
    score: int = 54_321
    mods: int = 0
    accuracy: float = 99.0  # the stored column: never what the live rules read


USERS = {**{u: 3 for u in (3001, 3002, 3003, 3010, 3011, 3012, 3013, 3014, 3015, 3016, 3017, 3018, 3020, 3021, 3022,
                            3023, 3030, 3032, 3040, 3041)}, 3031: 2}  # id -> privileges (3031 restricted)


def hit_grinders() -> tuple[list[Play], set[tuple]]:
    """Taiko 30M, catch 20M and mania 40M crossings; returns the plays and the expected tier-4 grants."""
    plays, expected = [], set()
    # taiko: 300+100(+50)+katu+geki count, 131,068 a play (no 50s in taiko); play 228 passes at
    # 29,883,504, 229 crosses.
    taiko = (32767, 32767, 0, 32767, 32767, 0)
    for k in range(1, 232):
        plays.append(Play("scores", 300_000 + k, 3001, "taiko_1028484", 1, 1 if k <= 227 else 2, T1 + 10 * k, taiko))
    expected.add((3001, 97, 1, T1 + 2290, 300_229))
    # relax taiko (full mode 5) passes earlier in time: they must not add to mode 1's totals
    for k in range(1, 51):
        plays.append(Play("scores_relax", RELAX_FIRST + k, 3001, "taiko_1028484", 1, 2, T1 + 10 * k - 5, taiko,
                          mods=RX))
    # catch: only 300s and 100s count (no 50s, katus or gekis), 65,534 a play; 305 passes at
    # 19,987,870, 306 crosses (counting 50s would cross at 204, and katus too at 153).
    for k in range(1, 308):
        plays.append(Play("scores", 301_000 + k, 3002, "catch_2118524", 2, 1 if k <= 304 else 2, T1 + 10 * k, BIG))
    expected.add((3002, 98, 2, T1 + 3060, 301_306))
    # mania: every count, 163,835 a play; the failed play 245 crosses (40,139,575), the pass 246 grants.
    for k in range(1, 248):
        plays.append(Play("scores", 302_000 + k, 3003, "mania_1638954", 3, 1 if k <= 245 else 3, T1 + 10 * k, BIG))
    expected.add((3003, 99, 3, T1 + 2460, 302_246))
    return plays, expected


def secret_plays() -> tuple[list[Play], set[tuple]]:
    """Full combos under and at 85% by the live formula, repdigit scores, and rows that must not grant."""
    t = T1 + 100_000
    osu, taiko, catch, mania = "osu_2593923", "taiko_1028484", "catch_2118524", "mania_1638954"
    under, at = (30, 10, 0, 0, 0, 0), (31, 9, 0, 0, 0, 0)  # osu!: 83.33% / exactly 85.0%
    plays = [
        # stumbler: full combo and live accuracy < 85 (the stored `accuracy` column says the opposite)
        Play("scores", 310_001, 3010, osu, 0, 3, t, at, full_combo=True, accuracy=80.0),
        Play("scores", 310_002, 3010, osu, 0, 2, t + 10, under, full_combo=True, accuracy=99.0),
        Play("scores", 310_003, 3011, osu, 0, 3, t, at, full_combo=True, accuracy=80.0),
        Play("scores", 310_004, 3012, taiko, 1, 3, t + 20, (699, 301, 0, 0, 0, 0), full_combo=True),  # 84.95
        Play("scores", 310_005, 3013, taiko, 1, 3, t + 20, (70, 30, 0, 0, 0, 0), full_combo=True),  # 85.0
        Play("scores", 310_006, 3014, mania, 3, 3, t + 30, (54, 0, 0, 46, 0, 0), full_combo=True),  # 84.67
        Play("scores", 310_007, 3015, mania, 3, 3, t + 30, (55, 0, 0, 45, 0, 0), full_combo=True),  # 85.0
        Play("scores", 310_008, 3016, catch, 2, 3, t + 40, (84, 0, 0, 16, 0, 0), full_combo=True),  # 84.0
        Play("scores_relax", RELAX_FIRST + 101, 3017, osu, 0, 3, t + 50, under, full_combo=True, mods=RX),
        Play("scores", 310_009, 3018, osu, 0, 3, t + 60, (50, 50, 0, 0, 0, 0)),  # 66.67% but no full combo
        # jackpot: a passed play whose score is one digit repeated
        Play("scores", 310_010, 3020, osu, 0, 3, t + 70, score=7_777_771),
        Play("scores", 310_011, 3020, osu, 0, 2, t + 80, score=7_777_777),
        Play("scores", 310_012, 3021, osu, 0, 3, t + 70, score=7),
        Play("scores", 310_013, 3022, osu, 0, 3, t + 70, score=7_777_771),
        Play("scores_ap", AP_FIRST + 1, 3023, osu, 0, 3, t + 90, score=2_222_222, mods=AP),
        # nothing: a failed play, a restricted user, unranked maps (ranked 0 and 1)
        Play("scores", 310_014, 3030, osu, 0, 1, t + 100, under, full_combo=True, score=7_777_777),
        Play("scores", 310_015, 3031, osu, 0, 3, t + 100, under, full_combo=True, score=7_777_777),
        Play("scores", 310_016, 3032, "r0_104973", 0, 3, t + 100, under, full_combo=True, score=7_777_777),
        Play("scores", 310_017, 3032, "r1_112643", 0, 3, t + 110, under, full_combo=True, score=8_888_888),
        # consolation prize (120): a D rank (50% 300s) scoring 150,000 would grant; 99,998 would not
        Play("scores", 310_018, 3040, osu, 0, 3, t + 120, (50, 50, 0, 0, 0, 0), score=150_000),
        Play("scores", 310_019, 3041, osu, 0, 3, t + 120, (50, 50, 0, 0, 0, 0), score=99_998),
    ]
    expected = {
        (3010, 122, 0, t + 10, 310_002),  # the earlier full combo is exactly 85%
        (3012, 122, 1, t + 20, 310_004),
        (3014, 122, 3, t + 30, 310_006),
        (3016, 122, 2, t + 40, 310_008),
        (3017, 122, 4, t + 50, RELAX_FIRST + 101),  # relax: full mode 4
        (3020, 123, 0, t + 80, 310_011),
        (3023, 123, 8, t + 90, AP_FIRST + 1),  # autopilot id beyond float64's exact integers
    }
    return plays, expected


def plant(url: str, md5s: dict[str, str]) -> set[tuple]:
    """Insert the users and plays; return the expected grants of NEW_IDS (user, id, mode, created_at, score_id)."""
    grinders, expected_hits = hit_grinders()
    secrets, expected_secret = secret_plays()
    engine = sa.create_engine(url)
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.executemany(
            "INSERT INTO users (id, username, username_safe, password_md5, email, register_datetime, latest_activity, "
            "privileges) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            [(u, f"planted{u}", f"planted{u}", "x" * 32, f"p{u}@example.invalid", T1 - 86_400, T1 + 200_000, priv)
             for u, priv in USERS.items()],
        )
        for table in ("scores", "scores_relax", "scores_ap"):
            rows = [
                (p.id, md5s[p.map], p.user, p.score, 100, int(p.full_combo), p.mods, *p.counts, p.time, p.play_mode,
                 p.completed, p.accuracy, 0.0, f"{p.id:032x}"[-32:], 0, 0)
                for p in grinders + secrets if p.table == table
            ]
            cur.executemany(
                f"INSERT INTO {table} (id, beatmap_md5, userid, score, max_combo, full_combo, mods, `300_count`, "
                "`100_count`, `50_count`, katus_count, gekis_count, misses_count, `time`, play_mode, completed, "
                "accuracy, pp, checksum, patcher, pinned) VALUES (" + ", ".join(["%s"] * 21) + ")",
                rows,
            )
        raw.commit()
    finally:
        raw.close()
        engine.dispose()
    return expected_hits | expected_secret


def user_args() -> list[str]:
    return [a for u in USERS for a in ("--user-id", str(u))]


def new_grants(path) -> set[tuple]:
    frame = pl.read_parquet(path).filter(pl.col("achievement_id").is_in(NEW_IDS))
    return set(frame.select("user_id", "achievement_id", "mode", "created_at", "score_id").iter_rows())


@pytest.mark.db
@pytest.mark.ray
def test_new_achievements_are_granted_at_their_earliest_unlock(fresh_mariadb_url, tmp_path, ray_session):
    url, osu_dir = fresh_mariadb_url, tmp_path / "osu"
    expected = plant(url, sc.setup_database(url, osu_dir))

    out = tmp_path / "dry.parquet"
    code, dry = op.run(url, osu_dir, tmp_path, "dry", "--out", out, *user_args())
    assert code == 0
    assert new_grants(out) == expected
    assert dry["left_out"] == []
    assert dry["grants"]["by_family"]["stumbler"] == 5 and dry["grants"]["by_family"]["jackpot"] == 2
    never = {item["achievement_id"]: item for item in dry["not_granted"]}
    assert sorted(never) == [*range(100, 122), *range(124, 129)]
    assert never[120]["would_grant"] == 1  # user 3040 only; 3041 scored 99,998
    assert "all-secret-consolation" in never[120]["reason"]
    assert never[105]["would_grant"] is None and "historical ranks" in never[105]["reason"]

    code, applied = op.run(url, osu_dir, tmp_path, "apply", "--apply", "--run-id", "live-catalogue", *user_args())
    assert code == 0
    rows = op.query(url, "SELECT user_id, achievement_id, mode, created_at FROM users_achievements "
                         "WHERE achievement_id IN (97, 98, 99, 120, 122, 123)")
    assert set(rows) == {g[:4] for g in expected}
    ledger = {(r["user_id"], r["achievement_id"], r["mode"], r["created_at"], r["score_id"])
              for r in op.ledger_rows(url, "live-catalogue") if r["achievement_id"] in NEW_IDS}
    assert ledger == expected  # the autopilot score id survives exactly

    report_path, png = tmp_path / "verify.json", tmp_path / "rarity.png"
    assert op.cli("verify", "--db", url, "--run-id", "live-catalogue", "--json", report_path, "--png", png) == 0
    report = json.loads(report_path.read_text())
    assert report["unsupported"]["checked"] >= len(expected) and report["unsupported"]["unsupported"] == 0
    rarity = {(r["achievement_id"], r["mode"]): r["holders"] for r in report["rarity"]}
    for user, achievement_id, mode, _, _ in expected:
        assert rarity[(achievement_id, mode)] >= 1, (achievement_id, mode)
    assert (120, 0) not in rarity  # never granted, never held


@pytest.mark.db
@pytest.mark.ray
def test_older_database_without_97_plus_warns_and_runs_unless_asked(fresh_mariadb_url, tmp_path, ray_session,
                                                                     caplog, capsys):
    url, osu_dir = fresh_mariadb_url, tmp_path / "osu"
    plant(url, sc.setup_database(url, osu_dir))
    op.execute(url, "DELETE FROM less_achievements WHERE id >= 97")  # seeded before 2026-01-16

    out = tmp_path / "old.parquet"
    with caplog.at_level(logging.WARNING, logger="sr_backfill.catalogue"):
        code, report = op.run(url, osu_dir, tmp_path, "old", "--out", out, *user_args())
    assert code == 0
    warnings = [r.getMessage() for r in caplog.records if r.name == "sr_backfill.catalogue"]
    assert len(warnings) == 1 and "97-99, 120, 122-123" in warnings[0]
    assert report["left_out"] == [97, 98, 99, 120, 122, 123]
    granted = pl.read_parquet(out)
    assert granted.height > 0 and granted.filter(pl.col("achievement_id") >= 97).height == 0
    assert (3001, 77, 1) in set(granted.select("user_id", "achievement_id", "mode").iter_rows())  # older tiers still
    never = {item["achievement_id"]: item["would_grant"] for item in report["not_granted"]}
    assert never[120] is None  # left out: not evaluated

    for asked in ("97", "secret", "stat"):
        code, _ = op.run(url, osu_dir, tmp_path, f"asked-{asked}", "--out", tmp_path / f"{asked}.parquet",
                         "--achievements", asked, *user_args())
        assert code == 2, asked
        assert "missing from less_achievements" in capsys.readouterr().err
    assert not (tmp_path / "97.parquet").exists()
