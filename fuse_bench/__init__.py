"""fuse_bench: a FUSE test filesystem, its mounts, and a concurrent workload timed against native.

Usable on its own (``raybench fuse``) and inside raybench runs. Importing this package imports no
FUSE binding and starts nothing; the binding is loaded only in the filesystem process
(:mod:`fuse_bench.serve`).

Modules: :mod:`~fuse_bench.fs` (the filesystems), :mod:`~fuse_bench.serve` (the filesystem
process), :mod:`~fuse_bench.mount` (probe, mount, unmount, clean-up), :mod:`~fuse_bench.load`
(the workload), :mod:`~fuse_bench.summary` (per-op comparison tables), :mod:`~fuse_bench.compare`
(FUSE and native side by side, end to end).
"""

from __future__ import annotations
