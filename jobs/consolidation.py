"""`sr-backfill consolidate-mode7`: copy legacy autopilot (mode 7) rows to mode 8, keeping created_at."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from cluster import db
from cluster.consolidation import consolidate_mode7
from jobs.options import add_governor_options, add_retry_options, governance_from, retry_policy
from jobs.report import format_consolidation

DB_ENV = "SR_BACKFILL_DB"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `consolidate-mode7` command's options."""
    parser.add_argument("--db", default=os.environ.get(DB_ENV), help=f"SQLAlchemy URL (default: ${DB_ENV})")
    parser.add_argument("--apply", action="store_true", help="back up, copy (default: preview, database untouched)")
    parser.add_argument("--delete-mode7", action="store_true", help="with --apply: delete the mode 7 rows once "
                        "every one has a mode 8 counterpart (they stay in srb_mode7_backup and the ledger)")
    parser.add_argument("--run-id", help="id of the consolidation's run record (default: a fresh id)")
    parser.add_argument("--batch-rows", type=int, default=1000, help="rows per transaction at most (default 1000; "
                        "the write governor's chunk time adapts it)")
    parser.add_argument("--report", type=Path, help="write the summary as JSON to this file")
    governor = parser.add_argument_group("beside live traffic: the write governor, as a run's (docs/LIVE.md; "
                                         "sr-backfill control --run-id RUN_ID pauses it)")
    add_governor_options(governor, "none")
    add_retry_options(parser)


def run(args: argparse.Namespace) -> int:
    """Preview or apply the consolidation, print the summary. Returns 0."""
    if not args.db:
        raise SystemExit(f"sr-backfill consolidate-mode7: --db is required (or set ${DB_ENV})")
    if args.delete_mode7 and not args.apply:
        raise SystemExit("sr-backfill consolidate-mode7: --delete-mode7 needs --apply")
    args.batch_rows = max(1, args.batch_rows)
    governance = governance_from(args, "consolidate-mode7")
    engine = db.connect(args.db)
    try:
        summary = consolidate_mode7(
            engine, apply=args.apply, delete_mode7=args.delete_mode7, run_id=args.run_id,
            batch_rows=args.batch_rows, retry=retry_policy(args), log=db.RetryLog(), url=args.db,
            governance=governance,
        ).to_dict()
    finally:
        engine.dispose()
    print(format_consolidation(summary))
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(json.dumps(summary, indent=2) + "\n")
    return 0
