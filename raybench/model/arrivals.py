"""Arrival processes: when each agent means to start its next request.

Times are seconds since the start of the load (``t = 0``), per agent. The open-loop processes
(``poisson``, the default, and ``constant``) give *intended* start times that do not depend on how
fast earlier requests were answered: the harness starts each request at its intended time even if
the agent's previous one is still in flight, and latency is measured from the intended time. The
``closed`` process (think time after each response, one request in flight per agent) exists for
comparison only; it hides queueing (coordinated omission) and the manifest flags it.

A *load shape* multiplies the per-agent rate over time:

* ``flat``     factor 1.
* ``ramp``     from ``ramp_from`` (fraction) up to 1 over ``ramp_time`` seconds, then 1.
* ``step``     piecewise constant: ``steps = [[t_s, factor], ...]`` (factor before the first step: 1).
* ``diurnal``  a day compressed into ``day`` seconds: ``1 + amplitude * cos(2π (h - peak_hour) / 24)``
               where ``h`` is the agent's *local* hour (its region's UTC offset added), so the peak
               moves around the globe region by region.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Annotated, Any, Literal, get_args

from pydantic import Field, SerializerFunctionWrapHandler, field_validator, model_serializer, model_validator

from raybench.config.types import Number, Seconds, Table
from raybench.model.timing import Dist

Process = Literal["poisson", "constant", "closed"]
ShapeKind = Literal["flat", "ramp", "step", "diurnal"]
PROCESSES, SHAPES = get_args(Process), get_args(ShapeKind)
Factor = Annotated[Number, Field(ge=0)]
Hour = Annotated[Number, Field(ge=0, le=24)]


class Shape(Table):
    """A load shape; see the module docstring. ``factor`` is never negative. In TOML a table, or
    just its kind (``shape = "flat"``)."""

    kind: ShapeKind = Field("flat", description="flat, ramp, step or diurnal")
    ramp_from: Factor = Field(0.1, description="ramp: the factor at t = 0")
    ramp_time: Seconds = Field("10s", gt=0, description="ramp: time to reach factor 1")
    steps: tuple[tuple[Seconds, Factor], ...] = Field((), description="step: [[time, factor], ...]")
    day: Seconds = Field("60s", gt=0, description="diurnal: seconds of load that make a day")
    amplitude: Annotated[Number, Field(ge=0, le=1)] = Field(0.5, description="diurnal: 1 +/- amplitude")
    peak_hour: Hour = Field(14.0, description="diurnal: local hour of the peak")
    start_hour: Hour = Field(0.0, description="diurnal: UTC hour at t = 0")

    @classmethod
    def coerce(cls, data: Any) -> Any:
        return {"kind": data} if isinstance(data, str) else data

    @field_validator("steps")
    @classmethod
    def _sorted(cls, steps: tuple[tuple[float, float], ...]) -> tuple[tuple[float, float], ...]:
        return tuple(sorted(steps))

    @model_validator(mode="after")
    def _step_needs_steps(self) -> Shape:
        if self.kind == "step" and not self.steps:
            raise ValueError('kind = "step" needs steps = [[time, factor], ...]')
        return self

    def factor(self, t: float, tz_offset_h: float = 0.0) -> float:
        if self.kind == "flat":
            return 1.0
        if self.kind == "ramp":
            if self.ramp_time <= 0 or t >= self.ramp_time:
                return 1.0
            return self.ramp_from + (1.0 - self.ramp_from) * max(t, 0.0) / self.ramp_time
        if self.kind == "step":
            f = 1.0
            for start, value in self.steps:
                if t >= start:
                    f = value
            return f
        hour = (self.start_hour + tz_offset_h + t / self.day * 24.0) % 24.0
        return max(0.0, 1.0 + self.amplitude * math.cos(2.0 * math.pi * (hour - self.peak_hour) / 24.0))

    @property
    def max_factor(self) -> float:
        if self.kind == "ramp":
            return max(1.0, self.ramp_from)
        if self.kind == "step":
            return max([1.0, *(v for _, v in self.steps)])
        if self.kind == "diurnal":
            return 1.0 + self.amplitude
        return 1.0


class Arrivals(Table):
    """Arrival process of one agent: ``rate`` requests per second, shaped by ``shape``."""

    process: Process = Field("poisson", description="poisson, constant, or closed (comparison only)")
    rate: Number = Field(1.0, gt=0, description="requests per agent per second (open loop)")
    shape: Shape = Field(Shape(), description="load shape over the run")
    think: Dist = Field({"dist": "constant", "value": 1000}, description="closed loop: think time, ms")

    @model_serializer(mode="wrap")
    def _serialize(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        out: dict[str, Any] = handler(self)
        if self.process != "closed":  # only a closed loop thinks
            out.pop("think", None)
        return out

    @property
    def open_loop(self) -> bool:
        return self.process != "closed"

    def first(self, rng: random.Random, tz_offset_h: float = 0.0) -> float:
        """Intended time of an agent's first request (s). Constant-rate agents get a random phase
        so that N agents do not all fire at once."""
        if self.process == "constant":
            return self._constant_from(rng.uniform(0.0, 1.0 / self.rate), tz_offset_h, phase=True)
        return self.next(0.0, rng, tz_offset_h)

    def next(self, t: float, rng: random.Random, tz_offset_h: float = 0.0) -> float:
        """Intended time of the request after one intended at ``t`` (open loop only)."""
        if self.process == "poisson":
            # Non-homogeneous Poisson process by thinning (Lewis & Shedler): candidates at the peak
            # rate, each kept with probability factor(t) / max_factor.
            peak = self.rate * self.shape.max_factor
            while True:
                t += rng.expovariate(peak)
                if rng.random() * self.shape.max_factor <= self.shape.factor(t, tz_offset_h):
                    return t
        if self.process == "constant":
            return self._constant_from(t, tz_offset_h, phase=False)
        raise ValueError("closed-loop arrivals have no intended times; the agent thinks after each response")

    def _constant_from(self, t: float, tz_offset_h: float, *, phase: bool) -> float:
        if phase and self.shape.factor(t, tz_offset_h) > 0:
            return t
        for _ in range(100_000):
            f = self.shape.factor(t, tz_offset_h)
            if f > 0:
                return t + 1.0 / (self.rate * f)
            t += 0.01  # shape at zero: look again a little later
        return math.inf

    def expected_count(self, duration_s: float, tz_offsets_h: Sequence[float] = (0.0,)) -> float:
        """Expected requests of one agent over ``[0, duration_s)``, averaged over the given UTC
        offsets (open loop; the integral of rate x shape, midpoint rule with 2,000 steps)."""
        if duration_s <= 0:
            return 0.0
        steps = 2000
        dt = duration_s / steps
        total = 0.0
        for tz in tz_offsets_h:
            total += sum(self.shape.factor((i + 0.5) * dt, tz) for i in range(steps)) * dt * self.rate
        return total / len(tz_offsets_h)

    def to_dict(self) -> dict[str, Any]:
        """The ``[arrivals]`` table (``think`` only for a closed loop)."""
        return self.model_dump(mode="json")
