"""Does the data support a recorded grant? The pure check behind `sr-backfill verify` (no I/O).

A backfill grant is recorded with its evidence (cluster.ledger): the qualifying score's id, its star
rating and the running totals the condition saw. The grant is supported when that score, read again
from its table, belongs to the user, has the grant's full mode, is eligible under the live rules
(conditions.evaluate.prepare_scores), was set at `created_at`, and meets the achievement's condition
with the recorded (or a recomputed) star rating and the recorded totals. A skill grant whose score's
star rating falls outside the band is therefore reported, and so is one whose score was deleted.
"""

from __future__ import annotations

import polars as pl

from conditions.catalogue import Catalogue
from conditions.evaluate import GRANT_EVIDENCE_SCHEMA, prepare_scores
from conditions.rules import COUNT_COLUMNS

CHECKED_GRANT_SCHEMA = pl.Schema(
    {
        "user_id": pl.Int64,
        "achievement_id": pl.Int64,
        "mode": pl.Int64,  # full mode
        "created_at": pl.Int64,  # unix seconds
        "score_id": pl.Int64,
        **GRANT_EVIDENCE_SCHEMA,  # sr (stars, 2 dp), playcount, total_hits
    }
)
UNSUPPORTED_REASONS = ("no_score", "other_user", "other_mode", "not_eligible", "time_differs", "condition_not_met")
TABLE_OF_MODE = {0: "scores", 1: "scores", 2: "scores", 3: "scores", 4: "scores_relax", 5: "scores_relax",
                 6: "scores_relax", 8: "scores_ap"}


def unsupported_grants(
    grants: pl.DataFrame, scores: pl.DataFrame, catalogue: Catalogue, ratings: pl.DataFrame | None = None
) -> pl.DataFrame:
    """The grants the data does not support, each with the first failing check.

    grants:  CHECKED_GRANT_SCHEMA (extra columns kept).
    scores:  conditions.evaluate.SCORE_SCHEMA rows holding the grants' scores (rows of the table of each
             grant's full mode, TABLE_OF_MODE; other rows are ignored).
    ratings: optional (beatmap_md5, mode_vn, mods, sr) recomputed star ratings; when given they replace
             the recorded `sr` (a key missing from them counts as unknown).
    Returns the unsupported grants with `reason` (one of UNSUPPORTED_REASONS, first match in that
    order) and `detail` (String), sorted by (user_id, mode, achievement_id). Grants of achievements
    outside `catalogue` are checked for everything but the condition.
    """
    prepared = prepare_scores(scores).select(
        pl.col("source"), pl.col("id").alias("score_id"), pl.col("userid").alias("score_user"),
        pl.col("full_mode").alias("score_mode"), pl.col("time").alias("score_time"), "ineligible", "beatmap_md5",
        "mode_vn", "mods", "max_combo", "full_combo", "passed", "score", "acc", *COUNT_COLUMNS,
    )
    frame = grants.cast(dict(CHECKED_GRANT_SCHEMA)).with_columns(
        source=pl.col("mode").replace_strict(TABLE_OF_MODE, default=None, return_dtype=pl.String)
    ).join(prepared, on=["source", "score_id"], how="left")
    if ratings is not None:
        frame = frame.drop("sr").join(
            ratings.select("beatmap_md5", "mode_vn", "mods", "sr").cast(
                {"beatmap_md5": pl.String, "mode_vn": pl.Int64, "mods": pl.Int64, "sr": pl.Float64}
            ),
            on=["beatmap_md5", "mode_vn", "mods"],
            how="left",
        )
    met = pl.lit(None, pl.Boolean)
    for achievement in catalogue.achievements:
        met = pl.when(pl.col("achievement_id") == achievement.id).then(achievement.expr).otherwise(met)
    frame = frame.with_columns(met=met)
    reason = (
        pl.when(pl.col("score_user").is_null())
        .then(pl.lit("no_score"))
        .when(pl.col("score_user") != pl.col("user_id"))
        .then(pl.lit("other_user"))
        .when(pl.col("score_mode").is_null() | (pl.col("score_mode") != pl.col("mode")))
        .then(pl.lit("other_mode"))
        .when(pl.col("ineligible").is_not_null())
        .then(pl.lit("not_eligible"))
        .when(pl.col("score_time") != pl.col("created_at"))
        .then(pl.lit("time_differs"))
        .when(pl.col("met").not_())
        .then(pl.lit("condition_not_met"))
        .otherwise(None)
    )
    detail = (
        pl.when(pl.col("reason") == "no_score")
        .then(pl.format("no {} row with id {}", pl.col("source"), pl.col("score_id")))
        .when(pl.col("reason") == "other_user")
        .then(pl.format("score belongs to user {}", pl.col("score_user")))
        .when(pl.col("reason") == "other_mode")
        .then(pl.format("score is full mode {}", pl.col("score_mode")))
        .when(pl.col("reason") == "not_eligible")
        .then(pl.col("ineligible"))
        .when(pl.col("reason") == "time_differs")
        .then(pl.format("score time {}", pl.col("score_time")))
        .otherwise(pl.format("sr {}, mods {}, playcount {}, total_hits {}", pl.col("sr"), pl.col("mods"),
                             pl.col("playcount"), pl.col("total_hits")))
    )
    return (
        frame.with_columns(reason=reason)
        .filter(pl.col("reason").is_not_null())
        .with_columns(detail=detail)
        .select(*CHECKED_GRANT_SCHEMA, "reason", "detail")
        .sort(["user_id", "mode", "achievement_id"])
    )
