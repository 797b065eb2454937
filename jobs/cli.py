"""The `sr-backfill` command: `run` (the backfill) and `demo`."""

from __future__ import annotations

import argparse
import sys

from cluster.pipeline import ConfigError
from conditions.errors import ConditionError
from jobs import backfill, demo, rate


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sr-backfill", description="Akatsuki achievement backfill with local star ratings.")
    commands = parser.add_subparsers(dest="command", required=True)
    backfill.add_arguments(commands.add_parser("run", help="evaluate achievements and write the grants"))
    demo.add_arguments(commands.add_parser("demo", help="build a SQLite demo database from the shipped maps and run"))
    rate.add_arguments(commands.add_parser("rate", help="star ratings for a CSV of .osu paths, modes and mods"))
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script. Returns the exit code (2 for a run that cannot start)."""
    args = build_parser().parse_args(argv)
    handlers = {"run": backfill.run, "demo": demo.run, "rate": rate.run}
    try:
        return handlers[args.command](args)
    except (ConfigError, ConditionError) as exc:
        print(f"sr-backfill {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
