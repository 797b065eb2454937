"""MariaDB servers of a test's own (testbed.mariadb.LoopbackMariadb): a fresh data directory, a free loopback
port and the options the test needs; stopped by their own pids at the end, their files removed."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from testbed.mariadb import LoopbackMariadb


@contextmanager
def own_mariadb(*options: str) -> Iterator[LoopbackMariadb]:
    """A fresh MariaDB server started with `options` (e.g. "--innodb-autoinc-lock-mode=2") with database
    `test` (latin1, as production) created; yields the server (`url("test")`, `restart`, `query`). Raises
    RuntimeError when it does not come up."""
    base = Path(tempfile.mkdtemp(prefix="srb-mariadb-"))
    server = LoopbackMariadb("server", base / "data", options)
    try:
        server.install().start()
        server.query("CREATE DATABASE IF NOT EXISTS test CHARACTER SET latin1")
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)
