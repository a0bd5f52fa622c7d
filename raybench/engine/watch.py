"""The driver's watch of the load: until every agent host has finished, each :data:`POLL_S` the
hosts that finished or died are handled (:meth:`raybench.engine.hosts.Hosts.poll`), then every
component ticks, in order:

* :class:`ResourceSampler` — a resource row of every raybench process, once a second;
* :class:`raybench.engine.faults.ScheduledFaults`, :class:`raybench.engine.faults.Chaos`;
* :class:`FuseHealer` — a node whose FUSE server died gets a fresh mount;
* :class:`NodeWatch` — nodes that left the cluster are recorded;
* :class:`raybench.engine.judging.Judge` — completed windows judged, SLA actions;
* :class:`ProgressLine` — the status line;
* :class:`AbortOnViolation` — an SLA abort stops the load.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from raybench.actors.sampler import ProcessSampler
from raybench.config.scenario import Scenario
from raybench.engine.cluster import Cluster
from raybench.engine.events import EventLog
from raybench.engine.fleet import Fleet
from raybench.engine.hosts import Hosts, Load
from raybench.engine.judging import Judge

#: Longest wait for the hosts between two ticks (s).
POLL_S = 0.25

Progress = Callable[[str], None]


class Component(Protocol):
    """One concern of the watch loop."""

    def tick(self, now: float) -> None:
        """Do what is due at wall time ``now`` (s); must return promptly."""
        ...


def watch(hosts: Hosts, components: Sequence[Component]) -> None:
    """Until every host has finished (or failed for good): poll the hosts, tick every component."""
    while hosts.pending:
        hosts.poll(POLL_S)
        now = time.time()
        for component in components:
            component.tick(now)


class ResourceSampler:
    """Resource rows of the driver (``sampler``) and of every actor of ``fleet``, once a second; each
    sample is streamed to the aggregator and kept (``rows``) for the SLA's resource metrics."""

    def __init__(self, cluster: Cluster, fleet: Fleet, sampler: ProcessSampler, events: EventLog) -> None:
        self.cluster = cluster
        self.fleet = fleet
        self.sampler = sampler
        self.sampler.node_id = fleet.head
        self.events = events
        self.rows: list[tuple[Any, ...]] = []
        self._next = 0.0  # when the next sample is due (s)

    def tick(self, now: float) -> None:
        if now >= self._next:
            self.sample()
            self._next = now + 1.0

    def sample(self) -> None:
        """One sample of every process now (an actor that does not answer within 0.5 s is skipped)."""
        c, run_id = self.cluster, self.events.run_id
        rows = [(run_id, *self.sampler.sample())]
        refs = [c.call(a, "sample_resources") for group in self.fleet.actors.values() for a in group]
        ready, _ = c.wait(refs, 0.5)
        for ref in ready:
            try:
                got = c.get(ref)
                rows.extend((run_id, *r) for r in (got if isinstance(got, list) else [got]))
            except Exception as exc:  # a dead actor; the watch loop notices it too
                self.events.record("sample_failed", error=str(exc)[:200])
        self.rows.extend(rows)
        c.call(self.fleet.aggregator, "write_rows", "resources", rows)

    def between(self, start: int, end: int) -> Any:
        """The rows sampled in ``[start, end)`` (ns) as a ``resources`` table, or None."""
        import pyarrow as pa

        from raybench.results.recording import RowBuffer

        buf = RowBuffer("resources")
        buf.rows = [r for r in self.rows if start <= r[1] < end]
        batch = buf.take()
        return pa.Table.from_batches([batch]) if batch is not None else None


class FuseHealer:
    """Once a second: a node whose FUSE server died gets a fresh mount at the same place."""

    def __init__(self, cluster: Cluster, fleet: Fleet, events: EventLog, progress: Progress) -> None:
        self.cluster = cluster
        self.fleet = fleet
        self.events = events
        self.progress = progress
        self._checked = 0.0

    def tick(self, now: float) -> None:
        if not self.fleet.fuse_nodes or now - self._checked < 1.0:
            return
        self._checked = now
        for node, actor in zip(self.fleet.nodes, self.fleet.fuse_nodes, strict=True):
            try:
                healed = self.cluster.get(self.cluster.call(actor, "heal"), timeout=30)
            except Exception as exc:
                last = str(exc).strip().splitlines()[-1][:300]
                self.events.record("fuse_error", node_id=node["node_id"], error=f"remount failed: {last}")
                continue
            if healed:
                self.events.record("fuse_remounted", node_id=node["node_id"], **healed)
                self.progress(f"FUSE server on node {node['node_id'][:12]} died; remounted")


class NodeWatch:
    """Every 2 s: record nodes that left the cluster since the start (the run goes on with the rest)."""

    def __init__(self, cluster: Cluster, fleet: Fleet, events: EventLog, progress: Progress) -> None:
        self.cluster = cluster
        self.fleet = fleet
        self.events = events
        self.progress = progress
        self._checked = 0.0

    def tick(self, now: float) -> None:
        if now - self._checked < 2.0 or len(self.fleet.nodes) < 2:
            return
        self._checked = now
        alive = {n["node_id"] for n in self.cluster.nodes()}
        for n in self.fleet.nodes:
            if n["node_id"] not in alive and not n.get("lost"):
                n["lost"] = True
                self.events.record("node_lost", node_id=n["node_id"], address=n.get("address"))
                self.progress(f"node {n['node_id'][:12]} left the cluster; the run goes on without it")


class ProgressLine:
    """The status line, once per window (every 2 to 10 s): phase, time left, the last window's
    rate, p99 and failing thresholds. Goes to ``progress.status`` where it has one (a terminal
    rewrites it in place: :class:`raybench.cli.progress.Printer`)."""

    def __init__(self, sc: Scenario, load: Load, judge: Judge, progress: Progress) -> None:
        self.sc = sc
        self.load = load
        self.judge = judge
        self.status: Progress = getattr(progress, "status", progress)
        self._last = 0.0  # when the last line was shown (s)

    def tick(self, now: float) -> None:
        if now - self._last >= max(2.0, min(self.sc.run.window, 10.0)):
            self._last = now
            self.status(self.line(now))

    def line(self, now: float) -> str:
        run = self.sc.run
        elapsed = now - self.load.t0_ns / 1e9
        remaining = max(0.0, self.load.planned_end_ns / 1e9 - now)
        stats = self.judge.window_stats
        last = stats[-1] if stats else None
        if last and last["count"]:
            rate = last["count"] / run.window
            tail = f"window {last['window']}: {rate:,.0f} req/s, p99 {last['p99_ms']:.1f}ms"
            if last.get("failing"):
                tail += f", failing: {', '.join(last['failing'])}"
        else:
            tail = "first window not complete yet"
        phase = "warm-up" if elapsed < run.warmup else ("load" if remaining > 0 else "draining")
        return f"[{max(0.0, elapsed):6.1f}s {phase:>8}] {run.agents:,} agents, {remaining:5.1f}s left, {tail}"


class AbortOnViolation:
    """A violation whose actions include ``abort`` stops the load (once)."""

    def __init__(self, judge: Judge, hosts: Hosts) -> None:
        self.judge = judge
        self.hosts = hosts

    def tick(self, now: float) -> None:
        if self.judge.abort_reason is not None and not self.hosts.stopped:
            self.hosts.stop("abort", self.judge.abort_reason)
