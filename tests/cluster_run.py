"""Run a small raybench scenario on a 3-node Ray cluster made on this machine (a subprocess of
tests/test_cluster.py, so that its Ray processes never meet the test session's local Ray).

    python tests/cluster_run.py OUT_DIR
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("RAY_AUTH_MODE", "disabled")


def main(out: Path) -> None:
    from ray.cluster_utils import Cluster

    from raybench import scenario
    from raybench.run import execute

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        for _ in range(2):
            cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        sc = scenario.load(
            preset="smoke",
            overrides={"run.agents": 300, "run.duration": "5s", "run.warmup": "1s", "run.shards": 3},
        )
        # ship_code: raybench and fuse_bench travel in the runtime environment, as on a cluster
        # where they are not installed
        result = execute(sc, out=out, run_id="cluster", address=cluster.address, ship_code=True)
        print(json.dumps({"status": result.status, "run_dir": str(result.run_dir)}))
    finally:
        cluster.shutdown()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
