"""One run end to end: connect Ray, place the actors, start the load, watch it, stop, finalize.

::

    execute(scenario) ─ ray.init (local, or --address)
        Aggregator ×1 (head node)   StateShard ×S   ExpertPool ×1   FuseNode ×nodes (pinned)
        AgentHost ×H (pinned round-robin over nodes in proportion to their CPUs)
        load starts at t0 on every host; the driver samples resources every second, judges each
        completed window (SLA monitor: events, alerts, rollback, abort), prints progress,
        applies scheduled faults
        hosts drain -> Aggregator.finalize (streams -> .arrow) -> windows, sla, events, manifest

The driver never measures requests itself: every figure comes from rows written by the hosts.
Ctrl-C or SIGTERM stops the agents, drains them and finalizes every file (status
``interrupted``); a second Ctrl-C exits at once, leaving readable ``.arrows`` streams behind for
``raybench recover``.
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from raybench import __version__
from raybench.config.scenario import Scenario
from raybench.engine import priority
from raybench.engine.driver import Driver, Progress
from raybench.engine.finalize import finalize_folder, utc, write_started
from raybench.engine.interrupts import Interrupts
from raybench.engine.priority import DriverPriority
from raybench.errors import RayFailure
from raybench.judge import capacity
from raybench.judge.sla import judged_verdict
from raybench.results import store
from raybench.results.schema import SCHEMA_VERSION, schema

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


def connect(
    address: str | None, *, ship_code: bool = False, metrics: bool = False, metrics_port: int | None = None
) -> bool:
    """Connect to Ray; returns True when this call started (or joined) Ray and must shut it down.

    Without an address a private local Ray is started: no dashboard, loopback asked for (Ray 2.60
    may still bind the machine's address, as the state data plane does: it checks a token); with
    ``metrics`` its metrics agent exports on ``metrics_port`` (None: Ray's choice) once a second
    (``raybench.actors.metrics``). A cluster keeps its own metrics settings. With ``ship_code``, raybench
    and fuse_bench travel to the workers in the job's runtime environment (for clusters where they
    are not installed).
    """
    import ray

    if ray.is_initialized():
        return False
    try:
        if address:
            runtime_env = None
            if ship_code:
                import fuse_bench
                import raybench

                # directories, not module objects: an editable install gives a package two paths
                dirs = [str(Path(m.__file__).parent) for m in (raybench, fuse_bench)]
                runtime_env = {"py_modules": dirs}
            ray.init(address=address, logging_level="ERROR", log_to_driver=False, runtime_env=runtime_env)
            return True
        from raybench.actors.metrics import ray_init_options

        ray.init(
            include_dashboard=False,
            logging_level="ERROR",
            log_to_driver=False,
            object_store_memory=512 * 2**20,
            _node_ip_address="127.0.0.1",
            **(ray_init_options(metrics_port) if metrics else {}),
        )
        return True
    except Exception as exc:
        where = f" at {address}" if address else ""
        raise RayFailure(f"could not start or reach Ray{where}: {str(exc).splitlines()[0]}") from exc


def plan_hosts(sc: Scenario, nodes: list[dict[str, Any]]) -> list[tuple[str, list[int]]]:
    """Assign agents to hosts and hosts to nodes: ``[(node_id, agent_ids), ...]``.

    Default: one host per CPU of the cluster (at least one, at most one per agent), agents split
    evenly; ``hosts`` or ``agents_per_host`` override. Hosts go round-robin over the nodes in
    proportion to their CPUs.
    """
    if not nodes:
        raise RayFailure("the Ray cluster has no alive node")
    total_cpus = int(sum(n["cpus"] for n in nodes)) or 1
    if sc.agents_per_host:
        n_hosts = math.ceil(sc.agents / sc.agents_per_host)
    elif sc.hosts:
        n_hosts = sc.hosts
    else:
        n_hosts = total_cpus
    n_hosts = max(1, min(n_hosts, sc.agents))
    slots: list[str] = []
    while len(slots) < n_hosts:
        cpus_left = {n["node_id"]: max(1, int(n["cpus"])) for n in nodes}
        while len(slots) < n_hosts and any(cpus_left.values()):
            for n in nodes:
                if cpus_left[n["node_id"]] > 0 and len(slots) < n_hosts:
                    slots.append(n["node_id"])
                    cpus_left[n["node_id"]] -= 1
    base, extra = divmod(sc.agents, n_hosts)
    out, start = [], 0
    for h in range(n_hosts):
        size = base + (1 if h < extra else 0)
        out.append((slots[h], list(range(start, start + size))))
        start += size
    return out


def _versions() -> dict[str, str]:
    import pyarrow
    import ray

    return {
        "raybench": __version__,
        "ray": ray.__version__,
        "pyarrow": pyarrow.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": str(os.cpu_count()),
    }


def execute(
    scenario: Scenario,
    *,
    out: Path = Path("results"),
    run_id: str | None = None,
    address: str | None = None,
    progress: Progress | None = None,
    ship_code: bool = False,
    metrics_port: int | None = None,
) -> RunResult:
    """Run a scenario and write its run folder ``out/run_id``. With ``scenario.metrics`` the run
    exports live Prometheus metrics (``raybench.actors.metrics``; a local Ray on ``metrics_port``).

    Raises:
        UsageError: the run folder exists already (checked before anything starts).
        RayFailure: Ray could not be started or reached.
        FuseUnavailable: ``fuse.mode = on`` and FUSE cannot be used.
    """
    import ray

    say = progress or (lambda line: None)
    run_id = run_id or store.new_run_id()
    store.check_new_run_dir(out, run_id)
    started_ns = time.time_ns()
    owns_ray = connect(address, ship_code=ship_code, metrics=scenario.metrics, metrics_port=metrics_port)
    run_dir = store.create_run_dir(out, run_id)
    interrupts = Interrupts()
    drv = Driver(scenario, run_dir, address, say, interrupts)
    found = capacity.findings(scenario)  # the scenario's own limits, known before anything runs
    base: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id,
        "started_utc": utc(started_ns),
        "load_start_ns": None,
        "load_end_ns": None,
        "closed_loop": not scenario.arrivals.open_loop,
        "offered_rate": scenario.offered_rate,
        "expected_requests": scenario.offered_rate * scenario.duration_s,
        "scenario": scenario.to_dict(),
        "sla_settings": drv.sla.to_manifest() if drv.sla is not None else None,
        "scenario_capacity": [f.to_dict() for f in found],
        "versions": _versions(),
    }
    write_started(run_dir, base)
    status, error = "failed", None
    at_once = False
    prio: DriverPriority | None = None
    host_results: list[dict[str, Any]] = []
    interrupts.install()
    try:
        say(f"starting actors: {scenario.agents:,} agents, {scenario.shards} shards, {scenario.experts} experts")
        for f in found:
            if f.over:
                say(capacity.format_finding(f))
        drv.start_actors(plan_hosts)
        # the driver's own work must not preempt the processes it measures (raybench.engine.priority)
        nices = [i["nice"] for i in drv.host_info if i["node_id"] == drv.head]
        prio = priority.lower_to(max(nices)) if nices else None
        nodes = len({n for n, _ in drv.host_plan})
        fuse_note = "FUSE on" if drv.fuse.get("enabled") else f"FUSE off ({drv.fuse.get('reason', 'n/a')})"
        if drv.opened_ahead:
            fuse_note += (
                f", {sum(o['files_opened_ahead'] for o in drv.opened_ahead):,} files opened ahead in "
                f"{max(o.get('open_ahead_s', 0) for o in drv.opened_ahead):.1f} s"
            )
        say(f"{len(drv.hosts)} agent hosts on {nodes} node(s); {fuse_note}")
        if scenario.metrics:
            m = drv.metrics
            say(f"metrics: scrape {m['url']}" if m["enabled"] else f"metrics off: {m['reason']}; the run goes on")
        t0 = time.time_ns() + int(START_MARGIN_S * 1e9)
        base |= {"load_start_ns": t0, "load_end_ns": t0 + int(scenario.duration_s * 1e9)}
        base["cluster"] = {"address": address or "local", "head_node": drv.head, "nodes": drv.nodes}
        write_started(run_dir, base)
        host_refs = drv.start_load(t0)
        try:
            drv.watch(host_refs)
            status = "aborted" if drv.abort_reason else "completed"
        except KeyboardInterrupt:
            say("interrupted: stopping agents and draining (Ctrl-C again to exit at once)")
            drv.stop_hosts("interrupt")
            status = "interrupted"
            refs = list(drv.host_refs.values())
            ray.wait(refs, num_returns=len(refs), timeout=scenario.drain_timeout_s + 10)
        for h, ref in drv.host_refs.items():
            if h in drv.host_results or h in drv.host_failed:
                continue
            try:
                drv.host_results[h] = ray.get(ref, timeout=scenario.drain_timeout_s + 10)
            except Exception as exc:
                drv.event("host_failed", host_id=h, error=str(exc)[:500])
        failed = sorted(set(range(len(drv.hosts))) - set(drv.host_results))
        if failed:
            error = f"agent host(s) {failed} failed for good; their agents stopped early"
            if status == "completed":
                status = "degraded"
        host_results = [drv.host_results[h] for h in sorted(drv.host_results)]
        lost = drv.lost = drv.account_lost()
        if lost:
            say(f"{lost} requests died with their agent host; recorded as error rows")
        drv.wait_probes(timeout=scenario.drain_timeout_s + 30)
        drv.take_windows(1 << 40)
        drv.sample_resources()
        drv.wait_actions()
    except KeyboardInterrupt:
        # A Ctrl-C before the load (or during finishing) stops the run; a second one while the
        # agents drain means "now": skip finalizing, leave the streams for `raybench recover`.
        at_once = status == "interrupted"
        status = "interrupted"
    except RayFailure:
        status = "failed"
        raise
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        drv.event("failure", error=error[:1000])
        if not isinstance(exc, RuntimeError | OSError):
            raise
    finally:
        interrupts.restore()
        if prio is not None:
            prio.restore()
        try:
            if not at_once:
                result = _finish(drv, status, error, host_results, prio)
        finally:
            drv.teardown()  # FUSE mounts go on every exit path
            if owns_ray:
                ray.shutdown()
    if at_once:
        say(f"stopped at once; the streams in {run_dir} are readable; `raybench recover {run_dir}` finishes it")
        raise KeyboardInterrupt
    return result


def _finish(
    drv: Driver, status: str, error: str | None, host_results: list[dict[str, Any]], prio: DriverPriority | None
) -> RunResult:
    """Flush events, finalize the streams, judge the whole run, write the manifest."""
    import ray

    late, flush_age = 0, None
    try:
        closed: Any = ray.get(drv.aggregator.finalize.remote(), timeout=600)
        late, flush_age = closed["late_rows"], closed.get("flush_age_ms")
        drv.metrics |= closed.get("metrics", {})
    except Exception as exc:  # aggregator gone: finalize_folder rewrites whatever streams are left
        error = error or f"the aggregator failed: {str(exc).splitlines()[0][:200]}"
        status = "failed"
    sla_rows: list[dict[str, Any]] = []
    verdict: bool | None = None
    if drv.monitor is not None:
        requests = store.read_table(drv.run_dir, "requests")
        resources = store.read_table(drv.run_dir, "resources")
        sla_rows = drv.monitor.finalize(requests, resources)
        for v in drv.monitor.late_violations:
            drv.on_violation(v)
        drv.wait_actions()
        verdict = judged_verdict(sla_rows)
    extra = {
        "hosts": host_results,
        **drv.collect_stats(),
        "fuse": drv.fuse,
        "metrics": drv.metrics,
        "late_rows": late,
        "flush_age_ms": flush_age,  # with late_rows and the rows: the manifest's `harness` (finalize)
        "driver_priority": prio.to_manifest() if prio is not None else None,
        # restarts, not deaths: a death after the load, or past MAX_HOST_RESTARTS, is host_failed
        "host_restarts": dict(Counter(str(json.loads(d)["host_id"]) for _, k, d in drv.events if k == "actor_restart")),
        "lost_requests": drv.lost,
        "load_stopped_ns": drv.load_stopped_ns,
        "abort_reason": drv.abort_reason,
        "sla": {"verdict": verdict, "thresholds": [
            {k: r[k] for k in ("id", "observed", "target", "passed", "applicable", "windows_failed", "windows_total")}
            for r in sla_rows
        ]},
    }  # fmt: skip
    _write_events(drv)
    schema_rows = [{k: r[k] for k in _SLA_COLUMNS} for r in sla_rows]
    manifest = finalize_folder(drv.run_dir, status=status, error=error, extra=extra, sla_rows=schema_rows)
    return RunResult(drv.run_dir, status, manifest, manifest["summary"], manifest["resources"], sla_rows, verdict)


_SLA_COLUMNS = (
    "run_id", "id", "expression", "scope", "observed", "target", "passed",
    "windows_failed", "windows_total", "first_violation_ns",
)  # fmt: skip


def _write_events(drv: Driver) -> None:
    """Rewrite events.arrow from the driver's complete list (the aggregator's live copy, kept for a
    crash, misses what happened after it closed: end-of-run verdicts, late alerts)."""
    import pyarrow as pa

    rows = [{"run_id": drv.run_id, "ts_ns": t, "kind": k, "detail": d} for t, k, d in sorted(drv.events)]
    table = pa.Table.from_pylist(rows, schema=schema("events", final=False))
    store.write_table(drv.run_dir, "events", table)  # also when empty: every run has the file
    (drv.run_dir / "events.arrows").unlink(missing_ok=True)  # the driver's list holds all of it
