"""Star-rating engine on rosu-pp-py (pinned 2.0.1: the rosu-pp 2.0.0 algorithm the live service runs).

Like the live service (performance-service, akatsuki-pp-rs), the map is converted to the requested
mode **before** mods are applied (`try_mode(mode)` then `.mods(mods)`), so on a convert key mods such
as mania key counts are ignored; stars use the stable (non-lazer) rules. This `rosu` engine rates relax
and autopilot osu! with the full mods bitmask as stored (rosu-pp-py ignores both bits there); the
`live` engine (sr.live) routes them as the live service does.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from importlib.metadata import version

import rosu_pp_py as rosu

from sr.errors import BeatmapBadFormat, ConvertUnsupported, EngineFailed, NonFiniteRating, RatingError
from sr.mods import AP, RX, relevant_mods

_GAME_MODES = (rosu.GameMode.Osu, rosu.GameMode.Taiko, rosu.GameMode.Catch, rosu.GameMode.Mania)


class RosuEngine:
    """Rates a beatmap's bytes in a vanilla mode under legacy mods with rosu-pp-py.

    `name` and `version` identify the engine in reports and cache keys.
    """

    name = "rosu"

    def __init__(self) -> None:
        self.version = f"rosu-pp-py {version('rosu-pp-py')}"

    def parse(self, content: bytes, beatmap_md5: str, mode_vn: int) -> rosu.Beatmap:
        """Parse `content` and convert it to `mode_vn` (0-3), without mods.

        Raises BeatmapBadFormat (no hit objects: empty, corrupt or truncated to nothing),
        ConvertUnsupported (a taiko/catch/mania map asked in another mode), EngineFailed.
        """
        try:
            beatmap = rosu.Beatmap(bytes=content)
        except Exception as exc:  # rosu raises its own ParseError and others; all mean "unusable file"
            raise BeatmapBadFormat(beatmap_md5, f"parse failed: {exc}") from exc
        if beatmap.n_objects <= 0:
            raise BeatmapBadFormat(beatmap_md5, "no hit objects")
        try:
            beatmap.convert(_GAME_MODES[mode_vn], None)
        except rosu.ConvertError as exc:
            raise ConvertUnsupported(beatmap_md5, f"{beatmap.mode} map to mode {mode_vn}") from exc
        except Exception as exc:
            raise EngineFailed(beatmap_md5, f"convert: {exc}") from exc
        return beatmap

    def stars(self, beatmap: rosu.Beatmap, beatmap_md5: str, mods: int) -> float:
        """Raw stars (float) of a parsed, converted beatmap under `mods` (legacy bitmask).

        Raises NonFiniteRating (NaN/inf), EngineFailed.
        """
        try:
            stars = rosu.Difficulty(mods=int(mods), lazer=False).calculate(beatmap).stars
        except Exception as exc:
            raise EngineFailed(beatmap_md5, f"mods {mods}: {exc}") from exc
        if not math.isfinite(stars):
            raise NonFiniteRating(beatmap_md5, f"mods {mods}: {stars}")
        return float(stars)

    def warmup(self) -> None:
        """Pay any one-off start-up cost now (nothing for rosu-pp)."""

    def key_mods(self, mode_vn: int, mods: int) -> int:
        """The mods that can change this engine's rating (sr.mods): rosu-pp-py ignores the autopilot
        bit and rates osu! relax its own (lazer) way, on top of the vanilla mods."""
        narrowed = relevant_mods(mode_vn, mods & ~(RX | AP))
        return narrowed | RX if mode_vn == 0 and mods & RX else narrowed

    def rate_parsed(self, beatmap: rosu.Beatmap, content: bytes, beatmap_md5: str, mode_vn: int, mods: int, memo: dict) -> float:
        """Raw stars of one (mode_vn, mods) request on a map already parsed and converted to mode_vn.

        `content` is the raw file and `memo` a per-beatmap scratch dict, for engines that derive
        other forms of the map once (sr.live). Raises RatingError subclasses.
        """
        return self.stars(beatmap, beatmap_md5, mods)

    def rate_beatmap(
        self, content: bytes, beatmap_md5: str, requests: Iterable[tuple[int, int]], state: dict | None = None
    ) -> list[float | RatingError]:
        """Rate one beatmap for several (mode_vn, mods) requests, parsing once per mode.

        `state` (optional) is the beatmap's own scratch dict, kept by the caller between calls so that
        later requests reuse the parsed map (sr.rate.ParsedMaps). Returns, in request order, raw stars
        or the RatingError that prevented them.
        """
        state = {} if state is None else state
        parsed: dict[int, rosu.Beatmap | RatingError] = state.setdefault("parsed", {})
        memo: dict = state.setdefault("memo", {})
        out: list[float | RatingError] = []
        for mode_vn, mods in requests:
            if mode_vn not in parsed:
                try:
                    parsed[mode_vn] = self.parse(content, beatmap_md5, mode_vn)
                except RatingError as exc:
                    parsed[mode_vn] = exc
            beatmap = parsed[mode_vn]
            if isinstance(beatmap, RatingError):
                out.append(beatmap)
                continue
            try:
                out.append(self.rate_parsed(beatmap, content, beatmap_md5, mode_vn, mods, memo))
            except RatingError as exc:
                out.append(exc)
        return out


__all__: Sequence[str] = ("RosuEngine",)
