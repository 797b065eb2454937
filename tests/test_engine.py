"""rosu engine: golden values from the live performance service, converts, bad input."""

import csv
import hashlib

import pyarrow as pa
import pytest

from sr.engine import RosuEngine
from sr.engines import engine_named
from sr.errors import BeatmapBadFormat, ConvertUnsupported
from sr.keys import SR_KEY_SCHEMA
from sr.rate import rate_keys
from sr.rounding import round_live
from sr.store import OsuStore
from tests.conftest import DATA, MAPS

RELAX, AUTOPILOT = 128, 8192
VECTORS = list(csv.DictReader((DATA / "reference" / "live_sr_vectors.csv").open()))


def vanilla_rows():
    """Rows the live service computes on the plain rosu-pp path: no relax osu!, no autopilot."""
    return [
        r
        for r in VECTORS
        if not int(r["mods"]) & AUTOPILOT and not (int(r["mods"]) & RELAX and int(r["mode"]) == 0)
    ]


def test_vanilla_and_relax_non_osu_equal_live_at_2dp():
    """rosu-pp-py 2.0.1 reproduces live stars: exact at 2 dp, raw within 1e-9 (DOMAIN.md §5)."""
    engine = RosuEngine()
    rows = vanilla_rows()
    assert len(rows) > 1000
    by_map: dict[tuple[str, int], list] = {}
    for r in rows:
        by_map.setdefault((r["map"], int(r["mode"])), []).append(r)
    mismatches = []
    for (path, mode), group in by_map.items():
        content = (DATA / path).read_bytes()
        beatmap = engine.parse(content, hashlib.md5(content).hexdigest(), mode)
        for r in group:
            raw = engine.stars(beatmap, "", int(r["mods"]))
            if round_live(raw) != float(r["stars_live_2dp"]) or abs(raw - float(r["stars_live"])) > 1e-9:
                mismatches.append((path, mode, r["mods"], raw, r["stars_live"]))
    assert mismatches == []


def test_impossible_convert_is_an_error():
    content = (MAPS / "rosu-pp" / "1028484.osu").read_bytes()  # a taiko map
    with pytest.raises(ConvertUnsupported):
        RosuEngine().parse(content, "x", 0)


def test_osu_map_converts_to_every_mode():
    content = (MAPS / "rosu-pp" / "2785319.osu").read_bytes()
    results = RosuEngine().rate_beatmap(content, "x", [(0, 0), (1, 0), (2, 0), (3, 0)])
    assert all(isinstance(r, float) and r > 0 for r in results)
    assert len(set(results)) == 4


@pytest.mark.parametrize("content", [b"osu file format v14\n", b"osu file format v14\n[HitObjects]\n"])
def test_file_without_objects_is_bad_format(content):
    with pytest.raises(BeatmapBadFormat):
        RosuEngine().parse(content, "x", 0)


def test_unknown_engine_name():
    with pytest.raises(ValueError, match="unknown SR engine"):
        engine_named("nope")


def test_rate_keys_counts_every_reason_and_never_raises(tmp_path):
    osu = (MAPS / "rosu-pp" / "2785319.osu").read_bytes()
    taiko = (MAPS / "rosu-pp" / "1028484.osu").read_bytes()
    corrupt = b"\x00garbage"
    empty_map = b"osu file format v14\n[General]\nMode: 0\n"
    (tmp_path / "1.osu").write_bytes(osu)
    (tmp_path / "2.osu").write_bytes(taiko)
    (tmp_path / "3.osu").write_bytes(corrupt)
    (tmp_path / "4.osu").write_bytes(empty_map)
    (tmp_path / "5.osu").write_bytes(osu)  # stale: the key's md5 is another version
    md5 = lambda b: hashlib.md5(b).hexdigest()  # noqa: E731
    keys = pa.Table.from_pylist(
        [
            {"beatmap_md5": md5(osu), "beatmap_id": 1, "mode_vn": 0, "mods": 0},
            {"beatmap_md5": md5(osu), "beatmap_id": 1, "mode_vn": 0, "mods": 64},
            {"beatmap_md5": md5(osu), "beatmap_id": 1, "mode_vn": 3, "mods": 0},
            {"beatmap_md5": md5(taiko), "beatmap_id": 2, "mode_vn": 0, "mods": 0},
            {"beatmap_md5": md5(taiko), "beatmap_id": 2, "mode_vn": 1, "mods": 0},
            {"beatmap_md5": md5(corrupt), "beatmap_id": 3, "mode_vn": 0, "mods": 0},
            {"beatmap_md5": md5(empty_map), "beatmap_id": 4, "mode_vn": 0, "mods": 0},
            {"beatmap_md5": "a" * 32, "beatmap_id": 5, "mode_vn": 0, "mods": 0},
            {"beatmap_md5": "b" * 32, "beatmap_id": 6, "mode_vn": 0, "mods": 0},
        ],
        schema=SR_KEY_SCHEMA,
    )
    batch = rate_keys(keys, OsuStore(tmp_path), RosuEngine())
    rows = batch.table.to_pylist()
    assert [r["skip_reason"] for r in rows] == [
        None, None, None, "impossible_convert", None, "bad_format", "bad_format", "md5_mismatch", "missing_file"
    ]
    assert batch.calculations == 4
    assert dict(batch.errors) == {"impossible_convert": 1, "bad_format": 2, "md5_mismatch": 1, "missing_file": 1}
    rated = [r for r in rows if r["skip_reason"] is None]
    assert all(r["sr"] == round_live(r["sr_raw"]) for r in rated)
    assert all(r["sr"] is None and r["sr_raw"] is None for r in rows if r["skip_reason"])


def test_parsed_maps_are_reused_across_batches_and_evicted_least_recent_first(tmp_path):
    from sr.rate import ParsedMaps

    osu = (MAPS / "rosu-pp" / "2785319.osu").read_bytes()
    taiko = (MAPS / "rosu-pp" / "1028484.osu").read_bytes()
    (tmp_path / "1.osu").write_bytes(osu)
    (tmp_path / "2.osu").write_bytes(taiko)
    md5 = lambda b: hashlib.md5(b).hexdigest()  # noqa: E731
    store, engine, maps = OsuStore(tmp_path), engine_named("live"), ParsedMaps(capacity=1)

    def keys(*rows):
        return pa.Table.from_pylist(
            [{"beatmap_md5": m, "beatmap_id": i, "mode_vn": mode, "mods": mods} for m, i, mode, mods in rows],
            schema=SR_KEY_SCHEMA,
        )

    first = rate_keys(keys((md5(osu), 1, 0, 0)), store, engine, maps)
    (tmp_path / "1.osu").unlink()  # kept in `maps`: later keys of this map need no file
    again = rate_keys(keys((md5(osu), 1, 0, 64), (md5(osu), 1, 0, 128), (md5(osu), 1, 1, 0)), store, engine, maps)
    assert first.calculations == 1 and again.calculations == 3 and not again.errors
    rate_keys(keys((md5(taiko), 2, 1, 0)), store, engine, maps)  # capacity 1: the osu! map is dropped
    evicted = rate_keys(keys((md5(osu), 1, 0, 8)), store, engine, maps)
    assert dict(evicted.errors) == {"missing_file": 1}
