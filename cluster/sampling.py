"""Stratified samples of SR keys from the real scores, for checking local star ratings against the live
performance service (`sr-backfill compare`).

A **key** is (beatmap_md5, beatmap_id, mode_vn, mods) of an eligible score (DOMAIN.md §4: completed 2
or 3, beatmaps.ranked >= 2, users.privileges & 1), with its full mode and one representative score
(max_combo, accuracy, hit counts: the request body the service wants; stars do not depend on them).

Two steps:

1. `draw_candidates` (SQL, SQLAlchemy Core; MySQL/MariaDB and SQLite alike) draws a larger set of
   candidate keys, evenly over the **score groups** (score table x play_mode x relax bit; the relax bit
   separates relax mania, which `scores` stores with mods & 128). Inside a group, scores are drawn by a
   seeded pseudo-random hash of the score id, `(id * a + b) % 1_000_003` (portable integer arithmetic,
   no RAND()), keeping the lowest hashes: a uniform draw of *scores*, so a key played often is more
   likely to be a candidate, as it weighs more in the grants. Duplicate keys keep their first score.
   One cheap COUNT per group sizes the hash threshold so each group reads a bounded number of rows.

2. `select_stratified` (pure) picks the sample from the candidates, evenly over **strata**
   (full mode, variant (vanilla / relax / autopilot), star band), water-filling: strata with fewer
   candidates than their share give their remainder to the others.

Why the star band comes from a local rating of the candidates and not from beatmaps difficulty
columns: our `beatmaps` table has no per-mode star columns (production's, where present, are nomod
only and go stale with algorithm changes), and the band that matters is the one of the key's own mods
and mode; the local rating is needed for the comparison anyway, so rating the candidates (a few times
the sample) costs little. Keys the local engine cannot rate form their own band (-1, "unrated"), so
missing and broken maps also reach the service and show up as isolated bad items there.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa
import sqlalchemy as sa

from cluster.schema import TABLES_BY_NAME, beatmaps, users

RELAX = 128
AUTOPILOT = 8192
HASH_PRIME = 1_000_003
ROWS_PER_KEY = 4  # score rows read per candidate key wanted (popular keys repeat)
MAX_BAND = 10  # bands at or above are one stratum, "10+"
UNRATED_BAND = -1

CANDIDATE_SCHEMA = pa.schema(
    [
        ("beatmap_md5", pa.string()),
        ("beatmap_id", pa.int64()),
        ("mode_vn", pa.int8()),
        ("mods", pa.int64()),
        ("full_mode", pa.int8()),
        ("variant", pa.string()),  # "vanilla", "relax", "autopilot"
        ("source", pa.string()),  # score table of the representative score
        ("score_id", pa.int64()),
        ("max_combo", pa.int64()),
        ("accuracy", pa.float64()),  # percent
        ("count_300", pa.int64()),
        ("count_100", pa.int64()),
        ("count_50", pa.int64()),
        ("miss_count", pa.int64()),
        ("draws", pa.int64()),  # drawn scores with this key (>= 1)
    ]
)
"""One row per candidate key, in draw order within each score group."""


@dataclass(frozen=True, slots=True)
class ScoreGroup:
    """Passed scores of one table, play_mode and relax bit; `scores` is their count (all users/maps)."""

    table: str
    play_mode: int
    relax_bit: bool
    scores: int

    @property
    def full_mode(self) -> int:
        """Full mode: scores -> play_mode, scores_relax -> play_mode + 4, scores_ap -> 8."""
        return full_mode_of(self.table, self.play_mode)

    @property
    def variant(self) -> str:
        """"autopilot" (scores_ap), "relax" (scores_relax, or the relax bit in scores) or "vanilla"."""
        if self.table == "scores_ap":
            return "autopilot"
        if self.table == "scores_relax" or self.relax_bit:
            return "relax"
        return "vanilla"


def full_mode_of(table: str, play_mode: int) -> int:
    """The full mode of a score row (DOMAIN.md §3): 0-3, 4-6 (relax table) or 8 (autopilot table)."""
    if table == "scores":
        return int(play_mode)
    if table == "scores_relax":
        return int(play_mode) + 4
    if table == "scores_ap":
        return 8
    raise ValueError(f"not a score table: {table!r}")


def band_of(sr: float | None) -> int:
    """Stratum band of a 2-dp star rating: floor(sr) capped at MAX_BAND; UNRATED_BAND for None."""
    if sr is None or not math.isfinite(sr):
        return UNRATED_BAND
    return min(MAX_BAND, max(0, math.floor(round(sr * 100) / 100)))


def _relax_flag(table: sa.Table) -> sa.ColumnElement:
    return sa.case((table.c.mods.op("&")(RELAX) != 0, 1), else_=0)


def count_score_groups(engine: sa.Engine, tables: Sequence[str] = ("scores", "scores_relax", "scores_ap")) -> list[ScoreGroup]:
    """Passed scores (completed 2 or 3) per (table, play_mode, relax bit), groups with none left out.

    One GROUP BY per table, without joins (eligibility is applied when drawing).
    """
    groups = []
    with engine.connect() as conn:
        for name in tables:
            table = TABLES_BY_NAME[name]
            flag = _relax_flag(table).label("relax_bit")
            query = (
                sa.select(table.c.play_mode, flag, sa.func.count().label("n"))
                .where(table.c.completed.in_((2, 3)))
                .group_by(table.c.play_mode, flag)
                .order_by(table.c.play_mode, flag)
            )
            for play_mode, relax_bit, count in conn.execute(query):
                if count:
                    groups.append(ScoreGroup(name, int(play_mode), bool(relax_bit), int(count)))
    return groups


def _draw_query(group: ScoreGroup, multiplier: int, offset: int, threshold: int, limit: int) -> sa.Select:
    table = TABLES_BY_NAME[group.table]
    # reduced first: ids reach above 2^62 (autopilot), where id * multiplier overflows BIGINT (MySQL 1690)
    draw = (((table.c.id % HASH_PRIME) * multiplier + offset) % HASH_PRIME).label("draw")
    relax = table.c.mods.op("&")(RELAX)
    return (
        sa.select(
            table.c.beatmap_md5,
            beatmaps.c.beatmap_id,
            table.c.play_mode,
            table.c.mods,
            table.c.id,
            table.c.max_combo,
            table.c.accuracy,
            table.c["300_count"],
            table.c["100_count"],
            table.c["50_count"],
            table.c.misses_count,
            draw,
        )
        .select_from(
            table.join(beatmaps, beatmaps.c.beatmap_md5 == table.c.beatmap_md5).join(users, users.c.id == table.c.userid)
        )
        .where(
            table.c.completed.in_((2, 3)),
            beatmaps.c.ranked >= 2,
            users.c.privileges.op("&")(1) != 0,
            table.c.play_mode == group.play_mode,
            (relax != 0) if group.relax_bit else (relax == 0),
            draw < threshold,
        )
        .order_by(draw, table.c.id)
        .limit(limit)
    )


def draw_candidates(engine: sa.Engine, candidates: int, seed: int) -> pa.Table:
    """About `candidates` distinct keys of eligible scores, spread evenly over the score groups.

    Returns CANDIDATE_SCHEMA. The same seed on the same data gives the same draw. A group with fewer
    eligible keys than its share gives what it has (the sample is then smaller than asked).
    """
    if candidates < 1:
        raise ValueError(f"candidates must be >= 1, got {candidates}")
    groups = count_score_groups(engine)
    out = {name: [] for name in CANDIDATE_SCHEMA.names}
    if not groups:
        return pa.Table.from_pydict(out, schema=CANDIDATE_SCHEMA)
    rng = random.Random(seed)
    multiplier, offset = rng.randrange(1, HASH_PRIME), rng.randrange(HASH_PRIME)
    per_group = math.ceil(candidates / len(groups))
    rows_wanted = per_group * ROWS_PER_KEY
    with engine.connect() as conn:
        for group in groups:
            fraction = min(1.0, 2 * rows_wanted / group.scores)  # x2: eligibility filters some out
            threshold = HASH_PRIME if fraction >= 1.0 else max(1, math.ceil(fraction * HASH_PRIME))
            keys: dict[tuple, int] = {}
            query = _draw_query(group, multiplier, offset, threshold, rows_wanted)
            for row in conn.execute(query):
                md5, beatmap_id, play_mode, mods, score_id, combo, accuracy, n300, n100, n50, misses, _ = row
                key = (md5, int(play_mode), int(mods))
                if key in keys:
                    out["draws"][keys[key]] += 1
                    continue
                if len(keys) >= per_group:
                    continue
                keys[key] = len(out["draws"])
                out["beatmap_md5"].append(md5)
                out["beatmap_id"].append(int(beatmap_id))
                out["mode_vn"].append(int(play_mode))
                out["mods"].append(int(mods))
                out["full_mode"].append(group.full_mode)
                out["variant"].append(group.variant)
                out["source"].append(group.table)
                out["score_id"].append(int(score_id))
                out["max_combo"].append(int(combo))
                out["accuracy"].append(float(accuracy))
                out["count_300"].append(int(n300))
                out["count_100"].append(int(n100))
                out["count_50"].append(int(n50))
                out["miss_count"].append(int(misses))
                out["draws"].append(1)
    return pa.Table.from_pydict(out, schema=CANDIDATE_SCHEMA)


def allocate(sizes: dict, total: int, seed: int = 0) -> dict:
    """Split `total` picks over strata of the given sizes as evenly as possible (water-filling).

    sizes: stratum -> candidates available. Returns stratum -> picks, each <= its size, summing to
    min(total, sum of sizes). Ties in the last round go to strata in a seeded random order.
    """
    picks = dict.fromkeys(sizes, 0)
    remaining = min(total, sum(sizes.values()))
    open_strata = sorted((s for s in sizes if sizes[s] > 0), key=repr)
    random.Random(seed).shuffle(open_strata)
    while remaining > 0 and open_strata:
        share = max(1, remaining // len(open_strata))
        for stratum in list(open_strata):
            give = min(share, sizes[stratum] - picks[stratum], remaining)
            picks[stratum] += give
            remaining -= give
            if picks[stratum] >= sizes[stratum]:
                open_strata.remove(stratum)
            if remaining == 0:
                break
    return picks


STRATUM_FIELDS = [("band", pa.int8()), ("stratum", pa.string()), ("weight", pa.float64())]


def stratum_label(full_mode: int, variant: str, band: int) -> str:
    """e.g. "4 relax 5-6", "8 autopilot 10+", "0 vanilla unrated"."""
    if band == UNRATED_BAND:
        band_text = "unrated"
    elif band >= MAX_BAND:
        band_text = f"{MAX_BAND}+"
    else:
        band_text = f"{band}-{band + 1}"
    return f"{full_mode} {variant} {band_text}"


def select_stratified(candidates: pa.Table, bands: Sequence[int], sample: int, seed: int) -> pa.Table:
    """Pick `sample` candidates evenly over strata (full_mode, variant, band).

    candidates: CANDIDATE_SCHEMA; bands: one per candidate row (band_of the local star rating,
    UNRATED_BAND when the local engine could not rate it). Within a stratum the first candidates in
    draw order are taken (the draw is already random). Returns the chosen rows (stratum by stratum)
    with three more columns: band int8, stratum string (stratum_label), weight float64 = candidates
    in the stratum / picked from it (to reweight sample rates to the candidate mix).
    """
    if len(bands) != candidates.num_rows:
        raise ValueError(f"{len(bands)} bands for {candidates.num_rows} candidates")
    full_modes = candidates.column("full_mode").to_pylist()
    variants = candidates.column("variant").to_pylist()
    members: dict[tuple, list[int]] = defaultdict(list)
    for index, (full_mode, variant, band) in enumerate(zip(full_modes, variants, bands)):
        members[(full_mode, variant, band)].append(index)
    picks = allocate({stratum: len(rows) for stratum, rows in members.items()}, sample, seed)
    chosen: list[int] = []
    chosen_bands: list[int] = []
    labels: list[str] = []
    weights: list[float] = []
    for stratum in sorted(members):
        take = picks[stratum]
        if not take:
            continue
        rows = members[stratum][:take]
        chosen.extend(rows)
        chosen_bands.extend([stratum[2]] * take)
        labels.extend([stratum_label(*stratum)] * take)
        weights.extend([len(members[stratum]) / take] * take)
    table = candidates.take(pa.array(chosen, type=pa.int64()))
    for (name, kind), values in zip(STRATUM_FIELDS, (chosen_bands, labels, weights)):
        table = table.append_column(pa.field(name, kind), pa.array(values, type=kind))
    return table


__all__ = (
    "CANDIDATE_SCHEMA",
    "ScoreGroup",
    "allocate",
    "band_of",
    "count_score_groups",
    "draw_candidates",
    "full_mode_of",
    "select_stratified",
    "stratum_label",
)
