"""--fetch-missing: download a missing or stale .osu from a loopback HTTP server, md5-checked,
saved to the store, rate-limited, retried."""

import hashlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from sr.errors import BeatmapMismatch, BeatmapMissing
from sr.fetch import BeatmapFetcher
from sr.store import OsuStore
from tests.conftest import MAPS

CONTENT = (MAPS / "rosu-pp" / "2785319.osu").read_bytes()
MD5 = hashlib.md5(CONTENT).hexdigest()


class Upstream:
    """A loopback file server: `files[beatmap_id] = bytes`; `fail_first[beatmap_id] = n` answers 503 n times."""

    def __init__(self):
        self.files: dict[int, bytes] = {}
        self.fail_first: dict[int, int] = {}
        self.times: list[float] = []
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                upstream.times.append(time.monotonic())
                beatmap_id = int(self.path.rsplit("/", 1)[-1])
                if upstream.fail_first.get(beatmap_id, 0) > 0:
                    upstream.fail_first[beatmap_id] -= 1
                    self.send_response(503)
                    self.end_headers()
                    return
                body = upstream.files.get(beatmap_id)
                self.send_response(200 if body is not None else 404)
                self.end_headers()
                if body is not None:
                    self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.template = f"http://127.0.0.1:{self.server.server_address[1]}/osu/{{beatmap_id}}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture()
def upstream():
    server = Upstream()
    yield server
    server.server.shutdown()


def test_missing_file_is_downloaded_checked_and_saved(upstream, tmp_path):
    upstream.files[7] = CONTENT
    store = OsuStore(tmp_path, BeatmapFetcher(upstream.template, rate=100))
    assert store.load(7, MD5) == CONTENT
    assert (tmp_path / "7.osu").read_bytes() == CONTENT and store.saved == 1
    assert store.load(7, MD5) == CONTENT and len(upstream.times) == 1  # the saved file serves next time
    assert not list(tmp_path.glob("*.partial"))


def test_stale_file_is_replaced_by_the_right_version(upstream, tmp_path):
    (tmp_path / "7.osu").write_bytes(CONTENT + b"\r\n")  # another version on disk
    upstream.files[7] = CONTENT
    assert OsuStore(tmp_path, BeatmapFetcher(upstream.template, rate=100)).load(7, MD5) == CONTENT
    assert (tmp_path / "7.osu").read_bytes() == CONTENT


def test_upstream_serving_another_version_is_a_mismatch_and_nothing_is_saved(upstream, tmp_path):
    upstream.files[7] = CONTENT + b"\n"
    store = OsuStore(tmp_path, BeatmapFetcher(upstream.template, rate=100))
    with pytest.raises(BeatmapMismatch):
        store.load(7, MD5)
    assert not (tmp_path / "7.osu").exists() and store.saved == 0


def test_not_found_upstream_is_missing(upstream, tmp_path):
    with pytest.raises(BeatmapMissing, match="404"):
        OsuStore(tmp_path, BeatmapFetcher(upstream.template, rate=100)).load(8, MD5)
    assert len(upstream.times) == 1  # a 404 is final: no retry


def test_transient_errors_are_retried_with_backoff(upstream, tmp_path):
    upstream.files[7] = CONTENT
    upstream.fail_first[7] = 2
    fetcher = BeatmapFetcher(upstream.template, rate=100, retries=3, backoff=0.05)
    assert OsuStore(tmp_path, fetcher).load(7, MD5) == CONTENT
    assert fetcher.requests == 3 and upstream.times[2] - upstream.times[0] >= 0.05 * (0.5 + 1.0)


def test_gives_up_after_the_retries(upstream, tmp_path):
    upstream.files[7] = CONTENT
    upstream.fail_first[7] = 10
    with pytest.raises(BeatmapMissing, match="3 attempts"):
        BeatmapFetcher(upstream.template, rate=100, retries=2, backoff=0.01).fetch(7, MD5)


def test_rate_limit_spaces_requests(upstream):
    for beatmap_id in range(10):
        upstream.files[beatmap_id] = CONTENT
    fetcher = BeatmapFetcher(upstream.template, rate=20)
    started = time.monotonic()
    for beatmap_id in range(10):
        fetcher.fetch(beatmap_id, MD5)
    # the bucket starts with one token: the other nine come at 1/20 s each
    assert upstream.times[-1] - started >= 9 / 20 * 0.99


def test_template_needs_a_placeholder():
    with pytest.raises(ValueError, match="beatmap_id"):
        BeatmapFetcher("http://127.0.0.1/osu/")


@pytest.mark.ray
def test_run_fetches_a_missing_map_and_grants_as_with_a_complete_store(upstream, tmp_path, ray_session):
    import shutil

    import polars as pl

    from jobs.cli import main
    from testbed.demo import build_demo_database

    complete = tmp_path / "complete"
    complete.mkdir()
    db_url = f"sqlite:///{tmp_path / 'demo.db'}"
    build_demo_database(db_url, complete, MAPS, users=40, seed=9)
    partial = tmp_path / "partial"
    shutil.copytree(complete, partial)
    removed = sorted(partial.glob("*.osu"), key=lambda p: p.stat().st_size)[-3:]  # three real maps
    for path in removed:
        upstream.files[int(path.stem)] = path.read_bytes()
        path.unlink()

    expected, got = tmp_path / "expected.parquet", tmp_path / "got.parquet"
    assert main(["run", "--db", db_url, "--osu-dir", str(complete), "--out", str(expected), "--no-progress"]) == 0
    report = tmp_path / "report.json"
    assert main(["run", "--db", db_url, "--osu-dir", str(partial), "--out", str(got), "--report", str(report),
                 "--no-progress", "--no-sr-cache", "--fetch-missing", upstream.template, "--fetch-rate", "50"]) == 0
    summary = json.loads(report.read_text())
    assert summary["beatmaps_downloaded"] == len(removed)
    assert all((partial / path.name).read_bytes() == upstream.files[int(path.stem)] for path in removed)
    assert pl.read_parquet(expected).sort(pl.all()).equals(pl.read_parquet(got).sort(pl.all()))
