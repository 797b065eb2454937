"""Relax osu! star rating (mode 0 with the RX bit 128): the live service's `osu_2019` algorithm.

Live (akatsuki-pp-rs c0e499e) rates relax osu! with its `osu_2019` module, the 2019 star algorithm,
on rosu-map 0.2.0's slider model. `sr.osu2019` is an exact Python port of it (numba-compiled; equal to
the live value on every relax row of the reference vectors; docs/RELAX.md). This module is the live
engine's door to it: parse once per map, then one call per mods value.
"""

from __future__ import annotations

from sr import osu2019

VERSION = osu2019.VERSION


def parse(content: bytes, beatmap_md5: str = "") -> osu2019.Osu2019Beatmap:
    """Parse an osu! map for `relax_stars`. Raises BeatmapBadFormat, ConvertUnsupported, EngineFailed."""
    return osu2019.parse(content, beatmap_md5)


def relax_stars(beatmap: osu2019.Osu2019Beatmap, mods: int, beatmap_md5: str = "") -> float:
    """Raw osu_2019 stars (unrounded) of a parsed osu! map under legacy `mods`.

    Raises NonFiniteRating, EngineFailed."""
    return osu2019.relax_stars(beatmap, mods)


def warmup() -> None:
    """Compile or load the compiled kernels now, so that no key pays for it."""
    osu2019.warmup()
