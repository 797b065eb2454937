"""osu_2019 port: the compiled readers agree with the reference reader; stored = re-walked sliders.

`sr.osu2019.decode` reads .osu text line by line like rosu-map 0.2.0 / akatsuki-pp-rs; `scan.py`
reads ordinary [HitObjects] / [TimingPoints] sections with numba and must give identical
results (it gives up, to decode.py, on anything unusual). Hypothesis generates sections mixing
ordinary and odd lines; shipped maps are compared too.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sr.osu2019 as o19
from sr.errors import RatingError
from sr.osu2019.decode import RawMap, read_map
from tests.conftest import MAPS, MAPS_EXTRA


def _same_raw(a: RawMap, b: RawMap) -> list[str]:
    """Names of RawMap fields that differ (arrays compared by value, NaN equal to NaN)."""
    diffs = []
    for name in RawMap.__slots__:
        va, vb = getattr(a, name), getattr(b, name)
        if isinstance(va, (list, np.ndarray)) or isinstance(vb, (list, np.ndarray)):
            xa = np.asarray(va, dtype=np.float64).ravel()
            xb = np.asarray(vb, dtype=np.float64).ravel()
            if xa.shape != xb.shape or not np.array_equal(xa, xb, equal_nan=True):
                diffs.append(name)
        elif va != vb:
            diffs.append(name)
    return diffs


def test_fast_and_reference_readers_agree_on_shipped_maps():
    paths = sorted(MAPS.rglob("*.osu")) + sorted(MAPS_EXTRA.glob("*.osu"))
    fast_objects = fast_timing = 0
    for path in paths:
        content = path.read_bytes()
        fast, slow = read_map(content, fast=True), read_map(content, fast=False)
        assert _same_raw(fast, slow) == [], path.name
        fast_objects += isinstance(fast.obj_times, np.ndarray)
        fast_timing += isinstance(fast.timing_times, np.ndarray)
    assert fast_objects > 80 and fast_timing > 80  # the compiled path is the usual one


def test_stored_and_rewalked_sliders_agree():
    """Sliders with too many check points are walked again at rating time: same stars."""
    for path in [
        MAPS / "rosu-pp" / "2785319.osu",
        *sorted((MAPS / "ppy-osu" / "osu").glob("*.osu")),
    ]:
        raw = read_map(path.read_bytes())
        stored, rewalked = (
            o19.build(raw, path.name),
            o19.build(raw, path.name, max_stored=0),
        )
        for mods in (128, 144, 192, 386):
            assert o19.relax_stars(stored, mods) == o19.relax_stars(rewalked, mods), (
                path.name,
                mods,
            )


# ---------------------------------------------------------------- generated sections

_int = st.integers(-600, 700).map(str)
_num = st.one_of(
    _int,
    _int,
    _int,
    st.floats(-1000, 30000, allow_nan=False).map(lambda v: repr(round(v, 3))),
    st.floats(0, 500, allow_nan=False).map(lambda v: f"{v:.14f}"),  # long decimals
    st.sampled_from(
        [
            "-0",
            "+5",
            "007",
            "1e2",
            "nan",
            "NaN",
            "inf",
            " 5",
            "5 ",
            "",
            "x",
            "1_0",
            "3000000000",
            "200000",
        ]
    ),
)
_point = st.one_of(
    st.tuples(_int, _int).map(lambda p: f"{p[0]}:{p[1]}"),
    st.tuples(_int, _int).map(lambda p: f"{p[0]}:{p[1]}"),
    st.sampled_from(["", "1:2:3", "nan:1", "5", "1.5:2", " 1:2", "131073:0"]),
)
_path = st.tuples(
    st.sampled_from(["B", "C", "L", "P", "B3", "X", ""]),
    st.lists(
        st.one_of(_point, _point, _point, st.sampled_from(["B", "L", "P", "C"])),
        min_size=0,
        max_size=7,
    ),
    st.booleans(),
).map(
    lambda t: "|".join([t[0], *t[1], *(t[1][-1:] if t[2] else [])])
)  # optional repeated last point
_bank = st.sampled_from(
    ["", "0:0:0:0:", "1:2:0:0:hit.wav", "x:0:0:0:", "0:0", " 0:0:0:0:"]
)


@st.composite
def _hit_object_line(draw) -> str:
    x, y, t = draw(_int), draw(_int), draw(st.one_of(_int, _num))
    kind = draw(
        st.sampled_from(["1", "5", "2", "6", "12", "8", "128", "0", "3", "+1", " 1"])
    )
    head = f"{x},{y},{t},{kind},{draw(st.sampled_from(['0', '2', '8', 'x', '']))}"
    k = int(kind) if kind.strip().lstrip("+").isdigit() else 0
    if k & 1:
        tail = (
            draw(st.sampled_from(["", ","])) + draw(_bank)
            if draw(st.booleans())
            else ""
        )
    elif k & 2:
        rep = draw(st.sampled_from(["1", "2", "0", "-3", "9001", "1.5", " 2"]))
        tail = f",{draw(_path)},{rep}"
        if draw(st.booleans()):
            tail += f",{draw(_num)}"
            if draw(st.booleans()):
                tail += f",0|0,0:0|0:0,{draw(_bank)}"
    elif k & 8:
        tail = f",{draw(_num)}" + (f",{draw(_bank)}" if draw(st.booleans()) else "")
    else:
        tail = draw(st.sampled_from(["", ",500:0:0:0:0:", ",500"]))
    line = head + tail
    return draw(
        st.sampled_from(
            [
                line,
                line,
                line,
                line,
                line + " // c",
                "  " + line,
                line + "\t",
                "// " + line,
                "",
            ]
        )
    )


@st.composite
def _timing_line(draw) -> str:
    t = draw(st.one_of(_int, _num, st.sampled_from(["0", "100", "100.0000000000001"])))
    beat = draw(
        st.one_of(
            st.sampled_from(
                [
                    "500",
                    "-100",
                    "-50",
                    "333.333333333333",
                    "285.7142857142857",
                    "-66.66666666666667",
                    "NaN",
                    "0",
                ]
            ),
            _num,
        )
    )
    fields = [
        t,
        beat,
        draw(st.sampled_from(["4", "3", "0", "x", " 4"])),
        "2",
        "0",
        "100",
    ]
    fields.append(draw(st.sampled_from(["1", "0", "", "2"])))
    fields.append(draw(st.sampled_from(["0", "1", "8", "x", " 0"])))
    return ",".join(fields[: draw(st.sampled_from([2, 3, 7, 8, 8, 8]))])


_coord = st.integers(-300, 800).map(str)
_plain = st.one_of(
    st.integers(-500, 40000).map(str),
    st.tuples(st.floats(0, 40000, allow_nan=False), st.integers(1, 6)).map(
        lambda p: f"{p[0]:.{p[1]}f}"
    ),
    st.floats(0.001, 2000, allow_nan=False)
    .map(repr)
    .filter(lambda s: "e" not in s),  # 17 digits, as lazer writes
)


@st.composite
def _ordinary_hit_object_line(draw) -> str:
    """Well-formed lines (the compiled reader's domain): circles, sliders, spinners."""
    x, y, t = draw(_coord), draw(_coord), draw(_plain)
    kind = draw(st.sampled_from([1, 5, 2, 6, 12]))
    head = f"{x},{y},{t},{kind},{draw(st.sampled_from(['0', '2', '8']))}"
    if kind & 1:
        return head + draw(st.sampled_from(["", ",0:0:0:0:", ",1:2:0:0:"]))
    if kind & 8:
        return head + f",{draw(_plain)}" + draw(st.sampled_from(["", ",0:0:0:0:"]))
    pts = draw(st.lists(st.tuples(_coord, _coord), min_size=1, max_size=6))
    toks = [draw(st.sampled_from(["B", "C", "L", "P"]))]
    for i, (px, py) in enumerate(pts):
        if i and draw(st.integers(0, 6)) == 0:
            toks.append(
                draw(st.sampled_from(["B", "L", "P", "C"]))
            )  # lazer multi-type segment
        toks.append(f"{px}:{py}")
        if draw(st.integers(0, 5)) == 0:
            toks.append(f"{px}:{py}")  # red anchor
    line = head + f",{'|'.join(toks)},{draw(st.integers(0, 4))}"
    if draw(st.booleans()):
        line += f",{draw(st.one_of(_plain, st.sampled_from(['0', '100'])))}"
        if draw(st.booleans()):
            line += ",0|0,0:0|0:0,0:0:0:0:"
    return line


@st.composite
def _ordinary_timing_line(draw) -> str:
    t = draw(st.one_of(_plain, st.sampled_from(["0", "1000", "1000.0000000000001"])))
    beat = draw(
        st.one_of(
            st.sampled_from(
                [
                    "500",
                    "-100",
                    "-50",
                    "333.333333333333",
                    "285.7142857142857",
                    "-66.66666666666667",
                ]
            ),
            st.floats(-1000, 1000, allow_nan=False)
            .map(repr)
            .filter(lambda s: "e" not in s),
        )
    )
    return f"{t},{beat},4,2,0,100,{draw(st.sampled_from(['1', '0']))},{draw(st.sampled_from(['0', '1']))}"


def _file(header: str, timing: list[str], objects: list[str]) -> bytes:
    text = "\n".join(
        [
            header,
            "",
            "[General]",
            "Mode: 0",
            "",
            "[Difficulty]",
            "CircleSize:4",
            "SliderMultiplier:1.4",
            "SliderTickRate:1",
            "",
        ]
        + ["[TimingPoints]", *timing, "", "[HitObjects]", *objects]
    )
    return text.encode()


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    header=st.sampled_from(
        ["osu file format v14", "osu file format v5", "osu file format v128", ""]
    ),
    timing=st.lists(_timing_line(), max_size=8),
    objects=st.lists(_hit_object_line(), max_size=12),
)
def test_fast_and_reference_readers_agree_on_generated_sections(
    header, timing, objects
):
    content = _file(header, timing, objects)
    assert _same_raw(read_map(content, fast=True), read_map(content, fast=False)) == []


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    timing=st.lists(_timing_line(), max_size=6),
    objects=st.lists(_hit_object_line(), max_size=12),
)
def test_generated_maps_rate_or_raise_a_rating_error(timing, objects):
    content = _file("osu file format v14", timing, objects)
    try:
        bm = o19.parse(content, "generated")
    except RatingError:
        return
    for mods in (128, 144, 192, 130, 384):
        try:
            stars = o19.relax_stars(bm, mods)
        except RatingError:
            continue
        assert math.isfinite(stars) and stars >= 0.0


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    timing=st.lists(_ordinary_timing_line(), max_size=10),
    objects=st.lists(_ordinary_hit_object_line(), min_size=1, max_size=15),
)
def test_compiled_reader_on_ordinary_sections(timing, objects):
    """Well-formed sections go through scan.py (checked) and give what decode.py gives."""
    content = _file("osu file format v14", timing, objects)
    fast = read_map(content, fast=True)
    assert isinstance(fast.obj_times, np.ndarray)  # the compiled path was taken
    assert _same_raw(fast, read_map(content, fast=False)) == []
