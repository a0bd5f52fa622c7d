"""Agents per core: the largest agent count one agent host (one process, at most one core)
sustains at a given per-agent rate with its harness timing error p99 within a bound.

    .venv/bin/python -m bench.bench_agents_per_core [--agents 100,250,500,1000,2000] [--rate 1] [--bound-ms 2]

Each size is a real `raybench run` of the smoke pipeline with ``--hosts 1`` and FUSE off; the
timing error comes from the run's own rows (measured − modelled think time, non-warm-up).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any


def main(argv: list[str] | None = None) -> dict[str, Any]:
    import pyarrow.compute as pc

    from raybench.config import scenario
    from raybench.engine.run import connect, execute
    from raybench.judge.stats import percentile
    from raybench.judge.summary import _timing_error
    from raybench.results import store

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--agents", default="100,250,500,1000,2000")
    p.add_argument("--rate", type=float, default=1.0)  # the definition: agents at 1 req/s each
    p.add_argument("--bound-ms", type=float, default=2.0)
    p.add_argument("--seconds", type=float, default=15.0)
    p.add_argument("--json")
    args = p.parse_args(argv)
    import ray

    owns = connect(None)
    rows = []
    try:
        for n in [int(x) for x in args.agents.split(",")]:
            sc = scenario.load(
                preset="smoke",
                overrides={"run.agents": n, "run.hosts": 1, "arrivals.rate": args.rate,
                           "run.duration": f"{args.seconds}s", "run.warmup": "2s", "fuse.mode": "off"},
            )  # fmt: skip
            with tempfile.TemporaryDirectory() as tmp:
                result = execute(sc, out=Path(tmp))
                t = store.read_table(result.run_dir, "requests")
                t = t.filter(pc.invert(t.column("warmup")))
                res = [r for r in result.resource_rows if r["role"] == "host"]
            p99 = percentile(_timing_error(t), 99.0)
            rows.append(
                {"agents": n, "offered_per_s": n * args.rate, "timing_err_p99_ms": p99,
                 "host_cpu_mean": res[0]["cpu_mean"] if res else None, "holds": p99 <= args.bound_ms}
            )  # fmt: skip
            r = rows[-1]
            print(
                f"{n:>6} agents on one host, {r['offered_per_s']:.0f} req/s: timing error p99 "
                f"{p99:.2f} ms, host CPU {r['host_cpu_mean']:.0f}% -> {'holds' if r['holds'] else 'over'} "
                f"{args.bound_ms:g} ms"
            )
    finally:
        if owns:
            ray.shutdown()
    best = max((r["agents"] for r in rows if r["holds"]), default=0)
    print(f"largest agent count on one host with timing error p99 <= {args.bound_ms:g} ms: {best}")
    out = {"rows": rows, "largest_holding": best, "rate": args.rate, "bound_ms": args.bound_ms}
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
