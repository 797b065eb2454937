# SRError                            base of the star-rating layer's errors
#   RatingError                      a key could not be rated; counted per reason, never raised out of a batch
#     BeatmapMissing                 no .osu file for the beatmap in the store       reason "missing_file"
#     BeatmapMismatch                the file's md5 differs from the score's md5     reason "md5_mismatch"
#     BeatmapBadFormat               no `osu file format v` header, or no objects     reason "bad_format"
#     ConvertUnsupported             a taiko/catch/mania map asked in another mode   reason "impossible_convert"
#     NonFiniteRating                the engine returned NaN or infinity             reason "non_finite"
#     EngineFailed                   the engine raised                               reason "engine_failed"
#     AutopilotRewriteFailed         the distance-free rewrite kept some aim         reason "autopilot_rewrite"
#     BeatmapMalformed               the decoded map breaks an invariant of the      reason "malformed_map"
#                                    compiled relax kernels (checked before they run)
#     EngineCrashed                  rating the key killed its rater process twice   reason "engine_crash"
#                                    (quarantined for the rest of the run)
#   PerfServiceError                 the performance service gave no usable answer; `url` is always masked
#     PerfUnreachable                connection refused/reset, DNS, protocol error    retried with backoff
#     PerfTimeout                    no answer within the per-request timeout          retried with backoff
#     PerfServerError                HTTP 5xx other than 500 (502, 503, 504, ...)     retried with backoff; `status`
#     PerfBadResponse                a 2xx whose body is not the contract's array      retried with backoff
#     PerfRejected                   HTTP 4xx: the request itself was refused          never retried; `status`
#     PerfItemFailed                 HTTP 500: an item of the request failed (the      never retried: the batch is
#                                    contract fails the whole request for one item)    split until the item is alone
#     CircuitOpen                    the circuit breaker opened; the run stops         `why`
"""Errors of the star-rating layer: ratings (sr.engine, sr.live, sr.store, sr.fetch) and the
performance-service client (sr.perf).

Lower libraries' errors are translated at the boundary with `raise ... from exc`: rosu-pp's become
EngineFailed or ConvertUnsupported, httpx's become PerfServiceError subclasses (sr.perf) or
BeatmapMissing (sr.fetch), so callers never see their types. Inside a batch a RatingError is counted
under its `reason`, never raised; inside a compare run a PerfServiceError is counted per item, and only
CircuitOpen stops the run.
"""

from __future__ import annotations

from collections.abc import Sequence


class SRError(Exception):
    """Base of the star-rating layer's errors."""


class RatingError(SRError):
    """A (beatmap_md5, mode_vn, mods) key could not be given a star rating.

    `reason` is the short name reports count it under; `beatmap_md5` names the beatmap.
    """

    reason = "rating_error"

    def __init__(self, beatmap_md5: str, detail: str = "") -> None:
        self.beatmap_md5 = beatmap_md5
        self.detail = detail
        super().__init__(f"{self.reason}: beatmap {beatmap_md5}" + (f": {detail}" if detail else ""))


class BeatmapMissing(RatingError):
    """No .osu file for this beatmap in the store."""

    reason = "missing_file"


class BeatmapMismatch(RatingError):
    """The stored .osu file's md5 is not the score's beatmap_md5 (the map was updated since)."""

    reason = "md5_mismatch"


class BeatmapBadFormat(RatingError):
    """The file lacks the `osu file format v` header, or parses to no hit objects (empty, corrupt)."""

    reason = "bad_format"


class ConvertUnsupported(RatingError):
    """A taiko, catch or mania beatmap was asked for in another mode; only osu! maps convert."""

    reason = "impossible_convert"


class NonFiniteRating(RatingError):
    """The engine returned NaN or infinity for this key."""

    reason = "non_finite"


class EngineFailed(RatingError):
    """The engine raised while parsing or rating; the original exception is the `__cause__`."""

    reason = "engine_failed"


REASONS = tuple(
    cls.reason
    for cls in (BeatmapMissing, BeatmapMismatch, BeatmapBadFormat, ConvertUnsupported, NonFiniteRating, EngineFailed)
)


class AutopilotRewriteFailed(RatingError):
    """The distance-free rewrite of an osu! map left a non-zero aim rating, so its speed rating cannot
    be trusted as the live autopilot speed: the key is an error, not a guess."""

    reason = "autopilot_rewrite"


REASONS = REASONS + (AutopilotRewriteFailed.reason,)


class BeatmapMalformed(RatingError):
    """The decoded map breaks an invariant the compiled relax kernels (sr.osu2019) index by: an object,
    slider or control-point offset out of range, arrays of different lengths, a non-finite time. The
    kernels run without bounds checks, so this is checked before they run: a named error instead of a
    read or write out of bounds."""

    reason = "malformed_map"


class EngineCrashed(RatingError):
    """Rating this key killed the rater process twice (a crash inside the engine: a segfault, an abort,
    the OOM killer). The key is quarantined for the rest of the run: its scores are evaluated with an
    unknown star rating, like any key that could not be rated (cluster.workers)."""

    reason = "engine_crash"


REASONS = REASONS + (BeatmapMalformed.reason, EngineCrashed.reason)


class PerfServiceError(SRError):
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
