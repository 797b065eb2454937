"""Compiled reader for the [HitObjects] lines of ordinary maps (the decoder's fast path).

`decode.py` is the reference reader; it costs about 15 us per hit object in Python. This module
reads the same lines with numba when every line is in a plain subset where both readers agree by
construction: ASCII, no `//`, integer coordinates and control points within +-131072, integer
type / hit sound / repeat / bank fields, decimal times and lengths of at most 15 digits (so
`mantissa / 10^k` is the correctly rounded f64 Rust's parser gives), circles, sliders and spinners.
Any other line (hold notes, decimal coordinates, comments, malformed fields, lines rosu-map would
reject) makes `scan_hit_objects` return status 1, and the caller re-reads the section with
`decode.py`. tests/test_osu2019.py checks both readers against each other.

The slider path rules are those of decode.py (`convert_path_str` / `convert_points` of
akatsuki-pp-rs `src/model/beatmap/decode.rs`). Units: ms, osu! pixels.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from sr.osu2019.constants import (
    KIND_CIRCLE,
    KIND_SLIDER,
    KIND_SPINNER,
    MAX_COORDINATE_VALUE,
    MAX_PARSE_VALUE,
    PT_BEZIER,
    PT_CATMULL,
    PT_LINEAR,
    PT_NONE,
    PT_PERFECT,
)

_COMMA, _PIPE, _COLON, _NL, _DOT = 44, 124, 58, 10, 46
_PLUS, _MINUS, _SLASH = 43, 45, 47
F32_EPSILON = np.float32(np.finfo(np.float32).eps)
F64_EPSILON = float(np.finfo(np.float64).eps)
_POW10 = np.array([10.0**k for k in range(23)], dtype=np.float64)


@njit(cache=True, inline="always")
def _strict_int(buf, a, b, max_digits):
    """`[+-]?[0-9]{1,max_digits}` in buf[a:b] -> (ok, value)."""
    i = a
    neg = False
    if i < b and (buf[i] == _PLUS or buf[i] == _MINUS):
        neg = buf[i] == _MINUS
        i += 1
    if i >= b or b - i > max_digits:
        return False, 0
    v = 0
    while i < b:
        c = buf[i]
        if c < 48 or c > 57:
            return False, 0
        v = v * 10 + (c - 48)
        i += 1
    return True, -v if neg else v


@njit(cache=True)
def _plain_decimal(buf, a, b):
    """`[+-]?[0-9]+(\\.[0-9]+)?` in buf[a:b] -> (code, value).

    code 0: at most 15 digits, value exact (`mantissa / 10^k`, correctly rounded like Rust's
    parser); code 1: plain but longer (the caller converts it with Python's float(), which also
    rounds correctly); code 2: anything else.
    """
    i = a
    neg = False
    if i < b and (buf[i] == _PLUS or buf[i] == _MINUS):
        neg = buf[i] == _MINUS
        i += 1
    m = 0
    digits = 0
    frac = 0
    seen_dot = False
    int_digits = 0
    while i < b:
        c = buf[i]
        if c == _DOT:
            if seen_dot or int_digits == 0:
                return 2, 0.0
            seen_dot = True
        elif 48 <= c <= 57:
            if digits < 18:
                m = m * 10 + (c - 48)
            digits += 1
            if seen_dot:
                frac += 1
            else:
                int_digits += 1
        else:
            return 2, 0.0
        i += 1
    if digits == 0 or (seen_dot and frac == 0):
        return 2, 0.0
    if digits > 15:
        return 1, np.nan
    v = np.float64(m)
    if frac > 0:
        v = v / _POW10[frac]
    return 0, -v if neg else v


@njit(cache=True)
def _custom_sound_ok(buf, a, b):
    """parse_custom_sound accepts the field and nothing unusual is in its first four pieces."""
    if a >= b:
        return True
    start = a
    pieces = 0
    i = a
    while i <= b and pieces < 4:
        if i == b or buf[i] == _COLON:
            ok, _v = _strict_int(buf, start, i, 9)
            if not ok:
                return False
            pieces += 1
            start = i + 1
        i += 1
    return True


@njit(cache=True, inline="always")
def _is_ws(c):
    """ASCII bytes Rust's `trim` removes: \\t \\n \\v \\f \\r and space."""
    return c == 32 or (9 <= c <= 13)


@njit(cache=True, inline="always")
def _is_letter(c):
    return (65 <= c <= 90) or (97 <= c <= 122)


@njit(cache=True, inline="always")
def _path_type(buf, a, b):
    if a >= b:
        return PT_CATMULL
    c = buf[a]
    if c == 66:  # B
        return PT_BEZIER
    if c == 76:  # L
        return PT_LINEAR
    if c == 80:  # P
        return PT_PERFECT
    return PT_CATMULL


@njit(cache=True)
def _read_point(buf, a, b):
    """`x:y` with strict integers within the coordinate limit -> (ok, x, y)."""
    mid = -1
    for i in range(a, b):
        if buf[i] == _COLON:
            if mid >= 0:
                return False, 0, 0
            mid = i
    if mid < 0:
        return False, 0, 0
    okx, x = _strict_int(buf, a, mid, 7)
    oky, y = _strict_int(buf, mid + 1, b, 7)
    if (
        not (okx and oky)
        or abs(x) > MAX_COORDINATE_VALUE
        or abs(y) > MAX_COORDINATE_VALUE
    ):
        return False, 0, 0
    return True, x, y


@njit(cache=True)
def _convert_points(
    buf, tok_a, tok_b, t0, t1, end_tok, first, ox, oy, cpx, cpy, cpt, ncp, vx, vy, vt
):
    """`convert_points` for tokens t0..t1 (t0 = the type token). Returns (ok, ncp)."""
    path_type = _path_type(buf, tok_a[t0], tok_b[t0])
    nv = 0
    if first:
        vx[0] = np.float32(0.0)
        vy[0] = np.float32(0.0)
        nv = 1
    for t in range(t0 + 1, t1):
        ok, x, y = _read_point(buf, tok_a[t], tok_b[t])
        if not ok:
            return False, ncp
        vx[nv] = np.float32(x) - ox
        vy[nv] = np.float32(y) - oy
        nv += 1
    end_len = 0
    if end_tok >= 0:
        ok, x, y = _read_point(buf, tok_a[end_tok], tok_b[end_tok])
        if not ok:
            return False, ncp
        vx[nv] = np.float32(x) - ox
        vy[nv] = np.float32(y) - oy
        nv += 1
        end_len = 1
    if path_type == PT_PERFECT:
        if nv == 3:
            lhs = (vy[1] - vy[0]) * (vx[2] - vx[0])
            rhs = (vx[1] - vx[0]) * (vy[2] - vy[0])
            if abs(lhs - rhs) < F32_EPSILON:
                path_type = PT_LINEAR
        else:
            path_type = PT_BEZIER
    if nv == 0:
        return False, ncp
    for k in range(nv):
        vt[k] = PT_NONE
    vt[0] = path_type
    last = nv - end_len
    start_idx = 0
    end_idx = 0
    while True:
        end_idx += 1
        if not end_idx < last:
            break
        if not (vx[end_idx] == vx[end_idx - 1] and vy[end_idx] == vy[end_idx - 1]):
            continue
        if path_type == PT_CATMULL and end_idx > 1:
            continue
        if end_idx == last - 1:
            continue
        vt[end_idx - 1] = path_type
        for k in range(start_idx, end_idx):
            cpx[ncp] = vx[k]
            cpy[ncp] = vy[k]
            cpt[ncp] = vt[k]
            ncp += 1
        start_idx = end_idx + 1
    if end_idx > start_idx:
        for k in range(start_idx, end_idx):
            cpx[ncp] = vx[k]
            cpy[ncp] = vy[k]
            cpt[ncp] = vt[k]
            ncp += 1
    return True, ncp


@njit(cache=True)
def _read_hit_object(
    buf,
    pos,
    end,
    fa,
    fb,
    tok_a,
    tok_b,
    vx,
    vy,
    vt,
    times,
    xs,
    ys,
    kinds,
    slider_index,
    cpx,
    cpy,
    cpt,
    cp_off,
    has_len,
    lengths,
    repeats,
    fix,
    n_obj,
    n_sl,
    ncp,
    n_fix,
):
    """One [HitObjects] line buf[pos:end] (trimmed, not a comment) into the output arrays.

    Returns (ok, n_obj, n_sl, ncp, n_fix); ok False: the line needs decode.py.
    """
    # fields and sanity (no comment marker)
    nf = 0
    fstart = pos
    for i in range(pos, end + 1):
        if i < end:
            c = buf[i]
            if c == _SLASH and i + 1 < end and buf[i + 1] == _SLASH:
                return False, n_obj, n_sl, ncp, n_fix
        if i == end or buf[i] == _COMMA:
            if nf >= 16:
                return False, n_obj, n_sl, ncp, n_fix
            fa[nf] = fstart
            fb[nf] = i
            nf += 1
            fstart = i + 1
    if nf < 5:
        return False, n_obj, n_sl, ncp, n_fix
    okx, ix = _strict_int(buf, fa[0], fb[0], 7)
    oky, iy = _strict_int(buf, fa[1], fb[1], 7)
    codet, t = _plain_decimal(buf, fa[2], fb[2])
    okk, kind = _strict_int(buf, fa[3], fb[3], 9)
    oks, _snd = _strict_int(buf, fa[4], fb[4], 9)
    if not (okx and oky and codet != 2 and okk and oks):
        return False, n_obj, n_sl, ncp, n_fix
    if codet == 1:
        if n_fix >= fix.shape[0]:  # no bounds checks in compiled code: never write past `fix`
            return False, n_obj, n_sl, ncp, n_fix
        fix[n_fix, 0] = 0
        fix[n_fix, 1] = n_obj
        fix[n_fix, 2] = fa[2]
        fix[n_fix, 3] = fb[2]
        n_fix += 1
        t = 0.0
    if (
        abs(ix) > MAX_COORDINATE_VALUE
        or abs(iy) > MAX_COORDINATE_VALUE
        or abs(t) > MAX_PARSE_VALUE
    ):
        return (
            False,
            n_obj,
            n_sl,
            ncp,
            n_fix,
        )  # rosu-map drops such a line; decode.py handles it
    px = np.float32(ix)
    py = np.float32(iy)
    if kind & 1:
        if nf > 5 and not _custom_sound_ok(buf, fa[5], fb[5]):
            return False, n_obj, n_sl, ncp, n_fix
        kinds[n_obj] = KIND_CIRCLE
        slider_index[n_obj] = -1
    elif kind & 2:
        if nf < 7:
            return False, n_obj, n_sl, ncp, n_fix
        okr, rep = _strict_int(buf, fa[6], fb[6], 9)
        if not okr or rep > 9000:
            return False, n_obj, n_sl, ncp, n_fix
        hl = False
        ln = 0.0
        if nf > 7:
            codel, ln = _plain_decimal(buf, fa[7], fb[7])
            if codel == 2:
                return False, n_obj, n_sl, ncp, n_fix
            if codel == 1:
                if n_fix >= fix.shape[0]:
                    return False, n_obj, n_sl, ncp, n_fix
                fix[n_fix, 0] = 1
                fix[n_fix, 1] = n_sl
                fix[n_fix, 2] = fa[7]
                fix[n_fix, 3] = fb[7]
                n_fix += 1
                ln = 0.0
            elif abs(ln) > MAX_COORDINATE_VALUE:
                return False, n_obj, n_sl, ncp, n_fix
            ln = max(ln, 0.0)
            if abs(ln) >= F64_EPSILON:
                hl = True
            else:
                ln = 0.0
        if nf > 10 and not _custom_sound_ok(buf, fa[10], fb[10]):
            return False, n_obj, n_sl, ncp, n_fix
        # path tokens
        nt = 0
        ts = fa[5]
        for i in range(fa[5], fb[5] + 1):
            if i == fb[5] or buf[i] == _PIPE:
                tok_a[nt] = ts
                tok_b[nt] = i
                nt += 1
                ts = i + 1
        start_idx = np.int64(0)  # typed ints/bools: one compiled callee version
        end_idx = np.int64(0)
        first = np.bool_(True)
        no_end = np.int64(-1)
        while True:
            end_idx += 1
            if not end_idx < nt:
                break
            if tok_a[end_idx] >= tok_b[end_idx]:
                return (
                    False,
                    n_obj,
                    n_sl,
                    ncp,
                    n_fix,
                )  # empty token: rosu rejects the line
            if not _is_letter(buf[tok_a[end_idx]]):
                continue
            end_tok = end_idx + 1 if end_idx + 1 < nt else no_end
            ok, ncp = _convert_points(
                buf,
                tok_a,
                tok_b,
                start_idx,
                end_idx,
                end_tok,
                first,
                px,
                py,
                cpx,
                cpy,
                cpt,
                ncp,
                vx,
                vy,
                vt,
            )
            if not ok:
                return False, n_obj, n_sl, ncp, n_fix
            start_idx = end_idx
            first = np.bool_(False)
        if end_idx > start_idx:
            ok, ncp = _convert_points(
                buf,
                tok_a,
                tok_b,
                start_idx,
                end_idx,
                no_end,
                first,
                px,
                py,
                cpx,
                cpy,
                cpt,
                ncp,
                vx,
                vy,
                vt,
            )
            if not ok:
                return False, n_obj, n_sl, ncp, n_fix
        cp_off[n_sl + 1] = ncp
        has_len[n_sl] = hl
        lengths[n_sl] = ln
        repeats[n_sl] = rep - 1 if rep > 1 else 0
        kinds[n_obj] = KIND_SLIDER
        slider_index[n_obj] = n_sl
        n_sl += 1
    elif kind & 8:
        if nf < 6:
            return False, n_obj, n_sl, ncp, n_fix
        codee, e = _plain_decimal(buf, fa[5], fb[5])
        if codee == 2 or (codee == 0 and abs(e) > MAX_PARSE_VALUE):
            return False, n_obj, n_sl, ncp, n_fix
        if codee == 1:
            if n_fix >= fix.shape[0]:
                return False, n_obj, n_sl, ncp, n_fix
            fix[n_fix, 0] = 2
            fix[n_fix, 1] = n_obj
            fix[n_fix, 2] = fa[5]
            fix[n_fix, 3] = fb[5]
            n_fix += 1
        if nf > 6 and not _custom_sound_ok(buf, fa[6], fb[6]):
            return False, n_obj, n_sl, ncp, n_fix
        kinds[n_obj] = KIND_SPINNER
        slider_index[n_obj] = -1
    else:
        return False, n_obj, n_sl, ncp, n_fix
    times[n_obj] = t
    xs[n_obj] = px
    ys[n_obj] = py
    n_obj += 1
    return True, n_obj, n_sl, ncp, n_fix


@njit(cache=True)
def scan_hit_objects(buf):
    """Read the bytes of a [HitObjects] section ('\\n'-separated lines, as in the file).

    Returns (status, times f64, x f32, y f32, kind i8, slider_index i64, cp_x, cp_y, cp_type,
    cp_off, has_len, length, repeats, fix); status 1 means: use decode.py for this section; `fix`
    lists the long decimals the caller must still convert (see `_plain_decimal`).
    """
    nbytes = buf.shape[0]
    n_lines = 1
    n_pipes = 0
    for i in range(nbytes):
        if buf[i] == _NL:
            n_lines += 1
        elif buf[i] == _PIPE:
            n_pipes += 1
    times = np.empty(n_lines, np.float64)
    xs = np.empty(n_lines, np.float32)
    ys = np.empty(n_lines, np.float32)
    kinds = np.empty(n_lines, np.int8)
    slider_index = np.empty(n_lines, np.int64)
    cap_cp = 2 * n_pipes + 3 * n_lines + 16
    cpx = np.empty(cap_cp, np.float32)
    cpy = np.empty(cap_cp, np.float32)
    cpt = np.empty(cap_cp, np.int8)
    cp_off = np.empty(n_lines + 1, np.int64)
    cp_off[0] = 0
    has_len = np.empty(n_lines, np.bool_)
    lengths = np.empty(n_lines, np.float64)
    repeats = np.empty(n_lines, np.int64)
    fa = np.empty(16, np.int64)
    fb = np.empty(16, np.int64)
    tok_a = np.empty(n_pipes + 2, np.int64)
    tok_b = np.empty(n_pipes + 2, np.int64)
    vx = np.empty(n_pipes + 4, np.float32)
    vy = np.empty(n_pipes + 4, np.float32)
    vt = np.empty(n_pipes + 4, np.int8)
    n_obj = np.int64(0)
    n_sl = np.int64(0)
    ncp = np.int64(0)
    # fields to finish with Python's float(): (what, index, start, end); what 0 = object time,
    # 1 = slider length, 2 = spinner end time (checked only); at most two per line
    fix = np.empty((2 * n_lines + 1, 4), np.int64)
    n_fix = np.int64(0)

    status = 0
    pos = np.int64(0)
    while pos <= nbytes:
        end = pos
        while end < nbytes and buf[end] != _NL:
            end += 1
        next_pos = end + 1
        # rosu-map's reader: right-trim, skip empty and `//` lines (ASCII only on this path)
        ascii_only = True
        for i in range(pos, end):
            if buf[i] >= 128:
                ascii_only = False
        if not ascii_only:
            status = 1
            break
        while end > pos and _is_ws(buf[end - 1]):
            end -= 1
        lead = pos
        while lead < end and _is_ws(buf[lead]):
            lead += 1
        if lead < end and not (
            lead + 1 < end and buf[lead] == _SLASH and buf[lead + 1] == _SLASH
        ):
            ok, n_obj, n_sl, ncp, n_fix = _read_hit_object(
                buf,
                pos,
                end,
                fa,
                fb,
                tok_a,
                tok_b,
                vx,
                vy,
                vt,
                times,
                xs,
                ys,
                kinds,
                slider_index,
                cpx,
                cpy,
                cpt,
                cp_off,
                has_len,
                lengths,
                repeats,
                fix,
                n_obj,
                n_sl,
                ncp,
                n_fix,
            )
            if not ok:
                status = 1
                break
        pos = next_pos
    return (
        status,
        times[:n_obj],
        xs[:n_obj],
        ys[:n_obj],
        kinds[:n_obj],
        slider_index[:n_obj],
        cpx[:ncp],
        cpy[:ncp],
        cpt[:ncp],
        cp_off[: n_sl + 1],
        has_len[:n_sl],
        lengths[:n_sl],
        repeats[:n_sl],
        fix[:n_fix],
    )


@njit(cache=True)
def _read_timing_line(buf, pos, end, fa, fb, times, beats, changes, fix, n, n_fix):
    """One [TimingPoints] line buf[pos:end] into the output arrays.

    Returns (ok, n, n_fix); ok False: the line needs decode.py. A time signature < 1 drops the
    line, as rosu-map does.
    """
    nf = 0
    fstart = pos
    for i in range(pos, end + 1):
        if i < end:
            c = buf[i]
            if c >= 128 or c == _SLASH:
                return False, n, n_fix
        if i == end or buf[i] == _COMMA:
            if nf < 9:
                fa[nf] = fstart
                fb[nf] = i
            nf += 1
            fstart = i + 1
    if nf < 2:
        return False, n, n_fix
    codet, t = _plain_decimal(buf, fa[0], fb[0])
    codeb, bl = _plain_decimal(buf, fa[1], fb[1])
    if codet == 2 or codeb == 2:
        return False, n, n_fix
    if (codet == 0 and abs(t) > MAX_PARSE_VALUE) or (
        codeb == 0 and abs(bl) > MAX_PARSE_VALUE
    ):
        return False, n, n_fix
    if nf > 2:
        okm, meter = _strict_int(buf, fa[2], fb[2], 9)
        if not okm:
            return False, n, n_fix
        if meter < 1:
            return True, n, n_fix  # "invalid time signature": rosu-map drops the line
    change = True
    if nf > 6:
        change = fb[6] > fa[6] and buf[fa[6]] == 49  # first char '1'
    if nf > 7:
        oke, _eff = _strict_int(buf, fa[7], fb[7], 9)
        if not oke:
            return False, n, n_fix
    if codet == 1:
        fix[n_fix, 0] = 0
        fix[n_fix, 1] = n
        fix[n_fix, 2] = fa[0]
        fix[n_fix, 3] = fb[0]
        n_fix += 1
    if codeb == 1:
        fix[n_fix, 0] = 1
        fix[n_fix, 1] = n
        fix[n_fix, 2] = fa[1]
        fix[n_fix, 3] = fb[1]
        n_fix += 1
    times[n] = t
    beats[n] = bl
    changes[n] = change
    return True, n + 1, n_fix


@njit(cache=True)
def scan_timing_points(buf):
    """Read the bytes of [TimingPoints] lines ('\\n'-separated, right-trimmed, no blank/comment).

    Returns (status, time f64, beat_len f64, timing_change bool, fix): one entry per line kept;
    `fix` rows (what, line, start, end) name the long decimals still to convert (what 0 = time,
    1 = beat length). status 1: some line needs decode.py.
    """
    nbytes = buf.shape[0]
    n_lines = 1
    for i in range(nbytes):
        if buf[i] == _NL:
            n_lines += 1
    times = np.empty(n_lines, np.float64)
    beats = np.empty(n_lines, np.float64)
    changes = np.empty(n_lines, np.bool_)
    fix = np.empty((2 * n_lines, 4), np.int64)
    fa = np.empty(9, np.int64)
    fb = np.empty(9, np.int64)
    n = np.int64(0)
    n_fix = np.int64(0)
    status = 0
    pos = np.int64(0)
    while pos <= nbytes:
        end = pos
        while end < nbytes and buf[end] != _NL:
            end += 1
        ok, n, n_fix = _read_timing_line(
            buf, pos, end, fa, fb, times, beats, changes, fix, n, n_fix
        )
        if not ok:
            status = 1
            break
        pos = end + 1
    return status, times[:n], beats[:n], changes[:n], fix[:n_fix]


@njit(cache=True, inline="always")
def _key(cell, cell_bits, t):
    """`f64::total_cmp` key of t as an int64 (cell/cell_bits: a 1-element f64 array and its view)."""
    cell[0] = t
    bits = cell_bits[0]
    return bits ^ ((bits >> 63) & 0x7FFFFFFFFFFFFFFF)


@njit(cache=True)
def _insert_at(keys, n, k):
    """Index of key k among keys[:n] (sorted): (found, index) like Rust's binary search."""
    lo = 0
    hi = n
    if n > 0 and keys[n - 1] < k:
        return False, n
    while lo < hi:
        mid = (lo + hi) // 2
        if keys[mid] < k:
            lo = mid + 1
        else:
            hi = mid
    return lo < n and keys[lo] == k, lo


@njit(cache=True)
def _flush(
    has_pt,
    pt_time,
    pt_beat,
    has_pd,
    pd_time,
    pd_sv,
    tp_t,
    tp_b,
    tp_k,
    ntp,
    dp_t,
    dp_s,
    dp_k,
    ndp,
    cell,
    cell_bits,
):
    """`flush_pending`: add the pending timing point, then the pending difficulty point."""
    if has_pt:
        k = _key(cell, cell_bits, pt_time)
        found, i = _insert_at(tp_k, ntp, k)
        if found:
            tp_b[i] = pt_beat
        else:
            for j in range(ntp, i, -1):
                tp_t[j] = tp_t[j - 1]
                tp_b[j] = tp_b[j - 1]
                tp_k[j] = tp_k[j - 1]
            tp_t[i] = pt_time
            tp_b[i] = pt_beat
            tp_k[i] = k
            ntp += 1
    if has_pd:
        k = _key(cell, cell_bits, pd_time)
        found, i = _insert_at(dp_k, ndp, k)
        j = i if found else i - 1
        ex_sv = dp_s[j] if j >= 0 else 1.0  # ticks are on for every point on this path
        if not (abs(pd_sv - ex_sv) < F64_EPSILON):  # else redundant: dropped
            if found:
                dp_s[i] = pd_sv
            else:
                for q in range(ndp, i, -1):
                    dp_t[q] = dp_t[q - 1]
                    dp_s[q] = dp_s[q - 1]
                    dp_k[q] = dp_k[q - 1]
                dp_t[i] = pd_time
                dp_s[i] = pd_sv
                dp_k[i] = k
                ndp += 1
    return ntp, ndp


@njit(cache=True)
def merge_control_points(times, beats, changes):
    """The pending-point merge of akatsuki-pp-rs decode.rs for parsed timing lines.

    Same-time lines are merged (a timing change keeps the first timing point; an inherited line
    overrides the pending difficulty point), redundant difficulty points are dropped. Beat
    lengths are finite here (ticks on). Returns (tp_time, tp_beat_len, dp_time, dp_sv).
    """
    n = times.shape[0]
    tp_t = np.empty(n + 1, np.float64)
    tp_b = np.empty(n + 1, np.float64)
    tp_k = np.empty(n + 1, np.int64)
    dp_t = np.empty(n + 1, np.float64)
    dp_s = np.empty(n + 1, np.float64)
    dp_k = np.empty(n + 1, np.int64)
    ntp = np.int64(0)
    ndp = np.int64(0)
    cell = np.empty(1, np.float64)
    cell_bits = cell.view(np.int64)
    pending_time = 0.0
    has_pt = np.bool_(False)
    pt_time = 0.0
    pt_beat = 0.0
    has_pd = np.bool_(False)
    pd_time = 0.0
    pd_sv = 0.0
    for li in range(n):
        time = times[li]
        beat = beats[li]
        change = changes[li]
        if change:
            if abs(time - pending_time) >= F64_EPSILON:
                ntp, ndp = _flush(
                    has_pt,
                    pt_time,
                    pt_beat,
                    has_pd,
                    pd_time,
                    pd_sv,
                    tp_t,
                    tp_b,
                    tp_k,
                    ntp,
                    dp_t,
                    dp_s,
                    dp_k,
                    ndp,
                    cell,
                    cell_bits,
                )
                has_pt = np.bool_(False)
                has_pd = np.bool_(False)
            if not has_pt:
                has_pt = np.bool_(True)
                pt_time = time
                pt_beat = min(max(beat, 6.0), 60000.0)
            pending_time = time
        if abs(time - pending_time) >= F64_EPSILON:
            ntp, ndp = _flush(
                has_pt,
                pt_time,
                pt_beat,
                has_pd,
                pd_time,
                pd_sv,
                tp_t,
                tp_b,
                tp_k,
                ntp,
                dp_t,
                dp_s,
                dp_k,
                ndp,
                cell,
                cell_bits,
            )
            has_pt = np.bool_(False)
            has_pd = np.bool_(False)
        if not change or not has_pd:
            sm = 100.0 / -beat if beat < 0.0 else 1.0
            has_pd = np.bool_(True)
            pd_time = time
            pd_sv = min(max(sm, 0.1), 10.0)
        pending_time = time
    ntp, ndp = _flush(
        has_pt,
        pt_time,
        pt_beat,
        has_pd,
        pd_time,
        pd_sv,
        tp_t,
        tp_b,
        tp_k,
        ntp,
        dp_t,
        dp_s,
        dp_k,
        ndp,
        cell,
        cell_bits,
    )
    return tp_t[:ntp], tp_b[:ntp], dp_t[:ndp], dp_s[:ndp]
