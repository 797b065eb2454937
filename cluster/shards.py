"""Shards: contiguous userid ranges, so that one shard holds every row of its users.

A user's running play-count and hit totals and earliest unlocks depend on all of their rows, so a
shard never splits a user: its result is final and shards can run in any order, on any worker.

A run over a subset of users (a tier, a list, a sample: cluster.scope) gives each shard the explicit
`user_ids` it covers; an unscoped shard covers every user in its range. An applied run stores its plan
(cluster.ledger) so that a resumed run works on exactly the same shards.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass


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
