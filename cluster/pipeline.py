"""The backfill run: four stages in order, each taking the run's one frozen context.

    open_run     cluster.context   check the settings, resolve a resume -> RunContext
    plan_run     cluster.plan      scope to shards, rows in scope, how rows are read -> RunPlan
    prepare_run  cluster.prepare   catalogue matched to the database; an applied run's record, plan, lock
    execute_run  cluster.execute   scan, rate, evaluate, write (on Ray) -> Tally
    finish_run   cluster.finish    the summary, stored in the run record -> RunSummary

An applied run (`apply=True`) has a run id and leaves a record of itself (cluster.ledger): the run and
its settings, its shard plan with per-shard progress, and a ledger row for every row it inserts. A run
killed at any point is continued with `resume=True`: the stored plan and settings are used again,
finished shards are skipped, and a shard cut short is evaluated again against what its users now hold,
so the final rows and ledger are those of an uninterrupted run. A dry run writes nothing to the
database (not even the srb_ tables).
"""

from __future__ import annotations

from cluster import db
from cluster.context import READ_MODES, BackfillConfig, open_run
from cluster.errors import ConfigError
from cluster.execute import execute_run
from cluster.finish import RunSummary, finish_run
from cluster.plan import choose_read, plan_run
from cluster.prepare import prepare_run
from cluster.progress import say

__all__ = ["READ_MODES", "BackfillConfig", "ConfigError", "RunSummary", "choose_read", "run_backfill"]


def run_backfill(config: BackfillConfig) -> RunSummary:
    """Run (or resume) the backfill described by `config` and return its summary.

    Raises ConfigError (CatalogueMismatch, RunStateError, ScanPlanError) before any shard starts for a run
    that cannot be right, and DatabaseUnavailable when a write keeps failing (the run can then be
    resumed). Bad input inside the data (unknown beatmaps, bad maps, failed ratings) is counted in the
    summary, never raised; a shard whose reads fail or come short is marked failed (resume retries it)
    and the run goes on.
    """
    database = db.Database(config.db_url, config.retry)
    reader = db.Database(config.read_url, config.retry, database.log) if config.reads_from != config.db_url else None
    try:
        ctx = open_run(config, database, reader)
        if reader is not None:
            check = ctx.read_check
            lag = "not visible" if check["lag_seconds"] is None else f"{check['lag_seconds']:g} s"
            say(f"reads from {check['database']} (replica lag {lag}: {check['lag_source']})")
        plan = plan_run(ctx)
        with prepare_run(ctx, plan) as ctx:
            tally = execute_run(ctx, plan)
            return finish_run(ctx, plan, tally)
    finally:
        database.dispose()
        if reader is not None:
            reader.dispose()
