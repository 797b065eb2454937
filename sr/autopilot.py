"""Live autopilot star rating for osu! (mode 0 with the AP bit 8192), reproduced on rosu-pp-py 2.0.1.

The live fork (akatsuki-pp-rs, osu! difficulty under autopilot) sets the aim rating to 0, multiplies the
flashlight rating by 0.4, and forces the distance term of the speed skill to 0. Upstream rosu-pp-py
ignores the AP bit, so the rating is rebuilt (DOMAIN.md §5, "Reproducing the live SR from PyPI"):

1. rewrite the map so that no distance is left: every circle and slider at (256, 192), each slider
   path a 1-pixel zig-zag at least as long as its pixel length, and `StackLeniency: -1000` so nothing
   stacks;
2. rate the rewritten map without the AP bit: aim must come out exactly 0 (else AutopilotRewriteFailed)
   and speed is then the live autopilot speed rating;
3. recombine with the osu! star formula, aim 0 and flashlight x0.4 (the flashlight rating of the
   original map under the same mods).

Measured: equal to the live service on all 270 autopilot rows of the reference vectors (raw within 1e-6).
"""

from __future__ import annotations

import math

import rosu_pp_py as rosu

from sr.errors import AutopilotRewriteFailed, BeatmapBadFormat

AUTOPILOT = 8192  # sr.mods.AP
FLASHLIGHT = 1024
CENTRE = ("256", "192")
MAX_SLIDER_POINTS = 200_000  # a 1-pixel zig-zag: one point per pixel of slider length


def rewrite_without_distance(content: bytes, beatmap_md5: str = "") -> bytes:
    """The .osu text with every distance removed (see the module docstring), as UTF-8 bytes.

    Raises BeatmapBadFormat for a slider whose pixel length is not a finite number or too long to
    zig-zag (over MAX_SLIDER_POINTS pixels).
    """
    text = content.decode("utf-8-sig", errors="replace")
    out: list[str] = []
    section = None
    has_general = False

    def close_general() -> None:
        if section == "General":
            out.append("StackLeniency: -1000")

    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("[") and stripped.endswith("]"):
            close_general()
            section = stripped[1:-1]
            has_general = has_general or section == "General"
            out.append(line)
            continue
        if section == "General" and stripped.lower().startswith("stackleniency"):
            continue  # replaced when the section closes
        if section == "HitObjects" and stripped and not stripped.startswith("//"):
            out.append(_centre_object(stripped, beatmap_md5))
            continue
        out.append(line)
    close_general()
    if not has_general:
        header = next((i for i, line in enumerate(out) if line.strip()), 0)
        out[header + 1 : header + 1] = ["", "[General]", "StackLeniency: -1000"]
    return ("\n".join(out) + "\n").encode("utf-8")


def _centre_object(line: str, beatmap_md5: str) -> str:
    parts = line.split(",")
    if len(parts) < 5 or not parts[3].strip().lstrip("-").isdigit():
        return line
    kind = int(parts[3])
    if kind & 1 or kind & 2:  # circle or slider
        parts[0], parts[1] = CENTRE
    if kind & 2 and len(parts) >= 6:
        length = _pixel_length(parts, beatmap_md5)
        points = math.ceil(length) + 2
        zigzag = "|".join("257:192" if i % 2 == 0 else "256:192" for i in range(points))
        parts[5] = f"L|{zigzag}"
    return ",".join(parts)


def _pixel_length(parts: list[str], beatmap_md5: str) -> float:
    if len(parts) < 8:
        return 1.0  # no length given: the path's own length applies, and the 1-pixel path is it
    try:
        length = float(parts[7])
    except ValueError as exc:
        raise BeatmapBadFormat(beatmap_md5, f"slider length {parts[7]!r}") from exc
    if not math.isfinite(length) or length > MAX_SLIDER_POINTS:
        raise BeatmapBadFormat(beatmap_md5, f"slider length {parts[7]!r} cannot be rewritten")
    return max(length, 1.0)


def _difficulty_to_performance(rating: float) -> float:
    return (5.0 * max(rating / 0.0675, 1.0) - 4.0) ** 3 / 100_000.0


def autopilot_stars(
    original: rosu.Beatmap, rewritten: rosu.Beatmap, mods: int, beatmap_md5: str = ""
) -> float:
    """Live autopilot stars (raw, unrounded) of an osu! beatmap under `mods`.

    original:  the parsed map (for the flashlight rating); rewritten: the parsed
    `rewrite_without_distance` of it. Raises AutopilotRewriteFailed if the rewrite keeps some aim.
    """
    plain_mods = int(mods) & ~AUTOPILOT
    collapsed = rosu.Difficulty(mods=plain_mods, lazer=False).calculate(rewritten)
    if collapsed.aim != 0.0:
        raise AutopilotRewriteFailed(beatmap_md5, f"aim {collapsed.aim} after the rewrite, mods {mods}")
    performance = _difficulty_to_performance(0.0) ** 1.1 + _difficulty_to_performance(collapsed.speed) ** 1.1
    if plain_mods & FLASHLIGHT:
        flashlight = rosu.Difficulty(mods=plain_mods, lazer=False).calculate(original).flashlight or 0.0
        performance += (25.0 * (0.4 * flashlight) ** 2) ** 1.1
    base = performance ** (1 / 1.1)
    if base <= 1e-5:
        return 0.0
    return 1.15 ** (1 / 3) * 0.027 * ((100_000.0 / 2 ** (1 / 1.1) * base) ** (1 / 3) + 4.0)
