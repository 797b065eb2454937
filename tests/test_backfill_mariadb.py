"""End-to-end acceptance test of `sr-backfill run` on a real MariaDB, against the job's contract.

The scenario (tests/scenario.py) is hand-made: a few users, a few dozen scores plus 4998 failed plays,
real .osu maps from data/maps in a temporary `{beatmap_id}.osu` store, and an explicit, hand-derived
list of the 54 grants the job must make. Nothing here re-implements the job's logic: expectations are
literals with the reason each one is expected.

Contract under test: `jobs.cli.main(["run", "--db", URL, "--osu-dir", DIR, "--apply"?, "--out"?,
"--report", FILE, "--workers", N]) -> 0`.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path


import pytest
import sqlalchemy as sa

from tests import scenario as sc

from sr.rounding import round_live



PRODUCTION_TABLES = (
    "scores", "scores_relax", "scores_ap", "beatmaps", "users", "users_achievements",
    "less_achievements", "user_stats",
)


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------


def run_job(url: str, osu_dir: Path, work: Path, *, apply: bool, out: Path | None = None,
            tag: str = "run", read: str | None = None, extra: tuple[str, ...] = ()) -> dict:
    from jobs.cli import main  # imported here so the scenario tests run before the job exists

    report_path = work / f"report-{tag}.json"
    argv = ["run", "--db", url, "--osu-dir", str(osu_dir), "--report", str(report_path), "--workers", "2"]
    if apply:
        argv.append("--apply")
    if out is not None:
        argv += ["--out", str(out)]
    if read is not None:
        argv += ["--read", read]
    argv += list(extra)
    rc = main(argv)
    assert rc == 0, f"main({argv}) returned {rc}"
    assert report_path.exists(), "--report file was not written"
    return json.loads(report_path.read_text())


def grant_diff(expected: list[sc.Grant], actual: set[tuple], *, with_score_id: bool) -> str:
    """A readable description of missing and extra grants ('' when equal)."""
    key = (lambda g: g.out_row) if with_score_id else (lambda g: g.row)
    exp = {key(g): g for g in expected}
    missing = [exp[k] for k in sorted(set(exp) - actual)]
    extra = sorted(actual - set(exp))
    if not missing and not extra:
        return ""
    # rows with the right (user, achievement, mode) but another created_at/score_id
    by_uam_actual = {r[:3]: r for r in extra}
    lines = [f"{len(missing)} expected grant(s) missing, {len(extra)} unexpected:"]
    for g in missing:
        near = by_uam_actual.get(g.row[:3])
        hint = f"   (job has {near})" if near else ""
        lines.append(f"  MISSING {key(g)}  {g.why}{hint}")
    for r in extra:
        lines.append(f"  EXTRA   {r}")
    return "\n".join(lines)


def table_fingerprint(url: str) -> dict:
    """Table names and per-table checksum + row count of the whole database."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            tables = sorted(r[0] for r in conn.exec_driver_sql("SHOW TABLES"))
            out = {}
            for t in tables:
                checksum = conn.exec_driver_sql(f"CHECKSUM TABLE `{t}`").fetchone()[1]
                count = conn.exec_driver_sql(f"SELECT COUNT(*) FROM `{t}`").scalar()
                out[t] = (count, checksum)
    finally:
        engine.dispose()
    return out


def expected_rows_read() -> dict[str, int]:
    counts = Counter(s.table for s in sc.all_scores())
    return {"scores": counts["scores"], "scores_relax": counts["scores_relax"], "scores_ap": counts["scores_ap"]}


def report_problems(report: dict, *, expected_total: int) -> list[str]:
    """Compare the report with the hand counts; return a list of readable problems."""
    problems: list[str] = []

    def check(path: str, got, want):
        if got != want:
            problems.append(f"report[{path}] = {got!r}, expected {want!r}")

    def get(d: dict, *path):
        cur = d
        for p in path:
            if not isinstance(cur, dict) or p not in cur:
                problems.append(f"report lacks {'.'.join(path)}")
                return None
            cur = cur[p]
        return cur

    rows_read = get(report, "rows_read")
    if rows_read is not None:
        for table, n in expected_rows_read().items():
            check(f"rows_read.{table}", rows_read.get(table), n)
    in_scope = get(report, "rows_in_scope")
    if in_scope is not None:
        for table, n in expected_rows_read().items():
            check(f"rows_in_scope.{table}", in_scope.get(table), n)
    check("eligible_scores", get(report, "eligible_scores"), sc.EXPECTED_ELIGIBLE)
    inel = get(report, "ineligible")
    if inel is not None:
        for reason, n in sc.EXPECTED_INELIGIBLE.items():
            check(f"ineligible.{reason}", inel.get(reason), n)
    errs = get(report, "sr_errors")
    if errs is not None:
        for reason, n in sc.EXPECTED_SR_ERRORS.items():
            check(f"sr_errors.{reason}", errs.get(reason), n)
    keys, calcs = get(report, "sr_keys"), get(report, "sr_calculations")
    if errs is not None and keys is not None and calcs is not None:
        # every unique key is either rated once or counted under one error reason
        check("sr_calculations + sum(sr_errors)", calcs + sum(errs.values()), keys)
        if not keys:
            problems.append("report[sr_keys] = 0: the scenario has rated keys")
    get(report, "seconds")
    get(report, "grants_written")
    check("grants.total", get(report, "grants", "total"), expected_total)
    return problems


def expected_breakdowns(grants: list[sc.Grant]) -> tuple[dict[str, int], dict[str, int]]:
    by_family = Counter(sc.family_of(g.achievement_id) for g in grants)
    by_mode = Counter(str(g.mode) for g in grants)
    return dict(by_family), dict(by_mode)


def nonzero(d: dict | None) -> dict:
    return {str(k): v for k, v in (d or {}).items() if v}


def read_out(path: Path) -> set[tuple[int, int, int, int, int]]:
    import polars as pl

    df = pl.read_parquet(path) if path.suffix == ".parquet" else pl.read_csv(path)
    cols = ["user_id", "achievement_id", "mode", "created_at", "score_id"]
    missing = [c for c in cols if c not in df.columns]
    assert not missing, f"--out lacks columns {missing}; has {df.columns}"
    rows = [tuple(int(v) for v in r) for r in df.select(cols).iter_rows()]
    assert len(rows) == len(set(rows)), "--out holds duplicate rows"
    return set(rows)


# ----------------------------------------------------------------------------------------------
# the scenario's own checks (no job needed)
# ----------------------------------------------------------------------------------------------

KEY_MODS = (0x1F << 15) | (1 << 24) | (1 << 26) | (1 << 27) | (1 << 28)


def _live_vectors() -> dict[tuple[str, int, int], float]:
    out = {}
    with (sc.DATA / "reference" / "live_sr_vectors.csv").open(newline="") as fh:
        for r in csv.DictReader(fh):
            out[(r["map"], int(r["mode"]), int(r["mods"]))] = float(r["stars_live_2dp"])
    return out


def test_scenario_sr_values_match_reference(tmp_path):
    """The hand-copied `sr=` of every score equals live_sr_vectors.csv, and rosu-pp-py 2.0.1 agrees
    wherever it reproduces live (vanilla, converts, relax taiko/catch/mania)."""
    import rosu_pp_py as rosu

    vectors = _live_vectors()
    modes = {0: rosu.GameMode.Osu, 1: rosu.GameMode.Taiko, 2: rosu.GameMode.Catch, 3: rosu.GameMode.Mania}
    osu_dir = tmp_path / "osu"
    sc.build_osu_dir(osu_dir)
    checked = 0
    for s in sc.SCORES:
        if s.sr is None:
            continue
        spec = sc.MAP_SPECS[s.map]
        vec_key = (f"maps/{spec.src}", s.play_mode, s.mods & ~KEY_MODS)
        assert vec_key in vectors, f"score {s.table}/{s.id}: no live vector for {vec_key}"
        assert vectors[vec_key] == s.sr, f"score {s.table}/{s.id}: live {vectors[vec_key]} != hand {s.sr}"
        relax_osu = s.play_mode == 0 and s.mods & sc.RX
        if not relax_osu and not s.mods & sc.AP:
            bm = rosu.Beatmap(path=str(osu_dir / f"{spec.beatmap_id}.osu"))  # the store's file (BOM one too)
            bm.convert(modes[s.play_mode], None)
            stars = rosu.Difficulty(mods=s.mods, lazer=False).calculate(bm).stars
            assert round_live(stars) == s.sr, f"score {s.table}/{s.id}: rosu 2.0.1 {stars} -> {round_live(stars)}"
        checked += 1
    assert checked == 21


def test_expected_grants_are_well_formed():
    grants = sc.EXPECTED_GRANTS
    assert len(grants) == 54
    assert len({g.row[:3] for g in grants}) == len(grants), "one grant per (user, achievement, mode)"
    held = {(h.user_id, h.achievement_id, h.mode) for h in sc.EXISTING_ACHIEVEMENTS}
    assert not held & {g.row[:3] for g in grants}
    by_id = {(s.table, s.id): s for s in sc.SCORES}
    table_of_mode = {0: "scores", 1: "scores", 2: "scores", 3: "scores", 4: "scores_relax",
                     5: "scores_relax", 6: "scores_relax", 8: "scores_ap"}
    for g in grants:
        s = by_id[(table_of_mode[g.mode], g.score_id)]
        assert s.user == g.user_id and s.time == g.created_at and s.completed in (2, 3), g
    ids = [s.id for s in sc.all_scores() if s.table == "scores"]
    assert len(ids) == len(set(ids))


@pytest.mark.db
def test_production_ddl_and_scenario_load(fresh_mariadb_url, tmp_path):
    url = fresh_mariadb_url
    sc.setup_database(url, tmp_path / "osu")
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            info = {
                r[0]: (r[1], r[2])
                for r in conn.exec_driver_sql(
                    "SELECT table_name, engine, table_collation FROM information_schema.tables "
                    "WHERE table_schema = DATABASE()"
                )
            }
            assert set(info) == set(PRODUCTION_TABLES)
            for t, (eng, coll) in info.items():
                assert eng == "InnoDB" and coll.startswith("latin1"), (t, eng, coll)
            uniq = conn.exec_driver_sql(
                "SELECT GROUP_CONCAT(column_name ORDER BY seq_in_index) FROM information_schema.statistics "
                "WHERE table_schema = DATABASE() AND table_name = 'users_achievements' AND non_unique = 0 "
                "AND index_name <> 'PRIMARY' GROUP BY index_name"
            ).fetchall()
            assert [r[0] for r in uniq] == ["user_id,achievement_id,mode"]
            ap_id = conn.exec_driver_sql(
                "SELECT data_type FROM information_schema.columns WHERE table_schema = DATABASE() "
                "AND table_name = 'scores_ap' AND column_name = 'id'"
            ).scalar()
            assert ap_id == "bigint"
            cols = {
                r[0] for r in conn.exec_driver_sql(
                    "SELECT column_name FROM information_schema.columns WHERE table_schema = DATABASE() "
                    "AND table_name = 'less_achievements'"
                )
            }
            assert cols == {"id", "file", "name", "desc", "hidden", "mode"}
            for table, n in expected_rows_read().items():
                assert conn.exec_driver_sql(f"SELECT COUNT(*) FROM {table}").scalar() == n
            # production's id offsets: autopilot ids above 2^62 (not exact in a float64), relax from 500M
            assert conn.exec_driver_sql("SELECT MIN(id), MAX(id) FROM scores_ap").one() == (sc.AP_ID, sc.AP_ID + 1)
            assert sc.AP_ID > 2**62 and float(sc.AP_ID) != sc.AP_ID
            assert conn.exec_driver_sql("SELECT MIN(id) FROM scores_relax").scalar() == sc.RX_ID + 201
            assert conn.exec_driver_sql("SELECT COUNT(*) FROM less_achievements").scalar() == 128  # live today
            assert conn.exec_driver_sql("SELECT COUNT(*) FROM beatmaps").scalar() == len(sc.MAP_SPECS)
    finally:
        engine.dispose()
    assert sc.users_achievements_rows(url) == [
        (h.id, h.user_id, h.achievement_id, h.mode, h.created_at) for h in sc.EXISTING_ACHIEVEMENTS
    ]
    # the store: missing map absent, the others present
    osu = tmp_path / "osu"
    assert not (osu / "990001.osu").exists()
    assert (osu / "990004.osu").stat().st_size == 0
    assert len(list(osu.glob("*.osu"))) == len(sc.MAP_SPECS) - 1


# ----------------------------------------------------------------------------------------------
# the job
# ----------------------------------------------------------------------------------------------


def breakdown_problems(report: dict) -> list[str]:
    problems = []
    fam, by_mode = expected_breakdowns(sc.EXPECTED_GRANTS)
    grants = report.get("grants") or {}
    if nonzero(grants.get("by_family")) != fam:
        problems.append(f"grants.by_family = {grants.get('by_family')}, expected (non-zero) {fam}")
    if nonzero(grants.get("by_full_mode")) != by_mode:
        problems.append(f"grants.by_full_mode = {grants.get('by_full_mode')}, expected (non-zero) {by_mode}")
    return problems


@pytest.mark.db
@pytest.mark.ray
def test_apply_grants_exactly_the_expected_rows_then_rerun_is_a_no_op(fresh_mariadb_url, tmp_path, ray_session):
    """Every check runs; all problems are reported together at the end."""
    url = fresh_mariadb_url
    osu_dir = tmp_path / "osu"
    sc.setup_database(url, osu_dir)
    existing = [(h.id, h.user_id, h.achievement_id, h.mode, h.created_at) for h in sc.EXISTING_ACHIEVEMENTS]
    before = table_fingerprint(url)
    problems: list[str] = []

    report = run_job(url, osu_dir, tmp_path, apply=True, tag="apply1")

    rows = sc.users_achievements_rows(url)
    existing_ids = {r[0] for r in existing}
    # existing rows untouched (same id, user, achievement, mode, created_at)
    if [r for r in rows if r[0] in existing_ids] != existing:
        problems.append(f"existing users_achievements rows changed: {[r for r in rows if r[0] in existing_ids]}")
    new = [r[1:] for r in rows if r[0] not in existing_ids]
    if len(new) != len(set(new)):
        problems.append("duplicate new rows in users_achievements")
    diff = grant_diff(sc.EXPECTED_GRANTS, set(new), with_score_id=False)
    if diff:
        problems.append("users_achievements after run --apply: " + diff)

    problems += report_problems(report, expected_total=len(sc.EXPECTED_GRANTS))
    problems += breakdown_problems(report)
    if report.get("grants_written") != len(sc.EXPECTED_GRANTS):
        problems.append(f"grants_written = {report.get('grants_written')}, expected {len(sc.EXPECTED_GRANTS)}")

    # only users_achievements may change (the job may add its own bookkeeping tables)
    after = table_fingerprint(url)
    for t in PRODUCTION_TABLES:
        if t != "users_achievements" and after[t] != before[t]:
            problems.append(f"run --apply changed table {t}")

    # a second run inserts nothing
    report2 = run_job(url, osu_dir, tmp_path, apply=True, tag="apply2")
    if sc.users_achievements_rows(url) != rows:
        problems.append("second run --apply changed users_achievements")
    if report2.get("grants_written") != 0:
        problems.append(f"second run: grants_written = {report2.get('grants_written')}, expected 0")
    if (report2.get("grants") or {}).get("total") != 0:
        problems.append(f"second run: grants.total = {(report2.get('grants') or {}).get('total')}, "
                        "expected 0 (everything is held now)")
    after2 = table_fingerprint(url)
    for t in PRODUCTION_TABLES:
        if after2[t] != after[t]:
            problems.append(f"second run --apply changed table {t}")

    assert not problems, "\n".join(problems)


@pytest.mark.db
@pytest.mark.ray
# the scan case cuts the 5,047 rows into many shards, id ranges and waves, so rows of one user arrive
# from several ranges and tables
@pytest.mark.parametrize(
    ("suffix", "read", "extra"),
    [(".parquet", "scan", ("--shard-rows", "100", "--scan-rows", "700", "--wave-rows", "1500")), (".csv", "users", ())],
)
def test_dry_run_writes_the_expected_grants_to_out_and_nothing_to_the_database(
    fresh_mariadb_url, tmp_path, ray_session, suffix, read, extra
):
    """Both read paths (a table scan handing rows to the shards, and per-shard reads by user) give
    exactly the expected grants."""
    url = fresh_mariadb_url
    osu_dir = tmp_path / "osu"
    sc.setup_database(url, osu_dir)
    before = table_fingerprint(url)
    out = tmp_path / f"grants{suffix}"
    problems: list[str] = []

    report = run_job(url, osu_dir, tmp_path, apply=False, out=out, tag="dry", read=read, extra=extra)
    assert report["read_mode"] == read
    if read == "scan":
        assert report["shards"] > 1 and report["waves"] > 1 and report["scan_ranges"] > 5, report

    if table_fingerprint(url) != before:
        problems.append("a run without --apply wrote to the database")
    assert out.exists(), "--out was not written"
    diff = grant_diff(sc.EXPECTED_GRANTS, read_out(out), with_score_id=True)
    if diff:
        problems.append(f"--out ({suffix}) of a dry run: " + diff)
    problems += report_problems(report, expected_total=len(sc.EXPECTED_GRANTS))
    problems += breakdown_problems(report)
    assert not problems, "\n".join(problems)


@pytest.mark.db
@pytest.mark.ray
def test_scan_reads_autopilot_ids_above_2_62_and_grants_exactly_the_scenarios_autopilot_grants(
    fresh_mariadb_url, tmp_path, ray_session
):
    """scores_ap ids start at AP_OFFSET (6148914691236517204, not exact in a float64): a table scan cut
    into one-row id ranges reads both autopilot rows and makes exactly the scenario's mode 8 grants."""
    url = fresh_mariadb_url
    osu_dir = tmp_path / "osu"
    sc.setup_database(url, osu_dir)
    out = tmp_path / "grants.csv"
    report = run_job(url, osu_dir, tmp_path, apply=False, out=out, tag="ap", read="scan",
                     extra=("--tables", "scores_ap", "--scan-rows", "1"))
    assert report["read_mode"] == "scan" and report["scan_ranges"] == 2
    assert report["rows_read"]["scores_ap"] == report["rows_in_scope"]["scores_ap"] == 2
    expected = [g for g in sc.EXPECTED_GRANTS if g.mode == 8]
    assert expected and all(g.score_id >= sc.AP_ID > 2**62 for g in expected)
    assert grant_diff(expected, read_out(out), with_score_id=True) == ""


@pytest.mark.db
@pytest.mark.ray
def test_the_same_run_with_other_worker_counts_writes_the_same_files_byte_for_byte(
    fresh_mariadb_url, tmp_path, ray_session
):
    """--out is sorted by (user_id, mode, achievement_id) and the error samples are the smallest score
    ids per reason, whatever order the shards finish in: 1 and 2 workers, many small shards."""
    url = fresh_mariadb_url
    osu_dir = tmp_path / "osu"
    sc.setup_database(url, osu_dir)
    files = {}
    for workers in ("1", "2"):
        run = tmp_path / f"w{workers}"
        run.mkdir()
        for suffix in (".csv", ".parquet"):
            report = run_job(url, osu_dir, run, apply=False, out=run / f"grants{suffix}", tag=suffix[1:],
                             extra=("--workers", workers, "--shard-rows", "5", "--run-id", f"same-{suffix[1:]}"))
            assert report["shards"] >= 10 and report["workers"] == int(workers)
        files[workers] = {name: (run / name).read_bytes() for name in ("grants.csv", "grants.parquet", "report-csv.errors.csv")}
    assert files["1"] == files["2"]
    lines = [line.replace('"', "").split(",") for line in files["1"]["grants.csv"].decode().splitlines()]
    column = {name: index for index, name in enumerate(lines[0])}
    ordered = [(int(r[column["user_id"]]), int(r[column["mode"]]), int(r[column["achievement_id"]])) for r in lines[1:]]
    assert ordered == sorted(ordered) and len(ordered) == len(sc.EXPECTED_GRANTS)
    samples = [line.replace('"', "").split(",") for line in files["1"]["report-csv.errors.csv"].decode().splitlines()[1:]]
    by_reason: dict[str, list[int]] = {}
    for sample in samples:
        by_reason.setdefault(sample[1], []).append(int(sample[4]))
    assert by_reason and all(ids == sorted(ids) for ids in by_reason.values())
