"""Synthetic data at production scale: a production-shaped Akatsuki database and .osu directory (issue 5).

`build_scaled_database(db_url, osu_dir, maps_dir, scores=N, maps=M, users=U, seed=S)` writes

- M **derived beatmaps**: real .osu files made from the shipped maps (`maps_dir`, searched for *.osu)
  by testbed.derive (new CS/AR/OD/HP and a tempo), saved as `osu_dir/{beatmap_id}.osu`, each with its own
  md5 and a `beatmaps` row holding it. Star ratings span about 1 to 11 in every mode: a calibration
  rates every shipped map (at least `MIN_BASE_OBJECTS` objects) without mods (testbed.derive.map_attributes:
  the `live` engine's vanilla rating) at the tempos `CALIBRATION_TEMPOS` in every mode it can be
  played in (own mode; osu! maps also as converts); each derived map gets a target mode and a target
  star rating (`_targets`), a base map whose curve reaches it within `TEMPO_RANGE` (`_steer`), and
  the tempo read off that curve (log-log interpolation). Map modes: `MAP_MODE_SHARES` native maps
  per mode, osu! maps steered for a convert mode (`CONVERT_STEERED_SHARES`). After writing, a sample
  of the derived maps (up to `SAMPLE_PER_MODE` per target mode, evenly spread over the targets) is
  rated with the `live` engine in every mode it can be played in: that is the reported spread
  (`ScaleBuild.spread`), and the check of the steering (`SpreadStats.steer_error`).
- U **users** (ids from testbed.demo.FIRST_USER_ID): `RESTRICTED_SHARE` restricted (privileges 0
  or 2), Zipf-like activity (plays ~ multinomial with weights rank**-`USER_ZIPF`), careers between
  2012-01-01 and 2022-06-22, latest_activity by tier relative to testbed.demo.REFERENCE_TIME.
- N **scores** over `scores`, `scores_relax`, `scores_ap` in the shares of the real tables
  (`TABLE_SHARES`, DOMAIN.md §1: 1,920,543 / 4,375,546 / 5,234 passed scores before 2022-06-23);
  modes within each table by `CATEGORIES` (osu! dominant; relax mania in `scores` with RX);
  common mod combinations (`MODS`); `completed` 0 quit, 1 failed, 2 passed, 3 the best pass per
  (user, beatmap, play_mode, relax bit); hit counts per mode, accuracy, combo, full-combo flags, a
  made-up score and pp; unix times; Zipf-like map popularity (`MAP_ZIPF`, `MAP_RANK_OFFSET`); `UNKNOWN_MAP_SHARE` of
  plays on md5s no beatmaps row holds (updated or deleted maps). Ids grow with time in every table.
- `user_stats` (per user and full mode: stored plays and hits, plus later plays for active users)
  and `less_achievements` (today's 128 live rows, if the table is empty), so that `sr-backfill run`
  works on the result.

Streaming: users are generated in blocks holding about `chunk_rows` scores (a user's plays all in one
block, so the best pass is exact); each block's rows go to per-table, per-time-bucket files of fixed
records in a temporary directory; then every bucket (about `chunk_rows` rows; edges at the quantiles of
the expected score times) is read, sorted by time and bulk loaded (testbed.bulkload). Memory stays flat:
no array ever holds all N rows. Everything is drawn from numpy Generators seeded by (seed, stream):
the same seed and chunk_rows give the same database and files.

Frequencies not in DOMAIN.md (mode mix within a table, mods, quits and fails, map modes) are this
module's assumptions, chosen to be plausible; they are constants below.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import math
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import sqlalchemy as sa

from cluster.errors import ConfigError
from cluster.schema import SCORE_TABLES, create_production_schema
from cluster.schema import less_achievements as less_achievements_table
from conditions.catalogue import live_rows
from sr.engines import engine_named
from sr.mods import AP, DT, EZ, FL, HD, HR, HT, NC, NF, PF, RX, SD, SO
from testbed.bulkload import BulkLoader, TableLoad
from testbed.demo import (
    DAY,
    FIRST_SCORE_TIME,
    FIRST_USER_ID,
    KEY_MODS,
    LAST_SCORE_TIME,
    REFERENCE_TIME,
)
from testbed.derive import Derivation, OsuTemplate, map_attributes
from testbed.errors import TargetNotEmpty

# --- DOMAIN.md §1: passed scores before 2022-06-23 per table -------------------------------------------
REAL_TABLE_ROWS = {"scores": 1_920_543, "scores_relax": 4_375_546, "scores_ap": 5_234}
TABLE_SHARES = {name: rows / sum(REAL_TABLE_ROWS.values()) for name, rows in REAL_TABLE_ROWS.items()}

# Score categories: (table, play_mode, mod bits always set, share within the table, MODS table). Relax
# mania is stored in `scores` with the relax bit (DOMAIN.md §3); scores_relax holds play_mode 0-2 only.
CATEGORIES = (
    ("scores", 0, 0, 0.74, "osu"), ("scores", 1, 0, 0.07, "taiko"), ("scores", 2, 0, 0.06, "catch"),
    ("scores", 3, 0, 0.11, "mania"), ("scores", 3, RX, 0.02, "mania_relax"),
    ("scores_relax", 0, RX, 0.94, "osu_relax"), ("scores_relax", 1, RX, 0.03, "taiko_relax"),
    ("scores_relax", 2, RX, 0.03, "catch_relax"),
    ("scores_ap", 0, AP, 1.0, "osu_autopilot"),
)
CATEGORY_SHARES = np.array([TABLE_SHARES[table] * share for table, _, _, share, _ in CATEGORIES])
_CATEGORY_TABLE = np.array([SCORE_TABLES.index(table) for table, *_ in CATEGORIES], dtype=np.int8)
_CATEGORY_MODE = np.array([mode for _, mode, *_ in CATEGORIES], dtype=np.int8)
_CATEGORY_BITS = np.array([bits for _, _, bits, *_ in CATEGORIES], dtype=np.int64)

# Mod combinations (legacy bitmask, before the category's RX/AP bit) with relative frequencies per
# kind of play. NC is always stored with DT, PF with SD (DOMAIN.md §3).
MODS = {
    "osu": [
        (0, 40), (HD, 14), (HR, 5), (DT, 7), (HD | DT, 9), (HD | HR, 6), (NC | DT, 2), (HD | NC | DT, 1.5),
        (HD | DT | HR, 1.5), (EZ, 1.5), (HT, 1.5), (EZ | HT, 0.3), (FL, 0.8), (HD | FL, 0.6), (NF, 3),
        (NF | HD, 1), (SO, 1.2), (HD | SO, 0.5), (SD, 1.5), (HD | SD, 0.5), (PF | SD, 1), (HD | PF | SD, 0.4),
    ],
    "osu_relax": [
        (0, 45), (HD, 15), (HR, 5), (DT, 10), (HD | DT, 12), (HD | HR, 5), (NC | DT, 2), (HD | NC | DT, 1.5),
        (HD | DT | HR, 1.5), (EZ, 1), (HT, 1), (FL, 0.5), (HD | FL, 0.3), (SO, 0.5), (NF, 0.5),
    ],
    "osu_autopilot": [
        (0, 50), (HD, 15), (DT, 10), (HD | DT, 10), (HR, 5), (HD | HR, 5), (NC | DT, 1), (EZ, 1), (HT, 1), (FL, 1),
    ],
    "taiko": [
        (0, 50), (HD, 12), (HR, 6), (DT, 8), (HD | DT, 6), (HD | HR, 3), (NC | DT, 1), (EZ, 2), (HT, 2),
        (FL, 1), (NF, 4), (SD, 2), (PF | SD, 1),
    ],
    "taiko_relax": [(0, 55), (HD, 15), (DT, 10), (HD | DT, 8), (HR, 5), (HD | HR, 3), (EZ, 1), (HT, 1)],
    "catch": [
        (0, 45), (HD, 15), (HR, 8), (HD | HR, 8), (DT, 6), (HD | DT, 6), (NC | DT, 1), (EZ, 2), (HT, 2),
        (FL, 1), (NF, 3), (SD, 2), (PF | SD, 1),
    ],
    "catch_relax": [(0, 50), (HD, 15), (HR, 8), (HD | HR, 8), (DT, 8), (HD | DT, 6), (EZ, 1), (HT, 1)],
    "mania": [
        (0, 55), (HD, 5), (DT, 10), (NC | DT, 2), (HT, 3), (NF, 5), (EZ, 2), (FL, 1), (SD, 2), (PF | SD, 2),
    ],
    "mania_relax": [(0, 60), (DT, 15), (HD, 5), (HT, 3), (EZ, 2)],
}
KEY_MOD_SHARE = 0.25  # mania plays on osu! maps (converts) that carry a key mod

# --- maps --------------------------------------------------------------------------------------------
MAP_MODE_SHARES = (0.78, 0.06, 0.06, 0.10)  # beatmaps.mode 0-3 (osu! maps include the convert-steered)
CONVERT_STEERED_SHARES = {1: 0.05, 2: 0.05, 3: 0.03}  # of all maps: osu! maps whose tempo targets a convert
NATIVE_PLAY_SHARE = {1: 0.5, 2: 0.6, 3: 0.5}  # taiko/catch/mania plays on native maps (rest: converts)
RANKED_STATUSES = ((2, 70), (3, 9), (4, 6), (5, 9), (0, 3), (1, 3))  # beatmaps.ranked; 0/1 unranked
STAR_RANGE = (1.0, 11.0)
UNIFORM_TARGET_SHARE = 0.4  # targets evenly spread over STAR_RANGE; the rest lognormal around 4 stars
TEMPO_RANGE = (0.2, 8.0)
MAX_OTHER_MODE_STARS = 12.5
CALIBRATION_TEMPOS = tuple(float(t) for t in np.geomspace(TEMPO_RANGE[0], TEMPO_RANGE[1], 14))
MIN_BASE_OBJECTS = 50
SAMPLE_PER_MODE = 100
MAP_ZIPF = 1.0
MAP_RANK_OFFSET = 1 / 400  # per map: weight (rank + M/400)**-1, the top map of 20,000 gets ~0.3% of plays
UNKNOWN_MAP_SHARE = 0.002
FIRST_BEATMAP_ID = 5_000_001
FIRST_BEATMAPSET_ID = 3_000_001

# --- users and plays ---------------------------------------------------------------------------------
USER_ZIPF = 0.8
IDLE_USER_SHARE = 0.03  # users without a stored play
RESTRICTED_SHARE = 0.05
QUIT_SHARE = 0.05
CHUNK_ROWS = 250_000
_FULL_MODE_BASE = np.array([0, 4, 8])  # full mode = play_mode + this, per table (autopilot is 8)

# One stored score row between generation and loading (a record of the bucket files).
ROW_DTYPE = np.dtype([
    ("userid", "<i4"), ("map", "<i4"), ("score", "<i4"), ("max_combo", "<i4"), ("full_combo", "i1"),
    ("mods", "<i4"), ("300_count", "<i2"), ("100_count", "<i2"), ("50_count", "<i2"), ("katus_count", "<i2"),
    ("gekis_count", "<i2"), ("misses_count", "<i2"), ("time", "<i4"), ("play_mode", "i1"), ("completed", "i1"),
    ("accuracy", "<f4"), ("pp", "<f4"),
])
_SCORE_COLUMNS = ("beatmap_md5", "userid", "score", "max_combo", "full_combo", "mods", "300_count", "100_count",
                  "50_count", "katus_count", "gekis_count", "misses_count", "time", "play_mode", "completed",
                  "accuracy", "pp", "checksum")
_TARGET_TABLES = (*SCORE_TABLES, "beatmaps", "users", "user_stats")


@dataclass(frozen=True, slots=True)
class SpreadStats:
    """Star ratings (live engine, no mods, raw) of the sampled derived maps in one mode_vn.

    count: ratings; failed: sampled keys that did not rate; min/p05/median/p95/max: stars;
    bands: rated count per integer band, index k = stars in [k, k+1) (last index: 11 and above);
    steer_error: median |log(stars / target)| over the maps steered for this mode (0.1 ~ 10%).
    """

    count: int
    failed: int
    min: float
    p05: float
    median: float
    p95: float
    max: float
    bands: tuple[int, ...]
    steer_error: float


@dataclass(frozen=True, slots=True)
class ScaleBuild:
    """What `build_scaled_database` wrote.

    rows: table -> rows written; maps_by_mode: beatmaps.mode -> maps (0 includes the convert-steered);
    steered: target mode_vn -> maps steered for it; unranked_maps: ranked < 2; users, restricted_users,
    idle_users (no stored play); unknown_md5_scores: scores on md5s without a beatmaps row;
    completed: completed value -> rows; mods_top: the 20 most frequent stored mods values (with the
    RX/AP bits) and their rows; spread: mode_vn -> SpreadStats of the calibration sample;
    bases / skipped_bases: base maps used / skipped (relative path -> reason); seconds: step -> wall
    seconds; loads: table -> testbed.bulkload.TableLoad; load_method and load_notes from the loader;
    seed; osu_dir and files_bytes: where the .osu files went and their total size.
    """

    rows: dict[str, int]
    maps_by_mode: dict[int, int]
    steered: dict[int, int]
    unranked_maps: int
    users: int
    restricted_users: int
    idle_users: int
    unknown_md5_scores: int
    completed: dict[int, int]
    mods_top: tuple[tuple[int, int], ...]
    spread: dict[int, SpreadStats]
    bases: int
    skipped_bases: dict[str, str]
    seconds: dict[str, float]
    loads: dict[str, TableLoad]
    load_method: str
    load_notes: tuple[str, ...]
    seed: int
    osu_dir: str
    files_bytes: int


# ======================================================================================================
# calibration
# ======================================================================================================


@dataclass(frozen=True, slots=True)
class _Base:
    """A shipped map usable as a base: its bytes, template, own mode, settings, metadata, and per mode_vn
    (nan where it cannot be played) and calibration tempo its stars and the counts score rows judge."""

    path: str
    content: bytes
    template: OsuTemplate
    mode: int
    settings: dict
    metadata: dict
    curve: np.ndarray  # (4 mode_vn, len(CALIBRATION_TEMPOS)) stars, nan where unplayable
    # per mode_vn and calibration tempo: judged objects, max combo, catch droplets, catch tiny droplets
    facts: np.ndarray  # (4, len(CALIBRATION_TEMPOS), 4) float, nan where unplayable


def _metadata(content: bytes) -> dict:
    values = {}
    section = ""
    for line in content.decode("utf-8", errors="replace").splitlines():
        line = line.strip()
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
        elif section == "Metadata" and ":" in line:
            key, _, value = line.partition(":")
            values[key.strip()] = value.strip()
    return values


@functools.lru_cache(maxsize=4)
def _calibrate(files: tuple[tuple[str, str, str], ...]) -> tuple[tuple[_Base, ...], tuple[tuple[str, str], ...]]:
    """Bases and skipped (relative path, reason) of `files`: (relative path, absolute path, md5)."""
    bases, skipped = [], []
    for relative, path, _ in files:
        content = Path(path).read_bytes()
        try:
            template = OsuTemplate(content)
        except ValueError as exc:
            skipped.append((relative, str(exc)))
            continue
        modes = (0, 1, 2, 3) if template.mode == 0 else (template.mode,)
        curve = np.full((4, len(CALIBRATION_TEMPOS)), np.nan)
        facts = np.full((4, len(CALIBRATION_TEMPOS), 4), np.nan)
        reason = ""
        for column, tempo in enumerate(CALIBRATION_TEMPOS):
            derived = template.render(Derivation(tempo=tempo))
            for mode_vn in modes:
                try:
                    attributes = map_attributes(derived, mode_vn)
                except ValueError as exc:
                    reason = str(exc)
                    break
                if attributes.objects < MIN_BASE_OBJECTS:
                    reason = f"fewer than {MIN_BASE_OBJECTS} objects in mode {mode_vn}"
                    break
                if not (math.isfinite(attributes.stars) and attributes.stars > 0):
                    reason = f"star rating {attributes.stars} in mode {mode_vn} at tempo {tempo:.2f}"
                    break
                curve[mode_vn, column] = attributes.stars
                facts[mode_vn, column] = (attributes.objects, attributes.max_combo, attributes.droplets,
                                          attributes.tiny_droplets)
            if reason:
                break
        if reason:
            skipped.append((relative, reason))
            continue
        bases.append(_Base(relative, content, template, template.mode, dict(template.settings), _metadata(content),
                           curve, facts))
    return tuple(bases), tuple(skipped)


def calibrate(maps_dir: Path) -> tuple[tuple[_Base, ...], dict[str, str]]:
    """The usable base maps under `maps_dir` (*.osu, sorted by relative path) with their calibration
    curves, and the skipped ones (relative path -> reason: too few objects, a failed rating). Cached
    per process by path and md5 (the calibration is deterministic). About 0.5 s for the shipped maps.

    Raises ConfigError when no usable osu! map is found.
    """
    maps_dir = Path(maps_dir)
    paths = sorted((p for p in maps_dir.rglob("*.osu") if p.is_file()), key=lambda p: p.relative_to(maps_dir).as_posix())
    files = tuple((p.relative_to(maps_dir).as_posix(), str(p.resolve()), hashlib.md5(p.read_bytes()).hexdigest())
                  for p in paths)
    bases, skipped = _calibrate(files)
    if not any(b.mode == 0 for b in bases):
        raise ConfigError(f"no usable osu! map under {maps_dir} (skipped: {dict(skipped)})")
    return bases, dict(skipped)


def _stars_at(base: _Base, mode_vn: int, tempo: np.ndarray) -> np.ndarray:
    """The calibration's estimate of `base` rated in `mode_vn` at each tempo (log-log interpolation;
    nan where the base cannot be played in that mode)."""
    tempo = np.asarray(tempo, dtype=np.float64)
    if not np.isfinite(base.curve[mode_vn, 0]):
        return np.full(tempo.shape, np.nan)
    x = np.log(np.asarray(CALIBRATION_TEMPOS))
    return np.exp(np.interp(np.log(tempo), x, np.log(base.curve[mode_vn])))


# ======================================================================================================
# beatmaps
# ======================================================================================================


@dataclass(slots=True)
class _MapPlan:
    """The M derived maps plus the pool of unknown md5s (indexes M..M+K-1), as arrays.

    base: index into bases (unknown md5s: a random osu! base); target_mode, target: the steering;
    tempo and settings; est: (M+K, 4) estimated stars per mode_vn (nan: unplayable); ranked; md5 (S32).
    """

    count: int
    base: np.ndarray
    target_mode: np.ndarray
    target: np.ndarray
    tempo: np.ndarray
    settings: np.ndarray  # (M, 4) cs, ar, od, hp
    est: np.ndarray
    facts: np.ndarray  # (M+K, 4 modes, 4 facts)
    ranked: np.ndarray
    set_id: np.ndarray
    beatmap_id: np.ndarray
    md5: np.ndarray
    native: dict[int, np.ndarray] = field(default_factory=dict)  # mode -> map indexes (pools)


def _split_counts(total: int, shares: list[float], minimum: int) -> list[int]:
    """Largest-remainder split of `total` by `shares`, each part at least `minimum` when total allows."""
    raw = np.array(shares) / sum(shares) * total
    counts = np.floor(raw).astype(int)
    for index in np.argsort(-(raw - counts))[: total - counts.sum()]:
        counts[index] += 1
    if total >= minimum * len(shares):
        for index in range(len(counts)):
            while counts[index] < minimum:
                donor = int(np.argmax(counts))
                counts[donor] -= 1
                counts[index] += 1
    return [int(c) for c in counts]


def _targets(count: int, rng: np.random.Generator) -> np.ndarray:
    """Target stars: UNIFORM_TARGET_SHARE evenly spread over STAR_RANGE (both ends included), the rest
    lognormal around 4 stars, clipped to STAR_RANGE; shuffled."""
    even = round(count * UNIFORM_TARGET_SHARE) if count >= 2 else count
    spread = np.linspace(*STAR_RANGE, even) if even >= 2 else np.full(even, 4.0)
    rest = np.clip(rng.lognormal(math.log(4.0), 0.45, count - even), *STAR_RANGE)
    out = np.concatenate([spread, rest])
    rng.shuffle(out)
    return out


def _steer(bases: tuple[_Base, ...], candidates: list[int], steer: int, stars: np.ndarray,
           rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(base index, tempo) per target star rating in mode `steer`, drawn among `candidates`.

    On a fine log grid of TEMPO_RANGE, a base qualifies for a target when its calibration curve
    (log-log interpolation) crosses the target at a tempo where the base stays below
    MAX_OTHER_MODE_STARS in every mode it can be played in (an osu! map steered to 11 taiko stars
    rates 17 in osu!: the natives cover the high end of modes 1-3); one qualifying base is drawn
    and its first crossing taken. A target no base reaches gets the closest such point (it is clipped).
    """
    x = np.log(np.asarray(CALIBRATION_TEMPOS))
    fine = np.linspace(x[0], x[-1], 400)
    curves = np.array([np.interp(fine, x, np.log(bases[i].curve[steer])) for i in candidates])
    highest = np.array([np.nanmax([np.interp(fine, x, np.log(c)) for c in bases[i].curve if np.isfinite(c[0])], axis=0)
                        for i in candidates])
    tame = highest <= math.log(MAX_OTHER_MODE_STARS)
    if not tame.any():
        tame[:] = True
    chosen = np.empty(len(stars), dtype=np.int32)
    tempo = np.empty(len(stars))
    for k, star in enumerate(stars):
        d = curves - math.log(star)
        cross = ((d[:, :-1] <= 0) != (d[:, 1:] <= 0)) & tame[:, :-1] & tame[:, 1:]
        rows = np.flatnonzero(cross.any(axis=1))
        if len(rows):
            row = int(rows[rng.integers(len(rows))])
            j = int(np.argmax(cross[row]))
            lo, hi = d[row, j], d[row, j + 1]
            at = fine[j] + (fine[j + 1] - fine[j]) * (lo / (lo - hi) if hi != lo else 0.0)
        else:
            distance = np.where(tame, np.abs(d), np.inf)
            row, j = np.unravel_index(int(np.argmin(distance)), distance.shape)
            at = fine[j]
        chosen[k] = candidates[int(row)]
        tempo[k] = math.exp(at)
    return chosen, tempo


def _plan_maps(bases: tuple[_Base, ...], count: int, rng: np.random.Generator) -> _MapPlan:
    natives = {mode: [i for i, b in enumerate(bases) if b.mode == mode] for mode in range(4)}
    # groups: (own mode, target mode) with shares; a mode without native bases gives its maps to osu!
    groups = [(0, 0, MAP_MODE_SHARES[0] - sum(CONVERT_STEERED_SHARES.values()))]
    groups += [(0, mode, share) for mode, share in CONVERT_STEERED_SHARES.items()]
    groups += [(mode, mode, MAP_MODE_SHARES[mode]) for mode in (1, 2, 3) if natives[mode]]
    sizes = _split_counts(count, [share for _, _, share in groups], 1)
    own, target_mode, target, base_index, tempo = [], [], [], [], []
    for (mode, steer, _), size in zip(groups, sizes):
        if not size:
            continue
        stars = _targets(size, rng)
        chosen, tempos = _steer(bases, natives[mode], steer, stars, rng)
        own.append(np.full(size, mode))
        target_mode.append(np.full(size, steer))
        target.append(stars)
        base_index.append(chosen)
        tempo.append(tempos)
    own, target_mode, target, base_index, tempo = (np.concatenate(v) for v in (own, target_mode, target, base_index, tempo))
    order = rng.permutation(count)  # mix the groups over the id range
    own = own.astype(np.int8)[order]
    target_mode = target_mode.astype(np.int8)[order]
    target = target[order]
    base_index = base_index.astype(np.int32)[order]
    tempo = np.round(np.clip(tempo[order], *TEMPO_RANGE), 4)

    # settings (see the module docstring of testbed.derive): CS near the base's (osu!, catch), AR and OD
    # rising with the target, HP anywhere; taiko and mania keep CS (key count) and AR.
    base_settings = np.array([[bases[i].settings[k] for k in ("cs", "ar", "od", "hp")] for i in base_index])
    settings = base_settings.copy()
    jitter_cs = np.where(own == 0, 0.5, np.where(own == 2, 0.3, 0.0))
    settings[:, 0] = np.where(jitter_cs > 0, np.clip(base_settings[:, 0] + rng.uniform(-1, 1, count) * jitter_cs, 2, 7),
                              base_settings[:, 0])
    ar = np.clip(4.5 + 0.55 * target + rng.normal(0, 0.4, count), 2, 10)
    settings[:, 1] = np.where(np.isin(own, (0, 2)), ar, base_settings[:, 1])
    od_osu = np.clip(ar - 1.0 + rng.normal(0, 0.6, count), 2, 10)
    od_other = np.clip(base_settings[:, 2] + rng.normal(0, 0.8, count), 2, 10)
    settings[:, 2] = np.where(np.isin(own, (0, 2)), od_osu, od_other)
    settings[:, 3] = np.clip(rng.normal(5.5, 1.2, count), 2, 9)
    settings = np.round(settings, 1)
    settings[:, 0] = np.where(own == 3, base_settings[:, 0], settings[:, 0])

    unknown = max(4, count // 100)
    osu_bases = np.array(natives[0], dtype=np.int32)
    unknown_base = osu_bases[rng.integers(len(osu_bases), size=unknown)]
    unknown_tempo = np.round(np.exp(rng.uniform(math.log(0.7), math.log(1.5), unknown)), 4)
    all_base = np.concatenate([base_index, unknown_base])
    all_tempo = np.concatenate([tempo, unknown_tempo])
    est = np.full((len(all_base), 4), np.nan)
    facts = np.full((len(all_base), 4, 4), np.nan)
    x = np.log(np.asarray(CALIBRATION_TEMPOS))
    for b in np.unique(all_base):
        rows = all_base == b
        for mode in range(4):
            est[rows, mode] = _stars_at(bases[b], mode, all_tempo[rows])
            if np.isfinite(bases[b].facts[mode, 0, 0]):
                for k in range(4):
                    facts[rows, mode, k] = np.round(np.interp(np.log(all_tempo[rows]), x, bases[b].facts[mode, :, k]))

    statuses, weights = zip(*RANKED_STATUSES)
    ranked = np.array(statuses, dtype=np.int8)[rng.choice(len(statuses), size=count, p=np.array(weights) / sum(weights))]
    if count >= 20 and not np.any(ranked < 2):
        ranked[rng.integers(count)] = 0
    ranked = np.concatenate([ranked, np.full(unknown, 2, dtype=np.int8)])  # unknown: ranked when played
    set_sizes = rng.integers(1, 6, size=count)
    set_id = (FIRST_BEATMAPSET_ID + np.repeat(np.arange(count), set_sizes)[:count]).astype(np.int64)
    beatmap_id = FIRST_BEATMAP_ID + np.arange(count, dtype=np.int64)
    unknown_md5 = _hex(rng.integers(0, 256, size=(unknown, 16), dtype=np.uint8))
    plan = _MapPlan(
        count=count, base=all_base, target_mode=target_mode, target=target, tempo=all_tempo, settings=settings,
        est=est, facts=facts, ranked=ranked, set_id=set_id, beatmap_id=beatmap_id,
        md5=np.concatenate([np.zeros(count, dtype="S32"), unknown_md5]),
    )
    plan.native = {mode: np.flatnonzero(own == mode) for mode in range(4)}
    return plan


def _hex(raw: np.ndarray) -> np.ndarray:
    """(n, k) uint8 -> (n,) bytes of 2k lowercase hex digits (dtype S{2k})."""
    digits = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
    out = np.empty((raw.shape[0], raw.shape[1] * 2), dtype=np.uint8)
    out[:, 0::2] = digits[raw >> 4]
    out[:, 1::2] = digits[raw & 15]
    return out.view(f"S{raw.shape[1] * 2}").ravel()


_DIFFICULTY_NAMES = ((2.0, "Easy"), (2.7, "Normal"), (4.0, "Hard"), (5.3, "Insane"), (6.5, "Expert"), (99, "Extra"))
_WORDS = ("Neon", "Crimson", "Echo", "Paper", "Silent", "Azure", "Velvet", "Storm", "Lunar", "Glass", "Ember",
          "Hollow", "Static", "Golden", "Frozen", "Rapid", "Distant", "Fallen", "Bright", "Wild")
_NOUNS = ("Garden", "Signal", "Horizon", "Memory", "Engine", "River", "Mirror", "Parade", "Orbit", "Tide",
          "Lantern", "Circuit", "Harbor", "Comet", "Canvas", "Pulse", "Meadow", "Skyline", "Voyage", "Anthem")


def _write_maps(plan: _MapPlan, bases: tuple[_Base, ...], osu_dir: Path, rng: np.random.Generator,
                sample: set[int]) -> tuple[dict[int, bytes], int, list[dict]]:
    """Render and write every derived map; fill plan.md5. Returns (sampled index -> bytes, bytes
    written, beatmaps rows without play counts)."""
    osu_dir.mkdir(parents=True, exist_ok=True)
    kept: dict[int, bytes] = {}
    total = 0
    rows = []
    seen: set[bytes] = set()
    artists = rng.integers(len(_WORDS), size=(plan.count, 2))
    titles = rng.integers(len(_NOUNS), size=plan.count)
    updates = rng.integers(FIRST_SCORE_TIME - 400 * DAY, LAST_SCORE_TIME - 30 * DAY, size=plan.count)
    ratings = np.round(rng.uniform(6.0, 10.0, size=plan.count), 2)
    for index in range(plan.count):
        base = bases[plan.base[index]]
        tempo = float(plan.tempo[index])
        cs, ar, od, hp = (float(v) for v in plan.settings[index])
        name = next(label for limit, label in _DIFFICULTY_NAMES if plan.target[index] < limit)
        beatmap_id = int(plan.beatmap_id[index])
        version = f"{name} x{tempo:g} #{beatmap_id}"
        content = base.template.render(Derivation(
            tempo=tempo, cs=None if base.mode in (1, 3) else cs, ar=None if base.mode in (1, 3) else ar, od=od, hp=hp,
            version=version, beatmap_id=beatmap_id, beatmapset_id=int(plan.set_id[index]),
        ))
        digest = hashlib.md5(content).hexdigest().encode()
        if digest in seen:
            raise RuntimeError(f"two derived maps share md5 {digest.decode()}")  # distinct ids make this impossible
        seen.add(digest)
        plan.md5[index] = digest
        (osu_dir / f"{beatmap_id}.osu").write_bytes(content)
        total += len(content)
        if index in sample:
            kept[index] = content
        artist = base.metadata.get("Artist") or f"{_WORDS[artists[index, 0]]} {_NOUNS[artists[index, 1]]}"
        title = base.metadata.get("Title") or f"{_WORDS[artists[index, 1]]} {_NOUNS[titles[index]]}"
        creator = base.metadata.get("Creator") or "synth"
        facts = plan.facts[index, base.mode]
        seconds = _hit_length(base, tempo)
        bpm = _bpm(base, tempo)
        rows.append({
            "beatmap_id": beatmap_id,
            "beatmapset_id": int(plan.set_id[index]),
            "beatmap_md5": digest.decode(),
            "song_name": f"{artist} - {title} [{version}]"[:256],
            "file_name": f"{artist} - {title} ({creator}) [{version}].osu"[:260],
            "ar": ar if base.mode in (0, 2) else float(base.settings["ar"]),
            "od": od,
            "mode": base.mode,
            "max_combo": int(facts[1]),
            "hit_length": seconds,
            "bpm": bpm,
            "ranked": int(plan.ranked[index]),
            "latest_update": int(updates[index]),
            "ranked_status_freezed": 0,
            "rating": float(ratings[index]),
            "bancho_ranked_status": int(plan.ranked[index]) if plan.ranked[index] >= 2 else 0,
            "count_circles": int(base.template.object_counts[0]),
            "count_spinners": int(base.template.object_counts[2]),
            "count_sliders": int(base.template.object_counts[1] + base.template.object_counts[3]),
        })
    return kept, total, rows


def _hit_length(base: _Base, tempo: float) -> int:
    """beatmaps.hit_length: seconds from the first to the last object start at `tempo`."""
    first, last = base.template.object_span
    return max(1, int((last - first) / tempo / 1000))


def _bpm(base: _Base, tempo: float) -> int:
    """beatmaps.bpm: the first timing point's tempo at `tempo`."""
    beat = base.template.first_beat_length
    return round(60_000 / beat * tempo) if beat else round(120 * tempo)


def _sample(plan: _MapPlan) -> list[int]:
    """Up to SAMPLE_PER_MODE derived maps per target mode, evenly spread over their targets."""
    chosen: list[int] = []
    for mode in range(4):
        members = np.flatnonzero(plan.target_mode == mode)
        if not len(members):
            continue
        ordered = members[np.argsort(plan.target[members], kind="stable")]
        picks = np.unique(np.linspace(0, len(ordered) - 1, min(SAMPLE_PER_MODE, len(ordered))).round().astype(int))
        chosen.extend(int(i) for i in ordered[picks])
    return sorted(chosen)


def _rate_sample(plan: _MapPlan, bases: tuple[_Base, ...], kept: dict[int, bytes]) -> dict[int, SpreadStats]:
    engine = engine_named("live")
    ratings: dict[int, list[float]] = {mode: [] for mode in range(4)}
    failed = dict.fromkeys(range(4), 0)
    errors: dict[int, list[float]] = {mode: [] for mode in range(4)}
    for index, content in sorted(kept.items()):
        base = bases[plan.base[index]]
        modes = (0, 1, 2, 3) if base.mode == 0 else (base.mode,)
        results = engine.rate_beatmap(content, plan.md5[index].decode(), [(mode, 0) for mode in modes])
        for mode, result in zip(modes, results):
            if isinstance(result, float):
                ratings[mode].append(result)
                if mode == plan.target_mode[index]:
                    errors[mode].append(abs(math.log(max(result, 1e-3) / plan.target[index])))
            else:
                failed[mode] += 1
    spread = {}
    for mode in range(4):
        values = np.array(ratings[mode])
        if not len(values):
            continue
        bands = np.bincount(np.minimum(np.floor(values).astype(int), 11), minlength=12)
        spread[mode] = SpreadStats(
            count=len(values), failed=failed[mode], min=float(values.min()), p05=float(np.quantile(values, 0.05)),
            median=float(np.median(values)), p95=float(np.quantile(values, 0.95)), max=float(values.max()),
            bands=tuple(int(b) for b in bands),
            steer_error=float(np.median(errors[mode])) if errors[mode] else float("nan"),
        )
    return spread


# ======================================================================================================
# users
# ======================================================================================================


@dataclass(slots=True)
class _UserPlan:
    """U users as arrays: plays (stored score rows), main category and its share, skill (stars they
    pass comfortably, accuracy), career [start, end], privileges, tier (0 active, 1 recent, 2 dormant,
    3 old), register time."""

    count: int
    plays: np.ndarray
    main: np.ndarray
    p_main: np.ndarray
    skill_stars: np.ndarray
    skill_acc: np.ndarray
    start: np.ndarray
    end: np.ndarray
    register: np.ndarray
    privileges: np.ndarray
    tier: np.ndarray


def _plan_users(count: int, scores: int, rng: np.random.Generator) -> _UserPlan:
    ranks = rng.permutation(count) + 1
    weights = ranks.astype(np.float64) ** -USER_ZIPF
    weights[rng.random(count) < IDLE_USER_SHARE] = 0.0
    if weights.sum() == 0:
        weights[0] = 1.0
    plays = rng.multinomial(scores, weights / weights.sum()).astype(np.int64)

    # Main categories: busiest users first, each to the category furthest below its share of the
    # main-category plays placed so far (so the table shares do not swing with the busiest users).
    p_main = rng.uniform(0.6, 0.95, count)
    main = np.zeros(count, dtype=np.int8)
    weight_main = plays * p_main
    order = np.argsort(-weight_main, kind="stable")
    assigned = np.zeros(len(CATEGORIES))
    placed = 0.0
    busy = order[weight_main[order] > 0]
    for user in busy[:20_000]:  # the long tail is assigned by sampling (its weight is tiny per user)
        placed += weight_main[user]
        category = int(np.argmax(CATEGORY_SHARES * placed - assigned))
        main[user] = category
        assigned[category] += weight_main[user]
    tail = order[min(len(busy), 20_000):]
    main[tail] = rng.choice(len(CATEGORIES), size=len(tail), p=CATEGORY_SHARES / CATEGORY_SHARES.sum())

    activity = np.log1p(plays)
    skill_stars = np.clip(rng.lognormal(math.log(3.8), 0.3, count) * (1 + 0.04 * activity), 1.2, 10.5)
    skill_acc = np.clip(rng.uniform(0.86, 0.99, count) + 0.002 * activity, 0.8, 0.995)
    span = LAST_SCORE_TIME - FIRST_SCORE_TIME
    start = FIRST_SCORE_TIME + 14 * DAY + (rng.beta(2.0, 1.2, count) * (span - 60 * DAY)).astype(np.int64)
    length = (rng.exponential(500, count) * DAY * (1 + 0.25 * activity)).astype(np.int64) + 30 * DAY
    end = np.minimum(start + length, LAST_SCORE_TIME)
    register = start - rng.integers(0, 14 * DAY, count)
    restricted = rng.random(count) < RESTRICTED_SHARE
    privileges = np.where(restricted, rng.choice([0, 2], count), np.where(rng.random(count) < 0.05, 7, 3))
    tier = rng.choice(4, size=count, p=[0.15, 0.25, 0.2, 0.4])
    return _UserPlan(count, plays, main, p_main, skill_stars, skill_acc, start, end, register, privileges, tier)


def _user_rows(users: _UserPlan, last_score: np.ndarray, rng: np.random.Generator) -> pa.Table:
    count = users.count
    ids = FIRST_USER_ID + np.arange(count)
    syllables = ("ka", "ri", "to", "mi", "ne", "ko", "sa", "yu", "ha", "ru", "shi", "ta", "ro", "na", "zu", "ki",
                 "lo", "vy", "max", "tor", "an", "el", "dra", "fox", "neo", "kai", "rin", "sol", "ace", "jin")
    parts = rng.integers(len(syllables), size=(count, 3))
    lengths = rng.integers(2, 4, size=count)
    names = ["".join(syllables[p] for p in row[:n]).capitalize()[:9] + f"_{i:x}"  # the id keeps names unique
             for row, n, i in zip(parts.tolist(), lengths.tolist(), ids.tolist())]
    safe = [name.lower() for name in names]
    base = np.maximum(last_score, users.register)
    latest = np.select(
        [users.tier == 0, users.tier == 1, users.tier == 2],
        [REFERENCE_TIME - rng.integers(0, 29 * DAY, count), REFERENCE_TIME - rng.integers(31 * DAY, 364 * DAY, count),
         rng.integers(LAST_SCORE_TIME + DAY, REFERENCE_TIME - 366 * DAY, count)],
        base,
    )
    latest = np.maximum(latest, base)
    countries = np.array(["US", "DE", "PL", "RU", "BR", "JP", "KR", "FR", "GB", "CA", "AU", "PH", "ID", "CL", "XX"])
    return pa.table({
        "id": pa.array(ids, pa.int64()),
        "username": pa.array(names),
        "username_safe": pa.array(safe),
        "password_md5": pa.array([""] * count),
        "email": pa.array([f"{s}@synth.invalid" for s in safe]),
        "register_datetime": pa.array(users.register, pa.int64()),
        "latest_activity": pa.array(latest, pa.int64()),
        "privileges": pa.array(users.privileges, pa.int64()),
        "ban_datetime": pa.array(np.where(users.privileges & 1, 0, latest), pa.int64()),
        "country": pa.array(countries[rng.integers(len(countries), size=count)]),
    })


# ======================================================================================================
# scores
# ======================================================================================================


def _mod_tables() -> tuple[list[np.ndarray], list[np.ndarray]]:
    values, cumulative = [], []
    for *_, name in CATEGORIES:
        mods, weights = zip(*MODS[name])
        values.append(np.array(mods, dtype=np.int64))
        weights = np.array(weights, dtype=np.float64)
        cumulative.append(np.cumsum(weights) / weights.sum())
    return values, cumulative


_MOD_VALUES, _MOD_CUMULATIVE = _mod_tables()


def _star_factor(mods: np.ndarray) -> np.ndarray:
    """Rough star multiplier of the rate and size mods (for the pass model and pp only)."""
    factor = np.ones(len(mods))
    factor = np.where(mods & DT, factor * 1.4, factor)
    factor = np.where(mods & HT, factor * 0.75, factor)
    factor = np.where(mods & HR, factor * 1.08, factor)
    return np.where(mods & EZ, factor * 0.85, factor)


class _ScoreMaker:
    """Generates the score rows of one block of users (all their plays), vectorised."""

    def __init__(self, plan: _MapPlan, users: _UserPlan, rng: np.random.Generator) -> None:
        """Map popularity (Zipf-Mandelbrot): weight (rank + M * MAP_RANK_OFFSET)**-MAP_ZIPF, ranks a random
        permutation drawn from `rng`; one cumulative distribution per pool (the maps of each own mode)."""
        self.plan = plan
        self.users = users
        popularity = (rng.permutation(plan.count) + 1.0 + plan.count * MAP_RANK_OFFSET) ** -MAP_ZIPF
        self.pools: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self.own_mode = np.zeros(len(plan.md5), dtype=np.int8)  # unknown md5s: osu! maps
        for mode, members in plan.native.items():
            self.own_mode[members] = mode
            if len(members):
                cum = np.cumsum(popularity[members])
                self.pools[mode] = (members, cum / cum[-1])

    def _pick(self, mode: int, u: np.ndarray) -> np.ndarray:
        members, cum = self.pools[mode]
        return members[np.minimum(np.searchsorted(cum, u, side="right"), len(members) - 1)]

    def block(self, user_ids: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Every play of `user_ids` (user indexes): (ROW_DTYPE rows, table index per row into
        SCORE_TABLES), completed 3 already on the best passes. The draws from `rng` come in a fixed
        order (category, beatmap, mods, time, outcome, judgements, combo, pp): the order is the data."""
        users, plan = self.users, self.plan
        user = np.repeat(user_ids, users.plays[user_ids])
        n = len(user)
        category = self._categories(user, rng)
        table = _CATEGORY_TABLE[category]
        play_mode = _CATEGORY_MODE[category]
        beatmap = self._beatmaps(play_mode, rng)
        mods = self._mods(category, play_mode, beatmap, rng)
        # time: uniform over the user's career
        start, end = users.start[user], users.end[user]
        when = start + (rng.random(n) * (end - start)).astype(np.int64)
        stars = np.nan_to_num(plan.est[beatmap, play_mode], nan=3.0) * _star_factor(mods)
        completed = _completed(stars - users.skill_stars[user], mods, table, rng)
        passed = completed == 2
        hits = self._judgements(user, beatmap, play_mode, mods, passed, rng)
        max_combo, full_combo = _combo(hits, play_mode, passed, rng)
        score = _score(hits, play_mode, mods, stars, max_combo)
        pp = np.where(passed & np.isin(plan.ranked[beatmap], (2, 3)),
                      12.0 * stars ** 2.2 * hits.accuracy ** 8 * np.where(hits.misses == 0, 1.0, 0.9)
                      * np.where(table == 1, 1.5, np.where(table == 2, 1.3, 1.0)) * rng.uniform(0.85, 1.15, n), 0.0)

        out = np.empty(n, dtype=ROW_DTYPE)
        out["userid"] = FIRST_USER_ID + user
        out["map"] = beatmap
        out["score"] = score
        out["max_combo"] = max_combo
        out["full_combo"] = full_combo
        out["mods"] = mods
        out["300_count"], out["100_count"], out["50_count"] = hits.n300, hits.n100, hits.n50
        out["katus_count"], out["gekis_count"], out["misses_count"] = hits.katus, hits.gekis, hits.misses
        out["time"] = when
        out["play_mode"] = play_mode
        out["completed"] = completed
        out["accuracy"] = np.round(100 * hits.accuracy, 3)
        out["pp"] = np.round(pp, 3)
        _mark_best(out, table)
        return out, table

    def _categories(self, user: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Per play (index into CATEGORIES): the user's main one with probability p_main, else the
        global mix."""
        users, n = self.users, len(user)
        other = rng.choice(len(CATEGORIES), size=n, p=CATEGORY_SHARES / CATEGORY_SHARES.sum())
        return np.where(rng.random(n) < users.p_main[user], users.main[user], other).astype(np.int8)

    def _beatmaps(self, play_mode: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Per play (index into the plan): the native pool of the play_mode (taiko/catch/mania share),
        else an osu! map; UNKNOWN_MAP_SHARE of them an unknown md5."""
        plan, n = self.plan, len(play_mode)
        beatmap = self._pick(0, rng.random(n))
        for mode in (1, 2, 3):
            if mode not in self.pools:
                continue
            on_native = (play_mode == mode) & (rng.random(n) < NATIVE_PLAY_SHARE[mode])
            beatmap[on_native] = self._pick(mode, rng.random(int(on_native.sum())))
        unknown_pool = len(plan.md5) - plan.count
        is_unknown = rng.random(n) < UNKNOWN_MAP_SHARE
        beatmap[is_unknown] = plan.count + rng.integers(unknown_pool, size=int(is_unknown.sum()))
        return beatmap

    def _mods(self, category: np.ndarray, play_mode: np.ndarray, beatmap: np.ndarray,
              rng: np.random.Generator) -> np.ndarray:
        """Per play: a combination from the category's MODS table plus its RX/AP bit; a key mod on
        KEY_MOD_SHARE of the mania plays on osu! maps."""
        n = len(category)
        mods = np.zeros(n, dtype=np.int64)
        draw = rng.random(n)
        for index in range(len(CATEGORIES)):
            rows = category == index
            if rows.any():
                values, cum = _MOD_VALUES[index], _MOD_CUMULATIVE[index]
                mods[rows] = values[np.minimum(np.searchsorted(cum, draw[rows], side="right"), len(values) - 1)]
        mods |= _CATEGORY_BITS[category]
        map_mode = self.own_mode[beatmap]
        keyed = (play_mode == 3) & (map_mode == 0) & (rng.random(n) < KEY_MOD_SHARE)
        mods[keyed] |= np.array(KEY_MODS, dtype=np.int64)[rng.integers(len(KEY_MODS), size=int(keyed.sum()))]
        return mods

    def _judgements(self, user: np.ndarray, beatmap: np.ndarray, play_mode: np.ndarray, mods: np.ndarray,
                    passed: np.ndarray, rng: np.random.Generator) -> _Hits:
        """Per play: objects judged (all on a pass, a random share on a fail or quit), misses, and the
        other judgements by play_mode's rules (_osu_hits, _taiko_hits, _catch_hits, _mania_hits)."""
        n = len(user)
        facts = self.plan.facts[beatmap, play_mode]  # (n, 4): judged objects, max combo, droplets, tiny droplets
        total = np.maximum(np.nan_to_num(facts[:, 0], nan=1.0), 1).astype(np.int64)
        cap = np.maximum(np.nan_to_num(facts[:, 1], nan=1.0), 1).astype(np.int64)
        droplets = np.nan_to_num(facts[:, 2]).astype(np.int64)
        tiny = np.nan_to_num(facts[:, 3]).astype(np.int64)
        skill = np.clip(self.users.skill_acc[user] + rng.normal(0, 0.02, n) - 0.015 * ((mods & (HR | FL | DT)) > 0)
                        + 0.01 * ((mods & (EZ | HT)) > 0), 0.5, 0.999)
        fraction = np.where(passed, 1.0, rng.uniform(0.05, 0.95, n))
        judged = np.maximum(1, (total * fraction).astype(np.int64))
        no_miss = rng.random(n) < 0.15 + 0.25 * (skill - 0.8) / 0.2
        misses_pass = np.where(no_miss, 0, 1 + rng.exponential(1 + judged * 0.01).astype(np.int64))
        misses_fail = 1 + (judged * rng.uniform(0.01, 0.15, n)).astype(np.int64)
        misses = np.minimum(judged, np.where(passed, misses_pass, misses_fail))
        hits = _Hits(total=total, cap=cap, fraction=fraction, judged=judged, misses=misses,
                     n300=np.zeros(n, np.int64), n100=np.zeros(n, np.int64), n50=np.zeros(n, np.int64),
                     katus=np.zeros(n, np.int64), gekis=np.zeros(n, np.int64), accuracy=np.ones(n))
        rest = judged - misses
        off = np.clip((1 - skill) * rng.uniform(0.6, 1.6, n), 0, 1)
        u1, u2, u3 = rng.random(n), rng.random(n), rng.random(n)
        _osu_hits(hits, play_mode == 0, rest, off, u1, u2, u3)
        _taiko_hits(hits, play_mode == 1, rest, off, u2, u3)
        _catch_hits(hits, play_mode == 2, rest, off, droplets, tiny, u2)
        _mania_hits(hits, play_mode == 3, rest, skill, u1, u2, u3)
        return hits


@dataclass(slots=True)
class _Hits:
    """The judgements of a block's plays, one array entry per play: objects the play could judge
    (total) and the combo it could reach (cap), the share it played (fraction: 1 on a pass), objects
    judged, misses, the hit counts as stored, and accuracy (a fraction)."""

    total: np.ndarray
    cap: np.ndarray
    fraction: np.ndarray
    judged: np.ndarray
    misses: np.ndarray
    n300: np.ndarray
    n100: np.ndarray
    n50: np.ndarray
    katus: np.ndarray
    gekis: np.ndarray
    accuracy: np.ndarray


def _completed(gap: np.ndarray, mods: np.ndarray, table: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Per play: 0 quit (QUIT_SHARE), 1 failed, 2 passed. Fails grow with `gap` (the map's stars above
    the user's), with SD; none with NF; fewer in relax and autopilot."""
    fail = 0.05 + 0.45 / (1 + np.exp(-1.2 * (gap - 0.5)))
    fail = np.where(mods & SD, fail + 0.25, fail)
    fail = np.where(mods & NF, 0.0, fail)
    fail = np.where(table > 0, fail * 0.8, fail)
    draw = rng.random(len(gap))
    return np.where(draw < QUIT_SHARE, 0, np.where(draw < QUIT_SHARE + (1 - QUIT_SHARE) * np.clip(fail, 0, 0.95), 1, 2))


def _osu_hits(hits: _Hits, m: np.ndarray, rest: np.ndarray, off: np.ndarray, u1: np.ndarray, u2: np.ndarray,
              u3: np.ndarray) -> None:
    """osu! (rows `m`): 100s and 50s growing with `off`, gekis and katus among the 300s and 100s."""
    n300, n100, n50, katus, gekis, accuracy = hits.n300, hits.n100, hits.n50, hits.katus, hits.gekis, hits.accuracy
    judged = hits.judged
    a100 = np.minimum(rest, (rest * off * 2).astype(np.int64))
    a50 = np.minimum(rest - a100, (a100 * 0.15 * u1).astype(np.int64))
    n100[m], n50[m] = a100[m], a50[m]
    n300[m] = (rest - a100 - a50)[m]
    gekis[m] = (n300 * (0.08 + 0.17 * u2)).astype(np.int64)[m]
    katus[m] = (n100 * (0.1 + 0.3 * u3)).astype(np.int64)[m]
    accuracy[m] = ((300 * n300 + 100 * n100 + 50 * n50) / (300 * judged))[m]


def _taiko_hits(hits: _Hits, m: np.ndarray, rest: np.ndarray, off: np.ndarray, u2: np.ndarray,
                u3: np.ndarray) -> None:
    """taiko (rows `m`): greats and goods; gekis and katus are the big notes among them."""
    n300, n100, katus, gekis, accuracy = hits.n300, hits.n100, hits.katus, hits.gekis, hits.accuracy
    t100 = np.minimum(rest, (rest * off * 2.5).astype(np.int64))
    n100[m] = t100[m]
    n300[m] = (rest - t100)[m]
    gekis[m] = (n300 * (0.03 + 0.12 * u2)).astype(np.int64)[m]
    katus[m] = (n100 * (0.03 + 0.12 * u3)).astype(np.int64)[m]
    accuracy[m] = ((n300 + 0.5 * n100) / hits.judged)[m]


def _catch_hits(hits: _Hits, m: np.ndarray, rest: np.ndarray, off: np.ndarray, droplets: np.ndarray,
                tiny: np.ndarray, u2: np.ndarray) -> None:
    """catch (rows `m`): fruits (300), droplets (100), tiny droplets caught (50) and missed (katus)."""
    n300, n100, n50, katus, gekis, accuracy = hits.n300, hits.n100, hits.n50, hits.katus, hits.gekis, hits.accuracy
    total = hits.total
    share = np.where(total > 0, droplets / total, 0)
    c100 = np.minimum(rest, (rest * share).astype(np.int64))
    tiny_judged = (tiny * hits.fraction).astype(np.int64)
    c_katus = np.minimum(tiny_judged, (tiny_judged * off * 3).astype(np.int64))
    n100[m] = c100[m]
    n300[m] = (rest - c100)[m]
    katus[m] = c_katus[m]
    n50[m] = (tiny_judged - c_katus)[m]
    gekis[m] = (n300 * (0.05 + 0.1 * u2)).astype(np.int64)[m]
    caught = n300 + n100 + n50
    accuracy[m] = (caught / np.maximum(1, caught + katus + hits.misses))[m]


def _mania_hits(hits: _Hits, m: np.ndarray, rest: np.ndarray, skill: np.ndarray, u1: np.ndarray, u2: np.ndarray,
                u3: np.ndarray) -> None:
    """mania (rows `m`): MAX (gekis) growing with skill, then 300, 200 (katus), 100 and 50."""
    n300, n100, n50, katus, gekis, accuracy = hits.n300, hits.n100, hits.n50, hits.katus, hits.gekis, hits.accuracy
    perfect = (rest * np.clip(skill - 0.2, 0, 0.98) * (0.7 + 0.3 * u1)).astype(np.int64)
    remainder = rest - perfect
    k300 = (remainder * (0.5 + 0.3 * u2)).astype(np.int64)
    k200 = ((remainder - k300) * (0.4 + 0.4 * u3)).astype(np.int64)
    k100 = ((remainder - k300 - k200) * 0.7).astype(np.int64)
    gekis[m], n300[m], katus[m], n100[m] = perfect[m], k300[m], k200[m], k100[m]
    n50[m] = (remainder - k300 - k200 - k100)[m]
    accuracy[m] = ((300 * (perfect + k300) + 200 * k200 + 100 * k100 + 50 * (remainder - k300 - k200 - k100))
                   / (300 * hits.judged))[m]


def _combo(hits: _Hits, play_mode: np.ndarray, passed: np.ndarray,
           rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Per play: (max_combo, full_combo); a pass without misses is a full combo (80% in osu!, where a
    slider end may break it), else a share of the map's combo."""
    n = len(play_mode)
    combo_cap, misses = hits.cap, hits.misses
    full_combo = passed & (misses == 0) & ((play_mode != 0) | (rng.random(n) < 0.8))
    max_combo = np.where(
        full_combo, combo_cap,
        np.where(passed & (misses == 0), combo_cap * rng.uniform(0.5, 0.98, n),
                 combo_cap * hits.fraction * rng.uniform(0.05, 0.9, n)),
    ).astype(np.int64)
    return np.clip(max_combo, 1, combo_cap), full_combo


def _score(hits: _Hits, play_mode: np.ndarray, mods: np.ndarray, stars: np.ndarray,
           max_combo: np.ndarray) -> np.ndarray:
    """Per play, a made-up score: accuracy-based in mania (up to 1,000,000), growing with combo and the
    map's stars in the other modes; the mods' multipliers."""
    multiplier = np.ones(len(play_mode))
    for bit, factor in ((NF, 0.5), (EZ, 0.5), (HT, 0.3), (HD, 1.06), (HR, 1.06), (DT, 1.12), (FL, 1.12), (SO, 0.9)):
        multiplier = np.where(mods & bit, multiplier * factor, multiplier)
    hit_value = 300 * hits.n300 + 100 * hits.n100 + 50 * hits.n50
    score = np.where(play_mode == 3, 1_000_000 * hits.accuracy * hits.fraction * multiplier,
                     hit_value * (1 + max_combo * np.where(play_mode == 1, 0.4, 4.0) * stars / 25) * multiplier)
    return np.clip(score, 0, 2_147_483_647).astype(np.int64)


def _mark_best(rows: np.ndarray, table: np.ndarray) -> None:
    """completed 3 on the best pass per (table, user, beatmap, play_mode, relax bit): highest score in
    `scores`, highest pp in scores_relax and scores_ap (as the live server ranks them); 2 on the others."""
    passed = np.flatnonzero(rows["completed"] == 2)
    if not len(passed):
        return
    sub = rows[passed]
    value = np.where(table[passed] == 0, sub["score"].astype(np.float64), sub["pp"].astype(np.float64))
    relax = (sub["mods"] & RX) > 0
    order = np.lexsort((-value, relax, sub["play_mode"], sub["map"], sub["userid"], table[passed]))
    keys = np.stack([table[passed], sub["userid"], sub["map"], sub["play_mode"], relax]).T[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = np.any(keys[1:] != keys[:-1], axis=1)
    best = passed[order[first]]
    rows["completed"][best] = 3


def _counted_hits(rows: np.ndarray) -> np.ndarray:
    """stats.total_hits increment per row (DOMAIN.md §4): 300+100+50 (no 50 in catch), plus gekis and
    katus in taiko and mania."""
    play_mode = rows["play_mode"]
    hits = rows["300_count"].astype(np.int64) + rows["100_count"] + np.where(play_mode != 2, rows["50_count"], 0)
    return hits + np.where(np.isin(play_mode, (1, 3)), rows["gekis_count"].astype(np.int64) + rows["katus_count"], 0)


def _stats_rows(rows: np.ndarray, table: np.ndarray, users: _UserPlan, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """user_stats columns for the (user, full mode) pairs of one block (every play of its users)."""
    full_mode = _FULL_MODE_BASE[table] + np.where(table == 2, 0, rows["play_mode"])
    key = (rows["userid"].astype(np.int64) << 4) | full_mode
    unique, inverse = np.unique(key, return_inverse=True)
    plays = np.bincount(inverse)
    hits = np.bincount(inverse, weights=_counted_hits(rows)).astype(np.int64)
    combo = np.zeros(len(unique), dtype=np.int64)
    np.maximum.at(combo, inverse, rows["max_combo"])
    # pp: best 100 passes weighted 0.95**rank, as the live server sums them
    best = np.flatnonzero((rows["completed"] == 3) & (rows["pp"] > 0))
    pp = np.zeros(len(unique))
    if len(best):
        order = best[np.lexsort((-rows["pp"][best], inverse[best]))]
        group = inverse[order]
        starts = np.r_[0, np.flatnonzero(group[1:] != group[:-1]) + 1]
        rank = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
        keep = rank < 100
        pp = np.bincount(group[keep], weights=rows["pp"][order][keep] * 0.95 ** rank[keep], minlength=len(unique))
    user = (unique >> 4) - FIRST_USER_ID
    growth = np.where(users.tier[user] <= 1, rng.uniform(0, 0.3, len(unique)), rng.uniform(0, 0.05, len(unique)))
    return {
        "user_id": unique >> 4, "mode": unique & 15, "playcount": plays + (plays * growth).astype(np.int64),
        "total_hits": hits + (hits * growth).astype(np.int64), "pp": pp.astype(np.int64), "max_combo": combo,
    }


# ======================================================================================================
# the build
# ======================================================================================================


def _time_edges(users: _UserPlan, buckets: int) -> np.ndarray:
    """Bucket edges (unix seconds, buckets + 1 values) at the quantiles of the expected score times:
    each user's plays spread evenly over the career, summed per day."""
    days = (LAST_SCORE_TIME - FIRST_SCORE_TIME) // DAY + 2
    first = (users.start - FIRST_SCORE_TIME) // DAY
    last = (users.end - FIRST_SCORE_TIME) // DAY
    density = users.plays / (last - first + 1)
    diff = np.zeros(days + 1)
    np.add.at(diff, first, density)
    np.add.at(diff, last + 1, -density)
    cumulative = np.cumsum(np.cumsum(diff)[:days])
    cumulative /= max(cumulative[-1], 1e-9)
    cuts = np.searchsorted(cumulative, np.arange(1, buckets) / buckets)
    inner = FIRST_SCORE_TIME + (cuts + 1) * DAY
    return np.unique(np.concatenate([[FIRST_SCORE_TIME - DAY], inner, [LAST_SCORE_TIME + DAY]])).astype(np.int64)


def _string_array(values: np.ndarray) -> pa.Array:
    """A fixed-width bytes array (dtype S{k}, ASCII) as an Arrow string array, without Python objects."""
    width = values.dtype.itemsize
    offsets = np.arange(0, width * (len(values) + 1), width, dtype=np.int32)
    return pa.Array.from_buffers(pa.string(), len(values), [None, pa.py_buffer(offsets), pa.py_buffer(values.tobytes())])


def _score_batch(rows: np.ndarray, md5: np.ndarray, rng: np.random.Generator) -> pa.Table:
    checksum = _hex(rng.integers(0, 256, size=(len(rows), 16), dtype=np.uint8))
    columns = {"beatmap_md5": _string_array(md5[rows["map"]])}
    for name in _SCORE_COLUMNS[1:-1]:
        columns[name] = pa.array(rows[name])
    columns["checksum"] = _string_array(checksum)
    return pa.table(columns)


def _check_empty(engine: sa.Engine, url: str) -> None:
    present = set(sa.inspect(engine).get_table_names())
    filled = {}
    with engine.connect() as conn:
        for name in _TARGET_TABLES:
            if name in present:
                rows = conn.exec_driver_sql(f"SELECT COUNT(*) FROM {name}").scalar_one()
                if rows:
                    filled[name] = int(rows)
    if filled:
        raise TargetNotEmpty(url, filled)


def build_scaled_database(
    db_url: str,
    osu_dir: Path,
    maps_dir: Path,
    *,
    scores: int,
    maps: int,
    users: int,
    seed: int = 20220623,
    chunk_rows: int = CHUNK_ROWS,
    tmp_dir: Path | None = None,
    buffer_pool_bytes: int | None = None,
    rebuild_indexes: bool = True,
    log: Callable[[str], None] | None = None,
) -> ScaleBuild:
    """Build the synthetic data set into `db_url` (SQLite or MySQL/MariaDB; the database must exist)
    and the .osu directory `osu_dir` (created if missing). See the module docstring.

    scores, maps, users: rows to generate (N >= 0, M >= 1, U >= 1); chunk_rows: rows per generation
    block and per load batch; tmp_dir: where the bucket files go (system temp if None; about 50 bytes
    per score); buffer_pool_bytes / rebuild_indexes: bulk-load tuning on MySQL (testbed.bulkload;
    the score tables' secondary indexes are dropped for the load and added back by default).
    Tables missing from the database are created (cluster.schema.create_production_schema); a
    database created from production DDL is used as it is.

    Raises ValueError (bad counts), TargetNotEmpty (scores/beatmaps/users/user_stats hold rows),
    ConfigError (no usable map under maps_dir), testbed.errors.BulkLoadError (one of its leaves).
    """
    if scores < 0 or maps < 1 or users < 1 or chunk_rows < 1000 or seed < 0:
        raise ValueError(f"need scores >= 0, maps >= 1, users >= 1, chunk_rows >= 1000, seed >= 0 "
                         f"(got {scores}, {maps}, {users}, {chunk_rows}, {seed})")
    say = log or (lambda line: None)
    seconds: dict[str, float] = {}
    osu_dir = Path(osu_dir)
    streams = np.random.SeedSequence(seed)
    maps_rng, users_rng, popularity_rng, names_rng, stats_rng = (np.random.default_rng(s) for s in streams.spawn(5))

    clock = time.perf_counter()
    less_empty = _prepare_target(db_url)
    seconds["check and schema"] = time.perf_counter() - clock

    clock = time.perf_counter()
    bases, skipped = calibrate(maps_dir)
    seconds["calibration"] = time.perf_counter() - clock
    say(f"calibration: {len(bases)} base maps ({len(skipped)} skipped) in {seconds['calibration']:.1f} s")

    clock = time.perf_counter()
    plan = _plan_maps(bases, maps, maps_rng)
    sample = set(_sample(plan))
    kept, files_bytes, beatmap_rows = _write_maps(plan, bases, osu_dir, names_rng, sample)
    seconds["derive and write maps"] = time.perf_counter() - clock
    say(f"maps: {maps} derived .osu files ({files_bytes / 1e6:.0f} MB) in {seconds['derive and write maps']:.1f} s")

    clock = time.perf_counter()
    spread = _rate_sample(plan, bases, kept)
    seconds["rate sample"] = time.perf_counter() - clock
    del kept

    clock = time.perf_counter()
    user_plan = _plan_users(users, scores, users_rng)
    maker = _ScoreMaker(plan, user_plan, popularity_rng)
    edges = _time_edges(user_plan, max(1, math.ceil(scores / chunk_rows)))
    work = Path(tempfile.mkdtemp(prefix="srb-synth-", dir=tmp_dir))
    try:
        tally = _generate_scores(maker, edges, work, scores, seed, chunk_rows, stats_rng)
        seconds["generate scores"] = time.perf_counter() - clock
        say(f"scores: {scores} generated in {seconds['generate scores']:.1f} s ({tally.buckets} time buckets)")

        clock = time.perf_counter()
        loaded = _load(db_url, work, tally, plan.md5, beatmap_rows, user_plan, seed, chunk_rows, less_empty,
                       tmp_dir=tmp_dir, buffer_pool_bytes=buffer_pool_bytes, rebuild_indexes=rebuild_indexes, say=say)
        seconds["load"] = time.perf_counter() - clock
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return _describe(plan, user_plan, tally, loaded, spread, bases, dict(skipped), seconds, seed, str(osu_dir),
                     files_bytes)


def _describe(plan: _MapPlan, user_plan: _UserPlan, tally: _ScoreTally, loaded: _Loaded,
              spread: dict[int, SpreadStats], bases: tuple[_Base, ...], skipped: dict[str, str],
              seconds: dict[str, float], seed: int, osu_dir: str, files_bytes: int) -> ScaleBuild:
    """The ScaleBuild of a finished build."""
    maps, users = plan.count, user_plan.count
    own_modes = np.zeros(maps, dtype=np.int8)
    for mode, members in plan.native.items():
        own_modes[members] = mode
    return ScaleBuild(
        rows={**tally.table_rows, "beatmaps": maps, "users": users, "user_stats": loaded.stats_rows,
              "less_achievements": loaded.catalogue_rows},
        maps_by_mode={mode: int((own_modes == mode).sum()) for mode in range(4)},
        steered={mode: int((plan.target_mode == mode).sum()) for mode in range(4)},
        unranked_maps=int((plan.ranked[:maps] < 2).sum()),
        users=users,
        restricted_users=int(((user_plan.privileges & 1) == 0).sum()),
        idle_users=int((user_plan.plays == 0).sum()),
        unknown_md5_scores=tally.unknown_scores,
        completed={value: int(count) for value, count in enumerate(tally.completed)},
        mods_top=tuple(sorted(tally.mod_counts.items(), key=lambda item: -item[1])[:20]),
        spread=spread,
        bases=len(bases),
        skipped_bases=skipped,
        seconds=seconds,
        loads=loaded.loads,
        load_method=loaded.method,
        load_notes=loaded.notes,
        seed=seed,
        osu_dir=osu_dir,
        files_bytes=files_bytes,
    )


def _prepare_target(db_url: str) -> bool:
    """Refuse a database holding rows in a table synth writes (TargetNotEmpty), create the missing
    tables; whether less_achievements is empty (then the catalogue's rows are loaded into it)."""
    engine = sa.create_engine(db_url)
    try:
        _check_empty(engine, db_url)
        create_production_schema(engine)
        with engine.connect() as conn:
            return not conn.execute(sa.select(sa.func.count()).select_from(less_achievements_table)).scalar_one()
    finally:
        engine.dispose()


@dataclass(slots=True)
class _ScoreTally:
    """What generating the score rows left in the bucket files and counted on the way.

    buckets: time buckets (files `{table}.{bucket:05d}` of ROW_DTYPE records in the work directory);
    table_rows: rows per score table; completed: rows per completed value 0-3; mod_counts: rows per
    stored mods value; unknown_scores: rows on unknown md5s; plays, passes: per plan map (index);
    last_score: the last score time per user (index; 0 if none); stats_parts: user_stats columns
    per block.
    """

    buckets: int
    table_rows: dict[str, int]
    completed: np.ndarray
    mod_counts: dict[int, int]
    unknown_scores: int
    plays: np.ndarray
    passes: np.ndarray
    last_score: np.ndarray
    stats_parts: list[dict[str, np.ndarray]]


def _generate_scores(maker: _ScoreMaker, edges: np.ndarray, work: Path, scores: int, seed: int, chunk_rows: int,
                     stats_rng: np.random.Generator) -> _ScoreTally:
    """Every score row, in blocks of whole users holding about `chunk_rows` plays (block k drawn from
    SeedSequence([seed, 1, k])), appended to the bucket files of `work` by table and time bucket
    (`edges`)."""
    plan, user_plan = maker.plan, maker.users
    users = user_plan.count
    tally = _ScoreTally(
        buckets=len(edges) - 1, table_rows=dict.fromkeys(SCORE_TABLES, 0), completed=np.zeros(4, dtype=np.int64),
        mod_counts={}, unknown_scores=0, plays=np.zeros(len(plan.md5), dtype=np.int64),
        passes=np.zeros(len(plan.md5), dtype=np.int64), last_score=np.zeros(users, dtype=np.int64), stats_parts=[],
    )
    cumulative = np.cumsum(user_plan.plays)
    block_of_user = cumulative // chunk_rows if scores else np.zeros(users, dtype=np.int64)
    bounds = np.r_[0, np.flatnonzero(np.diff(block_of_user)) + 1, users]
    for number, (lo, hi) in enumerate(itertools.pairwise(bounds)):
        ids = np.arange(lo, hi)
        ids = ids[user_plan.plays[ids] > 0]
        if not len(ids):
            continue
        rng = np.random.default_rng(np.random.SeedSequence([seed, 1, number]))
        rows, table = maker.block(ids, rng)
        _append_to_buckets(rows, table, edges, work, tally)
        _count_block(rows, plan, tally)
        tally.stats_parts.append(_stats_rows(rows, table, user_plan, stats_rng))
    return tally


def _append_to_buckets(rows: np.ndarray, table: np.ndarray, edges: np.ndarray, work: Path, tally: _ScoreTally) -> None:
    bucket = np.clip(np.searchsorted(edges, rows["time"], side="right") - 1, 0, tally.buckets - 1)
    for t, name in enumerate(SCORE_TABLES):
        in_table = table == t
        tally.table_rows[name] += int(in_table.sum())
        for b in np.unique(bucket[in_table]):
            with open(work / f"{name}.{b:05d}", "ab") as handle:
                rows[in_table & (bucket == b)].tofile(handle)


def _count_block(rows: np.ndarray, plan: _MapPlan, tally: _ScoreTally) -> None:
    tally.completed += np.bincount(rows["completed"], minlength=4)
    values, counts = np.unique(rows["mods"], return_counts=True)
    for value, count in zip(values.tolist(), counts.tolist()):
        tally.mod_counts[value] = tally.mod_counts.get(value, 0) + count
    tally.unknown_scores += int((rows["map"] >= plan.count).sum())
    tally.plays += np.bincount(rows["map"], minlength=len(plan.md5))
    tally.passes += np.bincount(rows["map"], weights=rows["completed"] >= 2, minlength=len(plan.md5)).astype(np.int64)
    np.maximum.at(tally.last_score, rows["userid"] - FIRST_USER_ID, rows["time"])


@dataclass(frozen=True, slots=True)
class _Loaded:
    """What the load did: per table (testbed.bulkload.TableLoad), the loader's method and notes, and
    the user_stats and less_achievements rows written (0 when less_achievements held rows already)."""

    loads: dict[str, TableLoad]
    method: str
    notes: tuple[str, ...]
    stats_rows: int
    catalogue_rows: int


def _load(db_url: str, work: Path, tally: _ScoreTally, md5: np.ndarray, beatmap_rows: list[dict],
          user_plan: _UserPlan, seed: int, chunk_rows: int, less_empty: bool, *, tmp_dir: Path | None,
          buffer_pool_bytes: int | None, rebuild_indexes: bool, say: Callable[[str], None]) -> _Loaded:
    """Bulk load every table: the scores from the bucket files, beatmaps, users, user_stats, and the
    catalogue into an empty less_achievements. rebuild_indexes: drop the score tables' secondary
    indexes for the load (testbed.bulkload)."""
    with BulkLoader(db_url, log=say, tmp_dir=tmp_dir, buffer_pool_bytes=buffer_pool_bytes,
                    rebuild_indexes=SCORE_TABLES if rebuild_indexes else ()) as loader:
        _load_scores(loader, work, tally, md5, seed, say)
        _load_beatmaps(loader, beatmap_rows, tally, chunk_rows)
        _load_users(loader, user_plan, tally.last_score, seed, chunk_rows)
        stats_rows = _load_stats(loader, tally.stats_parts, chunk_rows)
        catalogue_rows = _load_catalogue(loader) if less_empty else 0
    return _Loaded(dict(loader.loads), loader.method, tuple(loader.notes), stats_rows, catalogue_rows)


def _load_scores(loader: BulkLoader, work: Path, tally: _ScoreTally, md5: np.ndarray, seed: int,
                 say: Callable[[str], None]) -> None:
    """Each score table bucket by bucket, rows sorted by time (ids grow with time), checksums of
    bucket b of table t drawn from SeedSequence([seed, 2, t, b]); every file is removed once read."""
    for t, name in enumerate(SCORE_TABLES):
        for b in range(tally.buckets):
            path = work / f"{name}.{b:05d}"
            if not path.exists():
                continue
            rows = np.fromfile(path, dtype=ROW_DTYPE)
            path.unlink()
            rows = rows[np.lexsort((rows["userid"], rows["time"]))]
            checksum_rng = np.random.default_rng(np.random.SeedSequence([seed, 2, t, b]))
            loader.load(name, _score_batch(rows, md5, checksum_rng))
        say(f"{name}: {tally.table_rows[name]} rows loaded")


def _load_beatmaps(loader: BulkLoader, beatmap_rows: list[dict], tally: _ScoreTally, chunk_rows: int) -> None:
    """The derived maps' rows with their play and pass counts."""
    for start in range(0, len(beatmap_rows), chunk_rows):
        part = beatmap_rows[start:start + chunk_rows]
        for offset, row in enumerate(part):
            row["playcount"] = int(tally.plays[start + offset])
            row["passcount"] = int(tally.passes[start + offset])
        loader.load("beatmaps", pa.Table.from_pylist(part))


def _load_users(loader: BulkLoader, user_plan: _UserPlan, last_score: np.ndarray, seed: int, chunk_rows: int) -> None:
    user_table = _user_rows(user_plan, last_score, np.random.default_rng(np.random.SeedSequence([seed, 3])))
    for start in range(0, user_plan.count, chunk_rows):
        loader.load("users", user_table.slice(start, chunk_rows))


def _load_stats(loader: BulkLoader, stats_parts: list[dict[str, np.ndarray]], chunk_rows: int) -> int:
    """The user_stats rows of every block; returns how many."""
    stats = {key: np.concatenate([part[key] for part in stats_parts]) if stats_parts else np.zeros(0, np.int64)
             for key in ("user_id", "mode", "playcount", "total_hits", "pp", "max_combo")}
    stats_table = pa.table({key: pa.array(value, pa.int64()) for key, value in stats.items()})
    for start in range(0, stats_table.num_rows, chunk_rows):
        loader.load("user_stats", stats_table.slice(start, chunk_rows))
    return int(stats_table.num_rows)


def _load_catalogue(loader: BulkLoader) -> int:
    """less_achievements: today's live rows (conditions.catalogue.live_rows, ids 1-128); returns how many."""
    catalogue_rows = [{**row, "hidden": int(row["hidden"])} for row in live_rows()]
    loader.load("less_achievements", pa.Table.from_pylist(catalogue_rows))
    return len(catalogue_rows)


__all__ = ("ScaleBuild", "SpreadStats", "build_scaled_database", "calibrate")
