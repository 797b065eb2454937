"""The `live` engine against the live service's own ratings (data/reference/live_sr_vectors.csv),
through `sr-backfill rate`."""

import csv

import pytest

from jobs.cli import main
from sr.autopilot import rewrite_without_distance
from sr.engine import RosuEngine
from sr.engines import engine_named
from tests.conftest import DATA, MAPS, report_figure

RELAX, AUTOPILOT = 128, 8192


@pytest.fixture(scope="module")
def rated(tmp_path_factory):
    """Every reference row rated by `sr-backfill rate --engine live`: list of (reference, output) dicts."""
    work = tmp_path_factory.mktemp("rate")
    reference = list(csv.DictReader((DATA / "reference" / "live_sr_vectors.csv").open()))
    with (work / "keys.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "mode", "mods"])
        writer.writerows([r["map"], r["mode"], r["mods"]] for r in reference)
    argv = ["rate", "--input", str(work / "keys.csv"), "--output", str(work / "out.csv"), "--osu-root", str(DATA)]
    assert main(argv + ["--engine", "live"]) == 0
    output = list(csv.DictReader((work / "out.csv").open()))
    assert len(output) == len(reference)
    return list(zip(reference, output))


def is_relax_osu(row) -> bool:
    return row["mode"] == "0" and int(row["mods"]) & RELAX != 0


def test_every_non_relax_row_equals_live_at_2dp(rated):
    """Vanilla in all modes, converts, relax taiko/catch/mania and autopilot: exact at 2 dp."""
    rows = [(ref, out) for ref, out in rated if not is_relax_osu(ref)]
    autopilot_rows = [ref for ref, _ in rows if int(ref["mods"]) & AUTOPILOT]
    assert len(rows) > 2300 and len(autopilot_rows) == 270
    wrong = [(ref, out) for ref, out in rows if out["error"] or float(out["sr"]) != float(ref["stars_live_2dp"])]
    assert wrong == []
    worst = max(abs(float(out["stars"]) - float(ref["stars_live"])) for ref, out in rows)
    assert worst < 1e-6
    report_figure(f"live engine, non-relax rows: {len(rows)} of {len(rows)} equal at 2 dp, max |raw diff| {worst:.1e}")


def test_relax_rows_equal_live(rated):
    """Relax osu! goes through the exact osu_2019 port: equal at 2 dp, raw within 1e-4 relative."""
    rows = [(ref, out) for ref, out in rated if is_relax_osu(ref)]
    assert len(rows) == 297 and all(not out["error"] for _, out in rows)
    wrong = [
        (ref["map"], ref["mods"], out["stars"], ref["stars_live"])
        for ref, out in rows
        if float(out["sr"]) != float(ref["stars_live_2dp"])
        or abs(float(out["stars"]) - float(ref["stars_live"])) > 1e-4 * float(ref["stars_live"])
    ]
    assert wrong == []
    worst = max(abs(float(out["stars"]) - float(ref["stars_live"])) for ref, out in rows)
    report_figure(
        f"live engine, relax osu! rows ({engine_named('live').version}): {len(rows)} of {len(rows)} equal at 2 dp, "
        f"max |raw diff| {worst:.1e}"
    )


def test_plain_rosu_ignores_the_autopilot_bit():
    """Why autopilot needs its own path: rosu-pp-py 2.0.1 rates AP like no-mod."""
    content = (MAPS / "ppy-osu" / "osu" / "2593923.osu").read_bytes()
    plain, with_ap = RosuEngine().rate_beatmap(content, "", [(0, 0), (0, AUTOPILOT)])
    live_ap = engine_named("live").rate_beatmap(content, "", [(0, AUTOPILOT)])[0]
    assert plain == with_ap and live_ap < plain - 1


def test_rewrite_adds_general_section_and_centres_objects():
    content = b"osu file format v14\n\n[Difficulty]\nCircleSize:4\n\n[HitObjects]\n10,20,100,1,0\n30,40,200,2,0,B|50:60,1,120.5\n"
    text = rewrite_without_distance(content).decode()
    assert "[General]\nStackLeniency: -1000" in text
    lines = text.split("[HitObjects]\n")[1].splitlines()
    assert lines[0].startswith("256,192,100,1,")
    slider = lines[1].split(",")
    assert slider[:2] == ["256", "192"] and slider[5].startswith("L|257:192|256:192")
    assert len(slider[5].split("|")) - 1 >= 121


def test_rewrite_failure_is_counted_not_guessed(tmp_path):
    content = b"osu file format v14\n\n[HitObjects]\n0,0,100,1,0\n5,5,200,2,0,L|100:100,1,nan\n"
    results = engine_named("live").rate_beatmap(content, "m", [(0, AUTOPILOT), (0, 0)])
    assert getattr(results[0], "reason", None) == "bad_format" and isinstance(results[1], float)
