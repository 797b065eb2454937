"""`sr-backfill run`: the backfill job (python -m jobs.backfill runs it too)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from cluster.pipeline import BackfillConfig, run_backfill
from jobs.report import format_summary
from sr.engine import DEFAULT_ENGINE

DB_ENV = "SR_BACKFILL_DB"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `run` command's options."""
    parser.add_argument(
        "--db",
        default=os.environ.get(DB_ENV),
        help=f"SQLAlchemy URL, e.g. mysql+pymysql://user:pass@host/db or sqlite:///file.db (default: ${DB_ENV})",
    )
    parser.add_argument("--osu-dir", required=True, help="directory (or pyarrow.fs URI) of {beatmap_id}.osu files")
    parser.add_argument("--apply", action="store_true", help="insert the grants (default: dry run, database untouched)")
    parser.add_argument("--out", type=Path, help="write the grants to this .parquet or .csv file")
    parser.add_argument("--report", type=Path, help="write the summary as JSON to this file")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="rater processes (default: CPUs)")
    parser.add_argument("--shard-rows", type=int, default=100_000, help="target score rows per shard")
    parser.add_argument("--ray-address", default=os.environ.get("RAY_ADDRESS"), help="Ray cluster address (default: local)")
    parser.add_argument("--engine", default=DEFAULT_ENGINE, help=f"SR engine (default: {DEFAULT_ENGINE})")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def config_from(args: argparse.Namespace) -> BackfillConfig:
    """A BackfillConfig from parsed `run` arguments. Exits with a usage error if --db is missing."""
    if not args.db:
        raise SystemExit(f"sr-backfill run: --db is required (or set ${DB_ENV})")
    return BackfillConfig(
        db_url=args.db,
        osu_location=args.osu_dir,
        apply=args.apply,
        out=args.out,
        workers=args.workers,
        shard_rows=args.shard_rows,
        ray_address=args.ray_address,
        engine=args.engine,
        progress=not args.no_progress,
    )


def run(args: argparse.Namespace) -> int:
    """Run the backfill, print the summary, write --report. Returns the exit code."""
    summary = run_backfill(config_from(args)).to_dict()
    print(format_summary(summary))
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(json.dumps(summary, indent=2) + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sr-backfill run", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
