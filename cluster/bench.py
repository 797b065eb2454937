"""Cluster-side pieces of `sr-backfill bench` (issue 5): isolated runs, the compute floor, the naive
per-score way, and a multi-node Ray cluster on one host.

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
import socket
import statistics
import time
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

import pyarrow as pa
import sqlalchemy as sa

from cluster import db
from cluster.schema import SCORE_TABLES, beatmaps
from cluster.shards import plan_scan, plan_shards
from sr.cache import SRCache
from sr.engines import engine_named
from sr.errors import RatingError
from sr.mods import AP, RX
from sr.store import OsuStore

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

def _run_in_child(config, cpus=None) -> dict:
    # imported here, in the child: a clean driver process
    from cluster.pipeline import run_backfill

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
        return pool.submit(_run_in_child, config, cpus).result()


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
    from ray.cluster_utils import Cluster

    head = {"num_cpus": 0, "gcs_server_port": free_ports(1)[0], "include_dashboard": False,
            "object_store_memory": object_store_mb << 20, **_node_ports()}
    cluster = Cluster(initialize_head=True, connect=False, head_node_args=head)
    try:
        for _ in range(nodes):
            cluster.add_node(num_cpus=cpus_per_node, object_store_memory=object_store_mb << 20, **_node_ports())
        cluster.wait_for_nodes()
        yield cluster.address
    finally:
        cluster.shutdown()
