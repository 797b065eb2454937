"""`sr-backfill compare` end to end: a demo database, the real stand-in service on 127.0.0.1, the report."""

from __future__ import annotations

import csv
import json
import socket
from collections import Counter

import matplotlib.image
import pytest

from cluster.db import connect
from cluster.sampling import UNRATED_BAND, allocate, band_of, draw_candidates, select_stratified, stratum_label
from jobs import compare
from jobs.perf_standin import PerfStandIn, StandInConfig, noise_for
from testbed.demo import build_demo_database
from tests.conftest import MAPS

ENGINE = "rosu"  # the stand-in and the local side use the same engine, so without noise they agree


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """A small SQLite demo database and its .osu store: (db_url, osu_dir, DemoBuild)."""
    root = tmp_path_factory.mktemp("demo")
    url = f"sqlite:///{root / 'demo.db'}"
    build = build_demo_database(url, root / "osu", MAPS, users=40, seed=11)
    return url, root / "osu", build


def compare_args(db_url, osu_dir, service_url, report, *extra):
    return [
        "compare", "--db", db_url, "--osu-dir", str(osu_dir), "--service-url", service_url,
        "--report", str(report), "--engine", ENGINE, "--rate", "200", "--sample", "160", "--seed", "5", *extra,
    ]


def read_report(report_dir):
    return json.loads((report_dir / "compare.json").read_text())


def check_png(path):
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    height, width = matplotlib.image.imread(path).shape[:2]
    assert (width, height) == (1200, 500)


def check_no_noise_report(report, build):
    assert report["keys_compared"] > 100
    assert report["equal_2dp_pct"] == 100.0 and report["equal_2dp"] == report["keys_compared"]
    assert report["band_flips"]["total"] == 0
    assert report["abs_diff"] == {"p50": 0.0, "p90": 0.0, "p99": 0.0, "max": 0.0}
    # every key the local engine could not rate is a bad item on the service, and only those
    bad_ids = {item["beatmap_id"] for item in report["bad_items"]}
    assert {build.missing_beatmap_id, build.corrupt_beatmap_id, build.stale_beatmap_id} <= bad_ids
    assert len(report["bad_items"]) == sum(report["local_unrated"].values())
    assert all(item["local_skip_reason"] for item in report["bad_items"])
    assert report["service_rated_local_unrated"] == [] and report["unanswered"] == {} and report["not_asked"] == 0
    assert report["keys_compared"] + len(report["bad_items"]) == report["keys_sampled"]
    assert {"0", "1", "2", "3", "4", "8"} <= set(report["by_full_mode"])
    assert report["stopped"] is None


def test_no_noise_means_full_agreement_and_bad_items_isolated(demo, tmp_path, capsys):
    from jobs import cli  # through the console command (imported here: it pulls in every job)

    db_url, osu_dir, build = demo
    with PerfStandIn(StandInConfig(str(osu_dir), engine=ENGINE)) as server:
        service_url = server.url.replace("http://", "http://auditor:s3cret@")  # credentials must never show
        code = cli.main(compare_args(db_url, osu_dir, service_url, tmp_path / "report", "--batch-size", "8"))
        served = server.stats()
    out = capsys.readouterr()
    assert code == 0, out.err
    report = read_report(tmp_path / "report")
    check_no_noise_report(report, build)

    service = report["service"]
    assert service["calculate_requests"] == served["calculate_requests"]
    assert service["requests"] == served["requests"]  # the health check included
    assert service["retries"] == 0 and service["effective_rate"] <= 200 * 1.05
    assert report["settings"]["rate"] == 200 and report["elapsed_s"] > 0
    for text in (out.out, out.err, (tmp_path / "report" / "compare.json").read_text()):
        assert "s3cret" not in text and "auditor" not in text
    assert "equal at 2 dp 100.0%" in out.out and "band flips          0" in out.out

    rows = list(csv.DictReader((tmp_path / "report" / "worst.csv").open()))
    assert len(rows) == 50 and all(row["diff"] == "+0.00" for row in rows)
    check_png(tmp_path / "report" / "compare.png")


def test_noise_shows_up_as_band_flips_per_mode_and_mod_family(demo, tmp_path, capsys):
    db_url, osu_dir, _ = demo
    config = StandInConfig(str(osu_dir), engine=ENGINE, noise=0.6, noise_fraction=0.3, seed=3)
    with PerfStandIn(config) as server:
        code = compare.main(compare_args(db_url, osu_dir, server.url, tmp_path / "report")[1:])
    assert code == 0
    report = read_report(tmp_path / "report")
    flips = report["band_flips"]
    assert flips["total"] > 5
    assert sum(flips["by_full_mode"].values()) == flips["total"]
    assert sum(flips["by_mod_combo"].values()) == flips["total"]
    assert flips["by_mod_family"]["relax"] > 0 and flips["by_mod_family"]["NM"] > 0
    assert sum(stats["band_flips"] for stats in report["by_full_mode"].values()) == flips["total"]
    assert 40 < report["equal_2dp_pct"] < 95
    assert report["abs_diff"]["max"] == 0.6
    # +0.6 stars moves a key up at most one band: flips sit just right of the diagonal
    matrix = report["band_matrix"]["counts"]
    off_diagonal = {(i, j): n for i, row in enumerate(matrix) for j, n in enumerate(row) if n and i != j}
    assert all(j == i + 1 for i, j in off_diagonal) and sum(off_diagonal.values()) == flips["total"]

    rows = list(csv.DictReader((tmp_path / "report" / "worst.csv").open()))
    assert rows[0]["abs_diff"] == "0.60"
    for row in rows:
        noisy = noise_for(config, row["beatmap_md5"], int(row["mode_vn"]), int(row["mods"]))
        assert float(row["diff"]) == pytest.approx(noisy)
        assert int(row["band_flip"]) == (int(float(row["local_sr"]) + 0.6) != int(float(row["local_sr"]))) * (noisy != 0)
    check_png(tmp_path / "report" / "compare.png")
    assert "band flips" in capsys.readouterr().out


def test_breaker_stops_the_run_and_the_partial_report_is_written(demo, tmp_path, capsys):
    db_url, osu_dir, _ = demo
    with PerfStandIn(StandInConfig(str(osu_dir), engine=ENGINE, fail_first=-1, fail_status=503)) as server:
        code = compare.main(
            compare_args(db_url, osu_dir, server.url, tmp_path / "report")[1:] + ["--retries", "0", "--breaker-failures", "3"]
        )
        served = server.stats()
    err = capsys.readouterr().err
    assert code == compare.EXIT_STOPPED
    assert "circuit breaker open" in err and "3 consecutive failures" in err
    report = read_report(tmp_path / "report")
    assert report["stopped"] and report["not_asked"] > 100 and report["keys_compared"] == 0
    assert served["calculate_requests"] <= 4  # 3 failures, plus at most one already in flight
    check_png(tmp_path / "report" / "compare.png")


def test_unreachable_service_stops_before_anything(demo, tmp_path, capsys):
    db_url, osu_dir, _ = demo
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code = compare.main(compare_args(db_url, osu_dir, f"http://127.0.0.1:{port}", tmp_path / "report")[1:])
    assert code == compare.EXIT_CANNOT_START
    assert "not reachable" in capsys.readouterr().err
    assert not (tmp_path / "report").exists()


def test_bad_options_and_unknown_engine_cannot_start(demo, tmp_path, capsys):
    db_url, osu_dir, _ = demo
    assert compare.main(compare_args(db_url, osu_dir, "http://127.0.0.1:9", tmp_path / "r")[1:] + ["--rate", "0"]) == 2
    assert "--rate must be > 0" in capsys.readouterr().err
    with PerfStandIn(StandInConfig(str(osu_dir), engine=ENGINE)) as server:
        assert compare.main(compare_args(db_url, osu_dir, server.url, tmp_path / "r")[1:] + ["--engine", "nope"]) == 2
        assert "unknown SR engine" in capsys.readouterr().err
        empty = f"sqlite:///{tmp_path / 'empty.db'}"
        assert compare.main(compare_args(empty, osu_dir, server.url, tmp_path / "r")[1:]) == 2
        assert "cannot read scores from sqlite:///" in capsys.readouterr().err
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            secret_db = f"mysql+pymysql://backfill:hunter2@127.0.0.1:{probe.getsockname()[1]}/akatsuki"
        assert compare.main(compare_args(secret_db, osu_dir, server.url, tmp_path / "r")[1:]) == 2
        err = capsys.readouterr().err
        assert "cannot read scores from mysql+pymysql://backfill:***@127.0.0.1" in err and "hunter2" not in err
    assert not (tmp_path / "r").exists()


def test_stratified_sample_covers_every_mode_variant_and_band(demo):
    db_url, _, _ = demo
    engine = connect(db_url)
    candidates = draw_candidates(engine, 400, seed=1)
    again = draw_candidates(engine, 400, seed=1)
    other = draw_candidates(engine, 400, seed=2)
    assert candidates.equals(again) and not candidates.equals(other)
    keys = list(zip(*(candidates.column(c).to_pylist() for c in ("beatmap_md5", "mode_vn", "mods", "full_mode"))))
    assert len(keys) == len(set(keys))
    assert set(candidates.column("full_mode").to_pylist()) >= {0, 1, 2, 3, 4, 5, 6, 8}
    assert ("relax" in set(v for f, v in zip(candidates.column("full_mode").to_pylist(), candidates.column("variant").to_pylist()) if f == 3))

    bands = [i % 4 if i % 7 else UNRATED_BAND for i in range(candidates.num_rows)]
    sample = select_stratified(candidates, bands, 100, seed=1)
    assert sample.num_rows == 100
    sizes, picks = Counter(), Counter()
    for full_mode, variant, band in zip(candidates.column("full_mode").to_pylist(), candidates.column("variant").to_pylist(), bands):
        sizes[stratum_label(full_mode, variant, band)] += 1
    for label in sample.column("stratum").to_pylist():
        picks[label] += 1
    assert set(picks) == set(sizes)  # 40 strata, 100 picks: every stratum represented
    # water-filling: a stratum not taken in full got at least as many picks as any other stratum, minus one
    partial = [picks[label] for label in sizes if picks[label] < sizes[label]]
    assert partial and min(partial) >= max(picks.values()) - 1
    weights = dict(zip(sample.column("stratum").to_pylist(), sample.column("weight").to_pylist()))
    assert all(weights[label] == pytest.approx(sizes[label] / picks[label]) for label in picks)


def test_allocation_and_bands():
    assert allocate({"a": 100, "b": 2, "c": 50}, 30) == {"a": 14, "b": 2, "c": 14}
    assert allocate({"a": 1, "b": 2}, 10) == {"a": 1, "b": 2}
    assert sum(allocate({k: 10 for k in range(7)}, 20, seed=3).values()) == 20
    assert [band_of(x) for x in (None, 0.0, 4.99, 5.0, 9.99, 10.0, 12.5)] == [UNRATED_BAND, 0, 4, 5, 9, 10, 10]
    assert compare.mod_combo(0) == "NM" and compare.mod_combo(8 | 64 | 512) == "HDDT" and compare.mod_combo(128 | 16) == "RX+HR"
    assert compare.mod_families(128) == ["NM", "relax"] and compare.mod_families(8192 | 8 | 16) == ["HD", "HR", "autopilot"]


@pytest.mark.db
def test_compare_on_mariadb(fresh_mariadb_url, tmp_path, capsys):
    osu_dir = tmp_path / "osu"
    build = build_demo_database(fresh_mariadb_url, osu_dir, MAPS, users=30, seed=12)
    with PerfStandIn(StandInConfig(str(osu_dir), engine=ENGINE)) as server:
        code = compare.main(compare_args(fresh_mariadb_url, osu_dir, server.url, tmp_path / "report")[1:])
    assert code == 0, capsys.readouterr().err
    check_no_noise_report(read_report(tmp_path / "report"), build)
