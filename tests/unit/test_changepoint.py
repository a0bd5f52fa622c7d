"""raybench.judge.changepoint: E-divisive means with a permutation test, on planted steps and flat series."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from raybench.judge.changepoint import detect, energy_statistic, format_history


def _brute_q(x: np.ndarray) -> list[float]:
    n = x.size
    out = []
    for tau in range(1, n):
        left, right = x[:tau], x[tau:]
        across = np.mean([abs(a - b) for a in left for b in right])
        within_l = np.mean([abs(a - b) for a, b in itertools.combinations(left, 2)]) if tau > 1 else 0.0
        within_r = np.mean([abs(a - b) for a, b in itertools.combinations(right, 2)]) if n - tau > 1 else 0.0
        out.append(tau * (n - tau) / n * (2 * across - within_l - within_r))
    return out


def test_energy_statistic_matches_definition() -> None:
    x = np.random.default_rng(3).normal(size=13)
    q = energy_statistic(x)
    assert q[0] == -math.inf and q[13] == -math.inf
    assert q[1:13] == pytest.approx(_brute_q(x))
    rows = np.stack([x, x[::-1]])
    assert energy_statistic(rows)[1, 1:13] == pytest.approx(_brute_q(x[::-1]))


@pytest.mark.parametrize("k", [4, 10, 16])
def test_finds_a_step_planted_at_k_in_20_runs(k: int) -> None:
    rng = np.random.default_rng(k)
    series = rng.normal(100.0, 3.0, size=20)
    series[k:] *= 1.2  # +20 % from run k on (about 7 standard deviations)
    points = detect(series, seed=1)
    assert [p.index for p in points] == [k]
    assert points[0].p_value < 0.01
    assert points[0].change == pytest.approx(0.2, abs=0.05)


def test_finds_two_steps() -> None:
    rng = np.random.default_rng(5)
    series = rng.normal(50.0, 1.0, size=30)
    series[10:] += 10.0
    series[20:] -= 20.0
    assert [p.index for p in detect(series, seed=2)] == [10, 20]


def test_flat_series_has_no_change_point() -> None:
    rng = np.random.default_rng(11)
    assert detect(rng.normal(100.0, 3.0, size=20), seed=1) == []
    assert detect([7.0] * 20) == []
    # Over many flat series the rate of false change points stays near alpha (0.01).
    found = sum(bool(detect(rng.normal(100.0, 3.0, size=20), seed=s)) for s in range(40))
    assert found <= 3


def test_too_short_and_bad_input() -> None:
    assert detect([1.0, 2.0, 30.0, 40.0]) == []  # fewer than 2 * min_size runs
    with pytest.raises(ValueError, match="NaN"):
        detect([1.0, math.nan])
    with pytest.raises(ValueError, match="permutations"):
        detect([1.0] * 10, permutations=50, alpha=0.01)


def test_seeded_and_reproducible() -> None:
    series = np.r_[np.full(8, 10.0), np.full(8, 11.0)] + np.random.default_rng(0).normal(0, 0.5, 16)
    assert detect(series, seed=4) == detect(series, seed=4)


def test_format_history_names_the_run() -> None:
    values = [10.0] * 6 + [20.0] * 6
    runs = [f"run{i:02d}" for i in range(12)]
    lines = format_history("p99_ms", runs, values, detect(values), fmt=lambda v: f"{v:.0f}ms")
    assert lines[0] == "p99_ms: 12 runs"
    assert any("run06" in line and "shift begins" in line for line in lines)
    assert lines[-1].startswith("change point at run run06 (#6): mean 10ms -> 20ms (+100.0%)")
