"""The write governor of a run: every write batch of every writer asks it for a permit, so that the
run's limits hold for the run as a whole, not per writer.

Shape (gh-ost's throttler, STYLE.md §1): collecting figures is apart from deciding. The collectors
(cluster.control.Watch: replica lag by heartbeat, the primary's Threads_running, the operator's commands
from the run's control row) push what they measure with `observe_lag`, `observe_threads_running` and
`set_limits`; `acquire` only reads what was collected and answers with a `Permit` that says how many rows
to write now, or how long to hold and why. Every hold carries the reasons an operator sees:

    paused            "paused by operator"
    window            "outside window 01:00-05:00 UTC (opens in 2h10m)"
    lag               "lag=31.2s > 10s on 127.0.0.1:3307", "lag unknown on 127.0.0.1:3307: ..."
    threads_running   "Threads_running=31 > 25"
    max_write_rate    "max-write-rate 500/s"
    limits            "waiting for the run's limits" (until the collectors' first control poll)

The governor fails closed: a figure it expects (a lag replica's, the primary's Threads_running) that
it never received or that is older than STALE_SECONDS holds every writer, as does a limit it has not
been told since it started (an actor restarted by Ray holds until the next control poll). `done` feeds
back each batch's rows and seconds, for the write rate, grants per second and the batch size (adapted
within [MIN_BATCH_ROWS, MAX_BATCH_ROWS] so that one write transaction takes about `chunk_time` seconds).

A run holds one governor (`GovernorActor`, a Ray actor shared by every writer of the run); tests and
single-process callers may use `WriteGovernor` directly. Times: `clock` is time.monotonic (seconds) for
ages and pacing; the window is checked against `wall` (time.time, unix seconds, UTC).
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, replace

import ray

from cluster import metrics

MIN_BATCH_ROWS = 100
MAX_BATCH_ROWS = 5_000
HOLD_SECONDS = 1.0  # the longest a writer sleeps before asking again (pause/resume act within it)
STALE_SECONDS = 5.0  # a figure older than this is unknown (the collectors measure every second)
RATE_WINDOW_SECONDS = 60.0  # grants per second are over the last minute
SAMPLES_KEPT = 20_000  # lag / Threads_running / batch-size samples kept for the percentiles (reservoir)
HOLD_REASONS = ("paused", "window", "lag", "threads_running", "max_write_rate", "limits")
LIMIT_NAMES = ("max_write_rate", "max_lag", "max_threads_running", "window", "chunk_time")
"""The limits `sr-backfill control set` changes (WriteLimits field names; on the command line with '-')."""


@dataclass(frozen=True, slots=True)
class Window:
    """A daily UTC window "HH:MM-HH:MM" in which writes may happen; it wraps past midnight when its end
    is before its start ("22:00-04:00"). start / end: minutes after 00:00 UTC; start inclusive, end
    exclusive."""

    start: int
    end: int

    @classmethod
    def parse(cls, text: str) -> Window:
        """"HH:MM-HH:MM" (UTC). Raises ValueError for anything else, and for an empty window (start == end)."""
        try:
            first, second = (part.strip() for part in text.split("-"))
            start, end = (cls._minutes(part) for part in (first, second))
        except ValueError:
            raise ValueError(f"a window is HH:MM-HH:MM (UTC), got {text!r}") from None
        if start == end:
            raise ValueError(f"window {text!r} is empty (start equals end)")
        return cls(start, end)

    @staticmethod
    def _minutes(part: str) -> int:
        hours, minutes = part.split(":")
        if not (hours.isdigit() and minutes.isdigit() and len(minutes) == 2):
            raise ValueError(part)
        value = int(hours) * 60 + int(minutes)
        if int(hours) > 23 or int(minutes) > 59:
            raise ValueError(part)
        return value

    def _minute_of_day(self, unix: float) -> float:
        return (unix % 86_400) / 60.0

    def contains(self, unix: float) -> bool:
        """Whether unix time `unix` (seconds) falls inside the window."""
        minute = self._minute_of_day(unix)
        if self.start < self.end:
            return self.start <= minute < self.end
        return minute >= self.start or minute < self.end

    def opens_in(self, unix: float) -> float:
        """Seconds from `unix` until the window next opens (0 inside it)."""
        if self.contains(unix):
            return 0.0
        return ((self.start - self._minute_of_day(unix)) % 1440) * 60.0

    def __str__(self) -> str:
        return f"{self.start // 60:02d}:{self.start % 60:02d}-{self.end // 60:02d}:{self.end % 60:02d}"


@dataclass(frozen=True, slots=True)
class WriteLimits:
    """The limits a run writes under (all but batch_rows settable while it runs, through
    `sr-backfill control`; a resume keeps what control set: cluster.control).

    max_write_rate: grants per second over the whole run (None: unlimited).
    batch_rows:     rows of the first batch (then adapted within [MIN_BATCH_ROWS, MAX_BATCH_ROWS] so that
                    one write transaction takes about `chunk_time` seconds; None: fixed at batch_rows).
    chunk_time:     seconds one write transaction should take (None: keep batch_rows).
    max_lag:        hold while any lag replica is more than this many seconds behind (None: no check).
    max_threads_running: hold while the primary's Threads_running is above this (None: no check).
    window:         "HH:MM-HH:MM" UTC: hold outside it (None: any time).
    paused:         hold until resumed (`sr-backfill control resume`).
    """

    max_write_rate: float | None = None
    batch_rows: int = 1000
    chunk_time: float | None = None
    max_lag: float | None = None
    max_threads_running: int | None = None
    window: str | None = None
    paused: bool = False

    def checked(self) -> WriteLimits:
        """These limits, after checking them. Raises ValueError naming the bad one."""
        for name in ("max_write_rate", "chunk_time", "max_lag"):
            value = getattr(self, name)
            if value is not None and not (value > 0 and math.isfinite(value)):
                raise ValueError(f"{name.replace('_', '-')} must be a positive number, got {value}")
        if self.max_threads_running is not None and self.max_threads_running < 1:
            raise ValueError(f"max-threads-running must be at least 1, got {self.max_threads_running}")
        if self.batch_rows < 1:
            raise ValueError(f"batch rows must be at least 1, got {self.batch_rows}")
        if self.window is not None:
            Window.parse(self.window)
        return self

    def describe(self) -> str:
        """One line for operators: "max-lag 10 s, max-threads-running 25, max-write-rate unlimited, ..."."""
        def text(value, unit=""):
            return "off" if value is None else f"{value:g}{unit}" if isinstance(value, float) else f"{value}{unit}"
        return (f"max-lag {text(self.max_lag, ' s')}, max-threads-running {text(self.max_threads_running)}, "
                f"max-write-rate {'unlimited' if self.max_write_rate is None else text(self.max_write_rate, '/s')}, "
                f"window {self.window or 'any time'}, chunk-time {text(self.chunk_time, ' s')}"
                + (", PAUSED" if self.paused else ""))

    def to_dict(self) -> dict:
        return asdict(self)


DEFAULT_LIMITS = WriteLimits(chunk_time=0.5, max_lag=10.0, max_threads_running=25)
"""The limits of `sr-backfill run` when none are given (batch_rows: --batch-rows)."""


def parse_limit(name: str, text: str) -> dict:
    """One `control set NAME=VALUE` setting as WriteLimits fields: max-write-rate=N (or none/unlimited),
    max-lag=S, max-threads-running=N, window=HH:MM-HH:MM (or none), chunk-time=S. Raises ValueError."""
    field = name.strip().replace("-", "_")
    value = text.strip()
    if field not in LIMIT_NAMES:
        raise ValueError(f"unknown limit {name!r}: one of {', '.join(n.replace('_', '-') for n in LIMIT_NAMES)}")
    if value.lower() in ("none", "off", "unlimited", ""):
        if field not in ("max_write_rate", "window"):
            raise ValueError(f"{name} cannot be switched off while a run is governed")
        return {field: None}
    try:
        parsed = {"max_threads_running": int, "window": str}.get(field, float)(value)
    except ValueError:
        raise ValueError(f"{name}: not a number: {value!r}") from None
    replace(WriteLimits(), **{field: parsed}).checked()
    return {field: parsed}


@dataclass(frozen=True, slots=True)
class Permit:
    """A governor's answer: write `rows` rows now (> 0), or hold for `wait_seconds` and ask again
    (rows == 0, `reason` says why; `held_for` names the reasons, HOLD_REASONS keys)."""

    rows: int
    wait_seconds: float = 0.0
    reason: str = ""
    held_for: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Sources:
    """What a governor expects its collectors to report: `replicas`, the names of the lag replicas (their
    lag is checked against max_lag), and `threads_running`, whether the primary reports Threads_running
    (MySQL/MariaDB; not SQLite). A figure expected and missing holds the writers."""

    replicas: tuple[str, ...] = ()
    threads_running: bool = False


class _Samples:
    """A bounded uniform sample of a figure (reservoir), with its exact maximum, for percentiles."""

    def __init__(self, keep: int = SAMPLES_KEPT, seed: int = 13) -> None:
        self.keep, self.values, self.seen, self.max = keep, [], 0, None
        self.random = random.Random(seed)

    def add(self, value: float) -> None:
        self.seen += 1
        self.max = value if self.max is None else max(self.max, value)
        if len(self.values) < self.keep:
            self.values.append(value)
        else:
            slot = self.random.randrange(self.seen)
            if slot < self.keep:
                self.values[slot] = value

    def summary(self) -> dict:
        """{samples, p50, p90, p99, max} (None when empty)."""
        ordered = sorted(self.values)

        def at(q: float):
            return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3) if ordered else None

        return {"samples": self.seen, "p50": at(0.50), "p90": at(0.90), "p99": at(0.99),
                "max": None if self.max is None else round(self.max, 3)}


class WriteGovernor:
    """Decides, for every write batch of a run, how many rows may be written now (see the module
    docstring). Without limits or sources it permits `batch_rows` at once, every time.

    limits:  the starting WriteLimits. sources: the figures to expect (Sources). run_id: tags the Ray
    metrics. need_limits: hold until `set_limits` is first called (the collectors' first control poll;
    a governor fed by cluster.control.Watch). clock / wall: monotonic and unix seconds (tests pass fakes).
    """

    def __init__(self, limits: WriteLimits = WriteLimits(), sources: Sources = Sources(), run_id: str = "",
                 need_limits: bool = False, clock=time.monotonic, wall=time.time) -> None:
        self.limits = limits
        self.sources = sources
        self.run_id = run_id
        self.clock, self.wall = clock, wall
        self.batch_rows = limits.batch_rows
        self.rows_written = 0
        self.write_seconds = 0.0
        self.batches = 0
        self.lock = threading.Lock()
        self.limits_known = not need_limits
        self._next_free = None  # clock time from which the rate cap permits the next batch
        self._lag: dict[str, tuple[float, float | None, str]] = {}  # replica -> (received, seconds, detail)
        self._threads: tuple[float, int | None, str] | None = None
        self._held_until: dict[str, float] = {}
        self.held_seconds: dict[str, float] = {}
        self.holds = 0
        self._recent: deque[tuple[float, int]] = deque()  # (clock, rows) of the last minute's batches
        self._lag_samples, self._threads_samples, self._batch_samples = _Samples(), _Samples(), _Samples()
        self.metrics = metrics.GovernorMetrics(run_id)

    # --- figures (from the collectors) ---------------------------------------------------------------

    def observe_lag(self, replica: str, seconds: float | None, detail: str = "") -> None:
        """Replica `replica` is `seconds` behind the primary (None: unknown; `detail` says why, or how it
        was measured)."""
        with self.lock:
            self._lag[replica] = (self.clock(), seconds, detail)
            if seconds is not None:
                self._lag_samples.add(seconds)
        if seconds is not None:
            self.metrics.lag(replica, seconds)

    def observe_threads_running(self, count: int | None, detail: str = "") -> None:
        """The primary's Threads_running now (None: unknown, `detail` says why)."""
        with self.lock:
            self._threads = (self.clock(), count, detail)
            if count is not None:
                self._threads_samples.add(count)
        if count is not None:
            self.metrics.threads_running(count)

    def set_limits(self, limits: WriteLimits) -> None:
        """Take new limits (an operator's `control`); the adapted batch size is kept."""
        with self.lock:
            self.limits = replace(limits, batch_rows=self.limits.batch_rows)
            self.limits_known = True

    # --- deciding --------------------------------------------------------------------------------------

    def _holds(self, now: float) -> list[tuple[str, str]]:
        """What holds the writers now: (reason key, text) pairs, in HOLD_REASONS order."""
        limits, holds = self.limits, []
        if not self.limits_known:
            holds.append(("limits", "waiting for the run's limits"))
        if limits.paused:
            holds.append(("paused", "paused by operator"))
        if limits.window is not None:
            window, unix = Window.parse(limits.window), self.wall()
            if not window.contains(unix):
                holds.append(("window", f"outside window {window} UTC (opens in {format_seconds(window.opens_in(unix))})"))
        if limits.max_lag is not None:
            for replica in self.sources.replicas:
                received, seconds, detail = self._lag.get(replica, (None, None, "no figure yet"))
                if received is None or now - received > STALE_SECONDS:
                    holds.append(("lag", f"lag unknown on {replica}: "
                                  + (detail if received is None else f"no figure for {now - received:.0f}s")))
                elif seconds is None:
                    holds.append(("lag", f"lag unknown on {replica}: {detail}"))
                elif seconds > limits.max_lag:
                    holds.append(("lag", f"lag={seconds:.1f}s > {limits.max_lag:g}s on {replica}"))
        if limits.max_threads_running is not None and self.sources.threads_running:
            received, count, detail = self._threads or (None, None, "no figure yet")
            if received is None or now - received > STALE_SECONDS:
                holds.append(("threads_running", "Threads_running unknown: "
                              + (detail if received is None else f"no figure for {now - received:.0f}s")))
            elif count is None:
                holds.append(("threads_running", f"Threads_running unknown: {detail}"))
            elif count > limits.max_threads_running:
                holds.append(("threads_running", f"Threads_running={count} > {limits.max_threads_running}"))
        return holds

    def _account(self, reasons: list[str], now: float, wait: float) -> None:
        """Count the wall seconds writers are held, by reason ("any": by at least one): the union of the
        hold intervals, so that several writers held at once count once."""
        for reason in (*reasons, "any"):
            until = self._held_until.get(reason, now)
            added = max(0.0, now + wait - max(now, until))
            self._held_until[reason] = max(until, now + wait)
            self.held_seconds[reason] = self.held_seconds.get(reason, 0.0) + added
            if reason != "any" and added:
                self.metrics.throttled(reason, added)
        self.holds += 1

    def acquire(self, rows_wanted: int) -> Permit:
        """A permit for the next batch of a writer that has `rows_wanted` rows waiting: rows to write now,
        at most the current batch size (and a second's worth under a rate cap), or a hold of at most
        HOLD_SECONDS with its reasons."""
        with self.lock:
            now = self.clock()
            holds = self._holds(now)
            if holds:
                keys = tuple(sorted({key for key, _ in holds}))
                self._account(list(keys), now, HOLD_SECONDS)
                return Permit(0, HOLD_SECONDS, "; ".join(text for _, text in holds), keys)
            rows = max(1, min(rows_wanted, self.batch_rows))
            rate = self.limits.max_write_rate
            if rate:
                if self._next_free is not None and self._next_free > now:
                    wait = min(self._next_free - now, HOLD_SECONDS)
                    self._account(["max_write_rate"], now, wait)
                    return Permit(0, wait, f"max-write-rate {rate:g}/s", ("max_write_rate",))
                rows = max(1, min(rows, math.ceil(rate)))
                # no credit for time spent idle or held: a pause is never followed by a burst
                self._next_free = max(now, self._next_free or now) + rows / rate
            return Permit(rows)

    def done(self, rows: int, seconds: float) -> None:
        """A batch of `rows` rows was written (committed) in `seconds`."""
        with self.lock:
            now = self.clock()
            self.rows_written += rows
            self.write_seconds += seconds
            self.batches += 1
            self._batch_samples.add(rows)
            self._recent.append((now, rows))
            chunk = self.limits.chunk_time
            # adapt on full-sized batches only: a shard's short tail says little about the cost per row
            if chunk and rows and seconds > 0 and rows >= 0.5 * self.batch_rows:
                wanted = rows * chunk / seconds
                self.batch_rows = int(min(MAX_BATCH_ROWS, max(MIN_BATCH_ROWS, 0.5 * self.batch_rows + 0.5 * wanted)))
        self.metrics.written(rows, self.batch_rows)

    # --- reporting -------------------------------------------------------------------------------------

    def state(self) -> tuple[str, list[str]]:
        """(state, reasons): "writing", "throttled", "paused" or "outside window", and the hold texts."""
        with self.lock:
            holds = self._holds(self.clock())
        keys = {key for key, _ in holds}
        state = ("paused" if "paused" in keys else "outside window" if "window" in keys
                 else "throttled" if keys else "writing")
        return state, [text for _, text in holds]

    def status(self) -> dict:
        """Figures for the progress line, `control status` and the run report:

        state / reasons: `state()`; limits: WriteLimits as a dict; rows_written, batches, write_seconds
        (seconds inside write transactions), batch_rows (the current batch size); grants_per_s: rows
        written per second over the last minute; lag: replica -> seconds (None: unknown);
        threads_running: the last figure (None: unknown or not watched); held_seconds: wall seconds
        writers were held, by reason ("any": by at least one); holds: permits refused; lag_seconds,
        threads_running_figures, batch_sizes: {samples, p50, p90, p99, max}."""
        state, reasons = self.state()
        with self.lock:
            now = self.clock()
            while self._recent and now - self._recent[0][0] > RATE_WINDOW_SECONDS:
                self._recent.popleft()
            span = min(RATE_WINDOW_SECONDS, max(1.0, now - self._recent[0][0])) if self._recent else RATE_WINDOW_SECONDS
            return {
                "state": state, "reasons": reasons, "limits": self.limits.to_dict(),
                "rows_written": self.rows_written, "batches": self.batches,
                "write_seconds": round(self.write_seconds, 3), "batch_rows": self.batch_rows,
                "grants_per_s": round(sum(rows for _, rows in self._recent) / span, 1),
                "lag": {replica: (None if seconds is None else round(seconds, 3))
                        for replica, (_, seconds, _) in sorted(self._lag.items())},
                "threads_running": self._threads[1] if self._threads else None,
                "held_seconds": {reason: round(value, 3) for reason, value in sorted(self.held_seconds.items())},
                "holds": self.holds,
                "lag_seconds": self._lag_samples.summary(),
                "threads_running_figures": self._threads_samples.summary(),
                "batch_sizes": self._batch_samples.summary(),
            }


def format_seconds(seconds: float | None) -> str:
    """"2h10m", "5m12s", "42s" ("?" for None)."""
    if seconds is None or not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)
class GovernorActor(WriteGovernor):
    """The run's one WriteGovernor as a Ray actor, shared by every writer of the run. Construct with
    `need_limits=True` when a cluster.control.Watch feeds it: a restarted actor then holds until the
    next control poll instead of writing under its starting limits."""


def call(governor, method: str, *args):
    """`governor.method(*args)` on a WriteGovernor, or through Ray on a GovernorActor handle (waiting for
    the answer)."""
    function = getattr(governor, method)
    return ray.get(function.remote(*args)) if hasattr(function, "remote") else function(*args)


class GovernorClient:
    """A writer's side of the governor: `permit(rows_wanted)` blocks until the governor permits a batch
    and returns its size; `done(rows, seconds)` reports the batch. `governor` is a WriteGovernor (one
    process) or a GovernorActor handle (a run's writers on Ray). `waited` counts the seconds this writer
    was held, by reason ("lag", "paused", ...; several at once joined by "+")."""

    def __init__(self, governor, sleep=time.sleep) -> None:
        self.governor = governor
        self.remote = hasattr(governor, "acquire") and hasattr(governor.acquire, "remote")
        self.sleep = sleep
        self.waited: dict[str, float] = {}

    def _call(self, method: str, *args):
        return call(self.governor, method, *args)

    def permit(self, rows_wanted: int) -> int:
        """Rows to write now (>= 1), after holding as long as the governor says."""
        while True:
            permit: Permit = self._call("acquire", rows_wanted)
            if permit.rows > 0:
                return permit.rows
            key = "+".join(permit.held_for) or permit.reason
            self.waited[key] = self.waited.get(key, 0.0) + permit.wait_seconds
            self.sleep(permit.wait_seconds)

    def done(self, rows: int, seconds: float) -> None:
        """Report a batch of `rows` rows committed in `seconds`."""
        self._call("done", rows, seconds)

    def status(self) -> dict:
        """The governor's `WriteGovernor.status()`."""
        return self._call("status")


def permitted(rows: list, governor: GovernorClient | None):
    """`rows` (a list) in the parts a write governor (GovernorClient) permits, one part a write
    transaction: each part is yielded after its permit and reported `done`, with the seconds until the
    caller asks for the next, when it does (all of `rows` at once without a governor). For writers that
    are not ledgered inserts (cluster.ledger.write_ledgered asks the governor itself): rollback deletes
    and restores, the mode 7 backup and deletes."""
    if governor is None:
        yield rows
        return
    start = 0
    while start < len(rows):
        size = governor.permit(len(rows) - start)
        began = time.perf_counter()
        yield rows[start : start + size]
        governor.done(min(size, len(rows) - start), time.perf_counter() - began)
        start += size


__all__ = [
    "DEFAULT_LIMITS", "GovernorActor", "GovernorClient", "HOLD_REASONS", "LIMIT_NAMES", "MAX_BATCH_ROWS",
    "MIN_BATCH_ROWS", "Permit", "Sources", "Window", "WriteGovernor", "WriteLimits", "call", "format_seconds",
    "parse_limit", "permitted",
]
