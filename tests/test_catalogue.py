"""load_catalogue: the 96 achievements of conditions/achievements.csv, families, errors, select."""

from __future__ import annotations

import csv
import hashlib
from collections import Counter
from pathlib import Path

import polars as pl
import pytest

from conditions.catalogue import FAMILIES, Catalogue, family_of, load_catalogue
from conditions.compiler import SCHEMA
from conditions.errors import ConditionError, UnknownName, UnsupportedSyntax

CSV = Path(__file__).resolve().parents[1] / "conditions" / "achievements.csv"
HEADER = "id,file,name,desc,cond,seed_cond\n"


def test_loads_96_achievements_in_csv_order():
    catalogue = load_catalogue()
    assert len(catalogue.achievements) == 96
    assert [a.id for a in catalogue.achievements] == list(range(1, 97))
    assert set(catalogue.by_id) == set(range(1, 97))
    assert catalogue.by_id[21].file == "osu-combo-500"


def test_rows_match_the_csv():
    with CSV.open(newline="", encoding="utf-8") as f:
        rows = {int(r["id"]): r for r in csv.DictReader(f)}
    for a in load_catalogue().achievements:
        row = rows[a.id]
        assert (a.file, a.name, a.desc, a.cond, a.seed_cond) == (
            row["file"], row["name"], row["desc"], row["cond"], row["seed_cond"]
        )
        assert a.compiled.text == a.cond


def test_seed_cond_kept_for_ids_21_to_23_only():
    catalogue = load_catalogue()
    assert {a.id for a in catalogue.achievements if a.seed_cond} == {21, 22, 23}
    assert catalogue.by_id[22].seed_cond == "750 <= score.max_combo < 1000 and mode_vn == 0"
    assert catalogue.by_id[22].cond == "750 <= score.max_combo and mode_vn == 0"


def test_family_counts():
    counts = Counter(a.family for a in load_catalogue().achievements)
    # 1-10 osu! pass, 25-32 / 41-48 / 57-64 taiko, catch, mania pass; the FC ranges likewise.
    assert counts == {"skill_pass": 34, "skill_fc": 34, "combo": 4, "playcount": 4, "hits": 9, "mod_intro": 11}
    assert tuple(counts) == FAMILIES  # CSV order is family order
    assert FAMILIES == ("skill_pass", "skill_fc", "combo", "playcount", "hits", "mod_intro")


@pytest.mark.parametrize(
    ("file", "family"),
    [
        ("osu-skill-pass-10", "skill_pass"),
        ("mania-skill-fc-8", "skill_fc"),
        ("osu-combo-2000", "combo"),
        ("osu-plays-50000", "playcount"),
        ("fruits-hits-200000", "hits"),
        ("all-intro-spunout", "mod_intro"),
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
    assert all(("score.sr" in a.compiled.names) == a.uses_sr for a in catalogue.achievements)


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
    with pytest.raises(KeyError, match="97"):
        catalogue.select([1, 97])


def test_each_family_on_its_band_edges():
    """One hand-built frame: each family's rule at its edges, evaluated through the catalogue."""
    catalogue = load_catalogue()
    base = {"sr": 5.0, "mods": 0, "max_combo": 0, "full_combo": False, "passed": True, "mode_vn": 0, "playcount": 0, "total_hits": 0}
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
