"""Slider paths as rosu-map 0.2.0 computes them (lazer's SliderPath), compiled with numba.

Source: rosu-map 0.2.0 `src/section/hit_objects/slider/curve.rs` (calculate_path,
calculate_subpath, approximate_bspline / bezier_is_flat_enough / bezier_subdivide /
bezier_approximate, approximate_catmull / catmull_subpath, approximate_circular_arc /
circular_arc_properties, calculate_length, position_at / idx_of_dist / interpolate_vertices) and
`src/util/pos.rs` (Pos arithmetic in f32; `length()` is an f32 sum of squares, square-rooted
in f64 and cast back, which equals the correctly rounded f32 square root).

Arithmetic is f32 wherever rosu-map uses `Pos` (f32), f64 for lengths, angles and progress.
Every float constant below is typed explicitly so numba keeps f32 expressions in f32.
Positions are in osu! pixels relative to the slider head; lengths in osu! pixels.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from sr.osu2019.constants import PT_CATMULL, PT_LINEAR, PT_NONE, PT_PERFECT

F32 = np.float32
F64_EPSILON = float(np.finfo(np.float64).eps)
F32_EPSILON = np.float32(np.finfo(np.float32).eps)
# BEZIER_TOLERANCE^2 * 4, in f32
BEZIER_LIMIT = np.float32(0.25) * np.float32(0.25) * np.float32(4.0)
CATMULL_DETAIL = 50
CIRCULAR_ARC_TOLERANCE = np.float32(0.1)

# Python ints/floats captured by numba are frozen as constants; keep the f32 ones as np.float32
_HALF = np.float32(0.5)
_QUARTER = np.float32(0.25)
_TWO = np.float32(2.0)
_ONE = np.float32(1.0)


@njit(cache=True, error_model="numpy", inline="always")
def f32_length(x, y):
    """`Pos::length` (f32): sqrt of the f32 sum of squares."""
    return np.float32(math.sqrt(np.float64(x * x + y * y)))


@njit(cache=True, error_model="numpy", inline="always")
def copy_items(dst, d0, src, s0, count):
    """dst[d0:d0+count] = src[s0:s0+count] as a loop (slice assignment is slow to compile)."""
    for k in range(count):
        dst[d0 + k] = src[s0 + k]


@njit(cache=True, error_model="numpy", inline="always")
def _grow(bx, by, n, extra):
    """Return buffers with room for `n + extra` points (doubling), keeping the first n."""
    if n + extra <= bx.shape[0]:
        return bx, by
    cap = max(2 * bx.shape[0], n + extra)
    nx = np.empty(cap, np.float32)
    ny = np.empty(cap, np.float32)
    copy_items(nx, 0, bx, 0, n)
    copy_items(ny, 0, by, 0, n)
    return nx, ny


@njit(cache=True, error_model="numpy")
def _subdivide(px, py, lx, ly, rx, ry, mx, my):
    """`bezier_subdivide`: de Casteljau split at t = 0.5 into l (left) and r (right)."""
    count = px.shape[0]
    for k in range(count):
        mx[k] = px[k]
        my[k] = py[k]
    for i in range(count - 1, 0, -1):
        lx[count - i - 1] = mx[0]
        ly[count - i - 1] = my[0]
        rx[i] = mx[i]
        ry[i] = my[i]
        for j in range(i):
            mx[j] = (mx[j] + mx[j + 1]) / _TWO
            my[j] = (my[j] + my[j + 1]) / _TWO
    lx[count - 1] = mx[0]
    ly[count - 1] = my[0]
    rx[0] = mx[0]
    ry[0] = my[0]


@njit(cache=True, error_model="numpy")
def _flat_enough(px, py):
    """`bezier_is_flat_enough`: every second difference has squared length <= 0.25."""
    for i in range(px.shape[0] - 2):
        x = (px[i] - px[i + 1] * _TWO) + px[i + 2]
        y = (py[i] - py[i + 1] * _TWO) + py[i + 2]
        if x * x + y * y > BEZIER_LIMIT:
            return False
    return True


@njit(cache=True, error_model="numpy")
def _approximate_bezier(bx, by, n, sx, sy):
    """`approximate_bspline` (degree ignored, as in rosu-map): adaptive de Casteljau flattening.

    Appends to the path buffer (bx, by) holding n points; returns (bx, by, n).
    """
    p = sx.shape[0]
    # stack of control point sets, flat: entry e occupies [e * p, (e + 1) * p)
    cap = 8
    stx = np.empty(cap * p, np.float32)
    sty = np.empty(cap * p, np.float32)
    copy_items(stx, 0, sx, 0, p)
    copy_items(sty, 0, sy, 0, p)
    top = 1
    lx = np.empty(p, np.float32)
    ly = np.empty(p, np.float32)
    rx = np.empty(p, np.float32)
    ry = np.empty(p, np.float32)
    mx = np.empty(p, np.float32)
    my = np.empty(p, np.float32)
    while top > 0:
        top -= 1
        cx = stx[top * p : (top + 1) * p]
        cy = sty[top * p : (top + 1) * p]
        if _flat_enough(cx, cy):
            _subdivide(cx, cy, lx, ly, rx, ry, mx, my)
            bx, by = _grow(bx, by, n, p)
            bx[n] = cx[0]
            by[n] = cy[0]
            n += 1
            # buffer = l[0..p] ++ r[1..p]; output 0.25 * (b[2i-1] + 2 b[2i] + b[2i+1]), i in 1..p-1
            for i in range(1, p - 1):
                k = 2 * i
                ax = lx[k - 1] if k - 1 < p else rx[k - 1 - p + 1]
                ay = ly[k - 1] if k - 1 < p else ry[k - 1 - p + 1]
                mxx = lx[k] if k < p else rx[k - p + 1]
                myy = ly[k] if k < p else ry[k - p + 1]
                zx = lx[k + 1] if k + 1 < p else rx[k + 1 - p + 1]
                zy = ly[k + 1] if k + 1 < p else ry[k + 1 - p + 1]
                bx[n] = ((ax + mxx * _TWO) + zx) * _QUARTER
                by[n] = ((ay + myy * _TWO) + zy) * _QUARTER
                n += 1
            continue
        _subdivide(cx, cy, lx, ly, rx, ry, mx, my)
        if top + 2 > cap:
            ncap = cap * 2
            nstx = np.empty(ncap * p, np.float32)
            nsty = np.empty(ncap * p, np.float32)
            copy_items(nstx, 0, stx, 0, cap * p)
            copy_items(nsty, 0, sty, 0, cap * p)
            stx = nstx
            sty = nsty
            cap = ncap
        copy_items(stx, top * p, rx, 0, p)
        copy_items(sty, top * p, ry, 0, p)
        copy_items(stx, (top + 1) * p, lx, 0, p)
        copy_items(sty, (top + 1) * p, ly, 0, p)
        top += 2
    bx, by = _grow(bx, by, n, 1)
    bx[n] = sx[p - 1]
    by[n] = sy[p - 1]
    n += 1
    return bx, by, n


@njit(cache=True, error_model="numpy", inline="always")
def _catmull_point(c, x1, x2, x3, x4):
    t1 = c / np.float32(CATMULL_DETAIL)
    t2 = t1 * t1
    t3 = t2 * t1
    return _HALF * (((x1 + x2 * t1) + x3 * t2) + x4 * t3)


@njit(cache=True, error_model="numpy")
def _catmull_subpath(bx, by, n, v1x, v1y, v2x, v2y, v3x, v3y, v4x, v4y):
    """`catmull_subpath`: 2 * CATMULL_DETAIL points of one Catmull-Rom span (f32)."""
    x1 = _TWO * v2x
    x2 = -v1x + v3x
    x3 = ((_TWO * v1x - np.float32(5.0) * v2x) + np.float32(4.0) * v3x) - v4x
    x4 = (-v1x + np.float32(3.0) * (v2x - v3x)) + v4x
    y1 = _TWO * v2y
    y2 = -v1y + v3y
    y3 = ((_TWO * v1y - np.float32(5.0) * v2y) + np.float32(4.0) * v3y) - v4y
    y4 = (-v1y + np.float32(3.0) * (v2y - v3y)) + v4y
    bx, by = _grow(bx, by, n, 2 * CATMULL_DETAIL)
    for ci in range(CATMULL_DETAIL):
        c = np.float32(ci)
        bx[n] = _catmull_point(c, x1, x2, x3, x4)
        by[n] = _catmull_point(c, y1, y2, y3, y4)
        n += 1
        c1 = c + _ONE
        bx[n] = _catmull_point(c1, x1, x2, x3, x4)
        by[n] = _catmull_point(c1, y1, y2, y3, y4)
        n += 1
    return bx, by, n


@njit(cache=True, error_model="numpy")
def _approximate_catmull(bx, by, n, sx, sy):
    """`approximate_catmull`."""
    p = sx.shape[0]
    if p == 1:
        return bx, by, n
    v1x = sx[0]
    v1y = sy[0]
    v2x = sx[0]
    v2y = sy[0]
    if p > 1:
        v3x = sx[1]
        v3y = sy[1]
    else:
        v3x = v2x
        v3y = v2y
    if p > 2:
        v4x = sx[2]
        v4y = sy[2]
    else:
        v4x = v3x * _TWO - v2x
        v4y = v3y * _TWO - v2y
    bx, by, n = _catmull_subpath(bx, by, n, v1x, v1y, v2x, v2y, v3x, v3y, v4x, v4y)
    for i in range(2, p):
        v1x = sx[i - 2]
        v1y = sy[i - 2]
        v2x = sx[i - 1]
        v2y = sy[i - 1]
        v3x = sx[i]
        v3y = sy[i]
        if i + 1 < p:
            v4x = sx[i + 1]
            v4y = sy[i + 1]
        else:
            v4x = v3x * _TWO - v2x
            v4y = v3y * _TWO - v2y
        bx, by, n = _catmull_subpath(bx, by, n, v1x, v1y, v2x, v2y, v3x, v3y, v4x, v4y)
    return bx, by, n


@njit(cache=True, error_model="numpy")
def _arc_properties(ax, ay, bx_, by_, cx, cy):
    """`circular_arc_properties` + the point count of `approximate_circular_arc`.

    Returns (ok, centre_x, centre_y, radius, theta_start, theta_range, direction, sub_points);
    ok False: degenerate triangle (|cross| <= f32::EPSILON) or >= 1000 points.
    """
    cross = (by_ - ay) * (cx - ax) - (bx_ - ax) * (cy - ay)
    d = _TWO * (((ax * (by_ - cy)) + bx_ * (cy - ay)) + cx * (ay - by_))
    a_sq = ax * ax + ay * ay
    b_sq = bx_ * bx_ + by_ * by_
    c_sq = cx * cx + cy * cy
    centre_x = (((a_sq * (by_ - cy)) + b_sq * (cy - ay)) + c_sq * (ay - by_)) / d
    centre_y = (((a_sq * (cx - bx_)) + b_sq * (ax - cx)) + c_sq * (bx_ - ax)) / d
    dax = ax - centre_x
    day = ay - centre_y
    dcx = cx - centre_x
    dcy = cy - centre_y
    radius = f32_length(dax, day)
    theta_start = math.atan2(np.float64(day), np.float64(dax))
    theta_end = math.atan2(np.float64(dcy), np.float64(dcx))
    while theta_end < theta_start:
        theta_end += 2.0 * math.pi
    direction = 1.0
    theta_range = theta_end - theta_start
    ortho_x = cy - ay
    ortho_y = -(cx - ax)
    if ortho_x * (bx_ - ax) + ortho_y * (by_ - ay) < np.float32(0.0):
        direction = -direction
        theta_range = 2.0 * math.pi - theta_range

    sub_points = 2
    if not _TWO * radius <= CIRCULAR_ARC_TOLERANCE:
        divisor = _TWO * np.float32(math.acos(_ONE - (CIRCULAR_ARC_TOLERANCE / radius)))
        # C# gives (int)Infinity = int.MinValue; rosu-map special-cases it (map /b/2568364)
        if abs(divisor) > F32_EPSILON:
            # `(theta_range / divisor).ceil() as usize`: NaN and negatives -> 0, huge saturates
            q = np.ceil(theta_range / np.float64(divisor))
            if not (q > 0.0):
                q = 0.0
            sub_points = 1000 if q >= 1000.0 else max(int(q), 2)
    ok = abs(cross) > F32_EPSILON and sub_points < 1000
    return (
        ok,
        centre_x,
        centre_y,
        radius,
        theta_start,
        theta_range,
        direction,
        sub_points,
    )


@njit(cache=True, error_model="numpy")
def _approximate_circular_arc(bx, by, n, ax, ay, bx_, by_, cx, cy):
    """`approximate_circular_arc`. Returns (bx, by, n, ok); not ok: fall back to bezier."""
    ok, centre_x, centre_y, radius, theta_start, theta_range, direction, sub_points = (
        _arc_properties(ax, ay, bx_, by_, cx, cy)
    )
    if ok:
        bx, by = _grow(bx, by, n, sub_points)
        divisor64 = np.float64(sub_points - 1)
        directed_range = direction * theta_range
        for i in range(sub_points):
            fract = np.float64(i) / divisor64
            theta = theta_start + fract * directed_range
            ox = np.float32(math.cos(theta))
            oy = np.float32(math.sin(theta))
            bx[n] = centre_x + ox * radius
            by[n] = centre_y + oy * radius
            n += 1
    return bx, by, n, ok


@njit(cache=True, error_model="numpy")
def _thin_catmull(bx, by, start_len, n, optimized_len):
    """osu!-only catmull thinning (lazer): keep a vertex 6 px away from the last kept one, the
    last vertex of every knot and the path end; the removed length adds to the optimized length.

    Works in place on bx/by[start_len:n]; returns (n, optimized_len).
    """
    sub_n = n - start_len
    subx = np.empty(sub_n, np.float32)
    suby = np.empty(sub_n, np.float32)
    copy_items(subx, 0, bx, start_len, sub_n)
    copy_items(suby, 0, by, start_len, sub_n)
    n = start_len
    have_start = False
    lsx = np.float32(0.0)
    lsy = np.float32(0.0)
    removed = 0.0
    for i in range(sub_n):
        cx = subx[i]
        cy = suby[i]
        if not have_start:
            bx[n] = cx
            by[n] = cy
            n += 1
            lsx = cx
            lsy = cy
            have_start = True
            continue
        dist_from_start = np.float64(f32_length(lsx - cx, lsy - cy))
        removed += np.float64(f32_length(subx[i - 1] - cx, suby[i - 1] - cy))
        if (
            dist_from_start > 6.0
            or ((i + 1) % (CATMULL_DETAIL * 2)) == 0
            or i == sub_n - 1
        ):
            bx[n] = cx
            by[n] = cy
            n += 1
            optimized_len += removed - dist_from_start
            have_start = False
            removed = 0.0
    return n, optimized_len


@njit(cache=True, error_model="numpy")
def _calculate_subpath(bx, by, n, sx, sy, kind, optimized_len):
    """`calculate_subpath` for mode osu!. Returns (bx, by, n, optimized_len)."""
    p = sx.shape[0]
    use_bezier = kind != PT_LINEAR and kind != PT_CATMULL
    if kind == PT_LINEAR:
        bx, by = _grow(bx, by, n, p)
        copy_items(bx, n, sx, 0, p)
        copy_items(by, n, sy, 0, p)
        n += p
    elif kind == PT_CATMULL:
        start_len = n
        bx, by, n = _approximate_catmull(bx, by, n, sx, sy)
        n, optimized_len = _thin_catmull(bx, by, start_len, n, optimized_len)
    elif kind == PT_PERFECT and p == 3:
        bx, by, n, ok = _approximate_circular_arc(
            bx, by, n, sx[0], sy[0], sx[1], sy[1], sx[2], sy[2]
        )
        use_bezier = not ok
    if use_bezier:  # B (any B-spline degree), and P falling back
        bx, by, n = _approximate_bezier(bx, by, n, sx, sy)
    return bx, by, n, optimized_len


@njit(cache=True, error_model="numpy")
def calculate_path(cpx, cpy, cpt):
    """`calculate_path`: the flattened path of one slider. Returns (px, py, n, optimized_len)."""
    npts = cpx.shape[0]
    bx = np.empty(max(16, 4 * npts), np.float32)
    by = np.empty(max(16, 4 * npts), np.float32)
    n = np.int64(0)  # typed, not a literal: one compiled version of each callee
    optimized_len = 0.0
    start = 0
    for i in range(npts):
        if cpt[i] == PT_NONE and i < npts - 1:
            continue
        seg_len = i - start + 1
        if seg_len == 1:
            bx, by = _grow(bx, by, n, 1)
            bx[n] = cpx[start]
            by[n] = cpy[start]
            n += 1
        else:
            kind = cpt[start]
            if kind == PT_NONE:
                kind = np.int8(PT_LINEAR)
            path_len = n
            bx, by, n, optimized_len = _calculate_subpath(
                bx, by, n, cpx[start : i + 1], cpy[start : i + 1], kind, optimized_len
            )
            # skip the first new vertex if it repeats the last one of the previous segment
            if (
                path_len >= 1
                and n > path_len
                and bx[path_len - 1] == bx[path_len]
                and by[path_len - 1] == by[path_len]
            ):
                for k in range(path_len, n - 1):
                    bx[k] = bx[k + 1]
                    by[k] = by[k + 1]
                n -= 1
        start = i
    return bx, by, n, optimized_len


@njit(cache=True, error_model="numpy")
def calculate_length(bx, by, n, has_expected, expected_len, optimized_len):
    """`calculate_length`: cumulative lengths (f64), fitting the path to the expected length.

    May move the last point or drop trailing points. Returns (px, py, n, lengths, n_lengths);
    note n_lengths can be n + 1 (osu-stable's "last two points equal" case).
    """
    lengths = np.empty(n + 2, np.float64)
    calculated = optimized_len
    lengths[0] = 0.0
    nl = 1
    for k in range(n - 1):
        calculated += np.float64(f32_length(bx[k + 1] - bx[k], by[k + 1] - by[k]))
        lengths[nl] = calculated
        nl += 1
    fit = has_expected and abs(calculated - expected_len) >= F64_EPSILON
    if (
        fit
        and n >= 2
        and bx[n - 2] == bx[n - 1]
        and by[n - 2] == by[n - 1]
        and expected_len > calculated
    ):
        # osu-stable: no extension when the last two points coincide
        lengths[nl] = calculated
        nl += 1
        fit = False
    if fit and nl > 1:  # (a lone point has nothing to fit)
        nl -= 1  # the last length is always incorrect
        # last_valid = 1 + index of the last length < expected_len (0 if none)
        last_valid = 0
        for k in range(nl - 1, -1, -1):
            if lengths[k] < expected_len:
                last_valid = k + 1
                break
        if last_valid < nl:
            nl = last_valid
            n = last_valid + 1
        if nl == 0:
            # the expected length is zero or negative
            lengths[0] = 0.0
            nl = 1
        else:
            end_idx = nl
            prev_idx = end_idx - 1
            dx = bx[end_idx] - bx[prev_idx]
            dy = by[end_idx] - by[prev_idx]
            scale = _ONE / f32_length(dx, dy)
            dx = dx * scale
            dy = dy * scale
            along = np.float32(expected_len - lengths[prev_idx])
            bx[end_idx] = bx[prev_idx] + dx * along
            by[end_idx] = by[prev_idx] + dy * along
            lengths[nl] = expected_len
            nl += 1
    return bx, by, n, lengths, nl


@njit(cache=True, error_model="numpy")
def _idx_of_dist(lengths, nl, d):
    """Rust (>= 1.82) `binary_search_by(partial_cmp, NaN = Equal)`, Ok or Err index alike."""
    if nl == 0:
        return 0
    size = nl
    base = 0
    while size > 1:
        half = size // 2
        mid = base + half
        # cmp == Greater  <=>  lengths[mid] > d (NaN compares Equal)
        if not (lengths[mid] > d):
            base = mid
        size -= half
    v = lengths[base]
    if v == d or math.isnan(v) or math.isnan(d):
        return base
    if v < d:
        return base + 1
    return base


@njit(cache=True, error_model="numpy")
def position_at(bx, by, n, lengths, nl, progress):
    """`position_at`: the point at `progress` (0..1, clamped) along the path, f32 osu! pixels."""
    dist = lengths[nl - 1] if nl > 0 else 0.0
    p = progress  # f64::clamp(0, 1): NaN stays NaN
    if p < 0.0:  # noqa: PLR1730
        p = 0.0
    if p > 1.0:  # noqa: PLR1730
        p = 1.0
    d = p * dist
    i = _idx_of_dist(lengths, nl, d)
    if n == 0:
        return np.float32(0.0), np.float32(0.0)
    if i == 0:
        return bx[0], by[0]
    if i >= n:
        return bx[n - 1], by[n - 1]
    p0x = bx[i - 1]
    p0y = by[i - 1]
    d0 = lengths[i - 1]
    d1 = lengths[i]
    if abs(d0 - d1) <= F64_EPSILON:
        return p0x, p0y
    w = np.float32((d - d0) / (d1 - d0))
    return p0x + (bx[i] - p0x) * w, p0y + (by[i] - p0y) * w
