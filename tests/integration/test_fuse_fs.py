"""The filesystems: errno contracts in-process, then the same through real FUSE mounts."""

from __future__ import annotations

import errno
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from fuse_fixtures import assert_unmounted, backend, loop, mounted, require_fuse

from fuse_bench.fs import MemoryFS, key_file, prefill
from fuse_bench.mount import Mount, private_mountpoint
from fuse_bench.passthrough import PassthroughFS

__all__ = ["backend", "loop", "mounted"]  # fixtures used by name below


def _errno(fn: Any, *args: Any) -> int | None:
    try:
        fn(*args)
    except OSError as exc:
        return exc.errno
    return None


# -- in-process: the contract of MemoryFS, without a kernel in between --------------------------


def test_memoryfs_errnos() -> None:
    fs = MemoryFS()
    assert _errno(fs.getattr, "/nope") == errno.ENOENT
    fs.mkdir("/d", 0o755)
    assert _errno(fs.mkdir, "/d", 0o755) == errno.EEXIST
    fh = fs.create("/d/f", 0o644, os.O_WRONLY | os.O_CREAT)
    assert fs.write("/d/f", b"hello", 0, fh) == 5
    assert _errno(fs.create, "/d/f", 0o644, os.O_CREAT | os.O_EXCL) == errno.EEXIST
    assert _errno(fs.getattr, "/d/f/x") == errno.ENOTDIR
    assert _errno(fs.rmdir, "/d") == errno.ENOTEMPTY
    assert _errno(fs.rmdir, "/d/f") == errno.ENOTDIR
    assert _errno(fs.unlink, "/d") == errno.EISDIR
    assert _errno(fs.rename, "/d", "/d/sub") == errno.EINVAL
    fs.mkdir("/e", 0o755)
    assert _errno(fs.rename, "/d/f", "/e") == errno.EISDIR
    assert _errno(fs.rename, "/e", "/d/f") == errno.ENOTDIR
    assert _errno(fs.rmdir, "/") == errno.EBUSY
    assert _errno(fs.getattr, "/" + "x" * 256) == errno.ENAMETOOLONG
    # A handle keeps working after unlink (hard_remove semantics).
    fs.unlink("/d/f")
    assert fs.read(None, 10, 0, fh) == b"hello"
    fs.release(None, fh)
    assert fs.readdir("/d", None) == [".", ".."]


def test_memoryfs_append_and_truncate() -> None:
    fs = MemoryFS()
    fh = fs.create("/a", 0o644, os.O_WRONLY | os.O_APPEND)
    fs.write("/a", b"ab", 0, fh)
    fs.write("/a", b"cd", 0, fh)  # O_APPEND: the filesystem appends whatever offset it is told
    assert fs.read("/a", 10, 0, fh) == b"abcd"
    fs.truncate("/a", 1)
    assert fs.getattr("/a")["st_size"] == 1
    fs.truncate("/a", 3)
    assert fs.read("/a", 10, 0, fh) == b"a\0\0"


def test_prefill_makes_the_workspace_in_both_filesystems(tmp_path: Path) -> None:
    mem = MemoryFS()
    prefill(mem, 5, 100)
    names = sorted(n for n in mem.readdir("/", None) if n not in (".", ".."))
    assert names == sorted(key_file(k) for k in range(5)) == ["k0", "k1", "k2", "k3", "k4"]
    assert all(mem.getattr(f"/k{k}", None)["st_size"] == 100 for k in range(5))
    fh = mem.open("/k3", os.O_RDONLY)
    data = mem.read(None, 200, 0, fh)
    assert len(data) == 100 and data != bytes(100)  # random content, not zeros
    (tmp_path / "k1").write_bytes(b"old content that is longer than the new one" * 4)
    prefill(PassthroughFS(tmp_path), 3, 64)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k0", "k1", "k2"]
    assert all((tmp_path / f"k{k}").stat().st_size == 64 for k in range(3))  # k1 rewritten, not appended to
    prefill(MemoryFS(), 0, 100)  # nothing to do


def test_passthrough_forwards(tmp_path: Path) -> None:
    fs = PassthroughFS(tmp_path)
    fs.mkdir("/d", 0o755)
    fh = fs.create("/d/f", 0o644, os.O_RDWR)
    fs.write("/d/f", b"xyz", 0, fh)
    fs.release("/d/f", fh)
    assert (tmp_path / "d" / "f").read_bytes() == b"xyz"
    assert _errno(fs.rmdir, "/d") == errno.ENOTEMPTY
    assert _errno(fs.getattr, "/missing") == errno.ENOENT


# -- through a real mount -----------------------------------------------------------------------


def _script(root: Path) -> list[tuple[str, Any]]:
    """A fixed sequence of file operations; each step's result or errno name."""
    out: list[tuple[str, Any]] = []

    def step(name: str, fn: Any) -> None:
        try:
            out.append((name, fn()))
        except OSError as exc:
            out.append((name, errno.errorcode.get(exc.errno or 0, str(exc.errno))))

    r = str(root)
    step("mkdir d", lambda: os.mkdir(f"{r}/d"))
    step("mkdir d again", lambda: os.mkdir(f"{r}/d"))
    step("write f", lambda: Path(f"{r}/d/f").write_bytes(b"0123456789"))
    step("read f", lambda: Path(f"{r}/d/f").read_bytes())
    step("stat size", lambda: os.stat(f"{r}/d/f").st_size)
    step("stat type", lambda: (os.path.isdir(f"{r}/d"), os.path.isfile(f"{r}/d/f")))
    step("excl create", lambda: os.open(f"{r}/d/f", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    step("stat missing", lambda: os.stat(f"{r}/nope"))
    step("through a file", lambda: os.stat(f"{r}/d/f/x"))
    step("open dir for write", lambda: os.open(f"{r}/d", os.O_WRONLY))
    step("rmdir nonempty", lambda: os.rmdir(f"{r}/d"))
    step("rmdir file", lambda: os.rmdir(f"{r}/d/f"))
    step("unlink dir", lambda: os.unlink(f"{r}/d"))
    step("unlink missing", lambda: os.unlink(f"{r}/d/missing"))

    def partial_write() -> bytes:
        fd = os.open(f"{r}/d/f", os.O_RDWR)
        try:
            os.pwrite(fd, b"AB", 4)
            os.pwrite(fd, b"Z", 12)  # past the end: a hole of zeros
            return os.pread(fd, 100, 0)
        finally:
            os.close(fd)

    step("pwrite + hole", partial_write)
    step("truncate", lambda: (os.truncate(f"{r}/d/f", 3), Path(f"{r}/d/f").read_bytes())[1])

    def append() -> bytes:
        with open(f"{r}/d/f", "ab") as fh:
            fh.write(b"++")
        return Path(f"{r}/d/f").read_bytes()

    step("append", append)
    step("mkdir e", lambda: os.mkdir(f"{r}/e"))
    step("rename file onto dir", lambda: os.rename(f"{r}/d/f", f"{r}/e"))
    step("rename dir onto file", lambda: os.rename(f"{r}/e", f"{r}/d/f"))
    step("rename dir into itself", lambda: os.rename(f"{r}/d", f"{r}/d/sub"))
    step("rename missing", lambda: os.rename(f"{r}/nope", f"{r}/x"))
    step("rename file", lambda: os.rename(f"{r}/d/f", f"{r}/e/g"))
    step("listdir d", lambda: sorted(os.listdir(f"{r}/d")))
    step("listdir e", lambda: sorted(os.listdir(f"{r}/e")))
    step("listdir file", lambda: os.listdir(f"{r}/e/g"))
    step("chmod", lambda: (os.chmod(f"{r}/e/g", 0o600), oct(os.stat(f"{r}/e/g").st_mode & 0o777))[1])
    step("utime", lambda: (os.utime(f"{r}/e/g", ns=(1_000_000_000, 2_000_000_000)), os.stat(f"{r}/e/g").st_mtime_ns)[1])
    step("mkdir under missing", lambda: os.mkdir(f"{r}/nope/x"))
    step("long name", lambda: os.stat(f"{r}/" + "x" * 256))

    def unlink_open() -> bytes:
        fd = os.open(f"{r}/e/g", os.O_RDONLY)
        try:
            os.unlink(f"{r}/e/g")
            return os.pread(fd, 100, 0)
        finally:
            os.close(fd)

    step("read after unlink", unlink_open)
    step("rmdir d", lambda: os.rmdir(f"{r}/d"))
    step("rmdir e", lambda: os.rmdir(f"{r}/e"))
    step("fsync", lambda: _fsync(f"{r}/h"))
    step("statvfs namemax", lambda: os.statvfs(r).f_namemax)
    step("listdir root", lambda: sorted(os.listdir(r)))
    return out


def _fsync(path: str) -> int:
    fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o644)
    try:
        os.write(fd, b"x")
        os.fsync(fd)
        return os.fstat(fd).st_size
    finally:
        os.close(fd)


@pytest.mark.fuse
def test_scripted_sequence_matches_native(mounted: Mount) -> None:
    with tempfile.TemporaryDirectory() as native:
        expected = _script(Path(native))
    got = _script(mounted.mountpoint)
    for (name, want), (_, have) in zip(expected, got, strict=True):
        assert have == want, f"step {name!r}: FUSE gave {have!r}, native {want!r}"


@pytest.mark.fuse
def test_scripted_sequence_passthrough(tmp_path: Path) -> None:
    require_fuse("fusepy")
    with tempfile.TemporaryDirectory() as native:
        expected = _script(Path(native))
    backing = tmp_path / "backing"
    backing.mkdir()
    with Mount(private_mountpoint(), backend="fusepy", mode="passthrough", backing=backing) as m:
        got = _script(m.mountpoint)
    assert_unmounted(m.mountpoint)
    assert got == expected
    assert sorted(os.listdir(backing)) == ["h"]  # what the script left, really on disk


@pytest.mark.fuse
def test_64_threads_no_corruption(mounted: Mount) -> None:
    root = mounted.mountpoint
    errors: list[str] = []
    size = 3 * 4096 + 123  # several kernel requests per file, not page aligned

    def worker(k: int) -> None:
        pattern = bytes((k * 7 + i) % 251 for i in range(size))
        path = root / f"t{k}"
        try:
            for round_ in range(3):
                data = pattern[round_:] + pattern[:round_]
                path.write_bytes(data)
                back = path.read_bytes()
                if back != data:
                    errors.append(f"worker {k} round {round_}: read {len(back)} bytes differing from written")
        except OSError as exc:
            errors.append(f"worker {k}: {exc}")

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    assert len(os.listdir(root)) == 64


_HAMMER = """
import os, sys, time, json
root, k, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
static = {f"static{i}" for i in range(8)}
mine, bad, n = set(), [], 0
end = time.monotonic() + seconds
while time.monotonic() < end:
    n += 1
    name = f"p{k}-{n}"
    fd = os.open(os.path.join(root, name), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    os.close(fd)
    mine.add(name)
    if n % 3 == 0:
        victim = sorted(mine)[0]
        os.unlink(os.path.join(root, victim))
        mine.discard(victim)
    listing = os.listdir(root)
    names = set(listing)
    if len(names) != len(listing):
        bad.append("duplicate names in readdir")
    if not static <= names:
        bad.append(f"static files missing: {sorted(static - names)}")
    if not mine <= names:
        bad.append(f"own files missing: {sorted(mine - names)[:3]}")
print(json.dumps({"mine": sorted(mine), "bad": bad[:5], "ops": n}))
"""


@pytest.mark.fuse
def test_processes_see_consistent_readdir(mounted: Mount) -> None:
    import json
    import subprocess
    import sys

    root = mounted.mountpoint
    for i in range(8):
        (root / f"static{i}").write_bytes(b"s")
    procs = [
        subprocess.Popen([sys.executable, "-c", _HAMMER, str(root), str(k), "2.0"], stdout=subprocess.PIPE, text=True)
        for k in range(6)
    ]
    results = []
    deadline = time.monotonic() + 60
    for p in procs:
        out, _ = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
        assert p.returncode == 0
        results.append(json.loads(out))
    for r in results:
        assert r["bad"] == [], r["bad"]
        assert r["ops"] > 0
    expected = {f"static{i}" for i in range(8)} | {n for r in results for n in r["mine"]}
    assert set(os.listdir(root)) == expected
