"""MariaDB servers of a test's own: `mariadb-install-db` into a temporary data directory, then `mariadbd`
on a free loopback port with the options the test needs, stopped by its own pid at the end."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

from tests.conftest import free_port


@contextmanager
def own_mariadb(*options: str, timeout: float = 60) -> Iterator[str]:
    """A fresh MariaDB server started with `options` (e.g. "--innodb-autoinc-lock-mode=2"); yields the
    server URL `mysql+pymysql://root@127.0.0.1:PORT` (root, no password, database `test` created).
    Raises RuntimeError when it does not come up in `timeout` seconds."""
    base = Path(tempfile.mkdtemp(prefix="srb-mariadb-"))
    data, port = base / "data", free_port()
    subprocess.run(["mariadb-install-db", "--no-defaults", f"--datadir={data}", "--user=root", "--auth-root-authentication-method=normal",
                    "--skip-test-db"], check=True, capture_output=True, timeout=120)
    process = subprocess.Popen(
        ["/usr/sbin/mariadbd", "--no-defaults", f"--datadir={data}", f"--port={port}", "--bind-address=127.0.0.1",
         f"--socket={base / 'mysqld.sock'}", f"--pid-file={base / 'mysqld.pid'}", "--user=root",
         "--innodb-buffer-pool-size=64M", *options],
        stdout=subprocess.DEVNULL, stderr=open(base / "error.log", "w"), start_new_session=True,
    )
    url = f"mysql+pymysql://root@127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                engine = sa.create_engine(url)
                with engine.connect() as conn:
                    conn.exec_driver_sql("CREATE DATABASE IF NOT EXISTS test CHARACTER SET latin1")
                engine.dispose()
                break
            except sa.exc.OperationalError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"mariadbd did not start: {(base / 'error.log').read_text()[-2000:]}") from None
                time.sleep(0.2)
        yield url
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()
        shutil.rmtree(base, ignore_errors=True)
