"""Stage 1 of a run, plan: from the run's scope to its shards, and how their rows will be read.

A new run counts the score rows of every user per table, keeps the users of its scope (cluster.scope)
and cuts them into shards (cluster.shards.plan_shards). A resume takes the stored shards (cluster.ledger)
and keeps those not done; it counts the rows again, since they may have changed since. The rows each
pending shard holds per table are the run's rows in scope: a shard whose reads deliver fewer is failed
unwritten (cluster.execute), and a table scan whose id ranges would skip ids of a table holding rows in
scope stops the run here, before anything is read (`check_scan`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np

from cluster import db, ledger
from cluster.context import RunContext
from cluster.errors import ScanPlanError
from cluster.scope import select_users
from cluster.shards import ScanRange, Shard, check_scan_plan, plan_scan, plan_shards, rows_in_shards

SCAN_MIN_SHARE = 0.25  # "auto" scans when the pending shards hold at least this share of the tables' rows


@dataclass(frozen=True)
class RunPlan:
    """What a run will do.

    planned:      every shard of the run (in userid order; a resume: the stored plan).
    pending:      the shards still to do (all of them for a new run).
    users:        users in the run's scope.
    in_scope:     per score table, the rows each pending shard's users hold (int64, aligned with `pending`).
    read_mode:    "scan" (id ranges, rows handed to the shards) or "users" (each shard by the userid
                  index): `choose_read`; "" when nothing is pending.
    bounds:       (lowest id, highest id, rows) per table (cluster.db.id_bounds); ranges: the scan's id
                  ranges (empty unless read_mode is "scan").
    """

    planned: tuple[Shard, ...]
    pending: tuple[Shard, ...]
    users: int
    in_scope: dict[str, np.ndarray]
    read_mode: str = ""
    bounds: dict[str, tuple[int, int, int]] | None = None
    ranges: tuple[ScanRange, ...] = ()
    seconds: float = 0.0

    @property
    def shards_done_before(self) -> int:
        return len(self.planned) - len(self.pending)

    def rows_in_scope(self) -> dict[str, int]:
        """Rows in scope per table, over the pending shards."""
        return {name: int(rows.sum()) for name, rows in self.in_scope.items()}

    def expected_rows(self) -> dict[int, dict[str, int]]:
        """Shard index -> rows in scope per table."""
        return {shard.index: {name: int(rows[position]) for name, rows in self.in_scope.items()}
                for position, shard in enumerate(self.pending)}


def plan_run(ctx: RunContext) -> RunPlan:
    """Plan the run of `ctx` (see the module docstring). Raises ScanPlanError when a table scan would pass
    over rows in scope, DatabaseUnavailable when the database keeps failing."""
    started = time.perf_counter()
    config, database, reader = ctx.config, ctx.db, ctx.reader
    counts = reader.retrying("count rows per user", lambda: db.count_rows_by_table_user(reader.engine, config.tables))
    if ctx.resume:
        progress = database.retrying("load shards", lambda: ledger.load_shards(database.engine, ctx.run_id))
        planned = [p.shard for p in progress]
        pending = [p.shard for p in progress if p.status != "done"]
        users = ctx.record.config.get("users", 0)
    else:
        planned, users = _new_shards(ctx, counts)
        pending = planned
    in_scope = rows_in_shards(counts, pending)
    plan = RunPlan(tuple(planned), tuple(pending), users, in_scope)
    if not pending:
        return replace(plan, seconds=time.perf_counter() - started)
    bounds = reader.retrying("read id bounds", lambda: db.id_bounds(reader.engine, config.tables))
    read_mode = choose_read(config.read, pending, bounds)
    ranges = tuple(plan_scan(bounds, config.scan_rows)) if read_mode == "scan" else ()
    if ranges:
        check_scan(bounds, list(ranges), plan.rows_in_scope())
    return replace(plan, read_mode=read_mode, bounds=bounds, ranges=ranges, seconds=time.perf_counter() - started)


def _new_shards(ctx: RunContext, counts: dict[str, tuple[np.ndarray, np.ndarray]]) -> tuple[list[Shard], int]:
    """The shards of a new run over its scope, and how many users they hold."""
    config, reader = ctx.config, ctx.reader
    rows_by_user = db.rows_by_user(counts)
    if config.scope.restricts_users:
        activity = (
            reader.retrying("read user activity", lambda: db.read_user_activity(reader.engine))
            if config.scope.tier != "all"
            else {}
        )
        rows_by_user = select_users(rows_by_user, config.scope, activity, ctx.as_of)
    planned = plan_shards(rows_by_user, config.shard_rows, explicit_users=config.scope.restricts_users)
    return planned, len(rows_by_user)


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


def check_scan(bounds: dict[str, tuple[int, int, int]], ranges: list[ScanRange], in_scope: dict[str, int]) -> None:
    """Stop the run before Ray starts or any row is written when the scan would pass over rows in
    scope: ranges that do not cover a table's ids exactly (`check_scan_plan`), or a table whose id
    bounds count no rows while the run's users hold rows of it. Raises ScanPlanError."""
    check_scan_plan(bounds, ranges)
    for name, rows in in_scope.items():
        if rows and bounds.get(name, (0, -1, 0))[2] <= 0:
            raise ScanPlanError(name, f"the run's users hold {rows} rows of it, but its id bounds count none")
