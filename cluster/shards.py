"""Shards: contiguous userid ranges, so that one shard holds every row of its users.

A user's running play-count and hit totals and earliest unlocks depend on all of their rows, so a
shard never splits a user: its result is final and shards can run in any order, on any worker.

A run over a subset of users (a tier, a list, a sample: cluster.scope) gives each shard the explicit
`user_ids` it covers; an unscoped shard covers every user in its range. An applied run stores its plan
(cluster.ledger) so that a resumed run works on exactly the same shards.

How a shard's rows are read is a separate plan. A shard task can read its own users through the
`userid` index (few users: a tier, a list, a resume of a few shards), but a whole-table run reads far
faster in primary-key order: the tables are cut into `ScanRange`s of ids, each range is read once and
its rows are handed to the shards of their users (cluster.workers.scan_range). Shards are taken in
waves (`plan_waves`) so that only one wave's rows wait between the scan and the shard tasks.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass

import numpy as np

from cluster.errors import ScanPlanError


@dataclass(frozen=True, slots=True)
class Shard:
    """Users with `user_lo <= userid <= user_hi` (only those in `user_ids` when it is not None);
    `rows` is the score-row count it was planned with."""

    index: int
    user_lo: int
    user_hi: int
    rows: int
    user_ids: tuple[int, ...] | None = None

    @property
    def users(self) -> int | None:
        """How many users the shard lists (None for a whole range)."""
        return None if self.user_ids is None else len(self.user_ids)


def plan_shards(rows_by_user: dict[int, int], target_rows: int, explicit_users: bool = False) -> list[Shard]:
    """Cut users (ascending userid) into shards of about `target_rows` score rows each.

    A user with more rows than `target_rows` gets a shard alone. Returns shards in userid order;
    none for no users. With `explicit_users`, each shard lists its users (`user_ids`): use it when
    `rows_by_user` holds only some of the users in the ranges. Raises ValueError if target_rows < 1.
    """
    if target_rows < 1:
        raise ValueError(f"target_rows must be at least 1, got {target_rows}")
    shards: list[Shard] = []
    lo = hi = None
    rows = 0
    for userid in sorted(rows_by_user):
        count = rows_by_user[userid]
        if lo is not None and rows + count > target_rows:
            shards.append(Shard(len(shards), lo, hi, rows))
            lo, rows = None, 0
        if lo is None:
            lo = userid
        hi = userid
        rows += count
    if lo is not None:
        shards.append(Shard(len(shards), lo, hi, rows))
    if explicit_users:
        ordered = sorted(rows_by_user)
        shards = [
            Shard(s.index, s.user_lo, s.user_hi, s.rows,
                  tuple(ordered[bisect_left(ordered, s.user_lo) : bisect_right(ordered, s.user_hi)]))
            for s in shards
        ]
    return shards


@dataclass(frozen=True, slots=True)
class ScanRange:
    """Rows of score table `table` with `id_lo <= id <= id_hi`; `rows` is the planned estimate."""

    index: int
    table: str
    id_lo: int
    id_hi: int
    rows: int


def plan_scan(bounds: dict[str, tuple[int, int, int]], range_rows: int) -> list[ScanRange]:
    """Cut each score table's id span into ranges of about `range_rows` rows.

    `bounds`: (lowest id, highest id, rows) per table (cluster.db.id_bounds); ids are taken as spread
    evenly over the span (auto-increment ids are), so a range's `rows` is an estimate. The edges are
    computed in exact integer arithmetic: ids reach above 2^62 (autopilot, DOMAIN.md §2), where a
    float64 holds only multiples of 1,024. For each table the ranges are disjoint, ascending, and cover
    `[lowest id, highest id]` exactly (`check_scan_plan` proves it). Empty tables get no range.
    Raises ValueError if range_rows < 1.
    """
    if range_rows < 1:
        raise ValueError(f"range_rows must be at least 1, got {range_rows}")
    ranges: list[ScanRange] = []
    for table, (lo, hi, rows) in bounds.items():
        if rows <= 0:
            continue
        lo, hi = int(lo), int(hi)
        span = hi - lo + 1
        pieces = min(max(1, -(-rows // range_rows)), span)
        edges = [lo + span * piece // pieces for piece in range(pieces + 1)]  # Python ints: exact
        for start, stop in zip(edges[:-1], edges[1:]):
            ranges.append(ScanRange(len(ranges), table, start, stop - 1, -(-rows // pieces)))
    return ranges


def check_scan_plan(bounds: dict[str, tuple[int, int, int]], ranges: list[ScanRange]) -> None:
    """Check that the scan ranges read every id of every non-empty table in `bounds`: per table, the
    ranges are non-empty, ascending, adjacent and span exactly `[lowest id, highest id]`.

    Raises ScanPlanError naming the table, before anything is read or written, when a table that holds
    rows would be read as empty or short.
    """
    by_table: dict[str, list[ScanRange]] = {}
    for scan in ranges:
        by_table.setdefault(scan.table, []).append(scan)
    for table, (lo, hi, rows) in bounds.items():
        if rows <= 0:
            continue
        parts = by_table.get(table, [])
        if not parts:
            raise ScanPlanError(table, f"holds {rows} rows (ids {lo}..{hi}) but the scan plan has no range for it")
        expected = int(lo)
        for scan in parts:
            if scan.id_lo != expected or scan.id_hi < scan.id_lo:
                raise ScanPlanError(
                    table, f"range {scan.index} covers ids {scan.id_lo}..{scan.id_hi}, the next id to read is {expected}")
            expected = scan.id_hi + 1
        if expected != int(hi) + 1:
            raise ScanPlanError(table, f"the scan plan stops at id {expected - 1}, the table's highest id is {hi}")


def plan_waves(shards: list[Shard], wave_rows: int) -> list[list[Shard]]:
    """Group shards (in order) into waves of at most `wave_rows` planned rows each (a bigger shard is a
    wave alone). Raises ValueError if wave_rows < 1."""
    if wave_rows < 1:
        raise ValueError(f"wave_rows must be at least 1, got {wave_rows}")
    waves: list[list[Shard]] = []
    rows = 0
    for shard in shards:
        if waves and rows + shard.rows <= wave_rows:
            waves[-1].append(shard)
            rows += shard.rows
        else:
            waves.append([shard])
            rows = shard.rows
    return waves


def shard_positions(userids: np.ndarray, shards: list[Shard]) -> np.ndarray:
    """For each userid, the position in `shards` (in userid order) of the shard that holds it, or -1
    when none does (a user between shards, outside them, or not listed by a shard with `user_ids`)."""
    if not shards:
        return np.full(len(userids), -1, dtype=np.int64)
    userids = np.asarray(userids, dtype=np.int64)
    if all(s.user_ids is None for s in shards):
        los = np.array([s.user_lo for s in shards], dtype=np.int64)
        his = np.array([s.user_hi for s in shards], dtype=np.int64)
        position = np.searchsorted(los, userids, side="right") - 1
        inside = (position >= 0) & (userids <= his[np.clip(position, 0, None)])
        return np.where(inside, position, -1)
    if any(s.user_ids is None for s in shards):
        raise ValueError("shard_positions takes shards that all list their users, or none that does")
    listed = np.array([u for s in shards for u in s.user_ids], dtype=np.int64)  # ascending: shards are in order
    owner = np.repeat(np.arange(len(shards), dtype=np.int64), [len(s.user_ids) for s in shards])
    if len(listed) == 0:
        return np.full(len(userids), -1, dtype=np.int64)
    index = np.clip(np.searchsorted(listed, userids), 0, len(listed) - 1)
    return np.where(listed[index] == userids, owner[index], -1)


def rows_in_shards(counts: dict[str, tuple[np.ndarray, np.ndarray]], shards: list[Shard]) -> dict[str, np.ndarray]:
    """The score rows each shard holds, per table: for each table of `counts` (cluster.db.
    count_rows_by_table_user: userids and rows, int64), an int64 array aligned with `shards` (in
    userid order). A run compares them with the rows its reads deliver (the rows in scope)."""
    out: dict[str, np.ndarray] = {}
    for table, (userids, rows) in counts.items():
        positions = shard_positions(userids, shards)
        held = np.zeros(len(shards), dtype=np.int64)
        inside = positions >= 0
        np.add.at(held, positions[inside], rows[inside])
        out[table] = held
    return out
