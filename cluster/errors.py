# ClusterError                     a run, rollback, verify or consolidation cannot go on
#   ConfigError                    the run cannot start: raised before any shard starts or any row is written
#     CatalogueMismatch            less_achievements names a catalogue id with another `file`, or lacks one asked for
#     RunStateError                a run id that is unknown, already taken, finished, rolled back or in use
#     ScanPlanError                the scan plan would read a non-empty score table as empty or short
#   LedgerReadBack                 the ids a write batch inserted could not all be read back: the batch is not committed
#   ScanShort                      a shard read fewer rows of a table than its users held: nothing of it written
#   DatabaseUnavailable            a retryable database error (lost connection, deadlock, lock wait) outlived its retries
#   ConsolidationNotVerified       a mode 7 row has no mode 8 counterpart after the copy: nothing was deleted
"""Errors of the cluster layer (database I/O, runs, ledger, shards).

Every message is safe to print: database URLs in it are masked (`cluster.db.mask_url`), never raw.
Database driver errors are translated at the boundary with `raise ... from exc`.
"""

from __future__ import annotations


class ClusterError(Exception):
    """Base of the cluster layer's errors."""


class ConfigError(ClusterError):
    """The run cannot start: a missing table, a bad output path, an unknown engine or achievement id,
    a bad scope. Raised before any shard starts."""


class CatalogueMismatch(ConfigError):
    """`less_achievements` holds a catalogue achievement the run may grant under another `file` (the
    live server matches its functions to rows by `file`), or lacks one the run asked for by
    `--achievements` (a run over the whole catalogue leaves such ids out instead).

    `missing` are the asked-for ids absent from the table; `differing` maps id -> (catalogue file,
    table file).
    """

    def __init__(self, missing: tuple[int, ...], differing: dict[int, tuple[str, str]]) -> None:
        self.missing = missing
        self.differing = differing
        parts = []
        if missing:
            parts.append(f"missing from less_achievements: ids {list(missing)}")
        if differing:
            shown = ", ".join(f"{i} (catalogue {c!r}, table {t!r})" for i, (c, t) in sorted(differing.items()))
            parts.append(f"different `file`: {shown}")
        ids = sorted(set(missing) | set(differing))
        super().__init__(f"catalogue check failed for ids {ids}: " + "; ".join(parts))

    @property
    def ids(self) -> tuple[int, ...]:
        """Every differing id, ascending."""
        return tuple(sorted(set(self.missing) | set(self.differing)))


class RunStateError(ConfigError):
    """A run id cannot be used for this command: unknown (resume, rollback), already taken (a new run),
    finished or rolled back (resume), or held by another process. `run_id` names it."""

    def __init__(self, run_id: str, detail: str) -> None:
        self.run_id = run_id
        super().__init__(f"run {run_id}: {detail}")


class ScanPlanError(ConfigError):
    """The id ranges planned for a score table do not cover every id between its lowest and highest
    id, so a non-empty table would be read as empty or short. `table` names it."""

    def __init__(self, table: str, detail: str) -> None:
        self.table = table
        super().__init__(f"scan plan for {table}: {detail}")


class LedgerReadBack(ClusterError):
    """The users_achievements ids a write batch inserted could not all be read back by key: the batch's
    transaction is rolled back (nothing of it is committed, so the ledger stays exact). `expected` and
    `found` count the keys."""

    def __init__(self, expected: int, found: int) -> None:
        self.expected, self.found = expected, found
        super().__init__(f"read back {found} of the {expected} ids a write batch inserted: the batch was rolled back")


class ScanShort(ClusterError):
    """A shard's reads delivered fewer rows of a score table than its users held when the run planned:
    the shard is failed and nothing of it is written (a resume counts and reads it again). `table`,
    `expected`, `read` and `shard` name the shortfall."""

    def __init__(self, table: str, expected: int, read: int, shard: int) -> None:
        self.table, self.expected, self.read, self.shard = table, expected, read, shard
        super().__init__(
            f"shard {shard} read {read} rows of {table}, its users held {expected} rows when the run planned: "
            "nothing of the shard was written (resume the run with --resume)")


class DatabaseUnavailable(ClusterError):
    """A database operation kept failing with a retryable error (MySQL 2003, 2006, 2013, 1205, 1213 or a
    dropped connection) until its retries ran out. `code` is the last MySQL error code (None if the
    driver gave none), `attempts` the tries made, `operation` what was being done."""

    def __init__(self, operation: str, code: int | None, attempts: int, detail: str) -> None:
        self.operation = operation
        self.code = code
        self.attempts = attempts
        super().__init__(f"{operation}: database error {code} after {attempts} attempts: {detail}")


class ConsolidationNotVerified(ClusterError):
    """After copying mode 7 rows to mode 8, some backed-up mode 7 row has no mode 8 row for the same
    (user, achievement): `--delete-mode7` deleted nothing. `unverified` holds up to 20 of those
    (user_id, achievement_id) pairs; `count` all of them."""

    def __init__(self, count: int, unverified: tuple[tuple[int, int], ...]) -> None:
        self.count = count
        self.unverified = unverified
        super().__init__(
            f"{count} mode 7 row(s) have no mode 8 counterpart (e.g. user, achievement {list(unverified[:5])}): "
            "mode 7 rows not deleted"
        )
