"""Live Prometheus metrics of a run, through ``ray.util.metrics`` (opt-in: ``run.metrics = true``
or ``raybench run --metrics``).

The aggregator feeds them from every ``requests`` record batch it appends (``Aggregator.write``),
so Prometheus counts exactly the rows of ``requests.arrow`` (warm-up rows and the ``error`` rows of
lost requests included), when they are recorded; nothing is observed on the agents' request path.
They are a live view for Ray's dashboards and Grafana: the Arrow files remain the record (exact
percentiles, every column). Ray exports application metrics through the metrics agent of the node
the process runs on (``ray[default]``); the aggregator lives on the head node, so that is the node
to scrape. Ray prefixes every name with ``ray_`` and adds ``_total`` to counters:

====================================  =========  ===================================  =======
as scraped                            type       tags                                 unit
====================================  =========  ===================================  =======
``ray_raybench_requests_total``       counter    run_id, cls, outcome                 requests
``ray_raybench_escalations_total``    counter    run_id, cls                          requests
``ray_raybench_request_latency_ms``   histogram  run_id, cls, outcome, escalated      ms
``ray_raybench_dispatch_lag_ms``      gauge      run_id                               ms
====================================  =========  ===================================  =======

Throughput is ``rate(ray_raybench_requests_total[1m])``; latency quantiles come from
``histogram_quantile`` over the buckets (bounds: :data:`LATENCY_BOUNDS_MS`), so they are bucket
estimates, not the exact percentiles of the files. Ray 2.4x's OpenTelemetry path rebuilds a
histogram's ``_sum`` from bucket midpoints, so ``_sum`` is approximate; ``_count`` and the buckets
are exact. The lag gauge is the largest ``lag_ms`` (the harness's own scheduling delay) among the
rows recorded in the last second; it disappears a few seconds after the run. Ray adds its own tags
(``SessionName``, ``NodeAddress``, ``WorkerId``...). raybench adds no agent, host or request ids.

Cost of :meth:`LiveMetrics.observe`: one ``Histogram.observe`` per row (``ray.util.metrics`` has
no batch call), the counters and the gauge one call per tag set per batch; all of it in the
aggregator, off the agents' request path (measured in docs/performance.md, "Live metrics").

Ray's worker exports every ``metrics_report_interval_ms`` (10 s by default; raybench sets 1 s when
it starts a local Ray); the aggregator waits that long at the end of a run so the last rows reach
the metrics agent before it is stopped.
"""

from __future__ import annotations

import time
import urllib.request
from typing import Any

#: Histogram bucket upper bounds of the request latency, ms (policy and LLM tens of ms, experts
#: 0.5-1.2 s, request timeout 30 s).
LATENCY_BOUNDS_MS = (1, 2.5, 5, 10, 25, 50, 75, 100, 150, 250, 500, 750, 1000, 1500, 2500, 5000, 10_000, 30_000)
#: How often a local Ray started by raybench exports metrics (Ray's default, 10 s, is long for a 20 s run).
LOCAL_REPORT_INTERVAL_MS = 1000
#: Seconds the aggregator tries to reach its node's metrics agent before giving up.
PROBE_TIMEOUT_S = 15.0


def ray_init_options(port: int | None) -> dict[str, Any]:
    """Extra ``ray.init`` arguments for a local Ray that exports metrics (``port``: None or 0 lets
    Ray choose). Only for a Ray that raybench starts: a cluster keeps its own settings."""
    return {
        "_metrics_export_port": port or None,
        "_system_config": {"metrics_report_interval_ms": LOCAL_REPORT_INTERVAL_MS},
    }


def check_port(port: int) -> None:
    """Raise UsageError when ``port`` cannot be bound on 127.0.0.1 (checked before Ray starts)."""
    import socket

    from raybench.errors import UsageError

    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            raise UsageError(f"--metrics-port {port}: cannot listen there ({exc.strerror}); choose another") from None


def agent_status(host: str | None = None, timeout_s: float = PROBE_TIMEOUT_S) -> dict[str, Any]:
    """Whether the metrics agent of the node this process runs on exports metrics, and where
    (``host``: the address to reach it at, e.g. 127.0.0.1 for a local Ray; default: the node's).

    Returns ``{"enabled": True, "url": ...}`` or ``{"enabled": False, "url": ..., "reason": ...}``
    with the precise reason (``ray`` without the ``default`` extra has no metrics agent).
    """
    import ray

    try:
        import ray.dashboard.optional_deps  # what Ray checks before it starts its metrics agent
    except ImportError as exc:
        reason = f"Ray's metrics agent is not installed on this node (pip install 'raybench[metrics]'): {exc}"
        return {"enabled": False, "url": None, "reason": reason}
    node_id = ray.get_runtime_context().get_node_id()
    node: dict[str, Any] = next((n for n in ray.nodes() if n.get("NodeID") == node_id), {})
    port = node.get("MetricsExportPort") or 0
    if port <= 0:
        return {"enabled": False, "url": None, "reason": f"Ray's metrics export is off on this node (port {port})"}
    url = f"http://{host or node.get('NodeManagerAddress', '127.0.0.1')}:{port}/metrics"
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                resp.read(1)
            return {"enabled": True, "url": url}
        except OSError as exc:
            if time.monotonic() >= deadline:
                return {"enabled": False, "url": url, "reason": f"no metrics agent answers at {url}: {exc}"}
            time.sleep(0.5)


def report_interval_s() -> float:
    """Seconds between two exports of this process's metrics (Ray floors the setting at 1 s)."""
    import ray

    try:
        return max(ray._config.metrics_report_interval_ms(), 1000) / 1000
    except Exception:  # a Ray without this config accessor: assume its default
        return 10.0


class LiveMetrics:
    """The metrics of one run, recorded in the process that calls :meth:`observe` (the aggregator)."""

    def __init__(self, run_id: str) -> None:
        from ray.util.metrics import Counter, Gauge, Histogram

        self.run_id = run_id
        self.requests = Counter(
            "raybench_requests", "Requests recorded (rows of requests.arrow)", tag_keys=("run_id", "cls", "outcome")
        )
        self.escalations = Counter(
            "raybench_escalations", "Recorded requests escalated to the expert pool", tag_keys=("run_id", "cls")
        )
        self.latency = Histogram(
            "raybench_request_latency_ms",
            "Request latency from its intended start, ms (latency_ms of requests.arrow)",
            boundaries=list(LATENCY_BOUNDS_MS),
            tag_keys=("run_id", "cls", "outcome", "escalated"),
        )
        self.lag = Gauge(
            "raybench_dispatch_lag_ms", "Largest lag_ms (start - intended) of the rows of the last second, ms",
            tag_keys=("run_id",),
        )  # fmt: skip
        self.rows = 0
        self.last_observed = 0.0  # time.monotonic() of the last observation (0: none yet)
        self._lag_max: float | None = None
        self._lag_since = time.monotonic()

    def observe(self, batch: Any) -> None:
        """Count one ``requests`` record batch (a pyarrow RecordBatch or Table)."""
        import pyarrow.compute as pc

        n = batch.num_rows
        if not n:
            return
        groups: dict[tuple[str, str, bool], int] = {}
        tags: dict[tuple[str, str, bool], dict[str, str]] = {}
        columns = (batch.column(c).to_pylist() for c in ("cls", "outcome", "escalated", "latency_ms"))
        for cls, outcome, escalated, latency in zip(*columns, strict=True):
            key = (cls, outcome, escalated)
            t = tags.get(key)
            if t is None:
                t = tags[key] = {"run_id": self.run_id, "cls": cls, "outcome": outcome,
                                 "escalated": "true" if escalated else "false"}  # fmt: skip
                groups[key] = 0
            self.latency.observe(latency, t)  # one call per row: ray.util.metrics has no batch call
            groups[key] += 1
        requests: dict[tuple[str, str], int] = {}
        escalations: dict[str, int] = {}
        for (cls, outcome, escalated), count in groups.items():
            requests[cls, outcome] = requests.get((cls, outcome), 0) + count
            if escalated:
                escalations[cls] = escalations.get(cls, 0) + count
        for (cls, outcome), count in requests.items():
            self.requests.inc(count, {"run_id": self.run_id, "cls": cls, "outcome": outcome})
        for cls, count in escalations.items():
            self.escalations.inc(count, {"run_id": self.run_id, "cls": cls})
        lag = pc.max(batch.column("lag_ms")).as_py()
        self._lag_max = lag if self._lag_max is None else max(self._lag_max, lag)
        now = time.monotonic()
        if now - self._lag_since >= 1.0:
            self._set_lag(now)
        self.rows += n
        self.last_observed = now

    def _set_lag(self, now: float) -> None:
        if self._lag_max is not None:
            self.lag.set(self._lag_max, {"run_id": self.run_id})
        self._lag_max, self._lag_since = None, now

    def settle(self) -> float:
        """Wait until Ray has exported everything observed so far; returns the seconds waited."""
        if not self.last_observed:
            return 0.0
        now = time.monotonic()
        self._set_lag(now)
        wait = max(0.0, self.last_observed + report_interval_s() + 0.5 - now)
        time.sleep(wait)
        return wait
