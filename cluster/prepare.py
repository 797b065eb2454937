"""Stage 2 of a run, prepare: check the catalogue against the database, then (an applied run) record the
run and its shard plan and hold the run's lock while the later stages work.

The live server matches conditions to `less_achievements` rows by `file` (DOMAIN.md §2), so a grant under
an id whose row names another file would show the wrong medal: the check stops the run first. An applied
run leaves a record of itself (cluster.ledger): its settings and plan (a resume takes them back) and,
while it works, the lock that keeps a second process off the same run. A run that fails after this stage
is marked failed; it can be resumed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

from cluster import ledger
from cluster.context import RunContext, stored_settings
from cluster.errors import CatalogueMismatch
from cluster.pauses import pause_point
from cluster.plan import RunPlan
from cluster.schema import less_achievements
from conditions.catalogue import Catalogue


@contextmanager
def prepare_run(ctx: RunContext, plan: RunPlan) -> Iterator[None]:
    """Check the catalogue; for an applied run, create (or reopen, on a resume) the run record with its
    plan and hold the run's lock until the block ends. An exception in the block marks the run failed
    and propagates. Raises CatalogueMismatch, and RunStateError when another process holds the run."""
    if "less_achievements" in ctx.tables:
        check_catalogue(ctx.db.engine, ctx.catalogue)
    if not ctx.apply:
        yield
        return
    engine = ctx.db.engine
    ledger.ensure_tables(engine)
    with ledger.run_lock(engine, ctx.run_id):
        if ctx.resume:
            ledger.update_run(engine, ctx.run_id, status="running")
        else:
            settings = {**stored_settings(ctx.config, ctx.catalogue.version), "users": plan.users}
            record = ledger.RunRecord(ctx.run_id, "run", "running", ledger.now(), ctx.as_of, settings)
            ledger.create_run(engine, record, plan.planned)
            pause_point("plan")
        try:
            yield
        except BaseException:
            _mark_failed(engine, ctx.run_id)
            raise


def check_catalogue(engine: sa.Engine, catalogue: Catalogue) -> None:
    """Check that less_achievements holds every achievement of `catalogue` with the same `file`.

    Call only when the table exists. Raises CatalogueMismatch listing the missing and the differing ids.
    """
    ids = [a.id for a in catalogue]
    query = sa.select(less_achievements.c.id, less_achievements.c.file).where(less_achievements.c.id.in_(ids))
    with engine.connect() as conn:
        files = {int(i): f for i, f in conn.execute(query)}
    missing = tuple(i for i in ids if i not in files)
    differing = {a.id: (a.file, files[a.id]) for a in catalogue if a.id in files and files[a.id] != a.file}
    if missing or differing:
        raise CatalogueMismatch(missing, differing)


def _mark_failed(engine: sa.Engine, run_id: str) -> None:
    try:
        ledger.update_run(engine, run_id, status="failed")
    except sa.exc.SQLAlchemyError:
        pass  # the database is unreachable: the run stays "running" and can be resumed all the same
