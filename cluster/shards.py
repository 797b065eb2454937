"""Shards: contiguous userid ranges, so that one shard holds every row of its users.

A user's running play-count and hit totals and earliest unlocks depend on all of their rows, so a
shard never splits a user: its result is final and shards can run in any order, on any worker.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Shard:
    """Users with `user_lo <= userid <= user_hi`; `rows` is the score-row count it was planned with."""

    index: int
    user_lo: int
    user_hi: int
    rows: int


def plan_shards(rows_by_user: dict[int, int], target_rows: int) -> list[Shard]:
    """Cut users (ascending userid) into shards of about `target_rows` score rows each.

    A user with more rows than `target_rows` gets a shard alone. Returns shards in userid order;
    none for no users. Raises ValueError if target_rows < 1.
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
    return shards
