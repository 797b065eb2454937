"""The `sr-backfill` command: `run` (the backfill), `control`, `demo`, `rollback`, `verify`, `consolidate-mode7` and more."""

from __future__ import annotations

import argparse
import os
import sys
import traceback

import sqlalchemy as sa

from cluster.db import mask_text
from cluster.errors import ClusterError
from cluster.pipeline import ConfigError
from conditions.errors import ConditionError
from jobs import (
    backfill,
    bench,
    compare,
    consolidation,
    control,
    demo,
    rate,
    rollback,
    synth,
    verify,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sr-backfill", description="Akatsuki achievement backfill with local star ratings.")
    commands = parser.add_subparsers(dest="command", required=True)
    backfill.add_arguments(commands.add_parser("run", help="evaluate achievements and write the grants"))
    demo.add_arguments(commands.add_parser("demo", help="build a SQLite demo database from the shipped maps and run"))
    rate.add_arguments(commands.add_parser("rate", help="star ratings for a CSV of .osu paths, modes and mods"))
    compare.add_arguments(commands.add_parser("compare", help="compare local star ratings with the performance service on a sample"))
    rollback.add_arguments(commands.add_parser("rollback", help="undo exactly what a recorded run inserted (preview by default)"))
    verify.add_arguments(commands.add_parser("verify", help="check the grants and the ledger; zero-achievement users and rarity"))
    consolidation.add_arguments(commands.add_parser("consolidate-mode7", help="copy legacy mode 7 rows to mode 8 (preview by default)"))
    synth.add_arguments(commands.add_parser("synth", help="build a production-shaped synthetic database and .osu directory"))
    bench.add_arguments(commands.add_parser("bench", help="benchmark the whole job on a synthetic database (docs/SCALING.md)"))
    control.add_arguments(commands.add_parser("control", help="pause, resume, re-limit or inspect a running run (docs/LIVE.md)"))
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script, and of `python -m jobs.backfill` / `jobs.bench` /
    `jobs.compare`. Returns the exit code (2 for a run that cannot start, 1 for a failure, 130 when
    interrupted). Every error is printed with credentials masked (cluster.db.mask_text): the known ones
    as one line, anything else as its traceback."""
    args = build_parser().parse_args(argv)
    urls = (getattr(args, "db", None), os.environ.get(backfill.DB_ENV))
    handlers = {"run": backfill.run, "demo": demo.run, "rate": rate.run, "compare": compare.run,
                "rollback": rollback.run, "verify": verify.run, "consolidate-mode7": consolidation.run,
                "synth": synth.run, "bench": bench.run, "control": control.run}
    try:
        return handlers[args.command](args)
    except (ConfigError, ConditionError) as exc:
        print(f"sr-backfill {args.command}: {mask_text(str(exc), *urls)}", file=sys.stderr)
        return 2
    except (ClusterError, sa.exc.SQLAlchemyError) as exc:  # the database failed: never print its URL
        detail = str(getattr(exc, "orig", None) or exc)
        print(f"sr-backfill {args.command}: {type(exc).__name__}: {mask_text(detail, *urls)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"sr-backfill {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception:  # unexpected: the traceback helps, masked like every other message
        print(mask_text(traceback.format_exc(), *urls), file=sys.stderr)
        print(f"sr-backfill {args.command}: failed (traceback above)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
