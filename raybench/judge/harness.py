"""Every run judges its own harness: did raybench itself saturate while it measured?

A benchmark must tell "the system under test saturated" from "the harness saturated" (Locust and
k6 warn when the load generator's CPU is the limit). The system's side is
:mod:`raybench.judge.capacity` (resources the scenario bounds) and the system's own processes; this module
is the harness's side. Pure: Arrow tables and a few counters in, a :class:`HarnessVerdict` out; no
Ray, no sockets. :func:`judge` is called once per run folder, by ``finalize_folder`` (so ``raybench
recover`` folders get it too), and the result is ``manifest.json`` → ``harness``.

Bounds (module constants; ``docs/performance.md`` → "Harness limits and scenario limits"):

* ``timing_error_p99_ms`` — measured − modelled time of every policy, LLM and expert stage that ran
  (non-warm-up rows), p99 above :data:`TIMING_ERROR_P99_MAX_MS`.
* ``lag_p99_ms`` — dispatch lag (start − intended), p99 above :data:`LAG_P99_MAX_MS`.
  Both bounds sit above what runs that held every request threshold reach and below what a harness
  known to be behind shows (the measurements behind them: ``docs/performance.md``).
* ``process_cpu`` — a harness process (agent host, aggregator, driver, expert pool, FUSE node
  actor) whose CPU samples (one a second, 100% = one core) have a median above
  :data:`CPU_MAX_PERCENT` in a :data:`CPU_WINDOW_S` window: most samples of the window above the
  bound, so a single sample's spike never counts. The same test on the system's own processes
  (state shards, the FUSE server) goes to ``system``, not to the verdict: a shard or FUSE server
  out of CPU is the system's limit, the scenario's coordination layer.
* ``flush_age_p99_ms`` — the age of each host flush's oldest row when the aggregator wrote it
  (its arrival time − its ``ts_end``), p99 over the run's flushes, above the flush interval +
  :data:`FLUSH_BACKLOG_MAX_S`: rows queue in the hosts or in front of the aggregator.
* ``late_rows`` — rows that reached the aggregator after the live monitor had judged their window
  (more than ``WINDOW_SETTLE_S`` after it ended), the driver's rows for requests lost with a dead
  host left out.

A bound that cannot be checked (too few rows or samples; a recovered run has no flush figures) is
listed in ``unchecked``. A saturated harness does not change the SLA verdict or exit code; it says
that the figures include the harness's own delay.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from raybench.judge.stats import percentile

if TYPE_CHECKING:
    import pyarrow as pa

#: Timing error p99 above this (ms) means the harness's own delay shows in the stage times.
TIMING_ERROR_P99_MAX_MS = 10.0
#: Dispatch lag p99 above this (ms) means requests start late because the hosts are behind.
LAG_P99_MAX_MS = 10.0
#: A process whose windowed median CPU is above this (% of one core) is out of CPU.
CPU_MAX_PERCENT = 90.0
#: Length of the CPU windows (s): five of the driver's one-a-second samples.
CPU_WINDOW_S = 5.0
#: Fewest samples in a window for it to be judged (a median of one or two is a spike).
CPU_MIN_SAMPLES = 3
#: A flush's oldest row may reach the aggregator this long (s) after the flush interval.
FLUSH_BACKLOG_MAX_S = 1.0
#: Fewest non-warm-up rows for a p99 to be judged.
MIN_ROWS = 100
#: Roles whose processes are the simulated system's (their CPU is the system's limit, not the harness's).
SYSTEM_ROLES = {"shard": "state shard", "fuse-server": "FUSE server"}

_STAGES = (("policy_ms", "policy_model_ms"), ("llm_ms", "llm_model_ms"), ("expert_ms", "expert_model_ms"))


def bounds_in_force(flush_interval_s: float | None = None) -> dict[str, float]:
    """The bounds in force (the flush-age one with the scenario's flush interval, when given)."""
    out = {
        "timing_error_p99_ms": TIMING_ERROR_P99_MAX_MS,
        "lag_p99_ms": LAG_P99_MAX_MS,
        "process_cpu_percent": CPU_MAX_PERCENT,
        "cpu_window_s": CPU_WINDOW_S,
        "flush_backlog_s": FLUSH_BACKLOG_MAX_S,
    }
    if flush_interval_s is not None:
        out["flush_age_p99_ms"] = (flush_interval_s + FLUSH_BACKLOG_MAX_S) * 1000.0
    return out


@dataclass(frozen=True)
class Reason:
    """A bound that was crossed: what, how far (``observed`` against ``limit``), and where."""

    bound: str
    observed: float
    limit: float
    detail: str
    role: str = ""  # process_cpu: the process's role (resources.arrow)

    def to_dict(self) -> dict[str, Any]:
        out = {"bound": self.bound, "observed": round(self.observed, 3), "limit": self.limit, "detail": self.detail}
        return out | ({"role": self.role} if self.role else {})


@dataclass(frozen=True)
class HarnessVerdict:
    """``status`` is ``ok`` or ``saturated`` (some ``reasons``); ``system`` lists the system's
    processes out of CPU (no effect on ``status``); ``observed`` holds every figure judged."""

    status: str
    reasons: tuple[Reason, ...] = ()
    system: tuple[Reason, ...] = ()
    observed: dict[str, float] = field(default_factory=dict)
    unchecked: tuple[str, ...] = ()
    limits: dict[str, float] = field(default_factory=bounds_in_force)

    def to_manifest(self) -> dict[str, Any]:
        """The manifest's ``harness`` section (JSON: NaN becomes null)."""
        return {
            "status": self.status,
            "reasons": [r.to_dict() for r in self.reasons],
            "system": [r.to_dict() for r in self.system],
            "observed": {k: (None if math.isnan(v) else round(v, 3)) for k, v in self.observed.items()},
            "unchecked": list(self.unchecked),
            "bounds": dict(self.limits),
        }


def _floats(t: pa.Table, col: str) -> np.ndarray:
    return np.asarray(t.column(col).to_numpy(zero_copy_only=False), dtype=np.float64)


def _strings(t: pa.Table, col: str) -> np.ndarray:
    return np.asarray(t.column(col).cast("string").to_pylist(), dtype=object)


def timing_error(requests: pa.Table) -> np.ndarray:
    """Measured − modelled ms of every modelled stage that ran (as the summary's ``terr``)."""
    parts = [_floats(requests, m) - _floats(requests, d) for m, d in _STAGES]
    out = np.concatenate(parts) if parts else np.array([])
    return out[~np.isnan(out)]


def cpu_windows(resources: pa.Table) -> list[tuple[str, str, int, float, int, int]]:
    """Per process: ``(role, node_id, pid, worst window median %, windows over the bound, windows
    judged)``. Windows are :data:`CPU_WINDOW_S` long from the process's first sample; a window with
    fewer than :data:`CPU_MIN_SAMPLES` samples is not judged."""
    if resources.num_rows == 0:
        return []
    roles, nodes = _strings(resources, "role"), _strings(resources, "node_id")
    pids = np.asarray(resources.column("pid").to_numpy(), dtype=np.int64)
    ts = np.asarray(resources.column("ts_ns").to_numpy(), dtype=np.int64)
    cpu = _floats(resources, "cpu_percent")
    out = []
    for role, node, pid in sorted(set(zip(roles.tolist(), nodes.tolist(), pids.tolist(), strict=True))):
        m = (roles == role) & (nodes == node) & (pids == pid)
        t, c = ts[m], cpu[m]
        bucket = (t - t.min()) // int(CPU_WINDOW_S * 1e9)
        windows = [c[bucket == b] for b in np.unique(bucket)]
        medians = [float(np.median(w)) for w in windows if w.size >= CPU_MIN_SAMPLES]
        if medians:
            over = sum(v > CPU_MAX_PERCENT for v in medians)
            out.append((role, node, pid, max(medians), over, len(medians)))
    return out


def judge(
    requests: pa.Table,
    resources: pa.Table,
    *,
    flush_interval_s: float,
    flush_age_p99_ms: float | None = None,
    late_rows: int | None = None,
    lost_requests: int = 0,
) -> HarnessVerdict:
    """Judge a run's harness from its rows.

    Args:
        requests: the requests table (stream or file form); warm-up rows are left out.
        resources: the resources table (one row per process per sample).
        flush_interval_s: the scenario's ``run.flush_interval``.
        flush_age_p99_ms: p99 age of the hosts' flushes at the aggregator (None: not known).
        late_rows: the manifest's ``late_rows`` (None: not known).
        lost_requests: rows the driver wrote for requests lost with their host (counted late too).
    """
    import pyarrow.compute as pc

    reasons: list[Reason] = []
    system: list[Reason] = []
    observed: dict[str, float] = {}
    unchecked: list[str] = []
    measured = requests.filter(pc.invert(requests.column("warmup"))) if requests.num_rows else requests
    if measured.num_rows >= MIN_ROWS:
        terr = timing_error(measured)
        observed["timing_error_p99_ms"] = percentile(terr, 99.0)
        observed["lag_p99_ms"] = percentile(_floats(measured, "lag_ms"), 99.0)
        for bound, limit, what in (
            ("timing_error_p99_ms", TIMING_ERROR_P99_MAX_MS, f"measured − modelled time of {terr.size:,} stages"),
            ("lag_p99_ms", LAG_P99_MAX_MS, f"start − intended time of {measured.num_rows:,} requests"),
        ):
            if observed[bound] > limit:
                reasons.append(Reason(bound, observed[bound], limit, f"p99 {observed[bound]:.1f} ms of {what}"))
    else:
        unchecked += ["timing_error_p99_ms", "lag_p99_ms"]
    procs = cpu_windows(resources)
    if procs:
        observed["process_cpu_percent"] = max(p[3] for p in procs)
    else:
        unchecked.append("process_cpu")
    for role, node, pid, worst, over, judged in procs:
        if over:
            name = SYSTEM_ROLES.get(role, role)
            detail = (
                f"{name} pid {pid} on node {node[:12]}: median {worst:.0f}% of a core in {over} of its "
                f"{judged} windows of {CPU_WINDOW_S:g} s"
            )
            found = Reason("process_cpu", worst, CPU_MAX_PERCENT, detail, role)
            (system if role in SYSTEM_ROLES else reasons).append(found)
    if flush_age_p99_ms is not None and not math.isnan(flush_age_p99_ms):
        observed["flush_age_p99_ms"] = flush_age_p99_ms
        limit = (flush_interval_s + FLUSH_BACKLOG_MAX_S) * 1000.0
        if flush_age_p99_ms > limit:
            detail = f"a flush's oldest row reached the aggregator {flush_age_p99_ms / 1000:.2f} s after it ended (p99)"
            reasons.append(Reason("flush_age_p99_ms", flush_age_p99_ms, limit, detail))
    else:
        unchecked.append("flush_age_p99_ms")
    if late_rows is not None:
        late = max(0, int(late_rows) - int(lost_requests))
        observed["late_rows"] = float(late)
        if late > 0:
            detail = f"{late:,} rows reached the aggregator after the live monitor judged their window"
            reasons.append(Reason("late_rows", float(late), 0.0, detail))
    else:
        unchecked.append("late_rows")
    status = "saturated" if reasons else "ok"
    limits = bounds_in_force(flush_interval_s)
    return HarnessVerdict(status, tuple(reasons), tuple(system), observed, tuple(unchecked), limits)


def reason_text(r: Mapping[str, Any]) -> str:
    """One reason of a ``harness`` section (its manifest dict) in words."""
    bound, obs, lim = r.get("bound"), r.get("observed"), r.get("limit")
    if bound == "process_cpu":
        return str(r.get("detail"))
    if bound == "late_rows":
        return f"{obs:,.0f} late rows"
    unit = "ms"
    return f"{str(bound).removesuffix('_ms').replace('_', ' ')} {obs:,.1f} {unit} > {lim:,.0f} {unit}"


def format_harness(section: HarnessVerdict | Mapping[str, Any] | None) -> str:
    """One line: ``harness: ok (...)`` or ``harness: SATURATED: <reasons>; ...``."""
    if section is None:
        return "harness: not judged (a run folder from before harness checks)"
    if isinstance(section, HarnessVerdict):
        section = section.to_manifest()
    obs = section.get("observed") or {}
    system = section.get("system") or []
    tail = f"; system out of CPU: {'; '.join(str(s.get('detail')) for s in system)}" if system else ""
    if section.get("status") == "saturated":
        reasons = "; ".join(reason_text(r) for r in section.get("reasons") or [])
        return f"harness: SATURATED: {reasons}: the figures include raybench's own delay{tail}"
    parts = []
    for key, label in (("timing_error_p99_ms", "timing err p99"), ("lag_p99_ms", "lag p99")):
        if obs.get(key) is not None:
            parts.append(f"{label} {obs[key]:.1f} ms")
    if obs.get("process_cpu_percent") is not None:
        parts.append(f"busiest process {obs['process_cpu_percent']:.0f}% of a core")
    if obs.get("flush_age_p99_ms") is not None:
        parts.append(f"flush age p99 {obs['flush_age_p99_ms'] / 1000:.2f} s")
    unchecked = section.get("unchecked") or []
    if unchecked:
        parts.append(f"not checked: {', '.join(unchecked)}")
    return f"harness: ok ({', '.join(parts)}){tail}" if parts else f"harness: ok{tail}"


def verdict_note(section: Mapping[str, Any] | None) -> str:
    """What the SLA verdict line adds for a saturated harness (empty otherwise): the verdict and the
    exit code stand, but the figures behind them include the harness's own delay."""
    if section is not None and section.get("status") == "saturated":
        return " (harness saturated: figures include harness delay)"
    return ""
