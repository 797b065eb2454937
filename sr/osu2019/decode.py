"""Read an .osu file the way the live relax path does.

The live service builds its beatmap with `akatsuki_pp::Beatmap::from_bytes`, i.e. rosu-map 0.2.0's
line reader (`src/decode.rs`, `src/reader/*.rs`, `src/format_version.rs`, `src/section/mod.rs`,
`src/util/{key_value,parse_number,str_ext}.rs`) driving akatsuki-pp-rs's own section parsers
(`src/model/beatmap/decode.rs` at c0e499e). Only what the osu_2019 star path reads is kept:
format version, [General] Mode, [Difficulty] CircleSize / SliderMultiplier / SliderTickRate,
[TimingPoints] (timing and difficulty points) and [HitObjects].

Rules reproduced here, all from those files:
- the text is UTF-8 (BOM skipped; invalid bytes become U+FFFD) or UTF-16 with a BOM, split on
  `\\n` only, each line right-trimmed; empty lines and lines starting with `//` are skipped;
- the first non-empty line gives the version (`osu file format vN`); anything else means v14
  and the line is looked at again as a possible section header;
- a line that fails to parse is ignored *as a whole* (rosu-map swallows section errors): e.g. a
  timing point with a time signature < 1 or unparsable effect flags, a hit object with an
  unparsable hit sound or bank field, an empty slider length field, a NaN control point;
- no version-dependent time offset is applied (rosu-pp 2.0 applies none);
- positions are parsed as f32, then truncated to integers (`as i32 as f32`); control points
  likewise, relative to the object's position (osu! pixels);
- slider curve types and segment splitting follow lazer's `convertPathString`, including the
  quirk that a slider whose path fails half-way leaves its first segments behind, to be
  prepended to the next slider that parses;
- SliderMultiplier and SliderTickRate are NOT clamped (akatsuki-pp-rs parses them as plain f64);
- control points at the same time are merged as lazer does (timing changes first), redundant
  difficulty points are dropped, slider velocity is `clamp(100 / -beat_len, 0.1, 10)`, a NaN
  inherited beat length turns slider ticks off;
- hit objects are sorted stably by start time (`f64::total_cmp`).
"""

from __future__ import annotations

import math
import re
from bisect import bisect_left

import numpy as np

from sr.osu2019.constants import (
    F32_EPS,
    F32_LIMIT,
    F64_EPS,
    KIND_CIRCLE,
    KIND_SLIDER,
    KIND_SPINNER,
    LATEST_FORMAT_VERSION,
    MAX_COORDINATE_VALUE,
    MAX_PARSE_VALUE,
    PT_BEZIER,
    PT_CATMULL,
    PT_LINEAR,
    PT_NONE,
    PT_PERFECT,
)
from sr.osu2019.scan import merge_control_points, scan_hit_objects, scan_timing_points

# Rust's `char::is_whitespace` (Unicode White_Space); Python's str.isspace also counts \x1c-\x1f.
RUST_WS = "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"

_INT_RE = re.compile(r"[+-]?[0-9]+\Z")
_SMALL_INT = re.compile(r"[+-]?[0-9]{1,9}\Z")
# Plain decimals: Python's float() and Rust's f64 parser both round them correctly (no exponent,
# no inf/nan, no underscores, ASCII digits only).
_PLAIN_DEC = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)\Z", re.ASCII)

SECTIONS = frozenset(
    (
        "General",
        "Editor",
        "Metadata",
        "Difficulty",
        "Events",
        "TimingPoints",
        "Colours",
        "HitObjects",
        "Variables",
        "CatchTheBeat",
        "Mania",
    )
)


class LineError(Exception):
    """A line rosu-map would reject (and therefore ignore)."""


# ---------------------------------------------------------------- numbers (util/parse_number.rs)


def parse_i32_raw(s: str) -> int:
    """Rust `s.parse::<i32>()`: optional sign and ASCII digits, no whitespace, within i32."""
    if not _INT_RE.match(s):
        raise LineError(f"invalid integer {s!r}")
    n = int(s)
    if n < -2147483648 or n > 2147483647:
        raise LineError(f"integer out of range {s!r}")
    return n


def parse_i32(s: str, limit: int = MAX_PARSE_VALUE) -> int:
    """rosu-map `i32::parse_with_limits`: trimmed Rust integer parse, then `-limit..=limit`."""
    n = parse_i32_raw(s.strip(RUST_WS))
    if n < -limit or n > limit:
        raise LineError("integer beyond limit")
    return n


def rust_f64(s: str) -> float:
    """Rust `s.parse::<f64>()` (no trimming): Python's float() minus its extras (`_`, non-ASCII)."""
    if not s.isascii() or "_" in s or s != s.strip():
        raise LineError(f"invalid float {s!r}")
    try:
        return float(s)
    except ValueError as exc:
        raise LineError(f"invalid float {s!r}") from exc


def parse_f64(s: str, limit: float = float(MAX_PARSE_VALUE)) -> float:
    """rosu-map `f64::parse_with_limits`: trimmed parse, error beyond +-limit or NaN."""
    n = rust_f64(s.strip(RUST_WS))
    if n < -limit or n > limit or math.isnan(n):
        raise LineError("float beyond limit or NaN")
    return n


def parse_f32(s: str, limit: np.float32 = F32_LIMIT) -> np.float32:
    """rosu-map `f32::parse_with_limits` (the value rounded to f32, then the limit check in f32)."""
    v = rust_f64(s.strip(RUST_WS))
    if (
        not abs(v) <= 1e30
    ):  # NaN, or surely beyond any limit used here (avoids f32 overflow)
        raise LineError("float beyond limit or NaN")
    n = np.float32(v)
    if n < -limit or n > limit:
        raise LineError("float beyond limit")
    return n


def f32_to_i32_to_f32(v: np.float32) -> np.float32:
    """Rust `v as i32 as f32`: truncate toward zero, saturate (inputs here are within +-2^31)."""
    t = math.trunc(float(v))
    t = max(-2147483648, min(2147483647, t))
    return np.float32(t)


def total_order_key(values: np.ndarray) -> np.ndarray:
    """int64 keys ordering f64 values like Rust's `f64::total_cmp` (-0.0 < +0.0)."""
    bits = np.ascontiguousarray(values, dtype=np.float64).view(np.int64)
    return bits ^ ((bits >> 63) & np.int64(0x7FFFFFFFFFFFFFFF))


def _total_key_scalar(t: float) -> tuple[float, int]:
    return (t, 0 if (t == 0.0 and math.copysign(1.0, t) < 0) else 1)


# ---------------------------------------------------------------- text -> lines (reader/*.rs)


def decode_lines(content: bytes) -> list[str]:
    """Bytes -> right-trimmed lines, as rosu-map's Decoder reads them."""
    if content[:3] == b"\xef\xbb\xbf":
        text = content[3:].decode("utf-8", errors="replace")
    elif content[:2] == b"\xff\xfe":
        text = content[2:].decode("utf-16-le", errors="replace")
    elif content[:2] == b"\xfe\xff":
        text = content[2:].decode("utf-16-be", errors="replace")
    else:
        text = content.decode("utf-8", errors="replace")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # read_until stops at the final "\n": no extra empty line
    return [ln.rstrip(RUST_WS) for ln in lines]


def trim_comment(line: str) -> str:
    """rosu-map `StrExt::trim_comment`: cut at the first `//`, then right-trim."""
    i = line.find("//")
    if i >= 0:
        line = line[:i]
    return line.rstrip(RUST_WS)


def key_value(line: str) -> tuple[str, str]:
    """rosu-map `KeyValue::parse`: split on ':', trim; the value is the SECOND piece only."""
    parts = line.split(":")
    key = parts[0].strip(RUST_WS)
    value = parts[1].strip(RUST_WS) if len(parts) > 1 else ""
    return key, value


# ---------------------------------------------------------------- the parsed map


class RawMap:
    """What the decoder keeps: header values, control points, hit objects in file order.

    Units: times in ms (map time, no mods), positions in osu! pixels.
    """

    __slots__ = (
        "cp_off",
        "cp_type",
        "cp_x",
        "cp_y",
        "cs",
        "diff_gen_ticks",
        "diff_svs",
        "diff_times",
        "mode",
        "obj_kind",
        "obj_times",
        "obj_x",
        "obj_y",
        "slider_has_len",
        "slider_index",
        "slider_len",
        "slider_multiplier",
        "slider_repeats",
        "slider_tick_rate",
        "timing_beat_lens",
        "timing_times",
        "version",
    )

    def __init__(self, version: int) -> None:
        self.version = version
        self.mode = 0
        self.cs = np.float32(5.0)
        self.slider_multiplier = 1.4
        self.slider_tick_rate = 1.0
        self.timing_times: list[float] = []
        self.timing_beat_lens: list[float] = []
        self.diff_times: list[float] = []
        self.diff_svs: list[float] = []
        self.diff_gen_ticks: list[bool] = []
        self.obj_times: list[float] = []
        self.obj_x: list[float] = []
        self.obj_y: list[float] = []
        self.obj_kind: list[int] = []
        self.slider_index: list[
            int
        ] = []  # per object: index into slider arrays, -1 if none
        self.cp_x: list[float] = []
        self.cp_y: list[float] = []
        self.cp_type: list[int] = []
        self.cp_off: list[int] = [0]
        self.slider_has_len: list[bool] = []
        self.slider_len: list[float] = []
        self.slider_repeats: list[int] = []


class _State:
    """akatsuki-pp-rs `BeatmapState` (model/beatmap/decode.rs), reduced to what stars need."""

    def __init__(self, version: int) -> None:
        self.map = RawMap(version)
        self.has_approach_rate = False
        self.pending_time = 0.0
        self.pending_timing: tuple[float, float] | None = None
        self.pending_difficulty: tuple[float, float, bool] | None = None
        self.timing_keys: list[tuple[float, int]] = []
        self.diff_keys: list[tuple[float, int]] = []
        # convert_path_str output buffer; survives a failed slider (quirk, see module doc)
        self.curve_x: list[float] = []
        self.curve_y: list[float] = []
        self.curve_t: list[int] = []

    # ---- [General]
    def general(self, line: str) -> None:
        key, value = key_value(trim_comment(line))
        # any other Mode value: ParseGameModeError, line ignored
        if key == "Mode" and value in ("0", "1", "2", "3"):
            self.map.mode = int(value)

    # ---- [Difficulty]
    def difficulty(self, line: str) -> None:
        key, value = key_value(trim_comment(line))
        m = self.map
        if key == "CircleSize":
            m.cs = parse_f32(value)
        elif key == "SliderMultiplier":
            m.slider_multiplier = parse_f64(value)
        elif key == "SliderTickRate":
            m.slider_tick_rate = parse_f64(value)
        # HPDrainRate, OverallDifficulty, ApproachRate do not enter osu_2019 stars

    # ---- [TimingPoints]
    def timing_point(self, line: str) -> None:
        """akatsuki-pp-rs `parse_timing_points` + the pending-point merge of lazer/rosu."""
        if "/" in line:
            line = trim_comment(line)
        split = line.split(",")
        ns = len(split)
        if ns < 2:
            raise LineError("invalid timing point line")
        t = split[0]
        if _PLAIN_DEC.match(t):  # float() and Rust's parser agree on plain decimals
            time = float(t)
            if time < -MAX_PARSE_VALUE or time > MAX_PARSE_VALUE:
                raise LineError("time beyond limit")
        else:
            time = parse_f64(t)
        b = split[1]
        # NaN is allowed here
        beat_len = float(b) if _PLAIN_DEC.match(b) else rust_f64(b.strip(RUST_WS))
        if beat_len < -MAX_PARSE_VALUE or beat_len > MAX_PARSE_VALUE:
            raise LineError("beat length beyond limit")
        speed_multiplier = 100.0 / -beat_len if beat_len < 0.0 else 1.0
        if ns > 2:
            m = split[2]
            if (int(m) if _SMALL_INT.match(m) else parse_i32(m)) < 1:
                raise LineError("time signature")
        timing_change = split[6][:1] == "1" if ns > 6 else True
        if ns > 7 and not _SMALL_INT.match(split[7]):
            parse_i32_raw(split[7])  # EffectFlags: a bad value rejects the whole line
        if timing_change:
            if math.isnan(beat_len):
                raise LineError("timing point NaN")
            if abs(time - self.pending_time) >= F64_EPS:
                self.flush_pending()
            if self.pending_timing is None:
                self.pending_timing = (time, min(max(beat_len, 6.0), 60000.0))
            self.pending_time = time
        point = (time, min(max(speed_multiplier, 0.1), 10.0), not math.isnan(beat_len))
        if abs(time - self.pending_time) >= F64_EPS:
            self.flush_pending()
        if not timing_change or self.pending_difficulty is None:
            self.pending_difficulty = point
        # the effect point is irrelevant for stars; it only repeats the pending-time update
        self.pending_time = time

    def flush_pending(self) -> None:
        """Add the pending timing / difficulty points (lazer's `ControlPointInfo.Add` rules)."""
        m = self.map
        if self.pending_timing is not None:
            time, beat_len = self.pending_timing
            self.pending_timing = None
            tt = m.timing_times
            if not tt or time > tt[-1]:
                self.timing_keys.append(_total_key_scalar(time))
                tt.append(time)
                m.timing_beat_lens.append(beat_len)
            else:
                key = _total_key_scalar(time)
                i = bisect_left(self.timing_keys, key)
                if i < len(self.timing_keys) and self.timing_keys[i] == key:
                    m.timing_beat_lens[i] = beat_len
                else:
                    self.timing_keys.insert(i, key)
                    tt.insert(i, time)
                    m.timing_beat_lens.insert(i, beat_len)
        if self.pending_difficulty is not None:
            time, sv, gen = self.pending_difficulty
            self.pending_difficulty = None
            dt = m.diff_times
            if not dt or time > dt[-1]:
                i, found = len(dt), False
            else:
                key = _total_key_scalar(time)
                i = bisect_left(self.diff_keys, key)
                found = i < len(self.diff_keys) and self.diff_keys[i] == key
            # check_already_existing: compare with the point in effect at `time` (or the default)
            j = i if found else i - 1
            if j >= 0:
                ex_sv, ex_gen = m.diff_svs[j], m.diff_gen_ticks[j]
            else:
                ex_sv, ex_gen = 1.0, True
            if gen == ex_gen and abs(sv - ex_sv) < F64_EPS:
                return
            if found:
                m.diff_svs[i] = sv
                m.diff_gen_ticks[i] = gen
            else:
                self.diff_keys.insert(i, _total_key_scalar(time))
                dt.insert(i, time)
                m.diff_svs.insert(i, sv)
                m.diff_gen_ticks.insert(i, gen)

    # ---- [HitObjects]
    def hit_object(self, line: str) -> None:
        split = trim_comment(line).split(",")
        if len(split) < 5:
            raise LineError("invalid hit object line")
        limit = np.float32(MAX_COORDINATE_VALUE)
        x = f32_to_i32_to_f32(parse_f32(split[0], limit))
        y = f32_to_i32_to_f32(parse_f32(split[1], limit))
        start_time = parse_f64(split[2])
        kind = parse_i32_raw(split[3])
        parse_i32_raw(split[4])  # HitSoundType
        m = self.map
        if kind & 1:
            _custom_sound(split[5] if len(split) > 5 else None)
            obj_kind, slider = KIND_CIRCLE, -1
        elif kind & 2:
            if len(split) < 7:
                raise LineError("invalid hit object line")
            repeats = parse_i32(split[6])
            if repeats > 9000:
                raise LineError("repeat count is way too high")
            repeats = max(0, repeats - 1)
            has_len, length = False, 0.0
            if len(split) > 7:
                new_len = max(parse_f64(split[7], float(MAX_COORDINATE_VALUE)), 0.0)
                if abs(new_len) >= F64_EPS:
                    has_len, length = True, new_len
            _custom_sound(split[10] if len(split) > 10 else None)
            self._convert_path_str(split[5], x, y)
            m.cp_x.extend(self.curve_x)
            m.cp_y.extend(self.curve_y)
            m.cp_type.extend(self.curve_t)
            self.curve_x, self.curve_y, self.curve_t = [], [], []
            m.cp_off.append(len(m.cp_x))
            m.slider_has_len.append(has_len)
            m.slider_len.append(length)
            m.slider_repeats.append(repeats)
            obj_kind, slider = KIND_SLIDER, len(m.slider_repeats) - 1
        elif kind & 8:
            if len(split) < 6:
                raise LineError("invalid hit object line")
            parse_f64(split[5])
            _custom_sound(split[6] if len(split) > 6 else None)
            obj_kind, slider = KIND_SPINNER, -1
        elif kind & 128:
            if len(split) > 5 and split[5] != "":
                end, sep, bank = split[5].partition(":")
                if not sep:
                    raise LineError("invalid hold line")
                _custom_sound(bank)
                parse_f64(end)
            # hold notes count as spinners in osu_2019
            obj_kind, slider = KIND_SPINNER, -1
        else:
            raise LineError("unknown hit object type")
        m.obj_times.append(start_time)
        m.obj_x.append(float(x))
        m.obj_y.append(float(y))
        m.obj_kind.append(obj_kind)
        m.slider_index.append(slider)

    def _convert_path_str(self, point_str: str, x: np.float32, y: np.float32) -> None:
        """akatsuki-pp-rs `convert_path_str` (lazer `LegacyHitObjectParser.convertPathString`)."""
        point_split = point_str.split("|")
        start_idx = 0
        end_idx = 0
        first = True
        n = len(point_split)
        while True:
            end_idx += 1
            if not end_idx < n:
                break
            token = point_split[end_idx]
            if token == "":
                raise LineError("empty path token")
            if not ("a" <= token[0] <= "z" or "A" <= token[0] <= "Z"):
                continue
            end_point = point_split[end_idx + 1] if end_idx + 1 < n else None
            self._convert_points(point_split[start_idx:end_idx], end_point, first, x, y)
            start_idx = end_idx
            first = False
        if end_idx > start_idx:
            self._convert_points(point_split[start_idx:end_idx], None, first, x, y)

    def _convert_points(
        self,
        points: list[str],
        end_point: str | None,
        first: bool,
        ox: np.float32,
        oy: np.float32,
    ) -> None:
        if not points:
            raise LineError("no path type")
        path_type = _path_type(points[0])
        vx: list[np.float32] = []
        vy: list[np.float32] = []
        if first:
            vx.append(np.float32(0.0))
            vy.append(np.float32(0.0))
        for tok in points[1:]:
            px, py = _read_point(tok, ox, oy)
            vx.append(px)
            vy.append(py)
        if end_point is not None:
            px, py = _read_point(end_point, ox, oy)
            vx.append(px)
            vy.append(py)
        if path_type == PT_PERFECT:
            if len(vx) == 3:
                # is_linear: FloatExt::eq on the f32 cross products
                lhs = (vy[1] - vy[0]) * (vx[2] - vx[0])
                rhs = (vx[1] - vx[0]) * (vy[2] - vy[0])
                if abs(float(np.float32(lhs - rhs))) < F32_EPS:
                    path_type = PT_LINEAR
            else:
                path_type = PT_BEZIER
        if not vx:
            raise LineError("no vertices")
        types = [PT_NONE] * len(vx)
        types[0] = path_type
        end_point_len = 1 if end_point is not None else 0
        last = len(vx) - end_point_len
        start_idx = 0
        end_idx = 0
        cx, cy, ct = self.curve_x, self.curve_y, self.curve_t
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
            types[end_idx - 1] = path_type
            cx.extend(float(v) for v in vx[start_idx:end_idx])
            cy.extend(float(v) for v in vy[start_idx:end_idx])
            ct.extend(types[start_idx:end_idx])
            start_idx = end_idx + 1
        if end_idx > start_idx:
            cx.extend(float(v) for v in vx[start_idx:end_idx])
            cy.extend(float(v) for v in vy[start_idx:end_idx])
            ct.extend(types[start_idx:end_idx])


def _path_type(token: str) -> int:
    """rosu-map `PathType::new_from_str` (B-spline degrees are read but curved as bezier)."""
    c = token[:1]
    if c == "B":
        return PT_BEZIER
    if c == "L":
        return PT_LINEAR
    if c == "P":
        return PT_PERFECT
    return PT_CATMULL


def _read_point(
    value: str, ox: np.float32, oy: np.float32
) -> tuple[np.float32, np.float32]:
    parts = value.split(":")
    if len(parts) < 2:
        raise LineError("invalid control point")
    lim = float(MAX_COORDINATE_VALUE)
    x = parse_f64(parts[0], lim)
    y = parse_f64(parts[1], lim)
    # `x as i32 as f32`, then `pos - start_pos` in f32
    return (
        np.float32(np.float32(math.trunc(x)) - ox),
        np.float32(np.float32(math.trunc(y)) - oy),
    )


def _custom_sound(bank_info: str | None) -> None:
    """akatsuki-pp-rs `parse_custom_sound`: the first four `:`-fields must be integers."""
    if not bank_info:
        return
    for part in bank_info.split(":")[:4]:
        parse_i32(part)


# ---------------------------------------------------------------- driver (decode.rs)


def _hit_objects_header_end(content: bytes) -> int:
    """End offset of the first `[HitObjects]` line (a line of its own, right-trimmed), or -1."""
    start = 0
    while True:
        k = content.find(b"[HitObjects]", start)
        if k < 0:
            return -1
        end = content.find(b"\n", k)
        if end < 0:
            end = len(content)
        if (k == 0 or content[k - 1] == 10) and not content[k + 12 : end].strip(
            b" \t\r\x0b\x0c"
        ):
            return end
        start = k + 12


def read_map(content: bytes, fast: bool = True) -> RawMap:
    """Parse .osu bytes into a RawMap following rosu-map 0.2.0's `DecodeBeatmap::decode`.

    `fast` lets an ordinary [HitObjects] section go through the compiled reader (scan.py), which
    gives the same result; False forces this module's line-by-line reader everywhere.
    When [HitObjects] is the last section of a UTF-8 file, its bytes go to scan.py directly.
    """
    tail = None
    if fast and content[:2] not in (b"\xff\xfe", b"\xfe\xff"):
        at = _hit_objects_header_end(content)
        if at >= 0:
            tail = content[at:]
            content = content[:at]
    lines = decode_lines(content)
    n = len(lines)
    i = 0
    version = None
    use_curr_line = False
    while i < n:
        line = lines[i]
        i += 1
        if line == "":
            continue
        if line.startswith("osu file format v"):
            try:
                version = parse_i32(line.rsplit("v", 1)[1])
            except LineError:
                use_curr_line = True
        else:
            use_curr_line = True
        break
    state = _State(version if version is not None else LATEST_FORMAT_VERSION)

    section = None
    if use_curr_line:
        section = _section_of(lines[i - 1])
    while section is None and i < n:
        section = _section_of(lines[i])
        i += 1
    hit_object_lines: list[str] = []
    timing_lines: list[str] = []
    if section is not None:
        section = _feed(state, lines, i, section, hit_object_lines, timing_lines)
    if tail is not None:
        # scan.py gives up on any line it is not sure of (including a later section header)
        if (
            section == "HitObjects"
            and not hit_object_lines
            and _scan_fast(state.map, tail)
        ):
            tail = None
        elif section is not None:
            section = _feed(
                state, decode_lines(tail), 0, section, hit_object_lines, timing_lines
            )
    if timing_lines and not (fast and _scan_timing_fast(state.map, timing_lines)):
        for line in timing_lines:
            try:
                state.timing_point(line)
            except LineError:
                pass
        state.flush_pending()
    if hit_object_lines and not (
        fast and _scan_fast(state.map, "\n".join(hit_object_lines).encode("utf-8"))
    ):
        for line in hit_object_lines:
            try:
                state.hit_object(line)
            except LineError:
                pass
    return state.map


def _feed(
    state: _State,
    lines: list[str],
    i: int,
    section: str,
    hit_object_lines: list[str],
    timing_lines: list[str],
) -> str:
    """The section loop of rosu-map `DecodeBeatmap::decode` from line i; returns the last section.

    [HitObjects] and [TimingPoints] lines are only collected here, then read after the loop (in
    file order; neither section's state depends on the other sections).
    """
    handlers = {
        "General": state.general,
        "Difficulty": state.difficulty,
        "TimingPoints": timing_lines.append,
        "HitObjects": hit_object_lines.append,
    }
    handler = handlers.get(section)
    n = len(lines)
    while i < n:
        line = lines[i]
        i += 1
        if not line:
            continue
        if line[0] == "[" and line[-1] == "]" and line[1:-1] in SECTIONS:
            section = line[1:-1]
            handler = handlers.get(section)
            continue
        if handler is None or line.lstrip(RUST_WS).startswith("//"):
            continue
        try:
            handler(line)
        except LineError:
            pass  # rosu-map ignores a section line that fails to parse
    return section


def _scan_fast(m: RawMap, data: bytes) -> bool:
    """Fill m's hit objects with the compiled reader (scan.py) from the section's bytes.

    False (m untouched) if some line needs this module's reader.
    """

    buf = np.frombuffer(data, dtype=np.uint8)
    (
        status,
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
        length,
        repeats,
        fix,
    ) = scan_hit_objects(buf)
    if status != 0:
        return False
    for what, idx, a, b in fix.tolist():
        v = float(data[a:b])  # a plain decimal: float() rounds it as Rust does
        if what == 0:
            if abs(v) > MAX_PARSE_VALUE:
                return False
            times[idx] = v
        elif what == 1:
            if abs(v) > MAX_COORDINATE_VALUE:
                return False
            v = max(v, 0.0)
            has_len[idx] = abs(v) >= F64_EPS
            length[idx] = v if has_len[idx] else 0.0
        elif abs(v) > MAX_PARSE_VALUE:
            return False
    m.obj_times = times
    m.obj_x = xs
    m.obj_y = ys
    m.obj_kind = kinds
    m.slider_index = slider_index
    m.cp_x = cpx
    m.cp_y = cpy
    m.cp_type = cpt
    m.cp_off = cp_off
    m.slider_has_len = has_len
    m.slider_len = length
    m.slider_repeats = repeats
    return True


def _scan_timing_fast(m: RawMap, lines: list[str]) -> bool:
    """Fill m's timing and difficulty points with scan.py; False if a line needs this module."""

    data = "\n".join(lines).encode("utf-8")
    status, times, beats, changes, fix = scan_timing_points(
        np.frombuffer(data, dtype=np.uint8)
    )
    if status != 0:
        return False
    for what, idx, a, b in fix.tolist():
        v = float(data[a:b])  # a plain decimal: float() rounds it as Rust does
        if abs(v) > MAX_PARSE_VALUE:
            return False
        if what == 0:
            times[idx] = v
        else:
            beats[idx] = v
    tp_t, tp_b, dp_t, dp_s = merge_control_points(times, beats, changes)
    m.timing_times = tp_t
    m.timing_beat_lens = tp_b
    m.diff_times = dp_t
    m.diff_svs = dp_s
    m.diff_gen_ticks = np.ones(dp_t.shape[0], np.bool_)
    return True


def _section_of(line: str) -> str | None:
    if line[:1] == "[" and line[-1:] == "]" and line[1:-1] in SECTIONS:
        return line[1:-1]
    return None
