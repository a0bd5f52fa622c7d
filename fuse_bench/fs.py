"""The test filesystems served over FUSE: the in-memory tree here, and a passthrough over a
directory (:mod:`fuse_bench.passthrough`).

Both classes are plain objects with fusepy-style ``Operations`` methods (``getattr(path, fh)``,
``read(path, size, offset, fh)``, ...). They import no FUSE binding, so they can be unit-tested
without a mount, and the same class is served by fusepy (libfuse 2) and mfusepy (libfuse 3);
:mod:`fuse_bench.serve` adapts them to each binding.

Contracts:

* Errors are raised as :class:`OSError` with a positive errno; both bindings turn that into
  ``-errno`` for the kernel. The errnos follow Linux: ENOENT, EEXIST, ENOTDIR, EISDIR, ENOTEMPTY,
  EINVAL (directory moved into itself), EBUSY (removing the root), ENAMETOOLONG, EBADF.
* Thread safety: libfuse's multithreaded loop calls these methods from many threads at once.
  :class:`MemoryFS` guards its whole tree with one lock. One lock, not one per node, because the
  GIL already serializes the Python handlers, so finer locks would buy no parallelism and would
  make rename (two parents) deadlock-prone. Critical sections are short and never do I/O.
* File handles: ``open``/``create`` return a handle that names the node itself, so reads and
  writes on an open file keep working after it is unlinked or renamed (the mount uses
  ``hard_remove``, so the kernel sends unlink straight through instead of hiding the file).
* Times are integer nanoseconds (``use_ns = True``).
"""

from __future__ import annotations

import errno
import itertools
import os
import stat as st
import threading
import time
from typing import Any

#: Longest file name accepted, as on ext4/tmpfs.
NAME_MAX = 255
#: Block size reported by getattr/statfs of the in-memory tree.
BLOCK_SIZE = 4096
#: Capacity reported by statfs of the in-memory tree (it has no real limit).
MEMORY_CAPACITY_BYTES = 1 << 40

# utimensat's special nanosecond values. libfuse passes them through in tv_nsec, and the bindings
# fold (tv_sec, tv_nsec) into one integer, so they show up as this remainder modulo 10**9. A real
# timestamp with exactly this nanosecond part is a 1-in-10**9 coincidence we accept.
UTIME_NOW_REM = ((1 << 30) - 1) % 1_000_000_000
UTIME_OMIT_REM = ((1 << 30) - 2) % 1_000_000_000


def os_error(code: int, path: str | None = None) -> OSError:
    """An OSError with ``code`` and its standard message, as the FUSE bindings expect."""
    return OSError(code, os.strerror(code), path)


class _Node:
    """One inode of the in-memory tree: a directory (``children``) or a regular file (``data``)."""

    __slots__ = ("atime", "children", "ctime", "data", "gid", "ino", "mode", "mtime", "nlink", "uid")

    def __init__(self, ino: int, mode: int, uid: int, gid: int) -> None:
        now = time.time_ns()
        self.ino = ino
        self.mode = mode
        self.uid = uid
        self.gid = gid
        self.atime = self.mtime = self.ctime = now
        self.nlink = 2 if st.S_ISDIR(mode) else 1
        self.children: dict[str, _Node] | None = {} if st.S_ISDIR(mode) else None
        self.data: bytearray | None = None if st.S_ISDIR(mode) else bytearray()

    def attrs(self) -> dict[str, int]:
        size = len(self.data) if self.data is not None else BLOCK_SIZE
        return {
            "st_mode": self.mode,
            "st_ino": self.ino,
            "st_nlink": self.nlink,
            "st_uid": self.uid,
            "st_gid": self.gid,
            "st_size": size,
            "st_blocks": (size + 511) // 512,
            "st_blksize": BLOCK_SIZE,
            "st_atime": self.atime,
            "st_mtime": self.mtime,
            "st_ctime": self.ctime,
        }


def split_path(path: str) -> list[str]:
    """The names of a path from the kernel; ENAMETOOLONG for a name over :data:`NAME_MAX` bytes."""
    parts = [p for p in path.split("/") if p]
    for p in parts:
        if len(p.encode()) > NAME_MAX:
            raise os_error(errno.ENAMETOOLONG, path)
    return parts


class MemoryFS:
    """A thread-safe in-memory tree (directories and regular files only).

    Everything lives in this process and is gone when the filesystem is unmounted.
    """

    use_ns = True
    # Operations on an open file are served by handle, never by path: libfuse may then skip
    # computing the path (cheaper) and keeps calling us for files unlinked while open.
    flag_nullpath_ok = True
    flag_nopath = True
    flag_utime_omit_ok = True

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._inos = itertools.count(2)
        self._fhs = itertools.count(1)
        self.root = _Node(1, st.S_IFDIR | 0o755, os.getuid(), os.getgid())
        #: open handle -> (node, open flags)
        self._handles: dict[int, tuple[_Node, int]] = {}

    # -- lookup helpers; callers hold self._lock -------------------------------------------------

    def _lookup(self, path: str) -> _Node:
        node = self.root
        for name in split_path(path):
            if node.children is None:
                raise os_error(errno.ENOTDIR, path)
            child = node.children.get(name)
            if child is None:
                raise os_error(errno.ENOENT, path)
            node = child
        return node

    def _parent(self, path: str) -> tuple[_Node, str]:
        parts = split_path(path)
        if not parts:
            raise os_error(errno.EBUSY, path)  # the root has no parent entry to change
        parent = self.root
        for name in parts[:-1]:
            if parent.children is None:
                raise os_error(errno.ENOTDIR, path)
            child = parent.children.get(name)
            if child is None:
                raise os_error(errno.ENOENT, path)
            parent = child
        if parent.children is None:
            raise os_error(errno.ENOTDIR, path)
        return parent, parts[-1]

    def _node_of(self, path: str | None, fh: int | None) -> _Node:
        if fh:
            entry = self._handles.get(fh)
            if entry is not None:
                return entry[0]
        if path is None:
            raise os_error(errno.EBADF)
        return self._lookup(path)

    def _new(self, mode: int) -> _Node:
        return _Node(next(self._inos), mode, os.getuid(), os.getgid())

    # -- metadata ---------------------------------------------------------------------------------

    def getattr(self, path: str | None, fh: int | None = None) -> dict[str, int]:
        with self._lock:
            return self._node_of(path, fh).attrs()

    def access(self, path: str, amode: int) -> int:
        with self._lock:
            self._lookup(path)
        return 0

    def chmod(self, path: str | None, mode: int) -> int:
        with self._lock:
            node = self._node_of(path, None)
            node.mode = st.S_IFMT(node.mode) | st.S_IMODE(mode)
            node.ctime = time.time_ns()
        return 0

    def chown(self, path: str | None, uid: int, gid: int) -> int:
        with self._lock:
            node = self._node_of(path, None)
            if uid != -1:
                node.uid = uid
            if gid != -1:
                node.gid = gid
            node.ctime = time.time_ns()
        return 0

    def utimens(self, path: str | None, times: tuple[int, int] | None = None) -> int:
        now = time.time_ns()
        with self._lock:
            node = self._node_of(path, None)
            atime, mtime = times if times is not None else (now, now)
            if atime % 1_000_000_000 != UTIME_OMIT_REM:
                node.atime = now if atime % 1_000_000_000 == UTIME_NOW_REM else int(atime)
            if mtime % 1_000_000_000 != UTIME_OMIT_REM:
                node.mtime = now if mtime % 1_000_000_000 == UTIME_NOW_REM else int(mtime)
            node.ctime = now
        return 0

    def statfs(self, path: str) -> dict[str, int]:
        # Usage is not tracked: summing the tree per statfs would cost O(files) under the lock.
        blocks = MEMORY_CAPACITY_BYTES // BLOCK_SIZE
        used = 0
        return {
            "f_bsize": BLOCK_SIZE,
            "f_frsize": BLOCK_SIZE,
            "f_blocks": blocks,
            "f_bfree": blocks - used,
            "f_bavail": blocks - used,
            "f_files": 1 << 32,
            "f_ffree": 1 << 32,
            "f_namemax": NAME_MAX,
        }

    # -- directories ------------------------------------------------------------------------------

    def mkdir(self, path: str, mode: int) -> int:
        with self._lock:
            parent, name = self._parent(path)
            if name in parent.children:  # type: ignore[operator]
                raise os_error(errno.EEXIST, path)
            parent.children[name] = self._new(st.S_IFDIR | st.S_IMODE(mode))  # type: ignore[index]
            parent.nlink += 1
            parent.mtime = parent.ctime = time.time_ns()
        return 0

    def rmdir(self, path: str) -> int:
        with self._lock:
            parent, name = self._parent(path)
            node = parent.children.get(name)  # type: ignore[union-attr]
            if node is None:
                raise os_error(errno.ENOENT, path)
            if node.children is None:
                raise os_error(errno.ENOTDIR, path)
            if node.children:
                raise os_error(errno.ENOTEMPTY, path)
            del parent.children[name]  # type: ignore[union-attr]
            parent.nlink -= 1
            parent.mtime = parent.ctime = time.time_ns()
        return 0

    def opendir(self, path: str) -> int:
        with self._lock:
            node = self._lookup(path)
            if node.children is None:
                raise os_error(errno.ENOTDIR, path)
            fh = next(self._fhs)
            self._handles[fh] = (node, os.O_RDONLY)
            return fh

    def readdir(self, path: str | None, fh: int | None) -> list[str]:
        with self._lock:
            node = self._node_of(path, fh)
            if node.children is None:
                raise os_error(errno.ENOTDIR, path)
            return [".", "..", *node.children]

    def releasedir(self, path: str | None, fh: int | None) -> int:
        return self.release(path, fh)

    # -- files ------------------------------------------------------------------------------------

    def create(self, path: str, mode: int, flags: int | None = None) -> int:
        with self._lock:
            parent, name = self._parent(path)
            node = parent.children.get(name)  # type: ignore[union-attr]
            if node is None:
                node = self._new(st.S_IFREG | st.S_IMODE(mode))
                parent.children[name] = node  # type: ignore[index]
                parent.mtime = parent.ctime = time.time_ns()
            elif flags is not None and flags & os.O_EXCL:
                raise os_error(errno.EEXIST, path)
            elif node.data is None:
                raise os_error(errno.EISDIR, path)
            elif flags is not None and flags & os.O_TRUNC:
                node.data.clear()
            fh = next(self._fhs)
            self._handles[fh] = (node, flags if flags is not None else os.O_RDWR)
            return fh

    def open(self, path: str, flags: int) -> int:
        with self._lock:
            node = self._lookup(path)
            if node.data is None and flags & (os.O_WRONLY | os.O_RDWR):
                raise os_error(errno.EISDIR, path)
            if node.data is not None and flags & os.O_TRUNC and flags & (os.O_WRONLY | os.O_RDWR):
                node.data.clear()
                node.mtime = node.ctime = time.time_ns()
            fh = next(self._fhs)
            self._handles[fh] = (node, flags)
            return fh

    def read(self, path: str | None, size: int, offset: int, fh: int | None) -> bytes:
        with self._lock:
            node = self._node_of(path, fh)
            if node.data is None:
                raise os_error(errno.EISDIR, path)
            return bytes(node.data[offset : offset + size])

    def write(self, path: str | None, data: bytes, offset: int, fh: int | None) -> int:
        with self._lock:
            entry = self._handles.get(fh) if fh else None
            node = entry[0] if entry is not None else self._node_of(path, None)
            if node.data is None:
                raise os_error(errno.EISDIR, path)
            buf = node.data
            if entry is not None and entry[1] & os.O_APPEND:
                # The kernel computes the append offset from the size it last saw; under concurrent
                # appends only the filesystem knows the true end.
                offset = len(buf)
            if offset > len(buf):
                buf.extend(bytes(offset - len(buf)))
            buf[offset : offset + len(data)] = data
            node.mtime = node.ctime = time.time_ns()
            return len(data)

    def truncate(self, path: str | None, length: int, fh: int | None = None) -> int:
        if length < 0:
            raise os_error(errno.EINVAL, path)
        with self._lock:
            node = self._node_of(path, fh)
            if node.data is None:
                raise os_error(errno.EISDIR, path)
            if length < len(node.data):
                del node.data[length:]
            else:
                node.data.extend(bytes(length - len(node.data)))
            node.mtime = node.ctime = time.time_ns()
        return 0

    def flush(self, path: str | None, fh: int | None) -> int:
        return 0

    def fsync(self, path: str | None, datasync: int, fh: int | None) -> int:
        return 0  # memory is as durable as this filesystem gets

    def release(self, path: str | None, fh: int | None) -> int:
        with self._lock:
            self._handles.pop(fh or 0, None)
        return 0

    def unlink(self, path: str) -> int:
        with self._lock:
            parent, name = self._parent(path)
            node = parent.children.get(name)  # type: ignore[union-attr]
            if node is None:
                raise os_error(errno.ENOENT, path)
            if node.children is not None:
                raise os_error(errno.EISDIR, path)
            del parent.children[name]  # type: ignore[union-attr]
            node.nlink -= 1
            parent.mtime = parent.ctime = node.ctime = time.time_ns()
        return 0

    def rename(self, old: str, new: str) -> int:
        with self._lock:
            old_parent, old_name = self._parent(old)
            node = old_parent.children.get(old_name)  # type: ignore[union-attr]
            if node is None:
                raise os_error(errno.ENOENT, old)
            new_parent, new_name = self._parent(new)
            if node.children is not None:
                # A directory may not move below itself (rename("a", "a/b") is EINVAL on Linux).
                old_parts, new_parts = split_path(old), split_path(new)
                if new_parts[: len(old_parts)] == old_parts and new_parts != old_parts:
                    raise os_error(errno.EINVAL, new)
            target = new_parent.children.get(new_name)  # type: ignore[union-attr]
            if target is node:
                return 0
            if target is not None:
                if node.children is not None and target.children is None:
                    raise os_error(errno.ENOTDIR, new)
                if node.children is None and target.children is not None:
                    raise os_error(errno.EISDIR, new)
                if target.children:
                    raise os_error(errno.ENOTEMPTY, new)
                if target.children is not None:
                    new_parent.nlink -= 1
                target.nlink = 0
            del old_parent.children[old_name]  # type: ignore[union-attr]
            new_parent.children[new_name] = node  # type: ignore[index]
            if node.children is not None and old_parent is not new_parent:
                old_parent.nlink -= 1
                new_parent.nlink += 1
            now = time.time_ns()
            old_parent.mtime = old_parent.ctime = new_parent.mtime = new_parent.ctime = now
            node.ctime = now
        return 0


def key_file(key: int) -> str:
    """Name of key ``key``'s file in the agents' workspace (the folder agents work in)."""
    return f"k{key}"


def prefill(fs: Any, count: int, nbytes: int) -> None:
    """Create the agents' workspace in ``fs`` before it is mounted: files ``k0`` .. ``k{count-1}``
    of ``nbytes`` random bytes each, made through the filesystem's own create/write/release (in
    this process, no FUSE round trips: 10,000 files of 4 KiB take ~0.2 s in memory, ~0.65 s passed
    through).

    Agents then find the files they open, as in a real workspace: the first request on a key opens
    the file (LOOKUP + OPEN) instead of creating it (a create also takes the folder's lock in the
    kernel, so first touches on one folder queue behind each other), and a read returns data.
    Files that exist already (a passthrough folder kept across a remount) are rewritten.
    """
    data = os.urandom(nbytes)
    for key in range(count):
        fh = fs.create(f"/{key_file(key)}", 0o600, os.O_RDWR)
        try:
            if nbytes:
                fs.write(None, data, 0, fh)
            fs.truncate(None, nbytes, fh)  # a longer file kept from before ends at nbytes too
        finally:
            fs.release(None, fh)
