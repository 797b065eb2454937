"""Achievement conditions: the catalogue as data, and the compiler of condition strings into polars expressions.

    load_catalogue() -> Catalogue            the 96 achievements of achievements.csv, each compiled
    compile_condition(text) -> CompiledCondition
    NAMES / SCHEMA                           the eight condition names and the frame columns they read
"""

from conditions.catalogue import FAMILIES, Achievement, Catalogue, family_of, load_catalogue
from conditions.compiler import NAMES, OUTPUT, SCHEMA, Column, CompiledCondition, compile_condition
from conditions.errors import ConditionError, UnknownName, UnsupportedSyntax

__all__ = [
    "FAMILIES",
    "NAMES",
    "OUTPUT",
    "SCHEMA",
    "Achievement",
    "Catalogue",
    "Column",
    "CompiledCondition",
    "ConditionError",
    "UnknownName",
    "UnsupportedSyntax",
    "compile_condition",
    "family_of",
    "load_catalogue",
]
