"""Capacity: what a run carries at high request rates and large fleets, the harness's own timing
error next to a bare asyncio loop's at the same agents and arrivals, and µs of CPU per request by
process role, each from the run's own rows.

    .venv/bin/python -m bench.bench_capacity [--cases rate3k,fuse2k,rate10k,fuse6k,agents50k] [--seconds 20]

Cases (every one with `experts.pool = 3000`, so that the simulated experts are not the limit):

rate10k    `--preset smoke --agents 10000 --rate 1 --set fuse.mode=off`: 10,000 req/s, FUSE off
fuse6k     `--preset smoke --agents 30000 --rate 0.2`: 6,000 req/s, FUSE on
agents50k  `--preset smoke --agents 50000 --rate 0.1`: 50,000 agents on one node, FUSE on
rate3k     `--agents 10000 --rate 0.3 --set fuse.mode=off`: 3,000 req/s, FUSE off
fuse2k     `--agents 10000 --rate 0.2`: 2,000 req/s, FUSE on

Per case: carried (non-warm-up requests completed / offered over the measured span), errors,
timing error p99 (measured − modelled sleeps), coordination p99, FUSE stage p99, the harness
verdict, CPU µs per request by role (`raybench.judge.cpu`), peak RSS and memory per agent; and a
bare uvloop loop at the same agents and arrivals right after the run (`bench_timing`'s): its
sleep overrun p99 (the timing error's floor) and its CPU per request with one host's share of
the agents (the floor of a host's CPU per request), each with raybench's ratio to it. Extra
`--set` assignments apply to every case (`--set run.shards=2`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

CASES: dict[str, dict[str, Any]] = {
    "rate10k": {"agents": 10_000, "rate": 1.0, "set": ["fuse.mode=off"]},
    "fuse6k": {"agents": 30_000, "rate": 0.2, "set": []},
    "agents50k": {"agents": 50_000, "rate": 0.1, "set": []},
    # what this 2-core machine carries with its harness ok (docs/performance.md, "Capacity")
    "rate3k": {"agents": 10_000, "rate": 0.3, "set": ["fuse.mode=off"]},
    "fuse2k": {"agents": 10_000, "rate": 0.2, "set": []},
}
#: The cases `make bench` runs by default (the targets, then what holds here).
DEFAULT_CASES = ("rate3k", "fuse2k", "rate10k", "fuse6k", "agents50k")


def _p99(values: np.ndarray) -> float | None:
    from raybench.judge.stats import percentile

    values = values[~np.isnan(values)]
    return float(percentile(values, 99.0)) if values.size else None


def measure(run_dir: Path) -> dict[str, Any]:
    """The figures of one finished run folder."""
    from raybench.judge.cpu import cpu_per_request
    from raybench.judge.summary import resource_growth, summarize
    from raybench.results import store
    from raybench.results.windows import load_span

    manifest = store.load_manifest(run_dir)
    sc = manifest["scenario"]
    from raybench.config.scenario import Scenario

    scenario = Scenario.from_dict(sc)
    span = load_span(manifest, duration_s=scenario.run.duration, warmup_s=scenario.run.warmup)
    req = store.read_table(run_dir, "requests")
    res = store.read_table(run_dir, "resources")
    overall = summarize(req, span.measured_s, end_ns=span.end_ns)[0]
    warm_end = span.start_ns + int(scenario.run.warmup * 1e9)
    ends = req.column("ts_end_ns").to_numpy()
    measured = ~req.column("warmup").to_numpy(zero_copy_only=False)
    done = int(np.count_nonzero(measured & (ends < span.end_ns)))
    # carried: the requests intended in the measured span that completed (not error, not
    # timeout), whenever they ended, against the offered load over that span
    intended = req.column("ts_intended_ns").to_numpy()
    outcome = np.asarray(req.column("outcome").cast("string").to_pylist(), dtype=object)
    ok = (outcome != "error") & (outcome != "timeout")
    completed = int(np.count_nonzero(measured & ok & (intended >= warm_end) & (intended < span.end_ns)))
    offered = manifest["offered_rate"] * span.measured_s
    fuse = np.asarray(req.column("fuse_ms").to_numpy(zero_copy_only=False), dtype=np.float64)[measured]
    cpu = cpu_per_request(res, done, warm_end, span.end_ns)
    mem = {r["role"]: r["peak_rss_mib"] for r in resource_growth(res)}
    hosts = [r for r in resource_growth(res) if r["role"] == "host"]
    host_rss = sum(r["peak_rss_mib"] * r["processes"] for r in hosts)
    return {
        "run_dir": str(run_dir),
        "status": manifest["status"],
        "agents": scenario.run.agents,
        "hosts": len(manifest.get("hosts") or []),
        "shards": len(manifest.get("shards") or []) or scenario.run.shards,
        "offered_per_s": manifest["offered_rate"],
        "carried": completed / offered if offered else None,
        "error_rate": overall["error_rate"],
        "timing_err_p99_ms": overall["timing_err_p99_ms"],
        "coord_p99_ms": overall["coord_p99_ms"],
        "lag_p99_ms": overall["lag_p99_ms"],
        "fuse_p99_ms": _p99(fuse),
        "harness": (manifest.get("harness") or {}).get("status"),
        "cpu_us_per_request": {r["role"]: r["us_per_request"] for r in cpu},
        "cores": {r["role"]: r["cores"] for r in cpu},
        "peak_rss_mib": mem,
        "host_kib_per_agent": host_rss * 1024 / scenario.run.agents,
    }


def run_case(name: str, seconds: float, extra: list[str], out: Path) -> dict[str, Any]:
    case = CASES[name]
    run_id = f"cap-{name}-{time.strftime('%H%M%S')}"
    cmd = [sys.executable, "-m", "raybench", "run", "--preset", "smoke", "--agents", str(case["agents"])]
    cmd += ["--rate", str(case["rate"]), "--duration", f"{seconds:g}s", "--quiet"]
    for kv in ["experts.pool=3000", *case["set"], *extra]:
        cmd += ["--set", kv]
    cmd += ["--out", str(out), "--run-id", run_id]
    t0 = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.time() - t0
    if not (out / run_id / "manifest.json").exists():
        raise SystemExit(f"{name}: run failed (exit {proc.returncode}): {proc.stderr.strip()[-400:]}")
    got = measure(out / run_id)
    got.update(case=name, exit_code=proc.returncode, wall_s=round(wall, 1), command=" ".join(cmd[2:]))
    return got


def bare_loop(agents: int, rate: float, seconds: float) -> dict[str, float]:
    """A bare uvloop loop at these agents and arrivals (``bench_timing``: a task per request that
    sleeps its modelled policy time, topped up): its sleep overrun p99 (ms) and its CPU per
    request (µs, this process's user + system time): the floor any asyncio harness pays here."""
    import resource

    import uvloop

    from bench.bench_timing import _bare

    def cpu_s() -> float:
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    uvloop.install()
    c0 = cpu_s()
    err = asyncio.run(_bare(agents, rate, seconds, 1, top_up=True))
    used = cpu_s() - c0
    asyncio.set_event_loop_policy(None)
    return {"overrun_p99_ms": float(np.percentile(err, 99)), "cpu_us_per_request": used * 1e6 / max(1, err.size)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", default=",".join(DEFAULT_CASES), help=f"comma-separated: {', '.join(CASES)}")
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--set", dest="extra", action="append", default=[], help="KEY=VALUE for every case")
    p.add_argument("--out", type=Path, default=None, help="results root (default: a temporary folder)")
    args = p.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="raybench-capacity-"))
    results: dict[str, Any] = {}
    for name in [c.strip() for c in args.cases.split(",") if c.strip()]:
        if name not in CASES:
            raise SystemExit(f"--cases: unknown case {name!r}; allowed: {', '.join(CASES)}")
        got = run_case(name, args.seconds, args.extra, out)
        case = CASES[name]
        # the same agents and arrivals on a bare loop in this process, right after the run; split
        # over the hosts as the run did, for CPU per request (a host's loop runs agents / hosts)
        bare = bare_loop(case["agents"], case["rate"], min(args.seconds, 10.0))
        per_host = bare_loop(case["agents"] // max(1, got["hosts"]), case["rate"], min(args.seconds, 10.0))
        got["bare_overrun_p99_ms"] = bare["overrun_p99_ms"]
        terr = got["timing_err_p99_ms"]
        got["timing_err_ratio_to_bare"] = terr / bare["overrun_p99_ms"] if terr is not None else None
        got["bare_cpu_us_per_request"] = per_host["cpu_us_per_request"]
        host_us = got["cpu_us_per_request"].get("host")
        got["host_cpu_ratio_to_bare"] = host_us / per_host["cpu_us_per_request"] if host_us else None
        results[name] = got
        print(json.dumps(got, default=str))
    print(f"{'case':<10}{'agents':>8}{'offered':>9}{'carried':>9}{'errors':>8}{'terr99':>8}{'bare99':>8}"
          f"{'coord99':>9}{'fuse99':>8}{'harness':>10}{'host/bare':>10}  cpu µs/request by role")  # fmt: skip
    for name, r in results.items():
        cpu = ", ".join(f"{k} {v:.0f}" for k, v in r["cpu_us_per_request"].items() if v is not None)
        fmt = lambda v, d=1: "-" if v is None else f"{v:.{d}f}"  # noqa: E731
        print(
            f"{name:<10}{r['agents']:>8,}{r['offered_per_s']:>9,.0f}{fmt(100 * r['carried']):>8}%"
            f"{fmt(100 * r['error_rate'], 2):>7}%{fmt(r['timing_err_p99_ms']):>8}{fmt(r['bare_overrun_p99_ms']):>8}"
            f"{fmt(r['coord_p99_ms']):>9}{fmt(r['fuse_p99_ms']):>8}{r['harness'] or '-':>10}"
            f"{fmt(r['host_cpu_ratio_to_bare'], 2):>10}  {cpu}"
        )
    return results


if __name__ == "__main__":
    main()
