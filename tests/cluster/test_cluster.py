"""raybench on a real multi-node Ray cluster (3 raylets on this machine)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pyarrow as pa
import pytest

from raybench.results import store

pytestmark = [pytest.mark.ray, pytest.mark.cluster, pytest.mark.slow]


def _fuse_mounts() -> list[str]:
    with open("/proc/mounts") as fh:
        return [line.split()[1] for line in fh if " fuse.raybench " in line]


def _cluster_run(out: Path, *args: str) -> Path:
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONUNBUFFERED": "1"}
    script = Path(__file__).parents[1] / "fixtures" / "cluster_run.py"
    proc = subprocess.run(
        [sys.executable, str(script), str(out), *args], env=env, capture_output=True, text=True, timeout=420
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    outcome = json.loads(proc.stdout.strip().splitlines()[-1])
    return Path(outcome["run_dir"])


def test_three_node_run_uses_every_node(tmp_path: Path):
    run_dir = _cluster_run(tmp_path)
    manifest = store.load_manifest(run_dir)
    nodes = {n["node_id"] for n in manifest["cluster"]["nodes"]}
    assert len(nodes) == 3
    hosts = {h["node_id"] for h in manifest["hosts"]}
    assert hosts == nodes  # one host per CPU, one CPU per node: a host on every node
    requests = store.read_table(run_dir, "requests")
    assert set(requests.column("node_id").cast(pa.string()).to_pylist()) == nodes
    resources = store.read_table(run_dir, "resources")
    assert set(resources.column("node_id").cast(pa.string()).to_pylist()) >= nodes
    fuse = manifest["fuse"]
    from fuse_bench.mount import probe

    if probe() is None:
        mounted = {n["node_id"] for n in fuse["nodes"] if "mountpoint" in n}
        assert mounted == nodes, fuse
        fused = requests.filter(pa.compute.is_valid(requests.column("fuse_ms")))
        assert set(fused.column("node_id").cast(pa.string()).to_pylist()) == nodes
    assert not _fuse_mounts(), "a FUSE mount was left behind"


def test_a_node_lost_mid_run_is_recorded_and_costs_no_row(tmp_path: Path):
    """A worker node's raylet and workers are killed 2 s into the load (a machine failing): the run
    goes on with the other nodes, records the loss, and still has one row per intended request."""
    from collections import Counter

    from raybench.config.scenario import Scenario
    from raybench.model.workload import intended_schedule

    run_dir = _cluster_run(tmp_path, "2")
    manifest = store.load_manifest(run_dir)
    assert manifest["status"] == "degraded"  # a host failed for good: the status says so
    events = store.read_table(run_dir, "events")
    details = [json.loads(d) for d in events.column("detail").to_pylist()]
    kinds = events.column("kind").to_pylist()
    lost_nodes = {d["node_id"] for k, d in zip(kinds, details, strict=True) if k == "node_lost"}
    failed = {d["host_id"] for k, d in zip(kinds, details, strict=True) if k == "host_failed"}
    assert len(lost_nodes) == 1 and lost_nodes < {n["node_id"] for n in manifest["cluster"]["nodes"]}
    lost_node = lost_nodes.pop()
    assert lost_node != manifest["cluster"]["head_node"]
    # the host pinned there could not come back; the others ran to the end
    finished = manifest["hosts"]
    assert failed and not failed & {h["host_id"] for h in finished} and finished
    assert all(h["node_id"] != lost_node for h in finished)
    assert f"agent host(s) {sorted(failed)}" in manifest["error"]
    requests = store.read_table(run_dir, "requests")
    sc = Scenario.from_dict(manifest["scenario"])
    intended = Counter({a: n for a in range(sc.run.agents) if (n := len(intended_schedule(sc, a)))})
    assert Counter(requests.column("agent_id").to_pylist()) == intended  # one row per intended request
    # the dead host's requests: in flight or buffered when it died ("lost:"), or due after ("not started:")
    errors = Counter((e or "").split(":")[0] for e in requests.column("error").to_pylist())
    assert errors["lost"] > 0 and errors["not started"] > 0
    assert errors["lost"] + errors["not started"] == manifest["lost_requests"]
    # the lost node's FUSE server died with it; a surviving node unmounted what it left on this machine
    assert not _fuse_mounts(), "a FUSE mount was left behind"
    assert not list(Path(tempfile.gettempdir()).glob("raybench-cluster-*")), "a node's folder was left behind"
