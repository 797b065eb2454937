"""A small hand-made Akatsuki scenario with a hand-derived list of the grants a backfill must make.

Nothing here evaluates achievement conditions: every expected grant below was derived by hand from
DOMAIN §4/§5 and the 96 conditions, and each carries the reason it is expected (`why`). The star
ratings written next to the scores (`sr=`) are hand-copied from `data/reference/live_sr_vectors.csv`
(`stars_live_2dp`); `test_scenario_sr_values_match_reference` checks those copies against the CSV
and against rosu-pp-py 2.0.1, so a typo in the scenario cannot pass for a job bug.

Users (ids 1001-1013), all osu!-mode ("mode 0") unless said otherwise:

  1001 E  band edges: HR 4.99786 -> 5.00 (band 5, not 4); HR+FL 8.9969 -> 9.00; DT+FL 10.9994 -> 11.00
          (no osu! band); an equal score with a smaller id but a later time does not move created_at.
  1002 N  NF + FC: skill FC yes, skill pass no, mod intro 94 already held; failed and quit plays
          (that would otherwise grant) give nothing; a row held in another mode does not hold mode 0.
  1003 C  combo 500 at one score, 750/1000/2000 together at a 2100-combo score (no upper bound);
          a failed 1500-combo play in between; a 3000-combo taiko pass gives no combo medal.
  1004 K  converts of osu! maps: taiko (3.56), catch (3.993 -> 3.99 stays band 3), mania
          (1.996 -> 2.00), and a mania convert with the 4K key mod (key mods ignored on converts:
          3.00, band 3; a key-mod-aware convert would give 2.93).
  1005 I  impossible convert (taiko map with play_mode 0): no SR medal, HD intro and combo 500 granted.
  1006 X  relax: osu! relax (mode 4, NF and no FC so SR cannot matter), catch relax (mode 6),
          relax mania stored in `scores` (play_mode 3 + RX -> full mode 3, not 7).
  1007 A  autopilot (mode 8, scores_ap ids from AP_OFFSET, above 2^62): AP star rating 4.17 (no-AP value is 6.38);
          combo 500 held through an old mode-7 row; HD intro held only in mode 4 -> granted.
  1008 P  4998 failed/quit plays, then two plays at the same `time` (pass id 161 = play 4999, fail
          id 162 = play 5000: the threshold is crossed by a failed play), then a pass with a SMALLER
          id (160) but a later time = play 5001 -> osu-plays-5000. Two failed relax plays must not count.
  1009 H  taiko hits: 29940 after a pass (300+100+50+katu+geki, misses not counted), a failed play
          reaches exactly 30000, the next pass unlocks taiko-hits-30000. A relax-taiko pass (mode 5)
          must not add to mode 1.
  1010 F  catch hits: 50s, katus and gekis are not counted for catch (19000 after the first pass,
          a wrong count gives >= 20100); the next pass reaches 20000.
  1011 V  eligibility by beatmaps.ranked: 0 and 1 ineligible, 2/3/4/5 eligible; an unknown
          beatmap_md5; two passes at the same time both meeting SD intro (tie -> lower id).
  1012 R  restricted (privileges = 2: bit 1 clear although non-zero): nothing, in any table.
  1013 B  every bad-map reason: missing file, stale file (md5 mismatch), garbage, empty (0 bytes),
          header but no hit objects; each keeps its non-SR mod intro. A valid file with a UTF-8 BOM
          and leading whitespace is accepted (7.0006 -> 7.00).

Existing `users_achievements` rows (must be left as they are): see EXISTING_ACHIEVEMENTS.
`user_stats` holds huge current totals for every user: a job reading them instead of computing
running totals would grant every play-count and hit medal.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from cluster.schema import AP_OFFSET, RELAX_OFFSET
from conditions.catalogue import live_rows

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data"
MAPS = DATA / "maps"
PRODUCTION_SQL = Path(__file__).resolve().parent / "sql" / "production.sql"

T0 = 1_500_000_000  # 2017-07-14, well before the 2022-06-23 reset
T_OLD = 1_400_000_000  # created_at of the rows that already exist

# ----------------------------------------------------------------------------------------------
# Beatmaps and the .osu store
# ----------------------------------------------------------------------------------------------

UNKNOWN_MD5 = "0123456789abcdef0123456789abcdef"  # a score's md5 with no beatmaps row


@dataclass(frozen=True)
class MapSpec:
    """One beatmaps row and what the .osu store holds for it.

    kind:
      copy       the store holds `src` verbatim; the row's md5 is its md5
      bom        the store holds UTF-8 BOM + CRLF + two spaces + `src`; the row's md5 is that file's md5
      missing    the row's md5 is md5(src); no file in the store
      stale      the store holds `src` (old version); the row (and the score) has md5 of the updated map
      garbage    the store holds a few bytes of non-.osu text; the row's md5 is their md5
      empty      the store holds a 0-byte file; the row's md5 is md5(b"")
      no_objects the store holds `src` cut right after its `[HitObjects]` line; the row's md5 is its md5
    """

    beatmap_id: int
    src: str | None  # relative to data/maps
    ranked: int = 2
    mode: int = 0  # the map's own mode
    kind: str = "copy"


MAP_SPECS: dict[str, MapSpec] = {
    # valid, ranked maps
    "osu_2593923": MapSpec(2593923, "ppy-osu/osu/2593923.osu"),
    "osu_39206": MapSpec(39206, "ppy-osu/catch/39206.osu"),  # an osu! map from the catch test folder
    "osu_1597806": MapSpec(1597806, "ppy-osu/catch/1597806.osu"),  # osu! map
    "osu_1450162": MapSpec(1450162, "ppy-osu/mania/1450162.osu"),  # osu! map
    "mania_1638954": MapSpec(1638954, "rosu-pp/1638954.osu", mode=3),
    "taiko_1028484": MapSpec(1028484, "rosu-pp/1028484.osu", mode=1),
    "catch_2118524": MapSpec(2118524, "rosu-pp/2118524.osu", mode=2),
    "bom_2785319": MapSpec(2785319, "rosu-pp/2785319.osu", kind="bom"),
    # one map per ranked status (all osu! maps)
    "r0_104973": MapSpec(104973, "ppy-osu/catch/104973.osu", ranked=0),
    "r1_112643": MapSpec(112643, "ppy-osu/catch/112643.osu", ranked=1),
    "r2_3227428": MapSpec(3227428, "ppy-osu/catch/3227428.osu", ranked=2),
    "r3_1431386": MapSpec(1431386, "ppy-osu/catch/1431386.osu", ranked=3),
    "r4_2190499": MapSpec(2190499, "ppy-osu/catch/2190499.osu", ranked=4),
    "r5_2768615": MapSpec(2768615, "ppy-osu/catch/2768615.osu", ranked=5),
    # bad maps (all ranked)
    "missing_990001": MapSpec(990001, "ppy-osu/catch/37902.osu", kind="missing"),
    "stale_990002": MapSpec(990002, "ppy-osu/catch/42587.osu", kind="stale"),
    "garbage_990003": MapSpec(990003, None, kind="garbage"),
    "empty_990004": MapSpec(990004, None, kind="empty"),
    "noobj_990005": MapSpec(990005, "ppy-osu/catch/50859.osu", kind="no_objects"),
}

GARBAGE = b"this is not an osu beatmap\n\x00\x01\x02 corrupt download \xff\xfe\n"
STALE_SUFFIX = b"\n// updated by its mapper after the cached copy was taken\n"


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def map_files(spec: MapSpec) -> tuple[str, bytes | None]:
    """(md5 of the beatmaps row, bytes the store holds or None if absent) for one map."""
    src = (MAPS / spec.src).read_bytes() if spec.src else b""
    if spec.kind == "copy":
        return _md5(src), src
    if spec.kind == "bom":
        data = b"\xef\xbb\xbf\r\n  " + src
        return _md5(data), data
    if spec.kind == "missing":
        return _md5(src), None
    if spec.kind == "stale":
        return _md5(src + STALE_SUFFIX), src
    if spec.kind == "garbage":
        return _md5(GARBAGE), GARBAGE
    if spec.kind == "empty":
        return _md5(b""), b""
    if spec.kind == "no_objects":
        cut = src.index(b"[HitObjects]") + len(b"[HitObjects]")
        data = src[:cut] + b"\n"
        return _md5(data), data
    raise ValueError(spec.kind)


def build_osu_dir(osu_dir: Path) -> dict[str, str]:
    """Write the .osu store (`{beatmap_id}.osu`) into `osu_dir`; return map key -> beatmaps.beatmap_md5."""
    osu_dir.mkdir(parents=True, exist_ok=True)
    md5s: dict[str, str] = {}
    for key, spec in MAP_SPECS.items():
        md5, data = map_files(spec)
        md5s[key] = md5
        if data is None:
            continue
        target = osu_dir / f"{spec.beatmap_id}.osu"
        if spec.kind == "copy":
            shutil.copyfile(MAPS / spec.src, target)
        else:
            target.write_bytes(data)
    return md5s


# ----------------------------------------------------------------------------------------------
# Users, scores, existing achievements
# ----------------------------------------------------------------------------------------------

E, N, C, K, I, X, A, P, H, F, V, R, B = range(1001, 1014)

USERS: dict[int, tuple[str, int]] = {  # id -> (username, privileges)
    E: ("edge", 3),
    N: ("nofail", 3),
    C: ("combo", 3),
    K: ("converts", 3),
    I: ("impossible", 3),
    X: ("relaxer", 3),
    A: ("autopilot", 3),
    P: ("grinder", 3),
    H: ("drummer", 3),
    F: ("fruity", 3),
    V: ("statuses", 3),
    R: ("restricted", 2),  # privileges & 1 == 0: restricted although non-zero
    B: ("badmaps", 3),
}

# legacy mod bits
NF, EZ, TD, HD, HR, SD, DT, RX, HT, NC, FL, SO, AP, PF, K4 = (
    1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 8192, 16384, 32768,
)


@dataclass(frozen=True)
class Score:
    table: str  # scores | scores_relax | scores_ap
    id: int
    user: int
    map: str  # key of MAP_SPECS, or UNKNOWN_MD5
    play_mode: int
    mods: int
    completed: int
    time: int
    full_combo: bool = False
    max_combo: int = 100
    n300: int = 100
    n100: int = 5
    n50: int = 1
    katu: int = 0
    geki: int = 0
    miss: int = 0
    # Hand-copied live star rating (stars_live_2dp) where a grant depends on it; None where the SR
    # cannot matter (NF and no FC, ineligible) or is unknown (bad map / impossible convert).
    sr: float | None = None


S, RX_T, AP_T = "scores", "scores_relax", "scores_ap"
# Production's id offsets (DOMAIN.md §2): relax ids from 500,000,000, autopilot ids above 2^62.
RX_ID, AP_ID = RELAX_OFFSET, AP_OFFSET

SCORES: list[Score] = [
    # --- E: band edges and rounding ----------------------------------------------------------
    Score(S, 101, E, "osu_39206", 0, HR, 3, T0 + 1000, sr=5.00),  # raw 4.99786
    Score(S, 102, E, "osu_2593923", 0, HR | FL, 2, T0 + 2000, full_combo=True, sr=9.00),  # raw 8.99688
    Score(S, 103, E, "osu_2593923", 0, DT | FL, 3, T0 + 3000, full_combo=True, sr=11.00),  # raw 10.99938
    Score(S, 100, E, "osu_2593923", 0, HR | FL, 2, T0 + 2500, full_combo=True, sr=9.00),  # smaller id, later
    # --- N: NF ---------------------------------------------------------------------------------
    Score(S, 110, N, "osu_39206", 0, NF, 3, T0 + 1100, full_combo=True, sr=4.78),
    Score(S, 111, N, "osu_39206", 0, 0, 1, T0 + 1000),  # failed (would be pass-4)
    Score(S, 112, N, "osu_39206", 0, HD | HR, 0, T0 + 1050, full_combo=True, max_combo=600),  # quit
    # --- C: combo ------------------------------------------------------------------------------
    Score(S, 120, C, "osu_2593923", 0, 0, 2, T0 + 1200, max_combo=600, sr=6.38),
    Score(S, 123, C, "osu_2593923", 0, 0, 1, T0 + 1210, max_combo=1500),  # failed
    Score(S, 122, C, "taiko_1028484", 1, 0, 3, T0 + 1250, max_combo=3000, sr=2.91),
    Score(S, 121, C, "osu_2593923", 0, 0, 3, T0 + 1300, full_combo=True, max_combo=2100, sr=6.38),
    # --- K: converts ---------------------------------------------------------------------------
    Score(S, 130, K, "osu_39206", 1, 0, 2, T0 + 1300, full_combo=True, sr=3.56),
    Score(S, 131, K, "osu_1597806", 2, 0, 2, T0 + 1400, full_combo=True, sr=3.99),  # raw 3.99331
    Score(S, 132, K, "osu_1450162", 3, 0, 2, T0 + 1500, sr=2.00),  # raw 1.99619
    Score(S, 133, K, "osu_2593923", 3, K4, 2, T0 + 1600, sr=3.00),  # raw 3.00445 (key mod ignored)
    # --- I: impossible convert -------------------------------------------------------------------
    Score(S, 140, I, "taiko_1028484", 0, HD, 3, T0 + 1400, full_combo=True, max_combo=600),
    # --- X: relax ------------------------------------------------------------------------------
    Score(RX_T, RX_ID + 201, X, "osu_2593923", 0, RX | HD | NF, 3, T0 + 1600, max_combo=800),
    Score(RX_T, RX_ID + 202, X, "catch_2118524", 2, RX, 2, T0 + 1700, full_combo=True, sr=3.25),
    Score(S, 150, X, "mania_1638954", 3, RX, 3, T0 + 1800, full_combo=True, sr=3.36),
    # --- A: autopilot ----------------------------------------------------------------------------
    Score(AP_T, AP_ID + 1, A, "osu_2593923", 0, AP, 1, T0 + 1850, max_combo=900),  # failed
    # live autopilot SR 4.17; plain rosu-pp-py ignores the AP bit and would give 6.38 (band 6)
    Score(AP_T, AP_ID, A, "osu_2593923", 0, AP | HD, 3, T0 + 1900, full_combo=True,
          max_combo=600, sr=4.17),
    # --- P: play count (the 4998 earlier failed/quit rows are in `grinder_rows()`) --------------
    Score(RX_T, RX_ID + 210, P, "osu_2593923", 0, RX, 1, T0 + 50_005),  # failed relax: mode 4, not mode 0
    Score(RX_T, RX_ID + 211, P, "osu_2593923", 0, RX, 0, T0 + 50_006),  # quit relax
    Score(S, 161, P, "osu_2593923", 0, NF, 2, T0 + 60_000),  # play 4999 (tie: lower id first)
    Score(S, 162, P, "osu_2593923", 0, 0, 1, T0 + 60_000),  # play 5000, failed
    Score(S, 160, P, "osu_2593923", 0, NF, 3, T0 + 70_000),  # play 5001: smaller id, later time
    # --- H: taiko hits ---------------------------------------------------------------------------
    Score(RX_T, RX_ID + 220, H, "taiko_1028484", 1, RX, 3, T0 + 500, n300=100, n100=0, n50=0, sr=2.91),
    Score(S, 170, H, "taiko_1028484", 1, 0, 3, T0 + 1000, n300=20000, n100=5000, n50=1000,
          katu=2000, geki=1940, miss=100, sr=2.91),  # 29940 hits (misses not counted)
    Score(S, 171, H, "taiko_1028484", 1, 0, 1, T0 + 2000, n300=50, n100=5, n50=3, katu=1, geki=1),  # 30000
    Score(S, 172, H, "taiko_1028484", 1, 0, 2, T0 + 3000, n300=1, n100=0, n50=0, sr=2.91),  # 30001
    # --- F: catch hits ---------------------------------------------------------------------------
    Score(S, 180, F, "catch_2118524", 2, 0, 3, T0 + 1000, n300=15000, n100=4000, n50=1500,
          katu=800, geki=300, sr=3.25),  # 19000 counted hits
    Score(S, 181, F, "catch_2118524", 2, 0, 2, T0 + 2000, n300=1000, n100=0, n50=0, sr=3.25),  # 20000
    # --- V: ranked statuses, unknown md5, tie at the same time -----------------------------------
    Score(S, 197, V, UNKNOWN_MD5, 0, FL | NF, 3, T0 + 800),
    Score(S, 190, V, "r0_104973", 0, SD | NF, 3, T0 + 900),
    Score(S, 191, V, "r1_112643", 0, EZ | NF, 3, T0 + 950),
    Score(S, 192, V, "r2_3227428", 0, HD | NF, 3, T0 + 1000),
    Score(S, 193, V, "r3_1431386", 0, HR | NF, 3, T0 + 1100),
    Score(S, 194, V, "r4_2190499", 0, HT | NF, 3, T0 + 1200),
    Score(S, 195, V, "r5_2768615", 0, SO | NF, 3, T0 + 1300),
    Score(S, 196, V, "r2_3227428", 0, SD | PF | NF, 3, T0 + 1400),
    Score(S, 189, V, "r2_3227428", 0, SD | NF, 2, T0 + 1400),
    # --- R: restricted -------------------------------------------------------------------------
    Score(S, 200, R, "osu_39206", 0, HR, 3, T0 + 1000, full_combo=True, max_combo=900),
    Score(RX_T, RX_ID + 230, R, "catch_2118524", 2, RX, 3, T0 + 1100, full_combo=True),
    # --- B: bad maps ---------------------------------------------------------------------------
    Score(S, 210, B, "missing_990001", 0, HD, 3, T0 + 1000, full_combo=True),
    Score(S, 211, B, "stale_990002", 0, HR, 3, T0 + 1100, full_combo=True),  # file would say 5.25
    Score(S, 212, B, "garbage_990003", 0, DT, 3, T0 + 1200, full_combo=True),
    Score(S, 213, B, "empty_990004", 0, EZ, 3, T0 + 1300, full_combo=True),
    Score(S, 214, B, "noobj_990005", 0, FL, 3, T0 + 1400, full_combo=True),
    Score(S, 215, B, "bom_2785319", 0, DT | TD, 3, T0 + 1500, full_combo=True, sr=7.00),  # raw 7.00065
]

GRINDER_FAILED = 4998


def grinder_rows() -> list[Score]:
    """User P's 4998 failed (every 7th: quit) osu! plays, ids 200001.., one every 10 s from T0+10."""
    return [
        Score(S, 200_000 + k, P, "osu_2593923", 0, 0, 0 if k % 7 == 0 else 1, T0 + 10 * k)
        for k in range(1, GRINDER_FAILED + 1)
    ]


def all_scores() -> list[Score]:
    return SCORES + grinder_rows()


@dataclass(frozen=True)
class Held:
    id: int
    user_id: int
    achievement_id: int
    mode: int
    created_at: int


EXISTING_ACHIEVEMENTS: list[Held] = [
    Held(1, N, 94, 0, T_OLD),  # NF intro already held in mode 0
    Held(2, N, 14, 2, T_OLD + 1),  # fc-4 held in mode 2 only: does not hold mode 0
    Held(3, A, 21, 7, T_OLD + 2),  # old autopilot mode 7: holds combo 500 for mode 8
    Held(4, A, 91, 4, T_OLD + 3),  # HD intro in relax: does not hold mode 8
    Held(5, R, 1, 0, T_OLD + 4),  # a restricted user's old medal
    Held(6, B, 50, 2, T_OLD + 5),  # unrelated row of a user with new grants
]


# ----------------------------------------------------------------------------------------------
# The expected grants (hand-derived; see the module docstring)
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Grant:
    user_id: int
    achievement_id: int
    mode: int
    created_at: int
    score_id: int
    why: str = field(default="", compare=False, hash=False)

    @property
    def row(self) -> tuple[int, int, int, int]:
        return (self.user_id, self.achievement_id, self.mode, self.created_at)

    @property
    def out_row(self) -> tuple[int, int, int, int, int]:
        return (self.user_id, self.achievement_id, self.mode, self.created_at, self.score_id)


G = Grant
EXPECTED_GRANTS: list[Grant] = [
    # E
    G(E, 5, 0, T0 + 1000, 101, "osu-skill-pass-5: 39206 HR 4.99786 -> 5.00 (not band 4)"),
    G(E, 88, 0, T0 + 1000, 101, "HR intro at 101"),
    G(E, 9, 0, T0 + 2000, 102, "osu-skill-pass-9: 2593923 HR+FL 8.99688 -> 9.00"),
    G(E, 19, 0, T0 + 2000, 102, "osu-skill-fc-9: same, FC"),
    G(E, 92, 0, T0 + 2000, 102, "FL intro at 102 (100 is later in time despite its smaller id)"),
    G(E, 89, 0, T0 + 3000, 103, "DT intro at 103; 10.99938 -> 11.00 is above every osu! band: no 10/20"),
    # N
    G(N, 14, 0, T0 + 1100, 110, "osu-skill-fc-4 with NF (4.78); pass-4 blocked by NF; 94 held; "
      "the (N,14,2) row does not hold mode 0"),
    # C
    G(C, 6, 0, T0 + 1200, 120, "osu-skill-pass-6 (6.38)"),
    G(C, 21, 0, T0 + 1200, 120, "combo 500 at max_combo 600"),
    G(C, 16, 0, T0 + 1300, 121, "osu-skill-fc-6"),
    G(C, 22, 0, T0 + 1300, 121, "combo 750 at 2100 (failed 1500-combo play 123 does not count)"),
    G(C, 23, 0, T0 + 1300, 121, "combo 1000 at 2100 (no upper bound)"),
    G(C, 24, 0, T0 + 1300, 121, "combo 2000 at 2100"),
    G(C, 26, 1, T0 + 1250, 122, "taiko-skill-pass-2 (2.91); no combo medal in taiko"),
    # K
    G(K, 27, 1, T0 + 1300, 130, "taiko-skill-pass-3: osu! map 39206 as taiko 3.56"),
    G(K, 35, 1, T0 + 1300, 130, "taiko-skill-fc-3"),
    G(K, 43, 2, T0 + 1400, 131, "fruits-skill-pass-3: 1597806 as catch 3.99331 -> 3.99 (band 3, not 4)"),
    G(K, 51, 2, T0 + 1400, 131, "fruits-skill-fc-3"),
    G(K, 58, 3, T0 + 1500, 132, "mania-skill-pass-2: 1450162 as mania 1.99619 -> 2.00"),
    G(K, 59, 3, T0 + 1600, 133, "mania-skill-pass-3: 2593923 as mania with 4K, key mod ignored: 3.00"),
    # I
    G(I, 91, 0, T0 + 1400, 140, "HD intro although SR unknown (taiko map as osu!)"),
    G(I, 21, 0, T0 + 1400, 140, "combo 500 although SR unknown"),
    # X
    G(X, 21, 4, T0 + 1600, RX_ID + 201, "relax osu! combo 500 (mode 4)"),
    G(X, 22, 4, T0 + 1600, RX_ID + 201, "relax osu! combo 750 (mode 4)"),
    G(X, 91, 4, T0 + 1600, RX_ID + 201, "HD intro, mode 4"),
    G(X, 94, 4, T0 + 1600, RX_ID + 201, "NF intro, mode 4"),
    G(X, 43, 6, T0 + 1700, RX_ID + 202, "fruits-skill-pass-3, catch relax (mode 6) 3.25"),
    G(X, 51, 6, T0 + 1700, RX_ID + 202, "fruits-skill-fc-3, mode 6"),
    G(X, 59, 3, T0 + 1800, 150, "mania-skill-pass-3: relax mania in `scores` is full mode 3 (3.36)"),
    G(X, 67, 3, T0 + 1800, 150, "mania-skill-fc-3, mode 3"),
    # A
    G(A, 4, 8, T0 + 1900, AP_ID, "osu-skill-pass-4: autopilot SR 4.17 (mode 8)"),
    G(A, 14, 8, T0 + 1900, AP_ID, "osu-skill-fc-4, mode 8"),
    G(A, 91, 8, T0 + 1900, AP_ID, "HD intro in mode 8 (held only in mode 4); combo 500 held via mode 7"),
    # P
    G(P, 94, 0, T0 + 60_000, 161, "NF intro at play 4999"),
    G(P, 73, 0, T0 + 70_000, 160, "osu-plays-5000 at play 5001 (play 5000 was the failed 162)"),
    # H
    G(H, 26, 5, T0 + 500, RX_ID + 220, "taiko-skill-pass-2, relax taiko (mode 5)"),
    G(H, 26, 1, T0 + 1000, 170, "taiko-skill-pass-2, mode 1"),
    G(H, 77, 1, T0 + 3000, 172, "taiko-hits-30000: 30001 at 172 (30000 reached by failed 171)"),
    # F
    G(F, 43, 2, T0 + 1000, 180, "fruits-skill-pass-3 (3.25)"),
    G(F, 80, 2, T0 + 2000, 181, "fruits-hits-20000: 19000 + 1000 (no 50s/katus/gekis in catch)"),
    # V
    G(V, 91, 0, T0 + 1000, 192, "HD intro on a ranked (2) map"),
    G(V, 94, 0, T0 + 1000, 192, "NF intro: first eligible play (190/191 unranked, 197 unknown md5)"),
    G(V, 88, 0, T0 + 1100, 193, "HR intro on an approved (3) map"),
    G(V, 95, 0, T0 + 1200, 194, "HT intro on a qualified (4) map"),
    G(V, 96, 0, T0 + 1300, 195, "SO intro on a loved (5) map"),
    G(V, 86, 0, T0 + 1400, 189, "SD intro: 189 and 196 share the time, lower id first"),
    G(V, 87, 0, T0 + 1400, 196, "PF intro"),
    # B
    G(B, 91, 0, T0 + 1000, 210, "HD intro, map file missing"),
    G(B, 88, 0, T0 + 1100, 211, "HR intro, stale file (md5 mismatch): no SR medal"),
    G(B, 89, 0, T0 + 1200, 212, "DT intro, garbage file"),
    G(B, 93, 0, T0 + 1300, 213, "EZ intro, empty file"),
    G(B, 92, 0, T0 + 1400, 214, "FL intro, file without hit objects"),
    G(B, 7, 0, T0 + 1500, 215, "osu-skill-pass-7: BOM file accepted, DT+TD 7.00065 -> 7.00"),
    G(B, 17, 0, T0 + 1500, 215, "osu-skill-fc-7"),
]

# Hand counts for the report (each ineligible row has exactly one reason).
EXPECTED_ELIGIBLE = 36
EXPECTED_INELIGIBLE = {
    # N 111, 112; C 123; A AP_ID + 1; P 4998 + 162 + relax 210, 211; H 171
    "not_passed": 2 + 1 + 1 + (GRINDER_FAILED + 3) + 1,
    "restricted": 2,  # R 200, relax 230
    "unknown_beatmap": 1,  # V 197
    "unranked": 2,  # V 190 (ranked 0), 191 (ranked 1)
    "invalid_mode": 0,
}
EXPECTED_SR_ERRORS = {
    "missing_file": 1,
    "md5_mismatch": 1,
    "bad_format": 3,  # garbage, empty, no hit objects
    "impossible_convert": 1,  # I 140
    "non_finite": 0,
    "engine_failed": 0,
}

FAMILIES = {
    "skill_pass": set(range(1, 11)) | set(range(25, 33)) | set(range(41, 49)) | set(range(57, 65)),
    "skill_fc": set(range(11, 21)) | set(range(33, 41)) | set(range(49, 57)) | set(range(65, 73)),
    "combo": set(range(21, 25)),
    "playcount": set(range(73, 77)),
    "hits": set(range(77, 86)) | {97, 98, 99},
    "mod_intro": set(range(86, 97)),
    "stumbler": {122},
    "jackpot": {123},
}


def family_of(achievement_id: int) -> str:
    for name, ids in FAMILIES.items():
        if achievement_id in ids:
            return name
    raise KeyError(achievement_id)


# ----------------------------------------------------------------------------------------------
# Loading into MariaDB
# ----------------------------------------------------------------------------------------------


def ddl_statements(path: Path = PRODUCTION_SQL) -> list[str]:
    """The statements of production.sql (comment lines dropped, split on ';' at end of line)."""
    lines = [ln for ln in path.read_text().splitlines() if not ln.lstrip().startswith("--")]
    text = "\n".join(lines)
    return [s.strip() for s in text.split(";\n") if s.strip().rstrip(";").strip()]


def load_production_schema(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        for stmt in ddl_statements():
            conn.exec_driver_sql(stmt.rstrip(";"))


_SCORE_COLS = (
    "id, beatmap_md5, userid, score, max_combo, full_combo, mods, `300_count`, `100_count`, "
    "`50_count`, katus_count, gekis_count, misses_count, `time`, play_mode, completed, accuracy, pp, "
    "checksum, patcher, pinned"
)


def _score_params(s: Score, md5s: dict[str, str]) -> tuple:
    md5 = UNKNOWN_MD5 if s.map == UNKNOWN_MD5 else md5s[s.map]
    checksum = _md5(f"{s.table}:{s.id}".encode())
    return (
        s.id, md5, s.user, 100_000 + s.id % 1000, s.max_combo, int(s.full_combo), s.mods,
        s.n300, s.n100, s.n50, s.katu, s.geki, s.miss, s.time, s.play_mode, s.completed,
        95.5, 0.0, checksum, 0, 0,
    )


def insert_scenario(engine: sa.Engine, md5s: dict[str, str]) -> None:
    """Insert users, beatmaps, less_achievements, user_stats, scores and the existing achievements."""
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.executemany(
            "INSERT INTO users (id, username, username_safe, password_md5, email, register_datetime, "
            "latest_activity, privileges) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            [
                (uid, name, name.lower(), "x" * 32, f"{name}@example.invalid", T0 - 86_400, T0 + 100_000, priv)
                for uid, (name, priv) in USERS.items()
            ],
        )
        cur.executemany(
            "INSERT INTO beatmaps (beatmap_id, beatmapset_id, beatmap_md5, song_name, file_name, ar, od, "
            "mode, max_combo, hit_length, bpm, ranked, latest_update, ranked_status_freezed, playcount, "
            "passcount, rating) VALUES (%s, %s, %s, %s, %s, 9, 8, %s, 1000, 120, 180, %s, %s, 0, 0, 0, 10)",
            [
                (spec.beatmap_id, spec.beatmap_id + 1, md5s[key], f"test map {key}", f"{key}.osu",
                 spec.mode, spec.ranked, T0 - 1000)
                for key, spec in MAP_SPECS.items()
            ],
        )
        cur.executemany(  # today's live rows, 1-128 (the catalogue's and the never-granted ones)
            "INSERT INTO less_achievements (id, file, name, `desc`, hidden, mode) VALUES (%s, %s, %s, %s, %s, %s)",
            [(r["id"], r["file"], r["name"], r["desc"], int(r["hidden"]), r["mode"]) for r in live_rows()],
        )
        # Current totals far above every threshold: a job must not use them for history.
        cur.executemany(
            "INSERT INTO user_stats (user_id, mode, playcount, total_hits, pp, max_combo) "
            "VALUES (%s, %s, 60000, 5000000, 1000, 5000)",
            [(uid, mode) for uid in USERS for mode in (0, 1, 2, 3, 4, 5, 6, 8)],
        )
        by_table: dict[str, list[tuple]] = {S: [], RX_T: [], AP_T: []}
        for s in all_scores():
            by_table[s.table].append(_score_params(s, md5s))
        for table, rows in by_table.items():
            placeholders = ", ".join(["%s"] * 21)
            # PyMySQL turns executemany of one INSERT ... VALUES into multi-row inserts.
            cur.executemany(f"INSERT INTO {table} ({_SCORE_COLS}) VALUES ({placeholders})", rows)
        cur.executemany(
            "INSERT INTO users_achievements (id, user_id, achievement_id, mode, created_at) "
            "VALUES (%s, %s, %s, %s, %s)",
            [(h.id, h.user_id, h.achievement_id, h.mode, h.created_at) for h in EXISTING_ACHIEVEMENTS],
        )
        raw.commit()
    finally:
        raw.close()


def setup_database(url: str, osu_dir: Path) -> dict[str, str]:
    """Create the production tables in the (empty) database at `url`, write the .osu store, insert the
    scenario. Returns map key -> md5."""
    md5s = build_osu_dir(osu_dir)
    engine = sa.create_engine(url)
    try:
        load_production_schema(engine)
        insert_scenario(engine, md5s)
    finally:
        engine.dispose()
    return md5s


def users_achievements_rows(url: str) -> list[tuple[int, int, int, int, int]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.exec_driver_sql(
                "SELECT id, user_id, achievement_id, mode, created_at FROM users_achievements ORDER BY id"
            ).fetchall()
    finally:
        engine.dispose()
    return [tuple(int(v) for v in r) for r in rows]
