"""Database faults and credentials: a loopback TCP proxy between the job and MariaDB cuts connections
in the middle of a run (before a write batch reaches the server, and right after its COMMIT did, so
the job cannot know whether it committed); the run must retry and end with exactly the expected rows
and an exact ledger. Passwords never appear in output, reports, the tool's tables or errors."""

from __future__ import annotations

import csv
import json
import socket
import threading
import uuid

import pytest
import sqlalchemy as sa

from cluster.db import RetryLog, RetryPolicy, mask_text, mask_url, retrying
from cluster.errors import DatabaseUnavailable
from tests import operations as op
from tests import scenario as sc
from tests.conftest import MARIADB_SERVER_URL

UPSTREAM = (sa.engine.make_url(MARIADB_SERVER_URL).host, sa.engine.make_url(MARIADB_SERVER_URL).port or 3306)
INSERT = b"INSERT IGNORE INTO users_achievements"


class CuttingProxy:
    """A loopback TCP proxy to MariaDB that drops one client connection when it sees a trigger.

    mode "before": the first client packet containing INSERT is not forwarded; the connection is cut.
    mode "after_commit": on a connection that sent INSERT, the next COMMIT is forwarded to the server
    and then the connection is cut, so the client never hears that it committed.
    mode "every_insert": every packet containing INSERT is dropped with its connection.
    `cuts` counts the connections cut.
    """

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.cuts = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, database_url: str) -> str:
        return database_url.replace(f"{UPSTREAM[0]}:{UPSTREAM[1]}", f"127.0.0.1:{self.port}")

    def close(self) -> None:
        self.closed = True
        self.listener.close()

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(UPSTREAM)
            state = {"inserted": False}
            threading.Thread(target=self._pump, args=(client, server, state), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, None), daemon=True).start()

    def _cut(self, *sockets: socket.socket) -> None:
        for s in sockets:
            try:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST
                s.close()
            except OSError:
                pass

    def _trigger(self, data: bytes, state: dict) -> str | None:
        with self.lock:
            if self.mode == "every_insert" and INSERT in data:
                return "drop"
            if self.cuts:
                return None
            if self.mode == "before" and INSERT in data:
                return "drop"
            if self.mode == "after_commit":
                if INSERT in data:
                    state["inserted"] = True
                elif state["inserted"] and b"COMMIT" in data:
                    return "forward_then_drop"
        return None

    def _pump(self, source: socket.socket, target: socket.socket, state: dict | None) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                action = self._trigger(data, state) if state is not None else None
                if action == "drop":
                    with self.lock:
                        self.cuts += 1
                    self._cut(source, target)
                    return
                target.sendall(data)
                if action == "forward_then_drop":
                    with self.lock:
                        self.cuts += 1
                    self._cut(source, target)
                    return
        except OSError:
            pass
        self._cut(source, target)


@pytest.mark.db
@pytest.mark.ray
@pytest.mark.parametrize("mode", ["before", "after_commit"])
def test_connection_cut_mid_run_loses_and_duplicates_nothing(tmp_path, ray_session, scenario_db, mode):
    url, osu_dir = scenario_db
    proxy = CuttingProxy(mode)
    try:
        code, report = op.run(proxy.url(url), osu_dir, tmp_path, "cut", "--apply", "--run-id", "cut",
                              "--shard-rows", "40", "--batch-rows", "8", "--db-retry-wait", "0.05")
    finally:
        proxy.close()
    assert proxy.cuts == 1, "the proxy should have cut exactly one connection"
    assert code == 0 and report["status"] == "finished"
    retries = report["database_errors"]["retries"]
    assert sum(retries.values()) >= 1 and set(retries) <= {"2006", "2013", "0"}, retries
    rows = [r[1:] for r in op.table_rows(url)]
    assert len(rows) == len(set(rows)), "duplicate rows"
    assert op.new_rows(url) == op.EXPECTED_ROWS
    assert op.ledger_matches_table(url, "cut") == []
    assert len(op.ledger_rows(url, "cut")) == len(sc.EXPECTED_GRANTS) == report["grants_written"]
    with (tmp_path / "cut.errors.csv").open() as fh:
        assert any(r["reason"] == "database_retry" for r in csv.DictReader(fh))


@pytest.mark.db
def test_retries_run_out_into_a_masked_error(tmp_path, scenario_db, capsys):
    url, _ = scenario_db
    password = "Pr0xy-S3cret-" + uuid.uuid4().hex[:6]
    user = f"srb_{uuid.uuid4().hex[:8]}"
    op.execute(url, f"CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'",
               f"GRANT ALL ON `{sa.engine.make_url(url).database}`.* TO '{user}'@'%'")
    proxy = CuttingProxy("every_insert")
    secret_url = proxy.url(url).replace("root@", f"{user}:{password}@")
    engine = sa.create_engine(secret_url)
    try:
        def insert():
            with engine.begin() as conn:
                conn.exec_driver_sql("INSERT IGNORE INTO users_achievements (user_id, achievement_id, mode, created_at) "
                                     "VALUES (1, 1, 0, 1)")

        log = RetryLog()
        with pytest.raises(DatabaseUnavailable) as caught:
            retrying(insert, "test insert", RetryPolicy(attempts=3, base_seconds=0.01), log, secret_url)
        assert caught.value.attempts == 3 and caught.value.code in (2006, 2013)
        assert sum(log.counts.values()) == 3
        assert password not in str(caught.value) and password not in json.dumps(log.samples)
    finally:
        engine.dispose()
        proxy.close()
        op.execute(url, f"DROP USER '{user}'@'%'")


@pytest.mark.db
@pytest.mark.ray
def test_credentials_never_appear_in_output_reports_tables_or_errors(tmp_path, ray_session, scenario_db, capsys):
    url, osu_dir = scenario_db
    password = "S3cr3t-" + uuid.uuid4().hex[:10]
    user = f"srb_{uuid.uuid4().hex[:8]}"
    database = sa.engine.make_url(url).database
    op.execute(url, f"CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'", f"GRANT ALL ON `{database}`.* TO '{user}'@'%'")
    secret_url = url.replace("root@", f"{user}:{password}@")
    outputs = []
    try:
        code, report = op.run(secret_url, osu_dir, tmp_path, "secret", "--apply", "--run-id", "secret",
                              "--shard-rows", "40")
        assert code == 0 and report["grants_written"] == len(sc.EXPECTED_GRANTS)
        assert report["database"] == mask_url(secret_url) and "***" in report["database"]
        code = op.cli("verify", "--db", secret_url, "--run-id", "secret", "--json", tmp_path / "verify.json",
                      "--png", tmp_path / "rarity.png")
        assert code == 0
        assert op.cli("rollback", "--db", secret_url, "--run-id", "secret") == 0
        assert op.cli("consolidate-mode7", "--db", secret_url) == 0
        # failures: wrong password, unreachable server, malformed URL, unknown run
        wrong = secret_url.replace(password, password[::-1])
        assert op.cli("run", "--db", wrong, "--osu-dir", osu_dir, "--report", tmp_path / "wrong.json") == 2
        closed = socket.create_server(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        closed.close()
        unreachable = secret_url.replace(f"{UPSTREAM[0]}:{UPSTREAM[1]}", f"127.0.0.1:{port}")
        assert op.cli("run", "--db", unreachable, "--osu-dir", osu_dir, "--db-retries", "2",
                      "--db-retry-wait", "0.01", "--report", tmp_path / "down.json") == 2
        assert op.cli("rollback", "--db", unreachable, "--run-id", "secret") == 1
        malformed = f"mysql+pymysql://{user}:{password}@127.0.0.1:notaport/{database}"
        assert op.cli("run", "--db", malformed, "--osu-dir", osu_dir) == 2
        assert op.cli("rollback", "--db", secret_url, "--run-id", "no-such-run") == 2
        captured = capsys.readouterr()
        outputs += [captured.out, captured.err]
        assert "***" in captured.out and "Access denied" in captured.err
    finally:
        op.execute(url, f"DROP USER '{user}'@'%'")
    outputs += [p.read_text(errors="replace") for p in tmp_path.iterdir() if p.suffix in (".json", ".csv")]
    outputs += [str(r) for r in op.query(url, "SELECT * FROM srb_runs")]
    outputs += [str(r) for r in op.query(url, "SELECT * FROM srb_shards")]
    leaks = [text[max(0, text.find(password) - 80): text.find(password) + 40] for text in outputs if password in text]
    assert leaks == []


def test_mask_url_and_mask_text():
    url = "mysql+pymysql://backfill:p%40ss-W0rd!@db.internal:3306/akatsuki"
    assert mask_url(url) == "mysql+pymysql://backfill:***@db.internal:3306/akatsuki"
    assert mask_url("mysql+pymysql://u:hunter22@host:notaport/db") == "mysql+pymysql://u:***@host:notaport/db"
    text = f"failed on {url}; password p@ss-W0rd! or p%40ss-W0rd! here"
    masked = mask_text(text, url)
    assert "p@ss" not in masked and "p%40ss" not in masked and masked.count("***") == 3
    assert mask_text("no secrets here", "sqlite:///x.db") == "no secrets here"
