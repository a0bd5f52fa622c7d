"""An agent host's files on its node's FUSE mount: the handles it keeps open (one per key, opened
ahead of the load or on first use) and one request's file operation, timed as its FUSE stage.
Plain code, run in the host's worker threads; ``AgentHost`` (raybench.actors.host) owns one
:class:`FileHandles` per run.
"""

from __future__ import annotations

import contextlib
import os
import resource
import threading
import time
from collections import OrderedDict

from fuse_bench.fs import key_file

#: Most files a host opens ahead of the load (the most popular keys first; how long that takes:
#: docs/fuse.md); the rest open on first use.
OPEN_AHEAD_MAX_FILES = 20_000


class FileHandles:
    """Open file handles of one host on its node's mount, one per key, least recently used
    closed first. Thread-safe; a key's handle is never used by two threads at once because the
    request holds the key's lease while it does its file operation.

    ``capacity`` should cover the keys the host touches: a miss costs an open (and the close of
    the handle it evicts), several FUSE round trips instead of the request's one.
    """

    def __init__(self, root: str, capacity: int = 256, create: bool = True) -> None:
        self.root = root
        self.capacity = capacity
        # O_CREAT only where the files may be missing: an open with O_CREAT takes the folder's
        # lock in the kernel exclusively (for a FUSE round trip) when the name is not cached yet
        self._flags = os.O_RDWR | (os.O_CREAT if create else 0)
        self._fds: OrderedDict[int, int] = OrderedDict()
        self._lock = threading.Lock()
        self.opened = 0

    def get(self, key: int) -> int:
        with self._lock:
            fd = self._fds.get(key)
            if fd is not None:
                self._fds.move_to_end(key)
                return fd
        fd = os.open(f"{self.root}/{key_file(key)}", self._flags, 0o600)
        evicted = []
        with self._lock:
            self.opened += 1
            self._fds[key] = fd
            while len(self._fds) > self.capacity:
                evicted.append(self._fds.popitem(last=False)[1])
        for old in evicted:  # outside the lock: a close is a FUSE round trip (flush, release)
            os.close(old)
        return fd

    def open_ahead(self, keys: int, most: int = OPEN_AHEAD_MAX_FILES) -> int:
        """Open the files of keys ``0 .. min(keys, capacity, most) - 1`` now (key 0 is the most
        popular), so that requests find their handles open; returns how many were opened (an
        OSError, e.g. a dead mount, propagates: the handles opened so far stay)."""
        before = self.opened
        for key in range(min(keys, self.capacity, most)):
            self.get(key)
        return self.opened - before

    def drop(self, key: int) -> None:
        """Forget (and close) the handle of ``key``: after a FUSE error it may belong to a dead
        mount; the next request on the key opens the file again."""
        with self._lock:
            fd = self._fds.pop(key, None)
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    def close(self) -> None:
        with self._lock:
            for fd in self._fds.values():
                with contextlib.suppress(OSError):
                    os.close(fd)
            self._fds.clear()


def handle_capacity(keys: int) -> int:
    """How many file handles a host keeps open: one per key, up to half its file-descriptor limit
    (the rest is for Ray's and raybench's sockets)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return max(16, min(keys, soft // 2))


def file_op(
    root: str, key: int, payload: bytes, write: bool, stat: bool, handles: FileHandles | None, create: bool = True
) -> float:
    """One request's file operation on the node's mount; returns its duration in ms. Runs in a
    worker thread.

    safe: read the file; risky: write it whole; complex: write, then stat. With ``handles`` the
    operation uses the host's cached handle of the file (a pread/pwrite that crosses FUSE once when
    the mount uses direct_io); without, it opens and closes the file as well (creating it when
    ``create``; else it must exist).
    """
    path = f"{root}/{key_file(key)}"
    creat = os.O_CREAT if create else 0
    t0 = time.perf_counter_ns()
    if handles is not None:
        fd = handles.get(key)
        if write:
            os.pwrite(fd, payload, 0)
            if stat:
                os.fstat(fd)
        else:
            os.pread(fd, len(payload) or 4096, 0)
    elif write:
        fd = os.open(path, os.O_WRONLY | creat | os.O_TRUNC, 0o600)
        try:
            os.write(fd, payload)
        finally:
            os.close(fd)
        if stat:
            os.stat(path)
    else:
        fd = os.open(path, os.O_RDONLY | creat, 0o600)
        try:
            os.read(fd, len(payload) or 4096)
        finally:
            os.close(fd)
    return (time.perf_counter_ns() - t0) / 1e6
