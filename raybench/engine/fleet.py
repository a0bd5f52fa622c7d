"""A run's actors: started in order, asked for their statistics, torn down on every exit path.

Start order (:meth:`Fleet.start`): the aggregator on the head node (every event from then on is
streamed to it), the state shards, the expert pool, one FUSE node per alive node (when FUSE is
used), then the agent hosts as :func:`raybench.engine.placement.plan_hosts` places them; the run
waits until every one answers (:data:`STARTUP_TIMEOUT_S`), then has the hosts open their files
ahead (``fuse.open_ahead``) and learns whether the live metrics are on.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

from raybench.config.scenario import Scenario
from raybench.engine.cluster import Actor, Cluster, Ref
from raybench.engine.events import EventLog
from raybench.engine.placement import HostSlot, plan_hosts, plan_shards
from raybench.errors import FuseUnavailable, RayFailure

#: Seconds to wait for actors to come up before giving up.
STARTUP_TIMEOUT_S = 120.0

Planner = Callable[[Scenario, list[dict[str, Any]]], list[HostSlot]]


class Fleet:
    """The actors of one run on ``cluster``; empty until :meth:`start`.

    Args:
        cluster: where the actors run.
        sc: the scenario.
        run_dir: the run folder (the aggregator writes into it).
        events: the run's event log (attached to the aggregator once it is up).
        address: the Ray address the run was given (None: a local Ray; its metrics are scraped on
            loopback).
        max_restarts: how often an agent host that dies is restarted
            (:func:`raybench.engine.faults.restart_budget`).
    """

    def __init__(
        self, cluster: Cluster, sc: Scenario, run_dir: Path, events: EventLog, address: str | None, max_restarts: int
    ) -> None:
        self.cluster = cluster
        self.sc = sc
        self.run_dir = run_dir
        self.run_id = run_dir.name
        self.events = events
        self.address = address
        self.max_restarts = max_restarts
        self.nodes: list[dict[str, Any]] = []  # alive at the start; node loss marks them "lost"
        self.head = ""  # the driver's node
        self.aggregator: Actor = None
        self.shards: list[Actor] = []
        self.experts: Actor = None
        self.fuse_nodes: list[Actor] = []  # one per node of self.nodes, when FUSE is used
        self.hosts: list[Actor] = []
        self.host_plan: list[HostSlot] = []  # per host: its node and its agents
        self.host_info: list[dict[str, Any]] = []  # each host's info(), in host order
        self.opened_ahead: list[dict[str, Any]] = []  # each host's open_files(), when it ran
        self.fuse: dict[str, Any] = {"mode": sc.fuse.mode, "backend": sc.fuse.backend, "enabled": False}
        self.metrics: dict[str, Any] = {"enabled": False, "reason": "run.metrics = false"}
        self.probe_refs: list[Ref] = []  # the FUSE probe workloads (start_probes)

    @property
    def actors(self) -> dict[str, list[Actor]]:
        """Every actor started so far, by role (the order resources are sampled in)."""
        return {
            "aggregator": [self.aggregator] if self.aggregator is not None else [],
            "shard": self.shards,
            "experts": [self.experts] if self.experts is not None else [],
            "host": self.hosts,
            "fuse": self.fuse_nodes,
        }

    def start(self, plan: Planner = plan_hosts) -> None:
        """Start every actor and wait until each answers.

        Raises:
            RayFailure: an actor did not come up within :data:`STARTUP_TIMEOUT_S`.
            FuseUnavailable: ``fuse.mode = on`` and a node's FUSE service failed.
        """
        c, sc = self.cluster, self.sc
        self.nodes = c.nodes()
        self.head = c.head_node()
        self.aggregator = c.start_aggregator(self.run_dir, sc.run.window, self.head)
        self.events.attach(c, self.aggregator)
        # a local Ray's metrics endpoint is scraped on loopback; a cluster's at the head node's address
        local = "127.0.0.1" if self.address is None else None
        metrics_ref = c.call(self.aggregator, "start_metrics", local) if sc.run.metrics else None
        # the state data plane's token (raybench.actors.wire): only this run's hosts may talk to its shards
        token = secrets.token_bytes(16) if sc.state.transport == "socket" else None
        self.shards = c.start_shards(plan_shards(sc, self.nodes), token or b"")
        self.experts = c.start_experts(sc.experts.pool, token or b"")
        fuse_roots = self._start_fuse()
        self.host_plan = plan(sc, self.nodes)
        self.hosts = c.start_hosts(
            self.host_plan, scenario=sc, run_id=self.run_id, shards=self.shards, experts=self.experts,
            aggregator=self.aggregator, fuse_roots=fuse_roots, token=token, max_restarts=self.max_restarts,
        )  # fmt: skip
        ready = [c.call(h, "info") for h in self.hosts] + [c.call(s, "stats") for s in self.shards]
        ready += [c.call(self.experts, "stats"), c.call(self.aggregator, "take_windows", -1)]
        try:
            self.host_info = c.get(ready, timeout=STARTUP_TIMEOUT_S)[: len(self.hosts)]
        except Exception as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            hint = ""
            if "cancelled before it started" in str(exc) or "died unexpectedly" in str(exc):
                # Ray's symptom of a driver whose authentication mode is not the cluster's where
                # connect() could not read the cluster's (a ray:// address): cluster/README.md
                hint = (
                    " (if the cluster's nodes were started with another RAY_AUTH_MODE than this driver's, "
                    "set the driver's to theirs: cluster/README.md, \"When the driver's mode is not the cluster's\")"
                )
            raise RayFailure(f"actors did not come up within {STARTUP_TIMEOUT_S:.0f}s: {first}{hint}") from exc
        if fuse_roots and sc.fuse_opens_ahead:  # see AgentHost.open_files (an OSError there is reported, not raised)
            try:
                self.opened_ahead = c.get([c.call(h, "open_files") for h in self.hosts], timeout=STARTUP_TIMEOUT_S)
            except Exception as exc:
                raise RayFailure(f"agent hosts failed while opening their files: {str(exc)[:300]}") from exc
            for h, opened in enumerate(self.opened_ahead):
                if "open_ahead_error" in opened:  # that host opens the rest on first use
                    why = f"opening files ahead: {opened['open_ahead_error']}"
                    self.events.record("fuse_error", host_id=h, error=why)
        if metrics_ref is not None:
            self.metrics = c.get(metrics_ref, timeout=STARTUP_TIMEOUT_S)
            if not self.metrics["enabled"]:
                self.events.record("metrics_unavailable", reason=self.metrics["reason"])

    def _start_fuse(self) -> dict[str, str]:
        """Mount the agents' workspace on every node; returns each mounted node's root."""
        f = self.sc.fuse
        if f.mode == "off":
            self.fuse["reason"] = "fuse.mode = off"
            return {}
        options = {
            "mode": f.fs,
            "direct_io": f.direct_io,
            "multithreaded": f.multithreaded,
            "attr_timeout": f.attr_timeout,
            "entry_timeout": f.entry_timeout,
            # the agents' workspace: one file per key, there before the first request
            "prefill": self.sc.state.keys if f.prefill else 0,
            "prefill_bytes": f.file_bytes,
        }
        c = self.cluster
        self.fuse_nodes = c.start_fuse_nodes([n["node_id"] for n in self.nodes], self.run_id, f.backend, options)
        results = []
        for n, ref in zip(self.nodes, [c.call(a, "start") for a in self.fuse_nodes], strict=True):
            try:
                results.append(c.get(ref, timeout=STARTUP_TIMEOUT_S))
            except Exception as exc:  # that node's FUSE service failed: run on without it there
                results.append({"node_id": n["node_id"], "reason": f"FUSE service failed: {str(exc)[:200]}"})
        self.fuse["nodes"] = results
        roots = {r["node_id"]: r["mountpoint"] for r in results if "mountpoint" in r}
        reasons = sorted({r["reason"] for r in results if "reason" in r})
        if reasons:
            self.fuse["reason"] = "; ".join(reasons)
            if f.mode == "on":
                raise FuseUnavailable(f"fuse.mode = on but FUSE is unavailable: {self.fuse['reason']}")
            self.events.record("fuse_error", reason=self.fuse["reason"])
        self.fuse["enabled"] = bool(roots)
        return roots

    def describe(self) -> str:
        """The line that says where the hosts run and whether FUSE is on."""
        nodes = len({n for n, _ in self.host_plan})
        fuse_note = "FUSE on" if self.fuse.get("enabled") else f"FUSE off ({self.fuse.get('reason', 'n/a')})"
        if self.opened_ahead:
            fuse_note += (
                f", {sum(o['files_opened_ahead'] for o in self.opened_ahead):,} files opened ahead in "
                f"{max(o.get('open_ahead_s', 0) for o in self.opened_ahead):.1f} s"
            )
        return f"{len(self.hosts)} agent hosts on {nodes} node(s); {fuse_note}"

    def start_probes(self, t0_ns: int) -> None:
        """With ``fuse.probe_workers``: the FUSE probe workload on every mounted node, for the load."""
        workers, run = self.sc.fuse.probe_workers, self.sc.run
        if workers and self.fuse.get("enabled"):
            self.probe_refs = [
                self.cluster.call(f, "run_probe", self.aggregator, workers, t0_ns, run.duration, run.seed)
                for f in self.fuse_nodes
            ]

    def wait_probes(self, timeout: float) -> None:
        """Wait for the FUSE probe workloads (their rows must reach the aggregator before it closes)."""
        for ref in self.probe_refs:
            try:
                self.cluster.get(ref, timeout=timeout)
            except Exception as exc:  # a probe on a broken mount: recorded, the run goes on
                self.events.record("fuse_error", error=f"probe workload failed: {str(exc)[:300]}")

    def collect_stats(self) -> dict[str, Any]:
        """The shards' and the expert pool's counters (empty where they are gone)."""

        def get(refs: list[Any]) -> list[Any]:
            try:
                return list(self.cluster.get(refs, timeout=10))
            except Exception:
                return []

        experts = get([self.cluster.call(self.experts, "stats")]) if self.experts is not None else []
        return {
            "shards": get([self.cluster.call(s, "stats") for s in self.shards]),
            "experts": experts[0] if experts else {},
        }

    def teardown(self) -> None:
        """Unmount every FUSE mount, then kill every actor (each step on its own: errors ignored)."""
        for f in self.fuse_nodes:
            with contextlib.suppress(Exception):
                self.cluster.get(self.cluster.call(f, "stop"), timeout=15)
        for group in self.actors.values():
            for a in group:
                with contextlib.suppress(Exception):
                    self.cluster.kill(a)
