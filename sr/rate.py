"""Rate a batch of SR keys: the pure core of the SR stage (no database, no Ray)."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

import pyarrow as pa

from sr.errors import RatingError
from sr.keys import SR_RESULT_SCHEMA
from sr.rounding import round_live
from sr.store import OsuStore


@dataclass(slots=True)
class RatedBatch:
    """Star ratings for a batch of keys.

    table:        SR_RESULT_SCHEMA, one row per input key: beatmap_md5 string, mode_vn int8, mods int64,
                  sr_raw float64 (stars, unrounded), sr float64 (2 dp, live rounding), skip_reason
                  string (null when rated; else an sr.errors reason and both ratings null).
    errors:       keys not rated, by reason.
    calculations: star calculations the engine ran (one per rated key).
    """

    table: pa.Table
    errors: Counter = field(default_factory=Counter)
    calculations: int = 0


def rate_keys(keys: pa.Table, store: OsuStore, engine) -> RatedBatch:
    """Rate every row of `keys` (sr.keys.SR_KEY_SCHEMA: beatmap_md5, beatmap_id, mode_vn, mods).

    Each beatmap's file is read and checked once and parsed once per mode. Bad input never raises:
    a missing, stale or corrupt file, an impossible convert or a failed calculation leaves the key's
    ratings null and is counted under its reason.
    """
    columns = keys.select(["beatmap_md5", "beatmap_id", "mode_vn", "mods"]).to_pydict()
    by_beatmap: dict[tuple[str, int], list[tuple[int, int]]] = defaultdict(list)
    for md5, beatmap_id, mode_vn, mods in zip(
        columns["beatmap_md5"], columns["beatmap_id"], columns["mode_vn"], columns["mods"]
    ):
        by_beatmap[(md5, beatmap_id)].append((mode_vn, mods))

    out = {name: [] for name in SR_RESULT_SCHEMA.names}
    batch = RatedBatch(table=SR_RESULT_SCHEMA.empty_table())
    for (md5, beatmap_id), requests in by_beatmap.items():
        try:
            content = store.load(beatmap_id, md5)
            results = engine.rate_beatmap(content, md5, requests)
        except RatingError as exc:
            results = [exc] * len(requests)
        for (mode_vn, mods), result in zip(requests, results):
            out["beatmap_md5"].append(md5)
            out["mode_vn"].append(mode_vn)
            out["mods"].append(mods)
            if isinstance(result, RatingError):
                batch.errors[result.reason] += 1
                out["sr_raw"].append(None)
                out["sr"].append(None)
                out["skip_reason"].append(result.reason)
            else:
                batch.calculations += 1
                out["sr_raw"].append(result)
                out["sr"].append(round_live(result))
                out["skip_reason"].append(None)
    batch.table = pa.Table.from_pydict(out, schema=SR_RESULT_SCHEMA)
    return batch
