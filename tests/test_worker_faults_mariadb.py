"""Worker faults: a rater (Ray actor) or a shard task (Ray task) SIGKILLed in the middle of an applied run,
and a key whose rating kills its rater every time.

Each job runs as a subprocess with a local Ray of its own, so that its Ray workers inherit the test-only
variables of cluster.pauses: SRB_TEST_PAUSE_AT stops one worker process at a named point, the test reads
its pid and kills it from outside (a real SIGKILL); SRB_TEST_CRASH_KEY makes a rater kill itself whenever it
is about to rate one key. The killed runs must finish with the rows and ledger of an undisturbed run (or,
for the crashing key, of the same run without that key's star rating), no duplicates, an exact ledger.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from tests import operations as op
from tests import scenario as sc
from tests.conftest import throwaway_database

pytestmark = [pytest.mark.db, pytest.mark.ray]

RUN_ID = "worker-faults"
OPTIONS = ["--shard-rows", "8", "--batch-rows", "6", "--workers", "2", "--no-progress", "--db-retry-wait", "0.05"]
LEDGER_KEY = ("action", "source", "user_id", "achievement_id", "mode", "created_at", "score_id", "sr", "playcount",
              "total_hits")


def ledger_set(url: str) -> Counter:
    return Counter(tuple(r[k] for k in LEDGER_KEY) for r in op.ledger_rows(url, RUN_ID))


def start_own_ray_job(url: str, osu_dir: Path, work: Path, marker: Path, pause_at: str | None = None,
                      env: dict | None = None, *extra: str) -> subprocess.Popen:
    """`sr-backfill run --apply` as a subprocess starting a local Ray of its own (no RAY_ADDRESS), so that
    its raters and shard tasks see the test variables."""
    environment = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "SRB_TEST_PAUSE_AT")}
    environment.update(SRB_TEST_PAUSE_FILE=str(marker), **(env or {}))
    if pause_at:
        environment["SRB_TEST_PAUSE_AT"] = pause_at
    argv = ["run", "--db", url, "--osu-dir", osu_dir, "--apply", "--run-id", RUN_ID, "--report", work / "report.json",
            *OPTIONS, *extra]
    return subprocess.Popen([str(op.BIN / "sr-backfill"), *map(str, argv)], env=environment, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def finish(proc: subprocess.Popen, timeout: float = 600) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise AssertionError(f"the job did not finish in {timeout}s:\n{out[-2000:]}\n{err[-3000:]}") from None
    return proc.returncode, out, err


@pytest.fixture(scope="module")
def undisturbed(tmp_path_factory, ray_session):
    """The rows and ledger of the same applied run, undisturbed, on a copy of the scenario."""
    work = tmp_path_factory.mktemp("undisturbed")
    with throwaway_database() as url:
        sc.setup_database(url, work / "osu")
        # its own SR cache: the per-test $SR_BACKFILL_CACHE is not set yet for a module fixture
        code, report = op.run(url, work / "osu", work, "clean", "--apply", "--run-id", RUN_ID, "--sr-cache",
                              work / "srb-cache", *OPTIONS)
        assert code == 0 and report["status"] == "finished"
        yield op.new_rows(url), ledger_set(url)


def assert_like_undisturbed(url: str, report: dict, undisturbed) -> None:
    rows, ledger = undisturbed
    assert report["status"] == "finished" and report["shards_failed"] == 0
    table = [r[1:] for r in op.table_rows(url)]
    assert len(table) == len(set(table)), "duplicate rows"
    assert op.new_rows(url) == rows == op.EXPECTED_ROWS
    assert ledger_set(url) == ledger
    assert op.ledger_matches_table(url, RUN_ID) == []
    assert report["grants_written"] == len(sc.EXPECTED_GRANTS)


@pytest.mark.parametrize("read", ["scan", "users"])
def test_a_rater_killed_mid_run_is_restarted_and_the_run_ends_as_undisturbed(tmp_path, scenario_db, undisturbed,
                                                                              read):
    url, osu_dir = scenario_db
    marker = tmp_path / "paused"
    proc = start_own_ray_job(url, osu_dir, tmp_path, marker, "rater", None, "--read", read)
    content, pid = op.paused_pid(proc, marker)
    assert content == "rater:1" and pid != proc.pid
    os.kill(pid, signal.SIGKILL)  # the rater process, paused with a batch of keys journaled as in progress
    code, out, err = finish(proc)
    assert code == 0, err[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["read_mode"] == read
    assert report["engine_crashes"]["restarts"] == 1 and report["engine_crashes"]["quarantined"] == []
    assert "rater restarts      1" in out
    assert_like_undisturbed(url, report, undisturbed)


def test_a_shard_task_killed_mid_run_is_retried_and_the_run_ends_as_undisturbed(tmp_path, scenario_db, undisturbed):
    url, osu_dir = scenario_db
    marker = tmp_path / "paused"
    proc = start_own_ray_job(url, osu_dir, tmp_path, marker, "shard_task", None, "--read", "users")
    content, pid = op.paused_pid(proc, marker)
    assert content == "shard_task:1" and pid != proc.pid
    os.kill(pid, signal.SIGKILL)  # the worker process running a shard task that has read its rows
    code, out, err = finish(proc)
    assert code == 0, err[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["engine_crashes"]["restarts"] == 0
    assert_like_undisturbed(url, report, undisturbed)


def test_a_key_that_kills_its_rater_twice_is_quarantined_and_its_scores_go_without_a_rating(tmp_path, scenario_db):
    url, osu_dir = scenario_db
    md5s = {key: sc.map_files(spec)[0] for key, spec in sc.MAP_SPECS.items()}
    catch = md5s["catch_2118524"]  # rated for F's catch passes (mode 2) and X's catch relax pass (mode 6)
    marker = tmp_path / "unused"
    proc = start_own_ray_job(url, osu_dir, tmp_path, marker, None, {"SRB_TEST_CRASH_KEY": f"{catch}:2:0"})
    code, out, err = finish(proc)
    assert code == 0, err[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["status"] == "finished" and report["shards_failed"] == 0
    # killed once in a batch, once more alone: quarantined after the second crash
    assert report["engine_crashes"]["restarts"] == 2
    assert report["engine_crashes"]["quarantined"] == [{"beatmap_md5": catch, "mode_vn": 2, "mods": 0}]
    # evaluated like a key that could not be rated: its 3 eligible scores have no star rating
    assert report["skipped"]["engine_crash"] == 3
    assert report["sr_errors"]["engine_crash"] == 1
    with (tmp_path / "report.errors.csv").open() as fh:
        samples = [r for r in csv.DictReader(fh) if r["reason"] in ("engine_crash", "engine_crash_key")]
    assert sorted(int(r["score_id"]) for r in samples if r["reason"] == "engine_crash") == [180, 181, sc.RX_ID + 202]
    assert [r["beatmap_md5"] for r in samples if r["reason"] == "engine_crash_key"] == [catch]
    lost = {g.row for g in sc.EXPECTED_GRANTS
            if (g.user_id, g.achievement_id, g.mode) in {(sc.F, 43, 2), (sc.X, 43, 6), (sc.X, 51, 6)}}
    assert len(lost) == 3
    assert op.new_rows(url) == op.EXPECTED_ROWS - lost  # F's catch hits medal (no SR needed) is still granted
    table = [r[1:] for r in op.table_rows(url)]
    assert len(table) == len(set(table))
    assert op.ledger_matches_table(url, RUN_ID) == []


@pytest.mark.parametrize("writers", ["1", "2"])
def test_a_writer_killed_inside_its_transaction_is_restarted_and_the_run_ends_as_undisturbed(
    tmp_path, scenario_db, undisturbed, writers
):
    """A writer actor SIGKILLed with a write batch inserted but not committed (pause point "write"): the
    batch rolls back, Ray restarts the writer and runs the interrupted write again, which skips the rows
    committed before and writes the rest."""
    url, osu_dir = scenario_db
    marker = tmp_path / "paused"
    proc = start_own_ray_job(url, osu_dir, tmp_path, marker, "write:2", None, "--writers", writers)
    content, pid = op.paused_pid(proc, marker)
    assert content == "write:2" and pid != proc.pid
    os.kill(pid, signal.SIGKILL)  # the writer process, inside its second batch's transaction
    code, out, err = finish(proc)
    assert code == 0, err[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["writes"]["writers"] == int(writers)
    assert_like_undisturbed(url, report, undisturbed)
