"""Command-line options shared by the commands that write to the database (run, rollback, consolidate-mode7)."""

from __future__ import annotations

import argparse
import os

from cluster.control import Governance
from cluster.db import RetryPolicy
from cluster.governor import DEFAULT_LIMITS, LIMIT_NAMES, WriteLimits

LAG_REPLICAS_ENV = "SR_BACKFILL_LAG_REPLICAS"


def add_retry_options(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """--db-retries and --db-retry-wait (seconds, doubling per retry)."""
    parser.add_argument("--db-retries", type=int, default=6, help="tries per database operation (default 6)")
    parser.add_argument("--db-retry-wait", type=float, default=0.5,
                        help="seconds before the first retry; doubles each time (default 0.5)")


def retry_policy(args: argparse.Namespace) -> RetryPolicy:
    """The RetryPolicy the retry options describe (at least one try)."""
    return RetryPolicy(attempts=max(1, args.db_retries), base_seconds=args.db_retry_wait)


def add_governor_options(group: argparse.ArgumentParser | argparse._ArgumentGroup, lag_default: str) -> None:
    """The write governor's options (docs/LIVE.md): --lag-replica (repeatable), --max-lag,
    --max-threads-running, --window, --max-write-rate, --chunk-time. `lag_default` ends the
    --lag-replica help: what it defaults to without $SR_BACKFILL_LAG_REPLICAS."""
    group.add_argument("--lag-replica", action="append", metavar="URL", help="a replica whose lag (by heartbeat) "
                       f"holds the writes (repeatable; default: ${LAG_REPLICAS_ENV}, space-separated, else "
                       f"{lag_default})")
    group.add_argument("--max-lag", type=float, metavar="S", help="hold writes while a lag replica is more than S "
                       f"seconds behind (default {DEFAULT_LIMITS.max_lag:g})")
    group.add_argument("--max-threads-running", type=int, metavar="N", help="hold writes while the primary's "
                       f"Threads_running is above N (default {DEFAULT_LIMITS.max_threads_running})")
    group.add_argument("--window", metavar="HH:MM-HH:MM", help="write only inside this daily UTC window (wraps "
                       "past midnight, e.g. 22:00-06:00; default: any time)")
    group.add_argument("--max-write-rate", type=float, metavar="N", help="at most N rows per second over the "
                       "whole run (default: unlimited)")
    group.add_argument("--chunk-time", type=float, metavar="S", help="adapt the batch size (100-5,000 rows) so "
                       f"that one write transaction takes about S seconds (default {DEFAULT_LIMITS.chunk_time:g})")


def limits_from(args: argparse.Namespace, command: str) -> tuple[WriteLimits, frozenset[str]]:
    """The write limits of the governor options (DEFAULT_LIMITS where not given; batch_rows from
    --batch-rows) and the names given. Exits with a usage error naming `command` for a bad one."""
    given = {name: getattr(args, name) for name in LIMIT_NAMES if getattr(args, name, None) is not None}
    try:
        limits = WriteLimits(**{**{name: getattr(DEFAULT_LIMITS, name) for name in LIMIT_NAMES}, **given},
                             batch_rows=args.batch_rows).checked()
    except ValueError as exc:
        raise SystemExit(f"sr-backfill {command}: {exc}") from None
    return limits, frozenset(given)


def governance_from(args: argparse.Namespace, command: str) -> Governance:
    """How a one-process writer (rollback, consolidate-mode7) is governed by its governor options
    (`limits_from`; lag replicas from `lag_replicas_from`, none by default)."""
    limits, given = limits_from(args, command)
    return Governance(limits, given, tuple(lag_replicas_from(args) or ()))


def lag_replicas_from(args: argparse.Namespace) -> list[str] | None:
    """--lag-replica's URLs, else $SR_BACKFILL_LAG_REPLICAS (space-separated), else None (the command's
    own default)."""
    replicas = args.lag_replica
    if replicas is None and os.environ.get(LAG_REPLICAS_ENV):
        replicas = os.environ[LAG_REPLICAS_ENV].split()
    return replicas
