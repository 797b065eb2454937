"""What the live server computes from a score's counts, and the live rules the condition grammar cannot say.

Mirrors osuAkatsuki/score-service at SCORE_SERVICE_COMMIT (master of 2026-07-02; score_utils.py last
changed in 806b7a9 (2024-07-17), the achievement modules in 5ad5436 (2026-01-18), score_sub.py in
38fa388 (2026-04-16)):

    app/utils/score_utils.py       calculate_accuracy -> `accuracy_expr`, calculate_grade -> `grade_expr`
    app/api/score_sub.py           `score.acc = calculate_accuracy(...)` from the submitted counts, per
                                   vanilla mode, before any achievement is checked
    app/achievements/hush_hush.py  jackpot (file all-secret-jackpot) -> RULES["jackpot"];
                                   consolation_prize (file all-secret-consolation) -> RULES["consolation"]

Each expression reads columns of a prepared shard (conditions.evaluate.prepare_scores): the counts as
stored (`300_count`, `100_count`, `50_count`, `katus_count`, `gekis_count`, `misses_count`, Int64),
`mode_vn` Int64, `mods` Int64, `score` Int64, `passed` Boolean and, for the grade, `acc` Float64.
A rule is a Boolean expression named "met" that is never null: a null input means no grant.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

SCORE_SERVICE_COMMIT = "2ae09bdaf872d49cf6ebe494140942d3a007766d"
"""The osuAkatsuki/score-service commit whose achievement rules the catalogue mirrors."""

COUNT_COLUMNS = ("300_count", "100_count", "50_count", "katus_count", "gekis_count", "misses_count")
SILVER_MODS = 8 | 1024 | 1048576  # HD | FL | FI (1049608): silver grades (SH, XH)


def _count(name: str) -> pl.Expr:
    return pl.col(name).cast(pl.Int64)


def _as_float(expr: pl.Expr) -> pl.Expr:
    return expr.cast(pl.Float64)


def accuracy_expr() -> pl.Expr:
    """The accuracy the live server gives a submitted score: Float64 percent (0-100 for non-negative
    counts), named "acc"; 0.0 when the mode's judgement total is 0; null for a null count or a
    mode_vn outside 0-3 (the live function raises there).

    Mirrors calculate_accuracy in score-service `app/utils/score_utils.py` @ SCORE_SERVICE_COMMIT,
    with the same float64 operations in the same order, so that every row gets the same double:
    osu!   100 * (300*n300 + 100*n100 + 50*n50) / (300 * (n300+n100+n50+miss))
    taiko  100 * (0.5*n100 + n300) / (n300+n100+miss)
    catch  100 * (n300+n100+n50) / (n300+n100+n50+katu+miss)        (katus are missed droplets)
    mania  100 * (50*n50 + 100*n100 + 200*katu + 300*(n300+geki)) / (300 * (all six counts))
    The stored `accuracy` column is not used: it is what the client or an older server wrote.
    """
    n300, n100, n50, katu, geki, miss = (_count(c) for c in COUNT_COLUMNS)
    f300, f100, f50, fkatu = (_as_float(c) for c in (n300, n100, n50, katu))
    totals = {
        0: n300 + n100 + n50 + miss,
        1: n300 + n100 + miss,
        2: n300 + n100 + n50 + katu + miss,
        3: n300 + n100 + n50 + geki + katu + miss,
    }
    values = {
        0: (100.0 * (((f300 * 300.0) + (f100 * 100.0)) + (f50 * 50.0))) / (_as_float(totals[0]) * 300.0),
        1: (100.0 * ((f100 * 0.5) + f300)) / _as_float(totals[1]),
        2: (100.0 * _as_float(n300 + n100 + n50)) / _as_float(totals[2]),
        3: (100.0 * ((((f50 * 50.0) + (f100 * 100.0)) + (fkatu * 200.0)) + (_as_float(n300 + geki) * 300.0)))
        / (_as_float(totals[3]) * 300.0),
    }
    mode_vn = pl.col("mode_vn")
    acc = pl.lit(None, pl.Float64)
    for mode in (3, 2, 1, 0):
        acc = pl.when(mode_vn == mode).then(pl.when(totals[mode] == 0).then(0.0).otherwise(values[mode])).otherwise(acc)
    return acc.alias("acc")


def grade_expr() -> pl.Expr:
    """The grade the live server gives a score: String, one of XH X SH S A B C D, named "grade"; null
    where the live function raises (osu!/taiko with no judgements: ZeroDivisionError; mode_vn outside
    0-3) or an input is null.

    Mirrors calculate_grade in score-service `app/utils/score_utils.py` @ SCORE_SERVICE_COMMIT:
    osu! and taiko by the share of 300s over n300+n100+n50+miss (X: all 300s; S: > 90% with at most
    1% 50s and no miss; A: > 80% and no miss, or > 90%; B: > 70% and no miss, or > 80%; C: > 60%;
    else D); catch by accuracy (X 100, S > 98, A > 94, B > 90, C > 85, else D); mania likewise
    (X 100, S > 95, A > 90, B > 80, C > 70). HD, FL or FI turn X and S silver (XH, SH). Reads the
    counts, `mods`, `mode_vn` and `acc` (the live accuracy, `accuracy_expr`).
    """
    n300, n100, n50, _, _, miss = (_count(c) for c in COUNT_COLUMNS)
    objects = n300 + n100 + n50 + miss
    ratio300 = _as_float(n300) / _as_float(objects)
    ratio50 = _as_float(n50) / _as_float(objects)
    silver = (pl.col("mods").cast(pl.Int64) & SILVER_MODS) > 0
    x = pl.when(silver).then(pl.lit("XH")).otherwise(pl.lit("X"))
    s = pl.when(silver).then(pl.lit("SH")).otherwise(pl.lit("S"))
    no_miss = miss == 0
    by_ratio = (
        pl.when(objects == 0).then(pl.lit(None, pl.String))
        .when(ratio300 == 1).then(x)
        .when((ratio300 > 0.9) & (ratio50 <= 0.01) & no_miss).then(s)
        .when(((ratio300 > 0.8) & no_miss) | (ratio300 > 0.9)).then(pl.lit("A"))
        .when(((ratio300 > 0.7) & no_miss) | (ratio300 > 0.8)).then(pl.lit("B"))
        .when(ratio300 > 0.6).then(pl.lit("C"))
        .otherwise(pl.lit("D"))
    )

    def by_accuracy(s_above: float, a_above: float, b_above: float, c_above: float) -> pl.Expr:
        acc = pl.col("acc")
        return (
            pl.when(acc == 100).then(x)
            .when(acc > s_above).then(s)
            .when(acc > a_above).then(pl.lit("A"))
            .when(acc > b_above).then(pl.lit("B"))
            .when(acc > c_above).then(pl.lit("C"))
            .otherwise(pl.lit("D"))
        )

    mode_vn = pl.col("mode_vn")
    return (
        pl.when(mode_vn.is_in([0, 1])).then(by_ratio)
        .when(mode_vn == 2).then(by_accuracy(98, 94, 90, 85))
        .when(mode_vn == 3).then(by_accuracy(95, 90, 80, 70))
        .otherwise(pl.lit(None, pl.String))
        .alias("grade")
    )


@dataclass(frozen=True, slots=True)
class Rule:
    """A live rule written in polars because the condition grammar cannot say it.

    `expr` evaluates on a prepared shard to one Boolean per row named "met", never null (null input:
    False); `columns` are the prepared columns it reads; `text` says the live function in words;
    `source` names the file and function it mirrors.
    """

    name: str
    expr: pl.Expr
    columns: frozenset[str]
    text: str
    source: str


def _jackpot() -> pl.Expr:
    # str(score): a negative score starts with "-", so it never counts as one digit repeated
    digits = pl.col("score").cast(pl.Int64).cast(pl.String)
    repeated = (digits.str.len_chars() >= 2) & (digits.str.strip_chars_start(digits.str.slice(0, 1)) == "")
    return (pl.col("passed") & repeated).fill_null(False).alias("met")


def _consolation() -> pl.Expr:
    return (
        (pl.col("passed") & (pl.col("score").cast(pl.Int64) >= 100_000) & (grade_expr() == "D"))
        .fill_null(False)
        .alias("met")
    )


RULES: dict[str, Rule] = {
    "jackpot": Rule(
        "jackpot",
        _jackpot(),
        frozenset({"passed", "score"}),
        "a passed play whose score, written in decimal, is one digit repeated, at least two digits (7,777,777)",
        "app/achievements/hush_hush.py jackpot",
    ),
    "consolation": Rule(
        "consolation",
        _consolation(),
        frozenset({"passed", "score", "mods", "mode_vn", "acc", *COUNT_COLUMNS}),
        "a passed play scoring at least 100,000 whose live grade (calculate_grade) is D",
        "app/achievements/hush_hush.py consolation_prize",
    ),
}
"""Rules by name (the `rule` column of conditions/achievements.csv)."""
