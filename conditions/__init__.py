"""Achievement conditions: the catalogue as data, the compiler of condition strings into polars
expressions, and the live rules the string grammar cannot say.

    load_catalogue() -> Catalogue            the live achievements the stored plays can decide (achievements.csv)
    never_granted() -> tuple[NotGranted]     the live achievements a run never grants, with the reason
    compile_condition(text) -> CompiledCondition
    NAMES / SCHEMA                           the nine condition names and the frame columns they read
    RULES, accuracy_expr, grade_expr         polars rules and the live accuracy and grade (conditions.rules)
"""

from conditions.catalogue import (
    FAMILIES, NOT_GRANTED_FAMILIES, Achievement, Catalogue, NotGranted, describe_never_granted, family_of,
    format_id_ranges, live_rows, load_catalogue, load_not_granted, never_granted,
)
from conditions.compiler import NAMES, OUTPUT, SCHEMA, Column, CompiledCondition, compile_condition
from conditions.errors import ConditionError, UnknownName, UnsupportedSyntax
from conditions.rules import RULES, SCORE_SERVICE_COMMIT, Rule, accuracy_expr, grade_expr

__all__ = [
    "FAMILIES",
    "NAMES",
    "NOT_GRANTED_FAMILIES",
    "OUTPUT",
    "RULES",
    "SCHEMA",
    "SCORE_SERVICE_COMMIT",
    "Achievement",
    "Catalogue",
    "Column",
    "CompiledCondition",
    "ConditionError",
    "NotGranted",
    "Rule",
    "UnknownName",
    "UnsupportedSyntax",
    "accuracy_expr",
    "compile_condition",
    "describe_never_granted",
    "family_of",
    "format_id_ranges",
    "grade_expr",
    "live_rows",
    "load_catalogue",
    "load_not_granted",
    "never_granted",
]
