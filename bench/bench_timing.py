"""Timing fidelity: the harness timing error (measured − modelled sleep) of raybench against a bare
asyncio loop with the same agents and the same arrivals, side by side in one invocation.

    .venv/bin/python -m bench.bench_timing [--agents 1000,10000] [--rate-per-agent 0.2] [--seconds 15]

bare      one asyncio loop in this process; the same open-loop Poisson arrivals (seeded per agent);
          each request sleeps its modelled policy time and records measured − modelled
uvloop    the same on uvloop, the loop Ray gives raybench's actors when uvloop is installed (a
          raybench dependency); its timers may fire up to ~1.5 ms early, so each sleep is topped up
          to its model, as raybench's hosts do
raybench  `raybench run --preset smoke` with the same agents, rate and duration, FUSE off; the
          error comes from its own rows (policy, LLM and expert stages)
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import uvloop


async def _bare(agents: int, rate: float, seconds: float, seed: int, top_up: bool = False) -> np.ndarray:
    from raybench.model.arrivals import Arrivals
    from raybench.model.timing import Uniform
    from raybench.model.workload import agent_rng

    arr = Arrivals(process="poisson", rate=rate)
    policy = Uniform(min=5, max=25)
    rngs = [agent_rng(seed, a) for a in range(agents)]
    start = time.perf_counter_ns() + 200_000_000
    heap = [(start + int(arr.first(r) * 1e9), i) for i, r in enumerate(rngs)]
    heapq.heapify(heap)
    errors: list[float] = []
    tasks: set[asyncio.Task[None]] = set()

    async def request(model_ms: float) -> None:
        t0 = time.perf_counter_ns()
        await asyncio.sleep(model_ms / 1000)
        while top_up and (left := t0 + model_ms * 1e6 - time.perf_counter_ns()) > 0:
            await asyncio.sleep(left / 1e9)
        errors.append((time.perf_counter_ns() - t0) / 1e6 - model_ms)

    end = start + int(seconds * 1e9)
    while heap and heap[0][0] < end:
        t, i = heap[0]
        now = time.perf_counter_ns()
        if t > now:
            await asyncio.sleep((t - now) / 1e9)
            continue
        heapq.heappop(heap)
        task = asyncio.ensure_future(request(policy.sample(rngs[i])))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        heapq.heappush(heap, (start + int(arr.next((t - start) / 1e9, rngs[i]) * 1e9), i))
    await asyncio.gather(*tasks)
    return np.array(errors)


def _raybench(agents: int, rate: float, seconds: float) -> tuple[np.ndarray, dict[str, Any]]:
    from raybench.config import scenario
    from raybench.engine.run import execute
    from raybench.judge.summary import _timing_error
    from raybench.results import store

    sc = scenario.load(
        preset="smoke",
        overrides={
            "run.agents": agents,
            "arrivals.rate": rate,
            "run.duration": f"{seconds}s",
            "run.warmup": "2s",
            "fuse.mode": "off",
        },
    )
    with tempfile.TemporaryDirectory() as tmp:
        result = execute(sc, out=Path(tmp))
        table = store.read_table(result.run_dir, "requests")
        import pyarrow.compute as pc

        table = table.filter(pc.invert(table.column("warmup")))
        lag = np.asarray(table.column("lag_ms").to_numpy(), dtype=float)
        return _timing_error(table), {"rows": table.num_rows, "lag_p99_ms": float(np.percentile(lag, 99))}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from raybench.judge.stats import percentiles

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--agents", default="1000,10000")
    p.add_argument("--rate-per-agent", type=float, default=0.2)
    p.add_argument("--seconds", type=float, default=15.0)
    p.add_argument("--json")
    args = p.parse_args(argv)
    out: dict[str, Any] = {}
    for n in [int(x) for x in args.agents.split(",")]:
        rate = args.rate_per_agent * 1000 / n if n > 1000 else args.rate_per_agent  # same offered load
        bare = asyncio.run(_bare(n, rate, args.seconds, seed=1))
        uv = uvloop.run(_bare(n, rate, args.seconds, seed=1, top_up=True))
        rb, extra = _raybench(n, rate, args.seconds)
        b, u, r = (percentiles(x, (50.0, 99.0)) for x in (bare, uv, rb))
        out[str(n)] = {
            "offered_per_s": n * rate,
            "bare_p50_ms": b[50.0],
            "bare_p99_ms": b[99.0],
            "uvloop_p50_ms": u[50.0],
            "uvloop_p99_ms": u[99.0],
            "raybench_p50_ms": r[50.0],
            "raybench_p99_ms": r[99.0],
            "ratio_p99": r[99.0] / b[99.0],
            **extra,
        }
        o = out[str(n)]
        print(
            f"{n:>6} agents, {o['offered_per_s']:.0f} req/s: timing error p50/p99  bare asyncio "
            f"{o['bare_p50_ms']:.2f}/{o['bare_p99_ms']:.2f} ms   bare uvloop {o['uvloop_p50_ms']:.2f}/"
            f"{o['uvloop_p99_ms']:.2f} ms   raybench {o['raybench_p50_ms']:.2f}/"
            f"{o['raybench_p99_ms']:.2f} ms   ratio p99 {o['ratio_p99']:.2f}x"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
