"""Session-wide fixtures: one local Ray instance, throwaway MariaDB databases, the shipped maps."""

from __future__ import annotations

import os
import socket
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data"
MAPS = DATA / "maps"
MAPS_EXTRA = DATA / "maps-extra"

MARIADB_SERVER_URL = os.environ.get("SRB_TEST_MYSQL", "mysql+pymysql://root@127.0.0.1:3306")


@pytest.fixture(scope="session", autouse=True)
def report_directory(tmp_path_factory):
    """Reports of runs started without --report go to a temporary directory, not into the repository."""
    path = tmp_path_factory.mktemp("srb-reports")
    previous = os.environ.get("SR_BACKFILL_REPORTS")
    os.environ["SR_BACKFILL_REPORTS"] = str(path)
    yield path
    if previous is None:
        os.environ.pop("SR_BACKFILL_REPORTS", None)
    else:
        os.environ["SR_BACKFILL_REPORTS"] = previous


@pytest.fixture(autouse=True)
def sr_cache_directory(tmp_path, monkeypatch):
    """Every test starts with an empty SR cache of its own (runs default to $SR_BACKFILL_CACHE)."""
    monkeypatch.setenv("SR_BACKFILL_CACHE", str(tmp_path / "srb-cache"))
    return tmp_path / "srb-cache"


@pytest.fixture(scope="session")
def ray_session():
    """Start local Ray once per test session (2 CPUs) and shut it down at the end."""
    import ray

    if not ray.is_initialized():
        # address="local": a new instance even when another Ray cluster runs on this machine
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@contextmanager
def throwaway_database(prefix: str = "srb_test"):
    """Create an empty latin1 database on the MariaDB server, yield its URL, drop it afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    server = sa.create_engine(MARIADB_SERVER_URL, isolation_level="AUTOCOMMIT")
    with server.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE `{name}` CHARACTER SET latin1")
    try:
        yield f"{MARIADB_SERVER_URL}/{name}"
    finally:
        with server.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}`")
        server.dispose()


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture()
def scenario_db(tmp_path):
    """The acceptance scenario (tests/scenario.py) in a throwaway MariaDB database: (URL, .osu dir)."""
    from tests import scenario

    with throwaway_database() as url:
        scenario.setup_database(url, tmp_path / "osu")
        yield url, tmp_path / "osu"


@pytest.fixture(scope="module")
def mariadb_url():
    """A fresh, empty MariaDB database for one test module; dropped afterwards. Yields its URL."""
    with throwaway_database() as url:
        yield url


@pytest.fixture()
def fresh_mariadb_url():
    """Like `mariadb_url`, but one database per test."""
    with throwaway_database() as url:
        yield url


FIGURES: list[str] = []


def report_figure(line: str) -> None:
    """Record a measured figure; it is printed in pytest's terminal summary under 'figures'."""
    FIGURES.append(line)


def pytest_terminal_summary(terminalreporter):
    if FIGURES:
        terminalreporter.section("figures")
        for line in FIGURES:
            terminalreporter.write_line(line)
