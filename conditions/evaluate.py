"""Evaluate the catalogue on one shard of scores: eligibility, running stats, earliest unlocks.

The pure core of the evaluate stage (no database, no Ray). It mirrors how the live server grants on
each submitted score (score-service `app/api/score_sub.py`, `app/usecases/score.py`,
`app/achievements/*.py`; DOMAIN.md §4):

* conditions are checked only for a passed score (`completed` 2 or 3) on a beatmap with a leaderboard
  (`beatmaps.ranked >= 2`) by an unrestricted user (`privileges & 1 != 0`);
* `stats.playcount` / `stats.total_hits` are the user's totals in that full mode *after* the score,
  so here they are running totals over all of the user's rows in the full mode, in time order (ties
  by score id): every row adds 1 play, and 300+100+50 (no 50 for catch) plus katus and gekis for
  taiko and mania;
* `score.acc` is the accuracy the live server computes from the counts at submission
  (conditions.rules.accuracy_expr), not the stored `accuracy` column;
* any qualifying score grants, and the grant carries the time of the earliest one (earliest unlock);
* an achievement the live server never grants (not `grantable`: its registered name is not its row's
  `file`, e.g. 120) is evaluated the same way but only counted (`Evaluation.would_grant`);
* an achievement the user already holds in that full mode is not granted again; a legacy mode 7 row
  (autopilot before 2024-04-21) counts as held for mode 8.

A shard must hold all rows of its users, so that the running totals and the earliest unlocks are final.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import polars as pl

from conditions.catalogue import FAMILIES, Catalogue
from conditions.rules import accuracy_expr

# Columns of a shard as read from the score tables joined to beatmaps and users.
SCORE_SCHEMA = pl.Schema(
    {
        "source": pl.String,  # "scores" | "scores_relax" | "scores_ap"
        "id": pl.Int64,
        "userid": pl.Int64,
        "beatmap_md5": pl.String,
        "mods": pl.Int64,
        "max_combo": pl.Int64,
        "full_combo": pl.Boolean,
        "300_count": pl.Int64,
        "100_count": pl.Int64,
        "50_count": pl.Int64,
        "katus_count": pl.Int64,
        "gekis_count": pl.Int64,
        "misses_count": pl.Int64,
        "score": pl.Int64,  # the play's score (points)
        "time": pl.Int64,  # unix seconds
        "play_mode": pl.Int64,
        "completed": pl.Int64,
        "beatmap_id": pl.Int64,  # null: no beatmaps row has this md5
        "ranked": pl.Int64,  # null likewise
        "privileges": pl.Int64,  # null: no users row
    }
)

# Ratings joined onto eligible scores: one row per SR key. An optional `skip_reason` String column
# (an sr.errors reason, null when rated) names why `sr` is null; without it a null sr counts as "unrated".
RATING_SCHEMA = pl.Schema({"beatmap_md5": pl.String, "mode_vn": pl.Int64, "mods": pl.Int64, "sr": pl.Float64})

# Achievements already held: users_achievements rows of the shard's users.
HELD_SCHEMA = pl.Schema({"user_id": pl.Int64, "achievement_id": pl.Int64, "mode": pl.Int64})

GRANT_SCHEMA = pl.Schema(
    {
        "user_id": pl.Int64,
        "achievement_id": pl.Int64,
        "mode": pl.Int64,  # full mode
        "created_at": pl.Int64,  # unix seconds: the time of the earliest qualifying score
        "score_id": pl.Int64,  # that score's id in its table
    }
)

# Evidence columns `evaluate` adds to each grant (after GRANT_SCHEMA's): the qualifying score's star
# rating (null when unknown) and the running totals the condition saw at that score.
GRANT_EVIDENCE_SCHEMA = pl.Schema({"sr": pl.Float64, "playcount": pl.Int64, "total_hits": pl.Int64})

INELIGIBLE_REASONS = ("invalid_mode", "not_passed", "restricted", "unknown_beatmap", "unranked", "outside_window")

# Skip reasons with sample score ids (Evaluation.skipped / skip_samples): the eligible scores whose
# star rating is unknown, by the sr.errors reason of their key ("unrated" when the ratings lack the
# key), plus the ineligible reasons that point at bad data rather than at the play itself.
SAMPLED_INELIGIBLE = ("unknown_beatmap", "invalid_mode")
SKIP_SAMPLE_SCHEMA = pl.Schema(
    {"reason": pl.String, "source": pl.String, "score_id": pl.Int64, "user_id": pl.Int64, "beatmap_md5": pl.String}
)

# user_stats rows for the stats fallback: current totals per (user, full mode), users.privileges.
STATS_SCHEMA = pl.Schema(
    {"user_id": pl.Int64, "mode": pl.Int64, "playcount": pl.Int64, "total_hits": pl.Int64, "privileges": pl.Int64}
)
STATS_ONLY_SCHEMA = pl.Schema(
    {"user_id": pl.Int64, "achievement_id": pl.Int64, "mode": pl.Int64, "playcount": pl.Int64, "total_hits": pl.Int64}
)
STAT_FAMILIES = ("playcount", "hits")
FULL_MODES = (0, 1, 2, 3, 4, 5, 6, 8)

LEGACY_AUTOPILOT_MODE = 7
AUTOPILOT_MODE = 8

# Full mode by table (DOMAIN.md §3): scores -> play_mode; scores_relax -> play_mode + 4; scores_ap -> 8.
_FULL_MODE = (
    pl.when((pl.col("source") == "scores") & pl.col("play_mode").is_between(0, 3))
    .then(pl.col("play_mode"))
    .when((pl.col("source") == "scores_relax") & pl.col("play_mode").is_between(0, 2))
    .then(pl.col("play_mode") + 4)
    .when((pl.col("source") == "scores_ap") & (pl.col("play_mode") == 0))
    .then(pl.lit(AUTOPILOT_MODE, pl.Int64))
    .otherwise(None)
)

_HITS = (
    pl.col("300_count")
    + pl.col("100_count")
    + pl.when(pl.col("mode_vn") == 2).then(0).otherwise(pl.col("50_count"))
    + pl.when(pl.col("mode_vn").is_in([1, 3])).then(pl.col("katus_count") + pl.col("gekis_count")).otherwise(0)
)


def prepare_scores(scores: pl.DataFrame, since: int | None = None, until: int | None = None) -> pl.DataFrame:
    """Add full mode, running stats and eligibility to a shard of scores.

    `scores` has SCORE_SCHEMA (extra columns are kept). Returns it sorted by (userid, full_mode, time,
    id) with: full_mode Int64 (null for a row whose play_mode its table cannot hold), mode_vn Int64,
    playcount Int64, total_hits Int64 (running totals in the full mode, this row included), passed
    Boolean, acc Float64 (the live accuracy in percent, conditions.rules.accuracy_expr; null when a
    count is null), ineligible String (null when eligible, else one of INELIGIBLE_REASONS, first match
    in that order), eligible Boolean, and sr_mods Int64: the mods of the score's SR key, the full mods
    here; a caller that knows which mods change its engine's rating narrows them (cluster.workers).

    `since` / `until` (unix seconds, inclusive / exclusive) restrict which scores may earn a grant:
    a score outside [since, until) that would otherwise be eligible is "outside_window". Every row
    still counts in the running totals, so the shard must hold all rows of its users regardless.
    """
    frame = scores.cast({name: dtype for name, dtype in SCORE_SCHEMA.items() if name in scores.columns})
    frame = frame.with_columns(full_mode=_FULL_MODE).with_columns(mode_vn=pl.col("full_mode") % 4)
    frame = frame.sort(["userid", "full_mode", "time", "id"], nulls_last=True)
    per_mode = ["userid", "full_mode"]
    frame = frame.with_columns(
        playcount=pl.when(pl.col("full_mode").is_not_null()).then(pl.int_range(1, pl.len() + 1).over(per_mode)),
        total_hits=pl.when(pl.col("full_mode").is_not_null()).then(_HITS.cum_sum().over(per_mode)),
        passed=pl.col("completed").is_in([2, 3]),
        acc=accuracy_expr(),
        ineligible=(
            pl.when(pl.col("full_mode").is_null())
            .then(pl.lit("invalid_mode"))
            .when(~pl.col("completed").is_in([2, 3]))
            .then(pl.lit("not_passed"))
            .when(pl.col("privileges").is_null() | ((pl.col("privileges") & 1) == 0))
            .then(pl.lit("restricted"))
            .when(pl.col("ranked").is_null())
            .then(pl.lit("unknown_beatmap"))
            .when(pl.col("ranked") < 2)
            .then(pl.lit("unranked"))
            .when(_outside(since, until))
            .then(pl.lit("outside_window"))
            .otherwise(None)
        ),
    )
    return frame.with_columns(eligible=pl.col("ineligible").is_null(), sr_mods=pl.col("mods"))


def _outside(since: int | None, until: int | None) -> pl.Expr:
    outside = pl.lit(False)
    if since is not None:
        outside = outside | (pl.col("time") < since)
    if until is not None:
        outside = outside | (pl.col("time") >= until)
    return outside


def sr_keys(prepared: pl.DataFrame) -> pl.DataFrame:
    """The unique SR keys of the eligible scores of a prepared shard.

    Returns columns beatmap_md5 String, beatmap_id Int64, mode_vn Int64, mods Int64 (the key's mods:
    the prepared `sr_mods`), one row per (beatmap_md5, mode_vn, mods), sorted.
    """
    return (
        prepared.filter(pl.col("eligible"))
        .select("beatmap_md5", "beatmap_id", "mode_vn", pl.col("sr_mods").alias("mods"))
        .unique(["beatmap_md5", "mode_vn", "mods"])
        .sort(["beatmap_md5", "mode_vn", "mods"])
    )


@dataclass(slots=True)
class Evaluation:
    """The outcome of evaluating one shard.

    grants:       GRANT_SCHEMA then GRANT_EVIDENCE_SCHEMA columns, one row per (user_id,
                  achievement_id, mode) not already held.
    eligible:     eligible scores; `ineligible` counts the others by reason.
    without_sr:   eligible scores whose star rating is unknown (their SR conditions are not met).
    already_held: qualifying (user, achievement, mode) left out because the user holds them.
    by_family / by_full_mode: grants counted by catalogue family and by full mode.
    would_grant:  achievement id -> (user, full mode) pairs an achievement the live server never grants
                  (not `grantable`, e.g. 120) would grant, not already held; never in `grants`.
    skipped:      scores by skip reason: the eligible scores without a star rating by the reason of
                  their key, and the SAMPLED_INELIGIBLE ones.
    skip_samples: SKIP_SAMPLE_SCHEMA, up to `samples_per_reason` rows per skip reason (lowest ids).
    """

    grants: pl.DataFrame
    eligible: int = 0
    ineligible: Counter = field(default_factory=Counter)
    without_sr: int = 0
    already_held: int = 0
    by_family: Counter = field(default_factory=Counter)
    by_full_mode: Counter = field(default_factory=Counter)
    skipped: Counter = field(default_factory=Counter)
    skip_samples: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=SKIP_SAMPLE_SCHEMA))
    would_grant: Counter = field(default_factory=Counter)


def evaluate(
    prepared: pl.DataFrame,
    ratings: pl.DataFrame,
    held: pl.DataFrame,
    catalogue: Catalogue,
    samples_per_reason: int = 5,
) -> Evaluation:
    """Evaluate every catalogue condition on the eligible scores of a prepared shard, in one pass.

    prepared: the output of `prepare_scores`.
    ratings:  RATING_SCHEMA (sr in stars, 2 dp, null when unknown; `mods` are the key's mods, matched
              to the prepared `sr_mods`), optionally with `skip_reason`; keys missing from it count
              as unknown ("unrated").
    held:     HELD_SCHEMA, the users_achievements rows of the shard's users (mode 7 counts as 8).
    Returns an Evaluation whose grants carry each (user, achievement, full mode)'s earliest unlock;
    the catalogue's achievements that are not `grantable` are only counted (`would_grant`).
    """
    ineligible = Counter(dict(prepared.get_column("ineligible").drop_nulls().value_counts().iter_rows()))
    rating_columns = {**RATING_SCHEMA, **({"skip_reason": pl.String} if "skip_reason" in ratings.columns else {})}
    rows = (
        prepared.filter(pl.col("eligible"))
        .join(
            ratings.select(list(rating_columns)).cast(rating_columns),
            left_on=["beatmap_md5", "mode_vn", "sr_mods"],
            right_on=["beatmap_md5", "mode_vn", "mods"],
            how="left",
        )
        .sort(["userid", "full_mode", "time", "id"])
    )
    without_sr = rows.get_column("sr").null_count()
    skipped, skip_samples = _skips(prepared, rows, samples_per_reason)

    firsts = rows.group_by(["userid", "full_mode"], maintain_order=True).agg(
        [
            pl.struct(created_at="time", score_id="id", sr="sr", playcount="playcount", total_hits="total_hits")
            .filter(a.expr)
            .first()
            .alias(str(a.id))
            for a in catalogue.achievements
        ]
    )
    qualified = (
        firsts.unpivot(index=["userid", "full_mode"], variable_name="achievement_id", value_name="first")
        .drop_nulls("first")
        .unnest("first")
        .select(
            pl.col("userid").alias("user_id"),
            pl.col("achievement_id").cast(pl.Int64),
            pl.col("full_mode").alias("mode"),
            "created_at",
            "score_id",
            *GRANT_EVIDENCE_SCHEMA,
        )
        .cast({**GRANT_SCHEMA, **GRANT_EVIDENCE_SCHEMA})
    )
    held_now = held.cast(dict(HELD_SCHEMA)).with_columns(
        mode=pl.when(pl.col("mode") == LEGACY_AUTOPILOT_MODE).then(AUTOPILOT_MODE).otherwise(pl.col("mode"))
    )
    new = qualified.join(held_now, on=["user_id", "achievement_id", "mode"], how="anti")
    never = [a.id for a in catalogue.achievements if not a.grantable]
    would_grant = Counter(dict(new.filter(pl.col("achievement_id").is_in(never)).get_column("achievement_id")
                               .value_counts().iter_rows()))
    grants = new.filter(~pl.col("achievement_id").is_in(never)).sort(["user_id", "mode", "achievement_id"])
    qualified = qualified.filter(~pl.col("achievement_id").is_in(never))

    family_of = {a.id: a.family for a in catalogue.achievements}
    by_family = Counter({family: 0 for family in FAMILIES})
    for achievement_id, count in grants.get_column("achievement_id").value_counts().iter_rows():
        by_family[family_of[achievement_id]] += count
    return Evaluation(
        grants=grants,
        eligible=rows.height,
        ineligible=ineligible,
        without_sr=without_sr,
        already_held=qualified.height - grants.height,
        by_family=by_family,
        by_full_mode=Counter(dict(grants.get_column("mode").value_counts().iter_rows())),
        skipped=skipped,
        skip_samples=skip_samples,
        would_grant=would_grant,
    )


def _skips(prepared: pl.DataFrame, rated: pl.DataFrame, per_reason: int) -> tuple[Counter, pl.DataFrame]:
    """Scores skipped for bad data, by reason, and up to `per_reason` samples of each (lowest ids)."""
    reason = pl.col("skip_reason") if "skip_reason" in rated.columns else pl.lit(None, pl.String)
    unrated = rated.filter(pl.col("sr").is_null()).with_columns(reason=reason.fill_null("unrated"))
    bad_rows = prepared.filter(pl.col("ineligible").is_in(SAMPLED_INELIGIBLE)).with_columns(reason=pl.col("ineligible"))
    columns = [
        pl.col("reason"), pl.col("source"), pl.col("id").alias("score_id"), pl.col("userid").alias("user_id"),
        pl.col("beatmap_md5"),
    ]
    skipped_rows = pl.concat([unrated.select(columns), bad_rows.select(columns)]).cast(dict(SKIP_SAMPLE_SCHEMA))
    counts = Counter(dict(skipped_rows.get_column("reason").value_counts().iter_rows()))
    samples = skipped_rows.sort(["reason", "score_id"]).group_by("reason", maintain_order=True).head(per_reason)
    return counts, samples.select(list(SKIP_SAMPLE_SCHEMA))


def stats_only(
    stats: pl.DataFrame, grants: pl.DataFrame, held: pl.DataFrame, catalogue: Catalogue
) -> pl.DataFrame:
    """Play-count and hit achievements a user's *current* totals meet but the stored plays never reach.

    Where older plays were not kept, `user_stats` (current totals, DOMAIN.md §2) can have crossed a
    threshold that the running totals of the stored plays (`prepare_scores`) never cross.
    stats:  STATS_SCHEMA, the user_stats rows of the shard's users (mode = full mode).
    grants: the shard's Evaluation.grants (from the stored plays); held: HELD_SCHEMA (mode 7 as 8).
    Returns STATS_ONLY_SCHEMA: one row per (user, achievement of the STAT_FAMILIES, full mode) whose
    condition holds on the current totals (score.passed true, no star rating) and that is neither
    granted from the stored plays nor held; restricted users and users without a users row are left
    out, as are modes outside FULL_MODES. Sorted by (user_id, mode, achievement_id).
    """
    chosen = [a for a in catalogue.achievements if a.family in STAT_FAMILIES and a.grantable]
    frame = (
        stats.cast(dict(STATS_SCHEMA))
        .filter(pl.col("mode").is_in(FULL_MODES) & ((pl.col("privileges") & 1) == 1))
        .with_columns(
            mode_vn=pl.col("mode") % 4,
            passed=pl.lit(True),
            sr=pl.lit(None, pl.Float64),
            mods=pl.lit(0, pl.Int64),
            max_combo=pl.lit(0, pl.Int64),
            full_combo=pl.lit(False),
        )
    )
    if not chosen or frame.height == 0:
        return pl.DataFrame(schema=STATS_ONLY_SCHEMA)
    met = (
        frame.with_columns([a.expr.alias(str(a.id)) for a in chosen])
        .unpivot(
            index=["user_id", "mode", "playcount", "total_hits"],
            on=[str(a.id) for a in chosen],
            variable_name="achievement_id",
            value_name="met",
        )
        .filter(pl.col("met"))
        .with_columns(pl.col("achievement_id").cast(pl.Int64))
    )
    held_now = held.cast(dict(HELD_SCHEMA)).with_columns(
        mode=pl.when(pl.col("mode") == LEGACY_AUTOPILOT_MODE).then(AUTOPILOT_MODE).otherwise(pl.col("mode"))
    )
    keys = ["user_id", "achievement_id", "mode"]
    return (
        met.join(grants.select(keys).cast(dict.fromkeys(keys, pl.Int64)), on=keys, how="anti")
        .join(held_now, on=keys, how="anti")
        .select(list(STATS_ONLY_SCHEMA))
        .cast(dict(STATS_ONLY_SCHEMA))
        .sort(["user_id", "mode", "achievement_id"])
    )
