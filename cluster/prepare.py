"""Stage 2 of a run, prepare: match the catalogue to the database, then (an applied run) record the
run and its shard plan and hold the run's lock while the later stages work.

The live server grants a function only under the `less_achievements` row whose `file` is its registered
name (DOMAIN.md §2, §4), so a grant under an id whose row names another file would show the wrong medal:
the check stops the run first. Ids an older database lacks are left out with one warning line (an error
when --achievements asked for them). An applied
run leaves a record of itself (cluster.ledger): its settings and plan (a resume takes them back) and,
while it works, the lock that keeps a second process off the same run, and its control row (the limits
it writes under: cluster.control.open_control; a resume keeps what `sr-backfill control` set). A run
that fails after this stage is marked failed; it can be resumed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

import sqlalchemy as sa

from cluster import control, ledger
from cluster.context import RunContext, stored_settings
from cluster.errors import CatalogueMismatch, RunLockLost
from cluster.pauses import pause_point
from cluster.plan import RunPlan
from cluster.progress import say
from cluster.schema import less_achievements
from conditions.catalogue import Catalogue, format_id_ranges

# One line when less_achievements lacks catalogue ids (printed on stderr when logging is not configured).
log_catalogue = logging.getLogger("sr_backfill.catalogue")


@contextmanager
def prepare_run(ctx: RunContext, plan: RunPlan) -> Iterator[RunContext]:
    """Match the catalogue to less_achievements (`check_catalogue`) and yield the prepared context (its
    catalogue and achievement ids narrowed to what the database holds, `left_out` the ids it lacks, with
    one warning line); for an applied run, create (or reopen, on a resume) the run record with its plan
    and its control row (the context's `limits`), and hold the run's lock until the block ends (the
    yielded context carries it: `lock`). An exception in the block marks the run failed and
    propagates; RunLockLost leaves the record as it is. Raises CatalogueMismatch, and RunStateError
    when another process holds the run."""
    ctx = _matched_catalogue(ctx)
    if not ctx.apply:
        yield ctx
        return
    engine = ctx.db.engine
    ledger.ensure_tables(engine)
    with ledger.run_lock(engine, ctx.run_id) as lock:
        ctx = replace(ctx, lock=lock)
        if ctx.resume:
            ledger.update_run(engine, ctx.run_id, status="running", lock=lock)
        else:
            settings = {**stored_settings(ctx.config, ctx.catalogue.version), "users": plan.users}
            record = ledger.RunRecord(ctx.run_id, "run", "running", ledger.now(), ctx.as_of, settings)
            ledger.create_run(engine, record, plan.planned, lock=lock)
            pause_point("plan")
        if ctx.config.governed:
            ctx = _with_limits(ctx)
        try:
            yield ctx
        except RunLockLost:
            raise  # another process may hold the run now: its record is left as it is, for --resume
        except BaseException:
            _mark_failed(engine, ctx.run_id)
            raise


def _with_limits(ctx: RunContext) -> RunContext:
    """`ctx` with the limits the run starts writing under, from (and stored in) its control row."""
    config = ctx.config
    wanted = replace(config.limits, batch_rows=config.write_batch_rows)
    limits, notes = control.open_control(ctx.db.engine, ctx.run_id, wanted, config.limits_given, ctx.resume)
    for note in notes:
        say(note)
    return replace(ctx, limits=limits)


def _matched_catalogue(ctx: RunContext) -> RunContext:
    """`ctx` with its catalogue matched to the database's less_achievements (when it has the table)."""
    if "less_achievements" not in ctx.tables:
        return ctx
    strict = ctx.config.achievement_ids is not None or ctx.resume  # a resume keeps the ids it started with
    catalogue, left_out = check_catalogue(ctx.db.engine, ctx.catalogue, strict=strict)
    if not left_out:
        return ctx
    log_catalogue.warning("less_achievements lacks achievement ids %s (an older database?): left out of this run; "
                          "name them with --achievements to make this an error", format_id_ranges(left_out))
    config = replace(ctx.config, achievement_ids=tuple(a.id for a in catalogue))
    return replace(ctx, config=config, catalogue=catalogue, left_out=left_out)


def check_catalogue(engine: sa.Engine, catalogue: Catalogue, strict: bool = False) -> tuple[Catalogue, tuple[int, ...]]:
    """Match `catalogue` to less_achievements by id and `file`, as the live server matches its functions
    to rows (score-service app/state/cache.py: a function is granted only under the row whose `file`
    is its registered name). Call only when the table exists.

    Returns (the part of `catalogue` the table holds, the ids it lacks, ascending). Raises
    CatalogueMismatch when a grantable achievement's row names another `file` (a grant would show
    another medal), and, when `strict` (the run asked for these ids with --achievements, or resumes),
    when the table lacks any of them. An achievement the live server never grants (120) is kept for
    the report whatever its row's `file`.
    """
    ids = [a.id for a in catalogue]
    query = sa.select(less_achievements.c.id, less_achievements.c.file).where(less_achievements.c.id.in_(ids))
    with engine.connect() as conn:
        files = {int(i): f for i, f in conn.execute(query)}
    missing = tuple(i for i in ids if i not in files)
    differing = {
        a.id: (a.file, files[a.id]) for a in catalogue if a.grantable and a.id in files and files[a.id] != a.file
    }
    if differing or (strict and missing):
        raise CatalogueMismatch(missing if strict else (), differing)
    return (catalogue.select(i for i in ids if i in files) if missing else catalogue), missing


def _mark_failed(engine: sa.Engine, run_id: str) -> None:
    try:
        ledger.update_run(engine, run_id, status="failed")
    except sa.exc.SQLAlchemyError:
        pass  # the database is unreachable: the run stays "running" and can be resumed all the same
