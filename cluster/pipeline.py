"""The backfill run: plan shards, start raters, evaluate shards on Ray, write grants as they arrive.

Data flows one way: read (each shard task reads its users' rows as Arrow) -> rate (rater actors,
once per unique SR key) -> evaluate (polars, in the shard task) -> write (the driver, in batches).

An applied run (`apply=True`) has a run id and leaves a record of itself (cluster.ledger): the run
and its settings, its shard plan with per-shard progress, and a ledger row for every row it inserts.
A run killed at any point is continued with `resume=True`: the stored plan and settings are used
again, finished shards are skipped, and a shard cut short is evaluated again against what its users
now hold, so the final rows and ledger are those of an uninterrupted run. A dry run writes nothing to
the database (not even the srb_ tables).

Before any shard starts, a run checks its configuration, and, when the database has
`less_achievements`, that every achievement it may grant is there under the catalogue's `file`.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import ray
import sqlalchemy as sa
from tqdm import tqdm

from cluster import credentials, db, ledger
from cluster.credentials import DatabaseRef
from cluster.errors import CatalogueMismatch, ClusterError, ConfigError, RunStateError
from cluster.pauses import pause_point
from cluster.schema import SCORE_TABLES, less_achievements
from cluster.scope import ALL_USERS, Scope, select_users
from cluster.shards import ScanRange, Shard, plan_scan, plan_shards, plan_waves
from cluster.workers import (
    RaterActor, RaterJournal, RaterSettings, ScanOutcome, ShardJob, ShardOutcome, peak_rss_mb, process_shard,
    read_lookups, scan_range,
)
from conditions.catalogue import FAMILIES, Catalogue, load_catalogue
from conditions.evaluate import GRANT_SCHEMA, INELIGIBLE_REASONS, STAT_FAMILIES
from sr.engine import DEFAULT_ENGINE, engine_named
from sr.errors import REASONS

__all__ = ["BackfillConfig", "ConfigError", "RunSummary", "check_catalogue", "check_config", "choose_read", "run_backfill"]

REQUIRED_TABLES = ("beatmaps", "users", "users_achievements")
GRANT_ARROW_SCHEMA = pa.schema([(name, pa.int64()) for name in GRANT_SCHEMA])
SKIP_SAMPLES_PER_REASON = 20  # kept in a run's summary, over all shards
READ_MODES = ("auto", "scan", "users")
SCAN_MIN_SHARE = 0.25  # "auto" scans when the pending shards hold at least this share of the tables' rows
SCANNED_ROW_BYTES = 250  # object-store bytes of one scanned row (SCORE_ARROW_SCHEMA), for sizing waves
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
    out:           dry-run file for the grants (.parquet or .csv), optional.
    workers:       rater actors (processes); clamped to the Ray cluster's CPUs.
    shard_rows:    target score rows per shard.
    engine:        SR engine name (sr.engine.engine_named).
    ray_address:   an existing Ray cluster; None: a new local instance.
    write_batch_rows: rows per write transaction (INSERT IGNORE + ledger rows + progress counts).
    max_in_flight: shard (and scan) tasks running at once (default: twice the workers); progress: a tqdm bar.
    run_id:        the run's id (1-60 of [A-Za-z0-9._-]); None: a fresh one (cluster.ledger.new_run_id).
    resume:        continue the stored run `run_id` with its stored plan and settings.
    scope:         which users (cluster.scope.Scope); tables / achievement_ids: what to read and grant.
    since / until: only scores with since <= time < until (unix seconds) may grant; all rows still
                   count in the running play-count and hit totals.
    stats_fallback: grant play-count/hit achievements that only the current user_stats totals reach,
                   with the run's time as created_at; otherwise they are only reported.
    as_of:         reference time (unix seconds) of the activity tiers and of stats-fallback grants;
                   None: when the run starts (a resume keeps the stored one).
    retry:         retry policy of database operations.
    samples_per_reason: sample score ids kept per skip reason and shard (the summary keeps 20 per reason).
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
    workers: int = 2
    shard_rows: int = 100_000
    engine: str = DEFAULT_ENGINE
    tables: tuple[str, ...] = SCORE_TABLES
    achievement_ids: tuple[int, ...] | None = None
    ray_address: str | None = None
    write_batch_rows: int = 1000
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
    samples_per_reason: int = 5
    sr_cache: str | None = None
    fetch_missing: str | None = None
    fetch_rate: float = 2.0
    read: str = "auto"
    scan_rows: int = 250_000
    wave_rows: int | None = None


@dataclass(slots=True)
class RunSummary:
    """Counts and timings of a run (the summary printed and the --report JSON).

    seconds: wall seconds of the driver's phases (plan, ray_start, shards, write, total; inside shards:
    scan_wall, reading the waves, rate_wall, rating their keys, and evaluate_wall, their shard tasks,
    writes excluded) and summed
    worker seconds per stage (scan: the table-scan tasks' reads and splits; read: the shard tasks' own
    reads; prepare, rate, evaluate).
    read_mode / scan_ranges / waves: how the shards were read (`choose_read`), in how many id ranges
    and waves (0 / 0 / 0 when nothing was pending).
    grants: score grants evaluated in this session (total, by_family, by_full_mode).
    grants_written: rows the run has inserted, over all its sessions (from the ledger; 0 for a dry run).
    already_present: grants INSERT IGNORE skipped because the row had appeared since evaluation.
    skipped / skip_samples: scores skipped for bad data by reason (unknown beatmap, missing .osu, md5
    mismatch, bad format or empty, impossible convert, non-finite SR, ...) and sample score ids.
    database_errors: retries by MySQL error code, samples (masked) and failed shards.
    engine_crashes: rater processes that died and were restarted ({"restarts", "by_rater"}) and the
    keys quarantined after killing a rater twice ("quarantined": beatmap_md5, mode_vn, mods; their
    scores are counted and sampled under the skip reason engine_crash). Raters' counters (sr_keys,
    sr_calculations, sr_errors) start again with a restarted process.
    stats_fallback: stats-only candidates (current user_stats reach a threshold the stored plays do
    not) by achievement, and how many were granted (`--stats-fallback now`).
    stats_only_rows: every stats-only candidate (user_id, achievement_id, mode, playcount,
    total_hits); not part of `to_dict`.
    """

    database: str
    engine: dict
    dry_run: bool
    run_id: str = ""
    resumed: bool = False
    status: str = "finished"
    scope: dict = field(default_factory=dict)
    workers: int = 0
    shards: int = 0
    shards_done_before: int = 0
    shards_failed: int = 0
    read_mode: str = ""
    scan_ranges: int = 0
    waves: int = 0
    users: int = 0
    rows_read: dict = field(default_factory=lambda: {name: 0 for name in SCORE_TABLES})
    eligible_scores: int = 0
    ineligible: dict = field(default_factory=lambda: {reason: 0 for reason in INELIGIBLE_REASONS})
    scores_without_sr: int = 0
    sr_keys: int = 0
    sr_calculations: int = 0
    sr_cache_hits: int = 0
    max_rss_mb: dict = field(default_factory=dict)
    beatmaps_downloaded: int = 0
    sr_errors: dict = field(default_factory=lambda: {reason: 0 for reason in REASONS})
    skipped: dict = field(default_factory=dict)
    skip_samples: list = field(default_factory=list)
    grants: dict = field(default_factory=dict)
    already_held: int = 0
    grants_written: int = 0
    already_present: int = 0
    stats_fallback: dict = field(default_factory=dict)
    database_errors: dict = field(default_factory=lambda: {"retries": {}, "samples": [], "failed_shards": []})
    engine_crashes: dict = field(default_factory=lambda: {"restarts": 0, "by_rater": {}, "quarantined": []})
    out: str | None = None
    seconds: dict = field(default_factory=dict)
    stats_only_rows: list = field(default_factory=list, repr=False)

    def to_dict(self) -> dict:
        data = asdict(self)
        del data["stats_only_rows"]
        return data


class _FileSink:
    """Streams grants to a Parquet or CSV file (by extension)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".parquet":
            self.writer = pq.ParquetWriter(path, GRANT_ARROW_SCHEMA)
        else:
            self.writer = pacsv.CSVWriter(path, GRANT_ARROW_SCHEMA)

    def write(self, grants: pa.Table) -> None:
        self.writer.write_table(grants.select(GRANT_ARROW_SCHEMA.names).cast(GRANT_ARROW_SCHEMA))

    def close(self) -> None:
        self.writer.close()


def selected_catalogue(achievement_ids: tuple[int, ...] | None) -> Catalogue:
    """The catalogue a run evaluates (all 96 when `achievement_ids` is None). Raises ConfigError for
    unknown ids and ConditionError for a condition that does not compile."""
    catalogue = load_catalogue()
    if not achievement_ids:
        return catalogue
    unknown = set(achievement_ids) - set(catalogue.by_id)
    if unknown:
        raise ConfigError(f"unknown achievement ids: {sorted(unknown)}")
    return catalogue.select(achievement_ids)


def check_config(config: BackfillConfig, engine: sa.Engine) -> set[str]:
    """Stop before any work if the run cannot be right. Returns the database's table names.

    Raises ConfigError (messages masked).
    """
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
    try:
        present = db.retrying(lambda: db.table_names(engine), "list tables", config.retry, url=config.db_url)
    except (sa.exc.SQLAlchemyError, ClusterError) as exc:
        detail = db.mask_text(str(getattr(exc, "orig", None) or exc), config.db_url)
        raise ConfigError(f"cannot reach the database {db.mask_url(config.db_url)}: {detail}") from None
    missing = [name for name in (*REQUIRED_TABLES, *config.tables) if name not in present]
    if missing:
        raise ConfigError(f"missing tables in {db.mask_url(config.db_url)}: {', '.join(missing)}")
    catalogue = selected_catalogue(config.achievement_ids)
    if config.stats_fallback and "user_stats" not in present and any(a.family in STAT_FAMILIES for a in catalogue):
        raise ConfigError("--stats-fallback now needs the user_stats table")
    return present


def check_catalogue(engine: sa.Engine, catalogue: Catalogue) -> None:
    """Check that less_achievements holds every achievement of `catalogue` with the same `file`.

    The live server matches conditions to less_achievements rows by `file` (DOMAIN.md §2), so a grant
    under an id whose row names another file would show the wrong medal. Call only when the table
    exists. Raises CatalogueMismatch listing the missing and the differing ids.
    """
    ids = [a.id for a in catalogue]
    query = sa.select(less_achievements.c.id, less_achievements.c.file).where(less_achievements.c.id.in_(ids))
    with engine.connect() as conn:
        files = {int(i): f for i, f in conn.execute(query)}
    missing = tuple(i for i in ids if i not in files)
    differing = {a.id: (a.file, files[a.id]) for a in catalogue if a.id in files and files[a.id] != a.file}
    if missing or differing:
        raise CatalogueMismatch(missing, differing)


def _start_ray(config: BackfillConfig) -> bool:
    """Connect to Ray (the given address, a running instance, or a new local one). True if started here."""
    if ray.is_initialized():
        return False
    if config.ray_address:
        ray.init(address=config.ray_address, log_to_driver=False)
    else:
        # a new local instance, even when another cluster runs on this machine (use --ray-address for one)
        ray.init(address="local", num_cpus=config.workers, include_dashboard=False, log_to_driver=False)
    return True


def _stored_settings(config: BackfillConfig, catalogue_version: str) -> dict:
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


def _describe_scope(config: BackfillConfig, users: int) -> dict:
    scope = config.scope
    return {
        "tier": scope.tier,
        "user_ids": len(scope.user_ids),
        "sample_users": scope.sample_users,
        "sample_seed": scope.sample_seed,
        "tables": list(config.tables),
        "achievements": list(config.achievement_ids) if config.achievement_ids else "all",
        "since": config.since,
        "until": config.until,
        "users_in_scope": users,
    }


def _plan(engine: sa.Engine, config: BackfillConfig, as_of: int, log: db.RetryLog) -> tuple[list[Shard], int]:
    """The shards of a new run over its scope, and how many users they hold."""
    rows_by_user = db.retrying(
        lambda: db.count_rows_by_user(engine, config.tables), "count rows per user", config.retry, log, config.db_url
    )
    if config.scope.restricts_users:
        activity = (
            db.retrying(lambda: db.read_user_activity(engine), "read user activity", config.retry, log, config.db_url)
            if config.scope.tier != "all"
            else {}
        )
        rows_by_user = select_users(rows_by_user, config.scope, activity, as_of)
    planned = plan_shards(rows_by_user, config.shard_rows, explicit_users=config.scope.restricts_users)
    return planned, len(rows_by_user)


def run_backfill(config: BackfillConfig) -> RunSummary:
    """Run (or resume) the backfill described by `config` and return its summary.

    Raises ConfigError (CatalogueMismatch, RunStateError) before any shard starts for a run that cannot
    be right, and DatabaseUnavailable when a write keeps failing (the run can then be resumed). Bad
    input inside the data (unknown beatmaps, bad maps, failed ratings) is counted in the summary, never
    raised; a shard whose reads fail is marked failed (resume retries it) and the run goes on.
    """
    started = time.perf_counter()
    engine = db.connect(config.db_url)
    try:
        return _run(config, engine, started)
    finally:
        engine.dispose()


def _run(config: BackfillConfig, engine: sa.Engine, started: float) -> RunSummary:
    log = db.RetryLog()
    record = None
    if config.resume:
        if not config.run_id:
            raise ConfigError("--resume needs --run-id")
        record = db.retrying(lambda: ledger.load_run(engine, config.run_id), "load run", config.retry, log, config.db_url)
        if record is None or record.command != "run":
            raise RunStateError(config.run_id, "no such backfill run in this database")
        if record.status in ("finished", "rolled_back"):
            raise RunStateError(config.run_id, f"cannot resume a {record.status.replace('_', ' ')} run")
        config = replace(_resumed_config(config, record), apply=True)
    present = check_config(config, engine)
    catalogue = selected_catalogue(config.achievement_ids)
    if "less_achievements" in present:
        check_catalogue(engine, catalogue)
    if record is not None and record.config.get("catalogue_version") != catalogue.version:
        raise RunStateError(record.run_id, "the achievement catalogue changed since the run started")
    run_id = ledger.check_run_id(config.run_id) if config.run_id else ledger.new_run_id()
    if config.apply and not config.resume and ledger.load_run(engine, run_id) is not None:
        raise RunStateError(run_id, "this run id is taken (resume it with --resume, or pick another)")
    as_of = record.as_of if record is not None else (config.as_of or ledger.now())
    read_stats = "user_stats" in present and any(a.family in STAT_FAMILIES for a in catalogue)

    summary = RunSummary(database=db.mask_url(config.db_url), engine={}, dry_run=not config.apply, run_id=run_id,
                         resumed=config.resume)
    summary.stats_fallback = {"mode": "now" if config.stats_fallback else "report", "checked": read_stats,
                              "candidates": 0, "users": 0, "by_achievement": {}, "granted": 0}
    phase = time.perf_counter()
    if config.apply:
        ledger.ensure_tables(engine)
    if not config.apply:
        planned, users = _plan(engine, config, as_of, log)
        pending = planned
    elif config.resume:
        progress = ledger.load_shards(engine, run_id)
        planned = [p.shard for p in progress]
        pending = [p.shard for p in progress if p.status != "done"]
        users = record.config.get("users", 0)
        summary.shards_done_before = len(planned) - len(pending)
    else:
        planned, users = _plan(engine, config, as_of, log)
        pending = planned
    summary.shards, summary.users = len(planned), users
    summary.scope = _describe_scope(config, users)
    summary.seconds["plan"] = time.perf_counter() - phase

    with ledger.run_lock(engine, run_id) if config.apply else contextlib.nullcontext():
        if config.apply and not config.resume:
            stored = {**_stored_settings(config, catalogue.version), "users": users}
            ledger.create_run(engine, ledger.RunRecord(run_id, "run", "running", ledger.now(), as_of, stored), planned)
            pause_point("plan")
        elif config.apply:
            ledger.update_run(engine, run_id, status="running")
        try:
            _process(config, engine, run_id, as_of, pending, read_stats, summary, log)
        except BaseException:
            if config.apply:
                _mark_failed(engine, run_id, summary)
            raise
        if config.apply:
            totals = db.retrying(lambda: ledger.ledger_totals(engine, run_id), "read ledger totals", config.retry,
                                 log, config.db_url)
            summary.grants_written = sum(totals["insert"].values())
            summary.status = "failed" if summary.shards_failed else "finished"
        _finish_summary(summary, log, started)
        if config.apply:
            db.retrying(lambda: ledger.update_run(engine, run_id, status=summary.status, summary=summary.to_dict()),
                        "store run summary", config.retry, log, config.db_url)
    return summary


def _mark_failed(engine: sa.Engine, run_id: str, summary: RunSummary) -> None:
    summary.status = "failed"
    try:
        ledger.update_run(engine, run_id, status="failed")
    except sa.exc.SQLAlchemyError:
        pass  # the database is unreachable: the run stays "running" and can be resumed all the same


def choose_read(read: str, pending: list[Shard], bounds: dict[str, tuple[int, int, int]]) -> str:
    """How a run reads its pending shards: "scan" (the score tables in primary-key ranges, rows handed
    to the shards by cluster.workers.scan_range, rows of other users dropped) or "users" (each shard
    task reads its users through the userid index).

    `read` "auto" scans when the pending shards hold at least SCAN_MIN_SHARE of the tables' rows (a
    full run, a large tier, a large resume); a user list, a sample or a resume of a few shards reads by
    user.
    """
    if read in ("users", "scan"):
        return read
    total = sum(rows for _, _, rows in bounds.values())
    return "scan" if total and sum(s.rows for s in pending) >= SCAN_MIN_SHARE * total else "users"


def _wave_rows(config: BackfillConfig) -> int:
    """Rows per wave: `config.wave_rows`, else what a third of the cluster's object store holds."""
    if config.wave_rows:
        return config.wave_rows
    store = ray.cluster_resources().get("object_store_memory", 0)
    return max(1_000_000, int(store / 3 / SCANNED_ROW_BYTES))


@dataclass(slots=True)
class _Tally:
    """What the shard phase adds up for the summary: grants by family and full mode, summed task
    seconds per stage (`stage`), skips and their samples, stats-only candidates, the tasks' peak RSS
    (MB), the driver's write seconds and its phase walls (scan_wall, rate_wall, evaluate_wall)."""

    by_family: Counter = field(default_factory=lambda: Counter({family: 0 for family in FAMILIES}))
    by_full_mode: Counter = field(default_factory=Counter)
    stage: Counter = field(default_factory=Counter)
    skipped: Counter = field(default_factory=Counter)
    samples: dict = field(default_factory=dict)
    candidates: list = field(default_factory=list)
    max_rss: float = 0.0
    write_seconds: float = 0.0
    walls: Counter = field(default_factory=Counter)


class _ShardRunner:
    """The driver's side of the shard phase: scans a wave's rows (scan reads), runs its shard tasks with
    at most `in_flight` at once, and writes (or files) their grants as they arrive, filling the summary."""

    def __init__(self, config: BackfillConfig, engine: sa.Engine, run_id: str, as_of: int, read_stats: bool,
                 summary: RunSummary, log: db.RetryLog, raters: list, sink: _FileSink | None, bar: tqdm,
                 tally: _Tally, database: DatabaseRef) -> None:
        self.config, self.engine, self.run_id, self.as_of = config, engine, run_id, as_of
        self.summary, self.log, self.raters, self.sink, self.bar, self.tally = summary, log, raters, sink, bar, tally
        self.job = ShardJob(database, config.tables, config.achievement_ids, config.since, config.until,
                            read_stats, config.retry, config.samples_per_reason, config.engine)
        self.in_flight = config.max_in_flight or 2 * len(raters)
        self.rater_calls: list = []
        self.lookups: list | None = None  # object refs of the beatmaps and users lookups (read once per run)

    def track(self, shard: Shard, **values) -> None:
        if self.config.apply:
            db.retrying(lambda: ledger.update_shard(self.engine, self.run_id, shard.index, **values),
                        f"update progress of shard {shard.index}", self.config.retry, self.log, self.config.db_url)

    def fail(self, shard: Shard, exc: BaseException) -> None:
        message = db.mask_text(f"{type(exc).__name__}: {exc}", self.config.db_url)[-2000:]
        self.summary.shards_failed += 1
        self.summary.database_errors["failed_shards"].append({"shard": shard.index, "error": message[-500:]})
        self.track(shard, status="failed", error=message)
        self.bar.update(1)

    def scan(self, wave: list[Shard], ranges: list[ScanRange]) -> list[list] | None:
        """Read every range for the wave's shards: per shard, the object refs of its rows. The ranges'
        SR keys are queued at the raters as each range is read, and rated once the wave is read (a
        map's keys from all ranges together: `RaterActor.queue`, `rate_queued`). None if a range
        cannot be read (the wave's shards are then marked failed)."""
        started = time.perf_counter()
        parts: list[list] = [[] for _ in wave]
        queue, running = list(ranges), {}
        n = len(self.raters)
        if self.lookups is None:
            self.lookups = read_lookups.remote(self.job)
        wave_ref = ray.put(wave)  # once, not once per range (a scoped wave lists its users)
        while queue or running:
            while queue and len(running) < self.in_flight:
                scan = queue.pop(0)
                refs = scan_range.options(num_returns=len(wave) + n + 1).remote(self.job, scan, wave_ref, n, *self.lookups)
                running[refs[-1]] = refs
            done, _ = ray.wait(list(running), num_returns=1)
            refs = running.pop(done[0])
            try:
                outcome: ScanOutcome = ray.get(done[0])
            except (ray.exceptions.RayError, ClusterError, sa.exc.SQLAlchemyError) as exc:
                for ref in running:
                    ray.cancel(ref)
                for shard in wave:
                    self.fail(shard, exc)
                self.tally.walls["scan_wall"] += time.perf_counter() - started
                return None
            self.tally.stage.update(outcome.seconds)
            self.tally.max_rss = max(self.tally.max_rss, outcome.max_rss_mb)
            self.log.merge(outcome.retries)
            for position in range(len(wave)):
                parts[position].append(refs[position])
            self.rater_calls += [rater.queue.remote(keys) for rater, keys in zip(self.raters, refs[len(wave):-1])]
        self.rater_calls += [rater.rate_queued.remote() for rater in self.raters]
        self.tally.walls["scan_wall"] += time.perf_counter() - started
        return parts

    def wait_for_raters(self) -> None:
        """Wait until the raters have rated the keys queued so far (a wave's keys, rated before its shards
        are evaluated: the phases are timed apart, and evaluation does not compete with rating)."""
        started = time.perf_counter()
        ray.get(self.rater_calls)
        self.rater_calls = []
        self.tally.walls["rate_wall"] += time.perf_counter() - started

    def evaluate(self, wave: list[Shard], parts: list[list] | None) -> None:
        """Run the wave's shard tasks (on `parts` when scanned) and write their grants as they finish."""
        started, writes_before = time.perf_counter(), self.tally.write_seconds
        queue = list(zip(wave, parts if parts is not None else [[] for _ in wave]))
        running: dict = {}
        while queue or running:
            while queue and len(running) < self.in_flight:
                shard, shard_parts = queue.pop(0)
                self.track(shard, status="running", stage="evaluating", started_at=ledger.now(), error=None,
                           attempt=True)
                running[process_shard.remote(self.job, shard, self.raters, *shard_parts)] = shard
            done, _ = ray.wait(list(running), num_returns=1)
            shard = running.pop(done[0])
            try:
                outcome: ShardOutcome = ray.get(done[0])
            except (ray.exceptions.RayError, ClusterError, sa.exc.SQLAlchemyError) as exc:
                self.fail(shard, exc)
                continue
            self.write(shard, outcome)
            self.bar.update(1)
        self.tally.walls["evaluate_wall"] += time.perf_counter() - started - (self.tally.write_seconds - writes_before)

    def write(self, shard: Shard, outcome: ShardOutcome) -> None:
        config, summary = self.config, self.summary
        _add_outcome(summary, outcome, self.tally)
        self.log.merge(outcome.retries)
        fallback = _stats_only_rows(outcome, self.as_of, self.tally.candidates)
        write_started = time.perf_counter()
        rows = outcome.grants.to_pylist()
        if config.stats_fallback:
            rows += fallback
            summary.stats_fallback["granted"] += len(fallback)
        if rows and self.sink is not None:
            self.sink.write(pa.Table.from_pylist(rows, schema=GRANT_ARROW_SCHEMA))
        if config.apply:
            self.track(shard, stage="writing", rows_read=sum(outcome.rows_read.values()),
                       eligible=outcome.eligible, grants=len(rows), skipped=sum(outcome.skipped.values()),
                       db_retries=sum(outcome.retries.counts.values()))
            result = ledger.write_ledgered(
                self.engine, self.run_id, rows, source="score", shard=shard.index,
                batch_rows=config.write_batch_rows, retry=config.retry, log=self.log, url=config.db_url,
            )
            summary.already_present += result.present
            self.track(shard, status="done", stage="written", finished_at=ledger.now())
            pause_point("shard")
        self.tally.write_seconds += time.perf_counter() - write_started


def _process(
    config: BackfillConfig,
    engine: sa.Engine,
    run_id: str,
    as_of: int,
    pending: list[Shard],
    read_stats: bool,
    summary: RunSummary,
    log: db.RetryLog,
) -> None:
    """Evaluate the pending shards on Ray and write their grants as they arrive (fills `summary`)."""
    settings = RaterSettings(config.osu_location, config.engine, config.sr_cache, config.fetch_missing, config.fetch_rate)
    rater_stats: list[dict] = []
    tally = _Tally()
    phase = time.perf_counter()
    if pending:
        bounds = db.retrying(lambda: db.id_bounds(engine, config.tables), "read id bounds", config.retry, log,
                             config.db_url)
        summary.read_mode = choose_read(config.read, pending, bounds)
        started_ray = _start_ray(config)
        summary.seconds["ray_start"] = time.perf_counter() - phase
        cpus = int(ray.cluster_resources().get("CPU", 1))
        workers = max(1, min(config.workers, cpus))
        summary.workers = workers
        journal = RaterJournal.remote()
        raters = [RaterActor.remote(settings, index, workers, journal) for index in range(workers)]
        sink = _FileSink(config.out) if config.out is not None else None
        shared = contextlib.ExitStack()
        try:
            # the workers read the URL on their side: it never travels in task arguments
            database = shared.enter_context(credentials.shared_with_workers(config.db_url))
            ranges = plan_scan(bounds, config.scan_rows) if summary.read_mode == "scan" else []
            waves = plan_waves(pending, _wave_rows(config)) if ranges else [pending]
            summary.scan_ranges, summary.waves = len(ranges), len(waves)
            with tqdm(total=len(pending), unit="shard", disable=not config.progress, desc="shards") as bar:
                runner = _ShardRunner(config, engine, run_id, as_of, read_stats, summary, log, raters, sink, bar, tally,
                                      database)
                for wave in waves:
                    parts = runner.scan(wave, ranges) if ranges else None
                    if ranges and parts is None:
                        continue  # the wave's shards are marked failed; a resume reads them again
                    runner.wait_for_raters()
                    runner.evaluate(wave, parts)
            ray.get(runner.rater_calls)
            ray.get([rater.flush.remote() for rater in raters])
            rater_stats = ray.get([rater.stats.remote() for rater in raters])
            summary.engine_crashes = ray.get(journal.report.remote())
        finally:
            shared.close()
            if sink is not None:
                sink.close()
            for actor in (*raters, journal):
                ray.kill(actor)
            if started_ray:
                ray.shutdown()
    summary.seconds["shards"] = time.perf_counter() - phase - tally.write_seconds
    summary.seconds["write"] = tally.write_seconds

    summary.engine = rater_stats[0]["engine"] if rater_stats else {}
    summary.sr_keys = sum(stats["keys"] for stats in rater_stats)
    summary.sr_calculations = sum(stats["calculations"] for stats in rater_stats)
    summary.sr_cache_hits = sum(stats["cache_hits"] for stats in rater_stats)
    summary.max_rss_mb = {
        "driver": round(peak_rss_mb(), 1),
        "raters": round(max((stats["max_rss_mb"] for stats in rater_stats), default=0.0), 1),
        "shard_tasks": round(tally.max_rss, 1),
    }
    summary.beatmaps_downloaded = sum(stats["downloads"] for stats in rater_stats)
    for stats in rater_stats:
        for reason, count in stats["errors"].items():
            summary.sr_errors[reason] = summary.sr_errors.get(reason, 0) + count
    summary.grants = {
        "total": sum(tally.by_family.values()),
        "by_family": {family: tally.by_family[family] for family in FAMILIES},
        "by_full_mode": {str(mode): tally.by_full_mode[mode] for mode in sorted(tally.by_full_mode)},
    }
    summary.skipped = {reason: tally.skipped[reason] for reason in sorted(tally.skipped)}
    summary.skip_samples = [row for reason in sorted(tally.samples) for row in tally.samples[reason]]
    _summarize_stats_only(summary, tally.candidates)
    summary.out = str(config.out) if config.out is not None else None
    stage = tally.stage
    summary.seconds.update(
        scan=stage["scan"] + stage["split"], read=stage["read"], prepare=stage["prepare"],
        rate=sum(stats["seconds"] for stats in rater_stats), evaluate=stage["evaluate"], **tally.walls,
    )


def _add_outcome(summary: RunSummary, outcome: ShardOutcome, tally: _Tally) -> None:
    for name, count in outcome.rows_read.items():
        summary.rows_read[name] = summary.rows_read.get(name, 0) + count
    summary.eligible_scores += outcome.eligible
    for reason, count in outcome.ineligible.items():
        summary.ineligible[reason] = summary.ineligible.get(reason, 0) + count
    summary.scores_without_sr += outcome.without_sr
    summary.already_held += outcome.already_held
    tally.by_family.update(outcome.by_family)
    tally.by_full_mode.update(outcome.by_full_mode)
    tally.stage.update(outcome.seconds)
    tally.skipped.update(outcome.skipped)
    tally.max_rss = max(tally.max_rss, outcome.max_rss_mb)
    for row in (outcome.skip_samples.to_pylist() if outcome.skip_samples is not None else ()):
        kept = tally.samples.setdefault(row["reason"], [])
        if len(kept) < SKIP_SAMPLES_PER_REASON:
            kept.append({"reason": row["reason"], "table": row["source"], "score_id": row["score_id"],
                         "user_id": row["user_id"], "beatmap_md5": row["beatmap_md5"]})


def _stats_only_rows(outcome: ShardOutcome, as_of: int, candidates: list[dict]) -> list[dict]:
    """Collect a shard's stats-only candidates; return them as grants dated `as_of` (the run's time)."""
    if outcome.stats_only is None or outcome.stats_only.num_rows == 0:
        return []
    rows = outcome.stats_only.to_pylist()
    candidates.extend(rows)
    return [
        {"user_id": r["user_id"], "achievement_id": r["achievement_id"], "mode": r["mode"], "created_at": as_of,
         "score_id": None, "sr": None, "playcount": r["playcount"], "total_hits": r["total_hits"],
         "source": "stats_now"}
        for r in rows
    ]


def _summarize_stats_only(summary: RunSummary, candidates: list[dict]) -> None:
    by_achievement = Counter(r["achievement_id"] for r in candidates)
    summary.stats_fallback.update(
        candidates=len(candidates),
        users=len({r["user_id"] for r in candidates}),
        by_achievement={str(a): by_achievement[a] for a in sorted(by_achievement)},
    )
    summary.stats_only_rows = sorted(candidates, key=lambda r: (r["achievement_id"], r["mode"], r["user_id"]))


def _finish_summary(summary: RunSummary, log: db.RetryLog, started: float) -> None:
    summary.database_errors["retries"] = {str(code): n for code, n in sorted(log.counts.items())}
    summary.database_errors["samples"] = list(log.samples)
    summary.seconds["total"] = time.perf_counter() - started
    summary.seconds = {name: round(value, 3) for name, value in summary.seconds.items()}
