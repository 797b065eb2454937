"""Database I/O with SQLAlchemy 2 Core: read shards as Arrow, read held achievements, write grants.

The same code runs on MySQL/MariaDB (`mysql+pymysql://...`, production) and SQLite (`sqlite:///...`,
the embedded default for the demo and quick local runs). Queries name only the columns they use.

Faults: `retrying` re-runs an operation after a lost connection, a deadlock or a lock-wait timeout
(MySQL 2003, 2006, 2013, 1205, 1213, or any error SQLAlchemy flags as a disconnect), with exponential
backoff (sr.retry.RetryPolicy, the one retry policy); each attempt opens a fresh connection (no pool).
Credentials: `mask_url` and `mask_text` (sr.masking) are the only ways a URL reaches a log, a report
or an error message.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np
import polars as pl
import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.dialects import mysql, sqlite
from sqlalchemy.pool import NullPool

try:  # Arrow-native bulk reads; the SQLAlchemy reader is the fallback
    import connectorx
except ImportError:  # pragma: no cover - it is a dependency; kept optional for odd platforms
    connectorx = None

from cluster.errors import ConfigError, DatabaseUnavailable
from sr.masking import mask_text, mask_url
from sr.retry import RetryPolicy
from cluster.schema import SCORE_TABLES, TABLES_BY_NAME, beatmaps, user_stats, users, users_achievements

HIT_COLUMNS = ("300_count", "100_count", "50_count", "katus_count", "gekis_count")

# What a shard read returns (conditions.evaluate.SCORE_SCHEMA after casting): every integer as int64.
SCORE_ARROW_SCHEMA = pa.schema(
    [("source", pa.string()), ("id", pa.int64()), ("userid", pa.int64()), ("beatmap_md5", pa.string())]
    + [(name, pa.int64()) for name in ("mods", "max_combo", "full_combo", *HIT_COLUMNS, "time", "play_mode")]
    + [(name, pa.int64()) for name in ("completed", "misses_count", "score", "beatmap_id", "ranked", "privileges")]
)
# What a table scan reads (the score table's own columns; cluster.db.join_lookups adds the rest).
SCAN_ARROW_SCHEMA = pa.schema(list(SCORE_ARROW_SCHEMA)[:17])
BEATMAP_LOOKUP_SCHEMA = pa.schema([("beatmap_md5", pa.string()), ("beatmap_id", pa.int64()), ("ranked", pa.int64())])
USER_LOOKUP_SCHEMA = pa.schema([("id", pa.int64()), ("privileges", pa.int64())])
HELD_ARROW_SCHEMA = pa.schema([("user_id", pa.int64()), ("achievement_id", pa.int64()), ("mode", pa.int64())])
# user_stats of a shard's users joined to users.privileges (null: no users row).
STATS_ARROW_SCHEMA = pa.schema(
    [("user_id", pa.int64()), ("mode", pa.int64()), ("playcount", pa.int64()), ("total_hits", pa.int64()),
     ("privileges", pa.int64())]
)
GRANT_COLUMNS = ("user_id", "achievement_id", "mode", "created_at")

T = TypeVar("T")
_LOG = logging.getLogger(__name__)

# Credentials: sr.masking is the one masker; the cluster layer reaches it as db.mask_url / db.mask_text.


class KeptConnection:
    """A connection kept from one operation to the next (batches of a write, chunks of a rollback), closed
    after any error so that a retry (`retrying`) starts on a fresh one.

    Opening a connection costs ~20-30 ms here (PyMySQL builds a TLS context for every connection), a
    quarter of a 1,000-row write batch. `use()` yields the connection; `close()` ends it.
    """

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.conn: sa.Connection | None = None

    @contextmanager
    def use(self) -> Iterator[sa.Connection]:
        conn, self.conn = self.conn or self.engine.connect(), None
        try:
            yield conn
        except BaseException:
            conn.close()
            raise
        self.conn = conn

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def connect(url: str) -> sa.Engine:
    """An engine for `url` without a connection pool (each stage and worker opens its own).

    PyMySQL gets positional parameters (paramstyle "format"): its executemany escapes a row's values from
    a tuple instead of a dict, which cut a write batch's client CPU by about a seventh (docs/SCALING.md,
    batch-time breakdown). Raises ConfigError (message masked) for a malformed URL or an unknown driver.
    """
    try:
        options = {"paramstyle": "format"} if sa.make_url(url).drivername == "mysql+pymysql" else {}
        return sa.create_engine(url, poolclass=NullPool, **options)
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ValueError) as exc:
        raise ConfigError(f"bad database URL {mask_url(url)}: {mask_text(str(exc), url)}") from None


# ------------------------------------------------------------------------------------------------
# retries
# ------------------------------------------------------------------------------------------------

RETRYABLE_MYSQL_ERRORS = {
    2003: "cannot connect",
    2006: "server has gone away",
    2013: "lost connection during query",
    1205: "lock wait timeout",
    1213: "deadlock",
}
"""MySQL/MariaDB error codes worth another try (DOMAIN.md §7: retries with backoff)."""

DEFAULT_RETRY = RetryPolicy()


@dataclass(slots=True)
class RetryLog:
    """Retries made: `counts` by MySQL error code (0 when the driver gave none) and up to `keep`
    `samples` {operation, code, error} with credentials masked."""

    keep: int = 10
    counts: Counter = field(default_factory=Counter)
    samples: list[dict] = field(default_factory=list)

    def record(self, operation: str, code: int | None, message: str) -> None:
        self.counts[code or 0] += 1
        if len(self.samples) < self.keep:
            self.samples.append({"operation": operation, "code": code or 0, "error": message[:300]})

    def merge(self, other: RetryLog) -> None:
        """Add another log's counts and samples (up to `keep`)."""
        self.counts.update(other.counts)
        self.samples.extend(other.samples[: max(0, self.keep - len(self.samples))])


def error_code(exc: BaseException) -> int | None:
    """The MySQL error code of a driver error (wrapped by SQLAlchemy or not), else None."""
    orig = getattr(exc, "orig", None) or exc
    args = getattr(orig, "args", ())
    return args[0] if args and isinstance(args[0], int) else None


def is_retryable(exc: BaseException) -> bool:
    """True for a lost or refused connection, a deadlock or a lock-wait timeout."""
    if not isinstance(exc, sa.exc.DBAPIError):
        return False
    return bool(exc.connection_invalidated) or error_code(exc) in RETRYABLE_MYSQL_ERRORS


def retrying(
    operation: Callable[[], T],
    what: str,
    policy: RetryPolicy = DEFAULT_RETRY,
    log: RetryLog | None = None,
    url: str | None = None,
) -> T:
    """Call `operation()` until it succeeds, retrying retryable database errors (`is_retryable`) with
    the backoff of `policy` (sr.retry, on tenacity).

    `operation` must be safe to repeat: it opens its own connection (or uses a KeptConnection, which a
    failure closes) and commits (or not) as a whole. `what` names it in the log and errors; every
    failed try is recorded in `log` (masked with `url`). Non-retryable errors propagate unchanged.
    Raises DatabaseUnavailable (from the last error, message masked) when the tries run out.
    """

    def note(exc: BaseException, attempt: int, seconds: float) -> None:
        if log is not None:
            log.record(what, error_code(exc), mask_text(str(getattr(exc, "orig", exc)), url))

    try:
        return policy.retrying(is_retryable, before_sleep=note)(operation)
    except sa.exc.DBAPIError as exc:
        if not is_retryable(exc):
            raise
        message = mask_text(str(getattr(exc, "orig", exc)), url)
        if log is not None:
            log.record(what, error_code(exc), message)
        raise DatabaseUnavailable(what, error_code(exc), policy.attempts, message) from exc


@dataclass(frozen=True)
class Database:
    """A database as one process of a run uses it: its `url` (shown only as `masked`), an `engine`
    without a connection pool (`connect`), the retry `policy` of its operations and the `log` of the
    retries they needed. `retrying(what, operation)` runs an operation under that policy, recording
    into that log; `dispose()` closes the engine. Raises ConfigError (masked) for a bad URL."""

    url: str
    policy: RetryPolicy = DEFAULT_RETRY
    log: RetryLog = field(default_factory=RetryLog)
    engine: sa.Engine = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "engine", connect(self.url))

    @property
    def masked(self) -> str:
        """The URL with its password hidden (sr.masking.mask_url)."""
        return mask_url(self.url)

    @property
    def dialect(self) -> str:
        """The SQLAlchemy dialect name: "mysql" (MySQL/MariaDB) or "sqlite"."""
        return self.engine.dialect.name

    def retrying(self, what: str, operation: Callable[[], T]) -> T:
        """`operation()` under this database's retry policy (cluster.db.retrying): retried after a lost
        connection, a deadlock or a lock-wait timeout; raises DatabaseUnavailable when the tries run
        out. `what` names it in the log and in errors."""
        return retrying(operation, what, self.policy, self.log, self.url)

    def mask(self, text: str) -> str:
        """`text` with this database's password masked wherever it appears."""
        return mask_text(text, self.url)

    def dispose(self) -> None:
        self.engine.dispose()


# ------------------------------------------------------------------------------------------------
# reads
# ------------------------------------------------------------------------------------------------


def create_tables(engine: sa.Engine, metadata: sa.MetaData) -> None:
    """Create the tables of `metadata` that are missing (idempotent; safe when two processes race: a
    "table exists" error (MySQL 1050) from the other process's CREATE is answered by checking again)."""
    try:
        metadata.create_all(engine, checkfirst=True)
    except sa.exc.OperationalError as exc:
        if error_code(exc) != 1050:  # another process created one first
            raise
        metadata.create_all(engine, checkfirst=True)


def table_names(engine: sa.Engine) -> set[str]:
    """Names of the tables in the database."""
    return set(sa.inspect(engine).get_table_names())


def count_rows_by_table_user(
    engine: sa.Engine, tables: Sequence[str] = SCORE_TABLES
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Rows per userid of each score table (all rows: failed plays feed the running totals): per table
    name, (userids, rows), two int64 arrays of equal length, userids ascending. The run plans its
    shards from their sum and checks each table's rows read against them (the rows in scope)."""
    counts: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    with engine.connect() as conn:
        for name in tables:
            table = TABLES_BY_NAME[name]
            query = sa.select(table.c.userid, sa.func.count()).group_by(table.c.userid).order_by(table.c.userid)
            pairs = conn.execute(query).all()
            counts[name] = (np.array([int(u) for u, _ in pairs], dtype=np.int64),
                            np.array([int(n) for _, n in pairs], dtype=np.int64))
    return counts


def rows_by_user(counts: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[int, int]:
    """Rows per userid over the tables of `counts` (`count_rows_by_table_user`)."""
    total: dict[int, int] = {}
    for userids, rows in counts.values():
        for userid, n in zip(userids.tolist(), rows.tolist()):
            total[userid] = total.get(userid, 0) + n
    return total


def count_rows_by_user(engine: sa.Engine, tables: Sequence[str] = SCORE_TABLES) -> dict[int, int]:
    """Rows per userid over the score tables (all rows: failed plays feed the running totals)."""
    return rows_by_user(count_rows_by_table_user(engine, tables))


def read_user_activity(engine: sa.Engine) -> dict[int, int]:
    """users.latest_activity (unix seconds) by users.id, for every user."""
    with engine.connect() as conn:
        return {int(uid): int(at) for uid, at in conn.execute(sa.select(users.c.id, users.c.latest_activity))}


def in_bounded(column: sa.ColumnElement, values: Sequence[int]) -> sa.ColumnElement[bool]:
    """`column IN values`, also bounded by `column BETWEEN min(values) AND max(values)` (`values` not empty).

    Past eq_range_index_dive_limit (200 values) MariaDB estimates an IN list from index statistics; for
    1,000 ua_ids it chose a full scan of srb_ledger (2.9 s a rollback chunk at 6.3M scores). The one range
    makes it read the index (about 10 ms)."""
    return column.between(min(values), max(values)) & column.in_(values)


def _users_filter(column: sa.ColumnElement, user_lo: int, user_hi: int, user_ids: Sequence[int] | None):
    condition = column.between(user_lo, user_hi)
    if user_ids is not None:
        condition = condition & column.in_([int(u) for u in user_ids])
    return condition


def _score_columns(table: sa.Table) -> list:
    """The score table's own columns of SCAN_ARROW_SCHEMA, in order."""
    return [
        sa.literal(str(table.name), sa.String).label("source"),
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
        table.c.misses_count,  # misses and score: the live accuracy, stumbler and jackpot (conditions.rules)
        table.c.score,
    ]


def _select_scores(name: str) -> sa.Select:
    """The rows of score table `name` joined to beatmaps and users, columns in SCORE_ARROW_SCHEMA order;
    beatmap_id/ranked are null when no beatmaps row has the md5 and privileges is null when the users
    row is missing."""
    table = TABLES_BY_NAME[name]
    return sa.select(*_score_columns(table), beatmaps.c.beatmap_id, beatmaps.c.ranked, users.c.privileges).select_from(
        table.outerjoin(beatmaps, beatmaps.c.beatmap_md5 == table.c.beatmap_md5).outerjoin(
            users, users.c.id == table.c.userid
        )
    )


def select_shard_scores(name: str, user_lo: int, user_hi: int, user_ids: Sequence[int] | None = None) -> sa.Select:
    """The rows of score table `name` for users in [user_lo, user_hi] (and in `user_ids` when given),
    joined to beatmaps and users (read through the userid index). Columns in SCORE_ARROW_SCHEMA order."""
    table = TABLES_BY_NAME[name]
    return _select_scores(name).where(_users_filter(table.c.userid, user_lo, user_hi, user_ids))


def select_range_rows(name: str, id_lo: int, id_hi: int) -> sa.Select:
    """The rows of score table `name` with id_lo <= id <= id_hi, not joined (SCAN_ARROW_SCHEMA): a
    range of the primary key, read in clustered-index order. Joined to beatmaps and users by the
    reader (`join_lookups`): the server-side join costs ~9x the read (measured on MariaDB: 1.0M
    rows/s without, 110k rows/s with)."""
    table = TABLES_BY_NAME[name]
    return sa.select(*_score_columns(table)).where(table.c.id.between(id_lo, id_hi))


def id_bounds(engine: sa.Engine, tables: Sequence[str] = SCORE_TABLES) -> dict[str, tuple[int, int, int]]:
    """(lowest id, highest id, rows) of each score table; (0, -1, 0) for an empty one."""
    bounds = {}
    with engine.connect() as conn:
        for name in tables:
            table = TABLES_BY_NAME[name]
            lo, hi, rows = conn.execute(sa.select(sa.func.min(table.c.id), sa.func.max(table.c.id), sa.func.count())).one()
            bounds[name] = (0, -1, 0) if not rows else (int(lo), int(hi), int(rows))
    return bounds


def _batches(result: sa.CursorResult, schema: pa.Schema, batch_rows: int) -> Iterator[pa.RecordBatch]:
    for rows in result.partitions(batch_rows):
        columns = list(zip(*rows))
        yield pa.RecordBatch.from_arrays(
            [pa.array(column, type=field.type) for column, field in zip(columns, schema)], schema=schema
        )


READER_ENV = "SR_BACKFILL_READER"  # "sqlalchemy" forces the row-streaming reader

# MySQL URL options (PyMySQL's, as SQLAlchemy passes them) and what ConnectorX does with them. ConnectorX
# 0.4 hands its URL to the Rust `mysql` crate (25.x), which takes no TLS settings from a URL (it would
# connect in plain text), always talks utf8mb4, and rejects options it does not know; so the options are
# checked here and never silently dropped.
CONNECTORX_CHARSETS = ("utf8mb4", "utf8", "utf8mb3")  # what its utf8mb4 connection returns alike
CONNECTORX_INERT_OPTIONS = ("local_infile", "connect_timeout", "read_timeout", "write_timeout", "program_name")
"""Options that change neither what a SELECT returns nor how the connection is secured: ignored."""


@dataclass(frozen=True, slots=True)
class ConnectorxSource:
    """How `read_arrow` reads from an engine: `url` for ConnectorX (None: the SQLAlchemy reader), and
    `refused`, why ConnectorX cannot honour the engine's URL (None when it can, or when the SQLAlchemy
    reader is chosen on purpose: SR_BACKFILL_READER=sqlalchemy, an in-memory SQLite database). The
    reason names options, never their values or credentials."""

    url: str | None = field(repr=False)  # holds the password
    refused: str | None = None


def connectorx_source(engine: sa.Engine) -> ConnectorxSource:
    """Whether ConnectorX can read from `engine` exactly as its SQLAlchemy connections would.

    MySQL/MariaDB: refused for TLS options (`ssl_*`), a charset other than utf8mb4/utf8, and any option
    it cannot apply (e.g. `init_command`); CONNECTORX_INERT_OPTIONS are ignored. SQLite: a file database.
    """
    if os.environ.get(READER_ENV) == "sqlalchemy":
        return ConnectorxSource(None)
    url = engine.url
    backend = url.get_backend_name()
    if backend not in ("mysql", "mariadb", "sqlite"):
        return ConnectorxSource(None)
    if backend == "sqlite" and (not url.database or url.database == ":memory:"):
        return ConnectorxSource(None)
    if connectorx is None:
        return ConnectorxSource(None, "ConnectorX is not installed")
    if backend == "sqlite":
        return ConnectorxSource(f"sqlite://{Path(url.database).resolve()}")
    tls, other, charset = [], [], None
    for key, value in url.query.items():
        value = value[-1] if isinstance(value, tuple) else value
        if key.startswith("ssl"):
            tls.append(key)
        elif key == "charset":
            charset = None if str(value).lower() in CONNECTORX_CHARSETS else str(value)
        elif key not in CONNECTORX_INERT_OPTIONS:
            other.append(key)
    reasons = []
    if tls:
        reasons.append(f"TLS options ({', '.join(sorted(tls))}): its MySQL driver takes no TLS settings from a URL "
                       "and would connect without TLS")
    if charset:
        reasons.append(f"charset {charset}: its MySQL driver always uses utf8mb4")
    if other:
        reasons.append(f"options it cannot apply ({', '.join(sorted(other))})")
    if reasons:
        return ConnectorxSource(None, "ConnectorX refused: " + "; ".join(reasons))
    return ConnectorxSource(url.set(drivername="mysql", query={}).render_as_string(hide_password=False))


@dataclass(slots=True)
class ReadLog:
    """The readers that produced `read_arrow`'s tables: `readers` counts tables by reader ("connectorx",
    "sqlalchemy"); `fallbacks` counts the reads ConnectorX should have served but did not, by reason
    (refused for the URL, or failed: the error's type), with up to `keep` `samples` {reason, detail}
    (credentials masked). Merged from every task into a run's report."""

    keep: int = 10
    readers: Counter = field(default_factory=Counter)
    fallbacks: Counter = field(default_factory=Counter)
    samples: list[dict] = field(default_factory=list)

    def fallback(self, reason: str, detail: str = "") -> None:
        self.fallbacks[reason] += 1
        if len(self.samples) < self.keep:
            self.samples.append({"reason": reason, "detail": detail[:300]})

    def merge(self, other: ReadLog) -> None:
        """Add another log's counts and samples (up to `keep`)."""
        self.readers.update(other.readers)
        self.fallbacks.update(other.fallbacks)
        self.samples.extend(other.samples[: max(0, self.keep - len(self.samples))])

    def to_dict(self) -> dict:
        return {"connectorx": self.readers["connectorx"], "sqlalchemy": self.readers["sqlalchemy"],
                "fallbacks": dict(sorted(self.fallbacks.items())), "samples": list(self.samples)}


_REFUSALS_LOGGED: set[str] = set()


def _connectorx_url(engine: sa.Engine) -> str | None:
    """The engine's URL as ConnectorX wants it, or None where ConnectorX is not used (`connectorx_source`)."""
    return connectorx_source(engine).url


def read_arrow(
    engine: sa.Engine, query: sa.Select, schema: pa.Schema, batch_rows: int = 50_000, reads: ReadLog | None = None
) -> pa.Table:
    """Run a SELECT and return its rows as an Arrow table of `schema` (columns in query order).

    Through ConnectorX where it serves the dialect and can honour the URL (`connectorx_source`):
    Arrow-native, measured ~5x faster than streaming rows through PyMySQL. Otherwise, or if ConnectorX
    fails, SQLAlchemy streams the rows in batches of `batch_rows`; its errors are SQLAlchemy's
    (cluster.db.retrying classifies them). Every read is counted in `reads` by the reader that produced
    the table, and every fallback by its reason; a failure is logged (warning) each time, a refusal once
    per process and reason.
    """
    source = connectorx_source(engine)
    if source.url is not None:
        sql = str(query.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True}))
        try:
            table = connectorx.read_sql(source.url, sql, return_type="arrow")
        except Exception as exc:  # noqa: BLE001 - any ConnectorX failure: logged, counted, then the reader below
            reason = f"ConnectorX failed: {type(exc).__name__}"
            detail = mask_text(str(exc), engine.url)
            _LOG.warning("%s (%s); reading with SQLAlchemy", reason, detail[:300])
            if reads is not None:
                reads.fallback(reason, detail)
        else:
            if reads is not None:
                reads.readers["connectorx"] += 1
            return table.rename_columns(schema.names).cast(schema)
    elif source.refused is not None:
        if source.refused not in _REFUSALS_LOGGED:
            _REFUSALS_LOGGED.add(source.refused)
            _LOG.warning("%s; reading with SQLAlchemy", source.refused)
        if reads is not None:
            reads.fallback(source.refused)
    with engine.connect() as conn:
        result = conn.execution_options(stream_results=True).execute(query)
        table = pa.Table.from_batches(list(_batches(result, schema, batch_rows)), schema=schema)
    if reads is not None:
        reads.readers["sqlalchemy"] += 1
    return table


def stream_batches(engine: sa.Engine, query: sa.Select, schema: pa.Schema, batch_rows: int = 50_000) -> Iterator[pa.Table]:
    """The rows of a SELECT as Arrow tables of `schema`, at most `batch_rows` rows each, streamed through a
    server-side cursor (a result of any size, one batch in memory at a time)."""
    with engine.connect() as conn:
        result = conn.execution_options(stream_results=True, max_row_buffer=batch_rows).execute(query)
        for batch in _batches(result, schema, batch_rows):
            yield pa.Table.from_batches([batch], schema=schema)


def read_shard_scores(
    engine: sa.Engine,
    user_lo: int,
    user_hi: int,
    tables: Sequence[str] = SCORE_TABLES,
    batch_rows: int = 50_000,
    user_ids: Sequence[int] | None = None,
    reads: ReadLog | None = None,
) -> tuple[pa.Table, dict[str, int]]:
    """All rows of the given score tables for users in [user_lo, user_hi] (and in `user_ids` when
    given), as Arrow (`read_arrow`: ConnectorX, else streamed batches; counted in `reads`).

    Returns (table in SCORE_ARROW_SCHEMA, rows read per table name).
    """
    parts = [read_arrow(engine, select_shard_scores(name, user_lo, user_hi, user_ids), SCORE_ARROW_SCHEMA, batch_rows,
                        reads)
             for name in tables]
    rows_read = {name: part.num_rows for name, part in zip(tables, parts)}
    return pa.concat_tables(parts) if parts else SCORE_ARROW_SCHEMA.empty_table(), rows_read


def read_range_rows(
    engine: sa.Engine, name: str, id_lo: int, id_hi: int, batch_rows: int = 50_000, reads: ReadLog | None = None
) -> pa.Table:
    """The rows of score table `name` with id_lo <= id <= id_hi (`select_range_rows`), as Arrow in
    SCAN_ARROW_SCHEMA (`read_arrow`: ConnectorX, else streamed batches; counted in `reads`)."""
    return read_arrow(engine, select_range_rows(name, id_lo, id_hi), SCAN_ARROW_SCHEMA, batch_rows, reads)


def read_lookups(engine: sa.Engine, reads: ReadLog | None = None) -> tuple[pa.Table, pa.Table]:
    """The tables a scan joins its rows to: beatmaps (BEATMAP_LOOKUP_SCHEMA: beatmap_md5, beatmap_id,
    ranked) and users (USER_LOOKUP_SCHEMA: id, privileges), whole (counted in `reads`)."""
    return (
        read_arrow(engine, sa.select(beatmaps.c.beatmap_md5, beatmaps.c.beatmap_id, beatmaps.c.ranked),
                   BEATMAP_LOOKUP_SCHEMA, reads=reads),
        read_arrow(engine, sa.select(users.c.id, users.c.privileges), USER_LOOKUP_SCHEMA, reads=reads),
    )


def join_lookups(rows: pa.Table, beatmap_rows: pa.Table, user_rows: pa.Table, dialect: str) -> pa.Table:
    """Scanned rows (SCAN_ARROW_SCHEMA) joined to beatmaps and users as `select_shard_scores` joins
    them: SCORE_ARROW_SCHEMA, beatmap_id/ranked null when no beatmaps row has the md5, privileges
    null when the users row is missing.

    `dialect`: the database's SQLAlchemy dialect name (`engine.dialect.name`). On MySQL/MariaDB md5s
    match as its latin1 collation matches them (letter case and trailing spaces ignored;
    beatmaps.beatmap_md5 is unique under that collation); SQLite compares them as stored.
    """
    case_insensitive = dialect in ("mysql", "mariadb")
    def md5_key(column: str) -> pl.Expr:
        md5 = pl.col(column)
        return (md5.str.to_lowercase().str.strip_chars_end(" ") if case_insensitive else md5).alias("_md5")

    maps = pl.from_arrow(beatmap_rows).select(md5_key("beatmap_md5"), "beatmap_id", "ranked")
    people = pl.from_arrow(user_rows).rename({"id": "userid"})
    joined = (
        pl.from_arrow(rows)
        .with_columns(md5_key("beatmap_md5"))
        .join(maps, on="_md5", how="left", maintain_order="left")
        .join(people, on="userid", how="left", maintain_order="left")
    )
    return joined.select(SCORE_ARROW_SCHEMA.names).to_arrow().cast(SCORE_ARROW_SCHEMA)


def _arrow(rows: Sequence[tuple], schema: pa.Schema) -> pa.Table:
    columns = list(zip(*rows)) or [() for _ in schema]
    return pa.Table.from_arrays([pa.array(column, type=f.type) for column, f in zip(columns, schema)], schema=schema)


def read_held(engine: sa.Engine, user_lo: int, user_hi: int, user_ids: Sequence[int] | None = None) -> pa.Table:
    """users_achievements (user_id, achievement_id, mode) of users in [user_lo, user_hi] (and in
    `user_ids` when given), as Arrow (HELD_ARROW_SCHEMA)."""
    table = users_achievements
    query = sa.select(table.c.user_id, table.c.achievement_id, table.c.mode).where(
        _users_filter(table.c.user_id, user_lo, user_hi, user_ids)
    )
    with engine.connect() as conn:
        return _arrow(conn.execute(query).all(), HELD_ARROW_SCHEMA)


def read_user_stats(
    engine: sa.Engine, user_lo: int, user_hi: int, user_ids: Sequence[int] | None = None
) -> pa.Table:
    """user_stats (user_id, mode = full mode, playcount, total_hits: current totals) of users in
    [user_lo, user_hi] (and in `user_ids` when given), with users.privileges (null: no users row),
    as Arrow (STATS_ARROW_SCHEMA)."""
    query = (
        sa.select(user_stats.c.user_id, user_stats.c.mode, user_stats.c.playcount, user_stats.c.total_hits,
                  users.c.privileges)
        .select_from(user_stats.outerjoin(users, users.c.id == user_stats.c.user_id))
        .where(_users_filter(user_stats.c.user_id, user_lo, user_hi, user_ids))
    )
    with engine.connect() as conn:
        return _arrow(conn.execute(query).all(), STATS_ARROW_SCHEMA)


def insert_ignore(engine: sa.Engine | sa.Connection, table: sa.Table) -> sa.Insert:
    """INSERT IGNORE (MySQL/MariaDB) or INSERT ... ON CONFLICT DO NOTHING (SQLite) into `table`.

    Raises ValueError on another dialect.
    """
    if engine.dialect.name in ("mysql", "mariadb"):
        return mysql.insert(table).prefix_with("IGNORE")
    if engine.dialect.name == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing()
    raise ValueError(f"unsupported database dialect {engine.dialect.name!r} (MySQL/MariaDB or SQLite)")
