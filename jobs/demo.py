"""`sr-backfill demo`: build a SQLite database from the shipped real maps and run the backfill on it."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from jobs import backfill
from testbed.demo import build_demo_database

REPO = Path(__file__).resolve().parents[1]
MAPS = REPO / "data" / "maps"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", type=Path, default=Path(".demo"), help="where the database and .osu files go")
    parser.add_argument("--users", type=int, default=300, help="users to generate")
    parser.add_argument("--seed", type=int, default=20220623)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    """Rebuild the demo directory, then `run --apply` on it with a report."""
    if args.dir.exists():
        shutil.rmtree(args.dir)
    osu_dir = args.dir / "osu"
    osu_dir.mkdir(parents=True)
    db_url = f"sqlite:///{(args.dir / 'demo.db').resolve()}"
    build = build_demo_database(db_url, osu_dir, MAPS, users=args.users, seed=args.seed)
    print(f"demo database: {args.dir / 'demo.db'} ({build})")
    parser = argparse.ArgumentParser(prog="sr-backfill run")
    backfill.add_arguments(parser)
    run_args = parser.parse_args(
        ["--db", db_url, "--osu-dir", str(osu_dir), "--apply", "--report", str(args.dir / "report.json")]
        + ["--workers", str(args.workers), "--shard-rows", "5000", "--sr-cache", str(args.dir / "srb-cache")]
        + (["--no-progress"] if args.no_progress else [])
    )
    return backfill.run(run_args)
