"""raybench on a real multi-node Ray cluster (3 raylets on this machine)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

from raybench import store

pytestmark = [pytest.mark.ray, pytest.mark.cluster, pytest.mark.slow]


def _fuse_mounts() -> list[str]:
    with open("/proc/mounts") as fh:
        return [line.split()[1] for line in fh if " fuse.raybench " in line]


def test_three_node_run_uses_every_node(tmp_path: Path):
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONUNBUFFERED": "1"}
    script = Path(__file__).with_name("cluster_run.py")
    proc = subprocess.run(
        [sys.executable, str(script), str(tmp_path)], env=env, capture_output=True, text=True, timeout=420
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    outcome = json.loads(proc.stdout.strip().splitlines()[-1])
    run_dir = Path(outcome["run_dir"])
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
