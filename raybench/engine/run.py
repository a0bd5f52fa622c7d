"""One run end to end: connect Ray, place the actors, start the load, watch it, stop, finalize.

::

    execute(scenario) ─ ray.init (local, or --address)             cluster.connect
        Run.start: Aggregator ×1 (head node)   StateShard ×S   ExpertPool ×1   FuseNode ×nodes
                   AgentHost ×H (pinned round-robin over nodes by CPUs)   fleet, placement
        Run.load:  load starts at t0 on every host; the watch loop samples resources every second,
                   applies scheduled faults and chaos, heals FUSE, notices lost nodes, judges each
                   completed window (SLA monitor: events, alerts, rollback, abort), prints progress
                                                                      hosts, watch, faults, judging
        Run.settle: hosts drain; rows of requests lost with a dead host; last windows   lost
        _finish:   Aggregator.finalize (streams -> .arrow) -> windows, sla, events, manifest

The driver never measures requests itself: every figure comes from rows written by the hosts.
Ctrl-C or SIGTERM stops the agents, drains them and finalizes every file (status
``interrupted``); a second Ctrl-C exits at once, leaving readable ``.arrows`` streams behind for
``raybench recover``. Everything that touches Ray goes through a :class:`~raybench.engine.cluster.Cluster`:
``execute(..., cluster=InProcessCluster())`` runs the same orchestration without Ray.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from raybench.actors.sampler import ProcessSampler
from raybench.config.scenario import Scenario
from raybench.engine import priority
from raybench.engine.cluster import Cluster, RayCluster, connect
from raybench.engine.events import EventLog
from raybench.engine.faults import Chaos, ScheduledFaults, restart_budget
from raybench.engine.finalize import finalize_folder, started_manifest, write_started
from raybench.engine.fleet import Fleet
from raybench.engine.hosts import Hosts, Load, Progress
from raybench.engine.interrupts import Interrupts
from raybench.engine.judging import Judge
from raybench.engine.lost import account_lost
from raybench.engine.placement import plan_hosts, plan_shards
from raybench.engine.priority import DriverPriority
from raybench.engine.watch import (
    AbortOnViolation,
    Component,
    FuseHealer,
    NodeWatch,
    ProgressLine,
    ResourceSampler,
    watch,
)
from raybench.errors import RayFailure
from raybench.judge import capacity
from raybench.results import store
from raybench.results.schema import schema

__all__ = ["START_MARGIN_S", "Run", "RunResult", "connect", "execute", "plan_hosts"]

#: Seconds between the hosts being told to start and the load's t0 (all hosts start together).
START_MARGIN_S = 1.5


@dataclass
class RunResult:
    """What a finished (or stopped) run left behind."""

    run_dir: Path
    status: str  # completed | degraded | interrupted | aborted | failed
    manifest: dict[str, Any]
    summary_rows: list[dict[str, Any]] = field(default_factory=list)
    resource_rows: list[dict[str, Any]] = field(default_factory=list)
    sla_rows: list[dict[str, Any]] = field(default_factory=list)
    verdict: bool | None = None  # None: no thresholds, or no data to judge


def execute(
    scenario: Scenario,
    *,
    out: Path = Path("results"),
    run_id: str | None = None,
    address: str | None = None,
    progress: Progress | None = None,
    ship_code: bool = False,
    metrics_port: int | None = None,
    cluster: Cluster | None = None,
) -> RunResult:
    """Run a scenario and write its run folder ``out/run_id``. With ``scenario.run.metrics`` the run
    exports live Prometheus metrics (``raybench.actors.metrics``; a local Ray on ``metrics_port``).

    ``cluster``: where the actors run (default: Ray, connected here and shut down after when this
    call started it; :class:`raybench.engine.inprocess.InProcessCluster` runs them in this process).

    Raises:
        UsageError: the run folder exists already (checked before anything starts).
        RayFailure: Ray could not be started or reached.
        FuseUnavailable: ``fuse.mode = on`` and FUSE cannot be used.
        KeyboardInterrupt: a second Ctrl-C or SIGTERM: stopped at once, the streams left behind.
    """
    say = progress or (lambda line: None)
    run_id = run_id or store.new_run_id()
    store.check_new_run_dir(out, run_id)
    started_ns = time.time_ns()
    owns_ray = False
    if cluster is None:
        owns_ray = connect(address, ship_code=ship_code, metrics=scenario.run.metrics, metrics_port=metrics_port)
        cluster = RayCluster()
    try:
        run = Run(scenario, store.create_run_dir(out, run_id), cluster, address=address, progress=say)
        result = run.execute(started_ns)
    finally:
        if owns_ray:
            import ray

            ray.shutdown()
    if result is None:
        say(f"stopped at once; the streams in {run.run_dir} are readable; `raybench recover {run.run_dir}` finishes it")
        raise KeyboardInterrupt
    return result


class Run:
    """One run in the driver process: start → load → watch → interrupt/drain → finish.

    The parts of the load (``load``, ``hosts``, ``judge``, ``resources``, ``components``) exist from
    the load's start on (None before: a run can fail or be interrupted while its actors start).
    """

    def __init__(
        self, sc: Scenario, run_dir: Path, cluster: Cluster, *, address: str | None = None, progress: Progress
    ) -> None:
        self.sc = sc
        self.run_dir = run_dir
        self.cluster = cluster
        self.address = address
        self.say = progress
        self.interrupts = Interrupts()
        # the scenario's [sla] table, validated when it was loaded; only its *_env secrets are looked up here
        self.sla = sc.sla.resolved() if sc.sla.thresholds else None
        self.findings = capacity.findings(sc)  # the scenario's own limits, known before anything runs
        self.events = EventLog(run_dir.name)
        self.sampler = ProcessSampler("driver")
        self.fleet = Fleet(cluster, sc, run_dir, self.events, address, restart_budget(sc))
        self.base: dict[str, Any] = {}  # started.json: what the manifest needs beyond the rows
        self.prio: DriverPriority | None = None
        self.load: Load | None = None
        self.hosts: Hosts | None = None
        self.judge: Judge | None = None
        self.resources: ResourceSampler | None = None
        self.components: list[Component] = []
        self.status = "failed"
        self.error: str | None = None
        self.lost = 0  # requests that died with their host

    def execute(self, started_ns: int) -> RunResult | None:
        """The whole run; None when a second signal stopped it at once (no manifest)."""
        sla = self.sla.to_manifest() if self.sla is not None else None
        self.base = started_manifest(self.sc, self.run_dir.name, started_ns, sla, [f.to_dict() for f in self.findings])
        write_started(self.run_dir, self.base)
        at_once = False
        result = None
        self.interrupts.install()
        try:
            self.start()
            self.run_load()
            self.settle()
        except KeyboardInterrupt:
            # A Ctrl-C before the load (or during finishing) stops the run; a second one while the
            # agents drain means "now": skip finalizing, leave the streams for `raybench recover`.
            at_once = self.status == "interrupted"
            self.status = "interrupted"
        except RayFailure:
            self.status = "failed"
            raise
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            self.events.record("failure", error=self.error[:1000])
            if not isinstance(exc, RuntimeError | OSError):
                raise
        finally:
            self.interrupts.restore()
            if self.prio is not None:
                self.prio.restore()
            try:
                if not at_once:
                    result = _finish(self)
            finally:
                self.fleet.teardown()  # FUSE mounts go on every exit path
        return result

    def start(self) -> None:
        """Start the actors; the driver takes the hosts' niceness (:mod:`raybench.engine.priority`)."""
        sc, fleet, say = self.sc, self.fleet, self.say
        shards = plan_shards(sc, fleet.cluster.nodes())  # run.shards, or as many as the load needs
        say(f"starting actors: {sc.run.agents:,} agents, {shards} shards, {sc.experts.pool} experts")
        for f in self.findings:
            if f.over:
                say(capacity.format_finding(f))
        fleet.start(plan_hosts)
        # the driver's own work must not preempt the processes it measures (raybench.engine.priority)
        nices = [i["nice"] for i in fleet.host_info if i["node_id"] == fleet.head]
        self.prio = priority.lower_to(max(nices)) if nices else None
        say(fleet.describe())
        if sc.run.metrics:
            m = fleet.metrics
            say(f"metrics: scrape {m['url']}" if m["enabled"] else f"metrics off: {m['reason']}; the run goes on")

    def run_load(self) -> None:
        """Start the load at t0 on every host, watch it to its end (or to a signal: stop, drain),
        collect the hosts' results."""
        sc, c, fleet = self.sc, self.cluster, self.fleet
        t0 = time.time_ns() + int(START_MARGIN_S * 1e9)
        self.base |= {"load_start_ns": t0, "load_end_ns": t0 + int(sc.run.duration * 1e9)}
        self.base["cluster"] = {"address": self.address or "local", "head_node": fleet.head, "nodes": fleet.nodes}
        write_started(self.run_dir, self.base)
        c.get(c.call(fleet.aggregator, "set_t0", t0))
        load = self.load = Load(t0, sc.run.duration)
        resources = self.resources = ResourceSampler(c, fleet, self.sampler, self.events)
        judge = self.judge = Judge(
            sc, self.sla, c, fleet.aggregator, load, self.events,
            progress=self.say, interrupts=self.interrupts, resources=resources.between,
        )  # fmt: skip
        fleet.start_probes(t0)
        hosts = self.hosts = Hosts(c, fleet, load, self.events, self.say, fleet.max_restarts)
        hosts.start()
        self.components = [
            resources,
            ScheduledFaults(c, sc, fleet, load, self.events),
            Chaos(c, sc, fleet, load, self.events),
            FuseHealer(c, fleet, self.events, self.say),
            NodeWatch(c, fleet, self.events, self.say),
            judge,
            ProgressLine(sc, load, judge, self.say, c, fleet.aggregator, resources.in_flight),
            AbortOnViolation(judge, hosts),
        ]
        try:
            watch(hosts, self.components)
            self.status = "aborted" if judge.abort_reason else "completed"
        except KeyboardInterrupt:
            self.say("interrupted: stopping agents and draining (Ctrl-C again to exit at once)")
            hosts.stop("interrupt", judge.abort_reason)
            self.status = "interrupted"
            hosts.drain(sc.run.drain_timeout + 10)
        failed = hosts.collect(sc.run.drain_timeout + 10)
        if failed:
            self.error = f"agent host(s) {failed} failed for good; their agents stopped early"
            if self.status == "completed":
                self.status = "degraded"

    def settle(self) -> None:
        """After the hosts: rows for the requests lost with dead hosts, the probes' rows, the last
        windows, a last resource sample, the SLA actions in progress."""
        assert self.load is not None and self.hosts is not None and self.judge is not None and self.resources
        sc, fleet = self.sc, self.fleet
        self.lost = account_lost(
            self.cluster, fleet.aggregator, sc, self.run_dir, self.load.t0_ns, fleet.host_plan, self.hosts.deaths,
            self.events,
        )  # fmt: skip
        if self.lost:
            self.say(f"{self.lost} requests died with their agent host; recorded as error rows")
        fleet.wait_probes(timeout=sc.run.drain_timeout + 30)
        self.judge.take_windows(1 << 40)
        self.resources.sample()
        self.judge.wait_actions()


def _finish(run: Run) -> RunResult:
    """Flush events, finalize the streams, judge the whole run, write the manifest."""
    c, fleet, status, error = run.cluster, run.fleet, run.status, run.error
    late, flush_age = 0, None
    try:
        if fleet.aggregator is None:
            raise RuntimeError("it never started")
        closed: Any = c.get(c.call(fleet.aggregator, "finalize"), timeout=600)
        late, flush_age = closed["late_rows"], closed.get("flush_age_ms")
        fleet.metrics |= closed.get("metrics", {})
    except Exception as exc:  # aggregator gone: finalize_folder rewrites whatever streams are left
        error = error or f"the aggregator failed: {str(exc).splitlines()[0][:200]}"
        status = "failed"
    sla_rows: list[dict[str, Any]] = []
    verdict: bool | None = None
    if run.judge is not None and run.judge.monitor is not None:
        requests = store.read_table(run.run_dir, "requests")
        resources = store.read_table(run.run_dir, "resources")
        sla_rows, verdict = run.judge.finalize(requests, resources)
    extra = {
        "hosts": run.hosts.ordered_results() if run.hosts is not None else [],
        **fleet.collect_stats(),
        "fuse": fleet.fuse,
        "metrics": fleet.metrics,
        "late_rows": late,
        "flush_age_ms": flush_age,  # with late_rows and the rows: the manifest's `harness` (finalize)
        "driver_priority": run.prio.to_manifest() if run.prio is not None else None,
        # restarts, not deaths: a death after the load, or past MAX_HOST_RESTARTS, is host_failed
        "host_restarts": dict(Counter(str(d["host_id"]) for d in run.events.of_kind("actor_restart"))),
        "lost_requests": run.lost,
        "load_stopped_ns": run.load.stopped_ns if run.load is not None else None,
        "abort_reason": run.judge.abort_reason if run.judge is not None else None,
        "sla": {"verdict": verdict, "thresholds": [
            {k: r[k] for k in ("id", "observed", "target", "passed", "applicable", "windows_failed", "windows_total")}
            for r in sla_rows
        ]},
    }  # fmt: skip
    _write_events(run)
    schema_rows = [{k: r[k] for k in _SLA_COLUMNS} for r in sla_rows]
    manifest = finalize_folder(run.run_dir, status=status, error=error, extra=extra, sla_rows=schema_rows)
    return RunResult(run.run_dir, status, manifest, manifest["summary"], manifest["resources"], sla_rows, verdict)


_SLA_COLUMNS = (
    "run_id", "id", "expression", "scope", "observed", "target", "passed",
    "windows_failed", "windows_total", "first_violation_ns",
)  # fmt: skip


def _write_events(run: Run) -> None:
    """Rewrite events.arrow from the driver's complete list (the aggregator's live copy, kept for a
    crash, misses what happened after it closed: end-of-run verdicts, late alerts)."""
    import pyarrow as pa

    rows = [{"run_id": run.run_dir.name, "ts_ns": t, "kind": k, "detail": d} for t, k, d in sorted(run.events.rows)]
    table = pa.Table.from_pylist(rows, schema=schema("events", final=False))
    store.write_table(run.run_dir, "events", table)  # also when empty: every run has the file
    (run.run_dir / "events.arrows").unlink(missing_ok=True)  # the driver's list holds all of it
