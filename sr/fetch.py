"""Download a missing or stale .osu file from upstream, checked against the score's beatmap_md5.

Production keeps .osu files in S3 behind beatmaps-service, which re-downloads a file whose md5 no
longer matches from osu!'s servers (DOMAIN.md §6). `--fetch-missing URL_TEMPLATE` does the same for
the backfill's store: a beatmaps-service route (`.../osu-files/{beatmap_id}`) or an osu! mirror
(`.../osu/{beatmap_id}`). A download is kept only if its md5 is the md5 the score was set on.
Requests are rate-limited (per process: each rater has its own fetcher) and retried with backoff.
"""

from __future__ import annotations

import hashlib
import time

import httpx

from sr.errors import BeatmapMismatch, BeatmapMissing
from sr.masking import mask_url
from sr.retry import RetryPolicy, TokenBucket

RETRY_STATUSES = {429, 500, 502, 503, 504}


class _Transient(Exception):
    """A download attempt worth repeating: a timeout, a connection error, a 429 or a 5xx."""


class BeatmapFetcher:
    """GETs `url_template` formatted with beatmap_id (and beatmap_md5), returning the file's bytes.

    rate:    requests per second (per process); retries: further attempts after a timeout,
    connection error or a 429/5xx answer, waiting as sr.retry.RetryPolicy does from `backoff`
    seconds (doubling, with jitter).
    `transport` is for tests (httpx.MockTransport); production passes nothing.
    Raises ValueError for a template without `{beatmap_id}` or `{beatmap_md5}`.
    """

    def __init__(
        self,
        url_template: str,
        *,
        rate: float = 5.0,
        retries: int = 3,
        timeout: float = 30.0,
        backoff: float = 0.5,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if "{beatmap_id}" not in url_template and "{beatmap_md5}" not in url_template:
            raise ValueError("--fetch-missing needs {beatmap_id} or {beatmap_md5} in the URL template")
        self.url_template = url_template
        self.retries = retries
        self.policy = RetryPolicy(attempts=retries + 1, base_seconds=backoff)
        self.bucket = TokenBucket(rate)
        self.client = httpx.Client(timeout=timeout, transport=transport, follow_redirects=True)
        self.requests = 0
        self.downloaded = 0

    def fetch(self, beatmap_id: int, beatmap_md5: str) -> bytes:
        """The upstream file of `beatmap_id`, if it is the version `beatmap_md5`.

        Raises BeatmapMissing (404, or every attempt failed) and BeatmapMismatch (upstream serves
        another version: the score's version is gone).
        """
        url = self.url_template.format(beatmap_id=int(beatmap_id), beatmap_md5=beatmap_md5)
        retrying = self.policy.retrying(lambda exc: isinstance(exc, _Transient))
        try:
            content = retrying(self._attempt, url, beatmap_md5)
        except _Transient as exc:
            raise BeatmapMissing(beatmap_md5, f"download failed after {self.retries + 1} attempts: {exc}") from None
        self.downloaded += 1
        return content

    def _attempt(self, url: str, beatmap_md5: str) -> bytes:
        """One GET (after the rate limit's wait). Raises _Transient for what is worth repeating."""
        time.sleep(self.bucket.reserve())
        self.requests += 1
        try:
            response = self.client.get(url)
        except httpx.HTTPError as exc:
            raise _Transient(f"{type(exc).__name__} from {mask_url(url)}") from None
        if response.status_code in RETRY_STATUSES:
            raise _Transient(f"HTTP {response.status_code} from {mask_url(url)}")
        if response.status_code != 200:
            raise BeatmapMissing(beatmap_md5, f"upstream {mask_url(url)} answered {response.status_code}")
        digest = hashlib.md5(response.content).hexdigest()
        if digest != beatmap_md5.lower():
            raise BeatmapMismatch(beatmap_md5, f"upstream {mask_url(url)} serves md5 {digest}")
        return response.content

    def close(self) -> None:
        self.client.close()
