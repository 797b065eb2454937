"""The achievement catalogue: the 96 rows of `achievements.csv`, each with its compiled condition.

The live server matches `less_achievements` rows by `file` and evaluates each row's `cond` with
`eval` (score-service `app/usecases/score.py`); the CSV carries those condition texts. Ids 21-23
use today's rule (no upper combo bound); `seed_cond` keeps their older banded text, for reference
only: it is not compiled.
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

from conditions.compiler import CompiledCondition, compile_condition
from conditions.errors import ConditionError

FAMILIES = ("skill_pass", "skill_fc", "combo", "playcount", "hits", "mod_intro")
"""Achievement families, in report order."""

_FAMILY_OF_FILE = (
    ("*-skill-pass-*", "skill_pass"),
    ("*-skill-fc-*", "skill_fc"),
    ("*-combo-*", "combo"),
    ("*-plays-*", "playcount"),
    ("*-hits-*", "hits"),
    ("all-intro-*", "mod_intro"),
)
_COLUMNS = ("id", "file", "name", "desc", "cond", "seed_cond")


@dataclass(frozen=True, slots=True)
class Achievement:
    """One catalogue row.

    `id` is `less_achievements.id`; `file` the key the live server matches rows by (e.g.
    "osu-skill-pass-5"); `cond` the condition text the catalogue evaluates; `seed_cond` the older
    text ("" if none); `family` one of `FAMILIES`, derived from `file`; `compiled` the condition
    compiled by `compile_condition`; `uses_sr` whether it reads the star rating (`score.sr`).
    """

    id: int
    file: str
    name: str
    desc: str
    cond: str
    seed_cond: str
    family: str
    compiled: CompiledCondition
    uses_sr: bool


@dataclass(frozen=True, slots=True)
class Catalogue:
    """An ordered set of achievements (CSV order) and the version of the condition texts.

    `version` is the first 12 hex digits of the CSV's sha256; a sub-catalogue from `select` keeps
    it, since its conditions are the same texts. `by_id` maps id -> Achievement.
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
    """Read and compile a catalogue CSV (columns id,file,name,desc,cond,seed_cond; UTF-8).

    Without `path`, the packaged `conditions/achievements.csv`, loaded once per process.
    Raises ConditionError when the columns are missing, or when any row has a bad or repeated id, a
    `file` of no family, or a condition that does not compile: one error for the whole file, whose
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
    compiled = compile_condition(row["cond"] or "", achievement_id)
    return Achievement(
        id=achievement_id,
        file=row["file"],
        name=row["name"] or "",
        desc=row["desc"] or "",
        cond=compiled.text,
        seed_cond=row["seed_cond"] or "",
        family=family,
        compiled=compiled,
        uses_sr="score.sr" in compiled.names,
    )
