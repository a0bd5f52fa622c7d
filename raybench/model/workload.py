"""What each request of an agent will do, drawn up front from the agent's own seeded RNG.

Everything random about a request — its class, decision-cache hit, policy denial, escalation, the
file key it touches and every modelled duration — is drawn in one go when the request is
dispatched, in the agent's order of intended start times. The sequence of plans of a run is
therefore reproducible with ``--seed`` however the agents' requests interleave at run time. (The
jitter of lease back-off is not part of a plan: how often a request retries depends on timing.)
"""

from __future__ import annotations

import bisect
import itertools
import random
from dataclasses import dataclass

from raybench.config.scenario import Scenario


def agent_rng(seed: int, agent_id: int) -> random.Random:
    """The RNG of one agent: independent of every other agent's and of the host it runs on."""
    return random.Random(f"raybench:{seed}:{agent_id}")


class Zipf:
    """Zipf(s) over keys ``0..n-1``: P(k) proportional to 1 / (k+1)^s (s = 0 is uniform)."""

    def __init__(self, n: int, s: float) -> None:
        if n < 1:
            raise ValueError("Zipf needs at least one key")
        weights = [1.0 / (k + 1) ** s for k in range(n)]
        self._cdf = list(itertools.accumulate(weights))
        self._total = self._cdf[-1]

    def probability(self, k: int) -> float:
        prev = self._cdf[k - 1] if k else 0.0
        return (self._cdf[k] - prev) / self._total

    def sample(self, rng: random.Random) -> int:
        return min(bisect.bisect_left(self._cdf, rng.random() * self._total), len(self._cdf) - 1)


@dataclass(frozen=True, slots=True)
class Plan:
    """The drawn fate of one request. Durations in milliseconds; None where the stage won't run."""

    cls: int  # index into scenario.classes
    cache_hit: bool
    denied: bool
    escalate: bool
    key: int
    policy_ms: float | None
    llm_ms: float | None
    expert_ms: float | None
    rtt_ms: tuple[float, float, float]  # modelled round trips: lease, state, event


class Planner:
    """Draws :class:`Plan` s for a scenario; one per host, shared by its agents (stateless)."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self._class_cdf = list(itertools.accumulate(c.weight for c in scenario.classes))
        self._zipf = Zipf(scenario.state.keys, scenario.state.zipf)

    def region_of(self, agent_id: int, n_agents: int) -> int:
        """Agents are assigned to regions deterministically, in proportion to region weights."""
        position = (agent_id + 0.5) / n_agents
        acc = 0.0
        for i, region in enumerate(self.scenario.regions):
            acc += region.weight
            if position < acc:
                return i
        return len(self.scenario.regions) - 1

    def plan(self, rng: random.Random, region: int) -> Plan:
        sc = self.scenario
        ci = min(bisect.bisect_left(self._class_cdf, rng.random() * self._class_cdf[-1]), len(sc.classes) - 1)
        cls = sc.classes[ci]
        cache_hit = rng.random() < sc.stages.cache_hit_rate
        # Fixed number of draws per request, whatever the branch, so that one request's outcome
        # never shifts the random stream of the agent's next request.
        u_deny, u_esc = rng.random(), rng.random()
        policy = sc.stages.policy.sample(rng)
        llm = sc.stages.llm.sample(rng)
        expert = sc.stages.expert.sample(rng)
        key = self._zipf.sample(rng)
        rtt_dist = sc.regions[region].rtt
        rtt = (rtt_dist.sample(rng), rtt_dist.sample(rng), rtt_dist.sample(rng))
        denied = not cache_hit and u_deny < cls.deny
        escalate = not cache_hit and not denied and u_esc < cls.escalation
        return Plan(
            cls=ci,
            cache_hit=cache_hit,
            denied=denied,
            escalate=escalate,
            key=key,
            policy_ms=None if cache_hit else policy,
            llm_ms=llm if (cls.llm and not cache_hit) else None,
            expert_ms=expert if escalate else None,
            rtt_ms=rtt,
        )


def intended_schedule(sc: Scenario, agent_id: int, planner: Planner | None = None) -> list[tuple[float, Plan]]:
    """Every request of one agent in an open-loop run: its intended start (s since load start) and
    its plan, replayed from the agent's seeded RNG exactly as its host dispatches them."""
    planner = planner or Planner(sc)
    region = planner.region_of(agent_id, sc.run.agents)
    tz = sc.regions[region].utc_offset
    rng = agent_rng(sc.run.seed, agent_id)
    out = []
    t = sc.arrivals.first(rng, tz)
    while t < sc.run.duration:
        out.append((t, planner.plan(rng, region)))
        t = sc.arrivals.next(t, rng, tz)
    return out
