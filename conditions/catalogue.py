"""The achievement catalogue: the live achievements the stored plays can decide, with their rules.

`achievements.csv` holds one row per achievement of today's live registry that the stored plays can
decide: ids 1-99 and 122 as condition texts (the live function's return expression, compiled to polars
by conditions.compiler), 123 and 120 as named polars rules (conditions.rules) because the condition
grammar cannot say them. Each row names the live function it mirrors (`source`: osuAkatsuki/score-service
`app/achievements/<file>.py:<function> @ <commit>`, conditions.rules.SCORE_SERVICE_COMMIT) and the
`file` it is registered under (`registry_file`).

The live server (score-service `app/state/cache.py`) reads `less_achievements` and, for each row, looks
up a registered function by the row's `file`; a row whose file no function is registered under is
skipped, and so is a function no row names. An achievement is therefore `grantable` only when its
registry file equals its row's `file` (the `file` of today's live database: osuAkatsuki/mysql-database
migrations 0022 and 0024). 120 is registered as all-secret-consolation while its row is
all-secret-consolation_prize: the live server never grants it, so neither does a run; the run reports
how many it would grant if the names matched.

`not_granted.csv` lists the other live ids the plays cannot decide (rank milestones 100-115, secret
medals whose function returns False), with the reason (`load_not_granted`, `never_granted`).

Ids 21-23 use today's rule (no upper combo bound); `seed_cond` keeps their older banded text, for
reference only: it is not compiled.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from importlib import resources
from pathlib import Path

import polars as pl

from conditions.compiler import CompiledCondition, compile_condition
from conditions.errors import ConditionError
from conditions.rules import RULES

FAMILIES = ("skill_pass", "skill_fc", "combo", "playcount", "hits", "mod_intro", "stumbler", "jackpot")
"""Families of the achievements a run may grant, in report order."""

NOT_GRANTED_FAMILIES = ("consolation",)
"""Families of catalogue achievements the live server never grants (evaluated for the report only)."""

_FAMILY_OF_FILE = (
    ("*-skill-pass-*", "skill_pass"),
    ("*-skill-fc-*", "skill_fc"),
    ("*-combo-*", "combo"),
    ("*-plays-*", "playcount"),
    ("*-hits-*", "hits"),
    ("all-intro-*", "mod_intro"),
    ("all-secret-stumbler", "stumbler"),
    ("all-secret-jackpot", "jackpot"),
    ("all-secret-consolation*", "consolation"),
)
_COLUMNS = ("id", "file", "name", "desc", "cond", "seed_cond")
_OPTIONAL_COLUMNS = ("rule", "registry_file", "source")  # empty when absent: cond compiled, registered as `file`
_NOT_GRANTED_COLUMNS = ("id", "file", "registry_file", "name", "desc", "mode", "hidden", "reason")
_MODE_OF_PREFIX = {"osu": 0, "taiko": 1, "fruits": 2, "mania": 3}


@dataclass(frozen=True, slots=True)
class Achievement:
    """One catalogue row.

    `id` is `less_achievements.id`; `file` the row's `file` in today's live database (e.g.
    "osu-skill-pass-5"); `registry_file` the name score-service registers the live function under
    (equal to `file` except where the live names disagree); `cond` the condition text the catalogue
    evaluates ("" for a rule); `rule` the name of a conditions.rules.RULES entry ("" for a condition);
    `seed_cond` the older text ("" if none); `family` one of FAMILIES or NOT_GRANTED_FAMILIES, derived
    from `file`; `compiled` the condition compiled by `compile_condition` (None for a rule); `uses_sr`
    whether it reads the star rating (`score.sr`); `source` the live function mirrored ("" if unknown).
    `expr` is the Boolean "met" expression (never null) over a prepared shard's `columns`.
    """

    id: int
    file: str
    name: str
    desc: str
    cond: str
    seed_cond: str
    family: str
    compiled: CompiledCondition | None
    uses_sr: bool
    rule: str = ""
    registry_file: str = ""
    source: str = ""
    expr: pl.Expr = field(default=None, compare=False, repr=False)
    columns: frozenset[str] = field(default=frozenset(), compare=False, repr=False)

    @property
    def grantable(self) -> bool:
        """Whether the live server can grant it: its registry file is its row's `file` (app/state/cache.py)."""
        return self.registry_file == self.file

    @property
    def rule_text(self) -> str:
        """The live rule in one line: the condition text, or the rule's description."""
        return self.cond if self.compiled is not None else RULES[self.rule].text


@dataclass(frozen=True, slots=True)
class NotGranted:
    """A live achievement a run never grants (conditions/not_granted.csv, or a catalogue achievement
    that is not `grantable`).

    `file` / `registry_file` as in Achievement; `mode` the live row's mode (0-3, None for every mode);
    `hidden` its hush-hush flag; `reason` why the stored plays cannot decide it; `detail` adds the
    name mismatch, if any.
    """

    id: int
    file: str
    registry_file: str
    name: str
    desc: str
    mode: int | None
    hidden: bool
    reason: str

    @property
    def detail(self) -> str:
        """`reason`, plus the live name mismatch when the registry file is not the row's file."""
        if self.registry_file == self.file:
            return self.reason
        return f"{self.reason}; registered as {self.registry_file!r}, row file {self.file!r}"


@dataclass(frozen=True, slots=True)
class Catalogue:
    """An ordered set of achievements (CSV order) and the version of the condition texts.

    `version` is the first 12 hex digits of the CSV's sha256; a sub-catalogue from `select` keeps
    it, since its conditions are the same texts. `by_id` maps id -> Achievement. Iterating gives every
    achievement, the not `grantable` ones (evaluated for the report only) included; `grantable` gives
    the others.
    """

    achievements: tuple[Achievement, ...]
    version: str
    by_id: dict[int, Achievement] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_id", {a.id: a for a in self.achievements})

    def __len__(self) -> int:
        return len(self.achievements)

    def __iter__(self):
        return iter(self.achievements)

    @property
    def grantable(self) -> tuple[Achievement, ...]:
        """The achievements a run may grant (CSV order)."""
        return tuple(a for a in self.achievements if a.grantable)

    def select(self, ids: Iterable[int]) -> Catalogue:
        """The sub-catalogue of these ids, in catalogue order. Raises KeyError naming unknown ids."""
        wanted = set(ids)
        unknown = wanted - self.by_id.keys()
        if unknown:
            raise KeyError(f"no achievements with ids {sorted(unknown)}")
        return Catalogue(tuple(a for a in self.achievements if a.id in wanted), self.version)


def family_of(file: str) -> str | None:
    """The family of an achievement `file` name (e.g. "taiko-hits-30000" -> "hits"), or None."""
    return next((family for pattern, family in _FAMILY_OF_FILE if fnmatchcase(file, pattern)), None)


def load_catalogue(path: Path | None = None) -> Catalogue:
    """Read and compile a catalogue CSV (columns id,file,name,desc,cond,seed_cond and optionally
    rule,registry_file,source; UTF-8). A row with a `rule` (a conditions.rules.RULES name) has an
    empty `cond`; an empty `registry_file` means the row's `file`.

    Without `path`, the packaged `conditions/achievements.csv`, loaded once per process.
    Raises ConditionError when the columns are missing, or when any row has a bad or repeated id, a
    `file` of no family, an unknown rule, both a rule and a condition, or a condition that does not
    compile: one error for the whole file, whose
    message lists every failing id and whose `errors` holds the per-row errors (`UnknownName`,
    `UnsupportedSyntax`, ...); `achievement_id` is set when exactly one row failed.
    """
    if path is None:
        return _load_packaged()
    return _parse(Path(path).read_bytes(), str(path))


@functools.cache
def _load_packaged() -> Catalogue:
    data = resources.files(__package__).joinpath("achievements.csv").read_bytes()
    return _parse(data, "conditions/achievements.csv")


def _parse(data: bytes, source: str) -> Catalogue:
    reader = csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline=""))
    missing = [c for c in _COLUMNS if c not in (reader.fieldnames or ())]
    if missing:
        raise ConditionError(f"{source}: missing columns {missing}")
    achievements: list[Achievement] = []
    errors: list[ConditionError] = []
    seen: set[int] = set()
    for row in reader:
        try:
            achievements.append(_achievement(row, seen))
        except ConditionError as exc:
            errors.append(exc)
    if errors:
        ids = ", ".join("?" if e.achievement_id is None else str(e.achievement_id) for e in errors)
        lines = "".join(f"\n  {e}" for e in errors)
        raise ConditionError(
            f"{source}: {len(errors)} row(s) failed to load (ids {ids}):{lines}",
            achievement_id=errors[0].achievement_id if len(errors) == 1 else None,
            errors=tuple(errors),
        ) from errors[0]
    return Catalogue(tuple(achievements), hashlib.sha256(data).hexdigest()[:12])


def _achievement(row: dict[str, str], seen: set[int]) -> Achievement:
    try:
        achievement_id = int(row["id"])
    except (TypeError, ValueError):
        raise ConditionError("bad achievement id", text=str(row["id"])) from None
    if achievement_id in seen:
        raise ConditionError("repeated achievement id", text=row["id"], achievement_id=achievement_id)
    seen.add(achievement_id)
    family = family_of(row["file"] or "")
    if family is None:
        raise ConditionError("file matches no family", text=row["file"] or "", achievement_id=achievement_id)
    rule_name, cond = (row.get("rule") or "").strip(), row["cond"] or ""
    common = dict(
        id=achievement_id,
        file=row["file"],
        name=row["name"] or "",
        desc=row["desc"] or "",
        seed_cond=row["seed_cond"] or "",
        family=family,
        registry_file=(row.get("registry_file") or "").strip() or row["file"],
        source=row.get("source") or "",
    )
    if rule_name:
        if cond.strip():
            raise ConditionError("a row has both a condition and a rule", text=rule_name, condition=cond,
                                 achievement_id=achievement_id)
        if rule_name not in RULES:
            raise ConditionError("unknown rule", text=rule_name, achievement_id=achievement_id)
        rule = RULES[rule_name]
        return Achievement(**common, cond="", compiled=None, uses_sr=False, rule=rule_name, expr=rule.expr,
                           columns=rule.columns)
    compiled = compile_condition(cond, achievement_id)
    return Achievement(**common, cond=compiled.text, compiled=compiled, uses_sr="score.sr" in compiled.names,
                       expr=compiled.expr, columns=compiled.columns)


@functools.cache
def load_not_granted() -> tuple[NotGranted, ...]:
    """The live achievements the stored plays cannot decide (conditions/not_granted.csv), by id.

    Ids 100-115 (rank milestones: decided by the user's global rank at submission, which no stored play
    keeps) and the secret medals whose live function returns False (116-119, 121, 124-128); rows as
    seeded by osuAkatsuki/mysql-database migrations 0022 (names), 0024 (files), 0026/0027 (modes).
    Raises ConditionError when the packaged file lacks a column.
    """
    text = resources.files(__package__).joinpath("not_granted.csv").read_text(encoding="utf-8")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    missing = [c for c in _NOT_GRANTED_COLUMNS if c not in (reader.fieldnames or ())]
    if missing:
        raise ConditionError(f"conditions/not_granted.csv: missing columns {missing}")
    return tuple(
        NotGranted(int(r["id"]), r["file"], r["registry_file"], r["name"], r["desc"],
                   int(r["mode"]) if r["mode"].strip() else None, r["hidden"].strip() == "1", r["reason"])
        for r in reader
    )


def never_granted(catalogue: Catalogue | None = None) -> tuple[NotGranted, ...]:
    """Every live achievement a run never grants, sorted by id: the catalogue's not `grantable` ones
    (120: decided by the plays, reported as "would grant") and `load_not_granted()`. Each carries its
    reason (`detail` for the text shown in --help and the report)."""
    catalogue = catalogue or load_catalogue()
    decided = [
        NotGranted(a.id, a.file, a.registry_file, a.name, a.desc, _MODE_OF_PREFIX.get(a.file.split("-", 1)[0]),
                   "-secret-" in a.file, "live never grants it (the report counts what it would grant)")
        for a in catalogue if not a.grantable
    ]
    return tuple(sorted([*decided, *load_not_granted()], key=lambda n: n.id))


def live_rows(catalogue: Catalogue | None = None) -> list[dict]:
    """The `less_achievements` rows of today's live database, for building test and demo databases:
    one dict per id (the catalogue's and `load_not_granted()`'s, sorted by id) with id, file, name,
    desc, hidden (bool) and mode (0-3, None for every mode; for catalogue rows, from the `file` prefix
    as migration 0026 set it)."""
    catalogue = catalogue or load_catalogue()
    rows = [
        {"id": a.id, "file": a.file, "name": a.name, "desc": a.desc, "hidden": "-secret-" in a.file,
         "mode": _MODE_OF_PREFIX.get(a.file.split("-", 1)[0])}
        for a in catalogue
    ]
    rows += [{"id": n.id, "file": n.file, "name": n.name, "desc": n.desc, "hidden": n.hidden, "mode": n.mode}
             for n in load_not_granted() if n.id not in catalogue.by_id]
    return sorted(rows, key=lambda r: r["id"])


def describe_never_granted(catalogue: Catalogue | None = None) -> list[str]:
    """`never_granted` as short lines grouped by reason, e.g. "100-115: needs historical ranks (...)";
    the name mismatches are shown only for achievements the plays decide (120). For --help and reports."""
    catalogue = catalogue or load_catalogue()
    groups: dict[str, list[int]] = {}
    for item in never_granted(catalogue):
        groups.setdefault(item.detail if item.id in catalogue.by_id else item.reason, []).append(item.id)
    return [f"{format_id_ranges(ids)}: {text}" for text, ids in groups.items()]


def format_id_ranges(ids: Iterable[int]) -> str:
    """Achievement ids as ranges, e.g. [97, 98, 99, 122] -> "97-99, 122"."""
    parts: list[list[int]] = []
    for i in sorted(ids):
        if parts and i == parts[-1][1] + 1:
            parts[-1][1] = i
        else:
            parts.append([i, i])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in parts)
