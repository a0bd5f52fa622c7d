"""A driver whose Ray authentication mode is not the cluster's is told what to set
(raybench.engine.cluster.connect): a real head node started with token authentication, and the
hint's logic for every pair of modes. The other direction (a token driver on a cluster without
authentication) is tested on tests/cluster/test_jobs.py's cluster."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from localsh import RAY, ROOT, down, free_port, local_env

from raybench.engine.cluster import TOKEN_SOURCES, auth_mismatch_hint, cluster_auth_mode

TOKEN = "feedc0de" * 4  # this test's cluster's token (the user's ~/.ray/auth_token is never read)


@pytest.fixture(scope="module")
def token_cluster() -> Iterator[str]:
    """A head node (no dashboard, no workers) with RAY_AUTH_MODE=token; its GCS address."""
    folder = Path(tempfile.mkdtemp(prefix="rba-"))
    env = {**local_env(folder), "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": TOKEN}
    port = env["RAYBENCH_LOCAL_PORT"]
    try:
        start = [
            str(RAY), "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=1",
            f"--temp-dir={folder}/n0", "--include-dashboard=false",
            f"--dashboard-port={env['RAYBENCH_DASHBOARD_PORT']}",
            f"--ray-client-server-port={env['RAYBENCH_CLIENT_PORT']}", "--disable-usage-stats",
        ]  # fmt: skip
        proc = subprocess.run(start, env=env, cwd=ROOT, capture_output=True, text=True, timeout=180)
        assert proc.returncode == 0, proc.stderr[-3000:]
        yield f"127.0.0.1:{port}"
    finally:
        down(env)  # cluster/local.sh down finds it by its folder and port
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.ray
@pytest.mark.cluster
def test_the_cluster_mode_is_read_from_its_gcs(token_cluster: str):
    assert cluster_auth_mode(token_cluster) == "token"
    assert cluster_auth_mode(f"127.0.0.1:{free_port()}") is None  # nothing there
    assert cluster_auth_mode("ray://127.0.0.1:10001") is None  # Ray Client: not asked


@pytest.mark.ray
@pytest.mark.cluster
def test_a_driver_without_authentication_on_a_token_cluster_is_told_what_to_set(token_cluster: str, tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH_TOKEN")}
    env["RAY_AUTH_MODE"] = "disabled"
    cmd = [
        sys.executable, "-m", "raybench", "run", "--preset", "smoke", "--duration", "2s", "--warmup", "1s", "--quiet",
        "--address", token_cluster, "--out", str(tmp_path),
    ]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3, proc.stderr[-2000:]
    line = next(x for x in proc.stderr.splitlines() if x.startswith("raybench: "))
    assert "different authentication modes (cluster: token, driver: disabled)" in line, line
    assert "set RAY_AUTH_MODE=token and give the driver the cluster's token" in line, line
    # told at once by raybench's own check, not after Ray's 20 s of retries (that path reads
    # "could not start or reach Ray ...: <Ray's error>; <hint>")
    assert "could not reach Ray at " in line and "could not start or reach" not in line, line


def test_the_hint_says_what_to_set_for_each_pair_of_modes(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    hint = auth_mismatch_hint("disabled", "token", joined=True)
    assert hint is not None and "(cluster: disabled, driver: token, as RAY_AUTH_MODE=token)" in hint
    assert hint.endswith("set RAY_AUTH_MODE=disabled for the driver, as the cluster's nodes have it")
    monkeypatch.delenv("RAY_AUTH_MODE")  # unset: `--address auto` turned token authentication on
    hint = auth_mismatch_hint("disabled", "token", joined=True)
    assert hint is not None and "RAY_AUTH_MODE is unset and Ray turned token authentication on" in hint
    hint = auth_mismatch_hint("token", "disabled", joined=False)
    assert hint is not None and "set RAY_AUTH_MODE=token" in hint and TOKEN_SOURCES in hint
    # both token, refused: the token differs
    hint = auth_mismatch_hint("token", "token", joined=False)
    assert hint is not None and "give this driver the token its nodes have" in hint and TOKEN_SOURCES in hint
    # agreeing, or the cluster's mode unknown: nothing to add
    assert auth_mismatch_hint("token", "token", joined=True) is None
    assert auth_mismatch_hint("disabled", "disabled", joined=True) is None
    assert auth_mismatch_hint(None, "token", joined=False) is None
    for hint in (
        auth_mismatch_hint("disabled", "token", joined=True),
        auth_mismatch_hint("token", "disabled", joined=False),
    ):
        assert hint is not None and "\n" not in hint  # one line
