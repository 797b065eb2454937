"""The backfill submitted to a Ray head on loopback through the jobs API, as on a cluster.

The head runs with token authentication and its dashboard on 127.0.0.1; the database URL (with a
password) reaches the job only through the head's environment (on a cluster: ~/.sr-backfill/db.env),
never on the `ray job submit` command line, and never appears in what the job prints.
"""

import os
import re
import secrets
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import polars as pl
import pytest
import sqlalchemy as sa

from jobs.cli import main
from testbed.demo import build_demo_database
from tests.conftest import MAPS, free_port, REPO, throwaway_database

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def database_with_password():
    """A throwaway MariaDB database reachable only by a new user with a password; yields its URL."""
    with throwaway_database("srb_submit") as root_url:
        name = root_url.rsplit("/", 1)[1]
        user, password = f"srb_{uuid.uuid4().hex[:8]}", f"pw-{secrets.token_hex(8)}"
        admin = sa.create_engine(root_url.rsplit("/", 1)[0], isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql(f"CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY '{password}'")
            conn.exec_driver_sql(f"GRANT ALL ON `{name}`.* TO '{user}'@'127.0.0.1'")
        try:
            yield f"mysql+pymysql://{user}:{password}@127.0.0.1:3306/{name}", password
        finally:
            with admin.connect() as conn:
                conn.exec_driver_sql(f"DROP USER IF EXISTS '{user}'@'127.0.0.1'")
            admin.dispose()


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory, database_with_password):
    """`ray start --head --block` on loopback ports with token auth; yields (dashboard URL, client env)."""
    work = tmp_path_factory.mktemp("head")
    token = work / "ray_token"
    token.write_text(secrets.token_hex(32))
    token.chmod(0o600)
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)}
    db_url, _ = database_with_password
    head_env = {**os.environ, **auth, "SR_BACKFILL_DB": db_url, "PATH": f"{BIN}:{os.environ['PATH']}"}
    head_env.pop("RAY_ADDRESS", None)
    dashboard = free_port()
    head = subprocess.Popen(
        [str(BIN / "ray"), "start", "--head", "--block", "--node-ip-address", "127.0.0.1",
         "--port", str(free_port()), "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dashboard),
         "--dashboard-agent-listen-port", str(free_port()), "--ray-client-server-port", str(free_port()),
         "--num-cpus", "2", "--disable-usage-stats"],
        env=head_env, stdout=(work / "head.log").open("w"), stderr=subprocess.STDOUT, start_new_session=True,
    )
    client_env = {key: value for key, value in os.environ.items() if key != "RAY_ADDRESS"} | auth
    try:
        yield f"http://127.0.0.1:{dashboard}", client_env
    finally:
        os.killpg(head.pid, signal.SIGTERM)  # the whole group: ray start and the processes it started
        try:
            head.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait(10)


def submit(address: str, env: dict, *entrypoint: str) -> subprocess.CompletedProcess:
    """`ray job submit` the way operators run it (make cluster-submit), retried while the head starts."""
    command = [
        str(BIN / "ray"), "job", "submit", "--address", address, "--working-dir", str(REPO),
        "--runtime-env-json", '{"excludes": [".venv", ".git", ".demo", ".pytest_cache", ".hypothesis", "data/maps-extra"]}',
        "--", *entrypoint,
    ]
    deadline = time.monotonic() + 120
    while True:
        proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
        starting = "No available agent" in proc.stdout + proc.stderr or "Connection refused" in proc.stderr
        if proc.returncode == 0 or not starting or time.monotonic() > deadline:
            return proc
        time.sleep(2)


@pytest.mark.db
@pytest.mark.ray
def test_job_submitted_to_a_loopback_head_grants_what_a_local_run_would(
    ray_head, database_with_password, tmp_path, ray_session
):
    db_url, password = database_with_password
    osu_dir = tmp_path / "osu"
    osu_dir.mkdir()
    build_demo_database(db_url, osu_dir, MAPS, users=40, seed=11)
    engine = sa.create_engine(db_url)
    with engine.connect() as conn:
        before = set(conn.exec_driver_sql("SELECT user_id, achievement_id, mode, created_at FROM users_achievements"))
    expected_file = tmp_path / "expected.parquet"
    assert main(["run", "--db", db_url, "--osu-dir", str(osu_dir), "--out", str(expected_file), "--no-progress"]) == 0
    expected = set(pl.read_parquet(expected_file).select("user_id", "achievement_id", "mode", "created_at").iter_rows())

    address, env = ray_head
    report = tmp_path / "report.json"
    proc = submit(
        address, env, "python", "-m", "jobs.backfill", "--osu-dir", str(osu_dir), "--apply",
        "--report", str(report), "--progress-interval", "1",
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    assert "succeeded" in output.lower() and report.exists()
    # no terminal under `ray job submit`: progress lines, not a bar (issue 13)
    assert re.search(r"sr-backfill \S+ \d\d:\d\d:\d\d shards \d+/\d+, scores [\d,]+ ", output), output[-4000:]
    with engine.connect() as conn:
        after = set(conn.exec_driver_sql("SELECT user_id, achievement_id, mode, created_at FROM users_achievements"))
    engine.dispose()
    assert len(expected) > 50 and after - before == expected

    listing = subprocess.run([str(BIN / "ray"), "job", "list", "--address", address], env=env, capture_output=True, text=True)
    assert password not in output and password not in listing.stdout + listing.stderr
    assert password not in report.read_text()
