"""Ray workers: SR rater actors and the per-shard task (read, prepare, rate, evaluate).

rosu-pp holds the GIL, so ratings run in separate processes: one `RaterActor` per worker. Every key
of a beatmap is routed to the same actor (by its md5), and an actor remembers what it rated, so each
unique (beatmap_md5, mode_vn, mods) key is computed exactly once in a run however many shards ask.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from functools import cache

import polars as pl
import pyarrow as pa
import ray

from cluster import db
from cluster.shards import Shard
from conditions.catalogue import load_catalogue
from conditions.evaluate import evaluate, prepare_scores, sr_keys, stats_only
from sr.engine import engine_named
from sr.keys import SR_KEY_SCHEMA, SR_RESULT_SCHEMA
from sr.rate import rate_keys
from sr.store import OsuStore


def route(n_raters: int) -> pl.Expr:
    """The rater index (0..n_raters-1) of each key's beatmap_md5: stable across processes and runs."""
    prefix = pl.col("beatmap_md5").str.slice(0, 8).str.to_integer(base=16, strict=False)
    return (prefix.fill_null(0) % n_raters).cast(pl.Int64)


@ray.remote(num_cpus=1)
class RaterActor:
    """Rates SR keys against an .osu store with a named engine, once per key per run.

    `rate(keys)` takes an Arrow table in sr.keys.SR_KEY_SCHEMA and returns SR_RESULT_SCHEMA rows for
    exactly those keys; `stats()` reports what the actor did.
    """

    def __init__(self, osu_location: str, engine_name: str) -> None:
        self.store = OsuStore(osu_location)
        self.engine = engine_named(engine_name)
        self.known: dict[tuple[str, int, int], tuple] = {}
        self.errors: Counter = Counter()
        self.calculations = 0
        self.seconds = 0.0

    def rate(self, keys: pa.Table) -> pa.Table:
        started = time.perf_counter()
        requested = list(zip(*(keys.column(name).to_pylist() for name in ("beatmap_md5", "mode_vn", "mods"))))
        unknown = [i for i, key in enumerate(requested) if key not in self.known]
        if unknown:
            batch = rate_keys(keys.take(unknown), self.store, self.engine)
            self.errors.update(batch.errors)
            self.calculations += batch.calculations
            for row in batch.table.to_pylist():
                self.known[(row["beatmap_md5"], row["mode_vn"], row["mods"])] = (
                    row["sr_raw"],
                    row["sr"],
                    row["skip_reason"],
                )
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

    def stats(self) -> dict:
        return {
            "keys": len(self.known),
            "calculations": self.calculations,
            "errors": dict(self.errors),
            "seconds": self.seconds,
            "engine": {"name": self.engine.name, "version": self.engine.version},
        }


@dataclass(frozen=True, slots=True)
class ShardJob:
    """What every shard task of a run needs besides its shard.

    db_url:             SQLAlchemy URL (never logged unmasked).
    tables:             score tables to read.
    achievement_ids:    the catalogue subset to evaluate (None: all).
    since / until:      score-time window (unix seconds, [since, until)) of the scores that may grant.
    read_stats:         also read user_stats and return the stats-only candidates.
    retry:              retry policy of the shard's reads.
    samples_per_reason: sample score ids kept per skip reason.
    """

    db_url: str
    tables: tuple[str, ...]
    achievement_ids: tuple[int, ...] | None = None
    since: int | None = None
    until: int | None = None
    read_stats: bool = False
    retry: db.RetryPolicy = db.DEFAULT_RETRY
    samples_per_reason: int = 5


@dataclass(slots=True)
class ShardOutcome:
    """What one shard task returns to the driver: its grants (Arrow, conditions.evaluate.GRANT_SCHEMA
    plus GRANT_EVIDENCE_SCHEMA) and small counts; never the scores themselves.

    skipped / skip_samples: scores skipped for bad data by reason, and samples (Arrow,
    conditions.evaluate.SKIP_SAMPLE_SCHEMA). stats_only: Arrow, conditions.evaluate.STATS_ONLY_SCHEMA
    (empty unless the job reads stats). retries: database retries the shard's reads needed.
    """

    shard: Shard
    grants: pa.Table
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


@cache
def _catalogue(achievement_ids: tuple[int, ...] | None):
    catalogue = load_catalogue()
    return catalogue.select(achievement_ids) if achievement_ids else catalogue


@ray.remote(num_cpus=0)
def process_shard(job: ShardJob, shard: Shard, raters: list) -> ShardOutcome:
    """Read a shard's scores, have the raters rate its SR keys, evaluate the catalogue on it.

    Runs with no CPU reserved: it spends most of its time waiting on the database and the raters,
    which hold the CPUs. The driver bounds how many run at once. Reads are retried on lost
    connections, deadlocks and lock-wait timeouts (cluster.db.retrying); raises DatabaseUnavailable
    when the retries run out.
    """
    seconds: dict[str, float] = {}
    retries = db.RetryLog()
    started = time.perf_counter()
    engine = db.connect(job.db_url)
    users = shard.user_ids
    try:
        scores, rows_read = db.retrying(
            lambda: db.read_shard_scores(engine, shard.user_lo, shard.user_hi, job.tables, user_ids=users),
            f"read scores of shard {shard.index}", job.retry, retries, job.db_url,
        )
        held = db.retrying(
            lambda: db.read_held(engine, shard.user_lo, shard.user_hi, users),
            f"read achievements of shard {shard.index}", job.retry, retries, job.db_url,
        )
        stats = (
            db.retrying(
                lambda: db.read_user_stats(engine, shard.user_lo, shard.user_hi, users),
                f"read user_stats of shard {shard.index}", job.retry, retries, job.db_url,
            )
            if job.read_stats
            else None
        )
    finally:
        engine.dispose()
    seconds["read"] = time.perf_counter() - started

    started = time.perf_counter()
    prepared = prepare_scores(pl.from_arrow(scores), job.since, job.until)
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
    return ShardOutcome(
        shard=shard,
        grants=result.grants.to_arrow(),
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
