"""Modelled think-time distributions (policy engine, LLM, expert), in milliseconds.

A distribution is a small frozen dataclass with ``sample(rng) -> float`` (ms, never negative) and
``mean`` (ms). ``rng`` is a :class:`random.Random`: each agent owns one, seeded from the scenario
seed and its agent id, so the modelled durations of a run are reproducible with ``--seed`` whatever
the interleaving of agents.

TOML form (a table)::

    {dist = "constant", value = 10}
    {dist = "uniform", min = 5, max = 25}
    {dist = "normal", mean = 40, std = 10, jitter = 2}        # truncated at 0; + uniform(0, jitter)
    {dist = "lognormal", median = 50, sigma = 0.5}
    {dist = "empirical", samples = [12.0, 15.5, 40.1]}        # draws uniformly from the samples

:func:`sleep_until` is how a modelled duration is slept: never less than the model.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from raybench.errors import ScenarioError, nearest


class Distribution(Protocol):
    """What the engine needs of a modelled duration."""

    @property
    def mean(self) -> float: ...

    def sample(self, rng: random.Random) -> float: ...

    def to_dict(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Constant:
    value: float

    @property
    def mean(self) -> float:
        return self.value

    def sample(self, rng: random.Random) -> float:
        return self.value

    def to_dict(self) -> dict[str, Any]:
        return {"dist": "constant", "value": self.value}


@dataclass(frozen=True)
class Uniform:
    min: float
    max: float

    @property
    def mean(self) -> float:
        return (self.min + self.max) / 2.0

    def sample(self, rng: random.Random) -> float:
        return rng.uniform(self.min, self.max)

    def to_dict(self) -> dict[str, Any]:
        return {"dist": "uniform", "min": self.min, "max": self.max}


@dataclass(frozen=True)
class Normal:
    """Normal(mean, std) truncated at 0 by redrawing, plus uniform(0, jitter) noise."""

    mean_ms: float
    std: float
    jitter: float = 0.0

    @property
    def mean(self) -> float:
        # Truncation at 0 moves the mean up; close enough to report when mean >> std, and exact
        # moments are tested for that regime only.
        return self.mean_ms + self.jitter / 2.0

    def sample(self, rng: random.Random) -> float:
        for _ in range(64):
            x = rng.gauss(self.mean_ms, self.std)
            if x >= 0.0:
                break
        else:
            x = 0.0
        return x + (rng.uniform(0.0, self.jitter) if self.jitter else 0.0)

    def to_dict(self) -> dict[str, Any]:
        return {"dist": "normal", "mean": self.mean_ms, "std": self.std, "jitter": self.jitter}


@dataclass(frozen=True)
class LogNormal:
    """Lognormal with the given median (ms) and shape sigma (of the underlying normal)."""

    median: float
    sigma: float

    @property
    def mean(self) -> float:
        return self.median * math.exp(self.sigma**2 / 2.0)

    def sample(self, rng: random.Random) -> float:
        return rng.lognormvariate(math.log(self.median), self.sigma)

    def to_dict(self) -> dict[str, Any]:
        return {"dist": "lognormal", "median": self.median, "sigma": self.sigma}


@dataclass(frozen=True)
class Empirical:
    """Draws uniformly from recorded samples (ms), e.g. latencies measured in production."""

    samples: tuple[float, ...]

    @property
    def mean(self) -> float:
        return sum(self.samples) / len(self.samples)

    def sample(self, rng: random.Random) -> float:
        return self.samples[rng.randrange(len(self.samples))]

    def to_dict(self) -> dict[str, Any]:
        return {"dist": "empirical", "samples": list(self.samples)}


_KINDS: dict[str, tuple[str, ...]] = {
    "constant": ("value",),
    "uniform": ("min", "max"),
    "normal": ("mean", "std", "jitter"),
    "lognormal": ("median", "sigma"),
    "empirical": ("samples",),
}
_OPTIONAL = {"jitter"}


def _number(where: str, key: str, value: Any, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ScenarioError(f"{where}.{key} = {value!r}: expected a finite number of milliseconds")
    if value < 0 or (positive and value == 0):
        bound = "> 0" if positive else ">= 0"
        raise ScenarioError(f"{where}.{key} = {value!r}: must be {bound}")
    return float(value)


def parse(spec: Mapping[str, Any] | float | int, where: str) -> Distribution:
    """Build a distribution from its TOML table (or a bare number: constant ms).

    Raises:
        ScenarioError: unknown ``dist``, unknown or missing keys, negative values, ``min > max``.
    """
    if isinstance(spec, (int, float)) and not isinstance(spec, bool):
        return Constant(_number(where, "value", spec))
    if not isinstance(spec, Mapping):
        raise ScenarioError(f'{where}: expected a table like {{dist = "uniform", min = 5, max = 25}}')
    kind = spec.get("dist")
    if kind not in _KINDS:
        raise ScenarioError(
            f"{where}.dist = {kind!r}: unknown distribution{nearest(str(kind), _KINDS)}; allowed: {', '.join(_KINDS)}"
        )
    allowed = _KINDS[kind]
    for key in spec:
        if key != "dist" and key not in allowed:
            raise ScenarioError(
                f"{where}.{key}: unknown key for dist={kind}{nearest(key, allowed)}; allowed: {', '.join(allowed)}"
            )
    for key in allowed:
        if key not in spec and key not in _OPTIONAL:
            raise ScenarioError(f"{where}: dist={kind} needs {key!r} ({', '.join(allowed)})")
    if kind == "constant":
        return Constant(_number(where, "value", spec["value"]))
    if kind == "uniform":
        lo, hi = _number(where, "min", spec["min"]), _number(where, "max", spec["max"])
        if lo > hi:
            raise ScenarioError(f"{where}: min {lo} > max {hi}")
        return Uniform(lo, hi)
    if kind == "normal":
        return Normal(
            _number(where, "mean", spec["mean"]),
            _number(where, "std", spec["std"]),
            _number(where, "jitter", spec.get("jitter", 0.0)),
        )
    if kind == "lognormal":
        return LogNormal(
            _number(where, "median", spec["median"], positive=True), _number(where, "sigma", spec["sigma"])
        )
    samples = spec["samples"]
    if not isinstance(samples, list) or not samples:
        raise ScenarioError(f"{where}.samples: expected a non-empty list of milliseconds")
    return Empirical(tuple(_number(where, f"samples[{i}]", v) for i, v in enumerate(samples)))


async def sleep_until(deadline_ns: int) -> None:
    """Sleep until ``time.perf_counter_ns()`` reaches ``deadline_ns``, never less: an event loop may
    fire a timer early (uvloop, which Ray uses for async actors when it is installed, keeps a
    millisecond clock read once per loop iteration: up to ~1.5 ms early here), and a modelled stage
    must not end before its model. The top-up sleeps cost a loop iteration or two."""
    while (left := deadline_ns - time.perf_counter_ns()) > 0:
        await asyncio.sleep(left / 1e9)
