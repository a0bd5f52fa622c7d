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

Sleeping a modelled duration is :func:`raybench.actors.clock.sleep_until` (this module stays pure).
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from typing import Annotated, Any, Literal, Protocol

from pydantic import BeforeValidator, Field, TypeAdapter, model_validator

from raybench.config.types import Number, Table, fail, validate


class Distribution(Protocol):
    """What the engine needs of a modelled duration."""

    @property
    def mean(self) -> float: ...

    def sample(self, rng: random.Random) -> float: ...

    def to_dict(self) -> dict[str, Any]: ...


#: Milliseconds of a modelled duration: a finite number, never negative.
Ms = Annotated[Number, Field(ge=0)]


class _Dist(Table):
    def to_dict(self) -> dict[str, Any]:
        """The TOML table (``parse(d.to_dict(), where) == d``)."""
        return self.model_dump(mode="json", by_alias=True)


class Constant(_Dist):
    dist: Literal["constant"] = "constant"
    value: Ms = Field(description="milliseconds, every time")

    @property
    def mean(self) -> float:
        return self.value

    def sample(self, rng: random.Random) -> float:
        return self.value


class Uniform(_Dist):
    dist: Literal["uniform"] = "uniform"
    min: Ms = Field(description="milliseconds, lowest")
    max: Ms = Field(description="milliseconds, highest (>= min)")

    @model_validator(mode="after")
    def _ordered(self) -> Uniform:
        if self.min > self.max:
            raise ValueError(f"min {self.min} > max {self.max}")
        return self

    @property
    def mean(self) -> float:
        return (self.min + self.max) / 2.0

    def sample(self, rng: random.Random) -> float:
        return rng.uniform(self.min, self.max)


class Normal(_Dist):
    """Normal(mean, std) truncated at 0 by redrawing, plus uniform(0, jitter) noise."""

    dist: Literal["normal"] = "normal"
    mean_ms: Ms = Field(alias="mean", description="milliseconds, mean of the normal before truncation")
    std: Ms = Field(description="milliseconds, standard deviation")
    jitter: Ms = Field(0.0, description="milliseconds, width of the uniform noise added")

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


class LogNormal(_Dist):
    """Lognormal with the given median (ms) and shape sigma (of the underlying normal)."""

    dist: Literal["lognormal"] = "lognormal"
    median: Ms = Field(gt=0, description="milliseconds")
    sigma: Ms = Field(description="shape: standard deviation of the underlying normal")

    @property
    def mean(self) -> float:
        return self.median * math.exp(self.sigma**2 / 2.0)

    def sample(self, rng: random.Random) -> float:
        return rng.lognormvariate(math.log(self.median), self.sigma)


class Empirical(_Dist):
    """Draws uniformly from recorded samples (ms), e.g. latencies measured in production."""

    dist: Literal["empirical"] = "empirical"
    samples: tuple[Ms, ...] = Field(min_length=1, description="milliseconds, drawn uniformly")

    @property
    def mean(self) -> float:
        return sum(self.samples) / len(self.samples)

    def sample(self, rng: random.Random) -> float:
        return self.samples[rng.randrange(len(self.samples))]


KINDS = ("constant", "uniform", "normal", "lognormal", "empirical")


def _table(spec: Any) -> Any:
    if isinstance(spec, _Dist):
        return spec
    if isinstance(spec, (int, float)) and not isinstance(spec, bool):
        return {"dist": "constant", "value": spec}
    if not isinstance(spec, Mapping):
        raise fail('expected a table like {dist = "uniform", min = 5, max = 25}, or a number of milliseconds')
    if "dist" not in spec:
        raise fail(f"expected a table with dist = one of {', '.join(KINDS)}")
    return spec


#: A distribution field of a scenario table: its TOML table, or a bare number (constant ms).
Dist = Annotated[
    Annotated[Constant | Uniform | Normal | LogNormal | Empirical, Field(discriminator="dist")],
    BeforeValidator(_table),
]
_ADAPTER: TypeAdapter[Any] = TypeAdapter(Dist)


def parse(spec: Mapping[str, Any] | float | int, where: str) -> Distribution:
    """Build a distribution from its TOML table (or a bare number: constant ms).

    Raises:
        ScenarioError: unknown ``dist``, unknown or missing keys, negative values, ``min > max``.
    """
    return validate(_ADAPTER, spec, where)


def __getattr__(name: str) -> Any:
    # ``sleep_until`` lives in raybench.actors.clock (model/ imports no asyncio). Kept reachable
    # here only until raybench/actors/host.py, being refactored, imports it from there.
    if name == "sleep_until":
        from raybench.actors.clock import sleep_until

        return sleep_until
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
