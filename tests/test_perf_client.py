"""sr.perf.PerfClient: request/response mapping and error translation on httpx.MockTransport, then load
control against the real stand-in service (jobs.perf_standin) on 127.0.0.1 with a free port."""

from __future__ import annotations

import base64
import hashlib
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import rosu_pp_py as rosu

from jobs.perf_standin import PerfStandIn, StandInConfig
from sr.engines import engine_named
from sr.masking import mask_url
from sr.perf import BreakerPolicy, PerfClient, PerfRequest, PerfResult
from sr.retry import TokenBucket
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
from sr.rounding import round_live
from tests.conftest import MAPS, REPO

BASE = "http://perf.invalid"


def item(n: int = 1, md5: str | None = None, **changes) -> PerfRequest:
    fields = dict(beatmap_id=n, beatmap_md5=md5 or f"{n:032x}", mode=0, mods=0, max_combo=100, miss_count=0, accuracy=98.5)
    fields.update(changes)
    return PerfRequest(**fields)


def answer(stars: float = 5.0) -> dict:
    return {"stars": stars, "pp": 123.45, "ar": 9.0, "od": 8.0, "max_combo": 321}


def mock_client(handler, **options) -> PerfClient:
    options = {"rate": math.inf, "retries": 0, "backoff": 0.0, **options}
    return PerfClient(options.pop("base_url", BASE), transport=httpx.MockTransport(handler), **options)


# ======================================================================================================
# MockTransport: mapping and translation
# ======================================================================================================


def test_request_body_and_answers_follow_the_contract():
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        body = json.loads(request.content)
        return httpx.Response(200, json=[answer(1.0 + i) for i, _ in enumerate(body)])

    items = [item(7, mods=72, mode=1, accuracy=97.25), item(8, count_300=500, count_100=10, count_50=2, accuracy=None)]
    with mock_client(handler) as client:
        results = client.calculate(items)

    assert results == [PerfResult(1.0, 123.45, 9.0, 8.0, 321), PerfResult(2.0, 123.45, 9.0, 8.0, 321)]
    (request,) = seen
    assert request.method == "POST" and request.url.path == "/api/v1/calculate"
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.content) == [
        {"beatmap_id": 7, "beatmap_md5": f"{7:032x}", "mode": 1, "mods": 72, "max_combo": 100, "miss_count": 0, "accuracy": 97.25},
        {"beatmap_id": 8, "beatmap_md5": f"{8:032x}", "mode": 0, "mods": 0, "max_combo": 100, "miss_count": 0,
         "count_300": 500, "count_100": 10, "count_50": 2},
    ]
    assert client.stats().calculate_requests == 1 and client.stats().items_sent == 2


@pytest.mark.parametrize(
    "changes",
    [
        {"accuracy": None},  # neither form
        {"count_300": 1, "count_100": 0, "count_50": 0},  # both forms
        {"accuracy": None, "count_300": 1},  # incomplete counts
        {"mode": 4},
    ],
)
def test_request_needs_accuracy_or_counts_and_a_vanilla_mode(changes):
    with pytest.raises(ValueError):
        item(**changes)


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(200, content=b"<html>not json</html>"),
        httpx.Response(200, json={"stars": 5.0}),
        httpx.Response(200, json=[answer(), answer()]),  # two answers for one item
        httpx.Response(200, json=[{"stars": 5.0, "pp": 1.0}]),  # fields missing
        httpx.Response(200, json=[{**answer(), "stars": "5.0"}]),
        httpx.Response(204),
    ],
)
def test_malformed_answers_are_bad_responses(response):
    with mock_client(lambda request: response) as client, pytest.raises(PerfBadResponse):
        client.calculate([item()])


def test_transport_errors_become_ours_with_the_cause_kept():
    def refused(request):
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    def slow(request):
        raise httpx.ReadTimeout("timed out", request=request)

    with mock_client(refused, retries=2) as client, pytest.raises(PerfUnreachable) as caught:
        client.calculate([item()])
    assert isinstance(caught.value.__cause__, httpx.ConnectError)
    assert client.stats().requests == 3 and client.stats().retries == 2  # retried with backoff

    with mock_client(slow, retries=1) as client, pytest.raises(PerfTimeout) as caught:
        client.calculate([item()])
    assert isinstance(caught.value.__cause__, httpx.ReadTimeout)
    assert not isinstance(caught.value, httpx.HTTPError)
    assert client.stats().failure_reasons == {"timeout": 2}


def test_status_codes_map_to_error_classes():
    def status(code, headers=None):
        return lambda request: httpx.Response(code, text="nope", headers=headers or {})

    with mock_client(status(404), retries=3) as client, pytest.raises(PerfRejected) as caught:
        client.calculate([item()])
    assert caught.value.status == 404 and client.stats().requests == 1  # 4xx: never retried

    with mock_client(status(503, {"retry-after": "0"}), retries=2) as client, pytest.raises(PerfServerError) as caught:
        client.calculate([item()])
    assert caught.value.status == 503 and caught.value.retry_after == 0 and client.stats().requests == 3

    with mock_client(status(500), retries=3) as client, pytest.raises(PerfItemFailed) as caught:
        client.calculate([item(1), item(2)])
    assert caught.value.items == (item(1), item(2)) and not caught.value.isolated
    assert client.stats().requests == 1  # a 500 is the contract's item failure, not retried


def test_credentials_are_used_but_never_shown():
    seen = []

    def handler(request):
        seen.append(request.headers.get("authorization"))
        assert "s3cret" not in str(request.url)  # httpx logs request URLs at INFO: keep them clean
        raise httpx.ConnectError(f"cannot reach {request.url} as alice:s3cret", request=request)

    url = "http://alice:s3cret@perf.invalid:8665/prefix"
    with mock_client(handler, base_url=url) as client, pytest.raises(PerfUnreachable) as caught:
        client.calculate([item()])
    assert seen == ["Basic " + base64.b64encode(b"alice:s3cret").decode()]
    for text in (str(caught.value), caught.value.url, client.url):
        assert "s3cret" not in text and "alice" not in text
    assert "http://***@perf.invalid:8665/prefix/api/v1/calculate" in str(caught.value)
    assert mask_url(url + "?token=t0ken") == "http://***@perf.invalid:8665/prefix?***"
    assert mask_url("http://perf:8665") == "http://perf:8665"


def test_bad_url_is_a_value_error():
    for url in ("ftp://perf", "not a url", "http://", "http://perf/?token=t"):
        with pytest.raises(ValueError):
            PerfClient(url)


def test_isolation_finds_every_bad_item_on_a_mock():
    bad = {3, 4, 13}
    requests = []

    def handler(request):
        body = json.loads(request.content)
        requests.append(len(body))
        if any(entry["beatmap_id"] in bad for entry in body):
            return httpx.Response(500, text="internal server error")
        return httpx.Response(200, json=[answer(entry["beatmap_id"]) for entry in body])

    items = [item(n) for n in range(16)]
    with mock_client(handler) as client:
        results = client.calculate_isolating(items)
    for n, result in enumerate(results):
        if n in bad:
            assert isinstance(result, PerfItemFailed) and result.isolated and result.items == (items[n],)
        else:
            assert result == PerfResult(float(n), 123.45, 9.0, 8.0, 321)
    # at most 1 + 2 * log2(16) requests per bad item; a half known to fail is split without asking
    assert len(requests) <= 1 + 2 * len(bad) * 4
    assert client.stats().isolation_requests == len(requests) - 1


def test_breaker_opens_after_consecutive_failures_and_stays_open():
    calls = []

    def handler(request):
        calls.append(1)
        return httpx.Response(503)

    with mock_client(handler, retries=10, breaker=BreakerPolicy(failures=4)) as client:
        run = client.calculate_many([item(n) for n in range(20)], batch_size=5)
        assert isinstance(run.stopped, CircuitOpen) and "4 consecutive failures" in run.stopped.why
        assert len(calls) == 4
        with pytest.raises(CircuitOpen):
            client.calculate([item()])
    assert len(calls) == 4


def test_token_bucket_spaces_reservations():
    bucket = TokenBucket(rate=20, burst=1)
    waits = [bucket.reserve() for _ in range(5)]
    assert waits[0] == 0
    assert waits[1:] == pytest.approx([0.05, 0.10, 0.15, 0.20], abs=0.01)
    burst = TokenBucket(rate=10, burst=3)
    assert [burst.reserve() for _ in range(3)] == [0, 0, 0] and burst.reserve() == pytest.approx(0.1, abs=0.01)


# ======================================================================================================
# the real stand-in on loopback
# ======================================================================================================


@pytest.fixture(scope="module")
def osu_maps(tmp_path_factory):
    """osu! maps of the shipped set as {id}.osu in a fresh directory: (directory, [(id, md5)])."""
    directory = tmp_path_factory.mktemp("osu")
    maps = []
    for path in sorted(MAPS.rglob("*.osu")):
        content = path.read_bytes()
        beatmap = rosu.Beatmap(bytes=content)
        if beatmap.mode != rosu.GameMode.Osu or beatmap.n_objects < 20:
            continue
        beatmap_id = 100 + len(maps)
        (directory / f"{beatmap_id}.osu").write_bytes(content)
        maps.append((beatmap_id, hashlib.md5(content).hexdigest()))
    assert len(maps) >= 8
    return directory, maps


def standin(osu_dir, **options) -> PerfStandIn:
    return PerfStandIn(StandInConfig(osu_dir=str(osu_dir), engine="rosu", **options))


def items_of(maps, count, mods_cycle=(0, 8, 16, 64)):
    return [
        item(maps[i % len(maps)][0], maps[i % len(maps)][1], mods=mods_cycle[(i // len(maps)) % len(mods_cycle)])
        for i in range(count)
    ]


def test_bisection_isolates_exactly_the_bad_items(osu_maps):
    directory, maps = osu_maps
    items = items_of(maps, 32)
    failing_md5 = maps[2][1]  # fails wherever it appears (several items, several batches)
    items[9] = item(999_999, "f" * 32)  # a beatmap the service does not have
    expected_bad = {i for i, it in enumerate(items) if it.beatmap_md5 in (failing_md5, "f" * 32)}
    engine = engine_named("rosu")
    with standin(directory, fail_md5=frozenset({failing_md5})) as server, PerfClient(server.url, rate=500, concurrency=2) as client:
        run = client.calculate_many(items, batch_size=16)
        stats = server.stats()
    assert set(run.bad_items) == expected_bad
    for i, result in enumerate(run.results):
        if i in expected_bad:
            continue
        it = items[i]
        content = (directory / f"{it.beatmap_id}.osu").read_bytes()
        (raw,) = engine.rate_beatmap(content, it.beatmap_md5, [(0, it.mods)])
        assert result.stars == round_live(raw)
    per_batch = [sum(1 for i in expected_bad if start <= i < start + 16) for start in (0, 16)]
    bound = sum(1 + 2 * bad * math.ceil(math.log2(16)) for bad in per_batch)
    assert stats["calculate_requests"] == run.stats.calculate_requests <= bound
    assert run.stats.isolation_requests == run.stats.calculate_requests - 2
    assert run.stopped is None and run.stats.retries == 0


def test_rate_limit_holds(osu_maps):
    directory, maps = osu_maps
    with standin(directory) as server, PerfClient(server.url, rate=10, concurrency=2) as client:
        started = time.monotonic()
        run = client.calculate_many(items_of(maps, 20), batch_size=1)
        elapsed = time.monotonic() - started
        arrivals = server.stats()["arrivals"]
    assert all(isinstance(r, PerfResult) for r in run.results)
    assert len(arrivals) == 20
    assert arrivals[-1] - arrivals[0] >= 1.85 and elapsed >= 1.85
    # no 1-second window ever holds more than rate x 1 s + 1 requests
    assert all(arrivals[i + 10] - arrivals[i] >= 0.95 for i in range(len(arrivals) - 10))
    assert run.stats.effective_rate <= 10.5


def test_concurrency_limit_holds(osu_maps):
    directory, maps = osu_maps
    with standin(directory, latency=0.15) as server, PerfClient(server.url, rate=1000, concurrency=3) as client:
        run = client.calculate_many(items_of(maps, 24), batch_size=2)
        stats = server.stats()
    assert run.stopped is None and stats["calculate_requests"] == 12
    assert stats["max_in_flight"] == 3  # reached, never exceeded


def test_transient_503s_are_retried_with_backoff(osu_maps):
    directory, maps = osu_maps
    with standin(directory, fail_first=2, fail_status=503) as server, PerfClient(
        server.url, rate=1000, retries=3, backoff=0.2, seed=1
    ) as client:
        results = client.calculate(items_of(maps, 3))
        stats = server.stats()
    assert all(isinstance(r, PerfResult) for r in results)
    assert stats["calculate_requests"] == 3 and stats["status_counts"] == {"200": 1, "503": 2}
    assert client.stats().retries == 2
    gaps = [b - a for a, b in zip(stats["arrivals"], stats["arrivals"][1:])]
    assert gaps[0] >= 0.1 * 0.95 and gaps[1] >= 0.2 * 0.95  # at least half of 0.2 s, then of 0.4 s


def test_retry_after_is_honoured(osu_maps):
    directory, maps = osu_maps
    with standin(directory, fail_first=1, fail_status=503, retry_after=0.5) as server, PerfClient(
        server.url, rate=1000, retries=1, backoff=0.01
    ) as client:
        client.calculate(items_of(maps, 1))
        arrivals = server.stats()["arrivals"]
    assert arrivals[1] - arrivals[0] >= 0.48


def test_breaker_stops_the_run_after_repeated_failures(osu_maps):
    directory, maps = osu_maps
    with standin(directory, fail_first=-1, fail_status=502) as server, PerfClient(
        server.url, rate=1000, retries=2, backoff=0.01, breaker=BreakerPolicy(failures=4)
    ) as client:
        run = client.calculate_many(items_of(maps, 40), batch_size=4)
        stats = server.stats()
    assert run.stopped is not None and "consecutive failures" in run.stopped.why
    assert stats["calculate_requests"] <= 4 + 1  # the other worker may have one attempt in flight
    assert sum(r is None for r in run.results) >= 28  # most batches never asked
    assert all(r is None or isinstance(r, PerfServiceError) for r in run.results)


def test_breaker_stops_the_run_on_slow_answers(osu_maps):
    directory, maps = osu_maps
    policy = BreakerPolicy(failures=5, slow_seconds=0.1, slow_count=3, slow_window=5)
    with standin(directory, latency=0.2) as server, PerfClient(server.url, rate=1000, concurrency=1, breaker=policy) as client:
        run = client.calculate_many(items_of(maps, 20), batch_size=2)
        stats = server.stats()
    assert run.stopped is not None and "slower than 0.1 s" in run.stopped.why
    assert stats["calculate_requests"] == 3
    assert sum(isinstance(r, PerfResult) for r in run.results) == 6  # slow answers still count
    assert run.stats.slow_answers == 3


def test_timeout_is_translated(osu_maps):
    directory, maps = osu_maps
    with standin(directory, latency=0.6) as server, PerfClient(server.url, rate=1000, timeout=0.2, retries=0) as client:
        with pytest.raises(PerfTimeout):
            client.calculate(items_of(maps, 1))


def test_health_and_the_standin_contract_edges(osu_maps):
    directory, maps = osu_maps
    with standin(directory) as server, PerfClient(server.url, rate=1000) as client:
        assert client.health() is True
        both = json.dumps([{**item(*maps[0]).to_json(), "count_300": 1, "count_100": 0, "count_50": 0}])
        response = httpx.post(f"{server.url}/api/v1/calculate", content=both)
        assert response.status_code == 400 and response.text == "you must pass accuracy OR hit results"
        assert httpx.post(f"{server.url}/api/v1/calculate", content=b"{").status_code == 400
        assert httpx.post(f"{server.url}/api/v1/calculate", content=b'{"a": 1}').status_code == 422
        bad = httpx.post(f"{server.url}/api/v1/calculate", json=[item(1, "0" * 32).to_json()])
        assert bad.status_code == 500 and bad.text == "internal server error"
        assert server.stats()["health_requests"] == 1


def test_standin_runs_as_a_module(osu_maps):
    directory, maps = osu_maps
    process = subprocess.Popen(
        [sys.executable, "-m", "jobs.perf_standin", "--port", "0", "--osu-dir", str(directory), "--engine", "rosu",
         "--noise", "0.5", "--noise-fraction", "1", "--fail-md5", maps[1][1]],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        line = process.stdout.readline()
        assert "listening on http://127.0.0.1:" in line, process.stderr.read() if process.poll() is not None else line
        url = line.split("listening on ", 1)[1].split()[0]
        with PerfClient(url, rate=1000) as client:
            assert client.health()
            (good,) = client.calculate([item(*maps[0])])
            with pytest.raises(PerfItemFailed):
                client.calculate([item(*maps[1])])
        content = (Path(directory) / f"{maps[0][0]}.osu").read_bytes()
        (raw,) = engine_named("rosu").rate_beatmap(content, maps[0][1], [(0, 0)])
        assert good.stars == pytest.approx(round_live(raw) + 0.5)
        stats = httpx.get(f"{url}/_stats").json()
        assert stats["calculate_requests"] == 2 and stats["item_failures"] == {"configured_failure": 1}
    finally:
        process.terminate()
        process.wait(timeout=10)
