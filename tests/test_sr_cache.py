"""The persistent SR cache: hit, miss, engine-version change, what is not cached."""

import pyarrow as pa
import pyarrow.compute as pc

from sr.cache import SRCache
from sr.keys import SR_RESULT_SCHEMA


def results(*rows) -> pa.Table:
    names = SR_RESULT_SCHEMA.names
    return pa.Table.from_pylist([dict(zip(names, row)) for row in rows], schema=SR_RESULT_SCHEMA)


ROWS = results(
    ("a" * 32, 0, 64, 5.996, 6.0, None),
    ("a" * 32, 1, 0, 3.2, 3.2, None),
    ("b" * 32, 0, 0, None, None, "bad_format"),
    ("c" * 32, 0, 0, None, None, "missing_file"),
    ("d" * 32, 0, 0, None, None, "md5_mismatch"),
    ("e" * 32, 0, 0, None, None, "engine_failed"),
)


def test_miss_then_hit_across_instances(tmp_path):
    assert SRCache(tmp_path, "live", "v1").load().num_rows == 0
    assert SRCache(tmp_path, "live", "v1").write(ROWS) == 3
    cached = SRCache(tmp_path, "live", "v1").load().sort_by("beatmap_md5").to_pylist()
    assert [(r["beatmap_md5"][0], r["mode_vn"], r["mods"], r["sr"], r["skip_reason"]) for r in cached] == [
        ("a", 0, 64, 6.0, None), ("a", 1, 0, 3.2, None), ("b", 0, 0, None, "bad_format")
    ]


def test_engine_version_change_misses(tmp_path):
    SRCache(tmp_path, "live", "rosu-pp-py 2.0.1; relax approximate").write(ROWS)
    assert SRCache(tmp_path, "live", "rosu-pp-py 2.0.1; relax port 1").load().num_rows == 0
    assert SRCache(tmp_path, "rosu", "rosu-pp-py 2.0.1; relax approximate").load().num_rows == 0


def test_duplicates_across_parts_collapse_and_filters_apply(tmp_path):
    cache = SRCache(tmp_path, "live", "v1")
    cache.write(ROWS)
    cache.write(ROWS)
    assert cache.load().num_rows == 3
    only_a = cache.load(pc.field("beatmap_md5") == "a" * 32)
    assert only_a.num_rows == 2
