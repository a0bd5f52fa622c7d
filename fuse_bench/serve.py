"""The filesystem process: ``python -m fuse_bench.serve [options] MOUNTPOINT``.

Started by :class:`fuse_bench.mount.Mount`, never by hand in normal use. It builds the filesystem
of :mod:`fuse_bench.fs`, loads the chosen binding (fusepy on libfuse 2, or mfusepy on libfuse 3)
and runs libfuse's loop in the foreground until the mount goes away.

The mount is recognisable in ``/proc/mounts`` by its type ``fuse.raybench`` and its source
``raybench-<pid of this process>``; :func:`fuse_bench.mounttable.cleanup_stale` relies on both.

Who unmounts after a kill (the mount must never outlive everyone who could remove it):

* the parent (the owner, :class:`~fuse_bench.mount.Mount`) dies while this process lives: a watchdog
  thread here notices, unmounts and removes what the owner made for the mount (its folder, the log);
* this process dies (SIGKILL) while the owner lives: the mount stays, dead ("transport endpoint is
  not connected"), so that work through it fails visibly instead of landing in the bare mountpoint
  folder; the owner unmounts it (``Mount.stop``, a run's ``FuseNode.heal``);
* both die, in either order or at once: libfuse mounts with ``auto_unmount``, i.e. through
  ``fusermount``, which stays behind as a watchdog (its own session, all signals blocked) and
  lazily unmounts once the last copy of libfuse's socket to it closes. This process hands a copy
  of that socket to the owner (``--keeper-fd``), so the last copy closes only when both are gone.
  The folder and the log stay; :func:`fuse_bench.mounttable.cleanup_stale` removes them later.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from fuse_bench.fs import MemoryFS, prefill
from fuse_bench.passthrough import PassthroughFS

#: Mount type suffix (``fuse.<SUBTYPE>``) and source prefix that mark raybench mounts.
SUBTYPE = "raybench"
FSNAME_PREFIX = "raybench-"
#: How often the watchdog checks that the parent is still there.
WATCHDOG_INTERVAL_S = 0.5
#: How often the hand-over thread looks for libfuse's socket to fusermount while the mount starts.
_HANDOVER_POLL_S = 0.005
#: How long after the mount is up the hand-over thread waits for fusermount's end to close.
_HANDOVER_GIVE_UP_S = 1.0


class _Dispatch:
    """fusepy calls ``operations(name, *args)``; mfusepy calls methods directly. This adapter
    gives fusepy the call operator while exposing the same methods, so one filesystem class
    serves both bindings."""

    def __init__(self, fs: Any) -> None:
        self._fs = fs
        self.use_ns = True
        self.flag_nullpath_ok = getattr(fs, "flag_nullpath_ok", False)
        self.flag_nopath = getattr(fs, "flag_nopath", False)
        self.flag_utime_omit_ok = getattr(fs, "flag_utime_omit_ok", False)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fs, name)

    def __call__(self, op: str, *args: Any) -> Any:
        return getattr(self._fs, op)(*args)


def fusermount_for(backend: str) -> str:
    """The fusermount helper that matches the backend's libfuse major version."""
    name = "fusermount3" if backend == "mfusepy" else "fusermount"
    return shutil.which(name) or shutil.which("fusermount3") or shutil.which("fusermount") or name


def _watch_parent(ppid: int, mountpoint: str, fusermount: str) -> None:
    while True:
        time.sleep(WATCHDOG_INTERVAL_S)
        if os.getppid() != ppid:
            print(f"fuse_bench.serve: parent {ppid} is gone; unmounting {mountpoint}", file=sys.stderr)
            for flag in ("-u", "-uz"):
                if subprocess.run([fusermount, flag, mountpoint], capture_output=True).returncode == 0:
                    return  # the loop in the main thread ends and tidies up (_tidy_orphan)
            os._exit(1)


def _is_mounted(source: str) -> bool:
    """True once this process's mount (source ``raybench-<pid>``) is in the mount table."""
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as fh:
        return any(f" - fuse.{SUBTYPE} {source} " in line for line in fh)


def _sockets(exclude: int) -> list[int]:
    """This process's open sockets apart from ``exclude`` (the channel to the owner)."""
    found = []
    for name in os.listdir("/proc/self/fd"):
        if int(name) == exclude:
            continue
        with contextlib.suppress(OSError):  # closed meanwhile (e.g. listdir's own descriptor)
            if os.readlink(f"/proc/self/fd/{name}").startswith("socket:"):
                found.append(int(name))
    return found


def _hand_over_watchdog_socket(channel_fd: int, source: str) -> None:
    """Send the owner, over ``channel_fd``, a copy of libfuse's socket to the fusermount watchdog.

    fusermount unmounts when the last copy of that socket closes. With the owner holding one, the
    death of this process alone leaves the dead mount for the owner to handle; the mount goes by
    itself only once this process and the owner are both gone. When the mount is up without such a
    socket (libfuse mounted without fusermount), nothing is sent: the owner reads end-of-file."""
    give_up = None
    with socket.socket(fileno=channel_fd) as channel, contextlib.suppress(OSError):  # owner gone
        while True:
            # libfuse keeps the socket private, but nothing else here opens one. It makes a socket
            # pair, forks fusermount and only then closes fusermount's end, which must not be the
            # one sent (holding it keeps nothing alive). So: once the mount is up (read first), the
            # one socket left is libfuse's; none left means it mounted without fusermount.
            mounted = _is_mounted(source)
            found = _sockets(channel_fd)
            if mounted and len(found) == 1:
                socket.send_fds(channel, [b"k"], found)
                return
            if mounted and not found:
                return
            if mounted:
                # Sockets we cannot tell apart: send nothing rather than poll while serving.
                give_up = give_up or time.monotonic() + _HANDOVER_GIVE_UP_S
                if time.monotonic() > give_up:
                    print("fuse_bench.serve: several sockets; the owner gets no watchdog share", file=sys.stderr)
                    return
            time.sleep(_HANDOVER_POLL_S)


def _tidy_orphan(mnt: Path) -> None:
    """The mount's owner died, so nobody else will remove what it made for this mount: its
    folders (:func:`remove_mount_dirs`) and this process's log file."""
    remove_mount_dirs(mnt)
    with contextlib.suppress(OSError):
        log = Path(os.readlink("/proc/self/fd/2"))
        if log.name.startswith("raybench-fuse-") and log.suffix == ".log":
            log.unlink()


def log_path(mnt: Path) -> Path:
    """Where the filesystem process of a mountpoint in a raybench folder logs: ``<mnt>.log`` beside it."""
    return mnt.parent / f"{mnt.name}.log"


def remove_mount_dirs(mnt: Path) -> None:
    """After an unmount: remove the empty mountpoint and, when it is in a raybench folder (a private
    ``raybench-fuse-*`` one, or a run's ``raybench-<run>-*`` FuseNode folder), its filesystem
    process's log (:func:`log_path`), the folder's ``fs`` link to it and the folder itself once
    nothing else is in it. rmdir and unlink only: a folder with files in it (a passthrough backing
    folder) is never touched."""
    with contextlib.suppress(OSError):
        mnt.rmdir()
    parent = mnt.parent
    if not parent.name.startswith("raybench-"):
        return
    if not mnt.exists():  # unmounted and gone: its log is no longer anybody's
        with contextlib.suppress(OSError):
            log_path(mnt).unlink()
    with contextlib.suppress(OSError):
        fs = parent / "fs"
        if fs.is_symlink() and os.readlink(fs) == mnt.name:
            fs.unlink()
    with contextlib.suppress(OSError):
        parent.rmdir()


def load_binding(backend: str) -> Any:
    """Import the FUSE binding module for ``backend`` ('fusepy' or 'mfusepy')."""
    if backend == "mfusepy":
        # mfusepy prefers libfuse 2 when both are installed; ask for libfuse 3 explicitly (unless
        # the user pinned a library path), since measuring libfuse 3 is the point of this backend.
        if "FUSE_LIBRARY_PATH" not in os.environ:
            os.environ.setdefault("FUSE_LIBRARY_NAME", "fuse3")
        import mfusepy

        return mfusepy
    if backend == "fusepy":
        import fuse

        return fuse
    raise ValueError(f"unknown FUSE backend {backend!r}; use 'fusepy' or 'mfusepy'")


def make_fs(mode: str, backing: Path | None = None) -> Any:
    """Build the filesystem object for ``mode`` ('memory' or 'passthrough' over ``backing``)."""
    if mode == "memory":
        return MemoryFS()
    if mode == "passthrough":
        if backing is None:
            raise ValueError("passthrough mode needs a backing directory")
        return PassthroughFS(backing)
    raise ValueError(f"unknown filesystem mode {mode!r}; use 'memory' or 'passthrough'")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m fuse_bench.serve")
    p.add_argument("mountpoint")
    p.add_argument("--backend", default="fusepy", choices=("fusepy", "mfusepy"))
    p.add_argument("--mode", default="memory", choices=("memory", "passthrough"))
    p.add_argument("--backing", default=None)
    p.add_argument("--attr-timeout", type=float, default=0.0)
    p.add_argument("--entry-timeout", type=float, default=0.0)
    p.add_argument("--single-threaded", action="store_true")
    p.add_argument("--direct-io", action="store_true")
    p.add_argument("--parent", type=int, default=None, help="pid whose death triggers an unmount")
    p.add_argument(
        "--keeper-fd", type=int, default=None, help="socket to send the owner its copy of fusermount's watchdog socket"
    )
    p.add_argument("--prefill", type=int, default=0, help="create files k0..k{N-1} before mounting")
    p.add_argument("--prefill-bytes", type=int, default=0, help="size of each prefilled file")
    args = p.parse_args(argv)

    fs = make_fs(args.mode, Path(args.backing) if args.backing else None)
    if args.prefill:
        prefill(fs, args.prefill, args.prefill_bytes)
    binding = load_binding(args.backend)
    ops = _Dispatch(fs) if args.backend == "fusepy" else fs
    lib = getattr(binding, "_libfuse_path", None) or getattr(getattr(binding, "_libfuse", None), "_name", "?")
    print(f"fuse_bench.serve: pid={os.getpid()} backend={args.backend} lib={lib}", file=sys.stderr, flush=True)

    if args.parent:
        threading.Thread(
            target=_watch_parent,
            args=(args.parent, args.mountpoint, fusermount_for(args.backend)),
            daemon=True,
            name="parent-watchdog",
        ).start()

    if args.keeper_fd is not None:
        # fusermount (forked by libfuse) must not inherit the channel: it outlives this process.
        os.set_inheritable(args.keeper_fd, False)
        threading.Thread(
            target=_hand_over_watchdog_socket,
            args=(args.keeper_fd, f"{FSNAME_PREFIX}{os.getpid()}"),
            daemon=True,
            name="watchdog-socket-handover",
        ).start()

    options: dict[str, Any] = {
        "foreground": True,
        "nothreads": args.single_threaded,
        "fsname": f"{FSNAME_PREFIX}{os.getpid()}",
        "subtype": SUBTYPE,
        # 0 by default so that every stat/lookup really crosses FUSE (the kernel caches nothing).
        "attr_timeout": args.attr_timeout,
        "entry_timeout": args.entry_timeout,
        "negative_timeout": 0,
        # unlink/rename of open files go straight to the filesystem (no .fuse_hidden files), so
        # readdir shows exactly what the workload created.
        "hard_remove": True,
        # Mount through fusermount, which stays as a watchdog and unmounts once this process and
        # the owner are both gone, even by SIGKILL (module docstring). Needs libfuse >= 2.9.
        "auto_unmount": True,
    }
    if args.direct_io:
        options["direct_io"] = True
    # Latency, not memory, is what this process is for: move everything built so far out of the
    # collector's reach and collect young objects less often, so a full collection does not pause
    # every request in flight (the handlers create few reference cycles).
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    binding.FUSE(ops, args.mountpoint, **options)
    if args.parent and os.getppid() != args.parent:  # unmounted by the watchdog: the owner is dead
        _tidy_orphan(Path(args.mountpoint))
    return 0


if __name__ == "__main__":
    sys.exit(main())
