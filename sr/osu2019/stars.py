"""osu_2019 star rating of one map under one mod combination, compiled with numba (f32).

Sources, akatsuki-pp-rs c0e499e:
- `src/osu_2019/stars.rs`: radius `64 * (1 - 0.7 * (CS - 5) / 5) / 2`, scaling factor
  `52 / radius` times `1 + min(30 - radius, 5) / 50` when `radius < 30`; strain sections of
  `400 ms * clock rate` (map time) starting at `ceil(first time / len) * len`; the second object is
  processed without closing sections; stars = `aim + speed + |aim - speed| / 2` with
  `aim = sqrt(aim difficulty) * 0.0675` (same for speed). No stacking, no HR flip.
- `src/osu_2019/osu_object.rs`: the lazy slider cursor (follow radius `3 * radius`), travel
  distance times the scaling factor; spinners (and hold notes) have no travel distance.
- `src/osu_2019/difficulty_object.rs`: delta time `/ clock rate`, strain time `max(delta, 50)`,
  jump distance from the previous cursor end (0 onto a spinner), angle `|atan2(det, dot)|`.
- `src/osu_2019/skill.rs`, `src/osu_2019/skill_kind.rs`: aim (x26.25, decay 0.15) and speed
  (x1400, decay 0.3) strains, section peaks weighted by 0.9^i after sorting.
- Mods (`src/model/beatmap/attributes.rs`, rosu-mods 0.2 `GameModsLegacy::clock_rate`): HR sets
  `CS = min(CS * 1.3, 10)`, else EZ halves CS; clock rate 1.5 if the DT bit (64) is set, else 0.75
  if HT (256), else 1. Nothing else changes the osu_2019 stars (RX, HD, FL, NF, SO, ... do not).

Every operation is f32 where the Rust is f32 (`powf`, `sin`, `atan2` go to the C library's f32
functions, as Rust's do). Units: times ms, distances osu! pixels, result stars.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from sr.osu2019.curve import copy_items
from sr.osu2019.constants import KIND_SLIDER, KIND_SPINNER
from sr.osu2019.objects import follow, walk_slider

F32 = np.float32
OBJECT_RADIUS = np.float32(64.0)
SECTION_LEN = np.float32(400.0)
DIFFICULTY_MULTIPLIER = np.float32(0.0675)
NORMALIZED_RADIUS = np.float32(52.0)

SPEED_SKILL_MULTIPLIER = np.float32(1400.0)
SPEED_STRAIN_DECAY_BASE = np.float32(0.3)
AIM_SKILL_MULTIPLIER = np.float32(26.25)
AIM_STRAIN_DECAY_BASE = np.float32(0.15)
DECAY_WEIGHT = np.float32(0.9)

SINGLE_SPACING_THRESHOLD = np.float32(125.0)
FRAC_PI_6 = np.float32(math.pi / 6.0)
FRAC_PI_4 = np.float32(math.pi / 4.0)
FRAC_PI_3 = np.float32(math.pi / 3.0)
FRAC_PI_2 = np.float32(math.pi / 2.0)
SPEED_ANGLE_BONUS_BEGIN = np.float32(5.0) * FRAC_PI_6  # Rust const: f32 product
AIM_ANGLE_BONUS_BEGIN = FRAC_PI_3
MIN_SPEED_BONUS = np.float32(75.0)
MAX_SPEED_BONUS = np.float32(45.0)
SPEED_BALANCING_FACTOR = np.float32(40.0)
TIMING_THRESHOLD = np.float32(107.0)
DIMINISH_EXP = np.float32(0.99)

_0 = np.float32(0.0)
_1 = np.float32(1.0)
_2 = np.float32(2.0)
_3 = np.float32(3.0)
_5 = np.float32(5.0)
_10 = np.float32(10.0)
_30 = np.float32(30.0)
_50 = np.float32(50.0)
_90 = np.float32(90.0)
_1000 = np.float32(1000.0)
_0_7 = np.float32(0.7)
_0_75 = np.float32(0.75)
_0_95 = np.float32(0.95)
_1_28 = np.float32(1.28)
_1_3 = np.float32(1.3)
_1_5 = np.float32(1.5)
_3_5 = np.float32(3.5)
_3_57 = np.float32(3.57)
_0_5 = np.float32(0.5)

MOD_EZ, MOD_HR, MOD_DT, MOD_HT = 2, 16, 64, 256


def mod_attributes(cs: np.float32, mods: int) -> tuple[np.float32, float]:
    """(CS after HR/EZ as f32, clock rate) for legacy `mods` (attributes.rs, rosu-mods 0.2)."""
    mods = int(mods) & 0xFFFFFFFF
    if mods & MOD_HR:
        cs = min(np.float32(cs * _1_3), np.float32(10.0))
    elif mods & MOD_EZ:
        cs = np.float32(cs * _0_5)
    if mods & MOD_DT:
        clock_rate = 1.5
    elif mods & MOD_HT:
        clock_rate = 0.75
    else:
        clock_rate = 1.0
    return np.float32(cs), clock_rate


@njit(cache=True, error_model="numpy", inline="always")
def _fmax(a, b):
    """Rust `f32::max`: a NaN operand is ignored."""
    if math.isnan(a):
        return b
    if math.isnan(b):
        return a
    return max(a, b)


@njit(cache=True, error_model="numpy", inline="always")
def _fmin(a, b):
    """Rust `f32::min`: a NaN operand is ignored."""
    if math.isnan(a):
        return b
    if math.isnan(b):
        return a
    return min(a, b)


@njit(cache=True, error_model="numpy", inline="always")
def _length(x, y):
    return np.float32(math.sqrt(np.float64(x * x + y * y)))


@njit(cache=True, error_model="numpy")
def _aim_strain(
    is_spinner,
    has_prev,
    has_angle,
    angle,
    jump,
    travel,
    strain_time,
    prev_jump,
    prev_strain_time,
):
    """`SkillKind::Aim.strain_value_of` (skill_kind.rs)."""
    if is_spinner:
        return _0
    result = _0
    if has_prev and has_angle and angle > AIM_ANGLE_BONUS_BEGIN:
        s = np.float32(math.sin(angle - AIM_ANGLE_BONUS_BEGIN))
        angle_bonus = np.float32(
            math.sqrt(s * s * _fmax(prev_jump - _90, _0) * _fmax(jump - _90, _0))
        )
        result = (
            _1_5
            * _fmax(angle_bonus, _0) ** DIMINISH_EXP
            / _fmax(TIMING_THRESHOLD, prev_strain_time)
        )
    jump_exp = jump**DIMINISH_EXP
    travel_exp = travel**DIMINISH_EXP
    dist_exp = (jump_exp + travel_exp) + np.float32(math.sqrt(travel_exp * jump_exp))
    return _fmax(
        result + dist_exp / _fmax(strain_time, TIMING_THRESHOLD), dist_exp / strain_time
    )


@njit(cache=True, error_model="numpy")
def _speed_strain(is_spinner, has_angle, angle, jump, travel, delta, strain_time):
    """`SkillKind::Speed.strain_value_of` (skill_kind.rs)."""
    if is_spinner:
        return _0
    dist = _fmin(SINGLE_SPACING_THRESHOLD, travel + jump)
    delta_time = _fmax(MAX_SPEED_BONUS, delta)
    speed_bonus = _1
    if delta_time < MIN_SPEED_BONUS:
        e = (MIN_SPEED_BONUS - delta_time) / SPEED_BALANCING_FACTOR
        speed_bonus += e * e
    angle_bonus = _1
    if has_angle and angle < SPEED_ANGLE_BONUS_BEGIN:
        e = np.float32(math.sin(_1_5 * (SPEED_ANGLE_BONUS_BEGIN - angle)))
        angle_bonus = _1 + e * e / _3_57
        if angle < FRAC_PI_2:
            angle_bonus = _1_28
            if dist < _90 and angle < FRAC_PI_4:
                angle_bonus += (_1 - angle_bonus) * _fmin((_90 - dist) / _10, _1)
            elif dist < _90:
                angle_bonus += (
                    (_1 - angle_bonus)
                    * _fmin((_90 - dist) / _10, _1)
                    * np.float32(math.sin((FRAC_PI_2 - angle) / FRAC_PI_4))
                )
    return (
        (_1 + (speed_bonus - _1) * _0_75)
        * angle_bonus
        * (_0_95 + speed_bonus * (dist / SINGLE_SPACING_THRESHOLD) ** _3_5)
        / strain_time
    )


@njit(cache=True, error_model="numpy")
def _difficulty_value(peaks, n):
    """`Skill::difficulty_value`: peaks sorted descending, weighted sum with 0.9^i (f32)."""
    p = np.sort(peaks[:n])[::-1]
    difficulty = _0
    weight = _1
    for k in range(n):
        difficulty += p[k] * weight
        weight *= DECAY_WEIGHT
    return difficulty


@njit(cache=True, error_model="numpy")
def stars_kernel(
    times,
    px,
    py,
    kind,
    slider_of,
    v_off,
    vx,
    vy,
    lazy,
    path_x,
    path_y,
    path_off,
    lens,
    lens_off,
    s_start,
    s_beat_len,
    s_sv,
    s_gen,
    s_rep,
    slider_multiplier,
    tick_rate,
    version,
    first_time,
    cs,
    clock_rate64,
):
    """Raw osu_2019 stars (f32) for one mod combination.

    times: f32 object times (`start_time as f32`), px/py: f32 positions, kind: 0 circle /
    1 slider / 2 spinner, slider_of: slider index per object; v_off/vx/vy: stored slider check
    points, lazy/path_*/lens*/s_*: what `walk_slider` needs for the sliders not stored
    (objects.py); first_time: f64 start time of the first object, cs: f32 CS after mods,
    clock_rate64: f64 clock rate. Returns NaN if a lazy slider turns out unbounded.
    """
    n = times.shape[0]
    if n < 2:
        return _0
    clock_rate = np.float32(clock_rate64)
    section_len = SECTION_LEN * clock_rate
    radius = OBJECT_RADIUS * (_1 - _0_7 * (cs - _5) / _5) / _2
    scaling_factor = NORMALIZED_RADIUS / radius
    if radius < _30:
        small_circle_bonus = _fmin(_30 - radius, _5) / _50
        scaling_factor *= _1 + small_circle_bonus
    follow_radius = radius * _3

    # OsuObject: cursor end position and travel distance
    end_x = np.empty(n, np.float32)
    end_y = np.empty(n, np.float32)
    travel = np.empty(n, np.float32)
    dummy = np.empty(0, np.float32)
    no_collect = np.bool_(False)
    no_out = np.int64(0)
    for i in range(n):
        x = px[i]
        y = py[i]
        t = _0
        if kind[i] == KIND_SLIDER:
            s = slider_of[i]
            if lazy[s]:
                a = path_off[s]
                b = path_off[s + 1]
                la = lens_off[s]
                lb = lens_off[s + 1]
                status, _ox, _oy, _no, x, y, t = walk_slider(
                    path_x[a:b],
                    path_y[a:b],
                    b - a,
                    lens[la:lb],
                    lb - la,
                    s_start[s],
                    px[i],
                    py[i],
                    s_beat_len[s],
                    s_sv[s],
                    s_gen[s],
                    s_rep[s],
                    slider_multiplier,
                    tick_rate,
                    version,
                    no_collect,
                    dummy,
                    dummy,
                    no_out,
                    follow_radius,
                )
                if status != 0:
                    return np.float32(np.nan)
            else:
                for k in range(v_off[s], v_off[s + 1]):
                    x, y, t = follow(x, y, t, vx[k], vy[k], follow_radius)
            t *= scaling_factor
        end_x[i] = x
        end_y[i] = y
        travel[i] = t

    aim_strain = _1
    aim_peak = _1
    speed_strain = _1
    speed_peak = _1
    aim_peaks = np.empty(16, np.float32)
    speed_peaks = np.empty(16, np.float32)
    n_peaks = np.int64(0)
    prev_time = _0

    current_section_end = (
        np.float32(np.ceil(np.float32(first_time) / section_len)) * section_len
    )

    prev_jump = _0
    prev_strain_time = _0
    for i in range(1, n):
        # DifficultyObject::new(curr = i, prev = i - 1, prev_prev = i - 2)
        delta = (times[i] - times[i - 1]) / clock_rate
        strain_time = _fmax(delta, _50)
        travel_dist = _0 if kind[i - 1] == KIND_SPINNER else travel[i - 1]
        is_spinner = kind[i] == KIND_SPINNER
        if is_spinner:
            jump = _0
        else:
            jump = _length(
                (px[i] - end_x[i - 1]) * scaling_factor,
                (py[i] - end_y[i - 1]) * scaling_factor,
            )
        has_angle = i >= 2
        angle = _0
        if has_angle:
            v1x = end_x[i - 2] - px[i - 1]
            v1y = end_y[i - 2] - py[i - 1]
            v2x = px[i] - end_x[i - 1]
            v2y = py[i] - end_y[i - 1]
            dot = v1x * v2x + v1y * v2y
            det = v1x * v2y - v1y * v2x
            angle = abs(np.float32(math.atan2(det, dot)))
        has_prev = i >= 2

        if i >= 2:
            while times[i] > current_section_end:
                if n_peaks >= aim_peaks.shape[0]:
                    na = np.empty(2 * aim_peaks.shape[0], np.float32)
                    ns = np.empty(2 * aim_peaks.shape[0], np.float32)
                    copy_items(na, 0, aim_peaks, 0, n_peaks)
                    copy_items(ns, 0, speed_peaks, 0, n_peaks)
                    aim_peaks = na
                    speed_peaks = ns
                aim_peaks[n_peaks] = aim_peak
                speed_peaks[n_peaks] = speed_peak
                n_peaks += 1
                elapsed = (current_section_end - prev_time) / _1000
                aim_peak = aim_strain * AIM_STRAIN_DECAY_BASE**elapsed
                speed_peak = speed_strain * SPEED_STRAIN_DECAY_BASE**elapsed
                current_section_end += section_len
        else:
            while times[i] > current_section_end:
                current_section_end += section_len

        decay_t = delta / _1000
        aim_strain *= AIM_STRAIN_DECAY_BASE**decay_t
        aim_strain += (
            _aim_strain(
                is_spinner,
                has_prev,
                has_angle,
                angle,
                jump,
                travel_dist,
                strain_time,
                prev_jump,
                prev_strain_time,
            )
            * AIM_SKILL_MULTIPLIER
        )
        aim_peak = _fmax(aim_peak, aim_strain)
        speed_strain *= SPEED_STRAIN_DECAY_BASE**decay_t
        speed_strain += (
            _speed_strain(
                is_spinner, has_angle, angle, jump, travel_dist, delta, strain_time
            )
            * SPEED_SKILL_MULTIPLIER
        )
        speed_peak = _fmax(speed_peak, speed_strain)
        prev_time = times[i]
        prev_jump = jump
        prev_strain_time = strain_time

    # final save_current_peak
    if n_peaks >= aim_peaks.shape[0]:
        na = np.empty(aim_peaks.shape[0] + 1, np.float32)
        ns = np.empty(aim_peaks.shape[0] + 1, np.float32)
        copy_items(na, 0, aim_peaks, 0, n_peaks)
        copy_items(ns, 0, speed_peaks, 0, n_peaks)
        aim_peaks = na
        speed_peaks = ns
    aim_peaks[n_peaks] = aim_peak
    speed_peaks[n_peaks] = speed_peak
    n_peaks += 1

    aim_rating = (
        np.float32(math.sqrt(_difficulty_value(aim_peaks, n_peaks)))
        * DIFFICULTY_MULTIPLIER
    )
    speed_rating = (
        np.float32(math.sqrt(_difficulty_value(speed_peaks, n_peaks)))
        * DIFFICULTY_MULTIPLIER
    )
    return aim_rating + speed_rating + abs(aim_rating - speed_rating) / _2
