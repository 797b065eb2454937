# ClusterError                     a run, rollback, verify or consolidation cannot go on
#   ConfigError                    the run cannot start: raised before any shard starts or any row is written
#     CatalogueMismatch            less_achievements names a catalogue id with another `file`, or lacks one asked for
#     RunStateError                a run id that is unknown, already taken, finished, rolled back or in use
#     ScanPlanError                the scan plan would read a non-empty score table as empty or short
#     SoftwareMismatch             a Ray node runs other versions of the engine packages than the driver
#   LedgerReadBack                 the ids a write batch inserted could not all be read back: the batch is not committed
#   ScanShort                      a shard read fewer rows of a table than its users held: nothing of it written
#   RunLockLost                    the process no longer holds its run's lock: the run stopped (resumable)
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
    table file). The message names at most `SHOWN` ids of each kind and the counts; the attributes hold
    them all.
    """

    SHOWN = 5

    def __init__(self, missing: tuple[int, ...], differing: dict[int, tuple[str, str]]) -> None:
        self.missing = missing
        self.differing = differing
        parts = []
        if missing:
            parts.append(f"missing from less_achievements: {_some(sorted(missing), self.SHOWN)}")
        if differing:
            ids = sorted(differing)
            shown = ", ".join(f"{i} (catalogue {differing[i][0]!r}, table {differing[i][1]!r})" for i in ids[: self.SHOWN])
            more = f" and {len(ids) - self.SHOWN} more" if len(ids) > self.SHOWN else ""
            parts.append(f"different `file` ({len(ids)}): {shown}{more}")
        super().__init__(f"catalogue check failed for {_some(list(self.ids), self.SHOWN)}: " + "; ".join(parts))

    @property
    def ids(self) -> tuple[int, ...]:
        """Every differing id, ascending."""
        return tuple(sorted(set(self.missing) | set(self.differing)))


def _some(ids: list[int], shown: int) -> str:
    """The first `shown` ids and the count: "ids [1, 2, 3] and 93 more (96 in all)"."""
    return f"ids {ids[:shown]}" + (f" and {len(ids) - shown} more" if len(ids) > shown else "") + f" ({len(ids)} in all)"


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


class SoftwareMismatch(ConfigError):
    """Some Ray node reports other versions of the engine packages (cluster.software.ENGINE_PACKAGES)
    than the driver: nodes set up on different days. `differences` holds one line per (node, package),
    e.g. "node 10.0.0.5: polars 1.30.0 (driver 1.31.0)". Raised before any rater or shard starts."""

    def __init__(self, differences: list[str]) -> None:
        self.differences = differences
        shown = "; ".join(differences[:5]) + (f"; and {len(differences) - 5} more" if len(differences) > 5 else "")
        super().__init__(f"Ray nodes run other engine versions than the driver: {shown} "
                         "(install every node from requirements.lock: make install, or the cluster setup commands)")


class RunLockLost(ClusterError):
    """The run's lock (a MySQL named lock held on a connection of its own) is no longer this process's:
    its connection was closed or killed, or another session holds it now. The run stops before its next
    write transaction and leaves its record as it is, for `--resume`. `run_id` names it; `detail` says
    what was found."""

    def __init__(self, run_id: str, detail: str) -> None:
        self.run_id = run_id
        self.detail = detail
        super().__init__(f"run {run_id}: lost its run lock ({detail}); stopped before the next write: "
                         f"resume it with --run-id {run_id} --resume")


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
