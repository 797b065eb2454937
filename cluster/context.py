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

from cluster import db, ledger, software
from cluster.errors import ClusterError, ConfigError, RunStateError
from cluster.schema import SCORE_TABLES
from cluster.scope import ALL_USERS, Scope
from conditions.catalogue import Catalogue, load_catalogue
from conditions.evaluate import STAT_FAMILIES
from sr.engines import DEFAULT_ENGINE, engine_named

REQUIRED_TABLES = ("beatmaps", "users", "users_achievements")
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


@dataclass(frozen=True)
class RunContext:
    """One run as every stage sees it.

    config:     the run's settings (on a resume: with the stored plan settings, and apply=True).
    db:         the database (cluster.db.Database: URL, engine, retry policy, the driver's retry log).
    run_id:     the run's id; as_of: its reference time (unix seconds; a resume keeps the stored one).
    catalogue:  the achievements the run evaluates (conditions.catalogue.Catalogue).
    record:     the stored run being resumed (cluster.ledger.RunRecord), else None.
    tables:     the database's table names; read_stats: whether shards read user_stats.
    left_out:   catalogue ids this database's less_achievements lacks, left out of the run (cluster.prepare).
    lock:       an applied run's lock while it is held (cluster.ledger.RunLock, set by cluster.prepare):
                every write transaction of the run checks it is still held.
    started:    time.perf_counter() when the run started (for the summary's seconds).
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

    @property
    def apply(self) -> bool:
        """Whether the run writes (and records itself); a dry run writes nothing to the database."""
        return self.config.apply

    @property
    def resume(self) -> bool:
        return self.record is not None


def open_run(config: BackfillConfig, database: db.Database) -> RunContext:
    """Check `config` against `database` and build the run's context.

    On a resume, loads the stored run and takes back its plan settings (`PLAN_SETTINGS`) and as-of time.
    Raises ConfigError for settings that cannot be right, RunStateError for a run id that cannot be used
    (unknown, finished, taken, catalogue changed since), before anything is read or written.
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
    return RunContext(config, database, run_id, as_of, catalogue, record, frozenset(present), read_stats)


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
