"""`sr-backfill control`: pause, resume, re-limit or inspect a running backfill run.

    sr-backfill control [--db URL] --run-id ID pause | resume | status [--json]
    sr-backfill control [--db URL] --run-id ID set max-write-rate=N|none max-lag=S max-threads-running=N
                                                   window=HH:MM-HH:MM|none chunk-time=S

Commands go through the run's control row on the primary (cluster.control), which the run's governor
reads every few seconds (2 by default): a pause holds every write batch within that, a resume lets them
go. The row outlives the process: a killed run resumed with `run --resume` keeps what was set here,
paused included. `status` reads what the run publishes every 2 seconds (state and why, grants per
second over the last minute, lag, Threads_running, batch size, shards done, ETA).
"""

from __future__ import annotations

import argparse
import json
import os

from cluster.control import STALE_STATUS_SECONDS, change_control, describe_run
from cluster.db import Database
from cluster.governor import WriteLimits, format_seconds, parse_limit
from jobs.backfill import DB_ENV

ACTIONS = ("pause", "resume", "status", "set")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", default=os.environ.get(DB_ENV), help=f"the run's primary (default: ${DB_ENV})")
    parser.add_argument("--run-id", required=True, help="the run to control")
    parser.add_argument("action", choices=ACTIONS, help="pause, resume, status, or set LIMIT=VALUE ...")
    parser.add_argument("settings", nargs="*", metavar="LIMIT=VALUE", help="for set: max-write-rate=N (or none), "
                        "max-lag=S, max-threads-running=N, window=HH:MM-HH:MM (or none), chunk-time=S")
    parser.add_argument("--json", action="store_true", help="status: print the JSON the run published")


def parse_settings(settings: list[str]) -> dict:
    """`LIMIT=VALUE` words as WriteLimits fields. Raises ValueError for a bad word, limit or value."""
    if not settings:
        raise ValueError("set needs at least one LIMIT=VALUE (max-write-rate, max-lag, max-threads-running, "
                         "window, chunk-time)")
    out: dict = {}
    for word in settings:
        if "=" not in word:
            raise ValueError(f"expected LIMIT=VALUE, got {word!r}")
        name, value = word.split("=", 1)
        out.update(parse_limit(name, value))
    return out


def format_status(run: dict) -> str:
    """The text `control status` prints for `cluster.control.describe_run`'s dict."""
    status = run.get("status") or {}
    governor = status.get("governor") or {}
    age = run.get("status_age_s")
    live = run["running"] and age is not None and age <= STALE_STATUS_SECONDS
    if run["record_status"] != "running":
        headline = run["record_status"]
    elif live:
        headline = status.get("state", "?")
    elif run["running"]:
        headline = "running (no fresh status)"
    else:
        headline = "not running (stopped or killed: resume it with run --run-id ID --resume)"
    limits = WriteLimits(**{k: v for k, v in (run.get("limits") or {}).items() if k != "batch_rows"})
    lag = governor.get("lag") or {}
    lines = [
        f"run {run['run_id']}: {headline}",
        f"  limits            {limits.describe() if run.get('limits') else 'none stored'}",
        f"  shards            {run['shards_done']} / {run['shards_planned']} done"
        + (f", {run['shards_failed']} failed" if run["shards_failed"] else "")
        + (f", ETA {format_seconds(status.get('eta_seconds'))}" if live else ""),
    ]
    if status:
        lines += [
            f"  grants/s          {governor.get('grants_per_s', 0):,.1f} over the last minute "
            f"({governor.get('rows_written', 0):,} written this session)" if governor else
            "  grants/s          - (no governor)",
            "  replica lag       " + (", ".join(f"{name} {'unknown' if value is None else f'{value:.1f} s'}"
                                              for name, value in lag.items()) or "no lag replicas"),
            f"  Threads_running   {governor.get('threads_running', '-') if governor else '-'}",
            f"  batch size        {governor.get('batch_rows', '-') if governor else '-'} rows",
            f"  scores            {status.get('scores_read', 0):,} read ({status.get('scores_per_s', 0):,.0f}/s)",
            "  held              " + (", ".join(f"{reason} {seconds:,.1f} s" for reason, seconds in
                                                (governor.get("held_seconds") or {}).items()) or "never"),
            f"  published         {age} s ago by {status.get('host', '?')} pid {status.get('pid', '?')}",
        ]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Carry out one control command; returns 0 (2 for bad settings, raised as ConfigError/SystemExit)."""
    if not args.db:
        raise SystemExit(f"sr-backfill control: --db is required (or set ${DB_ENV})")
    database = Database(args.db)
    try:
        if args.action == "status":
            run_state = describe_run(database.engine, args.run_id)
            print(json.dumps(run_state, indent=2, default=str) if args.json else format_status(run_state))
            return 0
        if args.action == "set":
            try:
                changes = parse_settings(args.settings)
            except ValueError as exc:
                raise SystemExit(f"sr-backfill control: {exc}") from None
            limits = change_control(database.engine, args.run_id, **changes)
        else:
            if args.settings:
                raise SystemExit(f"sr-backfill control: {args.action} takes no settings")
            limits = change_control(database.engine, args.run_id, paused=args.action == "pause")
        print(f"run {args.run_id}: {limits.describe()} (the run takes it within a few seconds)")
        return 0
    finally:
        database.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sr-backfill control", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return run(parser.parse_args(argv))
