"""Download a missing or stale .osu file from upstream, checked against the score's beatmap_md5.

Production keeps .osu files in S3 behind beatmaps-service, which re-downloads a file whose md5 no
longer matches from osu!'s servers (DOMAIN.md §6). `--fetch-missing URL_TEMPLATE` does the same for
the backfill's store: a beatmaps-service route (`.../osu-files/{beatmap_id}`) or an osu! mirror
(`.../osu/{beatmap_id}`). A download is kept only if its md5 is the md5 the score was set on.
Requests are rate-limited (per process: each rater has its own fetcher) and retried with backoff.
"""

from __future__ import annotations

import hashlib
import random
import time

import httpx

from sr.errors import BeatmapMismatch, BeatmapMissing
from sr.perf import TokenBucket, mask_url

RETRY_STATUSES = {429, 500, 502, 503, 504}


class BeatmapFetcher:
    """GETs `url_template` formatted with beatmap_id (and beatmap_md5), returning the file's bytes.

    rate:    requests per second (per process); retries: further attempts after a timeout,
    connection error or a 429/5xx answer, waiting backoff * 2**attempt seconds (with jitter).
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
        self.backoff = backoff
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
        for attempt in range(self.retries + 1):
            time.sleep(self.bucket.reserve())
            self.requests += 1
            try:
                response = self.client.get(url)
            except httpx.HTTPError as exc:
                failure = f"{type(exc).__name__} from {mask_url(url)}"
            else:
                if response.status_code == 200:
                    content = response.content
                    digest = hashlib.md5(content).hexdigest()
                    if digest != beatmap_md5.lower():
                        raise BeatmapMismatch(beatmap_md5, f"upstream {mask_url(url)} serves md5 {digest}")
                    self.downloaded += 1
                    return content
                if response.status_code not in RETRY_STATUSES:
                    raise BeatmapMissing(beatmap_md5, f"upstream {mask_url(url)} answered {response.status_code}")
                failure = f"HTTP {response.status_code} from {mask_url(url)}"
            if attempt < self.retries:
                time.sleep(self.backoff * 2**attempt * (0.5 + random.random() / 2))
        raise BeatmapMissing(beatmap_md5, f"download failed after {self.retries + 1} attempts: {failure}")

    def close(self) -> None:
        self.client.close()
