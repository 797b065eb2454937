"""Client of the live performance service (performance-service, DOMAIN.md §5), gentle by construction.

Contract: `POST {base}/api/v1/calculate` with a JSON array of
`{beatmap_id, beatmap_md5, mode (0-3), mods, max_combo, accuracy | count_300+count_100+count_50,
miss_count}` answers a JSON array, in the same order, of `{stars, pp, ar, od, max_combo}` (stars and pp
rounded to 2 decimals by the service). Items are computed one at a time and **any failing item fails
the whole request with HTTP 500** (body "internal server error"); a request with both or neither of
accuracy and hit counts is refused with 400. Health check: `GET {base}/_health` (200 when healthy).

The service is the one live score submission depends on, so the client never loads it harder than
asked:
- a token bucket caps requests per second (`rate`, requests/s; every request counts: retries and the
  requests that isolate bad items too), and at most `concurrency` requests are in flight;
- each request has a timeout (seconds);
- timeouts, connection errors, 5xx other than 500 and malformed answers are retried `retries` times
  with exponential backoff and jitter (a Retry-After header is honoured, capped);
- a 500 is the contract's "an item failed": the batch is split in halves, recursively, until each bad
  item is alone (PerfItemFailed with one item); the good items still get their answers;
- a circuit breaker stops everything after `BreakerPolicy.failures` consecutive failed attempts or
  `slow_count` slow answers (slower than `slow_seconds`) among the last `slow_window`: every later call
  raises CircuitOpen and `calculate_many` returns what it has.

Transport: httpx behind `transport=` (tests pass `httpx.MockTransport`; production passes nothing).
httpx errors never leave this module: they become sr.errors.PerfServiceError types, `raise ... from exc`.
Credentials in the base URL (user:password@) are used for HTTP basic auth but never logged or put in an
error message: see `mask_url`.
"""

from __future__ import annotations

import json
import logging
import math
import random
import threading
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx

from sr.errors import (
    CircuitOpen,
    PerfBadResponse,
    PerfItemFailed,
    PerfRejected,
    PerfServerError,
    PerfServiceError,
    PerfTimeout,
    PerfUnreachable,
)
from sr.masking import mask_url
from sr.retry import RetryPolicy, TokenBucket

CALCULATE_PATH = "/api/v1/calculate"
HEALTH_PATH = "/_health"
USER_AGENT = "sr-backfill-compare (akatsuki achievement backfill; rate-limited)"

log = logging.getLogger(__name__)


# ======================================================================================================
# records
# ======================================================================================================


@dataclass(frozen=True, slots=True)
class PerfRequest:
    """One item of a calculate request (the contract's field names).

    beatmap_id:  the id the service fetches `{beatmap_id}.osu` by.
    beatmap_md5: 32 hex chars, the version of the map the score was set on.
    mode:        vanilla mode 0-3 (mode_vn); an osu! map in another mode is a convert.
    mods:        full legacy mods bitmask, relax (128) and autopilot (8192) bits included.
    max_combo:   the score's combo (objects).
    miss_count:  misses.
    accuracy:    percent 0-100; or else all three of count_300, count_100, count_50 (exactly one form,
                 as the service requires; ValueError otherwise).
    """

    beatmap_id: int
    beatmap_md5: str
    mode: int
    mods: int
    max_combo: int
    miss_count: int
    accuracy: float | None = None
    count_300: int | None = None
    count_100: int | None = None
    count_50: int | None = None

    def __post_init__(self) -> None:
        counts = (self.count_300, self.count_100, self.count_50)
        has_counts = all(count is not None for count in counts)
        if any(count is not None for count in counts) and not has_counts:
            raise ValueError("count_300, count_100 and count_50 go together")
        if (self.accuracy is None) == (not has_counts):  # neither form, or both
            raise ValueError("a PerfRequest needs accuracy or the hit counts, not both and not neither")
        if self.mode not in (0, 1, 2, 3):
            raise ValueError(f"mode must be 0-3, got {self.mode}")

    def to_json(self) -> dict:
        """The item as the service reads it (accuracy or the three counts, never both)."""
        body = {
            "beatmap_id": int(self.beatmap_id),
            "beatmap_md5": self.beatmap_md5,
            "mode": int(self.mode),
            "mods": int(self.mods),
            "max_combo": int(self.max_combo),
            "miss_count": int(self.miss_count),
        }
        if self.accuracy is not None:
            body["accuracy"] = float(self.accuracy)
        else:
            body.update(count_300=int(self.count_300), count_100=int(self.count_100), count_50=int(self.count_50))
        return body


@dataclass(frozen=True, slots=True)
class PerfResult:
    """One answer of the service: stars and pp rounded to 2 dp by the service (Rust f32 rounding),
    ar/od (0 outside osu!) and the map's max combo (objects)."""

    stars: float
    pp: float
    ar: float
    od: float
    max_combo: int


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    """When the circuit breaker opens (and the run stops).

    failures:     consecutive failed attempts (timeouts, connection errors, 5xx other than 500,
                  4xx, malformed answers) that open it; a contract answer (2xx array, or a 500 for
                  a bad item) resets the count.
    slow_seconds: an answer slower than this (seconds) is slow.
    slow_count:   slow answers among the last `slow_window` answers that open it.
    """

    failures: int = 5
    slow_seconds: float = 5.0
    slow_count: int = 5
    slow_window: int = 10

    def __post_init__(self) -> None:
        if self.failures < 1 or self.slow_count < 1 or self.slow_window < self.slow_count or self.slow_seconds <= 0:
            raise ValueError(f"invalid breaker policy {self}")


@dataclass(frozen=True, slots=True)
class PerfStats:
    """What the client sent and how the service answered, over the client's life.

    requests:           HTTP requests sent (health checks, retries and isolation requests included).
    calculate_requests: of those, POSTs to /api/v1/calculate.
    isolation_requests: calculate requests for halves of a batch that got a 500.
    retries:            repeated attempts after a retryable failure.
    failures:           failed attempts (no usable answer), by reason in `failure_reasons`.
    slow_answers:       answers slower than the breaker's slow_seconds.
    items_sent:         request items over all calculate requests (an item is sent again when its
                        batch is retried or split).
    status_counts:      HTTP status -> answers (as string keys, for JSON).
    latency_max_s, latency_mean_s: per answered request, seconds.
    elapsed_s:          seconds from the first request's start to the last request's end.
    effective_rate:     requests/s actually sent: (requests - 1) / seconds between the first and the
                        last request start, directly comparable with the rate limit; 0 with fewer
                        than two requests.
    """

    requests: int = 0
    calculate_requests: int = 0
    isolation_requests: int = 0
    retries: int = 0
    failures: int = 0
    failure_reasons: dict = field(default_factory=dict)
    slow_answers: int = 0
    items_sent: int = 0
    status_counts: dict = field(default_factory=dict)
    latency_max_s: float = 0.0
    latency_mean_s: float = 0.0
    elapsed_s: float = 0.0
    effective_rate: float = 0.0

    def to_dict(self) -> dict:
        """Plain dict for JSON reports."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass(frozen=True, slots=True)
class PerfRun:
    """The outcome of `PerfClient.calculate_many`.

    results: one entry per input item, in input order: a PerfResult; a PerfItemFailed whose `isolated`
             is True (the service cannot rate this item); another PerfServiceError (its batch got no
             answer after all retries); or None (never asked: the circuit breaker opened first).
    stopped: the CircuitOpen that stopped the run, or None if every batch was asked.
    stats:   the client's counters at the end of the run.
    """

    results: tuple
    stopped: CircuitOpen | None
    stats: PerfStats

    @property
    def bad_items(self) -> tuple[int, ...]:
        """Indices of the items the service failed on, each isolated by a one-item 500."""
        return tuple(i for i, r in enumerate(self.results) if isinstance(r, PerfItemFailed) and r.isolated)


# ======================================================================================================
# load control
# ======================================================================================================


class CircuitBreaker:
    """Counts consecutive failed attempts and recent slow answers; opens once for good (a compare run
    stops rather than probing a struggling service). Thread-safe."""

    def __init__(self, policy: BreakerPolicy) -> None:
        self.policy = policy
        self._lock = threading.Lock()
        self._consecutive = 0
        self._recent: list[bool] = []  # slow flag of the last slow_window answers
        self.why: str | None = None

    @property
    def is_open(self) -> bool:
        """True once the breaker has opened."""
        return self.why is not None

    def record_success(self) -> None:
        """The service answered as the contract says (a 2xx array, or a 500 for a bad item): the run of
        consecutive failures ends."""
        with self._lock:
            self._consecutive = 0

    def record_latency(self, latency: float) -> str | None:
        """An HTTP answer (any status) arrived after `latency` seconds. Returns the reason if this
        opens the breaker (too many slow answers)."""
        with self._lock:
            self._recent.append(latency > self.policy.slow_seconds)
            del self._recent[: -self.policy.slow_window]
            slow = sum(self._recent)
            if self.why is None and slow >= self.policy.slow_count:
                self.why = (
                    f"{slow} of the last {len(self._recent)} answers slower than "
                    f"{self.policy.slow_seconds:g} s (last {latency:.2f} s)"
                )
                return self.why
            return None

    def record_failure(self, error: PerfServiceError) -> str | None:
        """An attempt failed with `error`. Returns the reason if this opens the breaker."""
        with self._lock:
            self._consecutive += 1
            if self.why is None and self._consecutive >= self.policy.failures:
                self.why = f"{self._consecutive} consecutive failures (last: {error.reason}: {error.detail})"
                return self.why
            return None


# ======================================================================================================
# the client
# ======================================================================================================


class PerfClient:
    """Rate-limited, retrying, circuit-broken client of the performance service.

    base_url:    e.g. "http://perf.internal:8665" (a path prefix is kept; user:password@ is sent as
                 basic auth and masked everywhere else).
    rate:        requests per second, token bucket with `burst` tokens (default 1: no bursts).
    concurrency: requests in flight at most (also the worker threads of `calculate_many`).
    timeout:     seconds per request (connect, read, write, pool).
    retries:     extra attempts after a retryable failure; backoff: first delay scale in seconds,
                 doubled per attempt up to backoff_max, half of it random (jitter).
    breaker:     BreakerPolicy.
    transport:   an httpx transport (tests: httpx.MockTransport); None for real HTTP.
    seed:        seeds the jitter (None: random).

    Use as a context manager, or call close().
    """

    def __init__(
        self,
        base_url: str,
        *,
        rate: float = 10.0,
        concurrency: int = 2,
        timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 0.5,
        backoff_max: float = 30.0,
        breaker: BreakerPolicy | None = None,
        burst: float = 1.0,
        transport: httpx.BaseTransport | None = None,
        seed: int | None = None,
    ) -> None:
        """Raises ValueError for a bad base URL or limit."""
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        if not timeout > 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout}")
        if retries < 0 or backoff < 0 or backoff_max < 0:
            raise ValueError("retries, backoff and backoff_max must be >= 0")
        self.url = mask_url(base_url)
        try:
            parsed = httpx.URL(base_url)
        except (httpx.InvalidURL, TypeError) as exc:
            raise ValueError(f"invalid base URL {self.url}") from exc
        if parsed.scheme not in ("http", "https") or not parsed.host or parsed.query or parsed.fragment:
            raise ValueError(f"base URL must be http(s)://[user:password@]host[:port][/prefix], got {self.url}")
        self._raw_userinfo = parsed.userinfo.decode("latin-1", "replace")
        # Credentials travel as an auth header only: request URLs (which httpx logs at INFO) carry none.
        auth = httpx.BasicAuth(parsed.username, parsed.password) if parsed.userinfo else None
        if parsed.userinfo:
            parsed = parsed.copy_with(userinfo=b"")
        self.concurrency = int(concurrency)
        self.timeout = float(timeout)
        self.retries = int(retries)
        self.backoff = float(backoff)
        self.backoff_max = float(backoff_max)
        self.policy = RetryPolicy(attempts=self.retries + 1, base_seconds=self.backoff, max_seconds=self.backoff_max)
        self.breaker = CircuitBreaker(breaker or BreakerPolicy())
        self._bucket = TokenBucket(rate, burst)
        self._slots = threading.BoundedSemaphore(self.concurrency)
        self._stop = threading.Event()
        self._rng = random.Random(seed)
        self._counts_lock = threading.Lock()
        self._counts: Counter = Counter()
        self._failure_reasons: Counter = Counter()
        self._statuses: Counter = Counter()
        self._latency_max = 0.0
        self._latency_total = 0.0
        self._first_start: float | None = None
        self._last_start: float | None = None
        self._last_end: float | None = None
        self._http = httpx.Client(
            base_url=parsed,
            auth=auth,
            transport=transport,
            timeout=httpx.Timeout(self.timeout),
            limits=httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency),
            headers={"user-agent": USER_AGENT},
            follow_redirects=False,
        )

    # --- lifecycle ------------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> PerfClient:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # --- public calls -----------------------------------------------------------------------------------

    def health(self) -> bool:
        """GET /_health once (no retry): True on a 2xx, False on another status.

        Raises PerfUnreachable, PerfTimeout, CircuitOpen.
        """
        response, _ = self._send("GET", HEALTH_PATH, None, items=0)
        return 200 <= response.status_code < 300

    def calculate(self, items: Sequence[PerfRequest]) -> list[PerfResult]:
        """One calculate request for `items` (retried on transient failures), answers in item order.

        Raises PerfItemFailed (HTTP 500: some item failed; no retry), PerfRejected (4xx), CircuitOpen,
        or, once retries are used up, PerfTimeout / PerfUnreachable / PerfServerError / PerfBadResponse.
        """
        return self._post_with_retries(list(items), isolating=False)

    def calculate_isolating(self, items: Sequence[PerfRequest]) -> list[PerfResult | PerfServiceError]:
        """Like `calculate`, but a 500 splits the batch in halves until every bad item is alone.

        Returns one entry per item, in order: its PerfResult, a PerfItemFailed with that item alone,
        or the PerfServiceError its part of the batch ended with after retries. Raises CircuitOpen
        (answers gathered so far are lost; `calculate_many` keeps them).
        """
        out: list = [None] * len(items)
        self._isolate(list(items), 0, out, known_bad=False, depth=0)
        return out

    def calculate_many(self, items: Sequence[PerfRequest], batch_size: int = 20) -> PerfRun:
        """Send `items` in batches of `batch_size`, `concurrency` batches at a time, isolating bad items.

        Never raises for service failures: a CircuitOpen stops the run and is returned in
        PerfRun.stopped, with every answer gathered until then.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        items = list(items)
        out: list = [None] * len(items)
        stopped: list[CircuitOpen] = []

        def run_batch(start: int) -> None:
            if self._stop.is_set():
                return
            try:
                self._isolate(items[start : start + batch_size], start, out, known_bad=False, depth=0)
            except CircuitOpen as exc:
                stopped.append(exc)

        with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="perf") as pool:
            for future in [pool.submit(run_batch, start) for start in range(0, len(items), batch_size)]:
                future.result()
        if self.breaker.is_open and not stopped:
            stopped.append(CircuitOpen(self.url, self.breaker.why))
        return PerfRun(results=tuple(out), stopped=stopped[0] if stopped else None, stats=self.stats())

    def stats(self) -> PerfStats:
        """A snapshot of the counters (see PerfStats)."""
        with self._counts_lock:
            counts = dict(self._counts)
            answered = sum(self._statuses.values())
            elapsed = (
                self._last_end - self._first_start
                if self._first_start is not None and self._last_end is not None
                else 0.0
            )
            requests = counts.get("requests", 0)
            span = self._last_start - self._first_start if requests > 1 else 0.0
            return PerfStats(
                requests=requests,
                calculate_requests=counts.get("calculate_requests", 0),
                isolation_requests=counts.get("isolation_requests", 0),
                retries=counts.get("retries", 0),
                failures=sum(self._failure_reasons.values()),
                failure_reasons=dict(self._failure_reasons),
                slow_answers=counts.get("slow_answers", 0),
                items_sent=counts.get("items_sent", 0),
                status_counts={str(status): n for status, n in sorted(self._statuses.items())},
                latency_max_s=round(self._latency_max, 4),
                latency_mean_s=round(self._latency_total / answered, 4) if answered else 0.0,
                elapsed_s=round(elapsed, 4),
                effective_rate=round((requests - 1) / span, 3) if span > 0 else 0.0,
            )

    # --- internals ----------------------------------------------------------------------------------

    def _count(self, **increments: int) -> None:
        with self._counts_lock:
            self._counts.update(increments)

    def _scrub(self, text: str) -> str:
        """`text` with the raw userinfo of the base URL masked (httpx messages may quote the URL)."""
        if self._raw_userinfo:
            text = text.replace(self._raw_userinfo, "***")
        return text[:300]

    def _open(self, why: str, cause: Exception | None = None) -> CircuitOpen:
        self._stop.set()
        log.error("performance service %s: circuit breaker open: %s", self.url, why)
        error = CircuitOpen(self.url, why)
        error.__cause__ = cause
        return error

    def _check_open(self) -> None:
        if self.breaker.is_open:
            self._stop.set()
            raise CircuitOpen(self.url, self.breaker.why)

    def _send(self, method: str, path: str, body: bytes | None, *, items: int, isolation: bool = False) -> tuple[httpx.Response, float]:
        """One HTTP request under the concurrency and rate limits. Returns (response, latency seconds).

        Raises PerfTimeout, PerfUnreachable, PerfBadResponse (undecodable body), CircuitOpen.
        """
        self._check_open()
        with self._slots:
            wait = self._bucket.reserve()
            if wait > 0 and self._stop.wait(wait):
                self._check_open()
            self._check_open()
            url = f"{self.url.rstrip('/')}{path}"
            start = time.monotonic()
            with self._counts_lock:
                if self._first_start is None:
                    self._first_start = start
                self._last_start = start
                self._counts.update(
                    requests=1,
                    calculate_requests=int(path == CALCULATE_PATH),
                    isolation_requests=int(isolation),
                    items_sent=items,
                )
            try:
                response = self._http.request(
                    method, path, content=body, headers={"content-type": "application/json"} if body else None
                )
            except httpx.TimeoutException as exc:
                raise PerfTimeout(url, f"no answer within {self.timeout:g} s ({type(exc).__name__})") from exc
            except httpx.DecodingError as exc:
                raise PerfBadResponse(url, self._scrub(f"undecodable body: {exc}")) from exc
            except httpx.HTTPError as exc:  # TransportError and the rest: connect, read, protocol, proxy
                raise PerfUnreachable(url, self._scrub(f"{type(exc).__name__}: {exc}")) from exc
            finally:
                end = time.monotonic()
                with self._counts_lock:
                    self._last_end = end
            latency = end - start
            with self._counts_lock:
                self._statuses[response.status_code] += 1
                self._latency_max = max(self._latency_max, latency)
                self._latency_total += latency
                if latency > self.breaker.policy.slow_seconds:
                    self._counts["slow_answers"] += 1
            why = self.breaker.record_latency(latency)
            if why is not None:
                self._stop.set()
                log.error("performance service %s: circuit breaker open: %s", self.url, why)
            return response, latency

    def _parse(self, url: str, response: httpx.Response, items: Sequence[PerfRequest]) -> list[PerfResult]:
        """The contract's answer array -> PerfResults. Raises PerfBadResponse."""
        try:
            data = json.loads(response.content)
        except (ValueError, UnicodeDecodeError) as exc:
            raise PerfBadResponse(url, f"not JSON: {response.content[:80]!r}") from exc
        if not isinstance(data, list):
            raise PerfBadResponse(url, f"expected a JSON array, got {type(data).__name__}")
        if len(data) != len(items):
            raise PerfBadResponse(url, f"{len(data)} answers for {len(items)} items")
        results = []
        for index, entry in enumerate(data):
            if not isinstance(entry, dict):
                raise PerfBadResponse(url, f"answer {index} is not an object")
            values = {}
            for name in ("stars", "pp", "ar", "od", "max_combo"):
                value = entry.get(name)
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                    raise PerfBadResponse(url, f"answer {index}: {name} is {value!r}")
                values[name] = value
            results.append(
                PerfResult(
                    stars=float(values["stars"]),
                    pp=float(values["pp"]),
                    ar=float(values["ar"]),
                    od=float(values["od"]),
                    max_combo=int(values["max_combo"]),
                )
            )
        return results

    def _post_with_retries(self, items: list[PerfRequest], *, isolating: bool) -> list[PerfResult]:
        """POST `items` once, and again after a retryable failure (sr.retry.RetryPolicy: `retries`
        more tries, backoff from `backoff` seconds doubling up to `backoff_max`, a Retry-After honoured);
        a wait ends early, with CircuitOpen, when the breaker opens meanwhile."""
        body = json.dumps([item.to_json() for item in items]).encode()
        url = f"{self.url.rstrip('/')}{CALCULATE_PATH}"

        def note(error: BaseException, attempt: int, seconds: float) -> None:
            log.warning("performance service %s: %s; retry %d/%d in %.2f s", self.url, error, attempt, self.retries, seconds)
            self._count(retries=1)

        def wait(seconds: float) -> None:
            if self._stop.wait(seconds):
                self._check_open()

        retrying = self.policy.retrying(
            lambda exc: isinstance(exc, PerfServiceError) and exc.retryable, before_sleep=note, sleep=wait, rng=self._rng
        )
        return retrying(self._post_once, body, url, items, isolating)

    def _post_once(self, body: bytes, url: str, items: list[PerfRequest], isolating: bool) -> list[PerfResult]:
        """One POST. Returns the results of a 2xx; raises PerfItemFailed (500), CircuitOpen (the breaker
        opened on this failure) or the failure's PerfServiceError (retryable or not)."""
        retry_after = None
        try:
            response, _ = self._send("POST", CALCULATE_PATH, body, items=len(items), isolation=isolating)
            status = response.status_code
            if 200 <= status < 300:
                results = self._parse(url, response, items)
                self.breaker.record_success()
                return results
            detail = self._scrub(response.text.strip())
            if status == 500:
                self.breaker.record_success()  # the contract's answer for a bad item
                raise PerfItemFailed(url, items, detail)
            if 400 <= status < 500:
                error: PerfServiceError = PerfRejected(url, status, detail)
            elif status >= 500:
                retry_after = _retry_after_seconds(response.headers.get("retry-after"))
                error = PerfServerError(url, status, detail, retry_after)
            else:  # 1xx/3xx: not the contract's answer
                error = PerfBadResponse(url, f"HTTP {status}")
        except (PerfTimeout, PerfUnreachable, PerfBadResponse) as exc:
            error = exc
        with self._counts_lock:
            self._failure_reasons[error.reason] += 1
        why = self.breaker.record_failure(error)
        if why is not None:
            raise self._open(why, error)
        raise error

    def _isolate(self, items: list[PerfRequest], offset: int, out: list, *, known_bad: bool, depth: int) -> bool:
        """Answer `items` into out[offset:offset+len(items)], splitting on 500s.

        known_bad: the caller knows this part would get a 500 (its sibling half succeeded), so a part
        of more than one item is split without asking it first. Returns True if every item got a
        PerfResult. Raises CircuitOpen.
        """
        if not known_bad or len(items) == 1:
            try:
                out[offset : offset + len(items)] = self._post_with_retries(items, isolating=depth > 0)
                return True
            except PerfItemFailed as exc:
                if len(items) == 1:
                    out[offset] = exc
                    log.info("performance service %s: bad item isolated: %s", self.url, exc)
                    return False
            except CircuitOpen:
                raise
            except PerfServiceError as exc:
                out[offset : offset + len(items)] = [exc] * len(items)
                return False
        middle = len(items) // 2
        left_ok = self._isolate(items[:middle], offset, out, known_bad=False, depth=depth + 1)
        # If the left half answered in full, the 500 came from the right half: split it without asking.
        right_ok = self._isolate(items[middle:], offset + middle, out, known_bad=left_ok, depth=depth + 1)
        return left_ok and right_ok


def _retry_after_seconds(value: str | None) -> float | None:
    """A Retry-After header in delta-seconds form as float seconds; None if absent or an HTTP date."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


__all__ = (
    "BreakerPolicy",
    "PerfClient",
    "PerfRequest",
    "PerfResult",
    "PerfRun",
    "PerfStats",
)
