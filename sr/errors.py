"""Errors of the star-rating layer.

    RatingError                      a key could not be rated; counted per reason, never raised out of a batch
      BeatmapMissing                 no .osu file for the beatmap in the store       reason "missing_file"
      BeatmapMismatch                the file's md5 differs from the score's md5     reason "md5_mismatch"
      BeatmapBadFormat               no `osu file format v` header, or no objects     reason "bad_format"
      ConvertUnsupported             a taiko/catch/mania map asked in another mode   reason "impossible_convert"
      NonFiniteRating                the engine returned NaN or infinity             reason "non_finite"
      EngineFailed                   the engine raised                               reason "engine_failed"
      AutopilotRewriteFailed         the distance-free rewrite kept some aim         reason "autopilot_rewrite"
      BeatmapMalformed               the decoded map breaks an invariant of the      reason "malformed_map"
                                     compiled relax kernels (checked before they run)
      EngineCrashed                  rating the key killed its rater process twice   reason "engine_crash"
                                     (quarantined for the rest of the run)
"""

from __future__ import annotations


class RatingError(Exception):
    """A (beatmap_md5, mode_vn, mods) key could not be given a star rating.

    `reason` is the short name reports count it under; `beatmap_md5` names the beatmap.
    """

    reason = "rating_error"

    def __init__(self, beatmap_md5: str, detail: str = "") -> None:
        self.beatmap_md5 = beatmap_md5
        self.detail = detail
        super().__init__(f"{self.reason}: beatmap {beatmap_md5}" + (f": {detail}" if detail else ""))


class BeatmapMissing(RatingError):
    """No .osu file for this beatmap in the store."""

    reason = "missing_file"


class BeatmapMismatch(RatingError):
    """The stored .osu file's md5 is not the score's beatmap_md5 (the map was updated since)."""

    reason = "md5_mismatch"


class BeatmapBadFormat(RatingError):
    """The file lacks the `osu file format v` header, or parses to no hit objects (empty, corrupt)."""

    reason = "bad_format"


class ConvertUnsupported(RatingError):
    """A taiko, catch or mania beatmap was asked for in another mode; only osu! maps convert."""

    reason = "impossible_convert"


class NonFiniteRating(RatingError):
    """The engine returned NaN or infinity for this key."""

    reason = "non_finite"


class EngineFailed(RatingError):
    """The engine raised while parsing or rating; the original exception is the `__cause__`."""

    reason = "engine_failed"


REASONS = tuple(
    cls.reason
    for cls in (BeatmapMissing, BeatmapMismatch, BeatmapBadFormat, ConvertUnsupported, NonFiniteRating, EngineFailed)
)


class AutopilotRewriteFailed(RatingError):
    """The distance-free rewrite of an osu! map left a non-zero aim rating, so its speed rating cannot
    be trusted as the live autopilot speed: the key is an error, not a guess."""

    reason = "autopilot_rewrite"


REASONS = REASONS + (AutopilotRewriteFailed.reason,)


class BeatmapMalformed(RatingError):
    """The decoded map breaks an invariant the compiled relax kernels (sr.osu2019) index by: an object,
    slider or control-point offset out of range, arrays of different lengths, a non-finite time. The
    kernels run without bounds checks, so this is checked before they run: a named error instead of a
    read or write out of bounds."""

    reason = "malformed_map"


class EngineCrashed(RatingError):
    """Rating this key killed the rater process twice (a crash inside the engine: a segfault, an abort,
    the OOM killer). The key is quarantined for the rest of the run: its scores are evaluated with an
    unknown star rating, like any key that could not be rated (cluster.workers)."""

    reason = "engine_crash"


REASONS = REASONS + (BeatmapMalformed.reason, EngineCrashed.reason)
