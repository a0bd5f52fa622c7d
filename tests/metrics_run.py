"""A small run with live metrics on a local Ray of its own (a subprocess of tests/test_metrics.py):
Ray is started the way ``raybench run --metrics`` starts it, and stays up after the run so the
test can scrape what Ray's metrics agent exported.

    python tests/metrics_run.py OUT_DIR

Writes OUT_DIR/metrics.txt (the scraped Prometheus text) and prints one JSON line: status, run
folder, the manifest's ``metrics`` entry.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.request
from pathlib import Path

os.environ.setdefault("RAY_AUTH_MODE", "disabled")

RUN_ID = "metrics"
OVERRIDES = {
    "run.agents": 100,
    "run.duration": "4s",
    "run.warmup": "1s",
    "arrivals.rate": 1.0,
    "fuse.mode": "off",  # not what this test is about; one process less on a small machine
    "run.metrics": True,
}


def main(out: Path) -> None:
    import ray

    from raybench import scenario
    from raybench.run import connect, execute

    connect(None, metrics=True)  # as `raybench run --metrics` does: export port Ray's choice, 1 s interval
    try:
        sc = scenario.load(preset="smoke", overrides=OVERRIDES)
        result = execute(sc, out=out, run_id=RUN_ID)  # Ray was up before: it stays up after the run
        live = result.manifest["metrics"]
        text = ""
        if live.get("enabled"):
            with urllib.request.urlopen(live["url"], timeout=10) as resp:
                text = resp.read().decode()
        (out / "metrics.txt").write_text(text)
        print(json.dumps({"status": result.status, "run_dir": str(result.run_dir), "metrics": live}))
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
