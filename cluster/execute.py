"""Stage 3 of a run, execute: scan, rate, evaluate and write, on Ray.

Data flows one way: read (a table scan in id ranges handing rows to the shards, or each shard task
reading its users through the userid index) -> rate (rater actors, once per unique SR key) -> evaluate
(polars, in the shard task) -> write (the driver, in ledgered batches, or a dry run's file). Shards go in
waves, so that only one wave's scanned rows wait in the object store: a wave's ranges are read and its
keys queued at the raters, the raters rate them map by map, then the wave's shard tasks evaluate and
their grants are written as they arrive.

Every write batch is ledgered with its progress counts in one transaction (cluster.ledger), so a run
killed at any point is resumed exactly. A shard whose reads deliver fewer rows of a table than its
users held when the run planned is failed unwritten (ScanShort): no table is passed over silently.

Beside live traffic (the block at the end of this module): an applied run's writes ask one write
governor (cluster.governor.GovernorActor) for every batch, fed by the collectors of cluster.control
(heartbeat, lag replicas, Threads_running, the control row); the reads go to the read database
(ShardJob.read_url); cluster.progress prints progress lines (no terminal) or the bar's state, and
publishes the run's status.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import ray
import sqlalchemy as sa
from tqdm import tqdm

from cluster import actors, control, credentials, db, ledger, software
from cluster.credentials import DatabaseRef
from cluster.context import SKIP_SAMPLES_PER_REASON, BackfillConfig, RunContext
from cluster.errors import ClusterError, DatabaseUnavailable, RunLockLost, ScanShort
from cluster.governor import GovernorActor, Sources
from cluster.pauses import pause_env
from cluster.plan import RunPlan
from cluster.progress import Progress, Reporter
from cluster.shards import Shard, plan_waves
from cluster.workers import (
    RaterActor, RaterJournal, RaterSettings, ScanOutcome, ScanRangeRefs, ShardJob, ShardOutcome, read_lookups, process_shard,
)
from cluster.writers import WriteOutcome, WriterSettings, default_writers, start_writers
from conditions.catalogue import FAMILIES
from conditions.evaluate import GRANT_SCHEMA

GRANT_ARROW_SCHEMA = pa.schema([(name, pa.int64()) for name in GRANT_SCHEMA])
# CPUs the default --workers leaves to the scan and shard (evaluate) tasks and the writers: those tasks
# reserve no CPU in Ray (they mostly wait on the database and the raters), but their polars work and the
# writes need about a core of their own (docs/SCALING.md, cost model).
SCAN_EVALUATE_CPUS = 1
SCANNED_ROW_BYTES = 250  # object-store bytes of one scanned row (SCORE_ARROW_SCHEMA), for sizing waves
OUT_ORDER = ("user_id", "mode", "achievement_id")
"""The row order of a dry run's grants file, whatever order the shards finish in."""
RAY_ERRORS = (ray.exceptions.RayError, ClusterError, sa.exc.SQLAlchemyError)
"""What a scan or shard task may fail with: the task's shards are then failed (a resume retries them)."""


@dataclass(slots=True)
class Tally:
    """What the execute stage adds up for the summary (cluster.finish).

    workers / scan_ranges / waves: raters started, id ranges scanned, waves run. rows_read: per table.
    eligible, ineligible (by reason), without_sr, already_held: the shards' evaluation counts.
    already_present: grants INSERT IGNORE skipped (the row appeared since evaluation).
    by_family / by_full_mode: score grants; would_grant: by id, what achievements the live server never
    grants (120) would grant. stage: summed task seconds per stage. skipped / samples:
    scores skipped for bad data, by reason, and the SKIP_SAMPLES_PER_REASON smallest score ids of each.
    candidates: stats-only candidates; fallback_granted: those granted (--stats-fallback now).
    failed_shards: {shard, kind, error} (the exception's type, its masked message). writers: writer actors; grants_sent / write_batches: grants the
    writers were given, inserted and batches they committed; throttled: seconds writers waited for the governor,
    by reason. max_rss: the tasks' peak RSS (MB). walls: the driver's phase seconds (ray_start,
    scan_wall, rate_wall, evaluate_wall, shards; write: the seconds in which at least one write was in
    flight). rater_stats: each rater's
    `RaterActor.stats()`. reads: the readers of every read and ConnectorX fallbacks (cluster.db.ReadLog).
    nodes: the Ray nodes that reported the driver's engine versions (cluster.software). engine_crashes:
    rater restarts and quarantined keys (cluster.workers.RaterJournal.report). governor: the write governor's final
    `WriteGovernor.status()` ({} when the run had none: a dry run, an ungoverned run); watch_errors:
    collector errors by collector.
    """

    workers: int = 0
    scan_ranges: int = 0
    waves: int = 0
    rows_read: Counter = field(default_factory=Counter)
    eligible: int = 0
    ineligible: Counter = field(default_factory=Counter)
    without_sr: int = 0
    already_held: int = 0
    already_present: int = 0
    by_family: Counter = field(default_factory=lambda: Counter({family: 0 for family in FAMILIES}))
    by_full_mode: Counter = field(default_factory=Counter)
    would_grant: Counter = field(default_factory=Counter)
    stage: Counter = field(default_factory=Counter)
    skipped: Counter = field(default_factory=Counter)
    samples: dict = field(default_factory=dict)
    candidates: list = field(default_factory=list)
    fallback_granted: int = 0
    failed_shards: list = field(default_factory=list)
    writers: int = 0
    grants_sent: int = 0
    grants_inserted: int = 0
    write_batches: int = 0
    throttled: Counter = field(default_factory=Counter)
    max_rss: float = 0.0
    walls: Counter = field(default_factory=Counter)
    rater_stats: list = field(default_factory=list)
    reads: db.ReadLog = field(default_factory=db.ReadLog)
    nodes: list = field(default_factory=list)
    engine_crashes: dict = field(default_factory=lambda: {"restarts": 0, "by_rater": {}, "quarantined": []})
    governor: dict = field(default_factory=dict)
    watch_errors: dict = field(default_factory=dict)

    def add(self, outcome: ShardOutcome) -> None:
        """Add one evaluated shard's counts (its grants are written separately)."""
        self.rows_read.update(outcome.rows_read)
        self.eligible += outcome.eligible
        self.ineligible.update(outcome.ineligible)
        self.without_sr += outcome.without_sr
        self.already_held += outcome.already_held
        self.by_family.update(outcome.by_family)
        self.by_full_mode.update(outcome.by_full_mode)
        self.would_grant.update(outcome.would_grant)
        self.stage.update(outcome.seconds)
        self.skipped.update(outcome.skipped)
        self.max_rss = max(self.max_rss, outcome.max_rss_mb)
        self.reads.merge(outcome.reads)
        for row in (outcome.skip_samples.to_pylist() if outcome.skip_samples is not None else ()):
            kept = self.samples.setdefault(row["reason"], [])
            kept.append({"reason": row["reason"], "table": row["source"], "score_id": row["score_id"],
                         "user_id": row["user_id"], "beatmap_md5": row["beatmap_md5"]})
            # the smallest score ids (unique across the tables), whatever order the shards finish in
            kept.sort(key=lambda sample: sample["score_id"])
            del kept[SKIP_SAMPLES_PER_REASON:]


def execute_run(ctx: RunContext, plan: RunPlan) -> Tally:
    """Run the pending shards of `plan` on Ray (a local instance, or `config.ray_address`) and write their
    grants as they arrive. Returns the tally. Raises DatabaseUnavailable when a write keeps failing (the
    run can be resumed); a shard whose task fails is counted in `failed_shards`, and the run goes on."""
    tally = Tally()
    if not plan.pending:
        return tally
    config = ctx.config
    refused = db.connectorx_source(ctx.db.engine).refused
    if refused:
        print(f"reader: {ctx.db.mask(refused)}; reading with SQLAlchemy (slower)", flush=True)
    phase = time.perf_counter()
    started_ray = _start_ray(config)
    tally.walls["ray_start"] = time.perf_counter() - phase
    try:  # before any rater or shard starts: every node runs the driver's engine versions
        nodes = software.check_nodes()
    except BaseException:
        if started_ray:
            ray.shutdown()
        raise
    tally.nodes = [{"address": n["address"], "lock_sha256": n["lock_sha256"]} for n in nodes]
    tally.workers, why = choose_workers(config.workers, int(ray.cluster_resources().get("CPU", 1)))
    print(f"workers: {tally.workers} raters ({why})", flush=True)
    settings = RaterSettings(config.osu_location, config.engine, config.sr_cache, config.fetch_missing, config.fetch_rate)
    # the raters and writers restart on other nodes: they get the shared actors' names, not handles
    journal, journal_name = actors.start_named(RaterJournal, "journal")
    raters = [RaterActor.remote(settings, index, tally.workers, journal_name) for index in range(tally.workers)]
    sink = _FileSink(config.out) if config.out is not None else None
    writers, shared, governor, governor_name = [], contextlib.ExitStack(), None, None
    terminal = config.progress and sys.stderr.isatty()
    try:
        if ctx.apply and config.governed:
            governor, governor_name = _start_governor(ctx)
        # the workers read the URL on their side (cluster.credentials): it never travels in task arguments
        database = shared.enter_context(credentials.shared_with_workers(config.db_url))
        read_database = (shared.enter_context(credentials.shared_with_workers(config.read_url))
                         if config.read_url and config.read_url != config.db_url else None)
        if ctx.apply:
            writers = _start_writers(ctx, tally, database, governor_name)
        waves = plan_waves(list(plan.pending), _wave_rows(config)) if plan.ranges else [list(plan.pending)]
        tally.scan_ranges, tally.waves = len(plan.ranges), len(waves)
        with tqdm(total=len(plan.pending), unit="shard", disable=not terminal, desc="shards") as bar, \
                _live(ctx, plan, governor, bar if terminal else None, tally) as progress:
            execution = _Execution(ctx, plan, database, read_database, raters, writers, sink, bar, tally, progress)
            for wave in waves:
                execution.run_wave(wave)
            execution.collect_writes(until=0)
            tally.rater_stats = execution.finish_raters()
            tally.engine_crashes = ray.get(journal.report.remote())
            execution.collect_lookup_reads()
    finally:
        shared.close()
        if sink is not None:
            sink.close()
        for actor in (*raters, journal, *writers, *([governor] if governor is not None else [])):
            ray.kill(actor)
        if started_ray:
            ray.shutdown()
    tally.walls["shards"] = time.perf_counter() - phase - tally.walls["ray_start"]
    return tally


def _start_writers(ctx: RunContext, tally: Tally, database: DatabaseRef, governor: str | None) -> list:
    """The applied run's writer actors (`--writers`, default one per node and at least 2), sharing the
    run's write governor (the GovernorActor's name; None: an ungoverned run writes `--batch-rows` batches
    as fast as it can); `database` tells the writers where to find the URL (never the URL itself)."""
    config = ctx.config
    tally.writers = config.writers or default_writers()
    token = ctx.lock.token() if ctx.lock is not None else None
    settings = WriterSettings(database, ctx.run_id, config.write_batch_rows, config.retry, token)
    return start_writers(settings, tally.writers, governor, pause_env())


def choose_workers(requested: int | None, cluster_cpus: int) -> tuple[int, str]:
    """The rater actors of a run on a Ray cluster offering `cluster_cpus` CPUs, and why (printed).

    `requested` (--workers) is clamped to the cluster's CPUs (a rater reserves one); None: the
    cluster's CPUs less SCAN_EVALUATE_CPUS, at least 1.
    """
    cpus = max(1, int(cluster_cpus))
    if requested is None:
        workers = max(1, cpus - SCAN_EVALUATE_CPUS)
        kept = cpus - workers
        return workers, (f"the Ray cluster's {cpus} CPUs" + (f" less {kept} for the scan and evaluate tasks" if kept
                         else "") + "; set --workers to choose")
    if requested > cpus:
        return cpus, f"--workers {requested}, clamped to the Ray cluster's {cpus} CPUs"
    return max(1, requested), f"--workers {requested}, of the Ray cluster's {cpus} CPUs"


def _start_ray(config: BackfillConfig) -> bool:
    """Connect to Ray (the given address, a running instance, or a new local one). True if started here."""
    if ray.is_initialized():
        return False
    if config.ray_address:
        ray.init(address=config.ray_address, log_to_driver=False)
    else:
        # a new local instance, even when another cluster runs on this machine (use --ray-address for one)
        ray.init(address="local", num_cpus=config.workers or os.cpu_count() or 1, include_dashboard=False,
                 log_to_driver=False)
    return True


def _wave_rows(config: BackfillConfig) -> int:
    """Rows per wave: `config.wave_rows`, else what a third of the cluster's object store holds."""
    if config.wave_rows:
        return config.wave_rows
    store = ray.cluster_resources().get("object_store_memory", 0)
    return max(1_000_000, int(store / 3 / SCANNED_ROW_BYTES))


class _FileSink:
    """Collects grants as shards finish (spooled to a Parquet file beside `path`) and, on `close`,
    writes them to `path` (Parquet or CSV, by extension; GRANT_ARROW_SCHEMA columns) sorted by
    OUT_ORDER, so that the same run gives the same bytes with any number of workers."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.spool = path.with_name(f".{path.name}.unsorted.parquet")
        self.writer = pq.ParquetWriter(self.spool, GRANT_ARROW_SCHEMA)

    def write(self, grants: pa.Table) -> None:
        self.writer.write_table(grants.select(GRANT_ARROW_SCHEMA.names).cast(GRANT_ARROW_SCHEMA))

    def close(self) -> None:
        self.writer.close()
        ordered = pl.read_parquet(self.spool).sort(list(OUT_ORDER)).to_arrow().cast(GRANT_ARROW_SCHEMA)
        if self.path.suffix == ".parquet":
            pq.write_table(ordered, self.path)
        else:
            pacsv.write_csv(ordered, self.path)
        self.spool.unlink()


WRITE_ATTEMPTS = 4  # writers one shard's write is handed to before its shard fails


@dataclass(slots=True)
class _Write:
    """One shard's write as the driver tracks it: what a writer needs, and how many writers got it."""

    shard: Shard
    grants: ray.ObjectRef
    extra: list
    update: ledger.ShardUpdate
    rows_read: int = 0  # the shard's evaluation counts, for the progress reporter once it is written
    skipped: Counter = field(default_factory=Counter)
    retries: Counter = field(default_factory=Counter)
    attempts: int = 0


class _Execution:
    """The driver's side of the execute stage: scans a wave's id ranges (scan reads), waits for the
    raters, runs the wave's shard tasks with at most `in_flight` at once, and hands each evaluated
    shard's grants to a writer (an applied run) and/or the dry run's file as it arrives, adding up
    `tally`. Writes overlap the evaluation of later shards; at most two per writer wait at a time."""

    def __init__(self, ctx: RunContext, plan: RunPlan, database: DatabaseRef, read_database: DatabaseRef | None,
                 raters: list, writers: list, sink: _FileSink | None, bar: tqdm, tally: Tally,
                 progress: Progress | None = None) -> None:
        self.ctx, self.plan, self.raters, self.writers = ctx, plan, raters, writers
        self.sink, self.bar, self.tally = sink, bar, tally
        self.progress = progress or _progress(ctx, plan)
        config = ctx.config
        self.job = ShardJob(database, config.tables, config.achievement_ids, config.since, config.until,
                            ctx.read_stats, config.retry, config.samples_per_reason, config.engine,
                            read_database=read_database)
        self.in_flight = config.max_in_flight or 2 * len(raters)
        self.expected = plan.expected_rows()
        self.rater_calls: list = []
        self.lookups: list | None = None  # object refs of the beatmaps and users lookups (read once per run)
        self.lookup_reads = None  # object ref of the lookups' ReadLog
        self.writes: dict = {}  # write ref -> shard, in flight at the writers
        self.next_writer = 0
        self.writing_since: float | None = None  # when writes went from none in flight to some

    def run_wave(self, wave: list[Shard]) -> None:
        """Scan (when the plan scans), rate and evaluate one wave; its grants are written as they arrive."""
        parts = self.scan(wave) if self.plan.ranges else [[] for _ in wave]
        if parts is None:
            return  # the wave's shards are marked failed; a resume reads them again
        self.wait_for_raters()
        self.evaluate(wave, parts)

    def scan(self, wave: list[Shard]) -> list[list] | None:
        """Read every range for the wave's shards: per shard, the object refs of its rows. The ranges'
        SR keys are queued at the raters as each range is read, and rated once the wave is read (a
        map's keys from all ranges together: `RaterActor.queue`, `rate_queued`). None if a range
        cannot be read (the wave's shards are then marked failed)."""
        started = time.perf_counter()
        parts: list[list] = [[] for _ in wave]
        queue, running = list(self.plan.ranges), {}
        if self.lookups is None:
            *self.lookups, self.lookup_reads = read_lookups.remote(self.job)
        wave_ref = ray.put(wave)  # once, not once per range (a scoped wave lists its users)
        while queue or running:
            while queue and len(running) < self.in_flight:
                refs = ScanRangeRefs.launch(self.job, queue.pop(0), wave_ref, len(wave), len(self.raters), self.lookups)
                running[refs.outcome] = refs
            done, _ = ray.wait(list(running), num_returns=1)
            refs = running.pop(done[0])
            try:
                outcome: ScanOutcome = ray.get(refs.outcome)
            except RAY_ERRORS as exc:
                for ref in running:
                    ray.cancel(ref)
                for shard in wave:
                    self.fail(shard, exc)
                self.tally.walls["scan_wall"] += time.perf_counter() - started
                return None
            self.tally.stage.update(outcome.seconds)
            self.tally.max_rss = max(self.tally.max_rss, outcome.max_rss_mb)
            self.tally.reads.merge(outcome.reads)
            self.ctx.db.log.merge(outcome.retries)
            for position, rows in enumerate(refs.shard_rows):
                parts[position].append(rows)
            self.rater_calls += [rater.queue.remote(keys) for rater, keys in zip(self.raters, refs.rater_keys)]
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

    def evaluate(self, wave: list[Shard], parts: list[list]) -> None:
        """Run the wave's shard tasks (on `parts` when scanned) and send their grants on as they finish."""
        started = time.perf_counter()
        queue = list(zip(wave, parts))
        running: dict = {}
        while queue or running:
            while queue and len(running) < self.in_flight:
                shard, shard_parts = queue.pop(0)
                self.track(shard, status="running", stage="evaluating", started_at=ledger.now(), clear_error=True,
                           attempt=True)
                grants, outcome = process_shard.remote(self.job, shard, self.raters, *shard_parts)
                running[outcome] = (shard, grants)
            done, _ = ray.wait(list(running), num_returns=1)
            shard, grants = running.pop(done[0])
            try:
                outcome: ShardOutcome = ray.get(done[0])
            except RAY_ERRORS as exc:
                self.fail(shard, exc)
                continue
            short = self.short_read(shard, outcome)
            if short is not None:
                self.fail(shard, short)
                continue
            self.send(shard, grants, outcome)
            self.collect_writes(until=2 * len(self.writers))
        self.tally.walls["evaluate_wall"] += time.perf_counter() - started

    def short_read(self, shard: Shard, outcome: ShardOutcome) -> ScanShort | None:
        """A ScanShort when the shard's reads delivered fewer rows of a table than its users held when the
        run planned (the shard is then failed unwritten, and a resume reads it again); else None."""
        for name, expected in self.expected.get(shard.index, {}).items():
            read = outcome.rows_read.get(name, 0)
            if read < expected:
                return ScanShort(name, expected, read, shard.index)
        return None

    def send(self, shard: Shard, grants: ray.ObjectRef, outcome: ShardOutcome) -> None:
        """Pass one evaluated shard on: its grants (and, with --stats-fallback now, its stats-only grants)
        to a writer (an applied run: the writer marks the shard done) and/or to the dry run's file."""
        ctx, tally = self.ctx, self.tally
        tally.add(outcome)
        tally.grants_sent += sum(outcome.by_family.values())
        ctx.db.log.merge(outcome.retries)
        fallback = _stats_only_grants(outcome, ctx.as_of, tally.candidates)
        extra = fallback if ctx.config.stats_fallback else []
        tally.fallback_granted += len(extra)
        tally.grants_sent += len(extra)
        if self.sink is not None:
            table = ray.get(grants)
            self.sink.write(table)
            if extra:
                self.sink.write(pa.Table.from_pylist(extra, schema=GRANT_ARROW_SCHEMA))
        rows_read, grants_found = sum(outcome.rows_read.values()), sum(outcome.by_family.values()) + len(extra)
        if not ctx.apply:
            self.progress.shard_done(rows_read, grants_found, outcome.skipped, outcome.retries.counts)
            self.bar.update(1)
            return
        update = ledger.ShardUpdate(stage="writing", rows_read=sum(outcome.rows_read.values()),
                                    eligible=outcome.eligible, skipped=sum(outcome.skipped.values()),
                                    db_retries=sum(outcome.retries.counts.values()))
        if not self.writes:
            self.writing_since = time.perf_counter()
        self.dispatch(_Write(shard, grants, extra, update, rows_read, outcome.skipped, outcome.retries.counts))

    def dispatch(self, write: _Write) -> None:
        """Hand a write to the next writer (round robin)."""
        writer = self.writers[self.next_writer % len(self.writers)]
        self.next_writer += 1
        write.attempts += 1
        self.writes[writer.write.remote(write.shard, write.grants, write.extra, write.update)] = write

    def collect_writes(self, until: int) -> None:
        """Take the finished writes; wait while more than `until` are in flight (0: wait for all).
        Raises DatabaseUnavailable (a batch kept failing) and RunLockLost (the driver no longer holds the
        run's lock): the run stops, resumable. A write whose writer died (killed, or its node lost) is
        handed to the next writer, up to WRITE_ATTEMPTS times in all, then its shard fails."""
        while self.writes:
            ready, _ = ray.wait(list(self.writes), num_returns=1, timeout=None if len(self.writes) > until else 0)
            if not ready:
                return
            write = self.writes.pop(ready[0])
            shard = write.shard
            try:
                result: WriteOutcome = ray.get(ready[0])
            except ray.exceptions.RayTaskError as exc:
                if isinstance(exc.cause, (DatabaseUnavailable, RunLockLost)):
                    raise exc.cause from None  # the run stops (resumable)
                self.fail(shard, exc)
            except ray.exceptions.RayActorError as exc:  # its writer died (killed, its node lost)
                if write.attempts < WRITE_ATTEMPTS:
                    self.dispatch(write)  # exact: the committed batches' rows are skipped, the rest written
                else:
                    self.fail(shard, exc)
            except RAY_ERRORS as exc:
                self.fail(shard, exc)
            else:
                self.tally.already_present += result.present
                self.tally.grants_inserted += result.inserted
                self.tally.write_batches += result.batches
                self.tally.throttled.update(result.waited)
                self.ctx.db.log.merge(result.retries)
                self.progress.shard_done(write.rows_read, result.inserted, write.skipped, write.retries)
                self.bar.update(1)
            if not self.writes and self.writing_since is not None:
                self.tally.walls["write"] += time.perf_counter() - self.writing_since
                self.writing_since = None

    def fail(self, shard: Shard, exc: BaseException) -> None:
        """Count a shard whose task failed (or whose reads came short): nothing of it is written; an applied
        run marks it failed, and a resume evaluates it again."""
        message = self.ctx.db.mask(f"{type(exc).__name__}: {exc}")[-2000:]
        cause = getattr(exc, "cause", None) or exc  # a task's own exception, not Ray's wrapper and traceback
        kind = type(cause).__name__
        self.tally.failed_shards.append({"shard": shard.index, "kind": kind,
                                         "error": self.ctx.db.mask(f"{kind}: {cause}")[:500]})
        self.track(shard, status="failed", error=message)
        self.progress.shard_failed()
        self.bar.update(1)

    def track(
        self,
        shard: Shard,
        *,
        status: str | None = None,
        stage: str | None = None,
        error: str | None = None,
        clear_error: bool = False,
        started_at: int | None = None,
        finished_at: int | None = None,
        rows_read: int | None = None,
        eligible: int | None = None,
        grants: int | None = None,
        skipped: int | None = None,
        db_retries: int | None = None,
        attempt: bool = False,
    ) -> None:
        """Record a shard's progress (an applied run; cluster.ledger.update_shard), retried like every
        database operation."""
        if not self.ctx.apply:
            return
        database = self.ctx.db
        update = ledger.ShardUpdate(status=status, stage=stage, error=error, clear_error=clear_error,
                                        started_at=started_at, finished_at=finished_at, rows_read=rows_read,
                                        eligible=eligible, grants=grants, skipped=skipped, db_retries=db_retries)
        database.retrying(f"update progress of shard {shard.index}",
                          lambda: ledger.update_shard(database.engine, self.ctx.run_id, shard.index, update,
                                                      attempt=attempt, lock=self.ctx.lock))

    def collect_lookup_reads(self) -> None:
        """Add the beatmaps and users lookups' readers to the tally (a scan run reads them once)."""
        if self.lookup_reads is not None:
            with contextlib.suppress(ray.exceptions.RayError):  # a failed read: its waves failed already
                self.tally.reads.merge(ray.get(self.lookup_reads))

    def finish_raters(self) -> list[dict]:
        """Wait for the raters' last calls, add their new ratings to the SR cache, return their stats."""
        ray.get(self.rater_calls)
        ray.get([rater.flush.remote() for rater in self.raters])
        return ray.get([rater.stats.remote() for rater in self.raters])


def _stats_only_grants(outcome: ShardOutcome, as_of: int, candidates: list[dict]) -> list[dict]:
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


# --- beside live traffic: the write governor, its collectors and the progress reporter ---------------------
# (cluster.governor decides, cluster.control collects, cluster.progress shows and publishes)


def _start_governor(ctx: RunContext) -> tuple[object, str]:
    """The run's one GovernorActor (an applied, governed run) and its name (cluster.actors.start_named,
    for the writers): it starts under the limits of the run's control row (cluster.prepare) and expects
    a lag figure from each lag replica and, on MySQL/MariaDB, the primary's Threads_running; it holds
    writes until its collectors (`_live`) have reported."""
    sources = Sources(tuple(control.replica_name(url) for url in ctx.config.lag_replica_urls),
                      threads_running=ctx.db.dialect == "mysql")
    return actors.start_named(GovernorActor, "governor", ctx.limits, sources, ctx.run_id, need_limits=True)


def _progress(ctx: RunContext, plan: RunPlan) -> Progress:
    return Progress(ctx.run_id, len(plan.planned), plan.shards_done_before, len(plan.pending))


@contextmanager
def _live(ctx: RunContext, plan: RunPlan, governor, bar: tqdm | None, tally: Tally) -> Iterator[Progress]:
    """While the block runs: the governor's collectors (cluster.control.Watch: heartbeat, lag replicas,
    Threads_running, control row; a governed applied run) and the progress reporter (lines every
    `progress_interval` s without a terminal, the bar's state with one; srb_run_status of an applied
    run). Yields the Progress the driver adds shards to; keeps the governor's final status in `tally`."""
    config = ctx.config
    progress = _progress(ctx, plan)
    watch = None
    if governor is not None:
        settings = control.WatchSettings(ctx.run_id, config.db_url, config.lag_replica_urls,
                                         threads_running=ctx.db.dialect == "mysql",
                                         control_seconds=config.control_seconds)
        watch = control.Watch(settings, governor).start()
    reporter = Reporter(progress, governor, bar, lines=config.progress and bar is None,
                        interval=config.progress_interval, publish=ctx.db if ctx.apply else None,
                        apply=ctx.apply).start()
    try:
        yield progress
    finally:
        final = reporter.stop()
        if watch is not None:
            watch.stop()
            tally.watch_errors = {"counts": dict(watch.errors), "last": dict(watch.last_error)}
        if final is not None and final.get("governor"):
            tally.governor = final["governor"]
        elif governor is not None:
            tally.governor = reporter.governor_status() or {}
