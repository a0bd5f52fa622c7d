"""Capacity: what a run carries at high request rates and large fleets, the harness's own timing
error next to a bare asyncio loop's at the same agents and arrivals, and µs of CPU per request by
process role, each from the run's own rows.

    .venv/bin/python -m bench.bench_capacity [--cases rate10k,fuse6k,agents50k] [--seconds 20]

Cases (the issue's targets; every one with `experts.pool = 3000`, so that the simulated experts
are not the limit):

rate10k    `--preset smoke --agents 10000 --rate 1 --set fuse.mode=off`: 10,000 req/s, FUSE off
fuse6k     `--preset smoke --agents 30000 --rate 0.2`: 6,000 req/s, FUSE on
agents50k  `--preset smoke --agents 50000 --rate 0.1`: 50,000 agents on one node, FUSE on

Per case: carried (non-warm-up requests completed / offered over the measured span), errors,
timing error p99 (measured − modelled sleeps), coordination p99, FUSE stage p99, the harness
verdict, CPU µs per request by role (`raybench.judge.cpu`), peak RSS and memory per agent; for
rate10k also the bare asyncio loop's sleep overrun p99 (`bench_timing`, same agents and arrivals)
and the ratio. Extra `--set` assignments apply to every case (`--set run.shards=2`).
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
}


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
        "carried": done / offered if offered else None,
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


def bare_overrun_p99(agents: int, rate: float, seconds: float) -> float:
    """The bare uvloop loop's sleep overrun p99 (ms) at these agents and arrivals (bench_timing)."""
    import uvloop

    from bench.bench_timing import _bare

    uvloop.install()
    err = asyncio.run(_bare(agents, rate, seconds, 1, top_up=True))
    asyncio.set_event_loop_policy(None)
    return float(np.percentile(err, 99))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", default=",".join(CASES))
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
        if name == "rate10k":
            case = CASES[name]
            got["bare_overrun_p99_ms"] = bare_overrun_p99(case["agents"], case["rate"], min(args.seconds, 15.0))
            terr = got["timing_err_p99_ms"]
            got["timing_err_ratio_to_bare"] = terr / got["bare_overrun_p99_ms"] if terr is not None else None
        results[name] = got
        print(json.dumps(got, default=str))
    print(f"{'case':<10}{'agents':>8}{'offered':>9}{'carried':>9}{'errors':>8}{'terr99':>8}{'coord99':>9}"
          f"{'fuse99':>8}  cpu µs/request by role")  # fmt: skip
    for name, r in results.items():
        cpu = ", ".join(f"{k} {v:.0f}" for k, v in r["cpu_us_per_request"].items() if v is not None)
        fmt = lambda v, d=1: "-" if v is None else f"{v:.{d}f}"  # noqa: E731
        print(
            f"{name:<10}{r['agents']:>8,}{r['offered_per_s']:>9,.0f}{fmt(100 * r['carried']):>8}%"
            f"{fmt(100 * r['error_rate'], 2):>7}%{fmt(r['timing_err_p99_ms']):>8}{fmt(r['coord_p99_ms']):>9}"
            f"{fmt(r['fuse_p99_ms']):>8}  {cpu}"
        )
    return results


if __name__ == "__main__":
    main()
