"""`sr-backfill verify`: duplicates, mode 7 rows, ledger rows missing, unsupported grants, counts per
achievement and users with zero achievements before/after a run, and rarity (table, JSON, PNG)."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from cluster import db
from cluster.verify import verify
from jobs.backfill import report_dir
from jobs.report import format_verify, write_rarity_png
from sr.engines import DEFAULT_ENGINE

DB_ENV = "SR_BACKFILL_DB"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `verify` command's options."""
    parser.add_argument("--db", default=os.environ.get(DB_ENV), help=f"SQLAlchemy URL (default: ${DB_ENV})")
    parser.add_argument("--run-id", help="the run to examine: its ledger, and figures before/after it "
                        "(default: every run's ledger, current figures)")
    parser.add_argument("--osu-dir", help="recompute the star ratings of skill grants from this .osu store "
                        "(default: trust the recorded ones)")
    parser.add_argument("--engine", default=DEFAULT_ENGINE, help=f"SR engine with --osu-dir (default: {DEFAULT_ENGINE})")
    parser.add_argument("--json", type=Path, help="JSON report (default: srb-reports/verify-RUN.json, "
                        "or under $SR_BACKFILL_REPORTS)")
    parser.add_argument("--png", type=Path, help="rarity bar chart (default: srb-reports/rarity-RUN.png)")


def run(args: argparse.Namespace) -> int:
    """Verify, print the tables, write JSON and PNG. Returns 0 when no check failed, else 1."""
    if not args.db:
        raise SystemExit(f"sr-backfill verify: --db is required (or set ${DB_ENV})")
    engine = db.connect(args.db)
    try:
        report = verify(engine, args.run_id, osu_location=args.osu_dir, engine_name=args.engine).to_dict()
    finally:
        engine.dispose()
    name = args.run_id or "all"
    json_path = args.json or report_dir() / f"verify-{name}.json"
    png_path = args.png or report_dir() / f"rarity-{name}.png"
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    write_rarity_png(report["rarity"], png_path, f"Achievement rarity on {report['database']}")
    print(format_verify(report))
    print(f"  report              {json_path}, {png_path}")
    return 1 if report["problems"] else 0
