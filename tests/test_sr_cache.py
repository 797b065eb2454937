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


def test_a_part_written_under_a_temporary_name_is_never_read(tmp_path):
    cache = SRCache(tmp_path, "live", "v1")
    cache.write(ROWS)
    # what a process killed in the middle of a write leaves behind: a truncated file under the temporary name
    (tmp_path / "live" / "v1" / "_part-dead.parquet.partial").write_bytes(b"PAR1 truncated")
    assert cache.load().num_rows == 3
    assert [p.name.startswith("part-") for p in (tmp_path / "live" / "v1").iterdir() if p.suffix == ".parquet"] == [True]


ROUTED_PROGRAM = """
import sys
import pyarrow as pa
from cluster.workers import load_known
from sr.cache import SRCache
cache = SRCache(sys.argv[1], "live", "v1")
if sys.argv[2] == "whole":
    kept = cache.load().num_rows
else:
    kept = len(load_known(cache, 0, 8))
print(pa.default_memory_pool().max_memory(), kept)
"""


def test_a_rater_loads_only_its_share_of_the_cache_in_bounded_memory(tmp_path):
    """Raters load only the keys routed to them: with 8 raters, rater 0 keeps exactly its keys and its
    load peaks well below holding the whole cache (which every rater did before), streamed batch by batch."""
    import os
    import subprocess
    import sys

    import numpy as np
    import polars as pl

    from cluster.workers import route
    from tests.conftest import REPO

    rng = np.random.default_rng(7)
    cache = SRCache(tmp_path, "live", "v1")
    for _ in range(12):
        n = 100_000
        md5 = [f"{a:016x}{b:016x}" for a, b in rng.integers(0, 2**64, (n, 2), dtype=np.uint64).tolist()]
        table = pa.table({"beatmap_md5": md5, "mode_vn": pa.array(rng.integers(0, 4, n), pa.int8()),
                          "mods": pa.array(rng.integers(0, 1 << 16, n), pa.int64()),
                          "sr_raw": rng.random(n) * 10, "sr": np.round(rng.random(n) * 10, 2),
                          "skip_reason": pa.nulls(n, pa.string())}, schema=SR_RESULT_SCHEMA)
        cache.write(table)
    whole = pl.from_arrow(cache.load())
    mine = whole.filter(route(8) == 0).height
    assert 0.08 * whole.height < mine < 0.17 * whole.height

    def peak(how: str) -> tuple[int, int]:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        result = subprocess.run([sys.executable, "-c", ROUTED_PROGRAM, str(tmp_path), how], capture_output=True,
                                text=True, env=env, cwd=REPO, timeout=300)
        assert result.returncode == 0, result.stderr[-2000:]
        memory, kept = map(int, result.stdout.split())
        return memory, kept

    whole_peak, whole_rows = peak("whole")
    routed_peak, kept = peak("routed")
    assert whole_rows == whole.height and kept == mine
    assert routed_peak < whole_peak / 2, f"rater 0 peaks at {routed_peak:,} B; the whole cache at {whole_peak:,} B"
