"""A persistent SR cache: ratings kept across runs as Parquet files, per engine name and version.

Layout under a local path or pyarrow.fs URI (`s3://bucket/sr-cache`):
    {root}/{engine name}/{engine version slug}/part-{uuid}.parquet
with columns beatmap_md5 string, mode_vn int8, mods int64 (the engine's narrowed key mods), sr_raw
float64, sr float64, skip_reason string. A new engine version reads an empty directory: nothing rated
by another algorithm is ever reused. Only results that depend on the beatmap's content alone are
kept (ratings, bad format, impossible convert, non-finite, failed autopilot rewrite); a missing or
stale file or an engine failure may be fixed by the next run, so they are not cached.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from sr.keys import SR_RESULT_SCHEMA

CACHEABLE_REASONS = ("bad_format", "impossible_convert", "non_finite", "autopilot_rewrite")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")


class SRCache:
    """Ratings of one engine version under `location`; `load` reads them, `write` adds a part file."""

    def __init__(self, location: str | Path, engine_name: str, engine_version: str) -> None:
        location = str(location)
        if "://" in location:
            self.filesystem, root = pafs.FileSystem.from_uri(location)
        else:
            self.filesystem, root = pafs.LocalFileSystem(), str(Path(location).resolve())
        self.directory = f"{root.rstrip('/')}/{_slug(engine_name)}/{_slug(engine_version)}"
        self.filesystem.create_dir(self.directory, recursive=True)

    def load(self, keep=None, select: Callable[[pa.RecordBatch], pa.Array] | None = None,
             batch_rows: int = 32_768) -> pa.Table:
        """Every cached row (SR_RESULT_SCHEMA), optionally filtered by `keep`, a pyarrow compute
        expression on the columns, and by `select`, a function of a record batch returning a boolean
        mask of the rows to keep (e.g. a rater's share of the beatmaps: cluster.workers.routed). With
        `select` the parts are streamed `batch_rows` rows at a time, one batch in memory besides the
        rows kept. Duplicates are dropped."""
        dataset = ds.dataset(self.directory, format="parquet", filesystem=self.filesystem, schema=SR_RESULT_SCHEMA)
        if select is None:
            table = dataset.to_table(filter=keep)
        else:
            kept = []
            for batch in dataset.to_batches(filter=keep, batch_size=batch_rows, batch_readahead=0,
                                            fragment_readahead=0, use_threads=False):
                part = batch.filter(select(batch))
                if part.num_rows:
                    kept.append(part)
            table = pa.Table.from_batches(kept, schema=SR_RESULT_SCHEMA)
        if table.num_rows == 0:
            return SR_RESULT_SCHEMA.empty_table()
        return table.group_by(["beatmap_md5", "mode_vn", "mods"], use_threads=False).aggregate(
            [(name, "first") for name in ("sr_raw", "sr", "skip_reason")]
        ).rename_columns(SR_RESULT_SCHEMA.names).cast(SR_RESULT_SCHEMA)

    def write(self, results: pa.Table) -> int:
        """Add the cacheable rows of `results` (SR_RESULT_SCHEMA) as one new part file. Returns rows kept."""
        reason = results.column("skip_reason")
        keep = pc.or_(pc.is_null(reason), pc.is_in(reason, pa.array(CACHEABLE_REASONS)))
        rows = results.filter(keep).cast(SR_RESULT_SCHEMA)
        if rows.num_rows:
            name = f"part-{uuid.uuid4().hex}.parquet"
            if isinstance(self.filesystem, pafs.LocalFileSystem):
                # written under a name dataset discovery skips ("_"), then renamed: a process killed
                # mid-write (a crashed rater) leaves no half-written part for the next load to trip on
                partial = f"{self.directory}/_{name}.partial"
                with self.filesystem.open_output_stream(partial) as stream:
                    pq.write_table(rows, stream)
                self.filesystem.move(partial, f"{self.directory}/{name}")
            else:  # object stores publish an object only once its upload completes
                with self.filesystem.open_output_stream(f"{self.directory}/{name}") as stream:
                    pq.write_table(rows, stream)
        return rows.num_rows
