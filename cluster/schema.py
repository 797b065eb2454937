"""SQLAlchemy Core tables for the live Akatsuki schema (DOMAIN.md §2).

The job reads and writes production tables by their exact column names. These definitions carry every
production column so that the demo and the tests can create production-shaped databases (on MySQL the
tables are latin1, InnoDB, as in production); the job's own queries name only the columns they use,
so extra columns in a real database are ignored.

Tables:
    scores, scores_relax, scores_ap   one row per submitted play (failed plays included)
    beatmaps                          one row per beatmap_id holding the current beatmap_md5
    users                             privileges bit 1 = public (unrestricted)
    users_achievements                the grants: (user_id, achievement_id, mode = full mode, created_at)
    less_achievements                 the achievement rows the live server matches by `file`
"""

from __future__ import annotations

from sqlalchemy import (
    DDL,
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    event,
)

MYSQL_TABLE_ARGS = {"mysql_engine": "InnoDB", "mysql_charset": "latin1"}

metadata = MetaData()

SCORE_TABLES = ("scores", "scores_relax", "scores_ap")

RELAX_OFFSET = 500_000_000
AP_OFFSET = 6_148_914_691_236_517_204
SCORE_ID_OFFSETS = {"scores": 1, "scores_relax": RELAX_OFFSET, "scores_ap": AP_OFFSET}
"""The first id of each score table: production ids are disjoint per table (score-service
`app/constants/mode.py`: RELAX_OFFSET, AP_OFFSET). Autopilot ids lie above 2^62, beyond the integers a
float64 holds exactly (2^53): an id must never pass through a float. Every table created from these
definitions starts its AUTO_INCREMENT there (MySQL/MariaDB and SQLite alike), so the demo, the tests and
synth all run with production's ids."""


def _score_table(name: str, id_type) -> Table:
    table = _score_table_columns(name, id_type)
    first = SCORE_ID_OFFSETS[name]
    if first > 1:
        # SQLite: AUTOINCREMENT tables take max(rowid, sqlite_sequence.seq) + 1 as the next id
        event.listen(table, "after_create", DDL(
            f"INSERT INTO sqlite_sequence (name, seq) VALUES ('{name}', {first - 1})").execute_if(dialect="sqlite"))
    return table


def _score_table_columns(name: str, id_type) -> Table:
    return Table(
        name,
        metadata,
        Column("id", id_type().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
        Column("beatmap_md5", String(32), nullable=False, server_default=""),
        Column("userid", Integer, nullable=False),
        Column("score", Integer, nullable=False, server_default="0"),
        Column("max_combo", Integer, nullable=False, server_default="0"),
        Column("full_combo", Boolean, nullable=False, server_default="0"),
        Column("mods", Integer, nullable=False, server_default="0"),
        Column("300_count", SmallInteger, nullable=False, server_default="0"),
        Column("100_count", SmallInteger, nullable=False, server_default="0"),
        Column("50_count", SmallInteger, nullable=False, server_default="0"),
        Column("katus_count", SmallInteger, nullable=False, server_default="0"),
        Column("gekis_count", SmallInteger, nullable=False, server_default="0"),
        Column("misses_count", SmallInteger, nullable=False, server_default="0"),
        Column("time", Integer, nullable=False, server_default="0"),
        Column("play_mode", SmallInteger, nullable=False, server_default="0"),
        Column("completed", SmallInteger, nullable=False, server_default="0"),
        Column("accuracy", Float, nullable=False, server_default="0"),
        Column("pp", Float, nullable=False, server_default="0"),
        Column("checksum", String(32), nullable=True, unique=True),
        Column("patcher", SmallInteger, nullable=True, server_default="0"),
        Column("pinned", SmallInteger, nullable=False, server_default="0"),
        Index(f"{name}_userid", "userid"),
        Index(f"{name}_beatmap_md5", "beatmap_md5"),
        Index(f"{name}_userid_play_mode", "userid", "play_mode"),
        Index(f"{name}_userid_play_mode_completed", "userid", "play_mode", "completed"),
        mysql_auto_increment=str(SCORE_ID_OFFSETS[name]),
        sqlite_autoincrement=True,
        **MYSQL_TABLE_ARGS,
    )


scores = _score_table("scores", Integer)
scores_relax = _score_table("scores_relax", Integer)
scores_ap = _score_table("scores_ap", BigInteger)

beatmaps = Table(
    "beatmaps",
    metadata,
    Column("beatmap_id", Integer, primary_key=True, autoincrement=False),
    Column("beatmapset_id", Integer, nullable=False, server_default="0"),
    Column("beatmap_md5", String(32), nullable=False, unique=True),
    Column("song_name", String(256), nullable=False, server_default=""),
    Column("file_name", String(260), nullable=False, server_default=""),
    Column("ar", Float, nullable=False, server_default="0"),
    Column("od", Float, nullable=False, server_default="0"),
    Column("mode", Integer, nullable=False, server_default="0"),
    Column("max_combo", Integer, nullable=False, server_default="0"),
    Column("hit_length", Integer, nullable=False, server_default="0"),
    Column("bpm", Integer, nullable=False, server_default="0"),
    Column("ranked", SmallInteger, nullable=False, server_default="0"),
    Column("latest_update", Integer, nullable=False, server_default="0"),
    Column("ranked_status_freezed", Boolean, nullable=False, server_default="0"),
    Column("playcount", Integer, nullable=False, server_default="0"),
    Column("passcount", Integer, nullable=False, server_default="0"),
    Column("rankedby", Integer, nullable=True),
    Column("rating", Float, nullable=False, server_default="0"),
    Column("bancho_ranked_status", SmallInteger, nullable=True),
    Column("count_circles", Integer, nullable=True),
    Column("count_spinners", Integer, nullable=True),
    Column("count_sliders", Integer, nullable=True),
    **MYSQL_TABLE_ARGS,
)

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("username", String(19), nullable=False),
    Column("username_safe", String(19), nullable=False, unique=True),
    Column("password_md5", String(64), nullable=False, server_default=""),
    Column("email", String(254), nullable=False, unique=True),
    Column("register_datetime", Integer, nullable=False, server_default="0"),
    Column("latest_activity", Integer, nullable=False, server_default="0"),
    Column("silence_end", Integer, nullable=False, server_default="0"),
    Column("silence_reason", String(512), nullable=False, server_default=""),
    Column("privileges", Integer, nullable=False),
    Column("donor_expire", Integer, nullable=False, server_default="0"),
    Column("frozen", Integer, nullable=False, server_default="0"),
    Column("notes", Text, nullable=True),
    Column("ban_datetime", Integer, nullable=False, server_default="0"),
    Column("country", String(2), nullable=False, server_default="XX"),
    **MYSQL_TABLE_ARGS,
)

users_achievements = Table(
    "users_achievements",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_id", Integer, nullable=False),
    Column("achievement_id", Integer, nullable=False),
    Column("mode", Integer, nullable=False),
    Column("created_at", Integer, nullable=False),
    UniqueConstraint("user_id", "achievement_id", "mode", name="user_achievement_mode"),
    Index("users_achievements_user_id", "user_id"),
    Index("users_achievements_achievement_id", "achievement_id"),
    **MYSQL_TABLE_ARGS,
)

less_achievements = Table(
    "less_achievements",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("file", String(128), nullable=False),
    Column("name", String(128), nullable=False),
    Column("desc", String(128), nullable=False),
    Column("hidden", Boolean, nullable=False, server_default="0"),
    Column("mode", SmallInteger, nullable=True),
    **MYSQL_TABLE_ARGS,
)

user_stats = Table(
    "user_stats",
    metadata,
    Column("user_id", Integer, primary_key=True, autoincrement=False),
    Column("mode", SmallInteger, primary_key=True, autoincrement=False),
    Column("playcount", Integer, nullable=False, server_default="0"),
    Column("total_hits", Integer, nullable=False, server_default="0"),
    Column("pp", Integer, nullable=False, server_default="0"),
    Column("max_combo", Integer, nullable=False, server_default="0"),
    **MYSQL_TABLE_ARGS,
)

TABLES_BY_NAME = {t.name: t for t in metadata.sorted_tables}


def create_production_schema(engine) -> None:
    """Create every table above (if missing) on `engine` (SQLite or MySQL/MariaDB)."""
    metadata.create_all(engine)
