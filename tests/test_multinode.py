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


def _node_of(pid: int, cluster):
    """The worker node whose raylet started process `pid` (its parent), or None (the head)."""
    with open(f"/proc/{pid}/stat") as fh:
        parent = int(fh.read().rsplit(")", 1)[1].split()[1])
    for node in cluster.worker_nodes:
        if node.all_processes["raylet"][0].process.pid == parent:
            return node
    return None


@pytest.mark.db
@pytest.mark.ray
def test_a_node_lost_mid_write_on_a_three_node_cluster_ends_as_an_uninterrupted_run(scenario_db, tmp_path):
    """A worker node's raylet killed while one of the run's writers is inside a write transaction (pause
    point "write:2"): the node's writers, raters and shard tasks die with it; Ray restarts them on the
    other nodes and runs the interrupted write again. The run finishes with exactly the expected rows,
    no duplicates and an exact ledger."""
    import os
    import signal

    from tests import operations as op

    url, osu_dir = scenario_db
    marker = tmp_path / "paused"
    with bench.ray_cluster_nodes(nodes=3, cpus_per_node=1, object_store_mb=128) as cluster:
        argv = ["run", "--db", url, "--osu-dir", osu_dir, "--apply", "--run-id", "node-lost", "--report",
                tmp_path / "report.json", "--ray-address", cluster.address, "--workers", "2", "--writers", "3",
                "--shard-rows", "8", "--batch-rows", "6", "--no-progress", "--db-retry-wait", "0.05"]
        proc = op.start_job(argv, "write:2", marker)
        try:
            content, pid = op.paused_pid(proc, marker)
            assert content == "write:2"
            node = _node_of(pid, cluster)
            if node is None:  # the paused writer landed on the (CPU-less) head: lose it, and a worker node
                os.kill(pid, signal.SIGKILL)
                node = sorted(cluster.worker_nodes, key=lambda n: n.unique_id)[0]
            cluster.remove_node(node, allow_graceful=False)  # its raylet and every worker process on it
            out, err = proc.communicate(timeout=600)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            op.clear_pause(marker)
    assert proc.returncode == 0, out[-3000:] + err[-3000:]
    # restarted raters and writers find the journal and the governor by name (cluster.actors): no actor
    # is started with constructor arguments Ray could lose (ray-project/ray issue 53727)
    assert "constructor arguments in the object store" not in err
    rows = [r[1:] for r in op.table_rows(url)]
    assert len(rows) == len(set(rows)), "duplicate rows"
    assert op.new_rows(url) == op.EXPECTED_ROWS
    assert op.ledger_matches_table(url, "node-lost") == []
    assert len(op.ledger_rows(url, "node-lost")) == len(sc.EXPECTED_GRANTS)
