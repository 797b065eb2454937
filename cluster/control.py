"""Running beside live traffic: the run's heartbeat, its control row and its published status, and the
collectors that feed the write governor (cluster.governor).

Tables of the tool's own on the primary (`srb_` prefix, created on first use like the ledger's):

    srb_heartbeat    one row per applied run: `beat_us`, the unix time (microseconds, the writing
                     process's clock) of its latest beat, rewritten every second while the run executes
    srb_control      one row per applied run: the limits it writes under (cluster.governor.WriteLimits)
                     and whether it is paused. A new run stores its command line's limits; `sr-backfill
                     control` changes them while it runs; a resume keeps them (limits given again on the
                     resume's command line replace the stored ones)
    srb_run_status   one row per applied run: the JSON status the running driver publishes every few
                     seconds (state, reasons, figures, shards, ETA), read by `sr-backfill control status`

Replica lag is measured with the heartbeat (as gh-ost and pt-heartbeat do): the run rewrites its row on
the primary every second and reads it back on each lag replica; lag = now minus the newest beat the
replica shows, both times from the same process's clock. That is an upper bound of the replica's delay
(it has applied every event up to that beat) and it grows whenever replication stalls, whatever the
replica reports about itself. A replica that shows no beat of this run yet (nor the srb_heartbeat table)
has an unknown lag: the governor holds. Only where the heartbeat cannot be read there for another reason
(no SELECT grant on it) is `SHOW REPLICA STATUS` / `SHOW SLAVE STATUS` used instead, where the grants
allow it; it is never the only source for a replica that replicates the heartbeat (measured on MariaDB
10.11: with MASTER_DELAY=30 it reads 5, 10, 15 s while the first delayed event waits, which would let
writes through).

`Watch` is the collecting half of the governor (gh-ost's throttler collects on tickers and decides
apart): three threads, each with its own autocommit connections: the heartbeat (every second; only
when there are lag replicas to read it back), the sampler (each lag replica's lag and the primary's Threads_running, every second) and the control poll
(the control row, every `control_seconds`), each pushing what it measured to the governor. Nothing here
decides. Every error text is masked (sr.masking). Times are unix seconds unless named `_us`.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

import sqlalchemy as sa
from sqlalchemy import BigInteger, Column, Float, Integer, MetaData, String, Table, Text
from sqlalchemy.dialects import mysql

from cluster import db, ledger
from cluster.errors import RunStateError
from cluster.governor import LIMIT_NAMES, GovernorClient, Sources, WriteGovernor, WriteLimits, call

metadata = MetaData()
_MYSQL = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"}
_LONG_TEXT = Text().with_variant(mysql.MEDIUMTEXT(), "mysql")

heartbeat = Table(
    "srb_heartbeat",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("beat_us", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    **_MYSQL,
)

control = Table(
    "srb_control",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("paused", Integer, nullable=False, server_default="0"),
    Column("max_write_rate", Float, nullable=True),
    Column("max_lag", Float, nullable=True),
    Column("max_threads_running", Integer, nullable=True),
    Column("window", String(16), nullable=True),
    Column("chunk_time", Float, nullable=True),
    Column("updated_at", BigInteger, nullable=False),
    Column("last_change", String(255), nullable=True),
    **_MYSQL,
)

run_status = Table(
    "srb_run_status",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("updated_at", BigInteger, nullable=False),
    Column("status", _LONG_TEXT, nullable=False),
    **_MYSQL,
)

CONTROL_TABLES = tuple(t.name for t in metadata.sorted_tables)
GOVERNED_COMMANDS = ("run", "rollback", "regrant-live", "consolidate-mode7")  # the run records whose writes a governor holds
STALE_STATUS_SECONDS = 15.0
NO_SUCH_TABLE = 1146  # a published status older than this, with the run's lock free: not running


def ensure_tables(engine: sa.Engine) -> None:
    """Create the missing srb_heartbeat, srb_control and srb_run_status tables (idempotent; safe when two
    processes race)."""
    db.create_tables(engine, metadata)


def autocommit_engine(url: str) -> sa.Engine:
    """An engine (no pool) whose connections autocommit: every read sees the latest commit (a kept
    connection inside one REPEATABLE READ transaction would keep showing the same heartbeat)."""
    return db.connect(url).execution_options(isolation_level="AUTOCOMMIT")


def replica_name(url: str) -> str:
    """How a replica is named in reasons and metrics: "host:port" (never credentials)."""
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return f"sqlite:{parsed.database}"
    return f"{parsed.host}:{parsed.port or 3306}"


# ------------------------------------------------------------------------------------------------
# heartbeat and figures
# ------------------------------------------------------------------------------------------------


def now_us() -> int:
    """The current unix time in microseconds."""
    return int(time.time() * 1_000_000)


def write_beat(conn: sa.Connection, run_id: str, beat_us: int) -> None:
    """Set run `run_id`'s heartbeat to `beat_us` (unix microseconds) on the primary (`conn` autocommits)."""
    stamp = beat_us // 1_000_000
    done = conn.execute(sa.update(heartbeat).where(heartbeat.c.run_id == run_id).values(beat_us=beat_us,
                                                                                         updated_at=stamp))
    if done.rowcount == 0:
        try:
            conn.execute(sa.insert(heartbeat).values(run_id=run_id, beat_us=beat_us, updated_at=stamp))
        except sa.exc.IntegrityError:  # written by another beat meanwhile
            pass


def read_beat(conn: sa.Connection, run_id: str) -> int | None:
    """Run `run_id`'s newest heartbeat this server shows (unix microseconds), or None when it shows none.
    Raises SQLAlchemy errors (missing table, no grant, lost connection)."""
    value = conn.execute(sa.select(heartbeat.c.beat_us).where(heartbeat.c.run_id == run_id)).scalar()
    return None if value is None else int(value)


def replication_lag(conn: sa.Connection) -> tuple[float | None, str]:
    """The server's own idea of its replication delay: (Seconds_Behind_Master, "SHOW REPLICA STATUS"), or
    (None, why): not a replica, replication stopped (the figure is NULL), not visible with this user's
    grants (REPLICATION CLIENT / SLAVE MONITOR), not MySQL. A fallback only: the heartbeat is the measure."""
    if conn.dialect.name not in ("mysql", "mariadb"):
        return None, f"no replication status on {conn.dialect.name}"
    error = None
    for statement in ("SHOW REPLICA STATUS", "SHOW SLAVE STATUS"):
        try:
            row = conn.exec_driver_sql(statement).mappings().first()
        except sa.exc.DBAPIError as exc:
            error = exc
            continue
        if row is None:
            return None, "not a replica (no replication status)"
        value = row.get("Seconds_Behind_Master", row.get("Seconds_Behind_Source"))
        if value is None:
            return None, "replication stopped (Seconds_Behind_Master is NULL)"
        return float(value), statement
    return None, f"replication status not visible: {db.error_code(error)} {getattr(error, 'orig', error)}"


def threads_running(conn: sa.Connection) -> int:
    """The server's Threads_running (SHOW GLOBAL STATUS). Raises SQLAlchemy errors."""
    row = conn.exec_driver_sql("SHOW GLOBAL STATUS LIKE 'Threads_running'").first()
    if row is None:
        raise ValueError("the server does not report Threads_running")
    return int(row[1])


def measure_lag(conn: sa.Connection, run_id: str, now: int, started: int) -> tuple[float | None, str]:
    """How far the replica behind `conn` is (seconds, detail), by run `run_id`'s heartbeat: now minus the
    newest beat it shows (`now`, `started`: unix microseconds, now and the heartbeat's first beat of this
    session). No beat of the run there yet, or no srb_heartbeat table there yet (replication has not
    reached the run's start): unknown. The heartbeat unreadable there for another reason (no SELECT
    grant): the replica's own status (`replication_lag`), where the grants allow, else unknown. Errors
    are folded into the detail (masked by the caller)."""
    try:
        beat = read_beat(conn, run_id)
    except sa.exc.DBAPIError as exc:
        code = db.error_code(exc)
        if code == NO_SUCH_TABLE:
            return None, (f"srb_heartbeat not there yet ({(now - started) / 1e6:.0f}s since the first beat): "
                          "replication has not reached the run's start")
        seconds, detail = replication_lag(conn)
        reason = f"heartbeat unreadable (error {code})"
        return seconds, f"{detail}; {reason}" if seconds is not None else f"{reason}; {detail}"
    if beat is None:
        return None, f"no heartbeat of this run there yet ({(now - started) / 1e6:.0f}s since the first beat)"
    return max(0.0, (now - beat) / 1e6), "heartbeat"


# ------------------------------------------------------------------------------------------------
# the control row
# ------------------------------------------------------------------------------------------------


def _limits_of(row) -> WriteLimits:
    return WriteLimits(
        max_write_rate=row["max_write_rate"], chunk_time=row["chunk_time"], max_lag=row["max_lag"],
        max_threads_running=row["max_threads_running"], window=row["window"], paused=bool(row["paused"]),
    )


def _row_of(limits: WriteLimits) -> dict:
    return {"paused": int(limits.paused), **{name: getattr(limits, name) for name in LIMIT_NAMES}}


def load_control(engine: sa.Engine, run_id: str) -> WriteLimits | None:
    """The limits stored for run `run_id` (batch_rows left at its default), or None (no row, or no
    tables yet)."""
    if control.name not in db.table_names(engine):
        return None
    with engine.connect() as conn:
        row = conn.execute(sa.select(control).where(control.c.run_id == run_id)).mappings().first()
    return None if row is None else _limits_of(row)


def save_control(engine: sa.Engine, run_id: str, limits: WriteLimits, change: str) -> None:
    """Store `limits` (all of them, paused included) as run `run_id`'s control row; `change` says what
    changed (kept in `last_change`, at most 255 characters)."""
    values = {**_row_of(limits), "updated_at": ledger.now(), "last_change": change[:255]}
    with engine.begin() as conn:
        done = conn.execute(sa.update(control).where(control.c.run_id == run_id).values(**values))
        if done.rowcount == 0:
            conn.execute(sa.insert(control).values(run_id=run_id, **values))


def open_control(engine: sa.Engine, run_id: str, limits: WriteLimits, given: frozenset[str] | set[str],
                 resume: bool) -> tuple[WriteLimits, list[str]]:
    """The limits run `run_id` starts writing under, stored in its control row, and notes for the operator.

    A new run stores `limits`. A resume keeps its stored row (what `control` set, paused included), with
    the limits named in `given` (given again on the resume's command line) replaced by `limits`'; a run
    without a row stores `limits`. Returns (limits with `limits.batch_rows`, notes)."""
    ensure_tables(engine)
    stored = load_control(engine, run_id) if resume else None
    notes: list[str] = []
    if stored is None:
        save_control(engine, run_id, replace(limits, paused=False), "started" if not resume else "resumed")
        return replace(limits, paused=False), notes
    changes = {name: getattr(limits, name) for name in LIMIT_NAMES if name in given}
    effective = replace(stored, batch_rows=limits.batch_rows, **changes)
    changed = {name: value for name, value in changes.items() if getattr(stored, name) != value}
    if changed:
        save_control(engine, run_id, effective, "resumed with " + ", ".join(f"{k}={v}" for k, v in changed.items()))
    notes.append(f"limits kept from the run's control row: {effective.describe()}")
    if effective.paused:
        notes.append(f"the run is paused: sr-backfill control --run-id {run_id} resume")
    return effective, notes


def change_control(engine: sa.Engine, run_id: str, *, paused: bool | None = None, **limits) -> WriteLimits:
    """Change a recorded run's control row: pause/resume (`paused`) and/or limits (WriteLimits fields in
    LIMIT_NAMES). Returns the stored limits. Raises RunStateError for a run that is not a recorded
    governed run (GOVERNED_COMMANDS), ValueError for a bad limit."""
    record = ledger.load_run(engine, ledger.check_run_id(run_id))
    if record is None or record.command not in GOVERNED_COMMANDS:
        raise RunStateError(run_id, "no such backfill run, rollback, regrant or consolidation in this database")
    unknown = set(limits) - set(LIMIT_NAMES)
    if unknown:
        raise ValueError(f"unknown limits: {', '.join(sorted(unknown))}")
    ensure_tables(engine)
    with engine.begin() as conn:
        row = conn.execute(sa.select(control).where(control.c.run_id == run_id).with_for_update()).mappings().first()
        current = _limits_of(row) if row is not None else WriteLimits()
        updated = replace(current, **limits, **({} if paused is None else {"paused": paused})).checked()
        what = ", ".join([*(["paused"] if paused else ["resumed"] if paused is False else []),
                          *(f"{k}={v}" for k, v in limits.items())]) or "nothing"
        values = {**_row_of(updated), "updated_at": ledger.now(), "last_change": f"control: {what}"[:255]}
        if row is None:
            conn.execute(sa.insert(control).values(run_id=run_id, **values))
        else:
            conn.execute(sa.update(control).where(control.c.run_id == run_id).values(**values))
    return updated


# ------------------------------------------------------------------------------------------------
# the published status
# ------------------------------------------------------------------------------------------------


def write_status(engine: sa.Engine | sa.Connection, run_id: str, status: dict) -> None:
    """Publish run `run_id`'s status (JSON-able dict) in srb_run_status."""
    values = {"updated_at": ledger.now(), "status": json.dumps(status, sort_keys=True, default=str)}

    def upsert(conn: sa.Connection) -> None:
        done = conn.execute(sa.update(run_status).where(run_status.c.run_id == run_id).values(**values))
        if done.rowcount == 0:
            conn.execute(sa.insert(run_status).values(run_id=run_id, **values))

    if isinstance(engine, sa.Connection):
        upsert(engine)
    else:
        with engine.begin() as conn:
            upsert(conn)


def read_status(engine: sa.Engine, run_id: str) -> tuple[int, dict] | None:
    """(updated_at unix seconds, status) that run `run_id` last published, or None."""
    if run_status.name not in db.table_names(engine):
        return None
    with engine.connect() as conn:
        row = conn.execute(sa.select(run_status).where(run_status.c.run_id == run_id)).first()
    return None if row is None else (int(row.updated_at), json.loads(row.status))


def describe_run(engine: sa.Engine, run_id: str) -> dict:
    """Everything `sr-backfill control status` shows about run `run_id`: its record's status, whether a
    process holds its lock (`running`), its control row's limits, the last published status and its age
    in seconds, and its shards done / planned (0 for a rollback or a regrant). Raises RunStateError for
    an unknown run."""
    record = ledger.load_run(engine, ledger.check_run_id(run_id))
    if record is None or record.command not in GOVERNED_COMMANDS:
        raise RunStateError(run_id, "no such backfill run, rollback, regrant or consolidation in this database")
    published = read_status(engine, run_id)
    with engine.connect() as conn:
        counts = dict(conn.execute(
            sa.select(ledger.shards.c.status, sa.func.count()).where(ledger.shards.c.run_id == run_id)
            .group_by(ledger.shards.c.status)).all())
    limits = load_control(engine, run_id)
    return {
        "run_id": run_id, "record_status": record.status, "running": ledger.run_in_use(engine, run_id),
        "limits": limits.to_dict() if limits is not None else None,
        "status": published[1] if published else None,
        "status_age_s": (ledger.now() - published[0]) if published else None,
        "shards_done": int(counts.get("done", 0)), "shards_failed": int(counts.get("failed", 0)),
        "shards_planned": int(sum(counts.values())),
    }


# ------------------------------------------------------------------------------------------------
# the collectors
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WatchSettings:
    """What a run's collectors watch.

    run_id:        the run (its heartbeat and control rows).
    primary_url:   the primary (heartbeat writes, Threads_running, the control row); never printed unmasked.
    replica_urls:  the lag replicas (their heartbeat is read back; `replica_name` names them).
    threads_running: sample the primary's Threads_running (MySQL/MariaDB).
    heartbeat_seconds / sample_seconds / control_seconds: how often each collector runs.
    """

    run_id: str
    primary_url: str
    replica_urls: tuple[str, ...] = ()
    threads_running: bool = True
    heartbeat_seconds: float = 1.0
    sample_seconds: float = 1.0
    control_seconds: float = 2.0


class _Ticker(threading.Thread):
    """Runs `tick()` at once and then every `seconds` until stopped; an exception in a tick is handed to
    `failed(exc)` and the ticker goes on."""

    def __init__(self, name: str, seconds: float, tick: Callable[[], None], failed: Callable[[BaseException], None],
                 stop: threading.Event) -> None:
        super().__init__(name=name, daemon=True)
        self.seconds, self.tick, self.failed, self.stop = seconds, tick, failed, stop

    def run(self) -> None:
        while True:
            started = time.monotonic()
            try:
                self.tick()
            except Exception as exc:  # a collector never dies: the governor fails closed on stale figures
                self.failed(exc)
            if self.stop.wait(max(0.0, self.seconds - (time.monotonic() - started))):
                return


class _Link:
    """One autocommit connection to a server, opened on first use and again after an error."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = autocommit_engine(url)
        self.conn: sa.Connection | None = None

    def run(self, operation: Callable[[sa.Connection], object]):
        if self.conn is None:
            self.conn = self.engine.connect()
        try:
            return operation(self.conn)
        except sa.exc.DBAPIError:
            self.close()  # a fresh connection next time
            raise

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            except sa.exc.SQLAlchemyError:
                pass
            self.conn = None

    def dispose(self) -> None:
        self.close()
        self.engine.dispose()


class Watch:
    """The collectors of one run, feeding `governor` (a WriteGovernor or a GovernorActor handle): the
    heartbeat, the sampler and the control poll (see the module docstring). Use as a context manager, or
    `start()` / `stop()`. `errors` counts collector errors by collector; `last_error` keeps the last
    (masked) text of each."""

    def __init__(self, settings: WatchSettings, governor) -> None:
        self.settings = settings
        self.governor = governor
        self.started_us = now_us()
        self.stop_event = threading.Event()
        self.errors: dict[str, int] = {}
        self.last_error: dict[str, str] = {}
        self.names = {url: replica_name(url) for url in settings.replica_urls}
        self._primary_beat = _Link(settings.primary_url)
        self._primary_figures = _Link(settings.primary_url)
        self._primary_control = _Link(settings.primary_url)
        self._replicas = {url: _Link(url) for url in settings.replica_urls}
        self._threads: list[_Ticker] = []

    def _mask(self, exc: BaseException) -> str:
        text = f"{type(exc).__name__}: {getattr(exc, 'orig', None) or exc}"
        for url in (self.settings.primary_url, *self.settings.replica_urls):
            text = db.mask_text(text, url)
        return text[:300]

    def _failed(self, collector: str) -> Callable[[BaseException], None]:
        def note(exc: BaseException) -> None:
            self.errors[collector] = self.errors.get(collector, 0) + 1
            self.last_error[collector] = self._mask(exc)
        return note

    def beat(self) -> None:
        """Write one heartbeat on the primary."""
        self._primary_beat.run(lambda conn: write_beat(conn, self.settings.run_id, now_us()))

    def sample(self) -> None:
        """Measure each lag replica's lag and the primary's Threads_running; push them to the governor."""
        run_id = self.settings.run_id
        for url, link in self._replicas.items():
            try:
                seconds, detail = link.run(lambda conn: measure_lag(conn, run_id, now_us(), self.started_us))
            except Exception as exc:
                seconds, detail = None, self._mask(exc)
            call(self.governor, "observe_lag", self.names[url], seconds, db.mask_text(detail, url))
        if self.settings.threads_running:
            try:
                count, detail = self._primary_figures.run(threads_running), ""
            except Exception as exc:
                count, detail = None, self._mask(exc)
            call(self.governor, "observe_threads_running", count, detail)

    def poll_control(self) -> None:
        """Read the run's control row and hand its limits to the governor (every poll, so that a governor
        restarted by Ray is told again)."""
        limits = self._primary_control.run(lambda conn: _load_control_on(conn, self.settings.run_id))
        if limits is not None:
            call(self.governor, "set_limits", limits)

    def start(self) -> Watch:
        """Start the collectors' threads. Returns self."""
        settings = self.settings
        tickers = [("srb-sampler", settings.sample_seconds, self.sample),
                   ("srb-control", settings.control_seconds, self.poll_control)]
        if settings.replica_urls:  # the heartbeat only measures lag: no replicas, no beats
            tickers.insert(0, ("srb-heartbeat", settings.heartbeat_seconds, self.beat))
        for name, seconds, tick in tickers:
            ticker = _Ticker(name, seconds, tick, self._failed(name.removeprefix("srb-")), self.stop_event)
            ticker.start()
            self._threads.append(ticker)
        return self

    def stop(self) -> None:
        """Stop the collectors (each finishes its tick) and close their connections."""
        self.stop_event.set()
        for ticker in self._threads:
            ticker.join(timeout=30)
        for link in (self._primary_beat, self._primary_figures, self._primary_control, *self._replicas.values()):
            link.dispose()

    def __enter__(self) -> Watch:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _load_control_on(conn: sa.Connection, run_id: str) -> WriteLimits | None:
    row = conn.execute(sa.select(control).where(control.c.run_id == run_id)).mappings().first()
    return None if row is None else _limits_of(row)


@dataclass(frozen=True)
class Governance:
    """How a one-process writer outside a backfill run (an applied rollback, the mode 7 consolidation) is
    governed: the `limits` it starts under (stored in its control row, so that `sr-backfill control`
    can pause it or change them), the names of those given on its command line (`given`), and the
    `replica_urls` whose lag holds it (cluster.control.Watch)."""

    limits: WriteLimits
    given: frozenset[str] = frozenset()
    replica_urls: tuple[str, ...] = ()


@contextmanager
def governed(engine: sa.Engine, run_id: str, governance: Governance | None,
             primary_url: str | None = None) -> Iterator[GovernorClient | None]:
    """While the block runs, a write governor for run `run_id`'s writes from this process: a local
    WriteGovernor fed by a Watch (the heartbeat on the primary, `primary_url` or the engine's, read back
    on each lag replica; the primary's Threads_running on MySQL/MariaDB; the run's control row). Yields
    its GovernorClient: ask `permit(rows)` before each write transaction and report `done(rows,
    seconds)` after it; yields None without `governance` (ungoverned writes). The control row is opened
    as a new run's (`open_control`). The same limits and collectors as a backfill run's (docs/LIVE.md),
    in one process instead of a Ray actor."""
    if governance is None:
        yield None
        return
    primary_url = primary_url or engine.url.render_as_string(hide_password=False)
    limits, _ = open_control(engine, run_id, governance.limits, governance.given, resume=False)
    mysql_like = engine.dialect.name in ("mysql", "mariadb")
    sources = Sources(tuple(replica_name(url) for url in governance.replica_urls), threads_running=mysql_like)
    governor = WriteGovernor(limits, sources, run_id, need_limits=True)
    settings = WatchSettings(run_id, primary_url, tuple(governance.replica_urls), threads_running=mysql_like)
    with Watch(settings, governor):
        yield GovernorClient(governor)
