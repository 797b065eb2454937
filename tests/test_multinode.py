"""A run on a Ray cluster of several nodes (ray.cluster_utils.Cluster on this host) gives the same grants.

With several nodes the table scan's rows are produced in one node's object store and read by shard tasks
on another, and keys are rated by raters on different nodes; the grants must still be exactly the
scenario's expected ones.
"""

from __future__ import annotations

import pytest

from cluster.pipeline import BackfillConfig
from testbed import bench
from tests import scenario as sc
from tests.test_backfill_mariadb import grant_diff, read_out


@pytest.mark.db
@pytest.mark.ray
def test_a_three_node_cluster_grants_exactly_the_expected_rows(scenario_db, tmp_path):
    url, osu_dir = scenario_db
    out = tmp_path / "grants.parquet"
    with bench.ray_cluster(nodes=3, cpus_per_node=1, object_store_mb=128) as address:
        summary = bench.run_isolated(BackfillConfig(
            db_url=url, osu_location=str(osu_dir), out=out, workers=3, shard_rows=100, progress=False,
            ray_address=address, read="scan", scan_rows=700, wave_rows=1500, sr_cache=str(tmp_path / "cache"),
        ))
    assert summary["workers"] == 3 and summary["read_mode"] == "scan" and summary["waves"] > 1
    assert summary["shards_failed"] == 0
    assert grant_diff(sc.EXPECTED_GRANTS, read_out(out), with_score_id=True) == ""
