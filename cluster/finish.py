"""Stage 4 of a run, finish: the run's summary (printed, and the --report JSON: jobs/report.py) from what
the earlier stages planned and counted, stored in the run record of an applied run.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import asdict, dataclass, field

from cluster import db, ledger, software
from cluster.context import RunContext
from cluster.execute import Tally
from cluster.plan import RunPlan
from cluster.schema import SCORE_TABLES
from cluster.workers import peak_rss_mb
from conditions.catalogue import FAMILIES, never_granted
from conditions.evaluate import INELIGIBLE_REASONS
from sr.errors import REASONS


@dataclass(slots=True)
class RunSummary:
    """Counts and timings of a run (the summary printed and the --report JSON).

    seconds: wall seconds of the driver's phases (plan, ray_start, shards, write, total; inside shards:
    scan_wall, reading the waves, rate_wall, rating their keys, and evaluate_wall, their shard tasks,
    writes excluded) and summed
    worker seconds per stage (scan: the table-scan tasks' reads and splits; read: the shard tasks' own
    reads; prepare, rate, evaluate).
    rows_read / rows_in_scope: score rows per table that the shards read, and that the pending shards'
    users held when the run planned (a shard whose reads deliver fewer rows of a table fails unwritten).
    read_mode / scan_ranges / waves: how the shards were read (`choose_read`), in how many id ranges
    and waves (0 / 0 / 0 when nothing was pending).
    grants: score grants evaluated in this session (total, by_family, by_full_mode).
    grants_written: rows the run has inserted, over all its sessions (from the ledger; 0 for a dry run).
    already_present: grants INSERT IGNORE skipped because the row had appeared since evaluation.
    skipped / skip_samples: scores skipped for bad data by reason (unknown beatmap, missing .osu, md5
    mismatch, bad format or empty, impossible convert, non-finite SR, ...) and sample score ids.
    database_errors: retries by MySQL error code, samples (masked) and failed shards.
    stats_fallback: stats-only candidates (current user_stats reach a threshold the stored plays do
    not) by achievement, and how many were granted (`--stats-fallback now`).
    stats_only_rows: every stats-only candidate (user_id, achievement_id, mode, playcount,
    total_hits); not part of `to_dict`.
    reads: tables read by each reader (connectorx, sqlalchemy) and ConnectorX fallbacks by reason, with
    samples (cluster.db.ReadLog.to_dict).
    software: the driver's lock file digest and engine versions (cluster.software.software_record) and
    the Ray nodes that reported the same versions (address, lock_sha256).
    engine_crashes: rater processes that died and were restarted ({"restarts", "by_rater"}) and the
    keys quarantined after killing a rater twice ("quarantined": beatmap_md5, mode_vn, mods; their
    scores are counted and sampled under the skip reason engine_crash). Raters' counters (sr_keys,
    sr_calculations, sr_errors) start again with a restarted process.
    writes: how an applied run wrote: writers, grants sent to them, batches committed, seconds in which a
    write was in flight, grants written per such second, seconds held by the write governor by reason.
    left_out: achievement ids of the catalogue this database's less_achievements lacks (not evaluated).
    not_granted: every live achievement a run never grants: [{achievement_id, file, reason,
    would_grant}], would_grant the (user, full mode) pairs it would have been granted to in this
    session, for those the stored plays decide and the run evaluated (120), else None.
    read_database: where the bulk reads went, as checked at start (RunContext.read_check: database
    masked, replica, lag_seconds, lag_source).
    governor: the write governor of this session (empty for a dry or ungoverned run): limits (at the end),
    held_seconds by reason ("any": by at least one reason; wall seconds), holds, lag_seconds and
    threads_running figures ({samples, p50, p90, p99, max}), batch_sizes (rows, same shape), batches,
    rows_written, write_seconds, final batch_rows, and collector errors.
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
    rows_in_scope: dict = field(default_factory=lambda: {name: 0 for name in SCORE_TABLES})
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
    out: str | None = None
    seconds: dict = field(default_factory=dict)
    writes: dict = field(default_factory=dict)
    reads: dict = field(default_factory=lambda: db.ReadLog().to_dict())
    software: dict = field(default_factory=dict)
    engine_crashes: dict = field(default_factory=lambda: {"restarts": 0, "by_rater": {}, "quarantined": []})
    left_out: list = field(default_factory=list)
    not_granted: list = field(default_factory=list)
    read_database: dict = field(default_factory=dict)
    governor: dict = field(default_factory=dict)
    stats_only_rows: list = field(default_factory=list, repr=False)

    def to_dict(self) -> dict:
        data = asdict(self)
        del data["stats_only_rows"]
        return data


def finish_run(ctx: RunContext, plan: RunPlan, tally: Tally) -> RunSummary:
    """The run's summary; an applied run also reads how many rows it has inserted (over all its sessions)
    from the ledger and stores the summary and its final status in the run record."""
    config, database = ctx.config, ctx.db
    summary = RunSummary(database=database.masked, engine={}, dry_run=not ctx.apply, run_id=ctx.run_id,
                         resumed=ctx.resume, shards=len(plan.planned), shards_done_before=plan.shards_done_before,
                         users=plan.users, read_mode=plan.read_mode, scope=_describe_scope(ctx, plan.users))
    summary.rows_in_scope = {name: 0 for name in SCORE_TABLES} | plan.rows_in_scope()
    _add_tally(summary, tally)
    summary.seconds = {"plan": plan.seconds, **summary.seconds}
    _add_raters(summary, tally.rater_stats, tally.max_rss)
    _add_stats_only(summary, ctx, tally)
    summary.out = str(config.out) if config.out is not None else None
    in_flight = tally.walls.get("write", 0.0)
    summary.writes = {
        "writers": tally.writers, "grants_sent": tally.grants_sent, "grants_inserted": tally.grants_inserted,
        "batches": tally.write_batches,
        "seconds_in_flight": round(in_flight, 3),
        "rows_per_s": round(tally.grants_inserted / in_flight) if in_flight else 0,
        "throttled_seconds": {reason: round(seconds, 3) for reason, seconds in sorted(tally.throttled.items())},
    }
    summary.read_database = dict(ctx.read_check)
    summary.governor = _governor_figures(tally)
    summary.left_out = list(ctx.left_out)
    summary.reads = tally.reads.to_dict()
    summary.engine_crashes = tally.engine_crashes
    summary.software = {**software.software_record(), "nodes": tally.nodes}
    evaluated = set(ctx.catalogue.by_id)
    summary.not_granted = [
        {"achievement_id": item.id, "file": item.file, "reason": item.detail,
         "would_grant": tally.would_grant[item.id] if item.id in evaluated else None}
        for item in never_granted()
    ]
    if ctx.apply:
        totals = database.retrying("read ledger totals", lambda: ledger.ledger_totals(database.engine, ctx.run_id))
        summary.grants_written = sum(totals["insert"].values())
        summary.status = "failed" if summary.shards_failed else "finished"
    summary.database_errors = {
        "retries": {str(code): n for code, n in sorted(database.log.counts.items())},
        "samples": list(database.log.samples),
        "failed_shards": tally.failed_shards,
    }
    summary.seconds["total"] = time.perf_counter() - ctx.started
    summary.seconds = {name: round(value, 3) for name, value in summary.seconds.items()}
    if ctx.apply:
        database.retrying("store run summary", lambda: ledger.update_run(
            database.engine, ctx.run_id, status=summary.status, summary=summary.to_dict(), lock=ctx.lock))
    return summary


GOVERNOR_FIGURES = ("limits", "held_seconds", "holds", "lag_seconds", "threads_running_figures", "batch_sizes",
                    "batches", "rows_written", "write_seconds", "batch_rows")


def _governor_figures(tally: Tally) -> dict:
    """The report's part of the governor's final status (see RunSummary.governor)."""
    if not tally.governor:
        return {}
    figures = {name: tally.governor.get(name) for name in GOVERNOR_FIGURES}
    figures["collector_errors"] = tally.watch_errors.get("counts", {})
    return figures


def _describe_scope(ctx: RunContext, users: int) -> dict:
    config, scope = ctx.config, ctx.config.scope
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


def _add_tally(summary: RunSummary, tally: Tally) -> None:
    """The shards' counts, grants and seconds."""
    summary.workers, summary.scan_ranges, summary.waves = tally.workers, tally.scan_ranges, tally.waves
    summary.shards_failed = len(tally.failed_shards)
    summary.rows_read = {name: tally.rows_read.get(name, 0) for name in SCORE_TABLES} | dict(tally.rows_read)
    summary.eligible_scores = tally.eligible
    summary.ineligible = {reason: 0 for reason in INELIGIBLE_REASONS} | dict(tally.ineligible)
    summary.scores_without_sr = tally.without_sr
    summary.already_held = tally.already_held
    summary.already_present = tally.already_present
    summary.grants = {
        "total": sum(tally.by_family.values()),
        "by_family": {family: tally.by_family[family] for family in FAMILIES},
        "by_full_mode": {str(mode): tally.by_full_mode[mode] for mode in sorted(tally.by_full_mode)},
    }
    summary.skipped = {reason: tally.skipped[reason] for reason in sorted(tally.skipped)}
    summary.skip_samples = [row for reason in sorted(tally.samples) for row in tally.samples[reason]]
    stage, walls = tally.stage, tally.walls
    summary.seconds = {
        "ray_start": walls["ray_start"], "shards": walls["shards"], "write": walls["write"],
        "scan": stage["scan"] + stage["split"], "read": stage["read"], "prepare": stage["prepare"],
        "rate": sum(stats["seconds"] for stats in tally.rater_stats), "evaluate": stage["evaluate"],
        **{name: walls[name] for name in ("scan_wall", "rate_wall", "evaluate_wall") if name in walls},
    }


def _add_raters(summary: RunSummary, rater_stats: list[dict], task_rss: float) -> None:
    """The raters' keys, calculations, cache hits, downloads, errors and memory."""
    summary.engine = rater_stats[0]["engine"] if rater_stats else {}
    summary.sr_keys = sum(stats["keys"] for stats in rater_stats)
    summary.sr_calculations = sum(stats["calculations"] for stats in rater_stats)
    summary.sr_cache_hits = sum(stats["cache_hits"] for stats in rater_stats)
    summary.beatmaps_downloaded = sum(stats["downloads"] for stats in rater_stats)
    for stats in rater_stats:
        for reason, count in stats["errors"].items():
            summary.sr_errors[reason] = summary.sr_errors.get(reason, 0) + count
    summary.max_rss_mb = {
        "driver": round(peak_rss_mb(), 1),
        "raters": round(max((stats["max_rss_mb"] for stats in rater_stats), default=0.0), 1),
        "shard_tasks": round(task_rss, 1),
    }


def _add_stats_only(summary: RunSummary, ctx: RunContext, tally: Tally) -> None:
    """Stats-only candidates (current user_stats reach a threshold the stored plays do not)."""
    candidates = tally.candidates
    by_achievement = Counter(r["achievement_id"] for r in candidates)
    summary.stats_fallback = {
        "mode": "now" if ctx.config.stats_fallback else "report", "checked": ctx.read_stats,
        "candidates": len(candidates), "users": len({r["user_id"] for r in candidates}),
        "by_achievement": {str(a): by_achievement[a] for a in sorted(by_achievement)},
        "granted": tally.fallback_granted,
    }
    summary.stats_only_rows = sorted(candidates, key=lambda r: (r["achievement_id"], r["mode"], r["user_id"]))
