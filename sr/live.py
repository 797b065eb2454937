"""The `live` engine: the live performance service's routing of a (beatmap, mode, mods) to a rating.

performance-service (akatsuki-pp-rs, pinned 2024-11-27; DOMAIN.md §5):
- relax (mods & 128) on osu!: the `osu_2019` star algorithm (sr.osu2019, an exact port);
- autopilot (mods & 8192) on osu!: aim 0, flashlight x0.4, distance-free speed (sr.autopilot);
- everything else (vanilla in every mode, converts, relax taiko/catch/mania): rosu-pp 2.0.0, which
  rosu-pp-py 2.0.1 wraps (sr.engine.RosuEngine).
Relax is checked first, as live does. Rounding to 2 dp happens downstream (sr.rounding.round_live).
"""

from __future__ import annotations

import rosu_pp_py as rosu

from sr import autopilot, osu2019
from sr.engine import RosuEngine
from sr.mods import AP as AUTOPILOT
from sr.mods import RX as RELAX
from sr.mods import relevant_mods

class LiveEngine(RosuEngine):
    """Rates like the live service; `version` names every algorithm it routes to."""

    name = "live"

    def __init__(self) -> None:
        super().__init__()
        self.version = f"{self.version}; autopilot rewrite v1; relax {osu2019.VERSION}"

    def warmup(self) -> None:
        """Compile or load the relax port's kernels once per process (sr.osu2019)."""
        osu2019.warmup()

    def key_mods(self, mode_vn: int, mods: int) -> int:
        """The mods that can change the live rating (sr.mods.relevant_mods)."""
        return relevant_mods(mode_vn, mods)

    def rate_parsed(self, beatmap: rosu.Beatmap, content: bytes, beatmap_md5: str, mode_vn: int, mods: int, memo: dict) -> float:
        """Raw stars by the live routing; relax and autopilot osu! maps are derived once per beatmap
        (in `memo`). Raises RatingError subclasses."""
        if mode_vn == 0 and mods & RELAX:
            if "relax" not in memo:
                memo["relax"] = osu2019.parse(content, beatmap_md5)
            return osu2019.relax_stars(memo["relax"], mods)
        if mode_vn == 0 and mods & AUTOPILOT:
            if "autopilot" not in memo:
                rewritten = autopilot.rewrite_without_distance(content, beatmap_md5)
                memo["autopilot"] = self.parse(rewritten, beatmap_md5, 0)
            return autopilot.autopilot_stars(beatmap, memo["autopilot"], mods, beatmap_md5)
        return super().rate_parsed(beatmap, content, beatmap_md5, mode_vn, mods, memo)
