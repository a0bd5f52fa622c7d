"""Report speed: ``build_report`` (``raybench report RUN``) on a synthetic run folder of a million
requests, wall and CPU time and the size of the HTML.

    .venv/bin/python -m bench.bench_report [--rows 1000000] [--repeat 1] [--keep DIR] [--sections]

The run folder is written with the result schema and store (``raybench.results``), so every table
is a valid result file: requests at ``--rate`` per second (warm-up 10 % of the load), three classes
(escalated ones consult an expert), three regions, four nodes, a few errors, timeouts and denials,
lease conflicts on hot keys; windows.arrow from the same code a run uses
(``raybench.results.windows.compute``), the manifest's summary from ``raybench.judge.summary``,
per-process resource samples every second, a few events and SLA verdicts. Writing it is not timed.

Timed, ``--repeat`` times each (the fastest is reported): ``raybench report RUN`` as a user runs it
(a fresh interpreter: imports included), then ``build_report`` in this process. CPU is user + system
time, the figure worker processes a run this large gets included (``raybench.report.render``).
``--sections`` adds the time of each section, rendered in this process.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

T0_NS = 1_767_225_600 * 10**9  # 2026-01-01T00:00:00Z
CLASSES = {"safe": (0.7, 25.0, 0.05), "risky": (0.2, 60.0, 0.35), "complex": (0.1, 90.0, 0.75)}
REGIONS = ("us-east", "eu-west", "ap-south")
NODES = tuple(f"{i:02d}" + "5f15f66c537e9f038a85729801ab356507c5e24af379cc9f3298d4" for i in range(4))
THRESHOLDS = ["p99<1.5s", "p50{cls=safe}<40ms", "share(latency<200ms){escalated=false}>=99%", "error_rate<1%"]


def _requests(run_id: str, rows: int, rate: float, rng: np.random.Generator) -> Any:
    import pyarrow as pa

    from raybench.results import schema

    span_ns = int(rows / rate * 1e9)
    warm_ns = span_ns // 11  # warm-up: 10 % of the measured load
    intended = np.sort(rng.integers(T0_NS, T0_NS + span_ns, size=rows))
    names = np.array(list(CLASSES))
    cls = rng.choice(np.arange(len(names)), size=rows, p=[w for w, _, _ in CLASSES.values()])
    median = np.array([m for _, m, _ in CLASSES.values()])[cls]
    escalated = rng.random(rows) < np.array([e for _, _, e in CLASSES.values()])[cls]
    lag = rng.exponential(0.3, rows)
    service = rng.lognormal(np.log(median), 0.45)
    expert = np.where(escalated, rng.uniform(500.0, 1200.0, rows), np.nan)
    queue = np.where(escalated, rng.exponential(0.003, rows), np.nan)  # µs-scale: the unit must adapt
    latency = service + lag + np.nan_to_num(expert)
    start = intended + (lag * 1e6).astype(np.int64)
    end = intended + (latency * 1e6).astype(np.int64)
    u = rng.random(rows)
    outcome = np.select([u < 0.004, u < 0.007, u < 0.009], ["error", "timeout", "denied"], "ok")
    messages = np.array(["FuseError: EIO on read", "lease expired or version changed before commit",
                         "ConnectionError: shard 0 unreachable"])  # fmt: skip
    error = np.full(rows, None, dtype=object)
    error[outcome == "error"] = messages[rng.integers(0, 3, int((outcome == "error").sum()))]
    error[outcome == "timeout"] = "request exceeded request_timeout 30.0s"
    keys = np.minimum(rng.zipf(1.6, rows), 10_000) - 1
    nan = np.full(rows, np.nan)
    data = {
        "run_id": np.full(rows, run_id, dtype=object),
        "request_id": np.arange(rows, dtype=np.int64),
        "agent_id": rng.integers(0, 10_000, rows).astype(np.int32),
        "host_id": rng.integers(0, 8, rows).astype(np.int32),
        "node_id": np.array(NODES, dtype=object)[rng.integers(0, len(NODES), rows)],
        "region": np.array(REGIONS, dtype=object)[rng.choice(3, size=rows, p=[0.4, 0.35, 0.25])],
        "cls": names.astype(object)[cls],
        "warmup": intended < T0_NS + warm_ns,
        "ts_intended_ns": intended,
        "ts_start_ns": start,
        "ts_end_ns": end,
        "latency_ms": latency,
        "service_ms": latency - lag,
        "lag_ms": lag,
        "outcome": outcome.astype(object),
        "error": pa.array(error.tolist(), pa.string()),
        "escalated": escalated,
        "cache_hit": rng.random(rows) < 0.1,
        "policy_ms": rng.uniform(5.0, 25.0, rows),
        "llm_ms": np.where(cls > 0, rng.uniform(20.0, 80.0, rows), np.nan),
        "expert_queue_ms": queue,
        "expert_ms": expert,
        "lease_wait_ms": rng.exponential(0.4, rows),
        "state_ms": rng.exponential(0.3, rows),
        "fuse_ms": rng.lognormal(np.log(0.4), 0.4, rows),
        "event_ms": rng.exponential(0.05, rows),
        "policy_model_ms": rng.uniform(5.0, 25.0, rows),
        "llm_model_ms": nan,
        "expert_model_ms": expert,
        "rtt_model_ms": rng.uniform(1.0, 4.0, rows),
        "file_key": keys.astype(np.int64),
        "lease_start_ns": start,
        "lease_end_ns": end,
        "conflicts": (rng.random(rows) < 0.02).astype(np.int32),
    }
    cols = {k: pa.array(v, from_pandas=True) if isinstance(v, np.ndarray) else v for k, v in data.items()}
    return pa.table(cols).cast(schema.schema("requests", final=False)), span_ns, warm_ns


def _resources(run_id: str, span_ns: int, rng: np.random.Generator) -> Any:
    import pyarrow as pa

    from raybench.results import schema

    procs = [("driver", 100), ("aggregator", 101), ("shard", 102), ("experts", 103)]
    procs += [("host", 200 + i) for i in range(4)]
    ts = np.arange(T0_NS, T0_NS + span_ns + 1, 1_000_000_000)
    n = ts.size * len(procs)
    role = np.repeat([r for r, _ in procs], ts.size)
    rss = np.repeat(rng.uniform(100, 300, len(procs)), ts.size) * 2**20 * (1 + np.tile(np.linspace(0, 0.1, ts.size), 8))
    data = {
        "run_id": [run_id] * n, "ts_ns": np.tile(ts, len(procs)), "node_id": np.repeat(NODES[:1] * 8, ts.size),
        "role": role, "pid": np.repeat([p for _, p in procs], ts.size).astype(np.int32),
        "cpu_percent": rng.uniform(5, 60, n), "rss_bytes": rss.astype(np.int64),
        "threads": np.full(n, 8, np.int32), "open_fds": np.full(n, 30, np.int32),
        "gc_gen0": np.zeros(n, np.int64), "gc_gen1": np.zeros(n, np.int64), "gc_gen2": np.zeros(n, np.int64),
    }  # fmt: skip
    return pa.table(data).cast(schema.schema("resources", final=False))


def make_run(root: Path, rows: int = 1_000_000, rate: float = 2000.0, seed: int = 0) -> Path:
    """Write a synthetic run folder of ``rows`` requests under ``root``; return it."""
    import pyarrow as pa

    from raybench.judge.summary import summarize
    from raybench.results import schema, store, windows

    rng = np.random.default_rng(seed)
    run_id = "bench-report"
    run_dir = store.create_run_dir(Path(root), run_id)
    req, span_ns, warm_ns = _requests(run_id, rows, rate, rng)
    store.write_table(run_dir, "requests", req)
    window_s = 5.0
    n_windows = -(-span_ns // int(window_s * 1e9))
    win = windows.compute(req, run_id, T0_NS, window_s, n_windows)
    store.write_table(run_dir, "windows", pa.Table.from_pylist(win, schema=schema.schema("windows", final=False)))
    store.write_table(run_dir, "resources", _resources(run_id, span_ns, rng))
    ev = [(T0_NS + span_ns // 3, "violation", '{"threshold": "p99<1.5s"}'), (T0_NS + span_ns // 2, "alert", "{}")]
    events = {"run_id": [run_id] * 2, "ts_ns": [e[0] for e in ev], "kind": [e[1] for e in ev],
              "detail": [e[2] for e in ev]}  # fmt: skip
    store.write_table(run_dir, "events", pa.table(events))
    sla = [
        {"run_id": run_id, "id": t, "expression": t, "scope": "all", "observed": 0.5, "target": 1.0, "passed": True,
         "windows_failed": 0, "windows_total": n_windows, "first_violation_ns": None}
        for t in THRESHOLDS
    ]  # fmt: skip
    store.write_table(run_dir, "sla", pa.Table.from_pylist(sla, schema=schema.schema("sla", final=False)))
    measured_s = (span_ns - warm_ns) / 1e9
    run = {"agents": 10_000, "duration": f"{span_ns / 1e9:g}s", "warmup": f"{warm_ns / 1e9:g}s", "window": "5s"}
    manifest = {
        "schema_version": schema.SCHEMA_VERSION, "run_id": run_id, "status": "completed",
        "started_utc": "2026-01-01T00:00:00Z", "ended_utc": "2026-01-01T00:09:00Z",
        "load_start_ns": T0_NS, "load_end_ns": T0_NS + span_ns, "offered_rate": rate, "expected_requests": rows,
        "scenario": {"name": "bench-report", "run": run, "classes": {c: {} for c in CLASSES},
                     "sla": {"window": "5s", "thresholds": THRESHOLDS}},
        "cluster": {"nodes": [{"node_id": n, "address": f"192.0.2.{i + 2}"} for i, n in enumerate(NODES)]},
        "summary": summarize(req, measured_s),
        "harness": {"status": "ok", "reasons": [], "system": [], "unchecked": [],
                    "observed": {"timing_error_p99_ms": 2.1, "lag_p99_ms": 3.0, "process_cpu_percent": 40.0}},
        "shards": [{"shard": 0, "grants": rows, "refusals": 0}],
    }  # fmt: skip
    store.write_json_atomic(run_dir / "manifest.json", manifest)
    return run_dir


def _cpu() -> float:
    """CPU seconds of this process and of its children that ended (the figure workers)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def time_report(run_dir: Path, sections: bool = False) -> dict[str, Any]:
    """Build the report once in this process (the first build includes importing matplotlib); wall
    and CPU seconds, HTML bytes (and seconds per section)."""
    from raybench.report import single

    t0, c0 = time.perf_counter(), _cpu()
    html = single.build_report(run_dir)
    out: dict[str, Any] = {"wall_s": time.perf_counter() - t0, "cpu_s": _cpu() - c0, "html_bytes": len(html)}
    if sections:
        run = single.load(run_dir)
        per: dict[str, float] = {}
        for anchor, _ in single.SECTIONS:
            t = time.perf_counter()
            single._BUILDERS[anchor](run)
            per[anchor] = time.perf_counter() - t
        out["sections_s"] = per
    return out


def _time_cli(run_dir: Path) -> dict[str, float]:
    """``raybench report RUN`` as a user runs it (a fresh interpreter: imports included)."""
    out = run_dir / "report.html"
    before = os.times()
    t = time.perf_counter()
    cmd = [sys.executable, "-m", "raybench.cli", "report", str(run_dir), "-o", str(out), "--force"]
    subprocess.run(cmd, check=True, capture_output=True)
    wall = time.perf_counter() - t
    after = os.times()
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    return {"wall_s": wall, "cpu_s": cpu, "html_bytes": out.stat().st_size}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--rate", type=float, default=2000.0, help="requests per second of the synthetic run")
    p.add_argument("--repeat", type=int, default=1, help="times each way is timed; the fastest is reported")
    p.add_argument("--keep", type=Path, help="write the run folder (and report.html) here, and keep it")
    p.add_argument("--sections", action="store_true", help="also time each section (after the timed build)")
    p.add_argument("--json")
    args = p.parse_args(argv)
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        t = time.perf_counter()
        run_dir = make_run(root, args.rows, args.rate)
        made = time.perf_counter() - t
        clis = [_time_cli(run_dir) for _ in range(args.repeat)]
        cli = min(clis, key=lambda r: r["wall_s"])
        runs = [time_report(run_dir, args.sections and i == args.repeat - 1) for i in range(args.repeat)]
        best = min(runs, key=lambda r: r["wall_s"])
    out = {"rows": args.rows, "rate": args.rate, "make_run_s": made, **best, "runs": runs, "cli": cli, "cli_runs": clis,
           "loadavg": [load_start, os.getloadavg()], "cpus": os.cpu_count()}  # fmt: skip
    print(
        f"report of {args.rows:,} requests: build_report {best['wall_s']:.2f} s wall, {best['cpu_s']:.2f} s CPU, "
        f"HTML {best['html_bytes'] / 1e6:.2f} MB; `raybench report` command {cli['wall_s']:.2f} s wall, "
        f"{cli['cpu_s']:.2f} s CPU (fastest of {args.repeat}; run folder written in {made:.1f} s; "
        f"{os.cpu_count()} CPUs, load average {load_start[0]:.2f} -> {os.getloadavg()[0]:.2f})"
    )
    if runs[-1].get("sections_s"):
        print("  " + ", ".join(f"{k} {v:.2f}s" for k, v in runs[-1]["sections_s"].items()))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
