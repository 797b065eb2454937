"""Arrow shapes of the star-rating layer: the keys rated, and what comes back."""

from __future__ import annotations

import pyarrow as pa

# Arrow shapes exchanged between stages.
SR_KEY_SCHEMA = pa.schema(
    [
        ("beatmap_md5", pa.string()),
        ("beatmap_id", pa.int64()),
        ("mode_vn", pa.int8()),
        ("mods", pa.int64()),
    ]
)
SR_RESULT_SCHEMA = pa.schema(
    [
        ("beatmap_md5", pa.string()),
        ("mode_vn", pa.int8()),
        ("mods", pa.int64()),
        ("sr_raw", pa.float64()),
        ("sr", pa.float64()),
        ("skip_reason", pa.string()),
    ]
)
