"""Evaluation on hand-built shards: eligibility, full modes, running stats, earliest unlock, held."""

import polars as pl
import pytest

from conditions.catalogue import load_catalogue
from conditions.evaluate import SCORE_SCHEMA, evaluate, prepare_scores, sr_keys

NF, HD, HR, DT, RX, AP = 1, 8, 16, 64, 128, 8192
MD5 = "0123456789abcdef0123456789abcdef"


def score(**over) -> dict:
    row = {
        "source": "scores", "id": 1, "userid": 10, "beatmap_md5": MD5, "mods": 0, "max_combo": 100,
        "full_combo": False, "300_count": 100, "100_count": 0, "50_count": 0, "katus_count": 0,
        "gekis_count": 0, "misses_count": 0, "score": 1_234_567, "time": 1_500_000_000, "play_mode": 0, "completed": 3, "beatmap_id": 1,
        "ranked": 2, "privileges": 3,
    }
    row.update(over)
    return row


def frame(*rows) -> pl.DataFrame:
    return pl.DataFrame(list(rows), schema=SCORE_SCHEMA)


def ratings(*rows) -> pl.DataFrame:
    """(beatmap_md5, mode_vn, mods, sr) rows."""
    return pl.DataFrame(
        list(rows), schema={"beatmap_md5": pl.String, "mode_vn": pl.Int64, "mods": pl.Int64, "sr": pl.Float64}, orient="row"
    )


NO_HELD = pl.DataFrame(schema={"user_id": pl.Int64, "achievement_id": pl.Int64, "mode": pl.Int64})


def grants_of(scores, sr=None, held=NO_HELD) -> set[tuple]:
    result = evaluate(prepare_scores(scores), sr if sr is not None else ratings(), held, load_catalogue())
    return set(result.grants.select("user_id", "achievement_id", "mode", "created_at").iter_rows())


def test_eligibility_reasons_first_match_wins():
    prepared = prepare_scores(
        frame(
            score(id=1),
            score(id=2, completed=1),
            score(id=3, completed=0),
            score(id=4, privileges=2),
            score(id=5, privileges=None),
            score(id=6, ranked=None, beatmap_id=None),
            score(id=7, ranked=0),
            score(id=8, ranked=1),
            score(id=9, ranked=5),
            score(id=10, source="scores_relax", play_mode=3),
            score(id=11, completed=1, ranked=0),
        )
    )
    reasons = dict(prepared.select("id", "ineligible").iter_rows())
    assert reasons == {
        1: None, 2: "not_passed", 3: "not_passed", 4: "restricted", 5: "restricted", 6: "unknown_beatmap",
        7: "unranked", 8: "unranked", 9: None, 10: "invalid_mode", 11: "not_passed",
    }


def test_full_mode_by_table():
    prepared = prepare_scores(
        frame(
            score(id=1, play_mode=3, mods=RX),  # relax mania lives in `scores`: full mode 3
            score(id=2, source="scores_relax", play_mode=0, mods=RX),
            score(id=3, source="scores_relax", play_mode=2, mods=RX),
            score(id=4, source="scores_ap", play_mode=0, mods=AP),
            score(id=5, source="scores_ap", play_mode=1, mods=AP),
        )
    )
    modes = dict(prepared.select("id", "full_mode").iter_rows())
    assert modes == {1: 3, 2: 4, 3: 6, 4: 8, 5: None}
    assert dict(prepared.select("id", "mode_vn").iter_rows()) == {1: 3, 2: 0, 3: 2, 4: 0, 5: None}


def test_running_totals_per_full_mode_in_time_order_ties_by_id():
    hits = {"300_count": 10, "100_count": 5, "50_count": 2, "katus_count": 3, "gekis_count": 4}
    prepared = prepare_scores(
        frame(
            score(id=5, time=300, **hits),
            score(id=2, time=100, completed=1, **hits),
            score(id=4, time=200, **hits),
            score(id=3, time=200, completed=0, **hits),
            score(id=9, time=50, play_mode=1, **hits),  # taiko: + katus + gekis
            score(id=10, time=60, play_mode=2, **hits),  # catch: no 50s
            score(id=11, time=70, play_mode=3, **hits),  # mania: + katus + gekis
            score(id=12, time=10, source="scores_relax", mods=RX, **hits),  # another full mode
        )
    )
    rows = {r["id"]: (r["playcount"], r["total_hits"]) for r in prepared.iter_rows(named=True)}
    assert rows[2] == (1, 17) and rows[3] == (2, 34) and rows[4] == (3, 51) and rows[5] == (4, 68)
    assert rows[9] == (1, 24) and rows[10] == (1, 15) and rows[11] == (1, 24) and rows[12] == (1, 17)


def test_skill_band_edges_and_nofail():
    scores = frame(
        score(id=1, time=10, mods=0, full_combo=True, beatmap_md5="a" * 32),
        score(id=2, time=20, mods=NF, full_combo=True, beatmap_md5="b" * 32),
        score(id=3, time=30, mods=0, beatmap_md5="c" * 32),
    )
    sr = ratings(("a" * 32, 0, 0, 4.99), ("b" * 32, 0, NF, 5.0), ("c" * 32, 0, 0, 11.0))
    got = grants_of(scores, sr)
    # 4.99: pass 4 and FC 4. 5.00 with NF: FC 5 only (NF excluded from pass) plus mod intro NF (94).
    # 11.00: beyond the osu! bands (1-10): nothing.
    assert got == {(10, 4, 0, 10), (10, 14, 0, 10), (10, 15, 0, 20), (10, 94, 0, 20)}


def test_unknown_sr_meets_no_sr_condition_but_others_still_count():
    scores = frame(score(id=1, mods=HD | HR, full_combo=True, max_combo=800))
    got = grants_of(scores, ratings())  # no rating for the key
    assert got == {(10, 21, 0, 1_500_000_000), (10, 22, 0, 1_500_000_000), (10, 88, 0, 1_500_000_000), (10, 91, 0, 1_500_000_000)}


def test_earliest_unlock_and_tie_by_id():
    scores = frame(
        score(id=7, time=500, mods=HD),
        score(id=3, time=500, mods=HD),
        score(id=9, time=900, mods=HD),
    )
    result = evaluate(prepare_scores(scores), ratings(), NO_HELD, load_catalogue())
    assert result.grants.select("achievement_id", "created_at", "score_id").rows() == [(91, 500, 3)]


def test_playcount_threshold_crossed_by_failed_play_unlocks_at_next_pass():
    rows = [score(id=i, time=i, completed=1, ranked=0) for i in range(1, 5000)]  # 4999 failed plays
    rows.append(score(id=5000, time=5000, completed=1))  # the 5000th play fails
    rows.append(score(id=5001, time=6000, completed=1))  # still failed
    rows.append(score(id=5002, time=7000, completed=2))  # first pass after the threshold
    got = grants_of(frame(*rows))
    assert (10, 73, 0, 7000) in got


def test_held_and_mode7_counts_as_mode8():
    scores = frame(
        score(id=1, mods=HD),
        score(id=2, source="scores_ap", mods=AP | HD),
        score(id=3, source="scores_relax", mods=RX | HD),
    )
    held = pl.DataFrame(
        {"user_id": [10, 10], "achievement_id": [91, 91], "mode": [0, 7]},
        schema={"user_id": pl.Int64, "achievement_id": pl.Int64, "mode": pl.Int64},
    )
    result = evaluate(prepare_scores(scores), ratings(), held, load_catalogue())
    assert result.grants.select("achievement_id", "mode").rows() == [(91, 4)]
    assert result.already_held == 2


def test_restricted_user_and_unranked_map_grant_nothing():
    scores = frame(score(id=1, mods=HD, privileges=0), score(id=2, mods=HD, ranked=1, userid=11))
    assert grants_of(scores) == set()


def test_sr_keys_are_unique_and_only_from_eligible_scores():
    prepared = prepare_scores(
        frame(
            score(id=1, mods=HD),
            score(id=2, mods=HD),
            score(id=3, mods=DT),
            score(id=4, mods=HR, completed=1),
            score(id=5, play_mode=1),
        )
    )
    assert sr_keys(prepared).select("mode_vn", "mods").rows() == [(0, HD), (0, DT), (1, 0)]


@pytest.mark.parametrize(("family", "expected"), [("skill_pass", 1), ("mod_intro", 1), ("combo", 0)])
def test_counts_by_family_and_full_mode(family, expected):
    scores = frame(score(id=1, mods=HD, source="scores_relax", play_mode=1))
    result = evaluate(prepare_scores(scores), ratings((MD5, 1, HD, 2.5)), NO_HELD, load_catalogue())
    assert result.by_family[family] == expected
    assert result.by_full_mode == {5: 2}
