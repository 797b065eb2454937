"""Constants shared by the osu_2019 port's readers (decode.py, the Python reader; scan.py, its numba
fast path) and its kernels (curve.py, stars.py). Sources: rosu-map 0.2.0 and akatsuki-pp-rs, as named."""

from __future__ import annotations

import numpy as np

MAX_PARSE_VALUE = 2147483647  # rosu-map util/parse_number.rs: i32::MAX
MAX_COORDINATE_VALUE = 131072  # akatsuki-pp-rs model/beatmap/decode.rs
LATEST_FORMAT_VERSION = 14  # rosu-map format_version.rs
DEFAULT_BEAT_LEN = 1000.0  # rosu-map TimingPoint::DEFAULT_BEAT_LEN = 60_000 / 60 (ms)
F32_EPS = float(np.finfo(np.float32).eps)
F64_EPS = float(np.finfo(np.float64).eps)
F32_LIMIT = np.float32(MAX_PARSE_VALUE)  # `i32::MAX as f32` = 2^31

# Path type codes shared with curve.py (rosu-map slider/path_type.rs SplineType)
PT_NONE, PT_CATMULL, PT_BEZIER, PT_LINEAR, PT_PERFECT = -1, 0, 1, 2, 3

# Hit object kinds shared with stars.py
KIND_CIRCLE, KIND_SLIDER, KIND_SPINNER = 0, 1, 2
