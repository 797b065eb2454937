"""`sr-backfill synth`: build a production-shaped database and .osu directory (issue 5, testbed.scale).

    sr-backfill synth --db URL --osu-dir DIR --scores 6301323 --maps 20000 --users 100000 [--seed S]

`--db` defaults to $SR_BACKFILL_DB; the database must exist and its score, beatmaps, users and
user_stats tables must be empty or missing (missing tables are created). Prints what it built: rows per
table, maps per mode, the star-rating spread per mode of the calibration sample, seconds per step and
rows/s per table.
"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

from cluster.db import mask_url
from cluster.errors import ConfigError
from testbed.scale import CHUNK_ROWS, ScaleBuild, build_scaled_database

REPO = Path(__file__).resolve().parents[1]
MAPS = REPO / "data" / "maps"
MODE_NAMES = ("osu!", "taiko", "catch", "mania")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", default=os.environ.get("SR_BACKFILL_DB"),
                        help="SQLAlchemy URL of an existing, empty database (default: $SR_BACKFILL_DB)")
    parser.add_argument("--osu-dir", type=Path, required=True, help="where the {beatmap_id}.osu files go")
    parser.add_argument("--scores", type=int, required=True, help="score rows over the three score tables")
    parser.add_argument("--maps", type=int, required=True, help="derived beatmaps (files and beatmaps rows)")
    parser.add_argument("--users", type=int, required=True, help="users rows")
    parser.add_argument("--seed", type=int, default=20220623, help="the same seed builds the same data")
    parser.add_argument("--maps-dir", type=Path, default=MAPS, help="the real .osu maps to derive from")
    parser.add_argument("--chunk-rows", type=int, default=CHUNK_ROWS, help="rows per generation block and load batch")
    parser.add_argument("--tmp-dir", type=Path, default=None, help="for the intermediate files (~50 bytes per score)")
    parser.add_argument("--buffer-pool-mb", type=int, default=0,
                        help="MySQL: raise innodb_buffer_pool_size to at least this for the load, then restore it")
    parser.add_argument("--keep-indexes", action="store_true",
                        help="MySQL: keep the score tables' secondary indexes during the load (default: drop, add back after)")


def run(args: argparse.Namespace) -> int:
    """Build, then print the summary. Returns 0."""
    if not args.db:
        raise ConfigError("no database: pass --db or set SR_BACKFILL_DB")
    print(f"synth: {mask_url(args.db)} and {args.osu_dir}: {args.scores} scores, {args.maps} maps, "
          f"{args.users} users, seed {args.seed}", flush=True)
    try:
        build = build_scaled_database(
            args.db, args.osu_dir, args.maps_dir, scores=args.scores, maps=args.maps, users=args.users,
            seed=args.seed, chunk_rows=args.chunk_rows, tmp_dir=args.tmp_dir,
            buffer_pool_bytes=(args.buffer_pool_mb << 20) or None, rebuild_indexes=not args.keep_indexes,
            log=lambda line: print(f"  {line}", flush=True),
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    print(summary(build))
    return 0


def summary(build: ScaleBuild) -> str:
    """The printed report of one build."""
    lines = []
    total = sum(build.rows[name] for name in ("scores", "scores_relax", "scores_ap")) or 1
    lines.append("rows: " + ", ".join(
        f"{name} {rows:,}" + (f" ({100 * rows / total:.2f}%)" if name.startswith("scores") else "")
        for name, rows in build.rows.items()))
    lines.append("completed: " + ", ".join(
        f"{value} {label} {count:,}" for (value, count), label in
        zip(build.completed.items(), ("quit", "failed", "passed", "passed best"))))
    lines.append("maps per mode: " + ", ".join(f"{MODE_NAMES[mode]} {count:,}" for mode, count in build.maps_by_mode.items())
                 + "; steered for: " + ", ".join(f"{MODE_NAMES[mode]} {count:,}" for mode, count in build.steered.items())
                 + f"; unranked {build.unranked_maps:,}; files {build.files_bytes / 1e6:,.0f} MB in {build.osu_dir}")
    lines.append(f"users: {build.users:,} (restricted {build.restricted_users:,}, without plays {build.idle_users:,}); "
                 f"scores on unknown md5s {build.unknown_md5_scores:,}")
    lines.append(f"star rating spread of the calibration sample (live engine, no mods; {build.bases} base maps; "
                 "steer: median |log(stars / target)| of the maps steered for the mode):")
    lines.append(f"  {'mode':6} {'rated':>5} {'min':>6} {'p5':>6} {'median':>6} {'p95':>6} {'max':>6} {'steer':>6}  "
                 "maps per band 0,1,...,10,11+")
    for mode, stats in build.spread.items():
        steer = f"{stats.steer_error:6.1%}" if math.isfinite(stats.steer_error) else f"{'-':>6}"  # none steered
        lines.append(f"  {MODE_NAMES[mode]:6} {stats.count:5d} {stats.min:6.2f} {stats.p05:6.2f} {stats.median:6.2f} "
                     f"{stats.p95:6.2f} {stats.max:6.2f} {steer}  {','.join(map(str, stats.bands))}")
    lines.append("seconds: " + ", ".join(f"{step} {seconds:.1f}" for step, seconds in build.seconds.items())
                 + f"; total {sum(build.seconds.values()):.1f}")
    lines.append(f"load ({build.load_method}):")
    for load in build.loads.values():
        rebuild = f", indexes added back in {load.index_seconds:.1f} s" if load.index_seconds else ""
        lines.append(f"  {load.table:18} {load.rows:>10,} rows in {load.seconds:7.1f} s = {load.rows_per_second:>9,.0f} rows/s{rebuild}")
    return "\n".join(lines)
