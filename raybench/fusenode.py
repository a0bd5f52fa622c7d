"""FuseNode: the per-node FUSE service of a run, pinned to its node.

It mounts a fuse_bench test filesystem (in a child process of its own) under a private 0700
folder on its node and tells the agent hosts on that node where it is. When FUSE cannot be used
there, ``start`` returns the probe's precise reason instead of a mountpoint and the run goes on
without a FUSE stage on that node (manifest and summary say why).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any


class FuseNode:
    """Plain class; a Ray actor pinned with NodeAffinitySchedulingStrategy at run time."""

    def __init__(self, run_id: str, backend: str, options: dict[str, Any] | None = None) -> None:
        self.run_id = run_id
        self.backend = backend
        self.options = options or {}
        self.mount: Any = None
        self.base: Path | None = None
        self._sampler: Any = None
        self._server_sampler: Any = None

    def start(self) -> dict[str, Any]:
        """Mount; returns ``{"node_id", "mountpoint"}`` or ``{"node_id", "reason"}``."""
        from fuse_bench import mount as fm
        from raybench.monitor import current_node_id

        node_id = current_node_id()
        fm.cleanup_stale()
        reason = fm.probe()
        if reason is not None:
            return {"node_id": node_id, "reason": reason}
        self.base = Path(tempfile.mkdtemp(prefix=f"raybench-{self.run_id}-"))
        os.chmod(self.base, 0o700)
        mountpoint = self.base / "mnt"
        mountpoint.mkdir()
        try:
            self.mount = fm.Mount(mountpoint, backend=self.backend, **self.options)
            self.mount.start()
        except Exception as exc:
            self.mount = None
            return {"node_id": node_id, "reason": f"mount failed: {exc}"}
        return {"node_id": node_id, "mountpoint": str(mountpoint), "pid": self.mount.pid, **self.mount.options()}

    def run_probe(self, aggregator: Any, workers: int, t0_ns: int, duration_s: float, seed: int) -> int:
        """The concurrent probe workload beside the agents: ``workers`` closed-loop threads doing
        fuse_bench's default operation mix on this node's mount from ``t0_ns`` for ``duration_s``.
        Its rows go to the aggregator as ``fuse_ops``; returns how many. Runs in one of the
        actor's threads (the actor is threaded so ``stop`` still answers meanwhile)."""
        import time

        from fuse_bench.load import Workload, run_workload
        from raybench.monitor import current_node_id

        if self.mount is None or self.base is None:
            return 0
        time.sleep(max(0.0, (t0_ns - time.time_ns()) / 1e9))
        workload = Workload(workers=workers, duration_s=duration_s, seed=seed, op_timeout_s=5.0)
        table = run_workload(self.base / "mnt", workload, target="fuse", node_id=current_node_id(), run_id=self.run_id)
        import ray

        ray.get(aggregator.write.remote("fuse_ops", table))
        return table.num_rows

    def alive(self) -> bool:
        return self.mount is not None and self.mount.alive()

    def fs_pid(self) -> int | None:
        return None if self.mount is None else self.mount.pid

    def stop(self) -> None:
        if self.mount is not None:
            self.mount.stop()
            self.mount = None
        if self.base is not None:
            try:
                (self.base / "mnt").rmdir()
                self.base.rmdir()
            except OSError:
                pass

    def sample_resources(self) -> list[tuple[Any, ...]]:
        """This actor and the filesystem process it started (role ``fuse-server``)."""
        import psutil

        from raybench.monitor import ProcessSampler

        if self._sampler is None:
            self._sampler = ProcessSampler("fuse")
        rows = [self._sampler.sample()]
        pid = None if self.mount is None else self.mount.pid
        if pid is not None:
            try:
                if self._server_sampler is None or self._server_sampler.pid != pid:
                    self._server_sampler = ProcessSampler("fuse-server", self._sampler.node_id, pid)
                rows.append(self._server_sampler.sample())
            except psutil.Error:  # the filesystem process is gone; the run notices elsewhere
                self._server_sampler = None
        return rows
