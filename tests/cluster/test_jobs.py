"""The `ray job submit` route of cluster/README.md, for real: `cluster/local.sh up 1` (a head with
the Jobs API on 127.0.0.1 and one worker raylet), this checkout shipped as the job's working dir,
`raybench run --address auto` as the job's entrypoint on the head node; then the run folder the
job's last log line names. Also: a driver whose authentication mode is not the cluster's is told
what to set, at once (the same cluster)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from localsh import RAY, ROOT, LocalCluster, dashboard_missing, local_cluster

from raybench.results import store

pytestmark = [
    pytest.mark.ray,
    pytest.mark.cluster,
    pytest.mark.slow,
    pytest.mark.skipif(dashboard_missing() is not None, reason=str(dashboard_missing())),
]

#: what the job's working dir leaves out, beyond .gitignore (which `ray job submit` follows too)
EXCLUDES = ["/.git/", "/.venv/", "/results/"]


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    with local_cluster(workers=1) as c:
        yield c


def test_job_submit_runs_raybench_on_the_head_node(cluster: LocalCluster, tmp_path: Path):
    from ray.job_submission import JobStatus, JobSubmissionClient

    out = tmp_path / "results"
    submission_id = f"raybench-test-{os.getpid()}-{time.monotonic_ns()}"
    # as cluster/README.md has it; the environment of the job's driver is the head node's
    # (local.sh started it with RAY_AUTH_MODE=disabled and the venv first on PATH): nothing to pass
    submit = [
        str(RAY), "job", "submit", "--address", cluster.jobs, "--submission-id", submission_id,
        "--working-dir", ".", "--runtime-env-json", json.dumps({"excludes": EXCLUDES}), "--",
        "raybench", "run", "--preset", "smoke", "--duration", "10s", "--agents", "300", "--quiet",
        # no thresholds: the exit status says the run went through, not how loaded this machine is
        "--set", "sla.thresholds=[]",
        "--address", "auto", "--out", str(out),
    ]  # fmt: skip
    started = time.monotonic()
    proc = subprocess.run(submit, cwd=ROOT, capture_output=True, text=True, timeout=600)
    took = time.monotonic() - started
    client = JobSubmissionClient(cluster.jobs)
    # `ray job logs` as cluster/README.md has it: its last line is the run folder on the head node
    logs = subprocess.run(
        [str(RAY), "job", "logs", "--address", cluster.jobs, submission_id],
        capture_output=True, text=True, timeout=60,
    ).stdout  # fmt: skip
    assert proc.returncode == 0, f"{proc.stderr[-2000:]}\n--- job logs ---\n{logs[-3000:]}"
    assert client.get_job_status(submission_id) == JobStatus.SUCCEEDED
    run_dir = Path(logs.strip().splitlines()[-1])  # on the head node: here, this machine
    assert run_dir.parent == out, logs[-3000:]
    manifest = store.load_manifest(run_dir)
    assert manifest["status"] == "completed", manifest.get("error")
    assert store.read_table(run_dir, "requests").num_rows > 0
    assert len(manifest["cluster"]["nodes"]) == 2  # the head and the worker raylet
    print(f"job {submission_id} SUCCEEDED in {took:.1f}s: {run_dir}", file=sys.stderr)


def test_a_token_driver_on_a_cluster_without_authentication_is_told_what_to_set(cluster: LocalCluster, tmp_path: Path):
    """Ray's own symptom is "actors did not come up ...: The actor died unexpectedly ... cancelled
    before it started" (the cluster's workers cannot call back into a driver that asks for a
    token); raybench says which setting differs, before any actor starts."""
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "0123456789abcdef" * 2}
    cmd = [
        sys.executable, "-m", "raybench", "run", "--preset", "smoke", "--duration", "2s", "--warmup", "1s", "--quiet",
        "--address", cluster.gcs, "--out", str(tmp_path),
    ]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3, proc.stderr[-2000:]
    line = next(x for x in proc.stderr.splitlines() if x.startswith("raybench: "))
    assert "different authentication modes (cluster: disabled, driver: token" in line, line
    assert "set RAY_AUTH_MODE=disabled for the driver" in line, line
    assert "joined Ray at " in line and "actors did not come up" not in line, line  # not the 120 s wait for actors
    assert not list(tmp_path.iterdir())  # refused before a run folder was made
