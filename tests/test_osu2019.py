"""osu_2019 port (sr.osu2019): live relax star ratings, edge-case maps, mods, errors, cost.

The agreement figures (port and akatsuki-pp-py 1.0.1 against the live values) are printed
(`pytest -s`) and attached as a report section (`pytest -rP`).
"""

from __future__ import annotations

import csv
import math
from functools import cache

import pytest

import sr.osu2019 as o19
from sr.errors import BeatmapBadFormat, ConvertUnsupported, RatingError
from sr.osu2019.stars import mod_attributes
from sr.rounding import round_live
from tests.conftest import DATA, MAPS, MAPS_EXTRA

RELAX = 128
COMMON_RELAX_MODS = (128, 136, 144, 192, 200, 216, 384, 704, 1152)


def relax_rows() -> list[dict]:
    """Rows of live_sr_vectors.csv the live service computes with osu_2019: mode 0, mods & 128."""
    rows = csv.DictReader((DATA / "reference" / "live_sr_vectors.csv").open())
    return [r for r in rows if r["mode"] == "0" and int(r["mods"]) & RELAX]


@cache
def _parsed(path: str) -> o19.Osu2019Beatmap:
    return o19.parse((DATA / path).read_bytes(), path)


def _figures(values: list[float], rows: list[dict]) -> dict:
    n = len(rows)
    exact = sum(
        round_live(v) == float(r["stars_live_2dp"]) for v, r in zip(values, rows)
    )
    close = sum(
        abs(v - float(r["stars_live"])) <= 1e-4 * abs(float(r["stars_live"]))
        for v, r in zip(values, rows)
    )
    band = sum(
        math.floor(round_live(v)) == math.floor(float(r["stars_live_2dp"]))
        for v, r in zip(values, rows)
    )
    worst = max(abs(v - float(r["stars_live"])) for v, r in zip(values, rows))
    return {
        "n": n,
        "exact_2dp": exact,
        "within_1e-4": close,
        "same_band": band,
        "worst_abs": worst,
    }


def _line(name: str, f: dict) -> str:
    pct = lambda k: 100.0 * f[k] / f["n"]
    return (
        f"{name:22} exact 2dp {f['exact_2dp']}/{f['n']} ({pct('exact_2dp'):.1f}%)  "
        f"within 1e-4 rel {f['within_1e-4']}/{f['n']} ({pct('within_1e-4'):.1f}%)  "
        f"same integer band {f['same_band']}/{f['n']} ({pct('same_band'):.1f}%)  worst |diff| {f['worst_abs']:.3g}"
    )


def test_relax_rows_equal_live(request):
    """The port equals live on every relax row: raw stars bit-identical, hence 2 dp identical.

    The target was >= 99.9% within 1e-4 and exact at 2 dp; there is no exception (RELAX.md).
    akatsuki-pp-py 1.0.1's figures on the same rows are reported for comparison.
    """
    import akatsuki_pp_py as aka

    rows = relax_rows()
    assert len(rows) == 297 and len({r["map"] for r in rows}) == 27
    port = [o19.relax_stars(_parsed(r["map"]), int(r["mods"])) for r in rows]
    aka_maps: dict[str, object] = {}
    theirs = []
    for r in rows:
        if r["map"] not in aka_maps:
            aka_maps[r["map"]] = aka.Beatmap(bytes=(DATA / r["map"]).read_bytes())
        theirs.append(
            aka.Calculator(mode=0, mods=int(r["mods"]))
            .performance(aka_maps[r["map"]])
            .difficulty.stars
        )
    fp, fa = _figures(port, rows), _figures(theirs, rows)
    text = "\n".join(
        [
            f"relax rows of live_sr_vectors.csv: {len(rows)} over {len({r['map'] for r in rows})} maps",
            _line("osu2019 port", fp),
            _line("akatsuki-pp-py 1.0.1", fa),
        ]
    )
    print("\n" + text)
    request.node.add_report_section("call", "osu2019 agreement", text)
    mismatches = [
        (r["map"], r["mods"], v, r["stars_live"])
        for v, r in zip(port, rows)
        if v != float(r["stars_live"]) or round_live(v) != float(r["stars_live_2dp"])
    ]
    assert mismatches == []
    assert fp["exact_2dp"] == fp["within_1e-4"] == fp["same_band"] == len(rows)


def test_edge_case_maps_rate_or_raise_a_rating_error():
    """The 91 ppy/osu test maps under the common relax mods: a finite rating or a RatingError.

    No live values exist for them (RELAX.md).
    """
    paths = sorted(MAPS_EXTRA.glob("*.osu"))
    assert len(paths) == 91
    outcomes = {"rated": 0, "parse_error": 0, "rating_error": 0}
    for path in paths:
        try:
            bm = o19.parse(path.read_bytes(), path.name)
        except RatingError:
            outcomes["parse_error"] += 1
            continue
        for mods in COMMON_RELAX_MODS:
            try:
                stars = o19.relax_stars(bm, mods)
            except RatingError:
                outcomes["rating_error"] += 1
                continue
            assert isinstance(stars, float) and math.isfinite(stars) and stars >= 0.0, (
                path.name,
                mods,
                stars,
            )
            outcomes["rated"] += 1
    print("\nmaps-extra outcomes (keys / maps):", outcomes)
    assert outcomes["rated"] > 0


def test_rx_bit_and_unrelated_mods_do_not_change_stars():
    bm = _parsed("maps/rosu-pp/2785319.osu")
    base = o19.relax_stars(bm, 0)
    for mods in (128, 1, 8, 32, 1024, 4096, 128 | 8 | 1024):
        assert o19.relax_stars(bm, mods) == base
    # NC (512 + 64) = DT
    assert o19.relax_stars(bm, 128 | 64) == o19.relax_stars(bm, 128 | 64 | 512)
    for mods in (128 | 16, 128 | 2, 128 | 256):
        assert o19.relax_stars(bm, mods) != base


def test_mod_attributes():
    """attributes.rs + rosu-mods 0.2 legacy clock rate: only the DT bit (64) means 1.5."""
    import numpy as np

    cs = np.float32(4.0)
    hr_cs = np.float32(np.float32(4.0) * np.float32(1.3))
    assert mod_attributes(cs, 0) == (np.float32(4.0), 1.0)
    assert mod_attributes(cs, 16) == (hr_cs, 1.0)
    assert mod_attributes(np.float32(9.0), 16)[0] == np.float32(10.0)
    assert mod_attributes(cs, 2) == (np.float32(2.0), 1.0)
    assert mod_attributes(cs, 18)[0] == hr_cs  # HR wins over EZ
    assert mod_attributes(cs, 64)[1] == 1.5
    assert mod_attributes(cs, 512)[1] == 1.0  # the NC bit alone is no DoubleTime
    assert mod_attributes(cs, 256)[1] == 0.75
    assert mod_attributes(cs, 64 | 256)[1] == 1.5


def test_parse_errors():
    with pytest.raises(BeatmapBadFormat):
        o19.parse(b"", "empty")
    with pytest.raises(BeatmapBadFormat):
        o19.parse(b"osu file format v14\n\n[General]\nMode: 0\n", "no objects")
    with pytest.raises(BeatmapBadFormat):
        o19.parse(b"\x00\x01garbage\xff", "garbage")
    with pytest.raises(ConvertUnsupported):
        o19.parse((MAPS / "rosu-pp" / "1028484.osu").read_bytes(), "taiko")
    with pytest.raises(ConvertUnsupported):
        o19.parse(
            b"osu file format v14\n[General]\nMode: 3\n[HitObjects]\n64,192,100,128,0,500:0:0:0:0:\n",
            "mania",
        )


def test_one_object_rates_zero_and_objects_sort_by_time():
    one = o19.parse(b"osu file format v14\n[HitObjects]\n100,100,1000,1,0\n", "one")
    assert one.n_objects == 1 and o19.relax_stars(one, 128) == 0.0
    forward = b"osu file format v14\n[HitObjects]\n100,100,1000,1,0\n300,200,1200,1,0\n50,50,1300,1,0\n"
    shuffled = b"osu file format v14\n[HitObjects]\n50,50,1300,1,0\n100,100,1000,1,0\n300,200,1200,1,0\n"
    a, b = o19.parse(forward), o19.parse(shuffled)
    assert o19.relax_stars(a, 128) == o19.relax_stars(b, 128) > 0.0


def test_version_and_warmup():
    assert (
        o19.VERSION.startswith("osu2019-port ")
        and "c0e499e" in o19.VERSION
        and "rosu-map 0.2.0" in o19.VERSION
    )
    o19.warmup()
    o19.warmup()  # idempotent, free


def test_bench_runs_on_one_map(tmp_path):
    """The benchmark (`python -m testbed.relax_bench`) measures both engines; figures in RELAX.md."""
    from testbed import relax_bench

    (tmp_path / "m.osu").write_bytes(
        (MAPS / "ppy-osu" / "osu" / "diffcalc-test.osu").read_bytes()
    )
    result = relax_bench.run(tmp_path, repeat=2, with_compile=False)
    (row,) = result["rows"]
    assert row["objects"] > 0 and all(
        row[k] > 0 for k in ("port_parse", "port_key", "aka_parse", "aka_key")
    )


def test_kernels_compile_once_per_process():
    """After warmup() no map, fast or slow reader, adds a compiled signature (no per-key compile)."""
    from numba.core.registry import CPUDispatcher

    from sr.osu2019 import curve, objects, scan, stars

    def signatures() -> dict[str, int]:
        return {
            f"{mod.__name__}.{name}": len(obj.signatures)
            for mod in (curve, objects, scan, stars)
            for name, obj in vars(mod).items()
            if isinstance(obj, CPUDispatcher)
        }

    o19.warmup()
    before = signatures()
    for path in [*sorted(MAPS.rglob("*.osu")), *sorted(MAPS_EXTRA.glob("*.osu"))[:30]]:
        try:
            bm = o19.parse(path.read_bytes(), path.name)
        except RatingError:
            continue
        for mods in COMMON_RELAX_MODS:
            o19.relax_stars(bm, mods)
    assert signatures() == before
