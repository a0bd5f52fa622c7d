"""Where a run's agents go: agents to hosts, hosts to nodes (pure: no Ray, no I/O)."""

from __future__ import annotations

import math
from typing import Any

from raybench.config.scenario import Scenario
from raybench.errors import RayFailure

#: One agent host of the plan: the node it is pinned to and the global ids of its agents.
HostSlot = tuple[str, list[int]]

#: Offered requests/s that one state shard serves with room to spare (``run.shards = 0``, the
#: default, gives one shard per this many, at most one per CPU of the cluster). One shard applies
#: 3-4 operations a request at ~8 µs each in batches (docs/performance.md, "Capacity"): 10,000
#: req/s keep one at about a third of a core, and every extra process on a small machine costs
#: the hosts CPU.
SHARD_REQUESTS_PER_S = 20_000


def plan_shards(sc: Scenario, nodes: list[dict[str, Any]]) -> int:
    """How many state shards: ``run.shards``, or when it is 0 (the default) one per
    :data:`SHARD_REQUESTS_PER_S` of the scenario's offered load at its peak, at least 1 and at
    most one per CPU of the cluster."""
    if sc.run.shards:
        return sc.run.shards
    total_cpus = int(sum(n["cpus"] for n in nodes)) or 1
    from raybench.judge.capacity import peak_rate

    rate = peak_rate(sc)
    wanted = math.ceil(rate / SHARD_REQUESTS_PER_S) if math.isfinite(rate) else 1  # closed loop, no think time
    return max(1, min(total_cpus, wanted))


def plan_hosts(sc: Scenario, nodes: list[dict[str, Any]]) -> list[HostSlot]:
    """Assign agents to hosts and hosts to nodes: ``[(node_id, agent_ids), ...]``.

    Default: one host per CPU of the cluster (at least one, at most one per agent), agents split
    evenly; ``hosts`` or ``agents_per_host`` override. Hosts go round-robin over the nodes in
    proportion to their CPUs.

    Args:
        sc: the scenario (``run.agents``, ``run.hosts``, ``run.agents_per_host``).
        nodes: the alive nodes, each a dict with ``node_id`` and ``cpus``
            (:meth:`raybench.engine.cluster.Cluster.nodes`).

    Raises:
        RayFailure: no node.
    """
    if not nodes:
        raise RayFailure("the Ray cluster has no alive node")
    total_cpus = int(sum(n["cpus"] for n in nodes)) or 1
    if sc.run.agents_per_host:
        n_hosts = math.ceil(sc.run.agents / sc.run.agents_per_host)
    elif sc.run.hosts:
        n_hosts = sc.run.hosts
    else:
        n_hosts = total_cpus
    n_hosts = max(1, min(n_hosts, sc.run.agents))
    slots: list[str] = []
    while len(slots) < n_hosts:
        cpus_left = {n["node_id"]: max(1, int(n["cpus"])) for n in nodes}
        while len(slots) < n_hosts and any(cpus_left.values()):
            for n in nodes:
                if cpus_left[n["node_id"]] > 0 and len(slots) < n_hosts:
                    slots.append(n["node_id"])
                    cpus_left[n["node_id"]] -= 1
    base, extra = divmod(sc.run.agents, n_hosts)
    out, start = [], 0
    for h in range(n_hosts):
        size = base + (1 if h < extra else 0)
        out.append((slots[h], list(range(start, start + size))))
        start += size
    return out
