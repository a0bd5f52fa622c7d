"""Shared fixtures: one real local Ray for the whole test session (started on first use)."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session")
def ray_local():
    """A real local Ray (2 CPUs here), shut down at the end of the session."""
    ray = pytest.importorskip("ray")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    from raybench.run import connect

    started = connect(None)
    yield ray
    if started:
        ray.shutdown()
