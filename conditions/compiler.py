"""Compile achievement condition strings into polars expressions.

The live server (score-service `app/usecases/score.py`) evaluates each condition with Python's
`eval(cond)` in boolean context, with the names `score`, `mode_vn` and `stats` bound; a true value
grants the achievement. `compile_condition` translates the same text, parsed by Python's own `ast`,
into one polars expression whose value on every row is the truthiness `eval` would give. Python's
precedence therefore holds unchanged (`score.mods & 1 == 0` means `(mods & 1) == 0`).

Exactness. Each sub-expression carries the Python types it can take on a row (bool, int, float) and
a bound on its magnitude, derived from the input domains in `NAMES` (MySQL `int` columns; a star
rating is an f32). The compiler refuses, with `UnsupportedSyntax`, anything whose polars result could
differ from Python's: bitwise operators or `~` on a value that may be a float, integer arithmetic
that could leave Int64, an integer beyond 2**53 compared with or mixed into a float, float
arithmetic that could overflow.
"""

from __future__ import annotations

import ast
import math
from dataclasses import dataclass, field

import polars as pl

from conditions.errors import UnknownName, UnsupportedSyntax

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
F32_MAX = 3.4028234663852886e38
_INT64_MAX = 2**63 - 1
_EXACT_FLOAT_INT = 2**53  # every integer up to this magnitude is exactly a float
_FLOAT_LIMIT = 2**1000  # far from overflow to inf, hence no NaN


@dataclass(frozen=True, slots=True)
class Column:
    """Where one condition name lives in the frame a compiled condition is evaluated on.

    `column` is the column name, `dtype` its polars dtype (the expression casts to it, so narrower
    integers and 0/1 integers for Boolean columns work too), `low`/`high` the domain of its values.
    A value outside the domain, NaN or infinity is treated like null: the row does not meet the
    condition.
    """

    column: str
    dtype: type[pl.DataType]
    low: int | float
    high: int | float


NAMES: dict[str, Column] = {
    # star rating of (beatmap_md5, mode_vn, full mods), rounded to 2 dp; null when it could not be computed
    "score.sr": Column("sr", pl.Float64, -F32_MAX, F32_MAX),
    "score.mods": Column("mods", pl.Int64, INT32_MIN, INT32_MAX),
    "score.max_combo": Column("max_combo", pl.Int64, INT32_MIN, INT32_MAX),
    "score.full_combo": Column("full_combo", pl.Boolean, False, True),
    "score.passed": Column("passed", pl.Boolean, False, True),
    "mode_vn": Column("mode_vn", pl.Int64, INT32_MIN, INT32_MAX),
    "stats.playcount": Column("playcount", pl.Int64, INT32_MIN, INT32_MAX),
    "stats.total_hits": Column("total_hits", pl.Int64, INT32_MIN, INT32_MAX),
    # the live accuracy in percent (conditions.rules.accuracy_expr); from smallint counts, |acc| < 2**40
    "score.acc": Column("acc", pl.Float64, -(2.0**40), 2.0**40),
}
"""The nine names a condition may use (score-service binds `score`, `mode_vn`, `stats`), by dotted name."""

SCHEMA: dict[str, type[pl.DataType]] = {c.column: c.dtype for c in NAMES.values()}
"""Column name -> dtype of a frame holding every name, e.g. `pl.DataFrame(rows, schema=SCHEMA)`."""

OUTPUT = "met"
"""Name of the column a compiled expression produces."""


@dataclass(frozen=True, slots=True)
class CompiledCondition:
    """A condition string and its polars translation.

    `expr` evaluates, on a frame with the columns of `columns` (dtypes as in `NAMES`), to one
    Boolean per row named "met", never null: the condition's truthiness under Python `eval`, and
    False on a row where any column it uses is null or outside its domain (an unknown star rating
    grants nothing). A condition using no name is broadcast to the frame's height.
    `names` are the dotted names used, e.g. frozenset({"score.sr", "mode_vn"}).
    Equality and hashing use `text` and `names` only.
    """

    text: str
    expr: pl.Expr = field(compare=False, repr=False)
    names: frozenset[str]

    @property
    def columns(self) -> frozenset[str]:
        """Frame columns the expression reads, e.g. frozenset({"sr", "mode_vn"})."""
        return frozenset(NAMES[n].column for n in self.names)


def compile_condition(text: str, achievement_id: int | None = None) -> CompiledCondition:
    """Compile one condition string (a Python expression) into a `CompiledCondition`.

    The text is parsed as `eval` would (leading spaces and tabs ignored). Supported: the nine names
    of `NAMES`; int, float and bool constants; `and`, `or` (with Python's value semantics), `not`;
    comparisons `== != < <= > >=`, chained; unary `- + ~`; binary `+ - * & | ^`.
    Raises `UnknownName` for any other name (`score.pp`, `user`, bare `score`) and `UnsupportedSyntax`
    for anything else (calls, `/`, `//`, `%`, `**`, `<<`, `>>`, `in`, `is`, subscripts, strings,
    lambdas, conditional expressions, ...), for text that is not an expression, and for operations
    that could not be computed exactly (see the module docstring). `achievement_id` is only carried
    into the errors.

    Mirrors score-service `app/usecases/score.py`, which grants when `eval(cond)` is true. The null
    rule (no grant on an unknown star rating) is this project's: the live server never lacked one.
    """
    return _Compiler(text, achievement_id).compile()


@dataclass(frozen=True, slots=True)
class _Value:
    """A compiled sub-expression; `bounds` maps each Python type it can take on a row to a bound of its magnitude."""

    expr: pl.Expr
    bounds: dict[type, int]

    @property
    def dtype(self) -> type[pl.DataType]:
        return _dtype(set(self.bounds))

    def as_dtype(self, dtype: type[pl.DataType]) -> pl.Expr:
        return self.expr if dtype == self.dtype else self.expr.cast(dtype)

    def truth(self) -> pl.Expr:
        return self.expr if self.dtype == pl.Boolean else self.expr != 0


def _dtype(types: set[type]) -> type[pl.DataType]:
    """The polars dtype holding values of these Python types: Float64 if any is float, Boolean if all are bool."""
    if float in types:
        return pl.Float64
    return pl.Boolean if types == {bool} else pl.Int64


_PYTHON_TYPE = {pl.Float64: float, pl.Int64: int, pl.Boolean: bool}
_COMPARE = {
    ast.Eq: pl.Expr.__eq__,
    ast.NotEq: pl.Expr.__ne__,
    ast.Lt: pl.Expr.__lt__,
    ast.LtE: pl.Expr.__le__,
    ast.Gt: pl.Expr.__gt__,
    ast.GtE: pl.Expr.__ge__,
}
_ARITHMETIC = {ast.Add: pl.Expr.__add__, ast.Sub: pl.Expr.__sub__, ast.Mult: pl.Expr.__mul__}
_BITWISE = {ast.BitAnd: pl.Expr.__and__, ast.BitOr: pl.Expr.__or__, ast.BitXor: pl.Expr.__xor__}
_LABELS = {
    ast.BitAnd: "&", ast.BitOr: "|", ast.BitXor: "^",
    ast.Div: "/", ast.FloorDiv: "//", ast.Mod: "%", ast.Pow: "**", ast.LShift: "<<", ast.RShift: ">>",
    ast.MatMult: "@", ast.In: "in", ast.NotIn: "not in", ast.Is: "is", ast.IsNot: "is not",
    ast.Call: "call", ast.Subscript: "subscript", ast.Lambda: "lambda", ast.IfExp: "conditional expression",
    ast.JoinedStr: "f-string", ast.NamedExpr: "assignment expression", ast.Attribute: "attribute",
}


class _Compiler:
    """One compilation: walks the tree, records the names used, raises errors naming the condition."""

    def __init__(self, text: str, achievement_id: int | None) -> None:
        self.text = text
        self.source = text.lstrip(" \t")  # what `eval` parses; source segments are relative to it
        self.achievement_id = achievement_id
        self.names: set[str] = set()

    def unsupported(self, construct: str, node: ast.AST | None = None) -> UnsupportedSyntax:
        piece = (ast.get_source_segment(self.source, node) if node is not None else None) or self.text
        return UnsupportedSyntax(construct, piece, condition=self.text, achievement_id=self.achievement_id)

    def compile(self) -> CompiledCondition:
        try:
            tree = ast.parse(self.source, mode="eval")
        except (SyntaxError, ValueError) as exc:  # ValueError: null bytes
            raise self.unsupported("not a Python expression") from exc
        met = self.visit(tree.body).truth()
        if self.names:
            in_domain = []
            for name in sorted(self.names):
                spec = NAMES[name]
                col = pl.col(spec.column)
                in_domain.append(
                    col.is_not_null() if spec.dtype == pl.Boolean else col.is_between(spec.low, spec.high)
                )
            expr = pl.when(pl.all_horizontal(in_domain)).then(met).otherwise(False)
        else:
            expr = pl.repeat(met, pl.len())
        return CompiledCondition(self.text, expr.alias(OUTPUT), frozenset(self.names))

    def checked(self, value: _Value, node: ast.AST) -> _Value:
        """Refuse a value polars could not hold exactly (the bounds hold on every row)."""
        ints = [b for t, b in value.bounds.items() if t is not float]
        if float in value.bounds:
            if value.bounds[float] > _FLOAT_LIMIT:
                raise self.unsupported("float range", node)
            if ints and max(ints) > _EXACT_FLOAT_INT:
                raise self.unsupported("integer mixed with float beyond 2**53", node)
        elif max(ints) > _INT64_MAX:
            raise self.unsupported("integer range beyond Int64", node)
        return value

    def visit(self, node: ast.AST) -> _Value:
        if isinstance(node, ast.Constant):
            return self.constant(node)
        if isinstance(node, ast.Name | ast.Attribute):
            return self.name(node)
        if isinstance(node, ast.BoolOp):
            return self.bool_op(node)
        if isinstance(node, ast.UnaryOp):
            return self.unary(node)
        if isinstance(node, ast.BinOp):
            return self.binary(node)
        if isinstance(node, ast.Compare):
            return self.compare(node)
        raise self.unsupported(_LABELS.get(type(node), type(node).__name__), node)

    def constant(self, node: ast.Constant) -> _Value:
        value = node.value
        if isinstance(value, bool):
            return _Value(pl.lit(value, dtype=pl.Boolean), {bool: int(value)})
        if isinstance(value, int):
            if abs(value) > _INT64_MAX:
                raise self.unsupported("integer range beyond Int64", node)
            return _Value(pl.lit(value, dtype=pl.Int64), {int: abs(value)})
        if isinstance(value, float):
            if not math.isfinite(value):
                raise self.unsupported("infinite float constant", node)
            return self.checked(_Value(pl.lit(value, dtype=pl.Float64), {float: math.ceil(abs(value))}), node)
        raise self.unsupported("None" if value is None else f"{type(value).__name__} constant", node)

    def name(self, node: ast.Name | ast.Attribute) -> _Value:
        parts, root = [], node
        while isinstance(root, ast.Attribute):
            parts.append(root.attr)
            root = root.value
        if not isinstance(root, ast.Name):
            raise self.unsupported("attribute of an expression", node)
        dotted = ".".join([root.id, *reversed(parts)])
        if dotted not in NAMES:
            raise UnknownName(dotted, condition=self.text, achievement_id=self.achievement_id)
        self.names.add(dotted)
        spec = NAMES[dotted]
        bound = math.ceil(max(abs(spec.low), abs(spec.high)))
        return _Value(pl.col(spec.column).cast(spec.dtype), {_PYTHON_TYPE[spec.dtype]: bound})

    def bool_op(self, node: ast.BoolOp) -> _Value:
        # `a and b` is b if a is true else a; `a or b` is a if a is true else b (the operand, not a bool).
        result = self.visit(node.values[0])
        for operand in node.values[1:]:
            right = self.visit(operand)
            bounds = {t: max(result.bounds.get(t, 0), right.bounds.get(t, 0)) for t in result.bounds | right.bounds}
            dtype = _dtype(set(bounds))
            left_expr, right_expr = result.as_dtype(dtype), right.as_dtype(dtype)
            if dtype == pl.Boolean:
                expr = left_expr & right_expr if isinstance(node.op, ast.And) else left_expr | right_expr
            elif isinstance(node.op, ast.And):
                expr = pl.when(result.truth()).then(right_expr).otherwise(left_expr)
            else:
                expr = pl.when(result.truth()).then(left_expr).otherwise(right_expr)
            result = self.checked(_Value(expr, bounds), node)
        return result

    def unary(self, node: ast.UnaryOp) -> _Value:
        operand = self.visit(node.operand)
        if isinstance(node.op, ast.Not):
            return _Value(~operand.truth(), {bool: 1})
        # On a bool, - + ~ give an int (True -> -1, 1, -2).
        bounds: dict[type, int] = {}
        for t, b in operand.bounds.items():
            result_type = float if t is float else int
            bounds[result_type] = max(bounds.get(result_type, 0), b)
        if isinstance(node.op, ast.Invert):
            if float in bounds:
                raise self.unsupported("~ on a value that may be a float", node)
            return self.checked(_Value(~operand.as_dtype(pl.Int64), {int: bounds[int] + 1}), node)
        expr = operand.as_dtype(_dtype(set(bounds)))
        return self.checked(_Value(-expr if isinstance(node.op, ast.USub) else expr, bounds), node)

    def binary(self, node: ast.BinOp) -> _Value:
        op = type(node.op)
        if op not in _ARITHMETIC and op not in _BITWISE:
            raise self.unsupported(_LABELS.get(op, op.__name__), node)
        left, right = self.visit(node.left), self.visit(node.right)
        bounds: dict[type, int] = {}
        for lt, lb in left.bounds.items():
            for rt, rb in right.bounds.items():
                if op in _BITWISE:
                    if float in (lt, rt):
                        raise self.unsupported(f"{_LABELS[op]} on a value that may be a float", node)
                    # bool op bool stays bool; otherwise both lie in [-2**n, 2**n) and so does the result
                    t, b = (bool, 1) if lt is rt is bool else (int, 2 ** max(lb.bit_length(), rb.bit_length()))
                else:
                    t, b = (float if float in (lt, rt) else int), (lb * rb if op is ast.Mult else lb + rb)
                bounds[t] = max(bounds.get(t, 0), b)
        dtype = _dtype(set(bounds))
        polars_op = _BITWISE[op] if op in _BITWISE else _ARITHMETIC[op]
        return self.checked(_Value(polars_op(left.as_dtype(dtype), right.as_dtype(dtype)), bounds), node)

    def compare(self, node: ast.Compare) -> _Value:
        # `a < b <= c` is `(a < b) and (b <= c)`; every comparison result is a bool.
        for op in node.ops:
            if type(op) not in _COMPARE:
                raise self.unsupported(_LABELS.get(type(op), type(op).__name__), node)
        operands = [self.visit(node.left), *(self.visit(c) for c in node.comparators)]
        parts = []
        for op, left, right in zip(node.ops, operands, operands[1:]):
            if float in left.bounds or float in right.bounds:
                # Python compares int with float exactly; polars converts the int to a float first.
                ints = [b for v in (left, right) for t, b in v.bounds.items() if t is not float]
                if ints and max(ints) > _EXACT_FLOAT_INT:
                    raise self.unsupported("integer beyond 2**53 compared with a float", node)
                dtype = pl.Float64
            else:
                dtype = pl.Int64
            parts.append(_COMPARE[type(op)](left.as_dtype(dtype), right.as_dtype(dtype)))
        return _Value(pl.all_horizontal(parts) if len(parts) > 1 else parts[0], {bool: 1})
