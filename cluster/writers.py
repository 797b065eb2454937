"""Writer actors: a run's grants leave the driver and are written in parallel, as each shard is evaluated.

Each shard task returns its grants as an object of their own (cluster.workers.process_shard); the
driver hands that object's ref, not the rows, to one of the run's `WriterActor`s (`--writers`, placed
across the nodes), which fetches it from the object store and writes it in ledgered batches
(cluster.ledger.write_ledgered: each batch's rows, ledger rows and progress counts in one transaction),
asking the run's write governor (cluster.governor) for a permit before every batch, so the run's limits
hold for all writers together. The writer then marks the shard done.

Exactness: a writer killed inside a transaction (or lost with its node) loses only that uncommitted
batch. The actor restarts (on another node if its node is gone), and Ray sends it again every write
it had been given (`max_task_retries=-1`), the interrupted one included: a write skips the rows
committed before (INSERT IGNORE; their ledger rows exist) and writes the rest. Without those retries,
writes sent to a writer whose node is lost but not yet declared dead fail at once with
ActorUnavailableError, and under load a run could fail every shard in that window. Should a writer
die for good, the driver hands its writes to the other writers (cluster.execute). A driver killed while writers write
takes its writers with it, and a resume evaluates the unfinished shards again against what their users
now hold. Either way the table and the ledger end as an uninterrupted run's.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import pyarrow as pa
import ray

from cluster import actors, db, ledger
from cluster.credentials import DatabaseRef
from cluster.governor import GovernorClient
from cluster.pauses import pause_point
from cluster.shards import Shard

@dataclass(frozen=True, slots=True)
class WriterSettings:
    """What every writer of a run needs.

    database:   where the writer finds the primary's URL on its side (cluster.credentials.DatabaseRef: the
                URL never travels in actor arguments); run_id: the run being written.
    batch_rows: rows per write transaction when no governor sizes them; retry: database retry policy.
    lock:       the run's lock as the driver holds it (cluster.ledger.LockToken): every write transaction
                commits only while the driver still holds it (None: SQLite, or no lock).
    """

    database: DatabaseRef
    run_id: str
    batch_rows: int = 1000
    retry: db.RetryPolicy = db.DEFAULT_RETRY
    lock: ledger.LockToken | None = None


@dataclass(slots=True)
class WriteOutcome:
    """What one shard's write did: rows inserted (and ledgered), rows INSERT IGNORE skipped because they
    were there already (present), batches committed, seconds writing, the database retries it needed,
    and the seconds it waited for the governor by reason."""

    shard: int
    inserted: int = 0
    present: int = 0
    batches: int = 0
    seconds: float = 0.0
    retries: db.RetryLog = field(default_factory=db.RetryLog)
    waited: dict = field(default_factory=dict)


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)  # a restarted writer is sent its writes again
class WriterActor:
    """Writes shards' grants (see the module docstring); one write at a time, on one kept connection.

    `write(shard, grants, extra, update)`: `grants` an Arrow table (GRANT_SCHEMA plus evidence; passed as
    the shard task's object ref, Ray fetches it here), `extra` further grant dicts (the stats-fallback
    grants, source "stats_now"), `update` the shard's counts (cluster.ledger.ShardUpdate) recorded with
    stage "writing". Returns a WriteOutcome; raises DatabaseUnavailable when a batch keeps failing.
    """

    def __init__(self, settings: WriterSettings, governor: str | None = None) -> None:
        self.settings = settings
        self.url = settings.database.resolve()
        self.database = db.Database(self.url, settings.retry)
        self.governor = GovernorClient(actors.lookup(governor)) if governor is not None else None

    def write(self, shard: Shard, grants: pa.Table, extra: list[dict], update: ledger.ShardUpdate) -> WriteOutcome:
        started = time.perf_counter()
        settings, engine = self.settings, self.database.engine
        log = db.RetryLog()
        rows = grants.to_pylist() + list(extra)
        db.retrying(lambda: ledger.update_shard(engine, settings.run_id, shard.index, update, lock=settings.lock),
                    f"update progress of shard {shard.index}", settings.retry, log, self.url)
        waited_before = dict(self.governor.waited) if self.governor is not None else {}
        result = ledger.write_ledgered(
            engine, settings.run_id, rows, source="score", shard=shard.index, batch_rows=settings.batch_rows,
            retry=settings.retry, log=log, url=self.url, governor=self.governor, lock=settings.lock,
        )
        done = ledger.ShardUpdate(status="done", stage="written", finished_at=ledger.now())
        db.retrying(lambda: ledger.update_shard(engine, settings.run_id, shard.index, done, lock=settings.lock),
                    f"mark shard {shard.index} done", settings.retry, log, self.url)
        pause_point("shard")
        waited = {reason: seconds - waited_before.get(reason, 0.0)
                  for reason, seconds in (self.governor.waited.items() if self.governor is not None else ())}
        return WriteOutcome(shard.index, result.inserted, result.present, result.batches,
                            time.perf_counter() - started, log, {r: s for r, s in waited.items() if s > 0})

    def pid(self) -> int:
        """This writer's process id (fault tests kill it)."""
        return os.getpid()


def start_writers(settings: WriterSettings, count: int, governor: str | None = None, env: dict | None = None) -> list:
    """`count` writer actors spread across the cluster's nodes, sharing `governor` (the name of the run's
    GovernorActor, cluster.actors.start_named, or None: ungoverned). A name, not a handle, so that a
    writer restarted on another node needs no argument from the object store. `env`: environment
    variables for their processes (test-only pause points)."""
    options = {"scheduling_strategy": "SPREAD"}
    if env:
        options["runtime_env"] = {"env_vars": env}
    return [WriterActor.options(**options).remote(settings, governor) for _ in range(count)]


def default_writers() -> int:
    """One writer per alive node of the Ray cluster, at least 2."""
    return max(2, sum(1 for node in ray.nodes() if node.get("Alive")))
