"""`sr-backfill run`: the backfill job (python -m jobs.backfill runs it too)."""

from __future__ import annotations

import argparse
import calendar
import os
import sys
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

from cluster.ledger import check_run_id, new_run_id
from cluster.pipeline import READ_MODES, BackfillConfig, run_backfill
from cluster.schema import SCORE_TABLES
from cluster.scope import TIERS, Scope, achievement_ids_for
from conditions.catalogue import describe_never_granted, load_catalogue
from jobs.options import add_governor_options, add_retry_options, lag_replicas_from, limits_from, retry_policy
from jobs.report import format_summary, report_paths, write_run_report
from sr.engines import DEFAULT_ENGINE

DB_ENV = "SR_BACKFILL_DB"
READ_DB_ENV = "SR_BACKFILL_READ_DB"
CACHE_ENV = "SR_BACKFILL_CACHE"
REPORTS_ENV = "SR_BACKFILL_REPORTS"


def report_dir() -> Path:
    """Where reports go by default: $SR_BACKFILL_REPORTS, else ./srb-reports."""
    return Path(os.environ.get(REPORTS_ENV) or "srb-reports")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `run` command's options."""
    parser.add_argument(
        "--db",
        default=os.environ.get(DB_ENV),
        help=f"SQLAlchemy URL, e.g. mysql+pymysql://user:pass@host/db or sqlite:///file.db (default: ${DB_ENV})",
    )
    parser.add_argument("--osu-dir", help="directory (or pyarrow.fs URI) of {beatmap_id}.osu files "
                        "(required, except on --resume: the run's own)")
    parser.add_argument("--apply", action="store_true", help="insert the grants, recorded in the run's ledger "
                        "(default: dry run, database untouched)")
    parser.add_argument("--out", type=Path, help="write the grants to this .parquet or .csv file")
    parser.add_argument("--report", type=Path, help="write the summary as JSON to this file; the error samples "
                        "go next to it (NAME.errors.csv, NAME.stats-only.csv) (default: srb-reports/RUN_ID.json, or "
                        "under $SR_BACKFILL_REPORTS)")
    parser.add_argument("--workers", type=int, help="rater processes (default: the CPUs the Ray cluster offers, less "
                        "one for the scan and evaluate tasks and the writing driver; the run prints its choice)")
    parser.add_argument("--shard-rows", type=int, default=100_000, help="target score rows per shard")
    parser.add_argument("--batch-rows", type=int, default=1000, help="rows of the first write transaction, then "
                        "adapted to --chunk-time (default 1000)")
    parser.add_argument("--writers", type=int, default=None,
                        help="writer actors of an applied run, writing in parallel (default: one per node, at least 2)")
    parser.add_argument("--ray-address", default=os.environ.get("RAY_ADDRESS"), help="Ray cluster address (default: local)")
    parser.add_argument("--engine", default=DEFAULT_ENGINE, help=f"SR engine (default: {DEFAULT_ENGINE})")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--read", choices=READ_MODES, default="auto", help="how shards get their rows: scan the "
                        "tables in id ranges and hand rows to the shards, or read each shard's users by index "
                        "(default auto: scan when the run's users hold a quarter of the rows or more)")
    parser.add_argument("--scan-rows", type=int, default=250_000, help="rows per id range of a scan (default 250,000)")
    parser.add_argument("--wave-rows", type=int, help="most scanned rows waiting for their shards at once "
                        "(default: a third of the Ray object store)")

    store = parser.add_argument_group("star ratings: cache and missing maps")
    store.add_argument("--sr-cache", default=os.environ.get(CACHE_ENV, "srb-cache"),
                       help=f"persistent SR cache, a directory or pyarrow.fs URI shared by every node (default: "
                       f"${CACHE_ENV}, else ./srb-cache)")
    store.add_argument("--no-sr-cache", action="store_true", help="rate every key again, keep nothing")
    store.add_argument("--fetch-missing", metavar="URL_TEMPLATE",
                       help="download a missing or stale .osu into the store, e.g. "
                       "https://beatmaps.example/osu-files/{beatmap_id}; kept only if its md5 is the score's")
    store.add_argument("--fetch-rate", type=float, default=2.0, help="downloads per second per worker (default 2)")

    run = parser.add_argument_group("run id, checkpoint and resume")
    run.add_argument("--run-id", help="name the run (letters, digits, . _ -; default: a fresh id, printed)")
    run.add_argument("--resume", action="store_true", help="continue run --run-id with its stored plan, "
                     "skipping finished shards")

    scope = parser.add_argument_group("scope (typed filters; combined with AND)")
    scope.add_argument("--tier", choices=TIERS, default="all", help="users by users.latest_activity: active "
                       "(30 days), recent (365 days, not active), inactive (older), all (default)")
    scope.add_argument("--user-id", type=int, action="append", default=[], metavar="ID", help="only this user (repeatable)")
    scope.add_argument("--user-ids-file", type=Path, help="only the users listed in this file (one id per line, # comments)")
    scope.add_argument("--sample-users", type=int, metavar="N", help="a reproducible random sample of N users")
    scope.add_argument("--sample-seed", type=int, default=0, help="seed of --sample-users (default 0)")
    scope.add_argument("--tables", default=",".join(SCORE_TABLES), help="score tables, comma-separated "
                       f"(default: {','.join(SCORE_TABLES)})")
    scope.add_argument("--achievements", default="all", help="what may be granted, comma-separated: sr (skill "
                       "pass/FC), stat (play counts, hits incl. 97-99), mod, combo, secret (122 stumbler, 123 "
                       "jackpot), a family name, ids, or all (default: every achievement less_achievements holds "
                       "under the catalogue's file; ids it lacks are left out with a warning). Ids named here "
                       "must all be in less_achievements. Never granted: see the end of this help")
    scope.add_argument("--since", type=parse_time, help="only scores at or after this time may grant "
                       "(YYYY-MM-DD, YYYY-MM-DDTHH:MM:SS: UTC unless an offset follows, e.g. +02:00 or Z; or unix "
                       "seconds)")
    scope.add_argument("--until", type=parse_time, help="only scores before this time may grant (same formats)")
    scope.add_argument("--stats-fallback", choices=("report", "now"), default="report", help="play-count/hit "
                       "achievements only the current user_stats reach: report them (default) or grant them "
                       "dated now")

    live = parser.add_argument_group("beside live traffic: replica reads and the write governor (docs/LIVE.md)")
    live.add_argument("--read-db", default=os.environ.get(READ_DB_ENV), metavar="URL",
                      help=f"a replica for the bulk reads (plan counts, scans, per-user reads, lookups); "
                      f"what users already hold, the writes, ledger, locks and progress stay on --db "
                      f"(default: ${READ_DB_ENV}, else --db)")
    add_governor_options(live, "--read-db when it differs from --db")
    live.add_argument("--progress-interval", type=float, default=10.0, metavar="S", help="seconds between progress "
                      "lines when there is no terminal (default 10)")

    faults = parser.add_argument_group("database faults")
    add_retry_options(faults)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = "live achievements never granted (reported with their reason):\n" + "\n".join(
        f"  {line}" for line in describe_never_granted()
    )


def parse_time(text: str) -> int:
    """Unix seconds from "YYYY-MM-DD", "YYYY-MM-DDTHH:MM[:SS]" (UTC), the same with an offset
    ("...Z", "...+02:00": honoured) or an integer.

    Raises argparse.ArgumentTypeError for anything else.
    """
    if text.strip().lstrip("-").isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date, time or unix seconds: {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return calendar.timegm(moment.utctimetuple())


def read_user_ids(path: Path) -> tuple[int, ...]:
    """User ids from a file: one per line; blank lines and `#` comments ignored.

    Raises SystemExit naming the first bad line.
    """
    ids = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        if not text.isdigit():
            raise SystemExit(f"sr-backfill run: {path}:{number}: not a user id: {text!r}")
        ids.append(int(text))
    if not ids:
        raise SystemExit(f"sr-backfill run: {path} lists no user ids")
    return tuple(ids)


def config_from(args: argparse.Namespace) -> BackfillConfig:
    """A BackfillConfig from parsed `run` arguments. Exits with a usage error for a missing --db or
    --osu-dir, an unknown table or --achievements word, or a bad --user-ids-file."""
    if not args.db:
        raise SystemExit(f"sr-backfill run: --db is required (or set ${DB_ENV})")
    if not args.osu_dir and not args.resume:
        raise SystemExit("sr-backfill run: --osu-dir is required")
    if args.resume and not args.run_id:
        raise SystemExit("sr-backfill run: --resume needs --run-id")
    tables = tuple(t.strip() for t in args.tables.split(",") if t.strip())
    unknown = [t for t in tables if t not in SCORE_TABLES]
    if unknown or not tables:
        raise SystemExit(f"sr-backfill run: --tables takes {', '.join(SCORE_TABLES)}; got {args.tables!r}")
    try:
        achievement_ids = achievement_ids_for(args.achievements, load_catalogue())
        user_ids = tuple(args.user_id) + (read_user_ids(args.user_ids_file) if args.user_ids_file else ())
        scope = Scope(args.tier, user_ids, args.sample_users, args.sample_seed)
    except ValueError as exc:
        raise SystemExit(f"sr-backfill run: {exc}") from None
    if args.user_ids_file and not scope.user_ids:
        raise SystemExit(f"sr-backfill run: {args.user_ids_file} lists no user ids")
    limits, given = limits_from(args, "run")
    replicas = lag_replicas_from(args)
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
        write_batch_rows=args.batch_rows,
        writers=args.writers,
        run_id=args.run_id,
        resume=args.resume,
        scope=scope,
        tables=tables,
        achievement_ids=achievement_ids,
        since=args.since,
        until=args.until,
        stats_fallback=args.stats_fallback == "now",
        retry=retry_policy(args),
        sr_cache=None if args.no_sr_cache else args.sr_cache,
        fetch_missing=args.fetch_missing,
        fetch_rate=args.fetch_rate,
        read=args.read,
        scan_rows=args.scan_rows,
        wave_rows=args.wave_rows,
        read_url=args.read_db if args.read_db and args.read_db != args.db else None,
        lag_replicas=tuple(replicas) if replicas is not None else None,
        limits=limits,
        limits_given=given,
        progress_interval=args.progress_interval,
    )


def run(args: argparse.Namespace) -> int:
    """Run the backfill, print the summary, write the report (JSON + CSVs). Returns the exit code:
    0, or 1 when some shard failed (resume the run to retry them)."""
    config = config_from(args)
    if config.run_id is None:
        config = replace(config, run_id=new_run_id())
    check_run_id(config.run_id)
    print(f"run id: {config.run_id}" + (" (resuming)" if config.resume else "") + ("" if config.apply or config.resume
          else " (dry run)"), flush=True)
    summary = run_backfill(config)
    report = args.report if args.report else report_dir() / f"{summary.run_id}.json"
    write_run_report(summary.to_dict(), summary.stats_only_rows, report)
    print(format_summary(summary.to_dict()))
    paths = report_paths(report)
    print(f"  report              {paths['json']} (samples: {paths['errors']}, {paths['stats_only']})")
    return 1 if summary.shards_failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sr-backfill run", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":  # through the console script's handler: errors masked like everywhere else
    from jobs import cli

    sys.exit(cli.main(["run", *sys.argv[1:]]))
