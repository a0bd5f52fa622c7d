from __future__ import annotations

import math
import random
from itertools import pairwise

import pytest

from raybench.model.arrivals import Arrivals, Shape


def _times(arr: Arrivals, horizon: float, seed: int = 3, tz: float = 0.0) -> list[float]:
    rng = random.Random(seed)
    out, t = [], arr.first(rng, tz)
    while t < horizon:
        out.append(t)
        t = arr.next(t, rng, tz)
    return out


def test_poisson_count_within_bounds_and_exponential_gaps():
    arr = Arrivals(process="poisson", rate=5.0)
    ts = _times(arr, 2000.0)
    expected = 5.0 * 2000
    assert abs(len(ts) - expected) < 5 * math.sqrt(expected)
    gaps = [b - a for a, b in pairwise(ts)]
    mean = sum(gaps) / len(gaps)
    cv = math.sqrt(sum((g - mean) ** 2 for g in gaps) / len(gaps)) / mean
    assert mean == pytest.approx(0.2, rel=0.03)
    assert cv == pytest.approx(1.0, abs=0.05)  # exponential: coefficient of variation 1


def test_constant_rate_is_regular_with_random_phase():
    arr = Arrivals(process="constant", rate=4.0)
    ts = _times(arr, 10.0)
    assert 0 <= ts[0] < 0.25
    assert all(b - a == pytest.approx(0.25) for a, b in pairwise(ts))
    assert _times(arr, 1.0, seed=1)[0] != _times(arr, 1.0, seed=2)[0]


def test_times_strictly_increase_and_are_reproducible():
    arr = Arrivals(process="poisson", rate=1.0, shape=Shape(kind="diurnal", day=20.0, amplitude=0.8))
    a, b = _times(arr, 200.0, seed=9), _times(arr, 200.0, seed=9)
    assert a == b
    assert all(y > x for x, y in pairwise(a))


@pytest.mark.parametrize(
    "shape",
    [
        Shape(kind="ramp", ramp_from=0.2, ramp_time=50.0),
        Shape(kind="step", steps=((0.0, 0.5), (40.0, 2.0))),
        Shape(kind="diurnal", day=30.0, amplitude=0.7),
    ],
)
def test_shaped_poisson_matches_expected_count(shape):
    arr = Arrivals(process="poisson", rate=20.0, shape=shape)
    horizon = 100.0
    expected = arr.expected_count(horizon)
    counts = len(_times(arr, horizon, seed=11))
    assert abs(counts - expected) < 5 * math.sqrt(expected)


def test_diurnal_peak_moves_with_utc_offset():
    shape = Shape(kind="diurnal", day=24.0, amplitude=0.5, peak_hour=14.0)
    # with day = 24 s, t seconds = t o'clock UTC; a region at UTC+5 peaks at 09:00 UTC
    assert shape.factor(14.0, 0.0) == pytest.approx(1.5)
    assert shape.factor(9.0, 5.0) == pytest.approx(1.5)
    assert shape.factor(2.0, 0.0) == pytest.approx(0.5)
    assert shape.max_factor == 1.5


def test_ramp_and_step_factors():
    ramp = Shape(kind="ramp", ramp_from=0.1, ramp_time=10.0)
    assert ramp.factor(0.0) == pytest.approx(0.1)
    assert ramp.factor(5.0) == pytest.approx(0.55)
    assert ramp.factor(20.0) == 1.0
    step = Shape(kind="step", steps=((5.0, 3.0),))
    assert step.factor(4.9) == 1.0 and step.factor(5.0) == 3.0 and step.max_factor == 3.0


def test_closed_loop_has_no_intended_times():
    arr = Arrivals(process="closed")
    assert not arr.open_loop
    with pytest.raises(ValueError):
        arr.next(0.0, random.Random(1))
