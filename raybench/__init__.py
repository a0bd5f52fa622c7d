"""raybench: a Ray-based benchmark for multi-agent coordination.

Importing this package does no work: Ray, pyarrow and FUSE are imported lazily by the modules that
need them. The engine lives in :mod:`raybench.engine.run`; the CLI in :mod:`raybench.cli` is a thin layer.
"""

from __future__ import annotations

__version__ = "0.1.0"
