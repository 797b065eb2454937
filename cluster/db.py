"""Database I/O with SQLAlchemy 2 Core: read shards as Arrow, read held achievements, write grants.

The same code runs on MySQL/MariaDB (`mysql+pymysql://...`, production) and SQLite (`sqlite:///...`,
the embedded default for the demo and quick local runs). Queries name only the columns they use.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.dialects import mysql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from cluster.schema import SCORE_TABLES, TABLES_BY_NAME, beatmaps, users, users_achievements

HIT_COLUMNS = ("300_count", "100_count", "50_count", "katus_count", "gekis_count")

# What a shard read returns (conditions.evaluate.SCORE_SCHEMA after casting): every integer as int64.
SCORE_ARROW_SCHEMA = pa.schema(
    [("source", pa.string()), ("id", pa.int64()), ("userid", pa.int64()), ("beatmap_md5", pa.string())]
    + [(name, pa.int64()) for name in ("mods", "max_combo", "full_combo", *HIT_COLUMNS, "time", "play_mode")]
    + [(name, pa.int64()) for name in ("completed", "beatmap_id", "ranked", "privileges")]
)
HELD_ARROW_SCHEMA = pa.schema([("user_id", pa.int64()), ("achievement_id", pa.int64()), ("mode", pa.int64())])
GRANT_COLUMNS = ("user_id", "achievement_id", "mode", "created_at")


def mask_url(url: str | sa.URL) -> str:
    """The database URL with its password hidden, for logs and reports."""
    return make_url(str(url)).render_as_string(hide_password=True)


def connect(url: str) -> sa.Engine:
    """An engine for `url` without a connection pool (each stage and worker opens its own).

    Raises sqlalchemy.exc.ArgumentError for a malformed URL.
    """
    return sa.create_engine(url, poolclass=NullPool)


def count_rows_by_user(engine: sa.Engine, tables: Sequence[str] = SCORE_TABLES) -> dict[int, int]:
    """Rows per userid over the score tables (all rows: failed plays feed the running totals)."""
    counts: dict[int, int] = {}
    with engine.connect() as conn:
        for name in tables:
            table = TABLES_BY_NAME[name]
            query = sa.select(table.c.userid, sa.func.count()).group_by(table.c.userid)
            for userid, count in conn.execute(query):
                counts[int(userid)] = counts.get(int(userid), 0) + int(count)
    return counts


def select_shard_scores(name: str, user_lo: int, user_hi: int) -> sa.Select:
    """The rows of score table `name` for users in [user_lo, user_hi], joined to beatmaps and users.

    Columns in SCORE_ARROW_SCHEMA order; beatmap_id/ranked are null when no beatmaps row has the md5
    and privileges is null when the users row is missing.
    """
    table = TABLES_BY_NAME[name]
    return (
        sa.select(
            sa.literal(name).label("source"),
            table.c.id,
            table.c.userid,
            table.c.beatmap_md5,
            table.c.mods,
            table.c.max_combo,
            sa.type_coerce(table.c.full_combo, sa.Integer).label("full_combo"),  # 0/1 as stored
            *(table.c[column] for column in HIT_COLUMNS),
            table.c.time,
            table.c.play_mode,
            table.c.completed,
            beatmaps.c.beatmap_id,
            beatmaps.c.ranked,
            users.c.privileges,
        )
        .select_from(
            table.outerjoin(beatmaps, beatmaps.c.beatmap_md5 == table.c.beatmap_md5).outerjoin(
                users, users.c.id == table.c.userid
            )
        )
        .where(table.c.userid.between(user_lo, user_hi))
    )


def _batches(result: sa.CursorResult, schema: pa.Schema, batch_rows: int) -> Iterator[pa.RecordBatch]:
    for rows in result.partitions(batch_rows):
        columns = list(zip(*rows))
        yield pa.RecordBatch.from_arrays(
            [pa.array(column, type=field.type) for column, field in zip(columns, schema)], schema=schema
        )


def read_shard_scores(
    engine: sa.Engine,
    user_lo: int,
    user_hi: int,
    tables: Sequence[str] = SCORE_TABLES,
    batch_rows: int = 50_000,
) -> tuple[pa.Table, dict[str, int]]:
    """All rows of the given score tables for users in [user_lo, user_hi], streamed as Arrow batches.

    Returns (table in SCORE_ARROW_SCHEMA, rows read per table name).
    """
    batches: list[pa.RecordBatch] = []
    rows_read: dict[str, int] = {}
    with engine.connect() as conn:
        for name in tables:
            result = conn.execution_options(stream_results=True).execute(select_shard_scores(name, user_lo, user_hi))
            before = sum(batch.num_rows for batch in batches)
            batches.extend(_batches(result, SCORE_ARROW_SCHEMA, batch_rows))
            rows_read[name] = sum(batch.num_rows for batch in batches) - before
    return pa.Table.from_batches(batches, schema=SCORE_ARROW_SCHEMA), rows_read


def read_held(engine: sa.Engine, user_lo: int, user_hi: int) -> pa.Table:
    """users_achievements (user_id, achievement_id, mode) of users in [user_lo, user_hi], as Arrow."""
    table = users_achievements
    query = sa.select(table.c.user_id, table.c.achievement_id, table.c.mode).where(
        table.c.user_id.between(user_lo, user_hi)
    )
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    columns = list(zip(*rows)) or [(), (), ()]
    return pa.Table.from_arrays(
        [pa.array(column, type=pa.int64()) for column in columns], schema=HELD_ARROW_SCHEMA
    )


def insert_ignore(engine: sa.Engine, table: sa.Table) -> sa.Insert:
    """INSERT IGNORE (MySQL/MariaDB) or INSERT ... ON CONFLICT DO NOTHING (SQLite) into `table`.

    Raises ValueError on another dialect.
    """
    if engine.dialect.name in ("mysql", "mariadb"):
        return mysql.insert(table).prefix_with("IGNORE")
    if engine.dialect.name == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing()
    raise ValueError(f"unsupported database dialect {engine.dialect.name!r} (MySQL/MariaDB or SQLite)")


def write_grants(engine: sa.Engine, grants: pa.Table | Iterable[dict], batch_rows: int = 1000) -> int:
    """Insert grants into users_achievements in batches of `batch_rows`, ignoring rows already there.

    `grants` has columns user_id, achievement_id, mode (full mode), created_at (unix seconds); other
    columns are ignored. Each batch commits on its own. Returns the number of rows inserted.
    """
    if isinstance(grants, pa.Table):
        rows = grants.select(list(GRANT_COLUMNS)).to_pylist()
    else:
        rows = [{column: row[column] for column in GRANT_COLUMNS} for row in grants]
    statement = insert_ignore(engine, users_achievements)
    inserted = 0
    for start in range(0, len(rows), batch_rows):
        with engine.begin() as conn:
            inserted += conn.execute(statement, rows[start : start + batch_rows]).rowcount
    return inserted
