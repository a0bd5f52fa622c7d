"""Start-up: time from the command to the first request, and the whole `raybench smoke` wall time.

.venv/bin/python -m bench.bench_startup
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from raybench.results import store

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        t0_ns = time.time_ns()
        proc = subprocess.run(
            [sys.executable, "-m", "raybench.cli", "smoke", "--out", tmp, "--quiet"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        wall = (time.time_ns() - t0_ns) / 1e9
        run_dir = Path(proc.stdout.strip().splitlines()[-1])
        requests = store.read_table(run_dir, "requests")
        first = min(requests.column("ts_start_ns").to_pylist())
        manifest = store.load_manifest(run_dir)
    out = {
        "smoke_wall_s": wall,
        "to_first_request_s": (first - t0_ns) / 1e9,
        "load_s": float(manifest["scenario"]["run"]["duration"].rstrip("s")),
        "exit_code": proc.returncode,
    }
    print(
        f"raybench smoke: {out['smoke_wall_s']:.1f} s wall ({out['load_s']:.0f} s of load), "
        f"first request {out['to_first_request_s']:.1f} s after the command, exit {proc.returncode}"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
