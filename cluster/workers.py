"""Ray workers: SR rater actors, the table-scan task and the per-shard task (read, prepare, rate, evaluate).

rosu-pp holds the GIL, so ratings run in separate processes: one `RaterActor` per worker. Every key
of a beatmap is routed to the same actor (by its md5), so a map is parsed by one worker for all its
keys, and an actor remembers what it rated (and what the persistent SR cache holds), so each unique
(beatmap_md5, mode_vn, narrowed mods) key is computed at most once in a run however many shards ask.

Crashes: a rater whose process dies (a crash inside a compiled engine, the OOM killer, a SIGKILL) is
restarted by Ray and the calls it was serving are sent to it again (`max_restarts`,
`max_task_retries`). A `RaterJournal` remembers which beatmaps each rater was rating, so a restarted
rater knows what was in progress when it died: it rates those beatmaps one key at a time from then
on, and a key that kills it again is quarantined (sr.errors.EngineCrashed, reason "engine_crash"):
its scores are evaluated with an unknown star rating. Shard and scan tasks are retried by Ray when
their process dies (`max_retries`); their results go to the driver, which alone writes.
"""

from __future__ import annotations

import resource
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache

import polars as pl
import pyarrow as pa
import ray

from cluster import actors, db, metrics
from cluster.credentials import DatabaseRef
from cluster.pauses import crash_point, pause_point
from cluster.shards import ScanRange, Shard, shard_positions
from conditions.catalogue import load_catalogue
from conditions.evaluate import evaluate, prepare_scores, sr_keys, stats_only
from sr.cache import SRCache
from sr.engines import DEFAULT_ENGINE, engine_named
from sr.errors import EngineCrashed
from sr.fetch import BeatmapFetcher
from sr.keys import SR_KEY_SCHEMA, SR_RESULT_SCHEMA
from sr.rate import ParsedMaps, rate_keys
from sr.store import OsuStore


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MB (Linux reports ru_maxrss in KB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def route(n_raters: int) -> pl.Expr:
    """The rater index (0..n_raters-1) of each key's beatmap_md5: stable across processes and runs."""
    prefix = pl.col("beatmap_md5").str.slice(0, 8).str.to_integer(base=16, strict=False)
    return (prefix.fill_null(0) % n_raters).cast(pl.Int64)


def routed(index: int, count: int) -> Callable[[pa.RecordBatch], pa.Array]:
    """A row mask of the keys routed to rater `index` of `count` (`route`), for sr.cache.SRCache.load."""

    def select(batch: pa.RecordBatch) -> pa.Array:
        return pl.from_arrow(batch).select(route(count) == index).to_series().to_arrow()

    return select


def load_known(cache_: SRCache, index: int, count: int) -> dict[tuple[str, int, int], tuple]:
    """The ratings the SR cache holds for the keys routed to rater `index` of `count`:
    {(beatmap_md5, mode_vn, mods): (sr_raw, sr, skip_reason)}. The cache is streamed batch by batch and
    only this rater's share is kept (a rater's memory does not grow with the other raters' keys)."""
    known: dict[tuple[str, int, int], tuple] = {}
    table = cache_.load(select=routed(index, count))
    for row in zip(*(table.column(name).to_pylist() for name in table.column_names)):
        known[(row[0], row[1], row[2])] = (row[3], row[4], row[5])
    return known


FLUSH_ROWS = 50_000  # new ratings a rater holds before adding them to the SR cache
RATER_MAX_RESTARTS = 20  # restarts of one rater in a run; a key that crashes a rater costs two
TASK_MAX_RETRIES = 3  # tries after the first of a shard or scan task whose process died


@dataclass(frozen=True, slots=True)
class RaterSettings:
    """How every rater of a run rates.

    osu_location:   the .osu store (local path or pyarrow.fs URI).
    engine:         SR engine name (sr.engine.engine_named).
    cache_location: the persistent SR cache (sr.cache.SRCache; local path or URI), None for none.
    fetch_template: URL template for --fetch-missing (sr.fetch.BeatmapFetcher), None for none.
    fetch_rate:     downloads per second per rater.
    """

    osu_location: str
    engine: str
    cache_location: str | None = None
    fetch_template: str | None = None
    fetch_rate: float = 2.0


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)  # restarted empty: crashes then go unjournaled
class RaterJournal:
    """What each rater of a run is rating right now, kept outside the raters so it outlives them.

    A rater calls `begin(rater, md5s)` before it rates a batch of keys (or `begin(rater, key=k)` for a
    single key) and `end(rater)` after. A rater process that dies leaves its entry behind; the restarted
    rater calls `started(rater, restarted)` first and gets back the suspect beatmaps (those in a batch
    when a process died: rated one key at a time from then on) and the quarantined keys (a single key
    in progress when a process died: it had been in progress at the crash before too).
    `report()`: {"restarts": n, "by_rater": {index: n}, "quarantined": [{beatmap_md5, mode_vn, mods}]}.
    """

    def __init__(self) -> None:
        self.rating: dict[int, tuple[tuple[str, ...], tuple | None]] = {}
        self.suspects: dict[int, set[str]] = defaultdict(set)
        self.quarantined: dict[int, set[tuple]] = defaultdict(set)
        self.restarts: Counter = Counter()

    def begin(self, rater: int, md5s: tuple[str, ...] = (), key: tuple | None = None) -> None:
        self.rating[rater] = (tuple(md5s), tuple(key) if key is not None else None)

    def end(self, rater: int) -> None:
        self.rating.pop(rater, None)

    def started(self, rater: int, restarted: bool) -> tuple[set[str], set[tuple]]:
        if restarted:
            self.restarts[rater] += 1
        md5s, key = self.rating.pop(rater, ((), None))
        self.suspects[rater].update(md5s)
        if key is not None:
            self.quarantined[rater].add(key)
        return set(self.suspects[rater]), set(self.quarantined[rater])

    def report(self) -> dict:
        keys = sorted(key for keys in self.quarantined.values() for key in keys)
        return {"restarts": sum(self.restarts.values()), "by_rater": {str(r): n for r, n in sorted(self.restarts.items())},
                "quarantined": [{"beatmap_md5": k[0], "mode_vn": k[1], "mods": k[2]} for k in keys]}


@ray.remote(num_cpus=1, max_restarts=RATER_MAX_RESTARTS, max_task_retries=-1)
class RaterActor:
    """Rates the SR keys routed to it (rater `index` of `count`), once per key.

    Keys already in the persistent SR cache for this engine version are not rated again; new results
    are added to the cache by `flush()`. `rate(keys)` takes an Arrow table in sr.keys.SR_KEY_SCHEMA
    (mods: the engine's narrowed key mods) and returns SR_RESULT_SCHEMA rows for exactly those keys;
    `queue(keys)` and `rate_queued()` rate a table scan's keys ahead of the shards that ask for them;
    `stats()` reports what the actor did (since its process last started).

    `journal` (the name of the run's RaterJournal, cluster.actors.start_named; optional) makes crashes
    survivable key by key: see the module docstring. A name, not a handle: a restart needs no argument
    from the object store.
    A restarted rater starts with an empty queue and counters; the keys it was asked for are rated
    again when the shards ask (the retried calls).
    """

    def __init__(self, settings: RaterSettings, index: int = 0, count: int = 1, journal: str | None = None) -> None:
        fetcher = BeatmapFetcher(settings.fetch_template, rate=settings.fetch_rate) if settings.fetch_template else None
        self.store = OsuStore(settings.osu_location, fetcher)
        self.engine = engine_named(settings.engine)
        self.engine.warmup()
        self.index = index
        self.journal = journal = actors.lookup(journal)
        self.known: dict[tuple[str, int, int], tuple] = {}
        self.cache = None
        if settings.cache_location:
            self.cache = SRCache(settings.cache_location, self.engine.name, self.engine.version)
            self.known = load_known(self.cache, index, count)
        self.cached_keys = set(self.known)
        self.suspects: set[str] = set()
        if journal is not None:
            restarted = ray.get_runtime_context().was_current_actor_reconstructed
            self.suspects, quarantined = ray.get(journal.started.remote(index, restarted))
            for key in quarantined:
                self.known[key] = (None, None, EngineCrashed.reason)
        self.maps = ParsedMaps()
        self.requested: set[tuple[str, int, int]] = set()
        self.unflushed: list[pa.Table] = []
        self.queued: list[pa.Table] = []
        self.calculations = 0
        self.seconds = 0.0

    def rate(self, keys: pa.Table) -> pa.Table:
        started = time.perf_counter()
        requested = self._rate_unknown(keys)
        values = [self.known[key] for key in requested]
        columns = [
            [key[0] for key in requested],
            [key[1] for key in requested],
            [key[2] for key in requested],
            [value[0] for value in values],
            [value[1] for value in values],
            [value[2] for value in values],
        ]
        self.seconds += time.perf_counter() - started
        return pa.Table.from_arrays([pa.array(c, type=f.type) for c, f in zip(columns, SR_RESULT_SCHEMA)], schema=SR_RESULT_SCHEMA)

    def queue(self, keys: pa.Table) -> int:
        """Hold keys (SR_KEY_SCHEMA) to rate later with `rate_queued`: the table scan sends each
        range's keys as it reads them, and a map's keys from every range are then rated together, the
        map parsed once. Returns the keys held so far."""
        if keys.num_rows:
            self.queued.append(keys)
        return sum(table.num_rows for table in self.queued)

    def rate_queued(self, chunk_keys: int = 20_000) -> int:
        """Rate the queued keys not rated yet, by beatmap, `chunk_keys` at a time (a map's keys stay
        together; the parsed-map LRU carries a map across a chunk edge). Returns the keys queued."""
        if not self.queued:
            return 0
        started = time.perf_counter()
        keys = pa.concat_tables(self.queued)
        self.queued = []
        unique = pl.from_arrow(keys).unique(["beatmap_md5", "mode_vn", "mods"]).sort(["beatmap_md5", "mode_vn", "mods"])
        for start in range(0, unique.height, chunk_keys):
            self._rate_unknown(unique.slice(start, chunk_keys).to_arrow().cast(SR_KEY_SCHEMA))
        self.seconds += time.perf_counter() - started
        return unique.height

    def _rate_unknown(self, keys: pa.Table) -> list[tuple[str, int, int]]:
        requested = list(zip(*(keys.column(name).to_pylist() for name in ("beatmap_md5", "mode_vn", "mods"))))
        self.requested.update(requested)
        unknown = [i for i, key in enumerate(requested) if key not in self.known]
        ordinary = [i for i in unknown if requested[i][0] not in self.suspects]
        if ordinary:
            self._rate_batch(keys.take(ordinary), tuple(sorted({requested[i][0] for i in ordinary})), None)
        for i in unknown:
            if requested[i][0] in self.suspects:  # was being rated when a rater died: one key at a time
                self._rate_batch(keys.take([i]), (), requested[i])
        return requested

    def _rate_batch(self, keys: pa.Table, md5s: tuple[str, ...], key: tuple | None) -> None:
        """Rate `keys` (beatmaps `md5s`, or the single `key`), journaled when the run keeps a journal."""
        if self.journal is not None:
            ray.get(self.journal.begin.remote(self.index, md5s, key))
        pause_point("rater")
        crash_point(keys)
        batch = rate_keys(keys, self.store, self.engine, self.maps)
        if self.journal is not None:
            ray.get(self.journal.end.remote(self.index))
        self.calculations += batch.calculations
        metrics.keys_rated(batch.calculations)
        self.unflushed.append(batch.table)
        if sum(table.num_rows for table in self.unflushed) >= FLUSH_ROWS:
            self.flush()
        for row in batch.table.to_pylist():
            self.known[(row["beatmap_md5"], row["mode_vn"], row["mods"])] = (
                row["sr_raw"],
                row["sr"],
                row["skip_reason"],
            )

    def flush(self) -> int:
        """Add the results rated since the last flush to the SR cache. Returns the rows kept."""
        if self.cache is None or not self.unflushed:
            self.unflushed = []
            return 0
        kept = self.cache.write(pa.concat_tables(self.unflushed))
        self.unflushed = []
        return kept

    def stats(self) -> dict:
        """keys: unique keys asked for this run; calculations: ratings computed now; cache_hits: keys
        served from the SR cache; errors: asked keys without a rating, by reason (cached ones too)."""
        errors = Counter(self.known[key][2] for key in self.requested if self.known[key][2])
        return {
            "keys": len(self.requested),
            "calculations": self.calculations,
            "cache_hits": len(self.requested & self.cached_keys),
            "downloads": self.store.saved,
            "errors": dict(errors),
            "seconds": self.seconds,
            "max_rss_mb": peak_rss_mb(),
            "engine": {"name": self.engine.name, "version": self.engine.version},
        }


@dataclass(frozen=True, slots=True)
class ShardJob:
    """What every shard task of a run needs besides its shard.

    database:           where the task's process finds the primary's URL (cluster.credentials): the
                        URL itself never travels in task arguments. What the shard's users already hold
                        (users_achievements) is read there.
    read_database:      where it finds the read database's URL (a replica; None: the primary): the
                        scores, user_stats and the beatmaps/users lookups are read there. "Already held"
                        is never read from it, so a lagging replica cannot make a run grant what a user
                        holds (cluster.context).
    tables:             score tables to read.
    achievement_ids:    the catalogue subset to evaluate (None: all).
    since / until:      score-time window (unix seconds, [since, until)) of the scores that may grant.
    read_stats:         also read user_stats and return the stats-only candidates.
    retry:              retry policy of the shard's reads.
    samples_per_reason: sample score ids kept per skip reason.
    engine:             the SR engine's name, for narrowing the SR keys.
    """

    database: DatabaseRef
    tables: tuple[str, ...]
    achievement_ids: tuple[int, ...] | None = None
    since: int | None = None
    until: int | None = None
    read_stats: bool = False
    retry: db.RetryPolicy = db.DEFAULT_RETRY
    samples_per_reason: int = 5
    engine: str = DEFAULT_ENGINE
    read_database: DatabaseRef | None = None

    def read_url(self, url: str) -> str:
        """The URL of the bulk reads, resolved on this process's side: the read database's, else `url`
        (the primary's, already resolved)."""
        return self.read_database.resolve() if self.read_database is not None else url


@dataclass(slots=True)
class ShardOutcome:
    """What one shard task returns to the driver besides its grants (a separate object: `process_shard`):
    small counts, never the scores themselves.

    skipped / skip_samples: scores skipped for bad data by reason, and samples (Arrow,
    conditions.evaluate.SKIP_SAMPLE_SCHEMA). stats_only: Arrow, conditions.evaluate.STATS_ONLY_SCHEMA
    (empty unless the job reads stats). retries: database retries the shard's reads needed.
    would_grant: achievement id -> grants an achievement the live server never grants would make
    (conditions.evaluate.Evaluation.would_grant); reported, never written.
    (empty unless the job reads stats). retries: database retries the shard's reads needed. reads: the
    readers of its score reads and ConnectorX fallbacks (cluster.db.ReadLog).
    """

    shard: Shard
    rows_read: dict[str, int]
    eligible: int
    ineligible: Counter
    without_sr: int
    already_held: int
    by_family: Counter
    by_full_mode: Counter
    seconds: dict[str, float] = field(default_factory=dict)
    skipped: Counter = field(default_factory=Counter)
    skip_samples: pa.Table | None = None
    stats_only: pa.Table | None = None
    retries: db.RetryLog = field(default_factory=db.RetryLog)
    max_rss_mb: float = 0.0
    would_grant: Counter = field(default_factory=Counter)
    reads: db.ReadLog = field(default_factory=db.ReadLog)


@cache
def _engine(name: str):
    return engine_named(name)


def narrow_sr_keys(prepared: pl.DataFrame, engine_name: str) -> pl.DataFrame:
    """Set each score's `sr_mods` to the mods that can change its rating on the engine (sr.mods), so
    scores differing only in other mods share one SR key. A small mapping of the shard's distinct
    (mode_vn, mods) pairs, joined back."""
    engine = _engine(engine_name)
    pairs = prepared.select("mode_vn", "mods").unique().drop_nulls()
    mapping = pairs.with_columns(
        sr_mods=pl.Series(
            [engine.key_mods(mode_vn, mods) for mode_vn, mods in pairs.iter_rows()], dtype=pl.Int64
        )
    )
    return prepared.drop("sr_mods").join(mapping, on=["mode_vn", "mods"], how="left", maintain_order="left")


@cache
def _catalogue(achievement_ids: tuple[int, ...] | None):
    catalogue = load_catalogue()
    return catalogue.select(achievement_ids) if achievement_ids else catalogue


@ray.remote(num_cpus=0, num_returns=2, max_retries=TASK_MAX_RETRIES)
def process_shard(job: ShardJob, shard: Shard, raters: list, *scanned: pa.Table) -> tuple[pa.Table, ShardOutcome]:
    """Read a shard's scores, have the raters rate its SR keys, evaluate the catalogue on it.

    Returns two objects: the shard's grants (Arrow, conditions.evaluate.GRANT_SCHEMA plus
    GRANT_EVIDENCE_SCHEMA), which a writer fetches without passing through the driver, and its
    ShardOutcome (small counts).

    `scanned`: the shard's rows as the table scan handed them out (`scan_range`, one table per
    range, SCORE_ARROW_SCHEMA), or nothing: the task then reads its users' rows itself through the
    userid index. Runs with no CPU reserved: it spends most of its time waiting on the database and
    the raters, which hold the CPUs. The driver bounds how many run at once. Reads are retried on lost
    connections, deadlocks and lock-wait timeouts (cluster.db.retrying); raises DatabaseUnavailable
    when the retries run out.
    """
    seconds: dict[str, float] = {}
    retries, reads = db.RetryLog(), db.ReadLog()
    started = time.perf_counter()
    url = job.database.resolve()
    read_url = job.read_url(url)
    engine = db.connect(url)
    reader = db.connect(read_url) if read_url != url else engine
    users = shard.user_ids
    try:
        if scanned:
            scores = pa.concat_tables(scanned)
            counts = dict(pl.from_arrow(scores.select(["source"])).get_column("source").value_counts().iter_rows())
            rows_read = {name: int(counts.get(name, 0)) for name in job.tables}
        else:
            scores, rows_read = db.retrying(
                lambda: db.read_shard_scores(reader, shard.user_lo, shard.user_hi, job.tables, user_ids=users,
                                             reads=reads),
                f"read scores of shard {shard.index}", job.retry, retries, read_url,
            )
        held = db.retrying(
            lambda: db.read_held(engine, shard.user_lo, shard.user_hi, users),
            f"read achievements of shard {shard.index}", job.retry, retries, url,
        )
        stats = (
            db.retrying(
                lambda: db.read_user_stats(reader, shard.user_lo, shard.user_hi, users),
                f"read user_stats of shard {shard.index}", job.retry, retries, read_url,
            )
            if job.read_stats
            else None
        )
    finally:
        engine.dispose()
        reader.dispose()
    seconds["read"] = time.perf_counter() - started
    pause_point("shard_task")

    started = time.perf_counter()
    prepared = narrow_sr_keys(prepare_scores(pl.from_arrow(scores), job.since, job.until), job.engine)
    keys = sr_keys(prepared)
    seconds["prepare"] = time.perf_counter() - started

    started = time.perf_counter()
    ratings = _rate(keys, raters)
    seconds["rate_wait"] = time.perf_counter() - started

    started = time.perf_counter()
    catalogue = _catalogue(job.achievement_ids)
    held_frame = pl.from_arrow(held)
    result = evaluate(prepared, ratings, held_frame, catalogue, job.samples_per_reason)
    candidates = stats_only(pl.from_arrow(stats), result.grants, held_frame, catalogue) if stats is not None else None
    seconds["evaluate"] = time.perf_counter() - started
    return result.grants.to_arrow(), ShardOutcome(
        shard=shard,
        rows_read=rows_read,
        eligible=result.eligible,
        ineligible=result.ineligible,
        without_sr=result.without_sr,
        already_held=result.already_held,
        by_family=result.by_family,
        by_full_mode=result.by_full_mode,
        seconds=seconds,
        skipped=result.skipped,
        skip_samples=result.skip_samples.to_arrow(),
        stats_only=candidates.to_arrow() if candidates is not None else None,
        retries=retries,
        max_rss_mb=peak_rss_mb(),
        would_grant=result.would_grant,
        reads=reads,
    )


def _rate(keys: pl.DataFrame, raters: list) -> pl.DataFrame:
    """Send each key to its rater and gather the ratings (beatmap_md5, mode_vn, mods, sr, skip_reason)."""
    if keys.height == 0:
        return pl.DataFrame(
            schema={"beatmap_md5": pl.String, "mode_vn": pl.Int64, "mods": pl.Int64, "sr": pl.Float64,
                    "skip_reason": pl.String}
        )
    routed = keys.with_columns(rater=route(len(raters)))
    pending = [
        raters[index].rate.remote(part.drop("rater").to_arrow().cast(SR_KEY_SCHEMA))
        for (index,), part in routed.partition_by("rater", as_dict=True).items()
    ]
    tables = ray.get(pending)
    return pl.from_arrow(pa.concat_tables(tables)).select("beatmap_md5", "mode_vn", "mods", "sr", "skip_reason")


@dataclass(slots=True)
class ScanOutcome:
    """What one `scan_range` task reports besides the rows and keys it hands out: seconds (scan: the
    read, split: joining, splitting and extracting keys), database retries, peak RSS (MB) and the
    reader of its read (cluster.db.ReadLog). The rows read are counted by the shard tasks that receive
    them."""

    seconds: dict[str, float] = field(default_factory=dict)
    retries: db.RetryLog = field(default_factory=db.RetryLog)
    max_rss_mb: float = 0.0
    reads: db.ReadLog = field(default_factory=db.ReadLog)


@ray.remote(num_cpus=0, num_returns=3, max_retries=TASK_MAX_RETRIES)
def read_lookups(job: ShardJob) -> tuple[pa.Table, pa.Table, db.ReadLog]:
    """The beatmaps and users lookups every `scan_range` of a run joins its rows to (cluster.db.read_lookups),
    read once (from the read database) and kept in the object store, and the readers that read them.
    Retried like the shard reads."""
    read_url = job.read_url(job.database.resolve())
    engine = db.connect(read_url)
    reads = db.ReadLog()
    try:
        beatmap_rows, user_rows = db.retrying(lambda: db.read_lookups(engine, reads), "read beatmaps and users",
                                              job.retry, url=read_url)
        return beatmap_rows, user_rows, reads
    finally:
        engine.dispose()


@ray.remote(num_cpus=0, max_retries=TASK_MAX_RETRIES)
def scan_range(
    job: ShardJob, scan: ScanRange, wave: list[Shard], n_raters: int, beatmap_rows: pa.Table, user_rows: pa.Table
) -> tuple:
    """Read one id range of a score table and split its rows among the shards of a wave.

    The rows are read without joins and joined here to the run's lookups (`read_lookups`, passed as
    object refs), as the per-user reads join them in SQL (cluster.db.join_lookups). Call with
    `.options(num_returns=len(wave) + n_raters + 1)`: `ScanRangeRefs.launch` does, and names the
    returns. Returns, in order: one Arrow table
    (SCORE_ARROW_SCHEMA) per shard of `wave` (userid order) with the range's rows of that shard's
    users (`shard_positions`: a whole range, or the users a scoped shard lists; rows of other users are
    dropped); `wave` may come as an object ref (the driver puts it once per wave); then, per rater, the unique SR keys
    (SR_KEY_SCHEMA) of the eligible kept rows routed to it (`route`), for `RaterActor.queue`, so a
    wave's keys are rated before its shards are evaluated; then a ScanOutcome. Reads are retried like
    the shard reads; raises DatabaseUnavailable when the retries run out.
    """
    seconds: dict[str, float] = {}
    retries, reads = db.RetryLog(), db.ReadLog()
    started = time.perf_counter()
    read_url = job.read_url(job.database.resolve())
    engine = db.connect(read_url)
    try:
        rows = db.retrying(
            lambda: db.read_range_rows(engine, scan.table, scan.id_lo, scan.id_hi, reads=reads),
            f"read ids {scan.id_lo}-{scan.id_hi} of {scan.table}", job.retry, retries, read_url,
        )
    finally:
        engine.dispose()
    seconds["scan"] = time.perf_counter() - started

    started = time.perf_counter()
    frame = pl.from_arrow(rows)
    positions = shard_positions(frame.get_column("userid").to_numpy(), wave)
    frame = pl.from_arrow(
        db.join_lookups(frame.filter(pl.Series(positions >= 0)).to_arrow(), beatmap_rows, user_rows, engine.dialect.name)
    ).with_columns(_position=pl.Series(positions[positions >= 0]))
    parts = frame.partition_by("_position", as_dict=True, include_key=False)
    empty = db.SCORE_ARROW_SCHEMA.empty_table()
    tables = [parts[(p,)].to_arrow().cast(db.SCORE_ARROW_SCHEMA) if (p,) in parts else empty for p in range(len(wave))]
    prepared = narrow_sr_keys(prepare_scores(frame.drop("_position"), job.since, job.until), job.engine)
    keys = sr_keys(prepared).with_columns(rater=route(n_raters))
    by_rater = keys.partition_by("rater", as_dict=True, include_key=False)
    key_tables = [
        by_rater[(r,)].to_arrow().cast(SR_KEY_SCHEMA) if (r,) in by_rater else SR_KEY_SCHEMA.empty_table()
        for r in range(n_raters)
    ]
    seconds["split"] = time.perf_counter() - started
    outcome = ScanOutcome(seconds, retries, peak_rss_mb(), reads)
    return (*tables, *key_tables, outcome)


@dataclass(frozen=True)
class ScanRangeRefs:
    """The object refs of one `scan_range` task, by name (the driver owns them: one object per shard and
    per rater, so each shard task and each rater fetches only its own part).

    shard_rows: per shard of the wave (in wave order), the range's rows of its users (SCORE_ARROW_SCHEMA).
    rater_keys: per rater, the unique SR keys routed to it (SR_KEY_SCHEMA), for `RaterActor.queue`.
    outcome:    the task's ScanOutcome (seconds, retries, peak RSS); ready when the task is done.
    """

    shard_rows: tuple
    rater_keys: tuple
    outcome: ray.ObjectRef

    @classmethod
    def launch(cls, job: ShardJob, scan: ScanRange, wave, shards: int, raters: int, lookups) -> ScanRangeRefs:
        """Start `scan_range` on id range `scan` for a wave of `shards` shards (`wave`: the shard list or
        its object ref) and `raters` raters; `lookups`: the refs of `read_lookups`."""
        refs = scan_range.options(num_returns=shards + raters + 1).remote(job, scan, wave, raters, *lookups)
        return cls(tuple(refs[:shards]), tuple(refs[shards:-1]), refs[-1])
