"""The live accuracy, grade and the polars rules (conditions.rules) against row-by-row implementations of
the live functions (score-service app/utils/score_utils.py, app/achievements/hush_hush.py) on generated
rows; and the catalogue's new entries (97-99, 120, 122, 123) evaluated on prepared shards."""

from __future__ import annotations

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conditions.catalogue import load_catalogue
from conditions.evaluate import SCORE_SCHEMA, evaluate, prepare_scores
from conditions.rules import RULES, accuracy_expr, grade_expr
from tests.test_evaluate import NO_HELD, frame, ratings, score

COUNTS = ("300_count", "100_count", "50_count", "katus_count", "gekis_count", "misses_count")
HD, FL, FI = 8, 1024, 1 << 20


# --- the live functions, one row at a time ------------------------------------------------------------


def live_accuracy(row: dict) -> float | None:
    """calculate_accuracy: percent from the counts, per vanilla mode (None where the live one raises)."""
    n300, n100, n50, katu, geki, miss = (row[c] for c in COUNTS)
    mode = row["mode_vn"]
    if mode == 0:
        judged = n300 + n100 + n50 + miss
        return 0.0 if judged == 0 else 100.0 * (n300 * 300.0 + n100 * 100.0 + n50 * 50.0) / (judged * 300.0)
    if mode == 1:
        judged = n300 + n100 + miss
        return 0.0 if judged == 0 else 100.0 * (n100 * 0.5 + n300) / judged
    if mode == 2:
        judged = n300 + n100 + n50 + katu + miss
        return 0.0 if judged == 0 else 100.0 * (n300 + n100 + n50) / judged
    if mode == 3:
        judged = n300 + n100 + n50 + geki + katu + miss
        weighted = n50 * 50.0 + n100 * 100.0 + katu * 200.0 + (n300 + geki) * 300.0
        return 0.0 if judged == 0 else 100.0 * weighted / (judged * 300.0)
    return None


def live_grade(row: dict, acc: float) -> str | None:
    """calculate_grade (None where the live one raises: no judgements in osu!/taiko, unknown mode)."""
    n300, n100, n50, miss = row["300_count"], row["100_count"], row["50_count"], row["misses_count"]
    silver = row["mods"] & (HD | FL | FI) > 0
    top, s_rank = ("XH", "SH") if silver else ("X", "S")
    mode = row["mode_vn"]
    if mode in (0, 1):
        objects = n300 + n100 + n50 + miss
        if objects == 0:
            return None  # ZeroDivisionError on the live server
        r300, r50 = n300 / objects, n50 / objects
        if r300 == 1:
            return top
        if r300 > 0.9 and r50 <= 0.01 and miss == 0:
            return s_rank
        if (r300 > 0.8 and miss == 0) or r300 > 0.9:
            return "A"
        if (r300 > 0.7 and miss == 0) or r300 > 0.8:
            return "B"
        return "C" if r300 > 0.6 else "D"
    cuts = {2: (98, 94, 90, 85), 3: (95, 90, 80, 70)}.get(mode)
    if cuts is None:
        return None
    if acc == 100:
        return top
    for grade, cut in zip((s_rank, "A", "B", "C"), cuts):
        if acc > cut:
            return grade
    return "D"


def live_jackpot(row: dict) -> bool:
    digits = str(row["score"])
    return row["passed"] and len(digits) >= 2 and len(set(digits)) == 1


def live_consolation(row: dict, acc: float) -> bool:
    if not row["passed"] or row["score"] < 100_000:
        return False
    return live_grade(row, acc) == "D"


def live_stumbler(row: dict, acc: float) -> bool:
    return row["full_combo"] and acc < 85.0


# --- generated rows ---------------------------------------------------------------------------------

REPDIGITS = [int(str(d) * n) for d in range(1, 10) for n in range(1, 11) if int(str(d) * n) < 2**31]
count = st.one_of(st.integers(0, 32767), st.integers(0, 10), st.integers(0, 40), st.sampled_from([0, 1, 32767]),
                  st.integers(-32768, -1))
rows = st.fixed_dictionaries(
    {
        **{c: count for c in COUNTS},
        "mode_vn": st.one_of(st.integers(0, 3), st.just(4)),
        "mods": st.one_of(st.integers(0, 2**30), st.sampled_from([0, HD, FL, FI, HD | 64, 1 | 16])),
        "score": st.one_of(st.integers(-(2**31), 2**31 - 1), st.sampled_from(REPDIGITS + [7_777_771, 100_000, 99_999, 0, -11]),
                           st.integers(0, 2_000_000)),
        "passed": st.booleans(),
        "full_combo": st.booleans(),
    }
)
ROW_SCHEMA = {**dict.fromkeys(COUNTS, pl.Int64), "mode_vn": pl.Int64, "mods": pl.Int64, "score": pl.Int64,
              "passed": pl.Boolean, "full_combo": pl.Boolean}


def with_acc(batch: list[dict]) -> pl.DataFrame:
    return pl.DataFrame(batch, schema=ROW_SCHEMA).with_columns(accuracy_expr())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=st.lists(rows, min_size=1, max_size=60))
def test_accuracy_and_grade_equal_the_live_functions_bit_for_bit(batch):
    got = with_acc(batch).with_columns(grade_expr())
    accs = [live_accuracy(r) for r in batch]
    assert got.get_column("acc").to_list() == accs  # exact float equality, not a tolerance
    assert got.get_column("grade").to_list() == [
        live_grade(r, a) if a is not None else None for r, a in zip(batch, accs)
    ]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=st.lists(rows, min_size=1, max_size=60))
def test_rules_equal_the_live_functions(batch):
    frame_ = with_acc(batch)
    got = frame_.select(RULES["jackpot"].expr.alias("jackpot"), RULES["consolation"].expr.alias("consolation"))
    accs = [live_accuracy(r) for r in batch]
    assert got.get_column("jackpot").to_list() == [live_jackpot(r) for r in batch]
    assert got.get_column("consolation").to_list() == [
        a is not None and live_consolation(r, a) for r, a in zip(batch, accs)
    ]


def test_accuracy_examples():
    batch = [
        {**dict.fromkeys(COUNTS, 0), "mode_vn": m, "mods": 0, "score": 0, "passed": True, "full_combo": True, **c}
        for m, c in [
            (0, {"300_count": 31, "100_count": 9}),  # 85.0 exactly
            (0, {"300_count": 30, "100_count": 10}),  # 83.33...
            (1, {"300_count": 70, "100_count": 30}),  # 85.0: a taiko 100 is half a 300
            (1, {"300_count": 70, "100_count": 30, "50_count": 500, "gekis_count": 9, "katus_count": 9}),  # ignored
            (2, {"300_count": 80, "100_count": 5, "50_count": 0, "katus_count": 15}),  # 85.0: katus are missed droplets
            (3, {"gekis_count": 10, "300_count": 10, "katus_count": 0, "100_count": 0, "misses_count": 0}),  # 100
            (3, {"100_count": 3}),  # 33.33...
            (0, {}),  # no judgements: 0.0
        ]
    ]
    assert with_acc(batch).get_column("acc").to_list() == [85.0, 100 * 10000 / 12000, 85.0, 85.0, 85.0, 100.0,
                                                            100 * 300.0 / 900.0, 0.0]


def test_grade_and_consolation_examples():
    base = {**dict.fromkeys(COUNTS, 0), "mods": 0, "score": 150_000, "passed": True, "full_combo": False}
    batch = [
        {**base, "mode_vn": 0, "300_count": 60, "100_count": 40},  # 60% 300s: D
        {**base, "mode_vn": 0, "300_count": 61, "100_count": 39},  # C
        {**base, "mode_vn": 0, "300_count": 60, "100_count": 40, "score": 99_999},  # D but under 100,000
        {**base, "mode_vn": 0, "300_count": 60, "100_count": 40, "passed": False},  # failed
        {**base, "mode_vn": 3, "100_count": 10},  # 33% mania: D
        {**base, "mode_vn": 2, "300_count": 100, "mods": HD},  # XH
        {**base, "mode_vn": 1},  # no judgements: the live function raises; no grade
        {**base, "mode_vn": 0, "300_count": 4, "misses_count": 1},  # exactly 80% 300s with a miss: not B
        {**base, "mode_vn": 1, "300_count": 9, "misses_count": 1},  # exactly 90% with a miss: not A
        {**base, "mode_vn": 0, "300_count": 95, "100_count": 4, "50_count": 1},  # S: 1% 50s at most
        {**base, "mode_vn": 0, "300_count": 94, "100_count": 4, "50_count": 2},  # 2% 50s: A
    ]
    got = with_acc(batch).select(grade_expr(), RULES["consolation"].expr)
    assert got.get_column("grade").to_list() == ["D", "C", "D", "D", "D", "XH", None, "C", "B", "S", "A"]
    assert got.get_column("met").to_list() == [True, False, False, False, True, False, False, False, False, False, False]


def test_jackpot_examples():
    scores = [7_777_777, 11, 1_111_111_111, 7, 0, 7_777_771, 10, -11, -1]
    batch = [{**dict.fromkeys(COUNTS, 1), "mode_vn": 0, "mods": 0, "score": s, "passed": True, "full_combo": False}
             for s in scores]
    batch.append({**batch[0], "passed": False})
    got = with_acc(batch).select(RULES["jackpot"].expr).to_series().to_list()
    assert got == [True, True, True, False, False, False, False, False, False, False]


# --- the catalogue's new entries on prepared shards -----------------------------------------------------

CATALOGUE = load_catalogue()
shard_rows = st.fixed_dictionaries(
    {
        **{c: st.one_of(st.integers(0, 2000), st.integers(0, 20)) for c in COUNTS},
        "play_mode": st.integers(0, 3),
        "full_combo": st.booleans(),
        "completed": st.sampled_from([1, 2, 3]),
        "score": st.one_of(st.integers(0, 2**31 - 1), st.sampled_from(REPDIGITS + [7_777_771])),
        "mods": st.sampled_from([0, 1, HD, 64]),
    }
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=st.lists(shard_rows, min_size=1, max_size=40))
def test_prepared_shards_meet_the_new_entries_as_the_live_functions_do(batch):
    prepared = prepare_scores(frame(*(score(id=i + 1, time=1_500_000_000 + i, **r) for i, r in enumerate(batch))))
    got = prepared.sort("id").select(*(CATALOGUE.by_id[i].expr.alias(str(i)) for i in (120, 122, 123)))
    live_rows = [{**r, "mode_vn": r["play_mode"], "passed": r["completed"] >= 2} for r in batch]
    accs = [live_accuracy(r) for r in live_rows]
    assert got.get_column("122").to_list() == [live_stumbler(r, a) for r, a in zip(live_rows, accs)]
    assert got.get_column("123").to_list() == [live_jackpot(r) for r in live_rows]
    assert got.get_column("120").to_list() == [live_consolation(r, a) for r, a in zip(live_rows, accs)]


def test_stumbler_uses_the_live_accuracy_not_the_stored_column():
    under = dict(full_combo=True, **{"300_count": 30, "100_count": 10})  # osu! 83.33% by the counts
    at = dict(full_combo=True, **{"300_count": 31, "100_count": 9})  # 85.0% exactly: not under
    result = evaluate(prepare_scores(frame(score(id=1, time=10, **at), score(id=2, time=20, **under))), ratings(), NO_HELD,
                      CATALOGUE)
    assert result.grants.filter(pl.col("achievement_id") == 122).select("score_id", "created_at").rows() == [(2, 20)]
    assert "accuracy" not in SCORE_SCHEMA  # the stored column is not even read


def test_consolation_is_counted_never_granted():
    d_rank = dict(score=150_000, **{"300_count": 50, "100_count": 50})  # 50% 300s: D
    scores = frame(score(id=1, userid=1, time=10, **d_rank), score(id=2, userid=1, time=20, **d_rank),
                   score(id=3, userid=2, time=10, **d_rank), score(id=4, userid=3, time=10, completed=1, **d_rank))
    result = evaluate(prepare_scores(scores), ratings(), NO_HELD, CATALOGUE)
    assert 120 not in result.grants.get_column("achievement_id").to_list()
    assert result.would_grant == {120: 2}  # users 1 and 2 once each; user 3's play failed
    assert "consolation" not in result.by_family
    held = pl.DataFrame({"user_id": [2], "achievement_id": [120], "mode": [0]}, schema=dict(NO_HELD.schema))
    assert evaluate(prepare_scores(scores), ratings(), held, CATALOGUE).would_grant == {120: 1}


def test_tier_four_hits_earliest_crossing_and_catch_leaves_out_50s_and_katus():
    big = {"300_count": 30000, "100_count": 2767, "50_count": 32767, "katus_count": 32767, "gekis_count": 32767}
    per_play = {1: 30000 + 2767 + 32767 * 3, 2: 30000 + 2767, 3: 30000 + 2767 + 32767 * 3}
    threshold = {1: 30_000_000, 2: 20_000_000, 3: 40_000_000}
    achievement = {1: 97, 2: 98, 3: 99}
    for mode in (1, 2, 3):
        crossing = -(-threshold[mode] // per_play[mode])  # the play whose running total first reaches it
        # failed plays count towards the totals; passes from the play just below the threshold on
        rows = [score(id=k, time=1000 + k, play_mode=mode, completed=1 if k < crossing - 1 else 2, **big)
                for k in range(1, crossing + 3)]
        result = evaluate(prepare_scores(frame(*rows)), ratings(), NO_HELD, CATALOGUE)
        got = result.grants.filter(pl.col("achievement_id") == achievement[mode])
        assert got.select("score_id", "created_at", "total_hits").rows() == [
            (crossing, 1000 + crossing, crossing * per_play[mode])
        ], mode
        assert result.by_family["hits"] >= 1
        # up to the pass just below the threshold: no grant
        short = evaluate(prepare_scores(frame(*rows[: crossing - 1])), ratings(), NO_HELD, CATALOGUE)
        assert achievement[mode] not in short.grants.get_column("achievement_id").to_list()
