"""Pure-polars pieces behind the production-safety features: the score-time window, skip reasons with
sample score ids, grant evidence, stats-only candidates and the support check of recorded grants."""

import polars as pl

from tests.test_evaluate import NO_HELD, frame, score

from conditions.catalogue import load_catalogue
from conditions.evaluate import STATS_SCHEMA, evaluate, prepare_scores, stats_only
from conditions.support import unsupported_grants

NF, HD, HR, DT, AP = 1, 8, 16, 64, 8192
MD5 = "0123456789abcdef0123456789abcdef"
OTHER = "f" * 32
CATALOGUE = load_catalogue()


def ratings(*rows) -> pl.DataFrame:
    """(beatmap_md5, mode_vn, mods, sr, skip_reason) rows."""
    return pl.DataFrame(list(rows), orient="row", schema={"beatmap_md5": pl.String, "mode_vn": pl.Int64,
                                                          "mods": pl.Int64, "sr": pl.Float64, "skip_reason": pl.String})


def test_window_makes_scores_outside_ineligible_but_keeps_them_in_running_totals():
    scores = frame(score(id=1, time=100, completed=1), score(id=2, time=200, mods=HD), score(id=3, time=300, mods=HD),
                   score(id=4, time=400, mods=HD))
    prepared = prepare_scores(scores, since=250, until=400)
    assert dict(prepared.select("id", "ineligible").iter_rows()) == {1: "not_passed", 2: "outside_window", 3: None,
                                                                     4: "outside_window"}
    assert dict(prepared.select("id", "playcount").iter_rows()) == {1: 1, 2: 2, 3: 3, 4: 4}
    result = evaluate(prepared, ratings(), NO_HELD, CATALOGUE)
    assert result.grants.select("achievement_id", "created_at", "score_id").rows() == [(91, 300, 3)]


def test_skip_reasons_count_scores_and_keep_lowest_id_samples():
    scores = frame(
        *(score(id=i, beatmap_md5=OTHER, mods=HD) for i in (7, 3, 5)),  # a key the engine could not rate
        score(id=9, mods=DT),  # a key missing from the ratings
        score(id=2, mods=HR),  # rated
        score(id=4, ranked=None, beatmap_id=None),  # unknown beatmap
        score(id=6, completed=1, beatmap_md5=OTHER),  # failed: not a skip
    )
    result = evaluate(prepare_scores(scores), ratings((OTHER, 0, HD, None, "md5_mismatch"), (MD5, 0, HR, 3.2, None)),
                      NO_HELD, CATALOGUE, samples_per_reason=2)
    assert result.skipped == {"md5_mismatch": 3, "unrated": 1, "unknown_beatmap": 1}
    samples = result.skip_samples.select("reason", "score_id").rows()
    assert sorted(samples) == [("md5_mismatch", 3), ("md5_mismatch", 5), ("unknown_beatmap", 4), ("unrated", 9)]
    # the grants carry their evidence: the qualifying score's star rating and running totals
    evidence = result.grants.filter(pl.col("achievement_id") == 3).select("sr", "playcount", "score_id").rows()
    assert evidence == [(3.2, 1, 2)]  # osu-skill-pass-3 at score 2, the first play (same time: lowest id first)


def stats(*rows) -> pl.DataFrame:
    return pl.DataFrame(list(rows), orient="row", schema=STATS_SCHEMA)


def test_stats_only_candidates_leave_out_granted_held_and_restricted():
    grants = pl.DataFrame({"user_id": [1], "achievement_id": [73], "mode": [0]})
    held = pl.DataFrame({"user_id": [2], "achievement_id": [73], "mode": [7]},
                        schema={"user_id": pl.Int64, "achievement_id": pl.Int64, "mode": pl.Int64})
    got = stats_only(
        stats(
            (1, 0, 15_000, 0, 3),  # 73 granted from the stored plays; 74 (15000) only from user_stats
            (2, 8, 5_000, 0, 3),  # 73 in mode 8 held through a legacy mode 7 row
            (3, 0, 4_999, 0, 3),  # below every threshold
            (4, 1, 10, 30_000, 3),  # taiko hits 30000
            (5, 3, 0, 40_000, 2),  # restricted
            (6, 7, 60_000, 0, 3),  # legacy mode 7 stats: not a full mode
            (7, 4, 5_000, 30_000, 3),  # relax osu!: plays count (mode_vn 0), taiko hits do not
        ),
        grants, held, CATALOGUE,
    )
    assert got.select("user_id", "achievement_id", "mode").rows() == [(1, 74, 0), (4, 77, 1), (7, 73, 4)]


def test_unsupported_grants_name_the_first_failing_check():
    scores = frame(
        score(id=1, mods=HR, full_combo=True),  # osu! HR FC
        score(id=2, completed=1, mods=HD),  # failed
        score(id=3, userid=11, mods=HD),
        score(id=4, source="scores_relax", mods=HD | 128),
        score(id=4, mods=HD, time=1_500_000_100),  # same id in `scores`
    )
    grant = {"mode": 0, "created_at": 1_500_000_000, "playcount": 1, "total_hits": 100}
    grants = pl.DataFrame([
        {"user_id": 10, "achievement_id": 5, "score_id": 1, "sr": 5.0, **grant},  # supported
        {"user_id": 10, "achievement_id": 5, "score_id": 1, "sr": 4.99, **grant},  # band 4, not 5
        {"user_id": 10, "achievement_id": 15, "score_id": 1, "sr": 5.0, **grant},  # FC band 5: supported
        {"user_id": 10, "achievement_id": 91, "score_id": 1, "sr": None, **grant},  # no HD
        {"user_id": 10, "achievement_id": 91, "score_id": 2, "sr": None, **grant},  # failed
        {"user_id": 10, "achievement_id": 91, "score_id": 3, "sr": None, **grant},  # another user's
        {"user_id": 10, "achievement_id": 91, "score_id": 4, "sr": None, **grant},  # `scores` row 4: time differs
        {"user_id": 10, "achievement_id": 91, "score_id": 4, "sr": None, **grant, "mode": 4},  # relax row 4
        {"user_id": 10, "achievement_id": 91, "score_id": 99, "sr": None, **grant},
    ])
    bad = unsupported_grants(grants, scores, CATALOGUE)
    assert sorted(bad.select("achievement_id", "score_id", "sr", "reason").rows(), key=str) == sorted([
        (5, 1, 4.99, "condition_not_met"), (91, 1, None, "condition_not_met"), (91, 2, None, "not_eligible"),
        (91, 3, None, "other_user"), (91, 4, None, "time_differs"), (91, 99, None, "no_score"),
    ], key=str)
    # recomputed star ratings replace the recorded ones
    rerated = unsupported_grants(grants.head(2), scores, CATALOGUE,
                                 pl.DataFrame({"beatmap_md5": [MD5], "mode_vn": [0], "mods": [HR], "sr": [5.0]}))
    assert rerated.height == 0
