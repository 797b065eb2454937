"""The backfill run: plan shards, start raters, evaluate shards on Ray, write grants as they arrive.

Data flows one way: read (each shard task reads its users' rows as Arrow) -> rate (rater actors,
once per unique SR key) -> evaluate (polars, in the shard task) -> write (the driver, in batches).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import ray
import sqlalchemy as sa
from tqdm import tqdm

from cluster import db
from cluster.schema import SCORE_TABLES
from cluster.shards import plan_shards
from cluster.workers import RaterActor, ShardOutcome, process_shard
from conditions.catalogue import FAMILIES, load_catalogue
from conditions.evaluate import GRANT_SCHEMA, INELIGIBLE_REASONS
from sr.engine import DEFAULT_ENGINE, engine_named
from sr.errors import REASONS

REQUIRED_TABLES = ("beatmaps", "users", "users_achievements")
GRANT_ARROW_SCHEMA = pa.schema([(name, pa.int64()) for name in GRANT_SCHEMA])


class ConfigError(Exception):
    """The run cannot start: a missing table, a bad output path, an unknown engine. Raised before any
    shard starts."""


@dataclass(frozen=True, slots=True)
class BackfillConfig:
    """One backfill run.

    db_url:        SQLAlchemy URL (mysql+pymysql://... or sqlite:///...); never printed unmasked.
    osu_location:  the .osu store: a directory of {beatmap_id}.osu or a pyarrow.fs URI.
    apply:         insert grants into users_achievements; otherwise write nothing to the database.
    out:           dry-run file for the grants (.parquet or .csv), optional.
    workers:       rater actors (processes); clamped to the Ray cluster's CPUs.
    shard_rows:    target score rows per shard.
    """

    db_url: str
    osu_location: str
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


@dataclass(slots=True)
class RunSummary:
    """Counts and timings of a run (the summary printed and the --report JSON).

    seconds: wall seconds of the driver's phases (plan, shards, write, total) and summed worker
    seconds per stage (read, prepare, rate, evaluate).
    """

    database: str
    engine: dict
    dry_run: bool
    workers: int = 0
    shards: int = 0
    rows_read: dict = field(default_factory=lambda: {name: 0 for name in SCORE_TABLES})
    eligible_scores: int = 0
    ineligible: dict = field(default_factory=lambda: {reason: 0 for reason in INELIGIBLE_REASONS})
    scores_without_sr: int = 0
    sr_keys: int = 0
    sr_calculations: int = 0
    sr_errors: dict = field(default_factory=lambda: {reason: 0 for reason in REASONS})
    grants: dict = field(default_factory=dict)
    already_held: int = 0
    grants_written: int = 0
    out: str | None = None
    seconds: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


class _FileSink:
    """Streams grants to a Parquet or CSV file (by extension)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".parquet":
            self.writer = pq.ParquetWriter(path, GRANT_ARROW_SCHEMA)
        else:
            self.writer = pacsv.CSVWriter(path, GRANT_ARROW_SCHEMA)

    def write(self, grants: pa.Table) -> None:
        self.writer.write_table(grants.cast(GRANT_ARROW_SCHEMA))

    def close(self) -> None:
        self.writer.close()


def check_config(config: BackfillConfig, engine: sa.Engine) -> None:
    """Stop before any work if the run cannot be right. Raises ConfigError."""
    if config.out is not None and config.out.suffix not in (".parquet", ".csv"):
        raise ConfigError(f"--out must end in .parquet or .csv, got {config.out.name}")
    unknown_tables = set(config.tables) - set(SCORE_TABLES)
    if unknown_tables:
        raise ConfigError(f"unknown score tables: {', '.join(sorted(unknown_tables))}")
    try:
        engine_named(config.engine)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    try:
        present = set(sa.inspect(engine).get_table_names())
    except sa.exc.SQLAlchemyError as exc:
        raise ConfigError(f"cannot reach the database {db.mask_url(config.db_url)}: {exc.__class__.__name__}") from exc
    missing = [name for name in (*REQUIRED_TABLES, *config.tables) if name not in present]
    if missing:
        raise ConfigError(f"missing tables in {db.mask_url(config.db_url)}: {', '.join(missing)}")
    catalogue = load_catalogue()  # raises ConditionError for a condition that does not compile
    if config.achievement_ids:
        unknown_ids = set(config.achievement_ids) - set(catalogue.by_id)
        if unknown_ids:
            raise ConfigError(f"unknown achievement ids: {sorted(unknown_ids)}")


def _start_ray(config: BackfillConfig) -> bool:
    """Connect to Ray (the given address, a running instance, or a new local one). True if started here."""
    if ray.is_initialized():
        return False
    if config.ray_address:
        ray.init(address=config.ray_address, log_to_driver=False)
    else:
        ray.init(num_cpus=config.workers, include_dashboard=False, log_to_driver=False)
    return True


def run_backfill(config: BackfillConfig) -> RunSummary:
    """Run the backfill described by `config` and return its summary.

    Raises ConfigError (before any shard starts) for a run that cannot be right. Bad input inside the
    data (unknown beatmaps, bad maps, failed ratings) is counted in the summary, never raised.
    """
    started = time.perf_counter()
    engine = db.connect(config.db_url)
    check_config(config, engine)
    summary = RunSummary(database=db.mask_url(config.db_url), engine={}, dry_run=not config.apply)
    by_family = Counter({family: 0 for family in FAMILIES})
    by_full_mode: Counter = Counter()
    stage: Counter = Counter()

    phase = time.perf_counter()
    shards = plan_shards(db.count_rows_by_user(engine, config.tables), config.shard_rows)
    summary.shards = len(shards)
    summary.seconds["plan"] = time.perf_counter() - phase

    started_ray = _start_ray(config)
    cpus = int(ray.cluster_resources().get("CPU", 1))
    workers = max(1, min(config.workers, cpus))
    summary.workers = workers
    raters = [RaterActor.remote(config.osu_location, config.engine) for _ in range(workers)]
    sink = _FileSink(config.out) if config.out is not None else None
    try:
        phase = time.perf_counter()
        write_seconds = 0.0
        in_flight_limit = config.max_in_flight or 2 * workers
        queue = list(shards)
        running: list = []
        with tqdm(total=len(shards), unit="shard", disable=not config.progress, desc="shards") as bar:
            while queue or running:
                while queue and len(running) < in_flight_limit:
                    shard = queue.pop(0)
                    running.append(
                        process_shard.remote(config.db_url, shard, raters, config.tables, config.achievement_ids)
                    )
                done, running = ray.wait(running, num_returns=1)
                outcome: ShardOutcome = ray.get(done[0])
                for name, count in outcome.rows_read.items():
                    summary.rows_read[name] = summary.rows_read.get(name, 0) + count
                summary.eligible_scores += outcome.eligible
                for reason, count in outcome.ineligible.items():
                    summary.ineligible[reason] = summary.ineligible.get(reason, 0) + count
                summary.scores_without_sr += outcome.without_sr
                summary.already_held += outcome.already_held
                by_family.update(outcome.by_family)
                by_full_mode.update(outcome.by_full_mode)
                stage.update(outcome.seconds)
                write_started = time.perf_counter()
                if outcome.grants.num_rows:
                    if sink is not None:
                        sink.write(outcome.grants)
                    if config.apply:
                        summary.grants_written += db.write_grants(engine, outcome.grants, config.write_batch_rows)
                write_seconds += time.perf_counter() - write_started
                bar.update(1)
        summary.seconds["shards"] = time.perf_counter() - phase - write_seconds
        summary.seconds["write"] = write_seconds

        rater_stats = ray.get([rater.stats.remote() for rater in raters])
    finally:
        if sink is not None:
            sink.close()
        for rater in raters:
            ray.kill(rater)
        if started_ray:
            ray.shutdown()
        engine.dispose()

    summary.engine = rater_stats[0]["engine"] if rater_stats else {}
    summary.sr_keys = sum(stats["keys"] for stats in rater_stats)
    summary.sr_calculations = sum(stats["calculations"] for stats in rater_stats)
    for stats in rater_stats:
        for reason, count in stats["errors"].items():
            summary.sr_errors[reason] = summary.sr_errors.get(reason, 0) + count
    summary.grants = {
        "total": sum(by_family.values()),
        "by_family": {family: by_family[family] for family in FAMILIES},
        "by_full_mode": {str(mode): by_full_mode[mode] for mode in sorted(by_full_mode)},
    }
    summary.out = str(config.out) if config.out is not None else None
    summary.seconds.update(
        read=stage["read"],
        prepare=stage["prepare"],
        rate=sum(stats["seconds"] for stats in rater_stats),
        evaluate=stage["evaluate"],
        total=time.perf_counter() - started,
    )
    summary.seconds = {name: round(value, 3) for name, value in summary.seconds.items()}
    return summary
