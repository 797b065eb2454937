"""Cluster defaults: --workers follows the CPUs the Ray cluster offers (less what the scan and evaluate
tasks need) and the run prints its choice; --since/--until honour a time-zone offset; the catalogue check
names a few ids and the count, never all 96 in one line."""

from __future__ import annotations

import argparse
import json
import re

import pytest

from cluster.errors import CatalogueMismatch
from cluster.execute import SCAN_EVALUATE_CPUS, choose_workers
from jobs.backfill import add_arguments, config_from, parse_time
from tests import operations as op
from tests import scenario as sc


def test_workers_default_to_the_cluster_cpus_less_the_scan_and_evaluate_share():
    assert SCAN_EVALUATE_CPUS == 1
    workers, why = choose_workers(None, 64)
    assert workers == 63 and "64 CPUs" in why and "less 1" in why
    assert choose_workers(None, 1)[0] == 1  # never none
    assert choose_workers(100, 16) == (16, "--workers 100, clamped to the Ray cluster's 16 CPUs")
    assert choose_workers(4, 16)[0] == 4
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--db", "sqlite:///x.db", "--osu-dir", "maps"])
    assert args.workers is None and config_from(args).workers is None  # not the driver's CPU count


def test_since_and_until_honour_a_time_zone_offset():
    utc = parse_time("2022-06-23T00:00:00")
    assert utc == 1_655_942_400 == parse_time("2022-06-23")
    assert parse_time("2022-06-23T02:00:00+02:00") == utc
    assert parse_time("2022-06-22T19:00:00-05:00") == utc
    assert parse_time("2022-06-23T00:00:00Z") == utc
    assert parse_time("2022-06-23T05:30:00+0530") == utc
    with pytest.raises(argparse.ArgumentTypeError):
        parse_time("23/06/2022")


def test_the_catalogue_check_names_a_few_ids_and_the_count():
    error = CatalogueMismatch(tuple(range(1, 91)), {i: (f"file-{i}", f"other-{i}") for i in range(91, 97)})
    message = str(error)
    assert "96 in all" in message and "90 in all" in message and "(6)" in message
    assert "ids [1, 2, 3, 4, 5] and 91 more" in message
    named = {int(n) for n in re.findall(r"\b(\d+) \(catalogue", message)}
    assert named == {91, 92, 93, 94, 95} and "96 (catalogue" not in message
    assert len(message) < 700
    assert error.ids == tuple(range(1, 97)) and len(error.missing) == 90 and len(error.differing) == 6
    small = str(CatalogueMismatch((96,), {5: ("osu-skill-pass-five", "x")}))
    assert small.startswith("catalogue check failed for ids [5, 96] (2 in all)")


@pytest.mark.db
@pytest.mark.ray
def test_a_run_prints_its_worker_choice_and_reads_an_offset_since_as_utc(tmp_path, ray_session, scenario_db, capsys):
    url, osu_dir = scenario_db
    report = tmp_path / "default.json"
    since = "2017-07-14T04:40:00+02:00"  # = scenario.T0 (2017-07-14T02:40:00Z)
    code = op.cli("run", "--db", url, "--osu-dir", osu_dir, "--report", report, "--no-progress", "--since", since)
    out = capsys.readouterr().out
    assert code == 0
    summary = json.loads(report.read_text())
    cpus = int(ray_session.cluster_resources()["CPU"])
    assert summary["workers"] == max(1, cpus - 1)
    assert f"workers: {summary['workers']} raters (the Ray cluster's {cpus} CPUs less 1" in out, out
    assert summary["scope"]["since"] == sc.T0
    # the tables came from ConnectorX itself, in the Ray tasks, with no fallback
    assert summary["reads"]["connectorx"] > 0 and summary["reads"]["fallbacks"] == {}
