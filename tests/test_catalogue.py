"""load_catalogue: the live achievements of conditions/achievements.csv (1-99, 120, 122, 123), families,
grantability, the never-granted list, errors, select."""

from __future__ import annotations

import csv
import hashlib
from collections import Counter
from pathlib import Path

import polars as pl
import pytest

from conditions.catalogue import (
    FAMILIES, Catalogue, describe_never_granted, family_of, live_rows, load_catalogue, load_not_granted, never_granted,
)
from conditions.compiler import SCHEMA
from conditions.rules import RULES, SCORE_SERVICE_COMMIT
from conditions.errors import ConditionError, UnknownName, UnsupportedSyntax

CSV = Path(__file__).resolve().parents[1] / "conditions" / "achievements.csv"
HEADER = "id,file,name,desc,cond,seed_cond\n"


LIVE_IDS = [*range(1, 100), 120, 122, 123]


def test_loads_the_live_achievements_the_plays_decide_in_csv_order():
    catalogue = load_catalogue()
    assert [a.id for a in catalogue.achievements] == LIVE_IDS
    assert set(catalogue.by_id) == set(LIVE_IDS)
    assert catalogue.by_id[21].file == "osu-combo-500"
    assert [a.id for a in catalogue.grantable] == [i for i in LIVE_IDS if i != 120]


def test_rows_match_the_csv():
    with CSV.open(newline="", encoding="utf-8") as f:
        rows = {int(r["id"]): r for r in csv.DictReader(f)}
    for a in load_catalogue().achievements:
        row = rows[a.id]
        assert (a.file, a.name, a.desc, a.cond, a.seed_cond, a.rule, a.registry_file, a.source) == (
            row["file"], row["name"], row["desc"], row["cond"], row["seed_cond"], row["rule"], row["registry_file"],
            row["source"],
        )
        if a.rule:
            assert a.compiled is None and a.cond == "" and a.expr is RULES[a.rule].expr
        else:
            assert a.compiled.text == a.cond and a.expr is a.compiled.expr


def test_every_row_names_the_live_function_and_commit_it_mirrors():
    for a in load_catalogue():
        path, commit = a.source.split(" @ ")
        assert SCORE_SERVICE_COMMIT.startswith(commit) and len(commit) == 12
        assert path.startswith("app/achievements/") and ".py:" in path


def test_new_live_rows():
    """Ids 97-99, 120, 122, 123 as seeded by mysql-database 0022 (files renamed by 0024) and decided by
    score-service's registered functions."""
    by_id = load_catalogue().by_id
    assert [(i, by_id[i].file, by_id[i].family) for i in (97, 98, 99)] == [
        (97, "taiko-hits-30000000", "hits"), (98, "fruits-hits-20000000", "hits"), (99, "mania-hits-40000000", "hits")
    ]
    assert by_id[97].cond == "30000000 <= stats.total_hits and mode_vn == 1"
    assert by_id[98].cond == "20000000 <= stats.total_hits and mode_vn == 2"
    assert by_id[99].cond == "40000000 <= stats.total_hits and mode_vn == 3"
    assert (by_id[122].family, by_id[122].cond) == ("stumbler", "score.full_combo and score.acc < 85.0")
    assert (by_id[123].family, by_id[123].rule, by_id[123].cond) == ("jackpot", "jackpot", "")
    consolation = by_id[120]
    assert (consolation.file, consolation.registry_file, consolation.rule) == (
        "all-secret-consolation_prize", "all-secret-consolation", "consolation"
    )
    assert not consolation.grantable
    assert all(a.grantable for a in load_catalogue() if a.id != 120)


def test_never_granted_lists_every_other_live_id_with_its_reason():
    listed = never_granted()
    assert [n.id for n in listed] == [*range(100, 122), *range(124, 129)] and 120 in [n.id for n in listed]
    assert {n.id for n in listed}.isdisjoint(a.id for a in load_catalogue().grantable)
    ranks = [n for n in listed if 100 <= n.id <= 115]
    assert all("historical ranks" in n.reason for n in ranks)
    assert {n.file for n in ranks} == {f"all-skill-highranker-{k}" for k in range(1, 5)}
    secret = {n.id: n for n in load_not_granted() if n.id >= 116}
    assert set(secret) == {116, 117, 118, 119, 121, 124, 125, 126, 127, 128}
    assert all(n.reason == "live function returns False" for n in secret.values())
    assert secret[128].detail.endswith("registered as 'mania-secret-twin', row file 'mania-secret-meganekko'")
    assert secret[118].detail == "live function returns False"  # registered under its row's file
    lines = describe_never_granted()
    assert lines[0].startswith("100-115: needs historical ranks")
    assert lines[1] == "116-119, 121, 124-128: live function returns False"
    assert lines[2].startswith("120: ") and "'all-secret-consolation'" in lines[2]


def test_live_rows_hold_every_live_id_once():
    rows = live_rows()
    assert [r["id"] for r in rows] == list(range(1, 129))
    by_id = {r["id"]: r for r in rows}
    assert (by_id[97]["mode"], by_id[98]["mode"], by_id[99]["mode"], by_id[122]["mode"], by_id[128]["mode"]) == (
        1, 2, 3, None, 3
    )
    assert [i for i, r in by_id.items() if r["hidden"]] == list(range(116, 129))
    assert by_id[1]["mode"] == 0 and by_id[86]["mode"] is None and by_id[104]["mode"] == 1


def test_seed_cond_kept_for_ids_21_to_23_only():
    catalogue = load_catalogue()
    assert {a.id for a in catalogue.achievements if a.seed_cond} == {21, 22, 23}
    assert catalogue.by_id[22].seed_cond == "750 <= score.max_combo < 1000 and mode_vn == 0"
    assert catalogue.by_id[22].cond == "750 <= score.max_combo and mode_vn == 0"


def test_family_counts():
    counts = Counter(a.family for a in load_catalogue().achievements)
    # 1-10 osu! pass, 25-32 / 41-48 / 57-64 taiko, catch, mania pass; the FC ranges likewise; hits 77-85, 97-99.
    assert counts == {"skill_pass": 34, "skill_fc": 34, "combo": 4, "playcount": 4, "hits": 12, "mod_intro": 11,
                      "stumbler": 1, "jackpot": 1, "consolation": 1}
    assert FAMILIES == ("skill_pass", "skill_fc", "combo", "playcount", "hits", "mod_intro", "stumbler", "jackpot")
    assert {a.family for a in load_catalogue().grantable} == set(FAMILIES)


@pytest.mark.parametrize(
    ("file", "family"),
    [
        ("osu-skill-pass-10", "skill_pass"),
        ("mania-skill-fc-8", "skill_fc"),
        ("osu-combo-2000", "combo"),
        ("osu-plays-50000", "playcount"),
        ("fruits-hits-200000", "hits"),
        ("all-intro-spunout", "mod_intro"),
        ("taiko-hits-30000000", "hits"),
        ("all-secret-stumbler", "stumbler"),
        ("all-secret-jackpot", "jackpot"),
        ("all-secret-consolation_prize", "consolation"),
        ("all-secret-bunny", None),
        ("all-skill-highranker-1", None),
        ("osu-rank-1000", None),
        ("taiko-intro-hidden", None),
    ],
)
def test_family_of(file, family):
    assert family_of(file) == family


def test_uses_sr_exactly_for_the_68_skill_achievements():
    catalogue = load_catalogue()
    with_sr = {a.id for a in catalogue.achievements if a.uses_sr}
    assert len(with_sr) == 68
    assert with_sr == {a.id for a in catalogue.achievements if a.family in ("skill_pass", "skill_fc")}
    assert all(("score.sr" in a.compiled.names) == a.uses_sr for a in catalogue.achievements if a.compiled)
    assert not any(a.uses_sr for a in catalogue.achievements if a.rule)


def test_version_is_the_csv_hash_and_the_default_load_is_cached():
    catalogue = load_catalogue()
    assert catalogue.version == hashlib.sha256(CSV.read_bytes()).hexdigest()[:12]
    assert load_catalogue() is catalogue
    assert load_catalogue(CSV) == catalogue
    assert load_catalogue(CSV) is not catalogue


def test_select():
    catalogue = load_catalogue()
    sub = catalogue.select([86, 1, 21, 1])
    assert isinstance(sub, Catalogue)
    assert [a.id for a in sub.achievements] == [1, 21, 86]
    assert set(sub.by_id) == {1, 21, 86}
    assert sub.version == catalogue.version
    assert catalogue.select([]).achievements == ()
    with pytest.raises(KeyError, match="100"):
        catalogue.select([1, 100])


def test_each_family_on_its_band_edges():
    """One hand-built frame: each family's rule at its edges, evaluated through the catalogue."""
    catalogue = load_catalogue()
    base = {"sr": 5.0, "mods": 0, "max_combo": 0, "full_combo": False, "passed": True, "mode_vn": 0, "playcount": 0,
            "total_hits": 0, "acc": 99.0}
    cases = [  # (achievement id, row changes, met)
        (5, {"sr": 4.99}, False),  # osu-skill-pass-5: [5, 6), no NF
        (5, {"sr": 5.0}, True),
        (5, {"sr": 5.99}, True),
        (5, {"sr": 6.0}, False),
        (5, {"sr": 5.0, "mods": 1}, False),
        (5, {"sr": 5.0, "mods": 1 | 8}, False),
        (5, {"sr": 5.0, "mods": 8 | 64}, True),
        (5, {"sr": 5.0, "mode_vn": 1}, False),
        (5, {"sr": None}, False),
        (15, {"sr": 5.0, "full_combo": True}, True),  # osu-skill-fc-5
        (15, {"sr": 5.0, "full_combo": False}, False),
        (15, {"sr": 5.0, "full_combo": True, "mods": 1}, True),  # NF allowed for FC
        (29, {"sr": 5.0, "mode_vn": 1}, True),  # taiko-skill-pass-5
        (21, {"max_combo": 499}, False),  # osu-combo-500: no upper bound any more
        (21, {"max_combo": 500}, True),
        (21, {"max_combo": 5000}, True),
        (21, {"max_combo": 5000, "sr": None}, True),
        (76, {"playcount": 49_999}, False),  # osu-plays-50000
        (76, {"playcount": 50_000}, True),
        (79, {"total_hits": 3_000_000, "mode_vn": 1}, True),  # taiko-hits-3000000
        (79, {"total_hits": 2_999_999, "mode_vn": 1}, False),
        (79, {"total_hits": 3_000_000, "mode_vn": 0}, False),
        (90, {"mods": 512 | 64}, True),  # all-intro-nightcore, any mode
        (90, {"mods": 64, "mode_vn": 3}, False),
        (90, {"mods": 512, "passed": False}, False),
        (87, {"mods": 16384 | 32, "mode_vn": 2}, True),  # all-intro-perfect
        (97, {"total_hits": 29_999_999, "mode_vn": 1}, False),  # taiko-hits-30000000
        (97, {"total_hits": 30_000_000, "mode_vn": 1}, True),
        (97, {"total_hits": 30_000_000, "mode_vn": 2}, False),
        (98, {"total_hits": 19_999_999, "mode_vn": 2}, False),  # fruits-hits-20000000
        (98, {"total_hits": 20_000_000, "mode_vn": 2}, True),
        (99, {"total_hits": 39_999_999, "mode_vn": 3}, False),  # mania-hits-40000000
        (99, {"total_hits": 40_000_000, "mode_vn": 3}, True),
        (122, {"full_combo": True, "acc": 84.99}, True),  # all-secret-stumbler: FC under 85%, any mode
        (122, {"full_combo": True, "acc": 85.0}, False),
        (122, {"full_combo": False, "acc": 50.0}, False),
        (122, {"full_combo": True, "acc": 10.0, "mode_vn": 3, "sr": None}, True),
        (122, {"full_combo": True, "acc": None}, False),
    ]
    df = pl.DataFrame([{**base, **changes} for _, changes, _ in cases], schema=SCHEMA)
    got = [
        df.slice(i, 1).select(catalogue.by_id[achievement_id].compiled.expr).item()
        for i, (achievement_id, _, _) in enumerate(cases)
    ]
    assert got == [want for _, _, want in cases]


def write_csv(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "achievements.csv"
    path.write_text(HEADER + body, encoding="utf-8")
    return path


def test_unknown_name_in_a_row_names_its_id(tmp_path):
    path = write_csv(
        tmp_path,
        "1,osu-skill-pass-1,A,a,1 <= score.sr < 2 and mode_vn == 0,\n"
        "7,osu-combo-500,B,b,500 <= score.combo and mode_vn == 0,\n",
    )
    with pytest.raises(ConditionError) as info:
        load_catalogue(path)
    error = info.value
    assert error.achievement_id == 7
    assert error.achievement_ids == (7,)
    assert "7" in str(error) and "score.combo" in str(error)
    (row_error,) = error.errors
    assert isinstance(row_error, UnknownName)
    assert row_error.name == "score.combo" and row_error.achievement_id == 7


def test_every_failing_row_is_listed(tmp_path):
    path = write_csv(
        tmp_path,
        "3,osu-skill-pass-3,A,a,score.sr / 2 > 1,\n"
        "4,osu-skill-pass-4,B,b,4 <= score.sr < 5,\n"
        "5,osu-rank-1000,C,c,True,\n"
        "6,osu-plays-5000,D,d,5000 <= stats.plays,\n"
        "6,osu-plays-15000,E,e,15000 <= stats.playcount,\n"
        "x,osu-plays-25000,F,f,25000 <= stats.playcount,\n",
    )
    with pytest.raises(ConditionError) as info:
        load_catalogue(path)
    error = info.value
    assert error.achievement_id is None
    assert error.achievement_ids == (3, 5, 6)
    assert [type(e) for e in error.errors] == [UnsupportedSyntax, ConditionError, UnknownName, ConditionError, ConditionError]
    assert "file matches no family" in str(error) and "repeated achievement id" in str(error)
    assert "bad achievement id" in str(error)


def test_missing_columns(tmp_path):
    path = tmp_path / "achievements.csv"
    path.write_text("id,file,cond\n1,osu-skill-pass-1,True\n", encoding="utf-8")
    with pytest.raises(ConditionError, match="missing columns"):
        load_catalogue(path)


def test_a_good_custom_csv_loads(tmp_path):
    path = write_csv(tmp_path, '9,osu-combo-9,"Nine, quoted",d,"9 <= score.max_combo",\n')
    catalogue = load_catalogue(path)
    (a,) = catalogue.achievements
    assert (a.id, a.name, a.family, a.uses_sr, a.seed_cond) == (9, "Nine, quoted", "combo", False, "")
    assert catalogue.version == hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def test_rule_rows(tmp_path):
    path = tmp_path / "achievements.csv"
    path.write_text(
        "id,file,name,desc,cond,seed_cond,rule,registry_file,source\n"
        "123,all-secret-jackpot,J,j,,,jackpot,,hush_hush.py\n"
        "120,all-secret-consolation_prize,C,c,,,consolation,all-secret-consolation,\n",
        encoding="utf-8",
    )
    catalogue = load_catalogue(path)
    jackpot, consolation = catalogue.achievements
    assert (jackpot.rule, jackpot.registry_file, jackpot.grantable, jackpot.compiled) == ("jackpot", "all-secret-jackpot",
                                                                                          True, None)
    assert jackpot.rule_text == RULES["jackpot"].text and jackpot.columns == RULES["jackpot"].columns
    assert not consolation.grantable and catalogue.grantable == (jackpot,)

    path.write_text(
        "id,file,name,desc,cond,seed_cond,rule\n"
        "123,all-secret-jackpot,J,j,,,lottery\n"
        "122,all-secret-stumbler,S,s,score.passed,,jackpot\n",
        encoding="utf-8",
    )
    with pytest.raises(ConditionError) as info:
        load_catalogue(path)
    assert info.value.achievement_ids == (122, 123)
    assert "unknown rule 'lottery'" in str(info.value) and "both a condition and a rule" in str(info.value)
