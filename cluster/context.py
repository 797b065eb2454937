"""What every stage of a backfill run shares: its settings (`BackfillConfig`) and one frozen
`RunContext`, built once by `open_run` before any stage starts.

A run is four stages, each a small unit taking the context (cluster.pipeline.run_backfill runs them):
plan (cluster.plan: scope to shards), prepare (cluster.prepare: catalogue check, run record, lock),
execute (cluster.execute: scan, rate, evaluate, write) and finish (cluster.finish: summary, run record).
`open_run` checks the settings and resolves a resume first, so every stage starts from settings that
are right; it raises ConfigError (CatalogueMismatch, RunStateError) before anything is read or written.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import sqlalchemy as sa

from cluster import control, db, ledger, software
from cluster.errors import ClusterError, ConfigError, RunStateError
from cluster.governor import DEFAULT_LIMITS, WriteLimits
from cluster.schema import SCORE_TABLES
from cluster.scope import ALL_USERS, Scope
from conditions.catalogue import Catalogue, load_catalogue
from conditions.evaluate import STAT_FAMILIES
from sr.engines import DEFAULT_ENGINE, engine_named

REQUIRED_TABLES = ("beatmaps", "users", "users_achievements")
READ_TABLES = ("beatmaps", "users")  # besides the score tables, what the read database must hold
SKIP_SAMPLES_PER_REASON = 20  # kept in a run's summary, over all shards
READ_MODES = ("auto", "scan", "users")
# Settings an applied run stores and a resume takes back (BackfillConfig field names).
PLAN_SETTINGS = (
    "osu_location", "shard_rows", "engine", "tables", "achievement_ids", "scope", "since", "until", "stats_fallback"
)


@dataclass(frozen=True, slots=True)
class BackfillConfig:
    """One backfill run.

    db_url:        SQLAlchemy URL (mysql+pymysql://... or sqlite:///...); never printed unmasked.
    osu_location:  the .osu store: a directory of {beatmap_id}.osu or a pyarrow.fs URI (None on a
                   resume: the stored one).
    apply:         insert grants into users_achievements (recorded in the ledger); otherwise write
                   nothing to the database.
    out:           dry-run file for the grants (.parquet or .csv), optional; rows sorted by OUT_ORDER.
    workers:       rater actors (processes); clamped to the Ray cluster's CPUs; None: the cluster's CPUs
                   less SCAN_EVALUATE_CPUS (cluster.execute.choose_workers).
    shard_rows:    target score rows per shard.
    engine:        SR engine name (sr.engine.engine_named).
    ray_address:   an existing Ray cluster; None: a new local instance.
    write_batch_rows: rows per write transaction (INSERT IGNORE + ledger rows + progress counts).
    writers:       writer actors of an applied run (cluster.writers); None: one per node, at least 2.
    max_in_flight: shard (and scan) tasks running at once (default: twice the workers); progress: a tqdm bar.
    run_id:        the run's id (1-60 of [A-Za-z0-9._-]); None: a fresh one (cluster.ledger.new_run_id).
    resume:        continue the stored run `run_id` with its stored plan and settings.
    scope:         which users (cluster.scope.Scope); tables / achievement_ids: what to read and grant
                   (achievement_ids None: the whole catalogue, less the ids less_achievements lacks;
                   a tuple: exactly these, each required in less_achievements).
    since / until: only scores with since <= time < until (unix seconds) may grant; all rows still
                   count in the running play-count and hit totals.
    stats_fallback: grant play-count/hit achievements that only the current user_stats totals reach,
                   with the run's time as created_at; otherwise they are only reported.
    as_of:         reference time (unix seconds) of the activity tiers and of stats-fallback grants;
                   None: when the run starts (a resume keeps the stored one).
    retry:         retry policy of database operations.
    samples_per_reason: sample score ids (the smallest) kept per skip reason and shard; the summary keeps
                   the SKIP_SAMPLES_PER_REASON smallest of them per reason.
    sr_cache:      the persistent SR cache (local path or pyarrow.fs URI; sr.cache), None for none.
    fetch_missing: URL template to download missing or stale .osu files (sr.fetch), None for none;
                   fetch_rate: downloads per second per rater.
    read:          how shards get their rows (`choose_read`): "auto", "scan" (primary-key ranges of
                   `scan_rows` rows, handed to the shards in waves of at most `wave_rows` rows; None:
                   sized to the Ray object store) or "users" (each shard through the userid index).
    read_url:      the read database (a replica of `db_url`; None: `db_url`): the bulk reads go there (the
                   plan's counts, id bounds and activity, the id-range scans, the per-user score reads,
                   user_stats, the beatmaps and users lookups). Everything that decides or records a
                   write stays on `db_url`, the primary: the users_achievements rows a user already
                   holds (read per shard at evaluation), the catalogue check, the run's record, shards,
                   ledger, lock, heartbeat, control and status rows. A lagging replica can therefore only
                   make a run see fewer or older scores, never grant what a user already holds: "held"
                   is read from the primary, and the write is an INSERT IGNORE on the primary's unique
                   key (user_id, achievement_id, mode) besides. Never stored (it may hold credentials).
    lag_replicas:  the replicas whose lag governs the writes (None: `read_url` when it differs from
                   `db_url`, else none). Never stored.
    limits:        the limits an applied run writes under (cluster.governor.WriteLimits; batch_rows is
                   `write_batch_rows`); limits_given: the limit names given on the command line (a resume
                   keeps the limits stored in the run's control row except these: cluster.control).
    governed:      an applied run's writes ask a write governor (GovernorActor) for every batch; False:
                   fixed batches of `write_batch_rows`, no limits (benchmarks only).
    progress_interval: seconds between progress lines when there is no terminal (cluster.progress).
    control_seconds: how often the governor's collectors read the run's control row.
    """

    db_url: str
    osu_location: str | None
    apply: bool = False
    out: Path | None = None
    workers: int | None = None
    shard_rows: int = 100_000
    engine: str = DEFAULT_ENGINE
    tables: tuple[str, ...] = SCORE_TABLES
    achievement_ids: tuple[int, ...] | None = None
    ray_address: str | None = None
    write_batch_rows: int = 1000
    writers: int | None = None
    max_in_flight: int | None = None
    progress: bool = True
    run_id: str | None = None
    resume: bool = False
    scope: Scope = ALL_USERS
    since: int | None = None
    until: int | None = None
    stats_fallback: bool = False
    as_of: int | None = None
    retry: db.RetryPolicy = db.DEFAULT_RETRY
    samples_per_reason: int = SKIP_SAMPLES_PER_REASON
    sr_cache: str | None = None
    fetch_missing: str | None = None
    fetch_rate: float = 2.0
    read: str = "auto"
    scan_rows: int = 250_000
    wave_rows: int | None = None
    read_url: str | None = None
    lag_replicas: tuple[str, ...] | None = None
    limits: WriteLimits = DEFAULT_LIMITS
    limits_given: frozenset[str] = frozenset()
    governed: bool = True
    progress_interval: float = 10.0
    control_seconds: float = 2.0

    @property
    def reads_from(self) -> str:
        """The URL of the bulk reads: `read_url`, else `db_url`."""
        return self.read_url or self.db_url

    @property
    def lag_replica_urls(self) -> tuple[str, ...]:
        """The replicas whose lag governs the writes (see `lag_replicas`)."""
        if self.lag_replicas is not None:
            return tuple(self.lag_replicas)
        return (self.read_url,) if self.read_url and self.read_url != self.db_url else ()


@dataclass(frozen=True)
class RunContext:
    """One run as every stage sees it.

    config:     the run's settings (on a resume: with the stored plan settings, and apply=True).
    db:         the database, the primary (cluster.db.Database: URL, engine, retry policy, the driver's
                retry log); read_db: the read database (a replica; None: `db`), `reader` either way.
    run_id:     the run's id; as_of: its reference time (unix seconds; a resume keeps the stored one).
    catalogue:  the achievements the run evaluates (conditions.catalogue.Catalogue).
    record:     the stored run being resumed (cluster.ledger.RunRecord), else None.
    tables:     the database's table names; read_stats: whether shards read user_stats.
    left_out:   catalogue ids this database's less_achievements lacks, left out of the run (cluster.prepare).
    lock:       an applied run's lock while it is held (cluster.ledger.RunLock, set by cluster.prepare):
                every write transaction of the run checks it is still held.
    started:    time.perf_counter() when the run started (for the summary's seconds).
    read_check: the read database as checked at start: {database (masked), replica (bool), lag_seconds
                (None: not visible), lag_source}.
    limits:     the limits an applied run starts writing under (its control row: cluster.prepare), else None.
    """

    config: BackfillConfig
    db: db.Database
    run_id: str
    as_of: int
    catalogue: Catalogue
    record: ledger.RunRecord | None = None
    tables: frozenset[str] = frozenset()
    read_stats: bool = False
    left_out: tuple[int, ...] = ()
    lock: ledger.RunLock | None = None
    started: float = field(default_factory=time.perf_counter)
    read_db: db.Database | None = None
    read_check: dict = field(default_factory=dict)
    limits: WriteLimits | None = None

    @property
    def reader(self) -> db.Database:
        """The database of the bulk reads: `read_db`, else `db`."""
        return self.read_db if self.read_db is not None else self.db

    @property
    def apply(self) -> bool:
        """Whether the run writes (and records itself); a dry run writes nothing to the database."""
        return self.config.apply

    @property
    def resume(self) -> bool:
        return self.record is not None


def open_run(config: BackfillConfig, database: db.Database, read_database: db.Database | None = None) -> RunContext:
    """Check `config` against `database` (the primary) and `read_database` (the read database, None: the
    primary) and build the run's context.

    On a resume, loads the stored run and takes back its plan settings (`PLAN_SETTINGS`) and as-of time.
    Raises ConfigError for settings that cannot be right (a read database without the tables the run
    reads included), RunStateError for a run id that cannot be used (unknown, finished, taken, catalogue
    changed since), before anything is read or written.
    """
    record = None
    if config.resume:
        if not config.run_id:
            raise ConfigError("--resume needs --run-id")
        record = database.retrying("load run", lambda: ledger.load_run(database.engine, config.run_id))
        if record is None or record.command != "run":
            raise RunStateError(config.run_id, "no such backfill run in this database")
        if record.status in ("finished", "rolled_back"):
            raise RunStateError(config.run_id, f"cannot resume a {record.status.replace('_', ' ')} run")
        config = replace(_resumed_config(config, record), apply=True)
    present = check_config(config, database)
    catalogue = selected_catalogue(config.achievement_ids)
    if record is not None and record.config.get("catalogue_version") != catalogue.version:
        raise RunStateError(record.run_id, "the achievement catalogue changed since the run started")
    run_id = ledger.check_run_id(config.run_id) if config.run_id else ledger.new_run_id()
    if config.apply and not config.resume and ledger.load_run(database.engine, run_id) is not None:
        raise RunStateError(run_id, "this run id is taken (resume it with --resume, or pick another)")
    as_of = record.as_of if record is not None else (config.as_of or ledger.now())
    read_stats = "user_stats" in present and any(a.family in STAT_FAMILIES for a in catalogue)
    read_check = check_read_database(config, read_database or database, read_stats)
    return RunContext(config, database, run_id, as_of, catalogue, record, frozenset(present), read_stats,
                      read_db=read_database, read_check=read_check)


def check_read_database(config: BackfillConfig, reader: db.Database, read_stats: bool) -> dict:
    """Check that the read database holds what the run reads there (the score tables, beatmaps, users,
    and user_stats when `read_stats`) and measure its replication lag as it reports it (SHOW REPLICA
    STATUS, where the grants allow; the governor measures lag by heartbeat while the run writes).

    Returns {database (masked), replica (whether it is not the primary), lag_seconds (None: not
    visible), lag_source}. Raises ConfigError (masked) for a read database that cannot be reached or
    lacks a table."""
    replica = config.reads_from != config.db_url
    out = {"database": reader.masked, "replica": replica, "lag_seconds": None, "lag_source": "the primary itself"}
    if not replica:
        return out
    needed = (*config.tables, *READ_TABLES, *(("user_stats",) if read_stats else ()))
    try:
        present = reader.retrying("list tables of the read database", lambda: db.table_names(reader.engine))
        with reader.engine.connect() as conn:
            out["lag_seconds"], out["lag_source"] = control.replication_lag(conn)
    except (sa.exc.SQLAlchemyError, ClusterError) as exc:
        detail = reader.mask(str(getattr(exc, "orig", None) or exc))
        raise ConfigError(f"cannot reach the read database {reader.masked}: {detail}") from None
    missing = [name for name in needed if name not in present]
    if missing:
        raise ConfigError(f"missing tables in the read database {reader.masked}: {', '.join(missing)}")
    out["lag_source"] = reader.mask(out["lag_source"])
    return out


def selected_catalogue(achievement_ids: tuple[int, ...] | None) -> Catalogue:
    """The catalogue a run evaluates (all of it when `achievement_ids` is None). Raises ConfigError for
    unknown ids and ConditionError for a condition that does not compile."""
    catalogue = load_catalogue()
    if not achievement_ids:
        return catalogue
    unknown = set(achievement_ids) - set(catalogue.by_id)
    if unknown:
        raise ConfigError(f"unknown achievement ids: {sorted(unknown)}")
    return catalogue.select(achievement_ids)


def check_config(config: BackfillConfig, database: db.Database) -> set[str]:
    """Stop before any work if the run cannot be right. Returns the database's table names.

    Raises ConfigError (messages masked).
    """
    _check_settings(config)
    try:
        present = database.retrying("list tables", lambda: db.table_names(database.engine))
    except (sa.exc.SQLAlchemyError, ClusterError) as exc:
        detail = database.mask(str(getattr(exc, "orig", None) or exc))
        raise ConfigError(f"cannot reach the database {database.masked}: {detail}") from None
    missing = [name for name in (*REQUIRED_TABLES, *config.tables) if name not in present]
    if missing:
        raise ConfigError(f"missing tables in {database.masked}: {', '.join(missing)}")
    catalogue = selected_catalogue(config.achievement_ids)
    if config.stats_fallback and "user_stats" not in present and any(a.family in STAT_FAMILIES for a in catalogue):
        raise ConfigError("--stats-fallback now needs the user_stats table")
    return present


def _check_settings(config: BackfillConfig) -> None:
    """The checks that need no database. Raises ConfigError."""
    if config.out is not None and config.out.suffix not in (".parquet", ".csv"):
        raise ConfigError(f"--out must end in .parquet or .csv, got {config.out.name}")
    if not config.tables:
        raise ConfigError("no score tables selected")
    unknown_tables = set(config.tables) - set(SCORE_TABLES)
    if unknown_tables:
        raise ConfigError(f"unknown score tables: {', '.join(sorted(unknown_tables))}")
    if config.since is not None and config.until is not None and config.since >= config.until:
        raise ConfigError(f"--since ({config.since}) must be before --until ({config.until})")
    if config.shard_rows < 1 or config.write_batch_rows < 1 or config.scan_rows < 1:
        raise ConfigError("--shard-rows, --batch-rows and --scan-rows must be at least 1")
    if config.writers is not None and config.writers < 1:
        raise ConfigError("--writers must be at least 1")
    if config.wave_rows is not None and config.wave_rows < 1:
        raise ConfigError("--wave-rows must be at least 1")
    if config.read not in READ_MODES:
        raise ConfigError(f"--read must be one of {', '.join(READ_MODES)}, got {config.read!r}")
    try:
        replace(config.limits, batch_rows=config.write_batch_rows).checked()
    except ValueError as exc:
        raise ConfigError(f"bad write limits: {exc}") from None
    if not config.progress_interval > 0 or not config.control_seconds > 0:
        raise ConfigError("--progress-interval and the control poll must be positive")
    if not config.osu_location:
        raise ConfigError("--osu-dir is required")
    try:
        engine_named(config.engine)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc


def stored_settings(config: BackfillConfig, catalogue_version: str) -> dict:
    """The settings an applied run stores in its run record (a resume takes the PLAN_SETTINGS back)."""
    return {
        "osu_location": config.osu_location,
        "shard_rows": config.shard_rows,
        "engine": config.engine,
        "tables": list(config.tables),
        "achievement_ids": list(config.achievement_ids) if config.achievement_ids else None,
        "scope": config.scope.to_dict(),
        "since": config.since,
        "until": config.until,
        "stats_fallback": config.stats_fallback,
        "catalogue_version": catalogue_version,
        "write_batch_rows": config.write_batch_rows,
        "software": software.software_record(),  # the lock's digest and the engine versions it started on
    }


def _from_stored(stored: dict) -> dict:
    return {
        "osu_location": stored["osu_location"],
        "shard_rows": int(stored["shard_rows"]),
        "engine": stored["engine"],
        "tables": tuple(stored["tables"]),
        "achievement_ids": tuple(stored["achievement_ids"]) if stored.get("achievement_ids") else None,
        "scope": Scope.from_dict(stored["scope"]),
        "since": stored.get("since"),
        "until": stored.get("until"),
        "stats_fallback": bool(stored.get("stats_fallback")),
    }


def _resumed_config(config: BackfillConfig, record: ledger.RunRecord) -> BackfillConfig:
    """`config` with the stored plan settings of `record`. Raises RunStateError for a setting given
    again with another value than the stored one (a resume keeps its plan)."""
    stored = _from_stored(record.config)
    defaults = {f.name: f.default for f in fields(BackfillConfig) if f.name in PLAN_SETTINGS}
    conflicts = [
        name for name in PLAN_SETTINGS
        if name != "osu_location"  # the store may have moved; the stored one is used when none is given
        and getattr(config, name) not in (defaults[name], stored[name])
    ]
    if conflicts:
        raise RunStateError(record.run_id, f"planned with other {', '.join(conflicts)}; a resume keeps its stored plan")
    if config.osu_location:
        stored["osu_location"] = config.osu_location
    return replace(config, **stored)
