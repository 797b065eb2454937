"""Record types of the star-rating layer: what is rated, and what comes back."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

MODE_NAMES = ("osu", "taiko", "catch", "mania")


@dataclass(frozen=True, slots=True)
class SRKey:
    """One star rating to compute: a beatmap in a vanilla mode under a mods bitmask.

    beatmap_md5: 32 hex chars, the version of the map the score was set on.
    beatmap_id:  the id the .osu store files it under (`{beatmap_id}.osu`).
    mode_vn:     0-3 (osu!, taiko, catch, mania); an osu! map in another mode is a convert.
    mods:        full legacy mods bitmask as stored, relax and autopilot bits included.
    """

    beatmap_md5: str
    beatmap_id: int
    mode_vn: int
    mods: int


@dataclass(frozen=True, slots=True)
class SRResult:
    """The outcome for one SRKey: `sr_raw` (stars, unrounded) and `sr` (2 dp, live rounding), or
    both None with `skip_reason` naming the sr.errors.RatingError reason."""

    key: SRKey
    sr_raw: float | None
    sr: float | None
    skip_reason: str | None = None


# Arrow shapes exchanged between stages.
SR_KEY_SCHEMA = pa.schema(
    [
        ("beatmap_md5", pa.string()),
        ("beatmap_id", pa.int64()),
        ("mode_vn", pa.int8()),
        ("mods", pa.int64()),
    ]
)
SR_RESULT_SCHEMA = pa.schema(
    [
        ("beatmap_md5", pa.string()),
        ("mode_vn", pa.int8()),
        ("mods", pa.int64()),
        ("sr_raw", pa.float64()),
        ("sr", pa.float64()),
        ("skip_reason", pa.string()),
    ]
)
