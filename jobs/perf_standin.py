"""A stand-in for the live performance service: a real HTTP server on loopback speaking its contract.

    python -m jobs.perf_standin --port 0 --osu-dir DIR --engine rosu [--noise 0.6 --noise-fraction 0.3]
        [--seed S] [--fail-md5 MD5 ...] [--latency S] [--latency-per-item S] [--fail-first N
        --fail-status 503 --retry-after S] [--host 127.0.0.1]

prints `perf stand-in listening on http://127.0.0.1:PORT` (port 0 picks a free port) and serves until
interrupted. Used by `sr-backfill compare` tests and for trying the compare command without touching
the live service.

The contract (osuAkatsuki/performance-service `src/api/routes/calculate.rs`, DOMAIN.md §5):
- `POST /api/v1/calculate`, body a JSON array of `{beatmap_id, beatmap_md5, mode, mods, max_combo,
  accuracy | count_300+count_100+count_50, miss_count}`; answer a JSON array in the same order of
  `{stars, pp, ar, od, max_combo}`, stars and pp rounded to 2 dp like live (sr.rounding.round_live),
  a NaN/infinite rating answered as 0.0 as live does;
- items are computed one at a time; the first item that fails ends the request with HTTP 500 and the
  body `internal server error` (as live; the stand-in adds an `x-standin-reason` header for humans);
- an item with both or neither of accuracy and hit counts: HTTP 400 `you must pass accuracy OR hit
  results`; a body that is not JSON: 400; JSON of the wrong shape: 422 (axum's rejections);
- `GET /_health`: 200.
Extra, stand-in only: `GET /_stats` (JSON counters, see `PerfStandIn.stats`).

An item fails when: its md5 is configured to fail (`--fail-md5`); `{beatmap_id}.osu` is missing from
the .osu directory, its md5 is not the item's beatmap_md5, or it has no `osu file format v` header
(sr.store.OsuStore.load; live would re-download the current version of an updated map from
beatmaps-service, which the stand-in does not have); the engine cannot parse it, convert it (a
taiko/catch/mania map in another mode) or rate it. Stars come from an sr engine (`--engine`, default
`live`); pp, ar, od and max_combo are informational, from rosu-pp-py 2.0.1's vanilla performance path.

Load-shaping options for tests: `--latency` seconds per request plus `--latency-per-item` seconds per
item; `--fail-first N` answers the first N calculate requests with `--fail-status` (default 503,
optionally with a Retry-After header), -1 for every request. Noise: a seeded, deterministic share
`--noise-fraction` of (beatmap_md5, mode, mods) keys get `--noise` stars added (negative allowed; with
`--noise-symmetric` half of them get it subtracted), so a key's answer never changes between retries.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import rosu_pp_py as rosu

from sr.engines import engine_named
from sr.errors import NonFiniteRating, RatingError
from sr.rounding import round_live
from sr.store import OsuStore

CALCULATE_PATH = "/api/v1/calculate"
_GAME_MODES = (rosu.GameMode.Osu, rosu.GameMode.Taiko, rosu.GameMode.Catch, rosu.GameMode.Mania)
_REQUIRED = ("beatmap_id", "beatmap_md5", "mode", "mods", "max_combo", "miss_count")


@dataclass(frozen=True, slots=True)
class StandInConfig:
    """How the stand-in answers.

    osu_dir:          directory (or pyarrow.fs URI) of `{beatmap_id}.osu` files.
    engine:           sr engine name for stars (sr.engine.engine_named).
    noise:            stars added to a noisy key's answer (after rounding; result clamped at 0).
    noise_fraction:   share of keys that are noisy, 0-1, chosen by a seeded hash of the key.
    noise_symmetric:  half of the noisy keys get -noise instead of +noise.
    seed:             seeds the noise choice.
    fail_md5:         beatmap_md5s whose items always fail (HTTP 500).
    latency:          seconds slept per calculate request; latency_per_item: plus seconds per item.
    fail_first:       answer the first N calculate requests with `fail_status` (-1: all of them).
    fail_status:      HTTP status for those (default 503); retry_after: Retry-After header seconds.
    """

    osu_dir: str
    engine: str = "live"
    noise: float = 0.0
    noise_fraction: float = 0.3
    noise_symmetric: bool = False
    seed: int = 0
    fail_md5: frozenset[str] = field(default_factory=frozenset)
    latency: float = 0.0
    latency_per_item: float = 0.0
    fail_first: int = 0
    fail_status: int = 503
    retry_after: float | None = None


def noise_for(config: StandInConfig, beatmap_md5: str, mode: int, mods: int) -> float:
    """The stars the stand-in adds to this key's answer: 0.0, +noise or (symmetric) -noise.

    Deterministic in (config.seed, beatmap_md5, mode, mods): a key is noisy when the first 8 bytes of
    blake2b of those, as a fraction of 2**64, are below noise_fraction.
    """
    if not config.noise or config.noise_fraction <= 0:
        return 0.0
    digest = hashlib.blake2b(f"{config.seed}:{beatmap_md5.lower()}:{mode}:{mods}".encode(), digest_size=9).digest()
    if int.from_bytes(digest[:8], "big") / 2**64 >= config.noise_fraction:
        return 0.0
    if config.noise_symmetric and digest[8] & 1:
        return -config.noise
    return config.noise


class _ItemFailed(Exception):
    """One item cannot be answered (the whole request gets a 500)."""


class _BadRequest(Exception):
    """The request body breaks the contract: (status, body)."""

    def __init__(self, status: int, body: str) -> None:
        self.status = status
        self.body = body
        super().__init__(f"{status} {body}")


class PerfStandIn:
    """The stand-in server. `start()` serves in a background thread; `url` is `http://host:port`.

    Thread-safe counters for tests: see `stats()`. Use as a context manager (starts and closes).
    """

    def __init__(self, config: StandInConfig, host: str = "127.0.0.1", port: int = 0) -> None:
        self.config = config
        self.engine = engine_named(config.engine)
        self.store = OsuStore(config.osu_dir)
        self._engine_lock = threading.Lock()  # live computes items one at a time
        self._lock = threading.Lock()
        self._started = time.monotonic()
        self._requests = 0
        self._health_requests = 0
        self._calculate_requests = 0
        self._items = 0
        self._statuses: dict[int, int] = {}
        self._arrivals: list[float] = []
        self._in_flight = 0
        self._max_in_flight = 0
        self._failures: dict[str, int] = {}
        self._server = ThreadingHTTPServer((host, port), _handler_for(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:41234."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> PerfStandIn:
        """Serve in a daemon thread; returns self."""
        self._thread = threading.Thread(target=self._server.serve_forever, name="perf-standin", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until `close()` (from another thread) or an interrupt."""
        self._server.serve_forever()

    def close(self) -> None:
        """Stop serving and close the listening socket."""
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> PerfStandIn:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.close()

    def stats(self) -> dict:
        """Counters since start (also served as JSON at GET /_stats):

        requests (all HTTP requests), health_requests, calculate_requests, items (in calculate
        requests), status_counts (status as string -> calculate answers), arrivals (arrival time of
        each calculate request, seconds since the stand-in started, in arrival order), max_in_flight
        and in_flight (calculate requests being served at once), item_failures (reason -> items).
        """
        with self._lock:
            return {
                "requests": self._requests,
                "health_requests": self._health_requests,
                "calculate_requests": self._calculate_requests,
                "items": self._items,
                "status_counts": {str(k): v for k, v in sorted(self._statuses.items())},
                "arrivals": list(self._arrivals),
                "max_in_flight": self._max_in_flight,
                "in_flight": self._in_flight,
                "item_failures": dict(self._failures),
            }

    # --- the contract -------------------------------------------------------------------------------

    def calculate(self, body: bytes) -> tuple[int, bytes, dict]:
        """Answer one calculate request body: (status, response body, extra headers)."""
        with self._lock:
            index = self._calculate_requests
            self._calculate_requests += 1
            self._arrivals.append(time.monotonic() - self._started)
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
        try:
            status, payload, headers = self._answer(index, body)
        finally:
            with self._lock:
                self._in_flight -= 1
        with self._lock:
            self._statuses[status] = self._statuses.get(status, 0) + 1
        return status, payload, headers

    def _answer(self, index: int, body: bytes) -> tuple[int, bytes, dict]:
        config = self.config
        try:
            items = _read_items(body)
        except _BadRequest as exc:
            return exc.status, exc.body.encode(), {}
        with self._lock:
            self._items += len(items)
        delay = config.latency + config.latency_per_item * len(items)
        if delay > 0:
            time.sleep(delay)
        if config.fail_first < 0 or index < config.fail_first:
            headers = {"retry-after": f"{config.retry_after:g}"} if config.retry_after is not None else {}
            return config.fail_status, b"service unavailable (stand-in)", headers
        answers = []
        for item in items:
            try:
                answers.append(self.rate_item(item))
            except _ItemFailed as exc:
                reason = str(exc)
                with self._lock:
                    key = reason.split(":", 1)[0]
                    self._failures[key] = self._failures.get(key, 0) + 1
                return 500, b"internal server error", {"x-standin-reason": reason[:200]}
        return 200, json.dumps(answers).encode(), {"content-type": "application/json"}

    def rate_item(self, item: dict) -> dict:
        """One item's answer {stars, pp, ar, od, max_combo}. Raises _ItemFailed (reason text)."""
        md5 = str(item["beatmap_md5"]).lower()
        beatmap_id, mode, mods = int(item["beatmap_id"]), int(item["mode"]), int(item["mods"])
        if md5 in self.config.fail_md5:
            raise _ItemFailed(f"configured_failure: beatmap {md5}")
        if mode not in (0, 1, 2, 3):
            raise _ItemFailed(f"bad_mode: {mode}")
        try:
            content = self.store.load(beatmap_id, md5)
        except RatingError as exc:
            raise _ItemFailed(f"{exc.reason}: beatmap {beatmap_id}") from exc
        with self._engine_lock:
            (raw,) = self.engine.rate_beatmap(content, md5, [(mode, mods)])
            if isinstance(raw, NonFiniteRating):
                raw = float("nan")  # live answers 0.0 for NaN/inf stars
            elif isinstance(raw, RatingError):
                raise _ItemFailed(f"{raw.reason}: beatmap {beatmap_id} mode {mode} mods {mods}")
            pp, ar, od, max_combo = _performance(content, item, mode, mods)
        stars = round_live(raw)
        delta = noise_for(self.config, md5, mode, mods)
        if delta:
            stars = max(0.0, round(stars + delta, 2))
        return {"stars": stars, "pp": pp, "ar": ar, "od": od, "max_combo": max_combo}

    def _count_request(self, health: bool = False) -> None:
        with self._lock:
            self._requests += 1
            self._health_requests += int(health)


def _read_items(body: bytes) -> list[dict]:
    """The request items, checked like the live service's JSON extractor and accuracy rule."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _BadRequest(400, f"Failed to parse the request body as JSON: {exc}") from exc
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise _BadRequest(422, "Failed to deserialize the JSON body into the target type: expected a sequence of objects")
    for item in data:
        for name in _REQUIRED:
            value = item.get(name)
            expected = str if name == "beatmap_md5" else int
            if isinstance(value, bool) or not isinstance(value, expected):
                raise _BadRequest(422, f"Failed to deserialize the JSON body into the target type: {name}")
        counts = [item.get(name) for name in ("count_300", "count_100", "count_50")]
        has_counts = all(isinstance(c, int) and not isinstance(c, bool) for c in counts)
        has_accuracy = isinstance(item.get("accuracy"), (int, float)) and not isinstance(item.get("accuracy"), bool)
        if has_accuracy == has_counts:
            raise _BadRequest(400, "you must pass accuracy OR hit results")
    return data


def _performance(content: bytes, item: dict, mode: int, mods: int) -> tuple[float, float, float, int]:
    """(pp 2 dp, ar, od, max_combo) from rosu-pp-py's vanilla path; zeros if it cannot compute them."""
    try:
        beatmap = rosu.Beatmap(bytes=content)
        beatmap.convert(_GAME_MODES[mode], None)
        kwargs = {"mods": mods, "lazer": False, "combo": max(0, int(item["max_combo"])), "misses": max(0, int(item["miss_count"]))}
        if item.get("accuracy") is not None:
            kwargs["accuracy"] = float(item["accuracy"])
        else:
            kwargs.update(n300=int(item["count_300"]), n100=int(item["count_100"]), n50=int(item["count_50"]))
        attributes = rosu.Performance(**kwargs).calculate(beatmap)
        difficulty = attributes.difficulty
        ar = float(difficulty.ar or 0.0) if mode == 0 else 0.0
        od = float(difficulty.od or 0.0) if mode == 0 else 0.0
        return round_live(attributes.pp), ar, od, int(difficulty.max_combo)
    except Exception:  # informational fields only; stars decide the comparison
        return 0.0, 0.0, 0.0, 0


def _handler_for(standin: PerfStandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        """HTTP/1.1 keep-alive handler: GET /_health, GET /_stats, POST /api/v1/calculate."""

        protocol_version = "HTTP/1.1"
        server_version = "perf-standin/1"

        def _reply(self, status: int, body: bytes, headers: dict | None = None, content_type: str = "text/plain") -> None:
            self.send_response(status)
            headers = dict(headers or {})
            self.send_header("content-type", headers.pop("content-type", content_type))
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            path = self.path.split("?", 1)[0]
            standin._count_request(health=path == "/_health")
            if path == "/_health":
                self._reply(200, b"")
            elif path == "/_stats":
                self._reply(200, json.dumps(standin.stats()).encode(), content_type="application/json")
            else:
                self._reply(404, b"not found")

        def do_POST(self) -> None:  # noqa: N802
            standin._count_request()
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            if self.path.split("?", 1)[0] != CALCULATE_PATH:
                self._reply(404, b"not found")
                return
            status, payload, headers = standin.calculate(body)
            self._reply(status, payload, headers)

        def log_message(self, format: str, *args) -> None:  # quiet: tests and demos read stdout
            return

    return Handler


def build_parser() -> argparse.ArgumentParser:
    """The stand-in's command line."""
    parser = argparse.ArgumentParser(prog="python -m jobs.perf_standin", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    parser.add_argument("--port", type=int, default=0, help="port (0: a free one, printed at start)")
    parser.add_argument("--osu-dir", required=True, help="directory (or pyarrow.fs URI) of {beatmap_id}.osu files")
    parser.add_argument("--engine", default="live", help="sr engine for stars (default live)")
    parser.add_argument("--noise", type=float, default=0.0, help="stars added to noisy keys (default 0)")
    parser.add_argument("--noise-fraction", type=float, default=0.3, help="share of keys that are noisy (default 0.3)")
    parser.add_argument("--noise-symmetric", action="store_true", help="half of the noisy keys get -noise")
    parser.add_argument("--seed", type=int, default=0, help="seed of the noise choice")
    parser.add_argument("--fail-md5", nargs="+", action="extend", default=[], metavar="MD5", help="md5s that always fail (500)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every calculate request")
    parser.add_argument("--latency-per-item", type=float, default=0.0, help="seconds added per item")
    parser.add_argument("--fail-first", type=int, default=0, help="answer the first N calculate requests with --fail-status (-1: all)")
    parser.add_argument("--fail-status", type=int, default=503, help="status for --fail-first (default 503)")
    parser.add_argument("--retry-after", type=float, default=None, help="Retry-After seconds sent with --fail-status")
    return parser


def config_from(args: argparse.Namespace) -> StandInConfig:
    """A StandInConfig from parsed arguments."""
    return StandInConfig(
        osu_dir=args.osu_dir,
        engine=args.engine,
        noise=args.noise,
        noise_fraction=args.noise_fraction,
        noise_symmetric=args.noise_symmetric,
        seed=args.seed,
        fail_md5=frozenset(md5.lower() for md5 in args.fail_md5),
        latency=args.latency,
        latency_per_item=args.latency_per_item,
        fail_first=args.fail_first,
        fail_status=args.fail_status,
        retry_after=args.retry_after,
    )


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGINT/SIGTERM. Prints the listening URL first (flushed). Returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        standin = PerfStandIn(config_from(args), host=args.host, port=args.port)
    except (ValueError, OSError) as exc:
        print(f"perf stand-in: {exc}", file=sys.stderr)
        return 2

    def stop(signum, frame) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    print(f"perf stand-in listening on {standin.url} (engine {standin.engine.name}, osu dir {args.osu_dir})", flush=True)
    try:
        standin.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        standin._server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
