"""Cluster-side pieces of `sr-backfill bench --live-load` (issue 13): a load generator imitating live score
submission on the primary, and a lag probe on a replica.

- `LoadGenerator(url, rate, ...)`: at a fixed rate R per second (open loop: submission i is due at
  start + i/R whatever happened before), one submission = insert a score row, read the user's
  achievements, INSERT IGNORE a few users_achievements rows, each statement committed on its own as the
  live server does. A submission's latency runs from when it was due to when its last statement
  returned (queueing included: no coordinated omission); errors are counted by MySQL code (1213
  deadlock, 1205 lock wait timeout), never retried. The score rows go to users of the generator's own
  (`add_load_users`: failed plays on an unknown map, so they can never grant); the achievements are read
  and written for the data set's real users, under ids 100-115 (rank milestones, which a backfill never
  grants), so the load touches the rows and indexes the backfill writes without changing its grants.
- `LagProbe(primary_url, replica_url)`: its own heartbeat row (srb_heartbeat, run id "livebench-probe")
  written every `interval` s on the primary and read back on the replica: the largest lag seen.
- `settle(urls)`: wait until each server's InnoDB has flushed its dirty pages and purged its undo history
  (a bulk load, a backfill or its rollback leave minutes of both behind), so that every phase starts
  from a quiet server and the phases can be compared.
"""

from __future__ import annotations

import queue
import random
import statistics
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import pymysql
import sqlalchemy as sa

from cluster import control, db

LOAD_ACHIEVEMENTS = tuple(range(100, 116))  # rank milestones: decided by rank at submission, never backfilled
LOAD_MD5 = "f" * 32  # no beatmaps row has it: the generator's plays are never eligible
PROBE_RUN_ID = "livebench-probe"


def _connect(url: str) -> pymysql.Connection:
    parsed = sa.engine.make_url(url)
    return pymysql.connect(host=parsed.host, port=parsed.port or 3306, user=parsed.username,
                           password=parsed.password or "", database=parsed.database, autocommit=True,
                           connect_timeout=10)


def add_load_users(url: str, count: int) -> list[int]:
    """Insert `count` users of the load generator (above every users.id; public) and return their ids."""
    engine = db.connect(url)
    try:
        with engine.begin() as conn:
            top = int(conn.execute(sa.text("SELECT COALESCE(MAX(id), 0) FROM users")).scalar())
            ids = list(range(top + 1, top + 1 + count))
            conn.execute(sa.text(
                "INSERT INTO users (id, username, username_safe, password_md5, email, register_datetime, "
                "latest_activity, privileges) VALUES (:id, :name, :name, :pw, :email, 0, 0, 3)"),
                [{"id": i, "name": f"load{i}", "pw": "x" * 32, "email": f"load{i}@example.invalid"} for i in ids])
        return ids
    finally:
        engine.dispose()


def sample_users(url: str, count: int, seed: int = 7) -> list[int]:
    """Up to `count` ids of users holding score rows (the data set's real users), chosen at random."""
    engine = db.connect(url)
    try:
        with engine.connect() as conn:
            ids = [int(u) for (u,) in conn.execute(sa.text("SELECT DISTINCT userid FROM scores"))]
    finally:
        engine.dispose()
    random.Random(seed).shuffle(ids)
    return ids[:count]


@dataclass
class LoadResult:
    """What a load run measured: `latencies` (seconds per completed submission), `errors` by MySQL code
    (None: not a MySQL error), `due` submissions scheduled, `seconds` the run's wall."""

    rate: float
    seconds: float = 0.0
    due: int = 0
    latencies: list[float] = field(default_factory=list)
    finished: list[float] = field(default_factory=list)  # seconds after the start, per latency
    errors: Counter = field(default_factory=Counter)

    def worst_window_p99(self, window: float = 10.0) -> float | None:
        """The largest p99 latency (ms) over the `window`-second stretches of the run with at least 20
        submissions: a burst of backfill writes shows here even when the whole run's p99 hides it."""
        buckets: dict[int, list[float]] = {}
        for at, latency in zip(self.finished, self.latencies):
            buckets.setdefault(int(at // window), []).append(latency)
        worst = None
        for values in buckets.values():
            if len(values) >= 20:
                values.sort()
                p99 = values[min(len(values) - 1, int(0.99 * len(values)))]
                worst = p99 if worst is None else max(worst, p99)
        return None if worst is None else round(1000 * worst, 2)

    def summary(self) -> dict:
        """{submissions, failed, achieved_rate, p50_ms, p99_ms, max_ms, mean_ms, worst_10s_p99_ms,
        deadlocks_1213, lock_waits_1205, errors: {code: n}}."""
        ordered = sorted(self.latencies)

        def ms(q: float):
            return round(1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2) if ordered else None

        return {"rate": self.rate, "due": self.due, "submissions": len(ordered), "failed": sum(self.errors.values()),
                "achieved_rate": round(len(ordered) / self.seconds, 1) if self.seconds else 0.0,
                "p50_ms": ms(0.50), "p99_ms": ms(0.99), "max_ms": round(1000 * ordered[-1], 2) if ordered else None,
                "mean_ms": round(1000 * statistics.fmean(ordered), 2) if ordered else None,
                "worst_10s_p99_ms": self.worst_window_p99(),
                "deadlocks_1213": self.errors.get(1213, 0), "lock_waits_1205": self.errors.get(1205, 0),
                "errors": {str(code): n for code, n in sorted(self.errors.items(), key=lambda kv: str(kv[0]))}}


class LoadGenerator:
    """Score submission imitated on the primary at `rate` per second (see the module docstring).

    url: the primary; load_users: ids for the score rows (`add_load_users`); achievement_users: ids whose
    achievements are read and written (`sample_users`); workers: connections submitting in parallel
    (a late submission waits for a free one, and its latency shows it). `start()`, then `stop()` returns
    the LoadResult."""

    def __init__(self, url: str, rate: float, load_users: list[int], achievement_users: list[int],
                 workers: int = 8, seed: int = 11) -> None:
        if rate <= 0 or not load_users or not achievement_users:
            raise ValueError("the load generator needs a positive rate and users")
        self.url, self.rate, self.workers = url, rate, workers
        self.load_users, self.achievement_users = load_users, achievement_users
        self.random = random.Random(seed)
        self.result = LoadResult(rate)
        self.lock = threading.Lock()
        self.jobs: queue.Queue = queue.Queue()
        self.stop_event = threading.Event()
        self.threads: list[threading.Thread] = []
        self.started = 0.0

    def _submit(self, conn: pymysql.Connection, job: tuple[float, int, int, list[int], int]) -> None:
        due, player, user, achievements, stamp = job
        with conn.cursor() as cur:
            cur.execute(
                "INSERT INTO scores (beatmap_md5, userid, score, max_combo, full_combo, mods, `300_count`, "
                "`100_count`, `50_count`, katus_count, gekis_count, misses_count, `time`, play_mode, completed, "
                "accuracy, pp, checksum, patcher, pinned) VALUES (%s, %s, 123456, 321, 0, 0, 300, 20, 3, 0, 0, 5, "
                "%s, 0, 1, 93.5, 0, %s, 0, 0)", (LOAD_MD5, player, stamp, uuid.uuid4().hex))
            cur.execute("SELECT achievement_id, mode FROM users_achievements WHERE user_id = %s", (user,))
            cur.fetchall()
            cur.execute("INSERT IGNORE INTO users_achievements (user_id, achievement_id, mode, created_at) VALUES "
                        + ", ".join(["(%s, %s, 0, %s)"] * len(achievements)),
                        [value for a in achievements for value in (user, a, stamp)])

    def _work(self) -> None:
        conn = None
        while True:
            job = self.jobs.get()
            if job is None:
                break
            try:
                if conn is None:
                    conn = _connect(self.url)
                self._submit(conn, job)
                now = time.monotonic()
                with self.lock:
                    self.result.latencies.append(now - job[0])
                    self.result.finished.append(now - self.started)
            except pymysql.err.MySQLError as exc:
                code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
                with self.lock:
                    self.result.errors[code] += 1
                if code in (2006, 2013, None) and conn is not None:
                    conn.close()
                    conn = None
        if conn is not None:
            conn.close()

    def _dispatch(self) -> None:
        due = self.started
        while not self.stop_event.is_set():
            wait = due - time.monotonic()
            if wait > 0 and self.stop_event.wait(wait):
                break
            player = self.random.choice(self.load_users)
            user = self.random.choice(self.achievement_users)
            achievements = self.random.sample(LOAD_ACHIEVEMENTS, 3)
            self.jobs.put((due, player, user, achievements, int(time.time())))
            with self.lock:
                self.result.due += 1
            due += 1.0 / self.rate

    def start(self) -> LoadGenerator:
        self.started = time.monotonic()
        self.threads = [threading.Thread(target=self._work, daemon=True, name=f"srb-load-{i}")
                        for i in range(self.workers)]
        self.threads.append(threading.Thread(target=self._dispatch, daemon=True, name="srb-load-dispatch"))
        for thread in self.threads:
            thread.start()
        return self

    def stop(self) -> LoadResult:
        """Stop scheduling, let the submissions already due finish, and return the result."""
        self.stop_event.set()
        self.threads[-1].join()
        for _ in range(self.workers):
            self.jobs.put(None)
        for thread in self.threads[:-1]:
            thread.join(timeout=120)
        self.result.seconds = time.monotonic() - self.started
        return self.result


SETTLE_DIRTY_SHARE = 0.02  # dirty pages at most this share of the data pages (or 200 pages)
SETTLE_HISTORY = 2_000  # undo history list length at most this


def _innodb_figures(url: str) -> tuple[int, int, int]:
    """(dirty pages, data pages, history list length) of the server behind `url`."""
    names = ("Innodb_buffer_pool_pages_dirty", "Innodb_buffer_pool_pages_data", "Innodb_history_list_length")
    conn = _connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW GLOBAL STATUS WHERE Variable_name IN (%s, %s, %s)", names)
            values = {name: int(value) for name, value in cur.fetchall()}
    finally:
        conn.close()
    return tuple(values.get(name, 0) for name in names)


def settle(urls: list[str], timeout: float = 180.0, steady_seconds: float = 10.0) -> dict:
    """Wait until every server of `urls` is quiet: its undo history purged (at most SETTLE_HISTORY) and
    its dirty pages flushed, down to SETTLE_DIRTY_SHARE of its data pages (or 200), or no longer falling
    for `steady_seconds` (an idle MariaDB 10.11 stops flushing at a few percent). Returns {seconds,
    settled, figures: per server (dirty, data, history) at the end}; never raises for a server that stays
    busy (`settled` False after `timeout`)."""
    started = time.monotonic()
    lowest: list[tuple[int, float]] = [(1 << 62, started)] * len(urls)  # (fewest dirty pages, when)
    while True:
        figures = [_innodb_figures(url) for url in urls]
        now = time.monotonic()
        quiet = True
        for position, (dirty, data, history) in enumerate(figures):
            if dirty < lowest[position][0] * 0.99:
                lowest[position] = (dirty, now)
            flushed = dirty <= max(200, SETTLE_DIRTY_SHARE * data) or now - lowest[position][1] >= steady_seconds
            quiet = quiet and flushed and history <= SETTLE_HISTORY
        waited = now - started
        if quiet or waited > timeout:
            return {"seconds": round(waited, 1), "settled": quiet, "figures": [list(f) for f in figures]}
        time.sleep(1.0)


class LagProbe:
    """The replica's lag, by a heartbeat of the probe's own (see the module docstring). `start()`; `peak()`
    returns the largest lag seen since the last `reset()` (seconds); `stop()`."""

    def __init__(self, primary_url: str, replica_url: str, interval: float = 0.5) -> None:
        self.primary = control.autocommit_engine(primary_url)
        self.replica = control.autocommit_engine(replica_url)
        self.interval = interval
        self.stop_event = threading.Event()
        self.max_lag = 0.0
        self.unknown = 0
        self.thread: threading.Thread | None = None

    def reset(self) -> None:
        self.max_lag, self.unknown = 0.0, 0

    def peak(self) -> float:
        return round(self.max_lag, 3)

    def _run(self) -> None:
        with self.primary.connect() as primary, self.replica.connect() as replica:
            while not self.stop_event.is_set():
                now = control.now_us()
                control.write_beat(primary, PROBE_RUN_ID, now)
                try:
                    beat = control.read_beat(replica, PROBE_RUN_ID)
                except sa.exc.DBAPIError:
                    beat = None
                if beat is None:
                    self.unknown += 1
                else:
                    self.max_lag = max(self.max_lag, (control.now_us() - beat) / 1e6)
                self.stop_event.wait(self.interval)

    def start(self) -> LagProbe:
        control.ensure_tables(self.primary)
        self.thread = threading.Thread(target=self._run, daemon=True, name="srb-lag-probe")
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stop_event.set()
        if self.thread is not None:
            self.thread.join(timeout=30)
        self.primary.dispose()
        self.replica.dispose()
