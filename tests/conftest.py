"""Shared fixtures: one real local Ray for the whole test session (started on first use).

Layout: ``unit/`` (pure logic, no Ray, no mounts: ``make test-fast``), ``integration/`` (a real
local Ray, real FUSE mounts, real subprocesses), ``cluster/`` (a multi-node Ray cluster on this
machine), ``fixtures/`` (synthetic tables and runs, scripts the tests start, and ``run-v1/``: a
stored schema-v1 run folder that every reader is tested on). ``fixtures/`` is put on ``sys.path``
so tests import its helpers by name.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
sys.path.insert(0, str(FIXTURES))


@pytest.fixture(scope="session")
def ray_local():
    """A real local Ray (2 CPUs here), shut down at the end of the session."""
    ray = pytest.importorskip("ray")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    from raybench.engine.run import connect

    started = connect(None)
    yield ray
    if started:
        ray.shutdown()
