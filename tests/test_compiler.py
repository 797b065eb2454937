"""compile_condition: the polars expression agrees with Python `eval` (score-service `app/usecases/score.py`)."""

from __future__ import annotations

import math
import re
from types import SimpleNamespace

import polars as pl
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from conditions.catalogue import load_catalogue
from conditions.compiler import INT32_MAX, INT32_MIN, NAMES, SCHEMA, compile_condition
from conditions.errors import ConditionError, UnknownName, UnsupportedSyntax

DEFAULT_ROW = {
    "sr": 5.0,
    "mods": 0,
    "max_combo": 100,
    "full_combo": False,
    "passed": True,
    "mode_vn": 0,
    "playcount": 10,
    "total_hits": 1000,
    "acc": 97.5,
}


def frame(rows: list[dict]) -> pl.DataFrame:
    """A frame with every column of SCHEMA; unspecified values from DEFAULT_ROW."""
    return pl.DataFrame([{**DEFAULT_ROW, **row} for row in rows], schema=SCHEMA)


def met(text: str, rows: list[dict]) -> list[bool]:
    return frame(rows).select(compile_condition(text).expr).to_series().to_list()


def python_truth(code, row: dict) -> bool:
    """What the live server computes: `eval(cond)` in boolean context with score, stats, mode_vn bound."""
    score = SimpleNamespace(**{k: row[k] for k in ("sr", "mods", "max_combo", "full_combo", "passed", "acc")})
    stats = SimpleNamespace(playcount=row["playcount"], total_hits=row["total_hits"])
    return bool(eval(code, {}, {"score": score, "stats": stats, "mode_vn": row["mode_vn"]}))


def expected(text: str, compiled, rows: list[dict]) -> list[bool]:
    """Python's truthiness per row; False where a column the condition uses is null."""
    code = compile(text.lstrip(" \t"), "<cond>", "eval")
    return [False if any(row[c] is None for c in compiled.columns) else python_truth(code, row) for row in rows]


# --- unit tests ------------------------------------------------------------------------------------


def test_bitwise_and_binds_tighter_than_comparison():
    rows = [{"mods": m} for m in (0, 1, 2, 3, 65)]
    assert met("score.mods & 1 == 0", rows) == [True, False, True, False, False]
    # explicit grouping the other way: mods & False == 0 -> always falsy
    assert met("score.mods & (1 == 0)", rows) == [False] * 5


@pytest.mark.parametrize(
    ("sr", "in_band"), [(0.99, False), (1.0, True), (1.5, True), (1.99, True), (2.0, False), (10.99, False)]
)
def test_chained_comparison_band_edges(sr, in_band):
    assert met("1 <= score.sr < 2", [{"sr": sr}]) == [in_band]


def test_chained_comparison_is_pairwise():
    rows = [{"mods": 3, "mode_vn": 1}, {"mods": 3, "mode_vn": 3}, {"mods": 0, "mode_vn": 0}]
    # 0 < mods < 5 > mode_vn  is  (0 < mods) and (mods < 5) and (5 > mode_vn)
    assert met("0 < score.mods < 5 > mode_vn", rows) == [True, True, False]
    # 3 > 2 > 1 is True, while (3 > 2) > 1 is True > 1, False
    assert met("3 > mode_vn + 2 > 1", [{"mode_vn": 0}]) == [True]
    assert met("(3 > mode_vn + 2) > 1", [{"mode_vn": 0}]) == [False]


def test_and_or_give_an_operand_not_a_bool():
    rows = [{"mods": 8}, {"mods": 0}, {"mods": 24}]
    assert met("(score.mods & 8 and 5) == 5", rows) == [True, False, True]
    assert met("(score.mods & 8 or 5) == 5", rows) == [False, True, False]
    assert met("(score.mods & 8 or 5) == 8", rows) == [True, False, True]
    assert met("(score.passed and score.max_combo) == 0", [{"passed": False}, {"passed": True}]) == [True, False]
    assert met("(score.sr or 3) == 3", [{"sr": 0.0}, {"sr": 2.5}, {"sr": 3.0}]) == [True, False, True]
    assert met("(score.full_combo or score.mods) == 4", [{"mods": 4}, {"mods": 4, "full_combo": True}]) == [
        True,
        False,
    ]
    assert met("score.mods and score.sr", [{"mods": 0, "sr": 7.0}, {"mods": 1, "sr": 0.0}, {"mods": 1}]) == [
        False,
        False,
        True,
    ]


def test_not():
    rows = [{"passed": True, "mods": 1}, {"passed": False, "mods": 2}]
    assert met("not score.passed", rows) == [False, True]
    assert met("not score.mods & 1", rows) == [False, True]
    assert met("not score.mods == 1", rows) == [False, True]


def test_truthiness_of_ints_floats_bools():
    assert met("score.mods", [{"mods": 0}, {"mods": 3}, {"mods": -1}]) == [False, True, True]
    assert met("score.sr", [{"sr": 0.0}, {"sr": 0.01}, {"sr": -0.0}]) == [False, True, False]
    assert met("score.mods & 2", [{"mods": 1}, {"mods": 2}]) == [False, True]
    assert met("score.full_combo", [{"full_combo": True}, {"full_combo": False}]) == [True, False]


def test_bools_are_ints_in_arithmetic():
    rows = [{"passed": True, "full_combo": True}, {"passed": True, "full_combo": False}]
    assert met("~True == -2", rows) == [True, True]
    assert met("~score.full_combo == -2", rows) == [True, False]
    assert met("score.passed + score.full_combo == 2", rows) == [True, False]
    assert met("-score.passed == -1", rows) == [True, True]
    assert met("(score.passed & 3) == 1", rows) == [True, True]
    assert met("score.passed ^ score.full_combo", rows) == [False, True]
    assert met("score.full_combo < score.passed", rows) == [False, True]


def test_constant_condition_has_the_frame_height():
    assert met("False", [{}, {}, {}]) == [False, False, False]
    assert met("1 < 2", [{}, {}]) == [True, True]


def test_names_and_columns():
    compiled = compile_condition("(score.mods & 1 == 0) and 1 <= score.sr < 2 and mode_vn == 0")
    assert compiled.names == frozenset({"score.mods", "score.sr", "mode_vn"})
    assert compiled.columns == frozenset({"mods", "sr", "mode_vn"})
    assert compiled == compile_condition(compiled.text)
    assert hash(compiled) == hash(compile_condition(compiled.text))


def test_null_star_rating_never_meets():
    rows = [{"sr": None}, {"sr": 5.5}]
    assert met("5 <= score.sr < 6", rows) == [False, True]
    assert met("not score.sr > 100", rows) == [False, True]
    assert met("score.sr == score.sr", [{"sr": None}]) == [False]
    assert met("score.passed or score.sr", [{"sr": None}]) == [False]


def test_condition_without_star_rating_ignores_a_null_one():
    rows = [{"sr": None, "max_combo": 600}, {"sr": 3.0, "max_combo": 600}, {"sr": None, "max_combo": 10}]
    assert met("500 <= score.max_combo and mode_vn == 0", rows) == [True, True, False]


def test_null_or_out_of_domain_inputs_never_meet():
    assert met("not score.passed", [{"passed": None}]) == [False]
    assert met("stats.playcount >= 0 or True", [{"playcount": None}]) == [False]
    assert met("score.sr != 1", [{"sr": math.nan}, {"sr": math.inf}, {"sr": 2.0}]) == [False, False, True]
    assert met("score.mods >= 0", [{"mods": 2**40}, {"mods": INT32_MAX}]) == [False, True]


def test_narrower_input_dtypes_are_cast():
    df = pl.DataFrame(
        {"full_combo": pl.Series([1, 0], dtype=pl.Int8), "mods": pl.Series([2**31 - 1, 3], dtype=pl.Int32)}
    )
    compiled = compile_condition("score.full_combo and score.mods * score.mods > 3458764513820540928")  # 3 * 2**60
    assert df.select(compiled.expr).to_series().to_list() == [True, False]


def test_unknown_name_carries_the_name_and_id():
    with pytest.raises(UnknownName) as info:
        compile_condition("score.pp > 100 and mode_vn == 0", achievement_id=7)
    assert info.value.name == "score.pp"
    assert info.value.text == "score.pp"
    assert info.value.achievement_id == 7
    assert info.value.condition == "score.pp > 100 and mode_vn == 0"
    assert "achievement 7" in str(info.value) and "score.pp" in str(info.value)


@pytest.mark.parametrize("name", ["foo", "score", "stats", "score.rank", "stats.pp", "user.id", "Score.sr", "score.sr.real"])
def test_unknown_names(name):
    with pytest.raises(UnknownName) as info:
        compile_condition(f"1 <= {name} and mode_vn == 0")
    assert info.value.name == name
    assert info.value.achievement_id is None


UNSUPPORTED = [
    ("abs(score.sr) > 1", "call"),
    ("score.mods in (1, 2)", "in"),
    ("score.mods not in (1, 2)", "not in"),
    ("score.mods is 1", "is"),
    ("score.passed is not True", "is not"),
    ("score.sr[0]", "subscript"),
    ("(lambda: 1)()", "call"),
    ("lambda: 1", "lambda"),
    ("f'{score.sr}'", "f-string"),
    ("'text'", "str constant"),
    ("None", "None"),
    ("1j", "complex constant"),
    ("1e999 > score.sr", "infinite float constant"),
    ("1 if score.passed else 0", "conditional expression"),
    ("score.sr / 2 > 1", "/"),
    ("score.mods // 2", "//"),
    ("score.mods % 2", "%"),
    ("2 ** 3 < score.mods", "**"),
    ("1 << score.mods", "<<"),
    ("score.mods >> 1", ">>"),
    ("score.mods @ 1", "@"),
    ("(x := 1)", "assignment expression"),
    ("(1).real", "attribute of an expression"),
    ("[1, 2]", "List"),
    ("score.sr >", "not a Python expression"),
    ("", "not a Python expression"),
    ("score.sr\0", "not a Python expression"),
    # refused because polars could not compute them exactly
    ("score.sr & 1", "& on a value that may be a float"),
    ("(score.sr or 1) | 1", "| on a value that may be a float"),
    ("~score.sr", "~ on a value that may be a float"),
    ("score.mods * score.mods * score.mods > 0", "integer range beyond Int64"),
    ("score.mods * score.mods + score.mods * score.mods > 0", "integer range beyond Int64"),
    ("99999999999999999999 > score.mods", "integer range beyond Int64"),
    ("score.sr < 9007199254740993", "integer beyond 2**53 compared with a float"),
    ("(score.sr or score.mods * score.mods) > 1", "integer mixed with float beyond 2**53"),
]


@pytest.mark.parametrize(("text", "construct"), UNSUPPORTED)
def test_unsupported_constructs(text, construct):
    with pytest.raises(UnsupportedSyntax) as info:
        compile_condition(text, achievement_id=3)
    assert info.value.construct == construct
    assert info.value.achievement_id == 3
    assert info.value.condition == text


def test_leading_whitespace_is_ignored_like_eval():
    assert met("  \tscore.passed", [{"passed": True}]) == [True]


# --- property: every catalogue condition agrees with eval -------------------------------------------

CATALOGUE = [a for a in load_catalogue() if a.compiled is not None]  # rules: tests/test_rules.py
MOD_BITS = (1, 2, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 8192, 16384)
SR_EDGES = [0.0] + [x for k in range(1, 12) for x in (k - 0.01, float(k))]
COMBO_EDGES = [0, 499, 500, 749, 750, 999, 1000, 1999, 2000, 3000]
THRESHOLDS = sorted(
    {int(n) for a in CATALOGUE if a.family in ("playcount", "hits", "combo") for n in re.findall(r"\d+", a.cond)} - {0, 1, 2, 3}
)
COUNT_EDGES = [t + d for t in THRESHOLDS for d in (-1, 0, 1)]

catalogue_rows = st.fixed_dictionaries(
    {
        "sr": st.one_of(
            st.floats(0, 12).map(lambda x: round(x, 2)), st.sampled_from(SR_EDGES), st.none()
        ),
        "mods": st.one_of(
            st.integers(0, 2**30),
            st.sets(st.sampled_from(MOD_BITS)).map(sum),
        ),
        "max_combo": st.one_of(st.integers(0, 3000), st.sampled_from(COMBO_EDGES)),
        "full_combo": st.booleans(),
        "passed": st.booleans(),
        "mode_vn": st.integers(0, 3),
        "playcount": st.one_of(st.integers(0, 60_000), st.sampled_from(COUNT_EDGES)),
        "total_hits": st.one_of(st.integers(0, 50_000_000), st.sampled_from(COUNT_EDGES)),
        "acc": st.one_of(st.floats(0, 100), st.sampled_from([0.0, 84.99999999999999, 85.0, 85.00000000000001, 100.0])),
    }
)
CATALOGUE_CODE = {a.id: compile(a.cond, f"<achievement {a.id}>", "eval") for a in CATALOGUE}


def test_catalogue_thresholds_found():
    assert {500, 750, 1000, 2000, 5000, 50000, 30000, 3000000, 4000000} <= set(THRESHOLDS)
    assert {30_000_000, 20_000_000, 40_000_000} <= set(THRESHOLDS)  # tier-4 hit counts, ids 97-99


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(rows=st.lists(catalogue_rows, min_size=1, max_size=120))
def test_every_catalogue_condition_agrees_with_eval(rows):
    got = frame(rows).select(a.compiled.expr.alias(str(a.id)) for a in CATALOGUE)
    for a in CATALOGUE:
        want = [
            False if a.uses_sr and row["sr"] is None else python_truth(CATALOGUE_CODE[a.id], row) for row in rows
        ]
        assert got[str(a.id)].to_list() == want, a.cond


# --- property: random expressions of the supported grammar agree with eval -------------------------

INT_LITERALS = ["0", "1", "2", "3", "5", "8", "100", "1000", "2147483647", "2147483648", "9007199254740993", "4611686018427387904"]
FLOAT_LITERALS = ["0.0", "0.5", "1.0", "4.99", "5.0", "10.99", "1e300"]


def _operand(text: str) -> str:
    """A right-hand operand of an operator: `x + not y` is a syntax error, so a leading `not` gets parentheses."""
    return f"({text})" if text.startswith("not ") else text


def _extend(children):
    wrapped = st.tuples(children, st.booleans()).map(lambda t: f"({t[0]})" if t[1] else t[0])
    unary = st.tuples(st.sampled_from(["-", "+", "~", "not "]), wrapped).map(
        lambda t: t[0] + (t[1] if t[0] == "not " else _operand(t[1]))
    )
    binary = st.tuples(wrapped, st.sampled_from(["+", "-", "*", "&", "|", "^"]), wrapped).map(
        lambda t: f"{t[0]} {t[1]} {_operand(t[2])}"
    )
    compare = st.tuples(
        wrapped, st.lists(st.tuples(st.sampled_from(["==", "!=", "<", "<=", ">", ">="]), wrapped), min_size=1, max_size=3)
    ).map(lambda t: t[0] + "".join(f" {op} {_operand(x)}" for op, x in t[1]))
    boolean = st.tuples(st.sampled_from([" and ", " or "]), st.lists(wrapped, min_size=2, max_size=3)).map(
        lambda t: t[0].join(t[1])
    )
    return st.one_of(unary, binary, compare, boolean)


expressions = st.recursive(
    st.one_of(
        st.sampled_from(sorted(NAMES)),
        st.sampled_from(sorted(NAMES)),
        st.sampled_from(INT_LITERALS),
        st.sampled_from(FLOAT_LITERALS + ["True", "False"]),
    ),
    _extend,
    max_leaves=10,
)


def _ints():
    return st.one_of(
        st.integers(-3, 8),
        st.integers(0, 3000),
        st.integers(INT32_MIN, INT32_MAX),
        st.sampled_from([INT32_MIN, INT32_MAX, 2**30]),
        st.none(),
    )


any_rows = st.fixed_dictionaries(
    {
        "sr": st.one_of(
            st.floats(0, 12).map(lambda x: round(x, 2)),
            st.sampled_from([0.0, -0.0, 0.99, 1.0, 4.99, 5.0, -1.5, 2.0**53, 3.4028234663852886e38]),
            st.floats(-1e6, 1e6),
            st.none(),
        ),
        "mods": _ints(),
        "max_combo": _ints(),
        "full_combo": st.one_of(st.booleans(), st.none()),
        "passed": st.one_of(st.booleans(), st.none()),
        "mode_vn": st.one_of(st.integers(0, 3), _ints()),
        "playcount": _ints(),
        "total_hits": _ints(),
        "acc": st.one_of(st.floats(0, 100), st.floats(-1e6, 1e6), st.sampled_from([85.0, -0.0, 2.0**40]), st.none()),
    }
)

# What the compiler may refuse in a grammatical string: operations polars could not compute exactly.
EXACTNESS_REFUSALS = {
    "float range",
    "integer range beyond Int64",
    "integer mixed with float beyond 2**53",
    "integer beyond 2**53 compared with a float",
    "~ on a value that may be a float",
    "& on a value that may be a float",
    "| on a value that may be a float",
    "^ on a value that may be a float",
}


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=expressions, rows=st.lists(any_rows, min_size=1, max_size=25))
def test_random_expression_agrees_with_eval(text, rows):
    try:
        compiled = compile_condition(text)
    except UnsupportedSyntax as exc:
        assert exc.construct in EXACTNESS_REFUSALS, (text, exc)
        event(f"refused: {exc.construct}")
        return
    event("compiled")
    got = frame(rows).select(compiled.expr).to_series()
    assert got.dtype == pl.Boolean and got.null_count() == 0
    assert got.to_list() == expected(text, compiled, rows), text


# --- property: unsupported constructs and unknown names always raise --------------------------------

BAD_FRAGMENTS = [(text, UnsupportedSyntax) for text, _ in UNSUPPORTED if text not in ("", "score.sr >", "score.sr\0")] + [
    ("__import__('os').system('true')", UnsupportedSyntax),
    ("[x for x in (1,)]", UnsupportedSyntax),
    ("{1: 2}", UnsupportedSyntax),
    ("(1, 2)", UnsupportedSyntax),
    ("b'x'", UnsupportedSyntax),
    ("...", UnsupportedSyntax),
    ("score.sr if score.passed else 0", UnsupportedSyntax),
    ("foo", UnknownName),
    ("score", UnknownName),
    ("stats", UnknownName),
    ("score.pp", UnknownName),
    ("stats.rank", UnknownName),
    ("user.id", UnknownName),
    ("mode", UnknownName),
    ("score.sr.real", UnknownName),
]


@settings(max_examples=300, deadline=None)
@given(
    base=expressions,
    fragment=st.sampled_from(BAD_FRAGMENTS),
    shape=st.sampled_from(["{f}", "{b} and {f}", "{f} or {b}", "{b} + {f}", "{f} == {b}", "not {f}", "{b} < {f} < {b}"]),
)
def test_bad_constructs_always_raise(base, fragment, shape):
    bad, error = fragment
    text = shape.format(b=f"({base})", f=f"({bad})")
    try:
        compile_condition(base)
    except ConditionError:
        error = ConditionError  # the base may be refused first
    with pytest.raises(error):
        compile_condition(text)
