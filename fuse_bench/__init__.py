"""fuse_bench: a FUSE test filesystem, its mounts, and a concurrent workload timed against native.

Usable on its own (``raybench fuse`` is one user) and inside raybench runs; it imports nothing from
raybench. Importing this package imports no FUSE binding and starts nothing; the binding is loaded
only in the filesystem process (:mod:`fuse_bench.serve`).

Modules: :mod:`~fuse_bench.fs` and :mod:`~fuse_bench.passthrough` (the filesystems),
:mod:`~fuse_bench.serve` (the filesystem process), :mod:`~fuse_bench.mount` (probe, mount,
unmount), :mod:`~fuse_bench.mounttable` (finding raybench mounts, clean-up after dead ones),
:mod:`~fuse_bench.workload` (what the workload runs), :mod:`~fuse_bench.load` (running it: one row
per operation), :mod:`~fuse_bench.opstats` (per-operation statistics, FUSE against native),
:mod:`~fuse_bench.vs_native` (FUSE and native side by side, end to end) and
:mod:`~fuse_bench.errors`.
"""

from __future__ import annotations
