"""The driver's side of a run: start the actors, watch the load, act on SLA violations.

Everything here runs in the driver process on the head node. It never measures requests itself;
it reads the rows the hosts wrote (through the aggregator's completed windows) and judges them.
"""

from __future__ import annotations

import contextlib
import json
import math
import secrets
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from raybench.actors.sampler import ProcessSampler
from raybench.config.scenario import Scenario
from raybench.engine.interrupts import Interrupts
from raybench.errors import FuseUnavailable, RayFailure

#: A window is judged this long after it ends (late flushes of the hosts arrive meanwhile).
WINDOW_SETTLE_S = 1.5
#: How often Ray restarts a dead agent host before the run goes on without it (beyond the kills
#: that ``--chaos`` plans: see :func:`restart_budget`).
MAX_HOST_RESTARTS = 3
#: Seconds to wait for actors to come up before giving up.
STARTUP_TIMEOUT_S = 120.0

Progress = Callable[[str], None]


def planned_chaos_kills(sc: Scenario) -> int:
    """How many kills ``--chaos`` makes at most: one every ``chaos_s`` of load, none in its last second."""
    if not sc.chaos_s:
        return 0
    return max(0, math.ceil((sc.duration_s - 1.0) / sc.chaos_s) - 1)  # at chaos_s, 2 chaos_s, ... < duration - 1


def restart_budget(sc: Scenario) -> int:
    """Restarts allowed per agent host: :data:`MAX_HOST_RESTARTS` for real failures, plus every kill
    that chaos plans (it may pick the same host each time), so chaos never uses up the budget it is
    there to prove."""
    return MAX_HOST_RESTARTS + (planned_chaos_kills(sc) if sc.chaos_target in ("hosts", "both") else 0)


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


class Driver:
    """State of one run in the driver process."""

    def __init__(
        self,
        sc: Scenario,
        run_dir: Path,
        address: str | None,
        progress: Progress,
        interrupts: Interrupts | None = None,
    ) -> None:
        self.sc = sc
        self.interrupts = interrupts
        self.restart_budget = restart_budget(sc)
        self.run_dir = run_dir
        self.run_id = run_dir.name
        self.address = address
        self.progress = progress
        self.events: list[tuple[int, str, str]] = []
        self.sampler = ProcessSampler("driver")
        # Ray's per-task event reporting (dashboard timeline) costs CPU on every call; a benchmark
        # of the coordination layer turns it off for its own actors (the options below).
        self.actors: dict[str, list[Any]] = {}
        self.fuse: dict[str, Any] = {"mode": sc.fuse_mode, "backend": sc.fuse_backend, "enabled": False}
        self.metrics: dict[str, Any] = {"enabled": False, "reason": "run.metrics = false"}
        self.hosts: list[Any] = []
        self.host_info: list[dict[str, Any]] = []  # each host's info(), in host order
        self.opened_ahead: list[dict[str, Any]] = []  # each host's open_files(), when it ran
        self.fuse_nodes: list[Any] = []
        self.window_stats: list[dict[str, Any]] = []
        self.resource_rows: list[tuple[Any, ...]] = []
        self.abort_reason: str | None = None
        self.t0 = 0
        self.load_stopped_ns: int | None = None  # when the load was stopped before its planned end
        self._fault_state: dict[int, int] = {}
        self._handed = -1
        self._stopped = False
        self.host_results: dict[int, dict[str, Any]] = {}
        self.host_deaths: dict[int, list[int]] = {}  # host -> times (ns) its death was noticed
        self.host_failed: set[int] = set()  # hosts that died for good
        self.lost = 0  # requests that died with their host (account_lost)
        self._chaos_next = 0.0
        self._chaos_count = 0
        self._fuse_checked = 0.0
        self._nodes_checked = 0.0
        self._side: ThreadPoolExecutor | None = None
        self._side_jobs: list[Future[Any]] = []
        self.sla = None
        self.monitor = None
        if sc.sla and sc.sla.get("thresholds"):
            from raybench.judge.sla import parse_config

            self.sla = parse_config(sc.sla)

    def event(self, kind: str, ts_ns: int | None = None, **detail: Any) -> None:
        """Record an event; it is streamed to the aggregator at once so a crash keeps it."""
        row = (ts_ns or time.time_ns(), kind, json.dumps(detail, default=str))
        self.events.append(row)
        aggregator = getattr(self, "aggregator", None)
        if aggregator is not None:
            aggregator.write_rows.remote("events", [(self.run_id, *row)])

    # -- set-up --------------------------------------------------------------------------------

    def start_actors(self, plan_hosts: Callable[[Scenario, list[dict[str, Any]]], list[tuple[str, list[int]]]]) -> None:
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy as Pin

        from raybench.actors.aggregator import Aggregator
        from raybench.actors.experts import ExpertPool
        from raybench.actors.host import AgentHost
        from raybench.actors.state import StateShard

        sc = self.sc
        self.nodes = _nodes()
        self.head = ray.get_runtime_context().get_node_id()
        self.sampler.node_id = self.head
        self.aggregator = (
            ray.remote(Aggregator)
            .options(num_cpus=0, enable_task_events=False, scheduling_strategy=Pin(self.head, soft=False))
            .remote(str(self.run_dir), 0, sc.window_s)
        )
        # a local Ray's metrics endpoint is scraped on loopback; a cluster's at the head node's address
        local = "127.0.0.1" if self.address is None else None
        metrics_ref = self.aggregator.start_metrics.remote(local) if sc.metrics else None
        # the state data plane's token (raybench.actors.wire): only this run's hosts may talk to its shards
        token = secrets.token_bytes(16) if sc.state_transport == "socket" else None
        self.shards = [
            ray.remote(StateShard)
            .options(
                num_cpus=0,
                max_concurrency=100_000,
                enable_task_events=False,
                scheduling_strategy="SPREAD",
                max_restarts=1,
                max_task_retries=0,  # a lost shard comes back empty; see StateShard
            )
            .remote(i, token or b"")
            for i in range(sc.shards)
        ]
        self.experts = (
            ray.remote(ExpertPool)
            .options(num_cpus=0, max_concurrency=100_000, enable_task_events=False)
            .remote(sc.experts, token or b"")
        )
        fuse_roots = self._start_fuse()
        self.host_plan = plan_hosts(sc, self.nodes)
        scenario_dict = sc.to_dict()
        for h, (node_id, agent_ids) in enumerate(self.host_plan):
            self.hosts.append(
                ray.remote(AgentHost)
                .options(num_cpus=0, max_concurrency=1_000_000, enable_task_events=False,
                         max_restarts=self.restart_budget, max_task_retries=0,
                         scheduling_strategy=Pin(node_id, soft=False))
                .remote(h, agent_ids, scenario_dict, self.run_id, self.shards, self.experts, self.aggregator,
                        fuse_roots.get(node_id), node_id, token)
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
            self.host_info = ray.get(ready, timeout=STARTUP_TIMEOUT_S)[: len(self.hosts)]
        except Exception as exc:
            raise RayFailure(f"actors did not come up within {STARTUP_TIMEOUT_S:.0f}s: {exc}") from exc
        if fuse_roots and sc.fuse_opens_ahead:  # see AgentHost.open_files (an OSError there is reported, not raised)
            try:
                self.opened_ahead = ray.get([h.open_files.remote() for h in self.hosts], timeout=STARTUP_TIMEOUT_S)
            except Exception as exc:
                raise RayFailure(f"agent hosts failed while opening their files: {str(exc)[:300]}") from exc
            for h, opened in enumerate(self.opened_ahead):
                if "open_ahead_error" in opened:  # that host opens the rest on first use
                    self.event("fuse_error", host_id=h, error=f"opening files ahead: {opened['open_ahead_error']}")
        if metrics_ref is not None:
            self.metrics = ray.get(metrics_ref, timeout=STARTUP_TIMEOUT_S)
            if not self.metrics["enabled"]:
                self.event("metrics_unavailable", reason=self.metrics["reason"])

    def _start_fuse(self) -> dict[str, str]:
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy as Pin

        if self.sc.fuse_mode == "off":
            self.fuse["reason"] = "fuse.mode = off"
            return {}
        from raybench.actors.fusenode import FuseNode

        options = {
            "mode": self.sc.fuse_fs,
            "direct_io": self.sc.fuse_direct_io,
            "multithreaded": self.sc.fuse_multithreaded,
            "attr_timeout": self.sc.fuse_attr_timeout_s,
            "entry_timeout": self.sc.fuse_entry_timeout_s,
            # the agents' workspace: one file per key, there before the first request
            "prefill": self.sc.keys if self.sc.fuse_prefill else 0,
            "prefill_bytes": self.sc.file_bytes,
        }
        for n in self.nodes:
            self.fuse_nodes.append(
                ray.remote(FuseNode)
                .options(num_cpus=0, max_concurrency=4, scheduling_strategy=Pin(n["node_id"], soft=False))
                .remote(self.run_id, self.sc.fuse_backend, options)
            )
        results = []
        for n, ref in zip(self.nodes, [a.start.remote() for a in self.fuse_nodes], strict=True):
            try:
                results.append(ray.get(ref, timeout=STARTUP_TIMEOUT_S))
            except Exception as exc:  # that node's FUSE service failed: run on without it there
                results.append({"node_id": n["node_id"], "reason": f"FUSE service failed: {str(exc)[:200]}"})
        self.fuse["nodes"] = results
        roots = {r["node_id"]: r["mountpoint"] for r in results if "mountpoint" in r}
        reasons = sorted({r["reason"] for r in results if "reason" in r})
        if reasons:
            self.fuse["reason"] = "; ".join(reasons)
            if self.sc.fuse_mode == "on":
                raise FuseUnavailable(f"fuse.mode = on but FUSE is unavailable: {self.fuse['reason']}")
            self.event("fuse_error", reason=self.fuse["reason"])
        self.fuse["enabled"] = bool(roots)
        return roots

    def start_load(self, t0: int) -> list[Any]:
        import ray

        self.t0 = t0
        ray.get(self.aggregator.set_t0.remote(t0))
        if self.sla is not None:
            self.monitor = self.sla.monitor(t0_ns=t0, run_id=self.run_id, stages_off=self.sc.stages_off())
        self.probe_refs = []
        if self.sc.fuse_probe_workers and self.fuse.get("enabled"):
            self.probe_refs = [
                f.run_probe.remote(self.aggregator, self.sc.fuse_probe_workers, t0, self.sc.duration_s, self.sc.seed)
                for f in self.fuse_nodes
            ]
        self.host_refs = {h: host.run.remote(t0) for h, host in enumerate(self.hosts)}
        if self.sc.chaos_s:
            self._chaos_next = t0 / 1e9 + self.sc.chaos_s
        return list(self.host_refs.values())

    def wait_probes(self, timeout: float) -> None:
        """Wait for the FUSE probe workloads (their rows must reach the aggregator before it closes)."""
        import ray

        for ref in getattr(self, "probe_refs", []):
            try:
                ray.get(ref, timeout=timeout)
            except Exception as exc:  # a probe on a broken mount: recorded, the run goes on
                self.event("fuse_error", error=f"probe workload failed: {str(exc)[:300]}")

    # -- while the load runs -------------------------------------------------------------------

    def sample_resources(self) -> None:
        import ray

        rows = [(self.run_id, *self.sampler.sample())]
        refs = [a.sample_resources.remote() for group in self.actors.values() for a in group]
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0.5)
        for ref in ready:
            try:
                got = ray.get(ref)
                rows.extend((self.run_id, *r) for r in (got if isinstance(got, list) else [got]))
            except Exception as exc:  # a dead actor; the watch loop notices it too
                self.event("sample_failed", error=str(exc)[:200])
        self.resource_rows.extend(rows)
        self.aggregator.write_rows.remote("resources", rows)

    def watch(self, host_refs: list[Any]) -> None:
        """Until every host has finished: sample resources, apply faults, judge windows, report,
        restart hosts that died, kill one now and then with ``--chaos``, notice lost nodes."""
        import ray

        sc = self.sc
        end = self.t0 + int(sc.duration_s * 1e9)
        next_sample = time.time()
        last_line = 0.0
        pending = list(host_refs)
        while pending:
            ready, pending = ray.wait(pending, num_returns=len(pending), timeout=0.25)
            for ref in ready:
                restarted = self._host_finished(ref, end)
                if restarted is not None:
                    pending.append(restarted)
            now = time.time()
            if now >= next_sample:
                self.sample_resources()
                next_sample = now + 1.0
            self.apply_faults(now)
            self._chaos(now, end)
            self._heal_fuse(now)
            self._check_nodes(now)
            # windows ending more than WINDOW_SETTLE_S ago are complete
            upto = int((now * 1e9 - self.t0 - WINDOW_SETTLE_S * 1e9) // int(sc.window_s * 1e9)) - 1
            self.take_windows(upto)
            if now - last_line >= max(2.0, min(sc.window_s, 10.0)):
                last_line = now
                self.progress_line(now, end)
            if self.abort_reason is not None and not self._stopped:
                self._stopped = True
                self.stop_hosts("abort")

    def _host_finished(self, ref: Any, end_ns: int) -> Any:
        """A host's ``run`` returned or its host died; returns the ref of its resumed run, if any."""
        import ray

        h = next(i for i, r in self.host_refs.items() if r == ref)
        try:
            self.host_results[h] = ray.get(ref)
            return None
        except Exception as exc:  # the host process died (or its node)
            now = time.time_ns()
            deaths = self.host_deaths.setdefault(h, [])
            deaths.append(now)
            detail = {"host_id": h, "node_id": self.host_plan[h][0], "error": str(exc).splitlines()[0][:300]}
            if now < end_ns and len(deaths) <= self.restart_budget and not self._stopped:
                self.event("actor_restart", **detail, epoch=len(deaths))
                self.progress(f"agent host {h} died; restarting it (its agents resume)")
                self.host_refs[h] = self.hosts[h].run.remote(self.t0, len(deaths))
                return self.host_refs[h]
            self.event("host_failed", **detail)
            self.host_failed.add(h)
            return None

    def _chaos(self, now: float, end_ns: int) -> None:
        """``--chaos``: every chaos_s seconds of load kill a random agent host (Ray restarts it) or
        a random node's FUSE server (the driver remounts it), as ``run.chaos_target`` says."""
        import random

        import ray

        if not self.sc.chaos_s or now < self._chaos_next or now * 1e9 >= end_ns - 1e9:
            return
        self._chaos_next = now + self.sc.chaos_s
        rng = random.Random(f"raybench-chaos:{self.sc.seed}:{len(self.events)}")
        target = self.sc.chaos_target
        if target == "both":
            target = ("hosts", "fuse")[self._chaos_count % 2]
        self._chaos_count += 1
        mounted = [i for i, r in enumerate(self.fuse.get("nodes", [])) if "mountpoint" in r]
        if target == "fuse" and mounted:
            i = rng.choice(mounted)
            pid = ray.get(self.fuse_nodes[i].kill_server.remote(), timeout=10)
            self.event("chaos_kill", target="fuse", node_id=self.nodes[i]["node_id"], pid=pid)
            return
        h = rng.randrange(len(self.hosts))
        self.event("chaos_kill", target="host", host_id=h, node_id=self.host_plan[h][0])
        ray.kill(self.hosts[h], no_restart=False)

    def _heal_fuse(self, now: float) -> None:
        """Once a second: a node whose FUSE server died gets a fresh mount at the same place."""
        import ray

        if not self.fuse_nodes or now - self._fuse_checked < 1.0:
            return
        self._fuse_checked = now
        for node, actor in zip(self.nodes, self.fuse_nodes, strict=True):
            try:
                healed = ray.get(actor.heal.remote(), timeout=30)
            except Exception as exc:
                last = str(exc).strip().splitlines()[-1][:300]
                self.event("fuse_error", node_id=node["node_id"], error=f"remount failed: {last}")
                continue
            if healed:
                self.event("fuse_remounted", node_id=node["node_id"], **healed)
                self.progress(f"FUSE server on node {node['node_id'][:12]} died; remounted")

    def _check_nodes(self, now: float) -> None:
        """Record nodes that left the cluster since the start (the run goes on with the rest)."""
        if now - self._nodes_checked < 2.0 or len(self.nodes) < 2:
            return
        self._nodes_checked = now
        alive = {n["node_id"] for n in _nodes()}
        for n in self.nodes:
            if n["node_id"] not in alive and not n.get("lost"):
                n["lost"] = True
                self.event("node_lost", node_id=n["node_id"], address=n.get("address"))
                self.progress(f"node {n['node_id'][:12]} left the cluster; the run goes on without it")

    def account_lost(self) -> int:
        """Rows for requests that died with their host: replay the dead hosts' agents' schedules
        (deterministic, see workload.intended_schedule) and record every intended request without a
        row as an ``error`` row. Returns how many. Open loop only (a closed loop has no schedule)."""
        import ray

        from raybench.model.workload import Planner, intended_schedule
        from raybench.results import store
        from raybench.results.recording import RowBuffer

        if not self.host_deaths or not self.sc.arrivals.open_loop:
            return 0
        ray.get(self.aggregator.take_windows.remote(-1))  # every write before this call has landed
        recorded = store.read_table(self.run_dir, "requests", columns=["agent_id", "ts_intended_ns"])
        seen = set(zip(recorded.column("agent_id").to_pylist(), recorded.column("ts_intended_ns").to_pylist(),
                       strict=True))  # fmt: skip
        planner = Planner(self.sc)
        buf = RowBuffer("requests")
        warm_end = self.t0 + int(self.sc.warmup_s * 1e9)
        n = 0
        for h, deaths in self.host_deaths.items():
            node_id, agent_ids = self.host_plan[h]
            last_death = max(deaths)
            for a in agent_ids:
                region = self.sc.regions[planner.region_of(a, self.sc.agents)].name
                for t, plan in intended_schedule(self.sc, a, planner):
                    intended = self.t0 + int(t * 1e9)
                    if (a, intended) in seen:
                        continue
                    n += 1
                    if intended <= last_death:
                        why = (
                            f"lost: agent host {h} died before this request's row was flushed (in flight or "
                            "buffered); latency is up to the moment the death was noticed"
                        )
                    else:
                        why = f"not started: agent host {h} was restarting (or had failed for good)"
                    end = max(intended, last_death)
                    lat = (end - intended) / 1e6
                    buf.append(
                        (
                            self.run_id, (h << 40) | (0xFF << 32) | n, a, h, node_id, region,
                            self.sc.classes[plan.cls].name, intended < warm_end, intended, intended, end,
                            lat, lat, 0.0, "error", why, plan.escalate,
                            plan.cache_hit, None, None, None, None, None, None, None, None, None, None, None, None,
                            None, None, None, 0,
                        )
                    )  # fmt: skip
        batch = buf.take()
        if batch is not None:
            ray.get(self.aggregator.write.remote("requests", batch))
        self.event("lost_requests", count=n, hosts=sorted(self.host_deaths))
        return n

    def load_end_ns(self) -> int:
        """The end of the load: planned, or when it was stopped early."""
        planned = self.t0 + int(self.sc.duration_s * 1e9)
        return min(planned, self.load_stopped_ns) if self.load_stopped_ns is not None else planned

    def _deferred(self) -> contextlib.AbstractContextManager[None]:
        return self.interrupts.deferred() if self.interrupts is not None else contextlib.nullcontext()

    def take_windows(self, upto: int) -> None:
        """Judge every window up to ``upto`` not judged yet, each exactly once: a Ctrl-C or SIGTERM
        arriving meanwhile is raised after the last of them (:mod:`raybench.engine.interrupts`)."""
        import ray

        if upto <= self._handed:
            return
        with self._deferred():
            tables = ray.get(self.aggregator.take_windows.remote(upto))
            # Every window up to the load's end is judged, empty ones too (no completion in a window
            # is a measurement); after the load's end only windows that hold rows are shown.
            n_load = math.ceil(round((self.load_end_ns() - self.t0) / (self.sc.window_s * 1e9), 9))
            last = max([min(upto, n_load - 1), *tables])
            for k in range(self._handed + 1, last + 1):
                table = tables.get(k)
                if table is None:
                    if k >= n_load:
                        continue
                    table = self._empty_requests()
                self.on_window(k, table)
                self._handed = k
            self._handed = max(upto if upto < n_load else last, self._handed)

    def _empty_requests(self) -> Any:
        import pyarrow as pa

        from raybench.results.schema import schema

        return pa.Table.from_pylist([], schema=schema("requests", final=False))

    def apply_faults(self, now: float) -> None:
        import ray

        t = (now * 1e9 - self.t0) / 1e9
        for i, f in enumerate(self.sc.faults):
            if f.kind != "shrink_experts":
                continue
            state = self._fault_state.get(i)
            if state is None and f.active(t):
                previous = ray.get(self.experts.set_capacity.remote(f.pool), timeout=10)
                self._fault_state[i] = previous
                self.event("fault_start", fault=f.kind, pool=f.pool, previous=previous)
            elif state is not None and state >= 0 and t >= f.end_s:
                ray.get(self.experts.set_capacity.remote(state), timeout=10)
                self._fault_state[i] = -1
                self.event("fault_end", fault=f.kind, pool=state)

    def on_window(self, k: int, table: Any) -> None:
        import numpy as np

        from raybench.judge.stats import percentile

        w_ns = int(self.sc.window_s * 1e9)
        start, end = self.t0 + k * w_ns, self.t0 + (k + 1) * w_ns
        lat = np.array([])
        if table.num_rows:
            warm = table.column("warmup").to_numpy(zero_copy_only=False)
            lat = table.column("latency_ms").to_numpy()[~warm]
        stat: dict[str, Any] = {"window": k, "count": int(lat.size), "p99_ms": percentile(lat, 99.0)}
        load_end = self.load_end_ns()
        if self.monitor is not None and start < load_end:
            # Windows stop at the load's end, as in the offline evaluation (sla.split_windows):
            # the drain's completions after it belong to no window.
            if end > load_end:
                import pyarrow.compute as pc

                end = load_end
                table = table.filter(pc.less(table.column("ts_end_ns"), load_end)) if table.num_rows else table
            resources = self._resources_between(start, end)
            for v in self.monitor.observe_window(k, start, end, table, resources):
                self.on_violation(v)
            failing = [o.threshold_id for o in self.monitor.last_observations.values() if o.passed is False]
            stat["failing"] = failing
        self.window_stats.append(stat)

    def _resources_between(self, start: int, end: int) -> Any:
        import pyarrow as pa

        from raybench.results.recording import RowBuffer

        buf = RowBuffer("resources")
        buf.rows = [r for r in self.resource_rows if start <= r[1] < end]
        batch = buf.take()
        return pa.Table.from_batches([batch]) if batch is not None else None

    def on_violation(self, v: Any) -> None:
        from raybench.engine import alerts

        detail = v.to_detail()
        self.event("violation", ts_ns=v.ts_ns, **detail)
        self.progress(f"SLA violation: {v.summary()}")
        if self._side is None:
            self._side = ThreadPoolExecutor(max_workers=4, thread_name_prefix="raybench-actions")
        if "alert" in v.actions and self.sla is not None:
            for hook in self.sla.webhooks:
                self._side_jobs.append(self._side.submit(self._alert, alerts.send_alert, hook, detail, v.summary()))
        if "rollback" in v.actions and self.sla is not None and self.sla.rollback is not None:
            self._side_jobs.append(self._side.submit(self._rollback, alerts.run_rollback, self.sla.rollback, detail))
        if "abort" in v.actions and self.abort_reason is None:
            self.abort_reason = v.summary()

    def _alert(self, send: Any, hook: Any, detail: dict[str, Any], summary: str) -> None:
        result = send(hook, detail, summary)
        self.event("alert", **result.to_detail())

    def _rollback(self, run: Any, cfg: Any, detail: dict[str, Any]) -> None:
        result = run(cfg, detail)
        self.event("rollback", **result.to_detail())

    def wait_actions(self, timeout: float = 60.0) -> None:
        """Let alert deliveries and rollbacks in progress finish (each has its own timeout)."""
        for job in self._side_jobs:
            try:
                job.result(timeout=timeout)
            except Exception as exc:  # an action never fails the run
                self.event("action_failed", error=str(exc)[:300])
        if self._side is not None:
            self._side.shutdown(wait=False)

    def progress_line(self, now: float, end_ns: int) -> None:
        elapsed = now - self.t0 / 1e9
        remaining = max(0.0, end_ns / 1e9 - now)
        last = self.window_stats[-1] if self.window_stats else None
        if last and last["count"]:
            tail = f"window {last['window']}: {last['count'] / self.sc.window_s:,.0f} req/s, p99 {last['p99_ms']:.1f}ms"
            if last.get("failing"):
                tail += f", failing: {', '.join(last['failing'])}"
        else:
            tail = "first window not complete yet"
        phase = "warm-up" if elapsed < self.sc.warmup_s else ("load" if remaining > 0 else "draining")
        status = getattr(self.progress, "status", self.progress)
        status(f"[{max(0.0, elapsed):6.1f}s {phase:>8}] {self.sc.agents:,} agents, {remaining:5.1f}s left, {tail}")

    # -- the end -------------------------------------------------------------------------------

    def stop_hosts(self, reason: str) -> None:
        """Stop the load now (Ctrl-C, SIGTERM, an SLA abort): the hosts drain what is in flight."""
        now = time.time_ns()
        if self.t0 and now < self.t0 + int(self.sc.duration_s * 1e9) and self.load_stopped_ns is None:
            self.load_stopped_ns = max(now, self.t0)
        self.event(reason, reason=self.abort_reason or reason)
        for h in self.hosts:
            h.stop.remote()

    def collect_stats(self) -> dict[str, Any]:
        import ray

        def get(refs: list[Any]) -> list[Any]:
            try:
                return list(ray.get(refs, timeout=10))
            except Exception:
                return []

        experts = get([self.experts.stats.remote()]) if hasattr(self, "experts") else []
        return {
            "shards": get([s.stats.remote() for s in getattr(self, "shards", [])]),
            "experts": experts[0] if experts else {},
        }

    def teardown(self) -> None:
        import contextlib

        import ray

        for f in self.fuse_nodes:
            with contextlib.suppress(Exception):
                ray.get(f.stop.remote(), timeout=15)
        for group in self.actors.values():
            for a in group:
                with contextlib.suppress(Exception):
                    ray.kill(a)
