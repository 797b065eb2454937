"""The table-scan read plan: id ranges, waves, handing rows to shards, and when a run scans."""

from __future__ import annotations

import numpy as np
import pytest

from cluster.pipeline import choose_read
from cluster.shards import Shard, plan_scan, plan_shards, plan_waves, shard_positions


def test_scan_ranges_cover_each_table_exactly_once():
    bounds = {"scores": (5, 1004, 1000), "scores_relax": (1, 2500, 2400), "scores_ap": (0, -1, 0)}
    ranges = plan_scan(bounds, 300)
    for table, (lo, hi, rows) in bounds.items():
        mine = [r for r in ranges if r.table == table]
        if rows == 0:
            assert mine == []
            continue
        assert len(mine) == -(-rows // 300)
        covered = [i for r in mine for i in range(r.id_lo, r.id_hi + 1)]
        assert covered == list(range(lo, hi + 1))  # contiguous, no gap, no overlap
    assert [r.index for r in ranges] == list(range(len(ranges)))


def test_one_row_table_and_bad_size():
    assert [(r.id_lo, r.id_hi) for r in plan_scan({"scores": (7, 7, 1)}, 1000)] == [(7, 7)]
    with pytest.raises(ValueError):
        plan_scan({"scores": (1, 10, 10)}, 0)


def test_waves_keep_order_and_bound_rows():
    shards = [Shard(i, i * 10, i * 10 + 9, rows) for i, rows in enumerate([40, 30, 50, 120, 10, 10])]
    waves = plan_waves(shards, 100)
    assert [[s.index for s in w] for w in waves] == [[0, 1], [2], [3], [4, 5]]
    assert all(sum(s.rows for s in w) <= 100 or len(w) == 1 for w in waves)
    with pytest.raises(ValueError):
        plan_waves(shards, 0)


def test_rows_go_to_the_shard_of_their_user():
    shards = plan_shards({3: 5, 10: 5, 11: 1, 40: 9, 41: 2}, 10)  # [3..10], [11..40], [41..41]
    userids = np.array([3, 10, 11, 25, 40, 41, 1, 42, 10, 7])
    assert shard_positions(userids, shards).tolist() == [0, 0, 1, 1, 1, 2, -1, -1, 0, 0]
    # a wave that is a later slice of the plan: users of other shards are dropped
    assert shard_positions(userids, shards[1:]).tolist() == [-1, -1, 0, 0, 0, 1, -1, -1, -1, -1]
    assert shard_positions(userids, []).tolist() == [-1] * len(userids)


def test_rows_go_to_the_scoped_shard_that_lists_their_user():
    # a tier or a sample: users 3, 11, 40 and 41 are in scope, 10 and 25 are not
    shards = plan_shards({3: 5, 11: 6, 40: 9, 41: 1}, 10, explicit_users=True)  # (3,), (11,), (40, 41)
    assert [s.user_ids for s in shards] == [(3,), (11,), (40, 41)]
    userids = np.array([3, 10, 11, 25, 40, 41, 1, 42, 11, 7])
    assert shard_positions(userids, shards).tolist() == [0, -1, 1, -1, 2, 2, -1, -1, 1, -1]
    assert shard_positions(userids, shards[2:]).tolist() == [-1, -1, -1, -1, 0, 0, -1, -1, -1, -1]
    with pytest.raises(ValueError):  # whole-range and scoped shards do not mix
        shard_positions(userids, [*plan_shards({3: 5}, 10), *shards[1:]])


def test_auto_scans_when_the_shards_hold_a_large_share_of_the_rows():
    bounds = {"scores": (1, 1000, 1000), "scores_relax": (1, 3000, 3000)}
    whole = plan_shards({u: 40 for u in range(100)}, 400)  # 4,000 rows: everything
    assert choose_read("auto", whole, bounds) == "scan"
    assert choose_read("auto", whole[:2], bounds) == "users"  # a resume of two shards of ten
    tier = plan_shards({u: 40 for u in range(0, 100, 3)}, 400, explicit_users=True)  # a third of the rows
    assert choose_read("auto", tier, bounds) == "scan"
    few = plan_shards({u: 40 for u in range(0, 100, 7)}, 400, explicit_users=True)  # a seventh
    assert choose_read("auto", few, bounds) == "users"
    assert choose_read("users", whole, bounds) == "users"
    assert choose_read("scan", few, bounds) == "scan"
