"""Scope: tiers by users.latest_activity, user lists, reproducible samples, tables, achievement kinds and
the score-time window, on the acceptance scenario; tier-by-tier runs grant only what is missing; the
catalogue check stops a run whose less_achievements differs."""

from __future__ import annotations

import time

import polars as pl
import pytest

from cluster.scope import Scope, achievement_ids_for, sample_users, select_users, tier_of
from conditions.catalogue import load_catalogue
from jobs.backfill import parse_time
from tests import operations as op
from tests import scenario as sc

E, N, C, K, I, X, A, P, H, F, V, R, B = range(1001, 1014)
DAY = 86_400
ACTIVE, RECENT = (E, N), (C, K)  # set below; every other user's latest_activity is in 2017: inactive
T0 = sc.T0


def expected(users=None, modes=None, achievements=None, before=None) -> set[tuple]:
    """The scenario's hand-derived grants (with score ids) restricted by user, mode, id, time."""
    return {
        g.out_row for g in sc.EXPECTED_GRANTS
        if (users is None or g.user_id in users) and (modes is None or g.mode in modes)
        and (achievements is None or g.achievement_id in achievements) and (before is None or g.created_at < before)
    }


def out_rows(path) -> set[tuple]:
    frame = pl.read_parquet(path)
    return set(frame.select("user_id", "achievement_id", "mode", "created_at", "score_id").iter_rows())


@pytest.fixture(scope="module")
def scenario(mariadb_url, tmp_path_factory):
    osu_dir = tmp_path_factory.mktemp("scope") / "osu"
    sc.setup_database(mariadb_url, osu_dir)
    now = int(time.time())
    op.execute(
        mariadb_url,
        f"UPDATE users SET latest_activity = {now - DAY} WHERE id IN {ACTIVE}",
        f"UPDATE users SET latest_activity = {now - 100 * DAY} WHERE id IN {RECENT}",
    )
    return mariadb_url, osu_dir


def dry(scenario, tmp_path, tag, *extra) -> tuple[dict, set[tuple]]:
    url, osu_dir = scenario
    out = tmp_path / f"{tag}.parquet"
    code, report = op.run(url, osu_dir, tmp_path, tag, "--out", out, *extra)
    assert code == 0
    return report, out_rows(out)


@pytest.mark.db
@pytest.mark.ray
@pytest.mark.parametrize(("tier", "users"), [("active", ACTIVE), ("recent", RECENT),
                                             ("inactive", (I, X, A, P, H, F, V, R, B))])
@pytest.mark.parametrize("read", ["scan", "users"])
def test_tiers_cover_their_users_only(scenario, tmp_path, ray_session, tier, users, read):
    """A tier reads its users by index, or scans the tables and keeps its users' rows: the same grants."""
    before = op.table_rows(scenario[0])
    report, rows = dry(scenario, tmp_path, tier, "--tier", tier, "--read", read, "--shard-rows", "100")
    assert report["scope"]["tier"] == tier and report["scope"]["users_in_scope"] == len(users)
    assert report["read_mode"] == read
    assert rows == expected(users=users)
    assert op.table_rows(scenario[0]) == before


@pytest.mark.db
@pytest.mark.ray
def test_user_lists_tables_achievements_and_time_window(scenario, tmp_path, ray_session):
    ids_file = tmp_path / "users.txt"
    ids_file.write_text(f"# users to try first\n{H}\n\n{V}  # statuses\n")
    report, rows = dry(scenario, tmp_path, "users", "--user-id", str(E), "--user-id", str(X), "--user-ids-file", ids_file)
    assert report["scope"]["users_in_scope"] == 4 and rows == expected(users=(E, X, H, V))

    kinds = achievement_ids_for("mod,combo", load_catalogue())
    report, rows = dry(scenario, tmp_path, "tables", "--tables", "scores_relax,scores_ap", "--achievements", "mod,combo")
    assert report["rows_read"]["scores"] == 0 and report["rows_read"]["scores_relax"] == 6
    assert rows == expected(modes=(4, 5, 6, 8), achievements=set(kinds))
    assert {a for _, a, *_ in rows} == {21, 22, 91, 94}  # relax combo/intros; autopilot HD intro

    report, rows = dry(scenario, tmp_path, "sr", "--achievements", "sr,73", "--tables", "scores")
    skill = set(range(1, 21)) | set(range(25, 73))
    assert rows == expected(modes=(0, 1, 2, 3), achievements=skill | {73})

    # --until: later scores cannot move an earlier unlock, so the grants before it stay as they are
    until = T0 + 1250
    report, rows = dry(scenario, tmp_path, "until", "--until", str(until))
    assert rows == expected(before=until) and report["ineligible"]["outside_window"] > 0
    # --since: user E's HR score 101 (T0+1000, 5.00 stars) is out; HR comes from 102 (HR+FL) instead
    report, rows = dry(scenario, tmp_path, "since", "--user-id", str(E), "--since", str(T0 + 1500))
    assert rows == {(E, 9, 0, T0 + 2000, 102), (E, 19, 0, T0 + 2000, 102), (E, 92, 0, T0 + 2000, 102),
                    (E, 88, 0, T0 + 2000, 102), (E, 89, 0, T0 + 3000, 103)}


@pytest.mark.db
@pytest.mark.ray
def test_sample_is_reproducible(scenario, tmp_path, ray_session):
    first, rows = dry(scenario, tmp_path, "s1", "--sample-users", "4", "--sample-seed", "7", "--shard-rows", "10")
    again, rows_again = dry(scenario, tmp_path, "s2", "--sample-users", "4", "--sample-seed", "7")
    assert first["scope"]["users_in_scope"] == again["scope"]["users_in_scope"] == 4
    assert rows == rows_again
    sampled = {u for u, *_ in rows}
    assert rows == expected(users=sampled) and 1 <= len(sampled) <= 4


def _key(row: dict) -> tuple:
    return (row["user_id"], row["achievement_id"], row["mode"], row["created_at"], row["score_id"])


@pytest.mark.db
@pytest.mark.ray
def test_tier_by_tier_apply_grants_only_what_is_missing(fresh_mariadb_url, tmp_path, ray_session):
    url = fresh_mariadb_url
    sc.setup_database(url, tmp_path / "osu")
    op.execute(url, f"UPDATE users SET latest_activity = {int(time.time()) - DAY} WHERE id IN {ACTIVE}")
    code, first = op.run(url, tmp_path / "osu", tmp_path, "t1", "--apply", "--run-id", "active", "--tier", "active")
    assert code == 0 and first["grants_written"] == len(expected(users=ACTIVE))
    code, second = op.run(url, tmp_path / "osu", tmp_path, "t2", "--apply", "--run-id", "all", "--tier", "all")
    assert code == 0 and second["already_held"] == 2 + len(expected(users=ACTIVE))
    assert {_key(r) for r in op.ledger_rows(url, "active")} == expected(users=ACTIVE)
    assert {_key(r) for r in op.ledger_rows(url, "all")} == expected() - expected(users=ACTIVE)
    assert op.new_rows(url) == op.EXPECTED_ROWS


@pytest.mark.db
def test_catalogue_mismatch_stops_the_run_before_any_shard(fresh_mariadb_url, tmp_path, capsys):
    url = fresh_mariadb_url
    sc.setup_database(url, tmp_path / "osu")
    op.execute(url, "UPDATE less_achievements SET file = 'osu-skill-pass-five' WHERE id = 5",
               "DELETE FROM less_achievements WHERE id = 96")
    before = op.table_rows(url)
    code, _ = op.run(url, tmp_path / "osu", tmp_path, "bad", "--apply", "--run-id", "bad")
    assert code == 2
    err = capsys.readouterr().err
    # another file under a catalogue id stops the run; the missing 96 alone would only be left out
    assert "ids [5]" in err and "osu-skill-pass-five" in err
    code, _ = op.run(url, tmp_path / "osu", tmp_path, "mod", "--apply", "--achievements", "mod")
    assert code == 2 and "ids [96]" in capsys.readouterr().err  # asked for with --achievements: an error
    code, _ = op.run(url, tmp_path / "osu", tmp_path, "ninety-six", "--apply", "--achievements", "96")
    assert code == 2 and "ids [96]" in capsys.readouterr().err
    assert op.table_rows(url) == before
    assert not [t for (t,) in op.query(url, "SHOW TABLES") if t.startswith("srb_")]


def test_tiers_samples_and_kinds_without_a_database():
    as_of = 1_800_000_000
    assert tier_of(as_of - 30 * DAY, as_of) == "active" and tier_of(as_of - 30 * DAY - 1, as_of) == "recent"
    assert tier_of(as_of - 365 * DAY, as_of) == "recent" and tier_of(as_of - 365 * DAY - 1, as_of) == "inactive"
    rows = {u: 1 for u in range(1, 201)}
    activity = {u: as_of - u * DAY for u in range(1, 200)}  # user 200 has no users row
    assert list(select_users(rows, Scope("active"), activity, as_of)) == list(range(1, 31))
    assert list(select_users(rows, Scope("inactive"), activity, as_of)) == list(range(366, 200)) == []
    assert len(select_users(rows, Scope("all"), activity, as_of)) == 200
    picked = sample_users(range(1, 201), 10, seed=3)
    assert picked == sample_users(list(range(200, 0, -1)), 10, seed=3) and len(set(picked)) == 10
    assert picked != sample_users(range(1, 201), 10, seed=4)
    assert list(select_users(rows, Scope("recent", user_ids=(5, 40, 41), sample_users=1, sample_seed=3), activity,
                             as_of)) in ([40], [41])
    catalogue = load_catalogue()
    assert achievement_ids_for("all", catalogue) is None
    assert achievement_ids_for("stat", catalogue) == (*range(73, 86), 97, 98, 99)
    assert achievement_ids_for("combo, 96", catalogue) == (21, 22, 23, 24, 96)
    assert achievement_ids_for("secret", catalogue) == (122, 123)
    assert achievement_ids_for("hits,jackpot", catalogue) == (*range(77, 86), 97, 98, 99, 123)
    with pytest.raises(ValueError):
        achievement_ids_for("skills", catalogue)
    for never in ("120", "100", "128"):
        with pytest.raises(ValueError, match=f"achievement {never} is never granted"):
            achievement_ids_for(f"secret,{never}", catalogue)
    with pytest.raises(ValueError):
        Scope("dormant")
    assert parse_time("2022-06-23") == 1_655_942_400 and parse_time("1655942400") == 1_655_942_400
