"""Faults the driver causes while the load runs: the scenario's cluster-level faults
(:class:`ScheduledFaults`) and ``--chaos`` (:class:`Chaos`), with the restart budget that chaos
must not use up (:func:`restart_budget`). Per-request faults (slow stages, injected failures) act
in the hosts (:class:`raybench.actors.host.AgentHost`)."""

from __future__ import annotations

import math
import random

from raybench.config.scenario import Scenario
from raybench.engine.cluster import Cluster
from raybench.engine.events import EventLog
from raybench.engine.fleet import Fleet
from raybench.engine.hosts import Load

#: How often Ray restarts a dead agent host before the run goes on without it (beyond the kills
#: that ``--chaos`` plans: see :func:`restart_budget`).
MAX_HOST_RESTARTS = 3


def planned_chaos_kills(sc: Scenario) -> int:
    """How many kills ``--chaos`` makes at most: one every ``chaos_s`` of load, none in its last second."""
    if not sc.run.chaos:
        return 0
    return max(0, math.ceil((sc.run.duration - 1.0) / sc.run.chaos) - 1)  # at chaos_s, 2 chaos_s, ... < duration - 1


def restart_budget(sc: Scenario) -> int:
    """Restarts allowed per agent host: :data:`MAX_HOST_RESTARTS` for real failures, plus every kill
    that chaos plans (it may pick the same host each time), so chaos never uses up the budget it is
    there to prove."""
    return MAX_HOST_RESTARTS + (planned_chaos_kills(sc) if sc.run.chaos_target in ("hosts", "both") else 0)


class ScheduledFaults:
    """The scenario's ``shrink_experts`` faults: the expert pool shrinks at a fault's start and gets
    its capacity back at its end (``fault_start``, ``fault_end``)."""

    def __init__(self, cluster: Cluster, sc: Scenario, fleet: Fleet, load: Load, events: EventLog) -> None:
        self.cluster = cluster
        self.sc = sc
        self.fleet = fleet
        self.load = load
        self.events = events
        self._state: dict[int, int] = {}  # fault -> the capacity before it (-1: ended)

    def tick(self, now: float) -> None:
        c = self.cluster
        t = (now * 1e9 - self.load.t0_ns) / 1e9
        for i, f in enumerate(self.sc.faults):
            if f.kind != "shrink_experts":
                continue
            state = self._state.get(i)
            if state is None and f.active(t):
                previous = c.get(c.call(self.fleet.experts, "set_capacity", f.pool), timeout=10)
                self._state[i] = previous
                self.events.record("fault_start", fault=f.kind, pool=f.pool, previous=previous)
            elif state is not None and state >= 0 and t >= f.end:
                c.get(c.call(self.fleet.experts, "set_capacity", state), timeout=10)
                self._state[i] = -1
                self.events.record("fault_end", fault=f.kind, pool=state)


class Chaos:
    """``--chaos``: every chaos_s seconds of load kill a random agent host (Ray restarts it) or a
    random node's FUSE server (:class:`raybench.engine.watch.FuseHealer` remounts it), as
    ``run.chaos_target`` says; none in the load's last second."""

    def __init__(self, cluster: Cluster, sc: Scenario, fleet: Fleet, load: Load, events: EventLog) -> None:
        self.cluster = cluster
        self.sc = sc
        self.fleet = fleet
        self.load = load
        self.events = events
        self._next = load.t0_ns / 1e9 + sc.run.chaos if sc.run.chaos else 0.0  # the next kill (s)
        self._count = 0

    def tick(self, now: float) -> None:
        if not self.sc.run.chaos or now < self._next or now * 1e9 >= self.load.planned_end_ns - 1e9:
            return
        self._next = now + self.sc.run.chaos
        rng = random.Random(f"raybench-chaos:{self.sc.run.seed}:{len(self.events)}")
        target = self.sc.run.chaos_target
        if target == "both":
            target = ("hosts", "fuse")[self._count % 2]
        self._count += 1
        fleet = self.fleet
        mounted = [i for i, r in enumerate(fleet.fuse.get("nodes", [])) if "mountpoint" in r]
        if target == "fuse" and mounted:
            i = rng.choice(mounted)
            pid = self.cluster.get(self.cluster.call(fleet.fuse_nodes[i], "kill_server"), timeout=10)
            self.events.record("chaos_kill", target="fuse", node_id=fleet.nodes[i]["node_id"], pid=pid)
            return
        h = rng.randrange(len(fleet.hosts))
        self.events.record("chaos_kill", target="host", host_id=h, node_id=fleet.host_plan[h][0])
        self.cluster.kill(fleet.hosts[h], restart=True)
