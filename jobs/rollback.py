"""`sr-backfill rollback`: undo exactly what one recorded run inserted (and restore what it deleted); list
the rows whose users earned them live meanwhile (CSV), and with --regrant-live grant those again."""

from __future__ import annotations

import argparse
import csv
import json
import os
from pathlib import Path

from cluster import db
from cluster.rollback import LiveRegrant, rollback_run
from jobs.backfill import report_dir
from jobs.options import add_governor_options, add_retry_options, governance_from, retry_policy
from jobs.report import format_rollback

LIVE_COLUMNS = ("ua_id", "user_id", "achievement_id", "mode", "created_at", "live_scores", "first_live_score_at",
                "regrant_created_at", "regrant_score_id")

DB_ENV = "SR_BACKFILL_DB"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `rollback` command's options."""
    parser.add_argument("--db", default=os.environ.get(DB_ENV), help=f"SQLAlchemy URL (default: ${DB_ENV})")
    parser.add_argument("--run-id", required=True, help="the run to undo")
    parser.add_argument("--apply", action="store_true", help="delete/restore (default: preview, database untouched)")
    parser.add_argument("--rollback-id", help="id of the rollback's own run record (default: a fresh id)")
    parser.add_argument("--batch-rows", type=int, default=1000, help="rows per transaction at most (default 1000; "
                        "the write governor's chunk time adapts it)")
    parser.add_argument("--report", type=Path, help="write the summary as JSON to this file")
    live = parser.add_argument_group("achievements earned live while the run's rows existed")
    live.add_argument("--live-csv", type=Path, help="the rows to delete whose user has a passed, eligible score "
                      "in that mode since the run started (default: srb-reports/rollback-RUN_ID.live.csv, or under "
                      "$SR_BACKFILL_REPORTS)")
    live.add_argument("--regrant-live", action="store_true", help="grant those again as the live server would "
                      "have (conditions on the scores since the run started, dated by the earliest such score), "
                      "as a run of its own; in a preview, only evaluated")
    live.add_argument("--regrant-id", help="id of the regrant's run record (default: a fresh id)")
    live.add_argument("--osu-dir", help="the .osu store for the live scores' star ratings (default: the run's own)")
    live.add_argument("--engine", help="SR engine for them (default: the run's own)")
    governor = parser.add_argument_group("beside live traffic: an applied rollback's write governor, as a run's "
                                         "(docs/LIVE.md; sr-backfill control --run-id ROLLBACK_ID pauses it)")
    add_governor_options(governor, "none")
    add_retry_options(parser)


def run(args: argparse.Namespace) -> int:
    """Preview or apply the rollback, print the summary. Returns 0."""
    if not args.db:
        raise SystemExit(f"sr-backfill rollback: --db is required (or set ${DB_ENV})")
    live = LiveRegrant(args.osu_dir, args.engine, args.regrant_id) if args.regrant_live else None
    args.batch_rows = max(1, args.batch_rows)
    governance = governance_from(args, "rollback")
    engine = db.connect(args.db)
    try:
        result = rollback_run(
            engine, args.run_id, apply=args.apply, rollback_id=args.rollback_id, batch_rows=args.batch_rows,
            retry=retry_policy(args), log=db.RetryLog(), url=args.db, live=live, governance=governance,
        )
    finally:
        engine.dispose()
    summary = result.to_dict()
    live_csv = args.live_csv or report_dir() / f"rollback-{args.run_id}.live.csv"
    live_csv.parent.mkdir(parents=True, exist_ok=True)
    with live_csv.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, LIVE_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(result.live_rows)
    summary["live_csv"] = str(live_csv)
    print(format_rollback(summary))
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(json.dumps(summary, indent=2) + "\n")
    return 0
