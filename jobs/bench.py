"""`sr-backfill bench`: the whole job on a synthetic database of a given size, measured (issue 5).

    sr-backfill bench --scores N [--maps M] [--users U] [--db URL] [--keep] [--workers W]
                      [--apply] [--nodes 1,2,4] [--json FILE]

Steps (each pipeline run in a fresh spawned process with its own local Ray, so peak RSS is per run):

1. database: a throwaway MariaDB database on 127.0.0.1 (created, built by cluster.scale, dropped at
   the end unless --keep); or --db URL: built into if its score tables are empty, else used as it is
   (then --osu-dir names its .osu files);
2. cold run: a fresh, empty SR cache; 3. warm run: the same run again on the now-filled cache. Both
   do the same work: by default both are dry runs writing their grants to a throwaway --out Parquet
   file; with --apply the cold run inserts (ledgered), is rolled back (not timed), and the warm run
   inserts the same rows again;
4. the compute floor: the seconds to just read every score row (one process, the run's read path:
   range by range for a table scan, shard by shard for reads by user) + unique SR keys x the median seconds of one calculation (a sample of the
   run's keys timed with the live engine, each map loaded once and parsed once per mode) / workers;
5. the naive way on a sample (default 2,000 scores): load, parse and rate every score on its own, one
   process; naive_ratio = naive seconds per score / the cold run's seconds per score;
6. --nodes 1,2,4: the cold run again on a Ray cluster of a 0-CPU head and N worker nodes on this
   host (workers // N CPUs each, at least 1), with the speedup over the first count.

Prints one table; --json FILE writes it as JSON (seconds in s, memory in MB).

`--live-load` measures something else: the backfill beside imitated live score submission on a primary
and replica (jobs/live_load.py).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path

import sqlalchemy as sa

from cluster import bench
from cluster.db import mask_url
from cluster.errors import ConfigError
from cluster.pipeline import READ_MODES, BackfillConfig
from cluster.scale import build_scaled_database
from cluster.schema import SCORE_TABLES
from cluster.scope import Scope
from jobs import live_load
from sr.engines import DEFAULT_ENGINE

REPO = Path(__file__).resolve().parents[1]
MAPS = REPO / "data" / "maps"
SERVER_ENV = "SRB_BENCH_MYSQL"
DEFAULT_SERVER = "mysql+pymysql://root@127.0.0.1:3306"
# Production shape: 6.3M scores over 20k maps and 100k users.
SCORES_PER_MAP = 315
SCORES_PER_USER = 63


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scores", type=int, default=200_000, help="score rows to build (default 200,000)")
    parser.add_argument("--maps", type=int, help=f"beatmaps (default: scores / {SCORES_PER_MAP}, 100 to 20,000)")
    parser.add_argument("--users", type=int, help=f"users (default: scores / {SCORES_PER_USER}, at least 100)")
    parser.add_argument("--seed", type=int, default=20220623, help="synthetic data seed")
    parser.add_argument("--db", help="database URL: built into if its score tables are empty, else benchmarked "
                        f"as it is (default: a throwaway database on ${SERVER_ENV} or {DEFAULT_SERVER}, dropped after)")
    parser.add_argument("--osu-dir", type=Path, help="the .osu files (required with a --db that already holds "
                        "scores; default: a temporary directory)")
    parser.add_argument("--keep", action="store_true", help="keep the throwaway database and the work directory")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="rater processes (default: CPUs)")
    parser.add_argument("--shard-rows", type=int, default=100_000, help="score rows per shard (default 100,000)")
    parser.add_argument("--engine", default=DEFAULT_ENGINE, help=f"SR engine (default {DEFAULT_ENGINE})")
    parser.add_argument("--read", choices=READ_MODES, default="auto", help="the runs' read path (sr-backfill run --read)")
    parser.add_argument("--apply", action="store_true", help="apply both runs (cold run rolled back before the warm one)")
    parser.add_argument("--naive-scores", type=int, default=2000, help="scores rated the naive way (default 2,000)")
    parser.add_argument("--key-sample", type=int, default=3000, help="keys timed for the cost of one calculation")
    parser.add_argument("--nodes", help="comma-separated worker-node counts of a one-host Ray cluster, e.g. 1,2,4")
    parser.add_argument("--no-warm", action="store_true", help="skip the warm re-run")
    parser.add_argument("--json", type=Path, help="also write the table as JSON to this file")
    parser.add_argument("--work-dir", type=Path, help="for the SR caches, grants files and temporary .osu files")
    live_load.add_arguments(parser.add_argument_group("the backfill beside live score submission (jobs/live_load.py)"))


def _score_rows(url: str) -> int | None:
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


def _server(url: str, statement: str) -> None:
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(statement)
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


def measure(args: argparse.Namespace, say=print) -> dict:
    """Run the benchmark described by `args` (see the module docstring). Returns the result dict."""
    if args.scores < 1 or args.workers < 1 or args.shard_rows < 1:
        raise ConfigError("--scores, --workers and --shard-rows must be at least 1")
    maps = args.maps or min(20_000, max(100, args.scores // SCORES_PER_MAP))
    users = args.users or max(100, args.scores // SCORES_PER_USER)
    tag = uuid.uuid4().hex[:8]
    work = Path(args.work_dir) if args.work_dir else Path(tempfile.mkdtemp(prefix="srb-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    server = os.environ.get(SERVER_ENV, DEFAULT_SERVER)
    throwaway = None
    url = args.db
    if url is None:
        throwaway = f"srb_bench_{tag}"
        _server(server, f"CREATE DATABASE `{throwaway}` CHARACTER SET latin1")
        url = f"{server}/{throwaway}"
    result: dict = {"database": mask_url(url), "throwaway_database": throwaway is not None,
                    "mode": "apply (cold run rolled back before the warm run)" if args.apply
                    else "dry run (grants to a throwaway --out Parquet file)"}
    try:
        existing = _score_rows(url)
        if existing:
            if args.osu_dir is None:
                raise ConfigError("--db holds scores already: pass --osu-dir with its .osu files")
            osu_dir = args.osu_dir
            result["synth"] = {"reused": True, "scores": existing}
            say(f"bench: {mask_url(url)} holds {existing:,} scores: benchmarked as it is")
        else:
            osu_dir = args.osu_dir or work / "osu"
            say(f"bench: building {args.scores:,} scores, {maps:,} maps, {users:,} users in {mask_url(url)}")
            started = time.perf_counter()
            build = build_scaled_database(url, osu_dir, MAPS, scores=args.scores, maps=maps, users=users,
                                          seed=args.seed, tmp_dir=work)
            result["synth"] = {"reused": False, "scores": sum(build.rows[t] for t in SCORE_TABLES), "maps": maps,
                               "users": users, "seconds": round(time.perf_counter() - started, 1)}
        _benchmark(args, url, str(osu_dir), work, tag, result, say)
    finally:
        if throwaway is not None and not args.keep:
            _server(server, f"DROP DATABASE IF EXISTS `{throwaway}`")
        if not args.keep and not args.work_dir:
            shutil.rmtree(work, ignore_errors=True)
    return result


def _benchmark(args, url: str, osu_dir: str, work: Path, tag: str, result: dict, say) -> None:
    cold_cache = work / "sr-cache-cold"
    shutil.rmtree(cold_cache, ignore_errors=True)
    config = BackfillConfig(db_url=url, osu_location=osu_dir, apply=args.apply,
                            out=None if args.apply else work / "cold.parquet", workers=args.workers,
                            shard_rows=args.shard_rows, engine=args.engine, progress=False,
                            run_id=f"bench-cold-{tag}", sr_cache=str(cold_cache), read=args.read)
    say("bench: cold run (empty SR cache)")
    cold = bench.run_isolated(config)
    result.update(_run_figures(cold))
    result["cold"] = _run_figures(cold)
    if not args.no_warm:
        if args.apply:
            from cluster.db import connect
            from cluster.rollback import rollback_run

            engine = connect(url)
            try:
                started = time.perf_counter()
                rollback_run(engine, config.run_id, apply=True, rollback_id=f"bench-rollback-{tag}")
                result["rollback_s"] = round(time.perf_counter() - started, 3)
            finally:
                engine.dispose()
        say("bench: warm run (same SR cache)")
        warm = bench.run_isolated(replace(config, run_id=f"bench-warm-{tag}",
                                          out=None if args.apply else work / "warm.parquet"))
        result["warm"] = _run_figures(warm)
        result["warm_speedup"] = round(cold["seconds"]["total"] / warm["seconds"]["total"], 2)
    else:
        result["warm"], result["warm_speedup"] = None, None

    say("bench: floor (read all rows; time a sample of keys)")
    read_s, rows = bench.read_seconds(url, args.shard_rows, cold["read_mode"] or "users")
    costs = bench.key_costs(bench.sample_keys(url, str(cold_cache), args.engine, args.key_sample), osu_dir, args.engine)
    workers = cold["workers"] or args.workers
    compute_s = cold["sr_keys"] * costs.median_s / workers
    result["floor_s"] = round(read_s + compute_s, 3)
    result["wall_over_floor"] = round(result["wall_s"] / result["floor_s"], 2) if result["floor_s"] else None
    result["floor"] = {"read_s": round(read_s, 3), "rows_read": rows, "read_rows_per_s": round(rows / read_s) if read_s else 0,
                       "keys_timed": len(costs.per_key), "median_key_s": costs.median_s, "mean_key_s": costs.mean_s,
                       "compute_s": round(compute_s, 3),
                       "compute_mean_s": round(cold["sr_keys"] * costs.mean_s / workers, 3), "workers": workers,
                       "by_route": costs.by_route}

    if args.naive_scores > 0:
        say(f"bench: naive way on {args.naive_scores:,} scores")
        naive = bench.naive_rate(url, osu_dir, args.naive_scores, args.engine)
        pipeline_per_score = result["wall_s"] / result["scores"] if result["scores"] else 0.0
        result["naive"] = {"scores": naive.scores, "seconds": round(naive.seconds, 3), "errors": naive.errors,
                           "seconds_per_score": naive.seconds_per_score, "pipeline_seconds_per_score": pipeline_per_score}
        result["naive_ratio"] = round(naive.seconds_per_score / pipeline_per_score, 2) if pipeline_per_score else None
        # the run's fixed cost (Ray start, rater warm-up, shard-task start, plan): a run over one user
        user = bench.first_user(url)
        shutil.rmtree(work / "sr-cache-fixed", ignore_errors=True)
        fixed = bench.run_isolated(replace(config, apply=False, out=work / "fixed.parquet", run_id=f"bench-fixed-{tag}",
                                           scope=Scope(user_ids=(user,)), sr_cache=str(work / "sr-cache-fixed")))
        startup = fixed["seconds"]["total"]
        steady = (result["wall_s"] - startup) / result["scores"] if result["scores"] and result["wall_s"] > startup else 0.0
        result["naive"].update(startup_s=round(startup, 3), pipeline_steady_seconds_per_score=steady)
        result["naive_ratio_steady"] = round(naive.seconds_per_score / steady, 2) if steady else None
        # rating alone, seconds of one process per score both ways: the raters' seconds over the run's scores
        sr_per_score = cold["seconds"].get("rate", 0.0) / result["scores"] if result["scores"] else 0.0
        result["naive"]["pipeline_sr_seconds_per_score"] = sr_per_score
        result["naive_ratio_sr"] = round(naive.seconds_per_score / sr_per_score, 2) if sr_per_score else None
    else:
        result["naive"], result["naive_ratio"] = None, None

    result["nodes"] = []
    for count in [int(n) for n in args.nodes.split(",")] if args.nodes else []:
        cpus = max(1, args.workers // count)
        say(f"bench: cold run on a one-host Ray cluster of {count} worker node(s) x {cpus} CPU(s)")
        cache = work / f"sr-cache-nodes-{count}"
        shutil.rmtree(cache, ignore_errors=True)
        with bench.ray_cluster(count, cpus) as address:
            run = bench.run_isolated(replace(config, apply=False, out=work / f"nodes-{count}.parquet",
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


def format_table(r: dict) -> str:
    """The printed table of a benchmark result (`measure`)."""
    cold, warm, floor = r["cold"], r.get("warm"), r["floor"]
    rss = cold["max_rss_mb"]
    lines = [f"sr-backfill bench: {r['scores']:,} scores, {cold['workers']} workers, {cold['shards']} shards, "
             f"read {cold.get('read_mode') or '?'}; {r['mode']}",
             f"  {'':34} {'cold':>12} {'warm':>12}"]

    def row(label, key, fmt="{:,.1f}", source="stages"):
        c = cold[source][key] if source else cold[key]
        w = (warm[source][key] if source else warm[key]) if warm else None
        lines.append(f"  {label:34} {fmt.format(c):>12} {(fmt.format(w) if w is not None else '-'):>12}")

    row("plan (s, wall)", "plan_s")
    row("Ray start (s, wall)", "ray_start_wall_s")
    row("scan: read waves (s, wall)", "scan_wall_s")
    row("rate queued keys (s, wall)", "rate_wall_s")
    row("evaluate shards (s, wall)", "evaluate_wall_s")
    row("read (s, summed over tasks)", "read_s")
    row("SR (s, summed over raters)", "sr_s")
    row("evaluate (s, summed, incl. prepare)", "evaluate_s")
    row("write (s, driver wall)", "write_s")
    row("total wall (s)", "total_s")
    row("scores per second end to end", "scores_per_s", "{:,.0f}", None)
    row("unique SR keys", "unique_keys", "{:,}", None)
    row("SR calculations", "sr_calcs", "{:,}", None)
    row("SR cache hits", "sr_cache_hits", "{:,}", None)
    row("grants", "grants", "{:,}", None)
    for process in ("driver", "raters", "shard_tasks"):
        w = warm["max_rss_mb"].get(process) if warm else None
        lines.append(f"  {'peak RSS ' + process + ' (MB)':34} {rss.get(process, 0):>12,.0f} "
                     f"{(f'{w:,.0f}' if w is not None else '-'):>12}")
    lines.append(f"  floor: read all rows {floor['read_s']:.1f} s ({floor['read_rows_per_s']:,} rows/s, one process) + "
                 f"{r['unique_keys']:,} keys x {floor['median_key_s'] * 1e3:.2f} ms median / {floor['workers']} workers "
                 f"= {floor['compute_s']:.1f} s  ->  floor {r['floor_s']:.1f} s, wall / floor {r['wall_over_floor']}")
    lines.append(f"  (with the mean key cost {floor['mean_key_s'] * 1e3:.2f} ms: compute {floor['compute_mean_s']:.1f} s; "
                 f"{floor['keys_timed']:,} keys timed)")
    for route, stats in floor["by_route"].items():
        lines.append(f"    {route:20} {stats['keys']:>6,} keys  median {stats['median_s'] * 1e3:7.2f} ms  "
                     f"mean {stats['mean_s'] * 1e3:7.2f} ms per key")
    if warm:
        lines.append(f"  warm re-run: {r['warm_speedup']}x faster than cold ({cold['wall_s']:.1f} s -> {warm['wall_s']:.1f} s)")
    if r.get("naive"):
        n = r["naive"]
        lines.append(f"  naive (per-score load+parse+rate, 1 process): {n['scores']:,} scores in {n['seconds']:.1f} s = "
                     f"{n['seconds_per_score'] * 1e3:.2f} ms/score vs pipeline {n['pipeline_seconds_per_score'] * 1e3:.3f} "
                     f"ms/score: ratio {r['naive_ratio']}x")
        lines.append(f"    without the run's fixed cost ({n['startup_s']:.1f} s: the same run over one user; Ray "
                     f"start, rater warm-up, shard-task start): {n['pipeline_steady_seconds_per_score'] * 1e3:.3f} ms/score, ratio {r['naive_ratio_steady']}x")
        lines.append(f"    rating alone (rater-seconds per score): {n['pipeline_sr_seconds_per_score'] * 1e3:.3f} ms/score, "
                     f"ratio {r['naive_ratio_sr']}x")
    for node in r.get("nodes") or []:
        lines.append(f"  nodes {node['nodes']} x {node['cpus_per_node']} CPU ({node['workers']} workers): wall "
                     f"{node['wall_s']:.1f} s, {node['scores_per_s']:,.0f} scores/s, speedup {node['speedup']}x")
    if r.get("nodes"):
        lines.append(f"  (one host with {r['host_cpus']} CPUs: every node count shares the same cores, so the speedup "
                     "can only show Ray's overhead, not more compute)")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Measure, print the table, write --json. Returns 0. With --live-load: jobs.live_load."""
    if args.live_load:
        return live_load.run(args)
    result = measure(args)
    print(format_table(result))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2, default=str))
        print(f"  json: {args.json}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sr-backfill bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    import sys

    sys.exit(main())
