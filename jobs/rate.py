"""`sr-backfill rate`: star ratings for a CSV of (path, mode, mods), for spot checks and vectors."""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv

from sr.engines import DEFAULT_ENGINE, ENGINE_NAMES, engine_named
from sr.rate import rate_paths


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", type=Path, required=True, help="CSV with columns path,mode,mods")
    parser.add_argument("--output", type=Path, required=True, help="CSV to write: input columns plus stars,sr,error")
    parser.add_argument("--osu-root", type=Path, required=True, help="directory the paths are relative to")
    parser.add_argument("--engine", default=DEFAULT_ENGINE, choices=ENGINE_NAMES, help=f"default: {DEFAULT_ENGINE}")


def run(args: argparse.Namespace) -> int:
    """Rate every input row and write the output CSV; print counts. Returns the exit code."""
    requests = pacsv.read_csv(
        args.input,
        convert_options=pacsv.ConvertOptions(column_types={"path": pa.string(), "mode": pa.int64(), "mods": pa.int64()}),
    )
    engine = engine_named(args.engine)
    rated = rate_paths(requests, args.osu_root, engine)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    pacsv.write_csv(rated, args.output)
    errors = Counter(error for error in rated.column("error").to_pylist() if error)
    print(
        f"rated {rated.num_rows - sum(errors.values()):,} of {rated.num_rows:,} rows with {engine.name} ({engine.version})"
        + (f"; errors: {', '.join(f'{reason} {count}' for reason, count in sorted(errors.items()))}" if errors else "")
    )
    return 0
