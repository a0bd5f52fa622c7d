"""A concurrent file workload, timed per operation: the same code against FUSE and a native folder.

``run_workload(root, workload, target=...)`` prepares a file set under ``root``, runs
``workload.workers`` closed-loop workers for ``workload.duration_s`` seconds, removes what it
created and returns one row per operation (columns: :data:`COLUMNS`). What a workload is, and what
each operation times, is in :mod:`fuse_bench.workload`.

Workers are threads; with ``processes > 0`` they are spread over that many child processes
(plain subprocesses) so that the load generator itself is not limited by one GIL.

Never hangs: an operation that fails is recorded with ``ok=False`` and its errno; a worker whose
operation fails with ENOTCONN/ECONNABORTED/ENODEV (the mount is gone) records it and stops, since
every later operation would fail the same way. An operation still blocked ``op_timeout_s`` after
the end of the run is recorded as ``ok=False, errno=ETIMEDOUT`` with the time it had waited so
far, and its thread is abandoned (daemon).
"""

from __future__ import annotations

import contextlib
import errno
import os
import pickle
import random
import secrets
import select
import shutil
import struct
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from fuse_bench.errors import RuntimeFailure, UsageError
from fuse_bench.workload import TARGETS, Workload

if TYPE_CHECKING:
    import pyarrow as pa

#: errnos that mean the mount itself is gone for good.
MOUNT_GONE = frozenset({errno.ENOTCONN, errno.ECONNABORTED, errno.ENODEV})
#: Seconds to prepare (or remove) the file set before giving up on a hung filesystem.
SETUP_TIMEOUT_S = 60.0
#: Seconds child processes get to start (spawn imports Python afresh) before the run is abandoned.
STARTUP_TIMEOUT_S = 60.0
_READ_CAP = 1 << 20

#: One recorded operation: (ts_ns, worker, op, bytes, latency_us, ok, errno).
Row = tuple[int, int, str, int, float, bool, int | None]
#: Columns of the table :func:`run_workload` returns, in order: start of the operation (UTC ns),
#: worker, operation, bytes moved, latency (µs), success, errno of a failure (null on success),
#: and the run, node and target given to it.
COLUMNS = ("run_id", "ts_ns", "node_id", "worker", "op", "target", "bytes", "latency_us", "ok", "errno")


def rows_schema() -> pa.Schema:
    """The Arrow schema of :func:`run_workload`'s table (:data:`COLUMNS`; only ``errno`` is nullable)."""
    import pyarrow as pa

    s, i32, i64 = pa.string(), pa.int32(), pa.int64()
    types = (s, i64, s, i32, s, s, i64, pa.float64(), pa.bool_(), i32)
    return pa.schema([pa.field(n, t, nullable=n == "errno") for n, t in zip(COLUMNS, types, strict=True)])


# -- the file set --------------------------------------------------------------------------------


def _dir_of(bases: tuple[str, ...], wl: Workload, worker: int) -> str:
    """The worker's folder: worker k works under ``bases[k % len(bases)]`` (one base per mount)."""
    return os.path.join(bases[worker % len(bases)], "shared" if wl.shared else f"w{worker}")


def _prepare(bases: tuple[str, ...], wl: Workload) -> None:
    for base in bases:
        os.mkdir(base, 0o700)
    payload = b"\xa5" * wl.file_size
    for d in sorted({_dir_of(bases, wl, k) for k in range(wl.workers)}):
        os.mkdir(d)
        for i in range(wl.files):
            fd = os.open(os.path.join(d, f"f{i:05d}"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                os.write(fd, payload)
            finally:
                os.close(fd)


def _bounded(fn: Callable[[], None], timeout: float, what: str) -> None:
    """Run ``fn`` in a daemon thread; raise RuntimeFailure if it fails or outlives ``timeout``."""
    error: list[BaseException] = []

    def target() -> None:
        try:
            fn()
        except BaseException as exc:
            error.append(exc)

    t = threading.Thread(target=target, daemon=True, name=f"fuse-load-{what}")
    t.start()
    t.join(timeout)
    if t.is_alive():
        raise RuntimeFailure(f"{what} did not finish within {timeout:g}s (is the filesystem hung?)")
    if error:
        raise RuntimeFailure(f"{what} failed: {error[0]}") from error[0]


# -- workers -------------------------------------------------------------------------------------


class _Worker:
    """One closed-loop worker. ``rows`` only grows by whole tuples, so any prefix is consistent."""

    def __init__(self, k: int, bases: tuple[str, ...], wl: Workload) -> None:
        self.k = k
        self.wl = wl
        self.dir = _dir_of(bases, wl, k)
        self.files = [os.path.join(self.dir, f"f{i:05d}") for i in range(wl.files)]
        self.payload = b"\x5a" * wl.file_size
        self.read_size = min(wl.file_size + 1, _READ_CAP)
        self.rng = random.Random(wl.seed * 1_000_003 + k)
        self.created: deque[str] = deque()
        self.serial = 0
        self.rows: list[Row] = []
        #: (op, ts_ns, t0_perf_ns) of the operation in progress, None between operations.
        self.inflight: tuple[str, int, int] | None = None

    def _new_name(self) -> str:
        self.serial += 1
        return os.path.join(self.dir, f"c{self.k}-{self.serial}")

    def _make_one(self) -> str:
        path = self._new_name()
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        self.created.append(path)
        return path

    def _op(self, op: str) -> int:
        """Do one operation; return the bytes moved. Untimed preparation happens before ``t0``."""
        if op == "stat":
            os.stat(self.rng.choice(self.files))
            return 0
        if op == "read":
            fd = os.open(self.rng.choice(self.files), os.O_RDONLY)
            n = 0
            try:
                while True:
                    chunk = os.read(fd, self.read_size)
                    n += len(chunk)
                    if len(chunk) < self.read_size:
                        return n
            finally:
                os.close(fd)
        if op in ("write", "fsync"):
            fd = os.open(self.rng.choice(self.files), os.O_WRONLY)
            try:
                n = os.pwrite(fd, self.payload, 0)
                if op == "fsync":
                    os.fsync(fd)
                return n
            finally:
                os.close(fd)
        if op == "create":
            path = self._new_name()
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
            self.created.append(path)
            return 0
        if op == "readdir":
            os.listdir(self.dir)
            return 0
        raise AssertionError(op)

    def run(self, go: threading.Event, deadline_perf_ns: int) -> None:
        names = list(self.wl.mix)
        weights = list(self.wl.mix.values())
        go.wait()
        rows = self.rows
        perf, wall = time.perf_counter_ns, time.time_ns
        while perf() < deadline_perf_ns:
            for op in self.rng.choices(names, weights, k=64):
                target: str | None = None
                try:
                    if op in ("unlink", "rename"):
                        target = self.created.popleft() if self.created else self._make_one_untimed()
                except OSError as exc:
                    # The untimed preparation failed: record it under this op, it is what failed.
                    rows.append((wall(), self.k, op, 0, 0.0, False, exc.errno))
                    if exc.errno in MOUNT_GONE:
                        return
                    continue
                ts, t0 = wall(), perf()
                self.inflight = (op, ts, t0)
                err: int | None = None
                nbytes = 0
                try:
                    if op == "unlink":
                        os.unlink(target)  # type: ignore[arg-type]
                    elif op == "rename":
                        new = self._new_name()
                        os.rename(target, new)  # type: ignore[arg-type]
                        self.created.append(new)
                    else:
                        nbytes = self._op(op)
                except OSError as exc:
                    err = exc.errno if exc.errno is not None else errno.EIO
                t1 = perf()
                self.inflight = None
                rows.append((ts, self.k, op, nbytes, (t1 - t0) / 1000.0, err is None, err))
                if err in MOUNT_GONE:
                    return
                if t1 >= deadline_perf_ns:
                    return

    def _make_one_untimed(self) -> str:
        self._make_one()
        return self.created.popleft()


def _run_threads(
    bases: tuple[str, ...], wl: Workload, worker_ids: list[int], go_wall: Callable[[], float]
) -> list[Row]:
    """Run the given workers as threads of this process; return their rows (never blocks forever).

    ``go_wall`` blocks until the common start and returns it as a ``time.time()`` value.
    """
    workers = [_Worker(k, bases, wl) for k in worker_ids]
    go = threading.Event()
    start = go_wall()
    # The deadline is shared wall-clock time, turned into this process's perf_counter domain.
    deadline = time.perf_counter_ns() + int((start + wl.duration_s - time.time()) * 1e9)
    threads = [
        threading.Thread(target=w.run, args=(go, deadline), daemon=True, name=f"fuse-load-w{w.k}") for w in workers
    ]
    for t in threads:
        t.start()
    delay = start - time.time()
    if delay > 0:
        time.sleep(delay)
    go.set()
    hard_stop = time.monotonic() + max(0.0, start + wl.duration_s - time.time()) + wl.op_timeout_s
    rows: list[Row] = []
    for w, t in zip(workers, threads, strict=True):
        t.join(max(0.0, hard_stop - time.monotonic()))
        n = len(w.rows)  # snapshot first: a stuck thread may still append after this
        rows.extend(w.rows[:n])
        inflight = w.inflight
        if t.is_alive() and inflight is not None:
            op, ts, t0 = inflight
            rows.append((ts, w.k, op, 0, (time.perf_counter_ns() - t0) / 1000.0, False, errno.ETIMEDOUT))
    return rows


def _child_entry() -> None:
    """Entry point of a load process: ``python -c 'import fuse_bench.load as m; m._child_entry()'``.

    Protocol over its pipes (a subprocess rather than multiprocessing, so that it works whatever
    the parent's ``__main__`` is, e.g. inside a Ray worker): read a length-prefixed pickle of
    ``(bases, workload, worker_ids)`` on stdin; write ``R`` when ready; read the common start time
    (8-byte double); run; write the pickled rows to stdout; exit without waiting for abandoned
    threads, which may be stuck in a system call on a hung mount.
    """
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    (size,) = struct.unpack("<Q", stdin.read(8))
    bases, wl, worker_ids = pickle.loads(stdin.read(size))

    def go_wall() -> float:
        stdout.write(b"R")
        stdout.flush()
        data = stdin.read(8)
        if len(data) != 8:
            os._exit(2)  # the parent gave up on us
        return float(struct.unpack("<d", data)[0])

    rows = _run_threads(bases, wl, worker_ids, go_wall)
    stdout.write(pickle.dumps(rows, protocol=pickle.HIGHEST_PROTOCOL))
    stdout.flush()
    os._exit(0)


def _run_processes(bases: tuple[str, ...], wl: Workload) -> tuple[list[Row], list[int]]:
    groups = [list(range(p, wl.workers, wl.processes)) for p in range(wl.processes)]
    env = dict(os.environ)
    pkg_root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = pkg_root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    cmd = [sys.executable, "-c", "import fuse_bench.load as m; m._child_entry()"]
    procs = [
        subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, start_new_session=True)
        for _ in groups
    ]
    try:
        for p, g in zip(procs, groups, strict=True):
            spec = pickle.dumps((bases, wl, g), protocol=pickle.HIGHEST_PROTOCOL)
            p.stdin.write(struct.pack("<Q", len(spec)) + spec)  # type: ignore[union-attr]
            p.stdin.flush()  # type: ignore[union-attr]
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        for p in procs:
            ready, _, _ = select.select([p.stdout], [], [], max(0.0, deadline - time.monotonic()))
            if not ready or p.stdout.read(1) != b"R":  # type: ignore[union-attr]
                raise RuntimeFailure(f"a load process did not start within {STARTUP_TIMEOUT_S:g}s")
        start = struct.pack("<d", time.time() + 0.05)
        for p in procs:
            p.stdin.write(start)  # type: ignore[union-attr]
            p.stdin.flush()  # type: ignore[union-attr]
        outputs: list[bytes | None] = [None] * len(procs)

        def collect(i: int) -> None:
            outputs[i] = procs[i].stdout.read()  # type: ignore[union-attr]

        readers = [threading.Thread(target=collect, args=(i,), daemon=True) for i in range(len(procs))]
        for t in readers:
            t.start()
        hard_stop = time.monotonic() + wl.duration_s + wl.op_timeout_s + 30.0
        for t in readers:
            t.join(max(0.0, hard_stop - time.monotonic()))
    finally:
        for p in procs:
            if p.poll() is None:
                with contextlib.suppress(OSError):
                    p.wait(timeout=5.0)
            if p.poll() is None:
                p.kill()
                p.wait()
    rows: list[Row] = []
    lost: list[int] = []
    for g, data in zip(groups, outputs, strict=True):
        try:
            rows.extend(pickle.loads(data))  # type: ignore[arg-type]
        except Exception:
            lost.extend(g)  # the process died or hung outside the file system calls
    return rows, sorted(lost)


# -- the public entry point ----------------------------------------------------------------------


def run_workload(
    root: Path | Sequence[Path], workload: Workload, *, target: str, node_id: str = "local", run_id: str = ""
) -> pa.Table:
    """Run ``workload`` in a new folder under ``root`` and return its rows, one per operation.

    Args:
        root: a directory on the filesystem to measure (a FUSE mountpoint, or a native folder), or
            several (several mounts): worker k then works under the (k mod n)-th, and a shared
            file set is shared by the workers of one root.
        workload: what to run.
        target: 'fuse' or 'native' (stored in each row; it does not change what is done).
        node_id, run_id: stored in each row.

    Returns:
        A table of :func:`rows_schema`, one row per operation, in order of start time. Schema
        metadata ``lost_workers`` lists workers whose process never reported (normally empty).

    Raises:
        UsageError: bad target, or ``root`` is not a directory.
        RuntimeFailure: the file set could not be prepared (e.g. the mount is dead or hung).
    """
    import pyarrow as pa

    if target not in TARGETS:
        raise UsageError(f"target must be one of {', '.join(TARGETS)} (got {target!r})")
    roots = [Path(root)] if isinstance(root, (str, os.PathLike)) else [Path(r) for r in root]
    for r in roots:
        if not r.is_dir():
            raise UsageError(f"{r} is not a directory")
    tag = f"rbload-{target}-{secrets.token_hex(4)}"
    bases = tuple(os.path.join(os.fspath(r), tag) for r in roots)
    where = ", ".join(map(str, roots))
    _bounded(lambda: _prepare(bases, workload), SETUP_TIMEOUT_S, f"preparing the file set in {where}")
    lost: list[int] = []
    try:
        if workload.processes == 0:
            rows = _run_threads(bases, workload, list(range(workload.workers)), lambda: time.time() + 0.01)
        else:
            rows, lost = _run_processes(bases, workload)
    finally:
        # Best effort: on a dead mount removal fails fast, on a hung one it is abandoned.
        for base in bases:
            with contextlib.suppress(RuntimeFailure):
                _bounded(lambda b=base: shutil.rmtree(b, ignore_errors=True), SETUP_TIMEOUT_S, "removing the file set")
    rows.sort(key=lambda r: r[0])
    n = len(rows)
    cols = list(zip(*rows, strict=True)) if rows else [[] for _ in range(7)]
    plain = rows_schema()
    table = pa.table(
        {
            "run_id": pa.array([run_id] * n, pa.string()),
            "ts_ns": pa.array(cols[0], pa.int64()),
            "node_id": pa.array([node_id] * n, pa.string()),
            "worker": pa.array(cols[1], pa.int32()),
            "op": pa.array(cols[2], pa.string()),
            "target": pa.array([target] * n, pa.string()),
            "bytes": pa.array(cols[3], pa.int64()),
            "latency_us": pa.array(cols[4], pa.float64()),
            "ok": pa.array(cols[5], pa.bool_()),
            "errno": pa.array(cols[6], pa.int32()),
        },
        schema=plain,
    )
    return table.replace_schema_metadata({b"lost_workers": ",".join(map(str, lost)).encode()})
