"""Fast loading of Arrow batches into production tables (synthetic data at production scale, testbed.scale).

    with BulkLoader(db_url, log=print, rebuild_indexes=("scores", "scores_relax")) as loader:
        loader.load("scores", batch)        # batch: pa.Table whose column names are the table's columns
    loader.loads["scores"].rows_per_second

Methods, chosen once per loader:
- MySQL/MariaDB, server `@@local_infile` ON: `LOAD DATA LOCAL INFILE` from one temporary CSV per batch
  (pyarrow writes it, strings quoted, nulls as the bare word NULL, which LOAD DATA reads as NULL when
  fields may be enclosed; the client flag is set by the loader, `connect_args={"local_infile": True}`).
  With LOCAL the server turns bad values and duplicate keys into warnings, so every load checks that
  it stored exactly the batch's rows without a warning, and raises testbed.errors.RowsNotStored otherwise.
- MySQL/MariaDB, `@@local_infile` OFF: multi-row INSERTs (PyMySQL's executemany packs rows into
  statements of up to ~1 MB), with a message through `log` saying so and how to turn LOAD DATA on.
- SQLite: executemany in one transaction per batch.

Secondary indexes. InnoDB keeps every secondary index up to date row by row; once a table's indexes
outgrow the buffer pool each row costs random reads (measured by the issue author: 1.9M score rows in
69 s, the next 4.4M in 642 s with MariaDB's default 128 MB pool). Two remedies, both optional:
- `rebuild_indexes`: tables whose secondary indexes (every index but the primary key, read from the
  live table, so a database built from production DDL keeps its own) are dropped when the loader opens
  and added back, all in one `ALTER TABLE` per table (a sorted build), when it closes, also after an
  error. Meant for empty tables.
- `buffer_pool_bytes`: `SET GLOBAL innodb_buffer_pool_size` to at least this while loading, restored on
  close (needs SUPER or SYSTEM_VARIABLES_ADMIN; if refused the load goes on and `log` says so).
"""

from __future__ import annotations

import re
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import pyarrow as pa
import pyarrow.csv as pacsv
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from cluster.db import mask_text, mask_url
from testbed.errors import IndexDropFailed, IndexRestoreFailed, RowsNotStored

_INDEX_LINE = re.compile(r"^\s*(?:UNIQUE |FULLTEXT |SPATIAL )?KEY `(?P<name>[^`]+)` .*$")


@dataclass(slots=True)
class TableLoad:
    """What one table received: rows, seconds spent loading them, the method used, and the seconds
    spent restoring its secondary indexes (0 when none were rebuilt)."""

    table: str
    method: str
    rows: int = 0
    seconds: float = 0.0
    batches: int = 0
    index_seconds: float = 0.0

    @property
    def rows_per_second(self) -> float:
        """Rows per second of load time (index rebuild not included)."""
        return self.rows / self.seconds if self.seconds > 0 else 0.0


class BulkLoader:
    """Loads Arrow tables into `db_url` (SQLite or MySQL/MariaDB) by the fastest method available.

    db_url: SQLAlchemy URL; log: called with one line per notable event (method chosen, fallback,
    buffer pool changes, index rebuilds); tmp_dir: where the temporary CSVs go (system default if
    None); rebuild_indexes: table names whose secondary indexes are dropped for the load (MySQL only);
    buffer_pool_bytes: a minimum InnoDB buffer pool size while loading (MySQL only; None leaves it).
    """

    def __init__(
        self,
        db_url: str,
        *,
        log: Callable[[str], None] | None = None,
        tmp_dir: Path | None = None,
        rebuild_indexes: Sequence[str] = (),
        buffer_pool_bytes: int | None = None,
    ) -> None:
        self.db_url = db_url
        self.log = log or (lambda line: None)
        self.tmp_dir = tmp_dir
        self.rebuild_indexes = tuple(rebuild_indexes)
        self.buffer_pool_bytes = buffer_pool_bytes
        self.loads: dict[str, TableLoad] = {}
        self.method = ""
        self.notes: list[str] = []
        self._engine: sa.Engine | None = None
        self._dropped: dict[str, list[str]] = {}  # table -> index definitions to add back
        self._pool_before: int | None = None
        self._tmp: tempfile.TemporaryDirectory | None = None

    # -- lifecycle ----------------------------------------------------------------------------------

    def __enter__(self) -> Self:
        url = sa.engine.make_url(self.db_url)
        self._mysql = url.get_backend_name() in ("mysql", "mariadb")
        if self._mysql:
            self._engine = sa.create_engine(url, poolclass=NullPool, connect_args={"local_infile": True})
            with self._engine.connect() as conn:
                local_infile = int(conn.exec_driver_sql("SELECT @@local_infile").scalar_one() or 0)
            if local_infile:
                self.method = "load data local infile"
            else:
                self.method = "multi-row insert"
                self._note(
                    f"the server at {mask_url(self.db_url)} has local_infile OFF: loading with multi-row INSERTs "
                    "(slower; `SET GLOBAL local_infile = 1` or start the server with --local-infile=1 to use LOAD DATA)"
                )
            self._tmp = tempfile.TemporaryDirectory(prefix="srb-load-", dir=self.tmp_dir)
            try:
                self._raise_buffer_pool()
                for table in self.rebuild_indexes:
                    self._drop_secondary_indexes(table)
            except BaseException:
                self.__exit__(None, None, None)
                raise
        else:
            self._engine = sa.create_engine(url, poolclass=NullPool)
            self.method = "sqlite executemany" if url.get_backend_name() == "sqlite" else "executemany"
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        errors: list[BaseException] = []
        for table in list(self._dropped):
            try:
                self._restore_indexes(table)
            except BaseException as error:  # noqa: BLE001 - restore the others, then re-raise
                errors.append(error)
        try:
            self._restore_buffer_pool()
        except BaseException as error:  # noqa: BLE001
            errors.append(error)
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
        if self._engine is not None:
            self._engine.dispose()
        if errors and exc_type is None:
            raise errors[0]

    def _note(self, line: str) -> None:
        self.notes.append(line)
        self.log(line)

    # -- loading ------------------------------------------------------------------------------------

    def load(self, table: str, batch: pa.Table) -> None:
        """Append the rows of `batch` (columns named as the table's) to `table`, in batch order."""
        if self._engine is None:
            raise RuntimeError("BulkLoader.load outside `with BulkLoader(...)`")
        entry = self.loads.setdefault(table, TableLoad(table, self.method))
        if batch.num_rows == 0:
            return
        started = time.perf_counter()
        if self.method == "load data local infile":
            self._load_data(table, batch)
        else:
            self._executemany(table, batch)
        entry.seconds += time.perf_counter() - started
        entry.rows += batch.num_rows
        entry.batches += 1

    def _load_data(self, table: str, batch: pa.Table) -> None:
        path = Path(self._tmp.name) / f"{table}.csv"
        pacsv.write_csv(batch, path, pacsv.WriteOptions(include_header=False, quoting_style="needed", null_string="NULL"))
        columns = ", ".join(f"`{name}`" for name in batch.column_names)
        statement = (
            f"LOAD DATA LOCAL INFILE %s INTO TABLE `{table}` CHARACTER SET utf8mb4 "
            "FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"' ESCAPED BY '' "
            f"LINES TERMINATED BY '\\n' ({columns})"
        )
        try:
            with self._engine.begin() as conn:
                cursor = conn.connection.driver_connection.cursor()
                try:
                    stored = cursor.execute(statement, (str(path),))
                    cursor.execute("SELECT @@warning_count")
                    warnings = int(cursor.fetchone()[0])
                    shown = []
                    if warnings:
                        cursor.execute("SHOW WARNINGS LIMIT 3")
                        shown = [" ".join(str(part) for part in row) for row in cursor.fetchall()]
                finally:
                    cursor.close()
                if stored != batch.num_rows or warnings:
                    raise RowsNotStored(table, stored, batch.num_rows, warnings, shown)
        finally:
            path.unlink(missing_ok=True)

    def _executemany(self, table: str, batch: pa.Table) -> None:
        placeholder = "%s" if self._mysql else "?"
        quote = "`" if self._mysql else '"'
        columns = ", ".join(f"{quote}{name}{quote}" for name in batch.column_names)
        values = ", ".join(placeholder for _ in batch.column_names)
        statement = f"INSERT INTO {quote}{table}{quote} ({columns}) VALUES ({values})"
        rows = list(zip(*(column.to_pylist() for column in batch.columns)))
        with self._engine.begin() as conn:
            conn.exec_driver_sql(statement, rows)

    # -- buffer pool --------------------------------------------------------------------------------

    def _raise_buffer_pool(self) -> None:
        if not self.buffer_pool_bytes:
            return
        with self._engine.connect() as conn:
            current = int(conn.exec_driver_sql("SELECT @@innodb_buffer_pool_size").scalar_one())
            if current >= self.buffer_pool_bytes:
                return
            try:
                conn.exec_driver_sql(f"SET GLOBAL innodb_buffer_pool_size = {int(self.buffer_pool_bytes)}")
            except sa.exc.DBAPIError as exc:
                detail = mask_text(str(exc.orig), self.db_url)
                self._note(f"could not raise innodb_buffer_pool_size from {current >> 20} MB (load goes on): {detail}")
                return
            self._pool_before = current
            now = self._wait_for_pool(conn)
        self._note(f"innodb_buffer_pool_size raised from {current >> 20} MB to {now >> 20} MB for the load")

    def _restore_buffer_pool(self) -> None:
        if self._pool_before is None:
            return
        before, self._pool_before = self._pool_before, None
        with self._engine.connect() as conn:
            conn.exec_driver_sql(f"SET GLOBAL innodb_buffer_pool_size = {before}")
            now = self._wait_for_pool(conn)
        self._note(f"innodb_buffer_pool_size restored to {now >> 20} MB")

    @staticmethod
    def _wait_for_pool(conn: sa.Connection, timeout: float = 120.0) -> int:
        """Wait until a buffer pool resize reports done (or `timeout` seconds); the size now in bytes."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            row = conn.exec_driver_sql("SHOW GLOBAL STATUS LIKE 'Innodb_buffer_pool_resize_status'").fetchone()
            status = (row[1] if row else "") or ""
            if not status or "complete" in status.lower() or "finished" in status.lower():
                break
            time.sleep(0.2)
        return int(conn.exec_driver_sql("SELECT @@innodb_buffer_pool_size").scalar_one())

    # -- secondary indexes --------------------------------------------------------------------------

    def _drop_secondary_indexes(self, table: str) -> None:
        with self._engine.connect() as conn:
            create = conn.exec_driver_sql(f"SHOW CREATE TABLE `{table}`").fetchone()[1]
            definitions = []
            for line in create.splitlines():
                match = _INDEX_LINE.match(line)
                if match:
                    definitions.append((match.group("name"), line.strip().rstrip(",")))
            if not definitions:
                return
            started = time.perf_counter()
            drops = ", ".join(f"DROP INDEX `{name}`" for name, _ in definitions)
            try:
                conn.exec_driver_sql(f"ALTER TABLE `{table}` {drops}")
            except sa.exc.DBAPIError as exc:
                raise IndexDropFailed(table, mask_text(str(exc.orig), self.db_url)) from None
        self._dropped[table] = [definition for _, definition in definitions]
        self._note(f"{table}: dropped {len(definitions)} secondary indexes for the load "
                   f"({time.perf_counter() - started:.1f} s); they are added back after it")

    def _restore_indexes(self, table: str) -> None:
        definitions = self._dropped.pop(table)
        started = time.perf_counter()
        adds = ", ".join(f"ADD {definition}" for definition in definitions)
        try:
            with self._engine.connect() as conn:
                conn.exec_driver_sql(f"ALTER TABLE `{table}` {adds}")
        except sa.exc.DBAPIError as exc:
            raise IndexRestoreFailed(table, definitions, mask_text(str(exc.orig), self.db_url)) from None
        seconds = time.perf_counter() - started
        self.loads.setdefault(table, TableLoad(table, self.method)).index_seconds += seconds
        self._note(f"{table}: {len(definitions)} secondary indexes added back in {seconds:.1f} s")


__all__ = ("BulkLoader", "TableLoad")
