"""Validation after a run (DOMAIN.md §7): integrity checks, the headline figure and rarity.

`verify(engine, run_id=None)` reads users_achievements, the score tables and the tool's ledger and
returns a VerifyReport:

* duplicates per (user, achievement, mode) (the unique key exists since 2026-01-16 only);
* legacy mode 7 rows left (cluster.consolidation);
* ledger rows missing from the table: rows a run inserted that are no longer there, unless a
  recorded rollback or consolidation of the tool removed them;
* grants the data cannot support (conditions.support): each recorded score grant is checked against
  its qualifying score, read again; with an .osu store the star ratings are recomputed too;
* counts per achievement before and after the run (`run_id`), "before" being the table minus the
  rows the run inserted plus the rows it deleted;
* the headline figure of the backfill analysis: users with passed scores but zero achievements, per
  full mode, before and after the run;
* rarity: for each achievement and each full mode it can be earned in, the share of users with passed
  scores in that mode who hold it.

"Users with passed scores" in a full mode are unrestricted users (`privileges & 1`) with at least one
score with `completed` 2 or 3 in that full mode (scores: play_mode; scores_relax: play_mode + 4;
scores_ap: 8). A legacy mode 7 row counts as mode 8. Percentages are in percent (0-100).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from types import SimpleNamespace

import polars as pl
import pyarrow as pa
import sqlalchemy as sa

from cluster import db, ledger
from cluster.schema import SCORE_TABLES, TABLES_BY_NAME, users, users_achievements
from conditions.catalogue import Catalogue, load_catalogue, never_granted
from conditions.support import TABLE_OF_MODE, unsupported_grants
from sr.engines import DEFAULT_ENGINE, engine_named
from sr.keys import SR_KEY_SCHEMA
from sr.rate import rate_keys
from sr.store import OsuStore

FULL_MODES = (0, 1, 2, 3, 4, 5, 6, 8)
MODE_NAMES = {0: "osu!", 1: "taiko", 2: "catch", 3: "mania", 4: "osu! relax", 5: "taiko relax", 6: "catch relax",
              8: "osu! autopilot"}
# Full modes an achievement can be earned in, by the prefix of its `file` (its condition's mode_vn).
MODES_OF_PREFIX = {"osu": (0, 4, 8), "taiko": (1, 5), "fruits": (2, 6), "mania": (3,), "all": FULL_MODES}
SAMPLES = 20
ROWS_SCHEMA = {"id": pl.Int64, "user_id": pl.Int64, "achievement_id": pl.Int64, "mode": pl.Int64, "created_at": pl.Int64}


@dataclass(slots=True)
class VerifyReport:
    """The checks and figures of `verify` (see the module docstring); `problems` lists what failed
    (duplicates, ledger rows missing, unsupported grants), empty when all is well.

    counts:            [{achievement_id, file, before, after, inserted, deleted}] (before = after when
                       no run is named: the run's inserted/deleted are then 0)
    zero_achievements: [{mode, name, users_with_passes, zero_before, zero_after}]
    rarity:            [{achievement_id, file, name, mode, holders, users_with_passes, percent}]
    """

    database: str
    run_id: str | None
    duplicates: dict = field(default_factory=dict)
    mode7_rows: int = 0
    ledger_missing: dict = field(default_factory=dict)
    unsupported: dict = field(default_factory=dict)
    counts: list = field(default_factory=list)
    zero_achievements: list = field(default_factory=list)
    rarity: list = field(default_factory=list)
    problems: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def _frame(rows, schema: dict) -> pl.DataFrame:
    return pl.DataFrame([tuple(r) for r in rows], schema=schema, orient="row")


def read_achievement_rows(engine: sa.Engine) -> pl.DataFrame:
    """Every users_achievements row (id, user_id, achievement_id, mode, created_at) as a frame."""
    table = users_achievements
    with engine.connect() as conn:
        rows = conn.execute(sa.select(table.c.id, table.c.user_id, table.c.achievement_id, table.c.mode,
                                      table.c.created_at)).all()
    return _frame(rows, ROWS_SCHEMA)


def read_passers(engine: sa.Engine, tables=SCORE_TABLES) -> pl.DataFrame:
    """Unrestricted users with a passed score, per full mode: unique (user_id Int64, mode Int64)."""
    parts = []
    with engine.connect() as conn:
        for name in tables:
            table = TABLES_BY_NAME[name]
            query = (
                sa.select(table.c.userid, table.c.play_mode)
                .select_from(table.join(users, users.c.id == table.c.userid))
                .where(table.c.completed.in_((2, 3)) & (users.c.privileges.op("&")(1) == 1))
                .distinct()
            )
            frame = _frame(conn.execute(query).all(), {"user_id": pl.Int64, "play_mode": pl.Int64})
            mode = {"scores": pl.col("play_mode"), "scores_relax": pl.col("play_mode") + 4,
                    "scores_ap": pl.lit(8, pl.Int64)}[name]
            valid = {"scores": (0, 1, 2, 3), "scores_relax": (0, 1, 2), "scores_ap": (0,)}[name]
            parts.append(frame.filter(pl.col("play_mode").is_in(valid)).select("user_id", mode.alias("mode")))
    return pl.concat(parts).unique().sort(["mode", "user_id"]) if parts else pl.DataFrame(
        schema={"user_id": pl.Int64, "mode": pl.Int64})


def _as_mode8(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(mode=pl.when(pl.col("mode") == 7).then(8).otherwise(pl.col("mode")))


def zero_achievement_users(passers: pl.DataFrame, rows: pl.DataFrame) -> dict[int, int]:
    """Per full mode: users with passed scores (`passers`: user_id, mode) holding no achievement in
    that mode among `rows` (users_achievements rows; mode 7 counts as 8)."""
    holders = _as_mode8(rows).select("user_id", "mode").unique()
    zero = passers.join(holders, on=["user_id", "mode"], how="anti").group_by("mode").len()
    counts = dict(zero.iter_rows())
    return {mode: counts.get(mode, 0) for mode in FULL_MODES}


def rarity(passers: pl.DataFrame, rows: pl.DataFrame, catalogue: Catalogue) -> list[dict]:
    """Earned percentage of each achievement among users with passed scores, per full mode it can be
    earned in (MODES_OF_PREFIX); modes without such users are left out. Covers every grantable
    achievement of `catalogue` and every other id held in `rows` (file and name from
    conditions.catalogue.never_granted, "?" if unknown), in id order."""
    population = dict(passers.group_by("mode").len().iter_rows())
    holders = (
        _as_mode8(rows).select("user_id", "achievement_id", "mode").unique()
        .join(passers, on=["user_id", "mode"], how="semi")
        .group_by(["achievement_id", "mode"]).len()
    )
    held = {(a, m): n for a, m, n in holders.iter_rows()}
    entries = {a.id: a for a in catalogue.grantable}
    known = {**{n.id: n for n in never_granted(catalogue)}, **{a.id: a for a in catalogue}}
    for achievement_id in {a for a, _ in held} - entries.keys():
        entries[achievement_id] = known.get(achievement_id) or SimpleNamespace(id=achievement_id, file="?", name="?")
    out = []
    for achievement in sorted(entries.values(), key=lambda a: a.id):
        for mode in MODES_OF_PREFIX.get(achievement.file.split("-")[0], FULL_MODES):
            if not population.get(mode):
                continue
            count = held.get((achievement.id, mode), 0)
            out.append({"achievement_id": achievement.id, "file": achievement.file, "name": achievement.name,
                        "mode": mode, "holders": count, "users_with_passes": population[mode],
                        "percent": round(100.0 * count / population[mode], 3)})
    return out


LEDGER_FRAME_SCHEMA = {**ROWS_SCHEMA, "action": pl.String, "source": pl.String, "score_id": pl.Int64,
                       "sr": pl.Float64, "playcount": pl.Int64, "total_hits": pl.Int64}


def read_ledger_frame(engine: sa.Engine, run_id: str | None = None, action: str | None = None) -> pl.DataFrame:
    """Ledger rows of one run (None: all runs), optionally of one action, as LEDGER_FRAME_SCHEMA
    (`id` is the users_achievements id the row names)."""
    table = ledger.ledger
    query = sa.select(table.c.ua_id, table.c.user_id, table.c.achievement_id, table.c.mode, table.c.created_at,
                      table.c.action, table.c.source, table.c.score_id, table.c.sr, table.c.playcount,
                      table.c.total_hits)
    if run_id is not None:
        query = query.where(table.c.run_id == run_id)
    if action is not None:
        query = query.where(table.c.action == action)
    with engine.connect() as conn:
        return _frame(conn.execute(query).all(), LEDGER_FRAME_SCHEMA)


def _run_changes(engine: sa.Engine, run_id: str | None, rows: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(rows the run inserted that are present now, rows the run deleted that are absent now)."""
    keys = list(ROWS_SCHEMA)
    if run_id is None:
        return pl.DataFrame(schema=ROWS_SCHEMA), pl.DataFrame(schema=ROWS_SCHEMA)
    recorded = read_ledger_frame(engine, run_id)
    inserted = recorded.filter(pl.col("action") == "insert").select(keys).join(rows, on=keys, how="semi")
    deleted = recorded.filter(pl.col("action") == "delete").select(keys).join(rows, on=keys, how="anti")
    return inserted, deleted


def _ledger_missing(engine: sa.Engine, run_id: str | None, rows: pl.DataFrame) -> dict:
    """Rows a run inserted that are gone from the table and that no tool run deleted."""
    keys = list(ROWS_SCHEMA)
    inserted = read_ledger_frame(engine, run_id, "insert").select(keys).unique()
    removed_by_tool = read_ledger_frame(engine, None, "delete").select("id").unique()
    missing = (
        inserted.join(rows, on=keys, how="anti")
        .join(removed_by_tool, on="id", how="anti")
        .sort("id")
    )
    return {"rows": missing.height, "samples": missing.head(SAMPLES).to_dicts()}


def _score_grants(engine: sa.Engine, run_id: str | None, rows: pl.DataFrame) -> pl.DataFrame:
    """The recorded score grants (with their evidence) still in the table."""
    recorded = read_ledger_frame(engine, run_id, "insert").filter(pl.col("source") == "score")
    return recorded.join(rows, on=list(ROWS_SCHEMA), how="semi").drop("action", "source")


def _read_scores_by_id(engine: sa.Engine, grants: pl.DataFrame) -> pl.DataFrame:
    batches = []
    with engine.connect() as conn:
        for name in SCORE_TABLES:
            modes = [m for m, t in TABLE_OF_MODE.items() if t == name]
            ids = grants.filter(pl.col("mode").is_in(modes)).get_column("score_id").drop_nulls().unique().to_list()
            table = TABLES_BY_NAME[name]
            for start in range(0, len(ids), 1000):
                query = db.select_shard_scores(name, -(2**62), 2**62).where(table.c.id.in_(ids[start : start + 1000]))
                result = conn.execute(query).all()
                if result:
                    columns = list(zip(*result))
                    batches.append(pa.Table.from_arrays(
                        [pa.array(c, type=f.type) for c, f in zip(columns, db.SCORE_ARROW_SCHEMA)],
                        schema=db.SCORE_ARROW_SCHEMA))
    table = pa.concat_tables(batches) if batches else db.SCORE_ARROW_SCHEMA.empty_table()
    return pl.from_arrow(table)


def _recompute(scores: pl.DataFrame, osu_location: str, engine_name: str) -> pl.DataFrame:
    prepared = scores.with_columns(
        mode_vn=pl.col("play_mode") % 4,
    ).filter(pl.col("beatmap_id").is_not_null())
    keys = prepared.select("beatmap_md5", "beatmap_id", "mode_vn", "mods").unique()
    batch = rate_keys(keys.to_arrow().cast(SR_KEY_SCHEMA), OsuStore(osu_location), engine_named(engine_name))
    return pl.from_arrow(batch.table).select("beatmap_md5", pl.col("mode_vn").cast(pl.Int64), "mods", "sr")


def verify(
    engine: sa.Engine,
    run_id: str | None = None,
    *,
    osu_location: str | None = None,
    engine_name: str = DEFAULT_ENGINE,
    catalogue: Catalogue | None = None,
) -> VerifyReport:
    """Run every check and figure of the module docstring.

    `run_id` names the run whose before/after figures and ledger are examined (None: the ledgers of
    all runs, and no before/after). `osu_location` (an .osu store) makes the support check recompute
    the star ratings with engine `engine_name` instead of trusting the recorded ones. Raises
    cluster.errors.RunStateError for an unknown run id.
    """
    from cluster.errors import RunStateError

    catalogue = catalogue or load_catalogue()
    report = VerifyReport(database=db.mask_url(engine.url), run_id=run_id)
    has_ledger = ledger.has_tables(engine)
    if run_id is not None and (not has_ledger or ledger.load_run(engine, run_id) is None):
        raise RunStateError(run_id, "no such run in this database")
    rows = read_achievement_rows(engine)

    duplicates = (
        rows.group_by(["user_id", "achievement_id", "mode"]).len().filter(pl.col("len") > 1).sort(["user_id", "mode"])
    )
    report.duplicates = {"groups": duplicates.height, "extra_rows": int(duplicates.get_column("len").sum() - duplicates.height),
                         "samples": duplicates.head(SAMPLES).rename({"len": "rows"}).to_dicts()}
    report.mode7_rows = rows.filter(pl.col("mode") == 7).height

    if has_ledger:
        report.ledger_missing = _ledger_missing(engine, run_id, rows)
        grants = _score_grants(engine, run_id, rows)
        scores = _read_scores_by_id(engine, grants)
        ratings = _recompute(scores, osu_location, engine_name) if osu_location else None
        bad = unsupported_grants(grants, scores, catalogue, ratings)
        report.unsupported = {
            "checked": grants.height,
            "sr": "recomputed" if osu_location else "recorded",
            "unsupported": bad.height,
            "by_reason": dict(sorted(bad.group_by("reason").len().iter_rows())),
            "samples": bad.head(SAMPLES).to_dicts(),
        }
    else:
        report.ledger_missing = {"rows": 0, "samples": []}
        report.unsupported = {"checked": 0, "sr": "recorded", "unsupported": 0, "by_reason": {}, "samples": []}

    inserted, deleted = _run_changes(engine, run_id, rows)
    before = pl.concat([rows.join(inserted, on="id", how="anti"), deleted])
    after_counts = dict(rows.group_by("achievement_id").len().iter_rows())
    before_counts = dict(before.group_by("achievement_id").len().iter_rows())
    inserted_counts = dict(inserted.group_by("achievement_id").len().iter_rows())
    deleted_counts = dict(deleted.group_by("achievement_id").len().iter_rows())
    files = {**{n.id: n.file for n in never_granted(catalogue)}, **{a.id: a.file for a in catalogue}}
    report.counts = [
        {"achievement_id": a, "file": files.get(a, "?"), "before": before_counts.get(a, 0),
         "after": after_counts.get(a, 0), "inserted": inserted_counts.get(a, 0), "deleted": deleted_counts.get(a, 0)}
        for a in sorted(set(after_counts) | set(before_counts) | set(files))
    ]

    passers = read_passers(engine)
    population = dict(passers.group_by("mode").len().iter_rows())
    zero_before, zero_after = zero_achievement_users(passers, before), zero_achievement_users(passers, rows)
    report.zero_achievements = [
        {"mode": m, "name": MODE_NAMES[m], "users_with_passes": population.get(m, 0), "zero_before": zero_before[m],
         "zero_after": zero_after[m]}
        for m in FULL_MODES
    ]
    report.rarity = rarity(passers, rows, catalogue)

    if report.duplicates["groups"]:
        report.problems.append(f"{report.duplicates['groups']} duplicated (user, achievement, mode)")
    if report.ledger_missing["rows"]:
        report.problems.append(f"{report.ledger_missing['rows']} ledger rows missing from users_achievements")
    if report.unsupported["unsupported"]:
        report.problems.append(f"{report.unsupported['unsupported']} grants the data does not support")
    return report
