"""One retry policy and one rate limit for everything the tool repeats or paces: database operations
(cluster.db.retrying), .osu downloads (sr.fetch) and performance-service requests (sr.perf).

Retries run on tenacity: a `RetryPolicy` says how many tries and how long to wait between them;
each caller says which failures are worth another try (a lost connection, a deadlock, a timeout, an
HTTP 5xx) and what to record before it waits.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import tenacity


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently an operation is retried.

    attempts:     tries in all, the first included (>= 1).
    base_seconds: the wait before the second try; it doubles for each further try (with +-25% jitter).
    max_seconds:  the cap of one wait (before jitter). A failure carrying `retry_after` (seconds, e.g.
                  an HTTP Retry-After header) waits at least that long, capped at max_seconds.
    """

    attempts: int = 6
    base_seconds: float = 0.5
    max_seconds: float = 30.0

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.base_seconds < 0 or self.max_seconds < 0:
            raise ValueError("a retry policy needs attempts >= 1 and waits >= 0 seconds")

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed try number `attempt` (1-based)."""
        jitter = (rng or random).uniform(0.75, 1.25)
        return min(self.max_seconds, self.base_seconds * 2 ** (attempt - 1)) * jitter

    def retrying(
        self,
        retry_on: Callable[[BaseException], bool],
        *,
        before_sleep: Callable[[BaseException, int, float], None] | None = None,
        sleep: Callable[[float], object] = time.sleep,
        rng: random.Random | None = None,
    ) -> tenacity.Retrying:
        """A tenacity controller: `for attempt in policy.retrying(...): with attempt: ...`, or
        `policy.retrying(...)(function)`. Retries exceptions for which `retry_on` is true, at most
        `attempts` tries in all; the last failure is re-raised as it is. `before_sleep(error, try
        number, seconds)` runs before each wait (to log or count it); `sleep` waits (tests, or an
        interruptible wait)."""

        def wait(state: tenacity.RetryCallState) -> float:
            seconds = self.delay(state.attempt_number, rng)
            retry_after = getattr(state.outcome.exception(), "retry_after", None) if state.outcome else None
            if retry_after is not None:
                seconds = max(seconds, min(float(retry_after), self.max_seconds))
            return seconds

        def announce(state: tenacity.RetryCallState) -> None:
            if before_sleep is not None and state.outcome is not None and state.next_action is not None:
                before_sleep(state.outcome.exception(), state.attempt_number, state.next_action.sleep)

        return tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.attempts),
            wait=wait,
            retry=tenacity.retry_if_exception(retry_on),
            before_sleep=announce,
            sleep=sleep,
            reraise=True,
        )


class TokenBucket:
    """Token bucket of `rate` tokens per second (requests/s), holding at most `burst` tokens, full at start.

    `reserve()` takes one token, going into debt when empty, and returns the seconds to wait before
    using it, so concurrent callers queue at 1/rate spacing. `rate` math.inf disables the limit.
    Raises ValueError for rate <= 0 or burst < 1.
    """

    def __init__(self, rate: float, burst: float = 1.0) -> None:
        if not rate > 0:
            raise ValueError(f"rate must be > 0 requests/s, got {rate}")
        if burst < 1:
            raise ValueError(f"burst must be >= 1 token, got {burst}")
        self.rate = float(rate)
        self.burst = float(burst)
        self._tokens = float(burst)
        self._last = time.monotonic()
        self._lock = threading.Lock()

    def reserve(self) -> float:
        """Take a token; return the wait in seconds (0.0 if one was available)."""
        if math.isinf(self.rate):
            return 0.0
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
            self._tokens -= 1.0
            return 0.0 if self._tokens >= 0 else -self._tokens / self.rate
