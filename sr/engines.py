"""The SR engines by name: the registry `--engine` chooses from (a module of its own, so that the
engines themselves never import each other's registry).

    live   the live performance service's routing (sr.live.LiveEngine): exact on every reference rating
    rosu   plain rosu-pp-py with the full mods (sr.engine.RosuEngine), for comparison
"""

from __future__ import annotations

from sr.engine import RosuEngine
from sr.live import LiveEngine

DEFAULT_ENGINE = "live"
ENGINES: dict[str, type[RosuEngine]] = {"live": LiveEngine, "rosu": RosuEngine}
ENGINE_NAMES = tuple(ENGINES)


def engine_named(name: str) -> RosuEngine:
    """A new engine of the given name (`ENGINES`). Raises ValueError for an unknown name."""
    if name not in ENGINES:
        raise ValueError(f"unknown SR engine {name!r}; known: {', '.join(sorted(ENGINES))}")
    return ENGINES[name]()
