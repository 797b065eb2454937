"""Rolling back beside the live server: the achievements users earned live while a run's rows blocked them.

Once a run's row (user, achievement, full mode) exists, the live server never grants that achievement in
that mode again (it skips what the user holds; DOMAIN.md §4). If the row is rolled back later, a user
who meanwhile played a score that would have earned it live is left without it. So a rollback:

* finds the **live-affected** rows among those it deletes: the user has a passed, eligible score (the
  live rules of conditions.evaluate.prepare_scores) in the row's full mode at or after the moment the
  target run started (`live_scores_since`, one streaming pass over the score tables);
* with `--regrant-live`, grants them again as the live server would have (`live_grants`): the
  achievement's condition evaluated (conditions.evaluate.evaluate) on the user's scores since the run
  started, with running play-count and hit totals over all of the user's rows and star ratings from
  the .osu store, dated by the earliest qualifying score; a row whose condition no such score meets is
  not granted. The grants are written by `regrant_live` as a run of their own (command
  "regrant-live", ledger source "live_regrant"), so they can be verified and rolled back in turn.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field

import polars as pl
import sqlalchemy as sa

from cluster import control, db, ledger
from cluster.errors import ConfigError, RunStateError
from cluster.schema import SCORE_TABLES, TABLES_BY_NAME
from cluster.workers import narrow_sr_keys
from conditions.catalogue import load_catalogue
from conditions.evaluate import HELD_SCHEMA, prepare_scores, sr_keys
from conditions.evaluate import evaluate as evaluate_scores
from sr.engines import DEFAULT_ENGINE, engine_named
from sr.keys import SR_KEY_SCHEMA
from sr.rate import ParsedMaps, rate_keys
from sr.store import OsuStore

COMMAND = "regrant-live"
SOURCE = "live_regrant"
LIVE_SCORES_SCHEMA = {"user_id": pl.Int64, "mode": pl.Int64, "live_scores": pl.Int64, "first_live_score_at": pl.Int64}
KEY = ["user_id", "achievement_id", "mode"]
USERS_PER_READ = 500
SAMPLES = 20


def live_scores_since(engine: sa.Engine, since: int, tables: Iterable[str] = SCORE_TABLES,
                      batch_rows: int = 100_000) -> pl.DataFrame:
    """Per (user_id, full mode): the passed, eligible scores set at or after `since` (unix seconds) and the
    time of the first (LIVE_SCORES_SCHEMA). The score tables are read once, streamed `batch_rows` at a
    time; eligibility is conditions.evaluate.prepare_scores's (passed, ranked beatmap, unrestricted
    user, a full mode the table can hold)."""
    parts = []
    for name in tables:
        query = db.select_shard_scores(name, -(2**62), 2**62).where(TABLES_BY_NAME[name].c.time >= since)
        for batch in db.stream_batches(engine, query, db.SCORE_ARROW_SCHEMA, batch_rows):
            prepared = prepare_scores(pl.from_arrow(batch), since, None).filter(pl.col("eligible"))
            parts.append(prepared.group_by(["userid", "full_mode"]).agg(
                live_scores=pl.len().cast(pl.Int64), first_live_score_at=pl.col("time").min()))
    if not parts:
        return pl.DataFrame(schema=LIVE_SCORES_SCHEMA)
    return (
        pl.concat(parts)
        .group_by(["userid", "full_mode"])
        .agg(pl.col("live_scores").sum(), pl.col("first_live_score_at").min())
        .rename({"userid": "user_id", "full_mode": "mode"})
        .cast(LIVE_SCORES_SCHEMA)
        .select(list(LIVE_SCORES_SCHEMA))
    )


def live_affected(rows: list[dict], live: pl.DataFrame) -> list[dict]:
    """The rows (users_achievements rows a rollback deletes: ua_id, user_id, achievement_id, mode,
    created_at) whose user has live scores in the row's mode (`live`, from `live_scores_since`), each
    with its live_scores and first_live_score_at."""
    if not rows or live.height == 0:
        return []
    frame = pl.DataFrame([{c: int(r[c]) for c in ledger.LEDGER_ROW} for r in rows],
                         schema={c: pl.Int64 for c in ledger.LEDGER_ROW})
    return frame.join(live, on=["user_id", "mode"], how="inner").sort("ua_id").to_dicts()


class LiveRater:
    """Star ratings for the live scores' keys: the run's engine on the .osu store, each key rated once."""

    def __init__(self, osu_location: str | None, engine_name: str = DEFAULT_ENGINE) -> None:
        self.engine_name = engine_name
        self.engine = engine_named(engine_name)
        self.store = OsuStore(osu_location) if osu_location else None
        self.maps = ParsedMaps()
        self.rated: dict[tuple[str, int, int], tuple] = {}

    def ratings(self, keys: pl.DataFrame) -> pl.DataFrame:
        """(beatmap_md5, mode_vn, mods, sr, skip_reason) of `keys` (conditions.evaluate.sr_keys)."""
        columns = keys.select("beatmap_md5", "mode_vn", "mods").iter_rows()
        wanted = list(columns)
        new = [i for i, key in enumerate(wanted) if key not in self.rated]
        if new and self.store is None:
            raise ConfigError("granting live achievements again needs star ratings: give --osu-dir (the run "
                              "recorded no .osu store)")
        if new:
            table = keys.select("beatmap_md5", "beatmap_id", "mode_vn", "mods").to_arrow().cast(SR_KEY_SCHEMA).take(new)
            for r in rate_keys(table, self.store, self.engine, self.maps).table.to_pylist():
                self.rated[(r["beatmap_md5"], r["mode_vn"], r["mods"])] = (r["sr"], r["skip_reason"])
        return pl.DataFrame(
            [(*key, *self.rated[key]) for key in wanted],
            schema={"beatmap_md5": pl.String, "mode_vn": pl.Int64, "mods": pl.Int64, "sr": pl.Float64,
                    "skip_reason": pl.String},
            orient="row",
        )


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def live_grants(engine: sa.Engine, affected: list[dict], since: int, rater: LiveRater,
                tables: Iterable[str] = SCORE_TABLES, users_per_read: int = USERS_PER_READ) -> list[dict]:
    """The grants the live server would have made for the `affected` keys (user_id, achievement_id,
    mode) had they been free since `since`: the catalogue conditions evaluated on each user's eligible
    scores at or after `since`, with running totals over all of the user's rows, the earliest
    qualifying score's time as created_at. Returns grant dicts (user_id, achievement_id, mode,
    created_at, score_id, sr, playcount, total_hits), one per affected key some live score meets."""
    if not affected:
        return []
    catalogue = load_catalogue()
    wanted = pl.DataFrame([{k: int(r[k]) for k in KEY} for r in affected], schema={k: pl.Int64 for k in KEY}).unique()
    ids = sorted(set(wanted.get_column("achievement_id").to_list()) & set(catalogue.by_id))
    if not ids:
        return []
    selected = catalogue.select(tuple(ids))
    nobody_holds = pl.DataFrame(schema=HELD_SCHEMA)  # the keys are free once the rollback deletes them
    out = []
    for users in _chunks(sorted(set(wanted.get_column("user_id").to_list())), users_per_read):
        scores, _ = db.read_shard_scores(engine, users[0], users[-1], tuple(tables), user_ids=users)
        prepared = narrow_sr_keys(prepare_scores(pl.from_arrow(scores), since, None), rater.engine_name)
        result = evaluate_scores(prepared, rater.ratings(sr_keys(prepared)), nobody_holds, selected)
        out += result.grants.join(wanted, on=KEY, how="semi").to_dicts()
    return sorted(out, key=lambda g: (g["user_id"], g["mode"], g["achievement_id"]))


@dataclass(slots=True)
class RegrantSummary:
    """What granting live achievements again found and did.

    affected: keys freed by the rollback whose user has live scores in the mode since the run started;
    met: of those, keys whose condition a live score meets (would be / were granted); not_met: the
    rest; inserted / already_present: what the applied regrant wrote (present: the key was taken
    meanwhile, e.g. by the live server); samples: up to 20 grants (key, created_at, score_id).
    """

    run_id: str | None
    applied: bool
    since: int
    affected: int = 0
    met: int = 0
    not_met: int = 0
    inserted: int = 0
    already_present: int = 0
    samples: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def deleted_by_rollbacks_of(engine: sa.Engine, target_run_id: str) -> list[dict]:
    """The users_achievements rows every rollback of `target_run_id` deleted (rollback_delete ledger rows)."""
    entry, runs = ledger.ledger, ledger.runs
    query = (
        sa.select(entry.c.ua_id, entry.c.user_id, entry.c.achievement_id, entry.c.mode, entry.c.created_at)
        .select_from(entry.join(runs, runs.c.run_id == entry.c.run_id))
        .where((runs.c.command == "rollback") & (runs.c.target_run_id == target_run_id)
               & (entry.c.action == "delete") & (entry.c.source == "rollback_delete"))
        .order_by(entry.c.ua_id)
    )
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(query).mappings()]


def regrant_live(
    engine: sa.Engine,
    affected: list[dict],
    since: int,
    rater: LiveRater,
    *,
    apply: bool,
    regrant_id: str | None = None,
    context: dict | None = None,
    batch_rows: int = 1000,
    retry: db.RetryPolicy = db.DEFAULT_RETRY,
    log: db.RetryLog | None = None,
    url: str | None = None,
    governance: control.Governance | None = None,
) -> tuple[RegrantSummary, list[dict]]:
    """Evaluate (`live_grants`) and, with `apply`, write the live grants of the `affected` keys as run
    `regrant_id` (a fresh id by default; command "regrant-live", ledger source "live_regrant", its
    settings `context`). With `governance` (cluster.control.Governance) the writes wait for a write
    governor's permits (cluster.control.governed, on `url` or the engine's). Returns the summary and the
    grants. Raises RunStateError for a taken id."""
    grants = live_grants(engine, affected, since, rater)
    summary = RegrantSummary(None, apply, since, affected=len({tuple(int(r[k]) for k in KEY) for r in affected}),
                             met=len(grants))
    summary.not_met = summary.affected - summary.met
    summary.samples = [{k: g[k] for k in (*KEY, "created_at", "score_id")} for g in grants[:SAMPLES]]
    if not apply:
        return summary, grants
    regrant_id = ledger.check_run_id(regrant_id) if regrant_id else ledger.new_run_id()
    summary.run_id = regrant_id
    stamp = ledger.now()
    ledger.create_run(engine, ledger.RunRecord(regrant_id, COMMAND, "running", stamp, stamp,
                                               {"since": since, "engine": rater.engine_name, **(context or {})},
                                               (context or {}).get("rollback_id")))
    with ledger.run_lock(engine, regrant_id), control.governed(engine, regrant_id, governance, url) as governor:
        try:
            rows = [{**g, "source": SOURCE} for g in grants]
            result = ledger.write_ledgered(engine, regrant_id, rows, source=SOURCE, batch_rows=batch_rows,
                                           retry=retry, log=log, url=url, governor=governor)
        except BaseException:
            ledger.update_run(engine, regrant_id, status="failed", summary=summary.to_dict())
            raise
        summary.inserted, summary.already_present = result.inserted, result.present
        ledger.update_run(engine, regrant_id, status="finished", summary=summary.to_dict())
    return summary, grants


def check_target(target: ledger.RunRecord) -> None:
    """Live grants are evaluated for rows a backfill run or a consolidation inserted; raise
    RunStateError for a rollback or a regrant target."""
    if target.command not in ("run", "consolidate-mode7"):
        raise RunStateError(target.run_id, f"a {target.command} run's rows are not granted again live")
