"""Judging the load window by window while it runs: the SLA monitor, violations, their actions.

A window is complete :data:`WINDOW_SETTLE_S` after it ends (the hosts' late flushes arrive
meanwhile); :meth:`Judge.tick` then takes its rows from the aggregator and judges it, each window
exactly once. A Ctrl-C or SIGTERM arriving meanwhile is raised after the last of them
(:mod:`raybench.engine.interrupts`), so no window is half judged or judged twice. A violation is
recorded as an event and printed; its actions run on side threads (webhook alerts, the rollback
command: :mod:`raybench.engine.alerts`) or stop the run (``abort``: :attr:`Judge.abort_reason`).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from raybench.config.scenario import Scenario
from raybench.config.sla import SlaConfig
from raybench.engine.cluster import Actor, Cluster
from raybench.engine.events import EventLog
from raybench.engine.hosts import Load
from raybench.engine.interrupts import Interrupts

#: A window is judged this long after it ends (late flushes of the hosts arrive meanwhile).
WINDOW_SETTLE_S = 1.5

#: The driver's resource rows between two times (ns) as a table, or None: the SLA's resource metrics.
Resources = Callable[[int, int], Any]


class Judge:
    """Judges the windows of one load (see the module docstring).

    Args:
        sc: the scenario (``run.window``).
        sla: the resolved ``[sla]`` settings, or None (windows are still summarized for the
            live view's "SLA passing (window k)").
        cluster, aggregator: where the windows' rows are (``Aggregator.take_windows``).
        load: the load's timeline (windows stop at its end, early or planned).
        events: the run's event log.
        progress: receives the violation lines.
        interrupts: the run's signal handling (None: nothing deferred).
        resources: the resource rows of a window (:meth:`raybench.engine.watch.ResourceSampler.between`).
    """

    def __init__(
        self,
        sc: Scenario,
        sla: SlaConfig | None,
        cluster: Cluster,
        aggregator: Actor,
        load: Load,
        events: EventLog,
        *,
        progress: Callable[[str], None] = lambda line: None,
        interrupts: Interrupts | None = None,
        resources: Resources = lambda start, end: None,
    ) -> None:
        self.sc = sc
        self.sla = sla
        self.cluster = cluster
        self.aggregator = aggregator
        self.load = load
        self.events = events
        self.progress = progress
        self.interrupts = interrupts
        self.resources = resources
        self.monitor = (
            sla.monitor(t0_ns=load.t0_ns, run_id=events.run_id, stages_off=sc.stages_off(), warmup_s=sc.run.warmup)
            if sla is not None
            else None
        )
        self.window_stats: list[dict[str, Any]] = []  # per judged window: count, p99, failing thresholds
        self.abort_reason: str | None = None  # the violation that asked to abort the run
        self._handed = -1  # windows up to this one are judged
        self._side: ThreadPoolExecutor | None = None
        self._side_jobs: list[Future[Any]] = []

    def tick(self, now: float) -> None:
        """Judge the windows that ended more than :data:`WINDOW_SETTLE_S` before ``now`` (s)."""
        t0 = self.load.t0_ns
        self.take_windows(int((now * 1e9 - t0 - WINDOW_SETTLE_S * 1e9) // int(self.sc.run.window * 1e9)) - 1)

    def _deferred(self) -> contextlib.AbstractContextManager[None]:
        return self.interrupts.deferred() if self.interrupts is not None else contextlib.nullcontext()

    def take_windows(self, upto: int) -> None:
        """Judge every window up to ``upto`` not judged yet, each exactly once: a Ctrl-C or SIGTERM
        arriving meanwhile is raised after the last of them (:mod:`raybench.engine.interrupts`)."""
        if upto <= self._handed:
            return
        with self._deferred():
            tables = self.cluster.get(self.cluster.call(self.aggregator, "take_windows", upto))
            # Every window up to the load's end is judged, empty ones too (no completion in a window
            # is a measurement); after the load's end only windows that hold rows are shown.
            t0 = self.load.t0_ns
            n_load = math.ceil(round((self.load.end_ns() - t0) / (self.sc.run.window * 1e9), 9))
            last = max([min(upto, n_load - 1), *tables])
            for k in range(self._handed + 1, last + 1):
                table = tables.get(k)
                if table is None:
                    if k >= n_load:
                        continue
                    table = _empty_requests()
                self.on_window(k, table)
                self._handed = k
            self._handed = max(upto if upto < n_load else last, self._handed)

    def on_window(self, k: int, table: Any) -> None:
        import numpy as np

        from raybench.judge.stats import percentile

        w_ns = int(self.sc.run.window * 1e9)
        start, end = self.load.t0_ns + k * w_ns, self.load.t0_ns + (k + 1) * w_ns
        lat = np.array([])
        if table.num_rows:
            warm = table.column("warmup").to_numpy(zero_copy_only=False)
            lat = table.column("latency_ms").to_numpy()[~warm]
        stat: dict[str, Any] = {"window": k, "count": int(lat.size), "p99_ms": percentile(lat, 99.0)}
        load_end = self.load.end_ns()
        if self.monitor is not None and start < load_end:
            # Windows stop at the load's end, as in the offline evaluation (sla.split_windows):
            # the drain's completions after it belong to no window.
            if end > load_end:
                import pyarrow.compute as pc

                end = load_end
                table = table.filter(pc.less(table.column("ts_end_ns"), load_end)) if table.num_rows else table
            for v in self.monitor.observe_window(k, start, end, table, self.resources(start, end)):
                self.on_violation(v)
            failing = [o.threshold_id for o in self.monitor.last_observations.values() if o.passed is False]
            stat["failing"] = failing
        self.window_stats.append(stat)

    def on_violation(self, v: Any) -> None:
        """Record a violation, print it, start its actions."""
        from raybench.engine import alerts

        detail = v.to_detail()
        self.events.record("violation", ts_ns=v.ts_ns, **detail)
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
        self.events.record("alert", **result.to_detail())

    def _rollback(self, run: Any, cfg: Any, detail: dict[str, Any]) -> None:
        result = run(cfg, detail)
        self.events.record("rollback", **result.to_detail())

    def wait_actions(self, timeout: float = 60.0) -> None:
        """Let alert deliveries and rollbacks in progress finish (each has its own timeout); each
        job's failure is recorded once (``action_failed``)."""
        jobs, self._side_jobs = self._side_jobs, []
        for job in jobs:
            try:
                job.result(timeout=timeout)
            except Exception as exc:  # an action never fails the run
                self.events.record("action_failed", error=str(exc)[:300])
        if self._side is not None:
            self._side.shutdown(wait=False)
            self._side = None  # a late violation's actions get a fresh pool

    def finalize(self, requests: Any, resources: Any) -> tuple[list[dict[str, Any]], bool | None]:
        """The whole run's SLA rows and verdict from its final tables (none without thresholds);
        the violations declared only now are acted on too."""
        from raybench.judge.sla import judged_verdict

        if self.monitor is None:
            return [], None
        sla_rows = self.monitor.finalize(requests, resources)
        for v in self.monitor.late_violations:
            self.on_violation(v)
        self.wait_actions()
        return sla_rows, judged_verdict(sla_rows)


def _empty_requests() -> Any:
    import pyarrow as pa

    from raybench.results.schema import schema

    return pa.Table.from_pylist([], schema=schema("requests", final=False))
