"""Rate a batch of SR keys: the pure core of the SR stage (no database, no Ray)."""

from __future__ import annotations

from collections import Counter, OrderedDict, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from sr.errors import BeatmapBadFormat, BeatmapMissing, RatingError
from sr.keys import SR_RESULT_SCHEMA
from sr.rounding import round_live
from sr.store import OsuStore, has_osu_header


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


class ParsedMaps:
    """The most recently used beatmaps' bytes and parsed forms, kept between batches (a rater sees a
    popular map in many shards): at most `capacity` maps, least recently used dropped first."""

    def __init__(self, capacity: int = 256) -> None:
        self.capacity = capacity
        self.maps: OrderedDict[str, tuple[bytes, dict]] = OrderedDict()

    def get(self, beatmap_md5: str) -> tuple[bytes, dict] | None:
        entry = self.maps.get(beatmap_md5)
        if entry is not None:
            self.maps.move_to_end(beatmap_md5)
        return entry

    def put(self, beatmap_md5: str, content: bytes) -> tuple[bytes, dict]:
        self.maps[beatmap_md5] = entry = (content, {})
        if len(self.maps) > self.capacity:
            self.maps.popitem(last=False)
        return entry


def rate_keys(keys: pa.Table, store: OsuStore, engine, maps: ParsedMaps | None = None) -> RatedBatch:
    """Rate every row of `keys` (sr.keys.SR_KEY_SCHEMA: beatmap_md5, beatmap_id, mode_vn, mods).

    Each beatmap's file is read and checked once and parsed once per mode (once across batches when
    `maps` keeps them). Bad input never raises: a missing, stale or corrupt file, an impossible
    convert or a failed calculation leaves the key's ratings null and is counted under its reason.
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
            entry = maps.get(md5) if maps is not None else None
            if entry is None:
                content = store.load(beatmap_id, md5)
                entry = maps.put(md5, content) if maps is not None else (content, {})
            results = engine.rate_beatmap(entry[0], md5, requests, entry[1])
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


RATED_PATHS_SCHEMA = pa.schema(
    [
        ("path", pa.string()),
        ("mode", pa.int64()),
        ("mods", pa.int64()),
        ("stars", pa.float64()),
        ("sr", pa.float64()),
        ("error", pa.string()),
    ]
)


def rate_paths(requests: pa.Table, root: Path, engine) -> pa.Table:
    """Rate .osu files named by path, for spot checks and reference vectors (no md5 check).

    requests: columns path (string, relative to `root`), mode (0-3), mods (legacy bitmask).
    Returns RATED_PATHS_SCHEMA in input order: stars (raw), sr (2 dp, live rounding), error (an
    sr.errors reason, null when rated). Each file is read and parsed once per mode.
    """
    columns = requests.select(["path", "mode", "mods"]).to_pydict()
    by_path: dict[str, list[int]] = defaultdict(list)
    for index, path in enumerate(columns["path"]):
        by_path[path].append(index)
    stars: list[float | None] = [None] * requests.num_rows
    errors: list[str | None] = [None] * requests.num_rows
    for path, indices in by_path.items():
        file = root / path
        if not file.is_file():
            results = [BeatmapMissing(path)] * len(indices)
        else:
            content = file.read_bytes()
            if has_osu_header(content):
                requests_of_file = [(columns["mode"][i], columns["mods"][i]) for i in indices]
                results = engine.rate_beatmap(content, path, requests_of_file)
            else:
                results = [BeatmapBadFormat(path, "no 'osu file format v' header")] * len(indices)
        for index, result in zip(indices, results):
            if isinstance(result, RatingError):
                errors[index] = result.reason
            else:
                stars[index] = result
    return pa.Table.from_pydict(
        {
            **columns,
            "stars": stars,
            "sr": [None if value is None else round_live(value) for value in stars],
            "error": errors,
        },
        schema=RATED_PATHS_SCHEMA,
    )
