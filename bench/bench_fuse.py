"""Benchmark (not a test): FUSE against native per operation, at several worker counts and bindings.

Usage::

    .venv/bin/python bench/bench_fuse.py --out /tmp/bench_fuse.json \
        [--workers 1,8,32,64] [--backends fusepy,mfusepy] [--duration 3s] [--mix stat=3,read=3,...]
        [--attr-timeout 0s] [--entry-timeout 0s] [--processes 0] [--mode memory] [--loops single,multi]

For every (backend, libfuse loop, workers) it runs the workload on a fresh FUSE mount and then on a native
folder in the same call (so both see the same background load), prints one table line per op and
writes every figure (plus the run's settings and load average) to ``--out`` as JSON.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fuse_bench.opstats import format_latency, op_stats
from fuse_bench.vs_native import MountOptions, run_comparison
from fuse_bench.workload import DEFAULT_MIX, Workload, parse_mix
from raybench.units import parse_duration


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, type=Path, help="JSON file for the raw figures")
    p.add_argument("--workers", default="1,8,32,64")
    p.add_argument("--backends", default="fusepy,mfusepy")
    p.add_argument("--duration", default="3s")
    p.add_argument("--mix", default=None)
    p.add_argument("--mode", default="memory")
    p.add_argument("--attr-timeout", default="0s")
    p.add_argument("--entry-timeout", default="0s")
    p.add_argument("--processes", type=int, default=0)
    p.add_argument("--loops", default="single", help="libfuse loops to measure: single, multi or single,multi")
    args = p.parse_args(argv)

    mix = parse_mix(args.mix) if args.mix else dict(DEFAULT_MIX)
    results = []
    header = (
        f"{'backend':8} {'loop':6} {'W':>3} {'op':8} {'fuse p50':>9} {'p99':>8} {'nat p50':>9} {'p99':>8} "
        f"{'p50 x':>7} {'p99 x':>7} {'fuse ops/s':>10} {'nat ops/s':>10}"
    )
    print(header)
    loops = args.loops.split(",")
    if not set(loops) <= {"single", "multi"}:
        p.error(f"--loops {args.loops!r}: use single, multi or single,multi")
    for backend, loop, workers in itertools.product(
        args.backends.split(","), loops, [int(w) for w in args.workers.split(",")]
    ):
        wl = Workload(
            workers=workers,
            duration_s=parse_duration(args.duration),
            mix=mix,
            processes=min(args.processes, workers),
        )
        opts = MountOptions(
            backend=backend,
            mode=args.mode,
            attr_timeout=parse_duration(args.attr_timeout),
            entry_timeout=parse_duration(args.entry_timeout),
            multithreaded=loop == "multi",
        )
        started = time.time()
        comp = run_comparison(wl, opts)
        rows = op_stats(comp.table)
        results.append(
            {"backend": backend, "loop": loop, "workers": workers, "started": started, "info": comp.info, "rows": rows}
        )
        by = {(r["op"], r["target"]): r for r in rows}
        for op in [*mix, "all"]:
            f, n = by.get((op, "fuse")), by.get((op, "native"))
            if f is None or n is None:
                continue
            rx = lambda v: "-" if v is None else f"{v:.1f}x"  # noqa: E731
            print(
                f"{backend:8} {loop:6} {workers:>3} {op:8} "
                f"{format_latency(f['p50_ms']):>9} {format_latency(f['p99_ms']):>8} "
                f"{format_latency(n['p50_ms']):>9} {format_latency(n['p99_ms']):>8} {rx(f['ratio_p50']):>7} "
                f"{rx(f['ratio_p99']):>7} {f['ops_per_s']:>10.0f} {n['ops_per_s']:>10.0f}",
                flush=True,
            )

    def clean(o: object) -> object:
        if isinstance(o, float) and math.isnan(o):
            return None
        if isinstance(o, dict):
            return {k: clean(v) for k, v in o.items()}
        if isinstance(o, list):
            return [clean(v) for v in o]
        return o

    doc = {"argv": sys.argv, "cpu_count": os.cpu_count(), "uname": " ".join(os.uname()), "results": results}
    args.out.write_text(json.dumps(clean(doc), indent=1, default=str) + "\n")
    print(f"raw figures: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
