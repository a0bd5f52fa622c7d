"""The driver's CPU priority during a run.

Ray starts its worker processes at a raised niceness (Ray's ``worker_niceness``, 15 unless
``RAY_worker_niceness`` says otherwise) so that the raylet and the GCS stay responsive; raybench's
agent hosts, shards, aggregator and FUSE servers are such workers. The driver is not: it keeps the
user's niceness (0), and on a small machine its bursts of work at each window (the window's rows
from the aggregator, percentiles, SLA checks, alerts, the progress line) then preempt the very
processes it measures; under Linux's scheduler a nice-0 task outweighs a nice-15 one 1024 to 36.
On the 2-core reference machine the requests' FUSE stage tail shrank with the driver at the hosts'
niceness, and the slow file operations no longer bunched after each window's end, when the driver
judges it (docs/fuse.md, "The driver preempted the hosts").

So for the load the driver takes the niceness of the agent hosts on its node (every thread of the
process: Linux keeps a niceness per thread), and gives it back afterwards where it may (raising a
priority again needs CAP_SYS_NICE; a CLI run exits anyway). The manifest records both values.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any


def _threads() -> list[int]:
    try:
        return [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:  # not Linux: the process's niceness is the only one
        return [0]


def niceness() -> int:
    """This thread's niceness (the calling process's, outside Linux)."""
    return os.getpriority(os.PRIO_PROCESS, 0)


@dataclass
class DriverPriority:
    """What :func:`lower_to` changed, to put it back."""

    before: int
    during: int
    threads: dict[int, int] = field(default_factory=dict)  # thread id -> niceness before
    restored: bool | None = None  # None: nothing to restore

    def restore(self) -> None:
        if not self.threads:
            return
        ok = True
        for tid, nice in self.threads.items():
            try:
                os.setpriority(os.PRIO_PROCESS, tid, nice)
            except ProcessLookupError:  # the thread has ended
                continue
            except PermissionError:  # raising a priority needs CAP_SYS_NICE
                ok = False
        self.threads.clear()
        self.restored = ok

    def to_manifest(self) -> dict[str, Any]:
        return {"before": self.before, "during": self.during, "restored": self.restored}


def lower_to(nice: int) -> DriverPriority:
    """Give every thread of this process niceness ``nice`` where it is lower (a higher priority);
    never raises a thread's priority."""
    before = niceness()
    changed: dict[int, int] = {}
    for tid in _threads():
        try:
            current = os.getpriority(os.PRIO_PROCESS, tid)
            if current < nice:
                os.setpriority(os.PRIO_PROCESS, tid, nice)
                changed[tid] = current
        except OSError:  # the thread ended meanwhile
            continue
    return DriverPriority(before, max(before, nice), changed)
