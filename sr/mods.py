"""Legacy mod bits and the mods that change a star rating (the narrowed SR key).

A star rating depends on few mods, so a (beatmap_md5, mode_vn, mods) key is narrowed to the mods that
can change it: scores with HD, NF, SD, PF, SO or key mods on an NM-equivalent map share one rating.
Measured on the pinned engines (tests/test_mods.py proves it on every shipped map in every mode):

| mode_vn / route | mods that change SR |
|---|---|
| osu! vanilla (rosu-pp 2.0) | EZ HR DT HT HD FL TD |
| osu! relax (osu_2019) | EZ HR DT HT (+ the RX bit, which routes) |
| osu! autopilot (sr.autopilot) | EZ HR DT HT HD FL TD (+ the AP bit, which routes) |
| taiko | DT HT |
| catch | EZ HR DT HT |
| mania (key mods ignored on converts and native maps alike) | DT HT |

NC is always sent with DT (score-service stores both bits) and on its own changes nothing, so it is
dropped: NC counts as DT. RX and AP change nothing outside osu! and are dropped there; on osu! relax
wins over autopilot, as on the live service.
"""

from __future__ import annotations

NF, EZ, TD, HD, HR, SD, DT, RX, HT, NC, FL, AT, SO, AP, PF = (
    1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384,
)

_OSU_VANILLA = EZ | HR | DT | HT | HD | FL | TD
_OSU_RELAX = EZ | HR | DT | HT
_OSU_AUTOPILOT = EZ | HR | DT | HT | HD | FL | TD
_OTHER_MODES = {1: DT | HT, 2: EZ | HR | DT | HT, 3: DT | HT}


def has_mod(mods: int, mod: int) -> bool:
    """True if every bit of `mod` is set in the legacy bitmask `mods`."""
    return mods & mod == mod


def relevant_mods(mode_vn: int, mods: int) -> int:
    """The part of `mods` (legacy bitmask) that can change the star rating in `mode_vn` (0-3).

    Keys with equal relevant mods have equal star ratings on the `live` and `rosu` engines.
    Raises ValueError for a mode outside 0-3.
    """
    if mode_vn == 0:
        if mods & RX:
            return mods & _OSU_RELAX | RX
        if mods & AP:
            return mods & _OSU_AUTOPILOT | AP
        return mods & _OSU_VANILLA
    if mode_vn not in _OTHER_MODES:
        raise ValueError(f"mode_vn must be 0-3, got {mode_vn}")
    return mods & _OTHER_MODES[mode_vn]
