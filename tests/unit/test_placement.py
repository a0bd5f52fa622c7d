"""Placement (pure): agents to hosts, hosts to nodes, and how many shards the load gets."""

from __future__ import annotations

import pytest

from raybench.config import scenario as scn
from raybench.engine.placement import SHARD_REQUESTS_PER_S, plan_hosts, plan_shards

TWO_CORES = [{"node_id": "a", "cpus": 2}]
CLUSTER = [{"node_id": "a", "cpus": 4}, {"node_id": "b", "cpus": 4}]


def _sc(**overrides):
    return scn.load(preset="smoke", overrides=overrides)


@pytest.mark.parametrize(
    ("agents", "rate", "nodes", "shards"),
    [
        (1000, 0.2, TWO_CORES, 1),  # smoke: 200 req/s
        (10_000, 1.0, TWO_CORES, 1),  # 10,000 req/s: one shard at a third of a core
        (50_000, 1.0, TWO_CORES, 2),  # 50,000 req/s: capped at one per CPU
        (50_000, 1.0, CLUSTER, 3),  # the same on 8 CPUs: one per 20,000 req/s
        (400_000, 1.0, CLUSTER, 8),
    ],
)
def test_shards_scale_with_the_offered_load_up_to_one_per_cpu(agents, rate, nodes, shards):
    assert plan_shards(_sc(**{"run.agents": agents, "arrivals.rate": rate}), nodes) == shards


def test_shards_given_are_kept_and_the_default_is_auto():
    assert _sc().run.shards == 0
    assert plan_shards(_sc(**{"run.shards": 5}), TWO_CORES) == 5
    # both ways around the boundary: just under and just over one shard's rate
    under = _sc(**{"run.agents": SHARD_REQUESTS_PER_S, "arrivals.rate": 1.0})
    over = _sc(**{"run.agents": SHARD_REQUESTS_PER_S + 1000, "arrivals.rate": 1.0})
    assert plan_shards(under, CLUSTER) == 1 and plan_shards(over, CLUSTER) == 2


def test_hosts_default_one_per_cpu_agents_split_evenly():
    plan = plan_hosts(_sc(**{"run.agents": 10}), CLUSTER)
    assert len(plan) == 8 and sorted(len(a) for _, a in plan) == [1, 1, 1, 1, 1, 1, 2, 2]
    assert {n for n, _ in plan} == {"a", "b"}
    assert sorted(i for _, a in plan for i in a) == list(range(10))
