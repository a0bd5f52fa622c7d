"""Mounting the test filesystem: availability probe, mount in a child process, unmount.

* :func:`probe` says whether FUSE can be used here, and if not, exactly why (one line).
* :class:`Mount` starts ``python -m fuse_bench.serve`` in a child process, returns once the mount
  is live, and unmounts with ``fusermount -u`` (then a lazy ``-uz``) before killing the child.
* :func:`private_mountpoint` makes a fresh mountpoint inside a new 0700 folder.

Finding raybench mounts, and cleaning up after dead ones, is :mod:`fuse_bench.mounttable`. No
mount uses ``allow_other``.

Mounts use libfuse's ``auto_unmount``, and each :class:`Mount` holds a copy of the socket that
fusermount's watchdog waits on (:mod:`fuse_bench.serve`): a mount whose filesystem process and
owner are both killed goes away within milliseconds, with no clean-up call; while the owner lives,
a killed filesystem process leaves its dead mount for the owner's ``stop``. What no unmount
removes (the mountpoint folder, the log beside it) is removed by the next
:func:`fuse_bench.mounttable.cleanup_stale`, which finds it by the server pid this module writes
at the top of every log.
"""

from __future__ import annotations

import contextlib
import ctypes.util
import errno
import importlib.util
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

from fuse_bench.errors import FuseUnavailable, UsageError
from fuse_bench.mounttable import LOG_HEADER, LOG_HEADER_RE, raybench_mounts, unmount
from fuse_bench.serve import FSNAME_PREFIX, log_path, remove_mount_dirs

BACKENDS = ("fusepy", "mfusepy")
MODES = ("memory", "passthrough")
#: Seconds the filesystem process gets to exit after its mount is gone, before SIGKILL.
EXIT_GRACE_S = 5.0
_POLL_S = 0.01
#: Seconds ``start`` waits, once mounted, for the filesystem process's copy of the watchdog socket.
KEEPER_TIMEOUT_S = 5.0


def probe(backend: str = "fusepy") -> str | None:
    """None when FUSE can be used with ``backend``; otherwise the precise reason, in one line.

    Checks, in order: Linux, ``/dev/fuse`` present, ``/dev/fuse`` openable read-write, the libfuse
    shared library (libfuse.so.2 for fusepy, libfuse3.so.3 for mfusepy), the fusermount helper,
    the Python binding. It does not mount anything, so it is cheap (well under a millisecond).
    """
    if backend not in BACKENDS:
        return f"unknown FUSE backend {backend!r}; use one of {', '.join(BACKENDS)}"
    if not sys.platform.startswith("linux"):
        return f"FUSE mounts are supported on Linux only (this is {sys.platform})"
    if not os.path.exists("/dev/fuse"):
        return "no /dev/fuse (load the fuse kernel module, or start the container with --device /dev/fuse)"
    try:
        fd = os.open("/dev/fuse", os.O_RDWR)
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EPERM):
            return "permission denied on /dev/fuse (add the user to the 'fuse' group or run as root)"
        return f"cannot open /dev/fuse: {exc.strerror}"
    os.close(fd)
    if backend == "fusepy":
        if not os.environ.get("FUSE_LIBRARY_PATH") and not ctypes.util.find_library("fuse"):
            return "libfuse.so.2 not found (install libfuse2: apt-get install libfuse2)"
        helper, package, module = "fusermount", "fusepy", "fuse"
    else:
        if not os.environ.get("FUSE_LIBRARY_PATH") and not ctypes.util.find_library("fuse3"):
            return "libfuse3.so.3 not found (install libfuse3: apt-get install fuse3)"
        helper, package, module = "fusermount3", "mfusepy", "mfusepy"
    if shutil.which(helper) is None:
        return f"no {helper} on PATH (install {'fuse' if helper == 'fusermount' else 'fuse3'})"
    if importlib.util.find_spec(module) is None:
        return f"the Python package {package} is not installed (pip install {package})"
    return None


def private_mountpoint(prefix: str = "raybench-fuse-") -> Path:
    """A new, empty mountpoint ``<tmp>/<prefix>XXXX/mnt`` inside a fresh 0700 folder."""
    base = Path(tempfile.mkdtemp(prefix=prefix))  # mkdtemp creates it 0700
    mnt = base / "mnt"
    mnt.mkdir(mode=0o700)
    return mnt


def _is_private(mnt: Path) -> bool:
    """True for a mountpoint made by :func:`private_mountpoint`."""
    return mnt.name == "mnt" and mnt.parent.name.startswith("raybench-fuse-")


def _new_log(mnt: Path) -> tuple[int, Path]:
    """The filesystem process's log file: ``<mnt>.log`` beside the mountpoint when that is in a
    raybench folder, so whoever removes the folder after a crash removes the log too
    (:func:`~fuse_bench.serve.remove_mount_dirs`); else a ``raybench-fuse-*.log`` temporary file."""
    if mnt.parent.name.startswith("raybench-"):
        path = log_path(mnt)
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), path
    fd, log = tempfile.mkstemp(prefix="raybench-fuse-", suffix=".log")
    return fd, Path(log)


def _receive_fd(sock: socket.socket, timeout: float) -> int | None:
    """One descriptor sent over ``sock`` with SCM_RIGHTS, close-on-exec so that no child of this
    process keeps it (and with it a dead mount) alive; None on end-of-file or timeout."""
    sock.settimeout(timeout)
    size = struct.calcsize("i")
    try:
        _msg, ancdata, _flags, _addr = sock.recvmsg(1, socket.CMSG_SPACE(size), socket.MSG_CMSG_CLOEXEC)
    except OSError:  # TimeoutError included: run without the watchdog socket rather than fail
        return None
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS and len(data) >= size:
            return int(struct.unpack_from("i", data)[0])
    return None


#: Extra time ``start`` allows per prefilled file: a few times what prefilling one takes (docs/fuse.md).
PREFILL_BUDGET_S = 200e-6


class Mount:
    """One FUSE mount served by a child process.

    Args:
        mountpoint: an empty directory (created 0700 if missing); see :func:`private_mountpoint`.
        backend: 'fusepy' (libfuse 2) or 'mfusepy' (libfuse 3).
        mode: 'memory' (in-memory tree) or 'passthrough' (over ``backing``).
        backing: the directory a passthrough mount forwards to.
        attr_timeout, entry_timeout: kernel caching of attributes and names, in seconds. The
            default 0 makes every stat and lookup cross FUSE.
        multithreaded: libfuse's multithreaded loop. The default is the single-threaded loop
            (``-s``): the handlers run in Python and take the GIL anyway, so extra libfuse threads
            add thread and GIL hand-overs without parallelism; on the 2-core reference machine
            the single thread gives ~3x the operations/s and a 4x lower p99 at 8 workers
            (docs/fuse.md). The filesystem is safe under both loops.
        direct_io: bypass the kernel page cache for file data.
        prefill, prefill_bytes: files ``k0`` .. ``k{prefill-1}`` of ``prefill_bytes`` bytes the
            filesystem holds when the mount goes live (:func:`fuse_bench.fs.prefill`).

    ``start()`` returns only once the mount is live; ``stop()`` is idempotent and always leaves
    the mountpoint unmounted. Use it as a context manager::

        with Mount(private_mountpoint()) as m:
            (m.mountpoint / "f").write_text("x")
    """

    def __init__(
        self,
        mountpoint: Path,
        *,
        backend: str = "fusepy",
        mode: str = "memory",
        backing: Path | None = None,
        attr_timeout: float = 0.0,
        entry_timeout: float = 0.0,
        multithreaded: bool = False,
        direct_io: bool = False,
        prefill: int = 0,
        prefill_bytes: int = 0,
    ) -> None:
        if backend not in BACKENDS:
            raise UsageError(f"unknown FUSE backend {backend!r}; use one of {', '.join(BACKENDS)}")
        if mode not in MODES:
            raise UsageError(f"unknown filesystem mode {mode!r}; use one of {', '.join(MODES)}")
        if mode == "passthrough" and (backing is None or not Path(backing).is_dir()):
            raise UsageError(f"passthrough mode needs an existing backing directory (got {backing})")
        if attr_timeout < 0 or entry_timeout < 0:
            raise UsageError("attr_timeout and entry_timeout must be >= 0 seconds")
        if prefill < 0 or prefill_bytes < 0:
            raise UsageError("prefill and prefill_bytes must be >= 0")
        self.mountpoint = Path(mountpoint).absolute()
        self.backend = backend
        self.mode = mode
        self.backing = Path(backing).absolute() if backing is not None else None
        self.attr_timeout = float(attr_timeout)
        self.entry_timeout = float(entry_timeout)
        self.multithreaded = multithreaded
        self.direct_io = direct_io
        self.prefill = int(prefill)
        self.prefill_bytes = int(prefill_bytes)
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_path: Path | None = None
        self._created_dir = False
        # This process's copy of the socket fusermount's auto_unmount watchdog waits on: while it
        # is open, a killed filesystem process leaves its dead mount for stop() (module docstring).
        self._keeper: int | None = None

    @property
    def auto_unmount(self) -> bool:
        """True when the mount goes away by itself once its filesystem process and this process
        are both dead (fusermount's watchdog, and this process holds its share of the socket)."""
        return self._keeper is not None

    @property
    def pid(self) -> int | None:
        """The filesystem process's pid (None before ``start``)."""
        return self._proc.pid if self._proc is not None else None

    def options(self) -> dict[str, object]:
        """The mount's settings, for manifests and reports."""
        return {
            "backend": self.backend,
            "mode": self.mode,
            "attr_timeout": self.attr_timeout,
            "entry_timeout": self.entry_timeout,
            "multithreaded": self.multithreaded,
            "direct_io": self.direct_io,
            "prefill": self.prefill,
            "prefill_bytes": self.prefill_bytes,
        }

    def is_mounted(self) -> bool:
        """True while the kernel shows this process's raybench mount at the mountpoint."""
        if self._proc is None:
            return False
        source = f"{FSNAME_PREFIX}{self._proc.pid}"
        return any(m.mountpoint == str(self.mountpoint) and m.source == source for m in raybench_mounts())

    def alive(self) -> bool:
        """True while the filesystem process runs and its mount is live."""
        return self._proc is not None and self._proc.poll() is None and self.is_mounted()

    def start(self, timeout: float = 10.0) -> Mount:
        """Mount and wait until the mount is live.

        Raises:
            FuseUnavailable: FUSE cannot be used (the probe's reason), or the filesystem process
                failed or did not mount within ``timeout`` seconds (with the tail of its log).
            UsageError: the mountpoint is not an empty directory or is already a mount.
        """
        if self._proc is not None:
            raise RuntimeError("Mount.start() called twice")
        reason = probe(self.backend)
        if reason is not None:
            raise FuseUnavailable(reason)
        if not self.mountpoint.exists():
            self.mountpoint.mkdir(mode=0o700, parents=True)
            self._created_dir = True
        elif not self.mountpoint.is_dir():
            raise UsageError(f"mountpoint {self.mountpoint} is not a directory")
        elif os.path.ismount(self.mountpoint) or any(os.scandir(self.mountpoint)):
            raise UsageError(f"mountpoint {self.mountpoint} is not an empty, unmounted directory")
        cmd = [sys.executable, "-m", "fuse_bench.serve", str(self.mountpoint), "--backend", self.backend]
        cmd += ["--mode", self.mode, "--parent", str(os.getpid())]
        cmd += ["--attr-timeout", repr(self.attr_timeout), "--entry-timeout", repr(self.entry_timeout)]
        if self.backing is not None:
            cmd += ["--backing", str(self.backing)]
        if not self.multithreaded:
            cmd.append("--single-threaded")
        if self.direct_io:
            cmd.append("--direct-io")
        if self.prefill:
            cmd += ["--prefill", str(self.prefill), "--prefill-bytes", str(self.prefill_bytes)]
            timeout += self.prefill * PREFILL_BUDGET_S
        fd, self._log_path = _new_log(self.mountpoint)
        env = dict(os.environ)
        # The child must import this very fuse_bench, wherever the parent found it.
        root = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        # The channel the filesystem process sends our copy of the watchdog socket over.
        keeper_end, server_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        cmd += ["--keeper-fd", str(server_end.fileno())]
        try:
            with os.fdopen(fd, "wb") as log_fh:
                # Own session: a Ctrl-C aimed at the parent must not kill the filesystem before the
                # parent has unmounted it.
                self._proc = subprocess.Popen(
                    cmd,
                    stdin=subprocess.DEVNULL,
                    stdout=log_fh,
                    stderr=log_fh,
                    env=env,
                    start_new_session=True,
                    pass_fds=(server_end.fileno(),),
                )
                # Same open file as the child's stderr (shared offset): this line comes first, as
                # the child writes nothing until its interpreter is up.
                log_fh.write(LOG_HEADER.format(pid=self._proc.pid, owner=os.getpid()).encode())
            server_end.close()  # the child's copy is the only one: EOF here when it dies
            deadline = time.monotonic() + timeout
            while not self.is_mounted():
                if self._proc.poll() is not None:
                    tail = self.log_tail()
                    self.stop()
                    raise FuseUnavailable(f"the FUSE filesystem process exited before mounting: {tail}")
                if time.monotonic() > deadline:
                    tail = self.log_tail()
                    self.stop()
                    raise FuseUnavailable(f"the FUSE mount was not live after {timeout:g}s: {tail}")
                time.sleep(_POLL_S)
            self._keeper = _receive_fd(keeper_end, KEEPER_TIMEOUT_S)
        finally:
            server_end.close()
            keeper_end.close()
        return self

    def log_tail(self, lines: int = 3) -> str:
        """The last lines of the filesystem process's log, joined into one line."""
        if self._log_path is None:
            return ""
        try:
            text = self._log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        text = [line for line in text if not LOG_HEADER_RE.match(line.encode())]  # ours, not the child's
        return " | ".join(text[-lines:]) or "(no output)"

    def stop(self) -> None:
        """Unmount (``fusermount -u``, then ``-uz``), then end the filesystem process.

        Safe to call at any time and more than once; never raises for an already dead process.
        """
        if self._proc is None:
            return
        if self.is_mounted():
            unmount(str(self.mountpoint), self.backend)
        try:
            self._proc.wait(timeout=EXIT_GRACE_S)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                self._proc.send_signal(signal.SIGKILL)
            self._proc.wait()
        # A process killed before it unmounted leaves a dead mount ("transport endpoint is not
        # connected"); it must go too.
        if self.is_mounted():
            unmount(str(self.mountpoint), self.backend)
        # Only now: closing the last copy of the watchdog socket makes fusermount unmount a dead
        # mount by itself, which would race the explicit unmount above.
        if self._keeper is not None:
            with contextlib.suppress(OSError):
                os.close(self._keeper)
            self._keeper = None
        if self._created_dir or _is_private(self.mountpoint):
            remove_mount_dirs(self.mountpoint)
        if self._log_path is not None:
            with contextlib.suppress(OSError):
                self._log_path.unlink()
            self._log_path = None

    def kill(self) -> None:
        """SIGKILL the filesystem process without unmounting (for failure tests and chaos).

        The dead mount stays while this process lives (its accesses fail with ENOTCONN); stop()
        cleans up. Were this process to die too, fusermount's watchdog would unmount it."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGKILL)
            self._proc.wait()

    def __enter__(self) -> Mount:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
