"""One run end to end: connect Ray, place the actors, start the load, watch it, stop, finalize.

::

    execute(scenario) ─ ray.init (local, or --address)
        Aggregator ×1 (head node)   StateShard ×S   ExpertPool ×1   FuseNode ×nodes (pinned)
        AgentHost ×H (pinned round-robin over nodes in proportion to their CPUs)
        load starts at t0 on every host; the driver samples resources every second, hands each
        completed window to the SLA monitor, prints progress, applies scheduled faults
        hosts drain -> Aggregator.finalize (streams -> .arrow) -> windows, sla, events, manifest

The driver never measures requests itself: every figure comes from rows written by the hosts.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from raybench import __version__, store, summary, windows
from raybench.errors import RayFailure
from raybench.monitor import ProcessSampler
from raybench.scenario import Scenario
from raybench.schema import SCHEMA_VERSION

#: Seconds between the hosts being told to start and the load's t0 (all hosts start together).
START_MARGIN_S = 1.5
#: A window is handed to the SLA monitor this long after it ends (late flushes arrive meanwhile).
WINDOW_SETTLE_S = 1.5
#: Seconds to wait for actors to come up before giving up.
STARTUP_TIMEOUT_S = 120.0

Progress = Callable[[str], None]


@dataclass
class RunResult:
    """What a finished (or stopped) run left behind."""

    run_dir: Path
    status: str  # completed | interrupted | aborted | failed
    manifest: dict[str, Any]
    summary_rows: list[dict[str, Any]] = field(default_factory=list)
    resource_rows: list[dict[str, Any]] = field(default_factory=list)
    sla_rows: list[dict[str, Any]] = field(default_factory=list)
    verdict: bool | None = None  # None: no thresholds, or no data to judge


def _utc(ns: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns / 1e9)) + f".{(ns // 1_000_000) % 1000:03d}Z"


def connect(address: str | None) -> bool:
    """Connect to Ray; returns True when this call started a local Ray that we must shut down."""
    import ray

    if ray.is_initialized():
        return False
    try:
        if address:
            ray.init(address=address, logging_level="ERROR", log_to_driver=False)
            return True
        ray.init(
            include_dashboard=False,
            logging_level="ERROR",
            log_to_driver=False,
            object_store_memory=512 * 2**20,
            _node_ip_address="127.0.0.1",
        )
        return True
    except Exception as exc:
        raise RayFailure(f"could not start or reach Ray{f' at {address}' if address else ''}: {exc}") from exc


def _nodes() -> list[dict[str, Any]]:
    import ray

    out = []
    for n in ray.nodes():
        if not n.get("Alive"):
            continue
        res = n.get("Resources", {})
        out.append(
            {
                "node_id": n["NodeID"],
                "address": n.get("NodeManagerAddress"),
                "cpus": res.get("CPU", 0.0),
                "memory_bytes": int(res.get("memory", 0)),
                "head": "node:__internal_head__" in res,
            }
        )
    return out


def plan_hosts(sc: Scenario, nodes: list[dict[str, Any]]) -> list[tuple[str, list[int]]]:
    """Assign agents to hosts and hosts to nodes: ``[(node_id, agent_ids), ...]``.

    Default: one host per CPU of the cluster (at least one, at most one per agent), agents split
    evenly; ``hosts`` or ``agents_per_host`` override. Hosts go round-robin over the nodes in
    proportion to their CPUs.
    """
    total_cpus = int(sum(n["cpus"] for n in nodes)) or 1
    if sc.agents_per_host:
        n_hosts = math.ceil(sc.agents / sc.agents_per_host)
    elif sc.hosts:
        n_hosts = sc.hosts
    else:
        n_hosts = total_cpus
    n_hosts = max(1, min(n_hosts, sc.agents))
    slots: list[str] = []
    cpus_left = {n["node_id"]: max(1, int(n["cpus"])) for n in nodes}
    while len(slots) < n_hosts:
        progressed = False
        for n in nodes:
            if cpus_left[n["node_id"]] > 0 and len(slots) < n_hosts:
                slots.append(n["node_id"])
                cpus_left[n["node_id"]] -= 1
                progressed = True
        if not progressed:
            cpus_left = {n["node_id"]: max(1, int(n["cpus"])) for n in nodes}
    base, extra = divmod(sc.agents, n_hosts)
    out, start = [], 0
    for h in range(n_hosts):
        size = base + (1 if h < extra else 0)
        out.append((slots[h], list(range(start, start + size))))
        start += size
    return out


class _Driver:
    """State of one run in the driver process; ``execute`` is its only user."""

    def __init__(self, sc: Scenario, run_dir: Path, address: str | None, progress: Progress) -> None:
        self.sc = sc
        self.run_dir = run_dir
        self.run_id = run_dir.name
        self.address = address
        self.progress = progress
        self.events: list[tuple[int, str, str]] = []
        self.sampler = ProcessSampler("driver")
        self.actors: dict[str, list[Any]] = {}
        self.fuse: dict[str, Any] = {"mode": sc.fuse_mode, "backend": sc.fuse_backend, "nodes": []}
        self.stop_reason: str | None = None
        self.window_stats: list[dict[str, Any]] = []
        self._fault_state: dict[int, int] = {}

    def event(self, kind: str, **detail: Any) -> None:
        self.events.append((time.time_ns(), kind, json.dumps(detail, default=str)))

    # -- set-up --------------------------------------------------------------------------------

    def start_actors(self) -> None:
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy as Pin

        from raybench.agents import AgentHost
        from raybench.aggregator import Aggregator
        from raybench.experts import ExpertPool
        from raybench.state import StateShard

        sc = self.sc
        self.nodes = _nodes()
        head = ray.get_runtime_context().get_node_id()
        self.head = head
        self.sampler.node_id = head
        self.aggregator = (
            ray.remote(Aggregator)
            .options(num_cpus=0, scheduling_strategy=Pin(head, soft=False))
            .remote(str(self.run_dir), 0, sc.window_s)
        )
        self.shards = [
            ray.remote(StateShard).options(num_cpus=0, scheduling_strategy="SPREAD").remote(i) for i in range(sc.shards)
        ]
        self.experts = ray.remote(ExpertPool).options(num_cpus=0, max_concurrency=100_000).remote(sc.experts)
        fuse_roots = self._start_fuse()
        self.host_plan = plan_hosts(sc, self.nodes)
        self.hosts = []
        scenario_dict = sc.to_dict()
        for h, (node_id, agent_ids) in enumerate(self.host_plan):
            self.hosts.append(
                ray.remote(AgentHost)
                .options(num_cpus=0, max_concurrency=1_000_000, scheduling_strategy=Pin(node_id, soft=False))
                .remote(h, agent_ids, scenario_dict, self.run_id, self.shards, self.experts, self.aggregator,
                        fuse_roots.get(node_id), node_id)
            )  # fmt: skip
        self.actors = {
            "aggregator": [self.aggregator],
            "shard": self.shards,
            "experts": [self.experts],
            "host": self.hosts,
            "fuse": self.fuse_nodes,
        }
        ready = [h.info.remote() for h in self.hosts] + [s.stats.remote() for s in self.shards]
        ready += [self.experts.stats.remote(), self.aggregator.take_windows.remote(-1)]
        try:
            infos = ray.get(ready, timeout=STARTUP_TIMEOUT_S)
        except Exception as exc:
            raise RayFailure(f"actors did not come up within {STARTUP_TIMEOUT_S:.0f}s: {exc}") from exc
        self.host_infos = infos[: len(self.hosts)]

    def _start_fuse(self) -> dict[str, str]:
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy as Pin

        self.fuse_nodes: list[Any] = []
        if self.sc.fuse_mode == "off":
            self.fuse["reason"] = "fuse.mode = off"
            return {}
        from raybench.fusenode import FuseNode

        for n in self.nodes:
            actor = (
                ray.remote(FuseNode)
                .options(num_cpus=0, scheduling_strategy=Pin(n["node_id"], soft=False))
                .remote(
                    self.run_id,
                    self.sc.fuse_backend,
                    {
                        "direct_io": self.sc.fuse_direct_io,
                        "attr_timeout": self.sc.fuse_attr_timeout_s,
                        "entry_timeout": self.sc.fuse_entry_timeout_s,
                    },
                )
            )
            self.fuse_nodes.append(actor)
        results = []
        for n, ref in zip(self.nodes, [a.start.remote() for a in self.fuse_nodes], strict=True):
            try:
                results.append(ray.get(ref, timeout=STARTUP_TIMEOUT_S))
            except Exception as exc:  # the FUSE service of that node failed: run on without it
                results.append({"node_id": n["node_id"], "reason": f"FUSE service failed: {str(exc)[:200]}"})
        self.fuse["nodes"] = results
        roots = {r["node_id"]: r["mountpoint"] for r in results if "mountpoint" in r}
        reasons = sorted({r["reason"] for r in results if "reason" in r})
        if reasons:
            self.fuse["reason"] = "; ".join(reasons)
            if self.sc.fuse_mode == "on":
                from raybench.errors import FuseUnavailable

                raise FuseUnavailable(f"fuse.mode = on but FUSE is unavailable: {self.fuse['reason']}")
            self.event("fuse_error", reason=self.fuse["reason"])
        self.fuse["enabled"] = bool(roots)
        return roots

    # -- the load ------------------------------------------------------------------------------

    def sample_resources(self) -> None:
        import ray

        rows = [(self.run_id, *self.sampler.sample())]
        refs = [a.sample_resources.remote() for group in self.actors.values() for a in group]
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0.5)
        for ref in ready:
            try:
                rows.append((self.run_id, *ray.get(ref)))
            except Exception as exc:  # a dead actor is noticed by the watch loop
                self.event("sample_failed", error=str(exc)[:200])
        self.aggregator.write_rows.remote("resources", rows)

    def watch(self, host_refs: list[Any]) -> None:
        import ray

        sc = self.sc
        t0 = self.t0
        end = t0 + int(sc.duration_s * 1e9)
        next_sample = time.time()
        handed = -1
        pending = list(host_refs)
        last_line = 0.0
        while pending:
            _, pending = ray.wait(pending, num_returns=len(pending), timeout=0.25)
            now = time.time()
            if now >= next_sample:
                self.sample_resources()
                next_sample = now + 1.0
            self.apply_faults(now)
            # windows ending more than WINDOW_SETTLE_S ago are complete (hosts flushed past them)
            upto = int((now * 1e9 - t0 - WINDOW_SETTLE_S * 1e9) // int(sc.window_s * 1e9)) - 1
            if upto > handed:
                for k, table in ray.get(self.aggregator.take_windows.remote(upto)).items():
                    self.on_window(k, table)
                handed = upto
            if now - last_line >= max(2.0, min(sc.window_s, 10.0)):
                last_line = now
                self.progress_line(now, end)

    def apply_faults(self, now: float) -> None:
        t = (now * 1e9 - self.t0) / 1e9
        for i, f in enumerate(self.sc.faults):
            if f.kind != "shrink_experts":
                continue
            state = self._fault_state.get(i)
            if state is None and f.active(t):
                previous = ray_get(self.experts.set_capacity.remote(f.pool))
                self._fault_state[i] = previous
                self.event("fault_start", kind=f.kind, pool=f.pool, previous=previous)
            elif state is not None and state >= 0 and t >= f.end_s:
                ray_get(self.experts.set_capacity.remote(state))
                self._fault_state[i] = -1
                self.event("fault_end", kind=f.kind, pool=state)

    def on_window(self, k: int, table: Any) -> None:
        import numpy as np

        if table.num_rows:
            lat = table.column("latency_ms").to_numpy()
            warm = table.column("warmup").to_numpy(zero_copy_only=False)
            lat = lat[~warm]
        else:
            lat = np.array([])
        from raybench.stats import percentile

        self.window_stats.append(
            {"window": k, "count": int(lat.size), "p99_ms": percentile(lat, 99.0) if lat.size else None}
        )

    def progress_line(self, now: float, end_ns: int) -> None:
        elapsed = now - self.t0 / 1e9
        remaining = max(0.0, end_ns / 1e9 - now)
        last = self.window_stats[-1] if self.window_stats else None
        if last and last["count"]:
            rate = last["count"] / self.sc.window_s
            p99 = f"{last['p99_ms']:.1f}ms"
            tail = f"window {last['window']}: {rate:,.0f} req/s, p99 {p99}"
        else:
            tail = "first window not complete yet"
        phase = "warm-up" if elapsed < self.sc.warmup_s else ("load" if remaining > 0 else "draining")
        self.progress(
            f"[{max(0.0, elapsed):6.1f}s {phase:>8}] {self.sc.agents:,} agents, {remaining:5.1f}s left, {tail}"
        )

    # -- the end -------------------------------------------------------------------------------

    def stop_hosts(self, reason: str) -> None:
        self.stop_reason = reason
        self.event(reason, detail=f"stopping agents ({reason})")
        for h in self.hosts:
            h.stop.remote()


def ray_get(ref: Any, timeout: float = 10.0) -> Any:
    import ray

    return ray.get(ref, timeout=timeout)


def execute(
    scenario: Scenario,
    *,
    out: Path = Path("results"),
    run_id: str | None = None,
    address: str | None = None,
    progress: Progress | None = None,
) -> RunResult:
    """Run a scenario and write its run folder ``out/run_id``.

    Raises:
        UsageError: the run folder exists already (checked before anything starts).
        RayFailure: Ray could not be started or the actors did not come up.
    """
    progress = progress or (lambda line: None)
    run_id = run_id or store.new_run_id()
    store.check_new_run_dir(out, run_id)
    started_ns = time.time_ns()
    started_ray = connect(address)
    run_dir = store.create_run_dir(out, run_id)
    drv = _Driver(scenario, run_dir, address, progress)
    status = "failed"
    host_results: list[dict[str, Any]] = []
    error: str | None = None
    previous_sigterm = signal.getsignal(signal.SIGTERM)
    try:
        import ray

        signal.signal(signal.SIGTERM, _raise_interrupt)
        progress(f"starting actors: {scenario.agents:,} agents, {scenario.shards} shards, {scenario.experts} experts")
        drv.start_actors()
        n_hosts = len(drv.hosts)
        nodes = len({n for n, _ in drv.host_plan})
        fuse_note = "FUSE on" if drv.fuse.get("enabled") else f"FUSE off ({drv.fuse.get('reason', 'n/a')})"
        progress(f"{n_hosts} agent hosts on {nodes} node(s); {fuse_note}")
        drv.t0 = time.time_ns() + int(START_MARGIN_S * 1e9)
        ray.get(drv.aggregator.set_t0.remote(drv.t0))
        host_refs = [h.run.remote(drv.t0) for h in drv.hosts]
        try:
            drv.watch(host_refs)
            status = "completed"
        except KeyboardInterrupt:
            progress("interrupted: stopping agents and draining (Ctrl-C again to exit at once)")
            drv.stop_hosts("interrupt")
            status = "interrupted"
            signal.signal(signal.SIGINT, signal.default_int_handler)
            ray.wait(host_refs, num_returns=len(host_refs), timeout=scenario.drain_timeout_s + 10)
        for ref in host_refs:
            try:
                host_results.append(ray.get(ref, timeout=scenario.drain_timeout_s + 10))
            except Exception as exc:
                drv.event("host_failed", error=str(exc)[:500])
                error = f"an agent host failed: {str(exc).splitlines()[0][:200]}"
        remaining = ray.get(drv.aggregator.take_windows.remote(1 << 40))
        for k, table in remaining.items():
            drv.on_window(k, table)
        drv.sample_resources()
    except KeyboardInterrupt:
        status = "interrupted"
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        drv.event("failure", error=error[:1000])
        if isinstance(exc, RayFailure):
            raise
    finally:
        signal.signal(signal.SIGTERM, previous_sigterm)
        result = _finish(drv, status, host_results, started_ns, error)
        _teardown(drv, started_ray)
    return result


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _finish(
    drv: _Driver, status: str, host_results: list[dict[str, Any]], started_ns: int, error: str | None
) -> RunResult:
    import ray

    sc = drv.sc
    files: dict[str, int] = {}
    late = 0
    try:
        agg = ray.get(drv.aggregator.write_rows.remote("events", [(drv.run_id, *e) for e in drv.events]), timeout=30)
        del agg
        fin = ray.get(drv.aggregator.finalize.remote(), timeout=600)
        files, late = fin["rows"], fin["late_rows"]
    except Exception as exc:  # the aggregator is gone: streams stay behind for `raybench recover`
        error = error or f"finalize failed: {exc}"
        status = "failed"
    t0 = getattr(drv, "t0", started_ns)
    requests = store.read_table(drv.run_dir, "requests")
    n_windows = max(1, math.ceil(sc.duration_s / sc.window_s))
    win_rows = windows.compute(requests, drv.run_id, t0, sc.window_s, n_windows)
    if win_rows:
        import pyarrow as pa

        files["windows"] = store.write_table(drv.run_dir, "windows", pa.Table.from_pylist(win_rows))
    span = max(sc.duration_s - sc.warmup_s, 1e-9)
    summary_rows = summary.summarize(requests, span)
    resources = store.read_table(drv.run_dir, "resources")
    resource_rows = summary.resource_growth(resources)
    shards = _safe_get([s.stats.remote() for s in getattr(drv, "shards", [])])
    experts = _safe_get([drv.experts.stats.remote()]) if hasattr(drv, "experts") else []
    ended_ns = time.time_ns()
    manifest: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "run_id": drv.run_id,
        "status": status,
        "error": error,
        "started_utc": _utc(started_ns),
        "ended_utc": _utc(ended_ns),
        "load_start_ns": t0,
        "load_end_ns": t0 + int(sc.duration_s * 1e9),
        "closed_loop": not sc.arrivals.open_loop,
        "offered_rate": sc.offered_rate,
        "expected_requests": sc.offered_rate * sc.duration_s,
        "scenario": sc.to_dict(),
        "versions": _versions(),
        "cluster": {
            "address": drv.address or "local",
            "head_node": getattr(drv, "head", None),
            "nodes": getattr(drv, "nodes", []),
        },
        "hosts": host_results,
        "shards": shards,
        "experts": experts[0] if experts else {},
        "fuse": drv.fuse,
        "files": files,
        "late_rows": late,
        "summary": summary_rows,
        "resources": resource_rows,
    }
    verdict = None
    store.write_json_atomic(drv.run_dir / store.MANIFEST, manifest)
    return RunResult(drv.run_dir, status, manifest, summary_rows, resource_rows, [], verdict)


def _safe_get(refs: list[Any]) -> list[Any]:
    import ray

    try:
        return list(ray.get(refs, timeout=10))
    except Exception:
        return []


def _teardown(drv: _Driver, started_ray: bool) -> None:
    import ray

    for f in getattr(drv, "fuse_nodes", []):
        with contextlib.suppress(Exception):
            ray.get(f.stop.remote(), timeout=15)
    if started_ray:
        ray.shutdown()
    else:
        for group in drv.actors.values():
            for a in group:
                with contextlib.suppress(Exception):
                    ray.kill(a)


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
