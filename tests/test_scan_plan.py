"""The table-scan read plan: id ranges, waves, handing rows to shards, and when a run scans."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cluster.errors import ScanPlanError
from cluster.plan import check_scan as _check_scan, choose_read
from cluster.schema import AP_OFFSET, RELAX_OFFSET
from cluster.shards import (
    ScanRange, Shard, check_scan_plan, plan_scan, plan_shards, plan_waves, rows_in_shards, shard_positions,
)

ID_MAX = 2**63 - 1  # BIGINT's largest id


@st.composite
def spans(draw):
    """(lowest id, highest id, rows) anywhere in [1, 2^63): rows at most the ids in the span."""
    lo = draw(st.integers(1, ID_MAX))
    hi = draw(st.integers(lo, min(ID_MAX, lo + draw(st.sampled_from([0, 1, 7, 1_000, 10**6, 2**40, 2**62])))))
    rows = draw(st.integers(1, min(hi - lo + 1, 5_000)))
    return lo, hi, rows


@settings(max_examples=400, deadline=None)
@given(spans(), st.integers(1, 400))
def test_scan_ranges_anywhere_below_2_63_are_disjoint_cover_the_span_and_lose_no_id(span, range_rows):
    lo, hi, rows = span
    ranges = plan_scan({"scores_ap": (lo, hi, rows)}, range_rows)
    assert ranges, "a table with rows always gets a range"
    assert ranges[0].id_lo == lo and ranges[-1].id_hi == hi
    for before, after in zip(ranges, ranges[1:]):
        assert after.id_lo == before.id_hi + 1  # adjacent: disjoint, and no id between them is lost
    assert all(r.id_lo <= r.id_hi and type(r.id_lo) is int and type(r.id_hi) is int for r in ranges)
    assert sum(r.id_hi - r.id_lo + 1 for r in ranges) == hi - lo + 1
    assert len(ranges) == min(-(-rows // range_rows), hi - lo + 1)
    check_scan_plan({"scores_ap": (lo, hi, rows)}, ranges)  # the run's own check agrees


def test_the_reported_autopilot_span_is_read_whole():
    """The issue's case: float64 edges snapped both ends of this span to one value and skipped the table."""
    lo, hi = 6148914691236517204, 6148914691236517367
    assert np.linspace(lo, hi + 1, 2).round().astype(np.int64).tolist()[0] != lo  # what a float plan did
    ranges = plan_scan({"scores_ap": (lo, hi, 164)}, 250_000)
    assert [(r.id_lo, r.id_hi) for r in ranges] == [(lo, hi)]
    ranges = plan_scan({"scores_ap": (lo, hi, 164)}, 10)
    assert len(ranges) == 17 and ranges[0].id_lo == lo and ranges[-1].id_hi == hi


def test_a_scan_plan_that_loses_ids_stops_the_run():
    bounds = {"scores": (1, 100, 100), "scores_relax": (RELAX_OFFSET, RELAX_OFFSET + 9, 10),
              "scores_ap": (AP_OFFSET, AP_OFFSET + 163, 164)}
    good = plan_scan(bounds, 30)
    _check_scan(bounds, good, {"scores": 100, "scores_relax": 10, "scores_ap": 164})
    without_ap = [r for r in good if r.table != "scores_ap"]
    with pytest.raises(ScanPlanError, match="scores_ap.*no range"):
        check_scan_plan(bounds, without_ap)
    snapped = [ScanRange(r.index, r.table, r.id_lo, r.id_hi - (512 if r.table == "scores_ap" else 0), r.rows)
               for r in good]
    with pytest.raises(ScanPlanError, match="scores_ap"):
        check_scan_plan(bounds, snapped)
    gap = [r for r in good if not (r.table == "scores" and r.id_lo == good[1].id_lo)]
    with pytest.raises(ScanPlanError, match="scores"):
        check_scan_plan(bounds, gap)
    # a table the run's users hold rows of, but whose bounds count none, is not passed over either
    with pytest.raises(ScanPlanError, match="scores_ap"):
        _check_scan({**bounds, "scores_ap": (0, -1, 0)}, without_ap, {"scores_ap": 164})


def test_rows_in_shards_per_table():
    counts = {"scores": (np.array([1, 2, 5, 9], dtype=np.int64), np.array([3, 4, 5, 6], dtype=np.int64)),
              "scores_ap": (np.array([2, 9], dtype=np.int64), np.array([7, 1], dtype=np.int64))}
    shards = [Shard(0, 1, 2, 0), Shard(1, 5, 8, 0)]  # user 9 is outside every shard
    held = rows_in_shards(counts, shards)
    assert held["scores"].tolist() == [7, 5] and held["scores_ap"].tolist() == [7, 0]
    assert held["scores"].dtype == np.int64
    scoped = [Shard(0, 1, 9, 0, (2, 9))]
    assert rows_in_shards(counts, scoped)["scores"].tolist() == [10]


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
