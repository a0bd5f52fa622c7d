"""A cluster/local.sh cluster for a test module: free ports, a private folder, always stopped.

Not a test file: tests/cluster/test_jobs.py and tests/cluster/test_auth.py import it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).parents[2]
LOCAL_SH = ROOT / "cluster" / "local.sh"
RAY = Path(sys.executable).parent / "ray"


def dashboard_missing() -> str | None:
    """Why the Jobs API cannot be served here (ray[default] missing); None when it can."""
    try:
        import aiohttp  # noqa: F401
        import ray.dashboard  # noqa: F401
        from ray.job_submission import JobSubmissionClient  # noqa: F401
    except ImportError as exc:
        return f"the Jobs API needs Ray's dashboard (pip install 'ray[default]'): {exc}"
    return None


def free_port() -> int:
    """A TCP port free on every interface, outside Ray's default worker ports (10002-19999)."""
    while True:
        with socket.socket() as s:
            s.bind(("", 0))
            port = s.getsockname()[1]
        if not 10002 <= port <= 19999:
            return port


@dataclass
class LocalCluster:
    gcs: str  # the GCS address, for --address
    jobs: str  # the Jobs API address, for `ray job submit --address`
    env: dict[str, str]  # the environment local.sh ran with (its ports and folder)
    folder: Path  # RAYBENCH_LOCAL_DIR: node i's Ray temp dir is folder/n<i>


def local_env(folder: Path) -> dict[str, str]:
    return {
        **os.environ,
        "RAY": str(RAY),
        "RAYBENCH_LOCAL_PORT": str(free_port()),
        "RAYBENCH_DASHBOARD_PORT": str(free_port()),
        "RAYBENCH_CLIENT_PORT": str(free_port()),
        "RAYBENCH_LOCAL_DIR": str(folder),
    }


def down(env: dict[str, str]) -> None:
    subprocess.run(["bash", str(LOCAL_SH), "down"], env=env, cwd=ROOT, timeout=120, check=False)


@contextlib.contextmanager
def local_cluster(workers: int = 1) -> Iterator[LocalCluster]:
    """``cluster/local.sh up WORKERS`` on free ports in a private short folder (Ray's socket paths
    must stay under 107 characters); ``down`` and the folder removed on every exit path."""
    folder = Path(tempfile.mkdtemp(prefix="rbc-"))
    env = local_env(folder)
    try:
        up = subprocess.run(
            ["bash", str(LOCAL_SH), "up", str(workers)], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300
        )
        assert up.returncode == 0, up.stderr[-3000:]
        lines = dict(line.split(" ", 1) for line in up.stdout.split("\n") if " " in line)
        yield LocalCluster(gcs=lines["gcs"], jobs=lines["jobs"], env=env, folder=folder)
    finally:
        down(env)
        shutil.rmtree(folder, ignore_errors=True)
