"""The database password never travels with the work: not in Ray task arguments (pickled into the object
store, which spills to disk), not in any file under the Ray session directory, not in the output or the
reports of a run, whether the run fails or succeeds.

The runs go through `python -m jobs.backfill` (what `make cluster-submit` runs) as subprocesses, each with
a local Ray of its own under a temporary directory of the test (RAY_TMPDIR), the URL in $SR_BACKFILL_DB as
in production. Every file Ray wrote there is searched for the password afterwards.
"""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from cluster import credentials
from cluster.errors import ConfigError
from cluster.workers import ShardJob
from tests import operations as op
from tests.conftest import REPO

pytestmark = [pytest.mark.db, pytest.mark.ray]


def files_containing(root: Path, secret: bytes) -> list[str]:
    found = []
    for path in root.rglob("*"):
        try:
            if path.is_file() and not path.is_symlink() and secret in path.read_bytes():
                found.append(str(path))
        except OSError:
            continue
    return found


def test_the_password_is_never_in_task_arguments(tmp_path, monkeypatch):
    url = "mysql+pymysql://backfill:Tr4vel-N0t-" + uuid.uuid4().hex[:8] + "@db.internal:3306/akatsuki"
    password = sa.engine.make_url(url).password
    monkeypatch.setenv(credentials.RUNTIME_DIR_ENV, str(tmp_path / "runtime"))
    with credentials.shared_with_workers(url) as database:
        job = ShardJob(database, ("scores",))
        assert password.encode() not in pickle.dumps(job) and password not in repr(job)
        assert database.masked == "mysql+pymysql://backfill:***@db.internal:3306/akatsuki"
        assert database.resolve() == url  # a worker on this host reads the private file
        shared = Path(database.file)
        assert shared.stat().st_mode & 0o777 == 0o600 and shared.parent.stat().st_mode & 0o777 == 0o700
    assert not shared.exists()  # removed when the run ends
    # a copy left by a driver that was killed (its pid is gone) is removed by the next run on the host
    orphan = shared.parent / "db-999999999-dead.env"
    orphan.write_text("SR_BACKFILL_DB=x\n")
    with credentials.shared_with_workers(url):
        assert not orphan.exists()
    # a worker on another host: its own environment, checked against the driver's database
    monkeypatch.setenv("SR_BACKFILL_DB", url)
    assert database.resolve() == url
    monkeypatch.setenv("SR_BACKFILL_DB", url.replace("akatsuki", "other"))
    with pytest.raises(ConfigError) as caught:
        database.resolve()
    assert password not in str(caught.value)


def test_a_failing_and_a_succeeding_run_leave_the_password_nowhere(tmp_path, scenario_db):
    url, osu_dir = scenario_db
    database = sa.engine.make_url(url).database
    password = "R4y-S3ss10n-" + uuid.uuid4().hex[:10]
    good, bad = f"srb_{uuid.uuid4().hex[:8]}", f"srb_{uuid.uuid4().hex[:8]}"
    # `bad` may write but not read user_stats: its shards fail in the Ray workers that read them
    engine = sa.create_engine(url)
    from cluster import control, ledger

    ledger.ensure_tables(engine)
    control.ensure_tables(engine)  # the run's heartbeat, control and status tables: granted like the others
    tables = sa.inspect(engine).get_table_names()
    engine.dispose()
    statements = [f"CREATE USER '{good}'@'%' IDENTIFIED BY '{password}'",
                  f"GRANT ALL ON `{database}`.* TO '{good}'@'%'",
                  f"CREATE USER '{bad}'@'%' IDENTIFIED BY '{password}'"]
    statements += [f"GRANT {'INSERT' if t == 'user_stats' else 'ALL'} ON `{database}`.`{t}` TO '{bad}'@'%'"
                   for t in tables]
    op.execute(url, *statements)
    ray_tmp = Path(tempfile.mkdtemp(prefix="srbpw-", dir="/tmp"))  # short: Ray's socket paths
    outputs: list[str] = []
    try:
        for user, expected_code in ((bad, 1), (good, 0)):
            secret_url = url.replace("root@", f"{user}:{password}@")
            env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
            env.update(SR_BACKFILL_DB=secret_url, RAY_TMPDIR=str(ray_tmp), PYTHONPATH=str(REPO),
                       SR_BACKFILL_REPORTS=str(tmp_path / "reports"),
                       SR_BACKFILL_RUNTIME_DIR=str(tmp_path / "runtime"))
            argv = [sys.executable, "-m", "jobs.backfill", "--no-progress", "--osu-dir", str(osu_dir), "--apply",
                    "--run-id", f"pw-{user}", "--workers", "2", "--shard-rows", "40", "--db-retry-wait", "0.05"]
            result = subprocess.run(argv, env=env, cwd=REPO, capture_output=True, text=True, timeout=600)
            outputs += [result.stdout, result.stderr]
            assert result.returncode == expected_code, result.stderr[-3000:]
            if user == bad:
                assert "FAILED" in result.stdout  # its shards failed in the workers, and the summary says why
                assert "failed shards       OperationalError 3" in result.stdout and "(1142, " in result.stdout
            else:
                assert "***" in result.stdout and op.new_rows(url) == op.EXPECTED_ROWS
        sessions = list((ray_tmp / "ray").glob("session_2*"))
        assert len(sessions) == 2 and all(any(s.rglob("*.log")) for s in sessions)
        leaks = files_containing(ray_tmp, password.encode())
        leaks += files_containing(tmp_path / "reports", password.encode())
        leaks += [f"output {i}" for i, text in enumerate(outputs) if password in text]
        assert leaks == []
        assert not any((tmp_path / "runtime").rglob("*.env"))  # the private copies are gone
    finally:
        op.execute(url, f"DROP USER '{good}'@'%'", f"DROP USER '{bad}'@'%'")
        shutil.rmtree(ray_tmp, ignore_errors=True)


def test_every_entry_point_masks_errors(tmp_path, monkeypatch, capsys):
    password = "Unm4sked-" + uuid.uuid4().hex[:8]
    url = f"mysql+pymysql://backfill:{password}@127.0.0.1:notaport/akatsuki"
    # `python -m jobs.backfill` (make cluster-submit) answers like the console script: one masked line
    for module in ("jobs.backfill", "jobs.compare"):
        args = ["--db", url, "--osu-dir", str(tmp_path)] if module == "jobs.backfill" else [
            "--db", url, "--osu-dir", str(tmp_path), "--service-url", "http://127.0.0.1:9", "--report", str(tmp_path)]
        result = subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, capture_output=True, text=True,
                                env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=300)
        assert result.returncode == 2, (module, result.stderr[-2000:])
        assert "Traceback" not in result.stderr and ("***" in result.stderr or module == "jobs.compare")
        assert password not in result.stdout + result.stderr
    # an unexpected error carrying the URL: its traceback is printed masked, the exit code is 1
    import cluster.pipeline as pipeline
    from jobs import cli

    def explode(config):
        raise RuntimeError(f"unexpected failure talking to {config.db_url}")

    monkeypatch.setattr("jobs.backfill.run_backfill", explode)
    code = cli.main(["run", "--db", url.replace("notaport", "3306"), "--osu-dir", str(tmp_path), "--report",
                     str(tmp_path / "r.json")])
    captured = capsys.readouterr()
    assert code == 1 and "RuntimeError: unexpected failure" in captured.err and "***" in captured.err
    assert password not in captured.out + captured.err
    assert pipeline.run_backfill is not explode
