"""The live service's star-rating rounding.

performance-service rounds stars as Rust f32: `(f32(stars) * 100f32).round() / 100f32`, where `round`
is half away from zero, and a NaN or infinite rating becomes 0. Python's `round(x, 2)` differs (it
rounds half to even on the f64 value): live turns 9.995 into 10.0 where Python gives 9.99.
"""

from __future__ import annotations

import math

import numpy as np


def round_live(stars: float) -> float:
    """Round a raw star rating (stars, float) to 2 decimals exactly as the live service does.

    Returns the decimal value the service's JSON carries (e.g. 5.0 for a raw 4.99786), as float.
    A NaN or infinite input returns 0.0, as live does (the backfill itself treats those as errors
    before rounding: sr.errors.NonFiniteRating).
    """
    if not math.isfinite(stars):
        return 0.0
    scaled = float(np.float32(np.float32(stars) * np.float32(100.0)))  # the f32 product, widened exactly
    magnitude = abs(scaled)
    whole = math.floor(magnitude)
    hundredths = whole + (1 if magnitude - whole >= 0.5 else 0)  # half away from zero, exact in f64
    return math.copysign(hundredths, scaled) / 100.0
