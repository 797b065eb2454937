"""Errors of the performance-service client (sr.perf).

    PerfServiceError                 the service gave no usable answer; `url` is always masked
      PerfUnreachable                connection refused/reset, DNS, protocol error    retried with backoff
      PerfTimeout                    no answer within the per-request timeout          retried with backoff
      PerfServerError                HTTP 5xx other than 500 (502, 503, 504, ...)     retried with backoff; `status`
      PerfBadResponse                a 2xx whose body is not the contract's array      retried with backoff
      PerfRejected                   HTTP 4xx: the request itself was refused          never retried; `status`
      PerfItemFailed                 HTTP 500: an item of the request failed (the      never retried: the batch is
                                     contract fails the whole request for one item)    split until the item is alone
      CircuitOpen                    the circuit breaker opened; the run stops         `reason`

The client translates every httpx error into one of these at the boundary (`raise ... from exc`), so
callers never see httpx types. Inside a compare run, failures are counted and reported per item, not
raised; only CircuitOpen stops the run.
"""

from __future__ import annotations

from collections.abc import Sequence


class PerfServiceError(Exception):
    """The performance service gave no usable answer.

    url:       the request URL with credentials masked (never the raw URL).
    detail:    a short human-readable reason.
    retryable: whether the client retries this failure with backoff.
    """

    retryable = False
    reason = "perf_error"

    def __init__(self, url: str, detail: str = "") -> None:
        self.url = url
        self.detail = detail
        super().__init__(f"{self.reason}: {url}" + (f": {detail}" if detail else ""))


class PerfUnreachable(PerfServiceError):
    """No HTTP answer: connection refused or reset, DNS failure, broken protocol."""

    retryable = True
    reason = "unreachable"


class PerfTimeout(PerfServiceError):
    """No answer within the per-request timeout (seconds)."""

    retryable = True
    reason = "timeout"


class PerfServerError(PerfServiceError):
    """HTTP 5xx other than 500 (a proxy or an overloaded service: 502, 503, 504, ...).

    status: the HTTP status; retry_after: the Retry-After header in seconds, if the service sent one.
    """

    retryable = True
    reason = "server_error"

    def __init__(self, url: str, status: int, detail: str = "", retry_after: float | None = None) -> None:
        self.status = status
        self.retry_after = retry_after
        super().__init__(url, f"HTTP {status}" + (f": {detail}" if detail else ""))


class PerfBadResponse(PerfServiceError):
    """A 2xx answer whose body is not the contract's JSON array of {stars, pp, ar, od, max_combo}
    with one entry per request item."""

    retryable = True
    reason = "bad_response"


class PerfRejected(PerfServiceError):
    """HTTP 4xx: the service refused the request (a wrong URL, or a body it cannot read: our bug or
    our configuration). Never retried. status: the HTTP status."""

    reason = "rejected"

    def __init__(self, url: str, status: int, detail: str = "") -> None:
        self.status = status
        super().__init__(url, f"HTTP {status}" + (f": {detail}" if detail else ""))


class PerfItemFailed(PerfServiceError):
    """HTTP 500 for a request: the service failed on at least one of its `items` (an unknown beatmap,
    a bad file, an impossible convert). With one item, that item is isolated: the service cannot rate it.

    items: the request items (sr.perf.PerfRequest) of the failed request.
    """

    reason = "item_failed"

    def __init__(self, url: str, items: Sequence, detail: str = "") -> None:
        self.items = tuple(items)
        what = f"{len(self.items)} items" if len(self.items) != 1 else f"beatmap {self.items[0].beatmap_md5}"
        super().__init__(url, f"HTTP 500 for {what}" + (f": {detail}" if detail else ""))

    @property
    def isolated(self) -> bool:
        """True when the failed request held a single item (that item is the bad one)."""
        return len(self.items) == 1


class CircuitOpen(PerfServiceError):
    """The circuit breaker opened (too many consecutive failures, or too many slow answers); no
    further request is sent. reason: why it opened, e.g. "5 consecutive failures (last: timeout)"."""

    reason = "circuit_open"

    def __init__(self, url: str, why: str) -> None:
        self.why = why
        super().__init__(url, why)


__all__ = (
    "CircuitOpen",
    "PerfBadResponse",
    "PerfItemFailed",
    "PerfRejected",
    "PerfServerError",
    "PerfServiceError",
    "PerfTimeout",
    "PerfUnreachable",
)
