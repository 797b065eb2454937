"""Command-line options shared by the commands that write to the database (run, rollback, consolidate-mode7)."""

from __future__ import annotations

import argparse

from cluster.db import RetryPolicy


def add_retry_options(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """--db-retries and --db-retry-wait (seconds, doubling per retry)."""
    parser.add_argument("--db-retries", type=int, default=6, help="tries per database operation (default 6)")
    parser.add_argument("--db-retry-wait", type=float, default=0.5,
                        help="seconds before the first retry; doubles each time (default 0.5)")


def retry_policy(args: argparse.Namespace) -> RetryPolicy:
    """The RetryPolicy the retry options describe (at least one try)."""
    return RetryPolicy(attempts=max(1, args.db_retries), base_seconds=args.db_retry_wait)
