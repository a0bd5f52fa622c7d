"""Mounting: probe, start/stop, failures, stale mounts after SIGKILL (real mounts, no mocks)."""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest
from fuse_fixtures import assert_unmounted, backend, loop, mounted, require_fuse

from fuse_bench.errors import UsageError
from fuse_bench.mount import Mount, private_mountpoint, probe
from fuse_bench.mounttable import cleanup_stale, raybench_mounts

__all__ = ["backend", "loop", "mounted"]


def test_probe_names_unknown_backend() -> None:
    assert "unknown FUSE backend" in (probe("nope") or "")


def test_probe_reason_without_fusermount(monkeypatch: pytest.MonkeyPatch) -> None:
    # A real condition, not a mock: no helper binary on PATH.
    monkeypatch.setenv("PATH", "/nonexistent")
    reason = probe("fusepy")
    assert reason is not None
    assert "fusermount" in reason or "/dev/fuse" in reason or "libfuse" in reason


def test_bad_arguments() -> None:
    with pytest.raises(UsageError):
        Mount(Path("/tmp/x"), backend="nope")
    with pytest.raises(UsageError):
        Mount(Path("/tmp/x"), mode="passthrough", backing=None)


@pytest.mark.fuse
def test_start_stop_leaves_nothing(mounted: Mount) -> None:
    assert mounted.alive()
    assert mounted.pid is not None
    (mounted.mountpoint / "f").write_text("x")
    mounted.stop()
    assert not mounted.alive()
    assert_unmounted(mounted.mountpoint)
    assert not mounted.mountpoint.exists()  # the private folder is gone too
    mounted.stop()  # idempotent


@pytest.mark.fuse
def test_refuses_non_empty_mountpoint(tmp_path: Path) -> None:
    require_fuse()
    (tmp_path / "junk").write_text("x")
    with pytest.raises(UsageError):
        Mount(tmp_path).start()


@pytest.mark.fuse
def test_loop_option_reaches_the_server() -> None:
    """The default single-threaded loop serves from one libfuse thread; the multithreaded loop
    starts worker threads of its own (seen in the server process while it serves files)."""
    require_fuse()
    threads = {}
    for multithreaded in (False, True):
        with Mount(private_mountpoint(), multithreaded=multithreaded) as m:
            for i in range(20):
                (m.mountpoint / f"f{i}").write_bytes(b"x")
            threads[multithreaded] = psutil.Process(m.pid).num_threads()
            assert m.options()["multithreaded"] is multithreaded
        assert_unmounted(m.mountpoint)
    assert threads[True] > threads[False], threads


@pytest.mark.fuse
def test_options_reach_the_mount() -> None:
    require_fuse()
    with Mount(private_mountpoint(), attr_timeout=1.0, entry_timeout=1.0, multithreaded=True, direct_io=True) as m:
        (m.mountpoint / "f").write_bytes(b"abc")
        assert (m.mountpoint / "f").read_bytes() == b"abc"
        assert m.options()["direct_io"] is True
        assert m.options()["multithreaded"] is True
    assert_unmounted(m.mountpoint)


@pytest.mark.fuse
def test_prefilled_files_are_there_when_the_mount_goes_live() -> None:
    require_fuse()
    with Mount(private_mountpoint(), prefill=50, prefill_bytes=4096, direct_io=True) as m:
        names = sorted(os.listdir(m.mountpoint), key=lambda n: int(n[1:]))
        assert names == [f"k{k}" for k in range(50)]
        assert all(len((m.mountpoint / n).read_bytes()) == 4096 for n in names)
        assert m.options()["prefill"] == 50 and m.options()["prefill_bytes"] == 4096
    assert_unmounted(m.mountpoint)
    with pytest.raises(UsageError):
        Mount(Path("/tmp/x"), prefill=-1)


@pytest.mark.fuse
def test_killed_filesystem_is_cleaned_up(backend: str) -> None:
    m = Mount(private_mountpoint(), backend=backend).start()
    try:
        assert m.auto_unmount
        m.kill()
        # While the owner (this process) lives, the dead mount stays, past the moment fusermount's
        # watchdog would have unmounted it (milliseconds): access fails at once, visibly, and
        # does not hang, instead of landing in the bare mountpoint folder.
        time.sleep(0.3)
        with pytest.raises(OSError) as err:
            os.stat(m.mountpoint / "x")
        assert err.value.errno == errno.ENOTCONN
        assert any(e.mountpoint == str(m.mountpoint) for e in raybench_mounts())
        assert m._log_path == m.mountpoint.parent / "mnt.log"  # beside the mountpoint, in its folder
        removed = cleanup_stale()
        assert str(m.mountpoint) in removed
        # nobody else would remove them if the owner were dead too: the folder and the log are gone
        assert not m._log_path.exists() and not m.mountpoint.parent.exists()
    finally:
        m.stop()
    assert_unmounted(m.mountpoint)


_ORPHAN = """
import sys, time
from fuse_bench.mount import Mount, private_mountpoint
m = Mount(private_mountpoint(), backend=sys.argv[1]).start()
print(m.mountpoint, m._log_path, flush=True)
time.sleep(60)
"""


@pytest.mark.fuse
def test_parent_killed_mount_goes_away() -> None:
    """The owner of a mount dies by SIGKILL: its filesystem process unmounts by itself."""
    require_fuse()
    owner = subprocess.Popen([sys.executable, "-c", _ORPHAN, "fusepy"], stdout=subprocess.PIPE, text=True)
    mountpoint = None
    try:
        mountpoint, log = owner.stdout.readline().split()  # type: ignore[union-attr]
        assert any(e.mountpoint == mountpoint for e in raybench_mounts())
        assert Path(log).exists()
        owner.send_signal(signal.SIGKILL)
        owner.wait()
        deadline = time.monotonic() + 10
        while any(e.mountpoint == mountpoint for e in raybench_mounts()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert_unmounted(Path(mountpoint))
        # ... and removes what the dead owner made for it: the private folder and its log file
        while (Path(mountpoint).parent.exists() or Path(log).exists()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not Path(mountpoint).parent.exists() and not Path(log).exists()
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait()
        if mountpoint:
            for e in raybench_mounts():
                if e.mountpoint == mountpoint:
                    subprocess.run(["fusermount", "-uz", mountpoint], check=False)


_OWNER = """
import sys, time
from fuse_bench.mount import Mount, private_mountpoint
m = Mount(private_mountpoint(), backend=sys.argv[1]).start()
print(m.mountpoint, m._log_path, m.pid, m.auto_unmount, flush=True)
time.sleep(60)
"""


def _mounted_at(mountpoint: str) -> bool:
    return any(e.mountpoint == mountpoint for e in raybench_mounts())


@pytest.mark.fuse
@pytest.mark.parametrize("order", ["together", "server_first"])
def test_sigkill_of_server_and_owner_leaves_no_mount(backend: str, order: str) -> None:
    """Every raybench process of a mount dies by SIGKILL: the filesystem process and its owner.
    fusermount's auto_unmount watchdog removes the mount within milliseconds, without any
    clean-up call; the next cleanup_stale removes the folder and log nobody alive could."""
    owner = subprocess.Popen([sys.executable, "-c", _OWNER, backend], stdout=subprocess.PIPE, text=True)
    mountpoint = None
    try:
        mountpoint, log, pid, auto_unmount = owner.stdout.readline().split()  # type: ignore[union-attr]
        assert auto_unmount == "True" and _mounted_at(mountpoint)
        os.kill(int(pid), signal.SIGKILL)
        if order == "server_first":
            # the owner still lives: its share of the watchdog socket keeps the dead mount there
            time.sleep(0.3)
            assert _mounted_at(mountpoint)
        owner.send_signal(signal.SIGKILL)
        owner.wait()
        deadline = time.monotonic() + 5
        while _mounted_at(mountpoint) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert_unmounted(Path(mountpoint))
        # no unmount removes the mountpoint folder or the log: nobody alive made them
        assert Path(mountpoint).is_dir() and Path(log).exists()
        assert mountpoint in cleanup_stale()  # "no mount left, folder left" is handled
        assert not Path(log).exists() and not Path(mountpoint).parent.exists()
    finally:
        for p in (owner.pid, int(pid) if mountpoint else None):
            with contextlib.suppress(ProcessLookupError, TypeError):
                os.kill(p, signal.SIGKILL)  # type: ignore[arg-type]
        owner.wait()
        if mountpoint and _mounted_at(mountpoint):
            subprocess.run(["fusermount", "-uz", mountpoint], check=False)


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_cleanup_stale_removes_leftovers_of_dead_servers_only() -> None:
    """No FUSE needed: the folders and logs a gone mount leaves, told apart by the log's header."""
    dead = _dead_pid()
    header = f"fuse_bench.mount: server pid={dead} owner pid={dead}\n"
    stale = Path(tempfile.mkdtemp(prefix="raybench-fuse-"))  # a private folder, as after SIGKILL
    starting = Path(tempfile.mkdtemp(prefix="raybench-fuse-"))  # a mount still starting: no header yet
    node = Path(tempfile.mkdtemp(prefix="raybench-cleanuptest-"))  # a FuseNode folder, with a backing
    fd, loose = tempfile.mkstemp(prefix="raybench-fuse-", suffix=".log")  # log of a mount elsewhere
    os.close(fd)
    try:
        (stale / "mnt").mkdir()
        (stale / "mnt.log").write_text(header + "fuse_bench.serve: pid=1 backend=fusepy lib=x\n")
        (starting / "mnt").mkdir()
        (starting / "mnt.log").write_text("")
        (node / "mnt-2").mkdir()
        (node / "mnt-2.log").write_text(header)
        (node / "fs").symlink_to("mnt-2")
        (node / "backing").mkdir()
        (node / "backing" / "k1").write_text("data")
        Path(loose).write_text(header)
        removed = cleanup_stale()
        assert str(stale / "mnt") in removed and not stale.exists()
        assert str(starting / "mnt") not in removed and (starting / "mnt").is_dir()
        # the mountpoint, its log and the link go; the folder stays for its owner: not empty
        assert str(node / "mnt-2") in removed
        assert sorted(p.name for p in node.iterdir()) == ["backing"]
        assert not Path(loose).exists()
    finally:
        for folder in (stale, starting, node):
            subprocess.run(["rm", "-rf", str(folder)], check=False)
        with contextlib.suppress(OSError):
            os.unlink(loose)


@pytest.mark.fuse
def test_cleanup_stale_leaves_a_live_mount_alone() -> None:
    require_fuse()
    with Mount(private_mountpoint()) as m:
        assert m._log_path is not None
        assert str(m.mountpoint) not in cleanup_stale()
        assert m.alive() and m._log_path.exists()
        (m.mountpoint / "f").write_text("x")
        # the log's header is this module's, not the child's: a failure message shows the child's
        assert "fuse_bench.mount" not in m.log_tail(10)
    assert_unmounted(m.mountpoint)
