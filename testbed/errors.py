# TestbedError                     building or loading a test bed cannot go on (a mixin: each leaf also
#                                  subclasses what its callers already catch, named in brackets)
#   TargetNotEmpty [ConfigError]   synth: a table it writes already holds rows
#   DemoDatabaseNotEmpty [RuntimeError]
#                                  demo: a table it writes already holds rows
#   BulkLoadError [ClusterError]   a bulk load into `table` failed; one leaf per reason:
#     RowsNotStored                LOAD DATA stored other rows than the batch's, or warned
#     IndexDropFailed              the secondary indexes could not be dropped before the load
#     IndexRestoreFailed           the secondary indexes could not be added back after it
"""Errors of the test bed (testbed/: derived maps, demo and synthetic data, bulk loads, the benchmark).

Each leaf keeps the base its callers caught before it moved here: `sr-backfill` prints a ConfigError
and exits 2, and reports any other ClusterError by its type with exit 1 (jobs/cli.py). Messages are
safe to print: database URLs in them are masked, never raw.
"""

from __future__ import annotations

from cluster.db import mask_url
from cluster.errors import ClusterError, ConfigError


class TestbedError(Exception):
    """Base of the test bed's errors."""

    __test__ = False  # not a pytest test class, whatever its name


def _listing(tables: dict[str, int]) -> str:
    return ", ".join(f"{name} ({rows} rows)" for name, rows in tables.items())


class TargetNotEmpty(TestbedError, ConfigError):
    """The database already holds rows in a table synth writes (`tables`: name -> rows); synthetic
    databases are built fresh."""

    def __init__(self, url: str, tables: dict[str, int]) -> None:
        self.tables = tables
        super().__init__(f"{mask_url(url)} already holds rows in {_listing(tables)}; synth builds into an empty "
                         "database (create a new one, or drop these tables first)")


class DemoDatabaseNotEmpty(TestbedError, RuntimeError):
    """The target database already holds demo tables with rows (`tables`: name -> rows); demo databases
    are built fresh. `url` is the database as shown (password hidden)."""

    def __init__(self, url: str, tables: dict[str, int]) -> None:
        self.url = url
        self.tables = tables
        super().__init__(f"demo databases are built fresh, but {url} already holds rows in {_listing(tables)}; "
                         "delete the old database (or SQLite file) first")


class BulkLoadError(TestbedError, ClusterError):
    """A bulk load into `table` failed (testbed.bulkload). Raised as one of its leaves."""

    def __init__(self, table: str, detail: str) -> None:
        self.table = table
        super().__init__(f"{table}: {detail}")


class RowsNotStored(BulkLoadError):
    """LOAD DATA LOCAL stored `stored` rows of a batch of `expected`, or stored them with `warnings`
    warnings (LOCAL turns bad values and duplicate keys into warnings); `shown` holds up to three."""

    def __init__(self, table: str, stored: int, expected: int, warnings: int, shown: list[str]) -> None:
        self.stored, self.expected, self.warnings = stored, expected, warnings
        super().__init__(table, f"LOAD DATA stored {stored} of {expected} rows with {warnings} warning(s): "
                         + "; ".join(shown))


class IndexDropFailed(BulkLoadError):
    """The server refused to drop `table`'s secondary indexes before the load; `detail` is its masked
    message. Nothing was loaded."""

    def __init__(self, table: str, detail: str) -> None:
        super().__init__(table, f"could not drop secondary indexes: {detail}")


class IndexRestoreFailed(BulkLoadError):
    """The server refused to add `table`'s secondary indexes back after the load: `definitions` are the
    index definitions to add by hand; `detail` is its masked message."""

    def __init__(self, table: str, definitions: list[str], detail: str) -> None:
        self.definitions = definitions
        super().__init__(table, f"could not restore secondary indexes ({'; '.join(definitions)}): {detail}")


__all__ = ("BulkLoadError", "DemoDatabaseNotEmpty", "IndexDropFailed", "IndexRestoreFailed", "RowsNotStored",
           "TargetNotEmpty", "TestbedError")
