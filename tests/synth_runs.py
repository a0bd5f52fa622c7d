"""Synthetic run folders drawn from known distributions, for testing the comparison statistics only.

A run has ``windows`` windows of ``window_s`` seconds after a warm-up window (the load starts at
``T0_NS - window_s``; requests intended before ``T0_NS`` are flagged warm-up). Arrivals are Poisson
(``rate_rps`` per second); latencies are lognormal around ``median_ms`` per class, multiplied by a
per-window level that follows an AR(1) process in log space (so rows within a run are autocorrelated,
as in a real run where GC pauses or a busy node slow down a stretch of requests). Each knob that a
test plants a change in is a parameter: ``latency_scale`` multiplies every latency, ``rate_rps`` sets
throughput, ``error_rate`` the share of error/timeout outcomes.

:data:`SMOKE` makes a run look like ``raybench run --preset smoke``: 200 requests/s, 3 s of warm-up
then 17 s of measured load, a latency level that drifts second by second, about 16 % of requests
escalated to an expert that adds 500-1,200 ms.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from raybench import schema as sch
from raybench.store import create_run_dir, write_json_atomic, write_table

T0_NS = 1_767_225_600 * 10**9  # 2026-01-01T00:00:00Z
CLASSES = ("safe", "risky", "complex")
CLASS_WEIGHTS = (0.6, 0.3, 0.1)
CLASS_FACTOR = {"safe": 1.0, "risky": 1.6, "complex": 3.0}
ESCALATION_P = {"safe": 0.0, "risky": 0.15, "complex": 0.6}
#: Keyword arguments of :func:`make_run` for a smoke-like run (see the module docstring).
SMOKE: dict[str, Any] = {
    "rate_rps": 200.0,
    "duration_s": 17.0,
    "warmup_s": 3.0,
    "level_s": 1.0,
    "escalation_rate": 0.16,
    "expert_ms": (500.0, 1200.0),
}


def write_run(root: Path, run_id: str, **kwargs: Any) -> Path:
    """Write ``root/run_id`` with ``manifest.json`` and ``requests.arrow``; return the folder.

    Keyword arguments are those of :func:`make_run`.
    """
    table, manifest = make_run(run_id, **kwargs)
    run_dir = create_run_dir(Path(root), run_id)
    write_table(run_dir, "requests", table)
    write_json_atomic(run_dir / "manifest.json", manifest)
    return run_dir


def make_run(
    run_id: str,
    *,
    seed: int,
    windows: int = 12,
    window_s: float = 5.0,
    rate_rps: float = 20.0,
    median_ms: float = 40.0,
    sigma: float = 0.5,
    latency_scale: float = 1.0,
    level_sd: float = 0.04,
    level_ar: float = 0.6,
    error_rate: float = 0.01,
    conflicts_mean: float = 0.3,
    agents: int = 100,
    scenario: dict[str, Any] | None = None,
    duration_s: float | None = None,
    warmup_s: float | None = None,
    level_s: float | None = None,
    escalation_rate: float | None = None,
    expert_ms: tuple[float, float] | None = None,
) -> tuple[pa.Table, dict[str, Any]]:
    """The ``requests`` table (stream schema) and manifest of a synthetic run, in memory.

    Args:
        run_id: the run's id.
        seed: seeds every draw.
        windows: windows of load after the warm-up window.
        window_s: window length.
        rate_rps: mean arrival rate (Poisson).
        median_ms: median latency of class ``safe`` before the window level and scale.
        sigma: lognormal sigma of latencies.
        latency_scale: multiplies every latency (1.15 plants +15 % on every percentile).
        level_sd: innovation sd of the per-window AR(1) log level.
        level_ar: AR(1) coefficient of the per-window log level.
        error_rate: probability that a request ends in error or timeout.
        conflicts_mean: mean of the Poisson number of refused lease attempts.
        agents: the scenario's ``run.agents`` (only recorded in the manifest).
        scenario: top-level keys added to the manifest's ``scenario`` dict, which holds ``name`` and
            ``run`` (agents, duration, warm-up before ``T0_NS``, seed).
        duration_s: measured load after the warm-up (default ``windows * window_s``).
        warmup_s: warm-up before ``T0_NS`` (default ``window_s``).
        level_s: period of the AR(1) latency level (default ``window_s``).
        escalation_rate: overall share of escalated requests (scales the per-class probabilities;
            default about 10 %).
        expert_ms: uniform range of expert time added to escalated requests' latency (before
            ``latency_scale``); default none.
    """
    rng = np.random.default_rng(seed)
    load_ns = int((windows * window_s if duration_s is None else duration_s) * 1e9)
    warm_ns = int((window_s if warmup_s is None else warmup_s) * 1e9)
    level_ns = int((window_s if level_s is None else level_s) * 1e9)
    warm_start = T0_NS - warm_ns
    n = int(rng.poisson(rate_rps * (warm_ns + load_ns) / 1e9))
    intended = np.sort(rng.integers(warm_start, T0_NS + load_ns, size=n))
    warmup = intended < T0_NS
    cls = rng.choice(np.array(CLASSES), size=n, p=CLASS_WEIGHTS)
    periods = -(-(warm_ns + load_ns) // level_ns)
    levels = np.zeros(periods + 1)
    for k in range(1, levels.size):
        levels[k] = level_ar * levels[k - 1] + rng.normal(0.0, level_sd)
    win = np.clip((intended - warm_start) // level_ns, 0, periods)
    factor = np.array([CLASS_FACTOR[c] for c in cls]) * np.exp(levels[win]) * latency_scale
    lag = rng.exponential(0.2, size=n)
    service = rng.lognormal(np.log(median_ms), sigma, size=n) * factor
    latency = service + lag
    start = intended + (lag * 1e6).astype(np.int64)
    end = intended + (latency * 1e6).astype(np.int64)
    outcome = np.where(rng.random(n) < error_rate, np.where(rng.random(n) < 0.5, "error", "timeout"), "ok")
    p_escalate = np.array([ESCALATION_P[c] for c in cls])
    if escalation_rate is not None:
        overall = sum(w * ESCALATION_P[c] for c, w in zip(CLASSES, CLASS_WEIGHTS, strict=True))
        p_escalate = np.minimum(1.0, p_escalate * escalation_rate / overall)
    escalated = rng.random(n) < p_escalate
    expert = np.where(escalated, 50.0, np.nan)
    if expert_ms is not None:
        expert = np.where(escalated, rng.uniform(*expert_ms, size=n) * np.exp(levels[win]) * latency_scale, np.nan)
        added = np.nan_to_num(expert)
        service, latency = service + added, latency + added
        end = end + (added * 1e6).astype(np.int64)
    policy_model = rng.uniform(1.0, 3.0, size=n)
    llm_model = rng.lognormal(np.log(20.0), 0.3, size=n)
    fuse = rng.lognormal(np.log(0.4), 0.4, size=n)
    fuse_null = rng.random(n) < 0.1
    none_f = [None] * n
    data = {
        "run_id": [run_id] * n,
        "request_id": np.arange(n, dtype=np.int64),
        "agent_id": rng.integers(0, 1000, size=n).astype(np.int32),
        "host_id": rng.integers(0, 2, size=n).astype(np.int32),
        "node_id": ["node-0"] * n,
        "region": ["us-east"] * n,
        "cls": cls.tolist(),
        "warmup": warmup,
        "ts_intended_ns": intended.astype(np.int64),
        "ts_start_ns": start,
        "ts_end_ns": end,
        "latency_ms": latency,
        "service_ms": service,
        "lag_ms": lag,
        "outcome": outcome.tolist(),
        "error": [None if o == "ok" else f"synthetic {o}" for o in outcome],
        "escalated": escalated,
        "cache_hit": rng.random(n) < 0.2,
        "policy_ms": policy_model + rng.exponential(0.05, size=n),
        "llm_ms": llm_model + rng.exponential(0.1, size=n),
        "expert_queue_ms": pa.array(np.where(escalated, 5.0, np.nan), from_pandas=True),
        "expert_ms": pa.array(expert, from_pandas=True),
        "lease_wait_ms": rng.exponential(0.5, size=n),
        "state_ms": rng.exponential(0.3, size=n),
        "fuse_ms": pa.array(np.where(fuse_null, np.nan, fuse), from_pandas=True),
        "event_ms": rng.exponential(0.1, size=n),
        "policy_model_ms": policy_model,
        "llm_model_ms": llm_model,
        "expert_model_ms": pa.array(np.where(escalated, 50.0, np.nan), from_pandas=True),
        "rtt_model_ms": none_f,
        "file_key": rng.integers(0, 64, size=n),
        "lease_start_ns": start,
        "lease_end_ns": end,
        "conflicts": rng.poisson(conflicts_mean, size=n).astype(np.int32),
    }
    table = pa.table(data, schema=sch.schema("requests", final=False))
    run = {
        "agents": agents,
        "duration": f"{(warm_ns + load_ns) / 1e9:g}s",
        "warmup": f"{warm_ns / 1e9:g}s",
        "seed": seed,
    }
    scen = {"name": "synthetic", "run": run, **(scenario or {})}
    manifest = {
        "schema_version": sch.SCHEMA_VERSION,
        "run_id": run_id,
        "status": "completed",
        "scenario": scen,
        "load_start_ns": warm_start,
        "load_end_ns": T0_NS + load_ns,
        "started_utc": "2026-01-01T00:00:00Z",
        "ended_utc": "2026-01-01T00:01:05Z",
    }
    return table, manifest
