"""Exact relax (osu!, mods & 128) star ratings: a Python port of the live `osu_2019` algorithm.

The live performance service rates relax osu! with the `osu_2019` module of akatsuki-pp-rs at
revision c0e499e (2024-11-27), whose slider model is rosu-map 0.2.0. This package reproduces it:

    beatmap = parse(content, md5)          # once per map: decode + slider check points (numba)
    stars = relax_stars(beatmap, mods)     # per mod combination: the f32 strain loop (numba)

Modules: `decode` (the .osu reader), `scan` (its compiled fast path for [TimingPoints] and
[HitObjects]), `curve` (slider paths), `objects` (slider tick/repeat/tail positions), `stars`
(mods, difficulty objects, aim/speed skills, strain sections). Its benchmark against
akatsuki-pp-py is `python -m testbed.relax_bench`. docs/RELAX.md explains the rules and their upstream sources.

Compiled kernels are cached on disk (`numba cache=True`) and compiled or loaded once per process,
on first use or by `warmup()`.
"""

from __future__ import annotations

import math

import numpy as np

from sr.errors import (
    BeatmapBadFormat,
    BeatmapMalformed,
    ConvertUnsupported,
    EngineFailed,
    NonFiniteRating,
)
from sr.osu2019.decode import (
    KIND_CIRCLE,
    KIND_SLIDER,
    KIND_SPINNER,
    PT_NONE,
    PT_PERFECT,
    RawMap,
    read_map,
    total_order_key,
)
from sr.osu2019.objects import MAX_STORED, slider_vertices
from sr.osu2019.stars import mod_attributes, stars_kernel

VERSION = "osu2019-port 1 (akatsuki-pp-rs c0e499e, rosu-map 0.2.0)"

__all__ = ["VERSION", "Osu2019Beatmap", "build", "check_beatmap", "check_raw", "parse", "relax_stars", "warmup"]


class Osu2019Beatmap:
    """A parsed osu! map ready for `relax_stars`: objects sorted by time, slider check points.

    Attributes (numpy arrays, one entry per hit object unless noted): `times` f32 ms, `x`/`y` f32
    osu! pixels, `kind` (0 circle, 1 slider, 2 spinner or hold), `slider_of` (index into the
    slider check points, -1 for non-sliders); `v_off`/`vx`/`vy` the sliders' check points (osu!
    pixels); `lazy` what the sliders with too many check points to store need to be walked again
    (objects.py); `timing` (SliderMultiplier, SliderTickRate, format version); `first_time` f64 ms;
    `cs` f32 (no mods); `version` (file format); `beatmap_md5`.
    """

    __slots__ = (
        "beatmap_md5",
        "cs",
        "first_time",
        "kind",
        "lazy",
        "slider_of",
        "times",
        "timing",
        "v_off",
        "version",
        "vx",
        "vy",
        "x",
        "y",
    )

    @property
    def n_objects(self) -> int:
        """Number of hit objects the live decoder keeps."""
        return int(self.times.shape[0])


def parse(content: bytes, beatmap_md5: str = "") -> Osu2019Beatmap:
    """Decode .osu bytes the way the live relax path does and precompute slider check points.

    Raises BeatmapBadFormat (no hit objects: empty, corrupt, truncated, headerless garbage),
    ConvertUnsupported (the file's Mode is not 0), EngineFailed (pathological slider ticks),
    BeatmapMalformed (the decoded map breaks an invariant the compiled kernels rely on).
    """
    # the reader swallows line errors like rosu-map; this is only a guard
    try:
        raw = read_map(content)
    except (UnicodeError, ValueError, OverflowError) as exc:
        raise BeatmapBadFormat(beatmap_md5, f"unreadable: {exc}") from exc
    return build(raw, beatmap_md5)


def build(
    raw: RawMap, beatmap_md5: str = "", max_stored: int = MAX_STORED
) -> Osu2019Beatmap:
    """Turn a decoded map (decode.read_map) into an Osu2019Beatmap; see `parse` for the errors.

    Sliders with more than `max_stored` check points are walked again at rating time instead of
    stored (same result; tests force 0 to compare both ways).
    """
    if raw.mode != 0:
        raise ConvertUnsupported(
            beatmap_md5, f"relax osu_2019 needs an osu! map, file Mode is {raw.mode}"
        )
    n = len(raw.obj_times)
    if n == 0:
        raise BeatmapBadFormat(beatmap_md5, "no hit objects")
    check_raw(raw, beatmap_md5)

    times64 = np.asarray(raw.obj_times, dtype=np.float64)
    keys = total_order_key(times64)
    order = np.argsort(keys, kind="stable")
    slider_index_file = np.asarray(raw.slider_index, dtype=np.int64)

    n_sliders = len(raw.slider_repeats)
    # file-order indexes of the objects that are sliders
    slider_obj = np.flatnonzero(slider_index_file >= 0)
    s_times = times64[slider_obj]
    s_rep = np.asarray(raw.slider_repeats, dtype=np.int64).reshape(n_sliders)
    (
        status,
        vx,
        vy,
        v_off,
        lazy,
        path_x,
        path_y,
        path_off,
        lens,
        lens_off,
        beat_lens,
        svs,
        gens,
    ) = slider_vertices(
        np.asarray(raw.cp_x, dtype=np.float32),
        np.asarray(raw.cp_y, dtype=np.float32),
        np.asarray(raw.cp_type, dtype=np.int8),
        np.asarray(raw.cp_off, dtype=np.int64),
        np.asarray(raw.slider_has_len, dtype=np.bool_).reshape(n_sliders),
        np.asarray(raw.slider_len, dtype=np.float64).reshape(n_sliders),
        s_times,
        keys[slider_obj],
        np.asarray(raw.obj_x, dtype=np.float32)[slider_obj],
        np.asarray(raw.obj_y, dtype=np.float32)[slider_obj],
        total_order_key(np.asarray(raw.timing_times, dtype=np.float64)),
        np.asarray(raw.timing_beat_lens, dtype=np.float64),
        total_order_key(np.asarray(raw.diff_times, dtype=np.float64)),
        np.asarray(raw.diff_svs, dtype=np.float64),
        np.asarray(raw.diff_gen_ticks, dtype=np.bool_),
        s_rep,
        float(raw.slider_multiplier),
        float(raw.slider_tick_rate),
        int(raw.version),
        int(max_stored),
    )
    if status != 0:
        raise EngineFailed(
            beatmap_md5, "a slider asks for an unbounded number of ticks"
        )

    bm = Osu2019Beatmap()
    bm.beatmap_md5 = beatmap_md5
    bm.version = int(raw.version)
    bm.cs = np.float32(raw.cs)
    sorted_times = times64[order]
    bm.first_time = float(sorted_times[0])
    bm.times = sorted_times.astype(np.float32)
    bm.x = np.asarray(raw.obj_x, dtype=np.float32)[order]
    bm.y = np.asarray(raw.obj_y, dtype=np.float32)[order]
    bm.kind = np.asarray(raw.obj_kind, dtype=np.int8)[order]
    bm.slider_of = slider_index_file[order]
    bm.v_off = v_off
    bm.vx = vx
    bm.vy = vy
    bm.lazy = (
        lazy,
        path_x,
        path_y,
        path_off,
        lens,
        lens_off,
        s_times,
        beat_lens,
        svs,
        gens,
        s_rep,
    )
    bm.timing = (
        float(raw.slider_multiplier),
        float(raw.slider_tick_rate),
        int(raw.version),
    )
    check_beatmap(bm)
    return bm


# ---------------------------------------------------------------- kernel input guards
#
# The numba kernels (scan, curve, objects, stars) run without bounds checks: an offset or index out of
# range reads or writes memory that is not the array's, which can corrupt a rater or kill it. The
# decoder builds consistent arrays; these checks make sure of it before any kernel indexes by them,
# turning a malformed map into a BeatmapMalformed (O(n) numpy work, once per map).


def _malformed(beatmap_md5: str, what: str) -> BeatmapMalformed:
    return BeatmapMalformed(beatmap_md5, what)


def _offsets_ok(offsets: np.ndarray, count: int, total: int) -> bool:
    """`offsets` has count + 1 entries, starts at 0, never decreases and ends at `total`."""
    return (
        offsets.shape == (count + 1,)
        and int(offsets[0]) == 0
        and int(offsets[-1]) == total
        and bool(np.all(np.diff(offsets) >= 0))
    )


def check_raw(raw: RawMap, beatmap_md5: str = "") -> None:
    """Check what the slider kernels (objects.slider_vertices, curve.py) will index by.

    Every per-object array has one entry per hit object, kinds are circle/slider/spinner, each slider
    object names its own slider (0, 1, 2, ... in file order) and every other object none, control
    points of slider s are cp[cp_off[s]:cp_off[s + 1]] within the control-point arrays, timing and
    difficulty point arrays pair up, times are finite. Raises BeatmapMalformed naming the first
    broken rule.
    """
    n = len(raw.obj_times)
    for name in ("obj_x", "obj_y", "obj_kind", "slider_index"):
        if len(getattr(raw, name)) != n:
            raise _malformed(beatmap_md5, f"{name} has {len(getattr(raw, name))} entries for {n} objects")
    times = np.asarray(raw.obj_times, dtype=np.float64)
    if not np.all(np.isfinite(times)):
        raise _malformed(beatmap_md5, "a hit object time is not finite")
    kind = np.asarray(raw.obj_kind, dtype=np.int64)
    if not np.all(np.isin(kind, (KIND_CIRCLE, KIND_SLIDER, KIND_SPINNER))):
        raise _malformed(beatmap_md5, "a hit object kind is unknown")
    n_sliders = len(raw.slider_repeats)
    for name in ("slider_has_len", "slider_len"):
        if len(getattr(raw, name)) != n_sliders:
            raise _malformed(beatmap_md5, f"{name} has {len(getattr(raw, name))} entries for {n_sliders} sliders")
    slider_index = np.asarray(raw.slider_index, dtype=np.int64)
    is_slider = kind == KIND_SLIDER
    if not np.array_equal(slider_index[is_slider], np.arange(n_sliders)) or np.any(slider_index[~is_slider] != -1):
        raise _malformed(beatmap_md5, "slider indexes do not number the slider objects 0, 1, 2, ...")
    if np.any(np.asarray(raw.slider_repeats, dtype=np.int64) < 0):
        raise _malformed(beatmap_md5, "a slider repeats a negative number of times")
    n_cp = len(raw.cp_x)
    if len(raw.cp_y) != n_cp or len(raw.cp_type) != n_cp:
        raise _malformed(beatmap_md5, "control point arrays differ in length")
    if not _offsets_ok(np.asarray(raw.cp_off, dtype=np.int64), n_sliders, n_cp):
        raise _malformed(beatmap_md5, "control point offsets are out of range")
    if not np.all(np.isin(np.asarray(raw.cp_type, dtype=np.int64), np.arange(PT_NONE, PT_PERFECT + 1))):
        raise _malformed(beatmap_md5, "a control point has an unknown path type")
    if len(raw.timing_times) != len(raw.timing_beat_lens):
        raise _malformed(beatmap_md5, "timing point arrays differ in length")
    if not len(raw.diff_times) == len(raw.diff_svs) == len(raw.diff_gen_ticks):
        raise _malformed(beatmap_md5, "difficulty point arrays differ in length")


def check_beatmap(bm: Osu2019Beatmap) -> None:
    """Check what `stars_kernel` will index by (run by `build` on every map it returns).

    Per-object arrays have one entry per object, each slider object's index is a slider of the map,
    stored check points of slider s are v[v_off[s]:v_off[s + 1]], the curve of a lazy slider
    path[path_off[s]:path_off[s + 1]] and lens[lens_off[s]:lens_off[s + 1]], per-slider arrays
    have one entry per slider. Raises BeatmapMalformed.
    """
    md5 = bm.beatmap_md5
    n = bm.times.shape[0]
    for name in ("x", "y", "kind", "slider_of"):
        if getattr(bm, name).shape != (n,):
            raise _malformed(md5, f"{name} has the wrong shape for {n} objects")
    lazy, path_x, path_y, path_off, lens, lens_off, s_times, beat_lens, svs, gens, s_rep = bm.lazy
    n_sliders = lazy.shape[0]
    for name, array in (("start times", s_times), ("beat lengths", beat_lens), ("velocities", svs),
                        ("tick flags", gens), ("repeats", s_rep)):
        if array.shape != (n_sliders,):
            raise _malformed(md5, f"slider {name} have the wrong shape for {n_sliders} sliders")
    sliders = bm.slider_of[bm.kind == KIND_SLIDER]
    if sliders.size and (int(sliders.min()) < 0 or int(sliders.max()) >= n_sliders):
        raise _malformed(md5, "a slider object names no slider of the map")
    if bm.vx.shape != bm.vy.shape or not _offsets_ok(bm.v_off, n_sliders, bm.vx.shape[0]):
        raise _malformed(md5, "slider check point offsets are out of range")
    if path_x.shape != path_y.shape or not _offsets_ok(path_off, n_sliders, path_x.shape[0]):
        raise _malformed(md5, "slider path offsets are out of range")
    if not _offsets_ok(lens_off, n_sliders, lens.shape[0]):
        raise _malformed(md5, "slider length offsets are out of range")
    if np.any(np.diff(lens_off)[lazy] < np.diff(path_off)[lazy]):
        raise _malformed(md5, "a lazy slider has fewer cumulative lengths than path points")


def relax_stars(beatmap: Osu2019Beatmap, mods: int) -> float:
    """Raw (unrounded) live osu_2019 stars of `beatmap` under legacy `mods`.

    Only HR/EZ (circle size) and DT/NC/HT (clock rate) change the result; the RX bit may be set.
    Raises NonFiniteRating for NaN/inf.
    """
    cs, clock_rate = mod_attributes(beatmap.cs, mods)
    stars = float(
        stars_kernel(
            beatmap.times,
            beatmap.x,
            beatmap.y,
            beatmap.kind,
            beatmap.slider_of,
            beatmap.v_off,
            beatmap.vx,
            beatmap.vy,
            *beatmap.lazy,
            *beatmap.timing,
            beatmap.first_time,
            cs,
            clock_rate,
        )
    )
    if not math.isfinite(stars):
        raise NonFiniteRating(beatmap.beatmap_md5, f"mods {mods}: {stars}")
    return stars


_WARMUP_MAP = b"""osu file format v14

[Difficulty]
CircleSize:4
SliderMultiplier:1.4
SliderTickRate:1

[TimingPoints]
0,500,4,2,0,100,1,0
1000,-50,4,2,0,100,0,0

[HitObjects]
100,100,0,1,0,0:0:0:0:
200,100,500,2,0,B|250:150|300:100|300:100|350:50,2,200
300,200,2000,2,0,P|350:250|400:200,1,100
100,300,3000,2,0,C|150:350|200:300|250:350,1,150
400,300,4000,2,0,L|300:300,1,90
256,192,5000,12,0,6000,0:0:0:0:
"""

_warm = False


def warmup() -> None:
    """Compile or load every kernel now (once per process); later calls return at once.

    Covers both readers (the compiled one, and the Python one forced by a comment line), so
    every kernel signature a later map needs exists already.
    """
    global _warm
    if _warm:
        return
    slow = _WARMUP_MAP.replace(b"[HitObjects]\n", b"[HitObjects]\n// comment\n")
    slow = slow.replace(b"0,500,4,2,0,100,1,0", b"0,500 ,4,2,0,100,1,0")
    for content in (_WARMUP_MAP, slow):
        bm = parse(content, "warmup")
        for mods in (128, 144, 192):
            relax_stars(bm, mods)
    _warm = True
