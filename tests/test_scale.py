"""Synthetic data at production scale (testbed.scale, testbed.bulkload, `sr-backfill synth`).

Small builds: SQLite with 4,000 scores (shape, files, spread, reproducibility, refusal, the command) and
MariaDB with 50,000 scores through LOAD DATA (schema.py tables) and 20,000 on the production DDL
(tests/sql/production.sql: its own indexes are dropped for the load and come back the same).
Times are unix seconds.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa

from cluster.schema import AP_OFFSET, RELAX_OFFSET, SCORE_ID_OFFSETS, SCORE_TABLES
from jobs import cli
from testbed.demo import FIRST_SCORE_TIME, LAST_SCORE_TIME
from testbed.errors import TargetNotEmpty
from testbed.scale import TABLE_SHARES, build_scaled_database
from tests.scenario import load_production_schema

MAPS = Path(__file__).resolve().parents[1] / "data" / "maps"
NF, EZ, HD, HR, SD, DT, RX, HT, NC, FL, SO, AP, PF = 1, 2, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 8192, 16384
COMBOS = {  # the common mod combinations (RX/AP and key mods masked off)
    "NM": 0, "HD": HD, "HR": HR, "DT": DT, "HDDT": HD | DT, "HDHR": HD | HR, "NC": NC | DT, "EZ": EZ, "HT": HT,
    "FL": FL, "NF": NF, "SO": SO, "SD": SD, "PF": PF | SD,
}
SMALL = {"scores": 4000, "maps": 160, "users": 250, "seed": 11}


def build(tmp: Path, **kwargs):
    tmp.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{tmp / 'synth.db'}"
    options = {**SMALL, **kwargs}
    return build_scaled_database(url, tmp / "osu", MAPS, **options), url, tmp / "osu"


def read_tables(url: str) -> dict[str, list[dict]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return {
                name: [dict(row) for row in conn.exec_driver_sql(f"SELECT * FROM {name} ORDER BY 1, 2").mappings()]
                for name in (*SCORE_TABLES, "beatmaps", "users", "user_stats", "less_achievements")
            }
    finally:
        engine.dispose()


def file_md5s(osu_dir: Path) -> dict[str, str]:
    return {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in sorted(osu_dir.glob("*.osu"))}


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """(ScaleBuild, url, osu_dir, rows of every table) of the default SQLite build."""
    result, url, osu_dir = build(tmp_path_factory.mktemp("synth"))
    return result, url, osu_dir, read_tables(url)


def check_shape(result, data, total):
    """The production shape, on any backend."""
    counts = {name: len(data[name]) for name in SCORE_TABLES}
    assert sum(counts.values()) == total == sum(result.rows[name] for name in SCORE_TABLES)
    for name in ("scores", "scores_relax"):
        assert counts[name] / total == pytest.approx(TABLE_SHARES[name], abs=0.03), counts
    assert 0 < counts["scores_ap"] / total < 0.005
    # production's id offsets: relax from 500,000,000, autopilot above 2^62 (not exact in a float64)
    ids = {name: sorted(r["id"] for r in data[name]) for name in SCORE_TABLES}
    assert all(ids[name][0] == SCORE_ID_OFFSETS[name] for name in SCORE_TABLES), {n: v[0] for n, v in ids.items()}
    assert ids["scores"][-1] < RELAX_OFFSET and ids["scores_relax"][-1] < AP_OFFSET and AP_OFFSET > 2**62

    # modes: all four in `scores` with osu! dominant; relax mania lives in `scores`
    modes = {m: sum(1 for r in data["scores"] if r["play_mode"] == m) for m in range(4)}
    assert all(modes.values()) and modes[0] > 0.5 * counts["scores"]
    assert {r["play_mode"] for r in data["scores"] if r["mods"] & RX} == {3}
    assert {r["play_mode"] for r in data["scores_relax"]} == {0, 1, 2}
    assert all(r["mods"] & RX for r in data["scores_relax"])
    assert all(r["play_mode"] == 0 and r["mods"] & AP for r in data["scores_ap"])
    relax_osu = sum(1 for r in data["scores_relax"] if r["play_mode"] == 0)
    assert relax_osu > 0.8 * counts["scores_relax"]

    # completed: every value; exactly one best pass per (user, beatmap, play_mode, relax bit)
    rows = [r for name in SCORE_TABLES for r in data[name]]
    completed = {v: sum(1 for r in rows if r["completed"] == v) for v in range(4)}
    assert all(completed.values()), completed
    assert 0.1 < completed[1] / total < 0.45
    for name in SCORE_TABLES:
        groups: dict[tuple, list[int]] = {}
        for r in data[name]:
            if r["completed"] >= 2:
                groups.setdefault((r["userid"], r["beatmap_md5"], r["play_mode"], r["mods"] & RX), []).append(r["completed"])
        assert all(v.count(3) == 1 for v in groups.values())

    # full combos only on passes, with no miss
    assert any(r["full_combo"] for r in rows)
    assert all(r["completed"] >= 2 and r["misses_count"] == 0 for r in rows if r["full_combo"])

    # mods: every common combination, NM the most frequent in `scores`
    masked = Counter(r["mods"] & ~(RX | AP) & ((1 << 15) - 1) for r in rows)
    for label, combo in COMBOS.items():
        assert masked[combo] > 0, label
    assert Counter(r["mods"] & ((1 << 15) - 1) for r in data["scores"]).most_common(1)[0][0] == 0

    # times: 2012 to mid-2022; ids grow with time in every table
    for name in SCORE_TABLES:
        times = [r["time"] for r in sorted(data[name], key=lambda r: r["id"])]
        assert times == sorted(times)
        assert FIRST_SCORE_TIME <= times[0] and times[-1] <= LAST_SCORE_TIME

    # users: restricted ones, Zipf-like activity; maps: unranked ones, Zipf-like popularity
    assert result.restricted_users == sum(1 for u in data["users"] if u["privileges"] & 1 == 0) > 0
    plays = Counter(r["userid"] for r in rows)
    per_user = sorted((plays[u["id"]] for u in data["users"]), reverse=True)
    assert per_user[0] > 10 * per_user[len(per_user) // 2]
    assert result.unranked_maps == sum(1 for b in data["beatmaps"] if b["ranked"] < 2) > 0
    assert {b["mode"] for b in data["beatmaps"]} == {0, 1, 2, 3}
    assert sum(b["playcount"] for b in data["beatmaps"]) == total - result.unknown_md5_scores
    # the scores' checksums are unique 32-hex strings
    checksums = [r["checksum"] for r in rows]
    assert len(set(checksums)) == len(checksums) and all(len(c) == 32 for c in checksums)


def test_shape(small):
    result, _, _, data = small
    check_shape(result, data, SMALL["scores"])
    assert len(data["beatmaps"]) == SMALL["maps"] and len(data["users"]) == SMALL["users"]
    assert len(data["less_achievements"]) == 128  # today's live rows
    assert result.rows["user_stats"] == len(data["user_stats"]) > SMALL["users"] // 2


def test_every_file_matches_its_beatmaps_row(small):
    _, _, osu_dir, data = small
    files = file_md5s(osu_dir)
    assert len(files) == len(data["beatmaps"])
    assert {f"{b['beatmap_id']}.osu": b["beatmap_md5"] for b in data["beatmaps"]} == files
    assert len(set(files.values())) == len(files)


def test_star_ratings_span_1_to_11_in_every_mode(small):
    result = small[0]
    assert set(result.spread) == {0, 1, 2, 3}
    for mode, stats in result.spread.items():
        assert stats.failed == 0
        assert stats.min <= 1.5 and stats.max >= 10.0, (mode, stats)
        assert sum(1 for k in range(1, 10) if stats.bands[k]) >= 7, (mode, stats.bands)  # most bands have maps
        assert stats.steer_error < 0.1, (mode, stats)


def test_user_stats_cover_the_stored_plays(small):
    _, _, _, data = small
    stored: dict[tuple[int, int], int] = {}
    for name, base in zip(SCORE_TABLES, (0, 4, 8)):
        for r in data[name]:
            mode = 8 if name == "scores_ap" else base + r["play_mode"]
            stored[(r["userid"], mode)] = stored.get((r["userid"], mode), 0) + 1
    stats = {(s["user_id"], s["mode"]): s["playcount"] for s in data["user_stats"]}
    assert set(stats) == set(stored)
    assert all(stats[key] >= plays for key, plays in stored.items())


def test_same_seed_same_data_other_seed_other_data(small, tmp_path):
    _, _, osu_dir, data = small
    _, url, again_dir = build(tmp_path / "again")
    assert read_tables(url) == data
    assert file_md5s(again_dir) == file_md5s(osu_dir)
    _, other_url, _ = build(tmp_path / "other", seed=12)
    assert read_tables(other_url)["scores"] != data["scores"]


def test_refuses_a_database_that_holds_rows(small, tmp_path):
    _, url, _, _ = small
    with pytest.raises(TargetNotEmpty, match="already holds rows in scores"):
        build_scaled_database(url, tmp_path / "osu", MAPS, **SMALL)


def test_the_command(tmp_path, capsys, monkeypatch):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("SR_BACKFILL_DB", url)
    argv = ["synth", "--osu-dir", str(tmp_path / "osu"), "--scores", "1500", "--maps", "40", "--users", "60"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    for text in ("rows: scores", "maps per mode:", "star rating spread", "seconds:", "rows/s"):
        assert text in out
    assert cli.main(argv) == 2  # refused: the tables hold rows
    assert "already holds rows" in capsys.readouterr().err


def index_definitions(engine: sa.Engine, table: str) -> list[str]:
    with engine.connect() as conn:
        create = conn.exec_driver_sql(f"SHOW CREATE TABLE `{table}`").fetchone()[1]
    return sorted(line.strip().rstrip(",") for line in create.splitlines() if "KEY" in line)


@pytest.mark.db
def test_mariadb_load_data(fresh_mariadb_url, tmp_path):
    result = build_scaled_database(fresh_mariadb_url, tmp_path / "osu", MAPS, scores=50_000, maps=400, users=1500,
                                   seed=5, chunk_rows=20_000)
    assert result.load_method == "load data local infile"
    assert all(load.rows_per_second > 0 for load in result.loads.values())
    engine = sa.create_engine(fresh_mariadb_url)
    try:
        data = {}
        with engine.connect() as conn:
            for name in (*SCORE_TABLES, "beatmaps", "users"):
                data[name] = [dict(r) for r in conn.exec_driver_sql(f"SELECT * FROM {name}").mappings()]
            charset = conn.exec_driver_sql(
                "SELECT table_collation FROM information_schema.tables WHERE table_schema = DATABASE() "
                "AND table_name = 'scores'").scalar_one()
        check_shape(result, data, 50_000)
        assert charset.startswith("latin1")
        files = file_md5s(tmp_path / "osu")
        assert {f"{b['beatmap_id']}.osu": b["beatmap_md5"] for b in data["beatmaps"]} == files
        # the secondary indexes dropped for the load are back
        assert len(index_definitions(engine, "scores")) == 6  # primary key, checksum and 4 more (cluster.schema)
    finally:
        engine.dispose()


@pytest.mark.db
def test_mariadb_production_ddl(fresh_mariadb_url, tmp_path):
    engine = sa.create_engine(fresh_mariadb_url)
    try:
        load_production_schema(engine)
        before = {name: index_definitions(engine, name) for name in SCORE_TABLES}
        result = build_scaled_database(fresh_mariadb_url, tmp_path / "osu", MAPS, scores=20_000, maps=200, users=600,
                                       seed=6)
        assert {name: index_definitions(engine, name) for name in SCORE_TABLES} == before
        assert len(before["scores"]) == 13  # primary key, checksum and 11 more keys of the production DDL
        with engine.connect() as conn:
            counts = {name: conn.exec_driver_sql(f"SELECT COUNT(*) FROM {name}").scalar_one() for name in SCORE_TABLES}
            accuracy = conn.exec_driver_sql("SELECT MAX(accuracy), MIN(accuracy) FROM scores").one()
        assert counts == {name: result.rows[name] for name in SCORE_TABLES}
        assert sum(counts.values()) == 20_000
        assert 0 < accuracy[1] <= accuracy[0] <= 100
    finally:
        engine.dispose()
