"""What a run shows while it executes: progress lines or a bar, the status it publishes, its Ray metrics.

- Without a terminal (`ray job submit`, whose logs are a file; a pipe; a service) the run prints one line
  every `interval` seconds on stderr instead of a tqdm bar:

      sr-backfill RUN_ID 12:00:10 shards 12/40, scores 123,456 (2,345/s), grants 3,456 (123/s last min), ETA 5m12s: throttled: lag=31.2s > 10s on 10.0.0.3:3306

- With a terminal the tqdm bar's postfix shows the same state ("writing", "throttled: ...", "paused",
  "outside window ...").
- An applied run publishes the same figures (and the governor's) in srb_run_status every
  `status_seconds` (cluster.control), for `sr-backfill control status`.
- Score rows read and errors by reason go to the Ray metrics as shards finish (cluster.metrics; the
  governor records grants written, seconds throttled, lag and Threads_running).

`Reporter` runs on a thread of the driver; `Progress` holds the counts the driver adds as shards finish.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from dataclasses import dataclass, field

import ray

from cluster import control, metrics
from cluster.governor import format_seconds

STATUS_SECONDS = 2.0


def say(text: str) -> None:
    """Print one line for the operator on stderr (flushed: logs of `ray job submit` see it at once)."""
    print(text, file=sys.stderr, flush=True)


@dataclass
class Progress:
    """The counts of this session of a run, added by the driver as shards finish.

    run_id; planned: shards of the run; before: shards done in earlier sessions; pending: shards this
    session runs; done / failed: of those, finished so far; scores: score rows read; grants: grants
    evaluated; started: time.monotonic() when the session's shards started.
    """

    run_id: str
    planned: int
    before: int
    pending: int
    done: int = 0
    failed: int = 0
    scores: int = 0
    grants: int = 0
    started: float = field(default_factory=time.monotonic)

    def shard_done(self, rows_read: int, grants: int, skipped: dict, retries: dict) -> None:
        """A shard finished: `rows_read` score rows, `grants` grants, scores `skipped` by reason,
        database `retries` by error code (its Ray metrics are recorded too)."""
        self.done += 1
        self.scores += rows_read
        self.grants += grants
        metrics.scores_read(self.run_id, rows_read)
        for reason, count in skipped.items():
            metrics.errors(self.run_id, reason, count)
        for code, count in retries.items():
            metrics.errors(self.run_id, f"db_retry_{code}", count)

    def shard_failed(self) -> None:
        """A shard failed (counted, and in the Ray metrics as reason "shard_failed")."""
        self.failed += 1
        metrics.errors(self.run_id, "shard_failed")

    def figures(self) -> dict:
        """shards_done (the run's, earlier sessions included), shards_failed, shards_planned, scores_read,
        scores_per_s, grants_evaluated, eta_seconds (None until a shard finished), elapsed_s."""
        elapsed = max(1e-6, time.monotonic() - self.started)
        finished = self.done + self.failed
        left = max(0, self.pending - finished)
        eta = left * elapsed / finished if finished else (0.0 if not left else None)
        return {"shards_done": self.before + self.done, "shards_failed": self.failed, "shards_planned": self.planned,
                "scores_read": self.scores, "scores_per_s": round(self.scores / elapsed, 1),
                "grants_evaluated": self.grants, "eta_seconds": None if eta is None else round(eta, 1),
                "elapsed_s": round(elapsed, 1)}


def describe_state(governor_status: dict | None, apply: bool) -> str:
    """"writing", "throttled: REASONS", "paused", "outside window ..." (or "dry run", "ungoverned")."""
    if governor_status is None:
        return "ungoverned" if apply else "dry run"
    state, reasons = governor_status["state"], governor_status.get("reasons") or []
    if state == "writing":
        return "writing"
    return f"{state}: {'; '.join(reasons)}" if reasons else state


def format_line(progress: dict) -> str:
    """One progress line from a published status (see the module docstring)."""
    governor = progress.get("governor") or {}
    grants = governor.get("rows_written", progress["grants_evaluated"])
    rate = f" ({governor['grants_per_s']:,.0f}/s last min)" if governor else " evaluated"
    return (f"sr-backfill {progress['run_id']} {time.strftime('%H:%M:%S', time.gmtime())} "
            f"shards {progress['shards_done']}/{progress['shards_planned']}"
            + (f" ({progress['shards_failed']} failed)" if progress["shards_failed"] else "")
            + f", scores {progress['scores_read']:,} ({progress['scores_per_s']:,.0f}/s), grants {grants:,}{rate}, "
            f"ETA {format_seconds(progress['eta_seconds'])}: {progress['state']}")


class Reporter:
    """Shows and publishes a run's progress while it executes (see the module docstring).

    progress: the counts (Progress); governor: the run's WriteGovernor / GovernorActor handle, or None
    (a dry run, an ungoverned run); bar: the tqdm bar (None without a terminal); lines: print progress
    lines every `interval` seconds; publish: a cluster.db.Database to publish srb_run_status in (an
    applied run), else None. `errors` counts failed publications (the run goes on)."""

    def __init__(self, progress: Progress, governor=None, bar=None, lines: bool = False, interval: float = 10.0,
                 publish=None, apply: bool = False, status_seconds: float = STATUS_SECONDS) -> None:
        self.progress, self.governor, self.bar, self.lines = progress, governor, bar, lines
        self.interval, self.publish, self.apply = interval, publish, apply
        self.status_seconds = min(status_seconds, interval) if lines else status_seconds
        self.stop_event = threading.Event()
        self.thread: threading.Thread | None = None
        self.errors = 0
        self.last_error = ""
        self._last_line = None
        self.host, self.pid = socket.gethostname(), os.getpid()

    def governor_status(self) -> dict | None:
        """The governor's status (None without one; {} when it does not answer within 10 s)."""
        if self.governor is None:
            return None
        try:
            if hasattr(self.governor.status, "remote"):
                return ray.get(self.governor.status.remote(), timeout=10)
            return self.governor.status()
        except (ray.exceptions.RayError, TimeoutError):
            return {"state": "unknown", "reasons": ["the governor does not answer"]}

    def snapshot(self, state: str | None = None) -> dict:
        """The published status: Progress.figures(), run_id, state, governor (its status), host, pid, at."""
        governor = self.governor_status()
        return {"run_id": self.progress.run_id, **self.progress.figures(),
                "state": state or describe_state(governor, self.apply), "governor": governor,
                "host": self.host, "pid": self.pid, "at": round(time.time(), 3)}

    def tick(self, state: str | None = None, force_line: bool = False) -> dict:
        snapshot = self.snapshot(state)
        if self.publish is not None:
            try:
                control.write_status(self.publish.engine, self.progress.run_id, snapshot)
            except Exception as exc:  # publishing is for the operator; the run goes on
                self.errors += 1
                self.last_error = self.publish.mask(f"{type(exc).__name__}: {exc}")[:300]
        if self.bar is not None:
            self.bar.set_postfix_str(snapshot["state"][:120], refresh=True)
        now = time.monotonic()
        if self.lines and (force_line or self._last_line is None or now - self._last_line >= self.interval - 0.01):
            self._last_line = now
            say(format_line(snapshot))
        return snapshot

    def _run(self) -> None:
        while True:
            try:
                self.tick()
            except Exception as exc:  # never let the reporter stop the run
                self.errors += 1
                self.last_error = f"{type(exc).__name__}: {exc}"[:300]
            if self.stop_event.wait(self.status_seconds):
                return

    def start(self) -> Reporter:
        """Start the reporting thread (when there is anything to show or publish). Returns self."""
        if self.publish is not None or self.lines or self.bar is not None:
            self.thread = threading.Thread(target=self._run, name="srb-progress", daemon=True)
            self.thread.start()
        return self

    def stop(self) -> dict | None:
        """Stop the thread; publish (and print) a last status with state "ended". Returns it."""
        self.stop_event.set()
        if self.thread is None:
            return None
        self.thread.join(timeout=30)
        try:
            return self.tick(state="ended", force_line=True)
        except Exception:
            return None
