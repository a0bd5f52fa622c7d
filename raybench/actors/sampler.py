"""Resource sampling of raybench's own processes (psutil), one row per process per sample.

Every raybench actor owns a :class:`ProcessSampler` and answers ``sample_resources()``; the driver
asks all of them once a second, so CPU, memory, threads, file descriptors and — only visible from
inside the process — Python's garbage-collector counts are known for each role on each node.
"""

from __future__ import annotations

import gc
import os
import time
from typing import Any

import psutil

#: Shortest interval over which a CPU % is computed.
MIN_CPU_INTERVAL_S = 0.5
#: Column order of a sample tuple (after run_id, which the aggregator adds).
SAMPLE_COLUMNS = (
    "ts_ns",
    "node_id",
    "role",
    "pid",
    "cpu_percent",
    "rss_bytes",
    "threads",
    "open_fds",
    "gc_gen0",
    "gc_gen1",
    "gc_gen2",
)


def current_node_id() -> str:
    """The Ray node id of this process, or ``'local'`` outside Ray."""
    try:
        import ray

        if ray.is_initialized():
            return str(ray.get_runtime_context().get_node_id())
    except Exception:  # pragma: no cover - best effort label only
        pass
    return "local"


def open_fds(proc: psutil.Process) -> int:
    """How many file descriptors a process has open (-1: unknown). Linux 6.2+ gives the count as
    the size of ``/proc/<pid>/fd`` at once; listing the folder (psutil's ``num_fds``, the fallback)
    takes time in the number of descriptors, and an agent host that keeps a handle per key holds
    10,000: a stall of the host's event loop at every sample (docs/performance.md, "Fixed on the
    way")."""
    try:
        count = os.stat(f"/proc/{proc.pid}/fd").st_size
    except OSError:
        count = 0
    if count > 0:
        return count
    try:
        return proc.num_fds()
    except (psutil.Error, AttributeError):  # pragma: no cover - not on every platform
        return -1


class ProcessSampler:
    """Samples the process it lives in. CPU % is over the interval since the previous sample
    (100 % = one full core)."""

    def __init__(self, role: str, node_id: str | None = None, pid: int | None = None) -> None:
        self.role = role
        self.node_id = node_id or current_node_id()
        self.pid = pid or os.getpid()
        # GC counts can only be read from inside a process; another process's are reported as -1
        self.inside = self.pid == os.getpid()
        self._proc = psutil.Process(self.pid)
        self._proc.cpu_percent(None)  # prime: the first real sample covers the time since now
        self._last_cpu = 0.0
        self._last_cpu_at = time.monotonic()

    def sample(self) -> tuple[Any, ...]:
        p = self._proc
        with p.oneshot():
            now = time.monotonic()
            # CPU % is a difference of tick-quantized CPU times over the wall time between two
            # samples; over a few milliseconds (a second sample right after the first, e.g. at the
            # end of a run) that ratio is noise, so such a sample repeats the previous figure.
            if now - self._last_cpu_at >= MIN_CPU_INTERVAL_S:
                self._last_cpu = p.cpu_percent(None)
                self._last_cpu_at = now
            cpu = self._last_cpu
            rss = p.memory_info().rss
            threads = p.num_threads()
            fds = open_fds(p)
        collections = [s["collections"] for s in gc.get_stats()][:3] if self.inside else [-1, -1, -1]
        return (time.time_ns(), self.node_id, self.role, self.pid, cpu, rss, threads, fds, *collections)
