"""The demo data set (testbed.demo): shape, special cases, grinders, reproducibility.

One default-size build (300 users, about 40,000 scores) is shared by the shape tests; smaller builds
(20-40 users, about 12,000-15,000 scores: the grinders dominate) check seeds, refusal and MariaDB.
All times are unix seconds.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
import sqlalchemy as sa

from cluster.schema import AP_OFFSET, RELAX_OFFSET, SCORE_ID_OFFSETS, SCORE_TABLES
from testbed.demo import (
    DAY,
    FIRST_SCORE_TIME,
    FIRST_SYNTHETIC_BEATMAP_ID,
    LAST_SCORE_TIME,
    REFERENCE_TIME,
    DemoBuild,
    build_demo_database,
)
from testbed.errors import DemoDatabaseNotEmpty

REPO = Path(__file__).resolve().parents[1]
MAPS = REPO / "data" / "maps"
SERVER_URL = os.environ.get("SRB_TEST_MYSQL", "mysql+pymysql://root@127.0.0.1:3306")

NF, EZ, HD, HR, SD, DT, RX, HT, NC, FL, SO, AP, PF = 1, 2, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 8192, 16384
HIT_THRESHOLDS = {1: 30_000, 2: 20_000, 3: 40_000}  # achievements 77, 80, 83 (taiko, catch, mania)
HIT_COLUMNS = ("300_count", "100_count", "50_count", "katus_count", "gekis_count", "misses_count")


def full_mode(table: str, play_mode: int) -> int:
    return {"scores": play_mode, "scores_relax": play_mode + 4}.get(table, 8)


def counted_hits(row) -> int:
    """stats.total_hits increment of one play (DOMAIN.md §4)."""
    hits = row["300_count"] + row["100_count"] + (row["50_count"] if row["play_mode"] != 2 else 0)
    if row["play_mode"] in (1, 3):
        hits += row["gekis_count"] + row["katus_count"]
    return hits


def build(tmp: Path, **kwargs) -> tuple[DemoBuild, sa.Engine, Path]:
    tmp.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{tmp / 'demo.db'}"
    result = build_demo_database(url, tmp / "osu", MAPS, **kwargs)
    return result, sa.create_engine(url), tmp / "osu"


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """(DemoBuild, engine, osu_dir, data) for the default build; data holds every table as dict rows."""
    result, engine, osu_dir = build(tmp_path_factory.mktemp("demo"))
    data = {}
    with engine.connect() as conn:
        for name in (*SCORE_TABLES, "beatmaps", "users", "users_achievements", "less_achievements", "user_stats"):
            order = " ORDER BY time, id" if name in SCORE_TABLES else ""
            data[name] = [dict(row) for row in conn.exec_driver_sql(f"SELECT * FROM {name}{order}").mappings()]
    yield result, engine, osu_dir, data
    engine.dispose()


def all_scores(data):
    for table in SCORE_TABLES:
        for row in data[table]:
            yield table, row


def test_counts_match_the_database(demo):
    result, _, osu_dir, data = demo
    assert result.users == len(data["users"]) == 300
    assert result.restricted_users == sum(1 for u in data["users"] if u["privileges"] & 1 == 0)
    assert result.beatmaps == len(data["beatmaps"])
    assert result.beatmap_files == len(list(osu_dir.glob("*.osu"))) == result.beatmaps - 1  # missing one
    for table in SCORE_TABLES:
        assert getattr(result, table) == len(data[table])
    assert result.existing_achievements == len(data["users_achievements"])
    assert result.legacy_mode7_achievements == sum(1 for r in data["users_achievements"] if r["mode"] == 7) > 0
    assert result.less_achievements == len(data["less_achievements"]) == 128  # today's live rows
    assert result.user_stats == len(data["user_stats"]) == 300 * 8
    assert 20_000 <= result.total_scores <= 80_000
    assert 0.6 <= result.scores_relax / result.total_scores <= 0.75  # about 2/3 as in production
    assert 0 < result.scores_ap <= 0.05 * result.total_scores
    # production's id offsets: relax from 500,000,000, autopilot above 2^62 (not exact in a float64)
    ids = {name: sorted(r["id"] for r in data[name]) for name in SCORE_TABLES}
    assert all(ids[name][0] == SCORE_ID_OFFSETS[name] for name in SCORE_TABLES), {n: v[0] for n, v in ids.items()}
    assert ids["scores"][-1] < RELAX_OFFSET and ids["scores_relax"][-1] < AP_OFFSET and AP_OFFSET > 2**62
    assert result.reference_time == REFERENCE_TIME
    with pytest.raises(AttributeError):
        result.users = 1  # frozen


def test_score_tables_modes_and_mod_bits(demo):
    _, _, _, data = demo
    vanilla = data["scores"]
    assert {r["play_mode"] for r in vanilla} == {0, 1, 2, 3}
    assert sum(1 for r in vanilla if r["mods"] & RX == 0) > 0.8 * len(vanilla)  # mostly vanilla
    relax_mania = [r for r in vanilla if r["play_mode"] == 3 and r["mods"] & RX]
    assert relax_mania and all(r["play_mode"] == 3 for r in vanilla if r["mods"] & RX)
    assert any(r["completed"] >= 2 for r in relax_mania)
    assert {r["play_mode"] for r in data["scores_relax"]} == {0, 1, 2}
    assert all(r["mods"] & RX and not r["mods"] & AP for r in data["scores_relax"])
    assert {r["play_mode"] for r in data["scores_ap"]} == {0}
    assert all(r["mods"] & AP and not r["mods"] & RX for r in data["scores_ap"])


def test_completed_values_combo_and_hits(demo):
    _, _, _, data = demo
    combo_of = {b["beatmap_md5"]: b["max_combo"] for b in data["beatmaps"]}
    for table in ("scores", "scores_relax"):
        assert {r["completed"] for r in data[table]} == {0, 1, 2, 3}
    rows = [row for _, row in all_scores(data)]
    failed = sum(1 for r in rows if r["completed"] == 1)
    assert 0.1 * len(rows) < failed < 0.5 * len(rows)
    passes = [r for r in rows if r["completed"] >= 2]
    assert 0.05 * len(passes) < sum(1 for r in passes if r["full_combo"]) < 0.8 * len(passes)
    assert not any(r["full_combo"] for r in rows if r["completed"] < 2)
    assert all(r["misses_count"] == 0 for r in passes if r["full_combo"])
    for r in rows:
        assert 1 <= r["max_combo"] <= combo_of.get(r["beatmap_md5"], 10**6)
        assert all(r[c] >= 0 for c in HIT_COLUMNS)
        assert FIRST_SCORE_TIME <= r["time"] <= LAST_SCORE_TIME
        assert 0.0 <= r["accuracy"] <= 100.0
        assert 0 <= r["score"] < 2**31 and r["pp"] >= 0
        if r["play_mode"] == 0:
            assert r["gekis_count"] <= r["300_count"] and r["katus_count"] <= r["100_count"]
        if r["play_mode"] == 1:
            assert r["50_count"] == 0
    assert sum(1 for r in passes if r["pp"] > 0) > 0.5 * len(passes)
    checksums = [r["checksum"] for r in rows]
    assert len(set(checksums)) == len(checksums)
    assert all(len(c) == 32 and int(c, 16) >= 0 for c in checksums)
    # ids grow with time, as in production
    for table in SCORE_TABLES:
        ordered = sorted(data[table], key=lambda r: r["id"])
        assert all(a["time"] <= b["time"] for a, b in zip(ordered, ordered[1:]))


def test_one_best_pass_per_user_map_and_mode(demo):
    _, _, _, data = demo
    for table in SCORE_TABLES:
        best: dict[tuple, int] = {}
        for r in data[table]:
            if r["completed"] == 3:
                key = (r["userid"], r["beatmap_md5"], r["play_mode"], r["mods"] & RX)
                best[key] = best.get(key, 0) + 1
        assert best and set(best.values()) == {1}
        for r in data[table]:
            if r["completed"] == 2:
                assert (r["userid"], r["beatmap_md5"], r["play_mode"], r["mods"] & RX) in best


def test_common_mods_are_present_with_plausible_frequencies(demo):
    _, _, _, data = demo
    vanilla_osu = [r["mods"] for r in data["scores"] if r["play_mode"] == 0]
    for combo in (0, HD, HR, DT, HD | DT, HD | HR, NC | DT, EZ, HT, FL, NF, SO, SD, PF | SD):
        assert combo in vanilla_osu, combo
    assert vanilla_osu.count(0) > vanilla_osu.count(HD) > vanilla_osu.count(FL)
    for _, r in all_scores(data):
        if r["mods"] & NC:
            assert r["mods"] & DT
        if r["mods"] & PF:
            assert r["mods"] & SD
        assert not (r["mods"] & EZ and r["mods"] & HR) and not (r["mods"] & DT and r["mods"] & HT)
    for bit in (NF, EZ, HD, HR, SD, DT, HT, NC, FL, SO, PF):  # every mod-intro achievement reachable
        assert any(r["mods"] & bit and r["completed"] >= 2 for _, r in all_scores(data)), bit


def test_converts_and_impossible_converts(demo):
    result, _, _, data = demo
    map_mode = {b["beatmap_md5"]: b["mode"] for b in data["beatmaps"]}
    converts = {r["play_mode"] for _, r in all_scores(data) if map_mode.get(r["beatmap_md5"]) == 0}
    assert converts == {0, 1, 2, 3}
    eligible = {b["beatmap_md5"] for b in data["beatmaps"] if b["ranked"] >= 2}
    public = {u["id"] for u in data["users"] if u["privileges"] & 1}
    impossible = [
        r for _, r in all_scores(data)
        if map_mode.get(r["beatmap_md5"], 0) != 0 and r["play_mode"] != map_mode[r["beatmap_md5"]]
    ]
    assert len(impossible) == result.impossible_convert_scores >= 3
    assert {map_mode[r["beatmap_md5"]] for r in impossible} == {1, 2, 3}
    assert all(r["completed"] >= 2 and r["userid"] in public and r["beatmap_md5"] in eligible for r in impossible)


def test_files_and_special_maps(demo):
    result, _, osu_dir, data = demo
    rows = {b["beatmap_id"]: b for b in data["beatmaps"]}
    specials = {result.missing_beatmap_id, result.corrupt_beatmap_id, result.stale_beatmap_id}
    assert len(specials) == 3 and specials <= set(rows)
    assert not (osu_dir / f"{result.missing_beatmap_id}.osu").exists()
    corrupt = (osu_dir / f"{result.corrupt_beatmap_id}.osu").read_bytes()
    assert hashlib.md5(corrupt).hexdigest() == rows[result.corrupt_beatmap_id]["beatmap_md5"]
    assert b"osu file format v" not in corrupt[:64] and len(corrupt) > 100
    stale = (osu_dir / f"{result.stale_beatmap_id}.osu").read_bytes()
    assert stale.lstrip(b"\xef\xbb\xbf").startswith(b"osu file format v")
    assert hashlib.md5(stale).hexdigest() != rows[result.stale_beatmap_id]["beatmap_md5"]
    for beatmap_id, row in rows.items():
        if beatmap_id in (result.missing_beatmap_id, result.stale_beatmap_id):
            continue
        content = (osu_dir / f"{beatmap_id}.osu").read_bytes()
        assert hashlib.md5(content).hexdigest() == row["beatmap_md5"], beatmap_id
        assert 1 <= row["max_combo"] and row["mode"] in (0, 1, 2, 3) and row["ranked"] in range(6)
    # unknown md5s: no beatmaps row; the first is the stale map's old version (the file on disk)
    known = {b["beatmap_md5"] for b in data["beatmaps"]}
    assert result.unknown_beatmap_md5s and not set(result.unknown_beatmap_md5s) & known
    assert result.unknown_beatmap_md5s[0] == hashlib.md5(stale).hexdigest()
    # every bad input gets passed scores by public users (on an eligible map where there is a row)
    public = {u["id"] for u in data["users"] if u["privileges"] & 1}
    targets = [rows[i]["beatmap_md5"] for i in sorted(specials)] + list(result.unknown_beatmap_md5s)
    for md5 in targets:
        passes = [r for _, r in all_scores(data) if r["beatmap_md5"] == md5 and r["completed"] >= 2]
        assert any(r["userid"] in public for r in passes), md5
    assert all(rows[i]["ranked"] >= 2 for i in specials)


def test_every_shipped_map_is_copied_with_its_header_mode(demo):
    _, _, osu_dir, data = demo
    by_md5 = {b["beatmap_md5"]: b for b in data["beatmaps"]}
    shipped = sorted(MAPS.rglob("*.osu"))
    assert len(shipped) == 44
    for path in shipped:
        content = path.read_bytes()
        row = by_md5[hashlib.md5(content).hexdigest()]
        assert (osu_dir / f"{row['beatmap_id']}.osu").read_bytes() == content
        header = [line for line in content.decode("utf-8", "replace").splitlines() if line.startswith("Mode:")]
        assert row["mode"] == (int(header[0].split(":")[1]) if header else 0)
        if path.stem.isdigit():
            assert row["beatmap_id"] == int(path.stem)
        else:
            assert row["beatmap_id"] >= FIRST_SYNTHETIC_BEATMAP_ID
    assert {b["mode"] for b in data["beatmaps"]} == {0, 1, 2, 3}


def test_ranked_statuses(demo):
    _, _, _, data = demo
    statuses = [b["ranked"] for b in data["beatmaps"]]
    assert set(statuses) == {0, 1, 2, 3, 4, 5}
    assert statuses.count(2) > len(statuses) / 2
    natives = [b for b in data["beatmaps"] if b["mode"] != 0]
    assert all(b["ranked"] >= 2 for b in natives)


def test_users(demo):
    _, _, _, data = demo
    users = data["users"]
    restricted = [u for u in users if u["privileges"] & 1 == 0]
    assert {u["privileges"] for u in restricted} <= {0, 2} and 0.03 * len(users) <= len(restricted) <= 0.08 * len(users)
    assert all(u["privileges"] in (3, 7) for u in users if u["privileges"] & 1)
    eligible = {b["beatmap_md5"] for b in data["beatmaps"] if b["ranked"] >= 2}
    hidden = {u["id"] for u in restricted}
    assert any(
        r["userid"] in hidden and r["completed"] >= 2 and r["beatmap_md5"] in eligible for _, r in all_scores(data)
    )
    assert len({u["username_safe"] for u in users}) == len({u["email"] for u in users}) == len(users)
    last_score: dict[int, int] = {}
    first_score: dict[int, int] = {}
    for _, r in all_scores(data):
        last_score[r["userid"]] = max(last_score.get(r["userid"], 0), r["time"])
        first_score[r["userid"]] = min(first_score.get(r["userid"], 2**31), r["time"])
    ages = []
    for u in users:
        assert u["latest_activity"] >= last_score.get(u["id"], 0)
        assert u["register_datetime"] <= first_score.get(u["id"], 2**31)
        assert u["latest_activity"] <= REFERENCE_TIME
        ages.append(REFERENCE_TIME - u["latest_activity"])
    assert any(age <= 30 * DAY for age in ages)
    assert any(30 * DAY < age <= 365 * DAY for age in ages)
    assert any(age > 3 * 365 * DAY for age in ages)
    # Zipf-like activity: the busiest users play far more than the median one
    per_user: dict[int, int] = {}
    for _, r in all_scores(data):
        per_user[r["userid"]] = per_user.get(r["userid"], 0) + 1
    plays = sorted(per_user.values(), reverse=True)
    assert plays[0] >= 5000 and plays[len(plays) // 2] < 100


def test_grinders_cross_thresholds_before_an_eligible_pass(demo):
    result, _, _, data = demo
    eligible = {b["beatmap_md5"] for b in data["beatmaps"] if b["ranked"] >= 2}
    public = {u["id"] for u in data["users"] if u["privileges"] & 1}
    rows = sorted(((r["time"], t, r["id"], r) for t, r in all_scores(data)), key=lambda item: item[:3])
    totals: dict[tuple[int, int], list[int]] = {}
    granted: set[tuple[int, int, str]] = set()
    for _, table, _, r in rows:
        mode = full_mode(table, r["play_mode"])
        total = totals.setdefault((r["userid"], mode), [0, 0])
        total[0] += 1
        total[1] += counted_hits(r)
        if r["completed"] >= 2 and r["beatmap_md5"] in eligible and r["userid"] in public:
            vn = mode % 4
            if vn == 0 and total[0] >= 5000:
                granted.add((r["userid"], mode, "plays"))
            if vn in HIT_THRESHOLDS and total[1] >= HIT_THRESHOLDS[vn]:
                granted.add((r["userid"], mode, "hits"))
    vanilla_grinder, relax_grinder = result.osu_playcount_grinders
    assert (vanilla_grinder, 0, "plays") in granted and (relax_grinder, 4, "plays") in granted
    assert (result.taiko_hits_grinder, 1, "hits") in granted
    assert (result.catch_hits_grinder, 2, "hits") in granted
    assert (result.mania_hits_grinder, 3, "hits") in granted
    # user_stats are current totals: at least the stored plays' totals
    stats = {(s["user_id"], s["mode"]): s for s in data["user_stats"]}
    assert {mode for _, mode in stats} == {0, 1, 2, 3, 4, 5, 6, 8}
    for key, (plays, hits) in totals.items():
        assert stats[key]["playcount"] >= plays and stats[key]["total_hits"] >= hits


def test_achievement_tables(demo):
    _, _, _, data = demo
    less = {r["id"]: r for r in data["less_achievements"]}
    assert sorted(less) == list(range(1, 129))  # as live today (mysql-database 0022, 0024, 0026, 0027)
    assert less[1]["file"] == "osu-skill-pass-1" and less[1]["mode"] == 0
    assert less[25]["mode"] == 1 and less[41]["mode"] == 2 and less[57]["mode"] == 3
    assert less[77]["mode"] == 1 and less[86]["mode"] is None
    assert (less[98]["file"], less[98]["mode"]) == ("fruits-hits-20000000", 2)
    assert (less[120]["file"], less[128]["mode"]) == ("all-secret-consolation_prize", 3)
    assert [i for i, r in less.items() if r["hidden"]] == list(range(116, 129))
    held = data["users_achievements"]
    keys = [(r["user_id"], r["achievement_id"], r["mode"]) for r in held]
    assert len(keys) == len(set(keys))
    assert {r["mode"] for r in held} >= {7}
    legacy = {(u, a) for u, a, m in keys if m == 7}
    assert any((u, a) in legacy for u, a, m in keys if m == 8)  # same achievement in mode 7 and 8
    users = {u["id"]: u for u in data["users"]}
    for r in held:
        assert r["achievement_id"] in less and r["mode"] in (0, 1, 2, 3, 4, 5, 6, 7, 8)
        assert LAST_SCORE_TIME < r["created_at"] <= users[r["user_id"]]["latest_activity"]
        assert users[r["user_id"]]["privileges"] & 1


def test_a_public_pass_on_a_ranked_map_scores_one_digit_repeated(demo):
    """The demo always holds a jackpot (achievement 123): a pass scoring 7,777,777."""
    _, _, _, data = demo
    public = {u["id"] for u in data["users"] if u["privileges"] & 1}
    ranked = {b["beatmap_md5"] for b in data["beatmaps"] if b["ranked"] >= 2}
    jackpots = [r for r in data["scores"] if r["score"] == 7_777_777]
    assert len(jackpots) == 1
    assert jackpots[0]["completed"] >= 2 and jackpots[0]["userid"] in public and jackpots[0]["beatmap_md5"] in ranked


def test_same_seed_same_data_other_seed_other_data(tmp_path):
    first, first_engine, first_dir = build(tmp_path / "a", users=30, seed=7)
    second, second_engine, second_dir = build(tmp_path / "b", users=30, seed=7)
    other, other_engine, _ = build(tmp_path / "c", users=30, seed=8)
    assert first == second and first != other

    def dump(engine):
        with engine.connect() as conn:
            return {
                name: conn.exec_driver_sql(f"SELECT * FROM {name} ORDER BY 1, 2").all()
                for name in (*SCORE_TABLES, "beatmaps", "users", "users_achievements", "user_stats")
            }

    def checksums(engine):
        with engine.connect() as conn:
            return {c for t in SCORE_TABLES for (c,) in conn.exec_driver_sql(f"SELECT checksum FROM {t}")}

    assert dump(first_engine) == dump(second_engine)
    assert sorted(p.name for p in first_dir.iterdir()) == sorted(p.name for p in second_dir.iterdir())
    assert checksums(first_engine) == checksums(second_engine)
    assert not checksums(first_engine) & checksums(other_engine)
    for engine in (first_engine, second_engine, other_engine):
        engine.dispose()


def test_refuses_a_database_with_rows(tmp_path):
    build(tmp_path, users=20)[1].dispose()
    with pytest.raises(DemoDatabaseNotEmpty, match="built fresh"):
        build_demo_database(f"sqlite:///{tmp_path / 'demo.db'}", tmp_path / "osu2", MAPS, users=20)
    with pytest.raises(ValueError, match="at least"):
        build_demo_database(f"sqlite:///{tmp_path / 'other.db'}", tmp_path / "osu3", MAPS, users=5)


def test_ids_of_non_numeric_and_duplicate_stems(tmp_path):
    maps = tmp_path / "maps"
    (maps / "a").mkdir(parents=True)
    (maps / "b").mkdir()
    base = (MAPS / "rosu-pp" / "2785319.osu").read_bytes()
    (maps / "a" / "123.osu").write_bytes(base)
    (maps / "b" / "123.osu").write_bytes(base + b"\r\n")  # same stem twice: both synthetic
    (maps / "b" / "456.osu").write_bytes((MAPS / "rosu-pp" / "1028484.osu").read_bytes())
    (maps / "named.osu").write_bytes((MAPS / "ppy-osu" / "osu" / "zero-length-sliders.osu").read_bytes())
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    result = build_demo_database(url, tmp_path / "osu", maps, users=20)
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = dict(conn.exec_driver_sql("SELECT beatmap_id, mode FROM beatmaps").all())
    engine.dispose()
    # sorted relative paths: a/123, b/123, b/456, named -> 9000001, 9000002, 456, 9000003
    assert {9_000_001, 9_000_002, 9_000_003, 456} <= set(rows) and 123 not in rows
    assert rows[456] == 1 and rows[9_000_003] == 0  # zero-length-sliders has no Mode: header
    assert result.beatmaps == 4 + 3
    with pytest.raises(ValueError, match="same content"):
        (maps / "dup.osu").write_bytes(base)
        build_demo_database(f"sqlite:///{tmp_path / 'dup.db'}", tmp_path / "osu4", maps, users=20)


@pytest.mark.db
def test_mariadb_build(fresh_mariadb_url, tmp_path):
    url = fresh_mariadb_url
    result = build_demo_database(url, tmp_path / "osu", MAPS, users=20, seed=3)
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        for table in SCORE_TABLES:
            assert conn.exec_driver_sql(f"SELECT COUNT(*) FROM {table}").scalar_one() == getattr(result, table)
        assert conn.exec_driver_sql("SELECT COUNT(*) FROM users").scalar_one() == 20
        assert conn.exec_driver_sql("SELECT COUNT(*) FROM users_achievements WHERE mode = 7").scalar_one() > 0
        md5 = conn.exec_driver_sql(
            f"SELECT beatmap_md5 FROM beatmaps WHERE beatmap_id = {result.corrupt_beatmap_id}"
        ).scalar_one()
        relax_mania = conn.exec_driver_sql("SELECT COUNT(*) FROM scores WHERE play_mode = 3 AND mods & 128").scalar_one()
    engine.dispose()
    assert md5 == hashlib.md5((tmp_path / "osu" / f"{result.corrupt_beatmap_id}.osu").read_bytes()).hexdigest()
    assert relax_mania > 0
    with pytest.raises(DemoDatabaseNotEmpty):
        build_demo_database(url, tmp_path / "osu2", MAPS, users=20)
