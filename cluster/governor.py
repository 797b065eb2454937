"""The write governor of a run: every write batch of every writer asks it for a permit, so that the
run's limits hold for the run as a whole, not per writer.

Shape (gh-ost's throttler, STYLE.md §1): collecting figures (replica lag by heartbeat, the primary's
Threads_running, the operator's commands) is apart from deciding; `acquire` only reads what was
collected and answers with a `Permit` that says how many rows to write now, or how long to hold and why
("lag=12.3s", "Threads_running=31 >= 25", "paused by operator", "outside window 01:00-05:00").
`done` feeds back each batch's rows and seconds, for the write rate and the batch size.

A run holds one governor (`GovernorActor`, a Ray actor; tests and single-process callers may use
`WriteGovernor` directly).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import ray

MIN_BATCH_ROWS = 100
MAX_BATCH_ROWS = 5_000


@dataclass(frozen=True, slots=True)
class WriteLimits:
    """The limits a run writes under (all settable while it runs, through `sr-backfill control`).

    max_write_rate: grants per second over the whole run (None: unlimited).
    batch_rows:     rows of the first batch (then adapted within [MIN_BATCH_ROWS, MAX_BATCH_ROWS] so that
                    one write transaction takes about `chunk_time` seconds; None: fixed at batch_rows).
    chunk_time:     seconds one write transaction should take (None: keep batch_rows).
    """

    max_write_rate: float | None = None
    batch_rows: int = 1000
    chunk_time: float | None = None


@dataclass(frozen=True, slots=True)
class Permit:
    """A governor's answer: write `rows` rows now (> 0), or hold for `wait_seconds` and ask again
    (rows == 0, `reason` says why)."""

    rows: int
    wait_seconds: float = 0.0
    reason: str = ""


class WriteGovernor:
    """Decides, for every write batch of a run, how many rows may be written now (see the module
    docstring). Without limits it permits `batch_rows` at once, every time."""

    def __init__(self, limits: WriteLimits = WriteLimits()) -> None:
        self.limits = limits
        self.batch_rows = limits.batch_rows
        self.rows_written = 0
        self.write_seconds = 0.0
        self.batches = 0
        self._rate_started = time.monotonic()
        self._rate_rows = 0

    def acquire(self, rows_wanted: int) -> Permit:
        """A permit for the next batch of a writer that has `rows_wanted` rows waiting."""
        rows = max(1, min(rows_wanted, self.batch_rows))
        rate = self.limits.max_write_rate
        if rate:
            ahead = self._rate_rows / rate - (time.monotonic() - self._rate_started)  # rows permitted so far
            if ahead > 0:
                return Permit(0, min(ahead, 1.0), f"max-write-rate {rate:g}/s")
        self._rate_rows += rows
        return Permit(rows)

    def done(self, rows: int, seconds: float) -> None:
        """A batch of `rows` rows was written (committed) in `seconds`."""
        self.rows_written += rows
        self.write_seconds += seconds
        self.batches += 1
        chunk = self.limits.chunk_time
        if chunk and rows and seconds > 0:
            wanted = rows * chunk / seconds
            self.batch_rows = int(min(MAX_BATCH_ROWS, max(MIN_BATCH_ROWS, 0.5 * self.batch_rows + 0.5 * wanted)))

    def status(self) -> dict:
        """Figures for reports and `control status`: rows, batches, seconds writing, batch size."""
        return {"rows_written": self.rows_written, "batches": self.batches,
                "write_seconds": round(self.write_seconds, 3), "batch_rows": self.batch_rows}


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)
class GovernorActor(WriteGovernor):
    """The run's one WriteGovernor as a Ray actor, shared by every writer of the run."""


class GovernorClient:
    """A writer's side of the governor: `permit(rows_wanted)` blocks until the governor permits a batch
    and returns its size; `done(rows, seconds)` reports the batch. `governor` is a WriteGovernor (one
    process) or a GovernorActor handle (a run's writers on Ray). `waited` counts the seconds held, by
    reason."""

    def __init__(self, governor, sleep=time.sleep) -> None:
        self.governor = governor
        self.remote = hasattr(governor, "acquire") and hasattr(governor.acquire, "remote")
        self.sleep = sleep
        self.waited: dict[str, float] = {}

    def _call(self, method: str, *args):
        function = getattr(self.governor, method)
        return ray.get(function.remote(*args)) if self.remote else function(*args)

    def permit(self, rows_wanted: int) -> int:
        """Rows to write now (>= 1), after holding as long as the governor says."""
        while True:
            permit: Permit = self._call("acquire", rows_wanted)
            if permit.rows > 0:
                return permit.rows
            self.waited[permit.reason] = self.waited.get(permit.reason, 0.0) + permit.wait_seconds
            self.sleep(permit.wait_seconds)

    def done(self, rows: int, seconds: float) -> None:
        self._call("done", rows, seconds)
