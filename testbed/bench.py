"""The benchmark behind `sr-backfill bench` (issue 5; jobs/bench.py parses the arguments and prints):
`measure(BenchSettings(...))` builds or reuses a database, runs the whole job on it and returns the
figures (the steps are in jobs/bench.py's docstring). Its pieces:

- `create_database` / `drop_database` / `score_rows`: the throwaway MariaDB database and the rows it
  holds; `rollback(db_url, run_id, rollback_id)`: an applied cold run undone before the warm one.
- `run_isolated(config)`: one `run_backfill` in a fresh spawned process (its own local Ray, unless
  `config.ray_address` names one), so that the driver's peak RSS is the run's alone and the Ray
  workers (raters, shard tasks) are new processes whose peak RSS is this run's only.
- `read_seconds(db_url, shard_rows, read_mode)`: the time to just read every score row in one process,
  through the run's own read path (the table scan's id ranges joined to the lookups, or shard
  by shard through the userid index, cluster.db.read_shard_scores): the I/O part of the floor.
- `sample_keys` / `key_costs`: the measured cost of one SR calculation, per engine route, on a
  sample of the run's keys, with each map's file loaded and parsed once per mode as the raters do.
- `naive_rate(db_url, osu_dir, n)`: rate a sample of scores one by one (load, parse, rate each score
  on its own, as a per-score call to a performance service would).
- `ray_cluster(nodes, cpus)`: a Ray cluster of a 0-CPU head and `nodes` worker nodes on this host
  (ray.cluster_utils.Cluster) with explicit free ports.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import random
import shutil
import socket
import statistics
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import pyarrow as pa
import sqlalchemy as sa

from cluster import db
from cluster.errors import ConfigError
from cluster.pipeline import BackfillConfig
from cluster.schema import SCORE_TABLES, beatmaps
from cluster.scope import Scope
from cluster.shards import plan_scan, plan_shards
from sr.cache import SRCache
from sr.engines import DEFAULT_ENGINE, engine_named
from sr.errors import RatingError
from sr.mods import AP, RX
from sr.store import OsuStore

REPO = Path(__file__).resolve().parents[1]
MAPS = REPO / "data" / "maps"
SERVER_ENV = "SRB_BENCH_MYSQL"
DEFAULT_SERVER = "mysql+pymysql://root@127.0.0.1:3306"
# Production shape: 6.3M scores over 20k maps and 100k users.
SCORES_PER_MAP = 315
SCORES_PER_USER = 63
ROUTES = ("osu! vanilla", "convert", "taiko", "catch", "mania", "relax port", "autopilot rewrite")
_NATIVE = {1: "taiko", 2: "catch", 3: "mania"}


def route_of(mode_vn: int, mods: int, native_mode: int) -> str:
    """The engine route (sr.live) of a key: the relax port and the autopilot rewrite on osu! (relax
    first, as live), else rosu-pp: osu! vanilla, a convert (an osu! map in another mode), or native
    taiko/catch/mania (relax taiko/catch/mania included: rosu-pp rates them)."""
    if mode_vn == 0 and mods & RX:
        return "relax port"
    if mode_vn == 0 and mods & AP:
        return "autopilot rewrite"
    if mode_vn == 0:
        return "osu! vanilla"
    if native_mode == 0:
        return "convert"
    return _NATIVE[mode_vn]


# --- isolated runs -------------------------------------------------------------------------------------

def die_with_parent(parent_pid: int) -> None:
    """Make this process get SIGTERM when the process `parent_pid` that started it dies (Linux
    prctl PR_SET_PDEATHSIG; elsewhere a no-op), and exit now if it is gone already.

    A measured run works in a spawned child; without this, killing `sr-backfill bench` left the child
    running its backfill (and writing, with `--apply`) until it finished. The Ray processes a child's
    ray.init starts share its fate the same way (Ray's kernel fate sharing), so they stop with it."""
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGTERM), 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


def _run_in_child(config, cpus=None, parent_pid: int | None = None) -> dict:
    # imported here, in the child: a clean driver process
    from cluster.pipeline import run_backfill

    if parent_pid is not None:
        die_with_parent(parent_pid)
    if cpus:
        os.sched_setaffinity(0, cpus)  # Ray's processes, started from here, inherit it

    started = time.perf_counter()
    summary = run_backfill(config)
    data = summary.to_dict()
    data["process_wall_s"] = time.perf_counter() - started
    return data


def run_isolated(config, cpus: set[int] | None = None) -> dict:
    """Run `run_backfill(config)` (cluster.pipeline.BackfillConfig) in a new spawned process and return
    its RunSummary as a dict, plus `process_wall_s` (seconds around the call in the child). `cpus`: the
    CPUs the run (and the Ray instance it starts) may use (Linux; None: any). Raises what the run raises."""
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_run_in_child, config, cpus, os.getpid()).result()


def own_peak_rss_mb() -> float:
    """This process's own peak resident memory in MB: VmHWM of /proc/self/status (Linux). Unlike
    getrusage's ru_maxrss, it is not inherited from the parent across fork and exec (a child of a large
    process would report the parent's peak). Falls back to ru_maxrss elsewhere."""
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _verify_in_child(db_url: str, run_id: str, parent_pid: int | None = None) -> dict:
    from cluster.verify import verify  # imported here, in the child: its peak RSS is verify's alone

    if parent_pid is not None:
        die_with_parent(parent_pid)
    started = time.perf_counter()
    engine = db.connect(db_url)
    try:
        report = verify(engine, run_id)
        with engine.connect() as conn:
            rows = conn.execute(sa.select(sa.func.count()).select_from(sa.table("users_achievements"))).scalar_one()
            ledger_rows = conn.execute(sa.text("SELECT COUNT(*) FROM srb_ledger")).scalar_one()
    finally:
        engine.dispose()
    return {"run_id": run_id, "seconds": round(time.perf_counter() - started, 3),
            "peak_rss_mb": round(own_peak_rss_mb(), 1),
            "users_achievements_rows": int(rows), "ledger_rows": int(ledger_rows),
            "grants_checked": report.unsupported["checked"], "problems": report.problems}


def verify_isolated(db_url: str, run_id: str) -> dict:
    """`sr-backfill verify --run-id RUN_ID` (cluster.verify.verify) in a new spawned process: its wall
    seconds and peak RSS (MB, the process's own), the rows of users_achievements and of the ledger it
    examined, the grants it checked and the problems it found."""
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_verify_in_child, db_url, run_id, os.getpid()).result()


def first_user(db_url: str) -> int | None:
    """The smallest userid with a row in the score tables (None if they are empty)."""
    engine = db.connect(db_url)
    try:
        with engine.connect() as conn:
            ids = [conn.execute(sa.select(sa.func.min(db.TABLES_BY_NAME[name].c.userid))).scalar_one()
                   for name in SCORE_TABLES]
    finally:
        engine.dispose()
    ids = [int(i) for i in ids if i is not None]
    return min(ids) if ids else None


# --- the floor: reading ------------------------------------------------------------------------------------

def read_seconds(
    db_url: str, shard_rows: int, read_mode: str = "scan", scan_rows: int = 250_000,
    tables: tuple[str, ...] = SCORE_TABLES,
) -> tuple[float, int]:
    """Seconds to read every score row of `tables` (joined to beatmaps and users, as the run reads
    them) in this one process, and the rows read: range by range (id ranges of `scan_rows`) for
    read_mode "scan", shard by shard (shards of `shard_rows`) for "users". Planning is not timed."""
    engine = db.connect(db_url)
    try:
        if read_mode == "scan":
            ranges = plan_scan(db.id_bounds(engine, tables), scan_rows)
            started = time.perf_counter()
            beatmap_rows, user_rows = db.read_lookups(engine)
            rows = sum(
                db.join_lookups(db.read_range_rows(engine, r.table, r.id_lo, r.id_hi), beatmap_rows, user_rows,
                                engine.dialect.name).num_rows
                for r in ranges
            )
            return time.perf_counter() - started, rows
        shards = plan_shards(db.count_rows_by_user(engine, tables), shard_rows)
        started = time.perf_counter()
        rows = 0
        for shard in shards:
            _, read = db.read_shard_scores(engine, shard.user_lo, shard.user_hi, tables)
            rows += sum(read.values())
        return time.perf_counter() - started, rows
    finally:
        engine.dispose()


# --- the floor: one calculation ------------------------------------------------------------------------------

@dataclass(slots=True)
class KeyCosts:
    """Measured seconds per SR calculation on a sample of keys (live engine, this process).

    per_key:   seconds per key with each map loaded (read + md5 check) once and parsed once per mode
               for all its sampled keys, as the raters do (the map's time / its keys, given to each key).
    by_route:  route -> {"keys", "maps", "median_s", "mean_s"}: seconds per key when each route's keys
               of a map are timed on their own (load + parse + the route's derivation + stars).
    """

    per_key: list[float] = field(default_factory=list)
    by_route: dict[str, dict] = field(default_factory=dict)

    @property
    def median_s(self) -> float:
        return statistics.median(self.per_key) if self.per_key else 0.0

    @property
    def mean_s(self) -> float:
        return statistics.fmean(self.per_key) if self.per_key else 0.0


def sample_keys(db_url: str, cache_location: str, engine_name: str, max_keys: int = 3000, seed: int = 7) -> pa.Table:
    """A sample of the keys a run rated (read back from its SR cache; rated keys only), whole maps at
    a time: maps are drawn at random until `max_keys` keys. Columns: beatmap_md5, beatmap_id,
    native_mode, mode_vn, mods."""
    engine = engine_named(engine_name)
    cached = SRCache(cache_location, engine.name, engine.version).load().to_pylist()
    by_map: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for row in cached:
        if row["skip_reason"] is None:
            by_map[row["beatmap_md5"]].append((int(row["mode_vn"]), int(row["mods"])))
    md5s = sorted(by_map)
    random.Random(seed).shuffle(md5s)
    chosen, count = [], 0
    for md5 in md5s:
        if count >= max_keys:
            break
        chosen.append(md5)
        count += len(by_map[md5])
    connection = db.connect(db_url)
    try:
        with connection.connect() as conn:
            rows = conn.execute(
                sa.select(beatmaps.c.beatmap_md5, beatmaps.c.beatmap_id, beatmaps.c.mode)
                .where(beatmaps.c.beatmap_md5.in_(chosen))
            ).all()
    finally:
        connection.dispose()
    out = defaultdict(list)
    for md5, beatmap_id, native in rows:
        for mode_vn, mods in by_map[md5]:
            for name, value in (("beatmap_md5", md5), ("beatmap_id", int(beatmap_id)), ("native_mode", int(native)),
                                ("mode_vn", mode_vn), ("mods", mods)):
                out[name].append(value)
    return pa.table(out) if out else pa.table({n: [] for n in ("beatmap_md5", "beatmap_id", "native_mode", "mode_vn", "mods")})


def key_costs(keys: pa.Table, osu_dir: str, engine_name: str) -> KeyCosts:
    """Time the SR calculation of `keys` (sample_keys' columns) with a fresh engine in this process
    (warmed up first, like a rater). See KeyCosts."""
    engine = engine_named(engine_name)
    engine.warmup()
    store = OsuStore(osu_dir)
    maps: dict[tuple[str, int, int], list[tuple[int, int]]] = defaultdict(list)
    for row in keys.to_pylist():
        maps[(row["beatmap_md5"], row["beatmap_id"], row["native_mode"])].append((row["mode_vn"], row["mods"]))
    costs = KeyCosts()
    route_costs: dict[str, list[float]] = defaultdict(list)
    route_maps: dict[str, int] = defaultdict(int)
    for (md5, beatmap_id, native), requests in maps.items():
        started = time.perf_counter()
        content = store.load(beatmap_id, md5)
        engine.rate_beatmap(content, md5, requests)
        costs.per_key.extend([(time.perf_counter() - started) / len(requests)] * len(requests))
        by_route: dict[str, list[tuple[int, int]]] = defaultdict(list)
        for mode_vn, mods in requests:
            by_route[route_of(mode_vn, mods, native)].append((mode_vn, mods))
        for route, part in by_route.items():
            started = time.perf_counter()
            content = store.load(beatmap_id, md5)
            results = engine.rate_beatmap(content, md5, part)
            seconds = (time.perf_counter() - started) / len(part)
            route_costs[route].extend([seconds] * sum(not isinstance(r, RatingError) for r in results))
            route_maps[route] += 1
    costs.by_route = {
        route: {"keys": len(route_costs[route]), "maps": route_maps[route],
                "median_s": statistics.median(route_costs[route]), "mean_s": statistics.fmean(route_costs[route])}
        for route in ROUTES if route_costs.get(route)
    }
    return costs


# --- the naive way ----------------------------------------------------------------------------------------

@dataclass(slots=True)
class NaiveResult:
    """Rating `scores` score rows one by one: `seconds` in total (one process), `errors` of them with
    no rating (missing or stale file, impossible convert, ...)."""

    scores: int
    seconds: float
    errors: int

    @property
    def seconds_per_score(self) -> float:
        return self.seconds / self.scores if self.scores else 0.0


def naive_rate(db_url: str, osu_dir: str, scores: int, engine_name: str, seed: int = 7) -> NaiveResult:
    """Rate a random sample of `scores` score rows (over the score tables, on maps with a beatmaps row,
    drawn by id in proportion to the tables' sizes) the naive way: for every score on its own, load
    its .osu file, parse it and rate (mode, mods) with a fresh per-call state, as a per-score service
    call would. Selecting the sample is not timed."""
    engine = engine_named(engine_name)
    engine.warmup()
    store = OsuStore(osu_dir)
    connection = db.connect(db_url)
    rng = random.Random(seed)
    picked: list[tuple[str, int, int, int]] = []
    try:
        with connection.connect() as conn:
            sizes = {}
            for name in SCORE_TABLES:
                table = db.TABLES_BY_NAME[name]
                lo, hi = conn.execute(sa.select(sa.func.min(table.c.id), sa.func.max(table.c.id))).one()
                sizes[name] = (int(lo or 0), int(hi or 0), int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()))
            total = sum(n for _, _, n in sizes.values()) or 1
            for name, (lo, hi, n) in sizes.items():
                want = round(scores * n / total)
                if not want or hi < lo:
                    continue
                table = db.TABLES_BY_NAME[name]
                ids = rng.sample(range(lo, hi + 1), min(hi - lo + 1, 4 * want))
                query = (
                    sa.select(table.c.beatmap_md5, beatmaps.c.beatmap_id, table.c.play_mode, table.c.mods)
                    .select_from(table.join(beatmaps, beatmaps.c.beatmap_md5 == table.c.beatmap_md5))
                    .where(table.c.id.in_(ids)).limit(want)
                )
                picked.extend((md5, int(bid), int(mode), int(mods)) for md5, bid, mode, mods in conn.execute(query))
    finally:
        connection.dispose()
    errors = 0
    started = time.perf_counter()
    for md5, beatmap_id, mode, mods in picked:
        try:
            content = store.load(beatmap_id, md5)
            result = engine.rate_beatmap(content, md5, [(mode, mods)])[0]
        except RatingError:
            errors += 1
            continue
        errors += isinstance(result, RatingError)
    return NaiveResult(len(picked), time.perf_counter() - started, errors)


# --- a multi-node Ray cluster on one host ------------------------------------------------------------------

def free_ports(count: int) -> list[int]:
    """`count` distinct TCP ports free on this host right now (bound to port 0 and released)."""
    sockets, ports = [], []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in sockets:
            s.close()
    return ports


def _node_ports() -> dict:
    manager, objects, agent, metrics, runtime_env, metrics_agent = free_ports(6)
    return {"node_manager_port": manager, "object_manager_port": objects, "dashboard_agent_listen_port": agent,
            "metrics_export_port": metrics, "runtime_env_agent_port": runtime_env, "metrics_agent_port": metrics_agent}


@contextlib.contextmanager
def ray_cluster(nodes: int, cpus_per_node: int, object_store_mb: int = 512) -> Iterator[str]:
    """Start a Ray cluster on this host: a head with 0 CPUs and `nodes` worker nodes of
    `cpus_per_node` CPUs and `object_store_mb` MB of object store each, every service on an explicit
    free port (other Ray instances may run here). Yields its address (for BackfillConfig.ray_address);
    shuts it down on exit."""
    with ray_cluster_nodes(nodes, cpus_per_node, object_store_mb) as cluster:
        yield cluster.address


@contextlib.contextmanager
def ray_cluster_nodes(nodes: int, cpus_per_node: int, object_store_mb: int = 512, resources: dict | None = None):
    """Like `ray_cluster`, but yields the ray.cluster_utils.Cluster itself (fault tests remove nodes).
    `resources`: custom resources of every node but the head (a test keeps an actor off the head)."""
    from ray.cluster_utils import Cluster

    head = {"num_cpus": 0, "gcs_server_port": free_ports(1)[0], "include_dashboard": False,
            "object_store_memory": object_store_mb << 20, **_node_ports()}
    cluster = Cluster(initialize_head=True, connect=False, head_node_args=head)
    try:
        for _ in range(nodes):
            cluster.add_node(num_cpus=cpus_per_node, object_store_memory=object_store_mb << 20, resources=resources or {},
                             **_node_ports())
        cluster.wait_for_nodes()
        yield cluster
    finally:
        cluster.shutdown()


# --- the benchmark ---------------------------------------------------------------------------------------
# testbed.scale and cluster.rollback are imported where used: run_isolated's spawned child imports this
# module, and loads no more than a run does.


@dataclass(frozen=True, slots=True)
class BenchSettings:
    """What `measure` does (the options of `sr-backfill bench`, jobs/bench.py).

    scores, maps, users, seed: the synthetic database to build (maps: scores / SCORES_PER_MAP within
      100-20,000, users: scores / SCORES_PER_USER, at least 100, when None);
    db: a database URL (built into if its score tables are empty, else benchmarked as it is; None: a
      throwaway database on $SRB_BENCH_MYSQL or DEFAULT_SERVER, dropped after); osu_dir: its .osu files;
    keep: keep the throwaway database and the work directory; work_dir: for the SR caches, grants
      files and temporary .osu files (None: a temporary directory, removed after);
    workers, shard_rows, engine, read, apply: the runs' settings (sr-backfill run); writers: the applied
      run's writer actors (None: sr-backfill run's default, one per node, at least 2);
    naive_scores, key_sample: scores rated the naive way, keys timed for the floor;
    nodes: worker-node counts of one-host Ray clusters to run cold on; warm: re-run on the filled cache.
    """

    scores: int = 200_000
    maps: int | None = None
    users: int | None = None
    seed: int = 20220623
    db: str | None = None
    osu_dir: Path | None = None
    keep: bool = False
    work_dir: Path | None = None
    workers: int = 1
    shard_rows: int = 100_000
    engine: str = DEFAULT_ENGINE
    read: str = "auto"
    apply: bool = False
    naive_scores: int = 2000
    key_sample: int = 3000
    nodes: tuple[int, ...] = ()
    warm: bool = True
    writers: int | None = None


def _server(url: str, statement: str) -> None:
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(statement)
    finally:
        engine.dispose()


def create_database(server: str, name: str) -> str:
    """Create the empty database `name` (latin1, as production) on the server at `server` (a URL
    without a database); returns its URL."""
    _server(server, f"CREATE DATABASE `{name}` CHARACTER SET latin1")
    return f"{server}/{name}"


def drop_database(server: str, name: str) -> None:
    """Drop the database `name` on the server at `server`, if it exists."""
    _server(server, f"DROP DATABASE IF EXISTS `{name}`")


def score_rows(url: str) -> int | None:
    """Rows over the score tables, or None when they are missing."""
    engine = sa.create_engine(url)
    try:
        present = set(sa.inspect(engine).get_table_names())
        if not set(SCORE_TABLES) <= present:
            return None
        with engine.connect() as conn:
            return sum(conn.execute(sa.text(f"SELECT COUNT(*) FROM {name}")).scalar_one() for name in SCORE_TABLES)
    finally:
        engine.dispose()


def rollback(db_url: str, run_id: str, rollback_id: str) -> float:
    """Roll back the applied run `run_id` (cluster.rollback, recorded as `rollback_id`); its seconds."""
    from cluster.rollback import rollback_run

    engine = db.connect(db_url)
    try:
        started = time.perf_counter()
        rollback_run(engine, run_id, apply=True, rollback_id=rollback_id)
        return time.perf_counter() - started
    finally:
        engine.dispose()


def _stage_seconds(run: dict) -> dict:
    """Seconds per stage of a run: read (the scan tasks' reads and splits plus the shard tasks' own
    reads) / prepare / evaluate are summed over the tasks, sr over
    the raters (task-seconds, so they may exceed the wall on several CPUs); plan, shards (the wall of
    the shard phase, writes excluded), write (the driver's writes) and total are wall seconds, as are
    the shard phase's parts: Ray start, scan (reading the waves), rate (their keys), evaluate."""
    s = run["seconds"]
    return {"plan_s": s.get("plan", 0.0), "read_s": round(s.get("scan", 0.0) + s.get("read", 0.0), 3),
            "sr_s": s.get("rate", 0.0),
            "evaluate_s": round(s.get("prepare", 0.0) + s.get("evaluate", 0.0), 3), "write_s": s.get("write", 0.0),
            "shards_wall_s": s.get("shards", 0.0), "total_s": s.get("total", 0.0),
            "ray_start_wall_s": s.get("ray_start", 0.0), "scan_wall_s": s.get("scan_wall", 0.0),
            "rate_wall_s": s.get("rate_wall", 0.0), "evaluate_wall_s": s.get("evaluate_wall", 0.0)}


def _run_figures(run: dict) -> dict:
    scores = sum(run["rows_read"].values())
    wall = run["seconds"]["total"]
    return {"scores": scores, "wall_s": wall, "scores_per_s": round(scores / wall, 1) if wall else 0.0,
            "unique_keys": run["sr_keys"], "sr_calcs": run["sr_calculations"], "sr_cache_hits": run["sr_cache_hits"],
            "sr_errors": sum(run["sr_errors"].values()), "grants": run["grants"].get("total", 0),
            "grants_written": run["grants_written"], "max_rss_mb": run["max_rss_mb"], "workers": run["workers"],
            "shards": run["shards"], "read_mode": run.get("read_mode", ""), "stages": _stage_seconds(run),
            "process_wall_s": round(run["process_wall_s"], 3)}


def measure(settings: BenchSettings, say: Callable[[str], None] = print) -> dict:
    """Run the benchmark `settings` describe (steps: jobs/bench.py). Returns the result dict (seconds
    in s, memory in MB); `say` gets one line per step. Raises ConfigError for settings below 1 or a
    --db holding scores without --osu-dir."""
    if settings.scores < 1 or settings.workers < 1 or settings.shard_rows < 1:
        raise ConfigError("--scores, --workers and --shard-rows must be at least 1")
    maps = settings.maps or min(20_000, max(100, settings.scores // SCORES_PER_MAP))
    users = settings.users or max(100, settings.scores // SCORES_PER_USER)
    tag = uuid.uuid4().hex[:8]
    work = Path(settings.work_dir) if settings.work_dir else Path(tempfile.mkdtemp(prefix="srb-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    server = os.environ.get(SERVER_ENV, DEFAULT_SERVER)
    throwaway = None
    url = settings.db
    if url is None:
        throwaway = f"srb_bench_{tag}"
        url = create_database(server, throwaway)
    result: dict = {"database": db.mask_url(url), "throwaway_database": throwaway is not None,
                    "mode": "dry runs, and a cold applied run (verified, then rolled back)" if settings.apply
                    else "dry runs (grants to a throwaway --out Parquet file)"}
    try:
        osu_dir = _build_or_reuse(settings, url, maps, users, work, result, say)
        _benchmark(settings, url, str(osu_dir), work, tag, result, say)
    finally:
        if throwaway is not None and not settings.keep:
            drop_database(server, throwaway)
        if not settings.keep and not settings.work_dir:
            shutil.rmtree(work, ignore_errors=True)
    return result


def _build_or_reuse(settings: BenchSettings, url: str, maps: int, users: int, work: Path, result: dict,
                    say: Callable[[str], None]) -> Path:
    """The .osu directory of the database at `url`: its --osu-dir if it holds scores already, else
    where the synthetic database just built into it put them. Sets result["synth"]."""
    from testbed.scale import build_scaled_database

    existing = score_rows(url)
    if existing:
        if settings.osu_dir is None:
            raise ConfigError("--db holds scores already: pass --osu-dir with its .osu files")
        result["synth"] = {"reused": True, "scores": existing}
        say(f"bench: {db.mask_url(url)} holds {existing:,} scores: benchmarked as it is")
        return settings.osu_dir
    osu_dir = settings.osu_dir or work / "osu"
    say(f"bench: building {settings.scores:,} scores, {maps:,} maps, {users:,} users in {db.mask_url(url)}")
    started = time.perf_counter()
    build = build_scaled_database(url, osu_dir, MAPS, scores=settings.scores, maps=maps, users=users,
                                  seed=settings.seed, tmp_dir=work)
    result["synth"] = {"reused": False, "scores": sum(build.rows[t] for t in SCORE_TABLES), "maps": maps,
                       "users": users, "seconds": round(time.perf_counter() - started, 1)}
    return osu_dir


def _benchmark(settings: BenchSettings, url: str, osu_dir: str, work: Path, tag: str, result: dict,
               say: Callable[[str], None]) -> None:
    """Steps 2-6 on the built database: the timed runs, the floor, the naive way, the node counts."""
    cold_cache = work / "sr-cache-cold"
    shutil.rmtree(cold_cache, ignore_errors=True)
    config = BackfillConfig(db_url=url, osu_location=osu_dir, apply=False, out=work / "cold.parquet",
                            workers=settings.workers,
                            shard_rows=settings.shard_rows, engine=settings.engine, progress=False,
                            run_id=f"bench-cold-{tag}", sr_cache=str(cold_cache), read=settings.read)
    cold = _cold_and_warm_runs(settings, config, url, work, tag, result, say)
    _floor(settings, url, osu_dir, cold, cold_cache, result, say)
    if settings.naive_scores > 0:
        _naive(settings, config, url, osu_dir, cold, work, tag, result, say)
    else:
        result["naive"], result["naive_ratio"] = None, None
    _node_runs(settings, config, work, tag, result, say)


def _cold_and_warm_runs(settings: BenchSettings, config: BackfillConfig, url: str, work: Path, tag: str,
                        result: dict, say: Callable[[str], None]) -> dict:
    """The cold dry run (its figures at the top of `result` and under "cold"); with settings.apply, a cold
    applied run on another emptied SR cache (under "apply", with `apply_over_dry`), verified in a process
    of its own ("verify") and rolled back (not timed: "rollback_s"); then, unless settings.warm is off,
    the warm dry run on the cold run's SR cache. Returns the cold run's summary."""
    say("bench: cold run (empty SR cache)")
    cold = run_isolated(config)
    result.update(_run_figures(cold))
    result["cold"] = _run_figures(cold)
    result["apply"] = result["apply_over_dry"] = result["verify"] = None
    if settings.apply:
        _applied_run(config, url, work, tag, result, say, settings.writers)
    if not settings.warm:
        result["warm"], result["warm_speedup"] = None, None
        return cold
    say("bench: warm run (same SR cache)")
    warm = run_isolated(replace(config, run_id=f"bench-warm-{tag}", out=work / "warm.parquet"))
    result["warm"] = _run_figures(warm)
    result["warm_speedup"] = round(cold["seconds"]["total"] / warm["seconds"]["total"], 2)
    return cold


def _applied_run(config: BackfillConfig, url: str, work: Path, tag: str, result: dict,
                 say: Callable[[str], None], writers: int | None = None) -> None:
    """The cold applied run (issue 14's figures), ungoverned: its wall against the cold dry run's, the
    grants it wrote and the write rate while writes were in flight; then verify it and roll it back."""
    cache = work / "sr-cache-apply"
    shutil.rmtree(cache, ignore_errors=True)  # cold like the dry run: no rating is reused
    run_id = f"bench-apply-{tag}"
    say("bench: cold applied run (empty SR cache, writes ledgered)")
    # ungoverned: the writers' capacity (the governed rate beside live traffic is --live-load's measure)
    applied = run_isolated(replace(config, apply=True, out=None, run_id=run_id, sr_cache=str(cache), governed=False,
                                   writers=writers))
    figures = _run_figures(applied)
    writes = applied.get("writes") or {}
    figures.update(governed=False, writers=writes.get("writers", 0), write_batches=writes.get("batches", 0),
                   write_seconds_in_flight=writes.get("seconds_in_flight", 0.0),
                   write_rows_per_s=writes.get("rows_per_s", 0), throttled_seconds=writes.get("throttled_seconds", {}))
    result["apply"] = figures
    result["apply_over_dry"] = round(figures["wall_s"] / result["cold"]["wall_s"], 2) if result["cold"]["wall_s"] else None
    say(f"bench: verify {run_id} (its own process)")
    result["verify"] = verify_isolated(url, run_id)
    result["rollback_s"] = round(rollback(url, run_id, f"bench-rollback-{tag}"), 3)


def _floor(settings: BenchSettings, url: str, osu_dir: str, cold: dict, cold_cache: Path, result: dict,
           say: Callable[[str], None]) -> None:
    """The compute floor: reading every row once + the cold run's keys x the median key cost / workers."""
    say("bench: floor (read all rows; time a sample of keys)")
    read_s, rows = read_seconds(url, settings.shard_rows, cold["read_mode"] or "users")
    costs = key_costs(sample_keys(url, str(cold_cache), settings.engine, settings.key_sample), osu_dir,
                      settings.engine)
    workers = cold["workers"] or settings.workers
    compute_s = cold["sr_keys"] * costs.median_s / workers
    result["floor_s"] = round(read_s + compute_s, 3)
    result["wall_over_floor"] = round(result["wall_s"] / result["floor_s"], 2) if result["floor_s"] else None
    result["floor"] = {"read_s": round(read_s, 3), "rows_read": rows, "read_rows_per_s": round(rows / read_s) if read_s else 0,
                       "keys_timed": len(costs.per_key), "median_key_s": costs.median_s, "mean_key_s": costs.mean_s,
                       "compute_s": round(compute_s, 3),
                       "compute_mean_s": round(cold["sr_keys"] * costs.mean_s / workers, 3), "workers": workers,
                       "by_route": costs.by_route}


def _naive(settings: BenchSettings, config: BackfillConfig, url: str, osu_dir: str, cold: dict, work: Path,
           tag: str, result: dict, say: Callable[[str], None]) -> None:
    """The naive way on a sample, against the pipeline end to end, without its fixed cost (a run over
    one user), and rating alone."""
    say(f"bench: naive way on {settings.naive_scores:,} scores")
    naive = naive_rate(url, osu_dir, settings.naive_scores, settings.engine)
    pipeline_per_score = result["wall_s"] / result["scores"] if result["scores"] else 0.0
    result["naive"] = {"scores": naive.scores, "seconds": round(naive.seconds, 3), "errors": naive.errors,
                       "seconds_per_score": naive.seconds_per_score, "pipeline_seconds_per_score": pipeline_per_score}
    result["naive_ratio"] = round(naive.seconds_per_score / pipeline_per_score, 2) if pipeline_per_score else None
    # the run's fixed cost (Ray start, rater warm-up, shard-task start, plan): a run over one user
    user = first_user(url)
    shutil.rmtree(work / "sr-cache-fixed", ignore_errors=True)
    fixed = run_isolated(replace(config, apply=False, out=work / "fixed.parquet", run_id=f"bench-fixed-{tag}",
                                 scope=Scope(user_ids=(user,)), sr_cache=str(work / "sr-cache-fixed")))
    startup = fixed["seconds"]["total"]
    steady = (result["wall_s"] - startup) / result["scores"] if result["scores"] and result["wall_s"] > startup else 0.0
    result["naive"].update(startup_s=round(startup, 3), pipeline_steady_seconds_per_score=steady)
    result["naive_ratio_steady"] = round(naive.seconds_per_score / steady, 2) if steady else None
    # rating alone, seconds of one process per score both ways: the raters' seconds over the run's scores
    sr_per_score = cold["seconds"].get("rate", 0.0) / result["scores"] if result["scores"] else 0.0
    result["naive"]["pipeline_sr_seconds_per_score"] = sr_per_score
    result["naive_ratio_sr"] = round(naive.seconds_per_score / sr_per_score, 2) if sr_per_score else None


def _node_runs(settings: BenchSettings, config: BackfillConfig, work: Path, tag: str, result: dict,
               say: Callable[[str], None]) -> None:
    """The cold run again on a one-host Ray cluster per node count, with the speedup over the first."""
    result["nodes"] = []
    for count in settings.nodes:
        cpus = max(1, settings.workers // count)
        say(f"bench: cold run on a one-host Ray cluster of {count} worker node(s) x {cpus} CPU(s)")
        cache = work / f"sr-cache-nodes-{count}"
        shutil.rmtree(cache, ignore_errors=True)
        with ray_cluster(count, cpus) as address:
            run = run_isolated(replace(config, apply=False, out=work / f"nodes-{count}.parquet",
                                       run_id=f"bench-nodes{count}-{tag}", sr_cache=str(cache),
                                       ray_address=address))
        figures = _run_figures(run)
        result["nodes"].append({"nodes": count, "cpus_per_node": cpus, "cluster_cpus": count * cpus,
                                "workers": figures["workers"], "wall_s": figures["wall_s"],
                                "scores_per_s": figures["scores_per_s"], "sr_calcs": figures["sr_calcs"]})
    if result["nodes"]:
        base = result["nodes"][0]["wall_s"]
        for row in result["nodes"]:
            row["speedup"] = round(base / row["wall_s"], 2) if row["wall_s"] else None
        result["host_cpus"] = os.cpu_count()
