"""Relax osu! star rating (mode 0 with the RX bit 128): the live service's `osu_2019` algorithm.

Live (akatsuki-pp-rs) rates relax osu! with its `osu_2019` module, the 2019 star algorithm. No PyPI
build matches it exactly; the closest is akatsuki-pp-py 1.0.1 through `performance()` (its
`.difficulty()` is not osu_2019). Measured on real maps (DOMAIN.md §5): equal to live at 2 dp on
about half of the keys, in the same integer band on about 98%, worst error 0.19 stars (edge-case
slider maps up to 2.7). The version string says so: `approximate`.
"""

from __future__ import annotations

import math
from importlib.metadata import version

import akatsuki_pp_py as akatsuki

from sr.errors import BeatmapBadFormat, EngineFailed, NonFiniteRating

VERSION = f"osu_2019 via akatsuki-pp-py {version('akatsuki-pp-py')} (approximate)"


def parse(content: bytes, beatmap_md5: str = "") -> akatsuki.Beatmap:
    """Parse an osu! map for `relax_stars`. Raises BeatmapBadFormat."""
    try:
        return akatsuki.Beatmap(bytes=content)
    except Exception as exc:
        raise BeatmapBadFormat(beatmap_md5, f"akatsuki-pp-py parse failed: {exc}") from exc


def relax_stars(beatmap: akatsuki.Beatmap, mods: int, beatmap_md5: str = "") -> float:
    """Raw osu_2019 stars of a parsed osu! map under legacy `mods`. Raises NonFiniteRating, EngineFailed."""
    try:
        stars = akatsuki.Calculator(mode=0, mods=int(mods)).performance(beatmap).difficulty.stars
    except Exception as exc:
        raise EngineFailed(beatmap_md5, f"osu_2019 mods {mods}: {exc}") from exc
    if not math.isfinite(stars):
        raise NonFiniteRating(beatmap_md5, f"osu_2019 mods {mods}: {stars}")
    return float(stars)
