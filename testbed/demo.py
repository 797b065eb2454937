"""The demo data set: a production-shaped Akatsuki database built from real .osu maps (DOMAIN.md §2-4, §6).

`build_demo_database(db_url, osu_dir, maps_dir, users=300, seed=20220623)` creates the production
schema (cluster.schema) on an empty SQLite or MariaDB database and fills it with a few hundred users
and tens of thousands of scores, reproducibly from `seed` (random.Random; no wall clock):

- every `*.osu` under maps_dir is copied to `osu_dir/{beatmap_id}.osu` and gets a `beatmaps` row
  (beatmap_id = the numeric file stem when numeric and unique, else a synthetic id from 9_000_001 up in
  sorted path order; beatmap_md5 = md5 hex of the file bytes; mode = the `Mode:` header, 0 if absent);
- three extra beatmaps rows are bad input the backfill must count and report: one whose file is
  **missing**, one **corrupt** file (a truncated slice without the `osu file format v` header; its
  row md5 is the md5 of those bytes), one **stale** file (the file's md5 differs from the row's md5, as
  after a map update); some scores name md5s that no beatmaps row holds (**unknown** beatmaps; one of
  them is the stale file's own md5, an old version of an updated map);
- scores in all three tables: `scores` (play_mode 0-3, mostly vanilla, relax mania with mods & 128
  included), `scores_relax` (play_mode 0-2, mods & 128, about 2/3 of all rows), `scores_ap` (play_mode
  0, mods & 8192, a small share); converts (play_mode 1-3 on a Mode 0 map) and a few impossible converts
  (a taiko/catch/mania map under another play_mode); `completed` 0 quit, 1 failed, 2 passed, 3 passed
  and best; `time` in unix seconds between 2012-01-01 and 2022-06-22; unique 32-hex `checksum`s;
- a few "grinder" users whose stored plays cross the play-count and hit-count thresholds
  (achievements 73, 77, 80, 83), a pass scoring 7,777,777 (jackpot, 123), restricted users (about 5%, privileges 2 or 0), pre-existing
  `users_achievements` (legacy mode 7 autopilot rows included), `less_achievements` as live today
  (conditions.catalogue.live_rows, ids 1-128), and `user_stats` rows per (user, full mode) at least
  the stored totals.

Full mode: `scores` row -> play_mode; `scores_relax` row -> play_mode + 4; `scores_ap` row -> 8.
Activity times after the 2022-06-23 reset (users.latest_activity, users_achievements.created_at) are
relative to the fixed REFERENCE_TIME (2026-01-16 00:00 UTC), not to the wall clock.
"""

from __future__ import annotations

import calendar
import hashlib
import math
import random
import re
from bisect import bisect_right
from dataclasses import dataclass, field
from itertools import accumulate
from pathlib import Path
from typing import NamedTuple

import sqlalchemy as sa

from cluster.schema import (
    create_production_schema,
    beatmaps as beatmaps_table,
    less_achievements as less_achievements_table,
    scores as scores_table,
    scores_ap as scores_ap_table,
    scores_relax as scores_relax_table,
    user_stats as user_stats_table,
    users as users_table,
    users_achievements as users_achievements_table,
)
from conditions.catalogue import live_rows
from testbed.errors import DemoDatabaseNotEmpty

# --- fixed points in time (unix seconds, UTC) ---------------------------------------------------------
FIRST_SCORE_TIME = calendar.timegm((2012, 1, 1, 0, 0, 0))  # 1325376000
LAST_SCORE_TIME = calendar.timegm((2022, 6, 22, 23, 59, 59))  # 1655942399, the day before the reset
RESET_TIME = calendar.timegm((2022, 6, 23, 0, 0, 0))  # achievements became mode-specific
REFERENCE_TIME = calendar.timegm((2026, 1, 16, 0, 0, 0))  # "now" of the demo (backfill analysis date)
DAY = 86_400

# --- ids ------------------------------------------------------------------------------------------------
FIRST_USER_ID = 1000
FIRST_SYNTHETIC_BEATMAP_ID = 9_000_001  # maps whose file stem is not a unique number
MISSING_BEATMAP_ID = 9_100_001  # preferred ids of the three bad-input beatmaps (next free id if taken)
CORRUPT_BEATMAP_ID = 9_100_002
STALE_BEATMAP_ID = 9_100_003
SYNTHETIC_SET_ID = 8_000_001
MIN_USERS = 20
INSERT_CHUNK_ROWS = 2000

# --- legacy mod bits (DOMAIN.md §3) ------------------------------------------------------------------
NF, EZ, TD, HD, HR, SD, DT, RX, HT, NC, FL, AT, SO, AP, PF = (
    1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384,
)
K4, K5, K6, K7, K8, FI, K9 = 1 << 15, 1 << 16, 1 << 17, 1 << 18, 1 << 19, 1 << 20, 1 << 24
KEY_MODS = (K4, K5, K6, K7, K8, K9)

# --- achievement thresholds the grinders cross (conditions/achievements.csv ids 73, 77, 80, 83) -------
OSU_PLAYCOUNT_THRESHOLD = 5000
TAIKO_HITS_THRESHOLD = 30_000
CATCH_HITS_THRESHOLD = 20_000
MANIA_HITS_THRESHOLD = 40_000

FULL_MODES = (0, 1, 2, 3, 4, 5, 6, 8)
# hit grinder role -> (category played, achievement threshold on stats.total_hits)
_HIT_GRINDERS = {
    "taiko": ("vn1", TAIKO_HITS_THRESHOLD), "catch": ("vn2", CATCH_HITS_THRESHOLD),
    "mania": ("vn3", MANIA_HITS_THRESHOLD),
}


@dataclass(frozen=True, slots=True)
class DemoBuild:
    """What `build_demo_database` wrote: row counts and the ids of the special cases.

    users / restricted_users        users rows / those with privileges & 1 == 0
    beatmaps / beatmap_files        beatmaps rows (real maps + 3 bad-input rows) / .osu files written
    scores, scores_relax, scores_ap rows per score table
    user_stats                      user_stats rows (every user x full modes 0-6, 8)
    existing_achievements           users_achievements rows written (pre-existing grants)
    legacy_mode7_achievements       of those, rows with the legacy autopilot mode 7
    less_achievements               less_achievements rows (128, as live today)
    missing_beatmap_id              beatmaps row whose osu_dir/{id}.osu does not exist
    corrupt_beatmap_id              file without the `osu file format v` header; row md5 = md5(file)
    stale_beatmap_id                file on disk whose md5 differs from the row's beatmap_md5
    unknown_beatmap_md5s            md5s used by scores that no beatmaps row holds
    impossible_convert_scores       scores whose play_mode differs from their taiko/catch/mania map's mode
    osu_playcount_grinders          user ids with >= 5000 stored plays in one osu! full mode (0 and 4)
    taiko_hits_grinder, catch_hits_grinder, mania_hits_grinder
                                    user ids whose stored plays cross 30000 / 20000 / 40000 hits
    seed, reference_time            the seed used; the demo's "now" in unix seconds (latest_activity
                                    and pre-existing created_at are relative to it)
    """

    users: int
    restricted_users: int
    beatmaps: int
    beatmap_files: int
    scores: int
    scores_relax: int
    scores_ap: int
    user_stats: int
    existing_achievements: int
    legacy_mode7_achievements: int
    less_achievements: int
    missing_beatmap_id: int
    corrupt_beatmap_id: int
    stale_beatmap_id: int
    unknown_beatmap_md5s: tuple[str, ...]
    impossible_convert_scores: int
    osu_playcount_grinders: tuple[int, ...]
    taiko_hits_grinder: int
    catch_hits_grinder: int
    mania_hits_grinder: int
    seed: int
    reference_time: int = REFERENCE_TIME

    @property
    def total_scores(self) -> int:
        """Rows over the three score tables."""
        return self.scores + self.scores_relax + self.scores_ap

    def __str__(self) -> str:
        return (
            f"{self.users} users ({self.restricted_users} restricted), {self.beatmaps} beatmaps, "
            f"scores {self.scores} / relax {self.scores_relax} / ap {self.scores_ap}, "
            f"{self.existing_achievements} existing achievements, seed {self.seed}; "
            f"missing {self.missing_beatmap_id}, corrupt {self.corrupt_beatmap_id}, stale {self.stale_beatmap_id}"
        )


# ======================================================================================================
# .osu files
# ======================================================================================================


@dataclass(slots=True)
class _Map:
    """Facts about one beatmap (parsed from its .osu text) and its demo row.

    kind: "real" (a copied map), "missing", "corrupt", "stale" (bad-input rows) or "unknown" (no row).
    """

    beatmap_id: int
    md5: str
    mode: int
    kind: str
    circles: int
    sliders: int
    spinners: int
    holds: int
    slider_ends: int  # sum over sliders of (slides + 1): head, repeats and tail
    hit_length: int  # seconds
    bpm: int
    ar: float
    od: float
    artist: str
    title: str
    version: str
    creator: str
    set_id: int
    source_name: str
    ranked: int = 2
    difficulty: float = 1.0  # relative pp scale of the map, drawn per map
    plays: int = 0
    passes: int = 0

    @property
    def objects(self) -> int:
        return self.circles + self.sliders + self.spinners + self.holds

    @property
    def max_combo(self) -> int:
        """Approximate osu!-style max combo of the map in its own mode (slider ticks left out)."""
        if self.mode == 1:
            combo = self.circles
        elif self.mode == 3:
            combo = self.circles + self.holds
        else:
            combo = self.circles + self.spinners + self.slider_ends
        return max(combo, 1)


_SECTION = re.compile(r"^\[(\w+)\]\s*$")


def _parse_osu(content: bytes) -> dict:
    """Header facts and object counts of an .osu file (lenient: missing values get defaults)."""
    text = content.decode("utf-8", errors="replace").lstrip("\ufeff")
    section = ""
    values: dict[str, str] = {}
    circles = sliders = spinners = holds = slider_ends = 0
    first_time = last_time = None
    beat_length = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("//"):
            continue
        match = _SECTION.match(line)
        if match:
            section = match.group(1)
            continue
        if section in ("General", "Metadata", "Difficulty"):
            key, sep, value = line.partition(":")
            if sep:
                values.setdefault(f"{section}.{key.strip()}", value.strip())
        elif section == "TimingPoints" and beat_length is None:
            parts = line.split(",")
            try:
                length = float(parts[1])
            except (IndexError, ValueError):
                continue
            if length > 0:
                beat_length = length
        elif section == "HitObjects":
            parts = line.split(",")
            try:
                time, kind = int(float(parts[2])), int(parts[3])
            except (IndexError, ValueError):
                continue
            first_time = time if first_time is None else min(first_time, time)
            last_time = time if last_time is None else max(last_time, time)
            if kind & 2:
                sliders += 1
                try:
                    slides = max(int(parts[6]), 1)
                except (IndexError, ValueError):
                    slides = 1
                slider_ends += slides + 1
            elif kind & 8:
                spinners += 1
            elif kind & 128:
                holds += 1
            else:
                circles += 1

    def number(key: str, default: float) -> float:
        try:
            value = float(values[key])
        except (KeyError, ValueError):
            return default
        return value if math.isfinite(value) else default

    od = number("Difficulty.OverallDifficulty", 5.0)
    mode = int(number("General.Mode", 0))
    return {
        "mode": mode if mode in (0, 1, 2, 3) else 0,
        "circles": circles,
        "sliders": sliders,
        "spinners": spinners,
        "holds": holds,
        "slider_ends": slider_ends,
        "hit_length": max(1, ((last_time or 0) - (first_time or 0)) // 1000),
        "bpm": int(round(60_000 / beat_length)) if beat_length else 120,
        "ar": number("Difficulty.ApproachRate", od),
        "od": od,
        "artist": values.get("Metadata.Artist", ""),
        "title": values.get("Metadata.Title", ""),
        "version": values.get("Metadata.Version", ""),
        "creator": values.get("Metadata.Creator", ""),
        "set_id": int(number("Metadata.BeatmapSetID", 0)),
    }


def _load_maps(maps_dir: Path) -> list[tuple[str, int, bytes, dict]]:
    """Every *.osu under maps_dir (sorted by relative path) as (relative path, beatmap_id, bytes, facts).

    beatmap_id is the numeric stem when numeric and unique, else the next synthetic id from 9_000_001.
    Raises FileNotFoundError if there is none and ValueError if two files have the same content.
    """
    paths = sorted(maps_dir.rglob("*.osu"), key=lambda p: p.relative_to(maps_dir).as_posix())
    paths = [p for p in paths if p.is_file()]
    if not paths:
        raise FileNotFoundError(f"no *.osu files under {maps_dir}")
    stems: dict[int, int] = {}
    for path in paths:
        if path.stem.isdigit():
            stems[int(path.stem)] = stems.get(int(path.stem), 0) + 1
    used = {number for number, count in stems.items() if count == 1}
    next_synthetic = FIRST_SYNTHETIC_BEATMAP_ID
    loaded = []
    seen_md5: dict[str, str] = {}
    for path in paths:
        relative = path.relative_to(maps_dir).as_posix()
        if path.stem.isdigit() and stems[int(path.stem)] == 1 and int(path.stem) > 0:
            beatmap_id = int(path.stem)
        else:
            while next_synthetic in used:
                next_synthetic += 1
            beatmap_id = next_synthetic
            used.add(beatmap_id)
        content = path.read_bytes()
        digest = hashlib.md5(content).hexdigest()
        if digest in seen_md5:
            raise ValueError(f"{relative} has the same content (md5 {digest}) as {seen_md5[digest]}")
        seen_md5[digest] = relative
        loaded.append((relative, beatmap_id, content, _parse_osu(content)))
    return loaded


def _free_id(preferred: int, used: set[int]) -> int:
    while preferred in used:
        preferred += 1
    used.add(preferred)
    return preferred


def _make_map(beatmap_id: int, md5: str, kind: str, facts: dict, source_name: str) -> _Map:
    return _Map(beatmap_id=beatmap_id, md5=md5, kind=kind, source_name=source_name, **facts)


def _prepare_maps(maps_dir: Path, osu_dir: Path, rng: random.Random) -> tuple[list[_Map], list[_Map], int]:
    """Write the .osu store and describe every beatmap.

    Returns (beatmaps rows to insert: real maps then missing, corrupt, stale; pseudo-maps of the
    unknown md5s; number of files written).
    """
    loaded = _load_maps(maps_dir)
    osu_dir.mkdir(parents=True, exist_ok=True)
    maps: list[_Map] = []
    for relative, beatmap_id, content, facts in loaded:
        (osu_dir / f"{beatmap_id}.osu").write_bytes(content)
        maps.append(_make_map(beatmap_id, hashlib.md5(content).hexdigest(), "real", facts, Path(relative).name))
    files = len(maps)
    used = {m.beatmap_id for m in maps}
    by_id = {beatmap_id: content for _, beatmap_id, content, _ in loaded}

    # Bases for the bad-input rows: osu! maps with a real number of objects, drawn from the seed.
    bases = [m for m in maps if m.mode == 0 and m.objects >= 100] or [m for m in maps if m.mode == 0] or maps
    missing_base, corrupt_base, stale_base = (rng.choice(bases) for _ in range(3))

    missing_id = _free_id(MISSING_BEATMAP_ID, used)
    missing_file = osu_dir / f"{missing_id}.osu"
    if missing_file.exists():  # left over from an earlier build into the same directory
        missing_file.unlink()
    missing_md5 = hashlib.md5(b"sr-backfill demo: beatmap never downloaded %d" % missing_id).hexdigest()
    missing = _make_map(missing_id, missing_md5, "missing", _facts_of(missing_base), "missing.osu")

    corrupt_id = _free_id(CORRUPT_BEATMAP_ID, used)
    source = by_id[corrupt_base.beatmap_id]
    start = max(source.find(b"[Difficulty]"), 0) or len(source) // 4
    garbage = source[start : start + max(200, (len(source) - start) // 2)]  # truncated, headerless
    (osu_dir / f"{corrupt_id}.osu").write_bytes(garbage)
    corrupt = _make_map(corrupt_id, hashlib.md5(garbage).hexdigest(), "corrupt", _facts_of(corrupt_base), "corrupt.osu")

    stale_id = _free_id(STALE_BEATMAP_ID, used)
    # Two versions of the base map differing only in trailing line breaks (parsed alike): the old one
    # is on disk, the row holds the md5 of the current one (as updated since; not on disk).
    taken = {m.md5 for m in maps}
    old_version = by_id[stale_base.beatmap_id] + b"\r\n"
    while hashlib.md5(old_version).hexdigest() in taken:
        old_version += b"\r\n"
    current_version = old_version + b"\r\n"
    while hashlib.md5(current_version).hexdigest() in taken:
        current_version += b"\r\n"
    (osu_dir / f"{stale_id}.osu").write_bytes(old_version)
    stale = _make_map(stale_id, hashlib.md5(current_version).hexdigest(), "stale", _facts_of(stale_base), "stale.osu")
    files += 2

    unknown = [
        _make_map(0, hashlib.md5(old_version).hexdigest(), "unknown", _facts_of(stale_base), "old version"),
    ]
    for k in range(3):
        base = rng.choice(bases)
        digest = hashlib.md5(b"sr-backfill demo: deleted beatmap %d" % k).hexdigest()
        unknown.append(_make_map(0, digest, "unknown", _facts_of(base), "deleted"))

    rows = maps + [missing, corrupt, stale]
    _assign_ranked_and_metadata(rows, rng)
    for m in unknown:
        m.difficulty = rng.lognormvariate(0.0, 0.35)
    return rows, unknown, files


def _facts_of(m: _Map) -> dict:
    return {
        "mode": m.mode, "circles": m.circles, "sliders": m.sliders, "spinners": m.spinners, "holds": m.holds,
        "slider_ends": m.slider_ends, "hit_length": m.hit_length, "bpm": m.bpm, "ar": m.ar, "od": m.od,
        "artist": m.artist, "title": m.title, "version": m.version, "creator": m.creator, "set_id": m.set_id,
    }


def _assign_ranked_and_metadata(rows: list[_Map], rng: random.Random) -> None:
    """ranked status (mostly 2; some 3, 4, 5; a few 0/1 on osu! maps), set ids, difficulty scale."""
    statuses = (2, 3, 4, 5, 0, 1)
    weights = (70, 9, 6, 9, 3, 3)
    for index, m in enumerate(rows):
        m.difficulty = rng.lognormvariate(0.0, 0.35)
        if m.set_id <= 0:
            m.set_id = SYNTHETIC_SET_ID + index
        if m.kind != "real":
            m.ranked = 2  # the bad-input maps must be eligible so their scores reach the checks
        elif m.mode != 0:
            m.ranked = rng.choices(statuses[:4], weights[:4])[0]  # few native maps: keep them eligible
        else:
            m.ranked = rng.choices(statuses, weights)[0]
    real_osu = [m for m in rows if m.kind == "real" and m.mode == 0 and m.objects >= 20]
    for status in (0, 1, 3, 4, 5):
        if not any(m.ranked == status for m in rows):
            candidates = [m for m in real_osu if m.ranked == 2] or real_osu
            rng.choice(candidates).ranked = status


def _beatmap_row(m: _Map, rng: random.Random) -> dict:
    artist, title = m.artist or "Unknown Artist", m.title or f"Demo map {m.beatmap_id}"
    version = m.version or ("Normal", "Taiko", "Catch", "Mania")[m.mode]
    if m.kind != "real":
        version = f"{version} ({m.kind} demo)"
    creator = m.creator or "demo"
    return {
        "beatmap_id": m.beatmap_id,
        "beatmapset_id": m.set_id,
        "beatmap_md5": m.md5,
        "song_name": f"{artist} - {title} [{version}]"[:256],
        "file_name": (f"{artist} - {title} ({creator}) [{version}].osu" if m.artist else m.source_name)[:260],
        "ar": round(m.ar, 1),
        "od": round(m.od, 1),
        "mode": m.mode,
        "max_combo": m.max_combo,
        "hit_length": m.hit_length,
        "bpm": m.bpm,
        "ranked": m.ranked,
        "latest_update": rng.randint(FIRST_SCORE_TIME - 300 * DAY, FIRST_SCORE_TIME + 200 * DAY),
        "ranked_status_freezed": False,
        "playcount": m.plays,
        "passcount": m.passes,
        "rankedby": None,
        "rating": round(rng.uniform(6.0, 10.0), 2),
        "bancho_ranked_status": m.ranked if m.ranked >= 2 else 0,
        "count_circles": m.circles,
        "count_spinners": m.spinners,
        "count_sliders": m.sliders + m.holds,
    }


# ======================================================================================================
# users
# ======================================================================================================

_SYLLABLES = (
    "ka", "ri", "to", "mi", "ne", "ko", "sa", "yu", "ha", "ru", "shi", "ta", "ro", "na", "zu", "ki",
    "lo", "vy", "max", "tor", "an", "el", "dra", "fox", "neo", "kai", "rin", "sol", "ace", "jin",
)
_COUNTRIES = ("US", "DE", "PL", "RU", "BR", "JP", "KR", "FR", "GB", "CA", "AU", "PH", "ID", "CL", "XX")


@dataclass(slots=True)
class _User:
    id: int
    username: str
    privileges: int
    register: int
    start: int  # first and last possible score time (unix seconds)
    end: int
    tier: str  # active (30 days), recent (1 year), dormant (after the reset), old (before it)
    skill: float  # typical accuracy fraction
    country: str
    main: str = "rx0"
    p_main: float = 0.8
    role: str = ""  # grinder role: "vn0"/"rx0" (osu! play count) or "taiko"/"catch"/"mania" (hits)
    plays: list = field(default_factory=list)  # _Spec list; times are drawn sorted, in list order
    last_score: int = 0  # time of the user's last stored score (unix seconds), 0 if none
    latest_activity: int = 0

    @property
    def public(self) -> bool:
        return bool(self.privileges & 1)


def _make_users(count: int, rng: random.Random) -> list[_User]:
    names: dict[str, None] = {}
    result = []
    n_restricted = max(1, round(count * 0.05))
    restricted = set(rng.sample(range(count), n_restricted))
    for index in range(count):
        while True:
            name = "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 3))).capitalize()
            if rng.random() < 0.35:
                name += str(rng.randint(1, 999))
            if rng.random() < 0.1:
                name = name[:6] + " " + rng.choice(_SYLLABLES)
            name = name[:15]
            if name.lower().replace(" ", "_") not in names:
                break
        names[name.lower().replace(" ", "_")] = None
        if index in restricted:
            privileges = rng.choice((2, 0))
        else:
            privileges = 7 if rng.random() < 0.05 else 3  # 7 = public + normal + supporter
        start = rng.randint(FIRST_SCORE_TIME + 14 * DAY, LAST_SCORE_TIME - 90 * DAY)
        end = rng.randint(start + 60 * DAY, LAST_SCORE_TIME)
        tier = rng.choices(("active", "recent", "dormant", "old"), (15, 25, 20, 40))[0]
        result.append(
            _User(
                id=FIRST_USER_ID + index,
                username=name,
                privileges=privileges,
                register=start - rng.randint(0, 14 * DAY),
                start=start,
                end=end,
                tier=tier,
                skill=rng.uniform(0.86, 0.995),
                country=rng.choice(_COUNTRIES),
            )
        )
    return result


def _user_row(u: _User) -> dict:
    safe = u.username.lower().replace(" ", "_")
    return {
        "id": u.id,
        "username": u.username,
        "username_safe": safe,
        "password_md5": "",
        "email": f"{safe}@demo.invalid",
        "register_datetime": u.register,
        "latest_activity": u.latest_activity,
        "privileges": u.privileges,
        "country": u.country,
        "ban_datetime": 0 if u.public else u.latest_activity,
    }


# ======================================================================================================
# plays
# ======================================================================================================

# Category -> (table, play_mode, extra mod bits). "rx3" is relax mania, stored in `scores`.
_CATEGORIES = {
    "vn0": ("scores", 0, 0), "vn1": ("scores", 1, 0), "vn2": ("scores", 2, 0), "vn3": ("scores", 3, 0),
    "rx3": ("scores", 3, RX), "rx0": ("scores_relax", 0, RX), "rx1": ("scores_relax", 1, RX),
    "rx2": ("scores_relax", 2, RX), "ap0": ("scores_ap", 0, AP),
}
_CATEGORY_NAMES = tuple(_CATEGORIES)
# Share of plays by users of each main category (archetype), and the mix of their other plays.
_ARCHETYPE_WEIGHTS = (0.09, 0.03, 0.03, 0.04, 0.02, 0.74, 0.02, 0.02, 0.01)
_SECONDARY_WEIGHTS = (0.25, 0.04, 0.04, 0.05, 0.02, 0.52, 0.03, 0.03, 0.02)


def _cumulative(pairs):
    values = [value for value, _ in pairs]
    return values, list(accumulate(weight for _, weight in pairs))


# Mod combinations (legacy bitmask, before the category's RX/AP bit) with relative frequencies.
_MODS = {
    "osu": _cumulative([
        (0, 40), (HD, 14), (HR, 5), (DT, 7), (HD | DT, 9), (HD | HR, 6), (NC | DT, 2), (HD | NC | DT, 1.5),
        (HD | DT | HR, 1.5), (EZ, 1.5), (HT, 1.5), (EZ | HT, 0.3), (FL, 0.8), (HD | FL, 0.6), (NF, 3),
        (NF | HD, 1), (SO, 1.2), (HD | SO, 0.5), (SD, 1.5), (HD | SD, 0.5), (PF | SD, 1), (HD | PF | SD, 0.4),
    ]),
    "osu_rx": _cumulative([
        (0, 45), (HD, 15), (HR, 5), (DT, 10), (HD | DT, 12), (HD | HR, 5), (NC | DT, 2), (HD | NC | DT, 1.5),
        (HD | DT | HR, 1.5), (EZ, 1), (HT, 1), (FL, 0.5), (HD | FL, 0.3), (SO, 0.5),
    ]),
    "osu_ap": _cumulative([
        (0, 50), (HD, 15), (DT, 10), (HD | DT, 10), (HR, 5), (HD | HR, 5), (NC | DT, 1), (EZ, 1), (HT, 1),
        (FL, 1),
    ]),
    "taiko": _cumulative([
        (0, 50), (HD, 12), (HR, 6), (DT, 8), (HD | DT, 6), (HD | HR, 3), (NC | DT, 1), (EZ, 2), (HT, 2),
        (FL, 1), (NF, 4), (SD, 2), (PF | SD, 1),
    ]),
    "taiko_rx": _cumulative([(0, 55), (HD, 15), (DT, 10), (HD | DT, 8), (HR, 5), (HD | HR, 3), (EZ, 1), (HT, 1)]),
    "catch": _cumulative([
        (0, 45), (HD, 15), (HR, 8), (HD | HR, 8), (DT, 6), (HD | DT, 6), (NC | DT, 1), (EZ, 2), (HT, 2),
        (FL, 1), (NF, 3), (SD, 2), (PF | SD, 1),
    ]),
    "catch_rx": _cumulative([(0, 50), (HD, 15), (HR, 8), (HD | HR, 8), (DT, 8), (HD | DT, 6), (EZ, 1), (HT, 1)]),
    "mania": _cumulative([
        (0, 55), (HD, 5), (FI, 1), (DT, 10), (NC | DT, 2), (HT, 3), (NF, 5), (EZ, 2), (FL, 1), (SD, 2),
        (PF | SD, 2),
    ]),
    "mania_rx": _cumulative([(0, 60), (DT, 15), (HD, 5), (HT, 3), (EZ, 2)]),
}
_MOD_TABLE_OF_CATEGORY = {
    "vn0": "osu", "vn1": "taiko", "vn2": "catch", "vn3": "mania", "rx3": "mania_rx",
    "rx0": "osu_rx", "rx1": "taiko_rx", "rx2": "catch_rx", "ap0": "osu_ap",
}
_MOD_MULTIPLIER = ((NF, 0.5), (EZ, 0.5), (HT, 0.3), (HD, 1.06), (HR, 1.06), (DT, 1.12), (FL, 1.12), (SO, 0.9))


class _Pool:
    """Zipf-like popularity over a list of maps: weight 1 / rank**exponent, ranks drawn from the seed."""

    def __init__(self, maps: list[_Map], rng: random.Random, exponent: float = 1.0) -> None:
        self.maps = list(maps)
        ranks = list(range(1, len(self.maps) + 1))
        rng.shuffle(ranks)
        self.cum = list(accumulate(1.0 / rank**exponent for rank in ranks))

    def pick(self, rng: random.Random) -> _Map:
        return self.maps[bisect_right(self.cum, rng.random() * self.cum[-1])]


@dataclass(slots=True)
class _Spec:
    """One play to generate: category, the map played, the md5 the score names, mods, forced pass."""

    category: str
    beatmap: _Map
    mods: int
    force_pass: bool = False


class _PlayMaker:
    """Draws play specs and turns them into score rows (hit counts per mode, combo, accuracy, score, pp)."""

    def __init__(self, rows: list[_Map], unknown: list[_Map], rng: random.Random) -> None:
        self.rng = rng
        self.unknown = unknown
        osu_maps = [m for m in rows if m.mode == 0]
        self.osu = _Pool(osu_maps, rng)
        self.native = {mode: _Pool([m for m in rows if m.mode == mode], rng) for mode in (1, 2, 3)
                       if any(m.mode == mode for m in rows)}
        self.native_share = {1: 0.5, 2: 0.6, 3: 0.5}
        # Maps that certainly rate (real file, eligible status, enough objects), per play_mode.
        good = [m for m in rows if m.kind == "real" and m.ranked >= 2 and m.objects >= 50]
        self.eligible = {
            mode: [m for m in good if m.mode in (0, mode)] or [m for m in good if m.mode == 0]
            for mode in (0, 1, 2, 3)
        }

    def pick_map(self, play_mode: int) -> _Map:
        rng = self.rng
        if rng.random() < 0.004:
            return rng.choice(self.unknown)
        if play_mode in self.native and rng.random() < self.native_share[play_mode]:
            return self.native[play_mode].pick(rng)
        return self.osu.pick(rng)

    def pick_mods(self, category: str, beatmap: _Map) -> int:
        values, cum = _MODS[_MOD_TABLE_OF_CATEGORY[category]]
        mods = values[bisect_right(cum, self.rng.random() * cum[-1])] | _CATEGORIES[category][2]
        if _CATEGORIES[category][1] == 3 and beatmap.mode == 0 and self.rng.random() < 0.25:
            mods |= self.rng.choice(KEY_MODS)  # key mods only on mania converts
        return mods

    def spec(self, category: str, beatmap: _Map | None = None, force_pass: bool = False) -> _Spec:
        beatmap = beatmap or self.pick_map(_CATEGORIES[category][1])
        return _Spec(category, beatmap, self.pick_mods(category, beatmap), force_pass)

    def eligible_spec(self, category: str) -> _Spec:
        """A forced pass on a map that rates and is eligible (ranked >= 2) in the category's mode."""
        return self.spec(category, self.rng.choice(self.eligible[_CATEGORIES[category][1]]), True)

    def row(self, user: _User, spec: _Spec, time: int) -> tuple[str, dict]:
        """(table name, score row) for one play; hit counts follow the play_mode's judgements."""
        rng = self.rng
        table, play_mode, _ = _CATEGORIES[spec.category]
        m, mods = spec.beatmap, spec.mods
        completed, skill = self._outcome(table, spec, user.skill)
        passed = completed == 2
        total, droplets = _judged_objects(m, play_mode)
        fraction = 1.0 if passed else rng.uniform(0.05, 0.95)
        judged = max(1, int(total * fraction))
        misses = self._misses(passed, judged, skill)
        hits = self._hits(play_mode, m, judged, misses, droplets, fraction, skill)
        max_combo, full_combo = self._combo(m, play_mode, total, droplets, passed, misses, fraction)
        score = _score(play_mode, mods, m.difficulty, hits, max_combo, fraction)
        pp = self._pp(table, m, mods, passed, hits.accuracy, misses)
        m.plays += 1
        m.passes += passed
        return table, {
            "beatmap_md5": m.md5,
            "userid": user.id,
            "score": score,
            "max_combo": max_combo,
            "full_combo": full_combo,
            "mods": mods,
            "300_count": hits.n300,
            "100_count": hits.n100,
            "50_count": hits.n50,
            "katus_count": hits.katus,
            "gekis_count": hits.gekis,
            "misses_count": misses,
            "time": time,
            "play_mode": play_mode,
            "completed": completed,
            "accuracy": round(100.0 * hits.accuracy, 4),
            "pp": pp,
            "checksum": f"{rng.getrandbits(128):032x}",
        }

    def _outcome(self, table: str, spec: _Spec, user_skill: float) -> tuple[int, float]:
        """(completed: 0 quit, 1 failed, 2 passed (best decided later), this play's accuracy skill).
        Fails are likelier with SD, rarer with EZ, never with NF, likelier with HR/DT/FL, and rarer in
        relax and autopilot."""
        rng, mods = self.rng, spec.mods
        fail = 0.0 if mods & NF else 0.45 if mods & SD else 0.15 if mods & EZ else 0.28
        if mods & (HR | DT | FL):
            fail += 0.07
        if table != "scores" or mods & RX:
            fail *= 0.8
        draw = rng.random()
        completed = 2 if spec.force_pass or draw >= 0.07 + fail else (0 if draw < 0.07 else 1)
        skill = rng.gauss(user_skill, 0.02) - 0.015 * bool(mods & (HR | FL | DT)) + 0.01 * bool(mods & (EZ | HT))
        return completed, min(0.999, max(0.5, skill))

    def _misses(self, passed: bool, judged: int, skill: float) -> int:
        """Misses among `judged` objects: a pass is often clean (more so for skilled users)."""
        rng = self.rng
        if passed:
            no_miss = rng.random() < 0.15 + 0.25 * (skill - 0.8) / 0.2
            return 0 if no_miss else min(judged, 1 + int(rng.expovariate(1.0 / (1 + judged * 0.01))))
        return min(judged, 1 + int(judged * rng.uniform(0.01, 0.15)))

    def _hits(self, play_mode: int, m: _Map, judged: int, misses: int, droplets: int, fraction: float,
              skill: float) -> _Hits:
        """The judgements of the `judged - misses` objects not missed, by play_mode's rules."""
        rng = self.rng
        rest = judged - misses
        off = min(1.0, (1.0 - skill) * rng.uniform(0.6, 1.6))
        if play_mode == 0:
            n100 = min(rest, int(rest * off * 2.0))
            n50 = min(rest - n100, int(n100 * rng.uniform(0.0, 0.15)))
            n300 = rest - n100 - n50
            gekis = int(n300 * rng.uniform(0.08, 0.25))
            katus = int(n100 * rng.uniform(0.1, 0.4))
            return _Hits(n300, n100, n50, katus, gekis, (300 * n300 + 100 * n100 + 50 * n50) / (300 * judged))
        if play_mode == 1:
            n100 = min(rest, int(rest * off * 2.5))
            n300 = rest - n100
            gekis = int(n300 * rng.uniform(0.03, 0.15))  # big notes hit great
            katus = int(n100 * rng.uniform(0.03, 0.15))
            return _Hits(n300, n100, 0, katus, gekis, (n300 + 0.5 * n100) / judged)
        if play_mode == 2:
            drops = min(rest, m.sliders)
            n100 = drops
            n300 = rest - drops
            drop_total = int(droplets * fraction)
            katus = min(drop_total, int(drop_total * off * 3))  # missed droplets
            n50 = drop_total - katus
            gekis = int(n300 * rng.uniform(0.05, 0.15))
            return _Hits(n300, n100, n50, katus, gekis, (n300 + n100 + n50) / max(1, n300 + n100 + n50 + katus + misses))
        perfect = int(rest * min(0.98, max(0.0, skill - 0.2)) * rng.uniform(0.7, 1.0))
        remainder = rest - perfect
        n300 = int(remainder * rng.uniform(0.5, 0.8))
        katus = int((remainder - n300) * rng.uniform(0.4, 0.8))  # 200s
        n100 = int((remainder - n300 - katus) * rng.uniform(0.5, 0.9))
        n50 = remainder - n300 - katus - n100
        gekis = perfect  # MAX judgements
        return _Hits(n300, n100, n50, katus, gekis,
                     (300 * (gekis + n300) + 200 * katus + 100 * n100 + 50 * n50) / (300 * judged))

    def _combo(self, m: _Map, play_mode: int, total: int, droplets: int, passed: bool, misses: int,
               fraction: float) -> tuple[int, bool]:
        """(max_combo, full_combo): capped by the map's combo in the play_mode; an osu! pass without
        misses is a full combo 80% of the time (slider ends may break it)."""
        rng = self.rng
        cap = m.max_combo
        if play_mode in (1, 3):
            cap = min(cap, total)
        elif play_mode == 2:
            cap = min(cap, total + droplets)
        full_combo = passed and misses == 0 and (play_mode != 0 or rng.random() < 0.8)
        if full_combo:
            max_combo = cap
        elif passed and misses == 0:
            max_combo = max(1, int(cap * rng.uniform(0.5, 0.98)))
        else:
            max_combo = max(1, int(cap * fraction * rng.uniform(0.05, 0.9)))
        return min(max_combo, cap), full_combo

    def _pp(self, table: str, m: _Map, mods: int, passed: bool, accuracy: float, misses: int) -> float:
        """A made-up pp: only passes on ranked or approved maps (2, 3) have any."""
        if not (passed and m.ranked in (2, 3)):
            return 0.0
        pp = 60 * m.difficulty * (accuracy**8) * (0.9 + 0.1 * (misses == 0))
        pp *= 1.0 + 0.35 * bool(mods & (DT | NC)) + 0.08 * bool(mods & HR) + 0.04 * bool(mods & HD)
        pp *= 0.5 if mods & (EZ | HT) else 1.0
        pp *= 1.6 if table == "scores_relax" else 1.3 if table == "scores_ap" else 1.0
        return round(pp * self.rng.uniform(0.8, 1.25), 3)


class _Hits(NamedTuple):
    """The judgement counts of one play and its accuracy (a fraction)."""

    n300: int
    n100: int
    n50: int
    katus: int
    gekis: int
    accuracy: float


def _judged_objects(m: _Map, play_mode: int) -> tuple[int, int]:
    """(objects a play of `m` in `play_mode` judges, at least 1; catch droplets, else 0)."""
    if play_mode == 2:
        total = m.circles + m.slider_ends  # fruits and drops
        droplets = 4 * m.sliders
    elif play_mode == 1:
        total = m.circles if m.mode == 1 else m.circles + m.sliders
        droplets = 0
    elif play_mode == 3:
        total = m.circles + m.holds if m.mode == 3 else m.circles + m.sliders + m.spinners
        droplets = 0
    else:
        total = m.objects
        droplets = 0
    return max(total, 1), droplets


def _score(play_mode: int, mods: int, difficulty: float, hits: _Hits, max_combo: int, fraction: float) -> int:
    """A made-up score: mania's is accuracy-based (up to 1,000,000), the others grow with combo."""
    multiplier = 1.0
    for bit, factor in _MOD_MULTIPLIER:
        if mods & bit:
            multiplier *= factor
    hit_value = 300 * hits.n300 + 100 * hits.n100 + 50 * hits.n50
    if play_mode == 3:
        score = int(1_000_000 * hits.accuracy * fraction * multiplier)
    else:
        scale = 4.0 if play_mode != 1 else 0.4
        score = int(hit_value * (1 + max_combo * scale * difficulty / 25) * multiplier)
    return min(score, 2_147_483_647)


def _full_mode(table: str, play_mode: int) -> int:
    if table == "scores":
        return play_mode
    if table == "scores_relax":
        return play_mode + 4
    return 8


def _counted_hits(row: dict) -> int:
    """Hits as stats.total_hits counts them (DOMAIN.md §4): 300+100+50 (no 50 for catch), plus
    gekis and katus for taiko and mania."""
    play_mode = row["play_mode"]
    hits = row["300_count"] + row["100_count"] + (row["50_count"] if play_mode != 2 else 0)
    if play_mode in (1, 3):
        hits += row["gekis_count"] + row["katus_count"]
    return hits


# ======================================================================================================
# the build
# ======================================================================================================


def _read_achievements() -> list[dict]:
    """less_achievements rows of today's live database (conditions.catalogue.live_rows: ids 1-128)."""
    return live_rows()


def _insert(conn: sa.Connection, table: sa.Table, rows: list[dict]) -> None:
    for start in range(0, len(rows), INSERT_CHUNK_ROWS):
        conn.execute(table.insert(), rows[start : start + INSERT_CHUNK_ROWS])


def _mark_best(rows: list[dict], by_pp: bool) -> None:
    """completed 3 on the best pass per (user, md5, play_mode, relax bit), 2 on the other passes.

    Best = highest pp (relax, autopilot) or highest score (vanilla), as the live server ranks them.
    """
    def value(row: dict) -> tuple:
        return (row["pp"], row["score"]) if by_pp else (row["score"], row["pp"])

    best: dict[tuple, dict] = {}
    for row in rows:
        if row["completed"] < 2:
            continue
        row["completed"] = 2
        key = (row["userid"], row["beatmap_md5"], row["play_mode"], row["mods"] & RX)
        if key not in best or value(row) > value(best[key]):
            best[key] = row
    for row in best.values():
        row["completed"] = 3


def build_demo_database(
    db_url: str, osu_dir: Path, maps_dir: Path, *, users: int = 300, seed: int = 20220623
) -> DemoBuild:
    """Build the demo data set into an empty database at `db_url` and the .osu store `osu_dir`.

    db_url: `sqlite:///path` or `mysql+pymysql://user@host:port/db` (the database must exist).
    osu_dir: created if missing; receives `{beatmap_id}.osu` for every map under `maps_dir` (searched
    recursively for *.osu) plus the corrupt and stale files; the missing map's file is removed if present.
    users: users to generate (>= 20); about 100 random plays per user plus about 11,000 grinder plays.
    seed: everything is drawn from random.Random(seed); the same seed gives the same database.

    Raises ValueError (users < 20, two map files with the same content), FileNotFoundError (no maps),
    DemoDatabaseNotEmpty (a demo table already holds rows: delete the old database first).
    """
    if users < MIN_USERS:
        raise ValueError(f"users must be at least {MIN_USERS} (got {users})")
    osu_dir, maps_dir = Path(osu_dir), Path(maps_dir)
    rng = random.Random(seed)

    engine = sa.create_engine(db_url)
    try:
        create_production_schema(engine)
        _check_empty(engine)
        data = _generate(maps_dir, osu_dir, users, rng)
        with engine.begin() as conn:
            _write(conn, data)
    finally:
        engine.dispose()
    return _describe(data, seed)


_DEMO_TABLES = (
    scores_table, scores_relax_table, scores_ap_table, beatmaps_table, users_table,
    users_achievements_table, less_achievements_table, user_stats_table,
)


def _check_empty(engine: sa.Engine) -> None:
    """Raise DemoDatabaseNotEmpty if a table the demo writes holds rows."""
    with engine.connect() as conn:
        filled = {t.name: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one() for t in _DEMO_TABLES}
    filled = {name: count for name, count in filled.items() if count}
    if filled:
        raise DemoDatabaseNotEmpty(engine.url.render_as_string(hide_password=True), filled)


@dataclass(slots=True)
class _DemoData:
    """Everything the demo writes, drawn in memory: the beatmaps (facts and rows: real maps, then the
    missing, corrupt and stale ones), the unknown md5s, users, score rows per table, pre-existing
    grants, user_stats and less_achievements rows, and what DemoBuild reports."""

    maps: list[_Map]
    beatmap_rows: list[dict]
    unknown: list[_Map]
    files: int
    people: list[_User]
    tables: dict[str, list[dict]]
    achievements: list[dict]
    legacy: int
    stats: list[dict]
    less: list[dict]
    grinders: dict[str, int]
    impossible: int


def _generate(maps_dir: Path, osu_dir: Path, users: int, rng: random.Random) -> _DemoData:
    """Write the .osu store and draw every row, in this order from `rng` (the order is the data set)."""
    maps, unknown, files = _prepare_maps(maps_dir, osu_dir, rng)
    people = _make_users(users, rng)
    maker = _PlayMaker(maps, unknown, rng)
    grinders = _plan_plays(people, maker, maps, unknown, rng)
    tables = _draw_rows(people, maker, rng)
    _plant_jackpot(tables["scores"], people, maps)
    _mark_best(tables["scores"], by_pp=False)
    _mark_best(tables["scores_relax"], by_pp=True)
    _mark_best(tables["scores_ap"], by_pp=True)
    achievements, legacy = _existing_achievements(people, tables, rng)
    stats = _user_stats(people, tables, rng)
    _set_activity(people, achievements, rng)
    impossible = _impossible_converts(maps, tables)
    less = _read_achievements()
    beatmap_rows = [_beatmap_row(m, rng) for m in maps]  # last: play and pass counts are known now
    return _DemoData(maps, beatmap_rows, unknown, files, people, tables, achievements, legacy, stats, less,
                     grinders, impossible)


def _set_activity(people: list[_User], achievements: list[dict], rng: random.Random) -> None:
    """users.latest_activity by tier, covering the user's last score and pre-existing grants."""
    for u in people:
        _set_latest_activity(u, rng)
    latest_grant: dict[int, int] = {}
    for row in achievements:
        latest_grant[row["user_id"]] = max(latest_grant.get(row["user_id"], 0), row["created_at"])
    for u in people:
        u.latest_activity = max(u.latest_activity, latest_grant.get(u.id, 0))


def _impossible_converts(maps: list[_Map], tables: dict[str, list[dict]]) -> int:
    """Score rows whose play_mode differs from their taiko/catch/mania map's mode."""
    map_modes = {m.md5: m.mode for m in maps}
    return sum(
        1
        for rows in tables.values()
        for row in rows
        if map_modes.get(row["beatmap_md5"], 0) != 0 and row["play_mode"] != map_modes[row["beatmap_md5"]]
    )


def _write(conn: sa.Connection, data: _DemoData) -> None:
    """Insert every row of `data` (one transaction: `conn`)."""
    _insert(conn, beatmaps_table, data.beatmap_rows)
    _insert(conn, users_table, [_user_row(u) for u in data.people])
    _insert(conn, less_achievements_table, data.less)
    _insert(conn, users_achievements_table, data.achievements)
    _insert(conn, user_stats_table, data.stats)
    _insert(conn, scores_table, data.tables["scores"])
    _insert(conn, scores_relax_table, data.tables["scores_relax"])
    _insert(conn, scores_ap_table, data.tables["scores_ap"])


def _describe(data: _DemoData, seed: int) -> DemoBuild:
    missing, corrupt, stale = data.maps[-3:]
    return DemoBuild(
        users=len(data.people),
        restricted_users=sum(1 for u in data.people if not u.public),
        beatmaps=len(data.maps),
        beatmap_files=data.files,
        scores=len(data.tables["scores"]),
        scores_relax=len(data.tables["scores_relax"]),
        scores_ap=len(data.tables["scores_ap"]),
        user_stats=len(data.stats),
        existing_achievements=len(data.achievements),
        legacy_mode7_achievements=data.legacy,
        less_achievements=len(data.less),
        missing_beatmap_id=missing.beatmap_id,
        corrupt_beatmap_id=corrupt.beatmap_id,
        stale_beatmap_id=stale.beatmap_id,
        unknown_beatmap_md5s=tuple(m.md5 for m in data.unknown),
        impossible_convert_scores=data.impossible,
        osu_playcount_grinders=(data.grinders["vn0"], data.grinders["rx0"]),
        taiko_hits_grinder=data.grinders["taiko"],
        catch_hits_grinder=data.grinders["catch"],
        mania_hits_grinder=data.grinders["mania"],
        seed=seed,
    )


def _plant_jackpot(rows: list[dict], people: list[_User], beatmap_rows: list[_Map]) -> None:
    """Give the earliest pass of a public user on a real ranked map in `rows` (one table, sorted by
    time) the score 7,777,777, so that the demo always holds a jackpot (achievement 123). Draws
    nothing from the random generator: the rest of the data set is unchanged."""
    public = {u.id for u in people if u.public}
    ranked = {m.md5 for m in beatmap_rows if m.kind == "real" and m.ranked >= 2}
    for row in rows:
        if row["completed"] >= 2 and row["userid"] in public and row["beatmap_md5"] in ranked:
            row["score"] = 7_777_777
            return


def _plan_plays(
    people: list[_User], maker: _PlayMaker, beatmap_rows: list[_Map], unknown: list[_Map], rng: random.Random
) -> dict[str, int]:
    """Fill every user's play specs: Zipf-like activity, grinders, and forced special-case passes.

    Returns the grinder user ids by role: vn0 / rx0 (osu! play count), taiko, catch, mania (hits).
    """
    public = [u for u in people if u.public]
    roles = ("vn0", "rx0", "taiko", "catch", "mania")
    grinder_users = rng.sample(public, len(roles))
    grinders = dict(zip(roles, (u.id for u in grinder_users)))
    grinder_ids = set(grinders.values())

    # Activity: Zipf-like over the users, about 100 plays per user on average; a few never played.
    others = [u for u in people if u.id not in grinder_ids]
    ranks = list(range(1, len(others) + 1))
    rng.shuffle(ranks)
    weights = [rank**-0.9 for rank in ranks]
    budget = 100 * len(people)
    total_weight = sum(weights)
    counts = [0 if rng.random() < 0.03 else max(1, round(budget * weight / total_weight)) for weight in weights]
    # Main categories: each goes to the user whose plays bring its share closest to its archetype
    # weight (busiest users first), so the table shares do not swing with who the busiest users are.
    assigned = dict.fromkeys(_CATEGORY_NAMES, 0)
    placed = 0
    for index in sorted(range(len(others)), key=lambda i: (-counts[i], others[i].id)):
        placed += counts[index]
        deficits = [target * placed - assigned[name] for name, target in zip(_CATEGORY_NAMES, _ARCHETYPE_WEIGHTS)]
        others[index].main = _CATEGORY_NAMES[deficits.index(max(deficits))]
        assigned[others[index].main] += counts[index]
    for u, count in zip(others, counts):
        u.p_main = rng.uniform(0.6, 0.95)
        for _ in range(count):
            category = u.main if rng.random() < u.p_main else rng.choices(_CATEGORY_NAMES, _SECONDARY_WEIGHTS)[0]
            u.plays.append(maker.spec(category))

    # Grinders: long careers. Play-count grinders get 5200-5400 plays in one osu! full mode; hit
    # grinders get a warm-up here and their grind in _draw_rows (played until the stored hits cross).
    # Each ends on five eligible passes after the threshold crossing.
    for role, u in zip(roles, grinder_users):
        u.role = role
        u.start = rng.randint(FIRST_SCORE_TIME + 14 * DAY, FIRST_SCORE_TIME + 800 * DAY)
        u.register = u.start - rng.randint(0, 14 * DAY)
        u.end = rng.randint(LAST_SCORE_TIME - 400 * DAY, LAST_SCORE_TIME)
        u.skill = rng.uniform(0.94, 0.99)
        u.tier = rng.choice(("active", "recent"))
        if role in ("vn0", "rx0"):
            u.main = role
            u.plays.extend(maker.spec(role) for _ in range(5400 if role == "vn0" else 5200))
            u.plays.extend(maker.eligible_spec(role) for _ in range(5))
        else:
            u.main = _HIT_GRINDERS[role][0]
            u.plays.extend(maker.spec(rng.choice(("vn0", "rx0"))) for _ in range(rng.randint(20, 60)))

    # Forced passes by public non-grinder users: bad-input maps, unknown md5s, impossible converts,
    # relax mania, autopilot; and a restricted user's passes (must not be granted).
    regular = [u for u in public if u.id not in grinder_ids]
    forced: list[tuple[_User, _Spec]] = []
    for special in beatmap_rows[-3:] + unknown:
        for category in ("vn0", "rx0", "vn0"):
            forced.append((rng.choice(regular), maker.spec(category, special, True)))
    natives = {mode: [m for m in beatmap_rows if m.kind == "real" and m.mode == mode and m.ranked >= 2]
               for mode in (1, 2, 3)}
    for map_mode, category in ((1, "vn0"), (1, "rx2"), (2, "vn1"), (2, "vn3"), (3, "rx0"), (3, "ap0")):
        if natives[map_mode]:
            forced.append((rng.choice(regular), maker.spec(category, rng.choice(natives[map_mode]), True)))
    for category in ("rx3", "rx3", "rx3", "ap0", "ap0", "ap0"):
        forced.append((rng.choice(regular), maker.eligible_spec(category)))
    restricted = [u for u in people if not u.public]
    for category in ("vn0", "rx0", "rx0"):
        forced.append((rng.choice(restricted), maker.eligible_spec(category)))
    for u, spec in forced:
        u.plays.insert(rng.randint(0, len(u.plays)), spec)
    return grinders


def _draw_rows(people: list[_User], maker: _PlayMaker, rng: random.Random) -> dict[str, list[dict]]:
    """Score rows per table, each table sorted by time (ids then grow with time, as in production).

    A user's play times are drawn in [start, end] and assigned sorted, in the order of `plays`. Hit
    grinders then grind their mode in the last 120 days (times increasing) until the stored 300+100
    counts reach 1.15 x the threshold, and end on five eligible passes.
    """
    tables: dict[str, list[dict]] = {"scores": [], "scores_relax": [], "scores_ap": []}
    for u in people:
        grinding = u.role in _HIT_GRINDERS
        window_end = u.end - 120 * DAY if grinding else u.end
        times = sorted(rng.randint(u.start, window_end) for _ in u.plays)
        rows = [maker.row(u, spec, time) for spec, time in zip(u.plays, times)]
        if grinding:
            category, threshold = _HIT_GRINDERS[u.role]
            play_mode = _CATEGORIES[category][1]
            time = window_end
            hits = sum(
                r["300_count"] + r["100_count"] for t, r in rows if t == "scores" and r["play_mode"] == play_mode
            )
            while hits < 1.15 * threshold:
                time = min(LAST_SCORE_TIME - DAY, time + rng.randint(600, 12 * 3600))
                rows.append(maker.row(u, maker.spec(category), time))
                hits += rows[-1][1]["300_count"] + rows[-1][1]["100_count"]
            for _ in range(5):
                time = min(LAST_SCORE_TIME, time + rng.randint(600, 3 * 3600))
                rows.append(maker.row(u, maker.eligible_spec(category), time))
        u.last_score = max((row["time"] for _, row in rows), default=0)
        for table, row in rows:
            tables[table].append(row)
    for rows in tables.values():
        rows.sort(key=lambda row: (row["time"], row["userid"], row["checksum"]))
    return tables


def _user_stats(people: list[_User], tables: dict[str, list[dict]], rng: random.Random) -> list[dict]:
    """user_stats rows for every user and full mode 0-6, 8: stored totals plus later/unstored plays."""
    plays: dict[tuple[int, int], int] = {}
    hits: dict[tuple[int, int], int] = {}
    combo: dict[tuple[int, int], int] = {}
    best_pp: dict[tuple[int, int], list[float]] = {}
    for table, rows in tables.items():
        for row in rows:
            key = (row["userid"], _full_mode(table, row["play_mode"]))
            plays[key] = plays.get(key, 0) + 1
            hits[key] = hits.get(key, 0) + _counted_hits(row)
            combo[key] = max(combo.get(key, 0), row["max_combo"])
            if row["completed"] == 3 and row["pp"] > 0:
                best_pp.setdefault(key, []).append(row["pp"])
    result = []
    for u in people:
        growth = 0.3 if u.tier in ("active", "recent") else 0.1 if u.tier == "dormant" else 0.02
        for mode in FULL_MODES:
            key = (u.id, mode)
            stored_plays, stored_hits = plays.get(key, 0), hits.get(key, 0)
            extra = rng.uniform(0, growth)
            pp_values = sorted(best_pp.get(key, ()), reverse=True)[:100]
            result.append(
                {
                    "user_id": u.id,
                    "mode": mode,
                    "playcount": stored_plays + int(stored_plays * extra),
                    "total_hits": stored_hits + int(stored_hits * extra),
                    "pp": int(sum(value * 0.95**i for i, value in enumerate(pp_values))),
                    "max_combo": combo.get(key, 0),
                }
            )
    return result


def _existing_achievements(
    people: list[_User], tables: dict[str, list[dict]], rng: random.Random
) -> tuple[list[dict], int]:
    """Grants the live server made after the 2022-06-23 reset for a few users (legacy mode 7 rows
    for autopilot included, one user holding the same achievement in mode 7 and 8).

    Returns (users_achievements rows without id, number of mode 7 rows). The chosen users' activity
    tier moves after the reset.
    """
    modes_played: dict[int, list[int]] = {}
    for table, rows in tables.items():
        for row in rows:
            mode = _full_mode(table, row["play_mode"])
            played = modes_played.setdefault(row["userid"], [])
            if mode not in played:
                played.append(mode)
    public = [u for u in people if u.public and u.id in modes_played]
    family = {0: list(range(1, 5)) + [21], 1: list(range(25, 29)), 2: list(range(41, 45)), 3: list(range(57, 61))}
    intros = list(range(86, 97))
    grants: dict[tuple[int, int, int], int] = {}

    def grant(u: _User, achievement: int, mode: int) -> None:
        if u.tier == "old":
            u.tier = "recent"
        latest = REFERENCE_TIME - (30 * DAY if u.tier != "active" else DAY)
        grants.setdefault((u.id, achievement, mode), rng.randint(RESET_TIME, latest))

    achievers = rng.sample(public, min(len(public), max(4, len(people) // 30)))
    for u in achievers:
        for _ in range(rng.randint(2, 5)):
            mode = rng.choice(modes_played[u.id])
            grant(u, rng.choice(family[mode % 4] + intros), mode)
    ap_players = [u for u in public if 8 in modes_played[u.id]] or public
    legacy_users = rng.sample(ap_players, min(len(ap_players), 3))
    for index, u in enumerate(legacy_users):
        chosen = rng.sample(family[0] + intros, 3)
        for achievement in chosen:
            grant(u, achievement, 7)
        if index == 0:  # the same achievement held in mode 7 and mode 8 (consolidation conflict)
            grant(u, chosen[0], 8)
    rows = [
        {"user_id": user_id, "achievement_id": achievement, "mode": mode, "created_at": created_at}
        for (user_id, achievement, mode), created_at in grants.items()
    ]
    rows.sort(key=lambda row: (row["created_at"], row["user_id"], row["achievement_id"], row["mode"]))
    return rows, sum(1 for row in rows if row["mode"] == 7)


def _set_latest_activity(u: _User, rng: random.Random) -> None:
    """users.latest_activity by tier, never before the user's last stored score (unix seconds)."""
    last_score = max(u.last_score, u.register)
    if u.tier == "active":
        latest = REFERENCE_TIME - rng.randint(0, 29 * DAY)
    elif u.tier == "recent":
        latest = REFERENCE_TIME - rng.randint(31 * DAY, 364 * DAY)
    elif u.tier == "dormant":
        latest = rng.randint(RESET_TIME, REFERENCE_TIME - 366 * DAY)
    else:
        latest = last_score
    u.latest_activity = max(latest, last_score)
