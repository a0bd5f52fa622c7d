from __future__ import annotations

import math
import random
import statistics

import pytest

from raybench.errors import ScenarioError
from raybench.model import timing

N = 20_000


def _draw(spec, seed=7, n=N):
    d = timing.parse(spec, "t")
    rng = random.Random(seed)
    return d, [d.sample(rng) for _ in range(n)]


@pytest.mark.parametrize(
    "spec, mean, std",
    [
        ({"dist": "constant", "value": 12.5}, 12.5, 0.0),
        ({"dist": "uniform", "min": 5, "max": 25}, 15.0, 20 / math.sqrt(12)),
        ({"dist": "normal", "mean": 40, "std": 5}, 40.0, 5.0),
        ({"dist": "lognormal", "median": 50, "sigma": 0.5}, 50 * math.exp(0.125), None),
        ({"dist": "empirical", "samples": [1, 2, 3, 10]}, 4.0, None),
    ],
)
def test_moments_within_bounds(spec, mean, std):
    d, xs = _draw(spec)
    assert d.mean == pytest.approx(mean)
    sd = statistics.pstdev(xs)
    # sample mean within 5 standard errors of the true mean (fixed seed: deterministic)
    assert abs(statistics.fmean(xs) - mean) <= 5 * max(sd, 1e-9) / math.sqrt(N) + 1e-9
    if std is not None:
        assert sd == pytest.approx(std, rel=0.03, abs=1e-9)
    assert min(xs) >= 0


def test_uniform_respects_bounds_and_normal_jitter_adds_half():
    _, xs = _draw({"dist": "uniform", "min": 5, "max": 25})
    assert min(xs) >= 5 and max(xs) <= 25
    d, xs = _draw({"dist": "normal", "mean": 40, "std": 1, "jitter": 4})
    assert statistics.fmean(xs) == pytest.approx(42, abs=0.1)
    assert d.mean == 42


def test_same_seed_same_sequence_other_seed_differs():
    _, a = _draw({"dist": "lognormal", "median": 50, "sigma": 0.5}, seed=1, n=100)
    _, b = _draw({"dist": "lognormal", "median": 50, "sigma": 0.5}, seed=1, n=100)
    _, c = _draw({"dist": "lognormal", "median": 50, "sigma": 0.5}, seed=2, n=100)
    assert a == b and a != c


def test_bare_number_is_constant_and_roundtrip():
    assert timing.parse(3, "x") == timing.Constant(value=3.0)
    for spec in (
        {"dist": "uniform", "min": 1, "max": 2},
        {"dist": "normal", "mean": 1, "std": 2, "jitter": 0.5},
        {"dist": "lognormal", "median": 3, "sigma": 0.1},
        {"dist": "empirical", "samples": [1.0, 2.0]},
    ):
        d = timing.parse(spec, "x")
        assert timing.parse(d.to_dict(), "x") == d


@pytest.mark.parametrize(
    "spec, fragment",
    [
        ({"dist": "gamma", "k": 1}, "unknown distribution"),
        ({"dist": "unifrom", "min": 1, "max": 2}, "did you mean 'uniform'"),
        ({"dist": "uniform", "min": 5, "max": 1}, "min 5.0 > max 1.0"),
        ({"dist": "uniform", "min": -1, "max": 1}, "must be >= 0"),
        ({"dist": "uniform", "min": 1}, "needs 'max'"),
        ({"dist": "uniform", "min": 1, "max": 2, "mx": 3}, "unknown key"),
        ({"dist": "lognormal", "median": 0, "sigma": 1}, "must be > 0"),
        ({"dist": "empirical", "samples": []}, "non-empty list"),
        ("fast", "expected a table"),
    ],
)
def test_invalid_specs_name_the_problem(spec, fragment):
    with pytest.raises(ScenarioError, match=fragment):
        timing.parse(spec, "stages.llm")


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_sleep_until_never_ends_before_its_deadline(loop: str):
    """uvloop's timers fire up to ~1.5 ms early (a millisecond clock read once per iteration):
    a modelled stage slept with sleep_until must still never be shorter than its model."""
    import asyncio
    import random
    import time

    from raybench.actors.clock import sleep_until

    async def main() -> list[int]:
        rng = random.Random(5)

        async def one() -> int:
            await asyncio.sleep(rng.uniform(0, 0.02))
            deadline = time.perf_counter_ns() + int(rng.uniform(0.1, 15.0) * 1e6)
            await sleep_until(deadline)
            return time.perf_counter_ns() - deadline

        return await asyncio.gather(*(one() for _ in range(300)))

    if loop == "uvloop":
        uvloop = pytest.importorskip("uvloop", reason="uvloop is a raybench dependency on Linux and macOS")
        late = uvloop.run(main())
    else:
        late = asyncio.run(main())
    assert min(late) >= 0
