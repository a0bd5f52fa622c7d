"""FuseNode: the per-node FUSE service of a run, pinned to its node.

It mounts a fuse_bench test filesystem (in a child process of its own) under a private 0700
folder on its node and tells the agent hosts on that node where it is: in memory, or passed
through to a ``backing`` folder beside the mount (``fuse.fs``), which outlives a restarted FUSE
server like a real workspace and is removed with the mount at the end. When FUSE cannot be used
there, ``start`` returns the probe's precise reason instead of a mountpoint and the run goes on
without a FUSE stage on that node (manifest and summary say why).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any


class FuseNode:
    """Plain class; a Ray actor pinned with NodeAffinitySchedulingStrategy at run time."""

    def __init__(self, run_id: str, backend: str, options: dict[str, Any] | None = None) -> None:
        self.run_id = run_id
        self.backend = backend
        self.options = options or {}
        self.generation = 0
        self.mount: Any = None
        self.base: Path | None = None
        self._sampler: Any = None
        self._server_sampler: Any = None

    def start(self) -> dict[str, Any]:
        """Mount; returns ``{"node_id", "mountpoint"}`` or ``{"node_id", "reason"}``.

        Agents reach the filesystem through ``<base>/fs``, a symbolic link to the live mount
        ``<base>/mnt-N``: when a FUSE server dies, :meth:`heal` mounts a fresh one at ``mnt-N+1``
        and swaps the link atomically, so no agent ever writes into a bare mountpoint directory.
        """
        from fuse_bench import mount as fm
        from fuse_bench.mounttable import cleanup_stale
        from raybench.actors.sampler import current_node_id

        node_id = current_node_id()
        cleanup_stale()
        reason = fm.probe()
        if reason is not None:
            return {"node_id": node_id, "reason": reason}
        self.base = Path(tempfile.mkdtemp(prefix=f"raybench-{self.run_id}-"))
        os.chmod(self.base, 0o700)
        try:
            self._mount_next()
        except Exception as exc:
            self.mount = None
            return {"node_id": node_id, "reason": f"mount failed: {exc}"}
        assert self.mount is not None
        return {"node_id": node_id, "mountpoint": str(self.base / "fs"), "pid": self.mount.pid, **self.mount.options()}

    def _mount_next(self) -> None:
        from fuse_bench import mount as fm

        assert self.base is not None
        self.generation += 1
        mountpoint = self.base / f"mnt-{self.generation}"
        mountpoint.mkdir(mode=0o700)
        options = dict(self.options)
        if options.get("mode") == "passthrough":
            options["backing"] = self.base / "backing"
            options["backing"].mkdir(mode=0o700, exist_ok=True)
        mount = fm.Mount(mountpoint, backend=self.backend, **options)
        mount.start()
        self.mount = mount
        link = self.base / f".fs-{self.generation}"
        link.symlink_to(mountpoint.name)
        os.replace(link, self.base / "fs")  # atomic: openers see the old mount or the new one

    def run_probe(self, aggregator: Any, workers: int, t0_ns: int, duration_s: float, seed: int) -> int:
        """The concurrent probe workload beside the agents: ``workers`` closed-loop threads doing
        fuse_bench's default operation mix on this node's mount from ``t0_ns`` for ``duration_s``.
        Its rows go to the aggregator as ``fuse_ops`` (the result schema applied here); returns how
        many. Runs in one of the actor's threads (the actor is threaded so ``stop`` still answers
        meanwhile)."""
        import time

        from fuse_bench.load import run_workload
        from fuse_bench.workload import Workload
        from raybench.actors.sampler import current_node_id
        from raybench.results.schema import conform

        if self.mount is None or self.base is None:
            return 0
        time.sleep(max(0.0, (t0_ns - time.time_ns()) / 1e9))
        workload = Workload(workers=workers, duration_s=duration_s, seed=seed, op_timeout_s=5.0)
        rows = run_workload(self.base / "fs", workload, target="fuse", node_id=current_node_id(), run_id=self.run_id)
        table = conform("fuse_ops", rows)
        import ray

        ray.get(aggregator.write.remote("fuse_ops", table))
        return table.num_rows

    def kill_server(self) -> int | None:
        """``--chaos``: SIGKILL this node's filesystem process (the mount goes dead). Returns its pid."""
        if self.mount is None:
            return None
        pid = self.mount.pid
        self.mount.kill()
        return pid

    def heal(self) -> dict[str, Any] | None:
        """If the filesystem process died, mount a fresh filesystem beside it, point ``fs`` at it,
        then remove the dead mount. Returns the new mount's details, or None."""
        if self.mount is None or self.base is None or self.mount.alive():
            return None
        dead = self.mount
        self._mount_next()
        dead.stop()  # fusermount -u, then -uz: the dead mount goes
        with contextlib.suppress(OSError):
            dead.mountpoint.rmdir()
        assert self.mount is not None
        return {"mountpoint": str(self.mount.mountpoint), "old_pid": dead.pid, "pid": self.mount.pid}

    def alive(self) -> bool:
        return self.mount is not None and self.mount.alive()

    def fs_pid(self) -> int | None:
        return None if self.mount is None else self.mount.pid

    def stop(self) -> None:
        """Unmount and remove this node's folder; then unmount any raybench mount on this machine
        whose filesystem process is dead (e.g. that of a node Ray lost, on a machine that lives
        on), removing its run folder too."""
        from fuse_bench.mounttable import cleanup_stale

        if self.mount is not None:
            self.mount.stop()
            self.mount = None
        if self.base is not None:
            _remove_base(self.base)
        with contextlib.suppress(Exception):  # best effort: never fails the run's teardown
            for mountpoint in cleanup_stale():
                base = Path(mountpoint).parent
                if base.name.startswith("raybench-") and Path(mountpoint).name.startswith("mnt-"):
                    _remove_base(base)

    def sample_resources(self) -> list[tuple[Any, ...]]:
        """This actor and the filesystem process it started (role ``fuse-server``)."""
        import psutil

        from raybench.actors.sampler import ProcessSampler

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


def _remove_base(base: Path) -> None:
    """Remove a FuseNode's folder: the ``fs`` link, empty mountpoints and their filesystem
    processes' logs, the passthrough backing folder (only once no mount is left under it) and the
    folder itself."""
    with contextlib.suppress(OSError):
        (base / "fs").unlink()
    for mnt in base.glob("mnt-*"):
        with contextlib.suppress(OSError):
            if mnt.suffix == ".log":  # a filesystem process's log (fuse_bench.serve.log_path)
                mnt.unlink()
            else:
                mnt.rmdir()
    if not any(base.glob("mnt-*")):  # never delete through a mount still there
        shutil.rmtree(base / "backing", ignore_errors=True)
    with contextlib.suppress(OSError):
        base.rmdir()
