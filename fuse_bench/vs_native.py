"""FUSE against native, end to end: mount, run the workload on both, unmount, clean up.

:func:`run_comparison` is what ``raybench fuse`` and ``bench/bench_fuse.py`` call. Both targets
run in the same call, one after the other, on folders of this machine's temporary directory, so
that the ratio compares like with like under the same background load.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fuse_bench.errors import FuseUnavailable, UsageError
from fuse_bench.load import rows_schema, run_workload
from fuse_bench.mount import Mount, probe
from fuse_bench.workload import Workload

if TYPE_CHECKING:
    import pyarrow as pa


#: Most mounts (filesystem processes) one comparison may start.
MAX_MOUNTS = 16


@dataclass(frozen=True)
class MountOptions:
    """How the FUSE side is mounted (see :class:`fuse_bench.mount.Mount`)."""

    backend: str = "fusepy"
    mode: str = "memory"
    attr_timeout: float = 0.0
    entry_timeout: float = 0.0
    multithreaded: bool = False  # libfuse's single-threaded loop (see Mount)
    direct_io: bool = False
    mounts: int = 1  # filesystem processes: the workers are spread over this many mounts

    def __post_init__(self) -> None:
        if not 1 <= self.mounts <= MAX_MOUNTS:
            raise UsageError(f"mounts must be between 1 and {MAX_MOUNTS} (got {self.mounts})")


@dataclass
class Comparison:
    """The rows of both targets (:func:`fuse_bench.load.rows_schema`) and what is needed to interpret them."""

    table: pa.Table
    info: dict[str, Any] = field(default_factory=dict)


def _fstype(path: Path) -> str:
    try:
        out = subprocess.run(["stat", "-f", "-c", "%T", str(path)], capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or "?"
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def run_comparison(
    workload: Workload,
    options: MountOptions = MountOptions(),
    *,
    targets: tuple[str, ...] = ("fuse", "native"),
    node_id: str = "local",
    run_id: str = "",
) -> Comparison:
    """Run ``workload`` on a fresh FUSE mount and on a native folder; return all rows.

    The native folder is in the system temporary directory; in passthrough mode it is also the
    FUSE mount's backing folder (then FUSE and native touch the very same disk). With
    ``options.mounts`` = n > 1 there are n mounts (n filesystem processes) and n native folders,
    worker k on the (k mod n)-th of each. Every folder and mount made here is removed before
    returning, also on error.

    Raises:
        FuseUnavailable: FUSE cannot be used here (the probe's reason) or the mount failed.
    """
    import pyarrow as pa

    if "fuse" in targets:
        reason = probe(options.backend)
        if reason is not None:
            raise FuseUnavailable(reason)
    base = Path(tempfile.mkdtemp(prefix="raybench-fuse-"))  # 0700
    native = base / "native"
    native.mkdir()
    n = options.mounts
    natives = [native] if n == 1 else [native / f"n{i}" for i in range(n)]
    if n > 1:
        for d in natives:
            d.mkdir()
    tables = []
    info: dict[str, Any] = {
        "workload": workload.to_dict(),
        "mount": {**options.__dict__},
        "native_dir_fstype": _fstype(native),
        "cpu_count": os.cpu_count(),
        "load_average": list(os.getloadavg()),
    }
    try:
        for target in targets:
            if target == "fuse":
                with contextlib.ExitStack() as stack:
                    mounts = [
                        stack.enter_context(
                            Mount(
                                base / ("mnt" if n == 1 else f"mnt{i}"),
                                backend=options.backend,
                                mode=options.mode,
                                backing=natives[i] if options.mode == "passthrough" else None,
                                attr_timeout=options.attr_timeout,
                                entry_timeout=options.entry_timeout,
                                multithreaded=options.multithreaded,
                                direct_io=options.direct_io,
                            )
                        )
                        for i in range(n)
                    ]
                    roots = [m.mountpoint for m in mounts]
                    tables.append(run_workload(roots, workload, target="fuse", node_id=node_id, run_id=run_id))
            else:
                tables.append(run_workload(natives, workload, target="native", node_id=node_id, run_id=run_id))
    finally:
        # Never recurse into a mount that somehow survived (rmtree would empty it).
        if not any(os.path.ismount(m) for m in base.glob("mnt*")):
            with contextlib.suppress(OSError):
                shutil.rmtree(base)
    info["load_average_after"] = list(os.getloadavg())
    lost = sorted(
        {w for t in tables for w in (t.schema.metadata or {}).get(b"lost_workers", b"").decode().split(",") if w}
    )
    info["lost_workers"] = lost
    if tables:
        table = pa.concat_tables([t.replace_schema_metadata(None) for t in tables])
    else:
        table = rows_schema().empty_table()
    return Comparison(table=table, info=info)
