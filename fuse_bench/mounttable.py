"""The kernel's table of raybench mounts: reading it, unmounting, and removing what mounts whose
filesystem process died left behind.

A raybench mount is recognised in ``/proc/self/mountinfo`` by its type ``fuse.raybench`` and its
source ``raybench-<pid>``, where pid is the filesystem process (:mod:`fuse_bench.serve`).

Mounts use libfuse's ``auto_unmount`` (:mod:`fuse_bench.mount`): a mount whose filesystem process
and owner are both killed goes away by itself. What no unmount removes (the mountpoint folder, the
log beside it) is removed by the next :func:`cleanup_stale`, which finds it by the server pid the
owner writes at the top of every log (:data:`LOG_HEADER`).
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from fuse_bench.serve import FSNAME_PREFIX, SUBTYPE, fusermount_for, remove_mount_dirs

#: Seconds to wait for ``fusermount -u`` before trying the lazy unmount.
UNMOUNT_TIMEOUT_S = 10.0
#: The first line of every filesystem process's log, written by its owner right after the start:
#: :func:`cleanup_stale` reads the pid to tell a dead server's leftovers from a live one's.
LOG_HEADER = "fuse_bench.mount: server pid={pid} owner pid={owner}\n"
#: Matches :data:`LOG_HEADER`; group 1 is the server pid.
LOG_HEADER_RE = re.compile(rb"^fuse_bench\.mount: server pid=(\d+) ", re.MULTILINE)


@dataclass(frozen=True)
class MountEntry:
    """One line of ``/proc/self/mountinfo``, the parts raybench needs."""

    mountpoint: str
    fstype: str
    source: str

    @property
    def server_pid(self) -> int | None:
        """The filesystem process's pid encoded in the source, for raybench mounts."""
        if self.source.startswith(FSNAME_PREFIX):
            with contextlib.suppress(ValueError):
                return int(self.source[len(FSNAME_PREFIX) :])
        return None


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo octal.
    return field.encode().decode("unicode_escape").encode("latin-1").decode("utf-8", "surrogateescape")


def mounts() -> list[MountEntry]:
    """The mounts visible to this process (reading mountinfo never blocks on a dead FUSE mount)."""
    out = []
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as fh:
        for line in fh:
            left, _, right = line.partition(" - ")
            fields, rfields = left.split(), right.split()
            if len(fields) >= 5 and len(rfields) >= 2:
                out.append(MountEntry(_unescape(fields[4]), rfields[0], _unescape(rfields[1])))
    return out


def raybench_mounts() -> list[MountEntry]:
    """Every raybench FUSE mount currently visible."""
    return [m for m in mounts() if m.fstype == f"fuse.{SUBTYPE}"]


def _server_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            cmdline = fh.read()
    except OSError:
        return False
    # pid reuse: a live process with that pid must also be a raybench filesystem process
    return b"fuse_bench.serve" in cmdline


def unmount(mountpoint: str, backend: str = "fusepy") -> bool:
    """``fusermount -u``, then the lazy ``-uz``; True when the mountpoint is no longer mounted."""
    helper = fusermount_for(backend)
    for flag in ("-u", "-uz"):
        try:
            subprocess.run([helper, flag, mountpoint], capture_output=True, timeout=UNMOUNT_TIMEOUT_S)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if not any(m.mountpoint == mountpoint for m in raybench_mounts()):
            return True
    return False


def _logged_server_pid(log: Path) -> int | None:
    """The filesystem process's pid from a log's header (:data:`LOG_HEADER`); None without one."""
    try:
        with open(log, "rb") as fh:
            head = fh.read(4096)
    except OSError:
        return None
    match = LOG_HEADER_RE.search(head)
    return int(match.group(1)) if match else None


def _leftover_logs() -> list[Path]:
    """Candidate logs of filesystem processes in the temporary folder: ``<mnt>.log`` beside a
    mountpoint in a ``raybench-*`` folder (:func:`~fuse_bench.serve.log_path`), and the
    ``raybench-fuse-*.log`` files of mountpoints elsewhere."""
    # Never stat or list a mountpoint: a FUSE mount whose server hangs would hang this call too.
    # Listing a raybench folder only reads names; it is the entries that could be mounts.
    mounted = {m.mountpoint for m in mounts()}
    logs: list[Path] = []
    with contextlib.suppress(OSError):
        for entry in Path(tempfile.gettempdir()).glob("raybench-*"):
            if str(entry) in mounted:
                continue
            with contextlib.suppress(OSError):  # another user's folder, or one removed meanwhile
                if entry.is_symlink():
                    continue
                if entry.is_dir():
                    logs += (p for p in entry.glob("*.log") if str(p) not in mounted and p.is_file())
                elif entry.name.startswith("raybench-fuse-") and entry.suffix == ".log":
                    logs.append(entry)
    return logs


def cleanup_stale() -> list[str]:
    """Remove what raybench mounts whose filesystem process is dead left behind; return the
    mountpoints concerned.

    * Mounts still there (a dead mount whose owner lives, or one from before ``auto_unmount``):
      unmounted, then their folder removed (:func:`~fuse_bench.serve.remove_mount_dirs`).
    * Mounts already gone (fusermount's watchdog unmounted them after the filesystem process and
      its owner were killed): the mountpoint folder, the log beside it and the raybench folder
      around them are removed; a ``raybench-fuse-*.log`` in the temporary folder is deleted. They
      are found by the server pid in the log's header, so a log without one (a mount still
      starting) is left alone.

    Anything of a live raybench filesystem process (other runs, other users of this machine) is
    left alone, as are folders that are not empty (rmdir and unlink only).
    """
    removed = []
    for m in raybench_mounts():
        pid = m.server_pid
        if pid is not None and _server_alive(pid):
            continue
        if unmount(m.mountpoint):
            removed.append(m.mountpoint)
            remove_mount_dirs(Path(m.mountpoint))
    # After the mounts: one unmounted just now has left its log too, and is handled here as well
    # when the rmdir above found its folder not yet empty.
    current = raybench_mounts()
    sources = {m.source for m in current}
    mountpoints = {m.mountpoint for m in current}
    tmp = Path(tempfile.gettempdir())
    for log in _leftover_logs():
        pid = _logged_server_pid(log)
        if pid is None or _server_alive(pid) or f"{FSNAME_PREFIX}{pid}" in sources:
            continue
        if log.parent == tmp:  # a mountpoint outside raybench folders: only the log is ours
            with contextlib.suppress(OSError):
                log.unlink()
            continue
        mnt = log.parent / log.name.removesuffix(".log")
        if str(mnt) in mountpoints:  # something else is mounted there now: not ours to touch
            continue
        remove_mount_dirs(mnt)
        if not log.exists() and str(mnt) not in removed:
            removed.append(str(mnt))
    return removed
