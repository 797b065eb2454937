"""A throwaway `mariadbd` on a free loopback port with a data directory of its own, for tests and benchmarks
that need a server they may configure, crash and restart (the shared server on :3306 is never touched).

    server = LoopbackMariadb("primary", Path("/tmp/x/primary"), options=["--log-bin=..."])
    server.install()                 # mariadb-install-db (~3 s), or copy a template data directory
    server.start()                   # launch and wait until it answers; returns self
    server.url("test")               # mysql+pymysql://root@127.0.0.1:PORT/test
    server.restart(crash=True)       # SIGKILL (crash recovery on start) or SIGTERM, then start again
    server.stop()                    # by the pid this object started, nothing else

root has no password (loopback only); running as root, servers are started with `--user=root`. Needs
`mariadb-install-db` and `mariadbd` (MariaDB 10.11 here; SRB_MARIADBD and SRB_MARIADB_INSTALL_DB override).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pymysql

MARIADBD = os.environ.get("SRB_MARIADBD", "/usr/sbin/mariadbd")
INSTALL_DB = os.environ.get("SRB_MARIADB_INSTALL_DB", "mariadb-install-db")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LoopbackMariadb:
    """One mariadbd of our own (see the module docstring).

    name: for its socket, pid and error-log files (next to `datadir`); datadir: its data directory;
    options: further mariadbd options (e.g. "--innodb-autoinc-lock-mode=2"); buffer_pool_mb: InnoDB's
    buffer pool; cpus: the CPUs it may use (Linux; None: any). The port is chosen once and kept across
    restarts, so URLs handed out stay valid. Raises RuntimeError (with the server's error log) when the
    server does not come up.
    """

    def __init__(self, name: str, datadir: Path, options: tuple[str, ...] | list[str] = (), buffer_pool_mb: int = 64,
                 cpus: set[int] | None = None) -> None:
        self.name = name
        self.datadir = Path(datadir)
        self.options = list(options)
        self.buffer_pool_mb = buffer_pool_mb
        self.cpus = cpus
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self.log = self.datadir.parent / f"{name}.err"

    def install(self, template: Path | None = None) -> LoopbackMariadb:
        """Create the data directory: a copy of `template` (an installed data directory) when given, else
        `mariadb-install-db`. Does nothing when the data directory exists (a kept server)."""
        if self.datadir.exists():
            return self
        self.datadir.parent.mkdir(parents=True, exist_ok=True)
        if template is not None:
            shutil.copytree(template, self.datadir, symlinks=True)
        else:
            install_data_directory(self.datadir)
        return self

    def start(self, timeout: float = 60.0) -> LoopbackMariadb:
        """Launch mariadbd on this server's port and data directory and wait until it accepts connections
        (after crash recovery, if it crashed). Returns self."""
        base = self.datadir.parent
        self.process = subprocess.Popen(
            [MARIADBD, "--no-defaults", "--user=root", f"--datadir={self.datadir}", f"--port={self.port}",
             "--bind-address=127.0.0.1", f"--socket={base / self.name}.sock", f"--pid-file={base / self.name}.pid",
             "--skip-name-resolve", f"--innodb-buffer-pool-size={self.buffer_pool_mb}M", f"--log-error={self.log}",
             *self.options],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        if self.cpus:
            os.sched_setaffinity(self.process.pid, self.cpus)
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.connect().close()
                return self
            except pymysql.err.OperationalError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    text = self.log.read_text()[-3000:] if self.log.exists() else ""
                    self.stop()
                    raise RuntimeError(f"the {self.name} mariadbd did not come up:\n{text}") from None
                time.sleep(0.1)

    def stop(self, crash: bool = False, timeout: float = 60.0) -> None:
        """Stop the server this object started: SIGTERM (a clean shutdown; SIGKILL after `timeout` s), or
        with `crash` SIGKILL at once (the next start runs InnoDB's crash recovery)."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        if crash:
            process.kill()
            process.wait(timeout=30)
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)

    def restart(self, crash: bool = False, down_seconds: float = 0.0) -> float:
        """Stop (as `stop`), stay down `down_seconds`, start again on the same port and data directory.
        Returns the seconds the server did not answer (stop to accepting connections)."""
        started = time.monotonic()
        self.stop(crash=crash)
        time.sleep(down_seconds)
        self.start()
        return time.monotonic() - started

    def connect(self, database: str | None = None, autocommit: bool = True) -> pymysql.Connection:
        """A PyMySQL connection to this server as root."""
        return pymysql.connect(host="127.0.0.1", port=self.port, user="root", database=database,
                               autocommit=autocommit, connect_timeout=5)

    def query(self, sql: str, database: str | None = None) -> list[tuple]:
        """Run one statement (autocommit) and return its rows."""
        conn = self.connect(database)
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
                return list(cur.fetchall())
        finally:
            conn.close()

    def url(self, database: str | None = None) -> str:
        """The SQLAlchemy URL of this server (and `database`)."""
        return f"mysql+pymysql://root@127.0.0.1:{self.port}" + (f"/{database}" if database else "")

    def status(self, name: str) -> int:
        """A global status counter (SHOW GLOBAL STATUS), e.g. Handler_read_rnd_next."""
        rows = self.query(f"SHOW GLOBAL STATUS LIKE '{name}'")
        return int(rows[0][1])


def install_data_directory(datadir: Path) -> None:
    """`mariadb-install-db` into `datadir`: root without a password, no test database."""
    subprocess.run([INSTALL_DB, "--no-defaults", f"--datadir={datadir}", "--auth-root-authentication-method=normal",
                    "--skip-test-db", "--user=root"], check=True, capture_output=True, timeout=120)
