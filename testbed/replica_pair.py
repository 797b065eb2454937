"""A throwaway MariaDB primary and replica on loopback, for the live-traffic tests and `sr-backfill bench
--live-load`: real replication, real lag.

    pair = ReplicaPair(Path("/tmp/pair")).start()     # ~1-6 s: install once, copy, two mariadbd
    url = pair.create_database("srb_live")             # on the primary; replicated
    pair.wait_caught_up()
    pair.delay(30)                                     # CHANGE MASTER TO MASTER_DELAY=30: 30 s of real lag
    pair.delay(0)
    pair.stop()                                        # by the pids this object started, nothing else

Each server gets its own data directory under `base` (one `mariadb-install-db`, copied for the replica), a
free loopback port, the binary log (`--log-bin`, row format) and its own server id; the replica follows the
primary with `CHANGE MASTER TO ... MASTER_USE_GTID=slave_pos; START SLAVE` as root without a password
(loopback only). Needs `mariadb-install-db` and `mariadbd` (MariaDB 10.11 here); running as root, the
servers are started with `--user=root`.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pymysql

MARIADBD = os.environ.get("SRB_MARIADBD", "/usr/sbin/mariadbd")
INSTALL_DB = os.environ.get("SRB_MARIADB_INSTALL_DB", "mariadb-install-db")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    """One mariadbd of the pair: its name ("primary", "replica"), port, data directory and process."""

    name: str
    port: int
    datadir: Path
    process: subprocess.Popen | None = None

    def connect(self, database: str | None = None, autocommit: bool = True) -> pymysql.Connection:
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


class ReplicaPair:
    """A MariaDB primary and one replica of it, on free loopback ports (see the module docstring).

    base: the directory for both data directories, sockets and logs. buffer_pool_mb: each server's InnoDB
    buffer pool. cpus: the CPUs both servers may use (Linux; None: any). Raises RuntimeError (with the
    server's error log) when a server does not come up."""

    def __init__(self, base: Path, buffer_pool_mb: int = 128, cpus: set[int] | None = None) -> None:
        self.base = Path(base)
        self.buffer_pool_mb = buffer_pool_mb
        self.cpus = cpus
        self.primary = Server("primary", _free_port(), self.base / "primary")
        self.replica = Server("replica", _free_port(), self.base / "replica")

    def _install(self) -> None:
        template = self.base / "template"
        if not template.exists():
            subprocess.run([INSTALL_DB, "--no-defaults", f"--datadir={template}", "--auth-root-authentication-method=normal",
                            "--skip-test-db", "--user=root"], check=True, capture_output=True, timeout=120)
        for server in (self.primary, self.replica):
            if not server.datadir.exists():
                shutil.copytree(template, server.datadir, symlinks=True)

    def _launch(self, server: Server, server_id: int) -> None:
        log = self.base / f"{server.name}.err"
        server.process = subprocess.Popen(
            [MARIADBD, "--no-defaults", "--user=root", f"--datadir={server.datadir}", f"--port={server.port}",
             "--bind-address=127.0.0.1", f"--socket={self.base / server.name}.sock",
             f"--pid-file={self.base / server.name}.pid", f"--server-id={server_id}",
             f"--log-bin={server.datadir / 'binlog'}", "--binlog-format=ROW", "--skip-name-resolve",
             f"--innodb-buffer-pool-size={self.buffer_pool_mb}M", "--innodb-log-file-size=64M",
             "--max-connections=500", "--local-infile=1", f"--log-error={log}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        if self.cpus:
            os.sched_setaffinity(server.process.pid, self.cpus)

    def _wait_up(self, server: Server, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                server.connect().close()
                return
            except pymysql.err.OperationalError:
                if server.process.poll() is not None or time.monotonic() > deadline:
                    log = (self.base / f"{server.name}.err")
                    text = log.read_text()[-3000:] if log.exists() else ""
                    raise RuntimeError(f"the {server.name} mariadbd did not come up:\n{text}") from None
                time.sleep(0.1)

    def start(self) -> ReplicaPair:
        """Install (once), start both servers and the replication. Returns self. A pair whose data
        directories exist under `base` (a kept one) starts on them again, on new ports."""
        self.base.mkdir(parents=True, exist_ok=True)
        self._install()
        self._launch(self.primary, 1)
        self._launch(self.replica, 2)
        try:
            self._wait_up(self.primary)
            self._wait_up(self.replica)
            self.replica.query("STOP SLAVE")  # a restarted pair (kept data directories) follows the new port
            self.replica.query(f"CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={self.primary.port}, "
                               "MASTER_USER='root', MASTER_USE_GTID=slave_pos")
            self.replica.query("START SLAVE")
        except BaseException:
            self.stop()
            raise
        return self

    def create_database(self, name: str) -> str:
        """Create database `name` (latin1, as production) on the primary; returns its URL there. The
        replica gets it through replication (`wait_caught_up`)."""
        self.primary.query(f"CREATE DATABASE `{name}` CHARACTER SET latin1")
        return self.primary.url(name)

    def wait_caught_up(self, timeout: float = 60.0) -> float:
        """Wait until the replica has applied everything the primary has logged; returns the seconds waited.
        Raises TimeoutError."""
        started = time.monotonic()
        target = self.primary.query("SELECT @@gtid_binlog_pos")[0][0]
        while True:
            applied = self.replica.query("SELECT @@gtid_slave_pos")[0][0]
            if _gtid_reached(applied, target):
                return time.monotonic() - started
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"the replica is at {applied!r}, the primary at {target!r}")
            time.sleep(0.05)

    def delay(self, seconds: int) -> None:
        """Make the replica apply every event `seconds` after the primary executed it (MASTER_DELAY); 0 ends
        the delay (the waiting events are then applied at once)."""
        self.replica.query("STOP SLAVE")
        self.replica.query(f"CHANGE MASTER TO MASTER_DELAY={int(seconds)}")
        self.replica.query("START SLAVE")

    def lag(self) -> float | None:
        """The replica's Seconds_Behind_Master (None when replication is stopped)."""
        conn = self.replica.connect()
        try:
            with conn.cursor(pymysql.cursors.DictCursor) as cur:
                cur.execute("SHOW SLAVE STATUS")
                row = cur.fetchone()
        finally:
            conn.close()
        value = row.get("Seconds_Behind_Master") if row else None
        return None if value is None else float(value)

    def stop(self) -> None:
        """Stop both servers (SIGTERM, then SIGKILL after 60 s), by the processes this object started."""
        for server in (self.replica, self.primary):
            process = server.process
            if process is None or process.poll() is not None:
                continue
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=30)

    def __enter__(self) -> ReplicaPair:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _gtid_reached(applied: str, target: str) -> bool:
    """Whether GTID position `applied` ("0-1-42,...") is at or past `target` in every domain."""
    def positions(text: str) -> dict[int, int]:
        out = {}
        for part in filter(None, (p.strip() for p in (text or "").split(","))):
            domain, _, sequence = part.split("-")
            out[int(domain)] = int(sequence)
        return out

    have = positions(applied)
    return all(have.get(domain, -1) >= sequence for domain, sequence in positions(target).items())
