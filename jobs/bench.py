"""`sr-backfill bench`: the whole job on a synthetic database of a given size, measured (issue 5).

    sr-backfill bench --scores N [--maps M] [--users U] [--db URL] [--keep] [--workers W]
                      [--apply] [--nodes 1,2,4] [--json FILE]

Steps (testbed.bench.measure; each pipeline run in a fresh spawned process with its own local Ray, so
peak RSS is per run):

1. database: a throwaway MariaDB database on 127.0.0.1 (created, built by testbed.scale, dropped at
   the end unless --keep); or --db URL: built into if its score tables are empty, else used as it is
   (then --osu-dir names its .osu files);
2. cold run: a fresh, empty SR cache, a dry run writing its grants to a throwaway --out Parquet file;
   with --apply, a cold applied run too (another emptied SR cache; grants written by the writers,
   ledgered): its wall against the dry run's (`apply_over_dry`), the grants written and the write rate
   while writes were in flight (`apply.write_rows_per_s`); then `verify` of it in a process of its own
   (peak RSS, seconds) and its rollback (not timed);
3. warm run: the dry run again on the cold run's now-filled SR cache;
4. the compute floor: the seconds to just read every score row (one process, the run's read path:
   range by range for a table scan, shard by shard for reads by user) + unique SR keys x the median seconds of one calculation (a sample of the
   run's keys timed with the live engine, each map loaded once and parsed once per mode) / workers;
5. the naive way on a sample (default 2,000 scores): load, parse and rate every score on its own, one
   process; naive_ratio = naive seconds per score / the cold run's seconds per score;
6. --nodes 1,2,4: the cold run again on a Ray cluster of a 0-CPU head and N worker nodes on this
   host (workers // N CPUs each, at least 1), with the speedup over the first count.

Prints one table; --json FILE writes it as JSON (seconds in s, memory in MB).

`--live-load` measures something else: the backfill beside imitated live score submission on a primary
and replica (testbed/live_load.py).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from cluster.pipeline import READ_MODES
from testbed import live_load
from sr.engines import DEFAULT_ENGINE
from testbed.bench import DEFAULT_SERVER, SCORES_PER_MAP, SCORES_PER_USER, SERVER_ENV, BenchSettings, measure


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
    parser.add_argument("--apply", action="store_true", help="also a cold applied run (SR cache emptied), timed against "
                        "the cold dry run, verified in its own process, then rolled back")
    parser.add_argument("--writers", type=int, help="--apply: the applied run's writer actors (default: as "
                        "sr-backfill run, one per node, at least 2)")
    parser.add_argument("--naive-scores", type=int, default=2000, help="scores rated the naive way (default 2,000)")
    parser.add_argument("--key-sample", type=int, default=3000, help="keys timed for the cost of one calculation")
    parser.add_argument("--nodes", help="comma-separated worker-node counts of a one-host Ray cluster, e.g. 1,2,4")
    parser.add_argument("--no-warm", action="store_true", help="skip the warm re-run")
    parser.add_argument("--json", type=Path, help="also write the table as JSON to this file")
    parser.add_argument("--work-dir", type=Path, help="for the SR caches, grants files and temporary .osu files")
    live_load.add_arguments(parser.add_argument_group("the backfill beside live score submission (testbed/live_load.py)"))


def settings_of(args: argparse.Namespace) -> BenchSettings:
    """The parsed options as testbed.bench.BenchSettings."""
    return BenchSettings(
        scores=args.scores, maps=args.maps, users=args.users, seed=args.seed, db=args.db, osu_dir=args.osu_dir,
        keep=args.keep, work_dir=args.work_dir, workers=args.workers, shard_rows=args.shard_rows,
        engine=args.engine, read=args.read, apply=args.apply, naive_scores=args.naive_scores,
        key_sample=args.key_sample, nodes=tuple(int(n) for n in args.nodes.split(",")) if args.nodes else (),
        warm=not args.no_warm, writers=args.writers,
    )


def format_table(r: dict) -> str:
    """The printed table of a benchmark result (testbed.bench.measure)."""
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
    if r.get("apply"):
        a = r["apply"]
        lines.append(f"  cold applied run: wall {a['wall_s']:.1f} s against the cold dry run's {cold['wall_s']:.1f} s: "
                     f"apply / dry {r['apply_over_dry']}; {a['grants_written']:,} grants written by {a['writers']} "
                     f"writers in {a['write_batches']:,} batches, {a['write_rows_per_s']:,} grants/s while writes were "
                     f"in flight ({a['write_seconds_in_flight']:.1f} s)"
                     + (f"; throttled {a['throttled_seconds']}" if a["throttled_seconds"] else ""))
    if r.get("verify"):
        v = r["verify"]
        lines.append(f"  verify after the applied run: peak RSS {v['peak_rss_mb']:,.0f} MB, {v['seconds']:.1f} s "
                     f"({v['users_achievements_rows']:,} users_achievements rows, {v['ledger_rows']:,} ledger rows, "
                     f"{v['grants_checked']:,} grants checked)")
    elif "verify" in r:
        lines.append("  verify: not measured (needs --apply)")
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
    """Measure (testbed.bench.measure), print the table, write --json. Returns 0. With --live-load:
    testbed.live_load."""
    if args.live_load:
        return live_load.run(args)
    result = measure(settings_of(args))
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
