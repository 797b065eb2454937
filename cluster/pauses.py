"""Test-only pause points, so that a test can SIGKILL a job at an exact place.

Production never sets the variables below, and then `pause_point` only counts. With
`SRB_TEST_PAUSE_AT=name:n` (`name` alone: `name:1`), the n-th time this process reaches `pause_point(name)` it writes
`name:n` to the file named by `SRB_TEST_PAUSE_FILE` and sleeps until it is killed: the test waits
for the file, then kills the process from outside (a real SIGKILL, no cooperation from the job).

Points (cluster.prepare in the driver; cluster.ledger and cluster.writers in each writer process, which
gets the variables from the driver: `pause_env`):
    plan    an applied run's plan is stored; no shard has started
    write   inside a write batch's transaction: the users_achievements rows are inserted, their
            ledger rows and the commit are not done yet
    commit  a write batch (rows, ledger rows, progress counts) has committed
    shard   a shard is marked done
"""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path

PAUSE_AT_ENV = "SRB_TEST_PAUSE_AT"
PAUSE_FILE_ENV = "SRB_TEST_PAUSE_FILE"

_reached: Counter = Counter()


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
    if marker:  # written whole, then renamed: a watcher never sees a half-written marker
        partial = Path(f"{marker}.partial")
        partial.write_text(wanted)
        os.replace(partial, marker)
    while True:  # until SIGKILL
        time.sleep(3600)


def pause_env() -> dict[str, str]:
    """This process's test-only pause variables, for the workers it starts (writers pause in their own
    process); empty in production."""
    return {name: os.environ[name] for name in (PAUSE_AT_ENV, PAUSE_FILE_ENV) if os.environ.get(name)}
