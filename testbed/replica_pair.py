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

import time
from pathlib import Path

import pymysql

from testbed.mariadb import LoopbackMariadb, install_data_directory


class ReplicaPair:
    """A MariaDB primary and one replica of it, on free loopback ports (see the module docstring); each a
    testbed.mariadb.LoopbackMariadb (`primary`, `replica`: url, query, connect, status, restart).

    base: the directory for both data directories, sockets and logs. buffer_pool_mb: each server's InnoDB
    buffer pool. cpus: the CPUs both servers may use (Linux; None: any). Raises RuntimeError (with the
    server's error log) when a server does not come up."""

    def __init__(self, base: Path, buffer_pool_mb: int = 128, cpus: set[int] | None = None) -> None:
        self.base = Path(base)
        self.primary, self.replica = (
            LoopbackMariadb(name, self.base / name, _options(self.base / name, server_id), buffer_pool_mb, cpus)
            for name, server_id in (("primary", 1), ("replica", 2))
        )

    def _install(self) -> None:
        template = self.base / "template"
        if not template.exists():
            install_data_directory(template)
        for server in (self.primary, self.replica):
            server.install(template)

    def start(self) -> ReplicaPair:
        """Install (once), start both servers and the replication. Returns self. A pair whose data
        directories exist under `base` (a kept one) starts on them again, on new ports."""
        self.base.mkdir(parents=True, exist_ok=True)
        self._install()
        try:
            self.primary.start()
            self.replica.start()
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
        self.replica.stop()
        self.primary.stop()

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


def _options(datadir: Path, server_id: int) -> list[str]:
    """mariadbd options of a pair's server: its id, the binary log in row format, room for the live load."""
    return [f"--server-id={server_id}", f"--log-bin={datadir / 'binlog'}", "--binlog-format=ROW",
            "--innodb-log-file-size=64M", "--max-connections=500", "--local-infile=1"]
