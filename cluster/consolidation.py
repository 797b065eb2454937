"""Mode 7 -> mode 8 consolidation (DOMAIN.md §3: before 2024-04-21 autopilot was full mode 7).

The backfill analysis plan consolidates legacy mode 7 rows into mode 8 first, keeping `created_at`.
An applied consolidation is a recorded run (command "consolidate-mode7", cluster.ledger):

1. back up every mode 7 row into srb_mode7_backup (run id, row id and values) before anything else;
2. copy each mode 7 row to mode 8 where that user does not hold the achievement in mode 8, with the
   same created_at, through the ledgered writer (exact ledger, batch commits, retries);
3. only with `delete_mode7`, and only after checking that every backed-up mode 7 row now has a mode 8
   row for the same (user, achievement): delete the mode 7 rows that still equal their backup,
   recording each deletion in the ledger. This is the one place the tool deletes rows it did not
   insert; a rollback of the consolidation puts them back (cluster.rollback).

A preview (the default) only counts. Rows are users_achievements (id, user_id, achievement_id,
mode, created_at: unix seconds).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import sqlalchemy as sa

from cluster import control, db, ledger
from cluster.errors import ConsolidationNotVerified
from cluster.governor import permitted
from cluster.rollback import delete_recorded
from cluster.schema import users_achievements

LEGACY_AUTOPILOT_MODE = 7
AUTOPILOT_MODE = 8


@dataclass(slots=True)
class ConsolidationSummary:
    """What a consolidation found and did.

    mode7_rows:       mode 7 rows in users_achievements when it started
    to_copy:          of those, rows whose user lacks the achievement in mode 8
    already_in_mode8: rows whose user already holds the achievement in mode 8 (not copied)
    backed_up:        rows saved in srb_mode7_backup; copied: mode 8 rows inserted (ledger);
    already_present:  copies skipped because a mode 8 row appeared meanwhile
    verified:         whether every backed-up row has a mode 8 counterpart (None: not checked)
    deleted_mode7:    mode 7 rows deleted (`delete_mode7`)
    governor:         an applied, governed consolidation's write governor at the end
                      (WriteGovernor.status()), else {}
    """

    run_id: str | None
    applied: bool
    database: str
    delete_mode7: bool
    mode7_rows: int = 0
    to_copy: int = 0
    already_in_mode8: int = 0
    backed_up: int = 0
    copied: int = 0
    already_present: int = 0
    verified: bool | None = None
    deleted_mode7: int = 0
    seconds: float = 0.0
    governor: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def read_mode7(engine: sa.Engine) -> tuple[list[dict], set[tuple[int, int]]]:
    """(mode 7 rows as dicts ua_id, user_id, achievement_id, mode, created_at ordered by id; the
    (user_id, achievement_id) pairs those users hold in mode 8)."""
    table = users_achievements
    with engine.connect() as conn:
        rows = [
            {"ua_id": int(i), "user_id": int(u), "achievement_id": int(a), "mode": int(m), "created_at": int(c)}
            for i, u, a, m, c in conn.execute(
                sa.select(table.c.id, table.c.user_id, table.c.achievement_id, table.c.mode, table.c.created_at)
                .where(table.c.mode == LEGACY_AUTOPILOT_MODE)
                .order_by(table.c.id)
            )
        ]
        users = sorted({r["user_id"] for r in rows})
        held8: set[tuple[int, int]] = set()
        for start in range(0, len(users), 1000):
            query = sa.select(table.c.user_id, table.c.achievement_id).where(
                (table.c.mode == AUTOPILOT_MODE) & db.in_bounded(table.c.user_id, users[start : start + 1000])
            )
            held8 |= {(int(u), int(a)) for u, a in conn.execute(query)}
    return rows, held8


def _copies(rows: list[dict], held8: set[tuple[int, int]]) -> list[dict]:
    """One mode 8 grant per (user, achievement) the user lacks in mode 8, with the earliest created_at."""
    earliest: dict[tuple[int, int], int] = {}
    for r in rows:
        key = (r["user_id"], r["achievement_id"])
        if key not in held8:
            earliest[key] = min(r["created_at"], earliest.get(key, r["created_at"]))
    return [
        {"user_id": u, "achievement_id": a, "mode": AUTOPILOT_MODE, "created_at": c, "source": "mode7_copy"}
        for (u, a), c in sorted(earliest.items())
    ]


def _backup(engine: sa.Engine, run_id: str, rows: list[dict]) -> int:
    stamp = ledger.now()
    with engine.begin() as conn:
        result = conn.execute(
            db.insert_ignore(engine, ledger.mode7_backup),
            [{"run_id": run_id, **r, "backed_up_at": stamp} for r in rows],
        )
    return result.rowcount


def unverified_rows(engine: sa.Engine, run_id: str) -> tuple[int, tuple[tuple[int, int], ...]]:
    """Backed-up mode 7 rows of run `run_id` with no mode 8 row for their (user, achievement):
    (count, up to 20 (user_id, achievement_id) pairs)."""
    backup, table = ledger.mode7_backup, users_achievements
    joined = backup.outerjoin(
        table,
        (table.c.user_id == backup.c.user_id) & (table.c.achievement_id == backup.c.achievement_id)
        & (table.c.mode == AUTOPILOT_MODE),
    )
    query = (
        sa.select(backup.c.user_id, backup.c.achievement_id)
        .select_from(joined)
        .where((backup.c.run_id == run_id) & table.c.id.is_(None))
        .order_by(backup.c.user_id, backup.c.achievement_id)
    )
    with engine.connect() as conn:
        pairs = [(int(u), int(a)) for u, a in conn.execute(query)]
    return len(pairs), tuple(pairs[:20])


def consolidate_mode7(
    engine: sa.Engine,
    *,
    apply: bool = False,
    delete_mode7: bool = False,
    run_id: str | None = None,
    batch_rows: int = 1000,
    retry: db.RetryPolicy = db.DEFAULT_RETRY,
    log: db.RetryLog | None = None,
    url: str | None = None,
    governance: control.Governance | None = None,
) -> ConsolidationSummary:
    """Preview (default) or apply the mode 7 -> 8 consolidation (see the module docstring).

    With `governance`, every write transaction (backup, copy, delete) waits for a write governor's
    permit, as a backfill run's writes do (cluster.control.governed; `sr-backfill control --run-id
    RUN_ID` pauses it); the batches hold at most `batch_rows` rows. `url` (the primary, for the
    governor's collectors) defaults to the engine's.

    Raises ConsolidationNotVerified (and deletes nothing) when `delete_mode7` finds a backed-up row
    without a mode 8 counterpart; RunStateError for a taken run id; DatabaseUnavailable when a batch
    keeps failing.
    """
    started = time.perf_counter()
    rows, held8 = db.retrying(lambda: read_mode7(engine), "read mode 7 rows", retry, log, url)
    copies = _copies(rows, held8)
    summary = ConsolidationSummary(None, apply, db.mask_url(engine.url), delete_mode7, mode7_rows=len(rows),
                                   to_copy=len(copies), already_in_mode8=len(rows) - len(copies))
    if not apply:
        summary.seconds = round(time.perf_counter() - started, 3)
        return summary
    ledger.ensure_tables(engine)
    run_id = ledger.check_run_id(run_id) if run_id else ledger.new_run_id()
    summary.run_id = run_id
    stamp = ledger.now()
    ledger.create_run(engine, ledger.RunRecord(run_id, "consolidate-mode7", "running", stamp, stamp,
                                               {"delete_mode7": delete_mode7}))
    with ledger.run_lock(engine, run_id), control.governed(engine, run_id, governance, url) as governor:
        try:
            for number, start in enumerate(range(0, len(rows), batch_rows)):
                for part in permitted(rows[start : start + batch_rows], governor):
                    db.retrying(lambda part=part: _backup(engine, run_id, part), f"back up mode 7 batch {number}",
                                retry, log, url)
            with engine.connect() as conn:
                summary.backed_up = conn.execute(
                    sa.select(sa.func.count()).select_from(ledger.mode7_backup).where(ledger.mode7_backup.c.run_id == run_id)
                ).scalar()
            result = ledger.write_ledgered(engine, run_id, copies, source="mode7_copy", batch_rows=batch_rows,
                                           retry=retry, log=log, url=url, governor=governor)
            summary.copied = ledger.ledger_totals(engine, run_id)["insert"].get("mode7_copy", 0)
            summary.already_present = result.present
            if delete_mode7:
                count, pairs = unverified_rows(engine, run_id)
                summary.verified = count == 0
                if count:
                    raise ConsolidationNotVerified(count, pairs)
                kept = db.KeptConnection(engine)
                try:
                    for number, start in enumerate(range(0, len(rows), batch_rows)):
                        for part in permitted(rows[start : start + batch_rows], governor):
                            db.retrying(lambda part=part: delete_recorded(kept, run_id, part, "mode7_delete"),
                                        f"delete mode 7 batch {number}", retry, log, url)
                finally:
                    kept.close()
                summary.deleted_mode7 = ledger.ledger_totals(engine, run_id)["delete"].get("mode7_delete", 0)
        except BaseException:
            summary.seconds = round(time.perf_counter() - started, 3)
            if governor is not None:
                summary.governor = governor.status()
            ledger.update_run(engine, run_id, status="failed", summary=summary.to_dict())
            raise
        if governor is not None:
            summary.governor = governor.status()
        summary.seconds = round(time.perf_counter() - started, 3)
        ledger.update_run(engine, run_id, status="finished", summary=summary.to_dict())
    return summary
