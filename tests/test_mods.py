"""The narrowed SR key: on every shipped map, in every mode, the relevant mods rate like the full mods."""

import random

import pytest

from sr.engine import RosuEngine
from sr.live import LiveEngine
from sr.mods import AP, DT, EZ, FL, HD, HR, HT, NC, NF, PF, RX, SD, SO, TD, has_mod, relevant_mods
from tests.conftest import MAPS

KEY_MODS = [1 << bit for bit in (15, 16, 17, 18, 19, 24, 26, 27, 28)]
EXTRA = [1 << 20, 1 << 21, 1 << 22, 1 << 23, 1 << 25, 1 << 29, 1 << 30, 2048]  # FI, RD, cinema, target, ScoreV2, mirror, autoplay
BITS = [NF, EZ, TD, HD, HR, SD, DT, RX, HT, NC | DT, FL, SO, AP, PF | SD, *KEY_MODS, *EXTRA]
MAP_FILES = sorted(MAPS.rglob("*.osu"))


def combos(seed: int, count: int) -> list[int]:
    rng = random.Random(seed)
    out = [0, RX, AP, RX | AP, NC, NC | DT, RX | NC | DT]
    while len(out) < count:
        mods = 0
        for bit in rng.sample(BITS, rng.randint(1, 5)):
            mods |= bit
        out.append(mods)
    return out


@pytest.mark.parametrize("engine", [LiveEngine(), RosuEngine()], ids=lambda e: e.name)
def test_relevant_mods_give_the_same_star_rating_as_the_full_mods(engine):
    checked = 0
    for index, path in enumerate(MAP_FILES):
        content = path.read_bytes()
        for mode in range(4):
            full = combos(seed=index * 4 + mode, count=14)
            requests = [(mode, mods) for mods in full] + [(mode, engine.key_mods(mode, mods)) for mods in full]
            results = engine.rate_beatmap(content, path.name, requests)
            for mods, got, narrowed in zip(full, results[: len(full)], results[len(full):]):
                if isinstance(got, Exception):
                    assert type(narrowed) is type(got), (path.name, mode, mods)
                    continue
                assert got == narrowed, (path.name, mode, mods, engine.key_mods(mode, mods))
                checked += 1
    assert checked > 1500


@pytest.mark.parametrize(
    ("mode", "mods", "expected"),
    [
        (0, HD | NF | SD | PF, HD),
        (0, NC | DT | HD, DT | HD),
        (0, NC, 0),
        (0, RX | HD | FL | DT, RX | DT),
        (0, RX | AP | HR, RX | HR),
        (0, AP | HD | FL, AP | HD | FL),
        (1, RX | HR | EZ | HD | DT, DT),
        (2, AP | HR | HD | FL, HR),
        (3, KEY_MODS[0] | HT | EZ, HT),
    ],
)
def test_relevant_mods_rules(mode, mods, expected):
    assert relevant_mods(mode, mods) == expected


def test_has_mod_and_bad_mode():
    assert has_mod(NC | DT, DT) and not has_mod(DT, NC | DT)
    with pytest.raises(ValueError):
        relevant_mods(4, 0)
