"""Live rounding: f32 product, half away from zero (performance-service), not Python's round."""

import math

import numpy as np
import pytest

from sr.rounding import round_live

CASES = [
    (9.995, 10.0),  # Python's round gives 9.99
    (1.005, 1.01),  # Python's round gives 1.0
    (4.994, 4.99),
    (4.995, 5.0),
    (4.99786, 5.0),
    (4.9949, 4.99),
    (0.0, 0.0),
    (10.999376262129804, 11.0),
    (3.651823831412481, 3.65),
    (2.5, 2.5),
    (-1.005, -1.01),  # away from zero on the negative side too
]


@pytest.mark.parametrize(("raw", "expected"), CASES)
def test_round_live(raw, expected):
    assert round_live(raw) == expected


def test_python_round_differs_where_live_rounds_up():
    assert round(9.995, 2) == 9.99 and round_live(9.995) == 10.0


@pytest.mark.parametrize("raw", [math.nan, math.inf, -math.inf])
def test_non_finite_is_zero_like_live(raw):
    assert round_live(raw) == 0.0


def test_two_decimals_exactly():
    rng = np.random.default_rng(11)
    for raw in rng.uniform(0, 15, 2000):
        sr = round_live(float(raw))
        assert sr == round(sr, 2) and abs(sr - raw) <= 0.005 + 1e-6
