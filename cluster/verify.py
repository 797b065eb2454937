"""Validation after a run (DOMAIN.md §7): integrity checks, the headline figure and rarity.

`verify(engine, run_id=None)` reads users_achievements, the score tables and the tool's ledger and
returns a VerifyReport:

* duplicates per (user, achievement, mode) (the unique key exists since 2026-01-16 only);
* legacy mode 7 rows left (cluster.consolidation);
* ledger rows missing from the table: rows a run inserted that are no longer there, unless a
  recorded rollback or consolidation of the tool removed them;
* grants the data cannot support (conditions.support): each recorded score grant (a backfill's, or a
  live grant made again after a rollback: cluster.regrant) is checked against its qualifying score,
  read again; with an .osu store the star ratings are recomputed too;
* counts per achievement before and after the run (`run_id`), "before" being the table minus the
  rows the run inserted plus the rows it deleted;
* the headline figure of the backfill analysis: users with passed scores but zero achievements, per
  full mode, before and after the run;
* rarity: for each achievement and each full mode it can be earned in, the share of users with passed
  scores in that mode who hold it.

"Users with passed scores" in a full mode are unrestricted users (`privileges & 1`) with at least one
score with `completed` 2 or 3 in that full mode (scores: play_mode; scores_relax: play_mode + 4;
scores_ap: 8). A legacy mode 7 row counts as mode 8. Percentages are in percent (0-100).

Memory: nothing is held per row of users_achievements or of the ledger. Counts, duplicates, ledger rows
missing and the run's changes are aggregated in SQL; users_achievements is streamed in user order,
`batch_rows` rows at a time, into per-(user, mode) and per-(achievement, mode) tallies; the recorded
grants are checked a page of `batch_rows` at a time. What stays in memory grows with users x modes
(users with passed scores, (user, mode) pairs holding something), not with rows.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
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
from sr.rate import ParsedMaps, rate_keys
from sr.store import OsuStore

FULL_MODES = (0, 1, 2, 3, 4, 5, 6, 8)
MODE_NAMES = {0: "osu!", 1: "taiko", 2: "catch", 3: "mania", 4: "osu! relax", 5: "taiko relax", 6: "catch relax",
              8: "osu! autopilot"}
# Full modes an achievement can be earned in, by the prefix of its `file` (its condition's mode_vn).
MODES_OF_PREFIX = {"osu": (0, 4, 8), "taiko": (1, 5), "fruits": (2, 6), "mania": (3,), "all": FULL_MODES}
SAMPLES = 20
BATCH_ROWS = 100_000  # rows of users_achievements (or grants) held at once
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


def _frames(engine: sa.Engine, query: sa.Select, schema: dict, batch_rows: int) -> Iterator[pl.DataFrame]:
    """The rows of `query` as frames of at most `batch_rows` rows, streamed (a server-side cursor)."""
    with engine.connect() as conn:
        result = conn.execution_options(stream_results=True, max_row_buffer=batch_rows).execute(query)
        for rows in result.partitions(batch_rows):
            yield _frame(rows, schema)


def _mode8(column: sa.ColumnElement) -> sa.ColumnElement:
    """A full mode with the legacy autopilot mode 7 counted as 8, in SQL."""
    return sa.case((column == 7, 8), else_=column)


def _as_mode8(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(mode=pl.when(pl.col("mode") == 7).then(8).otherwise(pl.col("mode")))


def read_passers(engine: sa.Engine, tables=SCORE_TABLES, batch_rows: int = BATCH_ROWS) -> pl.DataFrame:
    """Unrestricted users with a passed score, per full mode: unique (user_id Int64, mode Int64)."""
    parts = []
    for name in tables:
        table = TABLES_BY_NAME[name]
        query = (
            sa.select(table.c.userid, table.c.play_mode)
            .select_from(table.join(users, users.c.id == table.c.userid))
            .where(table.c.completed.in_((2, 3)) & (users.c.privileges.op("&")(1) == 1))
            .distinct()
        )
        mode = {"scores": pl.col("play_mode"), "scores_relax": pl.col("play_mode") + 4,
                "scores_ap": pl.lit(8, pl.Int64)}[name]
        valid = {"scores": (0, 1, 2, 3), "scores_relax": (0, 1, 2), "scores_ap": (0,)}[name]
        for frame in _frames(engine, query, {"user_id": pl.Int64, "play_mode": pl.Int64}, batch_rows):
            parts.append(frame.filter(pl.col("play_mode").is_in(valid)).select("user_id", mode.alias("mode")))
    return pl.concat(parts).unique().sort(["mode", "user_id"]) if parts else pl.DataFrame(
        schema={"user_id": pl.Int64, "mode": pl.Int64})


def _equal_row(entry: sa.Table, row: sa.Table) -> sa.ColumnElement:
    """The ledger entry names this users_achievements row, with the values it recorded."""
    return ((row.c.id == entry.c.ua_id) & (row.c.user_id == entry.c.user_id)
            & (row.c.achievement_id == entry.c.achievement_id) & (row.c.mode == entry.c.mode)
            & (row.c.created_at == entry.c.created_at))


def _entries(run_id: str | None, action: str) -> sa.ColumnElement:
    condition = ledger.ledger.c.action == action
    return condition & (ledger.ledger.c.run_id == run_id) if run_id is not None else condition


@dataclass(slots=True)
class _Changes:
    """A run's changes still in effect, counted in SQL: rows it inserted that are present with the values
    it recorded, rows it deleted that are absent; by achievement and by (user_id, mode 8) pair."""

    inserted: Counter = field(default_factory=Counter)
    deleted: Counter = field(default_factory=Counter)
    pairs: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(
        schema={"user_id": pl.Int64, "mode": pl.Int64, "inserted": pl.Int64, "deleted": pl.Int64}))


def _run_changes(engine: sa.Engine, run_id: str | None) -> _Changes:
    changes = _Changes()
    if run_id is None:
        return changes
    entry, row = ledger.ledger, users_achievements
    present = sa.exists().where(_equal_row(entry, row))
    inserted = _entries(run_id, "insert") & present
    deleted = _entries(run_id, "delete") & ~present
    pair_columns = (entry.c.user_id, _mode8(entry.c.mode).label("mode"))
    frames = []
    with engine.connect() as conn:
        for name, condition in (("inserted", inserted), ("deleted", deleted)):
            query = sa.select(entry.c.achievement_id, sa.func.count()).where(condition).group_by(entry.c.achievement_id)
            getattr(changes, name).update({int(a): int(n) for a, n in conn.execute(query)})
            query = sa.select(*pair_columns, sa.func.count()).where(condition).group_by(*pair_columns)
            frames.append(_frame(conn.execute(query).all(), {"user_id": pl.Int64, "mode": pl.Int64, name: pl.Int64}))
    changes.pairs = frames[0].join(frames[1], on=["user_id", "mode"], how="full", coalesce=True).fill_null(0)
    return changes


def _ledger_missing(engine: sa.Engine, run_id: str | None) -> dict:
    """Rows a run inserted that are gone from the table (or hold other values) and that no tool run
    deleted: counted in SQL, the first SAMPLES by id."""
    entry, row = ledger.ledger, users_achievements
    removed = ledger.ledger.alias("removed")
    missing = (
        sa.select(entry.c.ua_id.label("id"), entry.c.user_id, entry.c.achievement_id, entry.c.mode, entry.c.created_at)
        .where(_entries(run_id, "insert") & ~sa.exists().where(_equal_row(entry, row))
               & ~sa.exists().where((removed.c.action == "delete") & (removed.c.ua_id == entry.c.ua_id)))
        .distinct()
        .subquery()
    )
    with engine.connect() as conn:
        count = conn.execute(sa.select(sa.func.count()).select_from(missing)).scalar_one()
        samples = conn.execute(sa.select(missing).order_by(missing.c.id).limit(SAMPLES)).mappings().all()
    return {"rows": int(count), "samples": [{k: int(v) for k, v in r.items()} for r in samples]}


def _duplicates(engine: sa.Engine) -> dict:
    """(user, achievement, mode) groups with more than one row: counted in SQL, samples by user and mode."""
    table = users_achievements
    keys = (table.c.user_id, table.c.achievement_id, table.c.mode)
    groups = sa.select(*keys, sa.func.count().label("rows")).group_by(*keys).having(sa.func.count() > 1).subquery()
    with engine.connect() as conn:
        count, extra = conn.execute(
            sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(groups.c.rows - 1), 0)).select_from(groups)
        ).one()
        samples = conn.execute(
            sa.select(groups).order_by(groups.c.user_id, groups.c.mode, groups.c.achievement_id).limit(SAMPLES)
        ).mappings().all()
    return {"groups": int(count), "extra_rows": int(extra), "samples": [{k: int(v) for k, v in r.items()} for r in samples]}


def _count_by_achievement(engine: sa.Engine) -> tuple[Counter, int]:
    """Rows per achievement id, and the legacy mode 7 rows, counted in SQL."""
    table = users_achievements
    with engine.connect() as conn:
        counts = Counter({int(a): int(n) for a, n in conn.execute(
            sa.select(table.c.achievement_id, sa.func.count()).group_by(table.c.achievement_id))})
        mode7 = conn.execute(sa.select(sa.func.count()).where(table.c.mode == 7)).scalar_one()
    return counts, int(mode7)


@dataclass(slots=True)
class _Holders:
    """What the stream of users_achievements adds up: holders per (achievement, mode 8) among the users
    with passed scores in that mode, and per full mode the users with passed scores holding something
    after and before the run."""

    rarity: Counter = field(default_factory=Counter)
    after: Counter = field(default_factory=Counter)
    before: Counter = field(default_factory=Counter)


def _hold(engine: sa.Engine, passers: pl.DataFrame, changes: _Changes, batch_rows: int) -> _Holders:
    """Stream users_achievements in user order, `batch_rows` rows at a time (a user's rows never split
    across batches, so each (user, achievement, mode) is counted once), and tally `_Holders`."""
    table = users_achievements
    query = sa.select(table.c.user_id, table.c.achievement_id, table.c.mode).order_by(table.c.user_id)
    schema = {"user_id": pl.Int64, "achievement_id": pl.Int64, "mode": pl.Int64}
    holders = _Holders()
    seen_pairs = []  # (user_id, mode) pairs holding a row now: for pairs the run emptied entirely

    def tally(rows: pl.DataFrame) -> None:
        if rows.height == 0:
            return
        rows = _as_mode8(rows)
        held = rows.unique().join(passers, on=["user_id", "mode"], how="semi")
        holders.rarity.update({(a, m): n for a, m, n in held.group_by(["achievement_id", "mode"]).len().iter_rows()})
        pairs = rows.group_by(["user_id", "mode"]).len("after")
        seen_pairs.append(pairs.select("user_id", "mode"))
        among = pairs.join(passers, on=["user_id", "mode"], how="semi")
        holders.after.update(dict(among.group_by("mode").len().iter_rows()))
        before = (among.join(changes.pairs, on=["user_id", "mode"], how="left")
                  .fill_null(0).filter(pl.col("after") - pl.col("inserted") + pl.col("deleted") > 0))
        holders.before.update(dict(before.group_by("mode").len().iter_rows()))

    carry = pl.DataFrame(schema=schema)
    for frame in _frames(engine, query, schema, batch_rows):
        frame = pl.concat([carry, frame])
        last = frame.get_column("user_id")[-1]
        carry = frame.filter(pl.col("user_id") == last)
        tally(frame.filter(pl.col("user_id") != last))
    tally(carry)
    # pairs with no row now that held rows the run deleted
    emptied = (changes.pairs.filter(pl.col("deleted") > 0)
               .join(pl.concat(seen_pairs) if seen_pairs else pl.DataFrame(schema={"user_id": pl.Int64, "mode": pl.Int64}),
                     on=["user_id", "mode"], how="anti")
               .join(passers, on=["user_id", "mode"], how="semi"))
    holders.before.update(dict(emptied.group_by("mode").len().iter_rows()))
    return holders


def rarity(passers: pl.DataFrame, holders: Counter, catalogue: Catalogue) -> list[dict]:
    """Earned percentage of each achievement among users with passed scores, per full mode it can be
    earned in (MODES_OF_PREFIX); modes without such users are left out. `holders`: users with passed
    scores holding it, by (achievement_id, mode). Covers every grantable achievement of `catalogue` and
    every other id held (file and name from conditions.catalogue.never_granted, "?" if unknown), in id
    order."""
    population = dict(passers.group_by("mode").len().iter_rows())
    entries = {a.id: a for a in catalogue.grantable}
    known = {**{n.id: n for n in never_granted(catalogue)}, **{a.id: a for a in catalogue}}
    for achievement_id in {a for a, _ in holders} - entries.keys():
        entries[achievement_id] = known.get(achievement_id) or SimpleNamespace(id=achievement_id, file="?", name="?")
    out = []
    for achievement in sorted(entries.values(), key=lambda a: a.id):
        for mode in MODES_OF_PREFIX.get(achievement.file.split("-")[0], FULL_MODES):
            if not population.get(mode):
                continue
            count = holders.get((achievement.id, mode), 0)
            out.append({"achievement_id": achievement.id, "file": achievement.file, "name": achievement.name,
                        "mode": mode, "holders": count, "users_with_passes": population[mode],
                        "percent": round(100.0 * count / population[mode], 3)})
    return out


GRANT_FRAME_SCHEMA = {"ledger_id": pl.Int64, "user_id": pl.Int64, "achievement_id": pl.Int64, "mode": pl.Int64,
                      "created_at": pl.Int64, "score_id": pl.Int64, "sr": pl.Float64, "playcount": pl.Int64,
                      "total_hits": pl.Int64}


def _score_grant_pages(engine: sa.Engine, run_id: str | None, batch_rows: int) -> Iterator[pl.DataFrame]:
    """The recorded score grants (with their evidence) still in the table as recorded, `batch_rows` at a
    time in ledger order (keyset pagination)."""
    entry, row = ledger.ledger, users_achievements
    last = 0
    while True:
        query = (
            sa.select(entry.c.id, entry.c.user_id, entry.c.achievement_id, entry.c.mode, entry.c.created_at,
                      entry.c.score_id, entry.c.sr, entry.c.playcount, entry.c.total_hits)
            .where(_entries(run_id, "insert") & entry.c.source.in_(("score", "live_regrant")) & (entry.c.id > last)
                   & sa.exists().where(_equal_row(entry, row)))
            .order_by(entry.c.id)
            .limit(batch_rows)
        )
        with engine.connect() as conn:
            page = _frame(conn.execute(query).all(), GRANT_FRAME_SCHEMA)
        if page.height == 0:
            return
        yield page
        last = int(page.get_column("ledger_id")[-1])


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


class _Rerater:
    """Star ratings recomputed from an .osu store, kept per key across pages of grants."""

    def __init__(self, osu_location: str, engine_name: str) -> None:
        self.store, self.engine, self.maps = OsuStore(osu_location), engine_named(engine_name), ParsedMaps()
        self.rated: dict[tuple[str, int, int], float | None] = {}

    def ratings(self, scores: pl.DataFrame) -> pl.DataFrame:
        """(beatmap_md5, mode_vn, mods, sr) of the keys of `scores` (full mods, as the grants were rated)."""
        prepared = scores.with_columns(mode_vn=pl.col("play_mode") % 4).filter(pl.col("beatmap_id").is_not_null())
        keys = prepared.select("beatmap_md5", "beatmap_id", "mode_vn", "mods").unique()
        new = [i for i, key in enumerate(keys.select("beatmap_md5", "mode_vn", "mods").iter_rows()) if key not in self.rated]
        if new:
            table = keys.to_arrow().cast(SR_KEY_SCHEMA).take(new)
            for r in rate_keys(table, self.store, self.engine, self.maps).table.to_pylist():
                self.rated[(r["beatmap_md5"], r["mode_vn"], r["mods"])] = r["sr"]
        rows = [(*key, self.rated[key]) for key in keys.select("beatmap_md5", "mode_vn", "mods").iter_rows()]
        return pl.DataFrame(rows, schema={"beatmap_md5": pl.String, "mode_vn": pl.Int64, "mods": pl.Int64,
                                          "sr": pl.Float64}, orient="row")


def _unsupported(engine: sa.Engine, run_id: str | None, catalogue: Catalogue, osu_location: str | None,
                 engine_name: str, batch_rows: int) -> dict:
    """Check every recorded score grant still in the table against its score, a page at a time."""
    rerater = _Rerater(osu_location, engine_name) if osu_location else None
    checked, by_reason, samples = 0, Counter(), pl.DataFrame()
    for page in _score_grant_pages(engine, run_id, batch_rows):
        grants = page.drop("ledger_id")
        scores = _read_scores_by_id(engine, grants)
        bad = unsupported_grants(grants, scores, catalogue, rerater.ratings(scores) if rerater else None)
        checked += grants.height
        by_reason.update(dict(bad.group_by("reason").len().iter_rows()))
        if bad.height:
            kept = pl.concat([samples, bad]) if samples.height else bad
            samples = kept.sort(["user_id", "mode", "achievement_id"]).head(SAMPLES)
    return {"checked": checked, "sr": "recomputed" if osu_location else "recorded",
            "unsupported": sum(by_reason.values()), "by_reason": dict(sorted(by_reason.items())),
            "samples": samples.to_dicts()}


def verify(
    engine: sa.Engine,
    run_id: str | None = None,
    *,
    osu_location: str | None = None,
    engine_name: str = DEFAULT_ENGINE,
    catalogue: Catalogue | None = None,
    batch_rows: int = BATCH_ROWS,
) -> VerifyReport:
    """Run every check and figure of the module docstring.

    `run_id` names the run whose before/after figures and ledger are examined (None: the ledgers of
    all runs, and no before/after). `osu_location` (an .osu store) makes the support check recompute
    the star ratings with engine `engine_name` instead of trusting the recorded ones. `batch_rows`:
    rows of users_achievements, or grants, held at once. Raises cluster.errors.RunStateError for an
    unknown run id.
    """
    from cluster.errors import RunStateError

    catalogue = catalogue or load_catalogue()
    report = VerifyReport(database=db.mask_url(engine.url), run_id=run_id)
    has_ledger = ledger.has_tables(engine)
    if run_id is not None and (not has_ledger or ledger.load_run(engine, run_id) is None):
        raise RunStateError(run_id, "no such run in this database")

    report.duplicates = _duplicates(engine)
    after_counts, report.mode7_rows = _count_by_achievement(engine)
    if has_ledger:
        report.ledger_missing = _ledger_missing(engine, run_id)
        report.unsupported = _unsupported(engine, run_id, catalogue, osu_location, engine_name, batch_rows)
    else:
        report.ledger_missing = {"rows": 0, "samples": []}
        report.unsupported = {"checked": 0, "sr": "recorded", "unsupported": 0, "by_reason": {}, "samples": []}

    changes = _run_changes(engine, run_id if has_ledger else None)
    files = {**{n.id: n.file for n in never_granted(catalogue)}, **{a.id: a.file for a in catalogue}}
    before_counts = {a: after_counts.get(a, 0) - changes.inserted.get(a, 0) + changes.deleted.get(a, 0)
                     for a in set(after_counts) | set(changes.deleted)}
    report.counts = [
        {"achievement_id": a, "file": files.get(a, "?"), "before": before_counts.get(a, 0),
         "after": after_counts.get(a, 0), "inserted": changes.inserted.get(a, 0), "deleted": changes.deleted.get(a, 0)}
        for a in sorted(set(after_counts) | set(before_counts) | set(files))
    ]

    passers = read_passers(engine, batch_rows=batch_rows)
    population = dict(passers.group_by("mode").len().iter_rows())
    holders = _hold(engine, passers, changes, batch_rows)
    report.zero_achievements = [
        {"mode": m, "name": MODE_NAMES[m], "users_with_passes": population.get(m, 0),
         "zero_before": population.get(m, 0) - holders.before.get(m, 0),
         "zero_after": population.get(m, 0) - holders.after.get(m, 0)}
        for m in FULL_MODES
    ]
    report.rarity = rarity(passers, holders.rarity, catalogue)

    if report.duplicates["groups"]:
        report.problems.append(f"{report.duplicates['groups']} duplicated (user, achievement, mode)")
    if report.ledger_missing["rows"]:
        report.problems.append(f"{report.ledger_missing['rows']} ledger rows missing from users_achievements")
    if report.unsupported["unsupported"]:
        report.problems.append(f"{report.unsupported['unsupported']} grants the data does not support")
    return report
