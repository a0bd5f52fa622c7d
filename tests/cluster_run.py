"""Run a small raybench scenario on a 3-node Ray cluster made on this machine (a subprocess of
tests/test_cluster.py, so that its Ray processes never meet the test session's local Ray).

    python tests/cluster_run.py OUT_DIR [LOSE_NODE_AFTER_S]

With LOSE_NODE_AFTER_S, one worker node is removed (its raylet and workers killed, as when a
machine fails) that many seconds after the load starts, and the run lasts long enough for Ray to
declare the node dead.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from pathlib import Path

os.environ.setdefault("RAY_AUTH_MODE", "disabled")


def main(out: Path, lose_after: float | None = None) -> None:
    from ray.cluster_utils import Cluster

    from raybench import scenario
    from raybench.run import execute

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        workers = [cluster.add_node(num_cpus=1) for _ in range(2)]
        cluster.wait_for_nodes()
        duration = "5s" if lose_after is None else "30s"
        sc = scenario.load(
            preset="smoke",
            overrides={"run.agents": 300, "run.duration": duration, "run.warmup": "1s", "run.shards": 3},
        )
        started: list[threading.Timer] = []

        def progress(line: str) -> None:
            print(line, file=sys.stderr, flush=True)
            if lose_after is not None and " load]" in line and not started:
                lose = threading.Timer(lose_after, cluster.remove_node, (workers[1],), {"allow_graceful": False})
                started.append(lose)
                lose.start()

        # ship_code: raybench and fuse_bench travel in the runtime environment, as on a cluster
        # where they are not installed
        result = execute(sc, out=out, run_id="cluster", address=cluster.address, ship_code=True, progress=progress)
        for t in started:
            t.join()
        print(json.dumps({"status": result.status, "run_dir": str(result.run_dir)}))
    finally:
        cluster.shutdown()


if __name__ == "__main__":
    main(Path(sys.argv[1]), float(sys.argv[2]) if len(sys.argv) > 2 else None)
