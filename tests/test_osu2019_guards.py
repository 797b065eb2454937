"""The relax port's compiled kernels run without bounds checks: malformed input must end in a named error
(sr.errors.BeatmapMalformed), never in a read or write out of bounds.

Out-of-bounds accesses in numba code do not raise; they corrupt memory or kill the process. The scan test
therefore runs the kernels as plain Python (NUMBA_DISABLE_JIT=1, in a subprocess), where numpy raises
IndexError on the access that compiled code would make silently.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from sr import osu2019
from sr.errors import BeatmapMalformed, RatingError
from sr.live import LiveEngine
from sr.osu2019.decode import read_map
from tests.conftest import MAPS, REPO

MAP = MAPS / "ppy-osu" / "osu" / "2593923.osu"  # circles, sliders of every curve type, spinners

# Spinners whose start and end times are decimals too long for the compiled reader's own conversion
# (16 digits): each line leaves two values for Python's float(). The table of such values held one per
# line (plus one), so from some line on the next write went past its end.
HEADER = b"""osu file format v14

[Difficulty]
CircleSize:4

[TimingPoints]
0,500,4,2,0,100,1,0

[HitObjects]
"""


def long_decimal_spinners(count: int) -> bytes:
    return HEADER + b"".join(
        b"256,192,%d.000000000001,12,0,%d.000000000001,0:0:0:0:\n" % (1000 * (2 * k + 1), 1000 * (2 * k + 2))
        for k in range(count)
    )


LONG_DECIMALS = long_decimal_spinners(3)


def test_long_decimals_never_write_past_the_compiled_readers_table():
    program = textwrap.dedent(
        """
        import sys
        import numpy as np
        from sr.osu2019.decode import _hit_objects_header_end, read_map
        from sr.osu2019.scan import scan_hit_objects
        content = sys.stdin.buffer.read()
        tail = content[_hit_objects_header_end(content):]
        status = scan_hit_objects(np.frombuffer(tail, dtype=np.uint8))[0]
        fast, slow = read_map(content), read_map(content, fast=False)
        assert status == 0, status
        assert list(fast.obj_times) == list(slow.obj_times), (fast.obj_times, slow.obj_times)
        print(len(slow.obj_times))
        """
    )
    env = {**os.environ, "NUMBA_DISABLE_JIT": "1", "PYTHONPATH": str(REPO)}
    for count in (5, 1, 2, 3, 4, 6):  # 5: the last line wrote past the table
        result = subprocess.run([sys.executable, "-W", "ignore", "-c", program], input=long_decimal_spinners(count),
                                capture_output=True, env=env, cwd=REPO, timeout=300)
        assert result.returncode == 0, result.stderr.decode()[-2000:]
        assert result.stdout.strip() == str(count).encode()


def test_long_decimals_rate_the_same_through_both_readers():
    fast = osu2019.build(read_map(LONG_DECIMALS), "fast")
    slow = osu2019.build(read_map(LONG_DECIMALS, fast=False), "slow")
    assert osu2019.relax_stars(fast, 128) == osu2019.relax_stars(slow, 128)


def _slider_position(raw) -> int:
    return next(i for i, s in enumerate(raw.slider_index) if s >= 0)


CORRUPTIONS = [
    ("a slider names a slider the map does not have",
     lambda raw: raw.slider_index.__setitem__(_slider_position(raw), 10**6)),
    ("a circle names a slider", lambda raw: raw.slider_index.__setitem__(raw.obj_kind.index(0), 0)),
    ("the last control point offset is past the control points", lambda raw: raw.cp_off.__setitem__(-1, 10**7)),
    ("control point offsets go backwards", lambda raw: raw.cp_off.__setitem__(1, -5)),
    ("an object kind is unknown", lambda raw: raw.obj_kind.__setitem__(0, 7)),
    ("per-object arrays differ in length", lambda raw: raw.obj_x.pop()),
    ("an object time is not finite", lambda raw: raw.obj_times.__setitem__(3, float("nan"))),
    ("timing arrays differ in length", lambda raw: raw.timing_beat_lens.append(500.0)),
    ("a control point has an unknown path type", lambda raw: raw.cp_type.__setitem__(0, 9)),
]


def _raw():
    raw = read_map(MAP.read_bytes(), fast=False)
    for name in raw.__slots__:  # plain lists, whichever reader filled them
        value = getattr(raw, name)
        if isinstance(value, np.ndarray):
            setattr(raw, name, value.tolist())
    return raw


@pytest.mark.parametrize("what, corrupt", CORRUPTIONS, ids=[c[0] for c in CORRUPTIONS])
def test_a_malformed_map_raises_a_named_error_before_any_kernel_runs(what, corrupt):
    raw = _raw()
    assert osu2019.build(raw, "intact").n_objects > 0
    corrupt(raw)
    with pytest.raises(BeatmapMalformed) as caught:
        osu2019.build(raw, "a" * 32)
    assert caught.value.reason == "malformed_map" and isinstance(caught.value, RatingError)


def test_a_built_beatmap_with_broken_offsets_is_refused():
    beatmap = osu2019.build(_raw(), "b" * 32)
    osu2019.check_beatmap(beatmap)
    beatmap.v_off = beatmap.v_off.copy()
    beatmap.v_off[-1] += 1_000_000  # stored check points past the end of vx/vy
    with pytest.raises(BeatmapMalformed):
        osu2019.check_beatmap(beatmap)
    beatmap = osu2019.build(_raw(), "b" * 32)
    beatmap.slider_of = beatmap.slider_of.copy()
    beatmap.slider_of[beatmap.kind == 1] = 10**6
    with pytest.raises(BeatmapMalformed):
        osu2019.check_beatmap(beatmap)


def test_the_engine_counts_a_malformed_map_as_a_rating_error(monkeypatch):
    content = MAP.read_bytes()

    def malformed(data, fast=True):
        raw = _raw()
        raw.cp_off[-1] = 10**7
        return raw

    monkeypatch.setattr(osu2019, "read_map", malformed)
    engine = LiveEngine()
    results = engine.rate_beatmap(content, "c" * 32, [(0, 128), (0, 0)])
    assert isinstance(results[0], BeatmapMalformed) and results[0].reason == "malformed_map"
    assert isinstance(results[1], float)  # the vanilla rating does not go through the relax kernels
