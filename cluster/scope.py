"""Which users a run covers: activity tiers, explicit user ids, a reproducible sample.

Operators back up a live database once; they asked to try ~100 users first and then to go tier by
tier, most active users first (DOMAIN.md §7). A scope is typed data, never SQL text:

    tier           "active"   users.latest_activity within the last 30 days of the run's reference time
                   "recent"   within 365 days but not active
                   "inactive" older than 365 days
                   "all"      every user with score rows (also users without a users row)
    user_ids       only these users (empty: no list)
    sample_users   a reproducible sample of this many of the users left after the filters above:
                   the users with the smallest sha256(f"{sample_seed}:{user_id}"), so the same seed
                   picks the same users whatever order or shard size, and a user keeps being picked
                   while the population grows

The tiers partition the users, so running `active`, then `recent`, then `inactive` covers each user
once; a later run over any scope grants only what users do not hold yet.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from conditions.catalogue import FAMILIES, never_granted

TIERS = ("active", "recent", "inactive", "all")
DAY = 86_400
ACTIVE_DAYS = 30
RECENT_DAYS = 365


@dataclass(frozen=True, slots=True)
class Scope:
    """The users of a run (see the module docstring). `user_ids` is sorted and unique."""

    tier: str = "all"
    user_ids: tuple[int, ...] = ()
    sample_users: int | None = None
    sample_seed: int = 0

    def __post_init__(self) -> None:
        if self.tier not in TIERS:
            raise ValueError(f"unknown tier {self.tier!r}; one of {', '.join(TIERS)}")
        if self.sample_users is not None and self.sample_users < 1:
            raise ValueError(f"--sample-users must be at least 1, got {self.sample_users}")
        object.__setattr__(self, "user_ids", tuple(sorted({int(u) for u in self.user_ids})))

    @property
    def restricts_users(self) -> bool:
        """True unless the scope is every user (tier all, no list, no sample)."""
        return self.tier != "all" or bool(self.user_ids) or self.sample_users is not None

    def to_dict(self) -> dict:
        return {"tier": self.tier, "user_ids": list(self.user_ids), "sample_users": self.sample_users,
                "sample_seed": self.sample_seed}

    @classmethod
    def from_dict(cls, data: Mapping) -> Scope:
        return cls(data.get("tier", "all"), tuple(data.get("user_ids", ())), data.get("sample_users"),
                   int(data.get("sample_seed", 0)))


ALL_USERS = Scope()
"""The scope of every user (tier all, no list, no sample)."""


def tier_of(latest_activity: int, as_of: int) -> str:
    """The activity tier ("active", "recent" or "inactive") of a users.latest_activity (unix seconds)
    at reference time `as_of` (unix seconds)."""
    if latest_activity >= as_of - ACTIVE_DAYS * DAY:
        return "active"
    if latest_activity >= as_of - RECENT_DAYS * DAY:
        return "recent"
    return "inactive"


def sample_users(user_ids, count: int, seed: int) -> list[int]:
    """The `count` users of `user_ids` with the smallest sha256(f"{seed}:{user_id}"), ascending by id."""
    ranked = sorted(user_ids, key=lambda u: hashlib.sha256(f"{seed}:{int(u)}".encode()).digest())
    return sorted(int(u) for u in ranked[:count])


def select_users(
    rows_by_user: Mapping[int, int], scope: Scope, activity: Mapping[int, int], as_of: int
) -> dict[int, int]:
    """The part of `rows_by_user` (score rows per userid) that `scope` covers.

    `activity` maps users.id -> latest_activity (unix seconds); a user missing from it belongs to no
    tier but "all". Filters apply in the order tier, user list, sample.
    """
    chosen = list(rows_by_user)
    if scope.tier != "all":
        chosen = [u for u in chosen if u in activity and tier_of(activity[u], as_of) == scope.tier]
    if scope.user_ids:
        wanted = set(scope.user_ids)
        chosen = [u for u in chosen if u in wanted]
    if scope.sample_users is not None:
        chosen = sample_users(chosen, scope.sample_users, scope.sample_seed)
    return {u: rows_by_user[u] for u in sorted(chosen)}


ACHIEVEMENT_KINDS = {
    "sr": ("skill_pass", "skill_fc"),
    "stat": ("playcount", "hits"),
    "mod": ("mod_intro",),
    "combo": ("combo",),
    "secret": ("stumbler", "jackpot"),
}
"""`--achievements` words and the catalogue families (conditions.catalogue.FAMILIES) they name; each
family's own name is a word too (e.g. "hits", "jackpot")."""


def achievement_ids_for(spec: str, catalogue) -> tuple[int, ...] | None:
    """The achievement ids named by `spec`: comma-separated words (ACHIEVEMENT_KINDS, family names),
    "all", and ids.

    "all" (alone or among others) gives None, meaning the whole catalogue; otherwise the ids of
    grantable achievements, ascending. `catalogue` is a conditions.catalogue.Catalogue. Raises
    ValueError for an unknown word or id, and for an id the live server never grants (with the reason).
    """
    tokens = [t.strip().lower() for t in spec.split(",") if t.strip()]
    if not tokens:
        raise ValueError("--achievements is empty")
    if "all" in tokens:
        return None
    kinds = {**ACHIEVEMENT_KINDS, **{family: (family,) for family in FAMILIES}}
    never = {item.id: item for item in never_granted(catalogue)}
    chosen: set[int] = set()
    for token in tokens:
        if token.isdigit():
            if int(token) in never:
                raise ValueError(f"achievement {token} is never granted: {never[int(token)].detail}")
            if int(token) not in catalogue.by_id:
                raise ValueError(f"unknown achievement id {token}")
            chosen.add(int(token))
        elif token in kinds:
            chosen |= {a.id for a in catalogue if a.grantable and a.family in kinds[token]}
        else:
            raise ValueError(f"unknown --achievements word {token!r}: {', '.join(kinds)}, all or ids")
    return tuple(sorted(chosen))
