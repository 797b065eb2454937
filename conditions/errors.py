# ConditionError                 a condition cannot be compiled (raised when the catalogue loads)
#   UnknownName                  a name other than the nine below
#   UnsupportedSyntax            a construct the compiler does not translate (calls, `in`, `is`, subscripts, lambdas, ...)
#
# The nine names (conditions.compiler.NAMES): score.sr, score.mods, score.max_combo, score.full_combo,
# score.passed, score.acc, mode_vn, stats.playcount, stats.total_hits.
"""Errors of the conditions layer.

All of them are raised at compile time, which for the catalogue means when it loads, before any
shard starts: a condition is never turned into a silent False.
"""

from __future__ import annotations


class ConditionError(Exception):
    """A condition cannot be compiled, or a catalogue row cannot be loaded.

    Attributes:
        achievement_id: the row's id, or None (a bare `compile_condition` call, or several rows failed).
        text: the offending text: a name, a piece of the condition, a `file` value, or the whole row.
        condition: the whole condition string ("" when the error is not about one condition).
        errors: when `load_catalogue` fails, the per-row errors it collected (else empty).
    """

    def __init__(
        self,
        detail: str,
        *,
        text: str = "",
        condition: str = "",
        achievement_id: int | None = None,
        errors: tuple[ConditionError, ...] = (),
    ) -> None:
        self.detail = detail
        self.text = text
        self.condition = condition
        self.achievement_id = achievement_id
        self.errors = errors
        where = f"achievement {achievement_id}: " if achievement_id is not None else ""
        shown = f" {text!r}" if text else ""
        inside = f" in {condition!r}" if condition and condition != text else ""
        super().__init__(f"{where}{detail}{shown}{inside}")

    @property
    def achievement_ids(self) -> tuple[int, ...]:
        """Ids of every failing row: from `errors` if any, else `achievement_id` if set."""
        if self.errors:
            return tuple(sorted({e.achievement_id for e in self.errors if e.achievement_id is not None}))
        return () if self.achievement_id is None else (self.achievement_id,)


class UnknownName(ConditionError):
    """The condition uses a dotted name that is not one of the nine in `conditions.compiler.NAMES`.

    `name` (also `text`) is the name as written, e.g. "score.pp", "stats.rank", "user".
    """

    def __init__(self, name: str, *, condition: str = "", achievement_id: int | None = None) -> None:
        self.name = name
        super().__init__("unknown name", text=name, condition=condition, achievement_id=achievement_id)


class UnsupportedSyntax(ConditionError):
    """The condition uses a construct the compiler does not translate exactly.

    `construct` names it ("call", "in", "/", "syntax error", "integer range", ...); `text` is the
    source of the offending piece.
    """

    def __init__(
        self, construct: str, text: str, *, condition: str = "", achievement_id: int | None = None
    ) -> None:
        self.construct = construct
        super().__init__(
            f"unsupported syntax ({construct})", text=text, condition=condition, achievement_id=achievement_id
        )
