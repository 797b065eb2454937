"""`sr-backfill rollback`: undo exactly what one recorded run inserted (and restore what it deleted)."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from cluster import db
from jobs.options import add_retry_options, retry_policy
from cluster.rollback import rollback_run
from jobs.report import format_rollback

DB_ENV = "SR_BACKFILL_DB"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `rollback` command's options."""
    parser.add_argument("--db", default=os.environ.get(DB_ENV), help=f"SQLAlchemy URL (default: ${DB_ENV})")
    parser.add_argument("--run-id", required=True, help="the run to undo")
    parser.add_argument("--apply", action="store_true", help="delete/restore (default: preview, database untouched)")
    parser.add_argument("--rollback-id", help="id of the rollback's own run record (default: a fresh id)")
    parser.add_argument("--batch-rows", type=int, default=1000, help="rows per transaction (default 1000)")
    parser.add_argument("--report", type=Path, help="write the summary as JSON to this file")
    add_retry_options(parser)


def run(args: argparse.Namespace) -> int:
    """Preview or apply the rollback, print the summary. Returns 0."""
    if not args.db:
        raise SystemExit(f"sr-backfill rollback: --db is required (or set ${DB_ENV})")
    engine = db.connect(args.db)
    try:
        summary = rollback_run(
            engine, args.run_id, apply=args.apply, rollback_id=args.rollback_id, batch_rows=max(1, args.batch_rows),
            retry=retry_policy(args),
            log=db.RetryLog(), url=args.db,
        ).to_dict()
    finally:
        engine.dispose()
    print(format_rollback(summary))
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(json.dumps(summary, indent=2) + "\n")
    return 0
