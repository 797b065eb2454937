"""Test-only pause and crash points, so that a test can SIGKILL a job, or one of its Ray workers, at an
exact place.

Production never sets the variables below, and then `pause_point` only counts and `crash_point` does
nothing. With `SRB_TEST_PAUSE_AT=name:n` (`name` alone: `name:1`), the n-th time a process reaches
`pause_point(name)` it writes `name:n` to the file named by `SRB_TEST_PAUSE_FILE` (and its pid to
that name plus `.pid`) and sleeps until it is killed: the test waits for the file, then kills the
process from outside (a real SIGKILL, no cooperation from the job). One pause per marker file: the
first process to get there claims it (`.claimed`), so a restarted or retried worker, or a second
worker, runs on; the test removes the files to allow the next pause.

Points (cluster.prepare in the driver; cluster.ledger and cluster.writers in each writer process, which
gets the variables from the driver: `pause_env`; cluster.workers in raters and shard tasks):
    plan        an applied run's plan is stored; no shard has started
    write       inside a write batch's transaction: the users_achievements rows are inserted, their
                ledger rows and the commit are not done yet
    commit      a write batch (rows, ledger rows, progress counts) has committed
    shard       a shard is marked done
    rater       a rater (Ray actor) is about to rate a batch of keys, journaled as in progress
    shard_task  a shard task (Ray task) has read its rows and is about to ask for their ratings

`SRB_TEST_CRASH_KEY=md5:mode_vn:mods` (comma-separated for several) makes a rater process kill itself
(SIGKILL) whenever it is about to rate that key: a stand-in for an engine that crashes on one map.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from pathlib import Path

PAUSE_AT_ENV = "SRB_TEST_PAUSE_AT"
PAUSE_FILE_ENV = "SRB_TEST_PAUSE_FILE"
CRASH_KEY_ENV = "SRB_TEST_CRASH_KEY"

_reached: Counter = Counter()


def crash_point(keys) -> None:
    """Kill this process (SIGKILL) if `keys` (an Arrow table with beatmap_md5, mode_vn, mods) holds a
    key named by SRB_TEST_CRASH_KEY. Does nothing when the variable is unset (production)."""
    wanted = os.environ.get(CRASH_KEY_ENV)
    if not wanted:
        return
    crashing = {tuple(part.split(":")) for part in wanted.split(",") if part}
    columns = [keys.column(name).to_pylist() for name in ("beatmap_md5", "mode_vn", "mods")]
    if any((md5, str(mode_vn), str(mods)) in crashing for md5, mode_vn, mods in zip(*columns)):
        os.kill(os.getpid(), signal.SIGKILL)


def pause_point(name: str) -> None:
    """Count one arrival at point `name`; pause for good if SRB_TEST_PAUSE_AT names this arrival."""
    _reached[name] += 1
    wanted = os.environ.get(PAUSE_AT_ENV)
    if not wanted:
        return
    if ":" not in wanted:
        wanted += ":1"
    if wanted != f"{name}:{_reached[name]}":
        return
    marker = os.environ.get(PAUSE_FILE_ENV)
    if marker:
        try:  # one pause per marker file, however many processes get here
            os.close(os.open(f"{marker}.claimed", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        except FileExistsError:
            return
        Path(f"{marker}.pid").write_text(str(os.getpid()))
        partial = Path(f"{marker}.partial")  # written whole, then renamed: a watcher never sees half a marker
        partial.write_text(wanted)
        os.replace(partial, marker)
    while True:  # until SIGKILL
        time.sleep(3600)


def pause_env() -> dict[str, str]:
    """This process's test-only pause variables, for the workers it starts (writers pause in their own
    process); empty in production."""
    return {name: os.environ[name] for name in (PAUSE_AT_ENV, PAUSE_FILE_ENV) if os.environ.get(name)}
