"""The points a relax cursor is checked at along each slider (osu_2019 `OsuObject::new`).

Source: akatsuki-pp-rs c0e499e `src/osu_2019/osu_object.rs`. For each slider it walks, in
order, the ticks of the first span (lazer tick spacing, none closer than `10 * velocity` to the
span end), then each repeat point followed by the ticks of that span (mirrored on odd spans),
then the legacy last tick `max(start + duration / 2, final span start + span duration - 36 ms)`;
at each of those times it takes the position on the rosu-map curve (`curve.py`) and moves a lazy
cursor that stays within `3 * radius` of it.

Tick rules (osu_object.rs): scoring distance `100 * SliderMultiplier * sv`, velocity = that /
beat length, tick distance = that / SliderTickRate (times `1 / sv` for format versions < 8;
infinite when the difficulty point turns ticks off), clamped to `[0, min(path length, 100000)]`;
a zero tick distance (e.g. a zero-length path) means no ticks and no repeat points at all.

The check points do not depend on mods, the cursor does (radius): `slider_vertices` computes the
points once per map; `stars.py` replays them per mod combination. A slider with more than
`MAX_STORED` points (thousands of repeats times hundreds of ticks) is not stored but walked
again at rating time (`walk_slider` in cursor mode), as the Rust code does on every call.
Units: times in ms (map time), positions in osu! pixels.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from sr.osu2019.curve import (
    calculate_length,
    calculate_path,
    copy_items,
    f32_length,
    position_at,
)
from sr.osu2019.constants import DEFAULT_BEAT_LEN

LEGACY_LAST_TICK_OFFSET = 36.0  # ms
BASE_SCORING_DISTANCE = 100.0  # osu! pixels
MAX_STORED = 1 << 16  # check points kept per slider; more are recomputed when rating
# beyond: EngineFailed (ticks closer than ~0.006 px; see docs/RELAX.md)
MAX_TICKS_PER_SPAN = 1 << 24
MAX_WALK = 1e10  # beyond: EngineFailed (the live service would run for hours)


@njit(cache=True, error_model="numpy", inline="always")
def _rmax(a, b):
    """Rust `f64::max` (a NaN operand is ignored)."""
    if math.isnan(a):
        return b
    if math.isnan(b):
        return a
    return max(a, b)


@njit(cache=True, error_model="numpy", inline="always")
def _rmin(a, b):
    """Rust `f64::min` (a NaN operand is ignored)."""
    if math.isnan(a):
        return b
    if math.isnan(b):
        return a
    return min(a, b)


@njit(cache=True, error_model="numpy")
def _search(keys, q):
    """Rust `binary_search_by(total_cmp)` on unique sorted keys: (found, index)."""
    lo = 0
    hi = keys.shape[0]
    while lo < hi:
        mid = (lo + hi) // 2
        if keys[mid] < q:
            lo = mid + 1
        else:
            hi = mid
    return lo < keys.shape[0] and keys[lo] == q, lo


@njit(cache=True, error_model="numpy")
def control_points_at(start_keys, tp_keys, tp_beat_lens, dp_keys, dp_svs, dp_gens):
    """Beat length (ms), slider velocity and tick flag in effect at each slider start.

    osu_object.rs `timing_point_at`: the exact match, else the previous point, else the first
    point; 1000 ms without timing points. `difficulty_point_at`: exact or previous, else the
    defaults (sv 1, ticks on).
    """
    m = start_keys.shape[0]
    beat_lens = np.empty(m, np.float64)
    svs = np.empty(m, np.float64)
    gens = np.empty(m, np.bool_)
    for s in range(m):
        q = start_keys[s]
        if tp_keys.shape[0] == 0:
            beat_lens[s] = DEFAULT_BEAT_LEN
        else:
            found, i = _search(tp_keys, q)
            if not found:
                i = max(i - 1, 0)
            beat_lens[s] = tp_beat_lens[i]
        found, i = _search(dp_keys, q)
        if not found:
            i -= 1
        if i >= 0:
            svs[s] = dp_svs[i]
            gens[s] = dp_gens[i]
        else:
            svs[s] = 1.0
            gens[s] = True
    return beat_lens, svs, gens


@njit(cache=True, error_model="numpy")
def tick_spacing(dist, sv, gen_ticks, slider_multiplier, tick_rate, version):
    """(tick distance, capped length) in osu! pixels, as osu_object.rs computes them."""
    scoring_dist = BASE_SCORING_DISTANCE * slider_multiplier * sv
    tick_dist_mult = 1.0 / sv if version < 8 else 1.0
    if gen_ticks:
        tick_dist = scoring_dist / tick_rate * tick_dist_mult
    else:
        tick_dist = np.inf
    length = _rmin(dist, 100_000.0)
    # f64::clamp(0, length): NaN stays NaN
    if tick_dist < 0.0:  # noqa: PLR1730 (f64::clamp keeps NaN)
        tick_dist = 0.0
    if tick_dist > length:  # noqa: PLR1730
        tick_dist = length
    return tick_dist, length


@njit(cache=True, error_model="numpy")
def walk_slider(
    px,
    py,
    n,
    lengths,
    nl,
    start,
    hx,
    hy,
    beat_len,
    sv,
    gen_ticks,
    rep,
    slider_multiplier,
    tick_rate,
    version,
    collect,
    out_x,
    out_y,
    n_out,
    follow_radius,
):
    """Walk one slider's check points in live order.

    collect=True: append the points to out_x/out_y (grown as needed) from n_out.
    collect=False: move the lazy cursor (follow radius in osu! pixels) instead.
    Returns (status, out_x, out_y, n_out, cursor_x, cursor_y, travel); status 1 = unbounded.
    """
    dist = lengths[nl - 1] if nl > 0 else 0.0
    scoring_dist = BASE_SCORING_DISTANCE * slider_multiplier * sv
    vel = scoring_dist / beat_len
    tick_dist_mult = 1.0 / sv if version < 8 else 1.0
    if gen_ticks:
        tick_dist = scoring_dist / tick_rate * tick_dist_mult
    else:
        tick_dist = np.inf
    span_count = np.float64(rep + 1)
    end_time = start + span_count * dist / vel
    total_duration = end_time - start
    span_duration = total_duration / span_count
    length = _rmin(dist, 100_000.0)
    if tick_dist < 0.0:  # noqa: PLR1730 (f64::clamp keeps NaN)
        tick_dist = 0.0
    if tick_dist > length:  # noqa: PLR1730
        tick_dist = length
    min_dist_from_end = vel * 10.0

    cur_x = hx
    cur_y = hy
    travel = np.float32(0.0)
    n_ticks = 0
    ticks = np.empty(0, np.float64)
    status = 0
    if tick_dist != 0.0:
        if tick_dist > 0.0:
            per_span = length / tick_dist + 1.0
            if per_span > MAX_TICKS_PER_SPAN or per_span * (rep + 1) > MAX_WALK:
                status = 1
            else:
                ticks = np.empty(int(per_span) + 2, np.float64)
        total_spans = 1 + rep
    else:
        total_spans = 0
    # span 0 ticks, then for each repeat: the repeat point and that span's ticks, then the tail
    curr_dist = tick_dist
    step = 0  # 0: first-span ticks, 1: repeats, 2: tail
    span_idx = 1
    k = 0
    while status == 0:
        if step == 0:
            if total_spans == 0 or not (curr_dist < length - min_dist_from_end):
                step = 1
                continue
            progress = curr_dist / length
            time = start + progress * span_duration
            if n_ticks >= ticks.shape[0]:
                grown = np.empty(2 * ticks.shape[0] + 16, np.float64)
                copy_items(grown, 0, ticks, 0, n_ticks)
                ticks = grown
            ticks[n_ticks] = time
            n_ticks += 1
            curr_dist += tick_dist
        elif step == 1:
            if total_spans == 0 or span_idx > rep:
                step = 2
                continue
            span_f = np.float64(span_idx)
            if k == 0:
                time = start + span_duration * span_f
                k = 1
            else:
                j = k - 1
                if j >= n_ticks:
                    span_idx += 1
                    k = 0
                    continue
                span_offset = span_f * span_duration
                if span_idx & 1 == 1:
                    time = (
                        span_offset
                        + (start + start + span_duration)
                        - ticks[n_ticks - 1 - j]
                    )
                else:
                    time = span_offset + ticks[j]
                k += 1
        else:
            final_span_start = start + np.float64(rep) * span_duration
            time = _rmax(
                start + total_duration / 2.0,
                final_span_start + span_duration - LEGACY_LAST_TICK_OFFSET,
            )

        # compute_vertex: position at the progress of `time`
        progress = (time - start) / span_duration
        if np.fmod(progress, 2.0) >= 1.0:
            progress = 1.0 - np.fmod(progress, 1.0)
        else:
            progress = np.fmod(progress, 1.0)
        cx, cy = position_at(px, py, n, lengths, nl, progress)
        vx = hx + cx
        vy = hy + cy
        if collect:
            if n_out >= out_x.shape[0]:
                cap = max(2 * out_x.shape[0], 64)
                nx = np.empty(cap, np.float32)
                ny = np.empty(cap, np.float32)
                copy_items(nx, 0, out_x, 0, n_out)
                copy_items(ny, 0, out_y, 0, n_out)
                out_x = nx
                out_y = ny
            out_x[n_out] = vx
            out_y[n_out] = vy
            n_out += 1
        else:
            cur_x, cur_y, travel = follow(cur_x, cur_y, travel, vx, vy, follow_radius)
        if step == 2:
            break
    return status, out_x, out_y, n_out, cur_x, cur_y, travel


@njit(cache=True, error_model="numpy", inline="always")
def follow(cur_x, cur_y, travel, vx, vy, follow_radius):
    """The lazy cursor step of `compute_vertex` (f32): move to within follow_radius of (vx, vy)."""
    dx = vx - cur_x
    dy = vy - cur_y
    dist = f32_length(dx, dy)
    if dist > follow_radius:
        dist -= follow_radius
        scale = np.float32(1.0) / f32_length(dx, dy)
        cur_x += (dx * scale) * dist
        cur_y += (dy * scale) * dist
        travel += dist
    return cur_x, cur_y, travel


@njit(cache=True, error_model="numpy")
def slider_vertices(
    cp_x,
    cp_y,
    cp_type,
    cp_off,
    has_len,
    exp_len,
    start_times,
    start_keys,
    head_x,
    head_y,
    tp_keys,
    tp_beat_lens,
    dp_keys,
    dp_svs,
    dp_gens,
    repeats,
    slider_multiplier,
    tick_rate,
    version,
    max_stored,
):
    """All sliders' check points, computed once per map.

    Slider times come with their `f64::total_cmp` keys (decode.total_order_key), timing points
    (beat lengths, ms) and difficulty points (slider velocity, tick flag) sorted by such keys.
    Returns (status, vx, vy, v_off, lazy, path_x, path_y, path_off, lens, lens_off, beat_lens,
    svs, gen_ticks):
    slider s owns vx[v_off[s]:v_off[s+1]] (f32 osu! pixels) unless lazy[s], in which case its
    curve (path points path_x/path_y[path_off[s]:path_off[s+1]], cumulative lengths
    lens[lens_off[s]:lens_off[s+1]]) is kept for `walk_slider`. status 1 = a slider needs an
    unbounded walk (EngineFailed). Sliders with more than `max_stored` points are lazy.
    """
    n_sliders = repeats.shape[0]
    beat_lens, svs, gen_ticks = control_points_at(
        start_keys, tp_keys, tp_beat_lens, dp_keys, dp_svs, dp_gens
    )
    out_x = np.empty(max(64, 8 * n_sliders), np.float32)
    out_y = np.empty(max(64, 8 * n_sliders), np.float32)
    v_off = np.zeros(n_sliders + 1, np.int64)
    lazy = np.zeros(n_sliders, np.bool_)
    path_x = np.empty(0, np.float32)
    path_y = np.empty(0, np.float32)
    lens = np.empty(0, np.float64)
    path_off = np.zeros(n_sliders + 1, np.int64)
    lens_off = np.zeros(n_sliders + 1, np.int64)
    n_out = np.int64(0)
    n_path = 0
    n_lens = 0
    status = 0
    collect = np.bool_(True)
    for s in range(n_sliders):
        a = cp_off[s]
        b = cp_off[s + 1]
        px, py, n, opt_len = calculate_path(cp_x[a:b], cp_y[a:b], cp_type[a:b])
        px, py, n, lengths, nl = calculate_length(
            px, py, n, has_len[s], exp_len[s], opt_len
        )
        dist = lengths[nl - 1] if nl > 0 else 0.0
        # estimate the number of check points: ticks per span * spans + repeats + tail
        tick_dist, length = tick_spacing(
            dist, svs[s], gen_ticks[s], slider_multiplier, tick_rate, version
        )
        est = 1.0
        if tick_dist != 0.0:
            est += np.float64(repeats[s])
            if tick_dist > 0.0:
                est += (length / tick_dist + 1.0) * (repeats[s] + 1)
        if est > max_stored:
            if tick_dist > 0.0 and (
                length / tick_dist + 1.0 > MAX_TICKS_PER_SPAN
                or (length / tick_dist + 1.0) * (repeats[s] + 1) > MAX_WALK
            ):
                status = 1
                break
            lazy[s] = True
            if n_path + n > path_x.shape[0]:
                cap = max(2 * path_x.shape[0], n_path + n)
                nx = np.empty(cap, np.float32)
                ny = np.empty(cap, np.float32)
                copy_items(nx, 0, path_x, 0, n_path)
                copy_items(ny, 0, path_y, 0, n_path)
                path_x = nx
                path_y = ny
            copy_items(path_x, n_path, px, 0, n)
            copy_items(path_y, n_path, py, 0, n)
            n_path += n
            if n_lens + nl > lens.shape[0]:
                cap = max(2 * lens.shape[0], n_lens + nl)
                nlz = np.empty(cap, np.float64)
                copy_items(nlz, 0, lens, 0, n_lens)
                lens = nlz
            copy_items(lens, n_lens, lengths, 0, nl)
            n_lens += nl
        else:
            status, out_x, out_y, n_out, _x, _y, _t = walk_slider(
                px,
                py,
                n,
                lengths,
                nl,
                start_times[s],
                head_x[s],
                head_y[s],
                beat_lens[s],
                svs[s],
                gen_ticks[s],
                repeats[s],
                slider_multiplier,
                tick_rate,
                version,
                collect,
                out_x,
                out_y,
                n_out,
                np.float32(0.0),
            )
            if status != 0:
                status = 1
                break
        v_off[s + 1] = n_out
        path_off[s + 1] = n_path
        lens_off[s + 1] = n_lens
    return (
        status,
        out_x[:n_out],
        out_y[:n_out],
        v_off,
        lazy,
        path_x[:n_path],
        path_y[:n_path],
        path_off,
        lens[:n_lens],
        lens_off,
        beat_lens,
        svs,
        gen_ticks,
    )
