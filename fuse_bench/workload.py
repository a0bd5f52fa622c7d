"""What the file workload runs: the operations, their mix, the file set and the workers.

:class:`Workload` is the whole description (validated when built); :func:`parse_mix` reads a mix
written as ``op=weight,...``. Running it is :func:`fuse_bench.load.run_workload`.

Operations (each row of the workload times exactly what is listed, as a program would do it):

* ``stat``: ``stat()`` of a file of the set.
* ``read``: ``open(O_RDONLY)`` + read to end of file + ``close``.
* ``write``: ``open(O_WRONLY)`` + ``pwrite`` of ``file_size`` bytes at offset 0 + ``close``.
* ``create``: ``open(O_CREAT|O_EXCL|O_WRONLY)`` of a new name + ``close``.
* ``unlink``: ``unlink()`` of a file this worker created (one is created first, untimed, if the
  worker has none).
* ``readdir``: list the worker's directory (names only, no per-entry stat).
* ``rename``: ``rename()`` of a file this worker created to a new name in the same directory.
* ``fsync``: ``open(O_WRONLY)`` + ``pwrite`` of ``file_size`` bytes + ``fsync`` + ``close``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fuse_bench.errors import UsageError, nearest

OPS = ("stat", "read", "write", "create", "unlink", "readdir", "rename", "fsync")
TARGETS = ("fuse", "native")
#: The default mix: reads and stats dominate, as for agents that mostly look before they write.
DEFAULT_MIX: dict[str, float] = {
    "stat": 3,
    "read": 3,
    "write": 2,
    "create": 1,
    "unlink": 1,
    "readdir": 1,
    "rename": 1,
    "fsync": 1,
}


@dataclass(frozen=True)
class Workload:
    """What to run.

    Attributes:
        workers: concurrent closed-loop workers (>= 1).
        duration_s: seconds of timed operations (> 0).
        mix: op -> relative weight, over :data:`OPS`; ops not listed never run.
        file_size: bytes per file of the set, and per write (>= 0).
        files: files in the set: one shared set, or one set per worker when ``shared`` is False.
        shared: all workers use one directory and one file set (contention), or each its own.
        processes: 0 runs every worker as a thread of this process; N > 0 spreads them over N
            child processes.
        seed: seeds each worker's choice of operations and files.
        op_timeout_s: how long after the end an operation may stay blocked before it is recorded
            as timed out and abandoned.
    """

    workers: int = 32
    duration_s: float = 10.0
    mix: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_MIX))
    file_size: int = 4096
    files: int = 16
    shared: bool = True
    processes: int = 0
    seed: int = 0
    op_timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise UsageError(f"workers must be >= 1 (got {self.workers})")
        if not (self.duration_s > 0 and math.isfinite(self.duration_s)):
            raise UsageError(f"duration must be > 0 (got {self.duration_s}s)")
        if self.file_size < 0 or self.files < 1:
            raise UsageError("file_size must be >= 0 and files >= 1")
        if self.processes < 0 or self.processes > self.workers:
            raise UsageError(f"processes must be between 0 and workers ({self.workers}); got {self.processes}")
        if self.op_timeout_s <= 0:
            raise UsageError("op_timeout_s must be > 0")
        mix = dict(self.mix)
        for op, weight in mix.items():
            if op not in OPS:
                raise UsageError(f"unknown operation {op!r} in the mix{nearest(op, OPS)}; known: {', '.join(OPS)}")
            if not (weight >= 0 and math.isfinite(weight)):
                raise UsageError(f"weight of {op!r} must be a number >= 0 (got {weight})")
        if not any(w > 0 for w in mix.values()):
            raise UsageError("the mix needs at least one operation with a weight > 0")
        object.__setattr__(self, "mix", {op: float(mix[op]) for op in OPS if mix.get(op, 0) > 0})

    def to_dict(self) -> dict[str, Any]:
        """Plain values for a manifest."""
        return {
            "workers": self.workers,
            "duration_s": self.duration_s,
            "mix": dict(self.mix),
            "file_size": self.file_size,
            "files": self.files,
            "shared": self.shared,
            "processes": self.processes,
            "seed": self.seed,
            "op_timeout_s": self.op_timeout_s,
        }


def parse_mix(text: str) -> dict[str, float]:
    """Parse ``'stat=3,read=3,write=2'`` into a weight per op; raises UsageError on bad input."""
    mix: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        op, sep, value = part.partition("=")
        op = op.strip()
        if not sep:
            raise UsageError(f"--mix item {part!r} needs the form op=weight, e.g. stat=3")
        if op not in OPS:
            raise UsageError(f"unknown operation {op!r} in --mix{nearest(op, OPS)}; known: {', '.join(OPS)}")
        try:
            weight = float(value)
        except ValueError:
            raise UsageError(f"--mix weight of {op!r} is not a number: {value!r}") from None
        if not (weight >= 0 and math.isfinite(weight)):
            raise UsageError(f"--mix weight of {op!r} must be >= 0 (got {value})")
        mix[op] = weight
    if not any(w > 0 for w in mix.values()):
        raise UsageError("--mix needs at least one operation with a weight > 0, e.g. stat=1")
    return mix
