"""Derived beatmaps (testbed.derive): valid .osu files for rosu-pp, new settings and tempo, their own md5.

Every shipped map (data/maps, all four modes) is derived; ratings use the `live` engine without mods.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import pytest
import rosu_pp_py as rosu

from sr.engines import engine_named
from testbed.derive import Derivation, OsuTemplate, derive_osu, map_attributes

MAPS = Path(__file__).resolve().parents[1] / "data" / "maps"
ALL_MAPS = sorted(MAPS.rglob("*.osu"))
RATED_MAPS = [p for p in ALL_MAPS if rosu.Beatmap(path=str(p)).n_objects >= 50]  # not the 1-9 object edge cases
ENGINE = engine_named("live")


def name(path: Path) -> str:
    return path.relative_to(MAPS).as_posix()


def stars(content: bytes, mode_vn: int, mods: int = 0) -> float:
    result = ENGINE.rate_beatmap(content, hashlib.md5(content).hexdigest(), [(mode_vn, mods)])[0]
    assert isinstance(result, float), result
    return result


def test_the_shipped_maps_cover_every_mode():
    assert {OsuTemplate(p.read_bytes()).mode for p in RATED_MAPS} == {0, 1, 2, 3}


@pytest.mark.parametrize("path", ALL_MAPS, ids=name)
def test_derived_file_parses_with_the_same_objects_and_finite_ratings(path):
    content = path.read_bytes()
    template = OsuTemplate(content)
    original = rosu.Beatmap(bytes=content)
    derived = template.render(Derivation(tempo=1.3, od=7.5, hp=4, version="derived", beatmap_id=123))
    beatmap = rosu.Beatmap(bytes=derived)
    assert derived.startswith(content[:20])  # same header (and BOM)
    assert beatmap.n_objects == original.n_objects
    assert (beatmap.n_circles, beatmap.n_sliders, beatmap.n_spinners, beatmap.n_holds) == (
        original.n_circles, original.n_sliders, original.n_spinners, original.n_holds)
    assert beatmap.mode == original.mode
    modes = (0, 1, 2, 3) if template.mode == 0 else (template.mode,)
    for mode_vn in modes:
        assert math.isfinite(stars(derived, mode_vn))


@pytest.mark.parametrize("path", ALL_MAPS, ids=name)
def test_every_derivation_has_its_own_md5(path):
    content = path.read_bytes()
    template = OsuTemplate(content)
    od = 9.5 if template.settings["od"] < 9 else 3.5  # differs from the file's
    variants = [
        template.render(Derivation(tempo=1.25)),
        template.render(Derivation(tempo=1.25, od=od)),
        template.render(Derivation(tempo=1.25, od=od, version="v2")),
        template.render(Derivation(tempo=1.25, od=od, version="v2", beatmap_id=5_000_001)),
    ]
    digests = {hashlib.md5(v).hexdigest() for v in variants}
    assert len(digests) == 4
    assert hashlib.md5(content).hexdigest() not in digests


@pytest.mark.parametrize("path", RATED_MAPS, ids=name)
def test_tempo_raises_stars_like_a_rate_mod(path):
    content = path.read_bytes()
    template = OsuTemplate(content)
    for mode_vn in (0, 1, 2, 3) if template.mode == 0 else (template.mode,):
        base = stars(content, mode_vn)
        faster = stars(template.render(Derivation(tempo=1.5)), mode_vn)
        if mode_vn == 3 and template.mode == 0:
            # mania converts pick their patterns from the timing: a new map, not a faster one
            assert faster != base
            continue
        assert faster > base * 1.1, (mode_vn, base, faster)
        if mode_vn in (0, 1) or template.mode == 3:
            # baked-in tempo 1.5 rates like DT (which also shortens the approach and hit windows);
            # catch differs more (its catcher speed depends on the approach time)
            assert faster == pytest.approx(stars(content, mode_vn, 64), rel=0.10)
            assert stars(template.render(Derivation(tempo=0.75)), mode_vn) < base


@pytest.mark.parametrize("path", RATED_MAPS, ids=name)
def test_tempo_keeps_osu_and_taiko_counts(path):
    """Beat lengths scale with the times: slider ticks and repeats, hence osu! and taiko objects and max
    combo, stay. Catch tiny droplets and mania hold ticks are spaced in time: a slower map has more."""
    content = path.read_bytes()
    template = OsuTemplate(content)
    for mode_vn in (0, 1, 2) if template.mode == 0 else (template.mode,):
        before = map_attributes(content, mode_vn)
        slower = map_attributes(template.render(Derivation(tempo=0.5)), mode_vn)
        faster = map_attributes(template.render(Derivation(tempo=2.0)), mode_vn)
        if mode_vn in (0, 1):
            assert (slower.objects, slower.max_combo) == (faster.objects, faster.max_combo) == (
                before.objects, before.max_combo)
        elif mode_vn == 2:
            assert slower.objects == faster.objects == before.objects
            assert slower.tiny_droplets >= before.tiny_droplets >= faster.tiny_droplets
        else:
            assert slower.objects == faster.objects == before.objects
            assert slower.max_combo > before.max_combo > faster.max_combo


@pytest.mark.parametrize("path", RATED_MAPS, ids=name)
def test_settings_reach_the_parsed_map(path):
    template = OsuTemplate(path.read_bytes())
    cs = 7.0 if template.mode == 3 else 3.7  # mania: the key count
    derived = template.render(Derivation(tempo=1.1, cs=cs, ar=9.3, od=8.4, hp=6.2))
    beatmap = rosu.Beatmap(bytes=derived)
    assert (beatmap.cs, beatmap.ar, beatmap.od, beatmap.hp) == pytest.approx((cs, 9.3, 8.4, 6.2), abs=1e-5)


def test_settings_change_star_ratings_where_they_matter():
    osu = (MAPS / "rosu-pp" / "2785319.osu").read_bytes()
    catch = (MAPS / "rosu-pp" / "2118524.osu").read_bytes()
    assert stars(derive_osu(osu, Derivation(cs=6)), 0) > stars(derive_osu(osu, Derivation(cs=3)), 0)
    assert stars(derive_osu(catch, Derivation(cs=6)), 2) > stars(derive_osu(catch, Derivation(cs=4)), 2)


def test_times_are_scaled_consistently():
    """Objects, spinner and hold ends, timing points (inherited ones keep their SV) and breaks."""
    mania = (MAPS / "rosu-pp" / "1638954.osu").read_bytes()
    text = derive_osu(mania, Derivation(tempo=2.0)).decode()
    assert "448,192,99,128,0,612:0:0:0:0:" in text  # was 448,192,198,128,0,1223:...: rint(1223 / 2) = 612
    osu = (MAPS / "ppy-osu" / "osu" / "1124896.osu").read_bytes()
    original = osu.decode().splitlines()
    derived = derive_osu(osu, Derivation(tempo=0.8)).decode().splitlines()
    assert len(derived) == len(original)
    section = ""
    checked = {"timing": 0, "inherited": 0, "spinner": 0, "object": 0}
    for before, after in zip(original, derived):
        if before.startswith("["):
            section = before
            continue
        a, b = before.split(","), after.split(",")
        if section == "[TimingPoints]" and len(a) > 2:
            assert int(b[0]) == round(math.ceil(float(a[0])) / 0.8)
            if float(a[1]) > 0:
                assert float(b[1]) == pytest.approx(float(a[1]) / 0.8)
                checked["timing"] += 1
            else:
                assert b[1] == a[1]
                checked["inherited"] += 1
        elif section == "[HitObjects]" and len(a) > 3:
            assert int(b[2]) == round(int(a[2]) / 0.8)
            assert b[3:5] == a[3:5] and b[:2] == a[:2]
            if int(a[3]) & 8:
                assert int(b[5]) == round(int(a[5]) / 0.8)
                checked["spinner"] += 1
            checked["object"] += 1
    assert all(checked.values()), checked


def test_metadata_is_added_to_a_map_without_it():
    content = (MAPS / "ppy-osu" / "taiko" / "diffcalc-test.osu").read_bytes()
    assert b"[Metadata]" not in content
    derived = derive_osu(content, Derivation(version="Oni x1.2", beatmap_id=77, beatmapset_id=8))
    assert b"[Metadata]\nVersion:Oni x1.2\nBeatmapID:77\nBeatmapSetID:8\n\n[Difficulty]" in derived
    assert rosu.Beatmap(bytes=derived).n_objects == rosu.Beatmap(bytes=content).n_objects
    assert derive_osu(content, Derivation()) == content  # nothing asked, nothing added


def test_a_map_renders_back_to_its_own_bytes():
    for path in (MAPS / "rosu-pp").glob("*.osu"):
        assert derive_osu(path.read_bytes(), Derivation()) == path.read_bytes()


def test_bad_input_is_refused():
    content = (MAPS / "rosu-pp" / "2785319.osu").read_bytes()
    with pytest.raises(ValueError):
        OsuTemplate(b"garbage")
    with pytest.raises(ValueError):
        OsuTemplate(content.split(b"[HitObjects]")[0])
    for bad in (Derivation(tempo=0), Derivation(tempo=float("nan")), Derivation(tempo=50), Derivation(ar=11),
                Derivation(cs=-1), Derivation(version="two\nlines")):
        with pytest.raises(ValueError):
            derive_osu(content, bad)
    with pytest.raises(ValueError):  # a mania key count is a whole number
        derive_osu((MAPS / "rosu-pp" / "1638954.osu").read_bytes(), Derivation(cs=4.5))
