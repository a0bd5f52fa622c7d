"""`make bench`: raybench's own speed, each figure a pair or ratio measured side by side in one run.

    .venv/bin/python -m bench [--quick] [--out bench/out]

Writes every raw figure to OUT/results.json (with the machine it ran on) and prints a table.
docs/performance.md holds the latest results and the commands.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any


def main() -> None:
    p = argparse.ArgumentParser(description="raybench's benchmark suite")
    p.add_argument("--out", type=Path, default=Path("bench/out"))
    p.add_argument("--quick", action="store_true", help="shorter runs (noisier figures)")
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    secs = "8" if args.quick else "15"
    results: dict[str, Any] = {
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "loadavg_at_start": os.getloadavg(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
    }
    from bench import bench_recording, bench_startup, bench_state, bench_timing

    print("== 1. timing fidelity (raybench vs bare asyncio, same agents and arrivals)")
    results["timing"] = bench_timing.main(["--seconds", secs])
    print("== 2. coordination throughput (batched state ops vs raw Ray actor calls)")
    results["state"] = bench_state.main(["--seconds", "4" if args.quick else "6"])
    print("== 3. agents per core (one host process, timing error p99 <= 2 ms)")
    from bench import bench_agents_per_core

    results["agents_per_core"] = bench_agents_per_core.main(["--seconds", secs])
    print("== 4. recording (rows/s to Arrow files, memory per million rows)")
    # two sizes side by side: memory must not grow with the number of rows
    results["recording"] = {
        "small": bench_recording.main(["--rows", "500000"]),
        "large": bench_recording.main(["--rows", "1000000" if args.quick else "4000000"]),
    }
    print("== 4b. recording through the run's pipeline (host actors -> aggregator actor -> .arrow file)")
    from bench import bench_pipeline

    results["pipeline"] = bench_pipeline.main(["--rows", "1000000" if args.quick else "2000000"])
    print("== 4c. finalize (streamed batches gathered into large file batches vs one file batch each)")
    from bench import bench_finalize

    results["finalize"] = bench_finalize.main(["--rows", "500000" if args.quick else "1000000"])
    print("== 5. FUSE vs native (see docs/fuse.md for the full matrix)")
    from bench import bench_fuse

    fuse_json = args.out / "fuse.json"
    bench_fuse.main(["--out", str(fuse_json), "--workers", "1,8,32", "--duration", "2s"])
    results["fuse"] = json.loads(fuse_json.read_text()) if fuse_json.exists() else None
    print("== 6. start-up and smoke wall time")
    results["startup"] = bench_startup.main([])
    print("== 7. the HTML report of a 1,000,000-request run")
    from bench import bench_report

    results["report"] = bench_report.main(["--repeat", "1" if args.quick else "3"])
    print("== 8. capacity: 10,000 req/s, 6,000 req/s with FUSE, 50,000 agents; CPU per request by role")
    from bench import bench_capacity

    results["capacity"] = bench_capacity.main(["--seconds", "15" if args.quick else "20"])
    results["machine"]["loadavg_at_end"] = os.getloadavg()
    path = args.out / "results.json"
    path.write_text(json.dumps(results, indent=2, default=str))
    print(f"raw figures: {path}")


if __name__ == "__main__":
    main()
