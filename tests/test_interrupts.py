"""Ctrl-C, SIGTERM and SIGKILL of a real `raybench run` subprocess: rows survive, no mount is left."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pytest
from click.testing import CliRunner

from raybench import store
from raybench.cli import cli

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def _start(out: Path, run_id: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "RAY_AUTH_MODE": "disabled"}
    return subprocess.Popen(
        [sys.executable, "-m", "raybench.cli", "run", "--preset", "smoke", "--agents", "200",
         "--duration", "60s", "--out", str(out), "--run-id", run_id],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip


def _wait_for_rows(run_dir: Path, timeout: float = 120.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        stream = run_dir / "requests.arrows"
        if stream.exists() and store.read_table(run_dir, "requests").num_rows > 100:
            return
        time.sleep(0.5)
    raise AssertionError("no request rows appeared")


def _raybench_mounts(run_id: str) -> list[str]:
    """FUSE mounts of the run ``run_id`` (other runs on the machine are not this test's)."""
    with open("/proc/mounts") as fh:
        return [line.split()[1] for line in fh if f"raybench-{run_id}-" in line and " fuse" in line]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_finalizes_every_file_and_exits_130(tmp_path: Path, sig: int):
    proc = _start(tmp_path, "stopped")
    run_dir = tmp_path / "stopped"
    try:
        _wait_for_rows(run_dir)
        os.kill(proc.pid, sig)
        output, _ = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, output[-2000:]
    manifest = store.load_manifest(run_dir)
    assert manifest["status"] == "interrupted"
    requests = store.read_table(run_dir, "requests")
    assert requests.num_rows == manifest["files"]["requests"] > 100
    assert not list(run_dir.glob("*.arrows"))
    assert output.strip().splitlines()[-1] == str(run_dir)
    kinds = store.read_table(run_dir, "events").column("kind").to_pylist()
    assert "interrupt" in kinds
    # the load stopped early: far fewer rows than 60 s of 200 req/s
    assert requests.num_rows < 200 * 40
    assert not _raybench_mounts("stopped")


def test_sigkill_leaves_readable_streams_and_recover_finishes_them(tmp_path: Path):
    proc = _start(tmp_path, "killed")
    run_dir = tmp_path / "killed"
    try:
        _wait_for_rows(run_dir)
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and everything it started
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert not (run_dir / "manifest.json").exists()
    streamed = store.read_table(run_dir, "requests").num_rows
    assert streamed > 100
    result = CliRunner().invoke(cli, ["recover", str(run_dir)])
    assert result.exit_code == 0, result.output
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "failed" and manifest["recovered"] is True
    table = pa.ipc.open_file(str(run_dir / "requests.arrow")).read_all()
    assert table.num_rows == manifest["files"]["requests"] >= streamed
    assert (run_dir / "windows.arrow").exists()
    again = CliRunner().invoke(cli, ["recover", str(run_dir)])
    assert again.exit_code == 2 and "already complete" in again.output
    # the FUSE server notices its owner is gone and unmounts; a later run cleans up what is left
    from fuse_bench.mount import cleanup_stale

    deadline = time.time() + 10
    while _raybench_mounts("killed") and time.time() < deadline:
        time.sleep(0.5)
    cleanup_stale()
    assert not _raybench_mounts("killed")
