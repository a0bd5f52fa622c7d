"""The scenario's own capacity: which bounded resource of the simulated system the offered load
exceeds, computed from the scenario alone, before anything runs.

A benchmark must tell "the system under test saturated" from "the harness saturated". This module
is the first half: the resources whose capacity the *scenario* sets (the harness half is
:mod:`raybench.judge.harness`). Pure: a :class:`~raybench.config.scenario.Scenario` in, a list of
:class:`Finding` out; ``raybench run`` prints the ones over capacity at start (the run goes on) and
records all of them in ``started.json`` / ``manifest.json`` as ``scenario_capacity``; ``raybench
sweep`` names them when its knee is one of them.

Method (every rate at the load's *peak*, not its mean: a pool that keeps up on average but not
through the peak still queues):

* **Peak request rate** = agents × per-agent rate × the peak of the load shape summed over the
  regions (each region's agents follow the shape in their own local time, so a diurnal peak moves
  round the globe and the sum peaks lower than one region alone): the maximum over the load of
  ``Σ_r weight_r × factor(t, utc_offset_r)``, on a 2,000-step grid plus every step time. Closed
  loop: ``1 / mean think time`` per agent, an upper bound (each response's latency adds to the cycle).
* **Expert pool** (``experts.pool``). Escalated share = (1 − ``cache_hit_rate``) ×
  ``Σ_c weight_c × (1 − deny_c) × escalation_c`` (the draws of :mod:`raybench.model.workload`).
  Capacity = pool / mean expert time consultations/s; offered = peak rate × escalated share.
  Lighthouse: 0.9 × 0.18 = 16.2% escalated, 200 / 0.85 s = 235 consultations/s, so ~1,450 req/s.
* **Lease on the hottest key** (only where the scenario models part of a lease's hold time). A
  lease is held from its grant to the commit that releases it: the request's FUSE operation and
  state round trip (real, not in the scenario) and the region's modelled round trip before the
  commit (``regions.rtt``, agents' region weights). Capacity = 1 / that modelled part, grants/s on
  one key; offered = peak rate × share not denied × Zipf probability of key 0. A lower bound of the
  hold time, so an upper bound of the capacity: a finding over it is certain, one under it is not
  proof.

Not here, because the scenario does not set their capacity: the state shards and the FUSE server
(real code whose speed is the machine's; ``docs/performance.md`` has this machine's figures).
Faults (``shrink_experts``, ``slow_stage``) are left out: they are meant to overload.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from raybench.config.scenario import Scenario

#: Grid steps over the load used to find the peak of the summed load shape.
PEAK_STEPS = 2000
#: Resource names (stable: ``raybench sweep`` and tests refer to them).
EXPERT_POOL = "expert pool"
HOT_LEASE = "lease on the hottest key"


@dataclass(frozen=True)
class Finding:
    """One bounded resource: the rate the scenario offers it at its peak against its capacity."""

    resource: str
    offered: float  # per second, at the load's peak
    capacity: float  # per second
    unit: str  # what offered and capacity count, e.g. "consultations/s"
    detail: str  # how the capacity follows from the scenario

    @property
    def utilization(self) -> float:
        return self.offered / self.capacity if self.capacity > 0 else float("inf")

    @property
    def over(self) -> bool:
        """The offered load exceeds the capacity: this resource queues without bound."""
        return self.offered > self.capacity

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "utilization": round(self.utilization, 4), "over": self.over}


def peak_factor(sc: Scenario) -> float:
    """Largest value over the load of the load shape summed over the regions by agent weight
    (1.0 for a flat shape and for closed loop, which ignores the shape)."""
    if not sc.arrivals.open_loop:
        return 1.0
    shape = sc.arrivals.shape
    if shape.kind == "flat":
        return 1.0
    dt = sc.run.duration / PEAK_STEPS
    times = [i * dt for i in range(PEAK_STEPS)] + [t for t, _ in shape.steps if t < sc.run.duration]
    return max(sum(r.weight * shape.factor(t, r.utc_offset) for r in sc.regions) for t in times)


def peak_rate(sc: Scenario) -> float:
    """Requests per second the scenario offers at its peak (see the module docstring)."""
    if sc.arrivals.open_loop:
        per_agent = sc.arrivals.rate
    else:
        think_s = sc.arrivals.think.mean / 1000.0
        per_agent = 1.0 / think_s if think_s > 0 else float("inf")
    return sc.run.agents * per_agent * peak_factor(sc)


def escalated_share(sc: Scenario) -> float:
    """Share of requests escalated to the expert pool."""
    return (1.0 - sc.stages.cache_hit_rate) * sum(c.weight * (1.0 - c.deny) * c.escalation for c in sc.classes)


def leased_share(sc: Scenario) -> float:
    """Share of requests that take a lease (every one the policy does not deny)."""
    return 1.0 - (1.0 - sc.stages.cache_hit_rate) * sum(c.weight * c.deny for c in sc.classes)


def hottest_key_share(keys: int, s: float) -> float:
    """Zipf(s) probability of key 0 over ``keys`` keys (as :class:`raybench.model.workload.Zipf`)."""
    import numpy as np

    return float(1.0 / np.sum(np.arange(1, keys + 1, dtype=np.float64) ** -s))


def findings(sc: Scenario) -> list[Finding]:
    """Every bounded resource of the scenario that can be computed from it, over capacity or not."""
    peak = peak_rate(sc)
    shape = f"{sc.run.agents:,} agents at a peak of {peak:,.0f} req/s"
    out = []
    expert_s = sc.stages.expert.mean / 1000.0
    if expert_s > 0:
        share = escalated_share(sc)
        out.append(
            Finding(
                EXPERT_POOL,
                offered=peak * share,
                capacity=sc.experts.pool / expert_s,
                unit="consultations/s",
                detail=(
                    f"{sc.experts.pool:,} experts / {sc.stages.expert.mean:,.0f} ms mean expert time; "
                    f"{shape} × {share:.1%} escalated"
                ),
            )
        )
    hold_ms = sum(r.weight * r.rtt.mean for r in sc.regions)
    if hold_ms > 0:
        p0 = hottest_key_share(sc.state.keys, sc.state.zipf)
        out.append(
            Finding(
                HOT_LEASE,
                offered=peak * leased_share(sc) * p0,
                capacity=1000.0 / hold_ms,
                unit="grants/s",
                detail=(
                    f"1 / {hold_ms:.2f} ms modelled hold (region round trip before the commit; the FUSE "
                    f"operation and real round trips add to it); {shape} × {p0:.2%} on key 0 "
                    f"(Zipf {sc.state.zipf:g} over {sc.state.keys:,} keys)"
                ),
            )
        )
    return out


def over_capacity(found: Iterable[Finding | Mapping[str, Any]]) -> list[str]:
    """Names of the resources over capacity, from findings or their manifest dicts."""
    names = []
    for f in found:
        if isinstance(f, Finding):
            if f.over:
                names.append(f.resource)
        elif f.get("over"):
            names.append(str(f.get("resource")))
    return names


def format_rate(x: float) -> str:
    """A rate for a line of text: whole numbers from 10 up, two significant digits below."""
    return f"{x:,.0f}" if abs(x) >= 10 else f"{x:.2g}"


def format_finding(f: Finding) -> str:
    """One line for a resource over capacity (the start-of-run warning)."""
    return (
        f"scenario capacity: the {f.resource} is offered {format_rate(f.offered)} {f.unit} at the load's peak, "
        f"above its capacity of {format_rate(f.capacity)} ({f.utilization:.0%}; {f.detail}): it will queue, "
        "and the figures will measure the scenario's own limit, not raybench's; the run goes on"
    )
