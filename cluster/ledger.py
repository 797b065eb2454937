"""The tool's own tables: runs, per-shard progress, the ledger of every row a run wrote, mode 7 backups.

The backfill writes into a live production database once; operators must be able to stop it, resume
it, undo exactly what it did and prove it right (DOMAIN.md §7). `created_at` is historical, so a
rollback cannot find a run's rows by time: each applied run records every row it inserts, in the same
transaction as the insert, in tables of its own. They are created on first use (`ensure_tables`),
never temporary files, and all carry the `srb_` prefix:

    srb_runs          one row per applied command: a backfill run, a rollback, a consolidation
    srb_shards        the stored plan and progress of a backfill run: one row per shard
    srb_run_users     the users of each shard of a scoped run (none for an unscoped run: ranges)
    srb_ledger        one row per users_achievements row a run inserted ("insert") or deleted ("delete")
    srb_mode7_backup  the legacy mode 7 rows as they were before a consolidation touched anything

Exactness: a row is in the ledger as inserted by run R iff R's INSERT created it. A write batch
runs as one multi-row INSERT IGNORE; if it inserts every row (the usual case: the run already left
out what users hold), each key's row is the run's own, and its id is read back in the same
transaction. If any row was ignored (it appeared meanwhile, e.g. from the live server), the
transaction is rolled back and the batch is redone row by row, each INSERT IGNORE reporting whether
it inserted. The ledger rows and the shard's progress counts commit with the rows, so a kill or a
lost connection leaves them consistent.

Times are unix seconds (UTC). Nothing here updates or deletes a users_achievements row.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy import BigInteger, Column, Float, Index, Integer, MetaData, String, Table, Text, UniqueConstraint
from sqlalchemy.dialects import mysql

from cluster import db
from cluster.errors import LedgerReadBack, RunLockLost, RunStateError
from cluster.governor import GovernorClient
from cluster.pauses import pause_point
from cluster.schema import users_achievements
from cluster.shards import Shard

metadata = MetaData()
_MYSQL = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"}
_ID = BigInteger().with_variant(Integer, "sqlite")  # SQLite autoincrement needs INTEGER PRIMARY KEY
_LONG_TEXT = Text().with_variant(mysql.MEDIUMTEXT(), "mysql")

RUN_COMMANDS = ("run", "rollback", "consolidate-mode7", "regrant-live")
RUN_STATUSES = ("running", "finished", "failed", "rolled_back")
SHARD_STATUSES = ("pending", "running", "done", "failed")
SHARD_STAGES = ("planned", "evaluating", "writing", "written")
LEDGER_SOURCES = ("score", "stats_now", "mode7_copy", "mode7_delete", "rollback_delete", "rollback_restore",
                  "live_regrant")
RUN_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,59}$")

runs = Table(
    "srb_runs",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("command", String(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("target_run_id", String(64), nullable=True),
    Column("started_at", BigInteger, nullable=False),
    Column("as_of", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("finished_at", BigInteger, nullable=True),
    Column("config", _LONG_TEXT, nullable=False),
    Column("summary", _LONG_TEXT, nullable=True),
    **_MYSQL,
)

shards = Table(
    "srb_shards",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("shard", Integer, primary_key=True, autoincrement=False),
    Column("user_lo", BigInteger, nullable=False),
    Column("user_hi", BigInteger, nullable=False),
    Column("users", Integer, nullable=True),
    Column("rows_planned", BigInteger, nullable=False),
    Column("status", String(16), nullable=False, server_default="pending"),
    Column("stage", String(16), nullable=False, server_default="planned"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("rows_read", BigInteger, nullable=False, server_default="0"),
    Column("eligible", BigInteger, nullable=False, server_default="0"),
    Column("grants", BigInteger, nullable=False, server_default="0"),
    Column("inserted", BigInteger, nullable=False, server_default="0"),
    Column("present", BigInteger, nullable=False, server_default="0"),
    Column("batches", Integer, nullable=False, server_default="0"),
    Column("skipped", BigInteger, nullable=False, server_default="0"),
    Column("db_retries", Integer, nullable=False, server_default="0"),
    Column("error", Text, nullable=True),
    Column("started_at", BigInteger, nullable=True),
    Column("finished_at", BigInteger, nullable=True),
    Column("updated_at", BigInteger, nullable=False),
    **_MYSQL,
)

run_users = Table(
    "srb_run_users",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("user_id", BigInteger, primary_key=True, autoincrement=False),
    Column("shard", Integer, nullable=False),
    Index("srb_run_users_shard", "run_id", "shard"),
    **_MYSQL,
)

ledger = Table(
    "srb_ledger",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("run_id", String(64), nullable=False),
    Column("action", String(8), nullable=False),
    Column("source", String(24), nullable=False),
    Column("ua_id", BigInteger, nullable=False),
    Column("user_id", BigInteger, nullable=False),
    Column("achievement_id", Integer, nullable=False),
    Column("mode", Integer, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("shard", Integer, nullable=True),
    Column("score_id", BigInteger, nullable=True),
    Column("sr", Float, nullable=True),
    Column("playcount", BigInteger, nullable=True),
    Column("total_hits", BigInteger, nullable=True),
    Column("recorded_at", BigInteger, nullable=False),
    UniqueConstraint("run_id", "action", "user_id", "achievement_id", "mode", name="srb_ledger_once"),
    Index("srb_ledger_ua_id", "ua_id"),
    **_MYSQL,
)

mode7_backup = Table(
    "srb_mode7_backup",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("ua_id", BigInteger, primary_key=True, autoincrement=False),
    Column("user_id", BigInteger, nullable=False),
    Column("achievement_id", Integer, nullable=False),
    Column("mode", Integer, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("backed_up_at", BigInteger, nullable=False),
    **_MYSQL,
)

TOOL_TABLES = tuple(t.name for t in metadata.sorted_tables)
LEDGER_ROW = ("ua_id", "user_id", "achievement_id", "mode", "created_at")


def now() -> int:
    """The current time in unix seconds."""
    return int(time.time())


def ensure_tables(engine: sa.Engine) -> None:
    """Create the srb_ tables that are missing (idempotent; safe when two processes race)."""
    db.create_tables(engine, metadata)


def has_tables(engine: sa.Engine) -> bool:
    """True if every srb_ table exists."""
    return set(TOOL_TABLES) <= db.table_names(engine)


def new_run_id(at: int | None = None) -> str:
    """A fresh run id: UTC time and 6 random hex digits, e.g. "20260116T120000Z-3fa9c1"."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(at if at is not None else now()))
    return f"{stamp}-{secrets.token_hex(3)}"


def check_run_id(run_id: str) -> str:
    """`run_id` if it is 1-60 characters of letters, digits, `.`, `_`, `-` (first a letter or digit).

    Raises RunStateError otherwise.
    """
    if not RUN_ID_PATTERN.match(run_id or ""):
        raise RunStateError(str(run_id)[:80], "a run id is 1-60 letters, digits, '.', '_' or '-'")
    return run_id


# ------------------------------------------------------------------------------------------------
# runs and shards
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One srb_runs row.

    command: one of RUN_COMMANDS; status: one of RUN_STATUSES; started_at, as_of, finished_at: unix
    seconds (`as_of` is the reference time of activity tiers and the `created_at` of stats-fallback
    grants, fixed when the run starts and kept on resume); config: the run's settings as JSON-able
    data, never credentials; summary: the last summary written, or None.
    """

    run_id: str
    command: str
    status: str
    started_at: int
    as_of: int
    config: dict
    target_run_id: str | None = None
    finished_at: int | None = None
    summary: dict | None = None


@dataclass(frozen=True, slots=True)
class ShardProgress:
    """A stored shard of a run and where it got to (status in SHARD_STATUSES, stage in SHARD_STAGES)."""

    shard: Shard
    status: str
    stage: str
    attempts: int
    inserted: int
    present: int
    error: str | None


def create_run(engine: sa.Engine, record: RunRecord, planned: Sequence[Shard] = (), lock: RunLock | None = None) -> None:
    """Store a new run and its shard plan (with each scoped shard's users) in one transaction (checked
    against the run's `lock` before it commits, when given).

    Raises RunStateError if the run id is taken, RunLockLost if `lock` is no longer held.
    """
    stamp = now()
    with engine.begin() as conn:
        if conn.execute(sa.select(runs.c.run_id).where(runs.c.run_id == record.run_id)).first():
            raise RunStateError(record.run_id, "this run id is taken (resume it with --resume, or pick another)")
        conn.execute(
            sa.insert(runs).values(
                run_id=record.run_id, command=record.command, status=record.status,
                target_run_id=record.target_run_id, started_at=record.started_at, as_of=record.as_of,
                updated_at=stamp, config=json.dumps(record.config, sort_keys=True),
            )
        )
        if planned:
            conn.execute(
                sa.insert(shards),
                [
                    {"run_id": record.run_id, "shard": s.index, "user_lo": s.user_lo, "user_hi": s.user_hi,
                     "users": s.users, "rows_planned": s.rows, "status": "pending", "stage": "planned",
                     "updated_at": stamp}
                    for s in planned
                ],
            )
        members = [
            {"run_id": record.run_id, "user_id": u, "shard": s.index} for s in planned for u in (s.user_ids or ())
        ]
        for start in range(0, len(members), 5000):
            conn.execute(sa.insert(run_users), members[start : start + 5000])
        if lock is not None:
            lock.check(conn)


def load_run(engine: sa.Engine, run_id: str) -> RunRecord | None:
    """The stored run `run_id`, or None (also when the srb_ tables do not exist)."""
    if not has_tables(engine):
        return None
    with engine.connect() as conn:
        row = conn.execute(sa.select(runs).where(runs.c.run_id == run_id)).mappings().first()
    if row is None:
        return None
    return RunRecord(
        run_id=row["run_id"], command=row["command"], status=row["status"], started_at=int(row["started_at"]),
        as_of=int(row["as_of"]), config=json.loads(row["config"]), target_run_id=row["target_run_id"],
        finished_at=row["finished_at"], summary=json.loads(row["summary"]) if row["summary"] else None,
    )


def list_runs(engine: sa.Engine) -> list[RunRecord]:
    """Every stored run, oldest first (summaries left out)."""
    if not has_tables(engine):
        return []
    with engine.connect() as conn:
        rows = conn.execute(sa.select(runs).order_by(runs.c.started_at, runs.c.run_id)).mappings().all()
    return [
        RunRecord(r["run_id"], r["command"], r["status"], int(r["started_at"]), int(r["as_of"]),
                  json.loads(r["config"]), r["target_run_id"], r["finished_at"])
        for r in rows
    ]


def update_run(
    engine: sa.Engine, run_id: str, status: str | None = None, summary: dict | None = None, lock: RunLock | None = None
) -> None:
    """Set a run's status and/or summary; a terminal status (finished, failed, rolled_back) sets finished_at.
    With the run's `lock`, the transaction commits only while the lock is held (else RunLockLost)."""
    values: dict = {"updated_at": now()}
    if status is not None:
        values["status"] = status
        if status != "running":
            values["finished_at"] = values["updated_at"]
    if summary is not None:
        values["summary"] = json.dumps(summary, sort_keys=True, default=str)
    with engine.begin() as conn:
        conn.execute(sa.update(runs).where(runs.c.run_id == run_id).values(**values))
        if lock is not None:
            lock.check(conn)


def load_shards(engine: sa.Engine, run_id: str) -> list[ShardProgress]:
    """The stored plan of a run with each shard's progress, in shard order (users of scoped shards included)."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(shards).where(shards.c.run_id == run_id).order_by(shards.c.shard)).mappings().all()
        members: dict[int, list[int]] = {}
        query = sa.select(run_users.c.shard, run_users.c.user_id).where(run_users.c.run_id == run_id)
        for shard, user_id in conn.execute(query.order_by(run_users.c.user_id)):
            members.setdefault(int(shard), []).append(int(user_id))
    out = []
    for r in rows:
        users = tuple(members.get(int(r["shard"]), ())) if r["users"] is not None else None
        shard = Shard(int(r["shard"]), int(r["user_lo"]), int(r["user_hi"]), int(r["rows_planned"]), users)
        out.append(ShardProgress(shard, r["status"], r["stage"], int(r["attempts"]), int(r["inserted"]),
                                 int(r["present"]), r["error"]))
    return out


@dataclass(frozen=True, slots=True)
class ShardUpdate:
    """Progress columns of one srb_shards row to set; a None field is left as it is.

    status: pending, running, done or failed; stage: evaluating, writing, written; error: a masked
    message (`clear_error` sets it NULL); started_at / finished_at: unix seconds; rows_read, eligible,
    grants, skipped, db_retries: the shard's counts.
    """

    status: str | None = None
    stage: str | None = None
    error: str | None = None
    clear_error: bool = False
    started_at: int | None = None
    finished_at: int | None = None
    rows_read: int | None = None
    eligible: int | None = None
    grants: int | None = None
    skipped: int | None = None
    db_retries: int | None = None

    def values(self) -> dict:
        """The columns to set (srb_shards column names)."""
        out = {name: getattr(self, name) for name in self.__slots__ if name != "clear_error"}
        out = {name: value for name, value in out.items() if value is not None}
        if self.clear_error:
            out["error"] = None
        return out


def update_shard(
    engine: sa.Engine, run_id: str, index: int, update: ShardUpdate, *, attempt: bool = False,
    lock: RunLock | LockToken | None = None,
) -> None:
    """Set the progress columns of one shard (`update`); `attempt=True` also counts one more attempt.
    With the run's `lock`, the transaction commits only while the lock is held (else RunLockLost)."""
    values = {**update.values(), "updated_at": now()}
    if attempt:
        values["attempts"] = shards.c.attempts + 1
    with engine.begin() as conn:
        conn.execute(sa.update(shards).where((shards.c.run_id == run_id) & (shards.c.shard == index)).values(**values))
        if lock is not None:
            lock.check(conn)


def run_lock_name(engine: sa.Engine, run_id: str) -> str:
    """The server-wide name of a run's lock: MySQL lock names are global to the server, so the database
    is part of it (hashed: lock names are at most 64 characters)."""
    digest = hashlib.sha1(f"{engine.url.database}\0{run_id}".encode()).hexdigest()
    return f"srb:{digest}"


class RunLock:
    """A run's lock as held by this process (`run_lock`): a MySQL/MariaDB named lock (GET_LOCK) on a
    connection of its own, kept alive, and checked by every write transaction of the run.

    The server frees a named lock when its connection ends, and it ends an idle connection after
    `wait_timeout` seconds: a thread pings the lock's connection every `interval` seconds (a quarter of
    its wait_timeout, at most a minute), asking whether it still holds the lock. `check(conn)`, called
    inside a write transaction just before it commits, raises RunLockLost unless the lock's holder is
    still this holding of it: a lock freed by a killed or timed-out connection, or taken since by another
    session, stops the run before it writes again. On SQLite (one writer at a time anyway) there is no
    lock and `check` does nothing.

    A connection id alone does not name a holding: ids start again from 1 when the server restarts, so a
    resumed run's driver can hold the lock under the id the lost one had. The same connection therefore
    also takes a second named lock, `session_name` (the run lock's name and a random suffix, never taken
    twice), and a holding is "the session that holds `session_name` holds the run lock".
    """

    def __init__(self, run_id: str, name: str | None = None, conn: sa.Connection | None = None) -> None:
        self.run_id = run_id
        self.name = name
        self.connection_id: int | None = None
        self.session_name: str | None = None
        self.interval = 60.0
        self.lost: str | None = None  # why the keep-alive found the lock gone (None: held as far as it knows)
        self._conn = conn
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _acquire(self) -> None:
        conn = self._conn
        got = conn.execute(sa.select(sa.func.get_lock(self.name, 0))).scalar()
        if got != 1:
            raise RunStateError(self.run_id, "another process is working on this run")
        self.session_name = f"{self.name}:{secrets.token_hex(8)}"  # at most 61 characters of the 64
        if conn.execute(sa.select(sa.func.get_lock(self.session_name, 0))).scalar() != 1:
            raise RunStateError(self.run_id, f"could not take the session lock {self.session_name}")
        self.connection_id, wait_timeout = conn.execute(sa.text("SELECT CONNECTION_ID(), @@SESSION.wait_timeout")).one()
        self.interval = max(0.2, min(60.0, float(wait_timeout) / 4))
        conn.rollback()  # end the read's transaction: the connection idles outside one
        self._thread = threading.Thread(target=self._keep_alive, name=f"run-lock-{self.run_id}", daemon=True)
        self._thread.start()

    def _keep_alive(self) -> None:
        query = sa.select(sa.func.is_used_lock(self.name) == sa.func.connection_id())
        while not self._stop.wait(self.interval):
            try:
                held = self._conn.execute(query).scalar()
                self._conn.rollback()
            except sa.exc.DBAPIError as exc:
                self.lost = f"its connection failed: {type(getattr(exc, 'orig', exc)).__name__} {db.error_code(exc)}"
                return
            if not held:
                self.lost = "its connection no longer holds it"
                return

    def check(self, conn: sa.Connection) -> None:
        """Raise RunLockLost unless this process still holds the run's lock (one query on `conn`, a
        connection of the same server; call it inside the write transaction, before its commit)."""
        if self.name is None:
            return
        if self.lost is not None:
            raise RunLockLost(self.run_id, self.lost)
        self.token().check(conn)

    def token(self) -> LockToken:
        """What another process of the run (a writer actor) needs to check this lock: see LockToken."""
        return LockToken(self.run_id, self.name, self.connection_id, self.session_name)

    def _release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=max(5.0, 2 * self.interval))
            if self._thread.is_alive():  # a ping hangs (a dead network): the lock ends with the process
                return
        try:
            self._conn.execute(sa.select(sa.func.release_lock(self.session_name), sa.func.release_lock(self.name)))
        except sa.exc.DBAPIError:
            pass  # the connection is gone, and the lock with it
        self._conn.close()


@dataclass(frozen=True, slots=True)
class LockToken:
    """A run's lock as its writer actors check it (picklable: no connection): the lock's `name`, the
    connection id of the driver's session that holds it (for messages) and that session's own lock,
    `session_name` (see RunLock); `name` None: SQLite, no lock. `check(conn)`, inside a write
    transaction just before its commit, raises RunLockLost unless that session still holds the run lock:
    a writer whose driver died, or whose run was taken over by a resumed process (also one whose
    session got the same connection id after a server restart), writes nothing more."""

    run_id: str
    name: str | None = None
    connection_id: int | None = None
    session_name: str | None = None

    def check(self, conn: sa.Connection) -> None:
        if self.name is None:
            return
        holder, session = conn.execute(
            sa.select(sa.func.is_used_lock(self.name), sa.func.is_used_lock(self.session_name))).one()
        if holder is None:
            raise RunLockLost(self.run_id, "nobody holds it: its connection was closed or killed")
        if session is None or int(holder) != int(session):
            raise RunLockLost(self.run_id, f"another session (connection {int(holder)}) holds it")


@contextmanager
def run_lock(engine: sa.Engine, run_id: str) -> Iterator[RunLock]:
    """Hold the run's lock while the block runs, so that no two processes work on one run; yields the
    RunLock, whose `check` the run's write transactions call.

    MySQL/MariaDB: a named lock (GET_LOCK) on a connection of its own, kept alive while held, released
    when the block ends or the process dies. SQLite: nothing (one writer at a time anyway). Raises
    RunStateError if another session holds the lock.
    """
    if engine.dialect.name not in ("mysql", "mariadb"):
        yield RunLock(run_id)
        return
    lock = RunLock(run_id, run_lock_name(engine, run_id), engine.connect())
    try:
        lock._acquire()
        yield lock
    finally:
        lock._release()


def run_in_use(engine: sa.Engine, run_id: str) -> bool:
    """True if some session holds the run's lock (MySQL/MariaDB; always False on SQLite)."""
    if engine.dialect.name not in ("mysql", "mariadb"):
        return False
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.is_used_lock(run_lock_name(engine, run_id)))).scalar() is not None


# ------------------------------------------------------------------------------------------------
# ledgered writes
# ------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class WriteResult:
    """What `write_ledgered` did: rows it inserted (and recorded), rows INSERT IGNORE skipped because a
    row with the same (user, achievement, mode) was there, and batches committed."""

    inserted: int = 0
    present: int = 0
    batches: int = 0


class _NotAllInserted(Exception):
    """A multi-row INSERT IGNORE skipped some rows: redo the batch row by row."""


def _grant_rows(grants: pa.Table | Iterable[dict]) -> list[dict]:
    rows = grants.to_pylist() if isinstance(grants, pa.Table) else [dict(r) for r in grants]
    keys = [(r["user_id"], r["achievement_id"], r["mode"]) for r in rows]
    if len(set(keys)) != len(keys):
        raise ValueError("grants hold the same (user_id, achievement_id, mode) twice")
    return rows


def _ledger_record(run_id: str, row: dict, ua_id: int, source: str, shard: int | None, stamp: int) -> dict:
    return {
        "run_id": run_id, "action": "insert", "source": row.get("source") or source, "ua_id": int(ua_id),
        "user_id": int(row["user_id"]), "achievement_id": int(row["achievement_id"]), "mode": int(row["mode"]),
        "created_at": int(row["created_at"]), "shard": shard, "score_id": row.get("score_id"),
        "sr": row.get("sr"), "playcount": row.get("playcount"), "total_hits": row.get("total_hits"),
        "recorded_at": stamp,
    }


def _insert_whole_batch(conn: sa.Connection, batch: list[dict]) -> list[tuple[dict, int]]:
    values = [{c: int(r[c]) for c in db.GRANT_COLUMNS} for r in batch]
    result = conn.execute(db.insert_ignore(conn, users_achievements), values)
    pause_point("write")
    if result.rowcount != len(batch):
        raise _NotAllInserted
    keys = [(v["user_id"], v["achievement_id"], v["mode"]) for v in values]
    ids = _inserted_ids(conn, keys)
    return [(r, ids[k]) for r, k in zip(batch, keys)]


def _inserted_ids(conn: sa.Connection, keys: list[tuple[int, int, int]]) -> dict[tuple[int, int, int], int]:
    """The users_achievements ids of the rows one multi-row INSERT just inserted, by (user_id,
    achievement_id, mode), every key inserted by it (rowcount == len(keys)).

    MySQL/MariaDB: every id the statement generated is at least LAST_INSERT_ID() (its first one), also
    under innodb_autoinc_lock_mode 2 (MySQL 8's default), where concurrent inserts may interleave their
    ids; so the rows are read by a primary-key range from there, restricted to the batch's users, and
    matched by key: the unique key (user_id, achievement_id, mode) makes the row of each key the one
    this statement inserted. That range read replaced a row-value IN over the unique key, which MariaDB
    answered by scanning an index (docs/SCALING.md, batch-time breakdown). SQLite: the row-value IN.
    """
    table = users_achievements
    columns = (table.c.user_id, table.c.achievement_id, table.c.mode, table.c.id)
    if conn.dialect.name in ("mysql", "mariadb"):
        first = conn.execute(sa.select(sa.func.last_insert_id())).scalar_one()
        users = [k[0] for k in keys]
        query = sa.select(*columns).where((table.c.id >= first) & table.c.user_id.between(min(users), max(users)))
    else:
        query = sa.select(*columns).where(sa.tuple_(table.c.user_id, table.c.achievement_id, table.c.mode).in_(keys))
    wanted = set(keys)
    ids = {key: int(i) for *key_parts, i in conn.execute(query) if (key := tuple(int(v) for v in key_parts)) in wanted}
    if len(ids) != len(wanted):  # cannot happen for a statement that inserted every key; never guess
        raise LedgerReadBack(len(wanted), len(ids))
    return ids


def _insert_row_by_row(conn: sa.Connection, batch: list[dict]) -> list[tuple[dict, int]]:
    statement = db.insert_ignore(conn, users_achievements)
    written = []
    for row in batch:
        result = conn.execute(statement, {c: int(row[c]) for c in db.GRANT_COLUMNS})
        if result.rowcount == 1:
            written.append((row, int(result.lastrowid)))
    pause_point("write")
    return written


def _write_batch(
    connection: db.KeptConnection, run_id: str, batch: list[dict], source: str, shard: int | None,
    lock: RunLock | None = None,
) -> tuple[int, int]:
    """Insert one batch and its ledger rows (and progress counts) in one transaction: (inserted, present).
    The transaction commits only while the run's `lock` is held (checked last; else RunLockLost)."""

    def record(conn: sa.Connection, written: list[tuple[dict, int]]) -> None:
        stamp = now()
        if written:
            conn.execute(sa.insert(ledger), [_ledger_record(run_id, r, i, source, shard, stamp) for r, i in written])
        if shard is not None:
            conn.execute(
                sa.update(shards)
                .where((shards.c.run_id == run_id) & (shards.c.shard == shard))
                .values(inserted=shards.c.inserted + len(written), present=shards.c.present + len(batch) - len(written),
                        batches=shards.c.batches + 1, stage="writing", updated_at=stamp)
            )
        if lock is not None:
            lock.check(conn)

    with connection.use() as conn:
        try:
            with conn.begin():
                written = _insert_whole_batch(conn, batch)
                record(conn, written)
            return len(written), len(batch) - len(written)
        except _NotAllInserted:
            pass  # rolled back by the context manager
        with conn.begin():
            written = _insert_row_by_row(conn, batch)
            record(conn, written)
        return len(written), len(batch) - len(written)


def write_ledgered(
    engine: sa.Engine,
    run_id: str,
    grants: pa.Table | Iterable[dict],
    *,
    source: str = "score",
    shard: int | None = None,
    batch_rows: int = 1000,
    retry: db.RetryPolicy = db.DEFAULT_RETRY,
    log: db.RetryLog | None = None,
    url: str | None = None,
    governor: GovernorClient | None = None,
    lock: RunLock | LockToken | None = None,
) -> WriteResult:
    """Insert grants into users_achievements in batches, recording each inserted row in srb_ledger.

    `grants`: columns user_id, achievement_id, mode (full mode), created_at (unix seconds), and
    optionally score_id, sr, playcount, total_hits (kept as evidence) and source (else `source`, one of
    LEDGER_SOURCES); one row per (user_id, achievement_id, mode), else ValueError. A row whose key is
    in users_achievements already is skipped (INSERT IGNORE) and not recorded. Each batch commits as
    one transaction with its ledger rows and, for a backfill shard, its progress counts; a retryable
    database error redoes the batch (see cluster.db.retrying), which is exact because a committed
    batch's rows are skipped on the second try. The batches share one connection until an error, after
    which the retry opens a new one. With a `governor` (cluster.governor.GovernorClient) each batch
    waits for its permit, which also sets its size; otherwise batches hold `batch_rows` rows. With the
    run's `lock` (`run_lock`, or its `LockToken` in a writer process), each batch commits only while the
    run's driver holds it. Raises DatabaseUnavailable when retries run out, RunLockLost when the lock is
    gone (the batch rolled back; the run can be resumed).
    """
    rows = _grant_rows(grants)
    out = WriteResult()
    connection = db.KeptConnection(engine)
    start = 0
    try:
        while start < len(rows):
            size = governor.permit(len(rows) - start) if governor is not None else batch_rows
            batch = rows[start : start + size]
            started = time.perf_counter()
            inserted, present = db.retrying(
                lambda batch=batch: _write_batch(connection, run_id, batch, source, shard, lock),
                f"write batch {out.batches}" + (f" of shard {shard}" if shard is not None else ""),
                retry, log, url,
            )
            if governor is not None:
                governor.done(len(batch), time.perf_counter() - started)
            pause_point("commit")
            start += len(batch)
            out.inserted += inserted
            out.present += present
            out.batches += 1
    finally:
        connection.close()
    return out


# ------------------------------------------------------------------------------------------------
# reading the ledger
# ------------------------------------------------------------------------------------------------


def ledger_totals(engine: sa.Engine, run_id: str) -> dict[str, dict[str, int]]:
    """Rows a run recorded: {"insert": {source: n}, "delete": {source: n}}."""
    totals: dict[str, dict[str, int]] = {"insert": {}, "delete": {}}
    if not has_tables(engine):
        return totals
    query = (
        sa.select(ledger.c.action, ledger.c.source, sa.func.count())
        .where(ledger.c.run_id == run_id)
        .group_by(ledger.c.action, ledger.c.source)
    )
    with engine.connect() as conn:
        for action, source, count in conn.execute(query):
            totals.setdefault(action, {})[source] = int(count)
    return totals


def read_ledger(engine: sa.Engine, run_id: str | None = None, action: str | None = None) -> list[dict]:
    """Ledger rows (every column) of one run or of all runs, optionally of one action, in id order."""
    query = sa.select(ledger)
    if run_id is not None:
        query = query.where(ledger.c.run_id == run_id)
    if action is not None:
        query = query.where(ledger.c.action == action)
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(query.order_by(ledger.c.id)).mappings()]


def iter_ledger(engine: sa.Engine, run_id: str, action: str, chunk_rows: int = 1000) -> Iterator[list[dict]]:
    """A run's ledger rows of one action, in id order, `chunk_rows` at a time (keyset pagination, so a
    run of millions of rows is never held in memory at once)."""
    last = 0
    pages = db.KeptConnection(engine)  # one connection for every page
    try:
        while True:
            query = (
                sa.select(ledger)
                .where((ledger.c.run_id == run_id) & (ledger.c.action == action) & (ledger.c.id > last))
                .order_by(ledger.c.id)
                .limit(chunk_rows)
            )
            with pages.use() as conn:
                rows = [dict(r) for r in conn.execute(query).mappings()]
                conn.rollback()  # end the read's transaction: the next page sees new commits
            if not rows:
                return
            yield rows
            last = rows[-1]["id"]
    finally:
        pages.close()


def summarize_counts(rows: Iterable[dict], column: str) -> dict[str, int]:
    """Rows counted by one column's value (keys as strings, ascending)."""
    counts = Counter(str(r[column]) for r in rows)
    return {key: counts[key] for key in sorted(counts, key=lambda k: (len(k), k))}
