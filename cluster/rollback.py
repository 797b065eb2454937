"""Rollback: undo exactly what one recorded run did, from its ledger (DOMAIN.md §7).

`created_at` is historical, so the seed plan's `DELETE ... WHERE created_at >= start` would delete
the wrong rows; a rollback works from the run's ledger instead:

* every row the run inserted is deleted if, and only if, the row with that id still holds exactly
  what the run inserted (user, achievement, mode, created_at); a row changed or deleted since is left
  alone and counted;
* every row the run deleted (a consolidation's mode 7 rows, a rollback's deletions) is inserted back
  with its id and values, unless that id or that (user, achievement, mode) is taken now.

A preview (the default) reads and counts and writes nothing. An applied rollback is itself a run
(command "rollback") with its own ledger, written batch by batch in the same transactions as the
changes, so it can be interrupted and repeated (rows already undone are skipped) and rolled back in
turn. The target run is marked "rolled_back" (it can no longer be resumed).

Beside the live server (cluster.regrant): while a run's row exists the live server does not grant that
achievement again, so every rollback counts the rows it deletes whose user has a passed, eligible score
in that mode since the target run started (`live_affected`, listed in `live_rows`); with a
`LiveRegrant` it grants them again as the live server would have, as a run of its own.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import asdict, dataclass, field

import sqlalchemy as sa

from cluster import control, db, ledger, regrant
from cluster.errors import RunStateError
from cluster.governor import GovernorClient, permitted
from cluster.schema import SCORE_TABLES, users_achievements

ROW = ledger.LEDGER_ROW  # ua_id, user_id, achievement_id, mode, created_at
SAMPLES = 20


@dataclass(slots=True)
class RollbackSummary:
    """What a rollback found and did (counts of users_achievements rows).

    to_delete:       rows the target inserted that still hold what it inserted
    changed:         rows the target inserted whose id now holds other values (left alone)
    missing:         rows the target inserted that are gone (of which `already_undone` by an earlier
                     rollback; nothing to do)
    to_restore:      rows the target deleted whose id and (user, achievement, mode) are free
    restore_blocked: rows the target deleted whose id or key is taken now (left alone)
    deleted / restored / skipped_now: what an applied rollback did; rows that changed between the
                     preview and the write are counted in skipped_now
    samples:         up to 20 rows left alone, with the reason
    live_since:      when the target run started (unix seconds): live scores from then on count
    live_affected:   rows to delete whose user has a passed, eligible score in the row's full mode since
                     live_since (the live server could not grant them while the row existed); the rows
                     are in `live_rows` (not part of `to_dict`), with live_scores, first_live_score_at and,
                     when live grants were evaluated, regrant_created_at / regrant_score_id
    regrant:         what granting them again found and did (cluster.regrant.RegrantSummary), or None
    governor:        an applied, governed rollback's write governor at the end (WriteGovernor.status():
                     limits, held_seconds by reason, lag and Threads_running figures, batch sizes), else {}
    """

    target_run_id: str
    target_command: str
    rollback_id: str | None
    applied: bool
    database: str
    to_delete: int = 0
    changed: int = 0
    missing: int = 0
    already_undone: int = 0
    to_restore: int = 0
    restore_blocked: int = 0
    deleted: int = 0
    restored: int = 0
    skipped_now: int = 0
    samples: list = field(default_factory=list)
    seconds: float = 0.0
    live_since: int = 0
    live_affected: int = 0
    regrant: dict | None = None
    governor: dict = field(default_factory=dict)
    live_rows: list = field(default_factory=list, repr=False)

    def to_dict(self) -> dict:
        data = asdict(self)
        del data["live_rows"]
        return data


@dataclass(frozen=True, slots=True)
class LiveRegrant:
    """Grant the live-affected rows again (cluster.regrant) after the rollback.

    osu_location / engine_name: the .osu store and SR engine (None: the target run's own); regrant_id:
    the id of the regrant's run record (None: a fresh one).
    """

    osu_location: str | None = None
    engine_name: str | None = None
    regrant_id: str | None = None


def _chunks(items: list, size: int):
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _values(row) -> tuple[int, ...]:
    return tuple(int(row[c]) for c in ("user_id", "achievement_id", "mode", "created_at"))


def _current_by_id(conn: sa.Connection, ids: list[int], lock: bool = False) -> dict[int, tuple[int, ...]]:
    table = users_achievements
    out: dict[int, tuple[int, ...]] = {}
    for part in _chunks(ids, 1000):
        query = sa.select(table.c.id, table.c.user_id, table.c.achievement_id, table.c.mode, table.c.created_at).where(
            db.in_bounded(table.c.id, part)
        )
        if lock:
            query = query.with_for_update()
        for row in conn.execute(query).mappings():
            out[int(row["id"])] = _values(row)
    return out


def _taken_keys(conn: sa.Connection, keys: list[tuple[int, int, int]]) -> set[tuple[int, int, int]]:
    table = users_achievements
    taken: set[tuple[int, int, int]] = set()
    for part in _chunks(keys, 1000):
        query = sa.select(table.c.user_id, table.c.achievement_id, table.c.mode).where(
            sa.tuple_(table.c.user_id, table.c.achievement_id, table.c.mode).in_(part)
        )
        taken |= {(int(u), int(a), int(m)) for u, a, m in conn.execute(query)}
    return taken


def _classify_inserted(kept: db.KeptConnection, rows: list[dict], summary: RollbackSummary) -> list[dict]:
    """Of a chunk of rows the target inserted, those still as inserted; counts and samples the others."""
    ids = [int(r["ua_id"]) for r in rows]
    with kept.use() as conn, conn.begin():
        current = _current_by_id(conn, ids)
        missing = [i for i in ids if i not in current]
        undone = {
            int(i) for (i,) in conn.execute(
                sa.select(ledger.ledger.c.ua_id).where(
                    (ledger.ledger.c.action == "delete") & (ledger.ledger.c.source == "rollback_delete")
                    & db.in_bounded(ledger.ledger.c.ua_id, missing)
                )
            )
        } if missing else set()
    keep = []
    for r in rows:
        now = current.get(int(r["ua_id"]))
        if now == _values(r):
            keep.append(r)
        elif now is None:
            summary.missing += 1
            summary.already_undone += int(r["ua_id"]) in undone
        else:
            summary.changed += 1
            _sample(summary, r, "changed since the run inserted it")
    return keep


def _classify_deleted(kept: db.KeptConnection, rows: list[dict], summary: RollbackSummary) -> list[dict]:
    """Of a chunk of rows the target deleted, those whose id and key are free; counts the others."""
    with kept.use() as conn, conn.begin():
        ids_taken = _current_by_id(conn, [int(r["ua_id"]) for r in rows])
        keys_taken = _taken_keys(conn, [tuple(int(r[c]) for c in ("user_id", "achievement_id", "mode")) for r in rows])
    keep = []
    for r in rows:
        key = (int(r["user_id"]), int(r["achievement_id"]), int(r["mode"]))
        if int(r["ua_id"]) in ids_taken or key in keys_taken:
            summary.restore_blocked += 1
            _sample(summary, r, "id or (user, achievement, mode) taken now")
        else:
            keep.append(r)
    return keep


def _sample(summary: RollbackSummary, row: dict, why: str) -> None:
    if len(summary.samples) < SAMPLES:
        summary.samples.append({**{c: int(row[c]) for c in ROW}, "action": row["action"], "why": why})


def _record(conn: sa.Connection, run_id: str, rows: list[dict], action: str, source: str) -> None:
    if not rows:
        return
    stamp = ledger.now()
    conn.execute(
        sa.insert(ledger.ledger),
        [
            {"run_id": run_id, "action": action, "source": source, **{c: int(r[c]) for c in ROW},
             "shard": None, "score_id": r.get("score_id"), "sr": r.get("sr"), "playcount": r.get("playcount"),
             "total_hits": r.get("total_hits"), "recorded_at": stamp}
            for r in rows
        ],
    )


def delete_recorded(kept: db.KeptConnection, run_id: str, rows: list[dict], source: str) -> tuple[int, int]:
    """Delete the users_achievements rows that still equal `rows` (ledger-shaped dicts: ua_id, user_id,
    achievement_id, mode, created_at) and record each deletion as run `run_id`'s ("delete", `source`),
    in one transaction. On MySQL the rows are locked (FOR UPDATE) between the check and the delete, which
    then goes by id; on SQLite (no row locks) the delete matches every checked value. Returns (deleted,
    skipped: no longer equal). `kept`: the connection the caller's batches share."""
    table = users_achievements
    with kept.use() as conn, conn.begin():
        current = _current_by_id(conn, [int(r["ua_id"]) for r in rows], lock=True)
        equal = [r for r in rows if current.get(int(r["ua_id"])) == _values(r)]
        if equal:
            if conn.dialect.name in ("mysql", "mariadb"):
                # by id: the rows were just checked equal and stay locked until the commit (a row-value
                # IN of five columns made MariaDB scan an index per batch: 0.84 s against 8 ms for 1,000)
                match = table.c.id.in_([int(r["ua_id"]) for r in equal])
            else:  # no row locks: the delete itself requires the values checked
                columns = sa.tuple_(table.c.id, table.c.user_id, table.c.achievement_id, table.c.mode, table.c.created_at)
                match = columns.in_([tuple(int(r[c]) for c in ROW) for r in equal])
            result = conn.execute(sa.delete(table).where(match))
            if result.rowcount != len(equal):
                raise RuntimeError(f"deleted {result.rowcount} rows, expected {len(equal)}: rows changed under a lock")
            _record(conn, run_id, equal, "delete", source)
    return len(equal), len(rows) - len(equal)


def _restore(kept: db.KeptConnection, run_id: str, rows: list[dict]) -> tuple[int, int]:
    table = users_achievements
    statement = db.insert_ignore(kept.engine, table)
    with kept.use() as conn, conn.begin():
        restored = []
        for r in rows:
            values = {"id": int(r["ua_id"]), **{c: int(r[c]) for c in ("user_id", "achievement_id", "mode", "created_at")}}
            if conn.execute(statement, values).rowcount == 1:
                restored.append(r)
        _record(conn, run_id, restored, "insert", "rollback_restore")
    return len(restored), len(rows) - len(restored)


def rollback_run(
    engine: sa.Engine,
    target_run_id: str,
    *,
    apply: bool = False,
    rollback_id: str | None = None,
    batch_rows: int = 1000,
    retry: db.RetryPolicy = db.DEFAULT_RETRY,
    log: db.RetryLog | None = None,
    url: str | None = None,
    live: LiveRegrant | None = None,
    governance: control.Governance | None = None,
) -> RollbackSummary:
    """Preview (default) or apply the rollback of run `target_run_id` (see the module docstring).

    With `governance`, an applied rollback's deletes and restores (and the regrant's writes) wait for a
    write governor's permits, as a backfill run's writes do (cluster.control.governed: replica lag,
    Threads_running, window, rate cap, pause; `sr-backfill control --run-id ROLLBACK_ID`); the batch
    sizes are the governor's, at most `batch_rows`. `url` (the primary, for the governor's collectors)
    defaults to the engine's.

    With `live`, the live-affected rows are granted again as the live server would have
    (cluster.regrant): evaluated only in a preview, written as a run of their own when applied (the rows
    every rollback of the target deleted; repeating an applied rollback completes an interrupted
    regrant, the grants already written are skipped).

    Raises RunStateError when the database has no ledger, the run is unknown, the target is still
    being worked on by another process, `rollback_id` is taken, or `live` is asked of a target whose
    rows are not granted live (a rollback, a regrant); ConfigError when live grants need star ratings
    and no .osu store is known; DatabaseUnavailable when a batch keeps failing (repeat the rollback:
    what was undone is skipped).
    """
    started = time.perf_counter()
    if not ledger.has_tables(engine):
        raise RunStateError(target_run_id, "this database has no sr-backfill ledger (srb_ tables)")
    target = ledger.load_run(engine, target_run_id)
    if target is None:
        raise RunStateError(target_run_id, "no such run in this database")
    if live is not None:
        regrant.check_target(target)
    summary = RollbackSummary(target_run_id, target.command, None, apply, db.mask_url(engine.url),
                              live_since=target.started_at)
    present = db.table_names(engine)
    tables = [t for t in SCORE_TABLES if t in present] if {"beatmaps", "users"} <= present else []
    live_scores = regrant.live_scores_since(engine, target.started_at, tables)
    if apply:
        if ledger.run_in_use(engine, target_run_id):
            raise RunStateError(target_run_id, "another process is working on this run; stop it before rolling back")
        rollback_id = ledger.check_run_id(rollback_id) if rollback_id else ledger.new_run_id()
        summary.rollback_id = rollback_id
        stamp = ledger.now()
        ledger.create_run(engine, ledger.RunRecord(rollback_id, "rollback", "running", stamp, stamp,
                                                   {"target_run_id": target_run_id}, target_run_id))
    with contextlib.ExitStack() as stack:
        governor = None
        if apply:
            stack.enter_context(ledger.run_lock(engine, rollback_id))
            governor = stack.enter_context(control.governed(engine, rollback_id, governance, url))
        try:
            _undo(engine, target_run_id, summary, apply, batch_rows, retry, log, url, live_scores, governor)
        except BaseException:
            if apply:
                if governor is not None:
                    summary.governor = governor.status()
                ledger.update_run(engine, summary.rollback_id, status="failed", summary=summary.to_dict())
            raise
        if governor is not None:
            summary.governor = governor.status()
        if apply:
            # Exact figures come from the ledger: a batch whose commit was lost in transit and then
            # redone finds its rows already undone.
            totals = ledger.ledger_totals(engine, summary.rollback_id)
            summary.deleted = totals["delete"].get("rollback_delete", 0)
            summary.restored = totals["insert"].get("rollback_restore", 0)
            summary.skipped_now = summary.to_delete + summary.to_restore - summary.deleted - summary.restored
            summary.seconds = round(time.perf_counter() - started, 3)
            ledger.update_run(engine, target_run_id, status="rolled_back")
            ledger.update_run(engine, summary.rollback_id, status="finished", summary=summary.to_dict())
    if live is not None:
        _regrant(engine, target, summary, live, live_scores, apply, batch_rows, retry, log, url, governance)
    summary.seconds = round(time.perf_counter() - started, 3)
    return summary


def _regrant(engine: sa.Engine, target: ledger.RunRecord, summary: RollbackSummary, live: LiveRegrant,
             live_scores, apply: bool, batch_rows: int, retry: db.RetryPolicy, log: db.RetryLog | None,
             url: str | None, governance: control.Governance | None = None) -> None:
    """Evaluate (preview) or write (applied) the live grants of the rows the rollback deletes."""
    rater = regrant.LiveRater(live.osu_location or target.config.get("osu_location"),
                              live.engine_name or target.config.get("engine") or regrant.DEFAULT_ENGINE)
    if apply:  # the rows every rollback of the target deleted, live-affected
        affected = regrant.live_affected(regrant.deleted_by_rollbacks_of(engine, target.run_id), live_scores)
    else:
        affected = summary.live_rows
    context = {"rollback_id": summary.rollback_id, "target_run_id": target.run_id}
    result, grants = regrant.regrant_live(engine, affected, target.started_at, rater, apply=apply,
                                          regrant_id=live.regrant_id, context=context, batch_rows=batch_rows,
                                          retry=retry, log=log, url=url, governance=governance)
    summary.regrant = result.to_dict()
    granted = {(g["user_id"], g["achievement_id"], g["mode"]): g for g in grants}
    for row in summary.live_rows:
        grant = granted.get((row["user_id"], row["achievement_id"], row["mode"]))
        row["regrant_created_at"] = grant["created_at"] if grant else None
        row["regrant_score_id"] = grant["score_id"] if grant else None


def _undo(
    engine: sa.Engine, target_run_id: str, summary: RollbackSummary, apply: bool, batch_rows: int,
    retry: db.RetryPolicy, log: db.RetryLog | None, url: str | None, live_scores,
    governor: GovernorClient | None = None,
) -> None:
    """Undo (or, for a preview, only classify) the target's ledger chunk by chunk: classify read-only,
    then undo each chunk in transactions that check every row again under a lock (one a chunk, or one
    a governor's permit). The rows to delete that are live-affected (`live_scores`:
    cluster.regrant.live_scores_since) are counted and listed."""
    rollback_id = summary.rollback_id
    kept = db.KeptConnection(engine)  # one connection for every chunk (a new one after an error)
    try:
        for number, chunk in enumerate(ledger.iter_ledger(engine, target_run_id, "insert", batch_rows)):
            keep = db.retrying(lambda chunk=chunk: _classify_inserted(kept, chunk, summary),
                               f"read rollback batch {number}", retry, log, url)
            summary.to_delete += len(keep)
            affected = regrant.live_affected(keep, live_scores)
            summary.live_affected += len(affected)
            summary.live_rows += affected
            if apply and keep:
                for part in permitted(keep, governor):
                    db.retrying(lambda part=part: delete_recorded(kept, rollback_id, part, "rollback_delete"),
                                f"rollback delete batch {number}", retry, log, url)
        for number, chunk in enumerate(ledger.iter_ledger(engine, target_run_id, "delete", batch_rows)):
            keep = db.retrying(lambda chunk=chunk: _classify_deleted(kept, chunk, summary),
                               f"read restore batch {number}", retry, log, url)
            summary.to_restore += len(keep)
            if apply and keep:
                for part in permitted(keep, governor):
                    db.retrying(lambda part=part: _restore(kept, rollback_id, part),
                                f"rollback restore batch {number}", retry, log, url)
    finally:
        kept.close()
