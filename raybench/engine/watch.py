"""The driver's watch of the load: until every agent host has finished, each :data:`POLL_S` the
hosts that finished or died are handled (:meth:`raybench.engine.hosts.Hosts.poll`), then every
component ticks, in order:

* :class:`ResourceSampler` — a resource row of every raybench process (and the hosts' requests in
  flight), once a second;
* :class:`raybench.engine.faults.ScheduledFaults`, :class:`raybench.engine.faults.Chaos`;
* :class:`FuseHealer` — a node whose FUSE server died gets a fresh mount;
* :class:`NodeWatch` — nodes that left the cluster are recorded;
* :class:`raybench.engine.judging.Judge` — completed windows judged, SLA actions;
* :class:`ProgressLine` — the live view: the status line every 2 s (in a log: 2 to 10 s);
* :class:`AbortOnViolation` — an SLA abort stops the load.
"""

from __future__ import annotations

import contextlib
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
    sample is streamed to the aggregator and kept (``rows``) for the SLA's resource metrics. An agent
    host answers ``sample_live`` instead: its row and its requests in flight (``inflight``, per host,
    the last answer of each), in the same call."""

    def __init__(self, cluster: Cluster, fleet: Fleet, sampler: ProcessSampler, events: EventLog) -> None:
        self.cluster = cluster
        self.fleet = fleet
        self.sampler = sampler
        self.sampler.node_id = fleet.head
        self.events = events
        self.rows: list[tuple[Any, ...]] = []
        self.inflight: dict[int, int] = {}  # host -> its requests in flight at its last sample
        self._next = 0.0  # when the next sample is due (s)

    def tick(self, now: float) -> None:
        if now >= self._next:
            self.sample()
            self._next = now + 1.0

    def sample(self) -> None:
        """One sample of every process now (an actor that does not answer within 0.5 s is skipped)."""
        c, run_id = self.cluster, self.events.run_id
        rows = [(run_id, *self.sampler.sample())]
        who = [(role, i, a) for role, group in self.fleet.actors.items() for i, a in enumerate(group)]
        refs = [c.call(a, "sample_live" if role == "host" else "sample_resources") for role, _, a in who]
        ready, _ = c.wait(refs, 0.5)
        answered = set(ready)
        for (role, i, _), ref in zip(who, refs, strict=True):
            if ref not in answered:
                continue
            try:
                got = c.get(ref)
                if role == "host":
                    self.inflight[i] = int(got["inflight"])
                    got = got["row"]
                rows.extend((run_id, *r) for r in (got if isinstance(got, list) else [got]))
            except Exception as exc:  # a dead actor; the watch loop notices it too
                if role == "host":
                    self.inflight.pop(i, None)
                self.events.record("sample_failed", error=str(exc)[:200])
        self.rows.extend(rows)
        c.call(self.fleet.aggregator, "write_rows", "resources", rows)

    def in_flight(self) -> int | None:
        """Requests in flight on every host at their last samples (None before any answered)."""
        return sum(self.inflight.values()) if self.inflight else None

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


#: Seconds between two status lines on a terminal (the line is rewritten in place).
REFRESH_TTY_S = 2.0
#: In a log (plain lines) a run gets about this many status lines, one every 2 to 10 s.
LOG_LINES = 20
LOG_REFRESH_S = (2.0, 10.0)
#: How long a status line waits for the aggregator's figures before it shows the previous ones.
ANSWER_TIMEOUT_S = 0.5


def refresh_s(duration_s: float, tty: bool) -> float:
    """Seconds between two status lines: :data:`REFRESH_TTY_S` on a terminal; in a log
    ``duration / LOG_LINES`` within :data:`LOG_REFRESH_S` (a 20 s run: every 2 s; an hour: every 10 s)."""
    if tty:
        return REFRESH_TTY_S
    lo, hi = LOG_REFRESH_S
    return min(hi, max(lo, duration_s / LOG_LINES))


class ProgressLine:
    """The live view: a status line every :func:`refresh_s` seconds, to ``progress.status`` where it
    has one (a terminal rewrites it in place, a log gets plain lines: :class:`raybench.cli.progress.Printer`)::

        [  42.0s     load] 10,000 agents | 18.0s left | done 41,230/42,000 of 60,000 | in flight 312 |
        err 0 (0.00%) | last 5s: 998 req/s, p50 41.0ms, p99 187ms, lag p99 2.10ms max 9.00ms | failing: p99<200ms

    (one line; cut to the width on a terminal). The time is when the figures were asked for.

    ``done``: rows the aggregator received (warm-up ones too), of the requests the scenario's
    arrivals should have started by now and in all (open loop); ``in flight``: requests started
    and not finished on the hosts at their last sample (``in_flight``, once a second); ``err``:
    error and timeout rows so far. The ``last 5s`` figures are exact, over the rows of the span
    (:class:`raybench.judge.live.Rolling`, the aggregator's ``live_view``; ``incl. warm-up`` when
    warm-up rows are among them): completions per second, latency p50 and p99, dispatch lag (the
    harness's start - intended) p99 and max. The SLA part is the monitor's last judged window.

    The figures come from one small call to the aggregator per line, never waited for: the line
    is shown when the answer is there (as of when it was asked), or after :data:`ANSWER_TIMEOUT_S`
    with the previous figures, marked with their age (a busy aggregator never stalls the watch loop).
    """

    def __init__(
        self,
        sc: Scenario,
        load: Load,
        judge: Judge,
        progress: Progress,
        cluster: Cluster,
        aggregator: Any,
        in_flight: Callable[[], int | None] = lambda: None,
    ) -> None:
        from raybench.judge.live import SETTLE_S, SPAN_S, ExpectedArrivals

        self.sc = sc
        self.load = load
        self.judge = judge
        self.cluster = cluster
        self.aggregator = aggregator
        self.in_flight = in_flight
        self.status: Progress = getattr(progress, "status", progress)
        self.every = refresh_s(sc.run.duration, bool(getattr(progress, "tty", False)))
        self.span_s = SPAN_S
        self.settle_s = max(SETTLE_S, sc.run.flush_interval + 0.5)
        self.expected = (
            ExpectedArrivals(
                sc.arrivals, [(r.weight, r.utc_offset) for r in sc.regions], sc.run.agents, sc.run.duration
            )
            if sc.arrivals.open_loop
            else None
        )
        self.snap: dict[str, Any] | None = None  # the aggregator's last figures
        self.snap_at = 0.0  # when they were asked for (s)
        self._ref: Any = None  # the call not answered yet
        self._asked = 0.0
        self._shown = True  # the line of the current call was shown
        self._next = 0.0  # when the next line is due (s)

    def tick(self, now: float) -> None:
        if self._ref is not None:
            ready, _ = self.cluster.wait([self._ref], 0)
            if ready:
                ref, self._ref = self._ref, None
                # a failed call (the aggregator died: the run notices) keeps the last figures
                with contextlib.suppress(Exception):
                    self.snap, self.snap_at = self.cluster.get(ref), self._asked
                if not self._shown:
                    self._show(self._asked)  # the line as of its figures
            elif not self._shown and now - self._asked >= ANSWER_TIMEOUT_S:
                self._show(now)  # with the previous figures
        if now >= self._next:
            self._next = now + self.every
            if self._ref is not None:  # still no answer to the last call: a line anyway
                self._show(now)
                return
            self._asked, self._shown = now, False
            self._ref = self.cluster.call(self.aggregator, "live_view", int(now * 1e9), self.span_s, self.settle_s)

    def _show(self, now: float) -> None:
        self._shown = True
        self.status(self.line(now))

    def line(self, now: float) -> str:
        """The status line at wall time ``now`` (s) from the figures at hand."""
        from raybench.units import format_ms

        run, load, snap = self.sc.run, self.load, self.snap
        t0, end = load.t0_ns / 1e9, load.end_ns() / 1e9
        elapsed = now - t0
        if elapsed < 0:
            phase, when = "starting", f"load in {-elapsed:.1f}s"
        elif now < end:
            phase, when = ("warm-up" if elapsed < run.warmup else "load"), f"{end - now:.1f}s left"
        else:
            phase, when = "draining", f"load ended {now - end:.1f}s ago"
        parts = [f"[{max(0.0, elapsed):6.1f}s {phase:>8}] {run.agents:,} agents", when]
        done = snap["done"] if snap else None
        text = "done " + (f"{done:,}" if done is not None else "…")
        if self.expected is not None:  # due by the time of the figures
            due = self.expected.by(min(self.snap_at if snap else now, end) - t0)
            text += f"/{due:,.0f} of {self.expected.total:,.0f}"
        parts.append(text)
        inflight = self.in_flight()
        parts.append(f"in flight {inflight:,}" if inflight is not None else "in flight …")
        if snap:
            errors = snap["errors"]
            parts.append(f"err {errors:,} ({errors / done:.2%})" if done else f"err {errors:,}")
            label = f"last {round(snap['span_s'], 1):g}s" + (" incl. warm-up" if snap["span_warmup"] else "")
            if snap["count"]:
                parts.append(
                    f"{label}: {snap['rate']:,.0f} req/s, p50 {format_ms(snap['p50_ms'])}, "
                    f"p99 {format_ms(snap['p99_ms'])}, lag p99 {format_ms(snap['lag_p99_ms'])} "
                    f"max {format_ms(snap['lag_max_ms'])}"
                )
            elif snap["span_s"] > 0:
                parts.append(f"{label}: 0 req/s")
            age = now - self.snap_at
            if age >= ANSWER_TIMEOUT_S:  # the aggregator did not answer in time: these are older
                parts.append(f"figures {age:.1f}s old (aggregator slow)")
            if snap.get("error"):
                parts.append(snap["error"])
        sla = self._sla()
        if sla:
            parts.append(sla)
        return " | ".join(parts)

    def _sla(self) -> str | None:
        """The SLA monitor's verdicts of its last judged window (None without thresholds)."""
        monitor = self.judge.monitor
        if monitor is None:
            return None
        observations = monitor.last_observations.values()
        failing = [o.threshold_id for o in observations if o.passed is False]
        if failing:
            return f"failing: {', '.join(failing)}"
        if any(o.passed for o in observations):
            return (
                f"SLA passing (window {self.judge.window_stats[-1]['window']})"
                if self.judge.window_stats
                else "SLA passing"
            )
        return "SLA: no window judged yet"


class AbortOnViolation:
    """A violation whose actions include ``abort`` stops the load (once)."""

    def __init__(self, judge: Judge, hosts: Hosts) -> None:
        self.judge = judge
        self.hosts = hosts

    def tick(self, now: float) -> None:
        if self.judge.abort_reason is not None and not self.hosts.stopped:
            self.hosts.stop("abort", self.judge.abort_reason)
