"""A run's figures as Ray metrics (ray.util.metrics), so they appear on the Ray dashboard's metrics view
and on each node's Prometheus endpoint (`ray_` prefixed, e.g. `ray_srb_grants_written_total`).

    srb_scores_read          counter   score rows read by the shards             run_id
    srb_keys_rated           counter   SR keys computed by the raters            (no tag: raters serve a run)
    srb_grants_written       counter   rows written by the ledgered writes       run_id
    srb_errors               counter   scores skipped, shards failed, retries    run_id, reason
    srb_throttled_seconds    counter   wall seconds writers were held            run_id, reason
    srb_replica_lag_seconds  gauge     the last lag measured                     run_id, replica
    srb_threads_running      gauge     the primary's last Threads_running        run_id
    srb_batch_rows           gauge     the governor's current batch size         run_id

Recording outside a Ray worker or driver does nothing (the metric objects accept it); a metric object
is made once per process, on first use.
"""

from __future__ import annotations

from functools import cache

from ray.util import metrics as ray_metrics


@cache
def _metric(kind: str, name: str, description: str, tags: tuple[str, ...]):
    return getattr(ray_metrics, kind)(name, description=description, tag_keys=tags)


def _counter(name: str, description: str, tags: tuple[str, ...] = ("run_id",)):
    return _metric("Counter", name, description, tags)


def _gauge(name: str, description: str, tags: tuple[str, ...] = ("run_id",)):
    return _metric("Gauge", name, description, tags)


def scores_read(run_id: str, rows: int) -> None:
    """`rows` more score rows read by the run's shards."""
    if rows > 0:
        _counter("srb_scores_read", "score rows read by the run's shards").inc(rows, tags={"run_id": run_id})


def keys_rated(count: int) -> None:
    """`count` more SR keys computed by a rater."""
    if count > 0:
        _metric("Counter", "srb_keys_rated", "SR keys computed by the raters", ()).inc(count)


def errors(run_id: str, reason: str, count: int = 1) -> None:
    """`count` more errors of `reason` (a skip reason, "shard_failed", "db_retry_CODE")."""
    if count > 0:
        _counter("srb_errors", "scores skipped, shards failed and database retries, by reason",
                 ("run_id", "reason")).inc(count, tags={"run_id": run_id, "reason": reason})


class GovernorMetrics:
    """The write governor's metrics for run `run_id`."""

    def __init__(self, run_id: str) -> None:
        self.tags = {"run_id": run_id or "-"}

    def written(self, rows: int, batch_rows: int) -> None:
        if rows > 0:
            _counter("srb_grants_written", "rows written by the run's ledgered writes").inc(rows, tags=self.tags)
        _gauge("srb_batch_rows", "the write governor's batch size (rows)").set(batch_rows, tags=self.tags)

    def throttled(self, reason: str, seconds: float) -> None:
        _counter("srb_throttled_seconds", "wall seconds the run's writers were held, by reason",
                 ("run_id", "reason")).inc(seconds, tags={**self.tags, "reason": reason})

    def lag(self, replica: str, seconds: float) -> None:
        _gauge("srb_replica_lag_seconds", "replica lag measured by the run's heartbeat (seconds)",
               ("run_id", "replica")).set(seconds, tags={**self.tags, "replica": replica})

    def threads_running(self, count: int) -> None:
        _gauge("srb_threads_running", "the primary's Threads_running").set(count, tags=self.tags)
